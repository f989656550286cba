// SPDX-License-Identifier: Apache-2.0
// bitpath runtime: executes a generated layer table for one bit-path. Generated model code
// (codegen_templates/model.c.j2) holds only data (weights, per-path constants, the table, arena
// offsets) and calls bp_runtime_run; all arithmetic happens in the kernels. Portable C11: it builds
// for the firmware and, through cffi, for the host tests.
#ifndef BP_RUNTIME_H
#define BP_RUNTIME_H

#include <stdint.h>

#include "bp_model.h"
#include "bp_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    BP_OP_CONV2D = 0,
    BP_OP_DEPTHWISE_CONV2D = 1,
    BP_OP_FULLY_CONNECTED = 2,
    BP_OP_MAX_POOL2D = 3,
    BP_OP_AVG_POOL2D = 4,
    BP_OP_ADD = 5,
} bp_op_t;

/** Where a layer's operand lives: the network input, an arena offset, or the logits output. */
#define BP_TENSOR_INPUT (-1)
#define BP_TENSOR_LOGITS (-2)

/** One layer's constants on one path. */
typedef struct {
    bp_quant_t q;          /**< widths and clamp (pools: q.in is the pooled format) */
    const int32_t *bias;   /**< [out channels] (weighted layers) */
    bp_requant_t rq;       /**< per-channel multiplier/shift (weighted layers, unless logits) */
    bp_act_t b_fmt;        /**< add: second operand's format (q.in is the first's, q.out the result's) */
    int32_t mult_a;        /**< add */
    int32_t mult_b;        /**< add */
    int32_t shift;         /**< add */
    /** NULL: the layer's weights (nested storage, read at q.w_view). Else this path's own copy of its
     *  view, packed at q.w_stored = q.w_view: codegen emits one for 2-bit views of wider storage in
     *  conv2d and fully connected layers, whose 2-bit-storage kernels are faster (docs/kernels.md). */
    const uint8_t *weights;
} bp_layer_path_t;

/** One layer: op, geometry, where its operands live, weights, per-path constants. */
typedef struct {
    bp_op_t op;
    int32_t in0;      /**< arena offset, or BP_TENSOR_INPUT */
    int32_t in1;      /**< add only: arena offset of the second operand */
    int32_t out;      /**< arena offset, or BP_TENSOR_LOGITS */
    int32_t scratch;  /**< arena offset of the conv scratch, or -1 */
    int32_t scratch_bytes;
    bp_dims_t in_dims;
    bp_dims_t filter_dims;  /**< conv: Cout,KH,KW,Cin; depthwise: 1,KH,KW,C; fc: n = Cout, c = Cin */
    bp_dims_t out_dims;
    bp_window_t win;
    const uint8_t *weights;
    const bp_layer_path_t *paths;  /**< [num_paths] */
} bp_layer_t;

/** A whole network: the layer table and its static arena. */
typedef struct {
    const bp_layer_t *layers;
    int32_t num_layers;
    int32_t num_paths;
    int32_t input_bytes;
    int32_t num_classes;
    uint8_t *arena;        /**< 4-byte aligned */
    int32_t arena_bytes;
} bp_network_t;

/**
 * @brief Run every layer of `net` on path `path` (0..num_paths-1).
 * @param[out] logits  int32 [num_classes], written by the last layer
 * @param[out] layer_cycles  [num_layers] clock counts per layer (may be NULL)
 * @param[in]  clock   free-running counter read around each layer (may be NULL)
 * @return BP_OK, or the first kernel error (the run stops there)
 */
bp_status_t bp_runtime_run(const bp_network_t *net,
                           int32_t path,
                           const uint8_t *input,
                           int32_t *logits,
                           uint32_t *layer_cycles,
                           bp_clock_fn clock);

/**
 * @brief The controller's decision rule: the path k with the largest scores[k] - penalty[k]
 *        (computed in int64, so it cannot overflow); ties go to the path listed first in `order`
 *        (the generator lists paths cheapest first). Host twin: bitpath.export.runner.choose.
 * @param[in] scores   int32 [num_paths], the controller network's outputs
 * @param[in] penalty  int32 [num_paths], per-path cost penalty in score units
 * @param[in] order    [num_paths], a permutation of 0..num_paths-1
 * @return the chosen path, or -1 when an argument is invalid
 */
int32_t bp_runtime_choose(const int32_t *scores, const int32_t *penalty, const int8_t *order, int32_t num_paths);

/**
 * @brief The escalating controller's confidence test: the top class of int32 `logits` (the FIRST index
 *        of the maximum) and its margin over the runner-up, z[top] - max_{j != top} z[j], computed in
 *        int64 (never negative; 0 on a tie; up to 2^32 - 1 at the int32 edges). A stage accepts its
 *        path when margin >= threshold[top]. Host twin: bitpath.export.runner.top2_margin.
 * @param[in]  logits  int32 [n]
 * @param[in]  n       number of classes, at least 2
 * @param[out] margin  the top-1/top-2 margin
 * @return the top class, or -1 when an argument is invalid (NULL pointer, n < 2; margin untouched)
 */
int32_t bp_runtime_top2(const int32_t *logits, int32_t n, int64_t *margin);

#ifdef __cplusplus
}
#endif

#endif // BP_RUNTIME_H
