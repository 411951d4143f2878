/*
 * libFuzzer target: the opening handshake (RFC 6455 §4) — the incremental HTTP/1.1 head parser in
 * both modes, the server's verdict and policy (Origin allowlist, subprotocol selection), the
 * response writer, the client's response check, and the ws:// URL parser.
 *
 * Properties checked besides "no crash, no sanitizer report": the parser's verdict does not
 * depend on how the input was split; a selected subprotocol is one the server lists and one the
 * client offered (RFC 6455 §4.2.2 item 5), and only a 101 selects one; a 101 carries at most one
 * Sec-WebSocket-Protocol; the subprotocol verdict equals a model written independently here
 * (all lines form one list, RFC 9110 §5.3; any non-token element is 400, RFC 6455 §4.3/§4.2.1;
 * else the client's first offer the server lists).
 *
 * Built and run by scripts/fuzz.ts; the CI run is tests/runtime/fuzz.test.ts.
 */
#include "ws_handshake.h"
#include "ws_url.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool model_tchar(unsigned char c) {
    /* RFC 9110 §5.6.2 tchar, spelled differently from osp_ws_token_valid on purpose. */
    if (c >= 0x80 || c <= 0x20 || c == 0x7f) return false;
    return strchr("\"(),/:;<=>?@[\\]{}", c) == NULL;
}

/* The model's subprotocol verdict for a request the rest of the handshake accepted: 400, or 101
 * with *chosen (NULL: none). Elements are cut at commas and trimmed of SP/HTAB (OWS). */
static int model_protocol(const osp_http_parser *req, const char *const *protocols, size_t n_protocols,
                          const char **chosen) {
    *chosen = NULL;
    for (uint32_t h = 0; h < req->header_count; h++) {
        size_t name_len, n;
        const char *name = osp_http_header_name(req, h, &name_len);
        if (!osp_http_ieq(name, name_len, "Sec-WebSocket-Protocol")) continue;
        const char *val = osp_http_header_value(req, h, &n);
        const char *end = val + n, *el = val;
        while (el <= end) {
            const char *comma = memchr(el, ',', (size_t)(end - el));
            const char *stop = comma ? comma : end, *a = el, *b = stop;
            while (a < b && (*a == ' ' || *a == '\t')) a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
            for (const char *c = a; c < b; c++) {
                if (model_tchar((unsigned char)*c)) continue;
                *chosen = NULL; /* a refusal selects nothing */
                return 400;
            }
            for (size_t k = 0; b > a && *chosen == NULL && k < n_protocols; k++)
                if (strlen(protocols[k]) == (size_t)(b - a) && memcmp(protocols[k], a, (size_t)(b - a)) == 0)
                    *chosen = protocols[k];
            if (comma == NULL) break;
            el = comma + 1;
        }
    }
    return 101;
}

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
                /* The subprotocol policy alone (no Origin list) against the model. */
                osp_ws_server_verdict pv;
                osp_ws_handshake_check_request(&whole, "/chat", &pv);
                if (pv.status == 101) {
                    const char *want;
                    int want_status = model_protocol(&whole, protocols, 2, &want);
                    osp_ws_handshake_apply_policy(&whole, NULL, 0, protocols, 2, &pv);
                    if (pv.status != want_status || pv.protocol != want) abort();
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
