// SPDX-License-Identifier: Apache-2.0
// Kernel test firmware: runs single kernel calls sent by the host and returns the raw output, so the
// kernels built for this board (the DSP variants on Cortex-M4) are compared with the host's numpy
// reference bit for bit (tests/kernels/test_on_board.py). Line protocol on the UART:
//     k <base64>%   one case: the case bytes (64 little-endian int32 header words, then the operand
//                   bytes, below) compressed with PackBits, then base64 (RFC 4648, '=' padding optional)
//   ->  m-status-<int>  m-out-<hex of the output bytes>  m-ready
// Malformed input gets e-[...] and m-ready, like the benchmark protocol.
// Why not hex: QEMU's STM32 USART takes one byte per main-loop round trip (about 50-80 us here), so
// the transfer is the whole cost of a case. base64 carries 6 bits per character instead of 4, and
// PackBits (the TIFF/Macintosh run-length format) shrinks the zero header words and the constant
// operands of the edge cases: about 6x fewer characters over the on-board suite than hex. The text
// is decoded as it arrives (no line buffer).
//
// Header words: 0 op (0 conv, 1 depthwise, 2 fc, 3 max pool, 4 avg pool, 5 add, 6 requantize),
// 1..4 input dims n,h,w,c; 5..8 filter dims; 9..12 output dims; 13..18 window; 19..26 quant
// (in bits, in signed, out bits, out signed, w_stored, w_view, act_min, act_max); 27 kernel_h,
// 28 kernel_w; 29 mult_a, 30 mult_b, 31 shift (add); 32 b bits, 33 b signed; 34 channels (bias,
// mult, shift count); 35 input bytes, 36 filter bytes, 37 second operand bytes, 38 output bytes,
// 39 scratch bytes; 40 fc batches, 41 fc in features, 42 fc out features; 43 rows, 44 count (add,
// requantize); 45 w_round (bp_quant_t.w_round). Then: input, filter, second operand (bytes), bias,
// mult, shift (int32 each).
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bp_kernels.h"
#include "hal.h"

#define HDR 64
#define BUF_MAX 24576

static _Alignas(4) uint8_t g_case[BUF_MAX + 4 * HDR];
static _Alignas(4) uint8_t g_out[8192];
static _Alignas(4) uint8_t g_scratch[8192];
static _Alignas(4) int32_t g_i32[3][512];

static void put(const char *s) { hal_uart_write(s, strlen(s)); }

static void put_int(int32_t v) {
    char buf[12];
    int i = 11;
    uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + u % 10u);
        u /= 10u;
    } while (u);
    if (v < 0) {
        buf[--i] = '-';
    }
    put(buf + i);
}

static int b64val(char c) {
    return c >= 'A' && c <= 'Z'   ? c - 'A'
           : c >= 'a' && c <= 'z' ? c - 'a' + 26
           : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '+'             ? 62
           : c == '/'             ? 63
                                  : -1;
}

// One command being received: base64 characters -> bytes -> PackBits records -> g_case.
typedef struct {
    size_t chars;    // characters after '%' (the first two must be "k ")
    size_t n;        // case bytes written to g_case
    uint32_t acc;    // base64 bits not yet emitted
    int nbits;       // how many of them (0..7 between characters)
    int pad;         // '=' seen: only more '=' may follow
    int lit;         // literal bytes still to copy from the current record
    int run;         // > 0: the next byte is repeated `run` times
    int need_header; // the next byte is a PackBits header
    const char *err; // first error, reported at '%'
} rx_t;

static void rx_reset(rx_t *r) {
    memset(r, 0, sizeof *r);
    r->need_header = 1;
}

static void rx_emit(rx_t *r, uint8_t v, size_t count) {
    if (r->err != NULL) {
        return;
    }
    if (count > sizeof g_case - r->n) {
        r->err = "e-[case larger than the firmware's buffer]";
        return;
    }
    memset(g_case + r->n, v, count);
    r->n += count;
}

static void rx_byte(rx_t *r, uint8_t b) {
    if (r->need_header) {
        const int8_t h = (int8_t)b;
        if (h >= 0) {
            r->lit = h + 1;
            r->need_header = 0;
        } else if (h != -128) {
            r->run = 1 - h;
            r->need_header = 0;
        } // -128: a no-op record
    } else if (r->run > 0) {
        rx_emit(r, b, (size_t)r->run);
        r->run = 0;
        r->need_header = 1;
    } else {
        rx_emit(r, b, 1u);
        r->need_header = --r->lit == 0;
    }
}

static void rx_char(rx_t *r, char c) {
    const size_t i = r->chars++;
    if (r->err != NULL) {
        return;
    }
    if (i < 2) {
        if (c != "k "[i]) {
            r->err = "e-[expected: k <base64 of the PackBits-compressed case>%]";
        }
        return;
    }
    if (c == '=') {
        r->pad = 1;
        return;
    }
    const int v = b64val(c);
    if (v < 0 || r->pad) {
        r->err = "e-[not base64]";
        return;
    }
    r->acc = (r->acc << 6) | (uint32_t)v;
    r->nbits += 6;
    if (r->nbits >= 8) {
        r->nbits -= 8;
        rx_byte(r, (uint8_t)(r->acc >> r->nbits));
        r->acc &= (1u << r->nbits) - 1u;
    }
}

// NULL if the command ended cleanly, else the error line.
static const char *rx_end(const rx_t *r) {
    if (r->err != NULL) {
        return r->err;
    }
    if (r->chars < 2) {
        return "e-[expected: k <base64 of the PackBits-compressed case>%]";
    }
    if (r->nbits >= 6 || r->acc != 0u) {
        return "e-[not base64: a stray final character]";
    }
    if (!r->need_header || r->run > 0) {
        return "e-[PackBits record cut short]";
    }
    return NULL;
}

static int32_t rd32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24));
}

static void run_case(size_t n) {
    if (n < 4 * HDR) {
        put("e-[case shorter than its header]\r\nm-ready\r\n");
        return;
    }
    int32_t h[HDR];
    for (int i = 0; i < HDR; i++) {
        h[i] = rd32(g_case + 4 * i);
    }
    const int32_t ch = h[34], in_b = h[35], f_b = h[36], b_b = h[37], out_b = h[38], scr = h[39];
    const size_t need = 4u * HDR + (size_t)in_b + (size_t)f_b + (size_t)b_b + 12u * (size_t)ch;
    if (ch < 0 || ch > 512 || in_b < 0 || f_b < 0 || b_b < 0 || out_b < 0 || out_b > (int32_t)sizeof g_out ||
        scr < 0 || scr > (int32_t)sizeof g_scratch || need != n) {
        put("e-[case sizes inconsistent]\r\nm-ready\r\n");
        return;
    }
    const uint8_t *input = g_case + 4 * HDR, *filter = input + in_b, *second = filter + f_b;
    const uint8_t *ints = second + b_b;
    for (int32_t k = 0; k < 3; k++) {
        for (int32_t c = 0; c < ch; c++) {
            g_i32[k][c] = rd32(ints + 4 * (k * ch + c));
        }
    }
    const bp_dims_t in = {h[1], h[2], h[3], h[4]}, fd = {h[5], h[6], h[7], h[8]}, od = {h[9], h[10], h[11], h[12]};
    const bp_window_t win = {h[13], h[14], h[15], h[16], h[17], h[18]};
    const bp_quant_t q = {{h[19], h[20]}, {h[21], h[22]}, h[23], h[24], h[25], h[26], h[45]};
    const bp_requant_t rq = {g_i32[1], g_i32[2]};
    const bp_act_t a_fmt = {h[19], h[20]}, b_fmt = {h[32], h[33]}, o_fmt = {h[21], h[22]};
    const bp_context_t ctx = {g_scratch, scr};
    memset(g_out, 0xAB, sizeof g_out);
    bp_status_t st;
    switch (h[0]) {
    case 0:
        st = bp_conv2d(&ctx, &win, &q, &rq, &in, input, &fd, filter, g_i32[0], &od, g_out);
        break;
    case 1:
        st = bp_depthwise_conv2d(&win, &q, &rq, &in, input, &fd, filter, g_i32[0], &od, g_out);
        break;
    case 2:
        st = bp_fully_connected(&q, &rq, h[40], h[41], h[42], input, filter, g_i32[0], g_out);
        break;
    case 3:
        st = bp_max_pool2d(&win, &a_fmt, h[27], h[28], &in, input, &od, g_out);
        break;
    case 4:
        st = bp_avg_pool2d(&win, &a_fmt, h[27], h[28], &in, input, &od, g_out);
        break;
    case 5:
        st = bp_add(&a_fmt, input, &b_fmt, second, h[29], h[30], h[31], &o_fmt, h[25], h[26], h[43], h[44], g_out);
        break;
    case 6:
        st = bp_requantize((const int32_t *)(const void *)input, h[43], h[44], &rq, &o_fmt, h[25], h[26], g_out);
        break;
    default:
        put("e-[unknown op]\r\nm-ready\r\n");
        return;
    }
    put("m-status-");
    put_int(st);
    put("\r\nm-out-");
    static const char HEX[] = "0123456789abcdef";
    char pair[2];
    for (int32_t i = 0; i < out_b; i++) {
        pair[0] = HEX[g_out[i] >> 4];
        pair[1] = HEX[g_out[i] & 15];
        hal_uart_write(pair, 2);
    }
    put("\r\nm-ready\r\n");
}

int main(void) {
    hal_init();
    put("m-ktest-kernels-[" BP_KERNELS_VARIANT "]\r\nm-init-done\r\nm-ready\r\n");
    rx_t rx;
    rx_reset(&rx);
    for (;;) {
        const char c = (char)hal_uart_getc();
        if (c != '%') {
            rx_char(&rx, c);
            continue;
        }
        if (rx.chars == 0) {
            put("m-ready\r\n"); // a bare '%' (resync), as in the benchmark protocol
        } else {
            const char *err = rx_end(&rx);
            if (err != NULL) {
                put(err);
                put("\r\nm-ready\r\n");
            } else {
                run_case(rx.n);
            }
        }
        rx_reset(&rx);
    }
}
