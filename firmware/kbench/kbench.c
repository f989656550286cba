// SPDX-License-Identifier: Apache-2.0
// Kernel benchmark firmware (`bitpath kbench`): times each kernel once (after one warm-up call) on
// the shapes of the fast-kernels issue, for several bit combinations, with hal_cycles(): emulated
// instructions on QEMU under -icount shift=0 (TIM2), DWT cycles on silicon. Prints one line per case
//     m-kbench-[op,shape,combo,macs,count]
// then m-kbench-done and m-ready, and idles. The timer-read overhead is measured and subtracted.
//
// Data: inputs are pseudo-random bytes in RAM; weights are read straight from the flash region
// (the firmware image, then erased flash), because the largest case (FC 1024->128) needs 128 KiB,
// as much as the whole SRAM. Instruction counts of these kernels do not depend on the values
// except for the requantization clamp branches.
#include <stddef.h>
#include <stdint.h>

#include "bp_kernels.h"
#include "hal.h"

extern const uint8_t _bp_flash_start[];
extern const uint8_t _bp_flash_bytes[]; // a linker symbol: its address is the size

typedef enum { OP_CONV, OP_DW, OP_FC } op_t;

typedef struct {
    op_t op;
    int32_t h, w, cin, cout; // FC: cin -> cout
} shape_t;

typedef struct {
    const char *name;
    int32_t in_bits, w_stored, w_view, out_bits; // out_bits 32: int32 outputs (logits), no requantization
    int32_t out_signed, act_max;                 // int32 outputs are signed and take no clamp
    int32_t only;    // ONLY_FC: on the fully connected shapes only; ONLY_C1: on the one-channel conv only;
                     // NO_DW: on the conv and fully connected shapes (not depthwise)
    int32_t w_round; // rounded nested view (bp_quant_t.w_round)
} combo_t;
enum { ONLY_FC = 1, ONLY_C1 = 2, NO_DW = 3 };

static const shape_t SHAPES[] = {
    {OP_CONV, 28, 28, 1, 16},  {OP_CONV, 14, 14, 16, 32}, {OP_CONV, 7, 7, 32, 64}, {OP_CONV, 32, 32, 16, 16},
    {OP_CONV, 16, 16, 32, 32}, {OP_DW, 14, 14, 32, 32},   {OP_DW, 32, 32, 16, 16}, {OP_FC, 1, 1, 64, 10},
    {OP_FC, 1, 1, 256, 64},    {OP_FC, 1, 1, 1024, 128},
};

// name: weight view / storage, input activation bits (-s4/-s2: weights stored at 4/2 bits; -o32:
// int32 outputs, as the logits layer of our models runs on the w8a8 and w4a4 paths; -r: the rounded
// view, w_round = 1, of the floor combo with the same name without -r; -o4/-o2: 8-bit inputs to 4-
// and 2-bit outputs, as the first layer of our w4a4 and w2a2 paths runs, on the one-channel shape;
// w4a4-s4, w2a8-s4(-r): 4-bit storage at full and 2-bit views, on the conv and FC shapes)
static const combo_t COMBOS[] = {
    {"w8a8", 8, 8, 8, 8, 0, 255, 0, 0},       {"w4a8-s4", 8, 4, 4, 8, 0, 255, 0, 0},
    {"w4a8-v8", 8, 8, 4, 8, 0, 255, 0, 0},    {"w4a4", 4, 8, 4, 4, 0, 15, 0, 0},
    {"w2a8", 8, 8, 2, 8, 0, 255, 0, 0},       {"w2a2", 2, 8, 2, 2, 0, 3, 0, 0},
    {"w2a8-s2", 8, 2, 2, 8, 0, 255, 0, 0},    {"w2a2-s2", 2, 2, 2, 2, 0, 3, 0, 0},
    {"w8a8-o32", 8, 8, 8, 32, 1, 0, ONLY_FC, 0},    {"w4a4-o32", 4, 8, 4, 32, 1, 0, ONLY_FC, 0},
    {"w4a8-v8-r", 8, 8, 4, 8, 0, 255, 0, 1},  {"w4a4-r", 4, 8, 4, 4, 0, 15, 0, 1},
    {"w2a8-r", 8, 8, 2, 8, 0, 255, 0, 1},     {"w2a2-r", 2, 8, 2, 2, 0, 3, 0, 1},
    {"w4a4-o32-r", 4, 8, 4, 32, 1, 0, ONLY_FC, 1},
    {"w8a8-o4", 8, 8, 8, 4, 0, 15, ONLY_C1, 0}, {"w8a8-o2", 8, 8, 8, 2, 0, 3, ONLY_C1, 0},
    {"w4a4-s4", 4, 4, 4, 4, 0, 15, NO_DW, 0},      {"w2a8-s4", 8, 4, 2, 8, 0, 255, NO_DW, 0},
    {"w2a8-s4-r", 8, 4, 2, 8, 0, 255, NO_DW, 1},
};

// Max pool cases: the default CNN's three pools (2x2, stride 2) at every activation width, and a 3x3
// stride-2 pad-1 window (the loop over clipped windows). name: a<bits> unsigned, s8 signed 8-bit.
typedef struct {
    int32_t h, w, c, k, pad;
} pool_shape_t;
typedef struct {
    const char *name;
    int32_t bits, is_signed;
} pool_combo_t;
static const pool_shape_t POOL_SHAPES[] = {{28, 28, 16, 2, 0}, {14, 14, 32, 2, 0}, {7, 7, 64, 2, 0}, {32, 32, 16, 3, 1}};
static const pool_combo_t POOL_COMBOS[] = {{"a8", 8, 0}, {"s8", 8, 1}, {"a4", 4, 0}, {"a2", 2, 0}};

#define IN_MAX (32 * 32 * 32)
#define OUT_MAX (32 * 32 * 32)
static uint8_t g_in[IN_MAX];
static uint8_t g_out[OUT_MAX];
static int32_t g_bias[128];
static int32_t g_mult[128];
static int32_t g_shift[128];
static _Alignas(4) uint8_t g_scratch[2 * 2 * ((3 * 3 * 64 + 3) / 4 * 4)];

static void put(const char *s) {
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    hal_uart_write(s, n);
}

static void put_u(uint32_t v) {
    char buf[11];
    int i = 10;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    put(buf + i);
}

// "HxWxC" of a shape.
static void put_hwc(int32_t h, int32_t w, int32_t c) {
    put_u((uint32_t)h);
    put("x");
    put_u((uint32_t)w);
    put("x");
    put_u((uint32_t)c);
}

// The rest of a row after its shape: ",combo,macs,count]" (count "error" when the kernel refused).
static void put_row_end(const char *combo, uint32_t macs, bp_status_t st, uint32_t count) {
    put(",");
    put(combo);
    put(",");
    put_u(macs);
    put(",");
    if (st != BP_OK) {
        put("error]\r\n");
    } else {
        put_u(count);
        put("]\r\n");
    }
}

static uint32_t g_lcg = 12345u;
static uint8_t rnd(void) {
    g_lcg = g_lcg * 1664525u + 1013904223u;
    return (uint8_t)(g_lcg >> 24);
}

static bp_status_t run(const shape_t *s, const combo_t *c) {
    // the clamp's top from the table: (1 << out_bits) - 1 is undefined for int32 outputs
    const bp_quant_t q = {.in = {c->in_bits, 0}, .out = {c->out_bits, c->out_signed}, .w_stored = c->w_stored,
                          .w_view = c->w_view, .act_min = 0, .act_max = c->act_max, .w_round = c->w_round};
    const bp_requant_t rq = {g_mult, g_shift};
    if (s->op == OP_FC) {
        return bp_fully_connected(&q, &rq, 1, s->cin, s->cout, g_in, _bp_flash_start, g_bias, g_out);
    }
    const bp_window_t win = {1, 1, 1, 1, 1, 1};
    const bp_dims_t in = {1, s->h, s->w, s->cin}, out = {1, s->h, s->w, s->cout};
    if (s->op == OP_DW) {
        const bp_dims_t f = {1, 3, 3, s->cin};
        return bp_depthwise_conv2d(&win, &q, &rq, &in, g_in, &f, _bp_flash_start, g_bias, &out, g_out);
    }
    const bp_dims_t f = {s->cout, 3, 3, s->cin};
    const bp_context_t ctx = {g_scratch, (int32_t)sizeof g_scratch};
    return bp_conv2d(&ctx, &win, &q, &rq, &in, g_in, &f, _bp_flash_start, g_bias, &out, g_out);
}

static bp_status_t run_pool(const pool_shape_t *s, const pool_combo_t *c, int32_t oh, int32_t ow) {
    const bp_window_t win = {2, 2, s->pad, s->pad, s->pad, s->pad};
    const bp_act_t fmt = {c->bits, c->is_signed};
    const bp_dims_t in = {1, s->h, s->w, s->c}, out = {1, oh, ow, s->c};
    return bp_max_pool2d(&win, &fmt, s->k, s->k, &in, g_in, &out, g_out);
}

// Prints m-kbench-[pool,HxWxC kxk/2[pN],combo,values,count] per case; values = window inputs read.
static void pools(uint32_t overhead) {
    for (size_t si = 0; si < sizeof POOL_SHAPES / sizeof POOL_SHAPES[0]; si++) {
        const pool_shape_t *s = &POOL_SHAPES[si];
        const int32_t oh = (s->h + 2 * s->pad - s->k) / 2 + 1, ow = (s->w + 2 * s->pad - s->k) / 2 + 1;
        for (size_t ci = 0; ci < sizeof POOL_COMBOS / sizeof POOL_COMBOS[0]; ci++) {
            const pool_combo_t *c = &POOL_COMBOS[ci];
            bp_status_t st = run_pool(s, c, oh, ow); // warm-up (and the status check)
            const uint32_t a = hal_cycles();
            st |= run_pool(s, c, oh, ow);
            const uint32_t b = hal_cycles();
            put("m-kbench-[pool,");
            put_hwc(s->h, s->w, s->c);
            put(" ");
            put_u((uint32_t)s->k);
            put("x");
            put_u((uint32_t)s->k);
            put("/2");
            if (s->pad) {
                put("p");
                put_u((uint32_t)s->pad);
            }
            put_row_end(c->name, (uint32_t)(oh * ow * s->c * s->k * s->k), st, b - a - overhead);
        }
    }
}

int main(void) {
    hal_init();
    for (uint32_t i = 0; i < sizeof g_in; i++) {
        g_in[i] = rnd();
    }
    for (int32_t i = 0; i < 128; i++) {
        g_bias[i] = (int32_t)rnd() - 128;
        g_mult[i] = 0x40000000 + ((int32_t)rnd() << 20);
        g_shift[i] = 40;
    }
    const uint32_t t0 = hal_cycles();
    const uint32_t overhead = hal_cycles() - t0;
    put("m-kbench-kernels-[" BP_KERNELS_VARIANT "]\r\nm-kbench-unit-[");
    put(hal_cycles_unit());
    put("]\r\nm-kbench-overhead-");
    put_u(overhead);
    put("\r\n");
    for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0]; si++) {
        const shape_t *s = &SHAPES[si];
#ifdef KBENCH_ONLY_SHAPE  // profiling builds: one case only
        if (si != KBENCH_ONLY_SHAPE) {
            continue;
        }
#endif
        for (size_t ci = 0; ci < sizeof COMBOS / sizeof COMBOS[0]; ci++) {
#ifdef KBENCH_ONLY_COMBO
            if (ci != KBENCH_ONLY_COMBO) {
                continue;
            }
#endif
            const combo_t *c = &COMBOS[ci];
            if ((c->only == ONLY_FC && s->op != OP_FC) || (c->only == ONLY_C1 && (s->op != OP_CONV || s->cin != 1)) ||
                (c->only == NO_DW && s->op == OP_DW)) {
                continue;
            }
            const uint32_t macs = (uint32_t)(s->op == OP_FC ? s->cin * s->cout
                                             : s->op == OP_DW ? s->h * s->w * s->cin * 9
                                                              : s->h * s->w * s->cout * 9 * s->cin);
            bp_status_t st = run(s, c); // warm-up (and the status check)
            const uint32_t a = hal_cycles();
            st |= run(s, c);
            const uint32_t b = hal_cycles();
            put(s->op == OP_FC ? "m-kbench-[fc," : s->op == OP_DW ? "m-kbench-[dw," : "m-kbench-[conv,");
            put_hwc(s->h, s->w, s->cin);
            put("->");
            put_u((uint32_t)s->cout);
            put_row_end(c->name, macs, st, b - a - overhead);
        }
    }
#ifndef KBENCH_ONLY_SHAPE
    pools(overhead);
#endif
    put("m-kbench-done\r\nm-init-done\r\nm-ready\r\n");
    for (;;) {
        (void)hal_uart_getc();
    }
}
