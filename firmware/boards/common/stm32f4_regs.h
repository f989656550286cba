// SPDX-License-Identifier: Apache-2.0
// The few STM32F4 registers bitpath uses (RM0090 for the F405, RM0390 for the F446; the blocks
// below are identical on both). Register-level on purpose: no vendor SDK.
#ifndef BP_STM32F4_REGS_H
#define BP_STM32F4_REGS_H

#include <stdint.h>

#define BP_REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

// RCC
#define RCC_BASE 0x40023800u
#define RCC_CR BP_REG(RCC_BASE + 0x00u)
#define RCC_PLLCFGR BP_REG(RCC_BASE + 0x04u)
#define RCC_CFGR BP_REG(RCC_BASE + 0x08u)
#define RCC_AHB1ENR BP_REG(RCC_BASE + 0x30u)
#define RCC_APB1ENR BP_REG(RCC_BASE + 0x40u)
#define RCC_APB2ENR BP_REG(RCC_BASE + 0x44u)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#define RCC_APB1ENR_TIM2EN (1u << 0)
#define RCC_APB1ENR_TIM5EN (1u << 3)
#define RCC_APB1ENR_USART2EN (1u << 17)
#define RCC_APB1ENR_PWREN (1u << 28)
#define RCC_APB2ENR_USART1EN (1u << 4)

// FLASH interface and PWR
#define FLASH_ACR BP_REG(0x40023C00u)
#define PWR_CR BP_REG(0x40007000u)

// GPIO port A
#define GPIOA_BASE 0x40020000u
#define GPIOA_MODER BP_REG(GPIOA_BASE + 0x00u)
#define GPIOA_AFRL BP_REG(GPIOA_BASE + 0x20u)
#define GPIOA_AFRH BP_REG(GPIOA_BASE + 0x24u)

// USART (same block for USART1/2/3/6)
#define USART1_BASE 0x40011000u
#define USART2_BASE 0x40004400u
#define USART_SR(base) BP_REG((base) + 0x00u)
#define USART_DR(base) BP_REG((base) + 0x04u)
#define USART_BRR(base) BP_REG((base) + 0x08u)
#define USART_CR1(base) BP_REG((base) + 0x0Cu)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TXE (1u << 7)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_UE (1u << 13)

// General-purpose 32-bit timers TIM2 and TIM5
#define TIM2_BASE 0x40000000u
#define TIM5_BASE 0x40000C00u
#define TIM_CR1(base) BP_REG((base) + 0x00u)
#define TIM_EGR(base) BP_REG((base) + 0x14u)
#define TIM_CNT(base) BP_REG((base) + 0x24u)
#define TIM_PSC(base) BP_REG((base) + 0x28u)
#define TIM_ARR(base) BP_REG((base) + 0x2Cu)
#define TIM_CR1_CEN (1u << 0)
#define TIM_EGR_UG (1u << 0)

// Free-running up-counter: full 32-bit period, prescaler psc (counts at f_timer / (psc + 1)).
static inline void bp_stm32_timer_start(uint32_t base, uint32_t psc) {
    TIM_CR1(base) = 0u;
    TIM_PSC(base) = psc;
    TIM_ARR(base) = 0xFFFFFFFFu;
    TIM_EGR(base) = TIM_EGR_UG; // load the prescaler now, not at the first overflow
    TIM_CNT(base) = 0u;
    TIM_CR1(base) = TIM_CR1_CEN;
}

static inline void bp_stm32_usart_putc(uint32_t base, char c) {
    while ((USART_SR(base) & USART_SR_TXE) == 0u) {
    }
    USART_DR(base) = (uint8_t)c;
}

static inline uint8_t bp_stm32_usart_getc(uint32_t base) {
    while ((USART_SR(base) & USART_SR_RXNE) == 0u) {
    }
    return (uint8_t)USART_DR(base);
}

#endif // BP_STM32F4_REGS_H
