// SPDX-License-Identifier: Apache-2.0
// Inline helpers shared by the kernels: packed reads/writes, requantization, parameter checks.
// Not part of the public API (bp_kernels.h).
#ifndef BP_SUPPORT_H
#define BP_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "bp_types.h"

// Requantization relies on >> of a negative int64 being an arithmetic (flooring) shift.
// C leaves this implementation-defined; GCC, Clang and Arm Compiler all define it so.
_Static_assert(((int64_t)-3 >> 1) == -2, "bitpath needs arithmetic right shift of signed integers");

#define BP_SHIFT_MAX 62

// Bytes of a packed row of n values. Rows are < 2^28 values, so n * bits fits in 32 bits; a shift,
// not a division (a 64-bit division is a library call on Cortex-M, and this runs per output value).
static inline int32_t bp_row_bytes(int32_t n, int32_t bits) { return (int32_t)(((uint32_t)n * (uint32_t)bits + 7u) >> 3); }

// Value i of a packed row, LSB first: byte i*b/8, bits (i*b)%8 .. +b-1. Sign-extended when is_signed.
static inline int32_t bp_read(const uint8_t *row, int32_t i, int32_t bits, int32_t is_signed) {
    if (bits == 8) {
        return is_signed ? (int32_t)(int8_t)row[i] : (int32_t)row[i];
    }
    const int32_t bit = i * bits;
    const int32_t code = (row[bit >> 3] >> (bit & 7)) & ((1 << bits) - 1);
    return (is_signed && code >= (1 << (bits - 1))) ? code - (1 << bits) : code;
}

// Store value v (already inside the b-bit range) as value i of a packed row. The row's bytes must
// have been zeroed first (bp_clear_row) so that padding bits stay zero.
static inline void bp_write(uint8_t *row, int32_t i, int32_t bits, int32_t v) {
    if (bits == 8) {
        row[i] = (uint8_t)v;
        return;
    }
    const int32_t bit = i * bits;
    row[bit >> 3] |= (uint8_t)((v & ((1 << bits) - 1)) << (bit & 7));
}

static inline void bp_clear_row(uint8_t *row, int32_t nbytes) {
    for (int32_t k = 0; k < nbytes; k++) {
        row[k] = 0;
    }
}

// Nested weight view of a code stored at `stored` bits (bp_quant_t.w_round): the top `view` bits
// (floor division by 2^k, k = stored - view), or, when round, the code rounded half up to the view's
// grid with saturation at the largest code, so the view stays inside its signed `view`-bit range.
static inline int32_t bp_view(int32_t code, int32_t stored, int32_t view, int32_t round) {
    const int32_t k = stored - view;
    if (round && k > 0) {
        const int32_t hi = (1 << (stored - 1)) - 1, t = code + (1 << (k - 1));
        return (t > hi ? hi : t) >> k;
    }
    return code >> k;
}

// Value i of a packed weight row, read at its nested view.
static inline int32_t bp_read_weight(const uint8_t *row, int32_t i, int32_t stored, int32_t view, int32_t round) {
    return bp_view(bp_read(row, i, stored, 1), stored, view, round);
}

// Round-half-up dyadic requantization. |acc*m| <= 2^62 and r <= 2^61: the int64 sum cannot overflow.
//
// Computed as ((p >> (s-1)) + 1) >> 1, which equals (p + 2^(s-1)) >> s for s >= 1 (floor identity).
// When s >= 33 (every scale below 1/4 with a 31-bit multiplier), p >> (s-1) only needs the high word
// of the 64-bit product: floor((hi*2^32 + lo) / 2^(s-1)) = hi >> (s-33) because 0 <= lo < 2^32.
// That is one SMULL and two shifts on Cortex-M instead of a variable 64-bit shift per output.
static inline int32_t bp_requant(int32_t acc, int32_t m, int32_t s, int32_t lo, int32_t hi) {
    const int64_t p = (int64_t)acc * (int64_t)m;
    int64_t v;
    if (s >= 33) {
        const int32_t q = (int32_t)(p >> 32) >> (s - 33); // |q| <= 2^30: q + 1 cannot overflow
        v = (q + 1) >> 1;
    } else if (s > 0) {
        v = ((p >> (s - 1)) + 1) >> 1;
    } else {
        v = p;
    }
    return v < lo ? lo : (v > hi ? hi : (int32_t)v);
}

static inline int32_t bp_valid_bits(int32_t b) { return b == 2 || b == 4 || b == 8; }

static inline int32_t bp_act_min(const bp_act_t *f) { return f->is_signed ? -(1 << (f->bits - 1)) : 0; }

static inline int32_t bp_act_max(const bp_act_t *f) {
    return f->is_signed ? (1 << (f->bits - 1)) - 1 : (1 << f->bits) - 1;
}

// Packed 2/4/8-bit activation format, signed or not.
static inline bp_status_t bp_check_act(const bp_act_t *f) {
    if (f == NULL) {
        return BP_ERR_ARG;
    }
    if (!bp_valid_bits(f->bits) || (f->is_signed != 0 && f->is_signed != 1)) {
        return BP_ERR_BITS;
    }
    return BP_OK;
}

// Output clamp [lo, hi] inside the format's range.
static inline bp_status_t bp_check_clamp(const bp_act_t *f, int32_t lo, int32_t hi) {
    return (lo < bp_act_min(f) || hi > bp_act_max(f) || lo > hi) ? BP_ERR_QUANT : BP_OK;
}

// Layer widths: packed input, weights view <= stored, output packed or int32 logits.
static inline bp_status_t bp_check_quant(const bp_quant_t *q) {
    if (q == NULL) {
        return BP_ERR_ARG;
    }
    bp_status_t st = bp_check_act(&q->in);
    if (st != BP_OK) {
        return st;
    }
    if (!bp_valid_bits(q->w_stored) || !bp_valid_bits(q->w_view) || q->w_view > q->w_stored) {
        return BP_ERR_BITS;
    }
    if (q->w_round != 0 && q->w_round != 1) {
        return BP_ERR_QUANT;
    }
    if (q->out.bits == 32) {
        return q->out.is_signed == 1 ? BP_OK : BP_ERR_BITS;
    }
    st = bp_check_act(&q->out);
    return st != BP_OK ? st : bp_check_clamp(&q->out, q->act_min, q->act_max);
}

static inline bp_status_t bp_check_requant(const bp_requant_t *rq, int32_t channels) {
    if (rq == NULL || rq->multiplier == NULL || rq->shift == NULL) {
        return BP_ERR_ARG;
    }
    for (int32_t c = 0; c < channels; c++) {
        if (rq->shift[c] < 0 || rq->shift[c] > BP_SHIFT_MAX) {
            return BP_ERR_QUANT;
        }
    }
    return BP_OK;
}

// Worst-case accumulator |bias[o]| + K * xmax * wmax must fit int32 for every channel, so that
// acc = bias + sum can never overflow. bias may be NULL (zero).
static inline bp_status_t bp_check_acc(int64_t k, const bp_act_t *in, int32_t w_view, const int32_t *bias, int32_t n) {
    const int64_t xmax = in->is_signed ? ((int64_t)1 << (in->bits - 1)) : (((int64_t)1 << in->bits) - 1);
    const int64_t wmax = (int64_t)1 << (w_view - 1);
    const int64_t products = k * xmax * wmax;
    if (products > INT32_MAX) {
        return BP_ERR_ACC_RANGE;
    }
    for (int32_t o = 0; bias != NULL && o < n; o++) {
        const int64_t b = bias[o] < 0 ? -(int64_t)bias[o] : (int64_t)bias[o];
        if (products + b > INT32_MAX) {
            return BP_ERR_ACC_RANGE;
        }
    }
    return BP_OK;
}

// Dot product of an unpacked patch with the nested view of one packed weight row.
// |sum| <= k * xmax * 2^(view-1), checked by bp_check_acc before any call.
static inline int32_t bp_dot_patch(const int16_t *patch, const uint8_t *wrow, int32_t k, int32_t stored, int32_t view,
                                   int32_t round) {
    const int32_t sh = stored - view;
    int32_t sum = 0;
    if (round && sh > 0) {
        for (int32_t i = 0; i < k; i++) {
            sum += patch[i] * bp_read_weight(wrow, i, stored, view, 1);
        }
    } else if (stored == 8) {
        for (int32_t i = 0; i < k; i++) {
            sum += patch[i] * ((int32_t)(int8_t)wrow[i] >> sh);
        }
    } else if (stored == 4) {
        int32_t i = 0;
        for (; i + 1 < k; i += 2) {
            const uint8_t byte = wrow[i >> 1];
            // Low nibble: move it to the top of an int8 to sign-extend, then shift down (4 + view drop).
            sum += patch[i] * ((int32_t)(int8_t)(uint8_t)(byte << 4) >> (4 + sh));
            sum += patch[i + 1] * ((int32_t)(int8_t)byte >> (4 + sh));
        }
        if (i < k) {
            sum += patch[i] * bp_read_weight(wrow, i, 4, view, 0);
        }
    } else {
        for (int32_t i = 0; i < k; i++) {
            sum += patch[i] * bp_read_weight(wrow, i, stored, view, 0);
        }
    }
    return sum;
}

static inline int32_t bp_dims_positive(const bp_dims_t *d) {
    return d != NULL && d->n > 0 && d->h > 0 && d->w > 0 && d->c > 0;
}

// Window geometry: strides/padding valid, the window fits, and out_h/out_w match exactly.
static inline bp_status_t bp_check_window(const bp_window_t *win,
                                          int32_t in_h,
                                          int32_t in_w,
                                          int32_t kh,
                                          int32_t kw,
                                          int32_t out_h,
                                          int32_t out_w) {
    if (win == NULL) {
        return BP_ERR_ARG;
    }
    if (win->stride_h < 1 || win->stride_w < 1 || win->pad_top < 0 || win->pad_bottom < 0 || win->pad_left < 0 ||
        win->pad_right < 0 || kh < 1 || kw < 1) {
        return BP_ERR_SHAPE;
    }
    const int64_t ph = (int64_t)in_h + win->pad_top + win->pad_bottom;
    const int64_t pw = (int64_t)in_w + win->pad_left + win->pad_right;
    if (kh > ph || kw > pw) {
        return BP_ERR_SHAPE;
    }
    if ((ph - kh) / win->stride_h + 1 != out_h || (pw - kw) / win->stride_w + 1 != out_w) {
        return BP_ERR_SHAPE;
    }
    return BP_OK;
}

// Store one output value: packed b-bit rows, or int32 logits.
static inline void bp_store(void *output, int64_t row, int32_t row_len, int32_t i, const bp_act_t *f, int32_t v) {
    if (f->bits == 32) {
        ((int32_t *)output)[row * row_len + i] = v;
    } else {
        bp_write((uint8_t *)output + row * bp_row_bytes(row_len, f->bits), i, f->bits, v);
    }
}

// Dot product of a packed input row with the nested view of a packed weight row (k values).
// |sum| <= k * xmax * 2^(view-1), checked by bp_check_acc before any call.
static inline int32_t bp_dot_row(const uint8_t *x, const bp_act_t *in, const uint8_t *wrow, int32_t k, int32_t stored,
                                 int32_t view, int32_t round) {
    int32_t sum = 0;
    for (int32_t i = 0; i < k; i++) {
        sum += bp_read(x, i, in->bits, in->is_signed) * bp_read_weight(wrow, i, stored, view, round);
    }
    return sum;
}

// Every check of bp_fully_connected, before anything is written.
static inline bp_status_t bp_fully_connected_check(const bp_quant_t *q, const bp_requant_t *rq, int32_t batches,
                                                   int32_t in_features, int32_t out_features, const uint8_t *input,
                                                   const uint8_t *filter, const int32_t *bias, const void *output) {
    if (input == NULL || filter == NULL || output == NULL || batches < 1 || in_features < 1 || out_features < 1) {
        return BP_ERR_ARG;
    }
    bp_status_t st = bp_check_quant(q);
    if (st != BP_OK) {
        return st;
    }
    st = bp_check_acc(in_features, &q->in, q->w_view, bias, out_features);
    if (st != BP_OK) {
        return st;
    }
    return q->out.bits != 32 ? bp_check_requant(rq, out_features) : BP_OK;
}

// Requantize (or pass through as int32 logits) and store value i of output row `row`.
static inline void bp_emit(void *output, int64_t row, int32_t row_len, int32_t i, const bp_quant_t *q,
                           const bp_requant_t *rq, int32_t acc) {
    const int32_t v =
        q->out.bits == 32 ? acc : bp_requant(acc, rq->multiplier[i], rq->shift[i], q->act_min, q->act_max);
    bp_store(output, row, row_len, i, &q->out, v);
}

// Every check of bp_depthwise_conv2d, before anything is written.
static inline bp_status_t bp_depthwise_conv2d_check(const bp_window_t *win,
                                                    const bp_quant_t *q,
                                                    const bp_requant_t *rq,
                                                    const bp_dims_t *input_dims,
                                                    const uint8_t *input,
                                                    const bp_dims_t *filter_dims,
                                                    const uint8_t *filter,
                                                    const int32_t *bias,
                                                    const bp_dims_t *output_dims,
                                                    const void *output) {
    if (input == NULL || filter == NULL || output == NULL || !bp_dims_positive(input_dims) ||
        !bp_dims_positive(filter_dims) || !bp_dims_positive(output_dims)) {
        return BP_ERR_ARG;
    }
    bp_status_t st = bp_check_quant(q);
    if (st != BP_OK) {
        return st;
    }
    const int32_t c_n = input_dims->c;
    if (filter_dims->n != 1 || filter_dims->c != c_n || output_dims->c != c_n || output_dims->n != input_dims->n) {
        return BP_ERR_SHAPE;
    }
    st = bp_check_window(win, input_dims->h, input_dims->w, filter_dims->h, filter_dims->w, output_dims->h,
                         output_dims->w);
    if (st != BP_OK) {
        return st;
    }
    st = bp_check_acc((int64_t)filter_dims->h * filter_dims->w, &q->in, q->w_view, bias, c_n);
    if (st != BP_OK) {
        return st;
    }
    return q->out.bits != 32 ? bp_check_requant(rq, c_n) : BP_OK;
}

// The portable depthwise algorithm (any widths).
static inline void bp_depthwise_conv2d_generic(const bp_window_t *win,
                                               const bp_quant_t *q,
                                               const bp_requant_t *rq,
                                               const bp_dims_t *input_dims,
                                               const uint8_t *input,
                                               const bp_dims_t *filter_dims,
                                               const uint8_t *filter,
                                               const int32_t *bias,
                                               const bp_dims_t *output_dims,
                                               void *output) {
    const int32_t c_n = input_dims->c, kh = filter_dims->h, kw = filter_dims->w;
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
                                   bp_read_weight(tap, c, q->w_stored, q->w_view, q->w_round);
                        }
                    }
                    bp_emit(output, row, c_n, c, q, rq, acc);
                }
            }
        }
    }
}

// Every check of bp_max_pool2d, before anything is written.
static inline bp_status_t bp_max_pool2d_check(const bp_window_t *win,
                                             const bp_act_t *fmt,
                                             int32_t kernel_h,
                                             int32_t kernel_w,
                                             const bp_dims_t *input_dims,
                                             const uint8_t *input,
                                             const bp_dims_t *output_dims,
                                             const uint8_t *output) {
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
    return BP_OK;
}

// The portable max pool (any format), after bp_max_pool2d_check.
static inline void bp_max_pool2d_generic(const bp_window_t *win,
                                             const bp_act_t *fmt,
                                             int32_t kernel_h,
                                             int32_t kernel_w,
                                             const bp_dims_t *input_dims,
                                             const uint8_t *input,
                                             const bp_dims_t *output_dims,
                                             uint8_t *output) {
    const int32_t ih = input_dims->h, iw = input_dims->w, oh = output_dims->h, ow = output_dims->w;
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
}

#endif // BP_SUPPORT_H
