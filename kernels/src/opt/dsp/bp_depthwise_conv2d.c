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

// Per channel group: packed weight views of every tap, bias, fast requantization constants.
typedef struct {
    dw_taps_t w[BP_DW_TAPS];
    int32_t bias[4];
    dw_rq_t rq[4];
} dw_grp_t;

// A whole 3x3 window of four channels: window pixel (0, 0) at xp, input rows rs bytes apart, pixels
// c_n bytes apart, packed weights w[0..8]. On ARMv7E-M this is one asm block of 74 instructions (per
// tap: LDR, LDRD, two (S|U)XTB16, four SMLAxy; GCC spills the 13 live values of the C version).
#ifdef BP_HAVE_DSP
#define BP_DW_ASM_TAP(ext, addr, off)                                                                      \
    "ldr %[x], " addr "\n\t"                                                                               \
    "ldrd %[we], %[wo], [%[w], #" #off "]\n\t" ext " %[xe], %[x]\n\t" ext " %[x], %[x], ror #8\n\t"       \
    "smlabb %[a0], %[xe], %[we], %[a0]\n\t"                                                                \
    "smlatt %[a2], %[xe], %[we], %[a2]\n\t"                                                                \
    "smlabb %[a1], %[x], %[wo], %[a1]\n\t"                                                                 \
    "smlatt %[a3], %[x], %[wo], %[a3]\n\t"
#define BP_DW_ASM_3X3(ext)                                                                                 \
    "ldrd %[a0], %[a1], [%[w], %[ob]]\n\t"                                                                  \
    "ldrd %[a2], %[a3], [%[w], %[ob2]]\n\t" BP_DW_ASM_TAP(ext, "[%[xp]]", 0)                                                                       \
    BP_DW_ASM_TAP(ext, "[%[xp], %[cn]]", 8)                                                                \
    BP_DW_ASM_TAP(ext, "[%[xp], %[cn], lsl #1]", 16)                                                       \
    "add %[t], %[xp], %[rs]\n\t" BP_DW_ASM_TAP(ext, "[%[t]]", 24) BP_DW_ASM_TAP(ext, "[%[t], %[cn]]", 32)   \
        BP_DW_ASM_TAP(ext, "[%[t], %[cn], lsl #1]", 40) "add %[t], %[t], %[rs]\n\t"                       \
        BP_DW_ASM_TAP(ext, "[%[t]]", 48) BP_DW_ASM_TAP(ext, "[%[t], %[cn]]", 56)                           \
            BP_DW_ASM_TAP(ext, "[%[t], %[cn], lsl #1]", 64)
#define BP_DW_ASM_OPERANDS                                                                                 \
    : [a0] "=&r"(a[0]), [a1] "=&r"(a[1]), [a2] "=&r"(a[2]), [a3] "=&r"(a[3]), [x] "=&r"(x), [xe] "=&r"(xe), \
      [we] "=&r"(we), [wo] "=&r"(wo), [t] "=&r"(t)                                                         \
    : [xp] "r"(xp), [cn] "r"(c_n), [rs] "r"(rs), [w] "r"(g), [ob] "i"(offsetof(dw_grp_t, bias)),           \
      [ob2] "i"(offsetof(dw_grp_t, bias) + 8)                                                              \
    : "memory"
#endif

static inline __attribute__((always_inline)) void dw_3x3(int32_t a[4], const uint8_t *xp, ptrdiff_t rs,
                                                         int32_t c_n, const dw_grp_t *g, int sgn) {
#ifdef BP_HAVE_DSP
    uint32_t x, xe, we, wo;
    const uint8_t *t;
    if (sgn) {
        __asm__(BP_DW_ASM_3X3("sxtb16") BP_DW_ASM_OPERANDS);
    } else {
        __asm__(BP_DW_ASM_3X3("uxtb16") BP_DW_ASM_OPERANDS);
    }
#else
    int32_t a0 = g->bias[0], a1 = g->bias[1], a2 = g->bias[2], a3 = g->bias[3];
    const dw_taps_t *w = g->w;
    for (int32_t ky = 0; ky < 3; ky++, xp += rs, w += 3) {
        for (int32_t kx = 0; kx < 3; kx++) {
            const uint32_t xw = bp_load32(xp + kx * c_n);
            BP_DW_MAC(xw, w[kx]);
        }
    }
    a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3;
#endif
}

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

// Geometry of the row runs of one layer.
typedef struct {
    ptrdiff_t step; // bytes between the windows of consecutive output pixels (stride_w * C)
    ptrdiff_t rs;   // bytes per input row
    int32_t c_n;    // bytes per input pixel and per output pixel (8-bit)
    int32_t kw;
    int32_t lo, hi; // output clamp
} dw_geo_t;

// `count` consecutive output pixels of one output row (8-bit outputs, mode DW_U8 or DW_C8) whose
// windows have the same valid taps: `rows` kernel rows by `cols` kernel columns, the first of them
// at w. The first window's first valid input pixel is at xp, the next `step` bytes further; outputs
// at op, C bytes apart. `full`: a whole 3x3 window (rows, cols and kw 3), fully unrolled.
static inline __attribute__((always_inline)) void dw_run(uint8_t *op, const uint8_t *xp, int32_t count,
                                                         const dw_taps_t *w, int32_t rows, int32_t cols,
                                                         const dw_grp_t *g, const dw_geo_t *geo, int sgn,
                                                         int mode, int full) {
    const int32_t c_n = geo->c_n, kw = full ? 3 : geo->kw;
    const ptrdiff_t rs = geo->rs, step = geo->step;
    const int32_t lo = geo->lo, hi = geo->hi;
    for (; count > 0; count--, xp += step, op += c_n) {
        int32_t a0, a1, a2, a3;
#define BP_DW_ROW3(r, wr)                                                                                  \
    do {                                                                                                   \
        const uint32_t x0 = bp_load32(r), x1 = bp_load32((r) + c_n), x2 = bp_load32((r) + 2 * c_n);     \
        BP_DW_MAC(x0, (wr)[0]);                                                                            \
        BP_DW_MAC(x1, (wr)[1]);                                                                            \
        BP_DW_MAC(x2, (wr)[2]);                                                                            \
    } while (0)
        if (full) {
            int32_t a[4];
            dw_3x3(a, xp, rs, c_n, g, sgn);
            a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
        } else {
            a0 = g->bias[0], a1 = g->bias[1], a2 = g->bias[2], a3 = g->bias[3];
            const uint8_t *r = xp;
            const dw_taps_t *wr = w;
            for (int32_t ky = 0; ky < rows; ky++, r += rs, wr += kw) {
                if (cols == 3) {
                    BP_DW_ROW3(r, wr);
                } else {
                    const uint8_t *xc = r;
                    for (int32_t kx = 0; kx < cols; kx++, xc += c_n) {
                        const uint32_t xw = bp_load32(xc);
                        BP_DW_MAC(xw, wr[kx]);
                    }
                }
            }
        }
#undef BP_DW_ROW3
        op[0] = (uint8_t)dw_rq(a0, &g->rq[0], mode, lo, hi);
        op[1] = (uint8_t)dw_rq(a1, &g->rq[1], mode, lo, hi);
        op[2] = (uint8_t)dw_rq(a2, &g->rq[2], mode, lo, hi);
        op[3] = (uint8_t)dw_rq(a3, &g->rq[3], mode, lo, hi);
    }
}

// The specialisations: whole 3x3 windows of unsigned input into full-range uint8 (the common case),
// and any valid taps for each input signedness and clamp.
#define BP_DW_RUN_ARGS                                                                                     \
    uint8_t *op, const uint8_t *xp, int32_t count, const dw_taps_t *w, int32_t rows, int32_t cols,       \
        const dw_grp_t *g, const dw_geo_t *geo
static void dw_run_u_u8_3x3(BP_DW_RUN_ARGS) { dw_run(op, xp, count, w, rows, cols, g, geo, 0, DW_U8, 1); }
static void dw_run_u_u8(BP_DW_RUN_ARGS) { dw_run(op, xp, count, w, rows, cols, g, geo, 0, DW_U8, 0); }
static void dw_run_u_c8(BP_DW_RUN_ARGS) { dw_run(op, xp, count, w, rows, cols, g, geo, 0, DW_C8, 0); }
static void dw_run_s_u8(BP_DW_RUN_ARGS) { dw_run(op, xp, count, w, rows, cols, g, geo, 1, DW_U8, 0); }
static void dw_run_s_c8(BP_DW_RUN_ARGS) { dw_run(op, xp, count, w, rows, cols, g, geo, 1, DW_C8, 0); }

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

// Channels c..c+3 of every output pixel of image k->n. With 8-bit outputs and fast constants, each
// output row is cut into row runs: the border pixels one by one (their own valid taps), and the
// pixels whose window lies inside the input columns in one run.
static void dw_group(const dw_ctx_t *k, int32_t c, const dw_grp_t *g, int sgn) {
    const bp_window_t *win = k->win;
    if (k->mode == DW_GEN) {
        for (int32_t oy = 0; oy < k->oh; oy++) {
            for (int32_t ox = 0; ox < k->ow; ox++) {
                dw_pixel(k, c, oy, ox, g, sgn);
            }
        }
        return;
    }
    const int32_t sw = win->stride_w, pl = win->pad_left, c_n = k->c_n, kw = k->kw, iw = k->iw;
    const dw_geo_t geo = {(ptrdiff_t)sw * c_n, (ptrdiff_t)iw * c_n, c_n, kw, k->q->act_min, k->q->act_max};
    // Output columns whose window lies inside the input: x0 = ox*sw - pl in [0, iw - kw].
    int32_t ox_lo = (pl + sw - 1) / sw, ox_hi = iw + pl >= kw ? (iw + pl - kw) / sw + 1 : 0;
    ox_hi = ox_hi > k->ow ? k->ow : ox_hi;
    ox_lo = ox_lo > ox_hi ? ox_hi : ox_lo;
    void (*run)(BP_DW_RUN_ARGS) = k->mode == DW_U8 ? (sgn ? dw_run_s_u8 : dw_run_u_u8)
                                                    : (sgn ? dw_run_s_c8 : dw_run_u_c8);
    const int full3 = k->kh == 3 && kw == 3 && k->mode == DW_U8 && !sgn;
    uint8_t *orow = (uint8_t *)k->output + (ptrdiff_t)k->n * k->oh * k->ow * c_n + c;
    for (int32_t oy = 0; oy < k->oh; oy++, orow += (ptrdiff_t)k->ow * c_n) {
        const int32_t y0 = oy * win->stride_h - win->pad_top;
        const int32_t ky0 = y0 < 0 ? -y0 : 0, ky1 = (y0 + k->kh > k->ih) ? k->ih - y0 : k->kh;
        if (ky1 <= ky0) { // the window lies wholly in the padding: bias only
            for (int32_t ox = 0; ox < k->ow; ox++) {
                dw_pixel(k, c, oy, ox, g, sgn);
            }
            continue;
        }
        const uint8_t *xrow = k->img + (ptrdiff_t)(y0 + ky0) * geo.rs + c; // first valid kernel row
        const dw_taps_t *wrow = g->w + ky0 * kw;
        for (int32_t ox = 0; ox < k->ow;) {
            const int32_t x0 = ox * sw - pl;
            if (ox == ox_lo && ox_lo < ox_hi) {
                const uint8_t *xp = xrow + (ptrdiff_t)x0 * c_n;
                if (full3 && ky1 - ky0 == 3) {
                    dw_run_u_u8_3x3(orow + (ptrdiff_t)ox * c_n, xp, ox_hi - ox, g->w, 3, 3, g, &geo);
                } else {
                    run(orow + (ptrdiff_t)ox * c_n, xp, ox_hi - ox, wrow, ky1 - ky0, kw, g, &geo);
                }
                ox = ox_hi;
                continue;
            }
            const int32_t kx0 = x0 < 0 ? -x0 : 0, kx1 = (x0 + kw > iw) ? iw - x0 : kw;
            if (kx1 <= kx0) {
                dw_pixel(k, c, oy, ox, g, sgn);
            } else {
                run(orow + (ptrdiff_t)ox * c_n, xrow + (ptrdiff_t)(x0 + kx0) * c_n, 1, wrow + kx0, ky1 - ky0,
                    kx1 - kx0, g, &geo);
            }
            ox++;
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
