// SPDX-License-Identifier: Apache-2.0
// Emulated board: STM32F405 as QEMU's netduinoplus2 machine models it (Cortex-M4F).
//
//  - UART: USART1 (QEMU connects its first -serial backend to USART1), PA9/PA10 AF7 on silicon.
//  - Cost counter: TIM2, prescaler 0. QEMU clocks the STM32 timers at 1 GHz of *virtual* time, and
//    with `-icount shift=0` each instruction is 1 ns of virtual time, so TIM2 advances exactly one
//    count per executed instruction (tests/firmware/test_emulator.py measures it). The unit is
//    therefore "instructions (emulated)": flash wait states and multi-cycle instructions are not
//    modelled. QEMU has no DWT, hence no CYCCNT.
//  - Microsecond timer: TIM5, prescaler 999 -> 1 MHz of virtual time.
//  - Waiting for input polls RXNE a while, then sleeps in WFI (woken by the USART1 RXNE interrupt,
//    which stays masked by PRIMASK: no handler runs), so an idle emulator does not burn a host core.
//    The polling is for speed: QEMU hands the USART one byte per main-loop round trip, and waking a
//    halted CPU for each byte made a long command about 1.5x slower to receive. Nothing waits while
//    a command runs, so instruction counts are unaffected.
// QEMU ignores RCC/GPIO writes (unimplemented devices); they are kept so the image also runs on a
// real F405 (where TIM2 would then count timer-clock cycles, not instructions).
#include "hal.h"

#include "../common/stm32f4_regs.h"

#define QEMU_TIMER_HZ 1000000000u
#define USART1_IRQN 37u
#define NVIC_ISER(n) BP_REG(0xE000E100u + 4u * (n))
#define NVIC_ICPR(n) BP_REG(0xE000E280u + 4u * (n))
#define USART_CR1_RXNEIE (1u << 5)

void hal_init(void) {
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
    RCC_APB1ENR |= RCC_APB1ENR_TIM2EN | RCC_APB1ENR_TIM5EN;
    RCC_APB2ENR |= RCC_APB2ENR_USART1EN;
    // PA9 = TX, PA10 = RX: alternate function 7
    GPIOA_MODER = (GPIOA_MODER & ~((3u << 18) | (3u << 20))) | (2u << 18) | (2u << 20);
    GPIOA_AFRH = (GPIOA_AFRH & ~((0xFu << 4) | (0xFu << 8))) | (7u << 4) | (7u << 8);
    // 115200 baud from the 16 MHz reset clock (HSI): 16e6 / 115200 = 138.9 -> 0x8B (QEMU ignores it).
    USART_BRR(USART1_BASE) = 0x8Bu;
    __asm volatile("cpsid i" ::: "memory"); // interrupts only wake WFI; none is ever taken
    USART_CR1(USART1_BASE) = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;
    NVIC_ISER(USART1_IRQN / 32u) = 1u << (USART1_IRQN % 32u);
    bp_stm32_timer_start(TIM2_BASE, 0u);
    bp_stm32_timer_start(TIM5_BASE, QEMU_TIMER_HZ / 1000000u - 1u);
}

// About 1 ms of emulated time at one instruction per ns: far longer than QEMU's gap between the
// bytes of one command, short enough that an idle board soon sleeps.
#define RX_POLLS 200000u

uint8_t hal_uart_getc(void) {
    for (uint32_t i = 0; i < RX_POLLS; i++) {
        if ((USART_SR(USART1_BASE) & USART_SR_RXNE) != 0u) {
            return (uint8_t)USART_DR(USART1_BASE);
        }
    }
    for (;;) {
        // Clear the latched pending bit first, then test RXNE: a byte that lands after the test
        // pends the IRQ again and WFI returns at once, so no wake-up is lost.
        NVIC_ICPR(USART1_IRQN / 32u) = 1u << (USART1_IRQN % 32u);
        if ((USART_SR(USART1_BASE) & USART_SR_RXNE) != 0u) {
            return (uint8_t)USART_DR(USART1_BASE);
        }
        __asm volatile("wfi" ::: "memory");
    }
}

void hal_uart_write(const char *buf, size_t n) {
    for (size_t i = 0; i < n; i++) {
        bp_stm32_usart_putc(USART1_BASE, buf[i]);
    }
}

uint32_t hal_cycles(void) { return TIM_CNT(TIM2_BASE); }

uint32_t hal_cycles_hz(void) { return QEMU_TIMER_HZ; }

const char *hal_cycles_unit(void) { return "instructions (emulated)"; }

uint32_t hal_time_us(void) { return TIM_CNT(TIM5_BASE); }

const char *hal_board_name(void) { return "qemu_f405"; }
