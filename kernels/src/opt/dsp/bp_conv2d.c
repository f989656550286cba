// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation. ARMv7E-M DSP variant of bp_conv2d: same symbol, same
// results bit for bit as src/ref/bp_conv2d.c (which stays the fallback for cores without DSP).
//
// Two fast paths, each computing a 2-pixel x 2-channel block so every loaded operand is used twice:
//
// 1. SMLAD path (weights stored at 8 bits, any view, any input width): the input patch is unpacked
//    once to int16 in the order x0 x2 x1 x3 per group of 4, so that the two SXTB16 halves of a weight
//    word, (w0,w2) and (w1,w3), meet their inputs without repacking. A b-bit view of 8-bit codes is
//    the code with its low 8-b bits cleared (one AND per word): the products come out 2^(8-b) too
//    large and the exact sum is recovered with one shift at the end.
//
// 2. Packed 2-bit path (unsigned 2-bit inputs, 2-bit view of 8-bit codes): two products per 16-bit
//    half. Inputs are bytes laid out | x2 | x3 | x0 | x1 | (byte 3..0) and weights become offset
//    codes w' = w + 2 in 0..3, | w3' | w2' | w1' | w0' |, so that SMLAD's halves multiply
//    (x0*256 + x1) * (w0' + 256*w1'): bits 8..15 of the product collect x0*w0' + x1*w1'.
//    Per SMLAD that field gains at most 4*3*3 = 36 and the field below it at most 2*9 = 18, so after
//    7 SMLADs the middle field is <= 252 and nothing has carried into it: extract it then.
//    sum(x*w) = sum(x*w') - 2*sum(x), with sum(x) computed once per patch for all channels.
//
// Weights stored at 2 bits and every view of 8-bit codes leave path 1 for out-of-line variants
// (conv_packed_s2, conv_il_s2, conv_il_w8, conv_il_w8v4, conv_il_w8v2): constant tables per stored
// byte, and two patches interleaved per group of 4 so that an asm loop reads them with one pointer
// (the 4- and 2-bit views add one AND per weight word). Path 1 remains for 4-bit storage, on the same
// interleaved layout with groups of 8 (one weight word, two nibble planes) and an asm loop of its own
// (conv_s4_v4, conv_s4_v4_u4, conv_s4_v2, conv_s4_v2r; dot_2x2_s4). The packed
// 2-bit path interleaves its four byte patches the same way (IL4()), so one LDM reads a group of 4
// values of all four pixels; its asm covers every whole group (7-group runs, then a TBB entry for the
// rest), and with every shift >= 33 (or lifted to 33: acc << (33 - s) where |bias| + 6K leaves the
// headroom, bp_rq_lift) it requantizes by SMMLA/ASR/USAT like conv_c1: a whole 4-pixel block
// (every channel's dot product, requantization and output bytes) in one asm function for whole groups,
// 6K <= 32767 and USAT outputs (bp_pk_blk_*), and with a one-pixel asm (dot_1x1_packed_sum) for the
// last block of an image whose pixel count is 1 mod 4.
//
// Rounded views (bp_quant_t.w_round, w_view < w_stored): the codes sit top-aligned in their bytes
// (8-bit codes as they are, 4-bit storage as x16 nibble planes), so one QADD8 of 2^(sh-1) per byte
// (BP_VIEW_RC) before the view's AND mask (or the packed path's >> 6 & 3 ^ 2) rounds half up, and its
// signed saturation at +127 is the saturation at the stored maximum. Each loop is written once: in C
// with a constant rnd in an always_inline body, in asm with the QADD8 line as a macro argument (empty
// for the floor views). The floor and rounded instances are separate noinline functions
// (conv_il_w8v*r, conv_packed_w8v2r, conv_s4_v2r; in them the W8R loop of dot_2x2_w8, BP_PK_W8R /
// BP_PK_REQ_R / BP_P1_W8R, BP_S4R_LOOP of dot_2x2_s4), so the floor loops keep their code.
#include <string.h>

#include "bp_conv2d_internal.h"
#include "bp_dsp.h"

// Output rows a (and b, which may equal a when the block has one pixel) of image n.
typedef struct {
    int64_t row[2];
    int32_t oy[2];
    int32_t ox[2];
} bp_block_t;

// Position of patch element i: itself, or with il (two pixels interleaved, the second at col + 4)
// every group of 4 at twice its offset, | p0: 4 values | p1: 4 values | per group.
#define IL(il, i) ((il) ? ((((i) & ~3) << 1) | ((i) & 3)) : (i))

// Unpack the patch of output pixel (oy, ox) into `col` (int16, reordered x0 x2 x1 x3 per group of 4;
// the tail beyond the last full group stays in natural order). Whole groups of 4 channels take the
// bp_unpack4_s16 path when they cannot straddle a pixel (Cin % 4 == 0). il (a constant): the
// interleaved layout of IL().
static inline __attribute__((always_inline)) void im2col_s16_impl(int16_t *col,
                                                                  const uint8_t *img,
                                                                  const bp_dims_t *in,
                                                                  int32_t in_row,
                                                                  const bp_window_t *win,
                                                                  const bp_quant_t *q,
                                                                  int32_t kh,
                                                                  int32_t kw,
                                                                  int32_t oy,
                                                                  int32_t ox,
                                                                  const int il,
                                                                  const int u4) {
    const int32_t cin = in->c, k = kh * kw * cin, k4 = k & ~3;
    // u4 (a constant): the caller guarantees unsigned 4-bit inputs
    const int32_t bits = u4 ? 4 : q->in.bits, sgn = u4 ? 0 : q->in.is_signed;
    const int32_t iy0 = oy * win->stride_h - win->pad_top, ix0 = ox * win->stride_w - win->pad_left;
    if (cin == 1 && bits == 8 && iy0 >= 0 && ix0 >= 0 && iy0 + kh <= in->h && ix0 + kw <= in->w) {
        // First layers (one 8-bit channel), window inside the image: read the taps row by row, no
        // per-tap bounds check. Element i goes to position i with the middle two of each full
        // group of 4 swapped (x0 x2 x1 x3).
        const uint8_t *p0 = img + ((ptrdiff_t)iy0 * in->w + ix0) * in_row;
        int32_t i = 0;
        for (int32_t ky = 0; ky < kh; ky++) {
            const uint8_t *p = p0 + (ptrdiff_t)ky * in->w * in_row;
            for (int32_t kx = 0; kx < kw; kx++, i++) {
                const int32_t m = i & 3;
                const int32_t pos = (i < k4 && (m == 1 || m == 2)) ? (i ^ 3) : i;
                col[IL(il, pos)] = (int16_t)(sgn ? (int32_t)(int8_t)p[kx] : (int32_t)p[kx]);
            }
        }
        return;
    }
    int32_t i = 0;
    for (int32_t ky = 0; ky < kh; ky++) {
        for (int32_t kx = 0; kx < kw; kx++) {
            const uint8_t *px = bp_conv2d_pixel(img, in, in_row, oy * win->stride_h - win->pad_top + ky,
                                                ox * win->stride_w - win->pad_left + kx);
            if ((cin & 3) == 0 && (bits == 8 || !sgn)) {
                for (int32_t c = 0; c < cin; c += 4) {
                    uint32_t pair[2] = {0, 0};
                    if (px && u4) {
                        // 4 unsigned nibbles = one halfword | x3 x2 | x1 x0 |: t holds its bytes at
                        // bits 0..7 and 16..23, so one mask gives (x0,x2) and a shift and mask (x1,x3)
                        uint16_t h;
                        memcpy(&h, px + (c >> 1), sizeof h);
                        const uint32_t t = (uint32_t)h | ((uint32_t)h << 8);
                        pair[0] = t & 0x000F000Fu;
                        pair[1] = (t >> 4) & 0x000F000Fu;
                    } else if (px) {
                        bp_unpack4_s16(px, c, bits, sgn, &pair[0], &pair[1]);
                    }
                    memcpy(col + IL(il, i + c), pair, sizeof pair); // (x0,x2), (x1,x3): 2 stores
                }
                i += cin;
                continue;
            }
            for (int32_t c = 0; c < cin; c++, i++) {
                // position of element i: swap the middle two of every full group of 4
                const int32_t m = i & 3;
                const int32_t pos = (i < k4 && (m == 1 || m == 2)) ? (i ^ 3) : i;
                int32_t v = 0;
                if (px != NULL) {
                    v = bits == 8 ? (sgn ? (int32_t)(int8_t)px[c] : (int32_t)px[c]) : bp_read(px, c, bits, sgn);
                }
                col[IL(il, pos)] = (int16_t)v;
            }
        }
    }
}

// im2col for weights stored at 4 bits: groups of 8 laid out x0 x4 x2 x6 x1 x5 x3 x7, the halves of the
// weight word's two nibble planes (element m of a group goes to the 3-bit reversal of m), interleaved
// with the block's other pixel as IL() does for groups of 4 (the second pixel at col + 4): per group
// of 8, | p0: (x0,x4) (x2,x6) | p1: same | p0: (x1,x5) (x3,x7) | p1: same |, so that the asm loop of
// dot_2x2_s4 reads one nibble plane of both pixels with two LDRD from one pointer. The tail beyond
// the last full group stays in natural order (at IL(1, i)). u4 (a constant): unsigned 4-bit inputs,
// each group of 8 from one word. Kept apart from im2col_s16_impl so the 8-bit paths' code stays
// exactly as tuned.
static inline __attribute__((always_inline)) void im2col_s16_g8(int16_t *col,
                          const uint8_t *img,
                          const bp_dims_t *in,
                          int32_t in_row,
                          const bp_window_t *win,
                          const bp_quant_t *q,
                          int32_t kh,
                          int32_t kw,
                          int32_t oy,
                          int32_t ox,
                          const int u4) {
    const int32_t cin = in->c, k = kh * kw * cin, k8 = k & ~7;
    // u4 (a constant): the caller guarantees unsigned 4-bit inputs
    const int32_t bits = u4 ? 4 : q->in.bits, sgn = u4 ? 0 : q->in.is_signed;
    int32_t i = 0;
    for (int32_t ky = 0; ky < kh; ky++) {
        for (int32_t kx = 0; kx < kw; kx++) {
            const uint8_t *px = bp_conv2d_pixel(img, in, in_row, oy * win->stride_h - win->pad_top + ky,
                                                ox * win->stride_w - win->pad_left + kx);
            if ((cin & 7) == 0 && (bits == 8 || !sgn)) {
                for (int32_t c = 0; c < cin; c += 8) {
                    uint32_t v[4]; // (x0,x4), (x2,x6), (x1,x5), (x3,x7)
                    if (px && u4) {
                        // 8 unsigned nibbles, one word | x7 x6 x5 x4 x3 x2 x1 x0 |: x_m and x_m+4 are
                        // 16 bits apart, so each pair is one shift and one mask
                        uint32_t t;
                        memcpy(&t, px + (c >> 1), sizeof t);
                        v[0] = t & 0x000F000Fu, v[1] = (t >> 8) & 0x000F000Fu;
                        v[2] = (t >> 4) & 0x000F000Fu, v[3] = (t >> 12) & 0x000F000Fu;
                    } else {
                        uint32_t e0 = 0, o0 = 0, e1 = 0, o1 = 0; // (x0,x2) (x1,x3) (x4,x6) (x5,x7)
                        if (px) {
                            bp_unpack4_s16(px, c, bits, sgn, &e0, &o0);
                            bp_unpack4_s16(px, c + 4, bits, sgn, &e1, &o1);
                        }
                        // -> (x0,x4), (x2,x6), (x1,x5), (x3,x7): PKHBT/PKHTB
                        v[0] = (e0 & 0xFFFFu) | (e1 << 16), v[1] = (e0 >> 16) | (e1 & 0xFFFF0000u);
                        v[2] = (o0 & 0xFFFFu) | (o1 << 16), v[3] = (o0 >> 16) | (o1 & 0xFFFF0000u);
                    }
                    // i + c is a multiple of 8: the low plane's pair at IL(1, i + c), the high one's 8 on
                    memcpy(col + 2 * (i + c), v, 2 * sizeof v[0]);
                    memcpy(col + 2 * (i + c) + 8, v + 2, 2 * sizeof v[0]);
                }
                i += cin;
                continue;
            }
            for (int32_t c = 0; c < cin; c++, i++) {
                const int32_t m = i & 7;
                const int32_t pos = i < k8 ? (i & ~7) | ((m & 1) << 2) | (m & 2) | ((m >> 2) & 1) : i;
                col[IL(1, pos)] = px ? (int16_t)bp_read(px, c, bits, sgn) : 0;
            }
        }
    }
}

// One packed byte of four 2-bit inputs | x3 | x2 | x1 | x0 | as the bytes | x2 | x3 | x0 | x1 | the
// packed SMLAD loop reads (x1 in byte 0): looked up in a constant table (1 KiB of flash, built by
// the preprocessor) instead of ~15 shift/mask operations per byte.
#define U2_SPREAD(b) \
    ((((b) >> 2) & 3u) | (((b) & 3u) << 8) | ((((b) >> 6) & 3u) << 16) | ((((b) >> 4) & 3u) << 24))
#define U2_R4(f, n) f(n), f((n) + 1u), f((n) + 2u), f((n) + 3u)
#define U2_R16(f, n) U2_R4(f, n), U2_R4(f, (n) + 4u), U2_R4(f, (n) + 8u), U2_R4(f, (n) + 12u)
#define U2_R64(f, n) U2_R16(f, n), U2_R16(f, (n) + 16u), U2_R16(f, (n) + 32u), U2_R16(f, (n) + 48u)
#define U2_R256(f) U2_R64(f, 0u), U2_R64(f, 64u), U2_R64(f, 128u), U2_R64(f, 192u)
const uint32_t bp_u2_spread[256] = {U2_R256(U2_SPREAD)};

// Byte position of element i of a patch when 4 patches are interleaved per group of 4 values (patch
// j starts at byte 4 * j): | p0: 4 bytes | p1 | p2 | p3 | per group, so that one pointer walks all 4.
#define IL4(i) ((((i) & ~3) << 2) | ((i) & 3))

// One packed input word (4 groups of 4 values) into the interleaved patch: the spread of its bytes at
// cp, cp + 16, cp + 32 and cp + 48; returns the sum of its 16 values added to sum.
static inline __attribute__((always_inline)) uint32_t u2_word(uint8_t *cp, uint32_t b, uint32_t sum) {
    const uint32_t v0 = bp_u2_spread[b & 0xFFu], v1 = bp_u2_spread[(b >> 8) & 0xFFu];
    const uint32_t v2 = bp_u2_spread[(b >> 16) & 0xFFu], v3 = bp_u2_spread[b >> 24];
    memcpy(cp, &v0, sizeof v0);
    memcpy(cp + 16, &v1, sizeof v1);
    memcpy(cp + 32, &v2, sizeof v2);
    memcpy(cp + 48, &v3, sizeof v3);
    return bp_add_bytes(v0, bp_add_bytes(v1, bp_add_bytes(v2, bp_add_bytes(v3, sum))));
}

// Unpack a 2-bit unsigned patch to bytes | x2 | x3 | x0 | x1 | per group of 4 (tail natural), at the
// IL4() positions from col; returns sum(x) over the whole patch. With Cin % 4 == 0 every packed input
// byte is one group.
static int32_t im2col_u2(uint8_t *col,
                         const uint8_t *img,
                         const bp_dims_t *in,
                         int32_t in_row,
                         const bp_window_t *win,
                         int32_t kh,
                         int32_t kw,
                         int32_t oy,
                         int32_t ox) {
    const int32_t cin = in->c, k4 = (kh * kw * cin) & ~3;
    const int32_t iy0 = oy * win->stride_h - win->pad_top, ix0 = ox * win->stride_w - win->pad_left;
    if ((cin & 3) == 0) {
        // Every packed input byte is one group: 16 bytes apart in the interleaved patch. One table load
        // per byte, and the sum of the group's four values is one USADA8 of the spread word.
        const int32_t nb = cin >> 2, run = kw * nb;
        uint32_t sum = 0;
        uint8_t *cp = col;
        if (iy0 >= 0 && ix0 >= 0 && iy0 + kh <= in->h && ix0 + kw <= in->w && (run & 3) == 0) {
            // Window inside the image: each kernel row is run contiguous bytes (in_row == nb), read
            // a word (4 groups) at a time.
            const uint8_t *p = img + ((ptrdiff_t)iy0 * in->w + ix0) * in_row;
            for (int32_t ky = 0; ky < kh; ky++, p += (ptrdiff_t)in->w * in_row) {
                for (int32_t c = 0; c < run; c += 4, cp += 64) {
                    sum = u2_word(cp, bp_load32(p + c), sum);
                }
            }
            return (int32_t)sum;
        }
        for (int32_t ky = 0; ky < kh; ky++) {
            const int32_t iy = iy0 + ky;
            const int row_in = iy >= 0 && iy < in->h;
            for (int32_t kx = 0; kx < kw; kx++) {
                const int32_t ix = ix0 + kx;
                if (row_in && ix >= 0 && ix < in->w) {
                    const uint8_t *px = img + ((ptrdiff_t)iy * in->w + ix) * in_row;
                    for (int32_t c = 0; c < nb; c++, cp += 16) {
                        const uint32_t v = bp_u2_spread[px[c]];
                        memcpy(cp, &v, sizeof v);
                        sum = bp_add_bytes(v, sum);
                    }
                } else {
                    for (int32_t c = 0; c < nb; c++, cp += 16) {
                        memset(cp, 0, sizeof(uint32_t));
                    }
                }
            }
        }
        return (int32_t)sum;
    }
    int32_t i = 0, sum = 0;
    if (iy0 >= 0 && ix0 >= 0 && iy0 + kh <= in->h && ix0 + kw <= in->w) {
        // Window inside the image: no bounds check per tap (about a quarter of the instructions per
        // value for Cin = 1).
        const uint8_t *prow = img + ((ptrdiff_t)iy0 * in->w + ix0) * in_row;
        for (int32_t ky = 0; ky < kh; ky++, prow += (ptrdiff_t)in->w * in_row) {
            const uint8_t *px = prow;
            for (int32_t kx = 0; kx < kw; kx++, px += in_row) {
                for (int32_t c = 0; c < cin; c++, i++) {
                    const int32_t v = (px[c >> 2] >> ((c & 3) * 2)) & 3;
                    col[IL4(i < k4 ? (i ^ 1) : i)] = (uint8_t)v;
                    sum += v;
                }
            }
        }
        return sum;
    }
    for (int32_t ky = 0; ky < kh; ky++) {
        for (int32_t kx = 0; kx < kw; kx++) {
            const uint8_t *px = bp_conv2d_pixel(img, in, in_row, iy0 + ky, ix0 + kx);
            for (int32_t c = 0; c < cin; c++, i++) {
                const int32_t v = px ? bp_read(px, c, 2, 0) : 0;
                col[IL4(i < k4 ? (i ^ 1) : i)] = (uint8_t)v;
                sum += v;
            }
        }
    }
    return sum;
}

// im2col_u2 for Cin % 16 == 0 (every tap is Cin / 16 whole words) and the nbuild (1 or 4) first
// pixels of a block at once: pixel j is p + j (p + 0 for j >= np, whose results are dropped), p at
// (oy, ox). Every tap is read a word at a time, in the padding too (zero words), and the windows
// whose columns are all inside the image read each kernel row as one run of words. xneg[j] =
// -2*sum(x) of pixel j's patch. One call per block: the setup is shared by its pixels.
static __attribute__((noinline)) void im2col_u2_w16(uint8_t *col, const uint8_t *img, const bp_dims_t *in,
                                                    const bp_window_t *win, int32_t kh, int32_t kw, int32_t oy,
                                                    int32_t ox, int32_t ow, int32_t np, int32_t nbuild,
                                                    int32_t xneg[4]) {
    const int32_t nw = in->c >> 4, ih = in->h, iw = in->w;
    const ptrdiff_t px_bytes = (ptrdiff_t)nw * 4, row_bytes = (ptrdiff_t)iw * px_bytes;
    int32_t cy = oy, cx = ox;
    for (int32_t j = 0; j < nbuild; j++) {
        if (j >= np) {
            cy = oy, cx = ox;
        } else if (j > 0 && ++cx == ow) {
            cx = 0, cy++;
        }
        const int32_t iy0 = cy * win->stride_h - win->pad_top, ix0 = cx * win->stride_w - win->pad_left;
        uint8_t *cp = col + 4 * j;
        uint32_t sum = 0;
        if (ix0 >= 0 && ix0 + kw <= iw) {
            // every column inside: a kernel row is kw * nw contiguous words, or all padding
            const int32_t run = kw * nw;
            const uint8_t *p = img + (ptrdiff_t)iy0 * row_bytes + (ptrdiff_t)ix0 * px_bytes;
            for (int32_t ky = 0, iy = iy0; ky < kh; ky++, iy++, p += row_bytes) {
                if (iy >= 0 && iy < ih) {
                    const uint8_t *q = p, *const end = p + 4 * run;
                    do {
                        sum = u2_word(cp, bp_load32(q), sum);
                        q += 4, cp += 64;
                    } while (q != end);
                } else {
                    for (int32_t c = 0; c < run; c++, cp += 64) {
                        memset(cp, 0, 4), memset(cp + 16, 0, 4), memset(cp + 32, 0, 4), memset(cp + 48, 0, 4);
                    }
                }
            }
        } else {
            for (int32_t ky = 0, iy = iy0; ky < kh; ky++, iy++) {
                const int row_in = iy >= 0 && iy < ih;
                const uint8_t *p = img + (ptrdiff_t)iy * row_bytes + (ptrdiff_t)ix0 * px_bytes;
                for (int32_t kx = 0, ix = ix0; kx < kw; kx++, ix++, p += px_bytes) {
                    if (row_in && ix >= 0 && ix < iw) {
                        for (int32_t c = 0; c < nw; c++, cp += 64) {
                            sum = u2_word(cp, bp_load32(p + 4 * c), sum);
                        }
                    } else {
                        for (int32_t c = 0; c < nw; c++, cp += 64) {
                            memset(cp, 0, 4), memset(cp + 16, 0, 4), memset(cp + 32, 0, 4), memset(cp + 48, 0, 4);
                        }
                    }
                }
            }
        }
        xneg[j] = -2 * (int32_t)sum;
    }
}

// Dot products of 2 interleaved patches (im2col_s16_g8) x 2 weight rows stored at 4 bits (view =
// 8 - sh, sh a constant: 4 or 6): per 8 values, one weight word becomes two nibble planes in the high
// half of each byte (x16: the same scale as a 4-bit view of 8-bit codes), the low plane
// (w << 4) & mask with SXTB16 halves (w0,w4), (w2,w6) and the high plane w & mask with (w1,w5),
// (w3,w7); the mask (0xF0F0F0F0 or 0xC0C0C0C0, a Thumb-2 immediate) is the view. rnd (a constant,
// sh = 6): the rounded view (QADD8 of BP_VIEW_RC(sh) on each nibble plane before its mask; the other
// nibble below the code, < 16, cannot change the rounded top bits or the saturation at 7 x 16).
// On ARMv7E-M whole groups of 8 run as one asm loop, the planes one after the other: the two LDRD of
// a plane (both pixels), then per row LDR, the plane (LSL and AND, or AND), two SXTB16 and four
// SMLAD. Only one plane of one row is live, so each row's weight word is loaded once per plane (the
// second load post-increments): 40 instructions per 32 MACs, the W8 loop's 20 per 16 with a view.
// The rounded loop keeps BP_VIEW_RC in the register of the loop's end, reads the end from the stack
// and does two groups per iteration (an odd count enters at the second), like dot_2x2_w8's W8R.
// |a| <= k * xmax * 128 <= INT32_MAX (checked by the caller) before the exact shift.
static inline __attribute__((always_inline)) void dot_2x2_s4(int32_t out[2][2], const int16_t *col,
                                                             const uint8_t *const wrow[2], int32_t k,
                                                             const int sh, const int rnd) {
    const int32_t k8 = k & ~7;
    int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
#ifdef BP_HAVE_DSP
    if (k8 > 0) {
        const int16_t *cp = col;
        const uint8_t *w0 = wrow[0], *w1 = wrow[1];
        const int16_t *const end = col + 2 * k8;
        uint32_t e, o, x0a, x0b, x1a, x1b;
// one row of one plane: the weight word (ld: "]" for the low plane, "], #4" for the high one, which
// moves to the next word), the plane into e (lo: the LSL of the low plane, or nothing; view: the
// QADD8 of a rounded view, or nothing; then the mask), its SXTB16 halves and the four SMLAD
#define BP_S4_ROW(wp, ld, lo, view, mask, acc0, acc1)                                                      \
    "ldr %[e], [%[" wp "]" ld "\n\t" lo view "and %[e], %[e], #" mask "\n\t"                               \
    "sxtb16 %[o], %[e], ror #8\n\t"                                                                        \
    "sxtb16 %[e], %[e]\n\t"                                                                                \
    "smlad %[" acc0 "], %[x0a], %[e], %[" acc0 "]\n\t"                                                     \
    "smlad %[" acc0 "], %[x0b], %[o], %[" acc0 "]\n\t"                                                     \
    "smlad %[" acc1 "], %[x1a], %[e], %[" acc1 "]\n\t"                                                     \
    "smlad %[" acc1 "], %[x1b], %[o], %[" acc1 "]\n\t"
// one plane of both pixels (the patch words, 16 bytes), then rows 0 and 1
#define BP_S4_PLANE(ld, lo, view, mask)                                                                    \
    "ldrd %[x1a], %[x1b], [%[cp], #8]\n\t"                                                                 \
    "ldrd %[x0a], %[x0b], [%[cp]], #16\n\t" BP_S4_ROW("w0", ld, lo, view, mask, "a00", "a10")                \
        BP_S4_ROW("w1", ld, lo, view, mask, "a01", "a11")
// one group of 8 values: the low plane, then the high plane
#define BP_S4_GROUP(view, mask)                                                                            \
    BP_S4_PLANE("]", "lsl %[e], %[e], #4\n\t", view, mask) BP_S4_PLANE("], #4", "", view, mask)
#define BP_S4_OUTS                                                                                         \
    [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [cp] "+r"(cp), [w0] "+r"(w0),        \
        [w1] "+r"(w1), [e] "=&r"(e), [o] "=&r"(o), [x0a] "=&r"(x0a), [x0b] "=&r"(x0b), [x1a] "=&r"(x1a),    \
        [x1b] "=&r"(x1b)
#define BP_S4_LOOP(mask)                                                                                   \
    __asm__("1:\n\t" BP_S4_GROUP("", mask) "cmp %[cp], %[end]\n\t"                                        \
            "bne 1b\n\t"                                                                                   \
            : BP_S4_OUTS                                                                                   \
            : [end] "r"(end)                                                                               \
            : "cc", "memory")
#define BP_S4R_LOOP(mask)                                                                                  \
    __asm__("ldr %[e], %[end]\n\t"                                                                         \
            "sub %[e], %[e], %[cp]\n\t"                                                                    \
            "tst %[e], #32\n\t"                                                                            \
            "bne 2f\n"                                                                                     \
            "1:\n\t" BP_S4_GROUP("qadd8 %[e], %[e], %[rc]\n\t", mask) "2:\n\t"                             \
                BP_S4_GROUP("qadd8 %[e], %[e], %[rc]\n\t", mask) "ldr %[e], %[end]\n\t"                      \
                                                                 "cmp %[cp], %[e]\n\t"                      \
                                                                 "bne 1b\n\t"                               \
            : BP_S4_OUTS                                                                                   \
            : [end] "m"(end), [rc] "r"(BP_VIEW_RC(sh))                                                      \
            : "cc", "memory")
        if (sh == 4) { // the full view: never rounded (rnd needs a view narrower than the storage)
            BP_S4_LOOP("0xF0F0F0F0");
        } else if (rnd) {
            BP_S4R_LOOP("0xC0C0C0C0");
        } else {
            BP_S4_LOOP("0xC0C0C0C0");
        }
#undef BP_S4R_LOOP
#undef BP_S4_LOOP
#undef BP_S4_OUTS
#undef BP_S4_GROUP
#undef BP_S4_PLANE
#undef BP_S4_ROW
    }
#else
    const uint32_t mask4 = ((0xFFu << sh) & 0xFFu) * 0x01010101u, rc = BP_VIEW_RC(sh);
    for (int32_t i = 0; i < k8; i += 8) {
        const uint32_t w0 = bp_load32(wrow[0] + (i >> 1)), w1 = bp_load32(wrow[1] + (i >> 1));
        uint32_t l0 = w0 << 4, h0 = w0, l1 = w1 << 4, h1 = w1;
        if (rnd) {
            l0 = bp_qadd8(l0, rc), h0 = bp_qadd8(h0, rc), l1 = bp_qadd8(l1, rc), h1 = bp_qadd8(h1, rc);
        }
        l0 &= mask4, h0 &= mask4, l1 &= mask4, h1 &= mask4;
        const uint32_t p0[4] = {bp_sxtb16(l0), bp_sxtb16_ror8(l0), bp_sxtb16(h0), bp_sxtb16_ror8(h0)};
        const uint32_t p1[4] = {bp_sxtb16(l1), bp_sxtb16_ror8(l1), bp_sxtb16(h1), bp_sxtb16_ror8(h1)};
        for (int32_t t = 0; t < 4; t++) {
            // plane t >> 1 of the group: pixel 0's two words, then pixel 1's
            const int16_t *x = col + 2 * i + 8 * (t >> 1) + 2 * (t & 1);
            const uint32_t x0 = bp_load32(x), x1 = bp_load32(x + 4);
            a00 = bp_smlad(x0, p0[t], a00);
            a01 = bp_smlad(x0, p1[t], a01);
            a10 = bp_smlad(x1, p0[t], a10);
            a11 = bp_smlad(x1, p1[t], a11);
        }
    }
#endif
    // Masked codes are exact multiples of 2^sh: the shift is exact.
    a00 >>= sh, a01 >>= sh, a10 >>= sh, a11 >>= sh;
    for (int32_t i = k8; i < k; i++) {
        const int32_t v0 = bp_read_weight(wrow[0], i, 4, 8 - sh, rnd), v1 = bp_read_weight(wrow[1], i, 4, 8 - sh, rnd);
        const int32_t x0 = col[IL(1, i)], x1 = col[IL(1, i) + 4];
        a00 += x0 * v0;
        a01 += x0 * v1;
        a10 += x1 * v0;
        a11 += x1 * v1;
    }
    out[0][0] = a00, out[0][1] = a01, out[1][0] = a10, out[1][1] = a11;
}

// Weights stored at 2 bits (four codes per byte, | c3 | c2 | c1 | c0 |): constant tables indexed by
// one stored byte, built by the preprocessor.
// - bp_s2_pairs[2b], [2b+1]: the int16 pairs (w0,w2), (w1,w3) of the byte's signed codes, the same
//   operands SXTB16 gives for an 8-bit weight word, so the SMLAD path's patch layout (x0 x2 x1 x3)
//   and loop serve 2-bit storage with one byte load and two table loads per 4 weights (2 KiB; shared
//   with the fully connected kernel, declared in bp_dsp.h).
// - bp_s2_off[b]: the offset codes w' = w + 2 = c ^ 2 as the bytes | w3' | w2' | w1' | w0' | of the
//   packed 2-bit path (1 KiB).
#define S2_V(c) ((((c) ^ 2u) - 2u) & 0xFFFFu) /* signed 2-bit code -> int16 bits */
#define S2_C(b, j) (((b) >> (2u * (j))) & 3u)
#define S2_EVEN(b) (S2_V(S2_C(b, 0u)) | (S2_V(S2_C(b, 2u)) << 16))
#define S2_ODD(b) (S2_V(S2_C(b, 1u)) | (S2_V(S2_C(b, 3u)) << 16))
#define S2_PAIR(b) S2_EVEN(b), S2_ODD(b)
#define S2_OFF(b) \
    ((S2_C(b, 0u) ^ 2u) | ((S2_C(b, 1u) ^ 2u) << 8) | ((S2_C(b, 2u) ^ 2u) << 16) | ((S2_C(b, 3u) ^ 2u) << 24))
const uint32_t bp_s2_pairs[512] = {U2_R256(S2_PAIR)};
const uint32_t bp_s2_off[256] = {U2_R256(S2_OFF)};

// Signed code i of a row of 2-bit codes.
static inline int32_t s2_code(const uint8_t *wrow, int32_t i) {
    return (int32_t)((((uint32_t)wrow[i >> 2] >> (2 * (i & 3))) & 3u) ^ 2u) - 2;
}

// Dot products of 2 patches x 2 weight rows stored at 2 bits (the view is the code). The patches are
// interleaved (IL(): per group of 4, pixel 0's (x0,x2) (x1,x3) then pixel 1's), and each stored
// byte's SXTB16-style halves come from bp_s2_pairs. On ARMv7E-M the loop is one asm block of 19
// instructions per 16 MACs (GCC's C version spills: 32). Exact products, no final shift:
// |a| <= k * xmax * 2 <= INT32_MAX (bp_check_acc).
static inline __attribute__((always_inline)) void dot_2x2_s2(int32_t out[2][2], const int16_t *col,
                                                             const uint8_t *const wrow[2], int32_t k) {
    const int32_t k4 = k & ~3;
    int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
#ifdef BP_HAVE_DSP
    if (k4 > 0) {
        const int16_t *cp = col;
        const uint8_t *w0 = wrow[0], *w1 = wrow[1];
        const int16_t *const end = col + 2 * k4;
        const uint32_t *const lut = bp_s2_pairs;
        uint32_t e, o, x0e, x0o, x1e, x1o;
#define BP_S2_ROW(wp, acc0, acc1)                                                                          \
    "ldrb %[e], [%[" wp "]], #1\n\t"                                                                       \
    "add %[e], %[lut], %[e], lsl #3\n\t"                                                                   \
    "ldrd %[e], %[o], [%[e]]\n\t"                                                                          \
    "smlad %[" acc0 "], %[x0e], %[e], %[" acc0 "]\n\t"                                                     \
    "smlad %[" acc0 "], %[x0o], %[o], %[" acc0 "]\n\t"                                                     \
    "smlad %[" acc1 "], %[x1e], %[e], %[" acc1 "]\n\t"                                                     \
    "smlad %[" acc1 "], %[x1o], %[o], %[" acc1 "]\n\t"
        __asm__("1:\n\t"
                "ldrd %[x1e], %[x1o], [%[cp], #8]\n\t"
                "ldrd %[x0e], %[x0o], [%[cp]], #16\n\t" BP_S2_ROW("w0", "a00", "a10") BP_S2_ROW("w1", "a01", "a11")
                "ldr %[e], %[end]\n\t"
                "cmp %[cp], %[e]\n\t"
                "bne 1b\n\t"
                : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [cp] "+r"(cp), [w0] "+r"(w0),
                  [w1] "+r"(w1), [e] "=&r"(e), [o] "=&r"(o), [x0e] "=&r"(x0e), [x0o] "=&r"(x0o), [x1e] "=&r"(x1e),
                  [x1o] "=&r"(x1o)
                : [lut] "r"(lut), [end] "m"(end)
                : "cc", "memory");
#undef BP_S2_ROW
    }
#else
    for (int32_t i = 0; i < k4; i += 4) {
        const uint32_t *p0 = &bp_s2_pairs[2u * wrow[0][i >> 2]], *p1 = &bp_s2_pairs[2u * wrow[1][i >> 2]];
        const uint32_t x0e = bp_load32(col + 2 * i), x0o = bp_load32(col + 2 * i + 2);
        const uint32_t x1e = bp_load32(col + 2 * i + 4), x1o = bp_load32(col + 2 * i + 6);
        a00 = bp_smlad(x0o, p0[1], bp_smlad(x0e, p0[0], a00));
        a10 = bp_smlad(x1o, p0[1], bp_smlad(x1e, p0[0], a10));
        a01 = bp_smlad(x0o, p1[1], bp_smlad(x0e, p1[0], a01));
        a11 = bp_smlad(x1o, p1[1], bp_smlad(x1e, p1[0], a11));
    }
#endif
    for (int32_t i = k4; i < k; i++) {
        const int32_t v0 = s2_code(wrow[0], i), v1 = s2_code(wrow[1], i);
        const int32_t x0 = col[IL(1, i)], x1 = col[IL(1, i) + 4];
        a00 += x0 * v0;
        a01 += x0 * v1;
        a10 += x1 * v0;
        a11 += x1 * v1;
    }
    out[0][0] = a00, out[0][1] = a01, out[1][0] = a10, out[1][1] = a11;
}

// W8A8-style dot products of 2 interleaved patches x 2 rows of 8-bit codes at view 8 - sh (sh a
// constant: 0, 4 or 6): path 1's 2x2 SMLAD loop as one asm block of 18 instructions per 16 MACs
// (GCC's C version spills: 25). A narrower view clears the low sh bits of each code with one AND
// (a Thumb-2 immediate, no register) per weight word, 20 instructions per 16 MACs: the products are
// 2^sh x too large and one exact shift at the end recovers the sum; the caller checked
// |a| <= k * xmax * 128 <= INT32_MAX before the shift.
// rnd (a constant, sh > 0): the rounded view, QADD8 of BP_VIEW_RC(sh) before the AND. The round
// constant takes the register of the loop's end, which is read from the stack instead, and the loop
// does two groups per iteration (an odd group count enters at the second) to pay for that load:
// 21.5 instructions per 16 MACs.
static inline __attribute__((always_inline)) void dot_2x2_w8(int32_t out[2][2], const int16_t *col,
                                                             const uint8_t *const wrow[2], int32_t k,
                                                             const int sh, const int rnd) {
    const int32_t k4 = k & ~3;
    int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
#ifdef BP_HAVE_DSP
    if (k4 > 0) {
        const int16_t *cp = col;
        const uint8_t *w0 = wrow[0], *w1 = wrow[1];
        const int16_t *const end = col + 2 * k4;
        uint32_t e, o, x0e, x0o, x1e, x1o;
#define BP_W8_ROW(wp, acc0, acc1, mask)                                                                    \
    "ldr %[e], [%[" wp "]], #4\n\t" mask                                                                   \
    "sxtb16 %[o], %[e], ror #8\n\t"                                                                        \
    "sxtb16 %[e], %[e]\n\t"                                                                                \
    "smlad %[" acc0 "], %[x0e], %[e], %[" acc0 "]\n\t"                                                     \
    "smlad %[" acc0 "], %[x0o], %[o], %[" acc0 "]\n\t"                                                     \
    "smlad %[" acc1 "], %[x1e], %[e], %[" acc1 "]\n\t"                                                     \
    "smlad %[" acc1 "], %[x1o], %[o], %[" acc1 "]\n\t"
// one group of 4 values: both pixels' (x0,x2) (x1,x3), then rows 0 and 1 (view: the AND, or for the
// rounded views QADD8 and AND, of each weight word)
#define BP_W8_GROUP(view)                                                                                  \
    "ldrd %[x1e], %[x1o], [%[cp], #8]\n\t"                                                                 \
    "ldrd %[x0e], %[x0o], [%[cp]], #16\n\t" BP_W8_ROW("w0", "a00", "a10", view)                            \
        BP_W8_ROW("w1", "a01", "a11", view)
#define BP_W8_OUTS                                                                                         \
    [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [cp] "+r"(cp), [w0] "+r"(w0),        \
        [w1] "+r"(w1), [e] "=&r"(e), [o] "=&r"(o), [x0e] "=&r"(x0e), [x0o] "=&r"(x0o), [x1e] "=&r"(x1e),    \
        [x1o] "=&r"(x1o)
#define BP_W8_LOOP(mask)                                                                                   \
    __asm__("1:\n\t" BP_W8_GROUP(mask) "cmp %[cp], %[end]\n\t"                                              \
            "bne 1b\n\t"                                                                                   \
            : BP_W8_OUTS                                                                                   \
            : [end] "r"(end)                                                                               \
            : "cc", "memory")
#define BP_W8R_LOOP(mask)                                                                                  \
    __asm__("ldr %[e], %[end]\n\t"                                                                         \
            "sub %[e], %[e], %[cp]\n\t"                                                                    \
            "tst %[e], #16\n\t"                                                                            \
            "bne 2f\n"                                                                                     \
            "1:\n\t" BP_W8_GROUP("qadd8 %[e], %[e], %[rc]\n\t" mask) "2:\n\t"                               \
                BP_W8_GROUP("qadd8 %[e], %[e], %[rc]\n\t" mask) "ldr %[e], %[end]\n\t"                      \
                                                                "cmp %[cp], %[e]\n\t"                       \
                                                                "bne 1b\n\t"                                \
            : BP_W8_OUTS                                                                                   \
            : [end] "m"(end), [rc] "r"(BP_VIEW_RC(sh))                                                      \
            : "cc", "memory")
        if (sh == 0) {
            BP_W8_LOOP("");
        } else if (sh == 4 && rnd) {
            BP_W8R_LOOP("and %[e], %[e], #0xF0F0F0F0\n\t");
        } else if (sh == 4) {
            BP_W8_LOOP("and %[e], %[e], #0xF0F0F0F0\n\t");
        } else if (rnd) {
            BP_W8R_LOOP("and %[e], %[e], #0xC0C0C0C0\n\t");
        } else {
            BP_W8_LOOP("and %[e], %[e], #0xC0C0C0C0\n\t");
        }
#undef BP_W8R_LOOP
#undef BP_W8_LOOP
#undef BP_W8_OUTS
#undef BP_W8_GROUP
#undef BP_W8_ROW
    }
#else
    const uint32_t mask4 = ((0xFFu << sh) & 0xFFu) * 0x01010101u;
    for (int32_t i = 0; i < k4; i += 4) {
        uint32_t v0 = bp_load32(wrow[0] + i), v1 = bp_load32(wrow[1] + i);
        if (rnd) {
            v0 = bp_qadd8(v0, BP_VIEW_RC(sh)), v1 = bp_qadd8(v1, BP_VIEW_RC(sh));
        }
        v0 &= mask4, v1 &= mask4;
        const uint32_t x0e = bp_load32(col + 2 * i), x0o = bp_load32(col + 2 * i + 2);
        const uint32_t x1e = bp_load32(col + 2 * i + 4), x1o = bp_load32(col + 2 * i + 6);
        a00 = bp_smlad(x0o, bp_sxtb16_ror8(v0), bp_smlad(x0e, bp_sxtb16(v0), a00));
        a10 = bp_smlad(x1o, bp_sxtb16_ror8(v0), bp_smlad(x1e, bp_sxtb16(v0), a10));
        a01 = bp_smlad(x0o, bp_sxtb16_ror8(v1), bp_smlad(x0e, bp_sxtb16(v1), a01));
        a11 = bp_smlad(x1o, bp_sxtb16_ror8(v1), bp_smlad(x1e, bp_sxtb16(v1), a11));
    }
#endif
    // Masked codes are exact multiples of 2^sh: the shift is exact.
    a00 >>= sh, a01 >>= sh, a10 >>= sh, a11 >>= sh;
    for (int32_t i = k4; i < k; i++) {
        const int32_t v0 = bp_view((int8_t)wrow[0][i], 8, 8 - sh, rnd), v1 = bp_view((int8_t)wrow[1][i], 8, 8 - sh, rnd);
        const int32_t x0 = col[IL(1, i)], x1 = col[IL(1, i) + 4];
        a00 += x0 * v0;
        a01 += x0 * v1;
        a10 += x1 * v0;
        a11 += x1 * v1;
    }
    out[0][0] = a00, out[0][1] = a01, out[1][0] = a10, out[1][1] = a11;
}

// Packed 2-bit dot products of 4 interleaved patches (IL4(), from col) with one weight row, without
// the -2*sum(x) offset correction, added to out[0..3] (wrapping like int32 adds). The offset-code word of 4 weights is ((w >> 6) & 0x03030303) ^
// 0x02020202 for 8-bit codes (s2 == 0) or bp_s2_off[stored byte] for 2-bit storage (s2 == 1); four
// pixels share it. On ARMv7E-M every full run of 7 groups (28 values, the extraction period, see the
// file comment) is one straight asm block, and so is the last run of 1 to 6 groups (f zeroed, then a
// TBB into the same chain). Per group: one LDM of the four pixels' words (the IL4() layout puts them
// side by side, so x0..x3 are bound to r0..r3 in ascending order), 3 (8-bit codes) or 2 (2-bit
// storage) weight instructions and 4 SMLADs (SMUAD for the first group of a full run): 8 or 7
// instructions per 16 MACs. The middle fields of two pixels go to the 16-bit halves of one sum with
// PKHBT + UXTAB16 ror 8 (2 instructions per 2 pixels), so the block needs 14 registers: a half gains
// at most 7 * 36 = 252 per run, and the halves are flushed to 32 bits every 64 runs.
//
// rnd (a constant, 8-bit codes only): the rounded 2-bit view, QADD8 of 0x20202020 before the same
// >> 6, & 3, ^ 2. The asm blocks use all 14 registers, so the constant is made in x3 (MOV of a
// Thumb-2 immediate) before the group's LDM: 10 instructions per 16 MACs instead of 8.
static inline __attribute__((always_inline)) void dot_4x1_packed(int32_t out[4], const uint8_t *col,
                                                                 const uint8_t *wrow, int32_t k, const int s2,
                                                                 const int rnd) {
    const int32_t k4 = k & ~3;
    uint32_t s0 = (uint32_t)out[0], s1 = (uint32_t)out[1], s2_ = (uint32_t)out[2], s3 = (uint32_t)out[3];
    int32_t i = 0;
#ifdef BP_HAVE_DSP
    {
        const int32_t groups = k4 >> 2, rem = groups % 7;
        int32_t runs = groups / 7;
        const uint8_t *cp = col, *wp = wrow;
        const uint32_t aux = s2 ? (uint32_t)(uintptr_t)bp_s2_off : 0x03030303u;
        register uint32_t x0 __asm__("r0") = 0;
        register uint32_t x1 __asm__("r1") = 0;
        register uint32_t x2 __asm__("r2");
        register uint32_t x3 __asm__("r3");
        uint32_t f0, f1, f2, f3, w;
// The offset-code word of 4 weights from 8-bit codes: load, (rnd: the QADD8 of the round constant,
// `round`, empty for the floor view), >> 6 & 3, ^ 2. Shared with dot_1x1_packed_sum.
#define BP_PK_WORD(round)                                                                                  \
    "ldr %[w], [%[wp]], #4\n\t" round "and %[w], %[aux], %[w], lsr #6\n\teor %[w], %[w], #0x02020202\n\t"
// The group's LDM and weight word: W8 (8-bit codes), S2 (2-bit storage), W8R (rounded view of 8-bit
// codes: the weight word first, with x3 free for the round constant, then the LDM).
#define BP_PK_W8 BP_PK_LDM BP_PK_WORD("")
#define BP_PK_S2 BP_PK_LDM "ldrb %[w], [%[wp]], #1\n\tldr %[w], [%[aux], %[w], lsl #2]\n\t"
#define BP_PK_W8R BP_PK_WORD("mov %[x3], #0x20202020\n\tqadd8 %[w], %[w], %[x3]\n\t") BP_PK_LDM
#define BP_PK_LDM "ldmia %[cp]!, {%[x0], %[x1], %[x2], %[x3]}\n\t"
#define BP_PK_FIRST(W)                                                                                     \
    W "smuad %[f0], %[x0], %[w]\n\tsmuad %[f1], %[x1], %[w]\n\tsmuad %[f2], %[x2], %[w]\n\t"              \
      "smuad %[f3], %[x3], %[w]\n\t"
#define BP_PK_NEXT(W)                                                                                      \
    W "smlad %[f0], %[x0], %[w], %[f0]\n\tsmlad %[f1], %[x1], %[w], %[f1]\n\t"                            \
      "smlad %[f2], %[x2], %[w], %[f2]\n\tsmlad %[f3], %[x3], %[w], %[f3]\n\t"
#define BP_PK_EXTRACT                                                                                      \
    "pkhbt %[x0], %[f0], %[f1], lsl #16\n\tuxtab16 %[s01], %[s01], %[x0], ror #8\n\t"                      \
    "pkhbt %[x1], %[f2], %[f3], lsl #16\n\tuxtab16 %[s23], %[s23], %[x1], ror #8\n\t"
#define BP_PK_OPS                                                                                          \
    : [s01] "+r"(s01), [s23] "+r"(s23), [cp] "+r"(cp), [wp] "+r"(wp), [x0] "+&r"(x0), [x1] "+&r"(x1),    \
      [x2] "=&r"(x2), [x3] "=&r"(x3), [f0] "=&r"(f0), [f1] "=&r"(f1), [f2] "=&r"(f2), [f3] "=&r"(f3),     \
      [w] "=&r"(w)                                                                                         \
    : [aux] "r"(aux)                                                                                       \
    : "memory"
// Runs from cp up to x1 (the end of the last one, pushed: the loop's end has no register of its own).
#define BP_PK_RUNS(W)                                                                                      \
    __asm__ volatile("push {%[x1]}\n"                                                                    \
                     "9:\n\t" BP_PK_FIRST(W) BP_PK_NEXT(W) BP_PK_NEXT(W) BP_PK_NEXT(W) BP_PK_NEXT(W)          \
                         BP_PK_NEXT(W) BP_PK_NEXT(W) BP_PK_EXTRACT                                          \
                     "ldr %[x0], [sp]\n\tcmp %[cp], %[x0]\n\tbne 9b\n\tadd sp, sp, #4\n\t" BP_PK_OPS)
// 1 to 6 groups: x0 = rem - 1 selects the entry Er (TBB). Er does its first group with SMUAD (no
// zeroing) and branches to the NEXT chain P2..P6 at the group after it (E6 falls through into P2).
#define BP_PK_TAIL(W)                                                                                      \
    __asm__ volatile("tbb [pc, %[x0]]\n"                                                                   \
                     ".Lpt%=:\n\t.byte (.Lpe1%= - .Lpt%=) / 2, (.Lpe2%= - .Lpt%=) / 2, (.Lpe3%= - .Lpt%=) / 2\n\t" \
                     ".byte (.Lpe4%= - .Lpt%=) / 2, (.Lpe5%= - .Lpt%=) / 2, (.Lpe6%= - .Lpt%=) / 2\n\t"         \
                     ".p2align 1\n"                                                                        \
                     ".Lpe1%=:\n\t" BP_PK_FIRST(W) "b .Lpx%=\n"                                             \
                     ".Lpe2%=:\n\t" BP_PK_FIRST(W) "b .Lp6%=\n"                                             \
                     ".Lpe3%=:\n\t" BP_PK_FIRST(W) "b .Lp5%=\n"                                             \
                     ".Lpe4%=:\n\t" BP_PK_FIRST(W) "b .Lp4%=\n"                                             \
                     ".Lpe5%=:\n\t" BP_PK_FIRST(W) "b .Lp3%=\n"                                             \
                     ".Lpe6%=:\n\t" BP_PK_FIRST(W) BP_PK_NEXT(W) ".Lp3%=:\n\t" BP_PK_NEXT(W)              \
                     ".Lp4%=:\n\t" BP_PK_NEXT(W) ".Lp5%=:\n\t" BP_PK_NEXT(W) ".Lp6%=:\n\t" BP_PK_NEXT(W)   \
                     ".Lpx%=:\n\t"                                                                        \
                     "pkhbt %[x0], %[f0], %[f1], lsl #16\n\tuxtb16 %[s01], %[x0], ror #8\n\t"              \
                     "pkhbt %[x1], %[f2], %[f3], lsl #16\n\tuxtb16 %[s23], %[x1], ror #8\n\t"              \
                     : [s01] "=&r"(s01), [s23] "=&r"(s23), [cp] "+r"(cp), [wp] "+r"(wp), [x0] "+&r"(x0),     \
                       [x1] "=&r"(x1), [x2] "=&r"(x2), [x3] "=&r"(x3), [f0] "=&r"(f0), [f1] "=&r"(f1),      \
                       [f2] "=&r"(f2), [f3] "=&r"(f3), [w] "=&r"(w)                                          \
                     : [aux] "r"(aux)                                                                      \
                     : "memory")
        // The 1 to 6 groups after the whole runs first, then at most 63 runs: 64 runs at most between
        // flushes of the 16-bit halves (7 * 36 * 64 < 65536).
        uint32_t s01, s23; // set by the tail, or zero
        if (rem) {
            x0 = (uint32_t)(rem - 1);
            if (s2) {
                BP_PK_TAIL(BP_PK_S2);
            } else if (rnd) {
                BP_PK_TAIL(BP_PK_W8R);
            } else {
                BP_PK_TAIL(BP_PK_W8);
            }
        } else {
            s01 = 0, s23 = 0;
        }
        int32_t n = runs < 63 ? runs : 63;
        runs -= n;
        while (n > 0) {
            x1 = (uint32_t)(uintptr_t)(cp + 112 * n);
            if (s2) {
                BP_PK_RUNS(BP_PK_S2);
            } else if (rnd) {
                BP_PK_RUNS(BP_PK_W8R);
            } else {
                BP_PK_RUNS(BP_PK_W8);
            }
            if (runs == 0) {
                break;
            }
            s0 += s01 & 0xFFFFu, s1 += s01 >> 16, s2_ += s23 & 0xFFFFu, s3 += s23 >> 16;
            s01 = 0, s23 = 0;
            n = runs < 64 ? runs : 64;
            runs -= n;
        }
        s0 += s01 & 0xFFFFu, s1 += s01 >> 16, s2_ += s23 & 0xFFFFu, s3 += s23 >> 16;
        i = k4;
    }
#endif
    while (i < k4) {
        // At most 7 SMLADs per field before extraction (see the file comment).
        const int32_t end = (k4 - i > 28) ? i + 28 : k4;
        int32_t f0 = 0, f1 = 0, f2 = 0, f3 = 0;
        for (; i < end; i += 4) {
            const uint32_t w8 = rnd ? bp_qadd8(bp_load32(wrow + i), 0x20202020u) : bp_load32(wrow + i);
            const uint32_t w = s2 ? bp_s2_off[wrow[i >> 2]] : ((w8 >> 6) & 0x03030303u) ^ 0x02020202u;
            const uint8_t *x = col + 4 * i;
            f0 = bp_smlad(bp_load32(x), w, f0);
            f1 = bp_smlad(bp_load32(x + 4), w, f1);
            f2 = bp_smlad(bp_load32(x + 8), w, f2);
            f3 = bp_smlad(bp_load32(x + 12), w, f3);
        }
        s0 += (f0 >> 8) & 0xFF;
        s1 += (f1 >> 8) & 0xFF;
        s2_ += (f2 >> 8) & 0xFF;
        s3 += (f3 >> 8) & 0xFF;
    }
    for (; i < k; i++) {
        const int32_t v = s2 ? s2_code(wrow, i) + 2 : bp_view((int8_t)wrow[i], 8, 2, rnd) + 2;
        const uint8_t *x = col + IL4(i);
        s0 += x[0] * v;
        s1 += x[4] * v;
        s2_ += x[8] * v;
        s3 += x[12] * v;
    }
    out[0] = (int32_t)s0, out[1] = (int32_t)s1, out[2] = (int32_t)s2_, out[3] = (int32_t)s3;
}

#ifdef BP_HAVE_DSP
// One pixel (the last block of an image whose pixel count is 1 mod 4): its patch is pixel 0 of the
// IL4() layout, one word per group at col + 16 * g. Returns sum(x * w') over the whole groups (k & ~3
// values) without the offset correction: the rem groups after the whole runs, then the runs up to
// end, each extracted into a 32-bit sum (UXTAB ror 8, no flush needed). 5 (8-bit codes) or 4 (2-bit
// storage) instructions per 4 MACs, against 8 or 7 per group of the 4-pixel block, which would spend
// three quarters of them on the repeated pixel.
static inline __attribute__((always_inline)) int32_t dot_1x1_packed_sum(const uint8_t *col, const uint8_t *wrow,
                                                                        uint32_t rem, const uint8_t *end,
                                                                        const int s2, const int rnd) {
    const uint8_t *cp = col, *wp = wrow;
    const uint32_t aux = s2 ? (uint32_t)(uintptr_t)bp_s2_off : 0x03030303u;
    uint32_t x, w, f, sum, n = rem;
#define BP_P1_W8 BP_PK_WORD("")
#define BP_P1_S2 "ldrb %[w], [%[wp]], #1\n\tldr %[w], [%[aux], %[w], lsl #2]\n\t"
#define BP_P1_W8R BP_PK_WORD("qadd8 %[w], %[w], %[rc]\n\t")
#define BP_P1_X "ldr %[x], [%[cp]], #16\n\t"
#define BP_P1_FIRST(W) BP_P1_X W "smuad %[f], %[x], %[w]\n\t"
#define BP_P1_NEXT(W) BP_P1_X W "smlad %[f], %[x], %[w], %[f]\n\t"
#define BP_P1_SUM(W, ...)                                                                                  \
    __asm__ volatile("mov %[f], #0\n\t"                                                                    \
                     "cmp %[n], #0\n\tbeq 2f\n"                                                              \
                     "1:\n\t" BP_P1_NEXT(W) "subs %[n], %[n], #1\n\tbne 1b\n"                            \
                     "2:\n\tuxtb %[sum], %[f], ror #8\n\t"                                                  \
                     "cmp %[cp], %[end]\n\tbeq 4f\n"                                                       \
                     "3:\n\t" BP_P1_FIRST(W) BP_P1_NEXT(W) BP_P1_NEXT(W) BP_P1_NEXT(W) BP_P1_NEXT(W)          \
                         BP_P1_NEXT(W) BP_P1_NEXT(W) "uxtab %[sum], %[sum], %[f], ror #8\n\t"                 \
                     "cmp %[cp], %[end]\n\tbne 3b\n"                                                       \
                     "4:\n\t"                                                                            \
                     : [sum] "=&r"(sum), [cp] "+r"(cp), [wp] "+r"(wp), [n] "+r"(n), [x] "=&r"(x),            \
                       [w] "=&r"(w), [f] "=&r"(f)                                                           \
                     : [aux] "r"(aux), [end] "r"(end) __VA_ARGS__                                          \
                     : "cc", "memory")
    if (s2) {
        BP_P1_SUM(BP_P1_S2, );
    } else if (rnd) {
        BP_P1_SUM(BP_P1_W8R, , [rc] "r"(0x20202020u));
    } else {
        BP_P1_SUM(BP_P1_W8, );
    }
#undef BP_P1_SUM
#undef BP_P1_NEXT
#undef BP_P1_FIRST
#undef BP_P1_X
#undef BP_P1_S2
#undef BP_P1_W8R
#undef BP_P1_W8
    return (int32_t)sum;
}
#endif
#undef BP_PK_TAIL
#undef BP_PK_RUNS
#undef BP_PK_OPS
#undef BP_PK_EXTRACT
#undef BP_PK_NEXT
#undef BP_PK_FIRST
#undef BP_PK_LDM
#undef BP_PK_S2
#undef BP_PK_W8R
#undef BP_PK_W8
#undef BP_PK_WORD

#ifdef BP_HAVE_DSP
// One 4-pixel block of the packed 2-bit path in one asm function (bp_pk_blk_*): every output
// channel's dot product, requantization, output packing and byte stores, for K % 4 == 0,
// 6K <= 32767, a bias and USAT outputs (2, 4 or 8 bits, whole bytes). The C caller fills a
// bp_pk_blk_t; the function copies its first 72 bytes to its own stack frame and keeps every
// pointer and count there, because the dot product holds all 14 registers: r0-r3 the four pixels'
// words of a group (one LDM), r4-r7 the four fields, r8 the weight word, r9 cp, r10 wp, r11 aux,
// r12 / lr the packed sums of pixels 0-1 / 2-3. Per channel:
// - cp = col; the sums start at the seeds, -2*sum(x) of each pixel modulo 2^16 in its 16-bit half,
//   so that the halves end at sum(x*w) modulo 2^16, exact once sign-extended since |sum(x*w)| <=
//   6K <= 32767 (the lanes wrap independently: no flush, whatever the number of runs);
// - `ldr pc` to the entry of the rem (1-6) groups after the whole runs (as the TBB entries of
//   dot_4x1_packed: the first group with SMUAD, then the chain), or straight to the runs;
// - the 7-group runs, u per loop iteration (8 for 2-bit storage, 4 for 8-bit codes): runs % u of
//   them enter at run u - runs % u, and the end pointer (in the frame) is compared once per u runs;
// - acc = bias + SXTAH / ASR #16 of the sums, SMMLA with 2^(s-33), ASR by s - 32 (s < 33: acc <<
//   33 - s and s = 33 out of line, bp_rq_lift checked by the caller);
// - `ldr pc` to the output width's code: 8 bits store the four bytes at once; 2 and 4 bits OR the
//   four pixels' values into one word (pixel j at bit 8j) and shift it into an accumulator, acc =
//   (acc >> obits) | (word << (8 - obits)), so that channel t of a byte ends at bits 8j + obits*t:
//   stored as four bytes when the marker bit the accumulator starts each byte with (0x80) leaves it
//   (LSRS sets the carry at the byte's last channel). The loop ends when the bias pointer reaches
//   bias + Cout (checked per output byte).
// Entry addresses (Thumb bit set) come from a table at the end, indexed by the caller: ti for the
// rem groups (9-14: 1-6 groups; rem == 0: ri), ri for the runs (0: none, 1 + (u - runs % u) % u:
// the run to enter at), pi for the output width (15-17: 2/4/8 bits). The rows of pixels missing from the last block point
// at pixel 0's row: their patches repeat pixel 0, so the same values are stored there.
// The rounded view (kind 2): lr holds 0x20202020 for the QADD8 during the dot product, and the sums
// of pixels 2-3 live in the frame ([sp, #64]), reloaded into lr for the requantization.
typedef struct {
    const int32_t *bias, *mult, *shift; // advanced by the asm
    const uint8_t *end, *col;           // the end of the runs (col + 16 * groups), the patches
    uint32_t seed01, seed23;            // -2*sum(x) of pixels 0 1, 2 3 in 16-bit halves
    uint32_t ent[3];                    // set by the asm: the entry addresses
    const int32_t *bias_end;            // bias + Cout
    uint32_t acc;                       // sub-byte outputs: the word being packed (start: the marker 0x80)
    uint8_t *orow[4];                   // the four pixels' output rows, advanced per byte
    uint32_t s23, pad;                  // the rounded view's pixels 2-3 sums
    const uint8_t *wp;                  // weights (rows follow each other)
    uint32_t aux;                       // bp_s2_off or 0x03030303
    uint32_t ti, ri, pi;                // entry indices
} bp_pk_blk_t;

void bp_pk_blk_s2(bp_pk_blk_t *b);
void bp_pk_blk_w8(bp_pk_blk_t *b);
void bp_pk_blk_w8r(bp_pk_blk_t *b);

// kind: 0 2-bit storage (LDRB + table), 1 8-bit codes (LDR, AND lsr #6, EOR), 2 rounded 8-bit codes.
__asm__(
    ".macro bp_pkb_word kind\n"
    ".if \\kind == 0\n\tldrb r8, [r10], #1\n\tldr r8, [r11, r8, lsl #2]\n"
    ".else\n\tldr r8, [r10], #4\n"
    ".if \\kind == 2\n\tqadd8 r8, r8, lr\n.endif\n"
    "\tand r8, r11, r8, lsr #6\n\teor r8, r8, #0x02020202\n.endif\n"
    ".endm\n"
    ".macro bp_pkb_first kind\n"
    "\tldmia r9!, {r0, r1, r2, r3}\n\tbp_pkb_word \\kind\n"
    "\tsmuad r4, r0, r8\n\tsmuad r5, r1, r8\n\tsmuad r6, r2, r8\n\tsmuad r7, r3, r8\n"
    ".endm\n"
    ".macro bp_pkb_next kind\n"
    "\tldmia r9!, {r0, r1, r2, r3}\n\tbp_pkb_word \\kind\n"
    "\tsmlad r4, r0, r8, r4\n\tsmlad r5, r1, r8, r5\n\tsmlad r6, r2, r8, r6\n\tsmlad r7, r3, r8, r7\n"
    ".endm\n"
    ".macro bp_pkb_extr kind\n"
    "\tpkhbt r0, r4, r5, lsl #16\n\tuxtab16 r12, r12, r0, ror #8\n\tpkhbt r1, r6, r7, lsl #16\n"
    ".if \\kind == 2\n\tldr r2, [sp, #64]\n\tuxtab16 r2, r2, r1, ror #8\n\tstr r2, [sp, #64]\n"
    ".else\n\tuxtab16 lr, lr, r1, ror #8\n.endif\n"
    ".endm\n"
    ".macro bp_pkb_run kind\n"
    "\tbp_pkb_first \\kind\n\tbp_pkb_next \\kind\n\tbp_pkb_next \\kind\n\tbp_pkb_next \\kind\n"
    "\tbp_pkb_next \\kind\n\tbp_pkb_next \\kind\n\tbp_pkb_next \\kind\n\tbp_pkb_extr \\kind\n"
    ".endm\n"
    // the start of a channel: cp, the seeds, then the rem groups' entry
    ".macro bp_pkb_chan kind\n"
    "\tldr r9, [sp, #16]\n"
    ".if \\kind == 2\n\tldr r12, [sp, #20]\n\tldr r0, [sp, #24]\n\tstr r0, [sp, #64]\n\tmov lr, #0x20202020\n"
    ".else\n\tldrd r12, lr, [sp, #20]\n.endif\n"
    "\tldr pc, [sp, #28]\n"
    ".endm\n"
    // the packing of 2- or 4-bit outputs: r0-r3 the four pixels' values of this channel. The accumulator
    // starts each byte at 0x80: that marker bit leaves it (LSRS: carry set) at the shift of the byte's
    // last channel, and the data never reaches it (channel t's values sit at bits 8j + 8 - b(t+1)..).
    ".macro bp_pkb_pack name, kind, b\n"
    ".L\\name\\()_pk\\b:\n"
    "\tusat r0, #\\b, r0\n\tusat r1, #\\b, r1\n\tusat r2, #\\b, r2\n\tusat r3, #\\b, r3\n"
    "\torr r0, r0, r1, lsl #8\n\torr r0, r0, r2, lsl #16\n\torr r0, r0, r3, lsl #24\n"
    "\tldr r5, [sp, #44]\n\tlsrs r5, r5, #\\b\n\torr r5, r5, r0, lsl #(8 - \\b)\n"
    "\tbcs .L\\name\\()_st\\b\n"
    "\tstr r5, [sp, #44]\n"
    "\tbp_pkb_chan \\kind\n"
    ".L\\name\\()_st\\b:\n"
    "\tadd r9, sp, #48\n\tldmia r9, {r0, r1, r2, r3}\n"
    "\tstrb r5, [r0], #1\n\tlsr r5, r5, #8\n\tstrb r5, [r1], #1\n\tlsr r5, r5, #8\n"
    "\tstrb r5, [r2], #1\n\tlsr r5, r5, #8\n\tstrb r5, [r3], #1\n\tstmia r9, {r0, r1, r2, r3}\n"
    "\tmov r5, #0x80\n\tstr r5, [sp, #44]\n"
    "\tldr r0, [sp, #40]\n\tcmp r4, r0\n\tbeq .L\\name\\()_exit\n"
    "\tbp_pkb_chan \\kind\n"
    ".endm\n"
    // run i of the unrolled runs loop
    ".macro bp_pkb_runl name, kind, i\n"
    ".L\\name\\()_r\\i:\n\tbp_pkb_run \\kind\n"
    ".endm\n"
    ".macro bp_pkb_func name, kind, u\n"
    "\t.section .text.\\name,\"ax\",%progbits\n"
    "\t.p2align 2\n\t.global \\name\n\t.type \\name, %function\n\t.thumb\n\t.thumb_func\n"
    "\\name:\n"
    "\tpush {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\tsub sp, sp, #72\n"
    "\tldmia r0!, {r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12}\n"
    "\tstmia sp, {r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12}\n"
    "\tldmia r0!, {r1, r2, r3, r4, r5, r6}\n\tadd r7, sp, #48\n\tstmia r7, {r1, r2, r3, r4, r5, r6}\n"
    "\tldmia r0, {r1, r2, r3, r4, r5}\n\tmov r10, r1\n\tmov r11, r2\n"
    "\tadr r6, .L\\name\\()_tab\n"
    "\tldr r3, [r6, r3, lsl #2]\n\tldr r4, [r6, r4, lsl #2]\n\tldr r5, [r6, r5, lsl #2]\n"
    "\tstr r3, [sp, #28]\n\tstr r4, [sp, #32]\n\tstr r5, [sp, #36]\n"
    "\tbp_pkb_chan \\kind\n"
    // the rem groups: entry r does its first group with SMUAD, then the chain up to .Lqx
    ".L\\name\\()_qe1:\n\tbp_pkb_first \\kind\n\tb .L\\name\\()_qx\n"
    ".L\\name\\()_qe2:\n\tbp_pkb_first \\kind\n\tb .L\\name\\()_q6\n"
    ".L\\name\\()_qe3:\n\tbp_pkb_first \\kind\n\tb .L\\name\\()_q5\n"
    ".L\\name\\()_qe4:\n\tbp_pkb_first \\kind\n\tb .L\\name\\()_q4\n"
    ".L\\name\\()_qe5:\n\tbp_pkb_first \\kind\n\tb .L\\name\\()_q3\n"
    ".L\\name\\()_qe6:\n\tbp_pkb_first \\kind\n\tbp_pkb_next \\kind\n"
    ".L\\name\\()_q3:\n\tbp_pkb_next \\kind\n"
    ".L\\name\\()_q4:\n\tbp_pkb_next \\kind\n"
    ".L\\name\\()_q5:\n\tbp_pkb_next \\kind\n"
    ".L\\name\\()_q6:\n\tbp_pkb_next \\kind\n"
    ".L\\name\\()_qx:\n\tbp_pkb_extr \\kind\n\tldr pc, [sp, #32]\n"
    // the runs, u (4 or 8) per iteration: runs % u of them enter at run u - runs % u
    "\tbp_pkb_runl \\name, \\kind, 0\n\tbp_pkb_runl \\name, \\kind, 1\n"
    "\tbp_pkb_runl \\name, \\kind, 2\n\tbp_pkb_runl \\name, \\kind, 3\n"
    ".if \\u == 8\n"
    "\tbp_pkb_runl \\name, \\kind, 4\n\tbp_pkb_runl \\name, \\kind, 5\n"
    "\tbp_pkb_runl \\name, \\kind, 6\n\tbp_pkb_runl \\name, \\kind, 7\n"
    ".endif\n"
    "\tldr r0, [sp, #12]\n\tcmp r9, r0\n\tbne .L\\name\\()_r0\n"
    // requantization: acc = bias + the sign-extended sums
    ".L\\name\\()_done:\n"
    ".if \\kind == 2\n\tldr lr, [sp, #64]\n.endif\n"
    "\tldmia sp, {r4, r5, r6}\n\tldr r8, [r4], #4\n\tldr r9, [r5], #4\n\tldr r7, [r6], #4\n"
    "\tstmia sp, {r4, r5, r6}\n"
    "\tsxtah r0, r8, r12\n\tadd r1, r8, r12, asr #16\n\tsxtah r2, r8, lr\n\tadd r3, r8, lr, asr #16\n"
    "\tsubs r6, r7, #33\n\tbmi .L\\name\\()_lift\n"
    ".L\\name\\()_k:\n\tmov r5, #1\n\tlsl r6, r5, r6\n\tsub r7, r7, #32\n"
    "\tsmmla r0, r0, r9, r6\n\tsmmla r1, r1, r9, r6\n\tsmmla r2, r2, r9, r6\n\tsmmla r3, r3, r9, r6\n"
    "\tasr r0, r0, r7\n\tasr r1, r1, r7\n\tasr r2, r2, r7\n\tasr r3, r3, r7\n"
    "\tldr pc, [sp, #36]\n"
    // a shift s < 33: acc <<= 33 - s, s = 33 (bp_rq_lift, checked by the caller)
    ".L\\name\\()_lift:\n\trsb r6, r6, #0\n\tlsl r0, r0, r6\n\tlsl r1, r1, r6\n\tlsl r2, r2, r6\n"
    "\tlsl r3, r3, r6\n\tmov r6, #0\n\tmov r7, #33\n\tb .L\\name\\()_k\n"
    // 8-bit outputs: one byte per pixel and channel
    ".L\\name\\()_pk8:\n"
    "\tusat r0, #8, r0\n\tusat r1, #8, r1\n\tusat r2, #8, r2\n\tusat r3, #8, r3\n"
    "\tadd r9, sp, #48\n\tldmia r9, {r5, r6, r7, r8}\n"
    "\tstrb r0, [r5], #1\n\tstrb r1, [r6], #1\n\tstrb r2, [r7], #1\n\tstrb r3, [r8], #1\n"
    "\tstmia r9, {r5, r6, r7, r8}\n"
    "\tldr r0, [sp, #40]\n\tcmp r4, r0\n\tbeq .L\\name\\()_exit\n"
    "\tbp_pkb_chan \\kind\n"
    "\tbp_pkb_pack \\name, \\kind, 2\n"
    "\tbp_pkb_pack \\name, \\kind, 4\n"
    ".L\\name\\()_exit:\n\tadd sp, sp, #72\n\tpop {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n"
    "\t.p2align 2\n"
    ".L\\name\\()_tab:\n"
    "\t.word .L\\name\\()_done + 1\n"
    "\t.word .L\\name\\()_r0 + 1, .L\\name\\()_r1 + 1, .L\\name\\()_r2 + 1, .L\\name\\()_r3 + 1\n"
    ".if \\u == 8\n"
    "\t.word .L\\name\\()_r4 + 1, .L\\name\\()_r5 + 1, .L\\name\\()_r6 + 1, .L\\name\\()_r7 + 1\n"
    ".else\n"
    "\t.word .L\\name\\()_done + 1, .L\\name\\()_done + 1, .L\\name\\()_done + 1, .L\\name\\()_done + 1\n"
    ".endif\n"
    "\t.word .L\\name\\()_qe1 + 1, .L\\name\\()_qe2 + 1, .L\\name\\()_qe3 + 1\n"
    "\t.word .L\\name\\()_qe4 + 1, .L\\name\\()_qe5 + 1, .L\\name\\()_qe6 + 1\n"
    "\t.word .L\\name\\()_pk2 + 1, .L\\name\\()_pk4 + 1, .L\\name\\()_pk8 + 1\n"
    "\t.size \\name, . - \\name\n"
    "\t.text\n"
    ".endm\n"
    "\t.syntax unified\n"
    "\tbp_pkb_func bp_pk_blk_s2, 0, 8\n"
    "\tbp_pkb_func bp_pk_blk_w8, 1, 4\n"
    "\tbp_pkb_func bp_pk_blk_w8r, 2, 4\n");
#endif

// The K % 4 values of pixel 0 after the whole groups of dot_1x1_packed_sum.
static inline __attribute__((always_inline)) int32_t dot_1x1_packed_rest(const uint8_t *col, const uint8_t *wrow,
                                                                         int32_t k, const int s2, const int rnd) {
    int32_t a = 0;
    for (int32_t i = k & ~3; i < k; i++) {
        a += col[IL4(i)] * (s2 ? s2_code(wrow, i) + 2 : bp_view((int8_t)wrow[i], 8, 2, rnd) + 2);
    }
    return a;
}

// bp_requant with the s >= 33 case (every scale below 1/4) clamped in 32 bits: the rounded value
// (q + 1) >> 1 fits int32 there, so the clamp needs no 64-bit compares. Same results bit for bit.
// Shifts below 33 stay with bp_requant here: a lift per value (bp_rq_lift1, as in the FC kernel) made
// the W8 loops 0.15-3.4 % slower on layers with every shift >= 33 (docs/results/kbench.md, 2026-11-26).
static inline int32_t requant(int32_t acc, int32_t m, int32_t s, int32_t lo, int32_t hi) {
    if (s >= 33) {
        const int32_t t = (int32_t)(((int64_t)acc * (int64_t)m) >> 32) >> (s - 33); // |t| <= 2^30
        const int32_t v = (t + 1) >> 1;
        return v < lo ? lo : (v > hi ? hi : v);
    }
    return bp_requant(acc, m, s, lo, hi);
}

// Requantize and store output channel o of a pixel whose packed row starts at orow (NULL for int32
// logits, which go to output[row * cout + o]). 8-bit rows are stored byte by byte, no bit packing.
static inline void emit(void *output, uint8_t *orow, int64_t row, int32_t cout, int32_t o, const bp_quant_t *q,
                        const bp_requant_t *rq, int32_t acc) {
    if (q->out.bits == 32) {
        ((int32_t *)output)[row * cout + o] = acc;
        return;
    }
    const int32_t v = requant(acc, rq->multiplier[o], rq->shift[o], q->act_min, q->act_max);
    if (q->out.bits == 8) {
        orow[o] = (uint8_t)v;
    } else {
        bp_write(orow, o, q->out.bits, v);
    }
}

// The requantization of conv_packed2_impl's fast loop for one value (every shift >= 33): SMMLA with
// 2^(s-33), ASR by s - 32, then USAT #fast (2, 4, 8) or, for fast == 1, the clamp to [lo, hi].
static inline __attribute__((always_inline)) uint32_t pk_requant1(int32_t acc, int32_t m, int32_t sft, int fast,
                                                                  int32_t lo, int32_t hi, uint32_t omask) {
    const int32_t j = bp_rq_j(sft); // shifts below 33: lifted (bp_rq_lift, checked by the caller)
    acc *= (int32_t)1 << j;
    sft += j;
    const int32_t v = bp_smmla(acc, m, (int32_t)1 << (sft - 33)) >> (sft - 32);
    switch (fast) {
    case 2:
        return (uint32_t)bp_usat2(v);
    case 4:
        return (uint32_t)bp_usat4(v);
    case 8:
        return (uint32_t)bp_usat8(v);
    default:
        return (uint32_t)(v < lo ? lo : (v > hi ? hi : v)) & omask;
    }
}

#ifdef BP_HAVE_DSP
#define BP_PK_ONE 1 // conv_packed2_impl: blocks of one pixel take dot_1x1_packed_sum
#else
#define BP_PK_ONE 0
#endif

// The packed 2-bit path: unsigned 2-bit inputs times 2-bit weights, 4 byte patches of k4 values (the
// same 4 * k4 bytes as the 2 int16 patches of the SMLAD path). `s2` (a constant at each call site):
// weights stored at 2 bits (offset codes from bp_s2_off, rows of ceil(k / 4) bytes) rather than 2-bit
// views of 8-bit codes (rows of k bytes).
static inline __attribute__((always_inline)) void conv_packed2_impl(int16_t *buf, const bp_window_t *win,
                                                                    const bp_quant_t *q, const bp_requant_t *rq,
                                                                    const bp_dims_t *input_dims, const uint8_t *input,
                                                                    const bp_dims_t *filter_dims,
                                                                    const uint8_t *filter, const int32_t *bias,
                                                                    const bp_dims_t *output_dims, void *output,
                                                                    const int s2, const int rnd) {
    const int32_t cin = input_dims->c, cout = filter_dims->n, kh = filter_dims->h, kw = filter_dims->w;
    const int32_t k = kh * kw * cin, w_row = s2 ? (k + 3) >> 2 : k;
    const int32_t in_row = bp_row_bytes(cin, q->in.bits);
    const int32_t out_row = q->out.bits == 32 ? 0 : bp_row_bytes(cout, q->out.bits);
    const int32_t oh = output_dims->h, ow = output_dims->w, npix = oh * ow;
    const int32_t obits = q->out.bits, lo = q->act_min, hi = q->act_max;
    const uint32_t omask = obits >= 8 ? 0xFFu : (1u << obits) - 1u;
    // Output channels that share a byte are computed together and the byte stored once (no
    // read-modify-write per value); 8-bit outputs are one channel per byte.
    const int32_t per = (obits < 8 && cout % (8 / obits) == 0) ? 8 / obits : 1;
    // fast: every shift >= 33 (requantization by SMMLA), whole output bytes (8-bit, or sub-byte with
    // Cout a multiple of the values per byte); otherwise requant()/emit() as before.
    // fast: 2, 4 or 8 = USAT #bits (unsigned output, clamp = the whole range), 1 = other clamps.
    // Shifts below 33 are lifted (acc << (33 - s), shift 33) where the headroom allows (bp_rq_lift):
    // |bias + sum(x*w)| <= |bias| + k * 3 * 2.
    int fast = obits != 32 && (obits == 8 || per > 1);
    for (int32_t o = 0; fast && o < cout; o++) {
        fast = bp_rq_lift(rq->shift[o], bias ? bias[o] : 0, (int64_t)k * 6) >= 0;
    }
    if (fast && !q->out.is_signed && lo == 0 && hi == (1 << obits) - 1) {
        fast = obits;
    }
    {
        uint8_t *col8[4];
        for (int32_t j = 0; j < 4; j++) {
            col8[j] = (uint8_t *)buf + 4 * j; // interleaved: IL4()
        }
#ifdef BP_HAVE_DSP
        // bp_pk_blk_* (the blocks of 2-4 pixels): whole groups, a bias, USAT outputs, and |sum(x*w)| <=
        // 6K fits the sign-extended 16-bit sums (K > 5461 takes the loop below: dot_4x1_packed and
        // the requantization in C). Set up once; per block only the seeds and the rows change.
        const int blk = fast > 1 && (k & 3) == 0 && k * 6 <= 32767 && bias;
        bp_pk_blk_t B;
        if (blk) {
            const int32_t groups = k >> 2, rem = groups % 7, runs = groups / 7;
            const int32_t u = s2 ? 8 : 4; // runs per loop iteration
            const uint32_t ri = runs == 0 ? 0u : 1u + (uint32_t)((u - runs % u) % u);
            const bp_pk_blk_t b0 = {bias, rq->multiplier, rq->shift, col8[0] + 16 * groups, col8[0], 0u, 0u,
                                    {0, 0, 0}, bias + cout, 0x80u, {NULL, NULL, NULL, NULL}, 0u, 0u,
                                    filter, s2 ? (uint32_t)(uintptr_t)bp_s2_off : 0x03030303u,
                                    rem ? 8u + (uint32_t)rem : ri, ri, fast == 2 ? 15u : fast == 4 ? 16u : 17u};
            B = b0;
        }
#endif
        for (int32_t n = 0; n < input_dims->n; n++) {
            const uint8_t *img = input + (int64_t)n * input_dims->h * input_dims->w * in_row;
            for (int32_t p = 0; p < npix; p += 4) {
                const int32_t np = (npix - p < 4) ? npix - p : 4;
                int32_t xneg[4] = {0, 0, 0, 0};
                int64_t row[4];
                uint8_t *orow[4] = {NULL, NULL, NULL, NULL};
                // Missing pixels of the last block repeat its first one; their results are dropped. A
                // block of one pixel in the fast loop (dot_1x1_packed_sum) builds that pixel's patch only.
                const int32_t nbuild = (BP_PK_ONE && fast && np == 1) ? 1 : 4;
                if ((cin & 15) == 0) {
                    // every tap whole words: the block's patches in one call (im2col_u2_w16)
                    im2col_u2_w16(col8[0], img, input_dims, win, kh, kw, p / ow, p % ow, ow, np, nbuild, xneg);
                }
#ifdef BP_HAVE_DSP
                if (blk && np > 1) {
                    // the whole block in one asm function; the rows of missing pixels are pixel 0's
                    for (int32_t j = 0; (cin & 15) && j < 4; j++) {
                        const int32_t pp = p + (j < np ? j : 0);
                        xneg[j] = -2 * im2col_u2(col8[j], img, input_dims, in_row, win, kh, kw, pp / ow, pp % ow);
                    }
                    uint8_t *const o0 = (uint8_t *)output + ((int64_t)n * npix + p) * out_row;
                    B.seed01 = ((uint32_t)xneg[0] & 0xFFFFu) | ((uint32_t)xneg[1] << 16);
                    B.seed23 = ((uint32_t)xneg[2] & 0xFFFFu) | ((uint32_t)xneg[3] << 16);
                    B.orow[0] = o0, B.orow[1] = o0 + out_row;
                    B.orow[2] = np > 2 ? o0 + 2 * out_row : o0, B.orow[3] = np > 3 ? o0 + 3 * out_row : o0;
                    if (s2) {
                        bp_pk_blk_s2(&B);
                    } else if (rnd) {
                        bp_pk_blk_w8r(&B);
                    } else {
                        bp_pk_blk_w8(&B);
                    }
                    continue;
                }
#endif
                for (int32_t j = 0; j < nbuild; j++) {
                    const int32_t pp = p + (j < np ? j : 0);
                    row[j] = (int64_t)n * npix + pp;
                    if (cin & 15) {
                        xneg[j] = -2 * im2col_u2(col8[j], img, input_dims, in_row, win, kh, kw, pp / ow, pp % ow);
                    }
                    if (out_row > 0 && j < np) {
                        orow[j] = (uint8_t *)output + row[j] * out_row;
                        if (!fast && per == 1 && obits < 8) {
                            bp_clear_row(orow[j], out_row); // bp_write below: read-modify-write
                        }
                    }
                }
                // Sub-byte outputs: compute the channels that share an output byte together and store
                // the byte once (no read-modify-write per value).
                if (fast) {
                    // Every shift >= 33: bp_requant is SMMLA with 2^(s-33), then ASR by s - 32 (see
                    // conv_c1). Scalars only (constant indices), so that nothing but the spills around
                    // the dot asm goes through memory.
                    const int32_t xn0 = xneg[0], xn1 = xneg[1], xn2 = xneg[2], xn3 = xneg[3];
                    // the asm paths (bp_pk_blk_*, dot_1x1_packed_sum): the groups after the whole
                    // runs, the end of the runs
                    const int32_t groups = k >> 2, rem = groups % 7;
                    const uint8_t *k_end = col8[0] + 16 * groups;
                    (void)rem, (void)k_end; // the host build has no asm
#ifdef BP_HAVE_DSP
                    if (np == 1) {
                        // one pixel: dot_1x1_packed_sum (the other three are not built)
                        for (int32_t o = 0; o < cout; o += per) {
                            uint32_t bytes = 0;
                            for (int32_t t = 0, pos = 0; t < per; t++, pos += obits) {
                                const int32_t oc = o + t;
                                const uint8_t *wr = filter + (int64_t)oc * w_row;
                                int32_t acc = dot_1x1_packed_sum(col8[0], wr, (uint32_t)rem, k_end, s2, rnd);
                                if (k & 3) {
                                    acc += dot_1x1_packed_rest(col8[0], wr, k, s2, rnd);
                                }
                                const int32_t bo = bias ? bias[oc] : 0;
                                bytes |= pk_requant1(acc + bo + xn0, rq->multiplier[oc], rq->shift[oc], fast, lo, hi,
                                                     omask) << pos;
                            }
                            orow[0][(o * obits) >> 3] = (uint8_t)bytes;
                        }
                        continue;
                    }
#endif
                    for (int32_t o = 0; o < cout; o += per) {
                        uint32_t bytes = 0; // pixel j's output byte at bits 8j..8j+7
                        for (int32_t t = 0, pos = 0; t < per; t++, pos += obits) {
                            const int32_t oc = o + t;
                            // sum(x*w) = sum(x*(w+2)) - 2*sum(x); |bias + acc| checked by bp_check_acc
                            // (bias and -2*sum(x) added after the asm: nothing to keep across it)
                            int32_t acc[4] = {0, 0, 0, 0};
                            dot_4x1_packed(acc, col8[0], filter + (int64_t)oc * w_row, k, s2, rnd);
                            const int32_t bo = bias ? bias[oc] : 0;
                            acc[0] += bo + xn0, acc[1] += bo + xn1, acc[2] += bo + xn2, acc[3] += bo + xn3;
                            const int32_t m = rq->multiplier[oc], sj = bp_rq_j(rq->shift[oc]);
                            const int32_t sft = rq->shift[oc] + sj, lift = (int32_t)1 << sj; // bp_rq_lift
                            acc[0] *= lift, acc[1] *= lift, acc[2] *= lift, acc[3] *= lift;
                            const int32_t half = (int32_t)1 << (sft - 33), sh = sft - 32;
                            const int32_t v0 = bp_smmla(acc[0], m, half) >> sh, v1 = bp_smmla(acc[1], m, half) >> sh;
                            const int32_t v2 = bp_smmla(acc[2], m, half) >> sh, v3 = bp_smmla(acc[3], m, half) >> sh;
                            // the clamp: USAT #b for unsigned outputs with the format's whole range
                            uint32_t u0, u1, u2, u3;
                            switch (fast) {
                            case 2:
                                u0 = (uint32_t)bp_usat2(v0), u1 = (uint32_t)bp_usat2(v1);
                                u2 = (uint32_t)bp_usat2(v2), u3 = (uint32_t)bp_usat2(v3);
                                break;
                            case 4:
                                u0 = (uint32_t)bp_usat4(v0), u1 = (uint32_t)bp_usat4(v1);
                                u2 = (uint32_t)bp_usat4(v2), u3 = (uint32_t)bp_usat4(v3);
                                break;
                            case 8:
                                u0 = (uint32_t)bp_usat8(v0), u1 = (uint32_t)bp_usat8(v1);
                                u2 = (uint32_t)bp_usat8(v2), u3 = (uint32_t)bp_usat8(v3);
                                break;
                            default:
#define BP_PK_CLAMP(v) ((uint32_t)((v) < lo ? lo : ((v) > hi ? hi : (v))) & omask)
                                u0 = BP_PK_CLAMP(v0), u1 = BP_PK_CLAMP(v1), u2 = BP_PK_CLAMP(v2), u3 = BP_PK_CLAMP(v3);
#undef BP_PK_CLAMP
                            }
                            bytes |= (u0 | (u1 << 8) | (u2 << 16) | (u3 << 24)) << pos;
                        }
                        const int32_t at = (o * obits) >> 3;
                        orow[0][at] = (uint8_t)bytes;
                        if (np > 1) {
                            orow[1][at] = (uint8_t)(bytes >> 8);
                        }
                        if (np > 2) {
                            orow[2][at] = (uint8_t)(bytes >> 16);
                        }
                        if (np > 3) {
                            orow[3][at] = (uint8_t)(bytes >> 24);
                        }
                    }
                    continue;
                }
                for (int32_t o = 0; o < cout; o += per) {
                    uint32_t byte[4] = {0, 0, 0, 0};
                    for (int32_t t = 0; t < per; t++) {
                        const int32_t oc = o + t;
                        const int32_t b = bias ? bias[oc] : 0;
                        int32_t acc[4] = {b + xneg[0], b + xneg[1], b + xneg[2], b + xneg[3]};
                        dot_4x1_packed(acc, col8[0], filter + (int64_t)oc * w_row, k, s2, rnd);
                        for (int32_t j = 0; j < np; j++) {
                            if (per == 1) {
                                emit(output, orow[j], row[j], cout, oc, q, rq, acc[j]);
                                continue;
                            }
                            const int32_t v = requant(acc[j], rq->multiplier[oc], rq->shift[oc], lo, hi);
                            byte[j] |= ((uint32_t)v & omask) << (t * obits);
                        }
                    }
                    if (per > 1) {
                        const int32_t at = (o * obits) >> 3;
                        for (int32_t j = 0; j < np; j++) {
                            orow[j][at] = (uint8_t)byte[j];
                        }
                    }
                }
            }
        }
        return;
    }
}

// The parameters of bp_conv2d's out-of-line paths (the scratch buffer first) and their forwarding.
#define BP_CONV_PARAMS                                                                                     \
    int16_t *buf, const bp_window_t *win, const bp_quant_t *q, const bp_requant_t *rq,                      \
        const bp_dims_t *input_dims, const uint8_t *input, const bp_dims_t *filter_dims,                   \
        const uint8_t *filter, const int32_t *bias, const bp_dims_t *output_dims, void *output
#define BP_CONV_ARGS buf, win, q, rq, input_dims, input, filter_dims, filter, bias, output_dims, output

// The packed variants out of line (one function per constant s2, rnd), so that the other paths of
// bp_conv2d keep their register allocation: conv_packed_s2 (2-bit storage), conv_packed_w8v2 (2-bit
// view of 8-bit codes) and conv_packed_w8v2r (its rounded view, w_round).
#define BP_CONV_PACKED(name, s2, rnd)                                                                      \
    static __attribute__((noinline)) void name(BP_CONV_PARAMS) { conv_packed2_impl(BP_CONV_ARGS, s2, rnd); }
BP_CONV_PACKED(conv_packed_s2, 1, 0)
BP_CONV_PACKED(conv_packed_w8v2, 0, 0)
BP_CONV_PACKED(conv_packed_w8v2r, 0, 1)
#undef BP_CONV_PACKED

// The SMLAD path on interleaved 2-pixel patches with an asm dot loop: weights stored at 2 bits
// (s2, any input) or 8-bit codes at view 8 - sh (W8, any input width; rnd: the rounded view).
static inline __attribute__((always_inline)) void conv_il_impl(int16_t *buf, const bp_window_t *win,
                                                               const bp_quant_t *q, const bp_requant_t *rq,
                                                               const bp_dims_t *input_dims, const uint8_t *input,
                                                               const bp_dims_t *filter_dims, const uint8_t *filter,
                                                               const int32_t *bias, const bp_dims_t *output_dims,
                                                               void *output, const int s2, const int sh,
                                                               const int u4, const int rnd) {
    const int32_t cin = input_dims->c, cout = filter_dims->n, kh = filter_dims->h, kw = filter_dims->w;
    const int32_t k = kh * kw * cin, w_row = s2 ? (k + 3) >> 2 : k;
    const int32_t in_row = bp_row_bytes(cin, q->in.bits);
    const int32_t out_row = q->out.bits == 32 ? 0 : bp_row_bytes(cout, q->out.bits);
    const int32_t oh = output_dims->h, ow = output_dims->w, npix = oh * ow;
    for (int32_t n = 0; n < input_dims->n; n++) {
        const uint8_t *img = input + (int64_t)n * input_dims->h * input_dims->w * in_row;
        for (int32_t p = 0; p < npix; p += 2) {
            const int32_t np = (p + 1 < npix) ? 2 : 1;
            int64_t row[2];
            uint8_t *orow[2] = {NULL, NULL};
            for (int32_t j = 0; j < 2; j++) {
                // A lone last pixel is computed twice into the same row.
                const int32_t pp = p + (j < np ? j : 0);
                row[j] = (int64_t)n * npix + pp;
                im2col_s16_impl(buf + 4 * j, img, input_dims, in_row, win, q, kh, kw, pp / ow, pp % ow, 1, u4);
                if (out_row > 0) {
                    orow[j] = (uint8_t *)output + row[j] * out_row;
                    bp_clear_row(orow[j], out_row);
                }
            }
            for (int32_t o = 0; o < cout; o += 2) {
                const int32_t o1 = (o + 1 < cout) ? o + 1 : o;
                int32_t acc[2][2];
                const uint8_t *wrow[2] = {filter + (int64_t)o * w_row, filter + (int64_t)o1 * w_row};
                if (s2) {
                    dot_2x2_s2(acc, buf, wrow, k);
                } else {
                    dot_2x2_w8(acc, buf, wrow, k, sh, rnd);
                }
                for (int32_t j = 0; j < np; j++) {
                    const int32_t v0 = (bias ? bias[o] : 0) + acc[j][0];
                    if (q->out.bits == 4 && o1 != o) {
                        const int32_t v1 = (bias ? bias[o1] : 0) + acc[j][1];
                        const int32_t r0 = requant(v0, rq->multiplier[o], rq->shift[o], q->act_min, q->act_max);
                        const int32_t r1 = requant(v1, rq->multiplier[o1], rq->shift[o1], q->act_min, q->act_max);
                        orow[j][o >> 1] = (uint8_t)((r0 & 0xF) | ((r1 & 0xF) << 4));
                        continue;
                    }
                    emit(output, orow[j], row[j], cout, o, q, rq, v0);
                    if (o1 != o) {
                        emit(output, orow[j], row[j], cout, o1, q, rq, (bias ? bias[o1] : 0) + acc[j][1]);
                    }
                }
            }
        }
    }
}

// The instances of conv_il_impl, each out of line with its constants (s2, sh, u4, rnd):
// - conv_il_s2: weights stored at 2 bits; conv_il_w8: the full 8-bit view of 8-bit codes;
// - conv_il_w8v4 / conv_il_w8v2: the W8 loop for the 4-bit and 2-bit views of 8-bit codes (one AND
//   per weight word, exact shift); _u4: for unsigned 4-bit inputs, the patch is built from one
//   halfword per 4 values;
// - the same with r: the rounded views (w_round), QADD8 before the AND, the W8R loop of dot_2x2_w8.
#define BP_CONV_IL(name, s2, sh, u4, rnd)                                                                  \
    static __attribute__((noinline)) void name(BP_CONV_PARAMS) { conv_il_impl(BP_CONV_ARGS, s2, sh, u4, rnd); }
BP_CONV_IL(conv_il_s2, 1, 0, 0, 0)
BP_CONV_IL(conv_il_w8, 0, 0, 0, 0)
BP_CONV_IL(conv_il_w8v4, 0, 4, 0, 0)
BP_CONV_IL(conv_il_w8v4_u4, 0, 4, 1, 0)
BP_CONV_IL(conv_il_w8v2, 0, 6, 0, 0)
BP_CONV_IL(conv_il_w8v4r, 0, 4, 0, 1)
BP_CONV_IL(conv_il_w8v4r_u4, 0, 4, 1, 1)
BP_CONV_IL(conv_il_w8v2r, 0, 6, 0, 1)
#undef BP_CONV_IL
#undef BP_CONV_ARGS
#undef BP_CONV_PARAMS

// ---- First layers: one unsigned input channel (8, 4 or 2 bits), 3x3 window, stride 1 ------------
//
// Only 9 MACs feed each output here, so the 2-pixel x 2-channel patch path above spends most of its
// time outside the dot product (patch building, loop control and requantization per 2x2 block). This
// path turns the loops around: per output channel the 9 weight views (any view of 8-bit codes: taken
// once, exactly, when the weights are packed) sit in 5 registers as int16 pairs, and the channel's
// bias and requantization constants next to them on the stack, while the pixels are swept two at a
// time straight from the uint8 input (no scratch: the buffer size is unchanged). For the pixel pair
// (x, x + 1), one LDR per kernel row reads input columns c .. c + 3 (c = x - pad_left) and UXTB16
// splits them into e = (v0, v2) and o = (v1, v3):
//     pixel x:     v0 w0 + v2 w2 = SMLAD(e, (w0, w2)),  + v1 w1 = SMLABx(o, w1)
//     pixel x + 1: v1 w0 + v3 w2 = SMLAD(o, (w0, w2)),  + v2 w1 = SMLATx(e, w1)
// The three (w0, w2) pairs take three registers; the middle taps share two more, (w1 of row 0, w1 of
// row 1) and (w1 of row 2, 0). Vertical padding: the three input rows read are always inside the
// image (the first clamped to 0 .. H - 3), and the kernel rows that would fall outside get zero
// weights; the output rows with the same offset form a band. Horizontal padding of 1 on each side
// (even widths >= 4): the border pixels read the word at column 0 (pixel 0 = w1 v0 + w2 v1, bottom
// halves) or at column W - 4 (pixel W - 1 = w0 v[W-2] + w1 v[W-1], top halves). On ARMv7E-M a
// whole band (left pixel, pairs, right pixel, row after row) is one asm block. Whole groups of 4
// output channels run c1_band4 (below): per pixel pair the three input words are loaded and split
// once for 4 channels x 2 pixels (113 instructions per pair and group, about 14 per output), and each
// output byte is stored once. The cout % 4 last channels run the one-channel band c1_band (35
// instructions per pixel pair). Other horizontal geometries take the same arithmetic in C, row by
// row, with the border columns through a loop over the valid taps.
//
// Requantization (every shift s >= 33, as in bp_depthwise_conv2d.c): v = SMMLA(acc, M, 2^(s-33)) >>
// (s - 32), then USAT #b; the path requires an unsigned output with the full clamp 0 .. 2^b - 1. A
// shift s < 33 is lifted to 33 by weights and bias times 2^(33-s) where that fits (c1_eligible).
// Sub-byte outputs: channel o lands at bit (o * b) % 8 of its byte. c1_band4 ORs its channels' fields
// in a register; in the one-channel band the first channel of each byte stores the byte (clearing the
// rest), the others OR into it (the channels run in increasing order).
// Inputs of 4 or 2 bits: with one channel each pixel is a row of one byte holding the value in its
// low bits (padding bits zero, bp_kernels.h), so they run here as uint8 values 0 .. 2^b - 1; only the
// headroom bound changes (c1_eligible).
// Other cases (signed input or output, other clamps, shifts that cannot be lifted, int32 outputs,
// H < 3) take the general paths.

// Per output channel: bias and requantization constants (two LDRD in the asm), loop bookkeeping.
typedef struct {
    int32_t bias, mult; // LDRD
    int32_t rnd, sh;    // LDRD: 2^(s-33), s - 32
    const uint8_t *end; // the asm's input position after the last pair of the current row
    int32_t rows;       // the asm's rows left in the band
} c1_consts_t;

// The packed weights of a band: (w0, w2) of the three input rows read, (w1 row 0, w1 row 1),
// (w1 row 2, 0).
typedef struct {
    uint32_t wa, wb, wc, w1ab, w1c;
} c1_wpack_t;

static inline uint32_t c1_pair(int32_t lo, int32_t hi) { return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16); }

// Whether bp_conv2d can take the first-layer path (any storage width and view of the weights).
// Shifts below 33 are lifted (bp_rq_lift): the channel's weights and bias times 2^j, j = 33 - s, where
// the headroom allows it and the weights stay int16 (|view| <= 2^(view-1): j <= 16 - view).
static int c1_eligible(const bp_window_t *win, const bp_quant_t *q, const bp_requant_t *rq, const bp_dims_t *in,
                       const bp_dims_t *f, const int32_t *bias) {
    if (in->c != 1 || f->h != 3 || f->w != 3 || win->stride_h != 1 || win->stride_w != 1 || in->h < 3 ||
        q->in.is_signed || q->out.bits == 32 || q->out.is_signed || q->act_min != 0 ||
        q->act_max != (1 << q->out.bits) - 1) {
        return 0;
    }
    // One channel: every input pixel is one byte at any width (its value in the low bits, the padding
    // bits above it zero by the layout contract), so 4-bit and 2-bit inputs run as uint8 of 0 .. 2^b - 1.
    const int64_t xmax = ((int64_t)1 << q->in.bits) - 1;
    const int64_t products = (int64_t)9 * xmax * ((int64_t)1 << (q->w_view - 1));
    for (int32_t o = 0; o < f->n; o++) {
        const int32_t j = bp_rq_lift(rq->shift[o], bias ? bias[o] : 0, products);
        if (j < 0 || j > 16 - q->w_view) {
            return 0;
        }
    }
    return 1;
}

// v = SMMLA(acc, M, 2^(s-33)) >> (s - 32) clamped to 0 .. 2^b - 1 (bp_requant for s >= 33).
static inline int32_t c1_requant(int32_t acc, const c1_consts_t *k, int32_t bits) {
    const int32_t v = bp_smmla(acc, k->mult, k->rnd) >> k->sh;
    const int32_t hi = (1 << bits) - 1;
    return v < 0 ? 0 : (v > hi ? hi : v);
}

// Store v (0 .. 2^b - 1) at bit kq of the byte at op: the first channel of a byte stores it.
static inline void c1_store(uint8_t *op, int32_t v, int32_t kq) {
    *op = kq == 0 ? (uint8_t)v : (uint8_t)(*op | (v << kq));
}

// One output pixel whose window columns c0 .. c0 + 2 may leave the image (0 .. width - 1): only the
// valid taps. r: the first of the three input rows read, rs bytes apart; wr: their weights.
static inline int32_t c1_pixel(const uint8_t *r, ptrdiff_t rs, int32_t c0, int32_t width, const int32_t wr[3][3],
                               int32_t acc) {
    for (int32_t kx = 0; kx < 3; kx++) {
        const int32_t c = c0 + kx;
        if (c >= 0 && c < width) {
            acc += wr[0][kx] * r[c] + wr[1][kx] * r[rs + c] + wr[2][kx] * r[2 * rs + c];
        }
    }
    return acc;
}

// A border pixel of pad 1 (the asm's LEFT and RIGHT, see the section comment): p at input column 0
// (left) or W - 4 (right) of the first row read.
static inline __attribute__((always_inline)) int32_t c1_edge(const uint8_t *p, ptrdiff_t rs, const c1_wpack_t *w,
                                                             int32_t acc, const int right) {
    for (int32_t r = 0; r < 3; r++) {
        const uint32_t x = bp_load32(p + r * rs), e = bp_uxtb16(x), o = bp_uxtb16_ror8(x);
        const uint32_t w02 = r == 0 ? w->wa : r == 1 ? w->wb : w->wc;
        const uint32_t w1 = r == 2 ? w->w1c : r == 1 ? w->w1ab >> 16 : w->w1ab; // w1 in the bottom half
        acc = right ? bp_smlatb(o, w1, bp_smlatb(e, w02, acc)) : bp_smlabt(o, w02, bp_smlabb(e, w1, acc));
    }
    return acc;
}

// n pixel pairs of one output row: the first pair's input window column at p (the next 2 bytes
// further), input rows rs bytes apart, outputs at op, opx bytes apart, at bit kq of their byte.
static inline __attribute__((always_inline)) void c1_pairs(const uint8_t *p, ptrdiff_t rs, uint8_t *op,
                                                           ptrdiff_t opx, const c1_wpack_t *w,
                                                           const c1_consts_t *k, int32_t n, int32_t bits,
                                                           int32_t kq) {
    for (; n > 0; n--, p += 2, op += 2 * opx) {
        int32_t a0 = k->bias, a1 = k->bias;
        for (int32_t r = 0; r < 3; r++) {
            const uint32_t x = bp_load32(p + r * rs), e = bp_uxtb16(x), o = bp_uxtb16_ror8(x);
            const uint32_t w02 = r == 0 ? w->wa : r == 1 ? w->wb : w->wc;
            const uint32_t w1 = r == 2 ? w->w1c : r == 1 ? w->w1ab >> 16 : w->w1ab;
            a0 = bp_smlabb(o, w1, bp_smlad(e, w02, a0));
            a1 = bp_smlatb(e, w1, bp_smlad(o, w02, a1));
        }
        c1_store(op, c1_requant(a0, k, bits), kq);
        c1_store(op + opx, c1_requant(a1, k, bits), kq);
    }
}

// A band of k->rows output rows with pad 1 left and right and an even width W >= 4: per row the left
// pixel, (W - 2) / 2 pairs, the right pixel. p: input column 0 of the first row read (the next rows
// W bytes further), op: the band's first output (pixels opx bytes apart, rows contiguous), at bit kq
// of its byte. bits, kq: constants at each call site (the asm's USAT and stores). Changes k->end and
// k->rows.
static inline __attribute__((always_inline)) void c1_band(const uint8_t *p, ptrdiff_t rs, uint8_t *op, ptrdiff_t opx,
                                                          const c1_wpack_t *w, c1_consts_t *k, const int32_t bits,
                                                          const int32_t kq) {
#ifdef BP_HAVE_DSP
    int32_t a0, a1;
    uint32_t e, o, t;
    const uint32_t wa = w->wa, wb = w->wb, wc = w->wc, w1ab = w->w1ab, w1c = w->w1c;
    k->end = p + (rs - 2);
// the stores of one value (a0) and of a pair (a0, a1): at bit 0 a plain STRB, else OR into the byte
#define BP_C1_ST1(sh) "ldrb %[t], [%[op]]\n\torr %[t], %[t], %[a0], lsl #" #sh "\n\tstrb %[t], [%[op]]\n\t"
#define BP_C1_ST2(sh)                                                                                      \
    BP_C1_ST1(sh) "ldrb %[t], [%[op], %[opx]]\n\torr %[t], %[t], %[a1], lsl #" #sh "\n\tstrb %[t], [%[op], %[opx]]\n\t"
#define BP_C1_STB1 "strb %[a0], [%[op]]\n\t"
#define BP_C1_STB2 "strb %[a0], [%[op]]\n\tstrb %[a1], [%[op], %[opx]]\n\t"
// one kernel row for a pair: word at addr, e/o, two SMLAD and the middle tap (m0/m1 select its half)
#define BP_C1_ROW(addr, wp, w1, m0, m1)                                                                    \
    "ldr %[e], " addr "\n\t"                                                                               \
    "uxtb16 %[o], %[e], ror #8\n\t"                                                                        \
    "uxtb16 %[e], %[e]\n\t"                                                                                \
    "smlad %[a0], %[e], %[" wp "], %[a0]\n\t"                                                              \
    "smlad %[a1], %[o], %[" wp "], %[a1]\n\t" m0 " %[a0], %[o], %[" w1 "], %[a0]\n\t" m1                 \
    " %[a1], %[e], %[" w1 "], %[a1]\n\t"
// one kernel row for a border pixel: (m0 e, w02 or w1), (m1 o, ...)
#define BP_C1_EDGE(addr, m0, r0, m1, r1)                                                                   \
    "ldr %[e], " addr "\n\t"                                                                               \
    "uxtb16 %[o], %[e], ror #8\n\t"                                                                        \
    "uxtb16 %[e], %[e]\n\t" m0 " %[a0], %[e], %[" r0 "], %[a0]\n\t" m1 " %[a0], %[o], %[" r1 "], %[a0]\n\t"
#define BP_C1_RQ1(b)                                                                                       \
    "ldrd %[e], %[o], %[rs2]\n\t"                                                                          \
    "smmla %[a0], %[a0], %[t], %[e]\n\t"                                                                   \
    "asr %[a0], %[a0], %[o]\n\t"                                                                           \
    "usat %[a0], #" #b ", %[a0]\n\t"
#define BP_C1_BAND(b, st1, st2)                                                                            \
    __asm__ volatile(                                                                                      \
        "2:\n\t"                                                                                           \
        "ldrd %[a0], %[t], %[bm]\n\t" BP_C1_EDGE("[%[p]]", "smlabb", "w1ab", "smlabt", "wa")               \
            BP_C1_EDGE("[%[p], %[rs]]", "smlabt", "w1ab", "smlabt", "wb")                                  \
                BP_C1_EDGE("[%[p], %[rs], lsl #1]", "smlabb", "w1c", "smlabt", "wc") BP_C1_RQ1(b) st1      \
        "add %[op], %[op], %[opx]\n\t"                                                                     \
        "1:\n\t"                                                                                           \
        "ldrd %[a0], %[t], %[bm]\n\t"                                                                      \
        "ldr %[e], [%[p], %[rs]]\n\t"                                                                      \
        "uxtb16 %[o], %[e], ror #8\n\t"                                                                    \
        "uxtb16 %[e], %[e]\n\t"                                                                            \
        "smlad %[a1], %[o], %[wb], %[a0]\n\t"                                                              \
        "smlad %[a0], %[e], %[wb], %[a0]\n\t"                                                              \
        "smlabt %[a0], %[o], %[w1ab], %[a0]\n\t"                                                           \
        "smlatt %[a1], %[e], %[w1ab], %[a1]\n\t" BP_C1_ROW("[%[p], %[rs], lsl #1]", "wc", "w1c", "smlabb", \
                                                          "smlatb")                                        \
            BP_C1_ROW("[%[p]], #2", "wa", "w1ab", "smlabb", "smlatb")                                      \
        "ldrd %[e], %[o], %[rs2]\n\t"                                                                      \
        "smmla %[a0], %[a0], %[t], %[e]\n\t"                                                               \
        "smmla %[a1], %[a1], %[t], %[e]\n\t"                                                               \
        "asr %[a0], %[a0], %[o]\n\t"                                                                       \
        "asr %[a1], %[a1], %[o]\n\t"                                                                       \
        "usat %[a0], #" #b ", %[a0]\n\t"                                                                   \
        "usat %[a1], #" #b ", %[a1]\n\t" st2 "add %[op], %[op], %[opx], lsl #1\n\t"                        \
        "ldr %[t], %[end]\n\t"                                                                             \
        "cmp %[p], %[t]\n\t"                                                                               \
        "bne 1b\n\t"                                                                                       \
        "sub %[p], %[p], #2\n\t"                                                                           \
        "ldrd %[a0], %[t], %[bm]\n\t" BP_C1_EDGE("[%[p]]", "smlatb", "wa", "smlatb", "w1ab")               \
            BP_C1_EDGE("[%[p], %[rs]]", "smlatb", "wb", "smlatt", "w1ab")                                  \
                BP_C1_EDGE("[%[p], %[rs], lsl #1]", "smlatb", "wc", "smlatb", "w1c") BP_C1_RQ1(b) st1      \
        "add %[op], %[op], %[opx]\n\t"                                                                     \
        "add %[p], %[p], #4\n\t"                                                                           \
        "ldr %[t], %[end]\n\t"                                                                             \
        "add %[t], %[t], %[rs]\n\t"                                                                        \
        "str %[t], %[end]\n\t"                                                                             \
        "ldr %[t], %[rows]\n\t"                                                                            \
        "subs %[t], %[t], #1\n\t"                                                                          \
        "str %[t], %[rows]\n\t"                                                                            \
        "bne 2b\n\t"                                                                                       \
        : [a0] "=&r"(a0), [a1] "=&r"(a1), [e] "=&r"(e), [o] "=&r"(o), [t] "=&r"(t), [p] "+r"(p),           \
          [op] "+r"(op), [end] "+m"(k->end), [rows] "+m"(k->rows)                                          \
        : [rs] "r"(rs), [opx] "r"(opx), [wa] "r"(wa), [wb] "r"(wb), [wc] "r"(wc), [w1ab] "r"(w1ab),         \
          [w1c] "r"(w1c), [bm] "m"(k->bias), [rs2] "m"(k->rnd)                                             \
        : "cc", "memory")
    if (bits == 8) {
        BP_C1_BAND(8, BP_C1_STB1, BP_C1_STB2);
    } else if (kq == 0) {
        if (bits == 4) {
            BP_C1_BAND(4, BP_C1_STB1, BP_C1_STB2);
        } else {
            BP_C1_BAND(2, BP_C1_STB1, BP_C1_STB2);
        }
    } else if (bits == 4) {
        BP_C1_BAND(4, BP_C1_ST1(4), BP_C1_ST2(4));
    } else if (kq == 2) {
        BP_C1_BAND(2, BP_C1_ST1(2), BP_C1_ST2(2));
    } else if (kq == 4) {
        BP_C1_BAND(2, BP_C1_ST1(4), BP_C1_ST2(4));
    } else {
        BP_C1_BAND(2, BP_C1_ST1(6), BP_C1_ST2(6));
    }
#undef BP_C1_BAND
#undef BP_C1_RQ1
#undef BP_C1_EDGE
#undef BP_C1_ROW
#undef BP_C1_STB2
#undef BP_C1_STB1
#undef BP_C1_ST2
#undef BP_C1_ST1
#else
    // The same arithmetic in portable C (bp_dsp.h), for the host build and its tests.
    const int32_t width = (int32_t)rs, npairs = (width - 2) / 2;
    for (; k->rows > 0; k->rows--, p += rs) {
        c1_store(op, c1_requant(c1_edge(p, rs, w, k->bias, 0), k, bits), kq);
        op += opx;
        c1_pairs(p, rs, op, opx, w, k, npairs, bits, kq);
        op += 2 * npairs * opx;
        c1_store(op, c1_requant(c1_edge(p + (width - 4), rs, w, k->bias, 1), k, bits), kq);
        op += opx;
    }
#endif
}

// The band offset of output row y: input row b + i (b = the first row read) is kernel row i + d.
static inline int32_t c1_offset(int32_t y, int32_t pt, int32_t h) {
    const int32_t iy = y - pt;
    return (iy < 0 ? 0 : (iy > h - 3 ? h - 3 : iy)) - iy;
}

// The end of the band of output row y (offset d): the first row after it with another offset.
static inline int32_t c1_band_end(int32_t y, int32_t d, int32_t pt, int32_t h, int32_t oh) {
    int32_t y1 = y + 1;
    while (y1 < oh && c1_offset(y1, pt, h) == d) {
        y1++;
    }
    return y1;
}

// Output channel o's weights w (view codes times 2^j, f: its packed row) and constants k (bias times
// 2^j, mult, round, shift): shifts below 33 lifted to s + j = 33 (c1_eligible checked it).
static void c1_channel(const bp_quant_t *q, const bp_requant_t *rq, const uint8_t *f, const int32_t *bias, int32_t o,
                       int32_t w[3][3], c1_consts_t *k) {
    const int32_t j = bp_rq_j(rq->shift[o]), s = rq->shift[o] + j;
    for (int32_t i = 0; i < 9; i++) {
        w[i / 3][i % 3] = bp_read_weight(f, i, q->w_stored, q->w_view, q->w_round) * ((int32_t)1 << j);
    }
    k->bias = (bias ? bias[o] : 0) * ((int32_t)1 << j);
    k->mult = rq->multiplier[o];
    k->rnd = (int32_t)1 << (s - 33);
    k->sh = s - 32;
}

// One band through the asm, specialised by output width and bit position (USAT's immediate, the
// stores). Out of line, with the constants copied to its own frame: the asm's 14 registers leave
// none for a base address, its memory operands are addressed from SP.
static __attribute__((noinline)) void c1_band_any(const uint8_t *p, ptrdiff_t rs, uint8_t *op, ptrdiff_t opx,
                                                  const c1_wpack_t *w, const c1_consts_t *kc, int32_t bits,
                                                  int32_t kq) {
    c1_consts_t kl = *kc, *const k = &kl;
    if (bits == 8) {
        c1_band(p, rs, op, opx, w, k, 8, 0);
    } else if (bits == 4) {
        if (kq == 0) {
            c1_band(p, rs, op, opx, w, k, 4, 0);
        } else {
            c1_band(p, rs, op, opx, w, k, 4, 4);
        }
    } else if (kq == 0) {
        c1_band(p, rs, op, opx, w, k, 2, 0);
    } else if (kq == 2) {
        c1_band(p, rs, op, opx, w, k, 2, 2);
    } else if (kq == 4) {
        c1_band(p, rs, op, opx, w, k, 2, 4);
    } else {
        c1_band(p, rs, op, opx, w, k, 2, 6);
    }
}

// ---- Four output channels per pass (the bands of the asm geometry, cout / 4 groups) --------------
//
// The band above reads and splits each input word once per output channel. Here 4 consecutive
// channels share that work: per pixel pair and kernel row one LDR and two UXTB16, then per channel
// one LDRD of its (w0, w2) and (w1, 0) and the 4 MACs, into 8 accumulators (4 channels x 2 pixels).
// With r0-r7 the accumulators, r8/r9 e and o, r10/r11 the weights, r12 the input position and lr the
// row stride, every constant comes from a table that the asm copies to the bottom of its own stack
// frame (c1_band4_t, 200 bytes) and reads SP-relative: LDM of the 8 biases, LDRD of the weights, LDM
// (from lr, spare during the requantization) of each channel's mult, round and shift. The 4
// channels' outputs of a pixel fill whole bytes (4 at 8 bits, 2 at 4 bits, 1 at 2 bits), each stored
// once. The border pixels take the same per-channel table, one pixel for the 4 channels.
// Per pixel pair about 113 instructions for 8 outputs (1 + 3 x 23 + 29 of requantization + 11-12
// of stores + 3 of loop) against 2 x 4 x 17-18.5 for one channel at a time.

// The table of a 4-channel band: the asm reads it at the offsets in the comments (Cortex-M, 4-byte
// pointers); the portable C reads the fields.
typedef struct {
    int32_t bias[8];     // 0: per channel twice (pixels x and x + 1): LDM {r0-r7}
    uint32_t w[3][4][2]; // 32: per kernel row of the rows read and channel: (w0, w2), (w1, 0)
    int32_t rq[4][3];    // 128: per channel mult, 2^(s-33), s - 32: LDM {r8-r10}
    ptrdiff_t rs;        // 176: the row stride, W } LDRD
    const uint8_t *end;  // 180: the input position after the last pair of the current row }
    uint8_t *op;         // 184: the next output } LDRD
    ptrdiff_t opx;       // 188: bytes from one pixel to the next }
    const uint8_t *p;    // 192: input column 0 of the first row read
    int32_t rows;        // 196: rows left in the band
} c1_band4_t;

#ifdef BP_HAVE_DSP
_Static_assert(sizeof(c1_band4_t) == 200 && offsetof(c1_band4_t, rq) == 128 && offsetof(c1_band4_t, rs) == 176 &&
                   offsetof(c1_band4_t, op) == 184 && offsetof(c1_band4_t, rows) == 196,
               "c1_band4_t: the asm's SP offsets");
#else
// The accumulators of the 4 channels for the left border pixel (kind 0: a[c][0]), a pixel pair
// (kind 1: a[c][0], a[c][1]) or the right border pixel (kind 2: a[c][0]); p as in c1_edge / c1_pairs.
static inline void c1_acc4(const uint8_t *p, ptrdiff_t rs, const c1_band4_t *t, int kind, int32_t a[4][2]) {
    for (int32_t c = 0; c < 4; c++) {
        a[c][0] = a[c][1] = t->bias[2 * c];
    }
    for (int32_t r = 0; r < 3; r++) {
        const uint32_t x = bp_load32(p + r * rs), e = bp_uxtb16(x), o = bp_uxtb16_ror8(x);
        for (int32_t c = 0; c < 4; c++) {
            const uint32_t w02 = t->w[r][c][0], w1 = t->w[r][c][1];
            if (kind == 0) {
                a[c][0] = bp_smlabt(o, w02, bp_smlabb(e, w1, a[c][0]));
            } else if (kind == 2) {
                a[c][0] = bp_smlatb(o, w1, bp_smlatb(e, w02, a[c][0]));
            } else {
                a[c][0] = bp_smlabb(o, w1, bp_smlad(e, w02, a[c][0]));
                a[c][1] = bp_smlatb(e, w1, bp_smlad(o, w02, a[c][1]));
            }
        }
    }
}

// Requantize the 4 channels of pixel i (0, 1) of a and store their byte(s) at op.
static inline void c1_store4(uint8_t *op, const c1_band4_t *t, int32_t a[4][2], int32_t i, int32_t bits) {
    int32_t v[4];
    for (int32_t c = 0; c < 4; c++) {
        const c1_consts_t k = {0, t->rq[c][0], t->rq[c][1], t->rq[c][2], NULL, 0};
        v[c] = c1_requant(a[c][i], &k, bits);
    }
    if (bits == 8) {
        op[0] = (uint8_t)v[0], op[1] = (uint8_t)v[1], op[2] = (uint8_t)v[2], op[3] = (uint8_t)v[3];
    } else if (bits == 4) {
        op[0] = (uint8_t)(v[0] | v[1] << 4), op[1] = (uint8_t)(v[2] | v[3] << 4);
    } else {
        op[0] = (uint8_t)(v[0] | v[1] << 2 | v[2] << 4 | v[3] << 6);
    }
}
#endif

// A band of 4 channels (the geometry of c1_band: pad 1 left and right, even W >= 4), out of line.
static __attribute__((noinline)) void c1_band4(c1_band4_t *t, const int32_t bits) {
#ifdef BP_HAVE_DSP
// one kernel row of a pair: the word at addr, e (r8) and o (r9), per channel its weights (LDRD at
// SP + off) and 4 MACs into (r0, r1), (r2, r3), (r4, r5), (r6, r7)
#define C4_MAC(off, a0, a1)                                                                                \
    "ldrd r10, r11, [sp, #" #off "]\n\t"                                                                   \
    "smlad " a0 ", r8, r10, " a0 "\n\t"                                                                    \
    "smlad " a1 ", r9, r10, " a1 "\n\t"                                                                    \
    "smlabb " a0 ", r9, r11, " a0 "\n\t"                                                                   \
    "smlatb " a1 ", r8, r11, " a1 "\n\t"
#define C4_LOAD(addr) "ldr r8, " addr "\n\tuxtb16 r9, r8, ror #8\n\tuxtb16 r8, r8\n\t"
#define C4_ROW(addr, o0, o1, o2, o3)                                                                       \
    C4_LOAD(addr) C4_MAC(o0, "r0", "r1") C4_MAC(o1, "r2", "r3") C4_MAC(o2, "r4", "r5") C4_MAC(o3, "r6", "r7")
// one kernel row of a border pixel into r0, r2, r4, r6: left (w1 v0 + w2 v1) or right (w0 v2 + w1 v3)
#define C4_EL(off, a)                                                                                      \
    "ldrd r10, r11, [sp, #" #off "]\n\tsmlabb " a ", r8, r11, " a "\n\tsmlabt " a ", r9, r10, " a "\n\t"
#define C4_ER(off, a)                                                                                      \
    "ldrd r10, r11, [sp, #" #off "]\n\tsmlatb " a ", r8, r10, " a "\n\tsmlatb " a ", r9, r11, " a "\n\t"
#define C4_EDGE(E)                                                                                         \
    "ldm sp, {r0-r7}\n\t" C4_LOAD("[r12]") E(32, "r0") E(40, "r2") E(48, "r4") E(56, "r6")                 \
        C4_LOAD("[r12, lr]") E(64, "r0") E(72, "r2") E(80, "r4") E(88, "r6")                               \
            C4_LOAD("[r12, lr, lsl #1]") E(96, "r0") E(104, "r2") E(112, "r4") E(120, "r6")
// requantization of one channel: its constants by LDM from lr (advancing), then one or two values
#define C4_RQ1(b, a)                                                                                       \
    "ldm lr!, {r8-r10}\n\tsmmla " a ", " a ", r8, r9\n\tasr " a ", " a ", r10\n\tusat " a ", #" #b ", " a "\n\t"
#define C4_RQ2(b, a0, a1)                                                                                  \
    "ldm lr!, {r8-r10}\n\t"                                                                                \
    "smmla " a0 ", " a0 ", r8, r9\n\tsmmla " a1 ", " a1 ", r8, r9\n\t"                                     \
    "asr " a0 ", " a0 ", r10\n\tasr " a1 ", " a1 ", r10\n\t"                                               \
    "usat " a0 ", #" #b ", " a0 "\n\tusat " a1 ", #" #b ", " a1 "\n\t"
#define C4_RQE(b) "add lr, sp, #128\n\t" C4_RQ1(b, "r0") C4_RQ1(b, "r2") C4_RQ1(b, "r4") C4_RQ1(b, "r6")
#define C4_RQP(b)                                                                                          \
    "add lr, sp, #128\n\t" C4_RQ2(b, "r0", "r1") C4_RQ2(b, "r2", "r3") C4_RQ2(b, "r4", "r5")             \
        C4_RQ2(b, "r6", "r7")
// the output position and step (r8, r9), its update
#define C4_OP "ldrd r8, r9, [sp, #184]\n\t"
#define C4_OPX1 "add r8, r8, r9\n\tstr r8, [sp, #184]\n\t"
// stores of one pixel (r0, r2, r4, r6) and of a pair (and r1, r3, r5, r7) at 8, 4 and 2 bits
#define C4_ST1_8 C4_OP "strb r0, [r8]\n\tstrb r2, [r8, #1]\n\tstrb r4, [r8, #2]\n\tstrb r6, [r8, #3]\n\t" C4_OPX1
#define C4_ST2_8                                                                                           \
    C4_OP "strb r0, [r8]\n\tstrb r2, [r8, #1]\n\tstrb r4, [r8, #2]\n\tstrb r6, [r8, #3]\n\tadd r8, r8, r9\n\t" \
          "strb r1, [r8]\n\tstrb r3, [r8, #1]\n\tstrb r5, [r8, #2]\n\tstrb r7, [r8, #3]\n\t" C4_OPX1
#define C4_ST1_4                                                                                           \
    "orr r0, r0, r2, lsl #4\n\torr r4, r4, r6, lsl #4\n\t" C4_OP "strb r0, [r8]\n\tstrb r4, [r8, #1]\n\t" C4_OPX1
#define C4_ST2_4                                                                                           \
    "orr r0, r0, r2, lsl #4\n\torr r4, r4, r6, lsl #4\n\torr r1, r1, r3, lsl #4\n\torr r5, r5, r7, lsl #4\n\t" \
        C4_OP "strb r0, [r8]\n\tstrb r4, [r8, #1]\n\tadd r8, r8, r9\n\tstrb r1, [r8]\n\tstrb r5, [r8, #1]\n\t" \
            C4_OPX1
#define C4_ST1_2                                                                                           \
    "orr r0, r0, r2, lsl #2\n\torr r0, r0, r4, lsl #4\n\torr r0, r0, r6, lsl #6\n\t" C4_OP                 \
    "strb r0, [r8]\n\t" C4_OPX1
#define C4_ST2_2                                                                                           \
    "orr r0, r0, r2, lsl #2\n\torr r0, r0, r4, lsl #4\n\torr r0, r0, r6, lsl #6\n\t"                      \
    "orr r1, r1, r3, lsl #2\n\torr r1, r1, r5, lsl #4\n\torr r1, r1, r7, lsl #6\n\t" C4_OP                 \
    "strb r0, [r8]\n\tstrb r1, [r8, r9]\n\tadd r8, r8, r9, lsl #1\n\tstr r8, [sp, #184]\n\t"
// the copy of the table (r0) to SP, then per row: left pixel, pairs, right pixel
#define C4_BAND(b, st1, st2)                                                                               \
    do {                                                                                                   \
        register c1_band4_t *tab __asm__("r0") = t;                                                        \
        __asm__ volatile(                                                                                  \
            "sub sp, sp, #200\n\t"                                                                         \
            "mov r1, sp\n\t"                                                                               \
            "ldm r0!, {r2-r12, lr}\n\tstm r1!, {r2-r12, lr}\n\t"                                           \
            "ldm r0!, {r2-r12, lr}\n\tstm r1!, {r2-r12, lr}\n\t"                                           \
            "ldm r0!, {r2-r12, lr}\n\tstm r1!, {r2-r12, lr}\n\t"                                           \
            "ldm r0!, {r2-r12, lr}\n\tstm r1!, {r2-r12, lr}\n\t"                                           \
            "ldm r0!, {r2, r3}\n\tstm r1!, {r2, r3}\n\t"                                                   \
            "ldr r12, [sp, #192]\n\t"                                                                      \
            "ldr lr, [sp, #176]\n\t"                                                                       \
            "2:\n\t" C4_EDGE(C4_EL) C4_RQE(b) st1 "ldr lr, [sp, #176]\n\t"                                 \
            "1:\n\t"                                                                                       \
            "ldm sp, {r0-r7}\n\t" C4_ROW("[r12, lr]", 64, 72, 80, 88)                                      \
                C4_ROW("[r12, lr, lsl #1]", 96, 104, 112, 120) C4_ROW("[r12], #2", 32, 40, 48, 56)         \
                    C4_RQP(b) st2                                                                          \
            "ldrd lr, r10, [sp, #176]\n\t"                                                                 \
            "cmp r12, r10\n\t"                                                                             \
            "bne 1b\n\t"                                                                                   \
            "sub r12, r12, #2\n\t" C4_EDGE(C4_ER) C4_RQE(b) st1                                            \
            "add r12, r12, #4\n\t"                                                                         \
            "ldrd lr, r10, [sp, #176]\n\t"                                                                 \
            "add r10, r10, lr\n\t"                                                                         \
            "str r10, [sp, #180]\n\t"                                                                      \
            "ldr r10, [sp, #196]\n\t"                                                                      \
            "subs r10, r10, #1\n\t"                                                                        \
            "str r10, [sp, #196]\n\t"                                                                      \
            "bne 2b\n\t"                                                                                   \
            "add sp, sp, #200\n\t"                                                                         \
            : "+r"(tab)                                                                                    \
            :                                                                                              \
            : "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "lr", "cc",       \
              "memory");                                                                                   \
    } while (0)
    if (bits == 8) {
        C4_BAND(8, C4_ST1_8, C4_ST2_8);
    } else if (bits == 4) {
        C4_BAND(4, C4_ST1_4, C4_ST2_4);
    } else {
        C4_BAND(2, C4_ST1_2, C4_ST2_2);
    }
#undef C4_BAND
#undef C4_ST2_2
#undef C4_ST1_2
#undef C4_ST2_4
#undef C4_ST1_4
#undef C4_ST2_8
#undef C4_ST1_8
#undef C4_OPX1
#undef C4_OP
#undef C4_RQP
#undef C4_RQE
#undef C4_RQ2
#undef C4_RQ1
#undef C4_EDGE
#undef C4_ER
#undef C4_EL
#undef C4_ROW
#undef C4_LOAD
#undef C4_MAC
#else
    // The same arithmetic in portable C (bp_dsp.h), for the host build and its tests.
    const ptrdiff_t rs = t->rs, opx = t->opx;
    const int32_t npairs = (int32_t)(rs - 2) / 2;
    int32_t a[4][2];
    uint8_t *op = t->op;
    for (const uint8_t *p = t->p; t->rows > 0; t->rows--, p += rs) {
        c1_acc4(p, rs, t, 0, a);
        c1_store4(op, t, a, 0, bits);
        op += opx;
        for (int32_t i = 0; i < npairs; i++, op += 2 * opx) {
            c1_acc4(p + 2 * i, rs, t, 1, a);
            c1_store4(op, t, a, 0, bits);
            c1_store4(op + opx, t, a, 1, bits);
        }
        c1_acc4(p + (rs - 4), rs, t, 2, a);
        c1_store4(op, t, a, 0, bits);
        op += opx;
    }
#endif
}

static __attribute__((noinline)) void conv_c1(const bp_window_t *win, const bp_quant_t *q, const bp_requant_t *rq,
                                              const bp_dims_t *input_dims, const uint8_t *input,
                                              const bp_dims_t *filter_dims, const uint8_t *filter,
                                              const int32_t *bias, const bp_dims_t *output_dims, void *output) {
    const int32_t h = input_dims->h, width = input_dims->w, oh = output_dims->h, ow = output_dims->w;
    const int32_t pt = win->pad_top, pl = win->pad_left;
    const int32_t cout = filter_dims->n, bits = q->out.bits, w_row = bp_row_bytes(9, q->w_stored);
    const ptrdiff_t rs = width, opx = bp_row_bytes(cout, bits);
    // The band asm: pad 1 left and right (ow == width), even width >= 4.
    const int banded = pl == 1 && win->pad_right == 1 && width >= 4 && (width & 1) == 0;
    // Otherwise, per row: pixel pairs (x, x + 1) read input columns x - pl .. x - pl + 3, from x_lo
    // while x + 1 <= x_hi; the pixels before and after them one by one.
    const int32_t x_lo = pl < ow ? pl : ow;
    const int32_t x_hi = ow - 1 < width - 3 + pl ? ow - 1 : width - 3 + pl;
    const int32_t npairs = x_hi > x_lo ? (x_hi - x_lo + 1) >> 1 : 0;
    const int32_t x_end = x_lo + 2 * npairs;
    // The band asm takes 4 channels at a time (c1_band4), the cout % 4 last ones one at a time.
    const int32_t o4 = banded ? cout & ~3 : 0;
    for (int32_t n = 0; n < input_dims->n; n++) {
        const uint8_t *img = input + (ptrdiff_t)n * h * width;
        uint8_t *oimg = (uint8_t *)output + (ptrdiff_t)n * oh * ow * opx;
        for (int32_t o = 0; o < o4; o += 4) {
            int32_t w[4][3][3];
            c1_band4_t t;
            for (int32_t c = 0; c < 4; c++) {
                c1_consts_t k;
                c1_channel(q, rq, filter + (ptrdiff_t)(o + c) * w_row, bias, o + c, w[c], &k);
                t.bias[2 * c] = t.bias[2 * c + 1] = k.bias;
                t.rq[c][0] = k.mult;
                t.rq[c][1] = k.rnd;
                t.rq[c][2] = k.sh;
            }
            t.rs = rs;
            t.opx = opx;
            for (int32_t y = 0; y < oh;) {
                const int32_t d = c1_offset(y, pt, h);
                const int32_t y1 = c1_band_end(y, d, pt, h, oh);
                for (int32_t c = 0; c < 4; c++) {
                    for (int32_t i = 0; i < 3; i++) {
                        const int32_t in = i + d >= 0 && i + d < 3;
                        t.w[i][c][0] = in ? c1_pair(w[c][i + d][0], w[c][i + d][2]) : 0;
                        t.w[i][c][1] = in ? c1_pair(w[c][i + d][1], 0) : 0;
                    }
                }
                t.p = img + (ptrdiff_t)(y - pt + d) * rs;
                t.end = t.p + (rs - 2);
                t.op = oimg + ((o * bits) >> 3) + (ptrdiff_t)y * ow * opx;
                t.rows = y1 - y;
                c1_band4(&t, bits);
                y = y1;
            }
        }
        for (int32_t o = o4; o < cout; o++) {
            int32_t w[3][3];
            c1_consts_t k;
            c1_channel(q, rq, filter + (ptrdiff_t)o * w_row, bias, o, w, &k);
            const int32_t kq = (o * bits) & 7;
            uint8_t *ocol = oimg + ((o * bits) >> 3);
            for (int32_t y = 0; y < oh;) {
                // the band: output rows y .. y1 - 1 with the same offset d
                const int32_t d = c1_offset(y, pt, h);
                const int32_t y1 = c1_band_end(y, d, pt, h, oh);
                int32_t wr[3][3];
                for (int32_t i = 0; i < 3; i++) {
                    for (int32_t kx = 0; kx < 3; kx++) {
                        wr[i][kx] = (i + d >= 0 && i + d < 3) ? w[i + d][kx] : 0;
                    }
                }
                const c1_wpack_t wp = {c1_pair(wr[0][0], wr[0][2]), c1_pair(wr[1][0], wr[1][2]),
                                       c1_pair(wr[2][0], wr[2][2]), c1_pair(wr[0][1], wr[1][1]),
                                       c1_pair(wr[2][1], 0)};
                const uint8_t *r = img + (ptrdiff_t)(y - pt + d) * rs;
                uint8_t *orow = ocol + (ptrdiff_t)y * ow * opx;
                if (banded) {
                    k.rows = y1 - y;
                    c1_band_any(r, rs, orow, opx, &wp, &k, bits, kq);
                    y = y1;
                    continue;
                }
                for (; y < y1; y++, r += rs, orow += ow * opx) {
                    for (int32_t x = 0; x < x_lo; x++) {
                        const int32_t acc = (x - pl == -1 && width >= 4) ? c1_edge(r, rs, &wp, k.bias, 0)
                                                                         : c1_pixel(r, rs, x - pl, width, wr, k.bias);
                        c1_store(orow + x * opx, c1_requant(acc, &k, bits), kq);
                    }
                    c1_pairs(r + (x_lo - pl), rs, orow + x_lo * opx, opx, &wp, &k, npairs, bits, kq);
                    for (int32_t x = x_end; x < ow; x++) {
                        const int32_t acc = (x - pl == width - 2 && width >= 4)
                                                ? c1_edge(r + (width - 4), rs, &wp, k.bias, 1)
                                                : c1_pixel(r, rs, x - pl, width, wr, k.bias);
                        c1_store(orow + x * opx, c1_requant(acc, &k, bits), kq);
                    }
                }
            }
        }
    }
}

// Path 1, weights stored at 4 bits only (bp_conv2d sends every 8-bit storage case to the W8 / packed
// loops above): 2-pixel x 2-channel blocks on one interleaved int16 patch buffer (im2col_s16_g8: 2
// patches of k4 int16, bp_conv2d_get_buffer_size), dot_2x2_s4. sh (a constant: 4 or 6) the view
// 8 - sh, rnd (a constant) the rounded view, u4 (a constant) unsigned 4-bit inputs; one out-of-line
// instance per combination used (conv_s4_*).
static inline __attribute__((always_inline)) void conv_s4_impl(const bp_context_t *ctx, const bp_window_t *win,
                                                               const bp_quant_t *q, const bp_requant_t *rq,
                                                               const bp_dims_t *input_dims, const uint8_t *input,
                                                               const bp_dims_t *filter_dims, const uint8_t *filter,
                                                               const int32_t *bias, const bp_dims_t *output_dims,
                                                               void *output, const int sh, const int u4,
                                                               const int rnd) {
    const int32_t cin = input_dims->c, cout = filter_dims->n, kh = filter_dims->h, kw = filter_dims->w;
    const int32_t k = kh * kw * cin;
    const int32_t in_row = bp_row_bytes(cin, q->in.bits);
    const int32_t out_row = q->out.bits == 32 ? 0 : bp_row_bytes(cout, q->out.bits);
    const int32_t oh = output_dims->h, ow = output_dims->w, npix = oh * ow;
    int16_t *const col = (int16_t *)ctx->buf;

    for (int32_t n = 0; n < input_dims->n; n++) {
        const uint8_t *img = input + (int64_t)n * input_dims->h * input_dims->w * in_row;
        for (int32_t p = 0; p < npix; p += 2) {
            const int32_t np = (p + 1 < npix) ? 2 : 1;
            int64_t row[2];
            uint8_t *orow[2] = {NULL, NULL};
            for (int32_t j = 0; j < 2; j++) {
                // A lone last pixel is computed twice into the same row: simpler than a 1x2 kernel.
                const int32_t pp = p + (j < np ? j : 0);
                row[j] = (int64_t)n * npix + pp;
                im2col_s16_g8(col + 4 * j, img, input_dims, in_row, win, q, kh, kw, pp / ow, pp % ow, u4);
                if (out_row > 0) {
                    orow[j] = (uint8_t *)output + row[j] * out_row;
                    bp_clear_row(orow[j], out_row);
                }
            }
            for (int32_t o = 0; o < cout; o += 2) {
                const int32_t o1 = (o + 1 < cout) ? o + 1 : o;
                int32_t acc[2][2];
                const int32_t w_row = (k + 1) >> 1;
                const uint8_t *wrow[2] = {filter + (int64_t)o * w_row, filter + (int64_t)o1 * w_row};
                dot_2x2_s4(acc, col, wrow, k, sh, rnd);
                for (int32_t j = 0; j < np; j++) {
                    const int32_t v0 = (bias ? bias[o] : 0) + acc[j][0];
                    if (q->out.bits == 4 && o1 != o) {
                        // channels o (even) and o + 1 share one output byte: one store, no read-modify-write
                        const int32_t v1 = (bias ? bias[o1] : 0) + acc[j][1];
                        const int32_t r0 = requant(v0, rq->multiplier[o], rq->shift[o], q->act_min, q->act_max);
                        const int32_t r1 = requant(v1, rq->multiplier[o1], rq->shift[o1], q->act_min, q->act_max);
                        orow[j][o >> 1] = (uint8_t)((r0 & 0xF) | ((r1 & 0xF) << 4));
                        continue;
                    }
                    emit(output, orow[j], row[j], cout, o, q, rq, v0);
                    if (o1 != o) {
                        emit(output, orow[j], row[j], cout, o1, q, rq, (bias ? bias[o1] : 0) + acc[j][1]);
                    }
                }
            }
        }
    }
}

// The instances of conv_s4_impl, each out of line with its constants (sh, u4, rnd): conv_s4_v4, the
// full view of 4-bit storage (_u4: for unsigned 4-bit inputs, the patch is built from one word per 8
// values); conv_s4_v2 and conv_s4_v2r, its floor and rounded 2-bit views.
#define BP_CONV_S4(name, sh, u4, rnd)                                                                          \
    static __attribute__((noinline)) void name(const bp_context_t *ctx, const bp_window_t *win,            \
                                               const bp_quant_t *q, const bp_requant_t *rq,                \
                                               const bp_dims_t *input_dims, const uint8_t *input,          \
                                               const bp_dims_t *filter_dims, const uint8_t *filter,        \
                                               const int32_t *bias, const bp_dims_t *output_dims,          \
                                               void *output) {                                             \
        conv_s4_impl(ctx, win, q, rq, input_dims, input, filter_dims, filter, bias, output_dims, output, sh, \
                        u4, rnd);                                                                          \
    }
BP_CONV_S4(conv_s4_v4, 4, 0, 0)
BP_CONV_S4(conv_s4_v4_u4, 4, 1, 0)
BP_CONV_S4(conv_s4_v2, 6, 0, 0)
BP_CONV_S4(conv_s4_v2r, 6, 0, 1)
#undef BP_CONV_S4

bp_status_t bp_conv2d(const bp_context_t *ctx,
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
    const bp_status_t st =
        bp_conv2d_check(ctx, win, q, rq, input_dims, input, filter_dims, filter, bias, output_dims, output);
    if (st != BP_OK) {
        return st;
    }
    if (c1_eligible(win, q, rq, input_dims, filter_dims, bias)) {
        conv_c1(win, q, rq, input_dims, input, filter_dims, filter, bias, output_dims, output);
        return BP_OK;
    }
    if (q->w_stored == 2 || (q->w_stored == 8 && q->w_view == 8)) {
        // exact products: |acc| <= k * xmax * 2^(w_view-1) <= INT32_MAX (bp_conv2d_check)
        void (*const run)(int16_t *, const bp_window_t *, const bp_quant_t *, const bp_requant_t *, const bp_dims_t *,
                          const uint8_t *, const bp_dims_t *, const uint8_t *, const int32_t *, const bp_dims_t *,
                          void *) = q->w_stored == 8                               ? conv_il_w8
                                    : (q->in.bits == 2 && !q->in.is_signed) ? conv_packed_s2
                                                                             : conv_il_s2;
        run((int16_t *)ctx->buf, win, q, rq, input_dims, input, filter_dims, filter, bias, output_dims, output);
        return BP_OK;
    }
    const int32_t k = filter_dims->h * filter_dims->w * input_dims->c;
    const int64_t xmax = q->in.is_signed ? (1 << (q->in.bits - 1)) : (1 << q->in.bits) - 1;
    const int packed2 = q->w_stored == 8 && q->w_view == 2 && q->in.bits == 2 && !q->in.is_signed;
    // The SMLAD path multiplies masked 8-bit codes: its sums reach k * xmax * 128 before the shift.
    const int smlad = (q->w_stored == 8 || q->w_stored == 4) && (int64_t)k * xmax * 128 <= INT32_MAX;
    // rounded narrow views (w_round): the same loops with one QADD8 per weight word before the mask
    const int rnd = q->w_round && q->w_view < q->w_stored;
    if (packed2) {
        if (rnd) {
            conv_packed_w8v2r((int16_t *)ctx->buf, win, q, rq, input_dims, input, filter_dims, filter, bias,
                              output_dims, output);
        } else {
            conv_packed_w8v2((int16_t *)ctx->buf, win, q, rq, input_dims, input, filter_dims, filter, bias,
                             output_dims, output);
        }
        return BP_OK;
    }
    if (smlad && q->w_stored == 8) {
        // 4-bit and 2-bit views of 8-bit codes (other than the packed 2-bit case): the W8 asm loop
        const int u4 = q->in.bits == 4 && !q->in.is_signed;
        (rnd ? (q->w_view == 2 ? conv_il_w8v2r : u4 ? conv_il_w8v4r_u4 : conv_il_w8v4r)
             : (q->w_view == 2 ? conv_il_w8v2 : u4 ? conv_il_w8v4_u4 : conv_il_w8v4))(
            (int16_t *)ctx->buf, win, q, rq, input_dims, input, filter_dims, filter, bias, output_dims, output);
        return BP_OK;
    }
    if (!smlad) {
        bp_conv2d_generic((int16_t *)ctx->buf, win, q, rq, input_dims, input, filter_dims, filter, bias,
                          output_dims, output);
        return BP_OK;
    }
    // weights stored at 4 bits, view 4 or 2 (rnd only at view 2)
    const int u4 = q->in.bits == 4 && !q->in.is_signed;
    (q->w_view == 4 ? (u4 ? conv_s4_v4_u4 : conv_s4_v4) : rnd ? conv_s4_v2r : conv_s4_v2)(
        ctx, win, q, rq, input_dims, input, filter_dims, filter, bias, output_dims, output);
    return BP_OK;
}
