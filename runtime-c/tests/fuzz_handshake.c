/*
 * libFuzzer target: the opening handshake (RFC 6455 §4) — the incremental HTTP/1.1 head parser in
 * both modes, the server's verdict and policy (Origin allowlist, subprotocol selection), the
 * response writer, the client's response check, and the ws:// URL parser.
 *
 * Properties checked besides "no crash, no sanitizer report": the parser's verdict does not
 * depend on how the input was split; a selected subprotocol is one the server lists and one the
 * client offered (RFC 6455 §4.2.2 item 5); a 101 carries at most one Sec-WebSocket-Protocol.
 *
 * Built and run by scripts/fuzz.ts; the CI run is tests/runtime/fuzz.test.ts.
 */
#include "ws_handshake.h"
#include "ws_url.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static osp_http_status parse_chunked(osp_http_parser *p, const uint8_t *data, size_t size, size_t chunk,
                                     size_t *consumed) {
    osp_http_status st = OSP_HTTP_INCOMPLETE;
    size_t off = 0;
    while (off < size && st == OSP_HTTP_INCOMPLETE) {
        size_t n = size - off < chunk ? size - off : chunk, used = 0;
        st = osp_http_parse(p, data + off, n, &used);
        off += used;
        if (used < n) break;
    }
    *consumed = off;
    return st;
}

static size_t count(const uint8_t *hay, size_t n, const char *needle) {
    size_t k = strlen(needle), c = 0;
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0) c++;
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t chunk = (size_t)(data[0] % 32) + 1;
    data++;
    size--;
    osp_ws_limits limits;
    osp_ws_limits_default(&limits);
    limits.max_header_bytes = 2048;
    limits.max_request_line = 512;
    limits.max_headers = 20;
    static const char *const origins[] = {"https://app.example", "http://localhost:8080"};
    static const char *const protocols[] = {"superchat", "chat.v2"};

    for (int is_response = 0; is_response < 2; is_response++) {
        osp_http_parser whole, split;
        osp_http_parser_init(&whole, is_response, &limits);
        osp_http_parser_init(&split, is_response, &limits);
        size_t used_whole, used_split;
        osp_http_status a = parse_chunked(&whole, data, size, size ? size : 1, &used_whole);
        osp_http_status b = parse_chunked(&split, data, size, chunk, &used_split);
        if (a != b) abort();
        if (a == OSP_HTTP_DONE && used_whole != used_split) abort();
        if (a == OSP_HTTP_DONE) {
            if (is_response) {
                int status;
                (void)osp_ws_handshake_check_response(&whole, "dGhlIHNhbXBsZSBub25jZQ==", &status);
            } else {
                osp_ws_server_verdict v;
                osp_ws_handshake_check_request(&whole, "/chat", &v);
                osp_ws_handshake_apply_policy(&whole, origins, 2, protocols, 2, &v);
                if (v.protocol != NULL) {
                    if (v.status != 101) abort();
                    if (v.protocol != protocols[0] && v.protocol != protocols[1]) abort();
                    /* It was offered: the name appears in the request head. */
                    if (count(whole.buf.data, whole.buf.len, v.protocol) == 0) abort();
                }
                osp_ws_buf out = {0};
                if (osp_ws_handshake_write_response(&v, &out) == 0 && v.status == 101 &&
                    count(out.data, out.len, "Sec-WebSocket-Protocol:") > 1)
                    abort();
                osp_ws_buf_free(&out);
            }
        }
        osp_http_parser_free(&whole);
        osp_http_parser_free(&split);
    }

    char *url = malloc(size + 1);
    if (url == NULL) return 0;
    memcpy(url, data, size);
    url[size] = '\0';
    osp_ws_url u;
    (void)osp_ws_url_parse(url, &u);
    free(url);
    return 0;
}
