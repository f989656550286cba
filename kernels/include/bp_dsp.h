// SPDX-License-Identifier: Apache-2.0
// The few ARMv7E-M DSP (SIMD) instructions the optimized kernels use. On a core with the DSP
// extension (__ARM_FEATURE_DSP: Cortex-M4/M7/M33) they are the ACLE intrinsics, one instruction each;
// elsewhere (host, Cortex-M0) they are portable C with identical results, so the optimized kernels
// can be tested bit for bit on the host too. Not part of the public API.
#ifndef BP_DSP_H
#define BP_DSP_H

#include <stdint.h>
#include <string.h>

// Weights stored at 2 bits: for each stored byte b (codes | c3 | c2 | c1 | c0 |), bp_s2_pairs[2b] and
// [2b+1] are the int16 pairs (w0,w2) and (w1,w3) of its signed codes, the halves SXTB16 gives for a
// word of four 8-bit weights. Defined once (2 KiB of flash) in src/opt/dsp/bp_conv2d.c, read by the
// conv2d and fully connected DSP kernels.
extern const uint32_t bp_s2_pairs[512];
// The packed 2-bit path (4 MACs per SMLAD, docs/kernels.md), also defined in bp_conv2d.c (1 KiB each)
// and read by the conv2d and fully connected DSP kernels:
// - bp_u2_spread[b]: the packed unsigned 2-bit inputs | x3 | x2 | x1 | x0 | of byte b as the bytes
//   | x2 | x3 | x0 | x1 |;
// - bp_s2_off[b]: the signed 2-bit codes | c3 | c2 | c1 | c0 | of stored byte b as the offset codes
//   w' = w + 2 = c ^ 2, the bytes | w3' | w2' | w1' | w0' |.
extern const uint32_t bp_u2_spread[256];
extern const uint32_t bp_s2_off[256];

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define BP_HAVE_DSP 1
#endif

// Unaligned 32-bit load (LDR allows unaligned addresses on ARMv7-M; memcpy keeps C free of UB).
static inline uint32_t bp_load32(const void *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

#ifdef BP_HAVE_DSP

static inline int32_t bp_smlad(uint32_t a, uint32_t b, int32_t acc) {
    return __smlad((int16x2_t)a, (int16x2_t)b, acc);
}
static inline uint32_t bp_sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int8x4_t)x); }
static inline uint32_t bp_uxtb16(uint32_t x) { return (uint32_t)__uxtb16((uint8x4_t)x); }
static inline int32_t bp_smlabb(uint32_t a, uint32_t b, int32_t acc) { return __smlabb((int32_t)a, (int32_t)b, acc); }
// Byte-wise maximum of four unsigned (USUB8 sets a GE flag per byte where a >= b, SEL picks) or
// signed (SSUB8) bytes: two instructions for four lanes.
static inline uint32_t bp_max_u8x4(uint32_t a, uint32_t b) {
    (void)__usub8((uint8x4_t)a, (uint8x4_t)b);
    return (uint32_t)__sel((uint8x4_t)a, (uint8x4_t)b);
}
static inline uint32_t bp_max_s8x4(uint32_t a, uint32_t b) {
    (void)__ssub8((int8x4_t)a, (int8x4_t)b);
    return (uint32_t)__sel((uint8x4_t)a, (uint8x4_t)b);
}
// SXTB16 of x rotated right by 8: bytes 1 and 3. One instruction (GCC does not fold the rotation
// into the intrinsic's operand by itself).
static inline uint32_t bp_sxtb16_ror8(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
static inline uint32_t bp_uxtb16_ror8(uint32_t x) {
    uint32_t r;
    __asm__("uxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
static inline int32_t bp_smlatt(uint32_t a, uint32_t b, int32_t acc) { return __smlatt((int32_t)a, (int32_t)b, acc); }
static inline int32_t bp_smlabt(uint32_t a, uint32_t b, int32_t acc) { return __smlabt((int32_t)a, (int32_t)b, acc); }
static inline int32_t bp_smlatb(uint32_t a, uint32_t b, int32_t acc) { return __smlatb((int32_t)a, (int32_t)b, acc); }
// acc + the high word of the 64-bit product a*b (SMMLA: ((acc << 32) + a*b) >> 32, exact).
static inline int32_t bp_smmla(int32_t a, int32_t b, int32_t acc) {
    int32_t r;
    __asm__("smmla %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
// Saturate to 0..255 (USAT #8) and to -128..127 (SSAT #8).
static inline int32_t bp_usat8(int32_t v) { return (int32_t)__usat(v, 8); }
static inline int32_t bp_ssat8(int32_t v) { return __ssat(v, 8); }
// Saturate to 0..3 and 0..15 (USAT #2, #4).
static inline int32_t bp_usat2(int32_t v) { return (int32_t)__usat(v, 2); }
static inline int32_t bp_usat4(int32_t v) { return (int32_t)__usat(v, 4); }
// acc + the sum of the four bytes of x (USADA8 against zero).
static inline uint32_t bp_add_bytes(uint32_t x, uint32_t acc) { return __usada8((uint8x4_t)x, (uint8x4_t)0u, acc); }
// Signed saturating byte-wise add (QADD8): each byte of a + the same byte of b, clamped to -128..127.
// The rounded nested views add 2^(sh-1) to every code (top-aligned in its byte) before the mask.
static inline uint32_t bp_qadd8(uint32_t a, uint32_t b) { return (uint32_t)__qadd8((int8x4_t)a, (int8x4_t)b); }

#else

// acc + lo16(a)*lo16(b) + hi16(a)*hi16(b), 16-bit halves signed. Like SMLAD, the sum wraps modulo
// 2^32 (computed unsigned to keep C free of overflow UB); callers keep it within int32.
static inline int32_t bp_smlad(uint32_t a, uint32_t b, int32_t acc) {
    const int32_t lo = (int32_t)(int16_t)(a & 0xFFFFu) * (int32_t)(int16_t)(b & 0xFFFFu);
    const int32_t hi = (int32_t)(int16_t)(a >> 16) * (int32_t)(int16_t)(b >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)lo + (uint32_t)hi);
}
// acc + lo16(a)*lo16(b) and acc + hi16(a)*hi16(b) (signed halves), wrapping like the instructions.
static inline int32_t bp_smlabb(uint32_t a, uint32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)(a & 0xFFFFu) * (int32_t)(int16_t)(b & 0xFFFFu)));
}
static inline int32_t bp_smlatt(uint32_t a, uint32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)(a >> 16) * (int32_t)(int16_t)(b >> 16)));
}
static inline int32_t bp_smlabt(uint32_t a, uint32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)(a & 0xFFFFu) * (int32_t)(int16_t)(b >> 16)));
}
static inline int32_t bp_smlatb(uint32_t a, uint32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)(a >> 16) * (int32_t)(int16_t)(b & 0xFFFFu)));
}
// Byte-wise maximum of four unsigned or signed bytes.
static inline uint32_t bp_max_u8x4(uint32_t a, uint32_t b) {
    uint32_t r = 0;
    for (int i = 0; i < 32; i += 8) {
        const uint32_t x = (a >> i) & 0xFFu, y = (b >> i) & 0xFFu;
        r |= (x >= y ? x : y) << i;
    }
    return r;
}
static inline uint32_t bp_max_s8x4(uint32_t a, uint32_t b) {
    uint32_t r = 0;
    for (int i = 0; i < 32; i += 8) {
        const int32_t x = (int8_t)(uint8_t)(a >> i), y = (int8_t)(uint8_t)(b >> i);
        r |= (uint32_t)(uint8_t)(x >= y ? x : y) << i;
    }
    return r;
}
// Bytes 0 and 2, sign-extended into the two 16-bit halves.
static inline uint32_t bp_sxtb16(uint32_t x) {
    const uint32_t lo = (uint32_t)(uint16_t)(int16_t)(int8_t)(uint8_t)(x & 0xFFu);
    const uint32_t hi = (uint32_t)(uint16_t)(int16_t)(int8_t)(uint8_t)((x >> 16) & 0xFFu);
    return lo | (hi << 16);
}
// Bytes 0 and 2, zero-extended into the two 16-bit halves.
static inline uint32_t bp_uxtb16(uint32_t x) { return x & 0x00FF00FFu; }
// acc + the high word of the 64-bit product a*b (|hi| <= 2^30); callers keep the sum within int32.
static inline int32_t bp_smmla(int32_t a, int32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(int32_t)(((int64_t)a * (int64_t)b) >> 32));
}
static inline int32_t bp_usat8(int32_t v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }
static inline int32_t bp_ssat8(int32_t v) { return v < -128 ? -128 : (v > 127 ? 127 : v); }
static inline int32_t bp_usat2(int32_t v) { return v < 0 ? 0 : (v > 3 ? 3 : v); }
static inline int32_t bp_usat4(int32_t v) { return v < 0 ? 0 : (v > 15 ? 15 : v); }
static inline uint32_t bp_add_bytes(uint32_t x, uint32_t acc) {
    return acc + (x & 0xFFu) + ((x >> 8) & 0xFFu) + ((x >> 16) & 0xFFu) + (x >> 24);
}
static inline uint32_t bp_qadd8(uint32_t a, uint32_t b) {
    uint32_t r = 0;
    for (int i = 0; i < 32; i += 8) {
        const int32_t v = (int32_t)(int8_t)(uint8_t)(a >> i) + (int32_t)(int8_t)(uint8_t)(b >> i);
        r |= (uint32_t)(uint8_t)(v < -128 ? -128 : (v > 127 ? 127 : v)) << i;
    }
    return r;
}
#endif

// The per-byte rounding constant of a rounded nested view that drops the low sh bits of a
// byte-scaled code (QADD8 of it before the view's mask: round half up, saturated at +127 in byte
// scale, which is the stored maximum's view): 0x08080808 for a 4-bit view, 0x20202020 for a 2-bit
// view. Used by the conv2d and fully connected DSP kernels.
#define BP_VIEW_RC(sh) ((sh) > 0 ? (1u << ((sh) - 1)) * 0x01010101u : 0u)

// Rotate right by n in 1..31. GCC and Clang turn this into ROR, or fold it into SXTB16/UXTB16 as
// their rotate operand (GCC 12's arm_acle.h has no __ror).
static inline uint32_t bp_ror(uint32_t x, uint32_t n) { return (x >> n) | (x << (32u - n)); }

#ifndef BP_HAVE_DSP
static inline uint32_t bp_sxtb16_ror8(uint32_t x) { return bp_sxtb16(bp_ror(x, 8)); }
static inline uint32_t bp_uxtb16_ror8(uint32_t x) { return bp_uxtb16(bp_ror(x, 8)); }
#endif

// Four values of a packed row starting at value c (c % 4 == 0), as the int16 pairs (x0,x2) and
// (x1,x3) that meet the SXTB16 halves of a weight word (w0,w2), (w1,w3) in SMLAD: a handful of instructions instead of four generic reads.
// 8-bit values signed or not; 2/4-bit values unsigned only (the caller checks).
static inline void bp_unpack4_s16(const uint8_t *row, int32_t c, int32_t bits, int32_t sgn, uint32_t *even, uint32_t *odd) {
    if (bits == 8) {
        const uint32_t w = bp_load32(row + c);
        *even = sgn ? bp_sxtb16(w) : bp_uxtb16(w);
        *odd = sgn ? bp_sxtb16_ror8(w) : bp_uxtb16_ror8(w);
        return;
    }
    uint32_t lo, hi; // bytes: lo = | . | x2 | . | x0 |, hi = | . | x3 | . | x1 | (unsigned codes)
    if (bits == 4) {
        const uint32_t v = (uint32_t)row[c >> 1] | ((uint32_t)row[(c >> 1) + 1] << 16);
        lo = v & 0x000F000Fu;
        hi = (v >> 4) & 0x000F000Fu;
    } else {
        const uint32_t b = row[c >> 2];
        lo = (b & 3u) | ((b << 12) & 0x00030000u);
        hi = ((b >> 2) & 3u) | ((b << 10) & 0x00030000u);
    }
    *even = lo;
    *odd = hi;
}

// The lift of a requantization shift s below 33 (bp_requant's high-word case, s >= 33): with
// j = 33 - s, ((acc * 2^j) * M + 2^(s+j-1)) >> (s+j) equals (acc * M + 2^(s-1)) >> s exactly, so
// the SMMLA/ASR requantization applies to acc << j with the shift 33. That needs |acc| * 2^j <=
// INT32_MAX for every accumulator of the channel: |bias| + products (K * xmax * wmax, <= INT32_MAX
// by bp_check_acc) times 2^j. Returns j (0 for s >= 33), or -1 where the headroom is too small.
static inline int32_t bp_rq_lift(int32_t s, int32_t bias, int64_t products) {
    if (s >= 33) {
        return 0;
    }
    const int32_t j = 33 - s;
    const int64_t a = products + (bias < 0 ? -(int64_t)bias : (int64_t)bias); // <= INT32_MAX
    return (j <= 31 && (a << j) <= INT32_MAX) ? j : -1;
}

// The lift for one value once the layer's check passed: j = max(0, 33 - s).
static inline int32_t bp_rq_j(int32_t s) { return s < 33 ? 33 - s : 0; }

// The lift of one value (fc_requant), checked on the value itself: acc << j fits int32 exactly when
// (acc << j) >> j == acc, so a shift 2 <= s < 33 becomes 33 with acc << (33 - s) where that holds
// (*acc and *s updated: bp_requant's one-SMULL high-word case applies); else both stay as they are.
static inline void bp_rq_lift1(int32_t *acc, int32_t *s) {
    if (*s < 33 && *s >= 2) {
        const int32_t j = 33 - *s, a = (int32_t)((uint32_t)*acc << j);
        if ((a >> j) == *acc) {
            *acc = a;
            *s = 33;
        }
    }
}

#endif // BP_DSP_H
