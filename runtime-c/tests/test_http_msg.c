/*
 * HTTP/1.1 request reader tests (http_msg.c): every case is fed whole and one byte at a time and
 * must give the same verdict, body and consumed length — framing (Content-Length, chunked with
 * extensions and trailers), pipelining (the reader stops at the end of one request), the
 * smuggling refusals, each limit with its status, keep-alive rules, the chunked decoder's
 * errors, and the response helpers (header injection refused, IMF-fixdate).
 */
#include "http_msg.h"
#include "check.h"

#include <stdlib.h>

typedef struct {
    osp_http_status status;
    int error_status;
    size_t consumed;
    char body[256];
    size_t body_len;
    bool keep_alive;
    bool expect_continue;
} outcome;

static osp_http_limits limits;

static outcome feed(const char *req, size_t len, size_t chunk) {
    outcome o;
    memset(&o, 0, sizeof o);
    osp_request_reader r;
    osp_request_reader_init(&r, &limits);
    size_t off = 0;
    osp_http_status st = OSP_HTTP_INCOMPLETE;
    while (off < len && st == OSP_HTTP_INCOMPLETE) {
        size_t n = len - off < chunk ? len - off : chunk;
        size_t used = 0;
        st = osp_request_feed(&r, (const uint8_t *)req + off, n, &used);
        off += used;
        if (st == OSP_HTTP_INCOMPLETE && used != n) {
            o.status = OSP_HTTP_ERROR;
            o.error_status = -1; /* must consume everything while incomplete */
            osp_request_reader_free(&r);
            return o;
        }
    }
    o.status = st;
    o.error_status = r.error_status;
    o.consumed = off;
    o.body_len = r.body.len < sizeof o.body ? r.body.len : sizeof o.body - 1;
    if (o.body_len) memcpy(o.body, r.body.data, o.body_len);
    o.keep_alive = r.keep_alive;
    o.expect_continue = r.expect_continue;
    osp_request_reader_free(&r);
    return o;
}

/* Whole and byte by byte: both must agree with the expectation. */
#define EXPECT_REQ(req, st, err, body_text, consumed_len)                                          \
    do {                                                                                           \
        size_t len_ = strlen(req);                                                                 \
        size_t chunks_[2] = {len_ ? len_ : 1, 1};                                                  \
        for (int k_ = 0; k_ < 2; k_++) {                                                           \
            outcome o_ = feed(req, len_, chunks_[k_]);                                             \
            CHECK(o_.status == (st), "%s (chunk %zu): status %d", #req, chunks_[k_], o_.status);   \
            CHECK(o_.error_status == (err), "%s (chunk %zu): error %d", #req, chunks_[k_], o_.error_status); \
            if ((st) == OSP_HTTP_DONE) {                                                           \
                CHECK(o_.body_len == strlen(body_text) && memcmp(o_.body, body_text, o_.body_len) == 0, \
                      "%s: body \"%.*s\"", #req, (int)o_.body_len, o_.body);                       \
                CHECK(o_.consumed == (size_t)(consumed_len), "%s: consumed %zu", #req, o_.consumed); \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static void test_framing(void) {
    EXPECT_REQ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", OSP_HTTP_DONE, 0, "", 27);
    const char *cl5 = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    EXPECT_REQ(cl5, OSP_HTTP_DONE, 0, "hello", strlen(cl5));
    const char *cl0 = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
    EXPECT_REQ(cl0, OSP_HTTP_DONE, 0, "", strlen(cl0));
    /* Chunked with an extension, two chunks (hex size), a trailer. */
    const char *ch = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5;name=value\r\nhello\r\nB\r\n, world!!!!\r\n0\r\nX-Trailer: t\r\n\r\n";
    EXPECT_REQ(ch, OSP_HTTP_DONE, 0, "hello, world!!!!", strlen(ch));
    const char *upper = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n";
    EXPECT_REQ(upper, OSP_HTTP_DONE, 0, "", strlen(upper));
    /* Pipelining: the reader stops at the end of the first request. */
    const char *two = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    EXPECT_REQ(two, OSP_HTTP_DONE, 0, "", 28);
    const char *two_body = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n";
    EXPECT_REQ(two_body, OSP_HTTP_DONE, 0, "abc", strlen(two_body) - strlen("GET / HTTP/1.1\r\n"));
    /* Incomplete stays incomplete and consumes everything. */
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", OSP_HTTP_INCOMPLETE, 0, "", 0);
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", OSP_HTTP_INCOMPLETE, 0, "", 0);
}

static void test_smuggling(void) {
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", OSP_HTTP_ERROR, 400, "", 0);
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", OSP_HTTP_ERROR, 400, "", 0);
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", OSP_HTTP_ERROR, 400, "", 0);
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", OSP_HTTP_ERROR, 400, "", 0);
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", OSP_HTTP_ERROR, 400, "", 0);
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", OSP_HTTP_ERROR, 400, "", 0);
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", OSP_HTTP_ERROR, 400, "", 0);
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", OSP_HTTP_ERROR, 400, "", 0);
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", OSP_HTTP_ERROR, 501, "", 0);
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", OSP_HTTP_ERROR, 400, "", 0);
    EXPECT_REQ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", OSP_HTTP_ERROR, 400, "", 0);
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\n", OSP_HTTP_ERROR, 400, "", 0);
    EXPECT_REQ("GET / HTTP/1.1\r\n\r\n", OSP_HTTP_ERROR, 400, "", 0);
    EXPECT_REQ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", OSP_HTTP_ERROR, 400, "", 0);
    EXPECT_REQ("GET / HTTP/1.2\r\nHost: a\r\n\r\n", OSP_HTTP_ERROR, 505, "", 0);
    EXPECT_REQ("GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n", OSP_HTTP_ERROR, 417, "", 0);
}

static void test_chunked_errors(void) {
    const char *h = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    const char *bodies[] = {"g\r\n", "\r\n", " 5\r\nhello\r\n0\r\n\r\n", "5 \r\nhello\r\n0\r\n\r\n", "5\nhello\r\n0\r\n\r\n",
                            "5\r\nhelloX\r\n", "1000000000000000\r\n", "0\r\nbad\n"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        char req[256];
        snprintf(req, sizeof req, "%s%s", h, bodies[i]);
        for (size_t chunk = 1; chunk <= strlen(req); chunk += strlen(req) - 1) {
            outcome o = feed(req, strlen(req), chunk);
            CHECK(o.status == OSP_HTTP_ERROR && o.error_status == 400, "chunked body %zu (chunk %zu): %d/%d", i, chunk, o.status, o.error_status);
        }
    }
}

static void test_limits(void) {
    char *req = malloc(40000);
    /* Request line: 8192 bytes allowed, one more → 414. */
    memset(req, 0, 40000);
    strcpy(req, "GET /");
    memset(req + 5, 'a', 8200);
    strcpy(req + 8205, " HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_REQ(req, OSP_HTTP_ERROR, 414, "", 0);
    /* Header bytes → 431. */
    strcpy(req, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
    size_t n = strlen(req);
    memset(req + n, 'b', 17000);
    strcpy(req + n + 17000, "\r\n\r\n");
    EXPECT_REQ(req, OSP_HTTP_ERROR, 431, "", 0);
    /* 100 header lines pass, 101 → 431. */
    strcpy(req, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 99; i++) sprintf(req + strlen(req), "X-%d: v\r\n", i);
    strcat(req, "\r\n");
    EXPECT_REQ(req, OSP_HTTP_DONE, 0, "", strlen(req));
    req[strlen(req) - 2] = '\0';
    strcat(req, "X-last: v\r\n\r\n");
    EXPECT_REQ(req, OSP_HTTP_ERROR, 431, "", 0);
    /* Body: declared length over the limit → 413 before any body byte; chunked → 413 at the size line. */
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n", OSP_HTTP_ERROR, 413, "", 0);
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n80000\r\n", OSP_HTTP_INCOMPLETE, 0, "", 0);
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n100001\r\n", OSP_HTTP_ERROR, 413, "", 0);
    /* A changed limit is honoured. */
    CHECK(osp_http_limit_set(&limits, "maxBodyBytes", 4) == NULL, "set maxBodyBytes");
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", OSP_HTTP_ERROR, 413, "", 0);
    EXPECT_REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nhell", OSP_HTTP_DONE, 0, "hell", 51);
    CHECK(osp_http_limit_set(&limits, "maxBodyBytes", -1) != NULL, "negative limit refused");
    CHECK(check_contains(osp_http_limit_set(&limits, "maxBody", 1), "known: maxRequestLineBytes"), "unknown name lists the names");
    osp_http_limits_default(&limits);
    free(req);
}

/* The head parser copies the ordinary bytes of a line in runs bounded by the limits: each limit
 * must still hold to the byte. A head exactly at a limit passes and one byte more is refused, at
 * that byte (the reader consumes it and no more), whole, byte by byte, and in chunks that end on
 * either side of the boundary. */
static void expect_boundary(const char *what, const char *req, osp_http_status st, int err, size_t consumed) {
    size_t len = strlen(req);
    const size_t chunks[] = {len, 1, 7, 4096, 8191, 8192, 8193, 16384};
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        outcome o = feed(req, len, chunks[k]);
        CHECK(o.status == st && o.error_status == err && o.consumed == consumed,
              "%s (chunk %zu): status %d, error %d, consumed %zu (expected %d, %d, %zu)", what, chunks[k], o.status,
              o.error_status, o.consumed, st, err, consumed);
    }
}

static void test_limit_boundaries(void) {
    char *req = malloc(40000);
    /* Request line (without its CRLF): 8192 bytes pass, 8193 are refused at byte 8193. */
    for (size_t line = 8192; line <= 8193; line++) {
        strcpy(req, "GET /");
        memset(req + 5, 'a', line - 5 - 9);
        strcpy(req + line - 9, " HTTP/1.1\r\nHost: a\r\n\r\n");
        if (line == 8192) expect_boundary("request line at the limit", req, OSP_HTTP_DONE, 0, strlen(req));
        else expect_boundary("request line one byte over", req, OSP_HTTP_ERROR, 414, 8193);
    }
    /* Header bytes: "Host: a" with its CRLF (9) plus a field line of up to 16375 bytes reach
     * 16384; one byte more is refused at that byte. */
    strcpy(req, "GET / HTTP/1.1\r\nHost: a\r\n");
    size_t head = strlen(req);
    for (size_t field = 16375; field <= 16376; field++) {
        strcpy(req + head, "X-Big: ");
        memset(req + head + 7, 'b', field - 7);
        strcpy(req + head + field, "\r\n\r\n");
        if (field == 16375) expect_boundary("header bytes at the limit", req, OSP_HTTP_DONE, 0, strlen(req));
        else expect_boundary("header bytes one over", req, OSP_HTTP_ERROR, 431, head + field);
    }
    /* The run stops at a NUL, a bare CR and a bare LF inside a long line: refused at that byte. */
    strcpy(req, "GET /");
    memset(req + 5, 'a', 3000);
    strcpy(req + 3005, "\rX HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_boundary("bare CR after a run", req, OSP_HTTP_ERROR, 400, 3007);
    req[3005] = '\n';
    expect_boundary("bare LF after a run", req, OSP_HTTP_ERROR, 400, 3006);
    strcpy(req, "GET / HTTP/1.1\r\nHost: a\r\nX-A: ");
    head = strlen(req);
    memset(req + head, 'v', 5000);
    strcpy(req + head + 5000, "\r\n\r\n");
    req[head + 2500] = '\0'; /* strlen stops here: the NUL is fed as the last byte below */
    outcome o = feed(req, head + 2501, 1);
    CHECK(o.status == OSP_HTTP_ERROR && o.error_status == 400 && o.consumed == head + 2501, "NUL after a run (byte by byte): %d %d %zu", o.status, o.error_status, o.consumed);
    o = feed(req, head + 2501, head + 2501);
    CHECK(o.status == OSP_HTTP_ERROR && o.error_status == 400 && o.consumed == head + 2501, "NUL after a run (whole): %d %d %zu", o.status, o.error_status, o.consumed);
    free(req);
}

static void test_keep_alive(void) {
    outcome o = feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27, 27);
    CHECK(o.keep_alive, "1.1 keeps alive by default");
    const char *c = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n";
    o = feed(c, strlen(c), 1);
    CHECK(!o.keep_alive, "Connection: close (in a list, any case) honoured");
    o = feed("GET / HTTP/1.0\r\n\r\n", 18, 18);
    CHECK(!o.keep_alive, "1.0 closes by default");
    const char *k = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    o = feed(k, strlen(k), 3);
    CHECK(o.keep_alive, "1.0 with keep-alive");
    const char *e = "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    o = feed(e, strlen(e), strlen(e));
    CHECK(o.status == OSP_HTTP_INCOMPLETE && o.expect_continue, "Expect: 100-continue with a body to come");
}

/* One reader for a keep-alive connection: reset between requests keeps its buffers (no malloc
 * per request) yet parses the next request from scratch, with its own headers and limits, and
 * wipes what the previous request held. */
static void test_reset_reuses_buffers(void) {
    osp_request_reader r;
    osp_request_reader_init(&r, &limits);
    const char *first = "GET /first HTTP/1.1\r\nHost: a\r\nCookie: secret=1\r\nX-A: 1\r\nX-B: 2\r\n\r\n";
    size_t used = 0;
    CHECK(osp_request_feed(&r, (const uint8_t *)first, strlen(first), &used) == OSP_HTTP_DONE && used == strlen(first), "first request");
    const uint8_t *head_bytes = r.head.buf.data;
    const osp_http_header *header_array = r.head.headers;
    size_t head_cap = r.head.buf.cap;
    osp_request_reader_reset(&r, &limits);
    CHECK(r.head.buf.data == head_bytes && r.head.headers == header_array && r.head.buf.len == 0, "buffers kept across reset");
    CHECK(memmem(head_bytes, head_cap, "secret", 6) == NULL, "the previous head is wiped");
    CHECK(r.head.header_count == 0 && !r.head.first_line_done, "parser state starts over");
    const char *second = "POST /second HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\nhi";
    CHECK(osp_request_feed(&r, (const uint8_t *)second, strlen(second), &used) == OSP_HTTP_DONE && used == strlen(second), "second request");
    size_t n;
    const char *target = osp_http_part(&r.head, 1, &n);
    CHECK(n == 7 && memcmp(target, "/second", 7) == 0, "second target: %.*s", (int)n, target);
    uint32_t first_cookie;
    CHECK(osp_http_header_find(&r.head, "Cookie", &first_cookie) == 0 && osp_http_header_find(&r.head, "Host", &first_cookie) == 1,
          "only the second request's headers");
    CHECK(r.body.len == 2 && memcmp(r.body.data, "hi", 2) == 0, "second body");
    osp_request_reader_reset(&r, &limits);
    /* A limit still applies after a reset: 101 header lines → 431. */
    osp_ws_buf big = {0};
    const char *line0 = "GET / HTTP/1.1\r\nHost: a\r\n";
    CHECK(osp_ws_buf_append(&big, line0, strlen(line0)) == 0, "append");
    for (int i = 0; i < 101; i++) CHECK(osp_ws_buf_append(&big, "X-N: v\r\n", 8) == 0, "append");
    CHECK(osp_ws_buf_append(&big, "\r\n", 2) == 0, "append");
    CHECK(osp_request_feed(&r, big.data, big.len, &used) == OSP_HTTP_ERROR && r.error_status == 431, "header count limit after reset: %d", r.error_status);
    osp_ws_buf_free(&big);
    osp_request_reader_free(&r);
}

static void test_response_helpers(void) {
    osp_ws_buf out = {0};
    bool ct = false;
    CHECK(osp_http_append_user_headers(&out, "X-A: 1\r\nContent-Type: text/html\nContent-Length: 99\r\nConnection: keep-alive\r\nDate: x\r\n", true, &ct) == NULL, "valid headers");
    CHECK(ct, "Content-Type seen");
    CHECK(out.len == strlen("X-A: 1\r\nContent-Type: text/html\r\n") && memcmp(out.data, "X-A: 1\r\nContent-Type: text/html\r\n", out.len) == 0,
          "framing headers dropped, LF normalised: \"%.*s\"", (int)out.len, (const char *)out.data);
    osp_ws_buf_free(&out);
    const char *bad[] = {"X-A: 1\rX-B: 2", "no colon here", ": empty", "Bad Name: v", "X-A: a\x01b", "X-A: 1\r\n\r\nInjected: yes\r"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        osp_ws_buf b = {0};
        CHECK(osp_http_append_user_headers(&b, bad[i], true, &ct) != NULL, "refused: %zu", i);
        osp_ws_buf_free(&b);
    }
    char date[40];
    osp_http_date(date, sizeof date, 784111777);
    CHECK(strcmp(date, "Sun, 06 Nov 1994 08:49:37 GMT") == 0, "RFC 9110 example date: %s", date);
    CHECK(strcmp(osp_http_reason(404), "Not Found") == 0 && strcmp(osp_http_reason(431), "Request Header Fields Too Large") == 0, "reasons");
}

int main(void) {
    osp_http_limits_default(&limits);
    test_framing();
    test_smuggling();
    test_chunked_errors();
    test_limits();
    test_limit_boundaries();
    test_keep_alive();
    test_reset_reuses_buffers();
    test_response_helpers();
    return check_summary("test_http_msg");
}
