// SPDX-License-Identifier: Apache-2.0
// Deterministic stand-ins for the board, for host builds of the protocol (tests and fuzzing).
#ifndef BP_FAKE_BOARD_H
#define BP_FAKE_BOARD_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

// Output sink: a growable buffer the harness inspects (or streams to stdout).
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} fake_out_t;

void fake_out_write(void *ctx, const char *buf, size_t n);
void fake_out_reset(fake_out_t *o);

// time_us advances 7 us per read; cycles 1 per read; spin(n) adds 2n cycles, like the QEMU board.
uint32_t fake_time_us(void);
uint32_t fake_cycles(void);
void fake_spin(uint32_t n);
void fake_clocks_reset(void);

bp_proto_io_t fake_io(fake_out_t *out);

#endif
