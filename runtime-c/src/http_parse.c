/*
 * Incremental HTTP/1.1 head parser (see http_parse.h). Grammar: RFC 9112 §2-§5 (start line,
 * field lines), RFC 9110 §5.6.2 (tokens). Each byte is examined once on arrival; a completed line
 * is then split once, so the total work is linear in the size of the head.
 */
#include "http_parse.h"

#include <stdlib.h>
#include <string.h>

void osp_http_parser_init(osp_http_parser *p, bool is_response, const osp_ws_limits *limits) {
    memset(p, 0, sizeof *p);
    p->is_response = is_response;
    p->limits = limits;
    p->status = OSP_HTTP_INCOMPLETE;
}

void osp_http_parser_free(osp_http_parser *p) {
    osp_ws_buf_free(&p->buf);
    osp_ws_free_wiped(p->headers, (size_t)p->header_cap * sizeof *p->headers);
    p->headers = NULL;
    p->header_cap = 0;
    p->header_count = 0;
}

void osp_http_parser_reset(osp_http_parser *p) {
    osp_ws_buf buf = p->buf;
    osp_http_header *headers = p->headers;
    uint32_t header_cap = p->header_cap;
    osp_ws_buf_clear(&buf);
    osp_ws_wipe(headers, (size_t)p->header_count * sizeof *headers);
    osp_http_parser_init(p, p->is_response, p->limits);
    p->buf = buf;
    p->headers = headers;
    p->header_cap = header_cap;
}

static osp_http_status error(osp_http_parser *p, int status, const char *text) {
    p->status = OSP_HTTP_ERROR;
    p->error_status = status;
    p->error_text = text;
    return OSP_HTTP_ERROR;
}

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(uint8_t c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(uint8_t c) { return c == ' ' || c == '\t'; }

/* Field value bytes: VCHAR, obs-text, SP, HTAB (RFC 9110 §5.5). Controls are refused. */
static bool is_field_char(uint8_t c) { return c == '\t' || (c >= 0x20 && c != 0x7F); }

/* "HTTP/d.d" */
static bool parse_version(osp_http_parser *p, const char *s, size_t n) {
    if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || s[6] != '.') return false;
    if (s[5] < '0' || s[5] > '9' || s[7] < '0' || s[7] > '9') return false;
    p->version_major = s[5] - '0';
    p->version_minor = s[7] - '0';
    return true;
}

static osp_http_status parse_first_line(osp_http_parser *p, size_t start, size_t n) {
    const char *line = (const char *)p->buf.data + start;
    /* Split on single spaces: exactly three parts (a response's reason may contain spaces). */
    const char *sp1 = memchr(line, ' ', n);
    if (sp1 == NULL) return error(p, 400, "malformed start line");
    size_t n1 = (size_t)(sp1 - line);
    const char *rest = sp1 + 1;
    size_t rest_n = n - n1 - 1;
    const char *sp2 = memchr(rest, ' ', rest_n);
    size_t n2, n3;
    if (sp2 == NULL) {
        if (!p->is_response) return error(p, 400, "malformed request line");
        n2 = rest_n; /* "HTTP/1.1 101" with no reason phrase */
        n3 = 0;
    } else {
        n2 = (size_t)(sp2 - rest);
        n3 = rest_n - n2 - 1;
    }
    p->part_off[0] = (uint32_t)start;
    p->part_len[0] = (uint32_t)n1;
    p->part_off[1] = (uint32_t)(start + n1 + 1);
    p->part_len[1] = (uint32_t)n2;
    p->part_off[2] = (uint32_t)(start + n1 + 1 + n2 + 1);
    p->part_len[2] = (uint32_t)n3;
    if (p->is_response) {
        if (!parse_version(p, line, n1)) return error(p, 400, "malformed HTTP version in status line");
        if (n2 != 3 || rest[0] < '1' || rest[0] > '5' || rest[1] < '0' || rest[1] > '9' ||
            rest[2] < '0' || rest[2] > '9')
            return error(p, 400, "malformed status code");
        p->status_code = (rest[0] - '0') * 100 + (rest[1] - '0') * 10 + (rest[2] - '0');
        return OSP_HTTP_INCOMPLETE;
    }
    if (n1 == 0) return error(p, 400, "empty method");
    for (size_t i = 0; i < n1; i++)
        if (!is_tchar((uint8_t)line[i])) return error(p, 400, "malformed method");
    if (n2 == 0) return error(p, 400, "empty request target");
    for (size_t i = 0; i < n2; i++) {
        uint8_t c = (uint8_t)rest[i];
        if (c <= 0x20 || c >= 0x7F) return error(p, 400, "malformed request target");
    }
    if (!parse_version(p, rest + n2 + 1, n3)) return error(p, 400, "malformed HTTP version");
    return OSP_HTTP_INCOMPLETE;
}

static osp_http_status parse_header_line(osp_http_parser *p, size_t start, size_t n) {
    const uint8_t *line = p->buf.data + start;
    /* RFC 9112 §5.2: obs-fold (a line starting with whitespace) is refused. */
    if (is_ows(line[0])) return error(p, 400, "obsolete line folding in a header");
    size_t colon = 0;
    while (colon < n && line[colon] != ':') {
        /* RFC 9112 §5.1: no whitespace between the field name and the colon. */
        if (!is_tchar(line[colon])) return error(p, 400, "malformed header name");
        colon++;
    }
    if (colon == n) return error(p, 400, "header line without a colon");
    if (colon == 0) return error(p, 400, "empty header name");
    size_t v = colon + 1, e = n;
    while (v < e && is_ows(line[v])) v++;
    while (e > v && is_ows(line[e - 1])) e--;
    for (size_t i = v; i < e; i++)
        if (!is_field_char(line[i])) return error(p, 400, "control character in a header value");
    if (p->header_count == p->header_cap) {
        uint32_t cap = p->header_cap ? p->header_cap * 2 : 16;
        if (cap > p->limits->max_headers) cap = p->limits->max_headers;
        osp_http_header *h = malloc((size_t)cap * sizeof *h);
        if (h == NULL) return error(p, 503, "out of memory");
        if (p->header_count) memcpy(h, p->headers, p->header_count * sizeof *h);
        osp_ws_free_wiped(p->headers, (size_t)p->header_cap * sizeof *h);
        p->headers = h;
        p->header_cap = cap;
    }
    osp_http_header *h = &p->headers[p->header_count++];
    h->name_off = (uint32_t)start;
    h->name_len = (uint32_t)colon;
    h->value_off = (uint32_t)(start + v);
    h->value_len = (uint32_t)(e - v);
    return OSP_HTTP_INCOMPLETE;
}

osp_http_status osp_http_parse(osp_http_parser *p, const uint8_t *in, size_t len, size_t *consumed) {
    *consumed = 0;
    if (p->status != OSP_HTTP_INCOMPLETE) return p->status;
    const osp_ws_limits *l = p->limits;
    /* Request line + CRLF, header lines (their CRLFs count towards max_header_bytes), the
     * blank line, and a little slack so the limits above are what refuses a head. */
    size_t head_limit = (size_t)l->max_request_line + (size_t)l->max_header_bytes + 8;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i];
        if (osp_ws_buf_reserve(&p->buf, 1, head_limit) != 0)
            return error(p, p->first_line_done ? 431 : 400, "request head too large");
        p->buf.data[p->buf.len++] = c;
        *consumed = i + 1;
        /* RFC 9112 §2.2: NUL and bare CR are refused; a bare LF is refused too (tolerating it
         * invites parser-differential bugs, docs/WEBSOCKET-RUNTIME.md S-H12). */
        if (c == 0) return error(p, 400, "NUL byte in the HTTP head");
        if (p->prev_cr && c != '\n') return error(p, 400, "bare CR in the HTTP head");
        if (c == '\r') {
            p->prev_cr = true;
            continue;
        }
        size_t line_len = p->buf.len - p->line_start; /* bytes of this line so far, incl. c */
        if (c != '\n') {
            if (!p->first_line_done) {
                if (line_len > l->max_request_line)
                    return error(p, 400, p->is_response ? "status line too long" : "request line too long");
            } else if (p->header_bytes + line_len > l->max_header_bytes) {
                return error(p, 431, "request header fields too large");
            }
            continue;
        }
        if (!p->prev_cr) return error(p, 400, "bare LF in the HTTP head");
        p->prev_cr = false;
        size_t content = line_len - 2; /* without CRLF */
        size_t start = p->line_start;
        p->line_start = p->buf.len;
        if (!p->first_line_done) {
            if (content == 0) return error(p, 400, "empty start line");
            p->first_line_done = true;
            if (parse_first_line(p, start, content) == OSP_HTTP_ERROR) return OSP_HTTP_ERROR;
            continue;
        }
        if (content == 0) {
            p->status = OSP_HTTP_DONE;
            return OSP_HTTP_DONE;
        }
        p->header_bytes += line_len;
        if (p->header_count >= l->max_headers) return error(p, 431, "too many header fields");
        if (parse_header_line(p, start, content) == OSP_HTTP_ERROR) return OSP_HTTP_ERROR;
    }
    return OSP_HTTP_INCOMPLETE;
}

const char *osp_http_part(const osp_http_parser *p, int index, size_t *len) {
    *len = p->part_len[index];
    return (const char *)p->buf.data + p->part_off[index];
}

const char *osp_http_header_name(const osp_http_parser *p, uint32_t i, size_t *len) {
    *len = p->headers[i].name_len;
    return (const char *)p->buf.data + p->headers[i].name_off;
}

const char *osp_http_header_value(const osp_http_parser *p, uint32_t i, size_t *len) {
    *len = p->headers[i].value_len;
    return (const char *)p->buf.data + p->headers[i].value_off;
}

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

bool osp_http_ieq(const char *a, size_t alen, const char *b) {
    size_t blen = strlen(b);
    if (alen != blen) return false;
    for (size_t i = 0; i < alen; i++)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

uint32_t osp_http_header_find(const osp_http_parser *p, const char *name, uint32_t *first) {
    uint32_t count = 0;
    *first = UINT32_MAX;
    for (uint32_t i = 0; i < p->header_count; i++) {
        size_t n;
        const char *s = osp_http_header_name(p, i, &n);
        if (osp_http_ieq(s, n, name)) {
            if (count++ == 0) *first = i;
        }
    }
    return count;
}

bool osp_http_header_has_token(const osp_http_parser *p, const char *name, const char *token) {
    for (uint32_t i = 0; i < p->header_count; i++) {
        size_t n;
        const char *s = osp_http_header_name(p, i, &n);
        if (!osp_http_ieq(s, n, name)) continue;
        const char *v = osp_http_header_value(p, i, &n);
        size_t pos = 0;
        while (pos <= n) {
            size_t end = pos;
            while (end < n && v[end] != ',') end++;
            size_t a = pos, b = end;
            while (a < b && is_ows((uint8_t)v[a])) a++;
            while (b > a && is_ows((uint8_t)v[b - 1])) b--;
            if (osp_http_ieq(v + a, b - a, token)) return true;
            pos = end + 1;
        }
    }
    return false;
}
