/*
 * Shared state of the WebSocket I/O layer: connections (client and server side), servers and
 * the id registry. A connection is owned by its loop's thread (loop.h; c->loop never changes);
 * a server by the main loop, except its per-loop connection lists (each loop's own) and what
 * its lock guards. The ABI functions reach them through a loop call or a posted record, except
 * asynchronous sends, which read the registry and a connection's tx_* fields under
 * osp_ws_tx_lock. Not part of the ABI.
 *
 * Lifetimes: a connection is torn down (socket closed, id retired) on its loop, put on that
 * loop's "zombie" list, and freed at the end of the iteration, so pointers held by the epoll
 * batch or by a handler's caller stay valid. A server is freed on the main loop once every
 * loop has stopped its part (ws_server.c).
 */
#ifndef OSP_WS_INTERNAL_H
#define OSP_WS_INTERNAL_H

#include "runtime.h"
#include "loop.h"
#include "http_parse.h"
#include "ws_acceptor.h"
#include "ws_buf.h"
#include "ws_session.h"
#include "ws_peer_table.h"
#include "ws_tls_pool.h"

#include <openssl/ssl.h>
#include <stdatomic.h>

typedef enum {
    OSP_WS_CONN_HANDSHAKE,   /* server side: waiting for the HTTP upgrade request */
    OSP_WS_CONN_OPEN,        /* messages flow */
    OSP_WS_CONN_CLOSING,     /* we sent Close and wait for the peer's (RFC 6455 §7.1.2) */
    OSP_WS_CONN_CLOSED_WAIT, /* handshake over or failed: flush, then FIN (server, failure) or
                                wait for the server's FIN (client, RFC 6455 §7.1.1) */
    OSP_WS_CONN_DEAD,        /* socket closed; waiting to be freed */
} osp_ws_conn_state;

typedef struct osp_ws_server osp_ws_server;
typedef struct osp_ws_conn osp_ws_conn;

/* What a connection reports to the module that made it (ws_server.c or ws_client.c), set when
 * it is created: ws_conn.c calls up only through this table, so it depends on neither. */
typedef struct osp_ws_conn_owner {
    /* Server side, HANDSHAKE state: received bytes of the opening handshake. */
    void (*handshake_input)(osp_ws_conn *c, uint8_t *data, size_t len);
    /* A complete data message: the one place a received message leaves the connection. */
    void (*deliver)(osp_ws_conn *c, uint8_t opcode, const uint8_t *data, size_t len);
    /* The bytes of one read were taken in (after their `deliver` calls); NULL: nothing to do. */
    void (*ingested)(osp_ws_conn *c);
    /* The connection was destroyed (socket closed, id retired); NULL: nothing to do. */
    void (*gone)(osp_ws_conn *c);
    /* The output queue went over half its limit (full) or back to a quarter. */
    void (*output_pressure)(osp_ws_conn *c, bool full);
    /* The connection's memory is about to be freed. */
    void (*freed)(osp_ws_conn *c);
} osp_ws_conn_owner;

/* The shapes a message handler may have (docs/guide/15-websockets.md); the compiler picks the
 * C entry point (osp_ws_connect…, osp_ws_server_on_…) by the handler's Osprey type. */
typedef enum {
    OSP_WS_SHAPE_TEXT,    /* fn(String): text messages */
    OSP_WS_SHAPE_ID_TEXT, /* fn(Int, String): connection id and text messages */
    OSP_WS_SHAPE_MESSAGE, /* fn(Int, WebSocketMessage): connection id and every data message */
} osp_ws_handler_shape;

typedef struct {
    osp_ws_handler_shape shape;
    union {
        osp_message_handler_fn text;
        osp_server_message_handler_fn id_text;
        osp_ws_message_handler_fn message;
    } fn; /* the member named by `shape`; all NULL: no handler */
} osp_ws_msg_handler;

static inline bool osp_ws_msg_handler_set(const osp_ws_msg_handler *h) {
    switch (h->shape) {
    case OSP_WS_SHAPE_TEXT: return h->fn.text != NULL;
    case OSP_WS_SHAPE_ID_TEXT: return h->fn.id_text != NULL;
    case OSP_WS_SHAPE_MESSAGE: return h->fn.message != NULL;
    }
    return false;
}

/* Whether a handler of this shape takes a data message of this opcode (binary only for
 * OSP_WS_SHAPE_MESSAGE). */
static inline bool osp_ws_msg_handler_takes(const osp_ws_msg_handler *h, uint8_t opcode) {
    return osp_ws_msg_handler_set(h) && (opcode == 0x1 /* text */ || h->shape == OSP_WS_SHAPE_MESSAGE);
}

/* Connection event handlers (websocketServerOnOpen/OnClose, websocketOnClose). Allocated
 * uncollectable: a root that keeps the handlers' environments alive. */
typedef struct {
    osp_ws_open_handler_fn open;
    void *open_env;
    osp_ws_server_close_handler_fn server_close;
    void *server_close_env;
    osp_ws_close_handler_fn close;
    void *close_env;
} osp_ws_events;

/* Most origins and most subprotocols one server may list. */
#define OSP_WS_MAX_POLICY_ENTRIES 32

struct osp_ws_conn {
    osp_ws_watch watch;  /* first member: the loop hands back a pointer to it */
    const osp_ws_conn_owner *owner;
    osp_ws_loop *loop;   /* the loop it belongs to for its whole life (set when made) */
    osp_ws_timer timer;  /* the opening handshake's deadline, then the session's next one */
    int64_t id;
    osp_ws_role role;
    /* HANDSHAKE and DEAD are the connection's own; OPEN, CLOSING and CLOSED_WAIT follow the
     * session's phase (set from it after every session call, ws_conn.c sync_session). */
    osp_ws_conn_state state;
    /* The protocol without I/O: close handshake, pongs, keep-alive, deadlines, reassembly,
     * and the close code and reason reported to the application (ws_session.h). */
    osp_ws_session session;
    bool fin_after_flush; /* shut down our sending side once the output queue is empty */
    bool fin_sent;
    bool read_paused;    /* backpressure: the output queue is over the limit */
    bool inbox_paused;   /* backpressure: the handler's inbox is over the limit (ws_inbox.c) */
    bool inbox_held;     /* the inbox was told to hold deliveries: output queue over half the cap */
    bool budget_paused;  /* reading stopped: the process memory budget has no room for the
                            message this connection is receiving (on the budget wait list) */
    bool on_dirty;       /* on the list flushed at the end of the loop iteration */
    /* Events: the open event was queued for this connection, so its close event is owed
     * (server side); the client's websocketOnClose handlers (uncollectable, or NULL). */
    bool close_event_owed;
    osp_ws_events *events;
    struct osp_ws_conn *budget_next; /* the budget wait list */
    /* Server side: the peer's address (IPv4 as IPv4-mapped IPv6) and whether it is counted in
     * its server's per-address tables (connections, unfinished handshakes). */
    uint8_t peer_addr[16];
    bool ip_counted;
    bool handshake_counted;
    /* wss: the TLS session (NULL for ws://). Server side it starts in the TLS handshake. */
    SSL *tls;
    bool tls_handshaking;
    bool tls_counted;    /* on the loop's list of unfinished server TLS handshakes (ws_conn.c) */
    struct osp_ws_conn *tls_prev, *tls_next; /* that list, oldest first */
    bool tls_want_write; /* OpenSSL needs the socket writable before it can read (or accept) */
    /* A step of the server handshake is with the TLS handshake threads (ws_tls_pool.h): the
     * loop touches neither `tls` nor the socket (not watched; closed only once it is back). */
    bool tls_offloaded;
    osp_ws_tls_job tls_job;
    osp_ws_timer tls_kick; /* reads records OpenSSL buffered while reading was paused */
    osp_ws_limits limits;  /* this connection's copy (its server's, or the process default);
                              the session points at it */
    osp_http_parser *http; /* server side, during the handshake */
    osp_ws_buf out;        /* encoded frames waiting for the socket, from out_head */
    size_t out_head;
    /* Server side. */
    osp_ws_server *server;
    struct osp_ws_conn *srv_prev, *srv_next;
    /* Client side: the handler; its environment lives in GC-uncollectable memory so the
     * collector keeps it alive while the connection exists (compiled code may drop it). */
    osp_ws_msg_handler handler;
    void **handler_env_cell;
    osp_ws_waiter *close_waiters;
    /* Messages waiting for the handler's fiber (ws_inbox.c); NULL until the first one. */
    struct osp_ws_inbox *inbox;
    struct osp_ws_conn *zombie_next;
    struct osp_ws_conn *dirty_next;
    /* Broadcast frames for this connection that are still only in the loop's broadcast log:
     * bytes [bc_from, bc_to) of it, sent after `out` (see osp_ws_conn_queue_logged). */
    size_t bc_from, bc_to;
    /* Client side, asynchronous websocketSend from the program's threads: the caller encodes
     * and masks the frame into tx_pend and returns without waiting; the loop moves tx_pend into
     * the output queue at its next wake-up (osp_ws_tx_drain_all). The fields marked "lock" are
     * guarded by osp_ws_tx_lock, the others are the loop thread's. */
    osp_ws_buf tx_pend;      /* lock: encoded, masked frames not yet taken by the loop */
    size_t tx_queued;        /* lock (written by the loop only): output queue bytes, for the cap */
    bool tx_shut;            /* lock: Close sent or received, or destroyed: sends are refused */
    bool tx_listed;          /* lock: on the list of connections with tx_pend to take */
    struct osp_ws_conn *tx_next;      /* lock: that list */
    struct osp_ws_conn *tx_work_next; /* the loop's private copy of the list while it drains */
    osp_ws_buf tx_spare;     /* the frames taken from tx_pend (swapped, no copy) */
    /* Server side, websocketServerSend from another thread (ws_server.c): tx_queued and
     * tx_shut as above, and the payload bytes posted for this connection not yet taken. */
    size_t tx_posted;        /* lock */
    /* Server side, plain sockets: a handler's thread writes its frame to the socket itself
     * (docs/WEBSOCKET-RUNTIME.md, "Handler sends"). direct_ok: the loop has nothing queued for
     * this connection and lets other threads write it (written by the loop only); direct_busy:
     * a sender is writing now (set by a sender under the lock, so one at a time, and cleared
     * by it). The two are a Dekker pair: the loop clears direct_ok then reads direct_busy, a
     * sender sets direct_busy then reads direct_ok (both sequentially consistent), so either
     * the loop waits for the sender or the sender backs off. What the socket does not take of
     * a direct frame goes to tx_pend, ahead of anything the loop sends next. */
    _Atomic bool direct_ok;
    _Atomic bool direct_busy;
};

struct osp_ws_server {
    int64_t id;
    int port;
    char address[64];
    char *path; /* malloc'd */
    int listen_fd; /* -1: none (attached, or not listening) */
    /* The acceptor thread (ws_acceptor.h): accepts on listen_fd; ws_server.c's callback
     * applies the admission limits, resets or refuses over-limit peers and posts each admitted
     * socket to a loop (ADOPT), so no loop runs accepts. Started by listen, stopped and joined
     * by the main loop before listen_fd is closed. */
    osp_ws_acceptor acceptor;
    bool listening;
    bool stopping;
    /* Its connections, per loop: loop i's list and count are touched by loop i only. The
     * acceptor thread places each accepted connection on a loop in turn. */
    osp_ws_conn *loop_conns[OSP_WS_MAX_LOOPS];
    size_t loop_conn_count[OSP_WS_MAX_LOOPS];
    bool loop_stopped[OSP_WS_MAX_LOOPS]; /* loop i has begun stopping it */
    unsigned next_loop;                  /* the acceptor's round robin (acceptor thread) */
    /* Guards conn_count, the per-address table (peers) and loops_running:
     * every loop admits and releases connections. */
    pthread_mutex_t lock;
    size_t conn_count;       /* all loops: admitted and not yet gone */
    unsigned loops_running;  /* loops that have not finished stopping it */
    /* The shape of `handler`, or -1 for none (echo): read by every loop for each message;
     * `handler` itself is written and read under the inbox lock (ws_inbox.c). */
    _Atomic int handler_shape;
    osp_ws_msg_handler handler;
    void **handler_env_cell;
    /* websocketServerOnOpen/OnClose (uncollectable, or NULL); set before listening only. */
    osp_ws_events *events;
    osp_ws_waiter *stop_waiters;
    osp_ws_server *zombie_next;
    /* Copied from the process default at creation; websocketServerSetLimit changes it until
     * listen. Every accepted connection copies it. */
    osp_ws_limits limits;
    SSL_CTX *tls_ctx; /* websocketCreateSecureServer: every connection speaks TLS */
    /* httpServerWebSocket: no socket of its own; an HTTP server hands it upgrade requests for
     * its path (osp_ws_server_adopt). websocketServerListen then only freezes the settings. */
    bool attached;
    /* Per peer address: open connections, unfinished handshakes and the TLS handshake rate
     * (maxConnectionsPerIp, maxHandshakesPerIp, maxTlsHandshakeRatePerIp). */
    osp_ws_peer_table peers;
    /* websocketServerAllowOrigin: exact serialized origins (malloc'd); none = any origin. */
    char *origins[OSP_WS_MAX_POLICY_ENTRIES];
    size_t origin_count;
    /* websocketServerAddSubprotocol: supported subprotocols in the order they were added. */
    char *protocols[OSP_WS_MAX_POLICY_ENTRIES];
    size_t protocol_count;
    /* websocketServerUseCluster (ws_cluster.c): set once joined, before listening; its
     * connection ids carry the node id in their high bits. */
    struct osp_ws_cluster *cluster;
    struct osp_ws_cluster *cluster_joining; /* websocketServerUseCluster still connecting */
};

/* httpServerWebSocket (http_server.c): a WebSocket server fed by an HTTP server's port. */
OspResult osp_ws_create_attached_server(int port, const char *address, const char *path);
/* Loop thread: hands an accepted socket whose upgrade request (and anything after it) is in
 * `bytes` to the attached server `id`. The server owns `fd` afterwards when it returns true;
 * false (no such server, or stopped) leaves `fd` with the caller. */
bool osp_ws_server_adopt(int64_t id, int fd, uint8_t *bytes, size_t len);

/* ---- registry (ws_registry.c) ------------------------------------------------------------- */

typedef enum {
    OSP_WS_KIND_NONE,
    OSP_WS_KIND_CLIENT,      /* a connection made by websocketConnect */
    OSP_WS_KIND_SERVER,      /* a server made by websocketCreateServer */
    OSP_WS_KIND_SERVER_CONN, /* a connection accepted by a server */
} osp_ws_kind;

typedef struct {
    osp_ws_kind kind;
    void *object;   /* NULL once retired */
    uint16_t code;  /* retired connections: the close code */
    /* The index of the loop that registered it (osp_ws_loop_at): a connection's own loop;
     * servers: the main loop. An index, not a pointer: it fits the entry's padding. */
    uint16_t loop;
    int64_t owner;  /* server connections: the server id */
} osp_ws_entry;

/* Guards the registry (every loop adds and retires ids; every reader takes it, loop threads
 * included) and every connection's "lock" fields (tx_*) and every loop's posted commands.
 * Recursive. Never held while calling into the loop, a handler or the collector's stop. */
extern pthread_mutex_t osp_ws_tx_lock;

/* The Err of a call made while or after the program exits (the runtime cannot restart). */
OspResult osp_ws_shut_down_error(const char *fn);
/* Starts the runtime (loop thread, shutdown hook) if needed. false with *err set on failure;
 * `fn` is the Osprey function name for the message. Any thread. */
bool osp_ws_runtime_ensure(const char *fn, OspResult *err);

/* A command the calling thread waits on until the loop thread signals `waiter` (websocketClose,
 * websocketStopServer). `run` receives the osp_ws_waited_call; it sets `result` and, when the
 * operation completes later, registers `waiter` if `wait` is still true (clearing `wait` when
 * there is nothing to wait for). */
typedef struct {
    int64_t id;
    osp_ws_waiter waiter;
    bool wait;
    OspResult result;
} osp_ws_waited_call;

/* Starts the runtime if needed, runs `run` on the loop thread and, on Success, waits for the
 * operation to complete. Called on the loop thread itself it does not wait: the operation
 * completes asynchronously, since waiting there would wait for the waiting thread. */
OspResult osp_ws_loop_call_waited(const char *fn, int64_t id, void (*run)(void *));

/* ---- start-up, shutdown and the loop hooks (ws_runtime.c) ---------------------------------- */

/* One layer of the WebSocket subsystem (connections, inboxes, servers): its part of every
 * loop wake-up, loop iteration and of the shutdown. Registered from an ELF constructor with
 * osp_ws_runtime_add_layer; hooks run in rank order (lowest first), shutdown_begin in reverse.
 * Every hook may be NULL. */
typedef struct {
    int rank;
    /* Loop thread, each eventfd wake-up, before queued commands: work posted by other threads. */
    void (*wake)(void);
    /* Loop thread, end of each iteration: deferred flushes, freeing what was torn down. */
    void (*iteration_end)(void);
    /* Loop thread, shutdown: start closing what the layer owns; returns the longest close
     * deadline (ms) it is waiting for. */
    uint64_t (*shutdown_begin)(void);
    /* Loop thread: the shutdown's backstop fired; drop whatever is still open. */
    void (*shutdown_overdue)(void);
    /* The loop thread is joined: free and wipe the layer's shared state. */
    void (*released)(void);
} osp_ws_layer;
void osp_ws_runtime_add_layer(const osp_ws_layer *layer);

/* ---- the id registry (ws_registry.c) ------------------------------------------------------- */

/* Loop thread only. */
int64_t osp_ws_registry_add(osp_ws_kind kind, void *object, int64_t owner);
/* The same with `base` ORed into the id (a clustered server's node id in the high bits). */
int64_t osp_ws_registry_add_in(osp_ws_kind kind, void *object, int64_t owner, int64_t base);
/* With osp_ws_tx_lock held (the entry may move once it is released). */
const osp_ws_entry *osp_ws_registry_get(int64_t id);
/* Any thread: copies id's entry under the lock; false for an unknown id. The object is only
 * safe to touch on its loop (entry.loop): a connection is freed by its own loop. */
bool osp_ws_registry_find(int64_t id, osp_ws_entry *out);
void osp_ws_registry_retire(int64_t id, uint16_t code);
/* Retired ids remembered for "already closed" answers; older ones are forgotten. Tests lower
 * osp_ws_retired_keep before the first id is retired. */
#define OSP_WS_RETIRED_KEEP 65536
extern size_t osp_ws_retired_keep;
/* Ids in the table (live and remembered retired ones); for tests. Any thread. */
size_t osp_ws_registry_size(void);
/* Calls fn (with a copy of the entry, without the lock) for every live object registered by
 * loop L (its connections; the main loop's also every server), in no particular order. Run on
 * L's thread. */
void osp_ws_registry_each_on(osp_ws_loop *L, void (*fn)(const osp_ws_entry *e, int64_t id, void *arg), void *arg);
/* The same for the calling loop thread's loop. */
void osp_ws_registry_each(void (*fn)(const osp_ws_entry *e, int64_t id, void *arg), void *arg);

/* Shutdown, loop thread joined: frees the table. */
void osp_ws_registry_release(void);
/* Live connection count changes (for shutdown; ws_runtime.c). */
void osp_ws_live_conns_add(int delta);

/* ---- handing messages to handlers (ws_inbox.c) --------------------------------------------- */

typedef struct osp_ws_inbox osp_ws_inbox;
struct osp_fiber;

/* Loop thread: queues a copy of a data message (opcode text or binary) for c's handler (its
 * server's, or its own), stamped with the time of receipt, and makes sure a fiber is draining
 * c's inbox; the handler never runs on the loop thread. */
void osp_ws_inbox_deliver(osp_ws_conn *c, uint8_t opcode, const uint8_t *data, size_t len);
/* Any thread: whether the caller is the handler of conn_id with more of that connection's
 * messages waiting in its inbox. Its answers then go through the loop, which sends the answers
 * of the whole batch with one send(), rather than one direct send each (ws_server.c). */
bool osp_ws_inbox_more_waiting(int64_t conn_id);
/* Loop thread, at the end of every ingest: the messages osp_ws_inbox_deliver held during it
 * go to c's inbox together (one lock for all the messages of one read), and its drain is
 * started at the end of the loop iteration with the other connections'. */
void osp_ws_inbox_hand_over(osp_ws_conn *c);
/* Loop thread: server connection c was registered (its id given): queues its open event and
 * owes it a close event. Before any of its messages. */
void osp_ws_inbox_open_event(osp_ws_conn *c);
/* Loop thread: c ended (osp_ws_conn_destroy): queues its close event (c->session.close_code and
 * c->session.close_reason) behind its last message, when one is owed. Never dropped by quiesce. */
void osp_ws_inbox_close_event(osp_ws_conn *c);
/* Loop thread: c is being freed; its inbox lives on while a drain fiber still uses it. */
void osp_ws_inbox_conn_freed(osp_ws_conn *c);
/* Any thread but the loop's, after websocketClose (conn_id) or websocketStopServer (server_id)
 * has closed the connection(s): drops their undelivered messages and, unless `caller` (the fiber
 * that called the function, or NULL) is itself running a WebSocket handler, waits until no handler
 * call for them is in progress. */
void osp_ws_inbox_quiesce(int64_t conn_id, int64_t server_id, struct osp_fiber *caller);
/* Loop thread: c's output queue went over half its limit (full) or back to a quarter; while it
 * is full no message is handed to c's handler. */
void osp_ws_inbox_output_pressure(osp_ws_conn *c, bool full);
/* Replaces a server's handler and its environment where the inboxes read them (under the
 * inbox lock), so a loop delivering a message sees either the old pair or the new one. */
void osp_ws_inbox_replace_handler(osp_ws_msg_handler *slot, void **env_cell, const osp_ws_msg_handler *h, void *env);
/* Loop thread: pauses or resumes reading c for its inbox's sake. */
void osp_ws_conn_set_inbox_paused(osp_ws_conn *c, bool paused);

/* ---- connections (ws_conn.c) -------------------------------------------------------------- */

/* Allocates a connection in `state` for an fd (not yet watched), with a copy of `limits`,
 * reporting to `owner`; NULL when out of memory. */
osp_ws_conn *osp_ws_conn_new(int fd, osp_ws_role role, osp_ws_conn_state state,
                             const osp_ws_limits *limits, const osp_ws_conn_owner *owner);
/* Frees a connection that was never started nor registered (its admission failed) and closes
 * its fd. */
void osp_ws_conn_discard(osp_ws_conn *c);
/* Starts watching the fd; -1 on failure (the caller destroys). */
int osp_ws_conn_start(osp_ws_conn *c);
/* The opening handshake succeeded: OPEN, idle deadline armed if configured. */
void osp_ws_conn_opened(osp_ws_conn *c);
/* Received bytes (from a read, or left over after a handshake). */
void osp_ws_conn_ingest(osp_ws_conn *c, uint8_t *data, size_t len);
/* Queues one frame (masked with a fresh RAND_bytes key for clients). 0 or -1. */
int osp_ws_conn_queue_frame(osp_ws_conn *c, uint8_t opcode, const uint8_t *payload, size_t len);
/* Queues an already encoded, unmasked frame (server side; a broadcast encodes the header
 * once for all recipients). 0 or -1. */
int osp_ws_conn_queue_encoded(osp_ws_conn *c, const uint8_t *header, size_t hlen,
                              const uint8_t *payload, size_t len);
/* The buffer c's next output goes to (the loop's shared cork buffer when c may use it); for
 * writing the handshake response. */
osp_ws_buf *osp_ws_conn_out_buf(osp_ws_conn *c);
/* Server side, wss://: gives c (not yet watched) a TLS session in the accept state, its
 * handshake counted among the loop's unfinished ones. false when OpenSSL fails (the caller
 * frees c). */
bool osp_ws_conn_begin_tls(osp_ws_conn *c, SSL_CTX *ctx);
/* Unfinished server TLS handshakes one loop holds at most: a new one drops the oldest
 * (docs/WEBSOCKET-RUNTIME.md#tls-handshakes). */
#define OSP_WS_TLS_HANDSHAKES_IN_FLIGHT 256
/* Writes what the socket takes; updates epoll interest, backpressure and the pending FIN. */
void osp_ws_conn_flush(osp_ws_conn *c);
/* Broadcasts without a copy per recipient: the frame is appended once to the loop's broadcast
 * log (osp_ws_bcast_append gives its offset), each recipient records the range it still has to
 * send (consecutive broadcasts extend it), and its flush sends header-and-payload bytes straight
 * from the log with sendmsg. Anything else queued for that connection first copies its range
 * into its own queue, so order is kept. osp_ws_bcast_end after the last recipient. */
int osp_ws_bcast_append(const uint8_t *header, size_t hlen, const uint8_t *payload, size_t len,
                        size_t *at, bool wipe);
int osp_ws_conn_queue_logged(osp_ws_conn *c, size_t at, size_t n);
void osp_ws_bcast_end(void);
/* Flushes at the end of this loop iteration (at once when much is queued), so several sends
 * in one iteration (broadcasts, handler sends) reach the socket in one send(). */
void osp_ws_conn_flush_soon(osp_ws_conn *c);
/* Starts the closing handshake with `code` (RFC 6455 §7.1.2); no-op unless OPEN. */
void osp_ws_conn_start_close(osp_ws_conn *c, uint16_t code, const char *reason);
/* Fails the connection (RFC 6455 §7.1.7): Close with `code`, then close TCP. */
void osp_ws_conn_fail(osp_ws_conn *c, uint16_t code, const char *reason);
/* Closes the socket at once and retires the id; `code` is what the application is told. */
void osp_ws_conn_destroy(osp_ws_conn *c, uint16_t code);
/* Checks a text message an application wants to send (not NULL, within max_message, valid
 * UTF-8) on the calling thread; *len gets its length. false with *err set. `fn` is the Osprey
 * function name for the message. */
bool osp_ws_check_outgoing(const char *fn, const char *message, size_t *len, OspResult *err);
/* The same for a binary message (any bytes: no UTF-8 check). */
bool osp_ws_check_outgoing_binary(const char *fn, const char *data, size_t *len, OspResult *err);
/* The current time in milliseconds since the epoch (CLOCK_REALTIME): message timestamps. */
int64_t osp_ws_wall_ms(void);
/* A fresh masking key (RFC 6455 §5.3) from this thread's pool of OpenSSL RAND_bytes output,
 * refilled 4 KiB at a time; false when RAND_bytes fails (never a predictable key). Any thread. */
bool osp_ws_mask_key(uint8_t key[4]);
/* websocketSend/SendBinary from a thread other than the loop's, with osp_ws_tx_lock held and c a
 * live client connection: checks closing and the output cap, appends the masked frame (opcode) to
 * c->tx_pend. *wake: the caller must wake the loop (after unlocking). Success or Err. */
OspResult osp_ws_tx_post(osp_ws_conn *c, const char *fn, int64_t id, uint8_t opcode, const char *message,
                         size_t len, bool *wake);
/* Loop thread: moves c's asynchronously posted frames into its output queue (before anything
 * the loop itself queues for c, so a Close or a handler's send follows them). */
void osp_ws_tx_drain(osp_ws_conn *c);
/* After queueing for c outside its read path (a send from a handler or another connection):
 * stops reading from c at once when its output is over maxOutputBytes. */
void osp_ws_conn_check_backpressure(osp_ws_conn *c);
/* The one send-permission check, for every path that queues an application message for c
 * (websocketSend and websocketServerSend, performed on the loop or posted from another
 * thread): `closing` and `pending` (bytes already queued or posted for c) as the calling path
 * sees them. Success, or the Err that call returns. c->role, c->state and c->limits are
 * written only on the loop thread before c is registered, so any thread may call it with c
 * looked up under osp_ws_tx_lock. */
OspResult osp_ws_send_permission(const osp_ws_conn *c, const char *fn, int64_t id, bool closing,
                                 size_t pending, size_t len);
/* True when a message of `len` bytes may not be queued behind `pending` bytes under the
 * output cap: the queue stays within max_output, except for one message larger than the cap
 * queued while nothing else waits. */
bool osp_ws_output_would_overflow(size_t pending, size_t len, uint64_t max_output);
/* The NUL-terminated copy of a message handed to an Osprey handler (collected memory); with
 * wipeMessages it is wiped once the collector finds it unreachable. */
const char *osp_ws_handler_copy(bool wipe, const uint8_t *data, size_t len);
/* The Err for a send refused because the process memory budget is used up. */
OspResult osp_ws_budget_error(const char *fn);
/* With osp_ws_tx_lock held, on a thread that is not c's loop: claims c's socket for one direct
 * frame when the loop allows it (a plain server connection, open, nothing queued). */
bool osp_ws_conn_direct_claim(osp_ws_conn *c);
/* After a claim, without the lock: writes one unmasked frame to c's socket; what the socket
 * does not take is handed to c's loop, which sends it before anything else. */
void osp_ws_conn_direct_send(osp_ws_conn *c, uint8_t opcode, const uint8_t *payload, size_t len);
/* Tests only (0 otherwise): a direct send writes at most this many bytes, as a full socket
 * would take, so the hand-over of the rest to the loop is exercised. */
extern size_t osp_ws_test_direct_send_max;
/* Tests only: how many times a loop has flushed broadcast frames (all loops, ever). */
extern atomic_size_t osp_ws_test_bcast_flushes;
/* Bytes waiting in the output queue. */
size_t osp_ws_conn_pending(const osp_ws_conn *c);
/* May an application message be queued for c now (open, not destroyed, no Close sent or
 * received)? Every send path asks this before osp_ws_send_permission. */
static inline bool osp_ws_conn_accepts_data(const osp_ws_conn *c) {
    return c->state != OSP_WS_CONN_DEAD && osp_ws_session_accepts_data(&c->session);
}
/* Adds a waiter signalled when the connection is destroyed. */
void osp_ws_conn_add_waiter(osp_ws_conn *c, osp_ws_waiter *w);


#endif /* OSP_WS_INTERNAL_H */
