/*
 * The I/O-free WebSocket session (see ws_session.h): the close handshake, pongs, the keep-alive
 * ping and the idle, message and close deadlines, over the message reader (ws_message.c).
 */
#include "ws_session.h"

#include <stdlib.h>
#include <string.h>

/* No close deadline yet. */
#define NO_DEADLINE UINT64_MAX

void osp_ws_session_init(osp_ws_session *s, osp_ws_role role, const osp_ws_limits *limits,
                         const osp_ws_session_output *out, void *out_ctx) {
    memset(s, 0, sizeof *s);
    s->role = role;
    s->phase = OSP_WS_SESSION_NEW;
    s->limits = limits;
    s->out = out;
    s->out_ctx = out_ctx;
    s->close_deadline_ms = NO_DEADLINE;
    osp_ws_reader_init(&s->reader, role, limits);
}

void osp_ws_session_free(osp_ws_session *s) {
    osp_ws_reader_free(&s->reader);
    osp_ws_free_wiped(s->pong, OSP_WS_PONG_SLOT);
    s->pong = NULL;
    s->pong_pending = false;
}

void osp_ws_session_open(osp_ws_session *s, uint64_t now) {
    s->phase = OSP_WS_SESSION_OPEN;
    s->last_read_ms = now;
}

void osp_ws_session_release(osp_ws_session *s) { osp_ws_reader_release(&s->reader); }

void osp_ws_session_set_budget_wait(osp_ws_session *s, bool waiting) { s->budget_wait = waiting; }

static void clear_event(osp_ws_session_event *ev) {
    memset(ev, 0, sizeof *ev);
    ev->kind = OSP_WS_SESSION_NONE;
}

static void drop(osp_ws_session_event *ev, uint16_t code) {
    clear_event(ev);
    ev->kind = OSP_WS_SESSION_DROP;
    ev->code = code;
}

/* One control frame (≤ 125 bytes of payload), masked with a fresh key on the client side
 * (RFC 6455 §5.1, §5.3), handed to the output in one piece. */
static int write_control(osp_ws_session *s, uint8_t opcode, const uint8_t *payload, size_t len) {
    if (len > OSP_WS_PONG_SLOT) return -1;
    uint8_t frame[OSP_WS_MAX_FRAME_HEADER + OSP_WS_PONG_SLOT];
    uint8_t key[4];
    bool masked = s->role == OSP_WS_ROLE_CLIENT;
    if (masked && !s->out->mask_key(s->out_ctx, key)) return -1;
    size_t hlen = osp_ws_frame_encode_header(frame, true, opcode, len, masked ? key : NULL);
    if (len) memcpy(frame + hlen, payload, len);
    if (masked) osp_ws_mask(frame + hlen, len, key, 0);
    int rc = s->out->write(s->out_ctx, frame, hlen + len);
    /* A ping's payload (echoed in the pong) or a close reason may be application data. */
    osp_ws_wipe(frame, hlen + len);
    return rc;
}

/* The reason reported with close_code (the peer's, or the one we sent). */
static void note_close_reason(osp_ws_session *s, const char *reason, size_t len) {
    if (len > OSP_WS_CLOSE_REASON_MAX) len = OSP_WS_CLOSE_REASON_MAX;
    if (len) memcpy(s->close_reason, reason, len);
    s->close_reason_len = (uint8_t)len;
}

static int queue_close(osp_ws_session *s, uint16_t code, const char *reason) {
    if (s->close_sent) return 0;
    /* Every data message the application had sent goes out before our Close (RFC 6455 §5.5.1:
     * no data frame after it), and from now on sends are refused. */
    if (s->out->closing && s->out->closing(s->out_ctx) != 0) return -1;
    uint8_t payload[OSP_WS_PONG_SLOT];
    size_t n = 0;
    /* RFC 6455 §5.5.1: code 1005 means "no code": answer with an empty body. */
    if (code != 0 && code != OSP_WS_CLOSE_NO_STATUS) {
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        n = 2;
        if (reason) {
            size_t r = strlen(reason); /* a C string of the runtime's own (ASCII) */
            if (r > OSP_WS_CLOSE_REASON_MAX) r = OSP_WS_CLOSE_REASON_MAX;
            memcpy(payload + 2, reason, r);
            n += r;
        }
    }
    s->close_sent = true;
    s->pong_pending = false; /* §5.5.1: nothing after our Close */
    if (s->close_code == 0) {
        s->close_code = code ? code : OSP_WS_CLOSE_NO_STATUS;
        note_close_reason(s, (const char *)payload + 2, n > 2 ? n - 2 : 0);
    }
    return write_control(s, OSP_WS_OP_CLOSE, payload, n);
}

/* The close exchange is over (or the connection failed): TCP is to end. The close deadline
 * started with our Close is kept; otherwise it starts now. */
static void enter_closed(osp_ws_session *s, uint64_t now) {
    if (s->close_deadline_ms == NO_DEADLINE) s->close_deadline_ms = now + s->limits->close_timeout_ms;
    s->phase = OSP_WS_SESSION_CLOSED;
}

int osp_ws_session_close(osp_ws_session *s, uint16_t code, const char *reason, uint64_t now) {
    if (s->phase != OSP_WS_SESSION_OPEN) return 0;
    if (queue_close(s, code, reason) != 0) return -1;
    s->phase = OSP_WS_SESSION_CLOSING;
    /* One deadline for the whole close (RFC 6455 §7.1.1 SHOULD); it is never extended. */
    s->close_deadline_ms = now + s->limits->close_timeout_ms;
    return 0;
}

int osp_ws_session_fail(osp_ws_session *s, uint16_t code, const char *reason, uint64_t now) {
    if (s->phase == OSP_WS_SESSION_CLOSED) return 0; /* already ending: the first outcome stands */
    /* RFC 6455 §7.1.7: send a Close with the reason's code (SHOULD), then close TCP, and process
     * no further data (the reader is in its failed state, or CLOSED drops the bytes). */
    int rc = queue_close(s, code, reason);
    s->close_code = code;
    note_close_reason(s, reason ? reason : "", reason ? strlen(reason) : 0);
    enter_closed(s, now);
    return rc;
}

/* RFC 6455 §5.5.2: a Pong with the identical payload. It goes into the output at once, ahead
 * of any message completing later (Autobahn 5.19: it must not wait for a fragmented message).
 * Only while the output is over its cap does it wait in the single slot, where a newer ping
 * replaces it (a ping flood cannot grow the queue). */
static int answer_ping(osp_ws_session *s, const uint8_t *payload, size_t len) {
    if (s->out->pending(s->out_ctx) < s->limits->max_output) {
        s->pong_pending = false;
        return write_control(s, OSP_WS_OP_PONG, payload, len);
    }
    /* Allocated the first time it is needed: most connections never have a pong wait. */
    if (s->pong == NULL && (s->pong = malloc(OSP_WS_PONG_SLOT)) == NULL) return -1;
    s->pong_pending = true;
    s->pong_len = (uint8_t)len;
    if (len) memcpy(s->pong, payload, len);
    return 0;
}

int osp_ws_session_output_room(osp_ws_session *s) {
    /* §5.5.3: the pong that waited goes out once the queue has room, unless a Close was sent. */
    if (!s->pong_pending || s->close_sent || s->out->pending(s->out_ctx) >= s->limits->max_output) return 0;
    if (write_control(s, OSP_WS_OP_PONG, s->pong, s->pong_len) != 0) return -1;
    s->pong_pending = false;
    return 0;
}

bool osp_ws_session_pause_reading(const osp_ws_session *s, bool paused, size_t pending) {
    uint64_t cap = s->limits->max_output;
    return paused ? pending > cap / 2 : pending > cap;
}

bool osp_ws_session_hold_deliveries(const osp_ws_session *s, bool held, size_t pending) {
    uint64_t cap = s->limits->max_output;
    return held ? pending > cap / 4 : pending > cap / 2;
}

/* Message timeout bookkeeping after received bytes were taken: a frame or fragmented message
 * in progress has a start time; it restarts when something completed meanwhile. */
static void note_message_progress(osp_ws_session *s, uint64_t now) {
    if (s->phase != OSP_WS_SESSION_OPEN) return;
    if (!osp_ws_reader_busy(&s->reader)) {
        s->msg_started_ms = 0;
        return;
    }
    if (s->msg_started_ms != 0 && s->msg_seen == s->reader.completed) return;
    s->msg_started_ms = now ? now : 1; /* 0 means "none" */
    s->msg_seen = s->reader.completed;
}

/* The peer's Close (RFC 6455 §5.5.1): answered with a Close echoing its code unless we sent
 * ours; a second one is ignored (Autobahn 7.1.2). 1: ev is the CLOSE event; 0: ignored; -1:
 * the output refused the answer. */
static int on_close_frame(osp_ws_session *s, const osp_ws_msg_event *m, uint64_t now, osp_ws_session_event *ev) {
    if (s->close_received) return 0;
    s->close_received = true;
    if (!s->close_sent) {
        s->close_code = m->code;
        note_close_reason(s, (const char *)m->data, m->len);
        if (queue_close(s, m->code, NULL) != 0) return -1;
    }
    enter_closed(s, now);
    ev->kind = OSP_WS_SESSION_CLOSE;
    ev->code = m->code;
    ev->reason = (const char *)m->data;
    ev->reason_len = m->len;
    return 1;
}

size_t osp_ws_session_receive(osp_ws_session *s, uint8_t *data, size_t len, uint64_t now,
                              osp_ws_session_event *ev) {
    clear_event(ev);
    s->last_read_ms = now;
    size_t used = 0;
    while (used < len) {
        /* After the close exchange (or a failure) bytes are drained and dropped (§7.1.7). */
        if (s->phase != OSP_WS_SESSION_OPEN && s->phase != OSP_WS_SESSION_CLOSING) return len;
        osp_ws_msg_event m;
        used += osp_ws_reader_feed(&s->reader, data + used, len - used, &m);
        switch (m.kind) {
        case OSP_WS_MSG_NONE:
        case OSP_WS_MSG_PONG: /* §5.5.3: an unsolicited pong needs no answer */
            break;
        case OSP_WS_MSG_TEXT:
        case OSP_WS_MSG_BINARY:
            /* §5.5.1: after a Close the data the peer still sends is ignored. */
            if (s->close_sent || s->close_received) break;
            ev->kind = OSP_WS_SESSION_MESSAGE;
            ev->opcode = m.kind == OSP_WS_MSG_TEXT ? OSP_WS_OP_TEXT : OSP_WS_OP_BINARY;
            ev->data = m.data;
            ev->len = m.len;
            note_message_progress(s, now);
            return used;
        case OSP_WS_MSG_PING:
            /* §5.5.2: none after a Close either way. */
            if (s->close_sent || s->close_received) break;
            if (answer_ping(s, m.data, m.len) != 0) {
                drop(ev, OSP_WS_CLOSE_ABNORMAL);
                return used;
            }
            break;
        case OSP_WS_MSG_CLOSE: {
            int rc = on_close_frame(s, &m, now, ev);
            if (rc < 0) drop(ev, OSP_WS_CLOSE_ABNORMAL);
            if (rc != 0) return used;
            break;
        }
        case OSP_WS_MSG_FAIL:
            if (osp_ws_session_fail(s, m.code, m.error, now) != 0) {
                drop(ev, OSP_WS_CLOSE_ABNORMAL);
                return used;
            }
            ev->kind = OSP_WS_SESSION_FAIL;
            ev->code = m.code;
            ev->reason = m.error;
            ev->reason_len = strlen(m.error);
            return used;
        }
    }
    note_message_progress(s, now);
    return used;
}

uint16_t osp_ws_session_transport_ended(osp_ws_session *s) {
    if (s->phase == OSP_WS_SESSION_OPEN || s->phase == OSP_WS_SESSION_CLOSING) {
        /* No Close came (RFC 6455 §7.1.5): abnormal, whatever we sent. */
        s->close_code = OSP_WS_CLOSE_ABNORMAL;
        s->close_reason_len = 0;
    } else if (s->close_code == 0) {
        s->close_code = OSP_WS_CLOSE_ABNORMAL;
    }
    return s->close_code;
}

void osp_ws_session_tick(osp_ws_session *s, uint64_t now, osp_ws_session_event *ev) {
    clear_event(ev);
    const osp_ws_limits *lim = s->limits;
    switch (s->phase) {
    case OSP_WS_SESSION_NEW:
        return; /* the opening handshake has its own deadline (the owner's) */
    case OSP_WS_SESSION_OPEN:
        break;
    case OSP_WS_SESSION_CLOSING:
    case OSP_WS_SESSION_CLOSED:
        /* RFC 6455 §7.1.1: the peer did not finish the close in time; drop TCP. */
        if (now >= s->close_deadline_ms) drop(ev, osp_ws_session_transport_ended(s));
        return;
    }
    /* A frame or message that started arriving must be complete in time: a peer that trickles
     * it would otherwise pin its reassembly buffer for ever. Waiting for room in the memory
     * budget is our side's doing: then "try again later". */
    if (lim->message_timeout_ms && s->msg_started_ms && now - s->msg_started_ms >= lim->message_timeout_ms) {
        uint16_t code = s->budget_wait ? OSP_WS_CLOSE_TRY_AGAIN : OSP_WS_CLOSE_POLICY;
        const char *why = s->budget_wait ? "server memory budget exhausted; try again later"
                                         : "message timeout: the message arrived too slowly";
        if (osp_ws_session_fail(s, code, why, now) != 0) {
            drop(ev, OSP_WS_CLOSE_ABNORMAL);
            return;
        }
        ev->kind = OSP_WS_SESSION_FAIL;
        ev->code = code;
        ev->reason = why;
        ev->reason_len = strlen(why);
        return;
    }
    if (lim->idle_timeout_ms == 0) return;
    uint64_t silent = now > s->last_read_ms ? now - s->last_read_ms : 0;
    if (silent >= lim->idle_timeout_ms) {
        if (osp_ws_session_close(s, OSP_WS_CLOSE_GOING_AWAY, "idle timeout", now) != 0)
            drop(ev, OSP_WS_CLOSE_ABNORMAL);
        return;
    }
    if (s->ping_outstanding && s->ping_mark != s->last_read_ms) s->ping_outstanding = false;
    if (!s->ping_outstanding && silent >= lim->idle_timeout_ms / 2 && !s->close_sent) {
        /* Keep-alive: a live peer answers with a Pong, which counts as received bytes (RFC 6455
         * §5.5.2); only a silent or dead one reaches the timeout. Under backpressure the
         * output is not grown for it: the queue itself shows the peer is slow, not gone. */
        s->ping_outstanding = true;
        s->ping_mark = s->last_read_ms;
        if (s->out->pending(s->out_ctx) < lim->max_output && write_control(s, OSP_WS_OP_PING, NULL, 0) != 0)
            drop(ev, OSP_WS_CLOSE_ABNORMAL);
    }
}

uint64_t osp_ws_session_next_deadline(const osp_ws_session *s) {
    const osp_ws_limits *lim = s->limits;
    switch (s->phase) {
    case OSP_WS_SESSION_NEW:
        return UINT64_MAX;
    case OSP_WS_SESSION_CLOSING:
    case OSP_WS_SESSION_CLOSED:
        return s->close_deadline_ms;
    case OSP_WS_SESSION_OPEN:
        break;
    }
    /* The earliest of the keep-alive Ping (half the idle timeout in silence), the idle timeout
     * and the message timeout. */
    uint64_t due = UINT64_MAX;
    if (lim->idle_timeout_ms) {
        bool pinged = s->ping_outstanding && s->ping_mark == s->last_read_ms;
        due = s->last_read_ms + (pinged ? lim->idle_timeout_ms : lim->idle_timeout_ms / 2);
    }
    if (lim->message_timeout_ms && s->msg_started_ms && s->msg_started_ms + lim->message_timeout_ms < due)
        due = s->msg_started_ms + lim->message_timeout_ms;
    return due;
}
