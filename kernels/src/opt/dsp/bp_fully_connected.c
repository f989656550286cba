// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation. ARMv7E-M DSP variant of bp_fully_connected: same symbol,
// same results bit for bit as src/ref/bp_fully_connected.c.
//
// Fast path: 8-bit inputs (signed or not) or unsigned 4/2-bit inputs, weights stored at 8 or 4 bits
// (any view), four output channels at a time. Four inputs become the int16 pairs (x0,x2), (x1,x3)
// (bp_unpack4_s16: (S|U)XTB16 for bytes, masks for nibbles and crumbs) and a word of 4 weights splits
// with SXTB16 into (w0,w2) and (w1,w3), so SMLAD pairs them with no repacking and no scratch. A
// b-bit view is the code with its low 8-b bits cleared (one AND per word); the exact sum is the
// masked sum shifted right by 8-b. Blocks of four rows of 8-bit codes run this as an asm loop
// (dot_4rows_view), the 1-3 rows after them as C (dot_1x4). Weights stored at 4 bits with 8-bit or
// unsigned 4-bit inputs and at least four rows take their own layer (fc_s4_layer: the asm loop
// dot_4rows_s4, codes masked in place as int16 lanes x 4096, sums read per chunk); other 4-bit storage
// cases take dot_1x4's nibble-plane C loop. Weights stored at 2
// bits take the same loop with the pairs (w0,w2), (w1,w3) of each stored byte from a table
// (bp_s2_pairs, shared with conv2d); with 8-bit inputs, blocks of four rows run it as the W8A8 asm
// loop (dot_4rows_s2), with unsigned 4/2-bit inputs as a similar asm loop (dot_4rows_s2_sub). Other
// widths use the portable loop.
//
// Rounded views (bp_quant_t.w_round, w_view < w_stored): QADD8 of 2^(sh-1) per byte before the mask.
// Each loop is written once, with a constant rnd (in the asm, the QADD8 and the mask as an AND
// immediate, with the round constant in the mask's register, are a macro argument), and instantiated
// in separate out-of-line functions (fc_other_r, fc_dot_view_r, dot_1x4_r), so the floor loops keep
// their code.
//
// Unsigned 2-bit inputs with 2-bit weights (stored at 2 bits or viewed from 8-bit codes) take the packed
// path: 4 MACs per SMLAD (fc_packed2). Where K % 4 == 0, 6K <= 32767, there is a bias and the outputs are
// int32 or unsigned and clamped only by their width, all the whole blocks of four rows of an input row
// run in one asm call, requantization and output bytes included (bp_fcp_rows, fc_packed_layer).
//
// W8A8 (8-bit inputs, full view of 8-bit codes) has its own out-of-line loop (fc_w8a8): asm blocks
// of 4 or 5 weight rows sharing each unpacked input word, blocks of 5 first where they remove the
// 1-3 row tail (out_features = 10: 5 + 5), and 8-bit outputs requantized with SMMLA and USAT/SSAT.
#include "bp_dsp.h"
#include "bp_kernels.h"
#include "bp_support.h"

// sum_i x[i] * view(w[r][i]) for four weight rows (8-bit codes, view = 8 - sh) and a packed input row
// of 8-bit (signed or not) or unsigned 4/2-bit values: the unpacked inputs serve four rows.
// Masked products need k * xmax * 128 <= INT32_MAX (checked by the caller). rnd (a constant): the
// rounded view, QADD8 of BP_VIEW_RC(sh) (2^(sh-1) per byte, saturating at the top code) before the mask.
static inline __attribute__((always_inline)) uint32_t view_word(uint32_t w, uint32_t mask4, int32_t sh, const int rnd) {
    return (rnd ? bp_qadd8(w, BP_VIEW_RC(sh)) : w) & mask4;
}
static inline __attribute__((always_inline)) void dot_1x4_impl(int32_t out[4], const uint8_t *x, int32_t bits, int32_t sgn,
                                const uint8_t *const wrow[4], int32_t k, int32_t sh, const int rnd) {
    const uint32_t mask4 = ((0xFFu << sh) & 0xFFu) * 0x01010101u;
    const int32_t k4 = k & ~3;
    const uint8_t *w0p = wrow[0], *w1p = wrow[1], *w2p = wrow[2], *w3p = wrow[3];
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (int32_t i = 0; i < k4; i += 4) {
        uint32_t xe, xo;
        bp_unpack4_s16(x, i, bits, sgn, &xe, &xo);
        const uint32_t w0 = view_word(bp_load32(w0p + i), mask4, sh, rnd);
        const uint32_t w1 = view_word(bp_load32(w1p + i), mask4, sh, rnd);
        a0 = bp_smlad(xe, bp_sxtb16(w0), a0);
        a0 = bp_smlad(xo, bp_sxtb16_ror8(w0), a0);
        a1 = bp_smlad(xe, bp_sxtb16(w1), a1);
        a1 = bp_smlad(xo, bp_sxtb16_ror8(w1), a1);
        const uint32_t w2 = view_word(bp_load32(w2p + i), mask4, sh, rnd);
        const uint32_t w3 = view_word(bp_load32(w3p + i), mask4, sh, rnd);
        a2 = bp_smlad(xe, bp_sxtb16(w2), a2);
        a2 = bp_smlad(xo, bp_sxtb16_ror8(w2), a2);
        a3 = bp_smlad(xe, bp_sxtb16(w3), a3);
        a3 = bp_smlad(xo, bp_sxtb16_ror8(w3), a3);
    }
    a0 >>= sh, a1 >>= sh, a2 >>= sh, a3 >>= sh; // masked codes are multiples of 2^sh: exact
    for (int32_t i = k4; i < k; i++) {
        const int32_t xv = bp_read(x, i, bits, sgn);
        a0 += xv * bp_view((int8_t)w0p[i], 8, 8 - sh, rnd);
        a1 += xv * bp_view((int8_t)w1p[i], 8, 8 - sh, rnd);
        a2 += xv * bp_view((int8_t)w2p[i], 8, 8 - sh, rnd);
        a3 += xv * bp_view((int8_t)w3p[i], 8, 8 - sh, rnd);
    }
    out[0] = a0, out[1] = a1, out[2] = a2, out[3] = a3;
}

// The same for weights stored at 4 bits (view = 8 - sh, sh in 4..6): eight inputs at a time become
// the pairs (x0,x4), (x2,x6), (x1,x5), (x3,x7) that meet the SXTB16 halves of the weight word's two
// nibble planes (each value x16, the scale of a 4-bit view of 8-bit codes).
// rnd: the rounded view, QADD8 on each nibble plane before its mask (the other nibble below the
// code, < 16, changes neither the rounded top bits nor the saturation at 7 x 16).
static inline __attribute__((always_inline)) void dot_1x4_s4_impl(int32_t out[4], const uint8_t *x, int32_t bits, int32_t sgn,
                                   const uint8_t *const wrow[4], int32_t k, int32_t sh, const int rnd) {
    const uint32_t mask4 = ((0xFFu << sh) & 0xFFu) * 0x01010101u;
    const int32_t k8 = k & ~7;
    int32_t a[4] = {0, 0, 0, 0};
    for (int32_t i = 0; i < k8; i += 8) {
        uint32_t e0, o0, e1, o1;
        bp_unpack4_s16(x, i, bits, sgn, &e0, &o0);
        bp_unpack4_s16(x, i + 4, bits, sgn, &e1, &o1);
        const uint32_t x04 = (e0 & 0xFFFFu) | (e1 << 16), x26 = (e0 >> 16) | (e1 & 0xFFFF0000u);
        const uint32_t x15 = (o0 & 0xFFFFu) | (o1 << 16), x37 = (o0 >> 16) | (o1 & 0xFFFF0000u);
        for (int32_t r = 0; r < 4; r++) {
            const uint32_t w = bp_load32(wrow[r] + (i >> 1));
            const uint32_t lo = view_word(w << 4, mask4, sh, rnd), hi = view_word(w, mask4, sh, rnd);
            int32_t acc = a[r];
            acc = bp_smlad(x04, bp_sxtb16(lo), acc);
            acc = bp_smlad(x26, bp_sxtb16_ror8(lo), acc);
            acc = bp_smlad(x15, bp_sxtb16(hi), acc);
            a[r] = bp_smlad(x37, bp_sxtb16_ror8(hi), acc);
        }
    }
    for (int32_t r = 0; r < 4; r++) {
        int32_t acc = a[r] >> sh; // masked codes are multiples of 2^sh: exact
        for (int32_t i = k8; i < k; i++) {
            acc += bp_read(x, i, bits, sgn) * bp_read_weight(wrow[r], i, 4, 8 - sh, rnd);
        }
        out[r] = acc;
    }
}

// The same for weights stored at 2 bits (the view is the code): each stored byte of four codes gives
// the int16 pairs (w0,w2), (w1,w3) from bp_s2_pairs (one byte load, two table loads), the operands
// SXTB16 gives for a word of 8-bit codes, so the unpacked inputs meet them as in dot_1x4_impl. Exact
// products: the caller checked k * xmax * 2 <= INT32_MAX.
static inline __attribute__((always_inline)) void dot_1x4_s2_impl(int32_t out[4], const uint8_t *x, int32_t bits,
                                                                  int32_t sgn, const uint8_t *const wrow[4],
                                                                  int32_t k) {
    const int32_t k4 = k & ~3;
    const uint8_t *w0p = wrow[0], *w1p = wrow[1], *w2p = wrow[2], *w3p = wrow[3];
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (int32_t i = 0, g = 0; i < k4; i += 4, g++) {
        uint32_t xe, xo;
        bp_unpack4_s16(x, i, bits, sgn, &xe, &xo);
        const uint32_t *p0 = &bp_s2_pairs[2u * w0p[g]], *p1 = &bp_s2_pairs[2u * w1p[g]];
        a0 = bp_smlad(xe, p0[0], a0);
        a0 = bp_smlad(xo, p0[1], a0);
        a1 = bp_smlad(xe, p1[0], a1);
        a1 = bp_smlad(xo, p1[1], a1);
        const uint32_t *p2 = &bp_s2_pairs[2u * w2p[g]], *p3 = &bp_s2_pairs[2u * w3p[g]];
        a2 = bp_smlad(xe, p2[0], a2);
        a2 = bp_smlad(xo, p2[1], a2);
        a3 = bp_smlad(xe, p3[0], a3);
        a3 = bp_smlad(xo, p3[1], a3);
    }
    for (int32_t i = k4; i < k; i++) {
        const int32_t xv = bp_read(x, i, bits, sgn);
        a0 += xv * bp_read(w0p, i, 2, 1);
        a1 += xv * bp_read(w1p, i, 2, 1);
        a2 += xv * bp_read(w2p, i, 2, 1);
        a3 += xv * bp_read(w3p, i, 2, 1);
    }
    out[0] = a0, out[1] = a1, out[2] = a2, out[3] = a3;
}

// Specialised by input width, signedness and whether the view is the full 8 bits (no mask), so the
// loop has no branches and no needless ANDs. rnd (a constant): the rounded narrow views (sh > 0),
// the same loops with QADD8 before the mask.
static inline __attribute__((always_inline)) void dot_1x4_any(int32_t out[4], const uint8_t *x, int32_t bits,
                                                              int32_t sgn, const uint8_t *const wrow[4], int32_t k,
                                                              int32_t sh, int32_t stored, const int rnd) {
    if (stored == 4) {
        if (bits == 8) {
            dot_1x4_s4_impl(out, x, 8, sgn, wrow, k, sh, rnd);
        } else {
            dot_1x4_s4_impl(out, x, bits, 0, wrow, k, sh, rnd);
        }
    } else if (!rnd && bits == 8 && sh == 0) {
        if (sgn) {
            dot_1x4_impl(out, x, 8, 1, wrow, k, 0, 0);
        } else {
            dot_1x4_impl(out, x, 8, 0, wrow, k, 0, 0);
        }
    } else if (bits == 8) {
        dot_1x4_impl(out, x, 8, sgn, wrow, k, sh, rnd);
    } else if (bits == 4) {
        dot_1x4_impl(out, x, 4, 0, wrow, k, sh, rnd);
    } else {
        dot_1x4_impl(out, x, 2, 0, wrow, k, sh, rnd);
    }
}

// The floor (dot_1x4) and rounded (dot_1x4_r) instances, each out of line.
static __attribute__((noinline)) void dot_1x4(int32_t out[4], const uint8_t *x, int32_t bits, int32_t sgn,
                                              const uint8_t *const wrow[4], int32_t k, int32_t sh, int32_t stored) {
    dot_1x4_any(out, x, bits, sgn, wrow, k, sh, stored, 0);
}
static __attribute__((noinline)) void dot_1x4_r(int32_t out[4], const uint8_t *x, int32_t bits, int32_t sgn,
                                                const uint8_t *const wrow[4], int32_t k, int32_t sh, int32_t stored) {
    dot_1x4_any(out, x, bits, sgn, wrow, k, sh, stored, 1);
}

// Shared by the 4- and 5-row W8A8 asm loops. One input word (4 values) widened to the halfword pairs
// (x0, x2) in xe and (x1, x3) in xw by `ext` (sxtb16 or uxtb16):
#define BP_FC_ASM_INPUT(ext)                                                                               \
    "ldr %[xw], [%[xp]], #4\n\t" ext " %[xe], %[xw]\n\t" ext " %[xw], %[xw], ror #8\n\t"
// one weight row's 4 codes at addr, accumulated into acc:
#define BP_FC_ASM_ROW(addr, acc)                                                                           \
    "ldr %[ww], " addr "\n\t"                                                                              \
    "sxtb16 %[wt], %[ww]\n\t"                                                                              \
    "smlad %[" acc "], %[xe], %[wt], %[" acc "]\n\t"                                                        \
    "sxtb16 %[ww], %[ww], ror #8\n\t"                                                                      \
    "smlad %[" acc "], %[xw], %[ww], %[" acc "]\n\t"
// two groups per iteration (one compare and branch per 8 inputs); an odd group count enters at the
// second
#define BP_FC_ASM_LOOP(group, ext)                                                                         \
    "sub %[xw], %[end], %[xp]\n\t"                                                                         \
    "tst %[xw], #4\n\t"                                                                                    \
    "bne 2f\n\t"                                                                                           \
    "1:\n\t" group(ext) "2:\n\t" group(ext) "cmp %[xp], %[end]\n\t"                                         \
    "bne 1b\n\t"

// W8A8 (8-bit inputs signed or not, full 8-bit view of 8-bit codes): four consecutive weight rows,
// w_row bytes apart, starting at w. On ARMv7E-M the loop over groups of four inputs is one asm block
// of 24.5 instructions per 16 MACs (two groups per iteration): GCC spills the accumulators and row
// pointers of the C version.
static inline __attribute__((always_inline)) void dot_4rows_w8(int32_t out[4], const uint8_t *x, const uint8_t *w,
                                                               int32_t w_row, int32_t k, int sgn) {
    const uint8_t *const wrow[4] = {w, w + w_row, w + 2 * w_row, w + 3 * w_row};
#ifdef BP_HAVE_DSP
    const int32_t k4 = k & ~3;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    if (k4 > 0) {
        const uint8_t *xp = x, *wp = w;
        const uint8_t *const end = x + k4;
        const ptrdiff_t wr = w_row, wr3 = 3 * (ptrdiff_t)w_row;
        uint32_t xw, xe, ww, wt;
// one group of 4 inputs on rows 0-3
#define BP_FC_ASM_GROUP(ext)                                                                               \
    BP_FC_ASM_INPUT(ext)                                                                                   \
    BP_FC_ASM_ROW("[%[wp], %[wr]]", "a1") BP_FC_ASM_ROW("[%[wp], %[wr], lsl #1]", "a2")                       \
        BP_FC_ASM_ROW("[%[wp], %[wr3]]", "a3") BP_FC_ASM_ROW("[%[wp]], #4", "a0")
#define BP_FC_ASM_OPERANDS                                                                                 \
    : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [xp] "+r"(xp), [wp] "+r"(wp),              \
      [xw] "=&r"(xw), [xe] "=&r"(xe), [ww] "=&r"(ww), [wt] "=&r"(wt)                                       \
    : [wr] "r"(wr), [wr3] "r"(wr3), [end] "r"(end)                                                         \
    : "cc", "memory"
        if (sgn) {
            __asm__(BP_FC_ASM_LOOP(BP_FC_ASM_GROUP, "sxtb16") BP_FC_ASM_OPERANDS);
        } else {
            __asm__(BP_FC_ASM_LOOP(BP_FC_ASM_GROUP, "uxtb16") BP_FC_ASM_OPERANDS);
        }
#undef BP_FC_ASM_GROUP
#undef BP_FC_ASM_OPERANDS
    }
    for (int32_t i = k4; i < k; i++) {
        const int32_t xv = sgn ? (int32_t)(int8_t)x[i] : (int32_t)x[i];
        a0 += xv * (int32_t)(int8_t)wrow[0][i];
        a1 += xv * (int32_t)(int8_t)wrow[1][i];
        a2 += xv * (int32_t)(int8_t)wrow[2][i];
        a3 += xv * (int32_t)(int8_t)wrow[3][i];
    }
    out[0] = a0, out[1] = a1, out[2] = a2, out[3] = a3;
#else
    dot_1x4_impl(out, x, 8, sgn, wrow, k, 0, 0);
#endif
}

// Weights stored at 2 bits, 8-bit inputs (signed or not): four consecutive weight rows, w_row bytes
// apart, starting at w. On ARMv7E-M the loop is dot_4rows_w8's asm with a stored byte per row and
// group: LDRB, the address of its pairs in bp_s2_pairs (ADD ... lsl #3) and one LDRD of (w0,w2),
// (w1,w3), the operands SXTB16 gives for 8-bit codes. 24.5 instructions per 16 MACs, as for W8A8.
// Exact products: the caller checked k * xmax * 2 <= INT32_MAX.
static inline __attribute__((always_inline)) void dot_4rows_s2(int32_t out[4], const uint8_t *x, const uint8_t *w,
                                                               int32_t w_row, int32_t k, int sgn) {
#ifdef BP_HAVE_DSP
    const int32_t k4 = k & ~3;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    if (k4 > 0) {
        const uint8_t *xp = x, *wp = w;
        const uint8_t *const end = x + k4;
        const ptrdiff_t wr = w_row, wr3 = 3 * (ptrdiff_t)w_row;
        const uint32_t *const lut = bp_s2_pairs;
        uint32_t xw, xe, ww, wt;
// one weight row's stored byte at addr (4 codes), accumulated into acc
#define BP_FC_S2_ROW(addr, acc)                                                                            \
    "ldrb %[wt], " addr "\n\t"                                                                              \
    "add %[wt], %[lut], %[wt], lsl #3\n\t"                                                                   \
    "ldrd %[wt], %[ww], [%[wt]]\n\t"                                                                        \
    "smlad %[" acc "], %[xe], %[wt], %[" acc "]\n\t"                                                        \
    "smlad %[" acc "], %[xw], %[ww], %[" acc "]\n\t"
// one group of 4 inputs on rows 0-3
#define BP_FC_S2_GROUP(ext)                                                                                \
    BP_FC_ASM_INPUT(ext)                                                                                   \
    BP_FC_S2_ROW("[%[wp], %[wr]]", "a1") BP_FC_S2_ROW("[%[wp], %[wr], lsl #1]", "a2")                         \
        BP_FC_S2_ROW("[%[wp], %[wr3]]", "a3") BP_FC_S2_ROW("[%[wp]], #1", "a0")
#define BP_FC_S2_OPERANDS                                                                                  \
    : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [xp] "+r"(xp), [wp] "+r"(wp),              \
      [xw] "=&r"(xw), [xe] "=&r"(xe), [ww] "=&r"(ww), [wt] "=&r"(wt)                                       \
    : [wr] "r"(wr), [wr3] "r"(wr3), [end] "r"(end), [lut] "r"(lut)                                         \
    : "cc", "memory"
        if (sgn) {
            __asm__(BP_FC_ASM_LOOP(BP_FC_S2_GROUP, "sxtb16") BP_FC_S2_OPERANDS);
        } else {
            __asm__(BP_FC_ASM_LOOP(BP_FC_S2_GROUP, "uxtb16") BP_FC_S2_OPERANDS);
        }
#undef BP_FC_S2_GROUP
    }
    for (int32_t i = k4; i < k; i++) {
        const int32_t xv = sgn ? (int32_t)(int8_t)x[i] : (int32_t)x[i];
        a0 += xv * bp_read(w, i, 2, 1);
        a1 += xv * bp_read(w + w_row, i, 2, 1);
        a2 += xv * bp_read(w + 2 * w_row, i, 2, 1);
        a3 += xv * bp_read(w + 3 * w_row, i, 2, 1);
    }
    out[0] = a0, out[1] = a1, out[2] = a2, out[3] = a3;
#else
    const uint8_t *const wrow[4] = {w, w + w_row, w + 2 * w_row, w + 3 * w_row};
    dot_1x4_s2_impl(out, x, 8, sgn, wrow, k);
#endif
}

// The same for unsigned 4- or 2-bit inputs (bits, a constant): one LDRH or LDRB per 4 inputs, spread
// to t = v | v << (8 or 12) so that t & 0x000F000F (0x00030003) is (x0,x2) and the same of t >> 4 (2)
// is (x1,x3), as bp_unpack4_s16 gives them. 25 instructions per 16 MACs.
static inline __attribute__((always_inline)) void dot_4rows_s2_sub(int32_t out[4], const uint8_t *x, const uint8_t *w,
                                                                   int32_t w_row, int32_t k, const int bits) {
#ifdef BP_HAVE_DSP
    const int32_t k4 = k & ~3;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    if (k4 > 0) {
        const uint8_t *xp = x, *wp = w;
        const uint8_t *const end = x + (k4 >> (bits == 4 ? 1 : 2));
        const ptrdiff_t wr = w_row, wr3 = 3 * (ptrdiff_t)w_row;
        const uint32_t *const lut = bp_s2_pairs;
        uint32_t xw, xe, ww, wt;
#define BP_FC_S2_IN4                                                                                       \
    "ldrh %[xw], [%[xp]], #2\n\torr %[xw], %[xw], %[xw], lsl #8\n\tand %[xe], %[xw], #0x000F000F\n\t"        \
    "lsr %[xw], %[xw], #4\n\tand %[xw], %[xw], #0x000F000F\n\t"
#define BP_FC_S2_IN2                                                                                       \
    "ldrb %[xw], [%[xp]], #1\n\torr %[xw], %[xw], %[xw], lsl #12\n\tand %[xe], %[xw], #0x00030003\n\t"       \
    "lsr %[xw], %[xw], #2\n\tand %[xw], %[xw], #0x00030003\n\t"
#define BP_FC_S2_GROUP(in)                                                                                 \
    in BP_FC_S2_ROW("[%[wp], %[wr]]", "a1") BP_FC_S2_ROW("[%[wp], %[wr], lsl #1]", "a2")                      \
        BP_FC_S2_ROW("[%[wp], %[wr3]]", "a3") BP_FC_S2_ROW("[%[wp]], #1", "a0")
// two groups per iteration; an odd group count (odd: the input bytes of one group) enters at the second
#define BP_FC_S2_LOOP(in, odd)                                                                             \
    "sub %[xw], %[end], %[xp]\n\t"                                                                         \
    "tst %[xw], #" odd "\n\t"                                                                              \
    "bne 2f\n\t"                                                                                           \
    "1:\n\t" BP_FC_S2_GROUP(in) "2:\n\t" BP_FC_S2_GROUP(in) "cmp %[xp], %[end]\n\t"                         \
    "bne 1b\n\t"
        if (bits == 4) {
            __asm__(BP_FC_S2_LOOP(BP_FC_S2_IN4, "2") BP_FC_S2_OPERANDS);
        } else {
            __asm__(BP_FC_S2_LOOP(BP_FC_S2_IN2, "1") BP_FC_S2_OPERANDS);
        }
#undef BP_FC_S2_LOOP
#undef BP_FC_S2_GROUP
    }
    for (int32_t i = k4; i < k; i++) {
        const int32_t xv = bp_read(x, i, bits, 0);
        a0 += xv * bp_read(w, i, 2, 1);
        a1 += xv * bp_read(w + w_row, i, 2, 1);
        a2 += xv * bp_read(w + 2 * w_row, i, 2, 1);
        a3 += xv * bp_read(w + 3 * w_row, i, 2, 1);
    }
    out[0] = a0, out[1] = a1, out[2] = a2, out[3] = a3;
#else
    const uint8_t *const wrow[4] = {w, w + w_row, w + 2 * w_row, w + 3 * w_row};
    dot_1x4_s2_impl(out, x, bits, 0, wrow, k);
#endif
}
#undef BP_FC_S2_OPERANDS
#undef BP_FC_S2_ROW

// b-bit views of 8-bit codes (sh = 8 - b, mask = the code bits the view keeps, in a register) on
// 8-bit inputs (signed or not) or unsigned 4/2-bit inputs (bits, a constant), four consecutive rows:
// dot_4rows_w8's asm with one AND per weight word (6 instructions per row and group instead of
// dot_1x4's C loop); the masked sums are 2^sh times the exact ones (one shift at the end). Masked
// products: the caller checked k * xmax * 128 <= INT32_MAX.
// rnd (a constant, with sh a constant 4 or 6): the rounded view. The mask becomes an AND immediate
// and its register holds the round constant: QADD8 before the AND, 7 instructions per row and group.
static inline __attribute__((always_inline)) void dot_4rows_view(int32_t out[4], const uint8_t *x, const uint8_t *w,
                                                                 int32_t w_row, int32_t k, const int bits,
                                                                 const int sgn, int32_t sh, const int rnd) {
#ifdef BP_HAVE_DSP
    const int32_t k4 = k & ~3;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    if (k4 > 0) {
        const uint8_t *xp = x, *wp = w;
        const uint8_t *const end = x + (bits == 8 ? k4 : k4 >> (bits == 4 ? 1 : 2));
        const ptrdiff_t wr = w_row, wr3 = 3 * (ptrdiff_t)w_row;
        // rnd: the round constant in the mask's register (the mask is then an immediate)
        const uint32_t mask = rnd ? BP_VIEW_RC(sh) : ((0xFFu << sh) & 0xFFu) * 0x01010101u;
        uint32_t xw, xe, ww, wt;
// one row and group; view: the weight word's view, "and %[ww], %[ww], %[mask]" (floor, the mask in
// its register) or BP_FC_VR_VIEW(m) (rounded)
#define BP_FC_V_ROW(addr, acc, view)                                                                       \
    "ldr %[ww], " addr "\n\t" view                                                                          \
    "sxtb16 %[wt], %[ww]\n\t"                                                                              \
    "smlad %[" acc "], %[xe], %[wt], %[" acc "]\n\t"                                                        \
    "sxtb16 %[ww], %[ww], ror #8\n\t"                                                                      \
    "smlad %[" acc "], %[xw], %[ww], %[" acc "]\n\t"
#define BP_FC_V_GROUP(in, view)                                                                            \
    in BP_FC_V_ROW("[%[wp], %[wr]]", "a1", view) BP_FC_V_ROW("[%[wp], %[wr], lsl #1]", "a2", view)            \
        BP_FC_V_ROW("[%[wp], %[wr3]]", "a3", view) BP_FC_V_ROW("[%[wp]], #4", "a0", view)
// two groups per iteration; an odd group count (odd: the input bytes of one group) enters at the second
#define BP_FC_V_LOOP(in, odd, view)                                                                        \
    "sub %[xw], %[end], %[xp]\n\t"                                                                         \
    "tst %[xw], #" odd "\n\t"                                                                              \
    "bne 2f\n\t"                                                                                           \
    "1:\n\t" BP_FC_V_GROUP(in, view) "2:\n\t" BP_FC_V_GROUP(in, view) "cmp %[xp], %[end]\n\t"               \
    "bne 1b\n\t"
#define BP_FC_V_OPERANDS                                                                                   \
    : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [xp] "+r"(xp), [wp] "+r"(wp),              \
      [xw] "=&r"(xw), [xe] "=&r"(xe), [ww] "=&r"(ww), [wt] "=&r"(wt)                                       \
    : [wr] "r"(wr), [wr3] "r"(wr3), [end] "r"(end), [mask] "r"(mask)                                       \
    : "cc", "memory"
// the rounded view: [mask] holds BP_VIEW_RC(sh), the mask is the immediate m
#define BP_FC_VR_VIEW(m) "qadd8 %[ww], %[ww], %[mask]\n\tand %[ww], %[ww], #" m "\n\t"
// the loop for each input width and signedness
#define BP_FC_V(view)                                                                                      \
    if (bits == 8 && sgn) {                                                                                \
        __asm__(BP_FC_V_LOOP(BP_FC_ASM_INPUT("sxtb16"), "4", view) BP_FC_V_OPERANDS);                       \
    } else if (bits == 8) {                                                                                \
        __asm__(BP_FC_V_LOOP(BP_FC_ASM_INPUT("uxtb16"), "4", view) BP_FC_V_OPERANDS);                       \
    } else if (bits == 4) {                                                                                \
        __asm__(BP_FC_V_LOOP(BP_FC_S2_IN4, "2", view) BP_FC_V_OPERANDS);                                    \
    } else {                                                                                               \
        __asm__(BP_FC_V_LOOP(BP_FC_S2_IN2, "1", view) BP_FC_V_OPERANDS);                                    \
    }
        if (!rnd) {
            BP_FC_V("and %[ww], %[ww], %[mask]\n\t")
        } else if (sh == 4) {
            BP_FC_V(BP_FC_VR_VIEW("0xF0F0F0F0"))
        } else {
            BP_FC_V(BP_FC_VR_VIEW("0xC0C0C0C0"))
        }
#undef BP_FC_V
#undef BP_FC_VR_VIEW
#undef BP_FC_V_OPERANDS
#undef BP_FC_V_LOOP
#undef BP_FC_V_GROUP
#undef BP_FC_V_ROW
    }
    a0 >>= sh, a1 >>= sh, a2 >>= sh, a3 >>= sh; // masked codes are multiples of 2^sh: exact
    for (int32_t i = k4; i < k; i++) {
        const int32_t xv = bp_read(x, i, bits, sgn);
        a0 += xv * bp_view((int8_t)w[i], 8, 8 - sh, rnd);
        a1 += xv * bp_view((int8_t)w[w_row + i], 8, 8 - sh, rnd);
        a2 += xv * bp_view((int8_t)w[2 * w_row + i], 8, 8 - sh, rnd);
        a3 += xv * bp_view((int8_t)w[3 * w_row + i], 8, 8 - sh, rnd);
    }
    out[0] = a0, out[1] = a1, out[2] = a2, out[3] = a3;
#else
    const uint8_t *const wrow[4] = {w, w + w_row, w + 2 * w_row, w + 3 * w_row};
    dot_1x4_impl(out, x, bits, sgn, wrow, k, sh, rnd);
#endif
}
#undef BP_FC_S2_IN2
#undef BP_FC_S2_IN4

// Four consecutive rows of 8-bit codes at any view (dot_4rows_view), specialised by input width and
// signedness, and for the rounded 4/2-bit views (rnd, a constant) by view too (sh: the AND immediate).
static inline __attribute__((always_inline)) void fc_dot_view_any(int32_t out[4], const uint8_t *x, int32_t bits,
                                                                  int32_t sgn, const uint8_t *w, int32_t w_row,
                                                                  int32_t k, int32_t sh, const int rnd) {
#define BP_FC_VIEW(s)                                                                                      \
    if (bits == 8 && sgn) {                                                                                \
        dot_4rows_view(out, x, w, w_row, k, 8, 1, s, rnd);                                                 \
    } else if (bits == 8) {                                                                                \
        dot_4rows_view(out, x, w, w_row, k, 8, 0, s, rnd);                                                 \
    } else if (bits == 4) {                                                                                \
        dot_4rows_view(out, x, w, w_row, k, 4, 0, s, rnd);                                                 \
    } else {                                                                                               \
        dot_4rows_view(out, x, w, w_row, k, 2, 0, s, rnd);                                                 \
    }
    if (!rnd) {
        BP_FC_VIEW(sh)
    } else if (sh == 4) {
        BP_FC_VIEW(4)
    } else {
        BP_FC_VIEW(6)
    }
#undef BP_FC_VIEW
}

// The floor (fc_dot_view) and rounded (fc_dot_view_r) instances. Not inlined: the asm's 14 registers
// stay out of fc_other's register allocation.
static __attribute__((noinline)) void fc_dot_view(int32_t out[4], const uint8_t *x, int32_t bits, int32_t sgn,
                                                  const uint8_t *w, int32_t w_row, int32_t k, int32_t sh) {
    fc_dot_view_any(out, x, bits, sgn, w, w_row, k, sh, 0);
}
static __attribute__((noinline)) void fc_dot_view_r(int32_t out[4], const uint8_t *x, int32_t bits, int32_t sgn,
                                                    const uint8_t *w, int32_t w_row, int32_t k, int32_t sh) {
    fc_dot_view_any(out, x, bits, sgn, w, w_row, k, sh, 1);
}

// W8A8 with five consecutive weight rows: one more row per unpacked input word (29.5 instructions per
// 20 MACs against 24.5 per 16), and out_features = 10 (logits) splits into two blocks with no tail.
// 14 registers: row 4 is addressed as w + (w_row << 2).
static inline __attribute__((always_inline)) void dot_5rows_w8(int32_t out[5], const uint8_t *x, const uint8_t *w,
                                                               int32_t w_row, int32_t k, int sgn) {
    const int32_t k4 = k & ~3;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0;
#ifdef BP_HAVE_DSP
    if (k4 > 0) {
        const uint8_t *xp = x, *wp = w;
        const uint8_t *const end = x + k4;
        const ptrdiff_t wr = w_row, wr3 = 3 * (ptrdiff_t)w_row;
        uint32_t xw, xe, ww, wt;
// one group of 4 inputs on rows 0-4
#define BP_FC5_GROUP(ext)                                                                                  \
    BP_FC_ASM_INPUT(ext)                                                                                   \
    BP_FC_ASM_ROW("[%[wp], %[wr]]", "a1") BP_FC_ASM_ROW("[%[wp], %[wr], lsl #1]", "a2")                       \
        BP_FC_ASM_ROW("[%[wp], %[wr3]]", "a3") BP_FC_ASM_ROW("[%[wp], %[wr], lsl #2]", "a4")                  \
            BP_FC_ASM_ROW("[%[wp]], #4", "a0")
#define BP_FC5_OPERANDS                                                                                    \
    : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [a4] "+r"(a4), [xp] "+r"(xp), [wp] "+r"(wp), \
      [xw] "=&r"(xw), [xe] "=&r"(xe), [ww] "=&r"(ww), [wt] "=&r"(wt)                                       \
    : [wr] "r"(wr), [wr3] "r"(wr3), [end] "r"(end)                                                         \
    : "cc", "memory"
        if (sgn) {
            __asm__(BP_FC_ASM_LOOP(BP_FC5_GROUP, "sxtb16") BP_FC5_OPERANDS);
        } else {
            __asm__(BP_FC_ASM_LOOP(BP_FC5_GROUP, "uxtb16") BP_FC5_OPERANDS);
        }
#undef BP_FC5_GROUP
#undef BP_FC5_OPERANDS
    }
#else
    for (int32_t i = 0; i < k4; i += 4) {
        uint32_t xe, xo;
        bp_unpack4_s16(x, i, 8, sgn, &xe, &xo);
        int32_t *const acc[5] = {&a0, &a1, &a2, &a3, &a4};
        for (int32_t r = 0; r < 5; r++) {
            const uint32_t ww = bp_load32(w + r * (ptrdiff_t)w_row + i);
            *acc[r] = bp_smlad(xo, bp_sxtb16_ror8(ww), bp_smlad(xe, bp_sxtb16(ww), *acc[r]));
        }
    }
#endif
    for (int32_t i = k4; i < k; i++) {
        const int32_t xv = sgn ? (int32_t)(int8_t)x[i] : (int32_t)x[i];
        a0 += xv * (int32_t)(int8_t)w[i];
        a1 += xv * (int32_t)(int8_t)w[w_row + i];
        a2 += xv * (int32_t)(int8_t)w[2 * (ptrdiff_t)w_row + i];
        a3 += xv * (int32_t)(int8_t)w[3 * (ptrdiff_t)w_row + i];
        a4 += xv * (int32_t)(int8_t)w[4 * (ptrdiff_t)w_row + i];
    }
    out[0] = a0, out[1] = a1, out[2] = a2, out[3] = a3, out[4] = a4;
}

// W8A8 dot products of the last out_features % 4 rows (1 to 3, w_row bytes apart), two rows sharing
// each unpacked input word: no wasted rows.
static inline void dot_tail_w8(int32_t out[3], const uint8_t *x, const uint8_t *w, int32_t w_row, int32_t n,
                               int32_t k, int sgn) {
    for (int32_t r = 0; r < n; r += 2, w += 2 * (ptrdiff_t)w_row) {
        const uint8_t *w1 = r + 1 < n ? w + w_row : w; // a lone last row pairs with itself
        int32_t a = 0, b = 0, i = 0;
        for (; i + 4 <= k; i += 4) {
            uint32_t xe, xo;
            bp_unpack4_s16(x, i, 8, sgn, &xe, &xo);
            const uint32_t w0w = bp_load32(w + i), w1w = bp_load32(w1 + i);
            a = bp_smlad(xe, bp_sxtb16(w0w), a);
            a = bp_smlad(xo, bp_sxtb16_ror8(w0w), a);
            b = bp_smlad(xe, bp_sxtb16(w1w), b);
            b = bp_smlad(xo, bp_sxtb16_ror8(w1w), b);
        }
        for (; i < k; i++) {
            const int32_t xv = sgn ? (int32_t)(int8_t)x[i] : (int32_t)x[i];
            a += xv * (int32_t)(int8_t)w[i];
            b += xv * (int32_t)(int8_t)w1[i];
        }
        out[r] = a;
        if (r + 1 < n) {
            out[r + 1] = b;
        }
    }
}

// Output value: with s >= 33, (SMMLA(acc, M, 2^(s-33))) >> (s-32) equals bp_requant's rounding
// (see bp_depthwise_conv2d.c); other shifts take bp_requant, lifted to acc << (33 - s) and the shift
// 33 (its high-word case) where the value allows it (bp_rq_lift1).
static inline int32_t fc_requant(int32_t acc, int32_t m, int32_t s, int32_t lo, int32_t hi) {
    if (s < 33) {
        bp_rq_lift1(&acc, &s);
        return bp_requant(acc, m, s, lo, hi);
    }
    const int32_t v = bp_smmla(acc, m, (int32_t)1 << (s - 33)) >> (s - 32);
    return v < lo ? lo : (v > hi ? hi : v);
}

// Outputs o .. o + n - 1 of batch b from their sums acc[0 .. n-1] plus the bias: int32 logits (out_row
// 0), or requantized (fc_requant) into the packed output row orow, whose sub-byte bytes the caller
// cleared (bp_write ORs). |bias + acc| <= INT32_MAX (bp_check_acc).
static inline __attribute__((always_inline)) void fc_emit(const bp_quant_t *q, const bp_requant_t *rq,
                                                          const int32_t *bias, const int32_t *acc, int32_t o,
                                                          int32_t n, int32_t out_row, void *output, int32_t b,
                                                          int32_t nout, uint8_t *orow) {
    if (out_row == 0) { // int32 logits
        for (int32_t j = 0; j < n; j++) {
            ((int32_t *)output)[(ptrdiff_t)b * nout + o + j] = (bias ? bias[o + j] : 0) + acc[j];
        }
        return;
    }
    const int32_t lo = q->act_min, hi = q->act_max, obits = q->out.bits;
    for (int32_t j = 0; j < n; j++) {
        const int32_t v = fc_requant((bias ? bias[o + j] : 0) + acc[j], rq->multiplier[o + j], rq->shift[o + j], lo, hi);
        if (obits == 8) {
            orow[o + j] = (uint8_t)v;
        } else {
            bp_write(orow, o + j, obits, v);
        }
    }
}

enum { FC_CLAMP_ANY = 0, FC_CLAMP_U8 = 1, FC_CLAMP_S8 = 2 };

// Requantize and store n <= 5 8-bit outputs at op (bias may be NULL). Specialised by the clamp so the
// loop has no output-format branches: per value 4 loads, the shift test, SMMLA, ASR, USAT/SSAT.
static inline __attribute__((always_inline)) void fc_store8_impl(uint8_t *op, const int32_t acc[5],
                                                                 const int32_t *bias, const int32_t *mult,
                                                                 const int32_t *shift, int32_t n, int32_t lo,
                                                                 int32_t hi, const int clamp) {
    for (int32_t j = 0; j < n; j++) {
        const int32_t a = acc[j] + (bias ? bias[j] : 0), s = shift[j];
        int32_t v;
        if (s >= 33) {
            v = bp_smmla(a, mult[j], (int32_t)1 << (s - 33)) >> (s - 32);
            v = clamp == FC_CLAMP_U8 ? bp_usat8(v) : clamp == FC_CLAMP_S8 ? bp_ssat8(v) : (v < lo ? lo : (v > hi ? hi : v));
        } else {
            v = fc_requant(a, mult[j], s, lo, hi); // shifts below 33: lifted where the value allows
        }
        op[j] = (uint8_t)v;
    }
}

static inline void fc_store8(uint8_t *op, const int32_t acc[5], const int32_t *bias, const int32_t *mult,
                             const int32_t *shift, int32_t n, int32_t lo, int32_t hi, int32_t clamp) {
    if (clamp == FC_CLAMP_U8) {
        fc_store8_impl(op, acc, bias, mult, shift, n, lo, hi, FC_CLAMP_U8);
    } else if (clamp == FC_CLAMP_S8) {
        fc_store8_impl(op, acc, bias, mult, shift, n, lo, hi, FC_CLAMP_S8);
    } else {
        fc_store8_impl(op, acc, bias, mult, shift, n, lo, hi, FC_CLAMP_ANY);
    }
}

// One W8A8 block of n <= 5 output rows. Not inlined: the asm loops' 13 and 14 registers would
// otherwise change the register allocation of the other paths in bp_fully_connected.
static __attribute__((noinline)) void fc_block_w8a8(int32_t acc[5], const uint8_t *x, const uint8_t *w0,
                                                    int32_t w_row, int32_t n, int32_t k, int sgn) {
    if (n == 5) {
        if (sgn) {
            dot_5rows_w8(acc, x, w0, w_row, k, 1);
        } else {
            dot_5rows_w8(acc, x, w0, w_row, k, 0);
        }
    } else if (n == 4) {
        if (sgn) {
            dot_4rows_w8(acc, x, w0, w_row, k, 1);
        } else {
            dot_4rows_w8(acc, x, w0, w_row, k, 0);
        }
    } else if (sgn) { // the last out_features % 4 rows
        dot_tail_w8(acc, x, w0, w_row, n, k, 1);
    } else {
        dot_tail_w8(acc, x, w0, w_row, n, k, 0);
    }
}

// The W8A8 layer (8-bit inputs signed or not, full 8-bit view of 8-bit codes): blocks of 5 rows first
// where they remove the tail (out_features % 4 of them, e.g. 10 = 5 + 5), then blocks of 4, then a
// 1-3 row tail; outputs requantized straight from the block (8-bit: SMMLA and USAT/SSAT).
static __attribute__((noinline)) void fc_w8a8(const bp_quant_t *q, const bp_requant_t *rq, int32_t batches,
                                              int32_t k, int32_t nout, const uint8_t *input,
                                              const uint8_t *filter, const int32_t *bias, void *output) {
    const int32_t obits = q->out.bits, lo = q->act_min, hi = q->act_max, sgn = q->in.is_signed;
    const int32_t out_row = obits == 32 ? 0 : bp_row_bytes(nout, obits);
    const int32_t n5 = 5 * (nout & 3) <= nout ? nout & 3 : 0;
    // 8-bit outputs with the format's whole range as the clamp: one USAT/SSAT
    const int32_t clamp8 = obits != 8                                   ? FC_CLAMP_ANY
                           : (!q->out.is_signed && lo == 0 && hi == 255)  ? FC_CLAMP_U8
                           : (q->out.is_signed && lo == -128 && hi == 127) ? FC_CLAMP_S8
                                                                           : FC_CLAMP_ANY;
    for (int32_t b = 0; b < batches; b++) {
        const uint8_t *x = input + (ptrdiff_t)b * k;
        uint8_t *orow = (uint8_t *)output + (ptrdiff_t)b * out_row;
        if (out_row > 0 && obits != 8) { // sub-byte values are ORed into their bytes (bp_write)
            bp_clear_row(orow, out_row);
        }
        for (int32_t o = 0, n; o < nout; o += n) {
            int32_t acc[5];
            n = o < 5 * n5 ? 5 : (nout - o < 4 ? nout - o : 4);
            fc_block_w8a8(acc, x, filter + (ptrdiff_t)o * k, k, n, k, sgn);
            // |bias + acc| <= INT32_MAX (bp_check_acc).
            if (out_row == 0) { // int32 logits
                int32_t *const out = (int32_t *)output + (ptrdiff_t)b * nout + o;
                for (int32_t j = 0; j < n; j++) {
                    out[j] = acc[j] + (bias ? bias[o + j] : 0);
                }
                continue;
            }
            const int32_t *const mult = rq->multiplier + o, *const shift = rq->shift + o;
            if (obits == 8) {
                fc_store8(orow + o, acc, bias ? bias + o : NULL, mult, shift, n, lo, hi, clamp8);
                continue;
            }
            for (int32_t j = 0; j < n; j++) {
                bp_write(orow, o + j, obits, fc_requant(acc[j] + (bias ? bias[o + j] : 0), mult[j], shift[j], lo, hi));
            }
        }
    }
}

// Weights stored at 2 bits (the view is the code): the portable bp_dot_row of four rows, with the
// input width and the storage width constants so that each read folds to a few instructions.
static inline __attribute__((always_inline)) void fc_dot_s2_impl(int32_t out[4], const uint8_t *x, const int bits,
                                                                 int32_t sgn, const uint8_t *const wrow[4],
                                                                 int32_t k) {
    const bp_act_t in = {bits, sgn};
    for (int32_t j = 0; j < 4; j++) {
        out[j] = bp_dot_row(x, &in, wrow[j], k, 2, 2, 0);
    }
}

// Specialised by input width and signedness. 8-bit inputs (signed or not) and unsigned 4/2-bit inputs
// with k * xmax * 2 <= INT32_MAX (fast) take the table/SMLAD loop; signed 4/2-bit inputs the portable
// one.
static __attribute__((noinline)) void fc_dot_s2(int32_t out[4], const uint8_t *x, int32_t bits, int32_t sgn,
                                                const uint8_t *const wrow[4], int32_t k, int fast, int32_t n,
                                                int32_t w_row) {
    if (fast && n == 4) { // four real rows: the asm loops
        if (bits == 4) {
            dot_4rows_s2_sub(out, x, wrow[0], w_row, k, 4);
        } else if (bits == 2) {
            dot_4rows_s2_sub(out, x, wrow[0], w_row, k, 2);
        } else if (sgn) {
            dot_4rows_s2(out, x, wrow[0], w_row, k, 1);
        } else {
            dot_4rows_s2(out, x, wrow[0], w_row, k, 0);
        }
    } else if (fast) { // the 1-3 rows after the blocks: one unspecialised copy (flash)
        dot_1x4_s2_impl(out, x, bits, sgn, wrow, k);
    } else if (bits == 8) {
        fc_dot_s2_impl(out, x, 8, sgn, wrow, k);
    } else if (bits == 4) {
        fc_dot_s2_impl(out, x, 4, sgn, wrow, k);
    } else {
        fc_dot_s2_impl(out, x, 2, sgn, wrow, k);
    }
}

// Packed 2-bit rows: unsigned 2-bit inputs and 2-bit weights (stored at 2 bits, or the 2-bit view of
// 8-bit codes, floor or rounded), as in conv2d's packed path (bp_conv2d.c, file comment): two
// products per 16-bit half of SMLAD. Each input byte | x3 | x2 | x1 | x0 | becomes the bytes
// | x2 | x3 | x0 | x1 | (bp_u2_spread, shared by the four rows), each group of four weights the
// offset codes w' = w + 2 as the bytes | w3' | w2' | w1' | w0' | (bp_s2_off for 2-bit storage), so
// that bits 8..15 of SMLAD's sum collect x0*w0' + x1*w1' + x2*w2' + x3*w3' (at most 36 per SMLAD; the
// field below gains at most 18).
// After a run of 7 groups that field is <= 252 and nothing has carried into it: it is added to the
// row's sum and the run starts over. sum(x*w) = sum(x*w') - 2*sum(x); the K % 4 tail is exact C.
enum { PK_S2 = 0, PK_W8 = 1, PK_W8R = 2 }; // weights: 2-bit storage, 2-bit view of 8-bit codes, rounded

// The offset-code word of weights 4g..4g+3 of a row.
static inline __attribute__((always_inline)) uint32_t pk_word(const uint8_t *w, int32_t g, const int kind) {
    if (kind == PK_S2) {
        return bp_s2_off[w[g]];
    }
    uint32_t v = bp_load32(w + 4 * g);
    if (kind == PK_W8R) {
        v = bp_qadd8(v, BP_VIEW_RC(6));
    }
    return ((v >> 6) & 0x03030303u) ^ 0x02020202u;
}

// sum(x) over the first 4 * groups values of a packed unsigned 2-bit row.
// Four bytes at a time: the 2-bit fields added in pairs (nibbles <= 6), then the nibbles (bytes <= 12).
static inline int32_t pk_xsum(const uint8_t *x, int32_t groups) {
    uint32_t sum = 0;
    int32_t g = 0;
    for (; g + 4 <= groups; g += 4) {
        const uint32_t v = bp_load32(x + g), t = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
        sum = bp_add_bytes((t & 0x0F0F0F0Fu) + ((t >> 4) & 0x0F0F0F0Fu), sum);
    }
    for (; g < groups; g++) {
        sum = bp_add_bytes(bp_u2_spread[x[g]], sum);
    }
    return (int32_t)sum;
}

#ifdef BP_HAVE_DSP
// `runs` (1..64) runs of 7 groups of four rows in one asm loop: per group, the input byte's spread
// word (LDRB, LDR), then per row the weight word (S2: LDRB and the offset table; W8: LDR, AND of
// (w >> 6) with aux = 0x03030303, EOR; W8R: LDR, QADD8 of aux = 0x20202020, LSR, AND, EOR) and one
// SMLAD (SMUAD for the run's first group). After a run, PKHBT + UXTAB16 ror 8 add the four middle
// fields to the 16-bit halves of two sums kept on the stack beside the loop's end (the loop takes 14
// registers): a half gains at most 252 per run, so 64 runs cannot carry out of it. The sums come
// back in the halves of s[0] (rows 0, 1) and s[1] (rows 2, 3).
#define BP_FCP_FIRST(a) "smuad %[" a "], %[xs], %[w]\n\t"
#define BP_FCP_NEXT(a) "smlad %[" a "], %[xs], %[w], %[" a "]\n\t"
#define BP_FCP_S2(p, a, MUL) "ldrb %[w], [%[" p "]], #1\n\tldr %[w], [%[aux], %[w], lsl #2]\n\t" MUL(a)
#define BP_FCP_W8(p, a, MUL)                                                                               \
    "ldr %[w], [%[" p "]], #4\n\tand %[w], %[aux], %[w], lsr #6\n\teor %[w], %[w], #0x02020202\n\t" MUL(a)
#define BP_FCP_W8R(p, a, MUL)                                                                              \
    "ldr %[w], [%[" p "]], #4\n\tqadd8 %[w], %[w], %[aux]\n\tlsr %[w], %[w], #6\n\t"                          \
    "and %[w], %[w], #0x03030303\n\teor %[w], %[w], #0x02020202\n\t" MUL(a)
#define BP_FCP_GROUP(ROW, MUL)                                                                             \
    "ldrb %[xs], [%[xp]], #1\n\tldr %[xs], [%[tab], %[xs], lsl #2]\n\t" ROW("p0", "a0", MUL)                \
    ROW("p1", "a1", MUL) ROW("p2", "a2", MUL) ROW("p3", "a3", MUL)
#define BP_FCP_RUNS(ROW)                                                                                   \
    __asm__ volatile("push {%[end]}\n\tmovs %[w], #0\n\tpush {%[w]}\n\tpush {%[w]}\n"                      \
                     "1:\n\t" BP_FCP_GROUP(ROW, BP_FCP_FIRST) BP_FCP_GROUP(ROW, BP_FCP_NEXT)               \
                     BP_FCP_GROUP(ROW, BP_FCP_NEXT) BP_FCP_GROUP(ROW, BP_FCP_NEXT)                         \
                     BP_FCP_GROUP(ROW, BP_FCP_NEXT) BP_FCP_GROUP(ROW, BP_FCP_NEXT)                         \
                     BP_FCP_GROUP(ROW, BP_FCP_NEXT)                                                        \
                     "pkhbt %[xs], %[a0], %[a1], lsl #16\n\tldr %[w], [sp]\n\t"                           \
                     "uxtab16 %[w], %[w], %[xs], ror #8\n\tstr %[w], [sp]\n\t"                             \
                     "pkhbt %[xs], %[a2], %[a3], lsl #16\n\tldr %[w], [sp, #4]\n\t"                       \
                     "uxtab16 %[w], %[w], %[xs], ror #8\n\tstr %[w], [sp, #4]\n\t"                         \
                     "ldr %[w], [sp, #8]\n\tcmp %[xp], %[w]\n\tbne 1b\n\t"                                 \
                     "ldr %[a0], [sp]\n\tldr %[a1], [sp, #4]\n\tadd sp, sp, #12\n\t"                       \
                     : [xp] "+r"(xp), [p0] "+r"(p0), [p1] "+r"(p1), [p2] "+r"(p2), [p3] "+r"(p3),          \
                       [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [xs] "=&r"(xs),     \
                       [w] "=&r"(w), [end] "+r"(end)                                                       \
                     : [tab] "r"(bp_u2_spread), [aux] "r"(aux)                                              \
                     : "cc", "memory")
static inline __attribute__((always_inline)) void fc_packed2_runs(uint32_t s[2], const uint8_t *xp,
                                                                  const uint8_t *const wp[4], int32_t runs,
                                                                  const int kind) {
    const uint8_t *p0 = wp[0], *p1 = wp[1], *p2 = wp[2], *p3 = wp[3];
    const uint8_t *end = xp + 7 * runs;
    const uint32_t aux = kind == PK_S2 ? (uint32_t)(uintptr_t)bp_s2_off : kind == PK_W8 ? 0x03030303u : 0x20202020u;
    uint32_t a0, a1, a2, a3, xs, w;
    if (kind == PK_S2) {
        BP_FCP_RUNS(BP_FCP_S2);
    } else if (kind == PK_W8) {
        BP_FCP_RUNS(BP_FCP_W8);
    } else {
        BP_FCP_RUNS(BP_FCP_W8R);
    }
    (void)a2, (void)a3, (void)xs, (void)w;
    s[0] = a0, s[1] = a1;
}
#endif

// Four rows of the packed path: whole runs in asm (on ARMv7E-M), the groups after them and K % 4 in C.
// xsum: sum(x) over the first 4 * (k / 4) inputs (pk_xsum, once per input row).
static inline __attribute__((always_inline)) void fc_packed2_impl(int32_t out[4], const uint8_t *x,
                                                                  const uint8_t *const wrow[4], int32_t k,
                                                                  int32_t xsum, const int kind) {
    const int32_t groups = k >> 2;
    const uint8_t *w0 = wrow[0], *w1 = wrow[1], *w2 = wrow[2], *w3 = wrow[3];
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, g = 0;
#ifdef BP_HAVE_DSP
    const int32_t wb = kind == PK_S2 ? 1 : 4; // weight bytes per group
    for (int32_t runs = groups / 7; runs > 0;) {
        const int32_t n = runs < 64 ? runs : 64;
        const uint8_t *const wp[4] = {w0 + g * wb, w1 + g * wb, w2 + g * wb, w3 + g * wb};
        uint32_t sum[2];
        fc_packed2_runs(sum, x + g, wp, n, kind);
        s0 += (int32_t)(sum[0] & 0xFFFFu), s1 += (int32_t)(sum[0] >> 16);
        s2 += (int32_t)(sum[1] & 0xFFFFu), s3 += (int32_t)(sum[1] >> 16);
        g += 7 * n, runs -= n;
    }
#endif
    while (g < groups) { // at most 7 SMLADs per field before extraction
        const int32_t end = groups - g > 7 ? g + 7 : groups;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (; g < end; g++) {
            const uint32_t xs = bp_u2_spread[x[g]];
            a0 = bp_smlad(xs, pk_word(w0, g, kind), a0);
            a1 = bp_smlad(xs, pk_word(w1, g, kind), a1);
            a2 = bp_smlad(xs, pk_word(w2, g, kind), a2);
            a3 = bp_smlad(xs, pk_word(w3, g, kind), a3);
        }
        s0 += (a0 >> 8) & 0xFF, s1 += (a1 >> 8) & 0xFF, s2 += (a2 >> 8) & 0xFF, s3 += (a3 >> 8) & 0xFF;
    }
    s0 -= 2 * xsum, s1 -= 2 * xsum, s2 -= 2 * xsum, s3 -= 2 * xsum;
    for (int32_t i = groups * 4; i < k; i++) {
        const int32_t xv = bp_read(x, i, 2, 0);
        if (kind == PK_S2) {
            s0 += xv * bp_read(w0, i, 2, 1), s1 += xv * bp_read(w1, i, 2, 1);
            s2 += xv * bp_read(w2, i, 2, 1), s3 += xv * bp_read(w3, i, 2, 1);
        } else {
            const int r = kind == PK_W8R;
            s0 += xv * bp_view((int8_t)w0[i], 8, 2, r), s1 += xv * bp_view((int8_t)w1[i], 8, 2, r);
            s2 += xv * bp_view((int8_t)w2[i], 8, 2, r), s3 += xv * bp_view((int8_t)w3[i], 8, 2, r);
        }
    }
    out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
}

// One out-of-line instance per weight kind.
static __attribute__((noinline)) void fc_packed2(int32_t out[4], const uint8_t *x, const uint8_t *const wrow[4],
                                                 int32_t k, int32_t xsum, int kind) {
    if (kind == PK_S2) {
        fc_packed2_impl(out, x, wrow, k, xsum, PK_S2);
    } else if (kind == PK_W8) {
        fc_packed2_impl(out, x, wrow, k, xsum, PK_W8);
    } else {
        fc_packed2_impl(out, x, wrow, k, xsum, PK_W8R);
    }
}

// Whole blocks of four rows of the packed path in one call per input row (fc_packed2_rows: the asm
// bp_fcp_rows on ARMv7E-M, its C twin elsewhere): the dot products, requantization, output packing and
// stores, with no C between blocks. Needs K % 4 == 0, 6K <= 32767, a bias, and int32 outputs or
// unsigned 2/4/8-bit outputs clamped to the format's whole range (USAT), and every shift >= 33 or one
// whose lift to 33 is exact for every value bias + sum(x*w) can take (fcp_shifts_ok). Per block:
// - the sums of rows 0-1 and 2-3 are 16-bit halves that start at the seed, -2*sum(x) modulo 2^16, and
//   gain the four fields after each chunk of at most 7 groups (PKHBT + UXTAB16 ror 8, lanes wrap
//   independently), so that they end at sum(x*w) modulo 2^16: exact once sign-extended, as |sum(x*w)|
//   <= 6K <= 32767 (no limit on the number of runs);
// - the groups % 7 groups first, entering the run's group chain at group 7 - rem with the fields at 0,
//   then the whole runs;
// - acc = bias + the sign-extended sum; per row, e = max(s - 33, 0) and acc <<= max(33 - s, 0) (USAT
//   #5 of s - 33 gives e, e - (s - 33) the lift), then ((SMMUL(acc, m) >> e) + 1) >> 1 (equal to
//   SMMLA(acc, m, 2^e) >> (e + 1): the low e bits cannot carry into bit e), the last ASR in the USAT;
// - 2-bit outputs: one byte per block; 4-bit: two; 8-bit: four; int32 outputs: bias + sum, no requant.
// The rows after the last whole block (1-3) take fc_packed2.
typedef struct {
    const int32_t *bias;            // 0: this block's, advanced by 4 per block
    const int32_t *bias_end;        // 4: bias + 4 * blocks
    const int32_t *mult, *shift;    // 8, 12: advanced by 4 per block (not read for int32 outputs)
    uint8_t *out;                   // 16: advanced per block (int32 outputs: 16 bytes)
    uint32_t pad;                   // 20: unused
    const uint8_t *x;               // 24: the packed input row
    const uint8_t *w;               // 28: row 0 of the block, advanced by 4 rows per block
    int32_t w_row;                  // 32: bytes per weight row
    uint32_t seed;                  // 36: -2*sum(x) modulo 2^16 in both halves
    const uint8_t *end;             // 40: x + K / 4
    const uint32_t *tab;            // 44: bp_u2_spread
    uint32_t aux;                   // 48: bp_s2_off, 0x03030303 (floor view) or 0x20202020 (rounded)
    uint32_t ent_dot, ent_out, ent_blk; // 52..60: entry indices (the asm replaces them by addresses)
} bp_fcp_t;

enum { FCP_O32 = 0, FCP_O2 = 1, FCP_O4 = 2, FCP_O8 = 3 };

#ifdef BP_HAVE_DSP
void bp_fcp_rows(bp_fcp_t *p);

// Registers in the dot product: r0 the input pointer, r1 row 0's weights and r1 + r3 row 1's, r2 row
// 2's and r2 + r3 row 3's (r3 = w_row: rows 1 and 3 are read first, by register offset, then rows 0 and
// 2 post-incremented), r4 the sums of rows 2-3, r5-r8 the fields, r9 the spread input word, r10 the
// weight word, r11 the spread table, r12 aux, lr the sums of rows 0-1; the rest lives in the frame (a
// copy of bp_fcp_t at sp). kind: 0 2-bit storage (LDRB + offset table), 1 8-bit codes (LDR, AND lsr
// #6, EOR), 2 rounded (LDR, QADD8, LSR, AND, EOR). 2-bit storage has two copies of the 7-group chunk
// per loop iteration (u = 2: one end compare per two chunks; an odd number of chunks enters the
// second copy), the 8-bit codes one (u = 1).
__asm__(
    ".macro bp_fcq_row kind, p, post, a, op\n"
    ".if \\kind == 0\n"
    ".if \\post\n\tldrb r10, [\\p], #1\n.else\n\tldrb r10, [\\p, r3]\n.endif\n\tldr r10, [r12, r10, lsl #2]\n"
    ".else\n"
    ".if \\post\n\tldr r10, [\\p], #4\n.else\n\tldr r10, [\\p, r3]\n.endif\n"
    ".if \\kind == 1\n\tand r10, r12, r10, lsr #6\n"
    ".else\n\tqadd8 r10, r10, r12\n\tlsr r10, r10, #6\n\tand r10, r10, #0x03030303\n.endif\n"
    "\teor r10, r10, #0x02020202\n"
    ".endif\n"
    ".ifc \\op,first\n\tsmuad \\a, r9, r10\n.else\n\tsmlad \\a, r9, r10, \\a\n.endif\n"
    ".endm\n"
    ".macro bp_fcq_group name, kind, c, i, op\n"
    ".L\\name\\()_\\c\\()g\\i:\n"
    "\tldrb r9, [r0], #1\n\tldr r9, [r11, r9, lsl #2]\n"
    "\tbp_fcq_row \\kind, r1, 0, r6, \\op\n\tbp_fcq_row \\kind, r1, 1, r5, \\op\n"
    "\tbp_fcq_row \\kind, r2, 0, r8, \\op\n\tbp_fcq_row \\kind, r2, 1, r7, \\op\n"
    ".endm\n"
    // one chunk of 7 groups (copy c) and the extraction of its fields into the 16-bit sums
    ".macro bp_fcq_chunk name, kind, c\n"
    "\tbp_fcq_group \\name, \\kind, \\c, 0, first\n\tbp_fcq_group \\name, \\kind, \\c, 1, next\n"
    "\tbp_fcq_group \\name, \\kind, \\c, 2, next\n\tbp_fcq_group \\name, \\kind, \\c, 3, next\n"
    "\tbp_fcq_group \\name, \\kind, \\c, 4, next\n\tbp_fcq_group \\name, \\kind, \\c, 5, next\n"
    "\tbp_fcq_group \\name, \\kind, \\c, 6, next\n"
    "\tpkhbt r9, r5, r6, lsl #16\n\tuxtab16 lr, lr, r9, ror #8\n"
    "\tpkhbt r9, r7, r8, lsl #16\n\tuxtab16 r4, r4, r9, ror #8\n"
    ".endm\n"
    // one kind's block: pointers, seeds, the first chunk's entry, the chunks, then the shared requantization
    ".macro bp_fcq_kind name, kind, u\n"
    ".L\\name\\()_blk:\n"
    "\tldrd r0, r1, [sp, #24]\n\tldrd r3, r4, [sp, #32]\n\tmov lr, r4\n"
    "\tadd r2, r1, r3, lsl #1\n\tadd r10, r1, r3, lsl #2\n\tstr r10, [sp, #28]\n\tldrd r11, r12, [sp, #44]\n"
    "\tmovs r5, #0\n\tmovs r6, #0\n\tmovs r7, #0\n\tmovs r8, #0\n\tldr pc, [sp, #52]\n"
    "\tbp_fcq_chunk \\name, \\kind, a\n"
    ".if \\u == 2\n\tbp_fcq_chunk \\name, \\kind, b\n.endif\n"
    "\tldr r10, [sp, #40]\n\tcmp r0, r10\n\tbne .L\\name\\()_ag0\n"
    "\tb .Lbp_fcq_acc\n"
    ".endm\n"
    // requantize row value A (multiplier M, shift S; r0 scratch) to 0 .. 2^b - 1
    ".macro bp_fcq_rq A, M, S, b\n"
    "\tsub \\S, \\S, #33\n\tusat r0, #5, \\S\n\tsub \\S, r0, \\S\n\tlsl \\A, \\A, \\S\n"
    "\tsmmul \\A, \\A, \\M\n\tasr \\A, \\A, r0\n\tadd \\A, \\A, #1\n\tusat \\A, #\\b, \\A, asr #1\n"
    ".endm\n"
    // the end of a block: the next one (same kind) or the exit
    ".macro bp_fcq_next\n"
    "\tldrd r0, r1, [sp]\n\tcmp r0, r1\n\tbeq .Lbp_fcq_exit\n\tldr pc, [sp, #60]\n"
    ".endm\n"
    ".macro bp_fcq_out b\n"
    ".Lbp_fcq_q\\b:\n"
    "\tldrd r0, r1, [sp, #8]\n\tldmia r0!, {r9, r10, r11, r12}\n\tldmia r1!, {r2, r3, r4, lr}\n"
    "\tstrd r0, r1, [sp, #8]\n"
    "\tbp_fcq_rq r5, r9, r2, \\b\n\tbp_fcq_rq r6, r10, r3, \\b\n"
    "\tbp_fcq_rq r7, r11, r4, \\b\n\tbp_fcq_rq r8, r12, lr, \\b\n"
    "\tldr r0, [sp, #16]\n"
    ".if \\b == 2\n"
    "\torr r5, r5, r6, lsl #2\n\torr r5, r5, r7, lsl #4\n\torr r5, r5, r8, lsl #6\n\tstrb r5, [r0], #1\n"
    ".elseif \\b == 4\n"
    "\torr r5, r5, r6, lsl #4\n\torr r7, r7, r8, lsl #4\n\tstrb r5, [r0], #1\n\tstrb r7, [r0], #1\n"
    ".else\n"
    "\tstrb r5, [r0], #1\n\tstrb r6, [r0], #1\n\tstrb r7, [r0], #1\n\tstrb r8, [r0], #1\n"
    ".endif\n"
    "\tstr r0, [sp, #16]\n\tbp_fcq_next\n"
    ".endm\n"
    "\t.syntax unified\n"
    "\t.section .text.bp_fcp_rows,\"ax\",%progbits\n"
    "\t.p2align 2\n\t.global bp_fcp_rows\n\t.type bp_fcp_rows, %function\n\t.thumb\n\t.thumb_func\n"
    "bp_fcp_rows:\n"
    "\tpush {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\tsub sp, sp, #64\n"
    "\tldmia r0!, {r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12}\n"
    "\tstmia sp, {r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12}\n"
    "\tldmia r0, {r1, r2, r3, r4}\n\tadr.w r6, .Lbp_fcq_tab\n"
    "\tldr r2, [r6, r2, lsl #2]\n\tldr r3, [r6, r3, lsl #2]\n\tldr r4, [r6, r4, lsl #2]\n"
    "\tadd r5, sp, #48\n\tstmia r5, {r1, r2, r3, r4}\n\tbx r4\n"
    "\tbp_fcq_kind bp_fcq_s2, 0, 2\n"
    "\tbp_fcq_kind bp_fcq_w8, 1, 1\n"
    "\tbp_fcq_kind bp_fcq_w8r, 2, 1\n"
    // acc = bias + the sign-extended sums (r5-r8), then the output format's code
    ".Lbp_fcq_acc:\n"
    "\tldr r0, [sp]\n\tldmia r0!, {r5, r6, r7, r8}\n\tstr r0, [sp]\n"
    "\tsxtah r5, r5, lr\n\tadd r6, r6, lr, asr #16\n"
    "\tsxtah r7, r7, r4\n\tadd r8, r8, r4, asr #16\n\tldr pc, [sp, #56]\n"
    ".Lbp_fcq_o32:\n"
    "\tldr r0, [sp, #16]\n\tstmia r0!, {r5, r6, r7, r8}\n\tstr r0, [sp, #16]\n\tbp_fcq_next\n"
    "\tbp_fcq_out 2\n"
    "\tbp_fcq_out 4\n"
    "\tbp_fcq_out 8\n"
    ".Lbp_fcq_exit:\n\tadd sp, sp, #64\n\tpop {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n"
    "\t.p2align 2\n"
    ".Lbp_fcq_tab:\n"
    "\t.word .Lbp_fcq_s2_blk + 1, .Lbp_fcq_w8_blk + 1, .Lbp_fcq_w8r_blk + 1\n"
    "\t.word .Lbp_fcq_s2_ag0 + 1, .Lbp_fcq_s2_ag1 + 1, .Lbp_fcq_s2_ag2 + 1, .Lbp_fcq_s2_ag3 + 1\n"
    "\t.word .Lbp_fcq_s2_ag4 + 1, .Lbp_fcq_s2_ag5 + 1, .Lbp_fcq_s2_ag6 + 1\n"
    "\t.word .Lbp_fcq_s2_bg0 + 1, .Lbp_fcq_s2_bg1 + 1, .Lbp_fcq_s2_bg2 + 1, .Lbp_fcq_s2_bg3 + 1\n"
    "\t.word .Lbp_fcq_s2_bg4 + 1, .Lbp_fcq_s2_bg5 + 1, .Lbp_fcq_s2_bg6 + 1\n"
    "\t.word .Lbp_fcq_w8_ag0 + 1, .Lbp_fcq_w8_ag1 + 1, .Lbp_fcq_w8_ag2 + 1, .Lbp_fcq_w8_ag3 + 1\n"
    "\t.word .Lbp_fcq_w8_ag4 + 1, .Lbp_fcq_w8_ag5 + 1, .Lbp_fcq_w8_ag6 + 1\n"
    "\t.word .Lbp_fcq_w8_ag0 + 1, .Lbp_fcq_w8_ag1 + 1, .Lbp_fcq_w8_ag2 + 1, .Lbp_fcq_w8_ag3 + 1\n"
    "\t.word .Lbp_fcq_w8_ag4 + 1, .Lbp_fcq_w8_ag5 + 1, .Lbp_fcq_w8_ag6 + 1\n"
    "\t.word .Lbp_fcq_w8r_ag0 + 1, .Lbp_fcq_w8r_ag1 + 1, .Lbp_fcq_w8r_ag2 + 1, .Lbp_fcq_w8r_ag3 + 1\n"
    "\t.word .Lbp_fcq_w8r_ag4 + 1, .Lbp_fcq_w8r_ag5 + 1, .Lbp_fcq_w8r_ag6 + 1\n"
    "\t.word .Lbp_fcq_w8r_ag0 + 1, .Lbp_fcq_w8r_ag1 + 1, .Lbp_fcq_w8r_ag2 + 1, .Lbp_fcq_w8r_ag3 + 1\n"
    "\t.word .Lbp_fcq_w8r_ag4 + 1, .Lbp_fcq_w8r_ag5 + 1, .Lbp_fcq_w8r_ag6 + 1\n"
    "\t.word .Lbp_fcq_o32 + 1, .Lbp_fcq_q2 + 1, .Lbp_fcq_q4 + 1, .Lbp_fcq_q8 + 1\n"
    "\t.size bp_fcp_rows, . - bp_fcp_rows\n"
    "\t.text\n");
#else
// The C twin of bp_fcp_rows: the same chunks, 16-bit lanes, lift and packing.
static uint32_t fcp_lanes(uint32_t s, int32_t lo, int32_t hi) { // UXTAB16 of bits 8..15 of lo and hi
    const uint32_t l = (s + (((uint32_t)lo >> 8) & 0xFFu)) & 0xFFFFu;
    const uint32_t h = ((s >> 16) + (((uint32_t)hi >> 8) & 0xFFu)) & 0xFFFFu;
    return l | (h << 16);
}
static int32_t fcp_sext16(uint32_t h) { return (int32_t)((h & 0xFFFFu) ^ 0x8000u) - 0x8000; }
static void bp_fcp_rows(bp_fcp_t *p) {
    const int kind = (int)p->ent_blk, fmt = (int)p->ent_out - 45;
    const int32_t groups = (int32_t)(p->end - p->x), rem = groups % 7;
    while (p->bias != p->bias_end) {
        const uint8_t *const w0 = p->w, *const w1 = w0 + p->w_row, *const w2 = w1 + p->w_row,
                             *const w3 = w2 + p->w_row;
        uint32_t s01 = p->seed, s23 = p->seed;
        for (int32_t g = 0, end = rem ? rem : 7; g < groups; end = g + 7) {
            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            for (; g < end; g++) {
                const uint32_t xs = p->tab[p->x[g]];
                a0 = bp_smlad(xs, pk_word(w0, g, kind), a0);
                a1 = bp_smlad(xs, pk_word(w1, g, kind), a1);
                a2 = bp_smlad(xs, pk_word(w2, g, kind), a2);
                a3 = bp_smlad(xs, pk_word(w3, g, kind), a3);
            }
            s01 = fcp_lanes(s01, a0, a1), s23 = fcp_lanes(s23, a2, a3);
        }
        p->w = w3 + p->w_row;
        int32_t v[4] = {p->bias[0] + fcp_sext16(s01), p->bias[1] + fcp_sext16(s01 >> 16),
                        p->bias[2] + fcp_sext16(s23), p->bias[3] + fcp_sext16(s23 >> 16)};
        p->bias += 4;
        if (fmt == FCP_O32) {
            int32_t *const o = (int32_t *)(void *)p->out;
            o[0] = v[0], o[1] = v[1], o[2] = v[2], o[3] = v[3];
            p->out += 16;
            continue;
        }
        for (int32_t j = 0; j < 4; j++) {
            const int32_t d = p->shift[j] - 33, e = d < 0 ? 0 : d; // shifts <= 62
            const int32_t a = (int32_t)((uint32_t)v[j] << (e - d));  // exact (fcp_shifts_ok)
            const int32_t r = ((bp_smmla(a, p->mult[j], 0) >> e) + 1) >> 1; // = SMMLA(a, m, 2^e) >> (e + 1)
            v[j] = fmt == FCP_O2 ? bp_usat2(r) : fmt == FCP_O4 ? bp_usat4(r) : bp_usat8(r);
        }
        p->mult += 4, p->shift += 4;
        if (fmt == FCP_O2) {
            *p->out++ = (uint8_t)(v[0] | v[1] << 2 | v[2] << 4 | v[3] << 6);
        } else if (fmt == FCP_O4) {
            *p->out++ = (uint8_t)(v[0] | v[1] << 4), *p->out++ = (uint8_t)(v[2] | v[3] << 4);
        } else {
            *p->out++ = (uint8_t)v[0], *p->out++ = (uint8_t)v[1], *p->out++ = (uint8_t)v[2], *p->out++ = (uint8_t)v[3];
        }
    }
}
#endif

// Whether bp_fcp_rows may requantize rows 0 .. n-1: every shift >= 33, or 2 <= s < 33 with |bias| + 6K
// < 2^(s-2), so that (acc << (33 - s)) >> (33 - s) == acc for every acc = bias + sum(x*w), |sum| <= 6K
// (|bias| + 6K <= INT32_MAX: bp_check_acc).
static __attribute__((noinline)) int fcp_shifts_ok(const int32_t *bias, const int32_t *shift, int32_t n, int32_t k) {
    const uint32_t m = 6u * (uint32_t)k;
    for (int32_t j = 0; j < n; j += 4) { // n % 4 == 0; four rows of shifts >= 33 take one test each
        if (shift[j] < 33 || shift[j + 1] < 33 || shift[j + 2] < 33 || shift[j + 3] < 33) {
            // (|bias| + 6K) >> clamp(s - 2, 0, 31) == 0 for each row: s >= 33 passes (|bias| + 6K <=
            // INT32_MAX), s < 2 fails (6K > 0)
            uint32_t bad = 0;
            for (int32_t i = j; i < j + 4; i++) {
                const int32_t b = bias[i], t = shift[i] - 2;
                bad |= ((uint32_t)(b < 0 ? -b : b) + m) >> (t < 0 ? 0 : t > 31 ? 31 : t);
            }
            if (bad) {
                return 0;
            }
        }
    }
    return 1;
}

// Whether the packed path's whole blocks can take bp_fcp_rows: unsigned 2-bit inputs and 2-bit weights
// (the caller), K % 4 == 0, 6K <= 32767, at least one block, a bias, int32 outputs or unsigned outputs
// clamped to the format's range, and shifts that need no value-dependent lift (fcp_shifts_ok).
static int fcp_layer_ok(const bp_quant_t *q, const bp_requant_t *rq, int32_t k, int32_t nout, const int32_t *bias) {
    const int32_t obits = q->out.bits;
    if ((k & 3) != 0 || k > 5461 || nout < 4 || bias == NULL) {
        return 0;
    }
    if (obits == 32) {
        return 1;
    }
    return !q->out.is_signed && q->act_min == 0 && q->act_max == (1 << obits) - 1 &&
           fcp_shifts_ok(bias, rq->shift, nout & ~3, k);
}

// The packed layer where fcp_layer_ok holds: per input row, the whole blocks of four rows in one
// bp_fcp_rows call, then the 1-3 rows after them through fc_packed2 (rows past the last one repeat it).
static __attribute__((noinline)) void fc_packed_layer(const bp_quant_t *q, const bp_requant_t *rq, int32_t batches,
                                                      int32_t k, int32_t nout, const uint8_t *input,
                                                      const uint8_t *filter, const int32_t *bias, void *output,
                                                      int pkind) {
    const int32_t obits = q->out.bits, in_row = bp_row_bytes(k, 2), w_row = bp_row_bytes(k, q->w_stored);
    const int32_t out_row = obits == 32 ? 0 : bp_row_bytes(nout, obits);
    const int32_t blocks = nout >> 2, groups = k >> 2, rem = groups % 7, o = 4 * blocks, n = nout - o;
    const int32_t done = obits < 8 ? blocks * (obits >> 1) : 0; // whole bytes stored by the blocks
    const int fmt = obits == 32 ? FCP_O32 : obits == 2 ? FCP_O2 : obits == 4 ? FCP_O4 : FCP_O8;
    for (int32_t b = 0; b < batches; b++) {
        const uint8_t *const x = input + (ptrdiff_t)b * in_row;
        uint8_t *const orow = (uint8_t *)output + (ptrdiff_t)b * out_row;
        int32_t *const o32 = (int32_t *)output + (ptrdiff_t)b * nout;
        const int32_t xsum = pk_xsum(x, groups);
        bp_fcp_t P = {bias,
                      bias + o,
                      obits == 32 ? NULL : rq->multiplier,
                      obits == 32 ? NULL : rq->shift,
                      obits == 32 ? (uint8_t *)o32 : orow,
                      0u,
                      x,
                      filter,
                      w_row,
                      ((uint32_t)(-2 * xsum) & 0xFFFFu) * 0x10001u,
                      x + groups,
                      bp_u2_spread,
                      pkind == PK_S2 ? (uint32_t)(uintptr_t)bp_s2_off : pkind == PK_W8 ? 0x03030303u : 0x20202020u,
                      3u + 14u * (uint32_t)pkind + ((groups + 6) / 7 % 2 ? 7u : 0u) + (rem ? 7u - (uint32_t)rem : 0u),
                      45u + (uint32_t)fmt,
                      (uint32_t)pkind};
        bp_fcp_rows(&P);
        if (n == 0) {
            continue;
        }
        const uint8_t *wrow[4];
        for (int32_t j = 0; j < 4; j++) {
            wrow[j] = filter + (ptrdiff_t)(o + (j < n ? j : 0)) * w_row;
        }
        int32_t acc[4];
        fc_packed2(acc, x, wrow, k, xsum, pkind);
        if (obits == 32) {
            for (int32_t j = 0; j < n; j++) {
                o32[o + j] = bias[o + j] + acc[j];
            }
            continue;
        }
        if (obits != 8) { // sub-byte values are ORed into their bytes (bp_write)
            bp_clear_row(orow + done, out_row - done);
        }
        for (int32_t j = 0; j < n; j++) {
            const int32_t v = fc_requant(bias[o + j] + acc[j], rq->multiplier[o + j], rq->shift[o + j], q->act_min,
                                         q->act_max);
            if (obits == 8) {
                orow[o + j] = (uint8_t)v;
            } else {
                bp_write(orow, o + j, obits, v);
            }
        }
    }
}

// Weights stored at 4 bits, floor views (4, or 2: view = 8 - sh), 8-bit inputs (signed or not) or
// unsigned 4-bit inputs (bits, sgn: constants), four consecutive rows w_row bytes apart from w. No
// SXTB16 on the weights: each halfword of a weight word holds four codes (nibbles c0..c3 from bit 0,
// c4..c7 in the other halfword), and AND with mask = 0xF000F000 (view 2: 0xC000C000) of w << 12, w << 8,
// w << 4 and w gives the int16 pairs (c0,c4), (c1,c5), (c2,c6), (c3,c7) of the view's codes x 2^(sh+8)
// (the code's sign bit is the halfword's). They meet the input pairs (x0,x4), (x1,x5), (x2,x6), (x3,x7)
// (8-bit inputs: PKHBT/PKHTB of the two input words, then SXTB16/UXTB16 and its ror #8; 4-bit inputs:
// the word's nibbles, shifted and masked with 0x000F000F).
// The products carry a factor 2^(sh+8) >= 4096, so the sums are kept modulo 2^32 (SMLAD wraps) and
// read once per chunk of at most `chunk` groups of 8: with |view code << (sh-4)| <= 8, a chunk's sum S
// of x * (code << (sh-4)) has |S| <= 64 * xmax * chunk < 2^19, so the int32 accumulator is exactly
// S * 4096 and S = acc >> 12 (then >> (sh-4): the masked codes are multiples of 2^(sh-4)).
// On ARMv7E-M a chunk is one asm loop, each group of 8 in two halves (one input pair set in two
// registers, each row's word loaded once per half: 14 registers): per half, the input pairs (5
// instructions for 8-bit inputs: LDR, LDR, PKH, two extends; 4-5 for 4-bit inputs) and per row LDR,
// AND, SMLAD, AND, SMLAD. 50 instructions per 32 MACs (8-bit inputs), two groups per iteration.
static inline __attribute__((always_inline)) void dot_4rows_s4(int32_t out[4], const uint8_t *x, const uint8_t *w,
                                                               int32_t w_row, int32_t k, const int bits,
                                                               const int sgn, int32_t sh, const int rnd) {
    const uint32_t mask = ((0xFFu << sh) & 0xFFu) * 0x01000100u, rc = BP_VIEW_RC(6);
    const int32_t groups = k >> 3;
    const int32_t xmax = sgn ? 128 : (1 << bits) - 1, chunk = ((1 << 19) - 1) / (64 * xmax);
    const uint8_t *const w1 = w + w_row, *const w2 = w1 + w_row, *const w3 = w2 + w_row;
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int32_t g = 0; g < groups;) {
        const int32_t n = groups - g < chunk ? groups - g : chunk;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#ifdef BP_HAVE_DSP
        {
            const int32_t gx = bits == 8 ? 8 : 4; // input bytes per group of 8
            const uint8_t *xp = x + (ptrdiff_t)g * gx, *wp = w + 4 * (ptrdiff_t)g;
            const uint8_t *const end = xp + (ptrdiff_t)n * gx;
            const ptrdiff_t wr = w_row, wr3 = 3 * (ptrdiff_t)w_row;
            uint32_t xa, xb, ww, wt;
// one row's half: its word at addr, the pairs of nibbles l (shift sl) and h (shift sh) into acc
#define BP_FC4_ROW(addr, acc, sl, sh)                                                                      \
    "ldr %[ww], " addr "\n\t"                                                                              \
    "and %[wt], %[mask], %[ww], lsl #" sl "\n\t"                                                            \
    "smlad %[" acc "], %[xa], %[wt], %[" acc "]\n\t"                                                        \
    "and %[ww], %[mask], %[ww]" sh "\n\t"                                                                  \
    "smlad %[" acc "], %[xb], %[ww], %[" acc "]\n\t"
#define BP_FC4_HALF(ROW, sl, sh, last)                                                                     \
    ROW("[%[wp], %[wr]]", "a1", sl, sh) ROW("[%[wp], %[wr], lsl #1]", "a2", sl, sh)                           \
        ROW("[%[wp], %[wr3]]", "a3", sl, sh) ROW(last, "a0", sl, sh)
// 8-bit inputs: half 1 (x0,x4), (x1,x5) from P = | x0 x1 x4 x5 |, half 2 (x2,x6), (x3,x7) from
// Q = | x2 x3 x6 x7 |
#define BP_FC4_IN8(ext, ROW)                                                                               \
    "ldr %[xa], [%[xp]]\n\tldr %[xb], [%[xp], #4]\n\tpkhbt %[xa], %[xa], %[xb], lsl #16\n\t"                  \
    ext " %[xb], %[xa], ror #8\n\t" ext " %[xa], %[xa]\n\t" BP_FC4_HALF(ROW, "12", ", lsl #8", "[%[wp]]")        \
    "ldr %[xa], [%[xp]], #4\n\tldr %[xb], [%[xp]], #4\n\tpkhtb %[xa], %[xb], %[xa], asr #16\n\t"              \
    ext " %[xb], %[xa], ror #8\n\t" ext " %[xa], %[xa]\n\t" BP_FC4_HALF(ROW, "4", "", "[%[wp]], #4")
// unsigned 4-bit inputs: the word | x1x0 | x3x2 | x5x4 | x7x6 |, (x_m, x_m+4) = (word >> 4m) & 0x000F000F
#define BP_FC4_IN4(ROW)                                                                                    \
    "ldr %[xb], [%[xp]]\n\tand %[xa], %[xb], #0x000F000F\n\tlsr %[xb], %[xb], #4\n\t"                         \
    "and %[xb], %[xb], #0x000F000F\n\t" BP_FC4_HALF(ROW, "12", ", lsl #8", "[%[wp]]")                             \
    "ldr %[xb], [%[xp]], #4\n\tlsr %[xa], %[xb], #8\n\tand %[xa], %[xa], #0x000F000F\n\t"                     \
    "lsr %[xb], %[xb], #12\n\tand %[xb], %[xb], #0x000F000F\n\t" BP_FC4_HALF(ROW, "4", "", "[%[wp]], #4")
// two groups per iteration; an odd group count (odd: the input bytes of one group) enters at the second
#define BP_FC4_LOOP(group, odd)                                                                            \
    "sub %[xa], %[end], %[xp]\n\t"                                                                         \
    "tst %[xa], #" odd "\n\t"                                                                              \
    "bne 2f\n\t"                                                                                           \
    "1:\n\t" group "2:\n\t" group "cmp %[xp], %[end]\n\t"                                                   \
    "bne 1b\n\t"
#define BP_FC4_OPERANDS                                                                                    \
    : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [xp] "+r"(xp), [wp] "+r"(wp),              \
      [xa] "=&r"(xa), [xb] "=&r"(xb), [ww] "=&r"(ww), [wt] "=&r"(wt)                                       \
    : [wr] "r"(wr), [wr3] "r"(wr3), [end] "r"(end), [mask] "r"(mask)                                       \
    : "cc", "memory"
// the rounded 2-bit view (rnd): the planes w << 4 (c0, c2, c4, c6 at the byte tops) and w (c1, c3, c5,
// c7) each get QADD8 of rc = 0x20202020 (the nibble below a code, < 16, changes neither the rounded
// top bits nor the saturation at 7 x 16), then the mask (lsl #8 for the pairs of bytes 0 and 2). rc
// takes end's register: end is read from memory (the loop's compares).
#define BP_FC4R_ROW(addr, acc, sl, sh)                                                                     \
    "ldr %[ww], " addr "\n\t"                                                                              \
    "lsl %[wt], %[ww], #4\n\t"                                                                             \
    "qadd8 %[wt], %[wt], %[rc]\n\t"                                                                        \
    "and %[wt], %[mask], %[wt]" sh "\n\t"                                                                  \
    "smlad %[" acc "], %[xa], %[wt], %[" acc "]\n\t"                                                        \
    "qadd8 %[ww], %[ww], %[rc]\n\t"                                                                        \
    "and %[ww], %[mask], %[ww]" sh "\n\t"                                                                  \
    "smlad %[" acc "], %[xb], %[ww], %[" acc "]\n\t"
#define BP_FC4R_LOOP(group, odd)                                                                           \
    "ldr %[xa], %[endm]\n\t"                                                                               \
    "sub %[xa], %[xa], %[xp]\n\t"                                                                          \
    "tst %[xa], #" odd "\n\t"                                                                              \
    "bne 2f\n\t"                                                                                           \
    "1:\n\t" group "2:\n\t" group "ldr %[xa], %[endm]\n\t"                                                  \
    "cmp %[xp], %[xa]\n\t"                                                                                 \
    "bne 1b\n\t"
#define BP_FC4R_OPERANDS                                                                                   \
    : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [xp] "+r"(xp), [wp] "+r"(wp),              \
      [xa] "=&r"(xa), [xb] "=&r"(xb), [ww] "=&r"(ww), [wt] "=&r"(wt)                                       \
    : [wr] "r"(wr), [wr3] "r"(wr3), [endm] "m"(endv), [mask] "r"(mask), [rc] "r"(rc)                       \
    : "cc", "memory"
            if (rnd) {
                const uint8_t *endv = end;
                if (bits == 8 && sgn) {
                    __asm__(BP_FC4R_LOOP(BP_FC4_IN8("sxtb16", BP_FC4R_ROW), "8") BP_FC4R_OPERANDS);
                } else if (bits == 8) {
                    __asm__(BP_FC4R_LOOP(BP_FC4_IN8("uxtb16", BP_FC4R_ROW), "8") BP_FC4R_OPERANDS);
                } else {
                    __asm__(BP_FC4R_LOOP(BP_FC4_IN4(BP_FC4R_ROW), "4") BP_FC4R_OPERANDS);
                }
            } else if (bits == 8 && sgn) {
                __asm__(BP_FC4_LOOP(BP_FC4_IN8("sxtb16", BP_FC4_ROW), "8") BP_FC4_OPERANDS);
            } else if (bits == 8) {
                __asm__(BP_FC4_LOOP(BP_FC4_IN8("uxtb16", BP_FC4_ROW), "8") BP_FC4_OPERANDS);
            } else {
                __asm__(BP_FC4_LOOP(BP_FC4_IN4(BP_FC4_ROW), "4") BP_FC4_OPERANDS);
            }
#undef BP_FC4R_OPERANDS
#undef BP_FC4R_LOOP
#undef BP_FC4R_ROW
#undef BP_FC4_OPERANDS
#undef BP_FC4_LOOP
#undef BP_FC4_IN4
#undef BP_FC4_IN8
#undef BP_FC4_HALF
#undef BP_FC4_ROW
        }
#else
        // the same lanes and the same wrapping sums, in C
        for (int32_t i = 8 * g; i < 8 * (g + n); i += 8) {
            uint32_t p0, p1, p2, p3; // (x0,x4), (x1,x5), (x2,x6), (x3,x7)
            if (bits == 8) {
                const uint32_t A = bp_load32(x + i), B = bp_load32(x + i + 4);
                const uint32_t P = (A & 0xFFFFu) | (B << 16), Q = (B & 0xFFFF0000u) | (A >> 16);
                p0 = sgn ? bp_sxtb16(P) : bp_uxtb16(P), p1 = sgn ? bp_sxtb16_ror8(P) : bp_uxtb16_ror8(P);
                p2 = sgn ? bp_sxtb16(Q) : bp_uxtb16(Q), p3 = sgn ? bp_sxtb16_ror8(Q) : bp_uxtb16_ror8(Q);
            } else {
                const uint32_t X = bp_load32(x + (i >> 1));
                p0 = X & 0x000F000Fu, p1 = (X >> 4) & 0x000F000Fu, p2 = (X >> 8) & 0x000F000Fu;
                p3 = (X >> 12) & 0x000F000Fu;
            }
            const uint8_t *const rows[4] = {w, w1, w2, w3};
            int32_t *const acc[4] = {&a0, &a1, &a2, &a3};
            for (int32_t r = 0; r < 4; r++) {
                const uint32_t v = bp_load32(rows[r] + (i >> 1));
                const uint32_t lo = rnd ? bp_qadd8(v << 4, rc) : v << 4, hi = rnd ? bp_qadd8(v, rc) : v;
                int32_t a = *acc[r];
                a = bp_smlad(p0, (lo << 8) & mask, a);
                a = bp_smlad(p1, (hi << 8) & mask, a);
                a = bp_smlad(p2, lo & mask, a);
                *acc[r] = bp_smlad(p3, hi & mask, a);
            }
        }
#endif
        // |S| < 2^19: the accumulators are exactly S * 4096 (sh - 4 more: multiples of the view step)
        s0 += a0 >> (sh + 8), s1 += a1 >> (sh + 8), s2 += a2 >> (sh + 8), s3 += a3 >> (sh + 8);
        g += n;
    }
    for (int32_t i = 8 * groups; i < k; i++) {
        const int32_t xv = bp_read(x, i, bits, sgn);
        s0 += xv * bp_read_weight(w, i, 4, 8 - sh, rnd), s1 += xv * bp_read_weight(w1, i, 4, 8 - sh, rnd);
        s2 += xv * bp_read_weight(w2, i, 4, 8 - sh, rnd), s3 += xv * bp_read_weight(w3, i, 4, 8 - sh, rnd);
    }
    out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
}

// Four consecutive rows of 4-bit storage (dot_4rows_s4), specialised by input width and signedness:
// 8-bit inputs (signed or not) and unsigned 4-bit inputs; the floor (fc_dot_s4) and rounded (fc_dot_s4_r,
// the 2-bit view) instances. Not inlined: the asm's 14 registers stay out of the caller's allocation.
#define BP_FC_DOT_S4(name, rnd)                                                                            \
    static __attribute__((noinline)) void name(int32_t out[4], const uint8_t *x, int32_t bits, int32_t sgn,  \
                                               const uint8_t *w, int32_t w_row, int32_t k, int32_t sh) {   \
        if (bits == 8 && sgn) {                                                                            \
            dot_4rows_s4(out, x, w, w_row, k, 8, 1, sh, rnd);                                              \
        } else if (bits == 8) {                                                                            \
            dot_4rows_s4(out, x, w, w_row, k, 8, 0, sh, rnd);                                              \
        } else {                                                                                           \
            dot_4rows_s4(out, x, w, w_row, k, 4, 0, sh, rnd);                                              \
        }                                                                                                  \
    }
BP_FC_DOT_S4(fc_dot_s4, 0)
BP_FC_DOT_S4(fc_dot_s4_r, 1)
#undef BP_FC_DOT_S4

// Weights stored at 4 bits, floor views, 8-bit inputs (signed or not) or unsigned 4-bit inputs, at
// least four rows: blocks of four rows through fc_dot_s4, the 1-3 rows after the last block through the
// block that ends at the last row (its first 4 - n rows recomputed). The chunked sums are exact for any
// K that bp_check_acc accepts.
static __attribute__((noinline)) void fc_s4_layer(const bp_quant_t *q, const bp_requant_t *rq, int32_t batches,
                                                  int32_t k, int32_t nout, const uint8_t *input,
                                                  const uint8_t *filter, const int32_t *bias, void *output) {
    const int32_t in_row = bp_row_bytes(k, q->in.bits), w_row = bp_row_bytes(k, 4);
    const int32_t obits = q->out.bits, out_row = obits == 32 ? 0 : bp_row_bytes(nout, obits);
    const int32_t sh = 8 - q->w_view;
    const int rnd = q->w_round && q->w_view < 4; // the rounded 2-bit view
    for (int32_t b = 0; b < batches; b++) {
        const uint8_t *const x = input + (ptrdiff_t)b * in_row;
        uint8_t *const orow = (uint8_t *)output + (ptrdiff_t)b * out_row;
        if (out_row > 0 && obits != 8) { // sub-byte values are ORed into their bytes (bp_write)
            bp_clear_row(orow, out_row);
        }
        for (int32_t o = 0, n; o < nout; o += n) {
            n = nout - o < 4 ? nout - o : 4;
            int32_t t[4];
            (rnd ? fc_dot_s4_r : fc_dot_s4)(t, x, q->in.bits, q->in.is_signed, filter + (ptrdiff_t)(o + n - 4) * w_row,
                                            w_row, k, sh);
            fc_emit(q, rq, bias, t + 4 - n, o, n, out_row, output, b, nout, orow); // rows o.. are the block's last n
        }
    }
}

// Every other combination: four rows at a time through dot_1x4 (SMLAD on masked 8-bit codes or 4-bit
// planes) or the portable loop. Out of line, so that its register allocation does not depend on
// the W8A8 path.
// rnd (a constant): rounded narrow views (w_round, w_view < w_stored), through fc_other_r.
static inline __attribute__((always_inline)) void fc_other_impl(const bp_quant_t *q, const bp_requant_t *rq,
                                                                int32_t batches, int32_t in_features,
                                                                int32_t out_features, const uint8_t *input,
                                                                const uint8_t *filter, const int32_t *bias,
                                                                void *output, const int rnd) {
    const int32_t in_row = bp_row_bytes(in_features, q->in.bits);
    const int32_t w_row = bp_row_bytes(in_features, q->w_stored);
    const int32_t out_row = q->out.bits == 32 ? 0 : bp_row_bytes(out_features, q->out.bits);
    const int64_t xmax = q->in.is_signed ? (1 << (q->in.bits - 1)) : (1 << q->in.bits) - 1;
    // 8-bit inputs signed or not, 4/2-bit inputs unsigned (after ReLU); weights stored at 8 bits.
    // Rounded narrow views (rnd): the same loops with QADD8 before the mask.
    const int fast = (q->w_stored == 8 || q->w_stored == 4) && (q->in.bits == 8 || !q->in.is_signed) &&
                     (int64_t)in_features * xmax * 128 <= INT32_MAX;
    // weights stored at 2 bits: the same inputs, exact products of at most 2 * xmax
    const int fast_s2 = q->w_stored == 2 && (q->in.bits == 8 || !q->in.is_signed) &&
                        (int64_t)in_features * xmax * 2 <= INT32_MAX;

    // unsigned 2-bit inputs, 2-bit weights stored at 2 bits or viewed from 8-bit codes: packed SMLAD
    const int packed2 = q->in.bits == 2 && !q->in.is_signed && q->w_view == 2 && (q->w_stored == 2 || q->w_stored == 8);

    for (int32_t b = 0; b < batches; b++) {
        const uint8_t *x = input + (int64_t)b * in_row;
        uint8_t *orow = (uint8_t *)output + (int64_t)b * out_row;
        if (out_row > 0 && q->out.bits != 8) { // sub-byte values are ORed into their bytes (bp_write)
            bp_clear_row(orow, out_row);
        }
        const int32_t xsum = packed2 ? pk_xsum(x, in_features >> 2) : 0;
        for (int32_t o = 0; o < out_features; o += 4) {
            const uint8_t *const w0 = filter + (ptrdiff_t)o * w_row;
            int32_t acc[4];
            const int32_t n = out_features - o < 4 ? out_features - o : 4;
            // rows past the last one repeat it; their results are dropped
            const uint8_t *wrow[4];
            for (int32_t j = 0; j < 4; j++) {
                wrow[j] = w0 + (ptrdiff_t)(j < n ? j : 0) * w_row;
            }
            if (packed2) {
                fc_packed2(acc, x, wrow, in_features, xsum, q->w_stored == 2 ? PK_S2 : rnd ? PK_W8R : PK_W8);
            } else if (fast && q->w_stored == 8 && n == 4) { // four real rows of 8-bit codes: the asm loop
                (rnd ? fc_dot_view_r : fc_dot_view)(acc, x, q->in.bits, q->in.is_signed, w0, w_row, in_features,
                                                    8 - q->w_view);
            } else if (fast) {
                (rnd ? dot_1x4_r : dot_1x4)(acc, x, q->in.bits, q->in.is_signed, wrow, in_features, 8 - q->w_view,
                                            q->w_stored);
            } else if (q->w_stored == 2) {
                fc_dot_s2(acc, x, q->in.bits, q->in.is_signed, wrow, in_features, fast_s2, n, w_row);
            } else {
                for (int32_t j = 0; j < 4; j++) {
                    acc[j] = bp_dot_row(x, &q->in, wrow[j], in_features, q->w_stored, q->w_view, q->w_round);
                }
            }
            fc_emit(q, rq, bias, acc, o, n, out_row, output, b, out_features, orow);
        }
    }
}

// The floor (fc_other) and rounded (fc_other_r) instances, each out of line.
#define BP_FC_OTHER(name, rnd)                                                                             \
    static __attribute__((noinline)) void name(const bp_quant_t *q, const bp_requant_t *rq, int32_t batches, \
                                               int32_t in_features, int32_t out_features,                  \
                                               const uint8_t *input, const uint8_t *filter,                \
                                               const int32_t *bias, void *output) {                        \
        fc_other_impl(q, rq, batches, in_features, out_features, input, filter, bias, output, rnd);       \
    }
BP_FC_OTHER(fc_other, 0)
BP_FC_OTHER(fc_other_r, 1)
#undef BP_FC_OTHER

bp_status_t bp_fully_connected(const bp_quant_t *q,
                               const bp_requant_t *rq,
                               int32_t batches,
                               int32_t in_features,
                               int32_t out_features,
                               const uint8_t *input,
                               const uint8_t *filter,
                               const int32_t *bias,
                               void *output) {
    const bp_status_t st =
        bp_fully_connected_check(q, rq, batches, in_features, out_features, input, filter, bias, output);
    if (st != BP_OK) {
        return st;
    }
    if (q->w_stored == 8 && q->w_view == 8 && q->in.bits == 8 &&
        (int64_t)in_features * (q->in.is_signed ? 128 : 255) * 128 <= INT32_MAX) {
        fc_w8a8(q, rq, batches, in_features, out_features, input, filter, bias, output);
        return BP_OK;
    }
    if (q->in.bits == 2 && !q->in.is_signed && q->w_view == 2 && (q->w_stored == 2 || q->w_stored == 8) &&
        fcp_layer_ok(q, rq, in_features, out_features, bias)) { // the packed path's blocks in asm
        fc_packed_layer(q, rq, batches, in_features, out_features, input, filter, bias, output,
                        q->w_stored == 2 ? PK_S2 : q->w_round ? PK_W8R : PK_W8);
        return BP_OK;
    }
    if (q->w_stored == 4 && out_features >= 4 &&
        (q->in.bits == 8 || (q->in.bits == 4 && !q->in.is_signed))) { // 4-bit storage, any view
        fc_s4_layer(q, rq, batches, in_features, out_features, input, filter, bias, output);
        return BP_OK;
    }
    if (q->w_round && q->w_view < q->w_stored) {
        fc_other_r(q, rq, batches, in_features, out_features, input, filter, bias, output);
    } else {
        fc_other(q, rq, batches, in_features, out_features, input, filter, bias, output);
    }
    return BP_OK;
}
