// SPDX-License-Identifier: Apache-2.0
#include "hal.h"

void hal_spin(uint32_t n) {
    // Two instructions per iteration; the caller guarantees n >= 1 (n = 0 would run 2^32 times).
    __asm volatile("1:\n"
                   "  subs %0, %0, #1\n"
                   "  bne 1b\n"
                   : "+r"(n)
                   :
                   : "cc");
}
