// SPDX-License-Identifier: Apache-2.0
// Refer to bp_runtime.h for documentation.
#include "bp_runtime.h"

#include <stddef.h>

#include "bp_kernels.h"

static const uint8_t *src(const bp_network_t *net, const uint8_t *input, int32_t where) {
    return where == BP_TENSOR_INPUT ? input : net->arena + where;
}

static void *dst(const bp_network_t *net, int32_t *logits, int32_t where) {
    return where == BP_TENSOR_LOGITS ? (void *)logits : (void *)(net->arena + where);
}

static bp_status_t run_layer(const bp_network_t *net,
                             const bp_layer_t *l,
                             const bp_layer_path_t *p,
                             const uint8_t *input,
                             int32_t *logits) {
    const uint8_t *x = src(net, input, l->in0);
    void *y = dst(net, logits, l->out);
    const uint8_t *w = p->weights != NULL ? p->weights : l->weights; // this path's own copy, if it has one
    switch (l->op) {
    case BP_OP_CONV2D: {
        const bp_context_t ctx = {net->arena + l->scratch, l->scratch_bytes};
        return bp_conv2d(&ctx, &l->win, &p->q, &p->rq, &l->in_dims, x, &l->filter_dims, w, p->bias, &l->out_dims, y);
    }
    case BP_OP_DEPTHWISE_CONV2D:
        return bp_depthwise_conv2d(&l->win, &p->q, &p->rq, &l->in_dims, x, &l->filter_dims, w, p->bias, &l->out_dims,
                                   y);
    case BP_OP_FULLY_CONNECTED:
        return bp_fully_connected(&p->q, &p->rq, 1, l->filter_dims.c, l->filter_dims.n, x, w, p->bias, y);
    case BP_OP_MAX_POOL2D:
        return bp_max_pool2d(&l->win, &p->q.in, l->filter_dims.h, l->filter_dims.w, &l->in_dims, x, &l->out_dims,
                             (uint8_t *)y);
    case BP_OP_AVG_POOL2D:
        return bp_avg_pool2d(&l->win, &p->q.in, l->filter_dims.h, l->filter_dims.w, &l->in_dims, x, &l->out_dims,
                             (uint8_t *)y);
    case BP_OP_ADD:
        return bp_add(&p->q.in, x, &p->b_fmt, src(net, input, l->in1), p->mult_a, p->mult_b, p->shift, &p->q.out,
                      p->q.act_min, p->q.act_max, l->out_dims.h * l->out_dims.w, l->out_dims.c, (uint8_t *)y);
    }
    return BP_ERR_ARG;
}

bp_status_t bp_runtime_run(const bp_network_t *net,
                           int32_t path,
                           const uint8_t *input,
                           int32_t *logits,
                           uint32_t *layer_cycles,
                           bp_clock_fn clock) {
    if (net == NULL || input == NULL || logits == NULL || path < 0 || path >= net->num_paths) {
        return BP_ERR_ARG;
    }
    for (int32_t i = 0; i < net->num_layers; i++) {
        const bp_layer_t *l = &net->layers[i];
        const uint32_t t0 = clock ? clock() : 0u;
        const bp_status_t st = run_layer(net, l, &l->paths[path], input, logits);
        if (layer_cycles != NULL) {
            layer_cycles[i] = clock ? clock() - t0 : 0u;
        }
        if (st != BP_OK) {
            return st;
        }
    }
    return BP_OK;
}

int32_t bp_runtime_choose(const int32_t *scores, const int32_t *penalty, const int8_t *order, int32_t num_paths) {
    if (scores == NULL || penalty == NULL || order == NULL || num_paths <= 0) {
        return -1;
    }
    int32_t best_path = -1;
    int64_t best = 0;
    for (int32_t i = 0; i < num_paths; i++) {
        const int32_t k = order[i];
        if (k < 0 || k >= num_paths) {
            return -1;
        }
        const int64_t v = (int64_t)scores[k] - (int64_t)penalty[k];
        if (best_path < 0 || v > best) {  // strictly greater: a tie keeps the earlier (cheaper) path
            best = v;
            best_path = k;
        }
    }
    return best_path;
}

int32_t bp_runtime_top2(const int32_t *logits, int32_t n, int64_t *margin) {
    if (logits == NULL || margin == NULL || n < 2) {
        return -1;
    }
    int32_t top = 0;
    for (int32_t i = 1; i < n; i++) {
        if (logits[i] > logits[top]) {  // strictly greater: a tie keeps the first index
            top = i;
        }
    }
    int64_t second = INT64_MIN;
    for (int32_t i = 0; i < n; i++) {
        if (i != top && (int64_t)logits[i] > second) {
            second = logits[i];
        }
    }
    *margin = (int64_t)logits[top] - second;
    return top;
}
