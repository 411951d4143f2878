/*
 * RFC 6455 §4 opening handshake (see ws_handshake.h).
 */
#include "ws_handshake.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool osp_ws_accept_key(const char *key, size_t key_len, char out[OSP_WS_ACCEPT_LEN + 1]) {
    unsigned char digest[SHA_DIGEST_LENGTH];
    /* SHA1_* is deprecated in OpenSSL 3; EVP_Digest with EVP_sha1() is the same hash. */
    char joined[256];
    if (key_len > sizeof joined - sizeof WS_GUID) return false;
    memcpy(joined, key, key_len);
    memcpy(joined + key_len, WS_GUID, sizeof WS_GUID - 1);
    unsigned int dlen = 0;
    int ok = EVP_Digest(joined, key_len + sizeof WS_GUID - 1, digest, &dlen, EVP_sha1(), NULL);
    if (ok != 1 || dlen != SHA_DIGEST_LENGTH) return false;
    int n = EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
    if (n != OSP_WS_ACCEPT_LEN) return false;
    out[OSP_WS_ACCEPT_LEN] = '\0';
    return true;
}

static bool is_b64(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

bool osp_ws_key_valid(const char *key, size_t key_len) {
    /* 16 bytes = 128 bits = 21 full sextets + 2 bits: 22 characters, then "==" padding. */
    if (key_len != OSP_WS_KEY_LEN) return false;
    for (int i = 0; i < 22; i++)
        if (!is_b64(key[i])) return false;
    return key[22] == '=' && key[23] == '=';
}

bool osp_ws_make_key(char out[OSP_WS_KEY_LEN + 1]) {
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1) return false;
    int n = EVP_EncodeBlock((unsigned char *)out, raw, sizeof raw);
    return n == OSP_WS_KEY_LEN;
}

const char *osp_ws_http_reason(int status) {
    switch (status) {
    case 101: return "Switching Protocols";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 414: return "URI Too Long";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

static void verdict(osp_ws_server_verdict *out, int status, const char *detail) {
    out->status = status;
    out->reason = osp_ws_http_reason(status);
    out->detail = detail;
}

void osp_ws_handshake_check_request(const osp_http_parser *req, const char *path,
                                    osp_ws_server_verdict *out) {
    memset(out, 0, sizeof *out);
    size_t n;
    const char *method = osp_http_part(req, 0, &n);
    /* RFC 6455 §4.2.1 item 1: the method MUST be GET. */
    if (!(n == 3 && memcmp(method, "GET", 3) == 0))
        return verdict(out, 405, "a WebSocket handshake must use the GET method");
    /* §4.2.1 item 1: HTTP/1.1 or higher (HTTP/1.0 has no Upgrade). */
    if (req->version_major != 1) return verdict(out, 505, "only HTTP/1.1 is supported");
    if (req->version_minor < 1) return verdict(out, 400, "a WebSocket handshake needs HTTP/1.1");
    /* §4.2.1 item 2: Host is required; duplicated singleton headers are malformed (RFC 9112
     * §3.2 for Host, RFC 6455 §11.3.1/§11.3.5 for the key and version). */
    uint32_t idx;
    uint32_t hosts = osp_http_header_find(req, "Host", &idx);
    if (hosts == 0) return verdict(out, 400, "missing Host header");
    if (hosts > 1) return verdict(out, 400, "more than one Host header");
    osp_http_header_value(req, idx, &n);
    if (n == 0) return verdict(out, 400, "empty Host header");
    uint32_t key_idx, ver_idx;
    uint32_t keys = osp_http_header_find(req, "Sec-WebSocket-Key", &key_idx);
    uint32_t versions = osp_http_header_find(req, "Sec-WebSocket-Version", &ver_idx);
    if (keys > 1) return verdict(out, 400, "more than one Sec-WebSocket-Key header");
    if (versions > 1) return verdict(out, 400, "more than one Sec-WebSocket-Version header");
    /* §4.2.1/§4.2.2 item 4: the resource name must name this endpoint. The query string is
     * not part of the match. */
    const char *target = osp_http_part(req, 1, &n);
    size_t path_len = 0;
    while (path_len < n && target[path_len] != '?') path_len++;
    if (target[0] != '/' || path_len != strlen(path) || memcmp(target, path, path_len) != 0)
        return verdict(out, 404, "no WebSocket endpoint at this path");
    /* §4.2.1 items 3-4: Upgrade holds the token "websocket" and Connection the token "Upgrade",
     * case-insensitively, anywhere in comma lists, across repeated header lines. */
    if (!osp_http_header_has_token(req, "Upgrade", "websocket"))
        return verdict(out, 426, "this endpoint only accepts WebSocket upgrades (Upgrade: websocket)");
    if (!osp_http_header_has_token(req, "Connection", "Upgrade"))
        return verdict(out, 400, "the Connection header must contain the Upgrade token");
    /* §4.2.1 item 6 and §4.4: only version 13; otherwise 426 naming the supported version. */
    if (versions == 0) return verdict(out, 426, "missing Sec-WebSocket-Version (this server speaks 13)");
    const char *ver = osp_http_header_value(req, ver_idx, &n);
    if (!(n == 2 && memcmp(ver, "13", 2) == 0))
        return verdict(out, 426, "unsupported Sec-WebSocket-Version (this server speaks 13)");
    /* §4.2.1 item 5: a base64 key that decodes to exactly 16 bytes. */
    if (keys == 0) return verdict(out, 400, "missing Sec-WebSocket-Key header");
    const char *key = osp_http_header_value(req, key_idx, &n);
    if (!osp_ws_key_valid(key, n))
        return verdict(out, 400, "Sec-WebSocket-Key must be base64 of exactly 16 bytes");
    if (!osp_ws_accept_key(key, n, out->accept))
        return verdict(out, 500, "cannot compute Sec-WebSocket-Accept");
    /* Sec-WebSocket-Extensions offers are ignored: we support none, and RFC 6455 §9.1 says not
     * to echo what we do not implement. Sec-WebSocket-Protocol is the server policy's business
     * (osp_ws_handshake_apply_policy): with no subprotocols configured it is ignored too. */
    verdict(out, 101, NULL);
}

bool osp_ws_token_valid(const char *s, size_t n) {
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        /* RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
         * "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
        if (!ok) return false;
    }
    return true;
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

void osp_ws_handshake_apply_policy(const osp_http_parser *req, const char *const *origins,
                                   size_t n_origins, const char *const *protocols,
                                   size_t n_protocols, osp_ws_server_verdict *v) {
    if (v->status != 101) return;
    size_t n;
    uint32_t idx;
    if (n_origins > 0) {
        /* RFC 6455 §10.2 / docs/WEBSOCKET-RUNTIME.md S-H9: an explicit allowlist, exact comparison, no
         * wildcard or suffix matching; RFC 6454 §7.3 allows one Origin header only. */
        uint32_t count = osp_http_header_find(req, "Origin", &idx);
        if (count == 0)
            return verdict(v, 403, "this endpoint requires an Origin header from an allowed origin");
        if (count > 1) return verdict(v, 400, "more than one Origin header");
        const char *origin = osp_http_header_value(req, idx, &n);
        bool allowed = false;
        for (size_t i = 0; i < n_origins && !allowed; i++)
            allowed = strlen(origins[i]) == n && memcmp(origins[i], origin, n) == 0;
        if (!allowed) return verdict(v, 403, "origin not allowed");
    }
    if (n_protocols > 0) {
        /* RFC 6455 §4.2.2 item 5: the client's order is its preference; pick the first offer we
         * support, so the answer is always one the client sent (§4.1 item 6 makes the client
         * fail on any other). Header lines combine into one list (§11.3.4, RFC 9110 §5.3), so
         * every line is read to the end even after a match: "a\r\n...: )" must get the same
         * verdict as "a, )". The choice is kept aside and stored only once the whole offer is
         * known to be a token list (§4.3: 1#token); a malformed offer breaks the ABNF and is
         * refused with 400 (§4.2.1), and a refusal carries no subprotocol. */
        const char *chosen = NULL;
        for (uint32_t h = 0; h < req->header_count; h++) {
            size_t name_len;
            const char *name = osp_http_header_name(req, h, &name_len);
            if (!osp_http_ieq(name, name_len, "Sec-WebSocket-Protocol")) continue;
            const char *val = osp_http_header_value(req, h, &n);
            size_t i = 0;
            while (i <= n) {
                size_t start = i;
                while (i < n && val[i] != ',') i++;
                size_t a = start, b = i;
                while (a < b && is_ows(val[a])) a++;
                while (b > a && is_ows(val[b - 1])) b--;
                i++; /* past the comma (or the end) */
                if (a == b) continue; /* RFC 9110 §5.6.1: empty list elements are ignored */
                if (!osp_ws_token_valid(val + a, b - a))
                    return verdict(v, 400, "Sec-WebSocket-Protocol must be a comma-separated list of tokens");
                for (size_t k = 0; k < n_protocols && chosen == NULL; k++)
                    if (strlen(protocols[k]) == b - a && memcmp(protocols[k], val + a, b - a) == 0)
                        chosen = protocols[k];
            }
        }
        /* No common subprotocol: accept without one (as python-websockets does); the client
         * decides whether it can live without (RFC 6455 §4.1 item 6). */
        v->protocol = chosen;
    }
}

static int append_str(osp_ws_buf *out, const char *s) {
    return osp_ws_buf_append(out, s, strlen(s));
}

int osp_ws_handshake_write_response(const osp_ws_server_verdict *v, osp_ws_buf *out) {
    char line[256];
    if (v->status == 101) {
        snprintf(line, sizeof line,
                 "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n",
                 v->accept);
        if (append_str(out, line) != 0) return -1;
        /* RFC 6455 §4.2.2 item 5: the selected subprotocol, exactly once. */
        if (v->protocol != NULL &&
            (append_str(out, "Sec-WebSocket-Protocol: ") != 0 || append_str(out, v->protocol) != 0 ||
             append_str(out, "\r\n") != 0))
            return -1;
        return append_str(out, "\r\n");
    }
    const char *detail = v->detail ? v->detail : v->reason;
    snprintf(line, sizeof line,
             "HTTP/1.1 %d %s\r\n"
             "Connection: close\r\n"
             "Content-Type: text/plain; charset=utf-8\r\n"
             "Content-Length: %zu\r\n"
             "%s%s"
             "\r\n",
             v->status, v->reason, strlen(detail) + 1,
             v->status == 426 ? "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n" : "",
             v->status == 405 ? "Allow: GET\r\n" : "");
    if (append_str(out, line) != 0 || append_str(out, detail) != 0 || append_str(out, "\n") != 0)
        return -1;
    return 0;
}

int osp_ws_handshake_write_request(const char *host_header, const char *resource, const char *key,
                                   osp_ws_buf *out) {
    if (append_str(out, "GET ") || append_str(out, resource) ||
        append_str(out, " HTTP/1.1\r\nHost: ") || append_str(out, host_header) ||
        append_str(out, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ") ||
        append_str(out, key) || append_str(out, "\r\nSec-WebSocket-Version: 13\r\n\r\n"))
        return -1;
    return 0;
}

const char *osp_ws_handshake_check_response(const osp_http_parser *resp, const char *key,
                                            int *status) {
    *status = resp->status_code;
    /* RFC 6455 §4.1 (client requirements, item 1): anything but 101 ends the handshake. */
    if (resp->status_code != 101) return "the server did not answer 101 Switching Protocols";
    if (resp->version_major != 1 || resp->version_minor < 1) return "the response is not HTTP/1.1";
    /* Items 2-3: Upgrade: websocket and Connection: Upgrade, case-insensitive tokens. */
    if (!osp_http_header_has_token(resp, "Upgrade", "websocket"))
        return "the response has no \"Upgrade: websocket\" header";
    if (!osp_http_header_has_token(resp, "Connection", "Upgrade"))
        return "the response has no \"Connection: Upgrade\" header";
    /* Item 4: exactly the expected Sec-WebSocket-Accept. */
    uint32_t idx;
    uint32_t accepts = osp_http_header_find(resp, "Sec-WebSocket-Accept", &idx);
    if (accepts == 0) return "the response has no Sec-WebSocket-Accept header";
    if (accepts > 1) return "the response has more than one Sec-WebSocket-Accept header";
    char expected[OSP_WS_ACCEPT_LEN + 1];
    if (!osp_ws_accept_key(key, strlen(key), expected)) return "cannot compute the expected accept value";
    size_t n;
    const char *got = osp_http_header_value(resp, idx, &n);
    if (n != OSP_WS_ACCEPT_LEN || memcmp(got, expected, OSP_WS_ACCEPT_LEN) != 0)
        return "Sec-WebSocket-Accept does not match the key we sent";
    /* Items 5-6: we offered no extension and no subprotocol, so any in the answer fails. */
    uint32_t unused;
    if (osp_http_header_find(resp, "Sec-WebSocket-Extensions", &unused) > 0)
        return "the server selected an extension that was not offered";
    if (osp_http_header_find(resp, "Sec-WebSocket-Protocol", &unused) > 0)
        return "the server selected a subprotocol that was not offered";
    return NULL;
}
