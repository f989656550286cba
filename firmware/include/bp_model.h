// SPDX-License-Identifier: Apache-2.0
// bitpath model seam: the one interface through which the firmware (and host tests) run a model.
//
// A model is a constant descriptor. Generated code (from the IR) will define one; until then
// firmware/testmodel/ provides a deterministic hand-written test model. The model owns its weights
// and activation arena (static, sized at generation time); it allocates nothing, prints nothing and
// never touches hardware: time is read through the clock function the caller passes in.
#ifndef BP_MODEL_H
#define BP_MODEL_H

#include <stdint.h>

#include "bp_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Path argument asking the model's controller to choose the path for this input. */
#define BP_PATH_AUTO (-1)

/** Upper bounds the firmware sizes its result buffers with; a model beyond them is refused at boot. */
#define BP_MODEL_MAX_CLASSES 64
#define BP_MODEL_MAX_LAYERS 64
#define BP_MODEL_MAX_PATHS 16

/** Reads a free-running 32-bit counter (differences taken modulo 2^32). May be NULL: no timing. */
typedef uint32_t (*bp_clock_fn)(void);

/** What one run reports besides the logits. */
typedef struct {
    int32_t path;               /**< path that ran: 0..num_paths-1 (the controller's choice under BP_PATH_AUTO) */
    uint32_t controller_cycles; /**< clock counts spent in the controller; 0 when the path was forced */
    uint32_t layer_cycles[BP_MODEL_MAX_LAYERS]; /**< clock counts per layer, [num_layers] valid */
} bp_run_info_t;

/**
 * @brief Run one inference.
 * @param[in]  path       0..num_paths-1, or BP_PATH_AUTO (only when has_controller)
 * @param[in]  input      input_bytes bytes, uint8, layout as the model documents (NHWC)
 * @param[in]  input_len  must equal input_bytes
 * @param[out] logits     int32 [num_classes]
 * @param[out] info       chosen path and per-layer costs; may be NULL
 * @param[in]  clock      counter read around each layer; may be NULL (costs reported as 0)
 * @return BP_OK, BP_ERR_ARG for a bad path/length/pointer; outputs are untouched on error
 */
typedef bp_status_t (*bp_model_run_fn)(int32_t path,
                                       const uint8_t *input,
                                       int32_t input_len,
                                       int32_t *logits,
                                       bp_run_info_t *info,
                                       bp_clock_fn clock);

/** Constant description of a compiled model. */
typedef struct {
    const char *name;        /**< short name, printable ASCII without ']' */
    const char *ir_hash;     /**< content hash of the IR it was generated from (hex), or "none" */
    const char *mlperf_id;   /**< string for `m-model-[...]` (MLPerf Tiny: ic01, kws01, ...; ours: e.g. fmnist01) */
    int32_t input_bytes;     /**< uint8 input size */
    int32_t num_classes;     /**< logits per inference, 1..BP_MODEL_MAX_CLASSES */
    int32_t num_paths;       /**< bit-paths, 1..BP_MODEL_MAX_PATHS */
    int32_t num_layers;      /**< layers timed in bp_run_info_t, 1..BP_MODEL_MAX_LAYERS */
    int32_t has_controller;  /**< 1 when BP_PATH_AUTO is accepted */
    int32_t arena_bytes;     /**< static activation arena, computed at generation time */
    const char *const *path_names; /**< [num_paths] human-readable bit-path descriptions, or NULL */
    bp_model_run_fn run;
} bp_model_t;

/** The model linked into the firmware image. */
extern const bp_model_t bp_model;

#ifdef __cplusplus
}
#endif

#endif // BP_MODEL_H
