/*
 * Incremental HTTP/1.1 head parser (request or response) for the WebSocket opening handshake.
 * No I/O. Fed arbitrary chunks, it copies bytes into a bounded buffer and checks each byte once
 * as it arrives (linear time), so it resumes on partial input and fails as soon as the head is
 * malformed or too large: NUL, bare CR, bare LF, obs-fold, whitespace before the colon, a line
 * or head over the limits, too many header lines (docs/WEBSOCKET-RUNTIME.md#limits, S-H12). Bytes after the
 * blank line are not consumed: they belong to the WebSocket stream (S-H13, C-H8).
 */
#ifndef OSP_HTTP_PARSE_H
#define OSP_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ws_buf.h"
#include "ws_limits.h"

typedef enum {
    OSP_HTTP_INCOMPLETE, /* feed more bytes */
    OSP_HTTP_DONE,       /* the head ended with CRLF CRLF */
    OSP_HTTP_ERROR,      /* malformed or too large: error_status / error_text */
} osp_http_status;

typedef struct {
    uint32_t name_off, name_len;   /* offsets into the parser's buffer */
    uint32_t value_off, value_len; /* value with surrounding whitespace removed */
} osp_http_header;

typedef struct {
    bool is_response;
    const osp_ws_limits *limits;
    osp_ws_buf buf;       /* the head as received (wiped on free: it may hold cookies/tokens) */
    size_t line_start;    /* offset of the current line's first byte */
    bool prev_cr;         /* the last byte was CR */
    bool first_line_done;
    osp_http_status status;
    int error_status;     /* HTTP status to answer with (400, 414, 431) */
    const char *error_text;
    /* The first line, as offsets into buf. Request: method, target, version. Response:
     * version, status code, reason phrase. */
    uint32_t part_off[3], part_len[3];
    int version_major, version_minor;
    int status_code; /* response only */
    osp_http_header *headers; /* malloc'd, at most limits->max_headers entries */
    uint32_t header_count;
    uint32_t header_cap;
    size_t header_bytes; /* bytes of header lines so far, CRLFs included */
} osp_http_parser;

void osp_http_parser_init(osp_http_parser *p, bool is_response, const osp_ws_limits *limits);
/* Wipes and frees the buffered head. */
void osp_http_parser_free(osp_http_parser *p);
/* Ready for the next head, like init with the same settings, but keeps the allocations (the
 * bytes held are wiped): a keep-alive connection parses request after request without malloc. */
void osp_http_parser_reset(osp_http_parser *p);

/* Consumes bytes up to and including the blank line that ends the head; *consumed says how many.
 * Once DONE or ERROR, further calls consume nothing and return the same status. */
osp_http_status osp_http_parse(osp_http_parser *p, const uint8_t *in, size_t len, size_t *consumed);

/* Accessors valid after DONE. Strings are not NUL-terminated. */
const char *osp_http_part(const osp_http_parser *p, int index, size_t *len);
const char *osp_http_header_name(const osp_http_parser *p, uint32_t i, size_t *len);
const char *osp_http_header_value(const osp_http_parser *p, uint32_t i, size_t *len);

/* How many header lines have this name (ASCII case-insensitive); *first is the index of the
 * first one (UINT32_MAX when none). */
uint32_t osp_http_header_find(const osp_http_parser *p, const char *name, uint32_t *first);

/* Does any header line with this name hold `token` in its comma-separated list (both compared
 * ASCII case-insensitively, whole tokens only: "Upgraded" does not match "Upgrade")? */
bool osp_http_header_has_token(const osp_http_parser *p, const char *name, const char *token);

/* ASCII case-insensitive comparison of a counted string with a C string. */
bool osp_http_ieq(const char *a, size_t alen, const char *b);

#endif /* OSP_HTTP_PARSE_H */
