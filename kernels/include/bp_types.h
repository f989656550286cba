// SPDX-License-Identifier: Apache-2.0
// bitpath kernel types. Semantics: docs/integer-semantics.md.
#ifndef BP_TYPES_H
#define BP_TYPES_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Kernel return status. A kernel that returns an error has written nothing to its output. */
typedef enum {
    BP_OK = 0,
    BP_ERR_ARG = -1,       /**< null pointer or non-positive dimension */
    BP_ERR_BITS = -2,      /**< width not in {2,4,8} (32 for logits), or weight view wider than storage */
    BP_ERR_SHAPE = -3,     /**< inconsistent shapes, window larger than the padded input */
    BP_ERR_QUANT = -4,     /**< shift outside [0,62], clamp outside the output type, act_min > act_max */
    BP_ERR_BUFFER = -5,    /**< scratch buffer missing or too small */
    BP_ERR_ACC_RANGE = -6, /**< K * xmax * wmax exceeds INT32_MAX: the accumulator could overflow */
} bp_status_t;

/** Tensor dimensions. Activations are NHWC with n == 1. */
typedef struct {
    int32_t n;
    int32_t h;
    int32_t w;
    int32_t c;
} bp_dims_t;

/** Activation format: bits in {2,4,8} (packed LSB first along C), or 32 for int32 logits. */
typedef struct {
    int32_t bits;
    int32_t is_signed; /**< 0: unsigned 0..2^b-1, 1: two's complement -2^(b-1)..2^(b-1)-1 */
} bp_act_t;

/** Bit widths and output clamp of one layer on one path. */
typedef struct {
    bp_act_t in;
    bp_act_t out;
    int32_t w_stored; /**< width the weights are stored at: 2, 4 or 8 */
    int32_t w_view;   /**< width this path reads: <= w_stored (the nested view, see w_round) */
    int32_t act_min;  /**< output clamp, inside the range of `out` (ignored when out.bits == 32) */
    int32_t act_max;
    /** How the view of a code q is taken, k = w_stored - w_view:
     *  0: floor, view = q >> k;
     *  1: round half up, view = min(q + 2^(k-1), 2^(w_stored-1) - 1) >> k (k = 0: the code itself).
     *  Last, so that initialisers written before it existed read as floor. */
    int32_t w_round;
} bp_quant_t;

/** Per-output-channel dyadic requantization: out = clamp((acc*M + r) >> s), r = s ? 1<<(s-1) : 0. */
typedef struct {
    const int32_t *multiplier; /**< [C_out], any int32 */
    const int32_t *shift;      /**< [C_out], each in [0, 62] */
} bp_requant_t;

/** Convolution and pooling geometry. Output size must equal (H + pad_top + pad_bottom - KH) / stride_h + 1. */
typedef struct {
    int32_t stride_h;
    int32_t stride_w;
    int32_t pad_top;
    int32_t pad_bottom;
    int32_t pad_left;
    int32_t pad_right;
} bp_window_t;

/** Caller-owned scratch memory, sized with the kernel's *_get_buffer_size. */
typedef struct {
    void *buf;
    int32_t size;
} bp_context_t;

#ifdef __cplusplus
}
#endif

#endif // BP_TYPES_H
