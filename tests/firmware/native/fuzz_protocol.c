// SPDX-License-Identifier: Apache-2.0
// Random + mutation fuzzer for the firmware's protocol parser (firmware/src/protocol.c) with the
// test model, meant to be built with -fsanitize=address,undefined -fno-sanitize-recover=all.
//
//   fuzz_protocol ITERATIONS [SEED] [CRASH_DIR]
//
// Each input is a session: a fresh parser, its boot lines, then a byte string built from valid
// commands, edge-case numbers, full and partial input loads, random garbage and overlong runs, then
// mutated (bit flips, inserted/deleted bytes, inserted '%'). After every input it checks:
//   1. exactly one `m-ready` line per '%' in the input (plus one at boot): the device always answers;
//   2. every output line is `m-...` or `e-...`, printable ASCII, ends with \r\n, shorter than 1 KiB;
//   3. the parser still serves: `name%` then gets exactly its normal reply;
//   4. the bytes around the db buffer are untouched (plus ASan's own redzones);
//   5. after every byte, the parser's own bounds hold: db_pos <= db_expect <= db_cap, cmd_len <= BP_CMD_MAX.
// A failing input is written to CRASH_DIR (default .) and the program exits 1.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_board.h"
#include "protocol.h"

#define DB_CAP 1024u
#define GUARD 64u
#define MAX_INPUT 8192u

static uint64_t g_rng;

static uint64_t rnd(void) {
    // xorshift64*
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 2685821657736338717ull;
}

static uint32_t below(uint32_t n) { return (uint32_t)(rnd() % n); }

typedef struct {
    uint8_t b[MAX_INPUT];
    size_t n;
} input_t;

static void put(input_t *in, const char *s) {
    for (; *s && in->n < MAX_INPUT; s++) {
        in->b[in->n++] = (uint8_t)*s;
    }
}

static void put_byte(input_t *in, uint8_t c) {
    if (in->n < MAX_INPUT) {
        in->b[in->n++] = c;
    }
}

static const char *const NUMBERS[] = {
    "0", "1", "2", "3", "-1", "-0", "+1", "784", "783", "785", "1023", "1024", "1025", "4096",
    "65535", "4294967295", "4294967296", "18446744073709551616", "99999999999999999999999", "1000000",
    "1000001", "64", "65", "007", "1e3", "0x10", "", " ", "auto", "AUTO", "abc",
};

static const char *number(void) { return NUMBERS[below(sizeof NUMBERS / sizeof NUMBERS[0])]; }

static void put_hex(input_t *in, uint32_t bytes, int odd) {
    static const char digits[] = "0123456789abcdefABCDEF";
    for (uint32_t i = 0; i < 2u * bytes + (odd ? 1u : 0u); i++) {
        put_byte(in, (uint8_t)digits[below(22)]);
    }
}

static void put_command(input_t *in) {
    char buf[128];
    switch (below(22)) {
    case 0: put(in, "name"); break;
    case 1: put(in, "profile"); break;
    case 2: put(in, "help"); break;
    case 3: put(in, "timestamp"); break;
    case 4: put(in, "results"); break;
    case 5: snprintf(buf, sizeof buf, "db load %s", number()); put(in, buf); break;
    case 6: put(in, "db "); put_hex(in, below(40), below(4) == 0); break;
    case 7: snprintf(buf, sizeof buf, "db print %s %s", number(), number()); put(in, buf); break;
    case 8: put(in, "db print"); break;
    case 9: snprintf(buf, sizeof buf, "infer %s %s", number(), number()); put(in, buf); break;
    case 10: snprintf(buf, sizeof buf, "infer %s", number()); put(in, buf); break;
    case 11: snprintf(buf, sizeof buf, "bp-path %s", number()); put(in, buf); break;
    case 12: put(in, below(2) ? "bp-path auto" : "bp-path"); break;
    case 13: put(in, "bp-chosen"); break;
    case 14: put(in, "bp-layers"); break;
    case 15: put(in, "bp-info"); break;
    case 16: snprintf(buf, sizeof buf, "bp-calib %s", below(2) ? number() : "100"); put(in, buf); break;
    case 17: { // a complete, valid input load of the model's 784 bytes, in runner-sized chunks
        put(in, "db load 784%");
        for (uint32_t done = 0; done < 784u;) {
            const uint32_t chunk = (784u - done) < 31u ? 784u - done : 31u;
            put(in, "db ");
            put_hex(in, chunk, 0);
            put(in, "%");
            done += chunk;
        }
        snprintf(buf, sizeof buf, "infer %u %u", 1u + below(3), below(3));
        put(in, buf);
        break;
    }
    case 18: // overlong
        for (uint32_t i = 0, n = 70u + below(60); i < n; i++) {
            put_byte(in, (uint8_t)('a' + below(26)));
        }
        break;
    case 19: // garbage bytes, any value except the terminator
        for (uint32_t i = 0, n = below(20); i < n; i++) {
            uint8_t c = (uint8_t)below(256);
            put_byte(in, c == '%' ? 'x' : c);
        }
        break;
    case 20: put(in, "   name  \r\n"); break;
    default: { // two random tokens from the command vocabulary
        static const char *const words[] = {"db", "load", "print", "infer", "bp-path", "results", "name", "x"};
        snprintf(buf, sizeof buf, "%s %s %s", words[below(8)], words[below(8)], number());
        put(in, buf);
        break;
    }
    }
    put_byte(in, '%');
}

static void mutate(input_t *in) {
    const uint32_t rounds = below(4);
    for (uint32_t r = 0; r < rounds && in->n > 0; r++) {
        const size_t at = below((uint32_t)in->n);
        switch (below(4)) {
        case 0: in->b[at] ^= (uint8_t)(1u << below(8)); break;
        case 1: // delete
            memmove(in->b + at, in->b + at + 1, in->n - at - 1);
            in->n--;
            break;
        case 2: // insert a random byte or a terminator
            if (in->n < MAX_INPUT) {
                memmove(in->b + at + 1, in->b + at, in->n - at);
                in->b[at] = below(3) == 0 ? '%' : (uint8_t)below(256);
                in->n++;
            }
            break;
        default: in->b[at] = (uint8_t)below(256); break;
        }
    }
}

static void fail(const input_t *in, unsigned long iter, const char *dir, const char *why, const fake_out_t *out) {
    char path[512];
    snprintf(path, sizeof path, "%s/fuzz-failure-%lu.bin", dir, iter);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(in->b, 1, in->n, f);
        fclose(f);
    }
    fprintf(stderr, "FAIL at input %lu: %s\ninput saved to %s\noutput:\n%.*s\n", iter, why, path,
            (int)(out->len > 4000 ? 4000 : out->len), out->data);
    exit(1);
}

static int contains(const fake_out_t *out, const char *s) {
    const size_t n = strlen(s);
    for (size_t k = 0; k + n <= out->len; k++) {
        if (memcmp(out->data + k, s, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *check_output(const fake_out_t *out, size_t expect_ready) {
    size_t ready = 0;
    size_t i = 0;
    while (i < out->len) {
        const size_t start = i;
        while (i < out->len && out->data[i] != '\n') {
            i++;
        }
        if (i == out->len) {
            return "output does not end with a complete line";
        }
        const size_t end = i; // index of '\n'
        i++;
        if (end == start || out->data[end - 1] != '\r') {
            return "line not terminated by \\r\\n";
        }
        const size_t len = end - 1 - start;
        if (len < 2 || (memcmp(out->data + start, "m-", 2) != 0 && memcmp(out->data + start, "e-", 2) != 0)) {
            return "line does not start with m- or e-";
        }
        if (len >= 1024) {
            return "line longer than 1 KiB";
        }
        for (size_t k = start; k < end - 1; k++) {
            if ((unsigned char)out->data[k] < 0x20 || (unsigned char)out->data[k] > 0x7e) {
                return "non-printable byte in output";
            }
        }
        if (len == 7 && memcmp(out->data + start, "m-ready", 7) == 0) {
            ready++;
        }
    }
    return ready == expect_ready ? NULL : "m-ready count differs from the number of commands";
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s ITERATIONS [SEED] [CRASH_DIR]\n", argv[0]);
        return 2;
    }
    const unsigned long iters = strtoul(argv[1], NULL, 10);
    g_rng = argc > 2 ? strtoull(argv[2], NULL, 10) * 0x9E3779B97F4A7C15ull + 1u : 1u;
    const char *dir = argc > 3 ? argv[3] : ".";

    // The db buffer sits between two guard areas inside one allocation, so an overflow is caught both
    // by the guard check and (past the allocation) by ASan.
    uint8_t *block = malloc(DB_CAP + 2u * GUARD);
    static bp_proto_t proto;
    static input_t in;
    fake_out_t out = {0};
    unsigned long total_bytes = 0, errors = 0, loads = 0, infers = 0;

    for (unsigned long it = 0; it < iters; it++) {
        memset(block, 0xA5, DB_CAP + 2u * GUARD);
        in.n = 0;
        const uint32_t cmds = 1u + below(12);
        for (uint32_t c = 0; c < cmds; c++) {
            put_command(&in);
        }
        if (below(2)) {
            mutate(&in);
        }
        total_bytes += in.n;

        fake_out_reset(&out);
        fake_clocks_reset();
        bp_proto_io_t io = fake_io(&out);
        bp_proto_init(&proto, &io, &bp_model, block + GUARD, DB_CAP);
        bp_proto_boot(&proto);
        size_t terminators = 0;
        for (size_t k = 0; k < in.n; k++) {
            terminators += in.b[k] == '%';
            bp_proto_feed(&proto, in.b[k]);
            if (proto.db_pos > proto.db_expect || proto.db_expect > proto.db_cap || proto.cmd_len > BP_CMD_MAX) {
                fail(&in, it, dir, "parser state out of bounds (db_pos/db_expect/cmd_len)", &out);
            }
        }
        bp_proto_feed(&proto, '%'); // close any unterminated tail
        terminators++;
        const char *why = check_output(&out, 1u + terminators);
        if (why != NULL) {
            fail(&in, it, dir, why, &out);
        }
        for (size_t k = 0; k + 2 < out.len; k++) {
            errors += out.data[k] == '\n' && out.data[k + 1] == 'e' && out.data[k + 2] == '-';
        }
        loads += (unsigned long)contains(&out, "m-load-done");
        infers += (unsigned long)contains(&out, "m-infer-done");
        for (uint32_t g = 0; g < GUARD; g++) {
            if (block[g] != 0xA5 || block[GUARD + DB_CAP + g] != 0xA5) {
                fail(&in, it, dir, "db guard bytes overwritten", &out);
            }
        }
        // Still serving?
        fake_out_reset(&out);
        static const char probe[] = "name%";
        for (size_t k = 0; k < sizeof probe - 1u; k++) {
            bp_proto_feed(&proto, (uint8_t)probe[k]);
        }
        static const char want[] = "m-name-dut-[bitpath-host]\r\nm-ready\r\n";
        if (out.len != sizeof want - 1u || memcmp(out.data, want, out.len) != 0) {
            fail(&in, it, dir, "parser no longer answers name% normally", &out);
        }
    }
    printf("fuzz_protocol: %lu inputs, %lu bytes, 0 failures; e- lines: %lu; "
           "sessions with a completed load: %lu, with a completed inference: %lu\n",
           iters, total_bytes, errors, loads, infers);
    free(out.data);
    free(block);
    return 0;
}
