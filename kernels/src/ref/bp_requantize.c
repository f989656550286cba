// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation.
#include "bp_kernels.h"
#include "bp_support.h"

bp_status_t bp_requantize(const int32_t *acc,
                          int32_t rows,
                          int32_t channels,
                          const bp_requant_t *rq,
                          const bp_act_t *out_fmt,
                          int32_t act_min,
                          int32_t act_max,
                          uint8_t *output) {
    if (acc == NULL || output == NULL || rows < 1 || channels < 1) {
        return BP_ERR_ARG;
    }
    bp_status_t st = bp_check_act(out_fmt);
    if (st != BP_OK) {
        return st;
    }
    if ((st = bp_check_requant(rq, channels)) != BP_OK) {
        return st;
    }
    if (bp_check_clamp(out_fmt, act_min, act_max) != BP_OK) {
        return BP_ERR_QUANT;
    }
    const int32_t ro = bp_row_bytes(channels, out_fmt->bits);
    for (int32_t r = 0; r < rows; r++) {
        uint8_t *po = output + (int64_t)r * ro;
        bp_clear_row(po, ro);
        for (int32_t c = 0; c < channels; c++) {
            const int32_t v = bp_requant(acc[(int64_t)r * channels + c], rq->multiplier[c], rq->shift[c], act_min, act_max);
            bp_write(po, c, out_fmt->bits, v);
        }
    }
    return BP_OK;
}
