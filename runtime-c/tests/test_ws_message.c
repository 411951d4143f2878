/*
 * Message layer tests (ws_message.c): reassembly, control frames between fragments, the
 * fragmentation rules, close payload validation, UTF-8 fail-fast, size and fragment limits with
 * their exact close codes (RFC 6455 §5.4, §5.5, §7.4, §8.1, §10.4). Frames are built unmasked
 * and read in the client role; each input is fed whole, byte by byte and in 5-byte chunks.
 */
#include "ws_message.h"
#include "check.h"

#include <stdlib.h>

static osp_ws_limits limits;

/* Builds frames into a growing byte array. */
typedef struct {
    uint8_t b[200000];
    size_t n;
} frames;

static void frame(frames *f, bool fin, uint8_t op, const void *payload, size_t len) {
    f->n += osp_ws_frame_encode_header(f->b + f->n, fin, op, len, NULL);
    memcpy(f->b + f->n, payload, len);
    f->n += len;
}

static void raw(frames *f, const void *bytes, size_t len) {
    memcpy(f->b + f->n, bytes, len);
    f->n += len;
}

/* Transcript of reader events: TEXT(...) BIN(#n) PING(...) PONG(...) CLOSE(code,reason) FAIL(code). */
static void transcript(const uint8_t *in, size_t len, size_t chunk, char *out, size_t outlen) {
    osp_ws_reader r;
    osp_ws_reader_init(&r, OSP_WS_ROLE_CLIENT, &limits);
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, in, len);
    size_t o = 0;
    out[0] = '\0';
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        size_t used = 0;
        while (used < n) {
            osp_ws_msg_event ev;
            used += osp_ws_reader_feed(&r, copy + off + used, n - used, &ev);
            const char *tag = NULL;
            switch (ev.kind) {
            case OSP_WS_MSG_NONE: break;
            case OSP_WS_MSG_TEXT: tag = "TEXT"; break;
            case OSP_WS_MSG_BINARY: tag = "BIN"; break;
            case OSP_WS_MSG_PING: tag = "PING"; break;
            case OSP_WS_MSG_PONG: tag = "PONG"; break;
            case OSP_WS_MSG_CLOSE:
                o += (size_t)snprintf(out + o, outlen - o, "CLOSE(%u,%.*s) ", ev.code, (int)ev.len,
                                      (const char *)ev.data);
                break;
            case OSP_WS_MSG_FAIL:
                o += (size_t)snprintf(out + o, outlen - o, "FAIL(%u) ", ev.code);
                break;
            }
            if (tag) {
                if (ev.len > 40 || ev.kind == OSP_WS_MSG_BINARY)
                    o += (size_t)snprintf(out + o, outlen - o, "%s(#%zu) ", tag, ev.len);
                else
                    o += (size_t)snprintf(out + o, outlen - o, "%s(%.*s) ", tag, (int)ev.len,
                                          ev.len ? (const char *)ev.data : "");
            }
            if (ev.kind == OSP_WS_MSG_NONE) break;
        }
    }
    osp_ws_reader_free(&r);
    free(copy);
}

static void expect(const char *name, const frames *f, const char *want) {
    static char got[4096];
    size_t chunks[] = {f->n ? f->n : 1, 1, 5};
    for (int i = 0; i < 3; i++) {
        transcript(f->b, f->n, chunks[i], got, sizeof got);
        CHECK(strcmp(got, want) == 0, "%s (chunk %zu): got \"%s\", want \"%s\"", name, chunks[i], got, want);
    }
}

static frames f;

static void test_fragmentation(void) {
    /* docs/WEBSOCKET-RUNTIME.md#conformance-cases case 25: a ping between fragments is reported first (pong at once). */
    f.n = 0;
    frame(&f, false, OSP_WS_OP_TEXT, "frag1", 5);
    frame(&f, true, OSP_WS_OP_PING, "x", 1);
    frame(&f, true, OSP_WS_OP_CONTINUATION, "frag2", 5);
    expect("ping between fragments", &f, "PING(x) TEXT(frag1frag2) ");
    /* Case 34: three empty fragments make one empty message. */
    f.n = 0;
    frame(&f, false, OSP_WS_OP_TEXT, "", 0);
    frame(&f, false, OSP_WS_OP_CONTINUATION, "", 0);
    frame(&f, true, OSP_WS_OP_CONTINUATION, "", 0);
    expect("three empty fragments", &f, "TEXT() ");
    /* Case 26: continuation with nothing to continue. */
    f.n = 0;
    frame(&f, true, OSP_WS_OP_CONTINUATION, "x", 1);
    expect("lone continuation FIN=1", &f, "FAIL(1002) ");
    f.n = 0;
    frame(&f, false, OSP_WS_OP_CONTINUATION, "x", 1);
    expect("lone continuation FIN=0", &f, "FAIL(1002) ");
    /* Case 27: a new data frame inside a fragmented message. */
    f.n = 0;
    frame(&f, false, OSP_WS_OP_TEXT, "a", 1);
    frame(&f, true, OSP_WS_OP_TEXT, "b", 1);
    expect("text inside text", &f, "FAIL(1002) ");
    /* Messages in order, then a valid message before a bad frame is still delivered (3.2). */
    f.n = 0;
    frame(&f, true, OSP_WS_OP_TEXT, "Hello", 5);
    raw(&f, "\xA1\x00", 2); /* RSV2 */
    frame(&f, true, OSP_WS_OP_PING, "", 0);
    expect("message then RSV frame", &f, "TEXT(Hello) FAIL(1002) ");
    /* Unsolicited pongs are reported (and ignored by the connection). */
    f.n = 0;
    frame(&f, true, OSP_WS_OP_PONG, "", 0);
    frame(&f, true, OSP_WS_OP_PONG, "abc", 3);
    frame(&f, true, OSP_WS_OP_PING, "a", 1);
    expect("pongs then ping", &f, "PONG() PONG(abc) PING(a) ");
    /* 125-byte ping. */
    char p125[125];
    memset(p125, 'p', sizeof p125);
    f.n = 0;
    frame(&f, true, OSP_WS_OP_PING, p125, 125);
    expect("125-byte ping", &f, "PING(#125) ");
    /* Binary is not validated as UTF-8. */
    f.n = 0;
    frame(&f, true, OSP_WS_OP_BINARY, "\xFF\xFE\xCE", 3);
    expect("binary with invalid UTF-8", &f, "BIN(#3) ");
}

static void test_utf8(void) {
    /* Case 36: a code point split across fragments. */
    f.n = 0;
    frame(&f, false, OSP_WS_OP_TEXT, "\xE2\x82", 2);
    frame(&f, true, OSP_WS_OP_CONTINUATION, "\xAC", 1);
    expect("euro split across fragments", &f, "TEXT(\xE2\x82\xAC) ");
    /* Case 37-39. */
    f.n = 0;
    frame(&f, true, OSP_WS_OP_TEXT, "\xED\xA0\x80", 3);
    expect("surrogate", &f, "FAIL(1007) ");
    f.n = 0;
    frame(&f, true, OSP_WS_OP_TEXT, "\xC0\xAF", 2);
    expect("overlong /", &f, "FAIL(1007) ");
    f.n = 0;
    frame(&f, true, OSP_WS_OP_TEXT, "\xCE", 1);
    expect("truncated at the end", &f, "FAIL(1007) ");
    /* Case 40: fail fast on the first fragment, before the message is complete. */
    f.n = 0;
    frame(&f, false, OSP_WS_OP_TEXT, "\x61\xF4\x90\x80\x80", 5);
    expect("fail fast in the first fragment", &f, "FAIL(1007) ");
    /* Case 41: fail fast inside one frame whose payload has not fully arrived. */
    f.n = 0;
    uint8_t head[4] = {0x81, 0x7E, 0x03, 0xE8}; /* declares 1000 bytes */
    raw(&f, head, 4);
    raw(&f, "abcdefghij\xFF", 11);
    expect("fail fast mid-frame", &f, "FAIL(1007) ");
    /* Case 42: non-characters are valid. */
    f.n = 0;
    frame(&f, true, OSP_WS_OP_TEXT, "\xEF\xBF\xBE\xEF\xBF\xBF\xF4\x8F\xBF\xBF", 10);
    expect("non-characters", &f, "TEXT(\xEF\xBF\xBE\xEF\xBF\xBF\xF4\x8F\xBF\xBF) ");
}

static void close_frame(frames *out, const void *payload, size_t len) {
    frame(out, true, OSP_WS_OP_CLOSE, payload, len);
}

static void test_close_payloads(void) {
    f.n = 0;
    close_frame(&f, "", 0);
    expect("empty close", &f, "CLOSE(1005,) ");
    f.n = 0;
    close_frame(&f, "\x03", 1);
    expect("1-byte close", &f, "FAIL(1002) ");
    f.n = 0;
    close_frame(&f, "\x03\xE8" "bye", 5);
    expect("1000 bye", &f, "CLOSE(1000,bye) ");
    f.n = 0;
    close_frame(&f, "\x03\xE8\xFF\xFE", 4);
    expect("invalid UTF-8 reason", &f, "FAIL(1007) ");
    char reason[126];
    reason[0] = 0x03;
    reason[1] = (char)0xE8;
    memset(reason + 2, 'r', 123);
    f.n = 0;
    close_frame(&f, reason, 125);
    char want123[160];
    snprintf(want123, sizeof want123, "CLOSE(1000,%.123s) ", reason + 2);
    expect("123-byte reason", &f, want123);
    f.n = 0;
    raw(&f, "\x88\x7E\x00\x7E", 4); /* 126-byte close: control frame too long */
    expect("124-byte reason", &f, "FAIL(1002) ");
    static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999};
    static const unsigned invalid[] = {0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        uint8_t p[2] = {(uint8_t)(valid[i] >> 8), (uint8_t)valid[i]};
        char want[32];
        snprintf(want, sizeof want, "CLOSE(%u,) ", valid[i]);
        f.n = 0;
        close_frame(&f, p, 2);
        expect("valid close code", &f, want);
    }
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        uint8_t p[2] = {(uint8_t)(invalid[i] >> 8), (uint8_t)invalid[i]};
        f.n = 0;
        close_frame(&f, p, 2);
        expect("invalid close code", &f, "FAIL(1002) ");
    }
}

static void test_limits(void) {
    osp_ws_limits saved = limits;
    limits.max_message = 100;
    limits.max_fragments = 4;
    char big[101];
    memset(big, 'a', sizeof big);
    /* Case 52: one byte over the limit in one frame: 1009 from the header alone. */
    f.n = 0;
    frame(&f, true, OSP_WS_OP_TEXT, big, 101);
    expect("101 bytes over a 100-byte limit", &f, "FAIL(1009) ");
    f.n = 0;
    frame(&f, true, OSP_WS_OP_TEXT, big, 100);
    expect("exactly the limit", &f, "TEXT(#100) ");
    /* Case 53: the running total crosses the limit across fragments. */
    f.n = 0;
    frame(&f, false, OSP_WS_OP_BINARY, big, 60);
    frame(&f, true, OSP_WS_OP_CONTINUATION, big, 41);
    expect("fragments over the limit", &f, "FAIL(1009) ");
    /* Fragment cap. */
    f.n = 0;
    frame(&f, false, OSP_WS_OP_TEXT, "a", 1);
    for (int i = 0; i < 3; i++) frame(&f, false, OSP_WS_OP_CONTINUATION, "a", 1);
    frame(&f, true, OSP_WS_OP_CONTINUATION, "a", 1);
    expect("5 fragments over a cap of 4", &f, "FAIL(1009) ");
    f.n = 0;
    frame(&f, false, OSP_WS_OP_TEXT, "a", 1);
    for (int i = 0; i < 2; i++) frame(&f, false, OSP_WS_OP_CONTINUATION, "a", 1);
    frame(&f, true, OSP_WS_OP_CONTINUATION, "a", 1);
    expect("4 fragments at a cap of 4", &f, "TEXT(aaaa) ");
    /* Case 23: 2^40 declared: 1009 from the header, nothing allocated. */
    limits = saved;
    f.n = 0;
    raw(&f, "\x82\x7F\x00\x00\x01\x00\x00\x00\x00\x00", 10);
    expect("2^40 declared", &f, "FAIL(1009) ");
    /* Case 22: MSB set. */
    f.n = 0;
    raw(&f, "\x82\x7F\x80\x00\x00\x00\x00\x00\x00\x01", 10);
    expect("64-bit MSB", &f, "FAIL(1002) ");

    /* The reassembly buffer grows with the bytes that arrive, not with the declared length. */
    osp_ws_reader r;
    osp_ws_reader_init(&r, OSP_WS_ROLE_CLIENT, &limits);
    uint8_t hdr[OSP_WS_MAX_FRAME_HEADER];
    size_t hn = osp_ws_frame_encode_header(hdr, true, OSP_WS_OP_BINARY, 10 * 1024 * 1024, NULL);
    osp_ws_msg_event ev;
    size_t used = osp_ws_reader_feed(&r, hdr, hn, &ev);
    CHECK(used == hn && ev.kind == OSP_WS_MSG_NONE, "10 MiB header accepted under the 16 MiB limit");
    CHECK(r.message.cap == 0, "nothing allocated for a declared 10 MiB (cap %zu)", r.message.cap);
    uint8_t some[1000] = {0};
    used = osp_ws_reader_feed(&r, some, sizeof some, &ev);
    CHECK(r.message.cap < 4096, "allocation follows the bytes received (cap %zu)", r.message.cap);
    osp_ws_reader_free(&r);
}

int main(void) {
    osp_ws_limits_default(&limits);
    test_fragmentation();
    test_utf8();
    test_close_payloads();
    test_limits();
    return check_summary("test_ws_message");
}
