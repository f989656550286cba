// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation.
#include "bp_kernels.h"
#include "bp_support.h"

bp_status_t bp_max_pool2d(const bp_window_t *win,
                          const bp_act_t *fmt,
                          int32_t kernel_h,
                          int32_t kernel_w,
                          const bp_dims_t *input_dims,
                          const uint8_t *input,
                          const bp_dims_t *output_dims,
                          uint8_t *output) {
    const bp_status_t st =
        bp_max_pool2d_check(win, fmt, kernel_h, kernel_w, input_dims, input, output_dims, output);
    if (st != BP_OK) {
        return st;
    }
    bp_max_pool2d_generic(win, fmt, kernel_h, kernel_w, input_dims, input, output_dims, output);
    return BP_OK;
}
