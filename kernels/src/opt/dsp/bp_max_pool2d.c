// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation. ARMv7E-M DSP variant of bp_max_pool2d: same symbol, same
// results bit for bit as src/ref/bp_max_pool2d.c.
//
// Fast path: 8-bit tensors (signed or not) with C % 4 == 0: four channels per word, the running maximum
// kept with USUB8/SSUB8 + SEL. Packed 2/4-bit tensors hold several channels per byte: portable loop.
#include <string.h>

#include "bp_dsp.h"
#include "bp_kernels.h"
#include "bp_support.h"

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
    const int32_t c_n = input_dims->c;
    if (fmt->bits != 8 || (c_n & 3) != 0) {
        bp_max_pool2d_generic(win, fmt, kernel_h, kernel_w, input_dims, input, output_dims, output);
        return BP_OK;
    }
    const int32_t ih = input_dims->h, iw = input_dims->w, oh = output_dims->h, ow = output_dims->w;
    for (int32_t n = 0; n < input_dims->n; n++) {
        const uint8_t *img = input + (int64_t)n * ih * iw * c_n;
        for (int32_t oy = 0; oy < oh; oy++) {
            const int32_t y0 = oy * win->stride_h - win->pad_top;
            const int32_t ya = y0 < 0 ? 0 : y0, yb = (y0 + kernel_h > ih) ? ih : y0 + kernel_h;
            for (int32_t ox = 0; ox < ow; ox++) {
                const int32_t x0 = ox * win->stride_w - win->pad_left;
                const int32_t xa = x0 < 0 ? 0 : x0, xb = (x0 + kernel_w > iw) ? iw : x0 + kernel_w;
                uint8_t *orow = output + (((int64_t)n * oh + oy) * ow + ox) * c_n;
                for (int32_t c = 0; c < c_n; c += 4) {
                    // the check guarantees at least one valid input per window: (ya, xa) is one
                    uint32_t best = bp_load32(img + ((int64_t)ya * iw + xa) * c_n + c);
                    for (int32_t y = ya; y < yb; y++) {
                        const uint8_t *p = img + ((int64_t)y * iw + xa) * c_n + c;
                        for (int32_t x = xa; x < xb; x++, p += c_n) {
                            const uint32_t v = bp_load32(p);
                            best = fmt->is_signed ? bp_max_s8x4(best, v) : bp_max_u8x4(best, v);
                        }
                    }
                    memcpy(orow + c, &best, sizeof best);
                }
            }
        }
    }
    return BP_OK;
}
