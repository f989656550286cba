// SPDX-License-Identifier: Apache-2.0
// bitpath board seam. Every board folder (firmware/boards/<board>/) implements exactly these
// functions with a few register definitions of its own; nothing else in the firmware touches
// hardware. No function here allocates memory.
#ifndef BP_HAL_H
#define BP_HAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Bring up clocks, the UART (115200 8N1), the cycle counter and the microsecond timer. */
void hal_init(void);

/** @brief Block until one byte arrives on the UART and return it (0..255). */
uint8_t hal_uart_getc(void);

/** @brief Send n bytes on the UART, blocking until all are queued in the transmitter. */
void hal_uart_write(const char *buf, size_t n);

/**
 * @brief Free-running 32-bit cost counter (wraps modulo 2^32; take differences as uint32_t).
 *
 * Real boards: DWT CYCCNT, core clock cycles. Emulated board: STM32 TIM2 at the QEMU timer clock,
 * which under `qemu-system-arm -icount shift=0` advances exactly one count per executed
 * instruction, so the unit is *instructions (emulated)*, not cycles.
 */
uint32_t hal_cycles(void);

/** @brief Counts per second of hal_cycles() (core clock, or 1e9 virtual counts/s in QEMU). */
uint32_t hal_cycles_hz(void);

/** @brief Unit of hal_cycles(), for reports: "cycles" or "instructions (emulated)". */
const char *hal_cycles_unit(void);

/**
 * @brief Free-running 32-bit microsecond timer (wraps after ~71.6 minutes), for `m-lap-us-`.
 * A hardware timer with a 1 MHz tick, independent of hal_cycles(); in QEMU it is virtual time.
 */
uint32_t hal_time_us(void);

/**
 * @brief Calibration loop: exactly 2*n Thumb instructions (`subs` + `bne` per iteration), n >= 1.
 * `bp-calib N%` times it with hal_cycles(): under QEMU -icount shift=0 the count is 2n + a constant,
 * on silicon it shows the cycles a taken branch costs.
 */
void hal_spin(uint32_t n);

/** @brief Board name as reported by `name%` and `bp-info%`, e.g. "qemu_f405". */
const char *hal_board_name(void);

#ifdef __cplusplus
}
#endif

#endif // BP_HAL_H
