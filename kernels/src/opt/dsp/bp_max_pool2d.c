// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation. ARMv7E-M DSP variant of bp_max_pool2d: same symbol, same
// results bit for bit as src/ref/bp_max_pool2d.c.
//
// Fast path: 8-bit tensors (signed or not) with C % 4 == 0, and unsigned packed 4/2-bit tensors whose
// pixel rows fill whole words (C * bits % 32 == 0), a word (4, 8 or 16 values) at a time:
// - 8-bit: USUB8/SSUB8 + SEL, four bytes per two instructions;
// - 4-bit: the two nibble planes maximised as bytes (a & 0x0F0F0F0F, a & 0xF0F0F0F0: the other nibble
//   of each byte is zero, so comparing bytes compares the fields) and ORed back;
// - 2-bit: bit logic on all 16 fields at once (max_u2 below), no unpacking.
// A 2x2 window that lies inside the image (every window of the usual MaxPool2d(2)) is one straight
// expression of its four words; other windows (larger, or clipped by padding) loop over their valid
// inputs. Anything else (signed sub-byte, rows not filling words): the portable loop.
#include <stddef.h>
#include <string.h>

#include "bp_dsp.h"
#include "bp_kernels.h"
#include "bp_support.h"

// Field-wise maximum of four words of unsigned 2-bit fields. The result's high bit is the OR h of the
// high bits. Its low bit is the OR of the low bits of the words whose high bit equals h's: for those
// x | ~h has the high bit set (x_hi >= h_hi, and x_hi <= h_hi always). Shifted right by one, that
// bit masks the word's own low bit; the bits it drags into the high positions are masked off at the
// end. Per word pair 2 instructions (ORN, AND with LSR) plus the ORs.
static inline uint32_t max4_u2(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    const uint32_t h = a | b | c | d;
    const uint32_t l = (a & ((a | ~h) >> 1)) | (b & ((b | ~h) >> 1)) | (c & ((c | ~h) >> 1)) | (d & ((d | ~h) >> 1));
    return (h & 0xAAAAAAAAu) | (l & 0x55555555u);
}

static inline uint32_t max2_u2(uint32_t a, uint32_t b) {
    const uint32_t h = a | b;
    const uint32_t l = (a & ((a | ~h) >> 1)) | (b & ((b | ~h) >> 1));
    return (h & 0xAAAAAAAAu) | (l & 0x55555555u);
}

// Field-wise maximum of two words of 8-bit (signed or not) or unsigned 4-bit / 2-bit fields.
static inline uint32_t max_word(uint32_t a, uint32_t b, int32_t bits, int32_t sgn) {
    if (bits == 8) {
        return sgn ? bp_max_s8x4(a, b) : bp_max_u8x4(a, b);
    }
    if (bits == 4) {
        const uint32_t m = 0x0F0F0F0Fu;
        return bp_max_u8x4(a & m, b & m) | bp_max_u8x4(a & ~m, b & ~m);
    }
    return max2_u2(a, b);
}

// The same for four words (a 2x2 window).
static inline uint32_t max4_word(uint32_t a, uint32_t b, uint32_t c, uint32_t d, int32_t bits, int32_t sgn) {
    if (bits == 8) {
        return sgn ? bp_max_s8x4(bp_max_s8x4(a, b), bp_max_s8x4(c, d))
                   : bp_max_u8x4(bp_max_u8x4(a, b), bp_max_u8x4(c, d));
    }
    if (bits == 4) {
        const uint32_t m = 0x0F0F0F0Fu;
        return bp_max_u8x4(bp_max_u8x4(a & m, b & m), bp_max_u8x4(c & m, d & m)) |
               bp_max_u8x4(bp_max_u8x4(a & ~m, b & ~m), bp_max_u8x4(c & ~m, d & ~m));
    }
    return max4_u2(a, b, c, d);
}

// One output pixel: the maximum over the valid window [ya, yb) x [xa, xb) of each word of the row.
static inline void pool_pixel(uint8_t *orow, const uint8_t *img, int32_t iw, int32_t row_b, int32_t ya, int32_t yb,
                              int32_t xa, int32_t xb, int32_t bits, int32_t sgn) {
    for (int32_t b = 0; b < row_b; b += 4) {
        // the check guarantees at least one valid input per window: (ya, xa) is one
        uint32_t best = bp_load32(img + ((int64_t)ya * iw + xa) * row_b + b);
        for (int32_t y = ya; y < yb; y++) {
            const uint8_t *p = img + ((int64_t)y * iw + xa) * row_b + b;
            for (int32_t x = xa; x < xb; x++, p += row_b) {
                best = max_word(best, bp_load32(p), bits, sgn);
            }
        }
        memcpy(orow + b, &best, sizeof best);
    }
}

// One output pixel of a 2x2 window inside the image, whose top-left input row starts at p; line_b is
// the bytes of one image row.
static inline void pool_pixel_2x2(uint8_t *orow, const uint8_t *p, int32_t row_b, int32_t line_b, int32_t bits,
                                  int32_t sgn) {
    const uint8_t *q = p + line_b;
    for (int32_t b = 0; b < row_b; b += 4) {
        const uint32_t r = max4_word(bp_load32(p + b), bp_load32(p + row_b + b), bp_load32(q + b),
                                     bp_load32(q + row_b + b), bits, sgn);
        memcpy(orow + b, &r, sizeof r);
    }
}

// The fast path for one format (bits, sgn constants after inlining). Each output row runs in up to
// three parts: the pixels before and after the interior (windows clipped by padding, or not 2x2) loop
// over their valid inputs; the interior, when the window is 2x2 and its rows lie inside, walks one
// input pointer by the stride.
static inline __attribute__((always_inline)) void pool_fast(const bp_window_t *win, int32_t kernel_h,
                                                            int32_t kernel_w, const bp_dims_t *input_dims,
                                                            const uint8_t *input, const bp_dims_t *output_dims,
                                                            uint8_t *output, int32_t row_b, int32_t bits,
                                                            int32_t sgn) {
    const int32_t ih = input_dims->h, iw = input_dims->w, oh = output_dims->h, ow = output_dims->w;
    const int32_t sw = win->stride_w, pl = win->pad_left;
    const ptrdiff_t line_b = (ptrdiff_t)iw * row_b, step = (ptrdiff_t)sw * row_b;
    // interior columns [ox_a, ox_b): x0 = ox * sw - pl >= 0 and x0 + 2 <= iw (empty unless 2x2)
    int32_t ox_a = ow, ox_b = ow;
    if (kernel_h == 2 && kernel_w == 2 && iw >= 2) {
        ox_a = (pl + sw - 1) / sw;
        ox_b = (iw - 2 + pl) / sw + 1;
        ox_a = ox_a > ow ? ow : ox_a;
        ox_b = ox_b > ow ? ow : ox_b < ox_a ? ox_a : ox_b;
    }
    for (int32_t n = 0; n < input_dims->n; n++) {
        const uint8_t *img = input + (ptrdiff_t)n * ih * line_b;
        for (int32_t oy = 0; oy < oh; oy++) {
            uint8_t *orow = output + ((ptrdiff_t)n * oh + oy) * ow * row_b;
            const int32_t y0 = oy * win->stride_h - win->pad_top;
            const int32_t ya = y0 < 0 ? 0 : y0, yb = (y0 + kernel_h > ih) ? ih : y0 + kernel_h;
            const int rows_in = y0 >= 0 && y0 + 2 <= ih;
            const int32_t ia = rows_in ? ox_a : ow, ib = rows_in ? ox_b : ow;
            for (int32_t ox = 0; ox < ow; ox++) {
                if (ox == ia) { // the interior, then on after it
                    const uint8_t *p = img + y0 * line_b + (ptrdiff_t)(ia * sw - pl) * row_b;
                    for (; ox < ib; ox++, p += step) {
                        pool_pixel_2x2(orow + (ptrdiff_t)ox * row_b, p, row_b, line_b, bits, sgn);
                    }
                    if (ox == ow) {
                        break;
                    }
                }
                const int32_t x0 = ox * sw - pl;
                const int32_t xa = x0 < 0 ? 0 : x0, xb = (x0 + kernel_w > iw) ? iw : x0 + kernel_w;
                pool_pixel(orow + (ptrdiff_t)ox * row_b, img, iw, row_b, ya, yb, xa, xb, bits, sgn);
            }
        }
    }
}

bp_status_t bp_max_pool2d(const bp_window_t *win,
                          const bp_act_t *fmt,
                          int32_t kernel_h,
                          int32_t kernel_w,
                          const bp_dims_t *input_dims,
                          const uint8_t *input,
                          const bp_dims_t *output_dims,
                          uint8_t *output) {
    const bp_status_t st = bp_max_pool2d_check(win, fmt, kernel_h, kernel_w, input_dims, input, output_dims, output);
    if (st != BP_OK) {
        return st;
    }
    const int32_t c_n = input_dims->c, bits = fmt->bits;
    const int32_t row_b = bp_row_bytes(c_n, bits);
    if (bits == 8 && (c_n & 3) == 0) {
        if (fmt->is_signed) {
            pool_fast(win, kernel_h, kernel_w, input_dims, input, output_dims, output, row_b, 8, 1);
        } else {
            pool_fast(win, kernel_h, kernel_w, input_dims, input, output_dims, output, row_b, 8, 0);
        }
    } else if (bits == 4 && !fmt->is_signed && (c_n * 4) % 32 == 0) {
        pool_fast(win, kernel_h, kernel_w, input_dims, input, output_dims, output, row_b, 4, 0);
    } else if (bits == 2 && !fmt->is_signed && (c_n * 2) % 32 == 0) {
        pool_fast(win, kernel_h, kernel_w, input_dims, input, output_dims, output, row_b, 2, 0);
    } else {
        bp_max_pool2d_generic(win, fmt, kernel_h, kernel_w, input_dims, input, output_dims, output);
    }
    return BP_OK;
}
