/*
 * libFuzzer target: the I/O-free WebSocket session (ws_session.c).
 *
 * The first byte picks the role, the chunk size and how far the clock moves between chunks; the
 * rest is fed to a session as received bytes, with a tick after every chunk. The session must
 * keep its promises whatever arrives and whenever:
 *  - what it writes is a sequence of whole, valid frames in its direction (a server's unmasked,
 *    a client's masked: RFC 6455 §5.1), control frames only, at most one Close, and nothing after
 *    the Close (§5.5.1);
 *  - a text message is valid UTF-8 (§8.1) and no message is larger than the limit (§10.4);
 *  - no message is reported after the peer's Close, after a failure or once CLOSED, and a
 *    failure is reported with a code allowed on the wire (§7.4);
 *  - its next deadline is never in the past of the last tick unless something is due, and a DROP
 *    ends the run (the owner would close TCP).
 * The target links only the protocol core (scripts/fuzz.ts): the session needs no I/O module.
 *
 * Built and run by scripts/fuzz.ts (clang-14 -fsanitize=fuzzer,address,undefined); the CI run is
 * tests/runtime/fuzz.test.ts.
 */
#include "ws_session.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    uint8_t bytes[1 << 16];
    size_t n;
    size_t backlog;
    uint8_t key;
} sink;

static int sink_write(void *ctx, const uint8_t *bytes, size_t len) {
    sink *k = ctx;
    if (k->n + len > sizeof k->bytes) return -1;
    memcpy(k->bytes + k->n, bytes, len);
    k->n += len;
    return 0;
}

static size_t sink_pending(const void *ctx) { return ((const sink *)ctx)->backlog; }

static bool sink_mask_key(void *ctx, uint8_t key[4]) {
    sink *k = ctx;
    for (int i = 0; i < 4; i++) key[i] = k->key++;
    return true;
}

static const osp_ws_session_output output = {sink_write, sink_pending, sink_mask_key, NULL};

/* Parses what the session wrote, as its peer would: whole valid control frames, at most one
 * Close, nothing after it. */
static void check_output(sink *k, osp_ws_role role) {
    osp_ws_frame_parser p;
    osp_ws_frame_parser_init(&p, role == OSP_WS_ROLE_SERVER ? OSP_WS_ROLE_CLIENT : OSP_WS_ROLE_SERVER);
    size_t used = 0;
    bool closed = false, in_frame = false;
    for (;;) {
        /* Called until it needs more: a frame's END is reported after its last byte. */
        osp_ws_frame_event ev;
        used += osp_ws_frame_parse(&p, k->bytes + used, k->n - used, &ev);
        if (ev.kind == OSP_WS_FRAME_NEED_MORE) break;
        switch (ev.kind) {
        case OSP_WS_FRAME_ERROR:
            abort();
        case OSP_WS_FRAME_HEADER:
            if (closed || !osp_ws_opcode_is_control(ev.header.opcode)) abort();
            if (ev.header.opcode == OSP_WS_OP_CLOSE) closed = true;
            in_frame = true;
            break;
        case OSP_WS_FRAME_END:
            in_frame = false;
            break;
        case OSP_WS_FRAME_PAYLOAD:
        case OSP_WS_FRAME_NEED_MORE:
            break;
        }
    }
    if (in_frame || p.state != OSP_WS_RECV_HEADER || p.spill_len != 0) abort(); /* a partial frame */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t control = data[0];
    osp_ws_role role = control & 1 ? OSP_WS_ROLE_CLIENT : OSP_WS_ROLE_SERVER;
    size_t chunk = ((control >> 1) & 7) + 1;
    uint64_t step = (uint64_t)(control >> 4) * 97; /* ms between chunks: 0 … 1455 */
    data++;
    size--;
    osp_ws_limits limits;
    osp_ws_limits_default(&limits);
    limits.max_message = 4096;
    limits.max_fragments = 16;
    limits.idle_timeout_ms = 1000;
    limits.message_timeout_ms = 700;
    limits.close_timeout_ms = 500;
    limits.max_output = 64;
    uint8_t *copy = malloc(size ? size : 1); /* unmasked in place */
    sink *out = calloc(1, sizeof *out);
    if (copy == NULL || out == NULL) {
        free(copy);
        free(out);
        return 0;
    }
    memcpy(copy, data, size);
    osp_ws_session s;
    osp_ws_session_init(&s, role, &limits, &output, out);
    uint64_t now = 1000;
    osp_ws_session_open(&s, now);
    bool ended = false, dropped = false;
    for (size_t off = 0; off < size && !dropped; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk, used = 0;
        /* A slow peer now and then: the pong slot and the keep-alive under backpressure. */
        out->backlog = (copy[off] & 0x40) ? limits.max_output : 0;
        while (used < n && !dropped) {
            osp_ws_session_event ev;
            used += osp_ws_session_receive(&s, copy + off + used, n - used, now, &ev);
            switch (ev.kind) {
            case OSP_WS_SESSION_NONE:
                break;
            case OSP_WS_SESSION_MESSAGE:
                if (ended || s.phase != OSP_WS_SESSION_OPEN || ev.len > limits.max_message) abort();
                if (ev.opcode == OSP_WS_OP_TEXT && !osp_ws_utf8_valid(ev.data, ev.len)) abort();
                break;
            case OSP_WS_SESSION_CLOSE:
                if (ended || s.phase != OSP_WS_SESSION_CLOSED) abort();
                ended = true;
                break;
            case OSP_WS_SESSION_FAIL:
                if (ended || s.phase != OSP_WS_SESSION_CLOSED || !osp_ws_close_code_valid(ev.code) ||
                    s.close_code != ev.code)
                    abort();
                ended = true;
                break;
            case OSP_WS_SESSION_DROP:
                dropped = true;
                break;
            }
            osp_ws_session_release(&s);
        }
        if (dropped) break;
        if (osp_ws_session_output_room(&s) != 0) break;
        now += step;
        osp_ws_session_event tick;
        uint64_t due = osp_ws_session_next_deadline(&s);
        osp_ws_session_tick(&s, now, &tick);
        if (tick.kind == OSP_WS_SESSION_MESSAGE || tick.kind == OSP_WS_SESSION_CLOSE) abort();
        if (tick.kind == OSP_WS_SESSION_DROP) {
            if (now < due) abort(); /* dropped before its deadline */
            dropped = true;
        }
        if (tick.kind == OSP_WS_SESSION_FAIL) ended = true;
        if (!dropped && s.phase != OSP_WS_SESSION_OPEN && !osp_ws_session_accepts_data(&s) &&
            osp_ws_session_next_deadline(&s) == UINT64_MAX)
            abort(); /* closing without a deadline would wait for ever */
    }
    if (s.phase != OSP_WS_SESSION_OPEN && osp_ws_session_accepts_data(&s)) abort();
    check_output(out, role);
    osp_ws_session_free(&s);
    free(copy);
    free(out);
    return 0;
}
