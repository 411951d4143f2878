/* HTTP/1.1 request framing, chunked decoding and response helpers: see http_msg.h. */
#include "http_msg.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- chunked ------------------------------------------------------------------------------ */

/* A size line (hex digits plus extensions) or a trailer line longer than this is refused: a
 * peer must not make us buffer or scan without bound outside the body limit. */
#define CHUNK_LINE_MAX 4096
#define TRAILER_MAX 16384

void osp_chunked_init(osp_chunked *c) { memset(c, 0, sizeof *c); }

static int hex_value(uint8_t b) {
    if (b >= '0' && b <= '9') return b - '0';
    if (b >= 'a' && b <= 'f') return b - 'a' + 10;
    if (b >= 'A' && b <= 'F') return b - 'A' + 10;
    return -1;
}

osp_http_status osp_chunked_feed(osp_chunked *c, const uint8_t *in, size_t len, size_t *consumed,
                                 osp_ws_buf *body, uint64_t max_body, const char **why, bool *too_large) {
    *too_large = false;
    size_t i = 0;
#define FAIL(text)        \
    do {                  \
        *consumed = i;    \
        *why = (text);    \
        return OSP_HTTP_ERROR; \
    } while (0)
    while (i < len && c->state != CHUNK_DONE) {
        uint8_t b = in[i];
        switch (c->state) {
        case CHUNK_SIZE: {
            int h = hex_value(b);
            if (h >= 0) {
                /* 15 hex digits stay below 2^60: no overflow, and far above any body limit. */
                if (++c->digits > 15) FAIL("chunk size too large");
                c->size = c->size * 16 + (uint64_t)h;
                i++;
                break;
            }
            if (c->digits == 0) FAIL("malformed chunk size");
            if (b == ';') {
                c->state = CHUNK_EXT;
            } else if (b == '\r') {
                c->state = CHUNK_SIZE_LF;
            } else {
                /* No whitespace before extensions either: strict, like the head parser. */
                FAIL("malformed chunk size line");
            }
            c->line_bytes = c->digits + 1;
            i++;
            break;
        }
        case CHUNK_EXT:
            if (++c->line_bytes > CHUNK_LINE_MAX) FAIL("chunk extension too long");
            if (b == '\r') c->state = CHUNK_SIZE_LF;
            else if (b == '\n' || b == 0 || (b < 0x20 && b != '\t') || b == 0x7F) FAIL("control character in a chunk extension");
            i++;
            break;
        case CHUNK_SIZE_LF:
            if (b != '\n') FAIL("bare CR in a chunk size line");
            i++;
            if (c->size == 0) {
                c->state = CHUNK_TRAILER;
                c->trailer_empty = true;
                c->line_bytes = 0;
                break;
            }
            if (body->len + c->size > max_body) {
                *too_large = true;
                FAIL("request body too large");
            }
            c->remaining = c->size;
            c->state = CHUNK_DATA;
            break;
        case CHUNK_DATA: {
            size_t n = len - i;
            if (n > c->remaining) n = (size_t)c->remaining;
            if (osp_ws_buf_append(body, in + i, n) != 0) FAIL("out of memory");
            i += n;
            c->remaining -= n;
            if (c->remaining == 0) c->state = CHUNK_DATA_CR;
            break;
        }
        case CHUNK_DATA_CR:
            if (b != '\r') FAIL("chunk data not followed by CRLF");
            c->state = CHUNK_DATA_LF;
            i++;
            break;
        case CHUNK_DATA_LF:
            if (b != '\n') FAIL("chunk data not followed by CRLF");
            c->state = CHUNK_SIZE;
            c->size = 0;
            c->digits = 0;
            i++;
            break;
        case CHUNK_TRAILER:
            if (++c->trailer_bytes > TRAILER_MAX) FAIL("chunked trailer too large");
            if (b == '\r') {
                c->state = CHUNK_TRAILER_LF;
            } else if (b == '\n' || b == 0) {
                FAIL("malformed chunked trailer");
            } else {
                c->trailer_empty = false;
            }
            i++;
            break;
        case CHUNK_TRAILER_LF:
            if (b != '\n') FAIL("bare CR in a chunked trailer");
            i++;
            if (c->trailer_empty) {
                c->state = CHUNK_DONE;
            } else {
                c->state = CHUNK_TRAILER;
                c->trailer_empty = true;
            }
            break;
        case CHUNK_DONE:
            break;
        }
    }
#undef FAIL
    *consumed = i;
    return c->state == CHUNK_DONE ? OSP_HTTP_DONE : OSP_HTTP_INCOMPLETE;
}

/* ---- limits ------------------------------------------------------------------------------- */

void osp_http_limits_default(osp_http_limits *l) {
    l->max_request_line = 8 * 1024;
    l->max_header_bytes = 16 * 1024;
    l->max_headers = 100;
    l->max_body = 1024 * 1024;
    l->header_timeout_ms = 10000;
    l->body_timeout_ms = 30000;
    l->idle_timeout_ms = 60000;
    l->max_connections = 10000;
}

const char *osp_http_limit_set(osp_http_limits *l, const char *name, int64_t value) {
    static const char names[] =
        "maxRequestLineBytes, maxHeaderBytes, maxHeaders, maxBodyBytes, headerTimeoutMs, "
        "bodyTimeoutMs, idleTimeoutMs, maxConnections";
    struct { const char *name; int64_t lo, hi; } table[] = {
        {"maxRequestLineBytes", 64, 1 << 20}, {"maxHeaderBytes", 64, 1 << 24}, {"maxHeaders", 1, 10000},
        {"maxBodyBytes", 0, (int64_t)1 << 40}, {"headerTimeoutMs", 1, 86400000}, {"bodyTimeoutMs", 1, 86400000},
        {"idleTimeoutMs", 1, 86400000}, {"maxConnections", 1, 1000000},
    };
    static char msg[200];
    if (name == NULL) return "the limit name is null";
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(name, table[i].name) != 0) continue;
        if (value < table[i].lo || value > table[i].hi) {
            /* Callers copy the message at once; a static buffer keeps the interface simple. */
            snprintf(msg, sizeof msg, "%s must be between %lld and %lld, got %lld", name,
                     (long long)table[i].lo, (long long)table[i].hi, (long long)value);
            return msg;
        }
        switch (i) {
        case 0: l->max_request_line = (uint32_t)value; break;
        case 1: l->max_header_bytes = (uint32_t)value; break;
        case 2: l->max_headers = (uint32_t)value; break;
        case 3: l->max_body = (uint64_t)value; break;
        case 4: l->header_timeout_ms = (uint32_t)value; break;
        case 5: l->body_timeout_ms = (uint32_t)value; break;
        case 6: l->idle_timeout_ms = (uint32_t)value; break;
        default: l->max_connections = (uint32_t)value; break;
        }
        return NULL;
    }
    snprintf(msg, sizeof msg, "unknown limit \"%.40s\" (known: %s)", name, names);
    return msg;
}

/* ---- request reader ----------------------------------------------------------------------- */

static void reader_setup(osp_request_reader *r, const osp_http_limits *limits, bool fresh) {
    osp_ws_limits_default(&r->head_limits);
    r->head_limits.max_request_line = limits->max_request_line;
    r->head_limits.max_header_bytes = limits->max_header_bytes;
    r->head_limits.max_headers = limits->max_headers;
    r->max_body = limits->max_body;
    if (fresh) osp_http_parser_init(&r->head, false, &r->head_limits);
    else osp_http_parser_reset(&r->head);
    r->phase = REQ_HEAD;
    r->remaining = 0;
    osp_chunked_init(&r->chunked);
    r->keep_alive = false;
    r->expect_continue = false;
    r->error_status = 0;
    r->error_text = NULL;
}

void osp_request_reader_init(osp_request_reader *r, const osp_http_limits *limits) {
    memset(r, 0, sizeof *r);
    reader_setup(r, limits, true);
}

void osp_request_reader_free(osp_request_reader *r) {
    osp_http_parser_free(&r->head);
    osp_ws_buf_free(&r->body);
}

void osp_request_reader_reset(osp_request_reader *r, const osp_http_limits *limits) {
    /* The head's buffers stay for the next request of the connection (wiped, not freed). */
    osp_ws_buf_clear(&r->body);
    reader_setup(r, limits, false);
}

bool osp_request_head_done(const osp_request_reader *r) { return r->phase != REQ_HEAD && r->phase != REQ_ERROR; }

static osp_http_status fail(osp_request_reader *r, int status, const char *text) {
    r->phase = REQ_ERROR;
    r->error_status = status;
    r->error_text = text;
    return OSP_HTTP_ERROR;
}

/* Content-Length = 1*DIGIT (RFC 9110 §8.6). No sign, no spaces, no list: strictness here is
 * what keeps two parsers from framing one byte stream differently. */
static bool parse_length(const char *s, size_t n, uint64_t *out) {
    if (n == 0 || n > 18) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* Decides framing, keep-alive and Expect once the head is complete. */
static osp_http_status head_complete(osp_request_reader *r) {
    osp_http_parser *h = &r->head;
    if (h->version_major != 1 || h->version_minor > 1) return fail(r, 505, "HTTP version not supported");
    bool http11 = h->version_minor == 1;
    uint32_t first;
    uint32_t hosts = osp_http_header_find(h, "Host", &first);
    /* RFC 9112 §3.2: exactly one Host in an HTTP/1.1 request. */
    if (http11 && hosts != 1) return fail(r, 400, hosts == 0 ? "missing Host header" : "more than one Host header");
    if (!http11 && hosts > 1) return fail(r, 400, "more than one Host header");
    uint32_t te_first, cl_first;
    uint32_t te_count = osp_http_header_find(h, "Transfer-Encoding", &te_first);
    uint32_t cl_count = osp_http_header_find(h, "Content-Length", &cl_first);
    if (te_count > 0 && cl_count > 0) return fail(r, 400, "both Content-Length and Transfer-Encoding (refused: request smuggling)");
    if (te_count > 0) {
        if (!http11) return fail(r, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (te_count > 1) return fail(r, 400, "more than one Transfer-Encoding header");
        size_t n;
        const char *v = osp_http_header_value(h, te_first, &n);
        if (!osp_http_ieq(v, n, "chunked")) {
            /* A list ending in chunked names a coding we do not implement; anything else leaves
             * the length unknowable (RFC 9112 §6.3 item 4). */
            bool ends_chunked = n >= 7 && osp_http_ieq(v + n - 7, 7, "chunked");
            return ends_chunked ? fail(r, 501, "unsupported transfer coding")
                                : fail(r, 400, "Transfer-Encoding without chunked as the final coding");
        }
        r->phase = REQ_BODY_CHUNKED;
    } else if (cl_count > 0) {
        if (cl_count > 1) return fail(r, 400, "more than one Content-Length header");
        size_t n;
        const char *v = osp_http_header_value(h, cl_first, &n);
        uint64_t length;
        if (!parse_length(v, n, &length)) return fail(r, 400, "malformed Content-Length");
        if (length > r->max_body) return fail(r, 413, "request body too large");
        r->remaining = length;
        r->phase = length == 0 ? REQ_DONE : REQ_BODY_LENGTH;
    } else {
        r->phase = REQ_DONE;
    }
    bool close = osp_http_header_has_token(h, "Connection", "close");
    r->keep_alive = http11 ? !close : (!close && osp_http_header_has_token(h, "Connection", "keep-alive"));
    uint32_t ex_first;
    if (osp_http_header_find(h, "Expect", &ex_first) > 0) {
        size_t n;
        const char *v = osp_http_header_value(h, ex_first, &n);
        if (!osp_http_ieq(v, n, "100-continue")) return fail(r, 417, "unsupported Expect value");
        r->expect_continue = http11 && r->phase != REQ_DONE;
    }
    return r->phase == REQ_DONE ? OSP_HTTP_DONE : OSP_HTTP_INCOMPLETE;
}

osp_http_status osp_request_feed(osp_request_reader *r, const uint8_t *in, size_t len, size_t *consumed) {
    *consumed = 0;
    size_t used = 0;
    for (;;) {
        switch (r->phase) {
        case REQ_DONE:
            *consumed = used;
            return OSP_HTTP_DONE;
        case REQ_ERROR:
            *consumed = used;
            return OSP_HTTP_ERROR;
        case REQ_HEAD: {
            size_t n = 0;
            osp_http_status s = osp_http_parse(&r->head, in + used, len - used, &n);
            used += n;
            if (s == OSP_HTTP_INCOMPLETE) {
                *consumed = used;
                return s;
            }
            if (s == OSP_HTTP_ERROR) {
                /* The head parser answers an over-long request line with 400; a server says 414. */
                int status = r->head.error_status;
                if (!r->head.first_line_done && r->head.error_text != NULL &&
                    strcmp(r->head.error_text, "request line too long") == 0)
                    status = 414;
                fail(r, status, r->head.error_text);
                continue;
            }
            if (head_complete(r) == OSP_HTTP_INCOMPLETE && used == len) {
                *consumed = used;
                return OSP_HTTP_INCOMPLETE;
            }
            continue;
        }
        case REQ_BODY_LENGTH: {
            size_t n = len - used;
            if (n > r->remaining) n = (size_t)r->remaining;
            if (n > 0 && osp_ws_buf_append(&r->body, in + used, n) != 0) {
                fail(r, 503, "out of memory");
                continue;
            }
            used += n;
            r->remaining -= n;
            if (r->remaining == 0) {
                r->phase = REQ_DONE;
                continue;
            }
            *consumed = used;
            return OSP_HTTP_INCOMPLETE;
        }
        case REQ_BODY_CHUNKED: {
            size_t n = 0;
            const char *why = NULL;
            bool too_large = false;
            osp_http_status s = osp_chunked_feed(&r->chunked, in + used, len - used, &n, &r->body, r->max_body, &why, &too_large);
            used += n;
            if (s == OSP_HTTP_ERROR) {
                fail(r, too_large ? 413 : 400, why);
                continue;
            }
            if (s == OSP_HTTP_DONE) {
                r->phase = REQ_DONE;
                continue;
            }
            *consumed = used;
            return OSP_HTTP_INCOMPLETE;
        }
        }
    }
}

/* ---- responses ---------------------------------------------------------------------------- */

const char *osp_http_reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

void osp_http_date(char *out, size_t outlen, int64_t unix_seconds) {
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) memset(&tm, 0, sizeof tm);
    snprintf(out, outlen, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool name_is(const char *s, size_t n, const char *name) { return osp_http_ieq(s, n, name); }

const char *osp_http_append_user_headers(osp_ws_buf *out, const char *headers, bool skip_date,
                                         bool *has_content_type) {
    *has_content_type = false;
    if (headers == NULL) return NULL;
    const char *p = headers;
    while (*p) {
        const char *eol = p;
        while (*eol && *eol != '\r' && *eol != '\n') eol++;
        size_t n = (size_t)(eol - p);
        if (n > 0) {
            const char *colon = memchr(p, ':', n);
            if (colon == NULL) return "a header line without a colon";
            size_t name_len = (size_t)(colon - p);
            if (name_len == 0) return "a header line with an empty name";
            for (size_t i = 0; i < name_len; i++) {
                unsigned char c = (unsigned char)p[i];
                bool tchar = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                             (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
                if (!tchar) return "a header name with a character that is not allowed (spaces, separators)";
            }
            for (size_t i = name_len + 1; i < n; i++) {
                unsigned char c = (unsigned char)p[i];
                if ((c < 0x20 && c != '\t') || c == 0x7F) return "a control character in a header value";
            }
            bool skip = name_is(p, name_len, "Content-Length") || name_is(p, name_len, "Transfer-Encoding") ||
                        name_is(p, name_len, "Connection") || (skip_date && name_is(p, name_len, "Date"));
            if (name_is(p, name_len, "Content-Type")) *has_content_type = true;
            if (!skip && (osp_ws_buf_append(out, p, n) != 0 || osp_ws_buf_append(out, "\r\n", 2) != 0))
                return "out of memory";
        }
        /* One line break: CRLF or LF. A lone CR is not a line break but header injection. */
        if (*eol == '\r') {
            if (eol[1] != '\n') return "a bare CR in the header text";
            eol += 2;
        } else if (*eol == '\n') {
            eol++;
        }
        p = eol;
    }
    return NULL;
}
