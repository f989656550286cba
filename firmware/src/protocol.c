// SPDX-License-Identifier: Apache-2.0
// MLPerf Tiny / EEMBC serial protocol and the bp-* extensions. Specification: docs/protocol.md.
//
// Every path through bp_proto_feed() that completes a command prints exactly one `m-ready` line,
// whatever the input; the fuzz test (tests/firmware/fuzz_protocol.c) checks that invariant and that
// the db buffer is never written out of bounds.
#include "protocol.h"

#include <string.h>

#define MAX_TOKENS 4

// ---------------------------------------------------------------- output helpers

static void out(const bp_proto_t *p, const char *s, size_t n) { p->io.write(p->io.write_ctx, s, n); }

static void out_str(const bp_proto_t *p, const char *s) { out(p, s, strlen(s)); }

// Prints s but stops at a ']' or a non-printable byte, so a name can never break the `-[...]` framing.
static void out_field(const bp_proto_t *p, const char *s) {
    if (s == NULL) {
        out_str(p, "none");
        return;
    }
    size_t n = 0;
    while (s[n] != '\0' && s[n] != ']' && s[n] >= 0x20 && s[n] < 0x7f && n < 64) {
        n++;
    }
    out(p, s, n);
}

static void out_u64(const bp_proto_t *p, uint64_t v) {
    char buf[20]; // 2^64-1 has 20 digits
    size_t i = sizeof buf;
    do {
        buf[--i] = (char)('0' + (v % 10u));
        v /= 10u;
    } while (v != 0u);
    out(p, buf + i, sizeof buf - i);
}

static void out_i32(const bp_proto_t *p, int32_t v) {
    if (v < 0) {
        out_str(p, "-");
        // -(int64) keeps INT32_MIN exact.
        out_u64(p, (uint64_t)(-(int64_t)v));
    } else {
        out_u64(p, (uint64_t)v);
    }
}

static void out_hex8(const bp_proto_t *p, uint8_t v) {
    static const char digits[] = "0123456789abcdef";
    const char s[2] = {digits[v >> 4], digits[v & 15u]};
    out(p, s, 2);
}

static void out_eol(const bp_proto_t *p) { out_str(p, "\r\n"); }

static void out_line(const bp_proto_t *p, const char *s) {
    out_str(p, s);
    out_eol(p);
}

// `e-[<a><b>]`; b may be NULL.
static void out_error(const bp_proto_t *p, const char *a, const char *b) {
    out_str(p, "e-[");
    out_str(p, a);
    if (b != NULL) {
        out_field(p, b);
    }
    out_str(p, "]\r\n");
}

static void out_ready(const bp_proto_t *p) { out_line(p, "m-ready"); }

// `m-<key>-[<u64>]`
static void out_kv_u64(const bp_proto_t *p, const char *key, uint64_t v) {
    out_str(p, "m-");
    out_str(p, key);
    out_str(p, "-[");
    out_u64(p, v);
    out_str(p, "]\r\n");
}

static void out_kv_str(const bp_proto_t *p, const char *key, const char *v) {
    out_str(p, "m-");
    out_str(p, key);
    out_str(p, "-[");
    out_field(p, v);
    out_str(p, "]\r\n");
}

static void out_lap(const bp_proto_t *p) {
    out_str(p, "m-lap-us-");
    out_u64(p, p->io.time_us());
    out_eol(p);
}

// ---------------------------------------------------------------- parsing helpers

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// Strict unsigned decimal: digits only (no sign, no spaces), value <= max.
// Returns 0 on success, -1 not a number (includes a leading '-'), -2 above max.
static int parse_u32(const char *s, uint32_t max, uint32_t *out_v) {
    if (s == NULL || *s == '\0') {
        return -1;
    }
    uint64_t v = 0;
    for (const char *c = s; *c != '\0'; c++) {
        if (!is_digit(*c)) {
            return -1;
        }
        v = v * 10u + (uint64_t)(*c - '0');
        if (v > max) {
            return -2;
        }
    }
    *out_v = (uint32_t)v;
    return 0;
}

// Splits p->cmd in place on spaces; returns the token count (at most MAX_TOKENS + 1, meaning "too many").
static int tokenize(bp_proto_t *p, char *tok[MAX_TOKENS]) {
    int n = 0;
    char *c = p->cmd;
    while (*c != '\0') {
        while (*c == ' ') {
            *c++ = '\0';
        }
        if (*c == '\0') {
            break;
        }
        if (n == MAX_TOKENS) {
            return MAX_TOKENS + 1;
        }
        tok[n++] = c;
        while (*c != '\0' && *c != ' ') {
            c++;
        }
    }
    return n;
}

static int streq(const char *a, const char *b) { return strcmp(a, b) == 0; }

// ---------------------------------------------------------------- model checks

static const char *check_model(const bp_model_t *m, uint32_t db_cap) {
    if (m == NULL) {
        return "no model linked";
    }
    if (m->run == NULL) {
        return "model has no run function";
    }
    if (m->input_bytes <= 0 || (uint32_t)m->input_bytes > db_cap) {
        return "model input_bytes outside 1..db capacity";
    }
    if (m->num_classes <= 0 || m->num_classes > BP_MODEL_MAX_CLASSES) {
        return "model num_classes outside 1..BP_MODEL_MAX_CLASSES";
    }
    if (m->num_paths <= 0 || m->num_paths > BP_MODEL_MAX_PATHS) {
        return "model num_paths outside 1..BP_MODEL_MAX_PATHS";
    }
    if (m->num_layers <= 0 || m->num_layers > BP_MODEL_MAX_LAYERS) {
        return "model num_layers outside 1..BP_MODEL_MAX_LAYERS";
    }
    return NULL;
}

// ---------------------------------------------------------------- commands

static void cmd_name(const bp_proto_t *p) {
    out_str(p, "m-name-dut-[bitpath-");
    out_field(p, p->io.board);
    out_str(p, "]\r\n");
}

static void cmd_profile(const bp_proto_t *p) {
    out_line(p, "m-profile-[ULPMark for tinyML Firmware V0.0.1]");
    out_kv_str(p, "model", p->model_error == NULL ? p->model->mlperf_id : "none");
}

static void cmd_help(const bp_proto_t *p) {
    static const char *const lines[] = {
        "m-help-[name: print the name of the device]",
        "m-help-[profile: print the benchmark profile and model]",
        "m-help-[timestamp: print m-lap-us-<microseconds>]",
        "m-help-[db load N: expect N input bytes]",
        "m-help-[db HH..: load hex bytes (even digit count) until N bytes]",
        "m-help-[db print [N] [offset]: print loaded bytes as hex, 8 per line]",
        "m-help-[infer N [W]: W warm-up runs, then N timed runs (default N=1 W=10)]",
        "m-help-[results: print the logits of the last inference]",
        "m-help-[bp-path [k|auto]: force bit-path k or let the controller choose]",
        "m-help-[bp-chosen: path chosen by the last inference]",
        "m-help-[bp-layers: per-layer cost of the last inference]",
        "m-help-[bp-info: model, paths, arena, board and counter]",
        "m-help-[bp-calib N: time a loop of 2N instructions with the cost counter]",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        out_line(p, lines[i]);
    }
}

static void cmd_db(bp_proto_t *p, char *tok[], int n) {
    if (n < 2) {
        out_error(p, "db: missing argument (db load N, db HH.., db print)", NULL);
        return;
    }
    if (streq(tok[1], "load")) {
        uint32_t v = 0;
        if (n != 3) {
            out_error(p, "db load: expected one size argument", NULL);
            return;
        }
        const int r = parse_u32(tok[2], p->db_cap, &v);
        if (r == -1) {
            out_error(p, "db load: size is not a non-negative decimal integer: ", tok[2]);
            return;
        }
        if (r == -2) {
            out_str(p, "e-[db load: ");
            out_field(p, tok[2]);
            out_str(p, " bytes exceed the buffer of ");
            out_u64(p, p->db_cap);
            out_str(p, " bytes]\r\n");
            return;
        }
        if (v == 0) {
            out_error(p, "Command 'db load' must be >0 bytes", NULL);
            return;
        }
        p->db_expect = v;
        p->db_pos = 0;
        out_str(p, "m-[Expecting ");
        out_u64(p, v);
        out_str(p, " bytes]\r\n");
        return;
    }
    if (streq(tok[1], "print")) {
        uint32_t count = p->db_pos;
        uint32_t offset = 0;
        if (n > 4) {
            out_error(p, "db print: expected at most [N] [offset]", NULL);
            return;
        }
        if (n >= 3 && parse_u32(tok[2], p->db_cap, &count) != 0) {
            out_error(p, "db print: N is not a decimal integer within the buffer: ", tok[2]);
            return;
        }
        if (n == 4 && parse_u32(tok[3], p->db_cap, &offset) != 0) {
            out_error(p, "db print: offset is not a decimal integer within the buffer: ", tok[3]);
            return;
        }
        // Only bytes received since `db load` are printable: offset + count <= db_pos.
        if (offset > p->db_pos || count > p->db_pos - offset) {
            out_str(p, "e-[db print: range exceeds the ");
            out_u64(p, p->db_pos);
            out_str(p, " bytes loaded]\r\n");
            return;
        }
        for (uint32_t i = 0; i < count; i += 8u) {
            out_str(p, "m-buffer");
            for (uint32_t j = i; j < count && j < i + 8u; j++) {
                out_str(p, "-");
                out_hex8(p, p->db[offset + j]);
            }
            out_eol(p);
        }
        return;
    }
    // db <hex>
    if (n != 2) {
        out_error(p, "db: expected one hex string without spaces", NULL);
        return;
    }
    const char *hex = tok[1];
    const size_t digits = strlen(hex);
    for (size_t i = 0; i < digits; i++) {
        if (hex_value(hex[i]) < 0) {
            out_error(p, "db: not a hex digit in: ", hex);
            return;
        }
    }
    if (digits % 2u != 0u) {
        out_error(p, "Insufficent number of hex digits", NULL);
        return;
    }
    if (p->db_expect == 0u) {
        out_error(p, "db: no transfer announced; send 'db load N' first", NULL);
        return;
    }
    if (p->db_pos == p->db_expect) {
        out_error(p, "db: all announced bytes already loaded; send 'db load N' to start again", NULL);
        return;
    }
    const uint32_t bytes = (uint32_t)(digits / 2u);
    if (bytes > p->db_expect - p->db_pos) {
        out_str(p, "e-[db: ");
        out_u64(p, bytes);
        out_str(p, " bytes exceed the ");
        out_u64(p, p->db_expect - p->db_pos);
        out_str(p, " still expected; chunk ignored]\r\n");
        return;
    }
    // db_pos + bytes <= db_expect <= db_cap: in bounds (checked above, written in that order).
    for (uint32_t i = 0; i < bytes; i++) {
        p->db[p->db_pos + i] = (uint8_t)((hex_value(hex[2u * i]) << 4) | hex_value(hex[2u * i + 1u]));
    }
    p->db_pos += bytes;
    if (p->db_pos == p->db_expect) {
        out_line(p, "m-load-done");
    }
}

static void print_results(const bp_proto_t *p) {
    out_str(p, "m-results-[");
    for (int32_t c = 0; c < p->model->num_classes; c++) {
        if (c != 0) {
            out_str(p, ",");
        }
        out_i32(p, p->logits[c]);
    }
    out_str(p, "]\r\n");
}

// One inference into the protocol's result buffers. Returns the model status.
static bp_status_t run_once(bp_proto_t *p) {
    const bp_model_t *m = p->model;
    return m->run(p->path_mode, p->db, m->input_bytes, p->logits, &p->info, p->io.cycles);
}

static void cmd_infer(bp_proto_t *p, char *tok[], int n) {
    uint32_t iters = 1;
    uint32_t warmups = 10; // EEMBC firmware default (its help text says 0)
    if (n > 3) {
        out_error(p, "infer: expected infer N [W]", NULL);
        return;
    }
    if (n >= 2) {
        const int r = parse_u32(tok[1], BP_INFER_MAX_ITERS, &iters);
        if (r == -1 || (r == 0 && iters == 0u)) {
            out_error(p, "Inference iterations must be >0", NULL);
            return;
        }
        if (r == -2) {
            out_error(p, "infer: N above BP_INFER_MAX_ITERS", NULL);
            return;
        }
    }
    if (n == 3) {
        const int r = parse_u32(tok[2], BP_INFER_MAX_ITERS, &warmups);
        if (r != 0) {
            out_error(p, "infer: W is not a decimal integer in 0..BP_INFER_MAX_ITERS: ", tok[2]);
            return;
        }
    }
    if (p->model_error != NULL) {
        out_error(p, "infer: ", p->model_error);
        return;
    }
    const uint32_t need = (uint32_t)p->model->input_bytes;
    if (p->db_expect != need) {
        out_str(p, "e-[infer: the model takes ");
        out_u64(p, need);
        out_str(p, " input bytes; send 'db load ");
        out_u64(p, need);
        out_str(p, "' and the data first]\r\n");
        return;
    }
    if (p->db_pos != need) {
        out_str(p, "e-[infer: input incomplete, ");
        out_u64(p, p->db_pos);
        out_str(p, " of ");
        out_u64(p, need);
        out_str(p, " bytes loaded]\r\n");
        return;
    }
    bp_status_t st = BP_OK;
    out_str(p, "m-warmup-start-");
    out_u64(p, warmups);
    out_eol(p);
    for (uint32_t i = 0; i < warmups && st == BP_OK; i++) {
        st = run_once(p);
    }
    out_line(p, "m-warmup-done");
    if (st == BP_OK) {
        out_str(p, "m-infer-start-");
        out_u64(p, iters);
        out_eol(p);
        out_lap(p);
        for (uint32_t i = 0; i < iters && st == BP_OK; i++) {
            st = run_once(p);
        }
        out_lap(p);
        out_line(p, "m-infer-done");
    }
    if (st != BP_OK) {
        p->have_result = 0;
        out_str(p, "e-[infer: model returned status ");
        out_i32(p, st);
        out_str(p, "]\r\n");
        return;
    }
    p->have_result = 1;
    print_results(p);
}

static void cmd_bp_path(bp_proto_t *p, char *tok[], int n) {
    if (p->model_error != NULL) {
        out_error(p, "bp-path: ", p->model_error);
        return;
    }
    if (n > 2) {
        out_error(p, "bp-path: expected bp-path [k|auto]", NULL);
        return;
    }
    if (n == 2) {
        if (streq(tok[1], "auto")) {
            if (!p->model->has_controller) {
                out_error(p, "bp-path: this model has no controller; force a path 0..num_paths-1", NULL);
                return;
            }
            p->path_mode = BP_PATH_AUTO;
        } else {
            uint32_t k = 0;
            if (parse_u32(tok[1], (uint32_t)p->model->num_paths - 1u, &k) != 0) {
                out_str(p, "e-[bp-path: not 'auto' or a path in 0..");
                out_u64(p, (uint64_t)p->model->num_paths - 1u);
                out_str(p, ": ");
                out_field(p, tok[1]);
                out_str(p, "]\r\n");
                return;
            }
            p->path_mode = (int32_t)k;
        }
    }
    if (p->path_mode == BP_PATH_AUTO) {
        out_line(p, "m-bp-path-[auto]");
    } else {
        out_kv_u64(p, "bp-path", (uint64_t)p->path_mode);
    }
}

static void cmd_bp_chosen(const bp_proto_t *p) {
    if (!p->have_result) {
        out_error(p, "bp-chosen: no inference has run", NULL);
        return;
    }
    out_kv_u64(p, "bp-chosen", (uint64_t)p->info.path);
}

static void cmd_bp_layers(const bp_proto_t *p) {
    if (!p->have_result) {
        out_error(p, "bp-layers: no inference has run", NULL);
        return;
    }
    uint64_t total = p->info.controller_cycles;
    out_kv_str(p, "bp-unit", p->io.cycles_unit);
    out_kv_u64(p, "bp-controller", p->info.controller_cycles);
    out_str(p, "m-bp-layers-[");
    for (int32_t l = 0; l < p->model->num_layers; l++) {
        if (l != 0) {
            out_str(p, ",");
        }
        out_u64(p, p->info.layer_cycles[l]);
        total += p->info.layer_cycles[l];
    }
    out_str(p, "]\r\n");
    out_kv_u64(p, "bp-total", total);
}

static void cmd_bp_info(const bp_proto_t *p) {
    out_kv_u64(p, "bp-protocol", BP_PROTOCOL_VERSION);
    out_kv_str(p, "bp-board", p->io.board);
    out_str(p, "m-bp-counter-[");
    out_field(p, p->io.cycles_unit);
    out_str(p, ",");
    out_u64(p, p->io.cycles_hz);
    out_str(p, "]\r\n");
    out_kv_u64(p, "bp-db-capacity", p->db_cap);
    if (p->model_error != NULL) {
        out_error(p, "bp-info: ", p->model_error);
        return;
    }
    const bp_model_t *m = p->model;
    out_kv_str(p, "bp-model", m->name);
    out_kv_str(p, "bp-ir-hash", m->ir_hash);
    out_kv_u64(p, "bp-input-bytes", (uint64_t)m->input_bytes);
    out_kv_u64(p, "bp-classes", (uint64_t)m->num_classes);
    out_kv_u64(p, "bp-paths", (uint64_t)m->num_paths);
    for (int32_t k = 0; k < m->num_paths; k++) {
        out_str(p, "m-bp-path-name-[");
        out_u64(p, (uint64_t)k);
        out_str(p, ",");
        out_field(p, m->path_names != NULL ? m->path_names[k] : NULL);
        out_str(p, "]\r\n");
    }
    out_kv_u64(p, "bp-layers-count", (uint64_t)m->num_layers);
    out_kv_str(p, "bp-controller", m->has_controller ? "yes" : "no");
    out_kv_u64(p, "bp-arena-bytes", (uint64_t)(m->arena_bytes > 0 ? m->arena_bytes : 0));
}

static void cmd_bp_calib(const bp_proto_t *p, char *tok[], int n) {
    uint32_t iters = 0;
    if (p->io.spin == NULL || p->io.cycles == NULL) {
        out_error(p, "bp-calib: no calibration loop or counter on this build", NULL);
        return;
    }
    if (n != 2 || parse_u32(tok[1], BP_CALIB_MAX, &iters) != 0 || iters == 0u) {
        out_error(p, "bp-calib: expected bp-calib N with N in 1..BP_CALIB_MAX", NULL);
        return;
    }
    const uint32_t t0 = p->io.cycles();
    p->io.spin(iters);
    const uint32_t t1 = p->io.cycles();
    out_str(p, "m-bp-calib-[");
    out_u64(p, iters);
    out_str(p, ",");
    out_u64(p, (uint32_t)(t1 - t0));
    out_str(p, "]\r\n");
}

static void dispatch(bp_proto_t *p) {
    char *tok[MAX_TOKENS] = {0};
    const int n = tokenize(p, tok);
    if (n == 0) {
        return; // a bare `%` only asks for m-ready (handy to resynchronise)
    }
    if (n > MAX_TOKENS) {
        out_error(p, "Too many arguments for: ", tok[0]);
        return;
    }
    const char *c = tok[0];
    if (streq(c, "name") && n == 1) {
        cmd_name(p);
    } else if (streq(c, "profile") && n == 1) {
        cmd_profile(p);
    } else if (streq(c, "help") && n == 1) {
        cmd_help(p);
    } else if (streq(c, "timestamp") && n == 1) {
        out_lap(p);
    } else if (streq(c, "results") && n == 1) {
        if (!p->have_result) {
            out_error(p, "results: no inference has run", NULL);
        } else {
            print_results(p);
        }
    } else if (streq(c, "db")) {
        cmd_db(p, tok, n);
    } else if (streq(c, "infer")) {
        cmd_infer(p, tok, n);
    } else if (streq(c, "bp-path")) {
        cmd_bp_path(p, tok, n);
    } else if (streq(c, "bp-chosen") && n == 1) {
        cmd_bp_chosen(p);
    } else if (streq(c, "bp-layers") && n == 1) {
        cmd_bp_layers(p);
    } else if (streq(c, "bp-info") && n == 1) {
        cmd_bp_info(p);
    } else if (streq(c, "bp-calib")) {
        cmd_bp_calib(p, tok, n);
    } else if (streq(c, "name") || streq(c, "profile") || streq(c, "help") || streq(c, "timestamp") ||
               streq(c, "results") || streq(c, "bp-chosen") || streq(c, "bp-layers") || streq(c, "bp-info")) {
        out_error(p, "Command takes no arguments: ", c);
    } else {
        out_error(p, "Unknown command: ", c);
    }
}

// ---------------------------------------------------------------- public API

void bp_proto_init(bp_proto_t *p, const bp_proto_io_t *io, const bp_model_t *model, uint8_t *db, uint32_t db_cap) {
    memset(p, 0, sizeof *p);
    p->io = *io;
    p->model = model;
    p->db = db;
    p->db_cap = db != NULL ? db_cap : 0u;
    p->cmd_bad_byte = -1;
    p->model_error = check_model(model, p->db_cap);
    p->path_mode = (p->model_error == NULL && model->has_controller) ? BP_PATH_AUTO : 0;
}

void bp_proto_boot(bp_proto_t *p) {
    out_line(p, "m-timestamp-mode-performance");
    out_lap(p);
    if (p->model_error != NULL) {
        out_error(p, "boot: ", p->model_error);
    }
    out_line(p, "m-init-done");
    out_ready(p);
}

void bp_proto_feed(bp_proto_t *p, uint8_t c) {
    if (c == '%') {
        if (p->cmd_overflow) {
            out_str(p, "e-[Command longer than ");
            out_u64(p, BP_CMD_MAX);
            out_str(p, " characters; ignored]\r\n");
        } else if (p->cmd_bad_byte >= 0) {
            out_str(p, "e-[Invalid byte 0x");
            out_hex8(p, (uint8_t)p->cmd_bad_byte);
            out_str(p, " in command; ignored]\r\n");
        } else {
            p->cmd[p->cmd_len] = '\0';
            dispatch(p);
        }
        out_ready(p);
        p->cmd_len = 0;
        p->cmd_overflow = 0;
        p->cmd_bad_byte = -1;
        return;
    }
    if (p->cmd_overflow) {
        return; // discard until the terminator
    }
    if (p->cmd_len >= BP_CMD_MAX) {
        p->cmd_overflow = 1;
        return;
    }
    char ch = (char)c;
    if (c == '\r' || c == '\n' || c == '\t') {
        ch = ' '; // line endings from a terminal separate tokens like spaces
    } else if (c < 0x20 || c > 0x7e) {
        if (p->cmd_bad_byte < 0) {
            p->cmd_bad_byte = c;
        }
        ch = '?';
    }
    p->cmd[p->cmd_len++] = ch;
}
