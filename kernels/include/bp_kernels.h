// SPDX-License-Identifier: Apache-2.0
// bitpath kernels: public prototypes. The integer semantics are defined once in
// docs/integer-semantics.md; every kernel here implements exactly that.
//
// Common conventions
//  - Activations are NHWC. A b-bit tensor (b in {2,4,8}) is packed LSB first along C, one pixel per
//    row of ceil(C*b/8) bytes (padding bits zero):
//        b = 4:  byte k = | v[2k+1] (bits 7..4) | v[2k] (bits 3..0) |
//        b = 2:  byte k = | v[4k+3] | v[4k+2] | v[4k+1] | v[4k] (bits 1..0) |
//    A 32-bit output is int32 logits, one int32_t per value, no packing.
//  - Weights are signed codes stored at q->w_stored bits, packed the same way, one row per output
//    channel (conv: KH*KW*Cin values in OHWI order; FC: Cin values) or per tap (depthwise: C values,
//    layout [KH][KW][C]). The kernel reads the nested view q >> (w_stored - w_view).
//  - Requantization: out = clamp((acc * M[o] + r) >> s[o], act_min, act_max), r = s ? 1 << (s-1) : 0,
//    64-bit product, arithmetic shift: single rounding, round half up. M: any int32; s in [0, 62].
//  - Every kernel validates all parameters before writing; on error it returns a negative
//    bp_status_t and the output is untouched. No kernel allocates, prints or touches hardware.
#ifndef BP_KERNELS_H
#define BP_KERNELS_H

#include "bp_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Scratch bytes bp_conv2d needs: two unpacked input patches of ceil(KH*KW*Cin / 4) * 4 int16
 *        values (the portable kernel uses one, the DSP kernel one per pixel of a 2-pixel block).
 * @param[in] filter_dims  n = Cout, h = KH, w = KW, c = Cin
 * @return bytes (>= 0), or BP_ERR_ARG for non-positive dimensions
 */
int32_t bp_conv2d_get_buffer_size(const bp_dims_t *filter_dims);

/**
 * @brief 2-D convolution (groups = 1), any KH x KW, stride, zero padding, per-channel requantization.
 *
 * Accumulator: acc = bias[o] + sum_{KH*KW*Cin} x * w_view. Worst case
 * |acc| <= |bias| + KH*KW*Cin * xmax * 2^(w_view-1), xmax = 255 for uint8 input; the kernel returns
 * BP_ERR_ACC_RANGE when KH*KW*Cin * xmax * 2^(w_view-1) > INT32_MAX (e.g. more than 65793 products
 * at a8w8), and the host bound checker (bitpath.ref.bounds) covers the bias.
 *
 * @param[in]  ctx          scratch, 4-byte aligned, ctx->size >= bp_conv2d_get_buffer_size(filter_dims)
 * @param[in]  win          stride (>= 1) and padding (>= 0); output size must match exactly
 * @param[in]  q            widths: in {2,4,8} (signed or not), out {2,4,8} or 32 (int32 logits),
 *                          w_view <= w_stored in {2,4,8}; clamp inside the output range
 * @param[in]  rq           per-output-channel multiplier [Cout] and shift [Cout] (unused when out is 32-bit)
 * @param[in]  input_dims   n >= 1, h, w, c = Cin
 * @param[in]  input        packed input, n*h*w rows of ceil(Cin*in.bits/8) bytes
 * @param[in]  filter_dims  n = Cout, h = KH, w = KW, c = Cin
 * @param[in]  filter       packed weight codes, Cout rows of ceil(KH*KW*Cin*w_stored/8) bytes
 * @param[in]  bias         int32 [Cout], may be NULL (zero)
 * @param[in]  output_dims  n, h = (H+pt+pb-KH)/sh+1, w = (W+pl+pr-KW)/sw+1, c = Cout
 * @param[out] output       packed output rows (or int32 [n*h*w*Cout] when out.bits == 32)
 * @return BP_OK or a negative bp_status_t
 */
bp_status_t bp_conv2d(const bp_context_t *ctx,
                      const bp_window_t *win,
                      const bp_quant_t *q,
                      const bp_requant_t *rq,
                      const bp_dims_t *input_dims,
                      const uint8_t *input,
                      const bp_dims_t *filter_dims,
                      const uint8_t *filter,
                      const int32_t *bias,
                      const bp_dims_t *output_dims,
                      void *output);

/**
 * @brief Depthwise 2-D convolution, channel multiplier 1, per-channel requantization.
 *
 * Accumulator: acc = bias[c] + sum_{KH*KW} x * w_view; |acc| <= |bias| + KH*KW * xmax * 2^(w_view-1).
 *
 * @param[in]  filter_dims  n = 1, h = KH, w = KW, c = C; weights laid out [KH][KW][C], one packed row
 *                          of ceil(C*w_stored/8) bytes per tap
 * Other parameters as bp_conv2d (output c = input c = C). Needs no scratch.
 */
bp_status_t bp_depthwise_conv2d(const bp_window_t *win,
                                const bp_quant_t *q,
                                const bp_requant_t *rq,
                                const bp_dims_t *input_dims,
                                const uint8_t *input,
                                const bp_dims_t *filter_dims,
                                const uint8_t *filter,
                                const int32_t *bias,
                                const bp_dims_t *output_dims,
                                void *output);

/**
 * @brief Fully connected layer: out[o] = requant(bias[o] + sum_i x[i] * w_view[o][i]).
 *
 * Accumulator: |acc| <= |bias| + Cin * xmax * 2^(w_view-1).
 *
 * @param[in]  batches  number of input vectors (>= 1), each a packed row of ceil(Cin*in.bits/8) bytes
 * @param[in]  in_features   Cin
 * @param[in]  out_features  Cout
 * @param[in]  filter   Cout packed rows of ceil(Cin*w_stored/8) bytes
 * @param[out] output   batches packed rows of ceil(Cout*out.bits/8) bytes, or int32 [batches*Cout]
 */
bp_status_t bp_fully_connected(const bp_quant_t *q,
                               const bp_requant_t *rq,
                               int32_t batches,
                               int32_t in_features,
                               int32_t out_features,
                               const uint8_t *input,
                               const uint8_t *filter,
                               const int32_t *bias,
                               void *output);

/**
 * @brief Max pool over KH x KW windows of the valid (non-padded) inputs; output format = input format.
 * @param[in] fmt  bits in {2,4,8}, signed or not. A window lying wholly in padding is BP_ERR_SHAPE.
 */
bp_status_t bp_max_pool2d(const bp_window_t *win,
                          const bp_act_t *fmt,
                          int32_t kernel_h,
                          int32_t kernel_w,
                          const bp_dims_t *input_dims,
                          const uint8_t *input,
                          const bp_dims_t *output_dims,
                          uint8_t *output);

/**
 * @brief Average pool, no padding (win must have zero padding), unsigned input:
 *        out = floor((sum + n/2) / n) over the n = KH*KW values of a window (round half up).
 *        Global average pooling: kernel = input H x W. Sum bound: n * 255 <= INT32_MAX needs
 *        n <= 8421504.
 */
bp_status_t bp_avg_pool2d(const bp_window_t *win,
                          const bp_act_t *fmt,
                          int32_t kernel_h,
                          int32_t kernel_w,
                          const bp_dims_t *input_dims,
                          const uint8_t *input,
                          const bp_dims_t *output_dims,
                          uint8_t *output);

/**
 * @brief Residual add with its own requantization, element-wise over `count` values per row:
 *        out = clamp((a*mult_a + b*mult_b + r) >> shift, act_min, act_max).
 *        |a|,|b| <= 255 and |mult| <= 2^31, so |a*mult_a + b*mult_b| < 2^40: the 64-bit sum is exact.
 * @param[in] rows   number of rows (pixels); each operand row is packed in its own format
 * @param[in] count  values per row (channels)
 */
bp_status_t bp_add(const bp_act_t *a_fmt,
                   const uint8_t *a,
                   const bp_act_t *b_fmt,
                   const uint8_t *b,
                   int32_t mult_a,
                   int32_t mult_b,
                   int32_t shift,
                   const bp_act_t *out_fmt,
                   int32_t act_min,
                   int32_t act_max,
                   int32_t rows,
                   int32_t count,
                   uint8_t *output);

/**
 * @brief Standalone requantization of int32 accumulators, channel = index % channels:
 *        out = clamp((acc*M[c] + r) >> s[c], act_min, act_max), packed in `out_fmt` rows of
 *        `channels` values.
 */
bp_status_t bp_requantize(const int32_t *acc,
                          int32_t rows,
                          int32_t channels,
                          const bp_requant_t *rq,
                          const bp_act_t *out_fmt,
                          int32_t act_min,
                          int32_t act_max,
                          uint8_t *output);

#ifdef __cplusplus
}
#endif

#endif // BP_KERNELS_H
