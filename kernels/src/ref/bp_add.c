// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation.
#include "bp_kernels.h"
#include "bp_support.h"

bp_status_t bp_add(const bp_act_t *a_fmt,
                   const uint8_t *a,
                   const bp_act_t *b_fmt,
                   const uint8_t *b,
                   int32_t mult_a,
                   int32_t mult_b,
                   int32_t shift,
                   const bp_act_t *out_fmt,
                   int32_t act_min,
                   int32_t act_max,
                   int32_t rows,
                   int32_t count,
                   uint8_t *output) {
    if (a == NULL || b == NULL || output == NULL || rows < 1 || count < 1) {
        return BP_ERR_ARG;
    }
    bp_status_t st;
    if ((st = bp_check_act(a_fmt)) != BP_OK || (st = bp_check_act(b_fmt)) != BP_OK ||
        (st = bp_check_act(out_fmt)) != BP_OK) {
        return st;
    }
    if (shift < 0 || shift > BP_SHIFT_MAX || bp_check_clamp(out_fmt, act_min, act_max) != BP_OK) {
        return BP_ERR_QUANT;
    }
    const int32_t ra = bp_row_bytes(count, a_fmt->bits), rb = bp_row_bytes(count, b_fmt->bits);
    const int32_t ro = bp_row_bytes(count, out_fmt->bits);
    const int64_t round = shift > 0 ? (int64_t)1 << (shift - 1) : 0;
    for (int32_t r = 0; r < rows; r++) {
        const uint8_t *pa = a + (int64_t)r * ra, *pb = b + (int64_t)r * rb;
        uint8_t *po = output + (int64_t)r * ro;
        bp_clear_row(po, ro);
        for (int32_t i = 0; i < count; i++) {
            // |a|, |b| <= 255 and |mult| <= 2^31: |sum| < 2^40, exact in int64.
            int64_t s = (int64_t)bp_read(pa, i, a_fmt->bits, a_fmt->is_signed) * mult_a +
                        (int64_t)bp_read(pb, i, b_fmt->bits, b_fmt->is_signed) * mult_b;
            s = (s + round) >> shift;
            bp_write(po, i, out_fmt->bits, (int32_t)(s < act_min ? act_min : (s > act_max ? act_max : s)));
        }
    }
    return BP_OK;
}
