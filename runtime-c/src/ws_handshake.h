/*
 * RFC 6455 §4 opening handshake, both sides. No I/O: the server validates a parsed request and
 * writes the response; the client writes its request and validates the parsed response.
 * SHA-1 and base64 come from OpenSSL.
 */
#ifndef OSP_WS_HANDSHAKE_H
#define OSP_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "http_parse.h"

/* base64 of a 16-byte key: 24 characters; the accept value: base64 of 20 bytes, 28 characters. */
#define OSP_WS_KEY_LEN 24
#define OSP_WS_ACCEPT_LEN 28

/* RFC 6455 §4.2.2 step 5: base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), where key
 * is the header value as sent (trimmed), not its decoded bytes. out gets 28 chars + NUL.
 * false if OpenSSL fails. */
bool osp_ws_accept_key(const char *key, size_t key_len, char out[OSP_WS_ACCEPT_LEN + 1]);

/* RFC 6455 §4.2.1 item 5 / §11.3.1: the key is base64 that decodes to exactly 16 bytes:
 * 22 alphabet characters followed by "==". */
bool osp_ws_key_valid(const char *key, size_t key_len);

/* The server's verdict on a request. */
typedef struct {
    int status;                 /* 101 or the HTTP error status */
    const char *reason;         /* reason phrase for the status line */
    const char *detail;         /* why (static text); also the plain-text body of an error */
    char accept[OSP_WS_ACCEPT_LEN + 1];
    const char *protocol;       /* 101 only: the selected subprotocol (NULL: none) */
} osp_ws_server_verdict;

/* Validates a complete request (http parser DONE) against the server's endpoint path
 * (RFC 6455 §4.2.1, docs/WEBSOCKET-RUNTIME.md S-H1…S-H11). */
void osp_ws_handshake_check_request(const osp_http_parser *req, const char *path,
                                    osp_ws_server_verdict *out);

/* The server's policy on a request that check_request accepted (status 101), applied in place:
 *  - origins (n_origins > 0): the request must carry exactly one Origin header whose value is
 *    byte-for-byte one of them (RFC 6455 §4.2.2 item 4, §10.2; RFC 6454 §6.2 serialization),
 *    else 403; a missing Origin is refused too (deny by default once a list is configured);
 *  - protocols (n_protocols > 0): the first subprotocol in the client's Sec-WebSocket-Protocol
 *    offers (all header lines, in order, RFC 6455 §4.2.2 item 5 / §11.3.4) that the server
 *    supports is selected into v->protocol (a pointer to the server's entry); no common one
 *    means no header; a malformed offer (not a token list, on any of the lines, before or
 *    after a match) is 400 and selects nothing.
 * Leaves a non-101 verdict alone. */
void osp_ws_handshake_apply_policy(const osp_http_parser *req, const char *const *origins,
                                   size_t n_origins, const char *const *protocols,
                                   size_t n_protocols, osp_ws_server_verdict *v);

/* Is s a valid HTTP token (RFC 9110 §5.6.2 tchar+), as a subprotocol name must be
 * (RFC 6455 §4.1 item 10)? */
bool osp_ws_token_valid(const char *s, size_t n);

/* Writes the response for a verdict (101 with Sec-WebSocket-Accept, or an error with a short
 * plain-text body, plus `Sec-WebSocket-Version: 13` for 426 and `Allow: GET` for 405).
 * Returns 0, or -1 when out of memory. A 101 carries Sec-WebSocket-Protocol exactly once when
 * v->protocol is set; never Sec-WebSocket-Extensions: no extension is supported (RFC 6455
 * §9.1: an unsupported offer is ignored). */
int osp_ws_handshake_write_response(const osp_ws_server_verdict *v, osp_ws_buf *out);

/* Reason phrase of the statuses the runtime sends. */
const char *osp_ws_http_reason(int status);

/* Writes the client's request (RFC 6455 §4.1). key is the 24-character base64 key. */
int osp_ws_handshake_write_request(const char *host_header, const char *resource, const char *key,
                                   osp_ws_buf *out);

/* Makes a fresh key from 16 bytes of OpenSSL RAND_bytes (RFC 6455 §4.1 item 7). false if the
 * random generator fails. */
bool osp_ws_make_key(char out[OSP_WS_KEY_LEN + 1]);

/* Validates the server's response to our request (RFC 6455 §4.1, docs/WEBSOCKET-RUNTIME.md C-H4…C-H7).
 * Returns NULL when it is a valid 101, else a static description; *status gets the HTTP status. */
const char *osp_ws_handshake_check_response(const osp_http_parser *resp, const char *key,
                                            int *status);

#endif /* OSP_WS_HANDSHAKE_H */
