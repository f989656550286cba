// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation. ARMv7E-M DSP variant of bp_fully_connected: same symbol,
// same results bit for bit as src/ref/bp_fully_connected.c.
//
// Fast path: 8-bit inputs (signed or not) or unsigned 4/2-bit inputs, weights stored at 8 bits (any
// view), two output channels at a time. Four inputs become the int16 pairs (x0,x2), (x1,x3)
// (bp_unpack4_s16: (S|U)XTB16 for bytes, masks for nibbles and crumbs) and a word of 4 weights splits
// with SXTB16 into (w0,w2) and (w1,w3), so SMLAD pairs them with no repacking and no scratch. A b-bit view is the code with its low 8-b bits cleared (one AND per
// word); the exact sum is the masked sum shifted right by 8-b. Other widths use the portable loop.
#include "bp_dsp.h"
#include "bp_kernels.h"
#include "bp_support.h"

// sum_i x[i] * view(w[r][i]) for two weight rows (8-bit codes, view = 8 - sh) and a packed input row
// of 8-bit (signed or not) or unsigned 4/2-bit values. Masked products need k * xmax * 128 <= INT32_MAX.
static inline void dot_1x2_impl(int32_t out[2], const uint8_t *x, int32_t bits, int32_t sgn,
                                const uint8_t *const wrow[2], int32_t k, int32_t sh) {
    const uint32_t mask4 = ((0xFFu << sh) & 0xFFu) * 0x01010101u;
    const int32_t k4 = k & ~3;
    int32_t a0 = 0, a1 = 0;
    for (int32_t i = 0; i < k4; i += 4) {
        uint32_t xe, xo;
        bp_unpack4_s16(x, i, bits, sgn, &xe, &xo);
        const uint32_t w0 = bp_load32(wrow[0] + i) & mask4, w1 = bp_load32(wrow[1] + i) & mask4;
        a0 = bp_smlad(xe, bp_sxtb16(w0), a0);
        a0 = bp_smlad(xo, bp_sxtb16_ror8(w0), a0);
        a1 = bp_smlad(xe, bp_sxtb16(w1), a1);
        a1 = bp_smlad(xo, bp_sxtb16_ror8(w1), a1);
    }
    a0 >>= sh, a1 >>= sh; // masked codes are multiples of 2^sh: exact
    for (int32_t i = k4; i < k; i++) {
        const int32_t xv = bp_read(x, i, bits, sgn);
        a0 += xv * ((int32_t)(int8_t)wrow[0][i] >> sh);
        a1 += xv * ((int32_t)(int8_t)wrow[1][i] >> sh);
    }
    out[0] = a0, out[1] = a1;
}

// Specialised by input width and signedness so the unpacking has no branches in the loop.
static void dot_1x2(int32_t out[2], const uint8_t *x, int32_t bits, int32_t sgn, const uint8_t *const wrow[2],
                    int32_t k, int32_t sh) {
    if (bits == 8) {
        if (sgn) {
            dot_1x2_impl(out, x, 8, 1, wrow, k, sh);
        } else {
            dot_1x2_impl(out, x, 8, 0, wrow, k, sh);
        }
    } else if (bits == 4) {
        dot_1x2_impl(out, x, 4, 0, wrow, k, sh);
    } else {
        dot_1x2_impl(out, x, 2, 0, wrow, k, sh);
    }
}

bp_status_t bp_fully_connected(const bp_quant_t *q,
                               const bp_requant_t *rq,
                               int32_t batches,
                               int32_t in_features,
                               int32_t out_features,
                               const uint8_t *input,
                               const uint8_t *filter,
                               const int32_t *bias,
                               void *output) {
    const bp_status_t st =
        bp_fully_connected_check(q, rq, batches, in_features, out_features, input, filter, bias, output);
    if (st != BP_OK) {
        return st;
    }
    const int32_t in_row = bp_row_bytes(in_features, q->in.bits);
    const int32_t w_row = bp_row_bytes(in_features, q->w_stored);
    const int32_t out_row = q->out.bits == 32 ? 0 : bp_row_bytes(out_features, q->out.bits);
    const int64_t xmax = q->in.is_signed ? (1 << (q->in.bits - 1)) : (1 << q->in.bits) - 1;
    // 8-bit inputs signed or not, 4/2-bit inputs unsigned (after ReLU); weights stored at 8 bits.
    const int fast = q->w_stored == 8 && (q->in.bits == 8 || !q->in.is_signed) &&
                     (int64_t)in_features * xmax * 128 <= INT32_MAX;

    for (int32_t b = 0; b < batches; b++) {
        const uint8_t *x = input + (int64_t)b * in_row;
        if (out_row > 0) {
            bp_clear_row((uint8_t *)output + (int64_t)b * out_row, out_row);
        }
        for (int32_t o = 0; o < out_features; o += 2) {
            const int32_t o1 = (o + 1 < out_features) ? o + 1 : o;
            const uint8_t *wrow[2] = {filter + (int64_t)o * w_row, filter + (int64_t)o1 * w_row};
            int32_t acc[2];
            if (fast) {
                dot_1x2(acc, x, q->in.bits, q->in.is_signed, wrow, in_features, 8 - q->w_view);
            } else {
                for (int32_t j = 0; j < 2; j++) {
                    acc[j] = bp_dot_row(x, &q->in, wrow[j], in_features, q->w_stored, q->w_view);
                }
            }
            // |bias + acc| <= INT32_MAX (bp_check_acc).
            bp_emit(output, b, out_features, o, q, rq, (bias ? bias[o] : 0) + acc[0]);
            if (o1 != o) {
                bp_emit(output, b, out_features, o1, q, rq, (bias ? bias[o1] : 0) + acc[1]);
            }
        }
    }
    return BP_OK;
}
