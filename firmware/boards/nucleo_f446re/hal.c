// SPDX-License-Identifier: Apache-2.0
// NUCLEO-F446RE (STM32F446RE, Cortex-M4F). Register-level; RM0390 and the board manual UM1724.
//
//  - Clock: HSI 16 MHz -> PLL (M=16, N=336, P=2) -> SYSCLK 168 MHz, AHB /1, APB1 /4 (42 MHz),
//    APB2 /2 (84 MHz); 5 flash wait states. 168 MHz is the F446's limit without over-drive. If the
//    PLL does not lock the board stays on HSI 16 MHz and reports that frequency.
//  - UART: USART2 on PA2 (TX) / PA3 (RX), AF7 -- the ST-LINK virtual COM port.
//  - Cost counter: DWT CYCCNT (core cycles). Microsecond timer: TIM2 (32-bit) at 1 MHz.
// Compiled in CI; not yet run on silicon by this project (docs/firmware.md).
#include "hal.h"

#include "../common/cortexm_dwt.h"
#include "../common/stm32f4_regs.h"

#define HSI_HZ 16000000u
#define PLL_LOCK_SPINS 100000u

static uint32_t g_sysclk_hz = HSI_HZ;
static uint32_t g_apb1_hz = HSI_HZ;

static void clock_init(void) {
    RCC_APB1ENR |= RCC_APB1ENR_PWREN;
    PWR_CR |= (3u << 14); // VOS = scale 1 (needed above 144 MHz)
    // PLLSRC = HSI, M = 16 (1 MHz input), N = 336, P = /2 (168 MHz), Q = 7, R = 2 (reset value)
    RCC_PLLCFGR = (16u << 0) | (336u << 6) | (0u << 16) | (0u << 22) | (7u << 24) | (2u << 28);
    RCC_CR |= RCC_CR_PLLON;
    uint32_t spins = 0;
    while ((RCC_CR & RCC_CR_PLLRDY) == 0u) {
        if (++spins > PLL_LOCK_SPINS) {
            RCC_CR &= ~RCC_CR_PLLON;
            return; // stay on HSI
        }
    }
    // Flash first: 5 wait states (150-180 MHz at 2.7-3.6 V), prefetch + caches on.
    FLASH_ACR = 5u | (1u << 8) | (1u << 9) | (1u << 10);
    while ((FLASH_ACR & 0xFu) != 5u) {
    }
    // HPRE = /1, PPRE1 = /4 (0b101), PPRE2 = /2 (0b100), then switch SYSCLK to PLL.
    RCC_CFGR = (RCC_CFGR & ~((0xFu << 4) | (7u << 10) | (7u << 13) | 3u)) | (5u << 10) | (4u << 13);
    RCC_CFGR = (RCC_CFGR & ~3u) | 2u;
    while (((RCC_CFGR >> 2) & 3u) != 2u) {
    }
    g_sysclk_hz = 168000000u;
    g_apb1_hz = 42000000u;
}

void hal_init(void) {
    clock_init();
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
    RCC_APB1ENR |= RCC_APB1ENR_USART2EN | RCC_APB1ENR_TIM2EN;
    (void)RCC_APB1ENR; // read back: the enable takes effect before the peripheral is touched
    // PA2 = TX, PA3 = RX: alternate function 7
    GPIOA_MODER = (GPIOA_MODER & ~((3u << 4) | (3u << 6))) | (2u << 4) | (2u << 6);
    GPIOA_AFRL = (GPIOA_AFRL & ~((0xFu << 8) | (0xFu << 12))) | (7u << 8) | (7u << 12);
    // 115200 baud, oversampling 16: BRR = f_apb1 / 115200 in 12.4 fixed point, rounded.
    USART_BRR(USART2_BASE) = (g_apb1_hz + 57600u) / 115200u;
    USART_CR1(USART2_BASE) = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE;
    // TIM2 runs at 2 x APB1 when APB1 is divided, else at APB1.
    const uint32_t tim_hz = (g_apb1_hz == g_sysclk_hz) ? g_apb1_hz : 2u * g_apb1_hz;
    bp_stm32_timer_start(TIM2_BASE, tim_hz / 1000000u - 1u);
    bp_dwt_start();
}

uint8_t hal_uart_getc(void) { return bp_stm32_usart_getc(USART2_BASE); }

void hal_uart_write(const char *buf, size_t n) {
    for (size_t i = 0; i < n; i++) {
        bp_stm32_usart_putc(USART2_BASE, buf[i]);
    }
}

uint32_t hal_cycles(void) { return bp_dwt_cycles(); }

uint32_t hal_cycles_hz(void) { return g_sysclk_hz; }

const char *hal_cycles_unit(void) { return "cycles"; }

uint32_t hal_time_us(void) { return TIM_CNT(TIM2_BASE); }

const char *hal_board_name(void) { return "nucleo_f446re"; }
