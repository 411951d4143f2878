/*
 * Wire-level conformance over loopback (docs/WEBSOCKET-RUNTIME.md#conformance-cases). Server direction: a raw peer writes
 * hand-made handshakes and frames (any FIN/RSV/opcode/mask, chopped as it likes) to the
 * runtime's echo server and checks the exact bytes that come back: echoes with minimal length
 * encoding and no mask, pongs, Close frames with the exact code, and that the server closes TCP
 * first. Client direction: a fake server thread checks the runtime client's request and frames
 * (fresh mask keys) and misbehaves on purpose (wrong accept, masked frames, never closing TCP).
 *
 * Limits are shrunk through the environment before the runtime starts, as the tools allow.
 */
#include "runtime.h"
#include "ws_frame.h"
#include "ws_handshake.h"
#include "check.h" /* messages are passed as Strings: osp_gc_strdup_c gives them their length header */
#include "loopback.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG(r) ((const char *)(intptr_t)(r).value)
#define MAX_MESSAGE 100000

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- a raw peer ------------------------------------------------------------------------------ */

typedef struct {
    int fd;
    uint8_t *buf;
    size_t len;
} peer;

typedef struct {
    int fin, rsv, opcode, masked;
    uint8_t header[14];
    size_t hlen;
    uint8_t *payload; /* malloc'd */
    size_t len;
} frame;

static void peer_init(peer *p, int fd) {
    p->fd = fd;
    p->buf = malloc(4 * 1024 * 1024);
    p->len = 0;
}

static int peer_open(peer *p, int port) {
    int fd = loopback_connect(port);
    if (fd < 0) return -1;
    peer_init(p, fd);
    return 0;
}

static void peer_close(peer *p) {
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
    free(p->buf);
    p->buf = NULL;
}

/* Reads more bytes: >0 got some, 0 EOF, -1 timeout or error. */
static int peer_fill(peer *p, int timeout_ms) {
    struct pollfd pfd = {p->fd, POLLIN, 0};
    int rc = poll(&pfd, 1, timeout_ms);
    if (rc <= 0) return -1;
    ssize_t n = recv(p->fd, p->buf + p->len, 4 * 1024 * 1024 - p->len, 0);
    if (n < 0) return errno == ECONNRESET ? 0 : -1;
    p->len += (size_t)n;
    return (int)(n > 0 ? 1 : 0);
}

static void peer_consume(peer *p, size_t n) {
    memmove(p->buf, p->buf + n, p->len - n);
    p->len -= n;
}

static void peer_write(peer *p, const void *data, size_t len) {
    const uint8_t *b = data;
    while (len > 0) {
        ssize_t w = send(p->fd, b, len, MSG_NOSIGNAL);
        if (w <= 0) return;
        b += w;
        len -= (size_t)w;
    }
}

/* Sends one frame; mask_key NULL = unmasked. chop > 0 writes it in pieces of that size. */
static void peer_frame(peer *p, int fin, int rsv, int opcode, const void *payload, size_t len, int masked,
                       size_t chop) {
    uint8_t *f = malloc(len + 14);
    uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    size_t h = osp_ws_frame_encode_header(f, fin, (uint8_t)opcode, len, masked ? key : NULL);
    f[0] |= (uint8_t)(rsv << 4);
    memcpy(f + h, payload, len);
    if (masked) osp_ws_mask(f + h, len, key, 0);
    if (chop == 0) {
        peer_write(p, f, h + len);
    } else {
        for (size_t off = 0; off < h + len; off += chop) {
            peer_write(p, f + off, h + len - off < chop ? h + len - off : chop);
            osp_sleep(1);
        }
    }
    free(f);
}

static void peer_text(peer *p, const char *s) { peer_frame(p, 1, 0, OSP_WS_OP_TEXT, s, strlen(s), 1, 0); }

/* Reads one frame: 1 frame, 0 EOF, -1 timeout. */
static int peer_read_frame(peer *p, int timeout_ms, frame *f) {
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    memset(f, 0, sizeof *f);
    for (;;) {
        if (p->len >= 2) {
            size_t h = 2;
            uint64_t len = p->buf[1] & 0x7F;
            int masked = (p->buf[1] & 0x80) != 0;
            if (len == 126) h = 4;
            if (len == 127) h = 10;
            if (masked) h += 4;
            if (p->len >= h) {
                uint64_t len7 = len;
                if (len7 == 126) len = ((uint64_t)p->buf[2] << 8) | p->buf[3];
                if (len7 == 127) {
                    len = 0;
                    for (int i = 0; i < 8; i++) len = (len << 8) | p->buf[2 + i];
                }
                if (p->len >= h + len) {
                    f->fin = (p->buf[0] & 0x80) != 0;
                    f->rsv = (p->buf[0] >> 4) & 7;
                    f->opcode = p->buf[0] & 0x0F;
                    f->masked = masked;
                    memcpy(f->header, p->buf, h);
                    f->hlen = h;
                    f->len = (size_t)len;
                    f->payload = malloc(f->len + 1);
                    memcpy(f->payload, p->buf + h, f->len);
                    if (masked) osp_ws_mask(f->payload, f->len, p->buf + h - 4, 0);
                    f->payload[f->len] = 0;
                    peer_consume(p, h + f->len);
                    return 1;
                }
            }
        }
        uint64_t t = now_ms();
        if (t >= deadline) return -1;
        int rc = peer_fill(p, (int)(deadline - t));
        if (rc == 0) return 0;
        if (rc < 0) return -1;
    }
}

static void frame_free(frame *f) { free(f->payload); f->payload = NULL; }

/* Writes a request and reads the response head; returns the status (0 on EOF/timeout). */
static int peer_handshake_raw(peer *p, const char *request, size_t chop) {
    size_t n = strlen(request);
    if (chop == 0) chop = n;
    for (size_t off = 0; off < n; off += chop) {
        peer_write(p, request + off, n - off < chop ? n - off : chop);
        if (chop < n) osp_sleep(1);
    }
    uint64_t deadline = now_ms() + 3000;
    for (;;) {
        p->buf[p->len] = 0;
        char *end = strstr((char *)p->buf, "\r\n\r\n");
        if (end) {
            int status = 0;
            sscanf((char *)p->buf, "HTTP/1.1 %d", &status);
            size_t head = (size_t)(end + 4 - (char *)p->buf);
            peer_consume(p, head);
            return status;
        }
        if (now_ms() >= deadline || peer_fill(p, 200) == 0) return 0;
    }
}

static char request_text[1024];
static const char *request_for(const char *path) {
    snprintf(request_text, sizeof request_text,
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path);
    return request_text;
}

static int peer_upgrade(peer *p, int port) {
    if (peer_open(p, port) != 0) return 0;
    return peer_handshake_raw(p, request_for("/echo"), 0) == 101;
}

/* Waits for EOF from the server (it closes TCP first): 1 yes, 0 no within the time. */
static int peer_wait_eof(peer *p, int timeout_ms) {
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (now_ms() < deadline) {
        int rc = peer_fill(p, 50);
        if (rc == 0) return 1;
        if (rc > 0) p->len = 0; /* drop anything else */
    }
    return 0;
}

/* Expects a Close frame with `code` (0 = empty payload) and then EOF from the server. */
static void expect_fail(const char *name, peer *p, int code) {
    frame f;
    int got = 0;
    for (;;) {
        int rc = peer_read_frame(p, 2000, &f);
        if (rc != 1) break;
        if (f.opcode == OSP_WS_OP_CLOSE) {
            int c = f.len >= 2 ? (f.payload[0] << 8) | f.payload[1] : 0;
            CHECK(c == code, "%s: close code %d, want %d", name, c, code);
            got = 1;
            frame_free(&f);
            break;
        }
        if (f.opcode == OSP_WS_OP_PING) { /* keep-alive (half the idle timeout) */
            frame_free(&f);
            continue;
        }
        CHECK(0, "%s: unexpected frame opcode %d before the close", name, f.opcode);
        frame_free(&f);
    }
    CHECK(got, "%s: a Close frame was sent", name);
    CHECK(peer_wait_eof(p, 2000), "%s: the server closed TCP", name);
}

/* ---- server direction ---------------------------------------------------------------------- */

static int server_port;

static void test_echo_sizes(void) {
    peer p;
    CHECK(peer_upgrade(&p, server_port), "upgrade");
    size_t sizes[] = {0, 125, 126, 127, 65535, 65536, MAX_MESSAGE};
    char *data = malloc(MAX_MESSAGE);
    for (size_t i = 0; i < MAX_MESSAGE; i++) data[i] = (char)('a' + i % 26);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        peer_frame(&p, 1, 0, OSP_WS_OP_TEXT, data, sizes[s], 1, 0);
        frame f;
        CHECK(peer_read_frame(&p, 3000, &f) == 1, "echo of %zu", sizes[s]);
        CHECK(f.opcode == OSP_WS_OP_TEXT && f.fin && !f.masked && f.len == sizes[s] &&
                  memcmp(f.payload, data, sizes[s]) == 0,
              "echo of %zu is exact and unmasked", sizes[s]);
        size_t want_h = sizes[s] <= 125 ? 2 : sizes[s] <= 65535 ? 4 : 10;
        CHECK(f.hlen == want_h, "minimal length encoding for %zu (%zu header bytes)", sizes[s], f.hlen);
        frame_free(&f);
    }
    /* 65536 bytes of binary written in 997-byte chops, embedded NULs included. */
    memset(data, 0, 100);
    peer_frame(&p, 1, 0, OSP_WS_OP_BINARY, data, 65536, 1, 997);
    frame f;
    CHECK(peer_read_frame(&p, 3000, &f) == 1 && f.opcode == OSP_WS_OP_BINARY && f.len == 65536 &&
              memcmp(f.payload, data, 65536) == 0,
          "chopped binary echo");
    frame_free(&f);
    /* Three frames in one write → three echoes in order. */
    uint8_t three[64];
    size_t n = 0;
    uint8_t key[4] = {1, 2, 3, 4};
    const char *words[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        size_t h = osp_ws_frame_encode_header(three + n, 1, OSP_WS_OP_TEXT, strlen(words[i]), key);
        memcpy(three + n + h, words[i], strlen(words[i]));
        osp_ws_mask(three + n + h, strlen(words[i]), key, 0);
        n += h + strlen(words[i]);
    }
    peer_write(&p, three, n);
    for (int i = 0; i < 3; i++) {
        CHECK(peer_read_frame(&p, 2000, &f) == 1 && strcmp((char *)f.payload, words[i]) == 0, "echo %d in order", i);
        frame_free(&f);
    }
    /* Invalid UTF-8 in a binary message is echoed. */
    peer_frame(&p, 1, 0, OSP_WS_OP_BINARY, "\xFF\xFE", 2, 1, 0);
    CHECK(peer_read_frame(&p, 2000, &f) == 1 && f.opcode == OSP_WS_OP_BINARY && f.len == 2, "binary not validated");
    frame_free(&f);
    /* Clean close: Close 1000 back, then the server closes TCP. */
    peer_frame(&p, 1, 0, OSP_WS_OP_CLOSE, "\x03\xE8" "bye", 5, 1, 0);
    expect_fail("close 1000", &p, 1000);
    free(data);
    peer_close(&p);
}

static void test_control_frames(void) {
    peer p;
    frame f;
    CHECK(peer_upgrade(&p, server_port), "upgrade");
    /* Ping between fragments: the pong comes before the message. */
    peer_frame(&p, 0, 0, OSP_WS_OP_TEXT, "frag1", 5, 1, 0);
    peer_frame(&p, 1, 0, OSP_WS_OP_PING, "x", 1, 1, 0);
    CHECK(peer_read_frame(&p, 1000, &f) == 1 && f.opcode == OSP_WS_OP_PONG && strcmp((char *)f.payload, "x") == 0,
          "pong while the message is incomplete");
    frame_free(&f);
    peer_frame(&p, 1, 0, OSP_WS_OP_CONTINUATION, "frag2", 5, 1, 0);
    CHECK(peer_read_frame(&p, 1000, &f) == 1 && strcmp((char *)f.payload, "frag1frag2") == 0, "reassembled");
    frame_free(&f);
    /* 125-byte ping written one byte at a time. */
    char p125[125];
    memset(p125, 'q', sizeof p125);
    peer_frame(&p, 1, 0, OSP_WS_OP_PING, p125, 125, 1, 1);
    CHECK(peer_read_frame(&p, 3000, &f) == 1 && f.opcode == OSP_WS_OP_PONG && f.len == 125 &&
              memcmp(f.payload, p125, 125) == 0,
          "125-byte pong");
    frame_free(&f);
    /* Unsolicited pongs: nothing back; then a ping is answered. */
    peer_frame(&p, 1, 0, OSP_WS_OP_PONG, "", 0, 1, 0);
    peer_frame(&p, 1, 0, OSP_WS_OP_PONG, "abc", 3, 1, 0);
    peer_frame(&p, 1, 0, OSP_WS_OP_PING, "a", 1, 1, 0);
    CHECK(peer_read_frame(&p, 1000, &f) == 1 && f.opcode == OSP_WS_OP_PONG && strcmp((char *)f.payload, "a") == 0,
          "only the ping is answered");
    frame_free(&f);
    /* Ten pings in one write: ten pongs in order. */
    uint8_t pings[200];
    size_t n = 0;
    uint8_t key[4] = {9, 9, 9, 9};
    for (int i = 0; i < 10; i++) {
        n += osp_ws_frame_encode_header(pings + n, 1, OSP_WS_OP_PING, 1, key);
        pings[n] = (uint8_t)('0' + i) ^ 9;
        n++;
    }
    peer_write(&p, pings, n);
    int pongs = 0, ordered = 1;
    for (int i = 0; i < 10; i++) {
        if (peer_read_frame(&p, 1000, &f) != 1) break;
        if (f.opcode == OSP_WS_OP_PONG) {
            if (f.payload[0] != '0' + i) ordered = 0;
            pongs++;
        }
        frame_free(&f);
    }
    CHECK(pongs == 10 && ordered, "ten pongs in order (%d)", pongs);
    /* Close, then ping and text: no pong, no echo. */
    peer_frame(&p, 1, 0, OSP_WS_OP_CLOSE, "\x03\xE8", 2, 1, 0);
    peer_frame(&p, 1, 0, OSP_WS_OP_PING, "late", 4, 1, 0);
    peer_text(&p, "late");
    expect_fail("close then ping", &p, 1000);
    peer_close(&p);
}

typedef struct {
    const char *name;
    int fin, rsv, opcode;
    const char *payload;
    size_t len;
    int masked;
    int code;
} bad_case;

static void test_failures(void) {
    static const bad_case cases[] = {
        {"unmasked text", 1, 0, OSP_WS_OP_TEXT, "Hello", 5, 0, 1002},
        {"RSV1", 1, 4, OSP_WS_OP_TEXT, "Hello", 5, 1, 1002},
        {"RSV2", 1, 2, OSP_WS_OP_TEXT, "Hello", 5, 1, 1002},
        {"RSV3", 1, 1, OSP_WS_OP_TEXT, "Hello", 5, 1, 1002},
        {"RSV=7 on close", 1, 7, OSP_WS_OP_CLOSE, "", 0, 1, 1002},
        {"opcode 3", 1, 0, 3, "", 0, 1, 1002},
        {"opcode 0xB", 1, 0, 0xB, "x", 1, 1, 1002},
        {"continuation without a message", 1, 0, OSP_WS_OP_CONTINUATION, "x", 1, 1, 1002},
        {"fragmented ping", 0, 0, OSP_WS_OP_PING, "x", 1, 1, 1002},
        {"surrogate", 1, 0, OSP_WS_OP_TEXT, "\xED\xA0\x80", 3, 1, 1007},
        {"overlong", 1, 0, OSP_WS_OP_TEXT, "\xC0\xAF", 2, 1, 1007},
        {"5-byte form", 1, 0, OSP_WS_OP_TEXT, "\xF8\x88\x80\x80\x80", 5, 1, 1007},
        {"truncated", 1, 0, OSP_WS_OP_TEXT, "\xCE", 1, 1, 1007},
        {"close payload of 1 byte", 1, 0, OSP_WS_OP_CLOSE, "\x03", 1, 1, 1002},
        {"close code 0", 1, 0, OSP_WS_OP_CLOSE, "\x00\x00", 2, 1, 1002},
        {"close code 999", 1, 0, OSP_WS_OP_CLOSE, "\x03\xE7", 2, 1, 1002},
        {"close code 1004", 1, 0, OSP_WS_OP_CLOSE, "\x03\xEC", 2, 1, 1002},
        {"close code 1005", 1, 0, OSP_WS_OP_CLOSE, "\x03\xED", 2, 1, 1002},
        {"close code 1006", 1, 0, OSP_WS_OP_CLOSE, "\x03\xEE", 2, 1, 1002},
        {"close code 1016", 1, 0, OSP_WS_OP_CLOSE, "\x03\xF8", 2, 1, 1002},
        {"close code 2999", 1, 0, OSP_WS_OP_CLOSE, "\x0B\xB7", 2, 1, 1002},
        {"close code 5000", 1, 0, OSP_WS_OP_CLOSE, "\x13\x88", 2, 1, 1002},
        {"close reason not UTF-8", 1, 0, OSP_WS_OP_CLOSE, "\x03\xE8\xFF\xFE", 4, 1, 1007},
        {"close 3000 is echoed", 1, 0, OSP_WS_OP_CLOSE, "\x0B\xB8", 2, 1, 3000},
        {"close 4999 is echoed", 1, 0, OSP_WS_OP_CLOSE, "\x13\x87", 2, 1, 4999},
        {"empty close gets an empty close", 1, 0, OSP_WS_OP_CLOSE, "", 0, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        peer p;
        CHECK(peer_upgrade(&p, server_port), "%s: upgrade", c->name);
        peer_frame(&p, c->fin, c->rsv, c->opcode, c->payload, c->len, c->masked, 0);
        expect_fail(c->name, &p, c->code);
        peer_close(&p);
    }
    peer p;
    frame f;
    /* A valid message before a bad frame is echoed, then 1002, and the ping after is ignored. */
    CHECK(peer_upgrade(&p, server_port), "upgrade");
    peer_text(&p, "Hello");
    peer_frame(&p, 1, 2, OSP_WS_OP_TEXT, "x", 1, 1, 0);
    peer_frame(&p, 1, 0, OSP_WS_OP_PING, "", 0, 1, 0);
    CHECK(peer_read_frame(&p, 1000, &f) == 1 && strcmp((char *)f.payload, "Hello") == 0, "echo before the failure");
    frame_free(&f);
    expect_fail("RSV after a message", &p, 1002);
    peer_close(&p);
    /* A new data frame inside a fragmented message. */
    CHECK(peer_upgrade(&p, server_port), "upgrade");
    peer_frame(&p, 0, 0, OSP_WS_OP_TEXT, "a", 1, 1, 0);
    peer_frame(&p, 1, 0, OSP_WS_OP_TEXT, "b", 1, 1, 0);
    expect_fail("text inside text", &p, 1002);
    peer_close(&p);
    /* Ping of 126 bytes. */
    char big[126];
    memset(big, 'b', sizeof big);
    CHECK(peer_upgrade(&p, server_port), "upgrade");
    peer_frame(&p, 1, 0, OSP_WS_OP_PING, big, 126, 1, 0);
    expect_fail("ping of 126", &p, 1002);
    peer_close(&p);
    /* 64-bit length with the MSB set. */
    CHECK(peer_upgrade(&p, server_port), "upgrade");
    peer_write(&p, "\x82\xFF\x80\x00\x00\x00\x00\x00\x00\x01\x01\x02\x03\x04", 14);
    expect_fail("64-bit MSB", &p, 1002);
    peer_close(&p);
    /* 2^40 declared: 1009 at once from the header. */
    CHECK(peer_upgrade(&p, server_port), "upgrade");
    peer_write(&p, "\x82\xFF\x00\x00\x01\x00\x00\x00\x00\x00\x01\x02\x03\x04", 14);
    expect_fail("2^40 declared", &p, 1009);
    peer_close(&p);
    /* One byte over the message limit, in one frame and across fragments. */
    char *over = calloc(1, MAX_MESSAGE + 1);
    CHECK(peer_upgrade(&p, server_port), "upgrade");
    peer_frame(&p, 1, 0, OSP_WS_OP_BINARY, over, MAX_MESSAGE + 1, 1, 0);
    expect_fail("one byte over the limit", &p, 1009);
    peer_close(&p);
    CHECK(peer_upgrade(&p, server_port), "upgrade");
    peer_frame(&p, 0, 0, OSP_WS_OP_BINARY, over, MAX_MESSAGE / 2, 1, 0);
    peer_frame(&p, 1, 0, OSP_WS_OP_CONTINUATION, over, MAX_MESSAGE / 2 + 1, 1, 0);
    expect_fail("fragments over the limit", &p, 1009);
    peer_close(&p);
    free(over);
    /* Fragment cap (1024 by default): 1-byte fragments of a message that never ends. */
    CHECK(peer_upgrade(&p, server_port), "upgrade");
    peer_frame(&p, 0, 0, OSP_WS_OP_TEXT, "a", 1, 1, 0);
    uint8_t *many = malloc(1100 * 7);
    size_t n = 0;
    uint8_t key[4] = {0, 0, 0, 0};
    for (int i = 0; i < 1100; i++) {
        n += osp_ws_frame_encode_header(many + n, 0, OSP_WS_OP_CONTINUATION, 1, key);
        many[n++] = 'a';
    }
    peer_write(&p, many, n);
    free(many);
    expect_fail("too many fragments", &p, 1009);
    peer_close(&p);
    /* Fail fast: an invalid first fragment and nothing more → 1007 at once. */
    CHECK(peer_upgrade(&p, server_port), "upgrade");
    uint64_t t0 = now_ms();
    peer_frame(&p, 0, 0, OSP_WS_OP_TEXT, "\x61\xF4\x90\x80\x80", 5, 1, 0);
    expect_fail("fail fast", &p, 1007);
    CHECK(now_ms() - t0 < 1000, "fail fast took %" PRIu64 " ms", now_ms() - t0);
    peer_close(&p);
    /* Fail fast inside one frame: 1000 bytes declared, 20 sent with an FF. */
    CHECK(peer_upgrade(&p, server_port), "upgrade");
    peer_write(&p, "\x81\xFE\x03\xE8\x00\x00\x00\x00" "abcdefghijklmnopqrs\xFF", 28);
    expect_fail("fail fast mid-frame", &p, 1007);
    peer_close(&p);
    /* TCP FIN without a Close: the server frees the connection. */
    CHECK(peer_upgrade(&p, server_port), "upgrade");
    shutdown(p.fd, SHUT_WR);
    CHECK(peer_wait_eof(&p, 2000), "server closes after our FIN");
    peer_close(&p);
}

static void test_handshakes(void) {
    peer p;
    frame f;
    /* One byte per write, 1 ms apart, so the server has to resume a partial request ~180 times.
     * That takes ~0.2 s idle, but the sleeps stretch on a loaded machine (load 15-30 made it
     * outlast the 500 ms handshake deadline the main server has for the slowloris check, and the
     * server rightly dropped it). So this runs against a server of its own with a generous 30 s
     * deadline: what it catches, a parser that cannot resume a request split anywhere, answers
     * 400 or drops the connection rather than answering 101 late. */
    int slow_port = free_port();
    OspResult r = osp_ws_create_server(slow_port, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/echo"));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "create: %s", MSG(r));
    int64_t slow_server = r.value;
    r = osp_ws_server_set_limit(slow_server, osp_gc_strdup_c("handshakeTimeoutMs"), 30000);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "set handshakeTimeoutMs: %s", MSG(r));
    r = osp_ws_server_listen(slow_server);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "listen: %s", MSG(r));
    CHECK(peer_open(&p, slow_port) == 0, "open");
    CHECK(peer_handshake_raw(&p, request_for("/echo"), 1) == 101, "handshake byte by byte");
    peer_close(&p);
    r = osp_ws_stop_server(slow_server);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "stop: %s", MSG(r));
    /* Handshake and first frame in one write. */
    CHECK(peer_open(&p, server_port) == 0, "open");
    char both[600];
    size_t rl = strlen(request_for("/echo"));
    memcpy(both, request_text, rl);
    memcpy(both + rl, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
    peer_write(&p, both, rl + 11);
    both[rl] = 0;
    CHECK(peer_handshake_raw(&p, "", 0) == 101, "101 with a frame behind the request");
    CHECK(peer_read_frame(&p, 1000, &f) == 1 && strcmp((char *)f.payload, "Hello") == 0, "that frame is echoed");
    frame_free(&f);
    peer_close(&p);
    /* Refusals, each answered and closed by the server. */
    struct {
        const char *request;
        int status;
    } refusals[] = {
        {"GET /nope HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 404},
        {"GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", 426},
        {"POST /echo HTTP/1.1\r\nHost: h\r\n\r\n", 405},
        {"GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n", 400},
        {"GET /echo HTTP/1.1\r\nBroken header\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
        CHECK(peer_open(&p, server_port) == 0, "open");
        int st = peer_handshake_raw(&p, refusals[i].request, 0);
        CHECK(st == refusals[i].status, "refusal %zu: status %d, want %d", i, st, refusals[i].status);
        CHECK(peer_wait_eof(&p, 2000), "refusal %zu: closed by the server", i);
        peer_close(&p);
    }
    /* 200 header lines → 431. */
    char *many = malloc(8192);
    size_t n = (size_t)sprintf(many, "GET /echo HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 200; i++) n += (size_t)sprintf(many + n, "X%d: y\r\n", i);
    strcpy(many + n, "\r\n");
    CHECK(peer_open(&p, server_port) == 0, "open");
    CHECK(peer_handshake_raw(&p, many, 0) == 431, "200 headers → 431");
    peer_close(&p);
    free(many);
    /* Slowloris: a request that never completes is dropped at the handshake deadline (500 ms). */
    CHECK(peer_open(&p, server_port) == 0, "open");
    peer_write(&p, "GET / HTTP/1.1\r\n", 16);
    uint64_t t0 = now_ms();
    CHECK(peer_wait_eof(&p, 3000), "incomplete handshake dropped");
    uint64_t took = now_ms() - t0;
    CHECK(took >= 400 && took < 2500, "dropped after the 500 ms deadline (%" PRIu64 " ms)", took);
    peer_close(&p);
}

static void test_stop_with_silent_peer(void) {
    /* A peer that never answers our Close: websocketStopServer still returns, bounded by the
     * close timeout (1 s here), and the peer saw Close 1001. */
    int port = free_port();
    OspResult r = osp_ws_create_server(port, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/echo"));
    int64_t server = r.value;
    r = osp_ws_server_listen(server);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "listen: %s", MSG(r));
    peer p;
    CHECK(peer_upgrade(&p, port), "upgrade");
    for (int i = 0; i < 200 && osp_ws_server_open_connections(server) != 1; i++) osp_sleep(5);
    uint64_t t0 = now_ms();
    r = osp_ws_stop_server(server);
    uint64_t took = now_ms() - t0;
    CHECK(r.tag == OSP_RESULT_SUCCESS, "stop: %s", MSG(r));
    CHECK(took >= 900 && took < 3000, "stop waited for the close timeout (%" PRIu64 " ms)", took);
    frame f;
    CHECK(peer_read_frame(&p, 1000, &f) == 1 && f.opcode == OSP_WS_OP_CLOSE && f.len >= 2 &&
              ((f.payload[0] << 8) | f.payload[1]) == 1001,
          "the peer got Close 1001");
    frame_free(&f);
    CHECK(peer_wait_eof(&p, 1000), "then TCP was closed");
    peer_close(&p);
    /* A well-behaved peer: the stop is quick. */
    r = osp_ws_create_server(port, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/echo"));
    server = r.value;
    r = osp_ws_server_listen(server);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "relisten: %s", MSG(r));
    CHECK(peer_upgrade(&p, port), "upgrade");
    for (int i = 0; i < 200 && osp_ws_server_open_connections(server) != 1; i++) osp_sleep(5);
    /* Answer the server's Close from a helper loop while stop waits: do it inline by
     * pre-sending nothing and letting stop time out would be slow, so close from our side. */
    peer_frame(&p, 1, 0, OSP_WS_OP_CLOSE, "\x03\xE8", 2, 1, 0);
    expect_fail("peer close before stop", &p, 1000);
    peer_close(&p);
    t0 = now_ms();
    r = osp_ws_stop_server(server);
    CHECK(r.tag == OSP_RESULT_SUCCESS && now_ms() - t0 < 500, "stop with no connections is quick");
}

static void test_idle_timeout(void) {
    /* OSPREY_WS_IDLE_TIMEOUT_MS=1500: a silent peer gets a keep-alive Ping after about 0.75 s
     * and Close 1001 after about 1.5 s; a peer that keeps talking does not, and neither does
     * one that only answers the pings. */
    peer quiet, busy, ponger;
    frame f;
    CHECK(peer_upgrade(&quiet, server_port) && peer_upgrade(&busy, server_port) &&
          peer_upgrade(&ponger, server_port), "upgrade");
    uint64_t t0 = now_ms();
    int pings = 0;
    for (int i = 0; i < 10; i++) {
        peer_text(&busy, "tick");
        CHECK(peer_read_frame(&busy, 1000, &f) == 1, "tick echoed");
        frame_free(&f);
        while (peer_read_frame(&ponger, 200, &f) == 1) {
            if (f.opcode == OSP_WS_OP_PING) {
                pings++;
                peer_frame(&ponger, 1, 0, OSP_WS_OP_PONG, f.len ? (const void *)f.payload : "", f.len, 1, 0);
            }
            frame_free(&f);
        }
    }
    CHECK(pings >= 2, "the silent peer was pinged (%d pings in 2 s)", pings);
    expect_fail("idle connection", &quiet, 1001);
    uint64_t took = now_ms() - t0;
    CHECK(took >= 1400 && took < 3500, "idle close after %" PRIu64 " ms", took);
    peer_text(&busy, "still here");
    CHECK(peer_read_frame(&busy, 1000, &f) == 1 && strcmp((char *)f.payload, "still here") == 0,
          "the busy connection stays open");
    frame_free(&f);
    peer_text(&ponger, "pong only");
    int echoed = 0;
    while (!echoed && peer_read_frame(&ponger, 1000, &f) == 1) {
        echoed = f.opcode == OSP_WS_OP_TEXT && strcmp((char *)f.payload, "pong only") == 0;
        frame_free(&f);
    }
    CHECK(echoed, "the connection that only answered pings stays open");
    peer_close(&ponger);
    peer_close(&quiet);
    peer_close(&busy);
}

static void test_connection_limit(void) {
    /* OSPREY_WS_MAX_CONNECTIONS=8: the ninth connection is answered 503; the others work. */
    int port = free_port();
    OspResult r = osp_ws_create_server(port, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/echo"));
    int64_t server = r.value;
    osp_ws_server_listen(server);
    peer ps[9];
    for (int i = 0; i < 8; i++) CHECK(peer_upgrade(&ps[i], port), "connection %d", i);
    CHECK(peer_open(&ps[8], port) == 0, "ninth TCP connect");
    CHECK(peer_handshake_raw(&ps[8], request_for("/echo"), 0) == 503, "ninth refused with 503");
    peer_text(&ps[3], "still fine");
    frame f;
    CHECK(peer_read_frame(&ps[3], 1000, &f) == 1 && strcmp((char *)f.payload, "still fine") == 0,
          "the others keep working");
    frame_free(&f);
    for (int i = 0; i < 9; i++) peer_close(&ps[i]);
    osp_ws_stop_server(server);
}

/* ---- client direction: a fake server ------------------------------------------------------ */

enum { FAKE_GOOD, FAKE_WRONG_ACCEPT, FAKE_200, FAKE_SILENT, FAKE_MASKED, FAKE_RECORD, FAKE_CLOSE_KEEP_OPEN,
       FAKE_EXTENSION };

typedef struct {
    int port;
    int scenario;
    int listen_fd;
    pthread_t thread;
    /* results */
    char request[2048];
    int client_close_code;   /* code of the client's Close frame, -1 if none */
    int client_eof;          /* the client closed TCP */
    uint64_t eof_after_ms;   /* from our Close to the client's EOF */
    int frames, all_masked, distinct_keys;
    size_t big_len;
    int big_ok;
} fake;

static void *fake_main(void *arg) {
    fake *fs = arg;
    int fd = accept(fs->listen_fd, NULL, NULL);
    if (fd < 0) return NULL;
    peer p;
    peer_init(&p, fd);
    fs->client_close_code = -1;
    /* Read the request head. */
    char *end = NULL;
    uint64_t deadline = now_ms() + 3000;
    while (!end && now_ms() < deadline) {
        if (peer_fill(&p, 100) == 0) break;
        p.buf[p.len] = 0;
        end = strstr((char *)p.buf, "\r\n\r\n");
    }
    if (!end) goto out;
    size_t head = (size_t)(end + 4 - (char *)p.buf);
    snprintf(fs->request, sizeof fs->request, "%.*s", (int)head, (char *)p.buf);
    peer_consume(&p, head);
    char key[64] = "";
    const char *k = strstr(fs->request, "Sec-WebSocket-Key: ");
    if (k) sscanf(k + 19, "%63[^\r]", key);
    char accept[OSP_WS_ACCEPT_LEN + 1];
    osp_ws_accept_key(key, strlen(key), accept);
    char resp[512];
    if (fs->scenario == FAKE_200) {
        snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        peer_write(&p, resp, strlen(resp));
        goto out;
    }
    if (fs->scenario == FAKE_SILENT) {
        peer_wait_eof(&p, 3000);
        goto out;
    }
    snprintf(resp, sizeof resp,
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n%s\r\n",
             fs->scenario == FAKE_WRONG_ACCEPT ? "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" : accept,
             fs->scenario == FAKE_EXTENSION ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "");
    if (fs->scenario == FAKE_WRONG_ACCEPT || fs->scenario == FAKE_EXTENSION) {
        peer_write(&p, resp, strlen(resp));
        peer_wait_eof(&p, 3000);
        goto out;
    }
    /* 101 and a first text frame in the same write (C-H8). */
    uint8_t out[600];
    size_t n = strlen(resp);
    memcpy(out, resp, n);
    if (fs->scenario == FAKE_MASKED) {
        uint8_t key4[4] = {1, 2, 3, 4};
        size_t h = osp_ws_frame_encode_header(out + n, 1, OSP_WS_OP_TEXT, 2, key4);
        out[n + h] = 'h' ^ 1;
        out[n + h + 1] = 'i' ^ 2;
        n += h + 2;
    } else {
        n += osp_ws_frame_encode_header(out + n, 1, OSP_WS_OP_TEXT, 7, NULL);
        memcpy(out + n, "welcome", 7);
        n += 7;
    }
    peer_write(&p, out, n);
    frame f;
    uint8_t keys[64][4];
    fs->all_masked = 1;
    for (;;) {
        int rc = peer_read_frame(&p, 3000, &f);
        if (rc != 1) break;
        /* The mask key is in the header's last 4 bytes. */
        if (!f.masked) fs->all_masked = 0;
        if (f.masked && fs->frames < 64) memcpy(keys[fs->frames], f.header + f.hlen - 4, 4);
        fs->frames++;
        if (f.opcode == OSP_WS_OP_CLOSE) {
            fs->client_close_code = f.len >= 2 ? (f.payload[0] << 8) | f.payload[1] : 0;
            frame_free(&f);
            break;
        }
        if (f.len > 60000) {
            fs->big_len = f.len;
            fs->big_ok = 1;
            for (size_t i = 0; i < f.len; i++)
                if (f.payload[i] != (uint8_t)('A' + i % 7)) fs->big_ok = 0;
        }
        if (fs->scenario == FAKE_RECORD && fs->frames == 21) {
            /* Enough: ask the client to close, keep reading for its answer. */
            peer_write(&p, "\x88\x02\x03\xE8", 4);
        }
        if (fs->scenario == FAKE_CLOSE_KEEP_OPEN && fs->frames == 1) peer_write(&p, "\x88\x02\x03\xE8", 4);
        frame_free(&f);
    }
    int distinct = 0;
    for (int i = 0; i < fs->frames && i < 64; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= memcmp(keys[i], keys[j], 4) == 0;
        distinct += !seen;
    }
    fs->distinct_keys = distinct;
    uint64_t t0 = now_ms();
    if (fs->scenario == FAKE_CLOSE_KEEP_OPEN) {
        /* Keep TCP open: the client must close it itself after its close timeout. */
        fs->client_eof = peer_wait_eof(&p, 4000);
        fs->eof_after_ms = now_ms() - t0;
    } else {
        fs->client_eof = peer_wait_eof(&p, 50) || 1; /* we close first, as a server should */
    }
out:
    peer_close(&p);
    return NULL;
}

static void fake_start(fake *fs, int scenario) {
    memset(fs, 0, sizeof *fs);
    fs->scenario = scenario;
    fs->port = free_port();
    fs->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fs->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = loopback_address(fs->port);
    if (bind(fs->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fs->listen_fd, 4) != 0) {
        perror("fake server");
        exit(2);
    }
    pthread_create(&fs->thread, NULL, fake_main, fs);
}

static void fake_join(fake *fs) {
    pthread_join(fs->thread, NULL);
    close(fs->listen_fd);
}

static pthread_mutex_t got_mu = PTHREAD_MUTEX_INITIALIZER;
static int got_count;
static char got_last[64];

static OspResult record(void *env, const char *message) {
    (void)env;
    pthread_mutex_lock(&got_mu);
    got_count++;
    snprintf(got_last, sizeof got_last, "%s", message);
    pthread_mutex_unlock(&got_mu);
    return osp_result_success(0);
}

static int got(void) {
    pthread_mutex_lock(&got_mu);
    int n = got_count;
    pthread_mutex_unlock(&got_mu);
    return n;
}

static void test_client(void) {
    fake fs;
    char url[128];
    OspResult r;

    /* The request, 20 masked frames with fresh keys, a 70 000-byte message, then close. */
    fake_start(&fs, FAKE_RECORD);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/runCase?case=7", fs.port);
    got_count = 0;
    r = osp_ws_connect(osp_gc_strdup_c(url), record, NULL);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "connect: %s", MSG(r));
    int64_t id = r.value;
    for (int i = 0; i < 200 && got() < 1; i++) osp_sleep(5);
    CHECK(got() == 1 && strcmp(got_last, "welcome") == 0, "frame sent with the 101 is delivered");
    for (int i = 0; i < 20; i++) osp_ws_send(id, osp_gc_strdup_c("ping"));
    char *big = malloc(70001);
    for (int i = 0; i < 70000; i++) big[i] = (char)('A' + i % 7);
    big[70000] = 0;
    osp_ws_send(id, osp_gc_strdup_c(big));
    free(big);
    CHECK(osp_ws_connection_state(id) != OSP_WS_STATE_UNKNOWN, "known id");
    for (int i = 0; i < 400 && osp_ws_connection_state(id) != OSP_WS_STATE_CLOSED; i++) osp_sleep(5);
    CHECK(osp_ws_connection_state(id) == OSP_WS_STATE_CLOSED, "closed after the server's Close");
    fake_join(&fs);
    char host[64];
    snprintf(host, sizeof host, "\r\nHost: 127.0.0.1:%d\r\n", fs.port);
    CHECK(strncmp(fs.request, "GET /runCase?case=7 HTTP/1.1\r\n", 30) == 0, "request line: %.40s", fs.request);
    CHECK(check_contains(fs.request, host), "Host with port");
    CHECK(check_contains(fs.request, "\r\nUpgrade: websocket\r\n") &&
              check_contains(fs.request, "\r\nConnection: Upgrade\r\n") &&
              check_contains(fs.request, "\r\nSec-WebSocket-Version: 13\r\n"),
          "Upgrade, Connection, Version 13");
    const char *k = strstr(fs.request, "Sec-WebSocket-Key: ");
    CHECK(k && osp_ws_key_valid(k + 19, 24), "key is 16 bytes of base64");
    CHECK(fs.frames == 22 && fs.all_masked, "22 frames, all masked (%d, %d)", fs.frames, fs.all_masked);
    CHECK(fs.distinct_keys >= 20, "fresh mask keys (%d distinct of %d)", fs.distinct_keys, fs.frames);
    CHECK(fs.big_len == 70000 && fs.big_ok, "70 000-byte message unmasks correctly");
    CHECK(fs.client_close_code == 1000, "client answered Close 1000 (%d)", fs.client_close_code);

    /* A second connection uses a different key. */
    char first_key[32];
    snprintf(first_key, sizeof first_key, "%.24s", k ? k + 19 : "");
    fake_start(&fs, FAKE_RECORD);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", fs.port);
    r = osp_ws_connect(osp_gc_strdup_c(url), record, NULL);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "connect: %s", MSG(r));
    r = osp_ws_close(r.value);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "close: %s", MSG(r));
    fake_join(&fs);
    k = strstr(fs.request, "Sec-WebSocket-Key: ");
    CHECK(k && strncmp(k + 19, first_key, 24) != 0, "a fresh key per connection");
    CHECK(fs.client_close_code == 1000, "websocketClose sends 1000 (%d)", fs.client_close_code);

    /* Handshake failures. */
    fake_start(&fs, FAKE_WRONG_ACCEPT);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", fs.port);
    r = osp_ws_connect(osp_gc_strdup_c(url), record, NULL);
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "Sec-WebSocket-Accept does not match"), "%s", MSG(r));
    fake_join(&fs);
    fake_start(&fs, FAKE_EXTENSION);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", fs.port);
    r = osp_ws_connect(osp_gc_strdup_c(url), record, NULL);
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "extension that was not offered"), "%s", MSG(r));
    fake_join(&fs);
    fake_start(&fs, FAKE_200);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", fs.port);
    r = osp_ws_connect(osp_gc_strdup_c(url), record, NULL);
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "server answered HTTP 200 OK"), "%s", MSG(r));
    fake_join(&fs);
    fake_start(&fs, FAKE_SILENT);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", fs.port);
    uint64_t t0 = now_ms();
    r = osp_ws_connect(osp_gc_strdup_c(url), record, NULL);
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "timed out after 500 ms"), "%s", MSG(r));
    CHECK(now_ms() - t0 < 2000, "handshake timeout honoured");
    fake_join(&fs);

    /* A masked frame from the server: the client fails the connection with 1002. */
    fake_start(&fs, FAKE_MASKED);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", fs.port);
    got_count = 0;
    r = osp_ws_connect(osp_gc_strdup_c(url), record, NULL);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "connect: %s", MSG(r));
    fake_join(&fs);
    CHECK(fs.client_close_code == 1002, "client failed with 1002 (%d)", fs.client_close_code);
    CHECK(got() == 0, "the masked message was not delivered");
    for (int i = 0; i < 200 && osp_ws_connection_state(r.value) != OSP_WS_STATE_CLOSED; i++) osp_sleep(5);
    r = osp_ws_send(r.value, osp_gc_strdup_c("x"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "already closed (code 1002)"), "%s", MSG(r));

    /* The server sends Close and keeps TCP open: the client answers and closes TCP after its
     * close timeout (1 s). */
    fake_start(&fs, FAKE_CLOSE_KEEP_OPEN);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", fs.port);
    r = osp_ws_connect(osp_gc_strdup_c(url), record, NULL);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "connect: %s", MSG(r));
    osp_ws_send(r.value, osp_gc_strdup_c("one"));
    fake_join(&fs);
    CHECK(fs.client_close_code == 1000, "client echoed Close 1000 (%d)", fs.client_close_code);
    CHECK(fs.client_eof && fs.eof_after_ms >= 700 && fs.eof_after_ms < 3000,
          "client closed TCP after its timeout (%" PRIu64 " ms)", fs.eof_after_ms);
}

int main(void) {
    setenv("OSPREY_WS_MAX_MESSAGE", "100000", 1);
    setenv("OSPREY_WS_HANDSHAKE_TIMEOUT_MS", "500", 1);
    setenv("OSPREY_WS_CLOSE_TIMEOUT_MS", "1000", 1);
    setenv("OSPREY_WS_MAX_CONNECTIONS", "8", 1);
    setenv("OSPREY_WS_IDLE_TIMEOUT_MS", "1500", 1);
    setenv("OSPREY_WS_MAX_FRAGMENTS", "1024", 1); /* the cap is still enforced when set */
    osp_rt_init(OSP_ABI_VERSION);
    server_port = free_port();
    OspResult r = osp_ws_create_server(server_port, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/echo"));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "create: %s", MSG(r));
    int64_t server = r.value;
    r = osp_ws_server_listen(server);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "listen: %s", MSG(r));
    test_echo_sizes();
    test_control_frames();
    test_failures();
    test_handshakes();
    test_idle_timeout();
    test_stop_with_silent_peer();
    test_client();
    r = osp_ws_stop_server(server);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "stop: %s", MSG(r));
    test_connection_limit();
    int status = check_summary("test_ws_conformance");
    return osp_rt_shutdown(status);
}
