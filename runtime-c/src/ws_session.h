/*
 * The protocol side of one WebSocket connection after its opening handshake (RFC 6455 §5–§7),
 * without I/O, in the manner of wslay's event layer over its frame layer: fed received bytes
 * and clock ticks, a session decides what is sent (pongs, keep-alive pings, Close frames, in
 * order), reports what happened (a whole message, the peer's Close, a failure with its RFC 6455
 * status, "end TCP now") and says when it next needs the clock. It owns the close handshake,
 * the pong slot, the keep-alive ping, the idle, message and close deadlines, fragment
 * reassembly (ws_message.c) and the limits those apply.
 *
 * No sockets, no epoll, no threads, no clock reads: time comes in as an argument (milliseconds
 * on any monotonic clock). Output goes through a table the owner supplies (ws_conn.c: into its
 * output queue; the C tests: into a byte array), which also tells the session how many bytes
 * are still waiting to be written (backpressure) and gives client masking keys.
 *
 * Data messages the application sends do not pass through the session: they have zero-copy
 * paths of their own (a broadcast log shared by recipients, a direct sendmsg of a large payload,
 * frames masked on the sender's thread). They ask osp_ws_session_accepts_data first, and the
 * session asks the owner (`closing`) to put them in the output ahead of its Close.
 */
#ifndef OSP_WS_SESSION_H
#define OSP_WS_SESSION_H

#include "ws_message.h"

typedef enum {
    OSP_WS_SESSION_NEW,     /* the opening handshake is not over yet: nothing is parsed */
    OSP_WS_SESSION_OPEN,    /* messages flow */
    OSP_WS_SESSION_CLOSING, /* we sent Close and wait for the peer's (RFC 6455 §7.1.2) */
    OSP_WS_SESSION_CLOSED,  /* the close exchange is over, or the connection failed: received
                               bytes are dropped and TCP is to end (RFC 6455 §7.1.1) */
} osp_ws_session_phase;

typedef enum {
    OSP_WS_SESSION_NONE,    /* all input consumed (or nothing due at this tick) */
    OSP_WS_SESSION_MESSAGE, /* opcode (TEXT or BINARY), data/len: a whole data message, valid
                               until the next receive or osp_ws_session_release */
    OSP_WS_SESSION_CLOSE,   /* the peer's Close arrived: code (1005: none) and reason; it was
                               answered; the phase is now CLOSED */
    OSP_WS_SESSION_FAIL,    /* the session failed the connection (RFC 6455 §7.1.7): code
                               (1002, 1007, 1008, 1009, 1011, 1013) and reason; a Close with
                               that code is queued; the phase is now CLOSED */
    OSP_WS_SESSION_DROP,    /* end TCP now: a close deadline passed, or the output refused a
                               frame (out of memory); code is what the application is told */
} osp_ws_session_event_kind;

typedef struct {
    osp_ws_session_event_kind kind;
    uint8_t opcode;
    const uint8_t *data;
    size_t len;
    uint16_t code;
    const char *reason; /* CLOSE: the peer's UTF-8 reason (reason_len bytes); FAIL: static text */
    size_t reason_len;
} osp_ws_session_event;

/* Where a session's frames go, supplied by its owner. */
typedef struct {
    /* Appends one encoded frame behind everything queued before it. 0, or -1 when it cannot
     * (out of memory): the session then reports DROP with 1006. */
    int (*write)(void *ctx, const uint8_t *bytes, size_t len);
    /* Bytes queued and not yet written (what the output cap, limits->max_output, measures). */
    size_t (*pending)(const void *ctx);
    /* A fresh, unpredictable masking key for a client frame (RFC 6455 §5.3); false on failure. */
    bool (*mask_key)(void *ctx, uint8_t key[4]);
    /* The session is about to queue its Close: data frames the application had sent must be in
     * the output ahead of it, and no more may be accepted (§5.5.1). 0, or -1 when the
     * connection failed meanwhile (then nothing is queued). NULL: nothing to do. */
    int (*closing)(void *ctx);
} osp_ws_session_output;

/* The longest close reason a Close frame carries (RFC 6455 §5.5: 125 bytes minus the code). */
#define OSP_WS_CLOSE_REASON_MAX 123

/* A control frame's largest payload (RFC 6455 §5.5). */
#define OSP_WS_PONG_SLOT 125

typedef struct {
    osp_ws_role role;
    osp_ws_session_phase phase;
    const osp_ws_limits *limits; /* the owner's; the reader uses them too */
    osp_ws_reader reader;
    const osp_ws_session_output *out;
    void *out_ctx;
    bool close_sent;     /* RFC 6455 §5.5.1: after it, no data frames and no pongs */
    bool close_received;
    uint16_t close_code; /* for reporting: the code received, sent, or 1006 */
    uint8_t close_reason_len;
    char close_reason[OSP_WS_CLOSE_REASON_MAX];
    /* At most one pong waits while the output is over its cap: the latest ping's
     * (docs/WEBSOCKET-RUNTIME.md#limits). The slot is allocated when a pong first has to wait. */
    bool pong_pending;
    uint8_t pong_len;
    /* Keep-alive: a Ping is sent after half the idle timeout in silence; ping_mark is the
     * last_read_ms it was sent for (a later read ends that silence). */
    bool ping_outstanding;
    bool budget_wait; /* the owner stopped reading for the memory budget (our side's doing) */
    uint8_t *pong;
    uint64_t ping_mark;
    uint64_t last_read_ms;
    /* When the frame or fragmented message now arriving started (0: none), and the reader's
     * count of completed frames when it was noted (message timeout). */
    uint64_t msg_started_ms;
    uint64_t msg_seen;
    uint64_t close_deadline_ms; /* UINT64_MAX until the close starts; never extended afterwards */
} osp_ws_session;

/* NEW, with a reader for `role` under `limits` (which must outlive the session). */
void osp_ws_session_init(osp_ws_session *s, osp_ws_role role, const osp_ws_limits *limits,
                         const osp_ws_session_output *out, void *out_ctx);
/* Frees the reassembly buffer and the pong slot, wiped. The reported close code and reason
 * stay readable. */
void osp_ws_session_free(osp_ws_session *s);
/* The opening handshake succeeded at `now`: OPEN; the idle clock starts. */
void osp_ws_session_open(osp_ws_session *s, uint64_t now);

/* Received bytes (unmasked in place, so writable), at `now`. Consumes until one event is
 * complete and returns the bytes used: call again with the rest. Pings are answered and pongs
 * swallowed without an event. In CLOSED every byte is dropped. */
size_t osp_ws_session_receive(osp_ws_session *s, uint8_t *data, size_t len, uint64_t now,
                              osp_ws_session_event *ev);
/* The owner acted on the last event: its bytes are no longer needed (wiped now with the
 * per-message wipe option; a large reassembly buffer is given back). */
void osp_ws_session_release(osp_ws_session *s);
/* The clock at `now`: keep-alive ping, idle timeout (Close 1001), message timeout (FAIL 1008,
 * or 1013 while waiting for the memory budget), close timeout (DROP). */
void osp_ws_session_tick(osp_ws_session *s, uint64_t now, osp_ws_session_event *ev);
/* When osp_ws_session_tick next has something to do (UINT64_MAX: never). It may be called
 * earlier (it then does nothing); received bytes can only move the deadline later, except
 * for a message that starts arriving (the message timeout). */
uint64_t osp_ws_session_next_deadline(const osp_ws_session *s);

/* Starts the closing handshake with `code` and a C-string reason (ASCII, may be NULL); only
 * while OPEN. 0, or -1 when the output refused the Close (the owner drops the connection). */
int osp_ws_session_close(osp_ws_session *s, uint16_t code, const char *reason, uint64_t now);
/* Fails the connection (RFC 6455 §7.1.7): Close with `code` (when none was sent yet), the
 * reported code becomes `code`, CLOSED. 0 or -1 as above. */
int osp_ws_session_fail(osp_ws_session *s, uint16_t code, const char *reason, uint64_t now);
/* The output has room again: the pong waiting in the slot is queued (unless a Close was sent).
 * 0, or -1 when the output refused it. */
int osp_ws_session_output_room(osp_ws_session *s);
/* TCP ended (EOF, a reset): the code the application is told — the reported one once the
 * close exchange is over or the session failed, 1006 when a Close was still awaited
 * (RFC 6455 §7.1.5). Sets it as the reported code. */
uint16_t osp_ws_session_transport_ended(osp_ws_session *s);
/* The owner stopped (true) or resumed (false) reading for the process memory budget. */
void osp_ws_session_set_budget_wait(osp_ws_session *s, bool waiting);

/* Backpressure (docs/WEBSOCKET-RUNTIME.md#limits) with `pending` bytes waiting to be written:
 * should reading from the peer be paused? Over the output cap it is (a peer that does not read
 * what we owe it — echoes, pongs — must not make us queue more); once paused it stays so until
 * half the cap has drained, so one drained frame does not flip it back and forth. */
bool osp_ws_session_pause_reading(const osp_ws_session *s, bool paused, size_t pending);
/* Should messages be held back from the application's handler (`held`: they are now)? Held
 * over half the cap, released at a quarter: a send is refused when the message would not fit
 * under the cap, so a handler answering each message with at most half the cap is never
 * refused for a full queue. */
bool osp_ws_session_hold_deliveries(const osp_ws_session *s, bool held, size_t pending);

/* May the application queue a data message now? (OPEN, no Close sent or received.) */
static inline bool osp_ws_session_accepts_data(const osp_ws_session *s) {
    return s->phase == OSP_WS_SESSION_OPEN && !s->close_sent && !s->close_received;
}
/* In CLOSED: does this side end TCP first? RFC 6455 §7.1.1: the server does; a client waits
 * for the server's FIN (until the close deadline). */
static inline bool osp_ws_session_ends_tcp_first(const osp_ws_session *s) {
    return s->role == OSP_WS_ROLE_SERVER;
}

#endif /* OSP_WS_SESSION_H */
