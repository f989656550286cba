// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation. ARMv7E-M DSP variant of bp_depthwise_conv2d: same symbol,
// same results bit for bit as src/ref/bp_depthwise_conv2d.c.
//
// Fast path: 8-bit inputs and weights stored at 8 bits (any view), four channels per step. Inputs
// and weights of a tap are read as words (channels are contiguous in NHWC and in the [KH][KW][C]
// filter) and split with (S|U)XTB16 into channels (0,2) and, rotated by 8, (1,3); SMLABB/SMLATT
// then accumulate each channel separately (SMLAD would add channel 0 to channel 2). A b-bit view is
// the code with its low 8-b bits cleared; the exact sum is the masked sum shifted right by 8-b.
// Other widths use the portable loop.
#include <stddef.h>

#include "bp_dsp.h"
#include "bp_kernels.h"
#include "bp_support.h"

// Four channels [c, c+4) of one output pixel over the valid taps; returns the masked sums in acc.
// |acc| <= KH*KW * xmax * 128 <= INT32_MAX (checked by the caller) before the exact shift.
// `base` is the offset of window pixel (0, 0), which may lie in the padding: only offsets of valid
// taps (ky0.., kx0..) are ever added to `img`.
static inline void dw4(int32_t acc[4], const uint8_t *img, ptrdiff_t base, const uint8_t *tap, int32_t ky0, int32_t ky1,
                       int32_t kx0, int32_t kx1, int32_t iw, int32_t kw, int32_t c_n, uint32_t mask4, int sgn) {
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (int32_t ky = ky0; ky < ky1; ky++) {
        const uint8_t *xp = img + (base + ((ptrdiff_t)ky * iw + kx0) * c_n);
        const uint8_t *wp = tap + ((ptrdiff_t)ky * kw + kx0) * c_n;
        for (int32_t kx = kx0; kx < kx1; kx++, xp += c_n, wp += c_n) {
            const uint32_t xw = bp_load32(xp), ww = bp_load32(wp) & mask4;
            // sgn is a compile-time constant at both call sites: no branch in the loop
            const uint32_t xe = sgn ? bp_sxtb16(xw) : bp_uxtb16(xw);
            const uint32_t xo = sgn ? bp_sxtb16(bp_ror(xw, 8)) : bp_uxtb16(bp_ror(xw, 8));
            const uint32_t we = bp_sxtb16(ww), wo = bp_sxtb16(bp_ror(ww, 8));
            a0 = bp_smlabb(xe, we, a0);
            a2 = bp_smlatt(xe, we, a2);
            a1 = bp_smlabb(xo, wo, a1);
            a3 = bp_smlatt(xo, wo, a3);
        }
    }
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
    const int fast = q->in.bits == 8 && q->w_stored == 8 && (int64_t)kh * kw * xmax * 128 <= INT32_MAX;
    if (!fast) {
        bp_depthwise_conv2d_generic(win, q, rq, input_dims, input, filter_dims, filter, bias, output_dims, output);
        return BP_OK;
    }
    const int32_t sh = 8 - q->w_view;
    const uint32_t mask4 = ((0xFFu << sh) & 0xFFu) * 0x01010101u;
    const int32_t c4 = c_n & ~3;
    const int32_t ih = input_dims->h, iw = input_dims->w, oh = output_dims->h, ow = output_dims->w;
    const int32_t out_row = q->out.bits == 32 ? 0 : bp_row_bytes(c_n, q->out.bits);

    for (int32_t n = 0; n < input_dims->n; n++) {
        const uint8_t *img = input + (int64_t)n * ih * iw * c_n;
        for (int32_t oy = 0; oy < oh; oy++) {
            const int32_t y0 = oy * win->stride_h - win->pad_top;
            const int32_t ky0 = y0 < 0 ? -y0 : 0, ky1 = (y0 + kh > ih) ? ih - y0 : kh;
            for (int32_t ox = 0; ox < ow; ox++) {
                const int32_t x0 = ox * win->stride_w - win->pad_left;
                const int32_t kx0 = x0 < 0 ? -x0 : 0, kx1 = (x0 + kw > iw) ? iw - x0 : kw;
                const int64_t row = ((int64_t)n * oh + oy) * ow + ox;
                // Offsets in ptrdiff_t (32-bit on Cortex-M: no 64-bit arithmetic per tap); may be
                // negative when the window starts in the padding: see dw4.
                const ptrdiff_t base = ((ptrdiff_t)y0 * iw + x0) * c_n;
                uint8_t *orow = out_row > 0 ? (uint8_t *)output + row * out_row : NULL;
                if (orow != NULL) {
                    bp_clear_row(orow, out_row);
                }
                for (int32_t c = 0; c < c4; c += 4) {
                    int32_t acc[4];
                    if (q->in.is_signed) {
                        dw4(acc, img, base + c, filter + c, ky0, ky1, kx0, kx1, iw, kw, c_n, mask4, 1);
                    } else {
                        dw4(acc, img, base + c, filter + c, ky0, ky1, kx0, kx1, iw, kw, c_n, mask4, 0);
                    }
                    for (int32_t j = 0; j < 4; j++) {
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
                for (int32_t c = c4; c < c_n; c++) {  // the last C % 4 channels, one at a time
                    int32_t acc = 0;
                    for (int32_t ky = ky0; ky < ky1; ky++) {
                        for (int32_t kx = kx0; kx < kx1; kx++) {
                            const int64_t k = (int64_t)ky * kw + kx;
                            const uint8_t xb = img[base + ((int64_t)ky * iw + kx) * c_n + c];
                            const int32_t xv = q->in.is_signed ? (int32_t)(int8_t)xb : (int32_t)xb;
                            acc += xv * ((int32_t)(int8_t)filter[k * c_n + c] >> sh);
                        }
                    }
                    bp_emit(output, row, c_n, c, q, rq, (bias ? bias[c] : 0) + acc);
                }
            }
        }
    }
    return BP_OK;
}
