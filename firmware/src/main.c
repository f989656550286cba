// SPDX-License-Identifier: Apache-2.0
// bitpath firmware entry: bring up the board, then serve the benchmark protocol forever.
#include <stddef.h>
#include <stdint.h>

#include "bp_model.h"
#include "hal.h"
#include "protocol.h"

// Input buffer for `db`. Sized at build time (-DBP_DB_CAPACITY=...); the protocol refuses a model
// whose input does not fit, and every `db` write is bounds-checked against it.
#ifndef BP_DB_CAPACITY
#define BP_DB_CAPACITY 4096u
#endif

static uint8_t g_db[BP_DB_CAPACITY];
static bp_proto_t g_proto;

static void uart_write(void *ctx, const char *buf, size_t n) {
    (void)ctx;
    hal_uart_write(buf, n);
}

int main(void) {
    hal_init();
    const bp_proto_io_t io = {
        .write = uart_write,
        .write_ctx = NULL,
        .time_us = hal_time_us,
        .cycles = hal_cycles,
        .board = hal_board_name(),
        .cycles_unit = hal_cycles_unit(),
        .cycles_hz = hal_cycles_hz(),
        .spin = hal_spin,
    };
    bp_proto_init(&g_proto, &io, &bp_model, g_db, BP_DB_CAPACITY);
    bp_proto_boot(&g_proto);
    for (;;) {
        bp_proto_feed(&g_proto, hal_uart_getc());
    }
}
