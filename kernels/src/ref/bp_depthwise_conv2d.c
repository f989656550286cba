// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation.
#include "bp_kernels.h"
#include "bp_support.h"

bp_status_t bp_depthwise_conv2d(const bp_window_t *win,
                                const bp_quant_t *q,
                                const bp_requant_t *rq,
                                const bp_dims_t *input_dims,
                                const uint8_t *input,
                                const bp_dims_t *filter_dims,
                                const uint8_t *filter,
                                const int32_t *bias,
                                const bp_dims_t *output_dims,
                                void *output) {
    const bp_status_t st =
        bp_depthwise_conv2d_check(win, q, rq, input_dims, input, filter_dims, filter, bias, output_dims, output);
    if (st != BP_OK) {
        return st;
    }
    bp_depthwise_conv2d_generic(win, q, rq, input_dims, input, filter_dims, filter, bias, output_dims, output);
    return BP_OK;
}
