// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation. ARMv7E-M DSP variant of bp_max_pool2d: same symbol, same
// results bit for bit as src/ref/bp_max_pool2d.c.
//
// Fast path: 8-bit tensors (signed or not) with C % 4 == 0: four channels per word, the running maximum
// kept with USUB8/SSUB8 + SEL. Unsigned packed 4/2-bit tensors whose pixel rows fill whole words
// (C * bits % 32 == 0) are split into byte lanes by masks (2 or 4 planes per word: every field of a
// plane sits in its own byte), maximised the same way and merged back. Anything else: portable loop.
#include <string.h>

#include "bp_dsp.h"
#include "bp_kernels.h"
#include "bp_support.h"

// Field-wise maximum of two words of 8-bit (signed or not) or unsigned 4-bit / 2-bit fields.
static inline uint32_t max_word(uint32_t a, uint32_t b, int32_t bits, int32_t sgn) {
    if (bits == 8) {
        return sgn ? bp_max_s8x4(a, b) : bp_max_u8x4(a, b);
    }
    const uint32_t m = bits == 4 ? 0x0F0F0F0Fu : 0x03030303u;
    uint32_t r = 0;
    for (int32_t sh = 0; sh < 8; sh += bits) {
        r |= bp_max_u8x4((a >> sh) & m, (b >> sh) & m) << sh;
    }
    return r;
}

// One output pixel: the maximum over the valid window [ya, yb) x [xa, xb) of each word of the row.
// Inlined per (bits, signedness) so max_word has no branches left.
static inline void pool_pixel(uint8_t *orow, const uint8_t *img, int32_t iw, int32_t row_b, int32_t ya, int32_t yb,
                              int32_t xa, int32_t xb, int32_t bits, int32_t sgn) {
    for (int32_t b = 0; b < row_b; b += 4) {
        // the check guarantees at least one valid input per window: (ya, xa) is one
        uint32_t best = bp_load32(img + ((int64_t)ya * iw + xa) * row_b + b);
        for (int32_t y = ya; y < yb; y++) {
            const uint8_t *p = img + ((int64_t)y * iw + xa) * row_b + b;
            for (int32_t x = xa; x < xb; x++, p += row_b) {
                best = max_word(best, bp_load32(p), bits, sgn);
            }
        }
        memcpy(orow + b, &best, sizeof best);
    }
}

bp_status_t bp_max_pool2d(const bp_window_t *win,
                          const bp_act_t *fmt,
                          int32_t kernel_h,
                          int32_t kernel_w,
                          const bp_dims_t *input_dims,
                          const uint8_t *input,
                          const bp_dims_t *output_dims,
                          uint8_t *output) {
    const bp_status_t st = bp_max_pool2d_check(win, fmt, kernel_h, kernel_w, input_dims, input, output_dims, output);
    if (st != BP_OK) {
        return st;
    }
    const int32_t c_n = input_dims->c, bits = fmt->bits, sgn = fmt->is_signed;
    const int32_t row_b = bp_row_bytes(c_n, bits);
    const int fast = bits == 8 ? (c_n & 3) == 0 : (!fmt->is_signed && (c_n * bits) % 32 == 0);
    if (!fast) {
        bp_max_pool2d_generic(win, fmt, kernel_h, kernel_w, input_dims, input, output_dims, output);
        return BP_OK;
    }
    const int32_t ih = input_dims->h, iw = input_dims->w, oh = output_dims->h, ow = output_dims->w;
    for (int32_t n = 0; n < input_dims->n; n++) {
        const uint8_t *img = input + (int64_t)n * ih * iw * row_b;
        for (int32_t oy = 0; oy < oh; oy++) {
            const int32_t y0 = oy * win->stride_h - win->pad_top;
            const int32_t ya = y0 < 0 ? 0 : y0, yb = (y0 + kernel_h > ih) ? ih : y0 + kernel_h;
            for (int32_t ox = 0; ox < ow; ox++) {
                const int32_t x0 = ox * win->stride_w - win->pad_left;
                const int32_t xa = x0 < 0 ? 0 : x0, xb = (x0 + kernel_w > iw) ? iw : x0 + kernel_w;
                uint8_t *orow = output + (((int64_t)n * oh + oy) * ow + ox) * row_b;
                if (bits == 8) {
                    pool_pixel(orow, img, iw, row_b, ya, yb, xa, xb, 8, sgn);
                } else if (bits == 4) {
                    pool_pixel(orow, img, iw, row_b, ya, yb, xa, xb, 4, 0);
                } else {
                    pool_pixel(orow, img, iw, row_b, ya, yb, xa, xb, 2, 0);
                }
            }
        }
    }
    return BP_OK;
}
