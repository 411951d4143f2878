/*
 * RFC 6455 §5 frame codec. No I/O: the parser is a state machine fed arbitrary chunks of bytes
 * (a header may be split anywhere, a payload may span any number of reads) and reports one
 * event per call; the encoder writes minimal-length headers. Frame-level rules that do not
 * depend on earlier frames (RSV bits, reserved opcodes, masking direction, control frame
 * size and FIN, the 64-bit length's top bit) are checked here; message-level rules live in
 * ws_message.c.
 */
#ifndef OSP_WS_FRAME_H
#define OSP_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 6455 §5.2 opcodes. */
enum {
    OSP_WS_OP_CONTINUATION = 0x0,
    OSP_WS_OP_TEXT = 0x1,
    OSP_WS_OP_BINARY = 0x2,
    OSP_WS_OP_CLOSE = 0x8,
    OSP_WS_OP_PING = 0x9,
    OSP_WS_OP_PONG = 0xA,
};

/* RFC 6455 §7.4.1 status codes the runtime sends. */
enum {
    OSP_WS_CLOSE_NORMAL = 1000,
    OSP_WS_CLOSE_GOING_AWAY = 1001,
    OSP_WS_CLOSE_PROTOCOL_ERROR = 1002,
    OSP_WS_CLOSE_NO_STATUS = 1005,  /* API value only: a Close without a code */
    OSP_WS_CLOSE_ABNORMAL = 1006,   /* API value only: TCP ended without a Close */
    OSP_WS_CLOSE_INVALID_DATA = 1007,
    OSP_WS_CLOSE_POLICY = 1008,
    OSP_WS_CLOSE_TOO_BIG = 1009,
    OSP_WS_CLOSE_INTERNAL_ERROR = 1011,
    OSP_WS_CLOSE_TRY_AGAIN = 1013, /* IANA "Try Again Later": the memory budget is exhausted */
};

/* Which side this endpoint is: it decides which masking the peer's frames must use. */
typedef enum {
    OSP_WS_ROLE_CLIENT, /* receives unmasked frames, sends masked ones */
    OSP_WS_ROLE_SERVER, /* receives masked frames, sends unmasked ones */
} osp_ws_role;

typedef struct {
    bool fin;
    uint8_t rsv;    /* RSV1-3 as the low three bits */
    uint8_t opcode;
    bool masked;
    uint8_t mask[4];
    uint64_t length; /* payload bytes declared by the header */
} osp_ws_frame_header;

typedef enum {
    OSP_WS_RECV_HEADER,    /* the first two bytes */
    OSP_WS_RECV_EXT_LEN,   /* 2 or 8 bytes of extended payload length */
    OSP_WS_RECV_MASK_KEY,  /* 4 bytes of masking key */
    OSP_WS_RECV_PAYLOAD,   /* payload bytes, unmasked as they arrive */
    OSP_WS_RECV_FRAME_END, /* payload complete; the next call reports the end of the frame */
    OSP_WS_RECV_FAILED,    /* a violation was reported; the parser accepts nothing more */
} osp_ws_recv_state;

typedef struct {
    osp_ws_role role;
    osp_ws_recv_state state;
    uint8_t spill[8];   /* header bytes collected so far for the current step (≤ 8) */
    uint8_t spill_len;
    uint8_t spill_need;
    osp_ws_frame_header header;
    uint64_t remaining;   /* payload bytes still to come */
    uint64_t mask_offset; /* payload bytes already unmasked: the key index continues from here */
} osp_ws_frame_parser;

typedef enum {
    OSP_WS_FRAME_NEED_MORE, /* every byte was consumed; feed more */
    OSP_WS_FRAME_HEADER,    /* a complete, frame-valid header is in event.header */
    OSP_WS_FRAME_PAYLOAD,   /* event.data/len: unmasked payload bytes (in place, in the input) */
    OSP_WS_FRAME_END,       /* the frame announced by the last HEADER is complete */
    OSP_WS_FRAME_ERROR,     /* protocol violation: event.close_code and event.error */
} osp_ws_frame_event_kind;

typedef struct {
    osp_ws_frame_event_kind kind;
    osp_ws_frame_header header; /* valid for HEADER, and kept for PAYLOAD and END */
    uint8_t *data;
    size_t len;
    uint16_t close_code;
    const char *error; /* static text naming the rule that was broken */
} osp_ws_frame_event;

void osp_ws_frame_parser_init(osp_ws_frame_parser *p, osp_ws_role role);

/* Consumes bytes from `in` (at most `len`) until one event is complete and returns how many
 * bytes it used; payload bytes are unmasked in place, so `in` must be writable. Call again with
 * the rest of the input while it returns events other than NEED_MORE. */
size_t osp_ws_frame_parse(osp_ws_frame_parser *p, uint8_t *in, size_t len, osp_ws_frame_event *ev);

/* Is this opcode a control frame (RFC 6455 §5.5: opcodes with the high bit set)? */
static inline bool osp_ws_opcode_is_control(uint8_t opcode) {
    return (opcode & 0x8) != 0;
}

/* Maximum header size: 2 + 8 (64-bit length) + 4 (mask). */
#define OSP_WS_MAX_FRAME_HEADER 14

/* Writes a frame header with the minimal length encoding (RFC 6455 §5.2 "the minimal number of
 * bytes MUST be used") into out; `mask` NULL means unmasked. Returns the header size. */
size_t osp_ws_frame_encode_header(uint8_t out[OSP_WS_MAX_FRAME_HEADER], bool fin, uint8_t opcode,
                                  uint64_t length, const uint8_t *mask);

/* XORs n bytes with the masking key, starting at key index offset % 4 (RFC 6455 §5.3);
 * masking and unmasking are the same operation. */
void osp_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* RFC 6455 §7.4: may this status code appear in a Close frame on the wire? */
bool osp_ws_close_code_valid(unsigned code);

#endif /* OSP_WS_FRAME_H */
