// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation. ARMv7E-M DSP variant of bp_depthwise_conv2d: same symbol,
// same results bit for bit as src/ref/bp_depthwise_conv2d.c.
//
// Fast path: 8-bit inputs (signed or not) or unsigned 4/2-bit inputs, weights at any storage width and
// view, kernels of at most BP_DW_TAPS taps, four channels per step. The loop runs over groups of four
// channels outside and pixels inside. Once per group, the nested weight views of every tap are read
// and packed as int16 pairs for channels (0,2) and (1,3), and the group's bias and requantization
// constants are set aside. Per tap a pixel then costs one input load, two (S|U)XTB16 (bytes 0,2 and,
// rotated by 8, 1,3) and four SMLABB/SMLATT (each channel accumulates separately: SMLAD would add
// channel 0 to channel 2), with the bias as the accumulators' start. Each output row is cut into row
// runs of pixels with the same valid taps: the border pixels one by one, and all the pixels whose
// window lies inside the input columns in one run. Whole 3x3 windows of 8-bit input run as one asm
// block.
//
// Unsigned 4/2-bit inputs: each group unpacks the input rows it needs, each row once, into a ring of
// bytes on the stack (2*KH rows of IW pixels, 4 bytes each, at most BP_DW_RING bytes; dw_rows), and
// the row runs read that as unsigned 8-bit input, the 3x3 asm block included. The unpacking loop
// costs 7.5 instructions per input pixel and group. Layers whose ring would not fit unpack at every
// tap (bp_unpack4_s16, masks for nibbles and crumbs) in C row runs, about twice the 8-bit cost.
//
// Requantization when every shift s is >= 33 (scales below 1/4): with the 64-bit product p = acc*M
// and hi = p >> 32, bp_requant's ((p >> (s-1)) + 1) >> 1 is ((hi >> (s-33)) + 1) >> 1
// = (hi + 2^(s-33)) >> (s-32) (floor(floor(y)/2) = floor(y/2)), that is one SMMLA (hi + round) and one
// ASR, then USAT #8, #4 or #2 when the clamp is the whole unsigned range of the output (else a compare
// each side). |hi| <= 2^30 and the rounding term <= 2^29, so nothing overflows. The four values of a
// group fill whole output bytes at 8, 4 and 2 bits. A shift s < 33 is lifted to 33: the channel's
// weight views and bias times 2^(33-s) at setup, where the headroom and int16 allow it (bp_rq_lift).
// Other shifts, int32 outputs, signed sub-byte inputs and the last C % 4 channels use the portable
// arithmetic (bp_emit).
//
// Stack: bp_depthwise_conv2d's frame holds the group's packed weights (dw_grp_t, 456 bytes) and the
// ring (BP_DW_RING); docs/kernels.md gives the measured total.
#include <stddef.h>
#include <string.h>

#include "bp_dsp.h"
#include "bp_kernels.h"
#include "bp_support.h"

#define BP_DW_TAPS 49 // up to 7x7: 392 bytes of packed weights on the stack
// The ring of unpacked 4/2-bit input rows (dw_rows): 2*KH rows of IW pixels, 4 bytes each, on the
// stack. Layers with IW > BP_DW_RING / (8*KH) (42 pixels at KH = 3) keep the per-tap unpacking.
#define BP_DW_RING 1024

typedef struct {
    uint32_t e; // views of channels 0 (bits 15..0) and 2 (bits 31..16), int16 each
    uint32_t o; // channels 1 and 3
} dw_taps_t;

typedef struct {
    int32_t mult; // M
    int32_t rnd;  // 2^(s-33)
    int32_t sh;   // s - 32
} dw_rq_t;

// Per channel group: packed weight views of every tap, bias, fast requantization constants.
typedef struct {
    dw_taps_t w[BP_DW_TAPS];
    int32_t bias[4];
    dw_rq_t rq[4];
} dw_grp_t;

// Input formats of the fast path (compile-time constants in each specialisation).
enum { DW_IN_U8 = 0, DW_IN_S8 = 1, DW_IN_U4 = 2, DW_IN_U2 = 3 };

// Geometry of one layer for the row runs.
typedef struct {
    ptrdiff_t px;   // bytes per input pixel
    ptrdiff_t rs;   // bytes per input row
    ptrdiff_t step; // bytes between the windows of consecutive output pixels (stride_w * px)
    ptrdiff_t opx;  // bytes per output pixel
    int32_t kw;
    int32_t obits;  // 8, 4 or 2
    int32_t lo, hi; // output clamp
} dw_geo_t;

// Four channels (0,2) and (1,3) of the input pixel at p (the group's first byte) as int16 pairs.
static inline __attribute__((always_inline)) void dw_unpack(const uint8_t *p, int fmt, uint32_t *xe, uint32_t *xo) {
    if (fmt == DW_IN_U8 || fmt == DW_IN_S8) {
        const uint32_t xw = bp_load32(p);
        *xe = fmt == DW_IN_S8 ? bp_sxtb16(xw) : bp_uxtb16(xw);
        *xo = fmt == DW_IN_S8 ? bp_sxtb16_ror8(xw) : bp_uxtb16_ror8(xw);
    } else {
        bp_unpack4_s16(p, 0, fmt == DW_IN_U4 ? 4 : 2, 0, xe, xo);
    }
}

// Accumulate the four channels of the input pixel at p with the packed weights w.
#define BP_DW_MAC(p, w)                                                                                    \
    do {                                                                                                   \
        uint32_t xe_, xo_;                                                                                 \
        dw_unpack((p), fmt, &xe_, &xo_);                                                                   \
        a0 = bp_smlabb(xe_, (w).e, a0);                                                                    \
        a2 = bp_smlatt(xe_, (w).e, a2);                                                                    \
        a1 = bp_smlabb(xo_, (w).o, a1);                                                                    \
        a3 = bp_smlatt(xo_, (w).o, a3);                                                                    \
    } while (0)

// One output value from the fast constants: USAT #usat (8, 4 or 2: the clamp is the full unsigned
// range of the output), or the clamp [lo, hi] (usat 0).
static inline __attribute__((always_inline)) int32_t dw_rq(int32_t acc, const dw_rq_t *p, int32_t lo, int32_t hi,
                                                           int usat) {
    const int32_t v = bp_smmla(acc, p->mult, p->rnd) >> p->sh;
    return usat == 8   ? bp_usat8(v)
           : usat == 4 ? bp_usat4(v)
           : usat == 2 ? bp_usat2(v)
                       : (v < lo ? lo : (v > hi ? hi : v));
}

// Requantize four accumulators with the fast constants and store them as whole bytes at op.
static inline __attribute__((always_inline)) void dw_store4(uint8_t *op, int32_t a0, int32_t a1, int32_t a2,
                                                            int32_t a3, const dw_grp_t *g, int32_t obits,
                                                            int32_t lo, int32_t hi, int usat) {
    const int32_t v0 = dw_rq(a0, &g->rq[0], lo, hi, usat), v1 = dw_rq(a1, &g->rq[1], lo, hi, usat);
    const int32_t v2 = dw_rq(a2, &g->rq[2], lo, hi, usat), v3 = dw_rq(a3, &g->rq[3], lo, hi, usat);
    if (usat == 8) { // 0..255 each: one word (three ORR and an unaligned STR)
        const uint32_t word = (uint32_t)v0 | ((uint32_t)v1 << 8) | ((uint32_t)v2 << 16) | ((uint32_t)v3 << 24);
        memcpy(op, &word, sizeof word);
    } else if (usat == 4) { // 0..15 each: one halfword (three ORR and an unaligned STRH)
        const uint16_t half =
            (uint16_t)((uint32_t)v0 | ((uint32_t)v1 << 4) | ((uint32_t)v2 << 8) | ((uint32_t)v3 << 12));
        memcpy(op, &half, sizeof half);
    } else if (usat == 2) { // 0..3 each: one byte
        op[0] = (uint8_t)((uint32_t)v0 | ((uint32_t)v1 << 2) | ((uint32_t)v2 << 4) | ((uint32_t)v3 << 6));
    } else if (obits == 8) {
        op[0] = (uint8_t)v0, op[1] = (uint8_t)v1, op[2] = (uint8_t)v2, op[3] = (uint8_t)v3;
    } else if (obits == 4) {
        op[0] = (uint8_t)((v0 & 15) | ((v1 & 15) << 4));
        op[1] = (uint8_t)((v2 & 15) | ((v3 & 15) << 4));
    } else {
        op[0] = (uint8_t)((v0 & 3) | ((v1 & 3) << 2) | ((v2 & 3) << 4) | ((v3 & 3) << 6));
    }
}

// A whole 3x3 window of four channels of 8-bit input, accumulated on the group's bias: window pixel
// (0, 0) at xp, input rows rs bytes apart, pixels px bytes apart. On ARMv7E-M this is one asm block of
// 76 instructions (per tap: LDR, LDRD, two (S|U)XTB16, four SMLAxy; GCC spills the 13 live values
// of the C version).
#ifdef BP_HAVE_DSP
#define BP_DW_ASM_TAP(ext, addr, off)                                                                      \
    "ldr %[x], " addr "\n\t"                                                                               \
    "ldrd %[we], %[wo], [%[w], #" #off "]\n\t" ext " %[xe], %[x]\n\t" ext " %[x], %[x], ror #8\n\t"       \
    "smlabb %[a0], %[xe], %[we], %[a0]\n\t"                                                                \
    "smlatt %[a2], %[xe], %[we], %[a2]\n\t"                                                                \
    "smlabb %[a1], %[x], %[wo], %[a1]\n\t"                                                                 \
    "smlatt %[a3], %[x], %[wo], %[a3]\n\t"
#define BP_DW_ASM_3X3(ext)                                                                                 \
    "ldrd %[a0], %[a1], [%[w], %[ob]]\n\t"                                                                 \
    "ldrd %[a2], %[a3], [%[w], %[ob2]]\n\t" BP_DW_ASM_TAP(ext, "[%[xp]]", 0)                               \
        BP_DW_ASM_TAP(ext, "[%[xp], %[px]]", 8) BP_DW_ASM_TAP(ext, "[%[xp], %[px], lsl #1]", 16)           \
            "add %[t], %[xp], %[rs]\n\t" BP_DW_ASM_TAP(ext, "[%[t]]", 24) BP_DW_ASM_TAP(ext, "[%[t], %[px]]", 32) \
                BP_DW_ASM_TAP(ext, "[%[t], %[px], lsl #1]", 40) "add %[t], %[t], %[rs]\n\t"                \
                    BP_DW_ASM_TAP(ext, "[%[t]]", 48) BP_DW_ASM_TAP(ext, "[%[t], %[px]]", 56)               \
                        BP_DW_ASM_TAP(ext, "[%[t], %[px], lsl #1]", 64)
#define BP_DW_ASM_OPERANDS                                                                                 \
    : [a0] "=&r"(a[0]), [a1] "=&r"(a[1]), [a2] "=&r"(a[2]), [a3] "=&r"(a[3]), [x] "=&r"(x), [xe] "=&r"(xe), \
      [we] "=&r"(we), [wo] "=&r"(wo), [t] "=&r"(t)                                                         \
    : [xp] "r"(xp), [px] "r"(px), [rs] "r"(rs), [w] "r"(g), [ob] "i"(offsetof(dw_grp_t, bias)),            \
      [ob2] "i"(offsetof(dw_grp_t, bias) + 8)                                                              \
    : "memory"
#endif

static inline __attribute__((always_inline)) void dw_3x3_8(int32_t a[4], const uint8_t *xp, ptrdiff_t rs,
                                                           ptrdiff_t px, const dw_grp_t *g, int fmt) {
#ifdef BP_HAVE_DSP
    uint32_t x, xe, we, wo;
    const uint8_t *t;
    if (fmt == DW_IN_S8) {
        __asm__(BP_DW_ASM_3X3("sxtb16") BP_DW_ASM_OPERANDS);
    } else {
        __asm__(BP_DW_ASM_3X3("uxtb16") BP_DW_ASM_OPERANDS);
    }
#else
    int32_t a0 = g->bias[0], a1 = g->bias[1], a2 = g->bias[2], a3 = g->bias[3];
    const dw_taps_t *w = g->w;
    for (int32_t ky = 0; ky < 3; ky++, xp += rs, w += 3) {
        for (int32_t kx = 0; kx < 3; kx++) {
            BP_DW_MAC(xp + kx * px, w[kx]);
        }
    }
    a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3;
#endif
}

// `count` consecutive output pixels of one output row whose windows have the same valid taps: `rows`
// kernel rows by `cols` kernel columns, the first of them at w. The first window's first valid input
// pixel is at xp (the group's first byte), the next `step` bytes further; outputs at op, opx bytes
// apart. `full`: a whole 3x3 window of 8-bit input (rows, cols and kw 3), in the asm block.
// |acc| <= |bias| + KH*KW * xmax * wmax <= INT32_MAX (bp_check_acc) at every step.
static inline __attribute__((always_inline)) void dw_run(uint8_t *op, const uint8_t *xp, int32_t count,
                                                         const dw_taps_t *w, int32_t rows, int32_t cols,
                                                         const dw_grp_t *g, const dw_geo_t *geo, int fmt,
                                                         int usat, int full) {
    const int32_t kw = full ? 3 : geo->kw, obits = geo->obits, lo = geo->lo, hi = geo->hi;
    const ptrdiff_t px = geo->px, rs = geo->rs, step = geo->step, opx = geo->opx;
    for (; count > 0; count--, xp += step, op += opx) {
        int32_t a0, a1, a2, a3;
        if (full) {
            int32_t a[4];
            dw_3x3_8(a, xp, rs, px, g, fmt);
            a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
        } else {
            a0 = g->bias[0], a1 = g->bias[1], a2 = g->bias[2], a3 = g->bias[3];
            const uint8_t *r = xp;
            const dw_taps_t *wr = w;
            for (int32_t ky = 0; ky < rows; ky++, r += rs, wr += kw) {
                if (cols == 3) {
                    BP_DW_MAC(r, wr[0]);
                    BP_DW_MAC(r + px, wr[1]);
                    BP_DW_MAC(r + 2 * px, wr[2]);
                } else {
                    const uint8_t *xc = r;
                    for (int32_t kx = 0; kx < cols; kx++, xc += px) {
                        BP_DW_MAC(xc, wr[kx]);
                    }
                }
            }
        }
        dw_store4(op, a0, a1, a2, a3, g, obits, lo, hi, usat);
    }
}

// The specialisations: unsigned 8-bit input (the image, or the ring of unpacked 4/2-bit input) into
// full-range unsigned 8, 4 or 2-bit outputs (USAT) or any other output, whole 3x3 windows or any
// valid taps; any valid taps for the other input formats.
#define BP_DW_RUN_ARGS                                                                                     \
    uint8_t *op, const uint8_t *xp, int32_t count, const dw_taps_t *w, int32_t rows, int32_t cols,       \
        const dw_grp_t *g, const dw_geo_t *geo
#define BP_DW_RUN_FN(name, fmt, usat, full)                                                                \
    static void name(BP_DW_RUN_ARGS) { dw_run(op, xp, count, w, rows, cols, g, geo, fmt, usat, full); }
BP_DW_RUN_FN(dw_run_u8_usat8_3x3, DW_IN_U8, 8, 1)
BP_DW_RUN_FN(dw_run_u8_usat4_3x3, DW_IN_U8, 4, 1)
BP_DW_RUN_FN(dw_run_u8_usat2_3x3, DW_IN_U8, 2, 1)
BP_DW_RUN_FN(dw_run_u8_3x3, DW_IN_U8, 0, 1)
BP_DW_RUN_FN(dw_run_u8_usat8, DW_IN_U8, 8, 0)
BP_DW_RUN_FN(dw_run_u8_usat4, DW_IN_U8, 4, 0)
BP_DW_RUN_FN(dw_run_u8_usat2, DW_IN_U8, 2, 0)
BP_DW_RUN_FN(dw_run_u8, DW_IN_U8, 0, 0)
BP_DW_RUN_FN(dw_run_s8, DW_IN_S8, 0, 0)
BP_DW_RUN_FN(dw_run_u4, DW_IN_U4, 0, 0)
BP_DW_RUN_FN(dw_run_u2, DW_IN_U2, 0, 0)
typedef void (*dw_run_fn)(BP_DW_RUN_ARGS);
// Unsigned 8-bit input: [usat 8, 4, 2, none][3x3 block, any taps].
static const dw_run_fn DW_RUNS_U8[4][2] = {{dw_run_u8_usat8_3x3, dw_run_u8_usat8},
                                           {dw_run_u8_usat4_3x3, dw_run_u8_usat4},
                                           {dw_run_u8_usat2_3x3, dw_run_u8_usat2},
                                           {dw_run_u8_3x3, dw_run_u8}};

// Everything the slow pixels need.
typedef struct {
    const bp_window_t *win;
    const bp_quant_t *q;
    const bp_requant_t *rq;
    void *output;
    const uint8_t *img;
    int32_t ih, iw, kh, kw, c_n, oh, ow, n;
    int32_t in_row, out_row;
    int fast; // every shift >= 33 and packed outputs: the fast constants
    int ring; // fast, unsigned 4/2-bit input and the ring fits: dw_rows on unpacked bytes
    dw_run_fn run, run3x3; // fast: the row runs of dw_rows (run3x3: whole 3x3 windows, or NULL)
} dw_ctx_t;

// Four channels of one output pixel over the valid taps [ky0,ky1) x [kx0,kx1) (possibly none).
static inline void dw4(int32_t acc[4], const uint8_t *img, int32_t y0, int32_t x0, int32_t cb, const dw_grp_t *g,
                       int32_t ky0, int32_t ky1, int32_t kx0, int32_t kx1, const dw_ctx_t *k, int fmt) {
    int32_t a0 = g->bias[0], a1 = g->bias[1], a2 = g->bias[2], a3 = g->bias[3];
    for (int32_t ky = ky0; ky < ky1; ky++) {
        const uint8_t *xp = img + ((ptrdiff_t)(y0 + ky) * k->iw + x0 + kx0) * k->in_row + cb;
        const dw_taps_t *wt = g->w + ky * k->kw;
        for (int32_t kx = kx0; kx < kx1; kx++, xp += k->in_row) {
            BP_DW_MAC(xp, wt[kx]);
        }
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

// Output pixel (oy, ox) of channels c..c+3 through the tap loop, then requantize and store: the
// fast constants, or bp_emit.
static void dw_pixel(const dw_ctx_t *k, int32_t c, int32_t oy, int32_t ox, const dw_grp_t *g, int fmt) {
    const int32_t y0 = oy * k->win->stride_h - k->win->pad_top, x0 = ox * k->win->stride_w - k->win->pad_left;
    const int32_t ky0 = y0 < 0 ? -y0 : 0, ky1 = (y0 + k->kh > k->ih) ? k->ih - y0 : k->kh;
    const int32_t kx0 = x0 < 0 ? -x0 : 0, kx1 = (x0 + k->kw > k->iw) ? k->iw - x0 : k->kw;
    const int32_t cb = (int32_t)(((uint32_t)c * (uint32_t)k->q->in.bits) >> 3);
    int32_t acc[4];
    if (fmt == DW_IN_S8) {
        dw4(acc, k->img, y0, x0, cb, g, ky0, ky1, kx0, kx1, k, DW_IN_S8);
    } else if (fmt == DW_IN_U8) {
        dw4(acc, k->img, y0, x0, cb, g, ky0, ky1, kx0, kx1, k, DW_IN_U8);
    } else if (fmt == DW_IN_U4) {
        dw4(acc, k->img, y0, x0, cb, g, ky0, ky1, kx0, kx1, k, DW_IN_U4);
    } else {
        dw4(acc, k->img, y0, x0, cb, g, ky0, ky1, kx0, kx1, k, DW_IN_U2);
    }
    const int64_t row = ((int64_t)k->n * k->oh + oy) * k->ow + ox;
    if (k->fast) {
        const int32_t ob = (int32_t)(((uint32_t)c * (uint32_t)k->q->out.bits) >> 3);
        dw_store4((uint8_t *)k->output + row * k->out_row + ob, acc[0], acc[1], acc[2], acc[3], g, k->q->out.bits,
                  k->q->act_min, k->q->act_max, 0);
    } else {
        for (int32_t j = 0; j < 4; j++) {
            bp_emit(k->output, row, k->c_n, c + j, k->q, k->rq, acc[j]);
        }
    }
}

// The four unsigned 4 or 2-bit values at src (channels c..c+3 of one pixel) as the bytes
// | x3 | x2 | x1 | x0 |. 4-bit, halfword h = | x3 | x2 | x1 | x0 | (nibbles): t = (h | h << 8) &
// 0x00FF00FF puts x1x0 and x3x2 in bytes 0 and 2, then (t | t << 4) & 0x0F0F0F0F moves x1 and x3 up
// into bytes 1 and 3. 2-bit, byte b: t = (b | b << 12) & 0x000F000F puts x1x0 and x3x2 in bits 0..3
// and 16..19, then (t | t << 6) & 0x03030303. Four instructions after the load.
static inline __attribute__((always_inline)) uint32_t dw_spread(const uint8_t *src, int fmt) {
    if (fmt == DW_IN_U4) {
        uint16_t h;
        memcpy(&h, src, sizeof h);
        const uint32_t t = ((uint32_t)h | ((uint32_t)h << 8)) & 0x00FF00FFu;
        return (t | (t << 4)) & 0x0F0F0F0Fu;
    }
    const uint32_t b = *src, t = (b | (b << 12)) & 0x000F000Fu;
    return (t | (t << 6)) & 0x03030303u;
}

// Unpack one input row of the group (pixel 0 at x, pixels in_row bytes apart) into iw words at d and
// the same at d2 (dw_rows).
static inline __attribute__((always_inline)) void dw_ring_row(uint32_t *d, uint32_t *d2, const uint8_t *x,
                                                              int32_t iw, ptrdiff_t in_row, int fmt) {
    uint32_t *const end = d + iw;
    if (iw & 1) {
        const uint32_t u = dw_spread(x, fmt);
        *d++ = u, *d2++ = u;
        x += in_row;
    }
#ifdef BP_HAVE_DSP
    // two pixels per step: 15 instructions (GCC makes 18 of the C loop below)
    if (d != end) {
        uint32_t u, v;
        // load, shift and mask of the first step, shift and mask of the second (dw_spread)
#define BP_DW_SPREAD_LOOP(ld, s1, m1, s2, m2)                                                              \
    __asm__ volatile("1:\n\t" ld " %[u], [%[x]]\n\t" ld " %[v], [%[x], %[ir]]\n\t"                          \
                     "add %[x], %[x], %[ir], lsl #1\n\t"                                                    \
                     "orr %[u], %[u], %[u], lsl #" s1 "\n\t"                                                \
                     "orr %[v], %[v], %[v], lsl #" s1 "\n\t"                                                \
                     "and %[u], %[u], #" m1 "\n\t"                                                          \
                     "and %[v], %[v], #" m1 "\n\t"                                                          \
                     "orr %[u], %[u], %[u], lsl #" s2 "\n\t"                                                \
                     "orr %[v], %[v], %[v], lsl #" s2 "\n\t"                                                \
                     "and %[u], %[u], #" m2 "\n\t"                                                          \
                     "and %[v], %[v], #" m2 "\n\t"                                                          \
                     "strd %[u], %[v], [%[d2]], #8\n\t"                                                     \
                     "strd %[u], %[v], [%[d]], #8\n\t"                                                      \
                     "cmp %[d], %[e]\n\t"                                                                   \
                     "bne 1b"                                                                              \
                     : [u] "=&r"(u), [v] "=&r"(v), [x] "+r"(x), [d] "+r"(d), [d2] "+r"(d2)                 \
                     : [ir] "r"(in_row), [e] "r"(end)                                                      \
                     : "cc", "memory")
        if (fmt == DW_IN_U4) {
            BP_DW_SPREAD_LOOP("ldrh", "8", "0x00FF00FF", "4", "0x0F0F0F0F");
        } else {
            BP_DW_SPREAD_LOOP("ldrb", "12", "0x000F000F", "6", "0x03030303");
        }
#undef BP_DW_SPREAD_LOOP
    }
#else
    for (; d != end; x += 2 * in_row, d += 2, d2 += 2) { // two pixels per step
        const uint32_t u = dw_spread(x, fmt), v = dw_spread(x + in_row, fmt);
        d[0] = u, d[1] = v;
        d2[0] = u, d2[1] = v;
    }
#endif
}

// The ring of dw_rows and the next input row to unpack into it.
typedef struct {
    uint8_t *ring;      // 2*kh slots of iw words
    const uint8_t *img; // the image's row 0, channel c
    const uint8_t *src; // row `next` in the image
    ptrdiff_t slot;     // its slot's offset in the ring (slot next % kh)
    ptrdiff_t in_row, img_rs, rs, half; // bytes per input pixel, per image row, per slot, per kh slots
    int32_t next, kh, iw, fmt;
} dw_ring_t;

// Unpack the input rows before hi not unpacked yet, lo the first, and return row lo in the ring:
// rows lo..hi-1 (hi - lo <= kh, the last ones unpacked) lie in consecutive slots from there.
static const uint8_t *__attribute__((noinline)) dw_ring_rows(dw_ring_t *r, int32_t lo, int32_t hi) {
    if (r->next < lo) { // rows skipped (stride_h > kh)
        r->next = lo;
        r->src = r->img + (ptrdiff_t)lo * r->img_rs;
        r->slot = (ptrdiff_t)(lo % r->kh) * r->rs;
    }
    ptrdiff_t slot = r->slot;
    const uint8_t *src = r->src;
    for (; r->next < hi; r->next++, src += r->img_rs) {
        uint32_t *d = (uint32_t *)(r->ring + slot), *d2 = (uint32_t *)(r->ring + slot + r->half);
        if (r->fmt == DW_IN_U4) {
            dw_ring_row(d, d2, src, r->iw, r->in_row, DW_IN_U4);
        } else {
            dw_ring_row(d, d2, src, r->iw, r->in_row, DW_IN_U2);
        }
        slot += r->rs;
        slot = slot == r->half ? 0 : slot;
    }
    r->slot = slot, r->src = src;
    // rows lo..hi-1 end just before `slot`; where they wrap, their copies in slots kh..2kh-1 follow
    // each other
    const ptrdiff_t first = slot - (ptrdiff_t)(hi - lo) * r->rs;
    return r->ring + (first < 0 ? first + r->half : first);
}

// Channels c..c+3 of every output pixel of image k->n. With the fast constants each output row is
// cut into row runs: the border pixels one by one (their own valid taps), and the pixels whose window
// lies inside the input columns in one run.
//
// ring (unsigned 4/2-bit input only, 2*kh*iw*4 bytes): the rows run on unpacked bytes instead of the
// packed image. Input row r is unpacked once, when the first output row that needs it comes, into
// ring slots r % kh and r % kh + kh (iw*4 bytes each), so that any kh consecutive input rows lie in
// consecutive slots; then everything runs as unsigned 8-bit input (the 3x3 asm block included) with
// 4 bytes per pixel. Only the kernel rows of the current output row are read, and they are the last
// rows unpacked, at most kh of them: none of their slots has been overwritten.
static inline __attribute__((always_inline)) void dw_rows(const dw_ctx_t *k, int32_t c, const dw_grp_t *g, int fmt,
                                                          uint8_t *ring) {
    const bp_window_t *win = k->win;
    const bp_quant_t *q = k->q;
    const int32_t sw = win->stride_w, pl = win->pad_left, kh = k->kh, kw = k->kw, iw = k->iw;
    const ptrdiff_t px = ring ? 4 : k->in_row;
    const dw_geo_t geo = {px, (ptrdiff_t)iw * px, (ptrdiff_t)sw * px, k->out_row, kw, q->out.bits, q->act_min,
                          q->act_max};
    // Output columns whose window lies inside the input: x0 = ox*sw - pl in [0, iw - kw].
    int32_t ox_lo = (pl + sw - 1) / sw, ox_hi = iw + pl >= kw ? (iw + pl - kw) / sw + 1 : 0;
    ox_hi = ox_hi > k->ow ? k->ow : ox_hi;
    ox_lo = ox_lo > ox_hi ? ox_hi : ox_lo;
    const dw_run_fn run = k->run, run3x3 = k->run3x3;
    const int32_t cb = (int32_t)(((uint32_t)c * (uint32_t)q->in.bits) >> 3);
    const int32_t ob = (int32_t)(((uint32_t)c * (uint32_t)q->out.bits) >> 3);
    const uint8_t *base = k->img + cb; // input row 0
    dw_ring_t rg = {ring, base, base, 0, k->in_row, (ptrdiff_t)iw * k->in_row, geo.rs, (ptrdiff_t)kh * geo.rs,
                    0, kh, iw, fmt};
    uint8_t *orow = (uint8_t *)k->output + (ptrdiff_t)k->n * k->oh * k->ow * k->out_row + ob;
    for (int32_t oy = 0; oy < k->oh; oy++, orow += (ptrdiff_t)k->ow * k->out_row) {
        const int32_t y0 = oy * win->stride_h - win->pad_top;
        const int32_t ky0 = y0 < 0 ? -y0 : 0, ky1 = (y0 + kh > k->ih) ? k->ih - y0 : kh;
        if (ky1 <= ky0) { // the window lies wholly in the padding: bias only
            for (int32_t ox = 0; ox < k->ow; ox++) {
                dw_pixel(k, c, oy, ox, g, fmt);
            }
            continue;
        }
        const uint8_t *xrow; // first valid kernel row
        if (ring) {
            xrow = dw_ring_rows(&rg, y0 + ky0, y0 + ky1);
        } else {
            xrow = base + (ptrdiff_t)(y0 + ky0) * geo.rs;
        }
        const dw_taps_t *wrow = g->w + ky0 * kw;
        for (int32_t ox = 0; ox < k->ow;) {
            const int32_t x0 = ox * sw - pl;
            if (ox == ox_lo && ox_lo < ox_hi) {
                const uint8_t *xp = xrow + (ptrdiff_t)x0 * geo.px;
                if (run3x3 != NULL && ky1 - ky0 == 3) {
                    run3x3(orow + (ptrdiff_t)ox * geo.opx, xp, ox_hi - ox, g->w, 3, 3, g, &geo);
                } else {
                    run(orow + (ptrdiff_t)ox * geo.opx, xp, ox_hi - ox, wrow, ky1 - ky0, kw, g, &geo);
                }
                ox = ox_hi;
                continue;
            }
            const int32_t kx0 = x0 < 0 ? -x0 : 0, kx1 = (x0 + kw > iw) ? iw - x0 : kw;
            if (kx1 <= kx0) { // the window lies wholly in the padding: bias only
                dw_pixel(k, c, oy, ox, g, fmt);
            } else {
                run(orow + (ptrdiff_t)ox * geo.opx, xrow + (ptrdiff_t)(x0 + kx0) * geo.px, 1, wrow + kx0, ky1 - ky0,
                    kx1 - kx0, g, &geo);
            }
            ox++;
        }
    }
}

static void dw_group(const dw_ctx_t *k, int32_t c, const dw_grp_t *g, int fmt, uint32_t *ring) {
    if (!k->fast) {
        for (int32_t oy = 0; oy < k->oh; oy++) {
            for (int32_t ox = 0; ox < k->ow; ox++) {
                dw_pixel(k, c, oy, ox, g, fmt);
            }
        }
    } else if (k->ring) {
        dw_rows(k, c, g, fmt, (uint8_t *)ring);
    } else {
        dw_rows(k, c, g, fmt, NULL);
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
    // Signed sub-byte inputs and kernels of more than BP_DW_TAPS taps: every channel in the portable
    // per-channel loop at the end (no channel groups).
    const int groups = (q->in.bits == 8 || !q->in.is_signed) && taps <= BP_DW_TAPS;
    const int fmt = q->in.bits == 8 ? (q->in.is_signed ? DW_IN_S8 : DW_IN_U8) : q->in.bits == 4 ? DW_IN_U4 : DW_IN_U2;
    const int32_t ih = input_dims->h, iw = input_dims->w, oh = output_dims->h, ow = output_dims->w;
    const int32_t c4 = groups ? c_n & ~3 : 0;
    // Shifts below 33 are lifted (bp_rq_lift): the channel's weight views and bias times 2^j, j = 33 - s,
    // where the headroom allows it and the views stay int16 (|view| <= 2^(view-1): j <= 16 - view).
    const int64_t xmax = q->in.is_signed ? ((int64_t)1 << (q->in.bits - 1)) : ((int64_t)1 << q->in.bits) - 1;
    const int64_t products = (int64_t)taps * xmax * ((int64_t)1 << (q->w_view - 1));
    int fast = q->out.bits != 32;
    for (int32_t c = 0; c < c_n && fast; c++) {
        const int32_t j = bp_rq_lift(rq->shift[c], bias ? bias[c] : 0, products);
        fast = j >= 0 && j <= 16 - q->w_view;
    }
    const int32_t in_row = bp_row_bytes(c_n, q->in.bits);
    const int32_t out_row = q->out.bits == 32 ? 0 : bp_row_bytes(c_n, q->out.bits);
    if (out_row > 0 && q->out.bits != 8) { // bp_emit ORs sub-byte values into their bytes: clear first
        bp_clear_row((uint8_t *)output, input_dims->n * oh * ow * out_row);
    }
    const int32_t tap_row = bp_row_bytes(c_n, q->w_stored);
    dw_grp_t g;
    uint32_t ring[BP_DW_RING / 4]; // dw_rows' ring (k.ring); words: STRD needs aligned slots
    dw_ctx_t k = {win, q, rq, output, input, ih, iw, kh, kw, c_n, oh, ow, 0, in_row, out_row, fast, 0, NULL, NULL};
    if (fast) { // the row runs: USAT where the clamp is the whole unsigned range of 8, 4 or 2-bit outputs
        const int32_t ob = q->out.bits;
        const int usat = !q->out.is_signed && q->act_min == 0 && q->act_max == (1 << ob) - 1;
        const int ui = !usat ? 3 : ob == 8 ? 0 : ob == 4 ? 1 : 2;
        k.ring = (fmt == DW_IN_U4 || fmt == DW_IN_U2) && iw <= BP_DW_RING / (8 * kh);
        const int ufmt = k.ring ? DW_IN_U8 : fmt; // the format the runs read
        k.run = ufmt == DW_IN_U8   ? DW_RUNS_U8[ui][1]
                : ufmt == DW_IN_S8 ? dw_run_s8
                : ufmt == DW_IN_U4 ? dw_run_u4
                                   : dw_run_u2;
        k.run3x3 = kh == 3 && kw == 3 && ufmt == DW_IN_U8 ? DW_RUNS_U8[ui][0] : NULL;
    }

    for (int32_t c = 0; c < c4; c += 4) {
        int32_t lift[4] = {1, 1, 1, 1}; // 2^j of the lifted shifts (fast only)
        for (int32_t j = 0; j < 4 && fast; j++) {
            lift[j] = (int32_t)1 << bp_rq_j(rq->shift[c + j]);
        }
        for (int32_t t = 0; t < taps; t++) {
            const uint8_t *tap = filter + (ptrdiff_t)t * tap_row;
            int32_t v[4];
            for (int32_t j = 0; j < 4; j++) {
                v[j] = bp_read_weight(tap, c + j, q->w_stored, q->w_view, q->w_round) * lift[j];
            }
            g.w[t].e = (uint32_t)(uint16_t)v[0] | ((uint32_t)(uint16_t)v[2] << 16);
            g.w[t].o = (uint32_t)(uint16_t)v[1] | ((uint32_t)(uint16_t)v[3] << 16);
        }
        for (int32_t j = 0; j < 4; j++) {
            g.bias[j] = (bias ? bias[c + j] : 0) * lift[j];
            g.rq[j] = (dw_rq_t){0, 0, 0};
            if (fast) { // rq is unused (and may be NULL) for int32 outputs
                const int32_t s = rq->shift[c + j] + bp_rq_j(rq->shift[c + j]);
                g.rq[j] = (dw_rq_t){rq->multiplier[c + j], (int32_t)1 << (s - 33), s - 32};
            }
        }
        for (int32_t n = 0; n < input_dims->n; n++) {
            k.n = n;
            k.img = input + (ptrdiff_t)n * ih * iw * in_row;
            dw_group(&k, c, &g, fmt, ring);
        }
    }
    // The last C % 4 channels (or all of them), one at a time as in the portable kernel.
    for (int32_t n = 0; n < input_dims->n && c4 < c_n; n++) {
        const uint8_t *img = input + (ptrdiff_t)n * ih * iw * in_row;
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
                                acc += bp_read(img + ((ptrdiff_t)iy * iw + ix) * in_row, c, q->in.bits,
                                               q->in.is_signed) *
                                       bp_read_weight(filter + ((ptrdiff_t)ky * kw + kx) * tap_row, c, q->w_stored,
                                                      q->w_view, q->w_round);
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
