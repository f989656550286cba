// SPDX-License-Identifier: Apache-2.0
// The firmware's protocol + test model on the host: bytes from stdin, replies to stdout, exactly as
// the device would send them over the UART (boot lines first). Used by tests/firmware/test_protocol_native.py.
//   host_harness [db_capacity]
#include <stdio.h>
#include <stdlib.h>

#include "fake_board.h"
#include "protocol.h"

static void flush_out(fake_out_t *out) {
    if (out->len) {
        fwrite(out->data, 1, out->len, stdout);
        fflush(stdout);
        fake_out_reset(out);
    }
}

int main(int argc, char **argv) {
    const unsigned long cap = argc > 1 ? strtoul(argv[1], NULL, 10) : 4096ul;
    uint8_t *db = malloc(cap ? cap : 1);
    fake_out_t out = {0};
    bp_proto_io_t io = fake_io(&out);
    static bp_proto_t proto;
    bp_proto_init(&proto, &io, &bp_model, db, (uint32_t)cap);
    bp_proto_boot(&proto);
    flush_out(&out);
    int c;
    while ((c = getchar()) != EOF) {
        bp_proto_feed(&proto, (uint8_t)c);
        flush_out(&out); // an interactive peer sees each reply as soon as it is complete
    }
    free(out.data);
    free(db);
    return 0;
}
