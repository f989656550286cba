// SPDX-License-Identifier: Apache-2.0
// Cortex-M3/M4/M7 DWT cycle counter (ARMv7-M Architecture Reference Manual, C1.8).
#ifndef BP_CORTEXM_DWT_H
#define BP_CORTEXM_DWT_H

#include <stdint.h>

#define BP_DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define BP_DEMCR_TRCENA (1u << 24)
#define BP_DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define BP_DWT_CTRL_CYCCNTENA (1u << 0)
#define BP_DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)

static inline void bp_dwt_start(void) {
    BP_DEMCR |= BP_DEMCR_TRCENA;
    BP_DWT_CYCCNT = 0u;
    BP_DWT_CTRL |= BP_DWT_CTRL_CYCCNTENA;
}

static inline uint32_t bp_dwt_cycles(void) { return BP_DWT_CYCCNT; }

#endif // BP_CORTEXM_DWT_H
