// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation.
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
    if (input == NULL || output == NULL || !bp_dims_positive(input_dims) || !bp_dims_positive(output_dims)) {
        return BP_ERR_ARG;
    }
    bp_status_t st = bp_check_act(fmt);
    if (st != BP_OK) {
        return st;
    }
    if (output_dims->c != input_dims->c || output_dims->n != input_dims->n) {
        return BP_ERR_SHAPE;
    }
    st = bp_check_window(win, input_dims->h, input_dims->w, kernel_h, kernel_w, output_dims->h, output_dims->w);
    if (st != BP_OK) {
        return st;
    }
    const int32_t ih = input_dims->h, iw = input_dims->w, oh = output_dims->h, ow = output_dims->w;
    // Every window must hold at least one real input (PyTorch requires padding <= kernel/2).
    for (int32_t oy = 0; oy < oh; oy++) {
        const int32_t y0 = oy * win->stride_h - win->pad_top;
        if (y0 + kernel_h <= 0 || y0 >= ih) {
            return BP_ERR_SHAPE;
        }
    }
    for (int32_t ox = 0; ox < ow; ox++) {
        const int32_t x0 = ox * win->stride_w - win->pad_left;
        if (x0 + kernel_w <= 0 || x0 >= iw) {
            return BP_ERR_SHAPE;
        }
    }
    const int32_t c_n = input_dims->c, row_b = bp_row_bytes(c_n, fmt->bits);
    for (int32_t n = 0; n < input_dims->n; n++) {
        const uint8_t *img = input + (int64_t)n * ih * iw * row_b;
        for (int32_t oy = 0; oy < oh; oy++) {
            const int32_t y0 = oy * win->stride_h - win->pad_top;
            for (int32_t ox = 0; ox < ow; ox++) {
                const int32_t x0 = ox * win->stride_w - win->pad_left;
                uint8_t *orow = output + (((int64_t)n * oh + oy) * ow + ox) * row_b;
                bp_clear_row(orow, row_b);
                for (int32_t c = 0; c < c_n; c++) {
                    int32_t best = INT32_MIN;
                    for (int32_t y = y0 < 0 ? 0 : y0; y < y0 + kernel_h && y < ih; y++) {
                        for (int32_t x = x0 < 0 ? 0 : x0; x < x0 + kernel_w && x < iw; x++) {
                            const int32_t v = bp_read(img + ((int64_t)y * iw + x) * row_b, c, fmt->bits, fmt->is_signed);
                            best = v > best ? v : best;
                        }
                    }
                    bp_write(orow, c, fmt->bits, best);
                }
            }
        }
    }
    return BP_OK;
}
