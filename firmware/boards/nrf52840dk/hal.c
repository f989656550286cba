// SPDX-License-Identifier: Apache-2.0
// nRF52840-DK (nRF52840, Cortex-M4F at 64 MHz). Register-level; nRF52840 Product Specification v1.x.
//
//  - Clock: HFXO started (accurate baud rate); the CPU always runs at 64 MHz.
//  - UART: UARTE0 (EasyDMA) on P0.06 (TX) / P0.08 (RX), no flow control -- the J-Link virtual COM port.
//    EasyDMA reads RAM only, so output is copied through a RAM buffer; input uses two 1-byte DMA
//    buffers (the next receive is armed before the current byte is returned).
//  - Cost counter: DWT CYCCNT. Microsecond timer: TIMER1, 32-bit, prescaler 4 (16 MHz / 2^4 = 1 MHz).
// Compiled in CI; not yet run on silicon by this project (docs/firmware.md).
#include "hal.h"

#include "../common/cortexm_dwt.h"

#define NRF_REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

#define CLOCK_BASE 0x40000000u
#define CLOCK_TASKS_HFCLKSTART NRF_REG(CLOCK_BASE + 0x000u)
#define CLOCK_EVENTS_HFCLKSTARTED NRF_REG(CLOCK_BASE + 0x100u)

#define UARTE0_BASE 0x40002000u
#define UARTE_TASKS_STARTRX NRF_REG(UARTE0_BASE + 0x000u)
#define UARTE_TASKS_STARTTX NRF_REG(UARTE0_BASE + 0x008u)
#define UARTE_EVENTS_ENDRX NRF_REG(UARTE0_BASE + 0x110u)
#define UARTE_EVENTS_ENDTX NRF_REG(UARTE0_BASE + 0x120u)
#define UARTE_ENABLE NRF_REG(UARTE0_BASE + 0x500u)
#define UARTE_PSEL_RTS NRF_REG(UARTE0_BASE + 0x508u)
#define UARTE_PSEL_TXD NRF_REG(UARTE0_BASE + 0x50Cu)
#define UARTE_PSEL_CTS NRF_REG(UARTE0_BASE + 0x510u)
#define UARTE_PSEL_RXD NRF_REG(UARTE0_BASE + 0x514u)
#define UARTE_BAUDRATE NRF_REG(UARTE0_BASE + 0x524u)
#define UARTE_RXD_PTR NRF_REG(UARTE0_BASE + 0x534u)
#define UARTE_RXD_MAXCNT NRF_REG(UARTE0_BASE + 0x538u)
#define UARTE_TXD_PTR NRF_REG(UARTE0_BASE + 0x544u)
#define UARTE_TXD_MAXCNT NRF_REG(UARTE0_BASE + 0x548u)
#define UARTE_CONFIG NRF_REG(UARTE0_BASE + 0x56Cu)
#define UARTE_ENABLE_ENABLED 8u
#define UARTE_BAUDRATE_115200 0x01D7E000u
#define PSEL_DISCONNECTED 0xFFFFFFFFu

#define TIMER1_BASE 0x40009000u
#define TIMER_TASKS_START NRF_REG(TIMER1_BASE + 0x000u)
#define TIMER_TASKS_CLEAR NRF_REG(TIMER1_BASE + 0x00Cu)
#define TIMER_TASKS_CAPTURE0 NRF_REG(TIMER1_BASE + 0x040u)
#define TIMER_MODE NRF_REG(TIMER1_BASE + 0x504u)
#define TIMER_BITMODE NRF_REG(TIMER1_BASE + 0x508u)
#define TIMER_PRESCALER NRF_REG(TIMER1_BASE + 0x510u)
#define TIMER_CC0 NRF_REG(TIMER1_BASE + 0x540u)

#define P0_BASE 0x50000000u
#define P0_OUTSET NRF_REG(P0_BASE + 0x508u)
#define P0_DIRSET NRF_REG(P0_BASE + 0x518u)
#define P0_PIN_CNF(n) NRF_REG(P0_BASE + 0x700u + 4u * (n))

#define PIN_TX 6u
#define PIN_RX 8u
#define CPU_HZ 64000000u
#define HFXO_START_SPINS 1000000u

static volatile uint8_t g_rx[2];
static uint32_t g_rx_cur;
static uint8_t g_tx[64];

static void rx_arm(uint32_t slot) {
    UARTE_RXD_PTR = (uint32_t)(uintptr_t)&g_rx[slot];
    UARTE_RXD_MAXCNT = 1u;
    UARTE_TASKS_STARTRX = 1u;
}

void hal_init(void) {
    CLOCK_EVENTS_HFCLKSTARTED = 0u;
    CLOCK_TASKS_HFCLKSTART = 1u;
    for (uint32_t spins = 0; CLOCK_EVENTS_HFCLKSTARTED == 0u && spins < HFXO_START_SPINS; spins++) {
    }
    // TX pin idles high as an output; RX pin is an input with its buffer connected.
    P0_OUTSET = 1u << PIN_TX;
    P0_DIRSET = 1u << PIN_TX;
    P0_PIN_CNF(PIN_RX) = 0u;
    UARTE_PSEL_TXD = PIN_TX;
    UARTE_PSEL_RXD = PIN_RX;
    UARTE_PSEL_RTS = PSEL_DISCONNECTED;
    UARTE_PSEL_CTS = PSEL_DISCONNECTED;
    UARTE_CONFIG = 0u; // no parity, one stop bit, no flow control
    UARTE_BAUDRATE = UARTE_BAUDRATE_115200;
    UARTE_ENABLE = UARTE_ENABLE_ENABLED;
    g_rx_cur = 0u;
    UARTE_EVENTS_ENDRX = 0u;
    rx_arm(g_rx_cur);

    TIMER_MODE = 0u;     // timer
    TIMER_BITMODE = 3u;  // 32 bit
    TIMER_PRESCALER = 4u; // 16 MHz / 2^4 = 1 MHz
    TIMER_TASKS_CLEAR = 1u;
    TIMER_TASKS_START = 1u;
    bp_dwt_start();
}

uint8_t hal_uart_getc(void) {
    while (UARTE_EVENTS_ENDRX == 0u) {
    }
    UARTE_EVENTS_ENDRX = 0u;
    const uint8_t c = g_rx[g_rx_cur];
    // Arm the other slot before returning, so the byte just read cannot be overwritten.
    g_rx_cur ^= 1u;
    rx_arm(g_rx_cur);
    return c;
}

void hal_uart_write(const char *buf, size_t n) {
    while (n > 0u) {
        const size_t chunk = n < sizeof g_tx ? n : sizeof g_tx;
        for (size_t i = 0; i < chunk; i++) {
            g_tx[i] = (uint8_t)buf[i];
        }
        UARTE_EVENTS_ENDTX = 0u;
        UARTE_TXD_PTR = (uint32_t)(uintptr_t)g_tx;
        UARTE_TXD_MAXCNT = (uint32_t)chunk;
        UARTE_TASKS_STARTTX = 1u;
        while (UARTE_EVENTS_ENDTX == 0u) {
        }
        buf += chunk;
        n -= chunk;
    }
}

uint32_t hal_cycles(void) { return bp_dwt_cycles(); }

uint32_t hal_cycles_hz(void) { return CPU_HZ; }

const char *hal_cycles_unit(void) { return "cycles"; }

uint32_t hal_time_us(void) {
    TIMER_TASKS_CAPTURE0 = 1u;
    return TIMER_CC0;
}

const char *hal_board_name(void) { return "nrf52840dk"; }
