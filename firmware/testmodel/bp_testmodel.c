// SPDX-License-Identifier: Apache-2.0
// Hand-written deterministic TEST model behind the bp_model.h seam. It is not a neural network and
// not the bitpath model: it exists so that the firmware, protocol, emulator and host client can be
// exercised end to end, with outputs the host recomputes exactly
// (tests/firmware/fw_testmodel_ref.py mirrors this file line by line). Generated model code from the
// IR replaces it (it is linked only when no generated model is).
//
// input  x: 784 bytes (28x28 uint8, like Fashion-MNIST)
// layer 0 "fold":  s[j] = sum_{i = j mod 16} x[i] * ((i / 16) mod 7 + 1),   j = 0..15
//                  bound: 49 terms * 255 * 7 = 87465
// layer 1 "mix":   2 * (path + 1) rounds of t[j] <- (3 t[j] + t[j+1 mod 16] - t[j+5 mod 16]) >> 2
//                  (arithmetic shift = floor); |t| never grows (|3a + b - c| / 4 <= 5/4 max, and
//                  floor keeps it <= 1.25^6 * 87465 < 2^19)
// layer 2 "dense": logits[c] = sum_j t[j] * w(c, j, path),  w = ((16 c + j) * 37 + 11 path) mod 17 - 8
//                  bound: 16 * 8 * 2^19 = 2^26
// controller:      path = (x[0] + ... + x[27] + x[783]) mod 3, counted in controller_cycles
#include <stddef.h>
#include <stdint.h>

#include "bp_model.h"

#define TM_INPUT 784
#define TM_CLASSES 10
#define TM_PATHS 3
#define TM_LAYERS 3
#define TM_WIDTH 16

// Right shift of a negative int32 must be arithmetic (floor) to match the Python mirror.
_Static_assert((-5 >> 2) == -2, "test model needs arithmetic right shift");

static int32_t g_s[TM_WIDTH]; // static "arena": the model allocates nothing
static int32_t g_t[TM_WIDTH];

static uint32_t now(bp_clock_fn clock) { return clock != NULL ? clock() : 0u; }

static int32_t controller(const uint8_t *x) {
    int32_t acc = x[TM_INPUT - 1];
    for (int32_t i = 0; i < 28; i++) {
        acc += x[i];
    }
    return acc % TM_PATHS;
}

static void layer_fold(const uint8_t *x) {
    for (int32_t j = 0; j < TM_WIDTH; j++) {
        g_s[j] = 0;
    }
    for (int32_t i = 0; i < TM_INPUT; i++) {
        g_s[i % TM_WIDTH] += (int32_t)x[i] * ((i / TM_WIDTH) % 7 + 1);
    }
}

static void layer_mix(int32_t path) {
    for (int32_t j = 0; j < TM_WIDTH; j++) {
        g_t[j] = g_s[j];
    }
    int32_t u[TM_WIDTH];
    for (int32_t r = 0; r < 2 * (path + 1); r++) {
        for (int32_t j = 0; j < TM_WIDTH; j++) {
            u[j] = (3 * g_t[j] + g_t[(j + 1) % TM_WIDTH] - g_t[(j + 5) % TM_WIDTH]) >> 2;
        }
        for (int32_t j = 0; j < TM_WIDTH; j++) {
            g_t[j] = u[j];
        }
    }
}

static void layer_dense(int32_t path, int32_t *logits) {
    for (int32_t c = 0; c < TM_CLASSES; c++) {
        int32_t acc = 0;
        for (int32_t j = 0; j < TM_WIDTH; j++) {
            acc += g_t[j] * (((TM_WIDTH * c + j) * 37 + 11 * path) % 17 - 8);
        }
        logits[c] = acc;
    }
}

static bp_status_t testmodel_run(int32_t path,
                                 const uint8_t *input,
                                 int32_t input_len,
                                 int32_t *logits,
                                 bp_run_info_t *info,
                                 bp_clock_fn clock) {
    if (input == NULL || logits == NULL || input_len != TM_INPUT) {
        return BP_ERR_ARG;
    }
    if (path != BP_PATH_AUTO && (path < 0 || path >= TM_PATHS)) {
        return BP_ERR_ARG;
    }
    uint32_t ctrl = 0;
    if (path == BP_PATH_AUTO) {
        const uint32_t t0 = now(clock);
        path = controller(input);
        ctrl = now(clock) - t0;
    }
    uint32_t t = now(clock);
    uint32_t cost[TM_LAYERS];
    layer_fold(input);
    cost[0] = now(clock) - t;
    t = now(clock);
    layer_mix(path);
    cost[1] = now(clock) - t;
    t = now(clock);
    layer_dense(path, logits);
    cost[2] = now(clock) - t;
    if (info != NULL) {
        info->path = path;
        info->controller_cycles = ctrl;
        for (int32_t l = 0; l < TM_LAYERS; l++) {
            info->layer_cycles[l] = cost[l];
        }
    }
    return BP_OK;
}

static const char *const g_path_names[TM_PATHS] = {
    "test path 0: 2 mix rounds",
    "test path 1: 4 mix rounds",
    "test path 2: 6 mix rounds",
};

const bp_model_t bp_model = {
    .name = "bp-testmodel",
    .ir_hash = "none",
    .mlperf_id = "bptest01",
    .input_bytes = TM_INPUT,
    .num_classes = TM_CLASSES,
    .num_paths = TM_PATHS,
    .num_layers = TM_LAYERS,
    .has_controller = 1,
    .arena_bytes = (int32_t)sizeof g_s + (int32_t)sizeof g_t,
    .path_names = g_path_names,
    .run = testmodel_run,
};
