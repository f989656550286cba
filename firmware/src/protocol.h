// SPDX-License-Identifier: Apache-2.0
// MLPerf Tiny / EEMBC benchmark serial protocol, plus bitpath's `bp-*` extension commands.
// Specification: docs/protocol.md. This parser touches no hardware: output goes through a write
// callback and time through two counter callbacks, so it compiles natively for tests and fuzzing.
#ifndef BP_PROTOCOL_H
#define BP_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "bp_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Longest command accepted, in bytes before the `%` terminator (EEMBC's EE_CMD_SIZE). */
#define BP_CMD_MAX 80

/** Upper bound of `infer N W` for both N and W, so a typo cannot hang the device for hours. */
#ifndef BP_INFER_MAX_ITERS
#define BP_INFER_MAX_ITERS 1000000u
#endif

/** Upper bound of `bp-calib N`. */
#define BP_CALIB_MAX 100000000u

/** Version of the bp-* extension command set, reported by `bp-info%`. */
#define BP_PROTOCOL_VERSION 1

/** What the protocol needs from its surroundings. */
typedef struct {
    void (*write)(void *ctx, const char *buf, size_t n); /**< send bytes to the host */
    void *write_ctx;
    uint32_t (*time_us)(void);  /**< microsecond timer for `m-lap-us-` */
    bp_clock_fn cycles;         /**< cost counter passed to the model (may be NULL) */
    const char *board;          /**< board name for `name%` and `bp-info%` */
    const char *cycles_unit;    /**< "cycles" or "instructions (emulated)" */
    uint32_t cycles_hz;         /**< counts per second of `cycles` */
    void (*spin)(uint32_t n);   /**< 2n-instruction loop for `bp-calib` (may be NULL: command refused) */
} bp_proto_io_t;

/** Protocol state. Treat as opaque; it is a plain struct so that it can live in static memory. */
typedef struct {
    bp_proto_io_t io;
    const bp_model_t *model;
    const char *model_error; /**< why the model descriptor was refused, or NULL */
    uint8_t *db;             /**< input buffer, db_cap bytes, owned by the caller */
    uint32_t db_cap;
    uint32_t db_expect;      /**< bytes announced by `db load`; 0: none announced */
    uint32_t db_pos;         /**< bytes received since `db load` */
    char cmd[BP_CMD_MAX + 1];
    uint32_t cmd_len;
    uint8_t cmd_overflow;
    int32_t cmd_bad_byte;    /**< first byte outside printable ASCII, or -1 */
    int32_t path_mode;       /**< forced path, or BP_PATH_AUTO */
    int32_t have_result;
    int32_t logits[BP_MODEL_MAX_CLASSES];
    bp_run_info_t info;
} bp_proto_t;

/**
 * @brief Initialise the protocol state. Never fails: a model descriptor that is out of bounds is
 *        remembered and reported (`e-` at boot and on every `infer`), the device still serves.
 * @param[out] p      state (static storage)
 * @param[in]  io     callbacks; write and time_us must not be NULL
 * @param[in]  model  model descriptor (may be NULL: no model)
 * @param[in]  db     input buffer of db_cap bytes
 */
void bp_proto_init(bp_proto_t *p, const bp_proto_io_t *io, const bp_model_t *model, uint8_t *db, uint32_t db_cap);

/** @brief Print the boot lines: m-timestamp-mode-performance, m-lap-us-N, m-init-done, m-ready. */
void bp_proto_boot(bp_proto_t *p);

/** @brief Feed one received byte; a `%` completes a command, which is executed before returning. */
void bp_proto_feed(bp_proto_t *p, uint8_t c);

#ifdef __cplusplus
}
#endif

#endif // BP_PROTOCOL_H
