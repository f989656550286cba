// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation.
#include "bp_kernels.h"
#include "bp_support.h"

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
    if (input == NULL || filter == NULL || output == NULL || !bp_dims_positive(input_dims) ||
        !bp_dims_positive(filter_dims) || !bp_dims_positive(output_dims)) {
        return BP_ERR_ARG;
    }
    bp_status_t st = bp_check_quant(q);
    if (st != BP_OK) {
        return st;
    }
    const int32_t c_n = input_dims->c, kh = filter_dims->h, kw = filter_dims->w;
    if (filter_dims->n != 1 || filter_dims->c != c_n || output_dims->c != c_n || output_dims->n != input_dims->n) {
        return BP_ERR_SHAPE;
    }
    st = bp_check_window(win, input_dims->h, input_dims->w, kh, kw, output_dims->h, output_dims->w);
    if (st != BP_OK) {
        return st;
    }
    st = bp_check_acc((int64_t)kh * kw, &q->in, q->w_view, bias, c_n);
    if (st != BP_OK) {
        return st;
    }
    if (q->out.bits != 32 && (st = bp_check_requant(rq, c_n)) != BP_OK) {
        return st;
    }

    const int32_t in_row = bp_row_bytes(c_n, q->in.bits);
    const int32_t tap_row = bp_row_bytes(c_n, q->w_stored);
    const int32_t out_row = q->out.bits == 32 ? 0 : bp_row_bytes(c_n, q->out.bits);
    const int32_t ih = input_dims->h, iw = input_dims->w, oh = output_dims->h, ow = output_dims->w;

    for (int32_t n = 0; n < input_dims->n; n++) {
        const uint8_t *img = input + (int64_t)n * ih * iw * in_row;
        for (int32_t oy = 0; oy < oh; oy++) {
            for (int32_t ox = 0; ox < ow; ox++) {
                const int64_t row = ((int64_t)n * oh + oy) * ow + ox;
                if (out_row > 0) {
                    bp_clear_row((uint8_t *)output + row * out_row, out_row);
                }
                for (int32_t c = 0; c < c_n; c++) {
                    // |acc| <= |bias[c]| + KH*KW * xmax * 2^(w_view-1) <= INT32_MAX (bp_check_acc).
                    int32_t acc = bias ? bias[c] : 0;
                    for (int32_t ky = 0; ky < kh; ky++) {
                        const int32_t iy = oy * win->stride_h - win->pad_top + ky;
                        if (iy < 0 || iy >= ih) {
                            continue;
                        }
                        for (int32_t kx = 0; kx < kw; kx++) {
                            const int32_t ix = ox * win->stride_w - win->pad_left + kx;
                            if (ix < 0 || ix >= iw) {
                                continue;
                            }
                            const uint8_t *px = img + ((int64_t)iy * iw + ix) * in_row;
                            const uint8_t *tap = filter + ((int64_t)ky * kw + kx) * tap_row;
                            acc += bp_read(px, c, q->in.bits, q->in.is_signed) *
                                   bp_read_weight(tap, c, q->w_stored, q->w_view);
                        }
                    }
                    const int32_t v = q->out.bits == 32
                                          ? acc
                                          : bp_requant(acc, rq->multiplier[c], rq->shift[c], q->act_min, q->act_max);
                    bp_store(output, row, c_n, c, &q->out, v);
                }
            }
        }
    }
    return BP_OK;
}
