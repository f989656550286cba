// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation. ARMv7E-M DSP variant of bp_depthwise_conv2d: same symbol,
// same results bit for bit as src/ref/bp_depthwise_conv2d.c.
//
// Fast path: 8-bit inputs (signed or not), weights at any storage width and view, kernels of at most
// BP_DW_TAPS taps, four channels per step. The loop runs over groups of four channels outside and
// pixels inside. Once per group, the nested weight views of every tap are read and packed as int16
// pairs for channels (0,2) and (1,3), and the group's bias and requantization constants are set
// aside, so a pixel costs per tap one input load, two (S|U)XTB16 (bytes 0,2 and, rotated by 8, 1,3)
// and four SMLABB/SMLATT (each channel accumulates separately: SMLAD would add channel 0 to channel 2),
// with the bias as the accumulators' start. Interior pixels of a 3x3 kernel run fully unrolled.
//
// Requantization of 8-bit outputs when every shift s is >= 33 (scales below 1/4): with the 64-bit
// product p = acc*M and hi = p >> 32, bp_requant's ((p >> (s-1)) + 1) >> 1 is ((hi >> (s-33)) + 1) >> 1
// = (hi + 2^(s-33)) >> (s-32) (floor(floor(y)/2) = floor(y/2)), that is one SMMLA (hi + round) and one
// ASR, then USAT #8 when the clamp is the full 0..255 (else a compare each side). |hi| <= 2^30 and the
// rounding term <= 2^29, so nothing overflows. Other shifts and output widths use bp_emit.
// Other input widths, and the last C % 4 channels, use the portable algorithm.
#include <stddef.h>

#include "bp_dsp.h"
#include "bp_kernels.h"
#include "bp_support.h"

#define BP_DW_TAPS 49 // up to 7x7: 392 bytes of packed weights on the stack

typedef struct {
    uint32_t e; // views of channels 0 (bits 15..0) and 2 (bits 31..16), int16 each
    uint32_t o; // channels 1 and 3
} dw_taps_t;

typedef struct {
    int32_t mult; // M
    int32_t rnd;  // 2^(s-33)
    int32_t sh;   // s - 32
} dw_rq_t;

enum { DW_GEN = 0, DW_U8 = 1, DW_C8 = 2 }; // bp_emit; 8-bit full 0..255; 8-bit with any clamp

// One 8-bit output value from the fast constants (mode DW_U8 or DW_C8, every s >= 33).
static inline int32_t dw_rq(int32_t acc, const dw_rq_t *p, int mode, int32_t lo, int32_t hi) {
    const int32_t v = bp_smmla(acc, p->mult, p->rnd) >> p->sh;
    if (mode == DW_U8) {
        return bp_usat8(v);
    }
    return v < lo ? lo : (v > hi ? hi : v);
}

// Accumulate four channels of tap word xw (4 input bytes) with the packed weights w.
#define BP_DW_MAC(xw, w)                                                                                   \
    do {                                                                                                   \
        const uint32_t xe_ = sgn ? bp_sxtb16(xw) : bp_uxtb16(xw);                                          \
        const uint32_t xo_ = sgn ? bp_sxtb16_ror8(xw) : bp_uxtb16_ror8(xw);                                \
        a0 = bp_smlabb(xe_, (w).e, a0);                                                                    \
        a2 = bp_smlatt(xe_, (w).e, a2);                                                                    \
        a1 = bp_smlabb(xo_, (w).o, a1);                                                                    \
        a3 = bp_smlatt(xo_, (w).o, a3);                                                                    \
    } while (0)

// Four channels of one output pixel over the valid taps [ky0,ky1) x [kx0,kx1). `base` is the offset
// of window pixel (0, 0), which may lie in the padding: only offsets of valid taps are added to `img`.
// |acc| <= |bias| + KH*KW * xmax * wmax <= INT32_MAX (bp_check_acc) at every step.
static inline void dw4(int32_t acc[4], const uint8_t *img, ptrdiff_t base, const dw_taps_t *w, int32_t ky0,
                       int32_t ky1, int32_t kx0, int32_t kx1, int32_t iw, int32_t kw, int32_t c_n, int sgn) {
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (int32_t ky = ky0; ky < ky1; ky++) {
        const uint8_t *xp = img + (base + ((ptrdiff_t)ky * iw + kx0) * c_n);
        const dw_taps_t *wt = w + ky * kw;
        for (int32_t kx = kx0; kx < kx1; kx++, xp += c_n) {
            const uint32_t xw = bp_load32(xp);
            BP_DW_MAC(xw, wt[kx]);
        }
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

// Per channel group: packed weight views of every tap, bias, fast requantization constants.
typedef struct {
    dw_taps_t w[BP_DW_TAPS];
    int32_t bias[4];
    dw_rq_t rq[4];
} dw_grp_t;

// `count` output pixels of a 3-wide kernel in one output row whose windows lie inside the input
// columns, over `rows` valid kernel rows starting at taps w: the first window's top-left valid pixel
// at xp, the next `step` bytes further; outputs at op, c_n bytes apart (8-bit, mode DW_U8 or DW_C8).
static inline __attribute__((always_inline)) void dw_run(uint8_t *op, const uint8_t *xp, int32_t count,
                                                         ptrdiff_t step, ptrdiff_t rs, int32_t c_n,
                                                         const dw_taps_t *w, int32_t rows, const dw_grp_t *g,
                                                         int32_t lo, int32_t hi, int sgn, int mode) {
    for (; count > 0; count--, xp += step, op += c_n) {
        int32_t a0 = g->bias[0], a1 = g->bias[1], a2 = g->bias[2], a3 = g->bias[3];
        const uint8_t *r = xp;
        const dw_taps_t *wr = w;
        for (int32_t ky = 0; ky < rows; ky++, r += rs, wr += 3) {
            const uint32_t x0 = bp_load32(r), x1 = bp_load32(r + c_n), x2 = bp_load32(r + 2 * c_n);
            BP_DW_MAC(x0, wr[0]);
            BP_DW_MAC(x1, wr[1]);
            BP_DW_MAC(x2, wr[2]);
        }
        op[0] = (uint8_t)dw_rq(a0, &g->rq[0], mode, lo, hi);
        op[1] = (uint8_t)dw_rq(a1, &g->rq[1], mode, lo, hi);
        op[2] = (uint8_t)dw_rq(a2, &g->rq[2], mode, lo, hi);
        op[3] = (uint8_t)dw_rq(a3, &g->rq[3], mode, lo, hi);
    }
}

// The specialisations: all three rows of unsigned input into full-range uint8 (the common case,
// fully unrolled), and any number of rows for each input signedness and clamp.
#define BP_DW_RUN_ARGS                                                                                     \
    uint8_t *op, const uint8_t *xp, int32_t count, ptrdiff_t step, ptrdiff_t rs, int32_t c_n,            \
        const dw_taps_t *w, int32_t rows, const dw_grp_t *g, int32_t lo, int32_t hi
static void dw_run_u_u8_3(BP_DW_RUN_ARGS) {
    (void)rows;
    dw_run(op, xp, count, step, rs, c_n, w, 3, g, lo, hi, 0, DW_U8);
}
static void dw_run_u_u8(BP_DW_RUN_ARGS) { dw_run(op, xp, count, step, rs, c_n, w, rows, g, lo, hi, 0, DW_U8); }
static void dw_run_u_c8(BP_DW_RUN_ARGS) { dw_run(op, xp, count, step, rs, c_n, w, rows, g, lo, hi, 0, DW_C8); }
static void dw_run_s_u8(BP_DW_RUN_ARGS) { dw_run(op, xp, count, step, rs, c_n, w, rows, g, lo, hi, 1, DW_U8); }
static void dw_run_s_c8(BP_DW_RUN_ARGS) { dw_run(op, xp, count, step, rs, c_n, w, rows, g, lo, hi, 1, DW_C8); }

// Everything the border pixels and other kernel sizes need.
typedef struct {
    const bp_window_t *win;
    const bp_quant_t *q;
    const bp_requant_t *rq;
    void *output;
    const uint8_t *img;
    int32_t ih, iw, kh, kw, c_n, oh, ow, n;
    int mode;
} dw_ctx_t;

// Output pixel (oy, ox) of channels c..c+3 through the tap loop, then requantize and store.
static void dw_pixel(const dw_ctx_t *k, int32_t c, int32_t oy, int32_t ox, const dw_grp_t *g, int sgn) {
    const int32_t y0 = oy * k->win->stride_h - k->win->pad_top, x0 = ox * k->win->stride_w - k->win->pad_left;
    const int32_t ky0 = y0 < 0 ? -y0 : 0, ky1 = (y0 + k->kh > k->ih) ? k->ih - y0 : k->kh;
    const int32_t kx0 = x0 < 0 ? -x0 : 0, kx1 = (x0 + k->kw > k->iw) ? k->iw - x0 : k->kw;
    // Offsets in ptrdiff_t (32-bit on Cortex-M); negative when the window starts in the padding.
    const ptrdiff_t base = ((ptrdiff_t)y0 * k->iw + x0) * k->c_n + c;
    int32_t acc[4] = {g->bias[0], g->bias[1], g->bias[2], g->bias[3]};
    if (sgn) {
        dw4(acc, k->img, base, g->w, ky0, ky1, kx0, kx1, k->iw, k->kw, k->c_n, 1);
    } else {
        dw4(acc, k->img, base, g->w, ky0, ky1, kx0, kx1, k->iw, k->kw, k->c_n, 0);
    }
    const int64_t row = ((int64_t)k->n * k->oh + oy) * k->ow + ox;
    if (k->mode == DW_GEN) {
        for (int32_t j = 0; j < 4; j++) {
            bp_emit(k->output, row, k->c_n, c + j, k->q, k->rq, acc[j]);
        }
    } else {
        uint8_t *op = (uint8_t *)k->output + row * k->c_n + c;
        for (int32_t j = 0; j < 4; j++) {
            op[j] = (uint8_t)dw_rq(acc[j], &g->rq[j], DW_C8, k->q->act_min, k->q->act_max);
        }
    }
}

// Channels c..c+3 of every output pixel of image k->n.
static void dw_group(const dw_ctx_t *k, int32_t c, const dw_grp_t *g, int sgn) {
    const bp_window_t *win = k->win;
    const int32_t sw = win->stride_w, pl = win->pad_left, c_n = k->c_n;
    // 3-wide kernels: the output columns whose window lies inside the input, x0 = ox*sw - pl in
    // [0, iw - 3], run through dw_run, a row of pixels at a time.
    int32_t ox_lo = (pl + sw - 1) / sw, ox_hi = k->iw + pl >= 3 ? (k->iw + pl - 3) / sw + 1 : 0;
    ox_hi = ox_hi > k->ow ? k->ow : ox_hi;
    ox_lo = ox_lo > ox_hi ? ox_hi : ox_lo;
    if (k->kw != 3 || k->mode == DW_GEN) {
        ox_lo = ox_hi = 0;
    }
    void (*run)(BP_DW_RUN_ARGS) = k->mode == DW_U8 ? (sgn ? dw_run_s_u8 : dw_run_u_u8)
                                                    : (sgn ? dw_run_s_c8 : dw_run_u_c8);
    const ptrdiff_t rs = (ptrdiff_t)k->iw * c_n, step = (ptrdiff_t)sw * c_n;
    for (int32_t oy = 0; oy < k->oh; oy++) {
        int32_t ox = 0;
        if (ox_lo < ox_hi) {
            const int32_t y0 = oy * win->stride_h - win->pad_top;
            const int32_t ky0 = y0 < 0 ? -y0 : 0, ky1 = (y0 + k->kh > k->ih) ? k->ih - y0 : k->kh;
            for (; ox < ox_lo; ox++) {
                dw_pixel(k, c, oy, ox, g, sgn);
            }
            uint8_t *op = (uint8_t *)k->output + (((int64_t)k->n * k->oh + oy) * k->ow + ox_lo) * c_n + c;
            const uint8_t *xp = k->img + (ptrdiff_t)(y0 + ky0) * rs + ((ptrdiff_t)ox_lo * sw - pl) * c_n + c;
            if (k->kh == 3 && ky0 == 0 && ky1 == 3 && k->mode == DW_U8 && !sgn) {
                dw_run_u_u8_3(op, xp, ox_hi - ox_lo, step, rs, c_n, g->w, 3, g, 0, 255);
            } else {
                run(op, xp, ox_hi - ox_lo, step, rs, c_n, g->w + 3 * ky0, ky1 - ky0, g, k->q->act_min,
                    k->q->act_max);
            }
            ox = ox_hi;
        }
        for (; ox < k->ow; ox++) {
            dw_pixel(k, c, oy, ox, g, sgn);
        }
    }
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
    const int32_t c_n = input_dims->c, kh = filter_dims->h, kw = filter_dims->w, taps = kh * kw;
    if (q->in.bits != 8 || taps > BP_DW_TAPS || c_n < 4) {
        bp_depthwise_conv2d_generic(win, q, rq, input_dims, input, filter_dims, filter, bias, output_dims, output);
        return BP_OK;
    }
    const int32_t ih = input_dims->h, iw = input_dims->w, oh = output_dims->h, ow = output_dims->w;
    const int32_t c4 = c_n & ~3;
    int mode = DW_GEN;
    if (q->out.bits == 8) {
        mode = !q->out.is_signed && q->act_min == 0 && q->act_max == 255 ? DW_U8 : DW_C8;
        for (int32_t c = 0; c < c_n; c++) {
            mode = rq->shift[c] < 33 ? DW_GEN : mode;
        }
    }
    const int32_t out_row = q->out.bits == 32 ? 0 : bp_row_bytes(c_n, q->out.bits);
    if (out_row > 0 && q->out.bits != 8) { // sub-byte values are ORed into their bytes: clear first
        bp_clear_row((uint8_t *)output, input_dims->n * oh * ow * out_row);
    }
    const int32_t tap_row = bp_row_bytes(c_n, q->w_stored);
    dw_grp_t g;
    dw_ctx_t k = {win, q, rq, output, input, ih, iw, kh, kw, c_n, oh, ow, 0, mode};

    for (int32_t c = 0; c < c4; c += 4) {
        for (int32_t t = 0; t < taps; t++) {
            const uint8_t *tap = filter + (ptrdiff_t)t * tap_row;
            int32_t v[4];
            for (int32_t j = 0; j < 4; j++) {
                v[j] = bp_read_weight(tap, c + j, q->w_stored, q->w_view);
            }
            g.w[t].e = (uint32_t)(uint16_t)v[0] | ((uint32_t)(uint16_t)v[2] << 16);
            g.w[t].o = (uint32_t)(uint16_t)v[1] | ((uint32_t)(uint16_t)v[3] << 16);
        }
        for (int32_t j = 0; j < 4; j++) {
            g.bias[j] = bias ? bias[c + j] : 0;
            g.rq[j] = (dw_rq_t){0, 0, 0};
            if (mode != DW_GEN) { // rq is unused (and may be NULL) for int32 outputs
                const int32_t s = rq->shift[c + j];
                g.rq[j] = (dw_rq_t){rq->multiplier[c + j], (int32_t)1 << (s - 33), s - 32};
            }
        }
        for (int32_t n = 0; n < input_dims->n; n++) {
            k.n = n;
            k.img = input + (ptrdiff_t)n * ih * iw * c_n;
            dw_group(&k, c, &g, q->in.is_signed);
        }
    }
    // The last C % 4 channels, one at a time as in the portable kernel.
    for (int32_t n = 0; n < input_dims->n && c4 < c_n; n++) {
        const uint8_t *img = input + (ptrdiff_t)n * ih * iw * c_n;
        for (int32_t oy = 0; oy < oh; oy++) {
            for (int32_t ox = 0; ox < ow; ox++) {
                const int64_t row = ((int64_t)n * oh + oy) * ow + ox;
                for (int32_t c = c4; c < c_n; c++) {
                    int32_t acc = bias ? bias[c] : 0;
                    for (int32_t ky = 0; ky < kh; ky++) {
                        const int32_t iy = oy * win->stride_h - win->pad_top + ky;
                        for (int32_t kx = 0; kx < kw && iy >= 0 && iy < ih; kx++) {
                            const int32_t ix = ox * win->stride_w - win->pad_left + kx;
                            if (ix >= 0 && ix < iw) {
                                acc += bp_read(img + ((ptrdiff_t)iy * iw + ix) * c_n, c, 8, q->in.is_signed) *
                                       bp_read_weight(filter + ((ptrdiff_t)ky * kw + kx) * tap_row, c, q->w_stored,
                                                      q->w_view);
                            }
                        }
                    }
                    bp_emit(output, row, c_n, c, q, rq, acc);
                }
            }
        }
    }
    return BP_OK;
}
