/*
 * Fragment reassembly, control-frame rules, UTF-8 and size limits (see ws_message.h).
 */
#include "ws_message.h"

#include <string.h>

void osp_ws_reader_init(osp_ws_reader *r, osp_ws_role role, const osp_ws_limits *limits) {
    memset(r, 0, sizeof *r);
    osp_ws_frame_parser_init(&r->frames, role);
    r->limits = limits;
    r->message.counted = true; /* reassembly counts against the process memory budget */
    osp_ws_utf8_reset(&r->utf8);
}

void osp_ws_reader_free(osp_ws_reader *r) {
    osp_ws_buf_free(&r->message);
    osp_ws_wipe(r->control, sizeof r->control);
}

void osp_ws_reader_release(osp_ws_reader *r) {
    bool wipe = r->limits->wipe_messages != 0;
    if (r->message_delivered) {
        /* The previous message was handed out. A buffer that grew past what most messages
         * need is given back (wiped) so an idle connection does not keep the memory of its
         * largest message; a small one is reused, wiped first with the per-message wipe (it is
         * always wiped before it is freed). */
        if (r->message.cap > OSP_WS_READER_KEEP) osp_ws_buf_free(&r->message);
        else osp_ws_buf_recycle(&r->message, wipe);
        r->message_delivered = false;
    }
    if (wipe && r->control_len > 0 && !r->control_open) {
        osp_ws_wipe(r->control, r->control_len);
        r->control_len = 0;
    }
}

bool osp_ws_reader_busy(const osp_ws_reader *r) {
    if (r->failed) return false;
    if (r->in_message) return true;
    const osp_ws_frame_parser *p = &r->frames;
    /* Part of a frame (a header, or a control frame's payload) has arrived. */
    return p->state != OSP_WS_RECV_HEADER || p->spill_len > 0;
}

size_t osp_ws_reader_grow_need(const osp_ws_reader *r) {
    if (r->failed || !r->in_message) return 0;
    const osp_ws_frame_parser *p = &r->frames;
    if (p->state != OSP_WS_RECV_PAYLOAD || osp_ws_opcode_is_control(p->header.opcode)) return 0;
    return p->remaining > SIZE_MAX ? SIZE_MAX : (size_t)p->remaining;
}

static size_t fail(osp_ws_reader *r, osp_ws_msg_event *ev, size_t used, uint16_t code,
                   const char *why) {
    r->failed = true;
    r->direct = NULL;
    r->frames.state = OSP_WS_RECV_FAILED;
    ev->kind = OSP_WS_MSG_FAIL;
    ev->code = code;
    ev->error = why;
    return used;
}

/* A data frame's header: apply the fragmentation rules and the size limits. */
static const char *start_data_frame(osp_ws_reader *r, const osp_ws_frame_header *h, uint16_t *code) {
    *code = OSP_WS_CLOSE_PROTOCOL_ERROR;
    if (h->opcode == OSP_WS_OP_CONTINUATION) {
        /* RFC 6455 §5.4: a continuation frame only continues a message in progress. */
        if (!r->in_message) return "continuation frame without a message to continue";
        /* Fragment cap (docs/WEBSOCKET-RUNTIME.md#limits): many tiny fragments must not pin memory. */
        if (r->fragments >= r->limits->max_fragments) {
            *code = OSP_WS_CLOSE_TOO_BIG;
            return "message has too many fragments";
        }
        r->fragments++;
    } else {
        /* RFC 6455 §5.4: no new data message may start inside a fragmented one. */
        if (r->in_message) return "new data frame while a fragmented message is in progress";
        r->in_message = true;
        r->message_opcode = h->opcode;
        r->fragments = 1;
        osp_ws_utf8_reset(&r->utf8);
        osp_ws_buf_recycle(&r->message, r->limits->wipe_messages != 0);
    }
    /* RFC 6455 §10.4: the size limit is checked from the header, as uint64, before any payload
     * is read or stored; r->message.len ≤ max_message always holds, so no underflow. */
    if (h->length > r->limits->max_message - (uint64_t)r->message.len) {
        *code = OSP_WS_CLOSE_TOO_BIG;
        return "message exceeds the size limit";
    }
    return NULL;
}

/* A complete Close payload: RFC 6455 §5.5.1 and §7.4. */
static size_t finish_close(osp_ws_reader *r, osp_ws_msg_event *ev, size_t used) {
    r->completed++;
    if (r->control_len == 0) {
        ev->kind = OSP_WS_MSG_CLOSE;
        ev->code = OSP_WS_CLOSE_NO_STATUS;
        ev->data = r->control;
        ev->len = 0;
        return used;
    }
    /* §5.5.1: a body, if present, starts with a 2-byte status code. */
    if (r->control_len == 1)
        return fail(r, ev, used, OSP_WS_CLOSE_PROTOCOL_ERROR, "close frame payload of 1 byte");
    unsigned code = ((unsigned)r->control[0] << 8) | r->control[1];
    /* §7.4: only defined or registered codes may be sent; 1005/1006/1015 never on the wire. */
    if (!osp_ws_close_code_valid(code))
        return fail(r, ev, used, OSP_WS_CLOSE_PROTOCOL_ERROR, "invalid close status code");
    /* §5.5.1: the reason is UTF-8 (§8.1 failure is 1007). */
    if (!osp_ws_utf8_valid(r->control + 2, r->control_len - 2))
        return fail(r, ev, used, OSP_WS_CLOSE_INVALID_DATA, "close reason is not valid UTF-8");
    ev->kind = OSP_WS_MSG_CLOSE;
    ev->code = (uint16_t)code;
    ev->data = r->control + 2;
    ev->len = r->control_len - 2;
    return used;
}

size_t osp_ws_reader_feed(osp_ws_reader *r, uint8_t *in, size_t len, osp_ws_msg_event *ev) {
    size_t used = 0;
    ev->kind = OSP_WS_MSG_NONE;
    ev->data = NULL;
    ev->len = 0;
    ev->code = 0;
    ev->error = NULL;
    if (r->failed) return len;
    osp_ws_reader_release(r);
    for (;;) {
        osp_ws_frame_event fe;
        used += osp_ws_frame_parse(&r->frames, in + used, len - used, &fe);
        const osp_ws_frame_header *h = &fe.header;
        switch (fe.kind) {
        case OSP_WS_FRAME_NEED_MORE:
            return used;
        case OSP_WS_FRAME_ERROR:
            return fail(r, ev, used, fe.close_code, fe.error);
        case OSP_WS_FRAME_HEADER:
            if (osp_ws_opcode_is_control(h->opcode)) {
                /* RFC 6455 §5.4: control frames may be injected between fragments; they are
                 * collected apart from the message being reassembled. */
                if (r->control_len > 0) osp_ws_wipe(r->control, r->control_len);
                r->control_len = 0;
                r->control_open = true;
            } else {
                uint16_t code;
                const char *why = start_data_frame(r, h, &code);
                if (why) return fail(r, ev, used, code, why);
            }
            break;
        case OSP_WS_FRAME_PAYLOAD:
            if (osp_ws_opcode_is_control(h->opcode)) {
                /* The parser guarantees ≤ 125 bytes in total (§5.5). */
                memcpy(r->control + r->control_len, fe.data, fe.len);
                r->control_len += fe.len;
            } else {
                /* RFC 6455 §8.1: fail fast on the first invalid byte of a text message, even
                 * mid-frame (docs/WEBSOCKET-RUNTIME.md S-U3). */
                if (r->message_opcode == OSP_WS_OP_TEXT && !osp_ws_utf8_feed(&r->utf8, fe.data, fe.len))
                    return fail(r, ev, used, OSP_WS_CLOSE_INVALID_DATA,
                                "text message is not valid UTF-8");
                /* A whole unfragmented message (FIN, first frame, all of its payload in this
                 * chunk) is delivered in place from the caller's (already unmasked) buffer:
                 * no copy into the reassembly buffer. Fragmented messages and frames split
                 * across reads are reassembled below. */
                if (h->fin && r->fragments == 1 && r->message.len == 0 && (uint64_t)fe.len == h->length) {
                    r->direct = fe.data;
                    r->direct_len = fe.len;
                    break;
                }
                /* Grow with the bytes that actually arrived, never by the declared length;
                 * the header check above keeps the total within max_message. */
                int grown = osp_ws_buf_reserve(&r->message, fe.len, (size_t)r->limits->max_message);
                if (grown == OSP_WS_BUF_OVER_BUDGET)
                    return fail(r, ev, used, OSP_WS_CLOSE_TRY_AGAIN,
                                "server memory budget exhausted; try again later");
                if (grown != 0)
                    return fail(r, ev, used, OSP_WS_CLOSE_INTERNAL_ERROR,
                                "out of memory reassembling a message");
                memcpy(r->message.data + r->message.len, fe.data, fe.len);
                r->message.len += fe.len;
            }
            break;
        case OSP_WS_FRAME_END:
            if (osp_ws_opcode_is_control(h->opcode)) {
                r->control_open = false;
                if (h->opcode == OSP_WS_OP_CLOSE) return finish_close(r, ev, used);
                r->completed++;
                ev->kind = h->opcode == OSP_WS_OP_PING ? OSP_WS_MSG_PING : OSP_WS_MSG_PONG;
                ev->data = r->control;
                ev->len = r->control_len;
                return used;
            }
            if (!h->fin) break; /* more fragments to come */
            if (r->message_opcode == OSP_WS_OP_TEXT && !osp_ws_utf8_complete(&r->utf8))
                return fail(r, ev, used, OSP_WS_CLOSE_INVALID_DATA,
                            "text message ends inside a UTF-8 sequence");
            r->in_message = false;
            r->completed++;
            ev->kind = r->message_opcode == OSP_WS_OP_TEXT ? OSP_WS_MSG_TEXT : OSP_WS_MSG_BINARY;
            if (r->direct != NULL) {
                ev->data = r->direct;
                ev->len = r->direct_len;
                r->direct = NULL;
                return used;
            }
            r->message_delivered = true;
            ev->data = r->message.data;
            ev->len = r->message.len;
            return used;
        }
    }
}
