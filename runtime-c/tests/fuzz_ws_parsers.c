/*
 * libFuzzer target for the I/O-free protocol core: the message reader (frames, fragmentation,
 * control frames, UTF-8, close payloads, limits) in both roles, the HTTP head parser with the
 * server's handshake verdict, the client's response check, and the URL parser. The first input
 * byte picks the chunk size so that split inputs are explored too. Not part of `--tests`; built
 * and run with the focused targets by `npx tsx scripts/fuzz.ts --only ws_parsers`, or by hand:
 *
 *   clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iruntime-c/include \
 *     -Iruntime-c/src runtime-c/tests/fuzz_ws_parsers.c runtime-c/src/{ws_frame,ws_message,\
 *     ws_utf8,ws_buf,ws_limits,http_parse,ws_handshake,ws_url}.c -lcrypto -o build/fuzz_ws
 *   build/fuzz_ws -max_total_time=60
 */
#include "ws_handshake.h"
#include "ws_message.h"
#include "ws_url.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t chunk = (size_t)(data[0] % 16) + 1;
    data++;
    size--;
    osp_ws_limits limits;
    osp_ws_limits_default(&limits);
    limits.max_message = 4096;
    limits.max_fragments = 16;
    limits.max_header_bytes = 2048;
    limits.max_request_line = 512;
    limits.max_headers = 20;

    uint8_t *copy = malloc(size ? size : 1);
    for (int role = 0; role < 2; role++) {
        memcpy(copy, data, size);
        osp_ws_reader r;
        osp_ws_reader_init(&r, role ? OSP_WS_ROLE_SERVER : OSP_WS_ROLE_CLIENT, &limits);
        for (size_t off = 0; off < size; off += chunk) {
            size_t n = size - off < chunk ? size - off : chunk, used = 0;
            while (used < n) {
                osp_ws_msg_event ev;
                size_t u = osp_ws_reader_feed(&r, copy + off + used, n - used, &ev);
                used += u;
                if (ev.kind == OSP_WS_MSG_TEXT && !osp_ws_utf8_valid(ev.data, ev.len)) abort();
                if (ev.kind == OSP_WS_MSG_CLOSE && ev.code != OSP_WS_CLOSE_NO_STATUS &&
                    !osp_ws_close_code_valid(ev.code))
                    abort();
                if (ev.kind == OSP_WS_MSG_NONE) break;
            }
        }
        osp_ws_reader_free(&r);
    }
    free(copy);

    for (int is_response = 0; is_response < 2; is_response++) {
        osp_http_parser p;
        osp_http_parser_init(&p, is_response, &limits);
        osp_http_status st = OSP_HTTP_INCOMPLETE;
        for (size_t off = 0; off < size && st == OSP_HTTP_INCOMPLETE;) {
            size_t n = size - off < chunk ? size - off : chunk, used = 0;
            st = osp_http_parse(&p, data + off, n, &used);
            off += used;
        }
        if (st == OSP_HTTP_DONE) {
            if (is_response) {
                int status;
                (void)osp_ws_handshake_check_response(&p, "dGhlIHNhbXBsZSBub25jZQ==", &status);
            } else {
                osp_ws_server_verdict v;
                osp_ws_handshake_check_request(&p, "/chat", &v);
                osp_ws_buf out = {0};
                (void)osp_ws_handshake_write_response(&v, &out);
                osp_ws_buf_free(&out);
            }
        }
        osp_http_parser_free(&p);
    }

    char *url = malloc(size + 1);
    memcpy(url, data, size);
    url[size] = '\0';
    osp_ws_url u;
    (void)osp_ws_url_parse(url, &u);
    free(url);
    return 0;
}
