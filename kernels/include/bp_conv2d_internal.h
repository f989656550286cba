// SPDX-License-Identifier: Apache-2.0
// Shared by the portable and the optimized bp_conv2d: parameter validation and the generic loop.
// Not part of the public API.
#ifndef BP_CONV2D_INTERNAL_H
#define BP_CONV2D_INTERNAL_H

#include "bp_kernels.h"
#include "bp_support.h"

// Every check of bp_conv2d, in one place, before anything is written.
static inline bp_status_t bp_conv2d_check(const bp_context_t *ctx,
                                          const bp_window_t *win,
                                          const bp_quant_t *q,
                                          const bp_requant_t *rq,
                                          const bp_dims_t *input_dims,
                                          const uint8_t *input,
                                          const bp_dims_t *filter_dims,
                                          const uint8_t *filter,
                                          const int32_t *bias,
                                          const bp_dims_t *output_dims,
                                          const void *output) {
    if (ctx == NULL || input == NULL || filter == NULL || output == NULL || !bp_dims_positive(input_dims) ||
        !bp_dims_positive(filter_dims) || !bp_dims_positive(output_dims)) {
        return BP_ERR_ARG;
    }
    bp_status_t st = bp_check_quant(q);
    if (st != BP_OK) {
        return st;
    }
    const int32_t cin = input_dims->c, cout = filter_dims->n, kh = filter_dims->h, kw = filter_dims->w;
    if (filter_dims->c != cin || output_dims->c != cout || output_dims->n != input_dims->n) {
        return BP_ERR_SHAPE;
    }
    st = bp_check_window(win, input_dims->h, input_dims->w, kh, kw, output_dims->h, output_dims->w);
    if (st != BP_OK) {
        return st;
    }
    st = bp_check_acc((int64_t)kh * kw * cin, &q->in, q->w_view, bias, cout);
    if (st != BP_OK) {
        return st;
    }
    if (q->out.bits != 32 && (st = bp_check_requant(rq, cout)) != BP_OK) {
        return st;
    }
    const int32_t need = bp_conv2d_get_buffer_size(filter_dims);
    if (need < 0 || ctx->buf == NULL || ctx->size < need || ((uintptr_t)ctx->buf & 3u) != 0) {
        return BP_ERR_BUFFER;
    }
    return BP_OK;
}

// Input pixel (iy, ix) of image `img`, or NULL when it lies in the zero padding.
static inline const uint8_t *bp_conv2d_pixel(const uint8_t *img,
                                             const bp_dims_t *in,
                                             int32_t row_bytes,
                                             int32_t iy,
                                             int32_t ix) {
    return (iy < 0 || iy >= in->h || ix < 0 || ix >= in->w) ? NULL : img + ((int64_t)iy * in->w + ix) * row_bytes;
}

// The portable algorithm for output rows [row_begin, row_end) of image n: unpack each input patch
// once into int16 (padding reads 0), then one dot product per output channel.
static inline void bp_conv2d_generic(int16_t *patch,
                                     const bp_window_t *win,
                                     const bp_quant_t *q,
                                     const bp_requant_t *rq,
                                     const bp_dims_t *input_dims,
                                     const uint8_t *input,
                                     const bp_dims_t *filter_dims,
                                     const uint8_t *filter,
                                     const int32_t *bias,
                                     const bp_dims_t *output_dims,
                                     void *output) {
    const int32_t cin = input_dims->c, cout = filter_dims->n, kh = filter_dims->h, kw = filter_dims->w;
    const int32_t k = kh * kw * cin;
    const int32_t in_row = bp_row_bytes(cin, q->in.bits);
    const int32_t w_row = bp_row_bytes(k, q->w_stored);
    const int32_t out_row = q->out.bits == 32 ? 0 : bp_row_bytes(cout, q->out.bits);
    const int32_t oh = output_dims->h, ow = output_dims->w;
    for (int32_t n = 0; n < input_dims->n; n++) {
        const uint8_t *img = input + (int64_t)n * input_dims->h * input_dims->w * in_row;
        for (int32_t oy = 0; oy < oh; oy++) {
            for (int32_t ox = 0; ox < ow; ox++) {
                int16_t *p = patch;
                for (int32_t ky = 0; ky < kh; ky++) {
                    for (int32_t kx = 0; kx < kw; kx++) {
                        const uint8_t *px = bp_conv2d_pixel(img, input_dims, in_row,
                                                            oy * win->stride_h - win->pad_top + ky,
                                                            ox * win->stride_w - win->pad_left + kx);
                        for (int32_t c = 0; c < cin; c++) {
                            *p++ = px ? (int16_t)bp_read(px, c, q->in.bits, q->in.is_signed) : 0;
                        }
                    }
                }
                const int64_t row = ((int64_t)n * oh + oy) * ow + ox;
                if (out_row > 0) {
                    bp_clear_row((uint8_t *)output + row * out_row, out_row);
                }
                for (int32_t o = 0; o < cout; o++) {
                    // |acc| <= |bias[o]| + k * xmax * 2^(w_view-1) <= INT32_MAX (bp_check_acc).
                    const int32_t acc = (bias ? bias[o] : 0) +
                                        bp_dot_patch(patch, filter + (int64_t)o * w_row, k, q->w_stored, q->w_view, q->w_round);
                    bp_emit(output, row, cout, o, q, rq, acc);
                }
            }
        }
    }
}

#endif // BP_CONV2D_INTERNAL_H
