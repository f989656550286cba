// SPDX-License-Identifier: Apache-2.0
// Refer to bp_kernels.h for documentation.
#include "bp_kernels.h"
#include "bp_support.h"

bp_status_t bp_fully_connected(const bp_quant_t *q,
                               const bp_requant_t *rq,
                               int32_t batches,
                               int32_t in_features,
                               int32_t out_features,
                               const uint8_t *input,
                               const uint8_t *filter,
                               const int32_t *bias,
                               void *output) {
    const bp_status_t st =
        bp_fully_connected_check(q, rq, batches, in_features, out_features, input, filter, bias, output);
    if (st != BP_OK) {
        return st;
    }
    const int32_t in_row = bp_row_bytes(in_features, q->in.bits);
    const int32_t w_row = bp_row_bytes(in_features, q->w_stored);
    const int32_t out_row = q->out.bits == 32 ? 0 : bp_row_bytes(out_features, q->out.bits);
    for (int32_t b = 0; b < batches; b++) {
        const uint8_t *x = input + (int64_t)b * in_row;
        if (out_row > 0) {
            bp_clear_row((uint8_t *)output + (int64_t)b * out_row, out_row);
        }
        for (int32_t o = 0; o < out_features; o++) {
            // |acc| <= |bias[o]| + Cin * xmax * 2^(w_view-1) <= INT32_MAX (bp_check_acc).
            const int32_t acc = (bias ? bias[o] : 0) +
                                bp_dot_row(x, &q->in, filter + (int64_t)o * w_row, in_features, q->w_stored, q->w_view,
                                           q->w_round);
            bp_emit(output, b, out_features, o, q, rq, acc);
        }
    }
    return BP_OK;
}
