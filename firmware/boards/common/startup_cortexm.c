// SPDX-License-Identifier: Apache-2.0
// Cortex-M startup shared by every board: vector table (system exceptions only; the firmware
// polls and enables no interrupt), .data copy, .bss zeroing, FPU enable, then main().
// Symbols come from the board's linker script (firmware/boards/<board>/link.ld).
#include <stdint.h>

#include "hal.h"

extern uint32_t _sidata; // .data load address in flash
extern uint32_t _sdata;
extern uint32_t _edata;
extern uint32_t _sbss;
extern uint32_t _ebss;
extern uint32_t _estack; // initial stack pointer (top of RAM)

int main(void);
void Reset_Handler(void);
void Fault_Handler(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SCB_VTOR (*(volatile uint32_t *)0xE000ED08u)

typedef void (*vector_t)(void);

// The 16 Cortex-M system entries. Device IRQ vectors are left out on purpose: no IRQ is enabled.
__attribute__((section(".isr_vector"), used)) const vector_t g_vectors[16] = {
    (vector_t)(uintptr_t)&_estack,
    Reset_Handler,
    Fault_Handler, // NMI
    Fault_Handler, // HardFault
    Fault_Handler, // MemManage
    Fault_Handler, // BusFault
    Fault_Handler, // UsageFault
    0,
    0,
    0,
    0,
    Fault_Handler, // SVCall
    Fault_Handler, // DebugMonitor
    0,
    Fault_Handler, // PendSV
    Fault_Handler, // SysTick
};

void Reset_Handler(void) {
    // Word copies: the linker script aligns all four boundaries to 4 bytes.
    const uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0u;
    }
    SCB_VTOR = (uint32_t)(uintptr_t)g_vectors;
#if defined(__ARM_FP)
    // Full access to CP10/CP11 before any floating-point instruction (the compiler may emit some).
    SCB_CPACR |= (0xFu << 20);
    __asm volatile("dsb\n isb" ::: "memory");
#endif
    (void)main();
    for (;;) {
    }
}

// Any fault: say so on the UART in the protocol's error format, then stop. The host sees the
// e- line instead of a silent hang (the UART was set up before anything could fault, bar boot).
void Fault_Handler(void) {
    static const char msg[] = "e-[fault: the firmware took a fault exception and stopped]\r\n";
    hal_uart_write(msg, sizeof msg - 1u);
    for (;;) {
    }
}
