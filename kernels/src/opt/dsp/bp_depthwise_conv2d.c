// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation. ARMv7E-M DSP variant of bp_depthwise_conv2d: same symbol,
// same results bit for bit as src/ref/bp_depthwise_conv2d.c.
//
// Fast path: 8-bit inputs and weights stored at 8 bits (any view), kernels of at most BP_DW_TAPS taps,
// four channels per step. The loop runs over groups of four channels outside and pixels inside, so
// each group's weights are masked and split (SXTB16 into channels (0,2) and, rotated by 8, (1,3)) once
// and kept in a small local table for every pixel. Per tap a pixel then costs one input load, two
// (S|U)XTB16 and four SMLABB/SMLATT (each channel accumulates separately: SMLAD would add channel 0
// to channel 2). A b-bit view is the code with its low 8-b bits cleared; the exact sum is the masked
// sum shifted right by 8-b. Other widths and larger kernels use the portable loop.
#include <stddef.h>

#include "bp_dsp.h"
#include "bp_kernels.h"
#include "bp_support.h"

#define BP_DW_TAPS 49 // up to 7x7: 392 bytes of split weights on the stack

// Four channels of one output pixel over the valid taps [ky0,ky1) x [kx0,kx1); we/wo hold the split
// weights of every tap of the group. `base` is the offset of window pixel (0, 0), which may lie in the
// padding: only offsets of valid taps are ever added to `img`.
// |acc| <= KH*KW * xmax * 128 <= INT32_MAX (checked by the caller) before the exact shift.
static inline void dw4(int32_t acc[4], const uint8_t *img, ptrdiff_t base, const uint32_t *we, const uint32_t *wo,
                       int32_t ky0, int32_t ky1, int32_t kx0, int32_t kx1, int32_t iw, int32_t kw, int32_t c_n,
                       int sgn) {
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (int32_t ky = ky0; ky < ky1; ky++) {
        const uint8_t *xp = img + (base + ((ptrdiff_t)ky * iw + kx0) * c_n);
        const int32_t t0 = ky * kw;
        for (int32_t kx = kx0; kx < kx1; kx++, xp += c_n) {
            const uint32_t xw = bp_load32(xp);
            // sgn is a compile-time constant at both call sites: no branch in the loop
            const uint32_t xe = sgn ? bp_sxtb16(xw) : bp_uxtb16(xw);
            const uint32_t xo = sgn ? bp_sxtb16_ror8(xw) : bp_uxtb16_ror8(xw);
            a0 = bp_smlabb(xe, we[t0 + kx], a0);
            a2 = bp_smlatt(xe, we[t0 + kx], a2);
            a1 = bp_smlabb(xo, wo[t0 + kx], a1);
            a3 = bp_smlatt(xo, wo[t0 + kx], a3);
        }
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

// dw4 for an interior pixel of a 3x3 kernel (all 9 taps valid): fully unrolled, no loop overhead.
static inline void dw4_3x3(int32_t acc[4], const uint8_t *xp, const uint32_t *we, const uint32_t *wo, int32_t iw,
                           int32_t c_n, int sgn) {
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    const ptrdiff_t rs = (ptrdiff_t)iw * c_n;
#define BP_DW_TAP(t, off)                                                                                  \
    do {                                                                                                   \
        const uint32_t xw = bp_load32(xp + (off));                                                         \
        const uint32_t xe = sgn ? bp_sxtb16(xw) : bp_uxtb16(xw);                                           \
        const uint32_t xo = sgn ? bp_sxtb16_ror8(xw) : bp_uxtb16_ror8(xw);                                 \
        a0 = bp_smlabb(xe, we[t], a0);                                                                     \
        a2 = bp_smlatt(xe, we[t], a2);                                                                     \
        a1 = bp_smlabb(xo, wo[t], a1);                                                                     \
        a3 = bp_smlatt(xo, wo[t], a3);                                                                     \
    } while (0)
    BP_DW_TAP(0, 0);
    BP_DW_TAP(1, c_n);
    BP_DW_TAP(2, 2 * c_n);
    BP_DW_TAP(3, rs);
    BP_DW_TAP(4, rs + c_n);
    BP_DW_TAP(5, rs + 2 * c_n);
    BP_DW_TAP(6, 2 * rs);
    BP_DW_TAP(7, 2 * rs + c_n);
    BP_DW_TAP(8, 2 * rs + 2 * c_n);
#undef BP_DW_TAP
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

bp_status_t bp_depthwise_conv2d(const bp_window_t *win,
                                const bp_quant_t *q,
                                const bp_requant_t *rq,
                                const bp_dims_t *input_dims,
                                const uint8_t *input,
                                const bp_dims_t *filter_dims,
                                const uint8_t *filter,
                                const int32_t *bias,
                                const bp_dims_t *output_dims,
                                void *output) {
    const bp_status_t st =
        bp_depthwise_conv2d_check(win, q, rq, input_dims, input, filter_dims, filter, bias, output_dims, output);
    if (st != BP_OK) {
        return st;
    }
    const int32_t c_n = input_dims->c, kh = filter_dims->h, kw = filter_dims->w;
    const int64_t xmax = q->in.is_signed ? 128 : 255;
    const int fast = q->in.bits == 8 && q->w_stored == 8 && kh * kw <= BP_DW_TAPS &&
                     (int64_t)kh * kw * xmax * 128 <= INT32_MAX;
    if (!fast) {
        bp_depthwise_conv2d_generic(win, q, rq, input_dims, input, filter_dims, filter, bias, output_dims, output);
        return BP_OK;
    }
    const int32_t sh = 8 - q->w_view;
    const uint32_t mask4 = ((0xFFu << sh) & 0xFFu) * 0x01010101u;
    const int32_t c4 = c_n & ~3, taps = kh * kw;
    const int32_t ih = input_dims->h, iw = input_dims->w, oh = output_dims->h, ow = output_dims->w;
    const int32_t out_row = q->out.bits == 32 ? 0 : bp_row_bytes(c_n, q->out.bits);
    if (out_row > 0) { // channel groups fill each output row piecewise: clear every row first
        bp_clear_row((uint8_t *)output, input_dims->n * oh * ow * out_row);
    }
    uint32_t we[BP_DW_TAPS], wo[BP_DW_TAPS];

    for (int32_t c = 0; c < c_n; c += 4) {
        const int32_t nc = c < c4 ? 4 : c_n - c;
        if (nc == 4) {
            for (int32_t t = 0; t < taps; t++) {
                const uint32_t ww = bp_load32(filter + (ptrdiff_t)t * c_n + c) & mask4;
                we[t] = bp_sxtb16(ww);
                wo[t] = bp_sxtb16_ror8(ww);
            }
        }
        for (int32_t n = 0; n < input_dims->n; n++) {
            const uint8_t *img = input + (ptrdiff_t)n * ih * iw * c_n;
            for (int32_t oy = 0; oy < oh; oy++) {
                const int32_t y0 = oy * win->stride_h - win->pad_top;
                const int32_t ky0 = y0 < 0 ? -y0 : 0, ky1 = (y0 + kh > ih) ? ih - y0 : kh;
                for (int32_t ox = 0; ox < ow; ox++) {
                    const int32_t x0 = ox * win->stride_w - win->pad_left;
                    const int32_t kx0 = x0 < 0 ? -x0 : 0, kx1 = (x0 + kw > iw) ? iw - x0 : kw;
                    const int64_t row = ((int64_t)n * oh + oy) * ow + ox;
                    // Offsets in ptrdiff_t (32-bit on Cortex-M); negative when the window starts in
                    // the padding: see dw4.
                    const ptrdiff_t base = ((ptrdiff_t)y0 * iw + x0) * c_n + c;
                    int32_t acc[4] = {0, 0, 0, 0};
                    const int interior3 = kh == 3 && kw == 3 && ky0 == 0 && ky1 == 3 && kx0 == 0 && kx1 == 3;
                    if (nc == 4 && interior3) {
                        if (q->in.is_signed) {
                            dw4_3x3(acc, img + base, we, wo, iw, c_n, 1);
                        } else {
                            dw4_3x3(acc, img + base, we, wo, iw, c_n, 0);
                        }
                    } else if (nc == 4) {
                        if (q->in.is_signed) {
                            dw4(acc, img, base, we, wo, ky0, ky1, kx0, kx1, iw, kw, c_n, 1);
                        } else {
                            dw4(acc, img, base, we, wo, ky0, ky1, kx0, kx1, iw, kw, c_n, 0);
                        }
                    } else { // the last C % 4 channels, one at a time, masked codes as in dw4
                        for (int32_t j = 0; j < nc; j++) {
                            for (int32_t ky = ky0; ky < ky1; ky++) {
                                for (int32_t kx = kx0; kx < kx1; kx++) {
                                    const uint8_t xb = img[base + ((ptrdiff_t)ky * iw + kx) * c_n + j];
                                    const int32_t xv = q->in.is_signed ? (int32_t)(int8_t)xb : (int32_t)xb;
                                    const uint8_t wb = filter[((ptrdiff_t)ky * kw + kx) * c_n + c + j];
                                    acc[j] += xv * (int32_t)(int8_t)(uint8_t)(wb & (mask4 & 0xFFu));
                                }
                            }
                        }
                    }
                    uint8_t *orow = out_row > 0 ? (uint8_t *)output + row * out_row : NULL;
                    for (int32_t j = 0; j < nc; j++) {
                        // masked codes are multiples of 2^sh: the shift is exact; |bias + acc| checked
                        const int32_t v = (bias ? bias[c + j] : 0) + (acc[j] >> sh);
                        if (q->out.bits == 8) { // the common case: requantize and store the byte
                            orow[c + j] = (uint8_t)bp_requant(v, rq->multiplier[c + j], rq->shift[c + j],
                                                              q->act_min, q->act_max);
                        } else {
                            bp_emit(output, row, c_n, c + j, q, rq, v);
                        }
                    }
                }
            }
        }
    }
    return BP_OK;
}
