// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation.
#include "bp_kernels.h"
#include "bp_support.h"

bp_status_t bp_avg_pool2d(const bp_window_t *win,
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
    if (fmt->is_signed) {
        return BP_ERR_BITS;
    }
    if (output_dims->c != input_dims->c || output_dims->n != input_dims->n) {
        return BP_ERR_SHAPE;
    }
    st = bp_check_window(win, input_dims->h, input_dims->w, kernel_h, kernel_w, output_dims->h, output_dims->w);
    if (st != BP_OK) {
        return st;
    }
    if (win->pad_top || win->pad_bottom || win->pad_left || win->pad_right) {
        return BP_ERR_SHAPE;
    }
    const int64_t count = (int64_t)kernel_h * kernel_w;
    if (count * 255 > INT32_MAX) {
        return BP_ERR_ACC_RANGE;
    }
    const int32_t n_win = (int32_t)count;
    const int32_t ih = input_dims->h, iw = input_dims->w, oh = output_dims->h, ow = output_dims->w;
    const int32_t c_n = input_dims->c, row_b = bp_row_bytes(c_n, fmt->bits);
    for (int32_t n = 0; n < input_dims->n; n++) {
        const uint8_t *img = input + (int64_t)n * ih * iw * row_b;
        for (int32_t oy = 0; oy < oh; oy++) {
            for (int32_t ox = 0; ox < ow; ox++) {
                uint8_t *orow = output + (((int64_t)n * oh + oy) * ow + ox) * row_b;
                bp_clear_row(orow, row_b);
                for (int32_t c = 0; c < c_n; c++) {
                    int32_t sum = 0; // <= KH*KW*255, checked above
                    for (int32_t y = oy * win->stride_h; y < oy * win->stride_h + kernel_h; y++) {
                        for (int32_t x = ox * win->stride_w; x < ox * win->stride_w + kernel_w; x++) {
                            sum += bp_read(img + ((int64_t)y * iw + x) * row_b, c, fmt->bits, 0);
                        }
                    }
                    bp_write(orow, c, fmt->bits, (sum + n_win / 2) / n_win);
                }
            }
        }
    }
    return BP_OK;
}
