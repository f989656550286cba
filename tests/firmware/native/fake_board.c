// SPDX-License-Identifier: Apache-2.0
#include "fake_board.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t g_us;
static uint32_t g_cycles;

void fake_out_write(void *ctx, const char *buf, size_t n) {
    fake_out_t *o = (fake_out_t *)ctx;
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + n) {
            cap *= 2;
        }
        char *d = realloc(o->data, cap);
        if (d == NULL) {
            fprintf(stderr, "out of memory\n");
            abort();
        }
        o->data = d;
        o->cap = cap;
    }
    memcpy(o->data + o->len, buf, n);
    o->len += n;
}

void fake_out_reset(fake_out_t *o) { o->len = 0; }

uint32_t fake_time_us(void) { return g_us += 7u; }
uint32_t fake_cycles(void) { return g_cycles += 1u; }
void fake_spin(uint32_t n) { g_cycles += 2u * n; }
void fake_clocks_reset(void) {
    g_us = 0;
    g_cycles = 0;
}

bp_proto_io_t fake_io(fake_out_t *out) {
    bp_proto_io_t io = {
        .write = fake_out_write,
        .write_ctx = out,
        .time_us = fake_time_us,
        .cycles = fake_cycles,
        .board = "host",
        .cycles_unit = "fake counts",
        .cycles_hz = 1000000u,
        .spin = fake_spin,
    };
    return io;
}
