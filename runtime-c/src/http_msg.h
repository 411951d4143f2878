/*
 * HTTP/1.1 messages for the HTTP server and client (docs/guide/17-http.md), no I/O.
 *
 * The request reader wraps the head parser of http_parse.c and adds what a server needs: the
 * message framing of RFC 9112 §6 (Content-Length or Transfer-Encoding: chunked, never both: a
 * request carrying both, a malformed or repeated length, or an unknown transfer coding is refused
 * so no request can be smuggled past a proxy that reads it differently), the body limit, and the
 * status to answer each failure with (400, 413, 414, 431, 501, 505). Fed arbitrary chunks, it
 * resumes on partial input and never reads past the end of one request, so pipelined requests
 * stay in the caller's buffer. The chunked decoder is shared with the client.
 */
#ifndef OSP_HTTP_MSG_H
#define OSP_HTTP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_parse.h"
#include "ws_buf.h"
#include "ws_limits.h"

/* Incremental `Transfer-Encoding: chunked` decoder (RFC 9112 §7.1): chunk sizes in hex with
 * optional extensions, CRLF after each chunk's data, trailer lines ignored. */
typedef enum { CHUNK_SIZE, CHUNK_EXT, CHUNK_SIZE_LF, CHUNK_DATA, CHUNK_DATA_CR, CHUNK_DATA_LF,
               CHUNK_TRAILER, CHUNK_TRAILER_LF, CHUNK_DONE } osp_chunk_state;

typedef struct {
    osp_chunk_state state;
    uint64_t size;        /* of the current chunk */
    uint64_t remaining;   /* data bytes of the current chunk still to come */
    unsigned digits;      /* hex digits of the current size */
    size_t line_bytes;    /* bytes of the current size/extension or trailer line */
    size_t trailer_bytes; /* all trailer bytes so far */
    bool trailer_empty;   /* the current trailer line has no bytes yet */
} osp_chunked;

void osp_chunked_init(osp_chunked *c);
/* Decodes from `in`, appending data to `body` (at most `max_body` bytes in all). Returns
 * INCOMPLETE, DONE (after the last chunk and the trailer; *consumed stops there) or ERROR with
 * *why set; *too_large is set when the error is the body limit. */
osp_http_status osp_chunked_feed(osp_chunked *c, const uint8_t *in, size_t len, size_t *consumed,
                                 osp_ws_buf *body, uint64_t max_body, const char **why, bool *too_large);

/* Server-side limits (httpServerSetLimit; defaults in osp_http_limits_default). */
typedef struct {
    uint32_t max_request_line; /* bytes of the request line → 414 */
    uint32_t max_header_bytes; /* bytes of header lines → 431 */
    uint32_t max_headers;      /* header lines → 431 */
    uint64_t max_body;         /* body bytes → 413 */
    uint32_t header_timeout_ms; /* from a request's first byte until its head is complete → 408 */
    uint32_t body_timeout_ms;   /* from the end of the head until the body is complete → 408 */
    uint32_t idle_timeout_ms;   /* a keep-alive connection with no request in progress is closed */
    uint32_t max_connections;   /* open connections per server; more are answered 503 */
} osp_http_limits;

void osp_http_limits_default(osp_http_limits *l);
/* Sets one limit by name; NULL, or a message naming the valid names or range. */
const char *osp_http_limit_set(osp_http_limits *l, const char *name, int64_t value);

typedef enum { REQ_HEAD, REQ_BODY_LENGTH, REQ_BODY_CHUNKED, REQ_DONE, REQ_ERROR } osp_request_phase;

typedef struct {
    osp_ws_limits head_limits; /* the head parser's view of osp_http_limits */
    uint64_t max_body;
    osp_http_parser head;
    osp_request_phase phase;
    uint64_t remaining; /* Content-Length bytes still to read */
    osp_chunked chunked;
    osp_ws_buf body;
    /* Valid once the head is complete: */
    bool keep_alive;      /* HTTP/1.1 without "Connection: close", or 1.0 with keep-alive */
    bool expect_continue; /* "Expect: 100-continue" with a body still to come */
    /* Valid in REQ_ERROR: */
    int error_status;
    const char *error_text;
} osp_request_reader;

void osp_request_reader_init(osp_request_reader *r, const osp_http_limits *limits);
void osp_request_reader_free(osp_request_reader *r);
/* Ready for the next request on the same connection (same limits). */
void osp_request_reader_reset(osp_request_reader *r, const osp_http_limits *limits);
/* Consumes bytes of one request; returns INCOMPLETE, DONE or ERROR (error_status/error_text). */
osp_http_status osp_request_feed(osp_request_reader *r, const uint8_t *in, size_t len, size_t *consumed);
/* True once the head is complete (phase past REQ_HEAD). */
bool osp_request_head_done(const osp_request_reader *r);

/* The reason phrase of a status code ("OK", "Not Found", …; "Unknown" for others). */
const char *osp_http_reason(int status);
/* RFC 9110 §5.6.7 IMF-fixdate of `t` into out (at least 30 bytes). */
void osp_http_date(char *out, size_t outlen, int64_t unix_seconds);

/* Checks caller-supplied header text (CRLF- or LF-separated lines, trailing line break optional)
 * and appends it to `out` as CRLF-terminated lines, leaving out the framing headers the runtime
 * owns (Content-Length, Transfer-Encoding, Connection, Date when `skip_date`). *has_content_type
 * tells whether a Content-Type line was present. NULL, or what is wrong (a line without a colon,
 * a malformed name, a control character: header injection is refused). */
const char *osp_http_append_user_headers(osp_ws_buf *out, const char *headers, bool skip_date,
                                         bool *has_content_type);

#endif /* OSP_HTTP_MSG_H */
