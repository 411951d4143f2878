/*
 * Session tests (ws_session.c), byte by byte: the close handshake initiated by either side and
 * in either role, the Close answered to every invalid close payload (RFC 6455 §5.5.1, §7.4),
 * pongs ahead of data and between fragments, fragmented text split at every byte, control
 * frames inside a fragmented message, the deadlines (keep-alive ping, idle close, message
 * timeout, close timeout → 1006), limits (1009), invalid UTF-8 (1007), the masking rules of each
 * role, the pong slot under backpressure and an output that refuses a frame. Every input is fed
 * whole, one byte at a time and in 5-byte chunks, and must give the same events and the same
 * output bytes each way. No sockets and no clock: time is an argument.
 */
#include "ws_session.h"
#include "check.h"

#include <stdlib.h>

static osp_ws_limits limits;

/* ---- the output: a byte array, a settable backlog, predictable masking keys ------------------- */

typedef struct {
    uint8_t bytes[4096];
    size_t n;
    size_t backlog;    /* what `pending` reports beyond the bytes written (a slow peer) */
    bool count_written; /* `pending` includes the bytes written (nothing leaves) */
    bool refuse;       /* write fails (out of memory) */
    unsigned closing_calls;
    uint8_t next_key;
} sink;

static int sink_write(void *ctx, const uint8_t *bytes, size_t len) {
    sink *k = ctx;
    if (k->refuse || k->n + len > sizeof k->bytes) return -1;
    memcpy(k->bytes + k->n, bytes, len);
    k->n += len;
    return 0;
}

static size_t sink_pending(const void *ctx) {
    const sink *k = ctx;
    return k->backlog + (k->count_written ? k->n : 0);
}

/* Keys 0x10 0x11 0x12 0x13, then 0x14…: the test can predict every masked byte. */
static bool sink_mask_key(void *ctx, uint8_t key[4]) {
    sink *k = ctx;
    for (int i = 0; i < 4; i++) key[i] = (uint8_t)(0x10 + k->next_key++);
    return true;
}

static int sink_closing(void *ctx) {
    ((sink *)ctx)->closing_calls++;
    return 0;
}

static const osp_ws_session_output sink_output = {sink_write, sink_pending, sink_mask_key, sink_closing};

/* ---- input frames ------------------------------------------------------------------------------ */

typedef struct {
    uint8_t b[8192];
    size_t n;
} frames;

static const uint8_t peer_key[4] = {0xA1, 0xB2, 0xC3, 0xD4};

/* A frame as the peer of `role` sends it: masked towards a server, unmasked towards a client. */
static void frame_to(frames *f, osp_ws_role role, bool fin, uint8_t op, const void *payload, size_t len) {
    bool masked = role == OSP_WS_ROLE_SERVER;
    f->n += osp_ws_frame_encode_header(f->b + f->n, fin, op, len, masked ? peer_key : NULL);
    if (len) memcpy(f->b + f->n, payload, len);
    if (masked) osp_ws_mask(f->b + f->n, len, peer_key, 0);
    f->n += len;
}

/* The frame a server session writes (unmasked). */
static void server_frame(frames *f, uint8_t op, const void *payload, size_t len) {
    f->n += osp_ws_frame_encode_header(f->b + f->n, true, op, len, NULL);
    if (len) memcpy(f->b + f->n, payload, len);
    f->n += len;
}

/* ---- running a session over an input ------------------------------------------------------------ */

typedef struct {
    char log[2048];   /* the events, e.g. "MSG(text:hello)@4 CLOSE(1000,bye)@8 " (@: output bytes so far) */
    sink out;
    osp_ws_session s;
} run;

static void log_event(run *r, const osp_ws_session_event *ev) {
    size_t o = strlen(r->log), cap = sizeof r->log - o;
    switch (ev->kind) {
    case OSP_WS_SESSION_NONE:
        return;
    case OSP_WS_SESSION_MESSAGE:
        if (ev->len > 40)
            snprintf(r->log + o, cap, "MSG(%s#%zu)@%zu ", ev->opcode == OSP_WS_OP_TEXT ? "text" : "bin", ev->len, r->out.n);
        else
            snprintf(r->log + o, cap, "MSG(%s:%.*s)@%zu ", ev->opcode == OSP_WS_OP_TEXT ? "text" : "bin", (int)ev->len,
                     ev->len ? (const char *)ev->data : "", r->out.n);
        return;
    case OSP_WS_SESSION_CLOSE:
        snprintf(r->log + o, cap, "CLOSE(%u,%.*s)@%zu ", ev->code, (int)ev->reason_len,
                 ev->reason_len ? ev->reason : "", r->out.n);
        return;
    case OSP_WS_SESSION_FAIL:
        snprintf(r->log + o, cap, "FAIL(%u)@%zu ", ev->code, r->out.n);
        return;
    case OSP_WS_SESSION_DROP:
        snprintf(r->log + o, cap, "DROP(%u)@%zu ", ev->code, r->out.n);
        return;
    }
}

static void start(run *r, osp_ws_role role, uint64_t now) {
    memset(r, 0, sizeof *r);
    osp_ws_session_init(&r->s, role, &limits, &sink_output, &r->out);
    osp_ws_session_open(&r->s, now);
}

/* Feeds `len` bytes (copied: they are unmasked in place) in chunks of `chunk` at time `now`. */
static void feed(run *r, const uint8_t *in, size_t len, size_t chunk, uint64_t now) {
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, in, len);
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        size_t used = 0;
        while (used < n) {
            osp_ws_session_event ev;
            used += osp_ws_session_receive(&r->s, copy + off + used, n - used, now, &ev);
            log_event(r, &ev);
            osp_ws_session_release(&r->s);
            if (ev.kind == OSP_WS_SESSION_DROP) break;
        }
    }
    free(copy);
}

static void tick(run *r, uint64_t now) {
    osp_ws_session_event ev;
    osp_ws_session_tick(&r->s, now, &ev);
    log_event(r, &ev);
}

/* Feeds `in` to a fresh session of `role` whole, byte by byte and in 5-byte chunks; each way
 * must log `want_log` and write exactly `want_out`. Leaves the whole-input run in *r. */
static void expect(const char *name, osp_ws_role role, const frames *in, const char *want_log, const frames *want_out,
                   run *r) {
    size_t chunks[] = {1, 5, in->n ? in->n : 1};
    for (int i = 0; i < 3; i++) {
        if (i > 0) osp_ws_session_free(&r->s);
        start(r, role, 1000);
        feed(r, in->b, in->n, chunks[i], 1000);
        CHECK(strcmp(r->log, want_log) == 0, "%s (chunk %zu): log \"%s\", want \"%s\"", name, chunks[i], r->log,
              want_log);
        bool same = r->out.n == want_out->n && memcmp(r->out.bytes, want_out->b, want_out->n) == 0;
        CHECK(same, "%s (chunk %zu): wrote %zu bytes, want %zu (first byte %02x)", name, chunks[i], r->out.n,
              want_out->n, r->out.n ? r->out.bytes[0] : 0);
    }
}

static bool wrote(const run *r, const frames *want) {
    return r->out.n == want->n && memcmp(r->out.bytes, want->b, want->n) == 0;
}

/* The Close a server writes: code and reason. */
static void server_close(frames *f, uint16_t code, const char *reason) {
    uint8_t p[125] = {(uint8_t)(code >> 8), (uint8_t)code};
    size_t n = 2 + (reason ? strlen(reason) : 0);
    if (reason) memcpy(p + 2, reason, n - 2);
    server_frame(f, OSP_WS_OP_CLOSE, p, n);
}

/* ---- the close handshake ------------------------------------------------------------------------ */

static void test_peer_closes(void) {
    run r;
    frames in = {0}, want = {0};
    /* Server: the client's Close(1000, "bye") is answered with Close(1000) (RFC 6455 §5.5.1),
     * then data that follows is dropped (§7.1.7) and the server ends TCP first (§7.1.1). */
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_CLOSE, "\x03\xE8" "bye", 5);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_TEXT, "late", 4);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_PING, "p", 1);
    server_close(&want, 1000, NULL);
    expect("client closes, server answers", OSP_WS_ROLE_SERVER, &in, "CLOSE(1000,bye)@4 ", &want, &r);
    CHECK(r.s.phase == OSP_WS_SESSION_CLOSED, "phase %d", r.s.phase);
    CHECK(osp_ws_session_ends_tcp_first(&r.s), "the server ends TCP first");
    CHECK(r.s.close_code == 1000 && r.s.close_reason_len == 3 && memcmp(r.s.close_reason, "bye", 3) == 0,
          "reported %u", r.s.close_code);
    CHECK(!osp_ws_session_accepts_data(&r.s), "no data after a Close");
    CHECK(r.out.closing_calls == 1, "the owner queued posted data before the Close (%u)", r.out.closing_calls);
    CHECK(osp_ws_session_next_deadline(&r.s) == 1000 + limits.close_timeout_ms, "close deadline starts");
    /* The client's FIN arrives: the application is told what the peer sent. */
    CHECK(osp_ws_session_transport_ended(&r.s) == 1000, "EOF after the exchange reports 1000");
    osp_ws_session_free(&r.s);

    /* Client: the server's Close is answered with a masked Close (key 10 11 12 13) echoing the
     * code; the client waits for the server's FIN. */
    in.n = want.n = 0;
    frame_to(&in, OSP_WS_ROLE_CLIENT, true, OSP_WS_OP_CLOSE, "\x03\xE9", 2);
    const uint8_t masked_close[] = {0x88, 0x82, 0x10, 0x11, 0x12, 0x13, 0x03 ^ 0x10, 0xE9 ^ 0x11};
    memcpy(want.b, masked_close, sizeof masked_close);
    want.n = sizeof masked_close;
    expect("server closes, client answers masked", OSP_WS_ROLE_CLIENT, &in, "CLOSE(1001,)@8 ", &want, &r);
    CHECK(!osp_ws_session_ends_tcp_first(&r.s), "the client waits for the server's FIN");
    osp_ws_session_free(&r.s);

    /* An empty Close (1005, "no status") is answered with an empty Close. */
    in.n = want.n = 0;
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_CLOSE, "", 0);
    server_frame(&want, OSP_WS_OP_CLOSE, "", 0);
    expect("empty close", OSP_WS_ROLE_SERVER, &in, "CLOSE(1005,)@2 ", &want, &r);
    CHECK(r.s.close_code == 1005, "reported %u", r.s.close_code);
    osp_ws_session_free(&r.s);
}

static void test_we_close(void) {
    for (int role = 0; role < 2; role++) {
        osp_ws_role me = role ? OSP_WS_ROLE_SERVER : OSP_WS_ROLE_CLIENT;
        run r;
        start(&r, me, 5000);
        CHECK(osp_ws_session_close(&r.s, 1000, "done", 5000) == 0, "close");
        frames want = {0};
        if (me == OSP_WS_ROLE_SERVER) {
            server_close(&want, 1000, "done");
        } else {
            const uint8_t c[] = {0x88, 0x86, 0x10, 0x11, 0x12, 0x13, 0x03 ^ 0x10, 0xE8 ^ 0x11,
                                 'd' ^ 0x12, 'o' ^ 0x13, 'n' ^ 0x10, 'e' ^ 0x11};
            memcpy(want.b, c, sizeof c);
            want.n = sizeof c;
        }
        CHECK(wrote(&r, &want), "role %d: our Close is written (%zu bytes)", role, r.out.n);
        CHECK(r.s.phase == OSP_WS_SESSION_CLOSING && !osp_ws_session_accepts_data(&r.s), "CLOSING");
        uint64_t deadline = 5000 + limits.close_timeout_ms;
        CHECK(osp_ws_session_next_deadline(&r.s) == deadline, "the close deadline");
        /* A second close request does nothing. */
        CHECK(osp_ws_session_close(&r.s, 1001, "again", 5001) == 0 && wrote(&r, &want), "one Close only");
        /* S-C4: after our Close, data and pings are ignored; the peer's Close ends the exchange
         * without a second Close from us, and the deadline is not extended. */
        frames in = {0};
        frame_to(&in, me, true, OSP_WS_OP_TEXT, "ignored", 7);
        frame_to(&in, me, true, OSP_WS_OP_PING, "p", 1);
        frame_to(&in, me, true, OSP_WS_OP_CLOSE, "\x03\xE8", 2);
        feed(&r, in.b, in.n, 3, 6000);
        CHECK(strcmp(r.log, role ? "CLOSE(1000,)@8 " : "CLOSE(1000,)@12 ") == 0, "log %s", r.log);
        CHECK(wrote(&r, &want), "nothing written after our Close");
        CHECK(r.s.phase == OSP_WS_SESSION_CLOSED && osp_ws_session_next_deadline(&r.s) == deadline, "CLOSED");
        CHECK(r.s.close_code == 1000 && r.s.close_reason_len == 4, "reported: the code we sent");
        /* The peer never ends TCP: at the deadline, drop with the exchange's code. */
        tick(&r, deadline - 1);
        tick(&r, deadline);
        CHECK(strstr(r.log, "DROP(1000)") != NULL && strstr(r.log, "DROP(1000)") == strrchr(r.log, 'D'),
              "dropped once at the deadline: %s", r.log);
        osp_ws_session_free(&r.s);
    }
    /* The peer never answers our Close: 1006 at the close deadline (RFC 6455 §7.1.5). */
    run r;
    start(&r, OSP_WS_ROLE_SERVER, 100);
    CHECK(osp_ws_session_close(&r.s, 1000, NULL, 100) == 0, "close");
    tick(&r, 100 + limits.close_timeout_ms - 1);
    CHECK(r.log[0] == '\0', "nothing before the deadline: %s", r.log);
    tick(&r, 100 + limits.close_timeout_ms);
    CHECK(strcmp(r.log, "DROP(1006)@4 ") == 0, "close timeout: %s", r.log);
    CHECK(r.s.close_code == 1006, "reported 1006, not the code we sent (%u)", r.s.close_code);
    osp_ws_session_free(&r.s);
    /* TCP ends while we wait for the peer's Close: 1006 as well. */
    start(&r, OSP_WS_ROLE_CLIENT, 100);
    CHECK(osp_ws_session_close(&r.s, 1000, NULL, 100) == 0, "close");
    CHECK(osp_ws_session_transport_ended(&r.s) == 1006, "EOF while CLOSING");
    osp_ws_session_free(&r.s);
    /* TCP ends while open. */
    start(&r, OSP_WS_ROLE_SERVER, 100);
    CHECK(osp_ws_session_transport_ended(&r.s) == 1006, "EOF while OPEN");
    osp_ws_session_free(&r.s);
}

/* Every invalid close payload fails the connection with the status RFC 6455 names, sent in our
 * Close (§5.5.1, §7.4.1); valid codes are echoed. */
static void test_close_payloads(void) {
    run r;
    static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const unsigned invalid[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        frames in = {0}, want = {0};
        uint8_t p[2] = {(uint8_t)(valid[i] >> 8), (uint8_t)valid[i]};
        frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_CLOSE, p, 2);
        server_close(&want, (uint16_t)valid[i], NULL);
        char name[40], log[40];
        snprintf(name, sizeof name, "close code %u", valid[i]);
        snprintf(log, sizeof log, "CLOSE(%u,)@4 ", valid[i]);
        expect(name, OSP_WS_ROLE_SERVER, &in, log, &want, &r);
        osp_ws_session_free(&r.s);
    }
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        frames in = {0}, want = {0};
        uint8_t p[2] = {(uint8_t)(invalid[i] >> 8), (uint8_t)invalid[i]};
        frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_CLOSE, p, 2);
        server_close(&want, 1002, "invalid close status code");
        char name[40];
        snprintf(name, sizeof name, "close code %u", invalid[i]);
        expect(name, OSP_WS_ROLE_SERVER, &in, "FAIL(1002)@29 ", &want, &r);
        CHECK(r.s.phase == OSP_WS_SESSION_CLOSED && r.s.close_code == 1002, "%s: reported %u", name, r.s.close_code);
        osp_ws_session_free(&r.s);
    }
    struct {
        const char *name;
        const char *payload;
        size_t len;
        uint16_t code;
        const char *reason;
    } bad[] = {
        {"1-byte close", "\x03", 1, 1002, "close frame payload of 1 byte"},
        {"invalid UTF-8 reason", "\x03\xE8\xFF\xFE", 4, 1007, "close reason is not valid UTF-8"},
        {"truncated UTF-8 reason", "\x03\xE8" "ok\xE2\x82", 6, 1007, "close reason is not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        frames in = {0}, want = {0};
        frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_CLOSE, bad[i].payload, bad[i].len);
        server_close(&want, bad[i].code, bad[i].reason);
        char log[40];
        snprintf(log, sizeof log, "FAIL(%u)@%zu ", bad[i].code, want.n);
        expect(bad[i].name, OSP_WS_ROLE_SERVER, &in, log, &want, &r);
        osp_ws_session_free(&r.s);
    }
    /* A Close longer than 125 bytes is a control-frame violation (§5.5): 1002. */
    frames in = {0}, want = {0};
    const uint8_t long_close[] = {0x88, 0xFE, 0x00, 0x7E, 0xA1, 0xB2, 0xC3, 0xD4};
    memcpy(in.b, long_close, sizeof long_close);
    in.n = sizeof long_close;
    server_close(&want, 1002, "control frame payload longer than 125 bytes");
    start(&r, OSP_WS_ROLE_SERVER, 1000);
    feed(&r, in.b, in.n, in.n, 1000);
    CHECK(strncmp(r.log, "FAIL(1002)", 10) == 0 && r.out.n > 4 && memcmp(r.out.bytes, "\x88", 1) == 0 &&
              r.out.bytes[2] == 0x03 && r.out.bytes[3] == 0xEA,
          "126-byte close: %s", r.log);
    osp_ws_session_free(&r.s);
}

/* ---- pongs, fragments and order ------------------------------------------------------------------ */

static void test_pong_order(void) {
    run r;
    frames in = {0}, want = {0};
    /* Each pong is written when its ping arrives: before the message after it is reported and
     * between the fragments of a message (S-G4, Autobahn 5.19). */
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_TEXT, "a", 1);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_PING, "p1", 2);
    frame_to(&in, OSP_WS_ROLE_SERVER, false, OSP_WS_OP_TEXT, "b1", 2);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_PING, "p2", 2);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_PONG, "unsolicited", 11);
    frame_to(&in, OSP_WS_ROLE_SERVER, false, OSP_WS_OP_CONTINUATION, "b2", 2);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_PING, "", 0);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_CONTINUATION, "b3", 2);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_BINARY, "\xFF\x00", 2);
    server_frame(&want, OSP_WS_OP_PONG, "p1", 2);
    server_frame(&want, OSP_WS_OP_PONG, "p2", 2);
    server_frame(&want, OSP_WS_OP_PONG, "", 0);
    expect("pongs between messages and fragments", OSP_WS_ROLE_SERVER, &in,
           "MSG(text:a)@0 MSG(text:b1b2b3)@10 MSG(bin:\xFF)@10 ", &want, &r);
    CHECK(r.s.phase == OSP_WS_SESSION_OPEN && osp_ws_session_accepts_data(&r.s), "still open");
    osp_ws_session_free(&r.s);

    /* A Close between fragments ends the exchange; the partial message is never reported. */
    in.n = want.n = 0;
    frame_to(&in, OSP_WS_ROLE_SERVER, false, OSP_WS_OP_TEXT, "part", 4);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_CLOSE, "\x03\xE8", 2);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_CONTINUATION, "rest", 4);
    server_close(&want, 1000, NULL);
    expect("close between fragments", OSP_WS_ROLE_SERVER, &in, "CLOSE(1000,)@4 ", &want, &r);
    osp_ws_session_free(&r.s);

    /* Under backpressure the pong waits in one slot, the latest ping's; it goes out when the
     * output has room, and never after our Close. */
    start(&r, OSP_WS_ROLE_SERVER, 0);
    r.out.backlog = limits.max_output;
    in.n = want.n = 0;
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_PING, "old", 3);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_PING, "new", 3);
    feed(&r, in.b, in.n, 4, 10);
    CHECK(r.out.n == 0 && r.s.pong_pending, "pong held under backpressure");
    CHECK(osp_ws_session_output_room(&r.s) == 0 && r.out.n == 0, "still no room");
    r.out.backlog = 0;
    CHECK(osp_ws_session_output_room(&r.s) == 0, "room");
    server_frame(&want, OSP_WS_OP_PONG, "new", 3);
    CHECK(wrote(&r, &want) && !r.s.pong_pending, "only the latest ping is answered");
    r.out.backlog = limits.max_output;
    feed(&r, in.b, in.n, in.n, 20);
    CHECK(r.s.pong_pending && osp_ws_session_close(&r.s, 1000, NULL, 20) == 0 && !r.s.pong_pending,
          "our Close discards the waiting pong");
    r.out.backlog = 0;
    size_t before = r.out.n;
    CHECK(osp_ws_session_output_room(&r.s) == 0 && r.out.n == before, "no pong after our Close");
    osp_ws_session_free(&r.s);
}

/* A fragmented text message whose fragment boundaries fall inside multi-byte characters, fed
 * in two pieces split at every byte: one message, always the same. */
static void test_fragments_split_everywhere(void) {
    frames in = {0};
    const char *text = "h\xC3\xA9llo w\xC3\xB6rld \xE2\x82\xAC \xF0\x9F\x98\x80";
    size_t len = strlen(text);
    frame_to(&in, OSP_WS_ROLE_SERVER, false, OSP_WS_OP_TEXT, text, 2);            /* "h" + half of é */
    frame_to(&in, OSP_WS_ROLE_SERVER, false, OSP_WS_OP_CONTINUATION, text + 2, 0); /* empty fragment */
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_PING, "x", 1);
    frame_to(&in, OSP_WS_ROLE_SERVER, false, OSP_WS_OP_CONTINUATION, text + 2, len - 5);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_CONTINUATION, text + len - 3, 3);
    char want_log[128];
    snprintf(want_log, sizeof want_log, "MSG(text:%s)@3 ", text);
    frames want = {0};
    server_frame(&want, OSP_WS_OP_PONG, "x", 1);
    for (size_t split = 0; split <= in.n; split++) {
        run r;
        start(&r, OSP_WS_ROLE_SERVER, 0);
        feed(&r, in.b, split, split ? split : 1, 1);
        feed(&r, in.b + split, in.n - split, in.n - split ? in.n - split : 1, 2);
        CHECK(strcmp(r.log, want_log) == 0 && wrote(&r, &want), "split at %zu: %s", split, r.log);
        osp_ws_session_free(&r.s);
    }
}

/* ---- failures: UTF-8, limits, masking ----------------------------------------------------------- */

static void expect_fail(const char *name, osp_ws_role role, const frames *in, uint16_t code, const char *reason) {
    run r;
    frames want = {0};
    if (role == OSP_WS_ROLE_SERVER) {
        server_close(&want, code, reason);
    } else {
        /* Masked with 10 11 12 13. */
        uint8_t p[125] = {(uint8_t)(code >> 8), (uint8_t)code};
        size_t n = 2 + strlen(reason);
        memcpy(p + 2, reason, n - 2);
        const uint8_t key[4] = {0x10, 0x11, 0x12, 0x13};
        want.n = osp_ws_frame_encode_header(want.b, true, OSP_WS_OP_CLOSE, n, key);
        osp_ws_mask(p, n, key, 0);
        memcpy(want.b + want.n, p, n);
        want.n += n;
    }
    char log[40];
    snprintf(log, sizeof log, "FAIL(%u)@%zu ", code, want.n);
    expect(name, role, in, log, &want, &r);
    CHECK(r.s.phase == OSP_WS_SESSION_CLOSED && r.s.close_code == code, "%s: CLOSED with %u", name, r.s.close_code);
    CHECK(r.s.close_reason_len == strlen(reason) && memcmp(r.s.close_reason, reason, r.s.close_reason_len) == 0,
          "%s: the reason is reported", name);
    CHECK(osp_ws_session_ends_tcp_first(&r.s) == (role == OSP_WS_ROLE_SERVER), "%s: who ends TCP", name);
    osp_ws_session_free(&r.s);
}

static void test_failures(void) {
    frames in = {0};
    /* S-U1/S-U3: invalid UTF-8 fails with 1007 as soon as the byte arrives, before FIN. */
    frame_to(&in, OSP_WS_ROLE_SERVER, false, OSP_WS_OP_TEXT, "ok\xF4\x90", 4);
    expect_fail("invalid UTF-8, first fragment", OSP_WS_ROLE_SERVER, &in, 1007, "text message is not valid UTF-8");
    in.n = 0;
    frame_to(&in, OSP_WS_ROLE_CLIENT, true, OSP_WS_OP_TEXT, "\xC0\xAF", 2);
    expect_fail("overlong UTF-8 (client)", OSP_WS_ROLE_CLIENT, &in, 1007, "text message is not valid UTF-8");
    in.n = 0;
    frame_to(&in, OSP_WS_ROLE_SERVER, false, OSP_WS_OP_TEXT, "\xE2\x82", 2);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_CONTINUATION, "", 0);
    expect_fail("text ends inside a character", OSP_WS_ROLE_SERVER, &in, 1007,
                "text message ends inside a UTF-8 sequence");
    /* S-G8: over max_message (64 here), whole or in fragments: 1009, from the header. */
    in.n = 0;
    char big[65];
    memset(big, 'x', sizeof big);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_BINARY, big, 65);
    expect_fail("message too big", OSP_WS_ROLE_SERVER, &in, 1009, "message exceeds the size limit");
    in.n = 0;
    frame_to(&in, OSP_WS_ROLE_SERVER, false, OSP_WS_OP_TEXT, big, 40);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_CONTINUATION, big, 25);
    expect_fail("fragments too big", OSP_WS_ROLE_SERVER, &in, 1009, "message exceeds the size limit");
    in.n = 0;
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_TEXT, big, 64);
    run r;
    frames none = {0};
    expect("exactly max_message", OSP_WS_ROLE_SERVER, &in, "MSG(text#64)@0 ", &none, &r);
    osp_ws_session_free(&r.s);
    /* S-F6 / C-F2: the masking direction per role. */
    in.n = 0;
    frame_to(&in, OSP_WS_ROLE_CLIENT, true, OSP_WS_OP_TEXT, "hi", 2); /* unmasked */
    expect_fail("unmasked frame to a server", OSP_WS_ROLE_SERVER, &in, 1002, "unmasked frame from a client");
    in.n = 0;
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_TEXT, "hi", 2); /* masked */
    expect_fail("masked frame to a client", OSP_WS_ROLE_CLIENT, &in, 1002, "masked frame from a server");
    /* A client's pong is masked with a fresh key each time (C-F1). */
    in.n = 0;
    frame_to(&in, OSP_WS_ROLE_CLIENT, true, OSP_WS_OP_PING, "ab", 2);
    frame_to(&in, OSP_WS_ROLE_CLIENT, true, OSP_WS_OP_PING, "ab", 2);
    frames want = {0};
    const uint8_t pongs[] = {0x8A, 0x82, 0x10, 0x11, 0x12, 0x13, 'a' ^ 0x10, 'b' ^ 0x11,
                             0x8A, 0x82, 0x14, 0x15, 0x16, 0x17, 'a' ^ 0x14, 'b' ^ 0x15};
    memcpy(want.b, pongs, sizeof pongs);
    want.n = sizeof pongs;
    expect("client pongs are masked, fresh keys", OSP_WS_ROLE_CLIENT, &in, "", &want, &r);
    osp_ws_session_free(&r.s);
    /* Nothing is parsed after a failure. */
    in.n = 0;
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_CONTINUATION, "x", 1);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_TEXT, "after", 5);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_PING, "after", 5);
    expect_fail("lone continuation, then nothing", OSP_WS_ROLE_SERVER, &in, 1002,
                "continuation frame without a message to continue");
}

/* ---- deadlines ---------------------------------------------------------------------------------- */

static void test_deadlines(void) {
    osp_ws_limits saved = limits;
    limits.idle_timeout_ms = 1000;
    limits.message_timeout_ms = 0;
    run r;
    start(&r, OSP_WS_ROLE_SERVER, 10000);
    /* Half the idle timeout in silence: a keep-alive Ping. */
    CHECK(osp_ws_session_next_deadline(&r.s) == 10500, "ping due at 10500: %llu",
          (unsigned long long)osp_ws_session_next_deadline(&r.s));
    tick(&r, 10499);
    CHECK(r.out.n == 0, "nothing early");
    tick(&r, 10500);
    frames want = {0};
    server_frame(&want, OSP_WS_OP_PING, "", 0);
    CHECK(wrote(&r, &want) && r.log[0] == '\0', "keep-alive ping at half the idle timeout");
    CHECK(osp_ws_session_next_deadline(&r.s) == 11000, "then the idle timeout");
    tick(&r, 10700);
    CHECK(wrote(&r, &want), "one ping per silence");
    /* The peer's Pong is received bytes: the silence ends, the next ping is due later. */
    frames in = {0};
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_PONG, "", 0);
    feed(&r, in.b, in.n, 1, 10800);
    CHECK(osp_ws_session_next_deadline(&r.s) == 11300, "next ping after the pong: %llu",
          (unsigned long long)osp_ws_session_next_deadline(&r.s));
    tick(&r, 11300);
    server_frame(&want, OSP_WS_OP_PING, "", 0);
    CHECK(wrote(&r, &want), "a second silence, a second ping");
    /* No answer: at the idle timeout a Close 1001, then 1006 at the close deadline. */
    tick(&r, 11800);
    server_close(&want, 1001, "idle timeout");
    CHECK(wrote(&r, &want) && r.s.phase == OSP_WS_SESSION_CLOSING, "idle timeout closes with 1001");
    CHECK(osp_ws_session_next_deadline(&r.s) == 11800 + limits.close_timeout_ms, "close deadline");
    tick(&r, 11800 + limits.close_timeout_ms);
    CHECK(strcmp(r.log, "DROP(1006)@20 ") == 0, "close timeout → 1006: %s", r.log);
    osp_ws_session_free(&r.s);

    /* Under backpressure the keep-alive ping is not queued (the idle timeout still runs). */
    start(&r, OSP_WS_ROLE_SERVER, 0);
    r.out.backlog = limits.max_output;
    tick(&r, 500);
    CHECK(r.out.n == 0 && r.s.ping_outstanding, "no ping over the output cap");
    osp_ws_session_free(&r.s);

    /* Idle timeout off: no deadline at all while open. */
    limits.idle_timeout_ms = 0;
    start(&r, OSP_WS_ROLE_CLIENT, 0);
    CHECK(osp_ws_session_next_deadline(&r.s) == UINT64_MAX, "no deadline");
    osp_ws_session_free(&r.s);

    /* Message timeout: a frame that started arriving must be complete in time (1008), or 1013
     * when our side stopped reading for the memory budget. */
    limits.message_timeout_ms = 3000;
    for (int budget = 0; budget < 2; budget++) {
        start(&r, OSP_WS_ROLE_SERVER, 100);
        in.n = 0;
        frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_TEXT, "slow", 4);
        feed(&r, in.b, 3, 3, 200); /* part of the header */
        CHECK(osp_ws_session_next_deadline(&r.s) == 3200, "message deadline");
        feed(&r, in.b + 3, 2, 2, 2000); /* more of the same frame: the clock is not restarted */
        CHECK(osp_ws_session_next_deadline(&r.s) == 3200, "not extended by progress");
        osp_ws_session_set_budget_wait(&r.s, budget == 1);
        tick(&r, 3199);
        CHECK(r.out.n == 0, "nothing early");
        tick(&r, 3200);
        want.n = 0;
        server_close(&want, budget ? 1013 : 1008,
                     budget ? "server memory budget exhausted; try again later"
                            : "message timeout: the message arrived too slowly");
        char log[40];
        snprintf(log, sizeof log, "FAIL(%u)@%zu ", budget ? 1013 : 1008, want.n);
        CHECK(strcmp(r.log, log) == 0 && wrote(&r, &want), "message timeout: %s", r.log);
        CHECK(r.s.phase == OSP_WS_SESSION_CLOSED && osp_ws_session_next_deadline(&r.s) == 3200 + limits.close_timeout_ms,
              "then the close deadline");
        osp_ws_session_free(&r.s);
    }
    /* A completed message clears the message clock; the next one starts its own. */
    start(&r, OSP_WS_ROLE_SERVER, 0);
    in.n = 0;
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_TEXT, "one", 3);
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_TEXT, "two", 3);
    feed(&r, in.b, 10, 10, 100); /* "one" and two bytes of the next header */
    CHECK(strcmp(r.log, "MSG(text:one)@0 ") == 0 && osp_ws_session_next_deadline(&r.s) == 3100, "clock restarts");
    feed(&r, in.b + 10, in.n - 10, 1, 500);
    CHECK(osp_ws_session_next_deadline(&r.s) == UINT64_MAX, "no deadline once complete");
    osp_ws_session_free(&r.s);
    limits = saved;
}

/* ---- backpressure decisions ------------------------------------------------------------------- */

static void test_backpressure(void) {
    osp_ws_limits saved = limits;
    limits.max_output = 1000;
    run r;
    start(&r, OSP_WS_ROLE_SERVER, 0);
    /* Reading pauses above the cap and resumes only at half of it. */
    CHECK(!osp_ws_session_pause_reading(&r.s, false, 1000), "at the cap: reading goes on");
    CHECK(osp_ws_session_pause_reading(&r.s, false, 1001), "over the cap: paused");
    CHECK(osp_ws_session_pause_reading(&r.s, true, 501), "paused until half has drained");
    CHECK(!osp_ws_session_pause_reading(&r.s, true, 500), "resumed at half");
    /* Deliveries are held above half the cap and released at a quarter. */
    CHECK(!osp_ws_session_hold_deliveries(&r.s, false, 500), "half: not held");
    CHECK(osp_ws_session_hold_deliveries(&r.s, false, 501), "over half: held");
    CHECK(osp_ws_session_hold_deliveries(&r.s, true, 251), "held until a quarter");
    CHECK(!osp_ws_session_hold_deliveries(&r.s, true, 250), "released at a quarter");
    osp_ws_session_free(&r.s);
    limits = saved;
}

/* ---- an output that refuses ------------------------------------------------------------------- */

static void test_output_refuses(void) {
    run r;
    start(&r, OSP_WS_ROLE_SERVER, 0);
    r.out.refuse = true;
    frames in = {0};
    frame_to(&in, OSP_WS_ROLE_SERVER, true, OSP_WS_OP_PING, "p", 1);
    feed(&r, in.b, in.n, in.n, 1);
    CHECK(strcmp(r.log, "DROP(1006)@0 ") == 0, "a pong that cannot be queued drops: %s", r.log);
    osp_ws_session_free(&r.s);
    start(&r, OSP_WS_ROLE_SERVER, 0);
    r.out.refuse = true;
    CHECK(osp_ws_session_close(&r.s, 1000, NULL, 0) == -1, "a Close that cannot be queued is reported");
    osp_ws_session_free(&r.s);
    /* Before any open: nothing is due and bytes are not parsed. */
    osp_ws_session_init(&r.s, OSP_WS_ROLE_SERVER, &limits, &sink_output, &r.out);
    CHECK(osp_ws_session_next_deadline(&r.s) == UINT64_MAX && !osp_ws_session_accepts_data(&r.s), "NEW");
    osp_ws_session_free(&r.s);
}

int main(void) {
    osp_ws_limits_default(&limits);
    limits.max_message = 64;
    test_peer_closes();
    test_we_close();
    test_close_payloads();
    test_pong_order();
    test_fragments_split_everywhere();
    test_failures();
    test_deadlines();
    test_backpressure();
    test_output_refuses();
    return check_summary("test_ws_session");
}
