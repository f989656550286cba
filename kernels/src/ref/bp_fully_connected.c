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
    if (input == NULL || filter == NULL || output == NULL || batches < 1 || in_features < 1 || out_features < 1) {
        return BP_ERR_ARG;
    }
    bp_status_t st = bp_check_quant(q);
    if (st != BP_OK) {
        return st;
    }
    st = bp_check_acc(in_features, &q->in, q->w_view, bias, out_features);
    if (st != BP_OK) {
        return st;
    }
    if (q->out.bits != 32 && (st = bp_check_requant(rq, out_features)) != BP_OK) {
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
            const uint8_t *wr = filter + (int64_t)o * w_row;
            // |acc| <= |bias[o]| + Cin * xmax * 2^(w_view-1) <= INT32_MAX (bp_check_acc).
            int32_t acc = bias ? bias[o] : 0;
            for (int32_t i = 0; i < in_features; i++) {
                acc += bp_read(x, i, q->in.bits, q->in.is_signed) * bp_read_weight(wr, i, q->w_stored, q->w_view);
            }
            const int32_t v =
                q->out.bits == 32 ? acc : bp_requant(acc, rq->multiplier[o], rq->shift[o], q->act_min, q->act_max);
            bp_store(output, b, out_features, o, &q->out, v);
        }
    }
    return BP_OK;
}
