/*
 * RFC 6455 message layer on top of the frame parser. No I/O: fed arbitrary chunks of received
 * bytes, it reports whole data messages (fragments reassembled, RFC 6455 §5.4), control frames
 * (handled between fragments, §5.5), or the failure of the connection with the exact close code
 * (1002 protocol error, 1007 invalid UTF-8, 1009 too big; §7.4.1). Sizes are checked against the
 * limits from the frame header, before any payload is stored, and the reassembly buffer grows
 * only as bytes actually arrive.
 */
#ifndef OSP_WS_MESSAGE_H
#define OSP_WS_MESSAGE_H

#include "ws_buf.h"
#include "ws_frame.h"
#include "ws_limits.h"
#include "ws_utf8.h"

typedef enum {
    OSP_WS_MSG_NONE,   /* all input consumed, nothing complete yet */
    OSP_WS_MSG_TEXT,   /* data/len: a whole text message (valid UTF-8) */
    OSP_WS_MSG_BINARY, /* data/len: a whole binary message */
    OSP_WS_MSG_PING,   /* data/len: the ping payload (≤ 125 bytes) */
    OSP_WS_MSG_PONG,   /* data/len: the pong payload */
    OSP_WS_MSG_CLOSE,  /* code (1005 when the frame had none), data/len: the UTF-8 reason */
    OSP_WS_MSG_FAIL,   /* code: the close code to fail with; error: what was wrong */
} osp_ws_msg_kind;

typedef struct {
    osp_ws_msg_kind kind;
    /* Valid until the next osp_ws_reader_feed/free, and for a whole single-frame message
     * delivered in place only as long as the caller's input buffer is unchanged. */
    const uint8_t *data;
    size_t len;
    uint16_t code;
    const char *error;
} osp_ws_msg_event;

typedef struct {
    osp_ws_frame_parser frames;
    const osp_ws_limits *limits;
    /* The data message being reassembled. */
    bool in_message;
    uint8_t message_opcode; /* TEXT or BINARY */
    uint32_t fragments;     /* frames of the current message so far */
    osp_ws_buf message;
    osp_ws_utf8 utf8;       /* carried across frames and reads (RFC 6455 §5.6) */
    bool message_delivered; /* message holds a delivered message: recycle it on the next feed */
    /* A whole single-frame message found in the input is delivered from there (its END
     * follows its only PAYLOAD event in the same feed). */
    const uint8_t *direct;
    size_t direct_len;
    /* The control frame being received (they may also arrive split across reads). */
    uint8_t control[125];
    size_t control_len;
    bool control_open;      /* a control frame's payload is being collected */
    uint64_t completed;     /* whole messages and control frames reported so far */
    bool failed;
} osp_ws_reader;

void osp_ws_reader_init(osp_ws_reader *r, osp_ws_role role, const osp_ws_limits *limits);
void osp_ws_reader_free(osp_ws_reader *r);

/* A reassembly buffer larger than this is freed once its message was delivered. */
#define OSP_WS_READER_KEEP (64 * 1024)

/* Call when the last event's data is no longer needed (the connection has acted on it): the
 * delivered message's buffer is recycled (freed when above OSP_WS_READER_KEEP) and, with the
 * per-message wipe option, it and the control-frame bytes are wiped now rather than at the next
 * feed. Feeding does it too. */
void osp_ws_reader_release(osp_ws_reader *r);
/* True while part of a frame or of a fragmented message has arrived (for the message timeout). */
bool osp_ws_reader_busy(const osp_ws_reader *r);
/* Payload bytes of the current data frame still to come that will be stored in the reassembly
 * buffer (0 when none is in progress); for the memory budget. */
size_t osp_ws_reader_grow_need(const osp_ws_reader *r);

/* Consumes bytes from `in` until one event is complete; returns the bytes used (call again with
 * the rest). Unmasks in place. After a FAIL every further byte is swallowed with NONE. */
size_t osp_ws_reader_feed(osp_ws_reader *r, uint8_t *in, size_t len, osp_ws_msg_event *ev);

#endif /* OSP_WS_MESSAGE_H */
