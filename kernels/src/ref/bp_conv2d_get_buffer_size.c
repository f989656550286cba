// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation.
#include "bp_kernels.h"
#include "bp_support.h"

int32_t bp_conv2d_get_buffer_size(const bp_dims_t *filter_dims) {
    if (filter_dims == NULL || filter_dims->h < 1 || filter_dims->w < 1 || filter_dims->c < 1) {
        return BP_ERR_ARG;
    }
    // Two unpacked int16 patches of K = KH*KW*Cin values, each rounded up to a multiple of 4:
    // the portable kernel uses one, the DSP kernel two (one per output pixel of a 2x2 block).
    const int64_t k4 = ((int64_t)filter_dims->h * filter_dims->w * filter_dims->c + 3) / 4 * 4;
    const int64_t bytes = 2 * k4 * (int64_t)sizeof(int16_t);
    return bytes > INT32_MAX ? BP_ERR_ARG : (int32_t)bytes;
}
