/*
 * One WebSocket connection after (or, server side, during) the opening handshake: its bytes.
 * Reading hands received bytes to the connection's session (ws_session.c), which decides the
 * protocol — pongs, pings, the closing handshake, the deadlines (RFC 6455 §5.5, §7) — and
 * writes its frames into this connection's output queue; here are the queue with backpressure,
 * the timer that follows the session's deadline, TLS, epoll interest and teardown. Shared by
 * client and server connections; the role decides masking and where messages go.
 * Runs on the loop thread only, except osp_ws_mask_key and osp_ws_tx_post (any thread, the
 * latter under osp_ws_tx_lock).
 */
#include "ws_internal.h"
#include "net.h"
#include "ws_handoff.h"
#include "ws_tls.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* What the connections of one loop share lives in their loop (osp_ws_loop, loop.h): the
 * receive buffer every read is parsed from in place, the output ("cork") buffer a connection
 * builds its frames in while it is being served (docs/WEBSOCKET-RUNTIME.md#loops-per-core: so
 * an idle connection keeps no output buffer and hot data stays in cache), the list of
 * connections flushed at the end of the iteration (a broadcast queues to every recipient and
 * each gets one send() for all the messages of that iteration), the memory budget's waiters
 * and the broadcast log (osp_ws_bcast_append in ws_internal.h). */

static void recycle_shared(osp_ws_buf *b, bool wipe);
static void conn_free(osp_ws_conn *c);

/* Destroyed connections are freed at the end of their loop's iteration (layer_iteration_end):
 * a later event of the same epoll batch, or a command's caller, may still hold a pointer. */

/* Server-side TLS handshakes of this loop's connections (docs/WEBSOCKET-RUNTIME.md#tls-handshakes).
 * A handshake step that answers a ClientHello costs a key exchange and a signature (about half a
 * millisecond of CPU), so a peer opening connections and replaying ClientHellos could keep the
 * loop busy with them while established connections wait. The steps therefore run on the TLS
 * handshake threads, in the idle scheduling class (ws_tls_pool.h): the loop stops reading the
 * socket (it watches it for the peer's hang-up only), submits the step, and goes on with the
 * connection when the step comes back (tls_steps_back, at the end of an iteration). Bounds that hold either way: at most
 * OSP_WS_TLS_HANDSHAKES_IN_FLIGHT unfinished server handshakes per loop (a new one drops the
 * oldest: pausing accept instead would let a few idle connections lock every new client out),
 * and each peer address has a handshake rate (maxTlsHandshakeRatePerIp, ws_server.c). Only when
 * the threads cannot run (they could not be started) does the loop step handshakes itself, and
 * then one loop iteration spends at most OSP_WS_TLS_STEP_BUDGET_NS on them (the rest wait for
 * the next iteration: epoll is level-triggered, so their sockets are reported again, after the
 * established connections of this batch were served). The accounting is the loop's
 * (tls_in_flight, tls_oldest/tls_newest, tls_step_ns/tls_step_count). */
#define OSP_WS_TLS_STEP_BUDGET_NS (1000u * 1000u)

static uint64_t monotonic_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool osp_ws_conn_begin_tls(osp_ws_conn *c, SSL_CTX *ctx) {
    osp_ws_loop *L = c->loop;
    c->tls = SSL_new(ctx);
    if (c->tls == NULL || !osp_ws_tls_attach(c->tls, c->watch.fd)) return false;
    SSL_set_accept_state(c->tls);
    c->tls_handshaking = true;
    /* Full: the handshake that has had the longest time goes (a live client finishes in
     * milliseconds; a peer holding connections open without finishing is the one dropped). */
    if (L->tls_in_flight >= OSP_WS_TLS_HANDSHAKES_IN_FLIGHT && L->tls_oldest != NULL)
        osp_ws_conn_destroy(L->tls_oldest, OSP_WS_CLOSE_ABNORMAL);
    c->tls_counted = true;
    c->tls_prev = L->tls_newest;
    c->tls_next = NULL;
    if (L->tls_newest) L->tls_newest->tls_next = c;
    else L->tls_oldest = c;
    L->tls_newest = c;
    L->tls_in_flight++;
    return true;
}

/* c's TLS handshake is over (finished, failed, or the connection is going away). */
static void tls_handshake_uncount(osp_ws_conn *c) {
    osp_ws_loop *L = c->loop;
    if (!c->tls_counted) return;
    c->tls_counted = false;
    if (c->tls_prev) c->tls_prev->tls_next = c->tls_next;
    else L->tls_oldest = c->tls_next;
    if (c->tls_next) c->tls_next->tls_prev = c->tls_prev;
    else L->tls_newest = c->tls_prev;
    c->tls_prev = c->tls_next = NULL;
    L->tls_in_flight--;
}


static void bc_unref(osp_ws_loop *L) {
    if (--L->bc_refs == 0) {
        recycle_shared(&L->bc_log, L->bc_wipe);
        L->bc_wipe = false;
    }
}

/* Bytes one connection may accumulate before a deferred flush is done at once. */
#define OSP_WS_CORK_FLUSH (64 * 1024)

/* Payloads this large are sent straight from where they are (header and payload in one
 * sendmsg) when nothing else is queued, instead of being copied into an output buffer. */
#define OSP_WS_SEND_DIRECT_MIN (8 * 1024)

static void conn_on_event(osp_ws_watch *w, uint32_t events);
static void conn_on_timer(osp_ws_timer *t);
static void conn_on_tls_kick(osp_ws_timer *t);
static void conn_read(osp_ws_conn *c);
static void wipe_tls_stack(void);
static void tx_forget(osp_ws_conn *c);

static void sync_session(osp_ws_conn *c);

static osp_ws_conn *conn_of_watch(osp_ws_watch *w) { return (osp_ws_conn *)w; }
static osp_ws_conn *conn_of_timer(osp_ws_timer *t) {
    return (osp_ws_conn *)((char *)t - offsetof(osp_ws_conn, timer));
}

/* ---- direct sends from handler threads ------------------------------------------------------
 * docs/WEBSOCKET-RUNTIME.md, "Handler sends". While a plain server connection has nothing
 * queued on its loop, a handler's thread writes its answer to the socket itself (one sendmsg)
 * instead of posting it and waking the loop. The loop offers this (direct_ok) when a flush
 * leaves the connection's output empty, and takes it back (direct_reclaim) before it queues or
 * writes anything for the connection, and before it closes the socket: it waits for a sender
 * in the middle of its write, then puts what that write left over in front of its own output.
 * So frames never interleave, the order of sends is kept, and nothing follows the Close. */

static void tx_take_locked(osp_ws_conn *c);
static void tx_absorb(osp_ws_conn *c);

/* Loop thread: no other thread writes c's socket from now on until direct_offer. */
static void direct_revoke(osp_ws_conn *c) {
    /* Only this thread sets it: false means no sender holds the socket or can claim it. */
    if (!atomic_load_explicit(&c->direct_ok, memory_order_relaxed)) return;
    atomic_store(&c->direct_ok, false);
    /* A sender that claimed the socket before is inside one non-blocking sendmsg. */
    for (unsigned spins = 0; atomic_load(&c->direct_busy); spins++) { /* seq_cst: the Dekker pair */
        if (spins < 64) __builtin_ia32_pause();
        else sched_yield();
    }
}

/* Loop thread, before c's output changes: revoke, then the rest of a direct frame first. */
static void direct_reclaim(osp_ws_conn *c) {
    if (!atomic_load_explicit(&c->direct_ok, memory_order_relaxed)) return;
    direct_revoke(c);
    if (c->tx_pend.len == 0) return;
    pthread_mutex_lock(&osp_ws_tx_lock);
    tx_take_locked(c); /* c stays listed: the next drain of the list finds it empty */
    pthread_mutex_unlock(&osp_ws_tx_lock);
    tx_absorb(c);
}

/* Loop thread, c's output just became empty: let handler threads write the socket. */
static void direct_offer(osp_ws_conn *c) {
    if (atomic_load_explicit(&c->direct_ok, memory_order_relaxed) || c->role != OSP_WS_ROLE_SERVER ||
        c->tls != NULL || c->state != OSP_WS_CONN_OPEN || c->id == 0)
        return;
    /* No lock: while direct_ok is false only this thread writes tx_shut and tx_pend of a
     * server connection (the last sender's rest was taken under the lock). */
    if (!c->tx_shut && c->tx_pend.len == 0) atomic_store_explicit(&c->direct_ok, true, memory_order_release);
}

bool osp_ws_conn_direct_claim(osp_ws_conn *c) {
    if (!atomic_load(&c->direct_ok)) return false;
    /* An exchange, not a load then a store: it both excludes another sender and acquires the
     * previous sender's release, so the rest of a frame that sender left in tx_pend is seen
     * below (read before the claim, tx_pend.len could be stale and this frame would go out
     * ahead of that rest). */
    if (atomic_exchange(&c->direct_busy, true)) return false;
    /* The loop may have revoked meanwhile: it then either waits for this claim (it saw it) or
     * this sees its revocation and backs off. While this holds the claim and direct_ok is set,
     * neither the loop nor another sender writes tx_shut or tx_pend. */
    if (!atomic_load(&c->direct_ok) || c->tx_shut || c->tx_pend.len != 0) {
        atomic_store_explicit(&c->direct_busy, false, memory_order_release);
        return false;
    }
    return true;
}

size_t osp_ws_test_direct_send_max;

void osp_ws_conn_direct_send(osp_ws_conn *c, uint8_t opcode, const uint8_t *payload, size_t len) {
    uint8_t header[OSP_WS_MAX_FRAME_HEADER];
    size_t hlen = osp_ws_frame_encode_header(header, true, opcode, len, NULL);
    size_t cut = osp_ws_test_direct_send_max; /* tests: a socket that takes only this much */
    ssize_t w = cut == 0 || hlen + len <= cut
                    ? osp_ws_net_send2(c->watch.fd, header, hlen, payload, len)
                    : osp_ws_net_send2(c->watch.fd, header, hlen < cut ? hlen : cut, payload, hlen < cut ? cut - hlen : 0);
    size_t sent = w > 0 ? (size_t)w : 0;
    if (sent == hlen + len) {
        atomic_store_explicit(&c->direct_busy, false, memory_order_release);
        return;
    }
    /* EPIPE, ECONNRESET…: the loop sees the end on its own and reports it. */
    bool gone = w < 0 && errno != EAGAIN && errno != EWOULDBLOCK;
    osp_ws_loop *L = c->loop, *wake = NULL;
    pthread_mutex_lock(&osp_ws_tx_lock);
    if (!gone) {
        /* The socket is full: the rest of the frame goes to the loop, ahead of anything else
         * it sends on c (direct_reclaim, or the next drain of the list), which also stops
         * further direct sends until it has gone out. */
        size_t rest = hlen + len - sent;
        if (osp_ws_buf_reserve(&c->tx_pend, rest, SIZE_MAX) == 0) {
            uint8_t *dst = c->tx_pend.data + c->tx_pend.len;
            size_t from_header = sent < hlen ? hlen - sent : 0;
            memcpy(dst, header + (hlen - from_header), from_header);
            if (len) memcpy(dst + from_header, payload + (len - (rest - from_header)), rest - from_header);
            c->tx_pend.len += rest;
            if (!c->tx_listed) {
                if (L->tx_list == NULL) wake = L;
                c->tx_listed = true;
                c->tx_next = L->tx_list;
                L->tx_list = c;
            }
        } else {
            /* Part of a frame went out and the rest cannot be kept (memory budget): the
             * stream cannot continue. Ending it is the one honest outcome; the loop sees the
             * end and reports 1006 to the application. */
            (void)shutdown(c->watch.fd, SHUT_RDWR);
        }
    }
    atomic_store_explicit(&c->direct_busy, false, memory_order_release); /* the last touch of c */
    pthread_mutex_unlock(&osp_ws_tx_lock);
    osp_ws_loop_wake_on(wake);
}

/* ---- the session's output: this connection's queue ------------------------------------------ */

static int session_write(void *ctx, const uint8_t *bytes, size_t len) {
    return osp_ws_conn_queue_encoded(ctx, bytes, len, NULL, 0);
}

static size_t session_pending(const void *ctx) { return osp_ws_conn_pending(ctx); }

static bool session_mask_key(void *ctx, uint8_t key[4]) {
    (void)ctx;
    return osp_ws_mask_key(key);
}

static void queue_posted_before_close(osp_ws_conn *c);

static int session_closing(void *ctx) {
    osp_ws_conn *c = ctx;
    queue_posted_before_close(c);
    return c->state == OSP_WS_CONN_DEAD ? -1 : 0;
}

static const osp_ws_session_output session_output = {
    .write = session_write,
    .pending = session_pending,
    .mask_key = session_mask_key,
    .closing = session_closing,
};

osp_ws_conn *osp_ws_conn_new(int fd, osp_ws_role role, osp_ws_conn_state state,
                             const osp_ws_limits *limits, const osp_ws_conn_owner *owner) {
    osp_ws_conn *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->owner = owner;
    /* Made on a loop thread (accept), it belongs to that loop; made elsewhere (a client's
     * handshake runs on the calling thread), to the main loop. */
    c->loop = osp_ws_loop_current() ? osp_ws_loop_current() : osp_ws_loop_main();
    c->watch.fd = fd;
    c->watch.on_event = conn_on_event;
    osp_ws_timer_init(&c->timer, conn_on_timer);
    osp_ws_timer_init(&c->tls_kick, conn_on_tls_kick);
    c->role = role;
    c->state = state;
    c->limits = *limits;
    osp_ws_session_init(&c->session, role, &c->limits, &session_output, c);
    /* Output and posted frames count against the process memory budget, like reassembly. */
    c->out.counted = c->tx_pend.counted = c->tx_spare.counted = true;
    osp_ws_live_conns_add(1);
    return c;
}

int osp_ws_conn_start(osp_ws_conn *c) {
    return osp_ws_watch_set(&c->watch, EPOLLIN);
}

/* The connection's one timer follows the session's next deadline. It is moved only when the
 * session needs the clock earlier than the timer fires: received bytes push the idle deadline
 * later, and a timer that fires early finds nothing due and is re-armed (one heap operation
 * per deadline, not one per read). */
static void arm_session_timer(osp_ws_conn *c) {
    uint64_t due = osp_ws_session_next_deadline(&c->session);
    if (due == UINT64_MAX) return;
    if (osp_ws_timer_armed(&c->timer) && c->timer.deadline_ms <= due) return;
    uint64_t now = osp_ws_now_ms();
    osp_ws_timer_arm(&c->timer, due > now ? due - now : 0);
}

/* After every session call: the connection's state follows the session's phase; entering
 * CLOSED_WAIT decides who ends TCP (RFC 6455 §7.1.1) and keeps reading so the peer's FIN is
 * seen; the timer follows the session's deadline. */
static void sync_session(osp_ws_conn *c) {
    if (c->state == OSP_WS_CONN_DEAD) return;
    switch (c->session.phase) {
    case OSP_WS_SESSION_NEW:
        return;
    case OSP_WS_SESSION_OPEN:
        c->state = OSP_WS_CONN_OPEN;
        break;
    case OSP_WS_SESSION_CLOSING:
        c->state = OSP_WS_CONN_CLOSING;
        break;
    case OSP_WS_SESSION_CLOSED:
        if (c->state != OSP_WS_CONN_CLOSED_WAIT) {
            c->state = OSP_WS_CONN_CLOSED_WAIT;
            if (osp_ws_session_ends_tcp_first(&c->session)) c->fin_after_flush = true;
            c->read_paused = false; /* keep draining so the peer's FIN is seen */
        }
        break;
    }
    arm_session_timer(c);
}

void osp_ws_conn_opened(osp_ws_conn *c) {
    osp_ws_session_open(&c->session, osp_ws_now_ms());
    osp_ws_timer_cancel(&c->timer); /* the handshake deadline */
    sync_session(c);
}

void osp_ws_conn_add_waiter(osp_ws_conn *c, osp_ws_waiter *w) {
    w->next = c->close_waiters;
    c->close_waiters = w;
}

size_t osp_ws_conn_pending(const osp_ws_conn *c) {
    osp_ws_loop *L = c->loop;
    return c->out.len - c->out_head + (L->cork_owner == c ? L->cork.len : 0) + (c->bc_to - c->bc_from);
}

/* Drops c's range of the broadcast log. */
static void bc_drop(osp_ws_conn *c) {
    if (c->bc_to == c->bc_from) return;
    c->bc_from = c->bc_to = 0;
    bc_unref(c->loop);
}

/* Copies c's range of the broadcast log behind what c already has queued (the cork or its
 * own queue). 0 or -1 (out of memory; the range is dropped either way). */
static int bc_materialize(osp_ws_conn *c) {
    osp_ws_loop *L = c->loop;
    if (c->bc_to == c->bc_from) return 0;
    osp_ws_buf *b = L->cork_owner == c ? &L->cork : &c->out;
    int rc = osp_ws_buf_append(b, L->bc_log.data + c->bc_from, c->bc_to - c->bc_from);
    bc_drop(c);
    return rc;
}

int osp_ws_bcast_append(const uint8_t *header, size_t hlen, const uint8_t *payload, size_t len,
                        size_t *at, bool wipe) {
    osp_ws_loop *L = osp_ws_loop_current();
    size_t total;
    if (__builtin_add_overflow(hlen, len, &total)) return -1;
    if (osp_ws_buf_reserve(&L->bc_log, total, SIZE_MAX) != 0) return -1;
    *at = L->bc_log.len;
    memcpy(L->bc_log.data + L->bc_log.len, header, hlen);
    if (len) memcpy(L->bc_log.data + L->bc_log.len + hlen, payload, len);
    L->bc_log.len += total;
    L->bc_refs++; /* the broadcast in progress: the log is not emptied under it */
    if (wipe) L->bc_wipe = true;
    return 0;
}

void osp_ws_bcast_end(void) { bc_unref(osp_ws_loop_current()); }

int osp_ws_conn_queue_logged(osp_ws_conn *c, size_t at, size_t n) {
    osp_ws_loop *L = c->loop;
    if (n == 0) return 0;
    direct_reclaim(c);
    if (c->bc_to != c->bc_from && c->bc_to == at) {
        c->bc_to = at + n; /* the next broadcast right behind the previous one */
        return 0;
    }
    /* TLS encrypts per connection anyway, and a range that would have a gap is copied. */
    if (c->tls != NULL || c->bc_to != c->bc_from) {
        if (bc_materialize(c) != 0) return -1;
        osp_ws_buf *b = L->cork_owner == c ? &L->cork : &c->out;
        return osp_ws_buf_append(b, L->bc_log.data + at, n);
    }
    c->bc_from = at;
    c->bc_to = at + n;
    L->bc_refs++;
    return 0;
}

/* Where c's next frame goes: the cork when c owns it or may take it (nothing of c's is queued
 * elsewhere, so order is kept), else c's own queue. */
static osp_ws_buf *out_buf(osp_ws_conn *c) {
    osp_ws_loop *L = c->loop;
    direct_reclaim(c);
    /* Broadcast frames waiting in the log go first: copy them behind c's queue. */
    if (c->bc_to != c->bc_from && bc_materialize(c) != 0) return NULL;
    if (L->cork_owner == c) return &L->cork;
    if (L->cork_owner == NULL && c->out.len == c->out_head) {
        L->cork_owner = c;
        return &L->cork;
    }
    return &c->out;
}

osp_ws_buf *osp_ws_conn_out_buf(osp_ws_conn *c) {
    osp_ws_buf *b = out_buf(c);
    return b ? b : &c->out; /* only NULL with broadcast frames waiting, never in a handshake */
}

/* Sends c's queue and its broadcast-log range in one sendmsg (plain sockets), then copies what
 * the socket did not take of the range into c's queue. 0, or -1 when the peer is gone. */
static int bc_flush(osp_ws_conn *c) {
    osp_ws_loop *L = c->loop;
    if (c->tls == NULL) {
        size_t queued = c->out.len - c->out_head, range = c->bc_to - c->bc_from;
        ssize_t w = osp_ws_net_send2(c->watch.fd, c->out.data + c->out_head, queued,
                                     L->bc_log.data + c->bc_from, range);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            bc_drop(c);
            return -1;
        }
        size_t sent = w > 0 ? (size_t)w : 0;
        size_t from_out = sent < queued ? sent : queued;
        c->out_head += from_out;
        c->bc_from += sent - from_out;
        if (c->bc_from == c->bc_to) {
            c->bc_from = c->bc_to = 0;
            bc_unref(L);
            return 0;
        }
    }
    return bc_materialize(c);
}

/* A shared buffer that grew for one large message is given back (wiped) rather than kept at
 * that size for ever: it counts against the memory budget. */
static void recycle_shared(osp_ws_buf *b, bool wipe) {
    if (b->cap > 4 * OSP_WS_CORK_FLUSH) osp_ws_buf_free(b);
    else osp_ws_buf_recycle(b, wipe);
}

static void release_cork(osp_ws_loop *L) {
    recycle_shared(&L->cork, L->cork_owner != NULL && L->cork_owner->limits.wipe_messages != 0);
    L->cork_owner = NULL;
}

/* Sends what c has in the cork and moves the rest into c's own queue. 0, or -1 when the peer
 * is gone (the caller destroys). */
static int uncork(osp_ws_conn *c) {
    osp_ws_loop *L = c->loop;
    size_t off = 0;
    int rc = 0;
    while (off < L->cork.len && !c->tls_handshaking) {
        bool want_write = false;
        ssize_t w = c->tls ? osp_ws_tls_send(c->tls, L->cork.data + off, L->cork.len - off, &want_write)
                           : osp_ws_net_send(c->watch.fd, L->cork.data + off, L->cork.len - off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        rc = -1; /* EPIPE, ECONNRESET…: the peer is gone */
        break;
    }
    if (rc == 0 && off < L->cork.len && osp_ws_buf_append(&c->out, L->cork.data + off, L->cork.len - off) != 0)
        rc = -1;
    release_cork(L);
    return rc;
}

void osp_ws_conn_flush_soon(osp_ws_conn *c) {
    osp_ws_loop *L = c->loop;
    if (c->state == OSP_WS_CONN_DEAD) return;
    if (osp_ws_conn_pending(c) >= OSP_WS_CORK_FLUSH) {
        osp_ws_conn_flush(c);
        return;
    }
    if (c->on_dirty) return;
    c->on_dirty = true;
    c->dirty_next = L->dirty_head;
    L->dirty_head = c;
}

/* The longest a loop holds broadcast frames for handlers still at work (flush_dirty): with
 * the millisecond clock, between 1 and 2 ms. */
#define OSP_WS_BCAST_HOLD_MS 2

atomic_size_t osp_ws_test_bcast_flushes;

static void bc_hold_expired(osp_ws_timer *t) { (void)t; /* the iteration's end flushes */ }

/* Whether this iteration's flush of broadcast frames waits. Handlers run on worker threads
 * (ws_inbox.c): the broadcasts that a batch of received messages causes reach the loop one by
 * one, some after the loop has flushed the earlier ones, and every flush costs one send() per
 * recipient whether it carries one frame or sixteen. So while handler calls are unfinished,
 * or records were posted and not yet taken, the loop holds the frames, woken when the last
 * handler call returns, for OSP_WS_BCAST_HOLD_MS at most: a slow or parked handler delays the
 * broadcasts by that much per flush, never more. Only broadcast frames hold a flush; a loop
 * with none flushes at once, as before. */
static bool bc_hold(osp_ws_loop *L) {
    uint64_t now = osp_ws_now_ms();
    if (L->bc_hold_until != 0 && now >= L->bc_hold_until) return false;
    if (!atomic_load(&L->wake_requested) && !osp_ws_handoff_busy(L->index)) return false;
    if (L->bc_hold_until == 0) {
        if (L->bc_hold_timer.on_fire == NULL) osp_ws_timer_init(&L->bc_hold_timer, bc_hold_expired);
        osp_ws_timer_arm(&L->bc_hold_timer, OSP_WS_BCAST_HOLD_MS);
        /* Out of memory for a timer slot: without a wake-up at the deadline, never hold. */
        if (!osp_ws_timer_armed(&L->bc_hold_timer)) return false;
        L->bc_hold_until = now + OSP_WS_BCAST_HOLD_MS;
    }
    return true;
}

static void bc_hold_end(osp_ws_loop *L) {
    if (L->bc_hold_until == 0) return;
    osp_ws_timer_cancel(&L->bc_hold_timer);
    L->bc_hold_until = 0;
}

static void flush_dirty(void) {
    osp_ws_loop *L = osp_ws_loop_current();
    /* Broadcast frames waiting (recipients hold ranges of the log): held, or sent now. */
    bool hold = false;
    if (L->dirty_head != NULL && L->bc_refs > 0) {
        hold = bc_hold(L);
        if (!hold) {
            bc_hold_end(L);
            osp_ws_handoff_flushed(L->index);
            atomic_fetch_add_explicit(&osp_ws_test_bcast_flushes, 1, memory_order_relaxed);
        }
    } else {
        bc_hold_end(L); /* what it held went out meanwhile (over OSP_WS_CORK_FLUSH, or closed) */
    }
    /* Flushing never adds to the list; dead connections are skipped by flush and are only
     * freed by the reap that follows this call (which keeps a dead connection still on the
     * list for the next one). While holding, the live recipients of broadcast frames stay on
     * the list (with whatever else they have queued: it goes out before their frames); the
     * others are flushed as always. */
    bool tls = false;
    osp_ws_conn *held = NULL;
    while (L->dirty_head) {
        osp_ws_conn *c = L->dirty_head;
        L->dirty_head = c->dirty_next;
        if (hold && c->state != OSP_WS_CONN_DEAD && c->bc_to != c->bc_from) {
            c->dirty_next = held;
            held = c;
            continue;
        }
        c->dirty_next = NULL;
        c->on_dirty = false;
        tls |= c->tls != NULL;
        osp_ws_conn_flush(c);
    }
    L->dirty_head = held;
    if (L->cork_owner) {
        tls |= L->cork_owner->tls != NULL;
        osp_ws_conn_flush(L->cork_owner); /* never left corked across epoll_wait */
    }
    if (tls) wipe_tls_stack();
}

static void release_shared(void) {
    osp_ws_loop *L = osp_ws_loop_current();
    /* Runtime shutdown (loop thread gone): the shared buffers held payloads and handshake
     * requests; wipe them before the memory is released (docs/WEBSOCKET-RUNTIME.md#wiping-secrets). */
    L->cork_owner = NULL;
    osp_ws_buf_free(&L->cork);
    osp_ws_buf_free(&L->bc_log);
    L->bc_refs = 0;
    osp_ws_wipe(L->read_buffer, sizeof L->read_buffer);
}

static void conn_free(osp_ws_conn *c) {
    tls_handshake_uncount(c); /* a connection freed without being destroyed (admission failed) */
    osp_ws_session_free(&c->session);
    /* Posted frames hold payloads: freed wiped like every other queue (docs/WEBSOCKET-RUNTIME.md#wiping-secrets). No
     * sender can reach c any more: it was retired and taken off the list in destroy. */
    osp_ws_buf_free(&c->tx_pend);
    osp_ws_buf_free(&c->tx_spare);
    if (c->http) {
        osp_http_parser_free(c->http);
        free(c->http);
    }
    osp_ws_buf_free(&c->out);
    SSL_free(c->tls); /* OpenSSL cleanses its key material and record buffers */
    if (c->owner->freed) c->owner->freed(c);
    if (c->handler_env_cell) GC_FREE(c->handler_env_cell);
    if (c->events) GC_FREE(c->events);
    free(c);
}

void osp_ws_conn_destroy(osp_ws_conn *c, uint16_t code) {
    osp_ws_loop *L = c->loop;
    if (c->state == OSP_WS_CONN_DEAD) return;
    c->state = OSP_WS_CONN_DEAD;
    tls_handshake_uncount(c);
    if (L->cork_owner == c) release_cork(L); /* unsent bytes of a dead connection are dropped */
    bc_drop(c);
    if (c->budget_paused) {
        for (osp_ws_conn **p = &L->budget_head; *p; p = &(*p)->budget_next) {
            if (*p == c) {
                *p = c->budget_next;
                break;
            }
        }
        c->budget_paused = false;
    }
    /* The message buffers go back to the budget now, not at the reap. */
    osp_ws_reader_free(&c->session.reader);
    if (c->session.close_code == 0) c->session.close_code = code;
    osp_ws_timer_cancel(&c->timer);
    osp_ws_timer_cancel(&c->tls_kick);
    if (osp_ws_watch_set(&c->watch, 0) != 0) {
        /* The fd is closed below, which removes it from epoll anyway. */
    }
    direct_revoke(c); /* no sender may be writing the socket when it is closed */
    /* A handshake step still waiting for a thread is taken back; one a thread runs keeps the
     * socket (and the connection, see layer_iteration_end) until it is back: closing the fd
     * now could hand its number to the next accept while the thread still writes to it. */
    if (c->tls_offloaded && osp_ws_tls_pool_cancel(&c->tls_job)) c->tls_offloaded = false;
    if (!c->tls_offloaded) close(c->watch.fd);
    c->watch.events = 0;
    if (c->id) osp_ws_registry_retire(c->id, c->session.close_code);
    tx_forget(c);
    /* The owner queues the close event first (behind the last message), then unlinks. */
    if (c->owner->gone) c->owner->gone(c);
    /* Whoever waits in websocketClose may go on: the handler can no longer be called. */
    osp_ws_waiters_signal_all(&c->close_waiters);
    osp_ws_live_conns_add(-1);
    c->zombie_next = L->zombie_conns;
    L->zombie_conns = c;
}

void osp_ws_conn_discard(osp_ws_conn *c) {
    c->state = OSP_WS_CONN_DEAD;
    close(c->watch.fd);
    osp_ws_live_conns_add(-1);
    conn_free(c);
}

/* ---- output -------------------------------------------------------------------------------- */

bool osp_ws_check_outgoing(const char *fn, const char *message, size_t *len, OspResult *err) {
    if (message == NULL) {
        *err = osp_result_errorf("%s: the message is null", fn);
        return false;
    }
    *len = osp_str_len(message); /* every byte: U+0000 is a valid character of a text message */
    /* Checked against the process default here (any thread); a server's own, smaller limit
     * is what its peers enforce on what they receive. */
    osp_ws_limits snap;
    osp_ws_limits_snapshot(&snap);
    const osp_ws_limits *lim = &snap;
    if ((uint64_t)*len > lim->max_message) {
        *err = osp_result_errorf("%s: message too large (%zu bytes; the limit is %llu bytes)", fn, *len,
                                 (unsigned long long)lim->max_message);
        return false;
    }
    /* RFC 6455 §5.6/§8.1: a text frame carries UTF-8; the peer would fail us with 1007. */
    if (!osp_ws_utf8_valid((const uint8_t *)message, *len)) {
        *err = osp_result_errorf("%s: the message is not valid UTF-8 (text messages must be UTF-8)", fn);
        return false;
    }
    return true;
}

bool osp_ws_check_outgoing_binary(const char *fn, const char *data, size_t *len, OspResult *err) {
    if (data == NULL) {
        *err = osp_result_errorf("%s: the data is null", fn);
        return false;
    }
    *len = osp_str_len(data);
    osp_ws_limits snap;
    osp_ws_limits_snapshot(&snap);
    if ((uint64_t)*len > snap.max_message) {
        *err = osp_result_errorf("%s: message too large (%zu bytes; the limit is %llu bytes)", fn, *len,
                                 (unsigned long long)snap.max_message);
        return false;
    }
    return true;
}

int64_t osp_ws_wall_ms(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Boehm GC finalizer: the copy is unreachable, wipe it before the collector reuses it. */
static void wipe_collected_message(void *obj, void *len_plus_one) {
    osp_ws_wipe(obj, (size_t)(uintptr_t)len_plus_one);
}

const char *osp_ws_handler_copy(bool wipe, const uint8_t *data, size_t len) {
    char *copy = osp_gc_strndup((const char *)data, len);
    /* The handler's copy is an Osprey value: the program may keep it, so it cannot be wiped
     * when the handler returns. With the per-message wipe it is wiped when the collector finds
     * it unreachable (before its memory can be reused). */
    if (wipe)
        GC_REGISTER_FINALIZER_NO_ORDER(copy, wipe_collected_message, (void *)(uintptr_t)(len + 1), NULL, NULL);
    return copy;
}

bool osp_ws_output_would_overflow(size_t pending, size_t len, uint64_t max_output) {
    if (pending == 0) return false;
    return (uint64_t)pending >= max_output || (uint64_t)len + OSP_WS_MAX_FRAME_HEADER > max_output - pending;
}

OspResult osp_ws_send_permission(const osp_ws_conn *c, const char *fn, int64_t id, bool closing,
                                 size_t pending, size_t len) {
    if (closing)
        return osp_result_errorf("%s: connection %" PRId64 " is %s", fn, id,
                                 c->state == OSP_WS_CONN_HANDSHAKE ? "still in its opening handshake" : "closing");
    /* The new message counts against the cap before it is queued: the queue may only go past
     * the cap with a single message larger than the cap, sent when nothing else waits. */
    if (osp_ws_output_would_overflow(pending, len, c->limits.max_output))
        return osp_result_errorf("%s: connection %" PRId64 " has %zu bytes waiting to be sent (limit %llu); "
                                 "the %s is not reading (this message: %zu bytes)",
                                 fn, id, pending, (unsigned long long)c->limits.max_output,
                                 c->role == OSP_WS_ROLE_CLIENT ? "server" : "client", len);
    return osp_result_success(0);
}

OspResult osp_ws_budget_error(const char *fn) {
    return osp_result_errorf("%s: the WebSocket memory budget (%zu bytes, OSPREY_WS_MEMORY_BUDGET) is "
                             "used up by messages in flight; try again later",
                             fn, osp_ws_mem_budget());
}

int osp_ws_conn_queue_frame(osp_ws_conn *c, uint8_t opcode, const uint8_t *payload, size_t len) {
    direct_reclaim(c); /* before the pending() test below: it may write the socket */
    uint8_t header[OSP_WS_MAX_FRAME_HEADER];
    uint8_t key[4];
    bool masked = c->role == OSP_WS_ROLE_CLIENT;
    /* RFC 6455 §5.3 / §10.3: a client masks every frame with a fresh, unpredictable key. */
    if (masked && !osp_ws_mask_key(key)) return -1;
    size_t hlen = osp_ws_frame_encode_header(header, true, opcode, len, masked ? key : NULL);
    if (!masked && c->tls == NULL && len >= OSP_WS_SEND_DIRECT_MIN && osp_ws_conn_pending(c) == 0 &&
        c->state != OSP_WS_CONN_DEAD) {
        /* Nothing queued before it: header and payload go out in one sendmsg straight from
         * the caller's memory (for an echo, the read buffer); only the unsent rest is queued.
         * On EAGAIN or an error everything is queued and the flush that follows the caller's
         * work sends it or reports the error. */
        ssize_t w = osp_ws_net_send2(c->watch.fd, header, hlen, payload, len);
        size_t sent = w > 0 ? (size_t)w : 0;
        if (sent >= hlen) {
            size_t body = sent - hlen;
            return osp_ws_conn_queue_encoded(c, NULL, 0, payload + body, len - body);
        }
        return osp_ws_conn_queue_encoded(c, header + sent, hlen - sent, payload, len);
    }
    if (!masked) return osp_ws_conn_queue_encoded(c, header, hlen, payload, len);
    size_t total;
    if (__builtin_add_overflow(hlen, len, &total)) return -1;
    osp_ws_buf *b = out_buf(c);
    if (b == NULL) return -1;
    int rc = osp_ws_buf_reserve(b, total, SIZE_MAX);
    if (rc != 0) return rc;
    memcpy(b->data + b->len, header, hlen);
    if (len) memcpy(b->data + b->len + hlen, payload, len);
    osp_ws_mask(b->data + b->len + hlen, len, key, 0);
    b->len += total;
    return 0;
}

int osp_ws_conn_queue_encoded(osp_ws_conn *c, const uint8_t *header, size_t hlen,
                              const uint8_t *payload, size_t len) {
    size_t total;
    if (__builtin_add_overflow(hlen, len, &total)) return -1;
    if (total == 0) return 0;
    osp_ws_buf *b = out_buf(c);
    if (b == NULL) return -1;
    int rc = osp_ws_buf_reserve(b, total, SIZE_MAX);
    if (rc != 0) return rc;
    if (hlen) memcpy(b->data + b->len, header, hlen);
    if (len) memcpy(b->data + b->len + hlen, payload, len);
    b->len += total;
    return 0;
}

static void update_interest(osp_ws_conn *c) {
    if (c->state == OSP_WS_CONN_DEAD) return;
    /* While the handshake threads have a step: the hang-up watch (tls_offload_step) or nothing. */
    if (c->tls_offloaded) return;
    uint32_t ev = 0;
    if (!c->read_paused && !c->budget_paused && !c->inbox_paused) ev |= EPOLLIN;
    if (osp_ws_conn_pending(c) > 0 || c->tls_want_write) ev |= EPOLLOUT;
    if (osp_ws_watch_set(&c->watch, ev) != 0) osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
}

void osp_ws_conn_flush(osp_ws_conn *c) {
    osp_ws_loop *L = c->loop;
    if (c->state == OSP_WS_CONN_DEAD) return;
    /* The pong that waited in the session's slot under backpressure goes out once the queue
     * has room. */
    if (osp_ws_session_output_room(&c->session) != 0) {
        osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
        return;
    }
    if (L->cork_owner == c && uncork(c) != 0) {
        osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
        return;
    }
    if (c->bc_to != c->bc_from && !c->tls_handshaking && bc_flush(c) != 0) {
        osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
        return;
    }
    while (osp_ws_conn_pending(c) > 0 && !c->tls_handshaking) {
        bool want_write = false;
        ssize_t w = c->tls ? osp_ws_tls_send(c->tls, c->out.data + c->out_head, osp_ws_conn_pending(c), &want_write)
                           : osp_ws_net_send(c->watch.fd, c->out.data + c->out_head, osp_ws_conn_pending(c));
        if (w > 0) {
            c->out_head += (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        /* EPIPE, ECONNRESET…: the peer is gone (1006 to the application). */
        osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
        return;
    }
    if (osp_ws_conn_pending(c) == 0) {
        if (c->out.cap > OSP_WS_CORK_FLUSH) {
            /* A queue that grew under backpressure is given back once it drains (wiped). */
            osp_ws_buf_free(&c->out);
        } else {
            /* Wiped only with the per-message wipe option; always wiped when freed. */
            osp_ws_buf_recycle(&c->out, c->limits.wipe_messages != 0);
        }
        c->out_head = 0;
    } else if (c->out_head >= 64 * 1024 && c->out_head * 2 >= c->out.len) {
        osp_ws_buf_consume(&c->out, c->out_head);
        c->out_head = 0;
    }
    size_t pending = osp_ws_conn_pending(c);
    if (c->tx_queued != pending) {
        /* What asynchronous senders count against the output cap (osp_ws_tx_post, and
         * websocketServerSend from another thread: ws_server.c). Only this
         * thread writes tx_queued, so reading it here without the lock is safe. */
        pthread_mutex_lock(&osp_ws_tx_lock);
        c->tx_queued = pending;
        pthread_mutex_unlock(&osp_ws_tx_lock);
    }
    if (pending == 0) direct_offer(c);
    if (pending == 0 && c->fin_after_flush && !c->fin_sent) {
        /* RFC 6455 §7.1.1: the server closes TCP first; sending our FIN (not close()) lets the
         * peer read the Close frame before the connection ends, and we keep draining its
         * bytes so the kernel does not answer them with a reset. */
        if (c->tls) osp_ws_tls_shutdown(c->tls); /* close_notify first (RFC 8446 §6.1) */
        (void)shutdown(c->watch.fd, SHUT_WR);
        c->fin_sent = true;
    }
    /* Backpressure: the session decides when reading pauses and resumes. */
    bool pause = osp_ws_session_pause_reading(&c->session, c->read_paused, pending);
    if (pause != c->read_paused) {
        c->read_paused = pause;
        /* Records OpenSSL already decrypted raise no epoll event: read them on the next turn. */
        if (!pause && c->tls && SSL_pending(c->tls) > 0) osp_ws_timer_arm(&c->tls_kick, 0);
    }
    /* Deliveries to the handler (ws_inbox.c) are held back while the session says so. */
    if (c->inbox) {
        bool hold = osp_ws_session_hold_deliveries(&c->session, c->inbox_held, pending);
        if (hold != c->inbox_held) {
            c->inbox_held = hold;
            if (c->owner->output_pressure) c->owner->output_pressure(c, hold);
        }
    }
    update_interest(c);
}

void osp_ws_conn_set_inbox_paused(osp_ws_conn *c, bool paused) {
    if (c->state == OSP_WS_CONN_DEAD || c->inbox_paused == paused) return;
    c->inbox_paused = paused;
    /* Records OpenSSL already decrypted raise no epoll event: read them on the next turn. */
    if (!paused && !c->read_paused && c->tls && SSL_pending(c->tls) > 0) osp_ws_timer_arm(&c->tls_kick, 0);
    update_interest(c);
}

/* ---- asynchronous client sends ------------------------------------------------------------ */

/* Mask keys (RFC 6455 §5.3: fresh for every frame, unpredictable, from a strong source of
 * entropy). One RAND_bytes call fills a per-thread pool of 1024 keys instead of one call (and
 * OpenSSL's fork check, a getpid) per frame. A forked child discards the pool of the thread that
 * forked (the only one it has), so parent and child never use the same keys. */
#define OSP_WS_KEY_POOL 4096
static __thread uint8_t key_pool[OSP_WS_KEY_POOL];
static __thread size_t key_pool_pos = OSP_WS_KEY_POOL;
static pthread_once_t key_pool_once = PTHREAD_ONCE_INIT;
static bool key_pool_ok; /* pthread_atfork succeeded: pooling is safe across fork */

static void key_pool_after_fork(void) {
    osp_ws_wipe(key_pool, sizeof key_pool);
    key_pool_pos = OSP_WS_KEY_POOL;
}

static void key_pool_init(void) { key_pool_ok = pthread_atfork(NULL, NULL, key_pool_after_fork) == 0; }

bool osp_ws_mask_key(uint8_t key[4]) {
    if (pthread_once(&key_pool_once, key_pool_init) != 0 || !key_pool_ok)
        return RAND_bytes(key, 4) == 1; /* no fork protection: one call per key, as before */
    if (key_pool_pos + 4 > OSP_WS_KEY_POOL) {
        if (RAND_bytes(key_pool, OSP_WS_KEY_POOL) != 1) return false; /* pool stays empty */
        key_pool_pos = 0;
    }
    memcpy(key, key_pool + key_pool_pos, 4);
    /* A key is used once: erase it from the pool so it cannot be handed out again. */
    osp_ws_wipe(key_pool + key_pool_pos, 4);
    key_pool_pos += 4;
    return true;
}

/* Client connections with posted frames: their loop's tx_list (osp_ws_tx_lock). */

/* With osp_ws_tx_lock held: takes c's posted frames into c->tx_spare (empty, as tx_absorb
 * leaves it) by swapping the buffers, so the sender gets an allocation to reuse and nothing is
 * copied; the bytes now count as c's output queue for the cap. */
static void tx_take_locked(osp_ws_conn *c) {
    osp_ws_buf taken = c->tx_pend;
    /* Server side: the rest of a direct frame. From now until it has gone out no other thread
     * may write the socket (no sender holds it: it was released after this was queued). */
    if (taken.len) atomic_store(&c->direct_ok, false);
    c->tx_pend = c->tx_spare;
    c->tx_spare = taken;
    c->tx_queued += taken.len;
}

/* Loop thread: puts the frames tx_take_locked took behind c's output. An empty queue is
 * replaced by them (no copy); otherwise they are appended (after the cork and the broadcast
 * range, so order is kept). Out of memory fails the connection like any other queueing. */
static void tx_absorb(osp_ws_conn *c) {
    osp_ws_loop *L = c->loop;
    osp_ws_buf *t = &c->tx_spare;
    if (t->len == 0) return;
    bool wipe = c->limits.wipe_messages != 0;
    if (c->state == OSP_WS_CONN_DEAD) {
        osp_ws_buf_recycle(t, true); /* dropped unsent: wiped now, not only when freed */
        return;
    }
    if (L->cork_owner != c && c->out.len == c->out_head && c->bc_to == c->bc_from) {
        osp_ws_buf old = c->out;
        osp_ws_buf_recycle(&old, wipe);
        c->out = *t;
        c->out_head = 0;
        *t = old;
        return;
    }
    osp_ws_buf *b = out_buf(c);
    int rc = b ? osp_ws_buf_append(b, t->data, t->len) : -1;
    osp_ws_buf_recycle(t, wipe);
    if (rc != 0) osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
}

/* Destroyed (loop thread): refuse further sends and leave the list, so neither a sender nor
 * tx_drain_all touches c after the reap frees it. */
static void tx_forget(osp_ws_conn *c) {
    osp_ws_loop *L = c->loop;
    /* A server connection is listed only by a direct send the socket did not take whole. */
    pthread_mutex_lock(&osp_ws_tx_lock);
    c->tx_shut = true;
    if (c->tx_listed) {
        for (osp_ws_conn **p = &L->tx_list; *p; p = &(*p)->tx_next) {
            if (*p == c) {
                *p = c->tx_next;
                break;
            }
        }
        c->tx_listed = false;
        c->tx_next = NULL;
    }
    pthread_mutex_unlock(&osp_ws_tx_lock);
}

OspResult osp_ws_tx_post(osp_ws_conn *c, const char *fn, int64_t id, uint8_t opcode, const char *message,
                         size_t len, bool *wake) {
    osp_ws_loop *L = c->loop;
    *wake = false;
    /* The cap counts what the loop has queued (as of its last flush, plus what it took since)
     * and what is posted here but not yet taken. */
    OspResult allowed = osp_ws_send_permission(c, fn, id, c->tx_shut, c->tx_queued + c->tx_pend.len, len);
    if (allowed.tag != OSP_RESULT_SUCCESS) return allowed;
    static const char nomem[] = "%s: cannot queue the frame (out of memory, or OpenSSL RAND_bytes "
                                "failed to make a masking key)";
    uint8_t key[4], header[OSP_WS_MAX_FRAME_HEADER];
    /* RFC 6455 §5.3 / §10.3: a client masks every frame with a fresh, unpredictable key. */
    if (!osp_ws_mask_key(key)) return osp_result_errorf(nomem, fn);
    size_t hlen = osp_ws_frame_encode_header(header, true, opcode, len, key);
    size_t total;
    if (__builtin_add_overflow(hlen, len, &total)) return osp_result_errorf(nomem, fn);
    int rc = osp_ws_buf_reserve(&c->tx_pend, total, SIZE_MAX);
    if (rc == OSP_WS_BUF_OVER_BUDGET) return osp_ws_budget_error(fn);
    if (rc != 0) return osp_result_errorf(nomem, fn);
    uint8_t *dst = c->tx_pend.data + c->tx_pend.len;
    memcpy(dst, header, hlen);
    if (len) memcpy(dst + hlen, message, len);
    osp_ws_mask(dst + hlen, len, key, 0);
    c->tx_pend.len += total;
    if (!c->tx_listed) {
        /* One eventfd write per batch: only when the list goes from empty to non-empty; a
         * non-empty list means a wake-up is already due and will take these frames too. */
        *wake = L->tx_list == NULL;
        c->tx_listed = true;
        c->tx_next = L->tx_list;
        L->tx_list = c;
    }
    return osp_result_success(0);
}

void osp_ws_tx_drain(osp_ws_conn *c) {
    if (c->role != OSP_WS_ROLE_CLIENT) return;
    pthread_mutex_lock(&osp_ws_tx_lock);
    tx_take_locked(c); /* c stays listed: the next drain of the list finds it empty */
    pthread_mutex_unlock(&osp_ws_tx_lock);
    tx_absorb(c);
}

static void tx_drain_all(void) {
    osp_ws_loop *L = osp_ws_loop_current();
    osp_ws_conn *work = NULL;
    pthread_mutex_lock(&osp_ws_tx_lock);
    for (osp_ws_conn *c = L->tx_list; c; c = c->tx_next) {
        c->tx_listed = false;
        tx_take_locked(c);
        c->tx_work_next = work; /* tx_next may be reused by a sender once we unlock */
        work = c;
    }
    L->tx_list = NULL;
    pthread_mutex_unlock(&osp_ws_tx_lock);
    /* Absorbing or flushing c can only destroy c itself, and its memory lasts until the reap. */
    while (work) {
        osp_ws_conn *c = work;
        work = c->tx_work_next;
        tx_absorb(c);
        /* The server side's deferred flush: one send() per connection per loop iteration for
         * everything posted meanwhile (at once above 64 KiB). */
        osp_ws_conn_flush_soon(c);
    }
}

/* ---- closing ------------------------------------------------------------------------------- */

/* The session is about to queue its Close. Client side: every message websocketSend accepted
 * goes out before it (RFC 6455 §5.5.1: no data frame after it), and from now on sends are
 * refused ("is closing"). Server side: websocketServerSend from another thread is refused from
 * now on; sends posted before it and not yet taken are dropped (ws_server.c). */
static void queue_posted_before_close(osp_ws_conn *c) {
    /* Server side: a direct send in progress finishes first, the rest of its frame goes
     * before the Close. */
    direct_reclaim(c);
    pthread_mutex_lock(&osp_ws_tx_lock);
    c->tx_shut = true;
    tx_take_locked(c); /* server side: empty, or the rest of a direct frame */
    pthread_mutex_unlock(&osp_ws_tx_lock);
    tx_absorb(c);
}

void osp_ws_conn_start_close(osp_ws_conn *c, uint16_t code, const char *reason) {
    if (c->state == OSP_WS_CONN_HANDSHAKE) {
        osp_ws_conn_destroy(c, code);
        return;
    }
    if (c->state != OSP_WS_CONN_OPEN) return;
    if (osp_ws_session_close(&c->session, code, reason, osp_ws_now_ms()) != 0) {
        osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
        return;
    }
    sync_session(c);
    osp_ws_conn_flush(c);
}

void osp_ws_conn_fail(osp_ws_conn *c, uint16_t code, const char *reason) {
    if (c->state == OSP_WS_CONN_DEAD) return;
    if (c->state == OSP_WS_CONN_HANDSHAKE) {
        osp_ws_conn_destroy(c, code); /* no frame before the 101 */
        return;
    }
    if (osp_ws_session_fail(&c->session, code, reason, osp_ws_now_ms()) != 0) {
        osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
        return;
    }
    sync_session(c);
    osp_ws_conn_flush(c);
}

/* ---- input --------------------------------------------------------------------------------- */

/* Received bytes at `now`: the session decides; the connection hands messages to its owner and
 * acts on the end of TCP. */
static void conn_ingest_at(osp_ws_conn *c, uint8_t *data, size_t len, uint64_t now) {
    while (len > 0 && (c->state == OSP_WS_CONN_OPEN || c->state == OSP_WS_CONN_CLOSING)) {
        osp_ws_session_event ev;
        size_t used = osp_ws_session_receive(&c->session, data, len, now, &ev);
        data += used;
        len -= used;
        switch (ev.kind) {
        case OSP_WS_SESSION_NONE:
            break;
        case OSP_WS_SESSION_MESSAGE:
            c->owner->deliver(c, ev.opcode, ev.data, ev.len);
            break;
        case OSP_WS_SESSION_CLOSE:
        case OSP_WS_SESSION_FAIL:
            sync_session(c);
            break;
        case OSP_WS_SESSION_DROP:
            osp_ws_conn_destroy(c, ev.code);
            return;
        }
        /* The event was acted on: its bytes are no longer needed (wiped now with the
         * per-message wipe, and a large reassembly buffer given back). */
        osp_ws_session_release(&c->session);
    }
    /* The messages of these bytes go to the handler's inbox together. */
    if (c->owner->ingested) c->owner->ingested(c);
    /* A message that started arriving may need the timer earlier (the message timeout). */
    sync_session(c);
}

void osp_ws_conn_ingest(osp_ws_conn *c, uint8_t *data, size_t len) {
    if (c->state == OSP_WS_CONN_HANDSHAKE) {
        c->owner->handshake_input(c, data, len);
        return;
    }
    conn_ingest_at(c, data, len, osp_ws_now_ms());
}

/* What one step of the server handshake (osp_ws_tls_accept_step's rc) means for c, on its
 * loop; c->tls_want_write is the step's. true when the handshake is done and the caller may
 * read; false when it should stop (waiting for the socket, or the connection was dropped). */
static bool tls_step_result(osp_ws_conn *c, int rc, bool plain_http) {
    if (rc == 1) {
        c->tls_handshaking = false;
        c->tls_want_write = false;
        tls_handshake_uncount(c);
        return true;
    }
    if (rc == 0) {
        update_interest(c);
        return false;
    }
    /* A malformed or refused TLS handshake ends this connection only. A plain HTTP request (a
     * ws:// client on the wss:// port) gets a readable answer instead of TLS garbage. */
    if (plain_http) {
        static const char answer[] =
            "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\n"
            "Content-Length: 42\r\n\r\nthis port speaks TLS: connect with wss://\n";
        (void)osp_ws_net_send(c->watch.fd, answer, sizeof answer - 1); /* best effort */
    }
    osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
    return false;
}

/* Hands the next step of c's handshake to the TLS handshake threads. false when they cannot
 * take it (the loop steps it itself); true when submitted, or c was dropped. */
static bool tls_offload_step(osp_ws_conn *c) {
    /* While the step waits for a thread, the socket is watched for the peer's hang-up only
     * (EPOLLIN would be reported over and over: the ClientHello is still unread): a peer that
     * gives up meanwhile gets its step taken back and its connection dropped at once, instead
     * of holding one of its address's handshake slots (maxHandshakesPerIp) until a thread gets
     * to it, which on a saturated machine can take seconds. (Without the threads the step that
     * follows here watches it as before.) */
    if (osp_ws_watch_set(&c->watch, EPOLLRDHUP) != 0) {
        osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
        return true;
    }
    c->tls_job.ssl = c->tls;
    c->tls_job.loop = c->loop;
    c->tls_offloaded = true;
    if (osp_ws_tls_pool_submit(&c->tls_job)) return true;
    c->tls_offloaded = false;
    return false;
}

/* Server side of a wss:// connection: the next step of the TLS handshake, on a handshake
 * thread or, failing that, here. false when the caller should stop (waiting for the socket or
 * the thread, or the connection was dropped). */
static bool tls_accept(osp_ws_conn *c) {
    osp_ws_loop *L = c->loop;
    if (c->tls_offloaded || tls_offload_step(c)) return false;
    /* This iteration's handshake time is spent: the socket is still readable (or writable)
     * and is reported again at the next epoll_wait (see tls_in_flight). One step per
     * iteration always runs, so handshakes progress however busy the loop is. */
    if (L->tls_step_count > 0 && L->tls_step_ns >= OSP_WS_TLS_STEP_BUDGET_NS) return false;
    bool plain_http = false;
    uint64_t started = monotonic_ns();
    int rc = osp_ws_tls_accept_step(c->tls, &c->tls_want_write, &plain_http);
    L->tls_step_ns += monotonic_ns() - started;
    L->tls_step_count++;
    return tls_step_result(c, rc, plain_http);
}

void osp_ws_conn_check_backpressure(osp_ws_conn *c) {
    if (c->state != OSP_WS_CONN_DEAD && !c->read_paused &&
        osp_ws_session_pause_reading(&c->session, false, osp_ws_conn_pending(c)))
        c->read_paused = true; /* update_interest (the flush that follows) drops EPOLLIN */
}

/* Bytes of budget one more read may need: the read itself can be stored in the reassembly
 * buffer, which may double to take it. */
static size_t read_budget_need(const osp_ws_conn *c) {
    osp_ws_loop *L = c->loop;
    const osp_ws_buf *m = &c->session.reader.message;
    size_t want = m->len + sizeof L->read_buffer;
    if (want <= m->cap) return 0;
    size_t grow = m->cap > want - m->cap ? m->cap : want - m->cap;
    size_t room = (size_t)c->limits.max_message > m->cap ? (size_t)c->limits.max_message - m->cap : 0;
    return grow < room ? grow : room;
}

/* Reading more would store payload (a message or frame is in progress) and the process memory
 * budget has no room for it: wait (TCP backpressure) instead of failing or over-allocating. */
static bool budget_allows_read(const osp_ws_conn *c) {
    if (c->state != OSP_WS_CONN_OPEN && c->state != OSP_WS_CONN_CLOSING) return true;
    if (!c->session.reader.in_message && osp_ws_reader_grow_need(&c->session.reader) == 0) return true;
    return osp_ws_mem_room(read_budget_need(c));
}

/* The loops with connections waiting for room in the memory budget: bit i for loop i
 * (OSP_WS_MAX_LOOPS is 64). The budget is the process's, so memory freed on one loop must wake
 * the waiters of the others: each loop, at the end of its iterations, wakes the loops whose bit
 * is set once there is room (budget_wake_others), and a loop sets its own bit while its list
 * is not empty. */
static _Atomic uint64_t budget_waiting_loops;

static uint64_t loop_bit(const osp_ws_loop *L) { return (uint64_t)1 << L->index; }

/* Room worth waking paused readers for (an eighth of the budget, or 1 MiB), so that they are
 * not woken to read 64 KiB each time one buffer shrinks. */
static bool budget_room_to_resume(void) {
    size_t budget = osp_ws_mem_budget(), want = budget / 8;
    if (want > (size_t)1 << 20) want = (size_t)1 << 20;
    return osp_ws_mem_room(want);
}

static void budget_pause(osp_ws_conn *c) {
    osp_ws_loop *L = c->loop;
    if (c->budget_paused) return;
    c->budget_paused = true;
    osp_ws_session_set_budget_wait(&c->session, true);
    c->budget_next = L->budget_head;
    L->budget_head = c;
    atomic_fetch_or(&budget_waiting_loops, loop_bit(L));
}

/* End of an iteration of this loop (which may have freed memory): the other loops with waiting
 * connections are woken when there is room. Each bit is cleared by the one loop that wakes it,
 * so a burst of frees costs one wake-up per waiting loop; a woken loop that finds no room after
 * all (another loop took it) sets its bit again (budget_resume). */
static void budget_wake_others(void) {
    osp_ws_loop *L = osp_ws_loop_current();
    /* Sequentially consistent (a plain load on x86): a loop that pauses sets its bit before it
     * looks at the room, and this loop freed before it looks at the bits, so one of the two
     * sees the other. */
    uint64_t others = atomic_load(&budget_waiting_loops) & ~loop_bit(L);
    if (others == 0 || !budget_room_to_resume()) return;
    others &= atomic_fetch_and(&budget_waiting_loops, ~others);
    unsigned n = osp_ws_loop_count();
    for (unsigned i = 0; i < n && others != 0; i++) {
        if (others & ((uint64_t)1 << i)) osp_ws_loop_wake_on(osp_ws_loop_at(i));
        others &= ~((uint64_t)1 << i);
    }
}

static void budget_resume(void) {
    osp_ws_loop *L = osp_ws_loop_current();
    if (L->budget_head == NULL) return;
    if (!budget_room_to_resume()) {
        /* Still waiting: make sure the loop that frees memory next wakes this one. */
        if (!(atomic_load_explicit(&budget_waiting_loops, memory_order_relaxed) & loop_bit(L)))
            atomic_fetch_or(&budget_waiting_loops, loop_bit(L));
        return;
    }
    osp_ws_conn *list = L->budget_head;
    L->budget_head = NULL;
    atomic_fetch_and(&budget_waiting_loops, ~loop_bit(L));
    while (list) {
        osp_ws_conn *c = list;
        list = c->budget_next;
        c->budget_next = NULL;
        c->budget_paused = false;
        osp_ws_session_set_budget_wait(&c->session, false);
        if (c->state == OSP_WS_CONN_DEAD) continue;
        update_interest(c);
        if (c->tls && SSL_pending(c->tls) > 0) osp_ws_timer_arm(&c->tls_kick, 0);
    }
}

/* OpenSSL decrypts and encrypts records in buffers on the calling thread's stack (cipher and
 * record-layer temporaries) and leaves them there. After TLS I/O the loop thread overwrites the
 * stack area those calls used (about 14 KiB below this frame was measured; twice that is
 * wiped), so plaintext does not outlive the call. Loop thread only: its stack is 8 MiB. */
__attribute__((noinline)) static void wipe_tls_stack(void) {
    uint8_t scratch[32 * 1024];
    osp_ws_wipe(scratch, sizeof scratch);
    __asm__ volatile("" : : "r"(scratch) : "memory");
}

static void conn_read_tls_or_plain(osp_ws_conn *c) {
    osp_ws_loop *L = c->loop;
    if (c->tls_handshaking && !tls_accept(c)) return;
    c->tls_want_write = false;
    /* A few reads per event keep one busy peer from starving the others. With TLS the reads go
     * on while OpenSSL holds decrypted bytes (at most the rest of one record): no epoll event
     * would announce them. */
    for (int round = 0; round < 4 || (c->tls && SSL_pending(c->tls) > 0); round++) {
        if (c->state == OSP_WS_CONN_DEAD || c->read_paused || c->inbox_paused) break;
        if (!budget_allows_read(c)) {
            budget_pause(c);
            break;
        }
        bool want_write = false;
        ssize_t n = c->tls ? osp_ws_tls_recv(c->tls, L->read_buffer, sizeof L->read_buffer, &want_write)
                           : osp_ws_net_recv(c->watch.fd, L->read_buffer, sizeof L->read_buffer);
        if (n > 0) {
            bool handshake = c->state == OSP_WS_CONN_HANDSHAKE;
            osp_ws_conn_ingest(c, L->read_buffer, (size_t)n);
            /* Decrypted plaintext must not outlive its use (docs/WEBSOCKET-RUNTIME.md#wiping-secrets), nor may the
             * request (cookies, tokens) or, with the per-message wipe option, any payload
             * (messages are delivered in place from here). */
            if (c->tls || handshake || c->limits.wipe_messages) osp_ws_wipe(L->read_buffer, (size_t)n);
            if (c->state == OSP_WS_CONN_DEAD) return;
            /* Stop reading at once when the answers (echoes, pongs) are over the output cap,
             * not after the remaining rounds of this event. */
            osp_ws_conn_check_backpressure(c);
            if ((size_t)n < sizeof L->read_buffer && !(c->tls && SSL_pending(c->tls) > 0)) break;
            continue;
        }
        if (n < 0 && want_write) {
            c->tls_want_write = true; /* update_interest (in flush) adds EPOLLOUT */
            break;
        }
        if (n == 0) {
            /* EOF. Expected in CLOSED_WAIT; otherwise the peer vanished without a Close
             * (RFC 6455 §7.1.5: the application sees 1006). The session knows which. */
            osp_ws_conn_destroy(c, c->session.phase == OSP_WS_SESSION_NEW
                                       ? OSP_WS_CLOSE_ABNORMAL
                                       : osp_ws_session_transport_ended(&c->session));
            return;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
        return;
    }
    osp_ws_conn_flush(c);
}

static void conn_read(osp_ws_conn *c) {
    conn_read_tls_or_plain(c);
    /* After the reads (and the flush's encryption); c stays allocated until the reap. */
    if (c->tls) wipe_tls_stack();
}

/* The peer of a connection whose handshake step is with the handshake threads hung up (or
 * the socket failed). */
static void tls_offloaded_hangup(osp_ws_conn *c) {
    if (osp_ws_tls_pool_cancel(&c->tls_job)) {
        c->tls_offloaded = false;
        osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
        return;
    }
    /* A thread runs the step (it meets the hang-up itself) or has just finished it: no more
     * reports until the step is back (removing a registered fd from epoll does not fail). */
    (void)osp_ws_watch_set(&c->watch, 0);
}

static void conn_on_event(osp_ws_watch *w, uint32_t events) {
    osp_ws_conn *c = conn_of_watch(w);
    if (c->state == OSP_WS_CONN_DEAD) return;
    if (c->tls_offloaded) {
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) tls_offloaded_hangup(c);
        return;
    }
    if ((events & EPOLLOUT) && c->tls_want_write) {
        conn_read(c); /* OpenSSL's read or handshake was waiting for a writable socket */
        if (c->state == OSP_WS_CONN_DEAD) return;
    }
    if (events & EPOLLOUT) {
        osp_ws_conn_flush(c);
        if (c->tls) wipe_tls_stack(); /* the flush encrypted queued plaintext */
    }
    if (c->state == OSP_WS_CONN_DEAD) return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
        if (c->read_paused || c->budget_paused || c->inbox_paused) {
            /* Not reading, but the peer hung up or errored: nothing more can be delivered. */
            if (events & (EPOLLHUP | EPOLLERR)) osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
            return;
        }
        conn_read(c);
    }
}

static void conn_on_tls_kick(osp_ws_timer *t) {
    osp_ws_conn *c = (osp_ws_conn *)((char *)t - offsetof(osp_ws_conn, tls_kick));
    if (c->state != OSP_WS_CONN_DEAD) conn_read(c);
}

static void conn_on_timer(osp_ws_timer *t) {
    osp_ws_conn *c = conn_of_timer(t);
    if (c->state == OSP_WS_CONN_DEAD) return;
    if (c->session.phase == OSP_WS_SESSION_NEW) {
        /* The opening handshake did not arrive in time (slowloris defence), or a refused
         * handshake's answer was not taken in time. */
        osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
        return;
    }
    osp_ws_session_event ev;
    osp_ws_session_tick(&c->session, osp_ws_now_ms(), &ev);
    if (ev.kind == OSP_WS_SESSION_DROP) {
        osp_ws_conn_destroy(c, ev.code);
        return;
    }
    sync_session(c);
    /* A keep-alive Ping, or the Close of a timeout, may have been queued. */
    if (osp_ws_conn_pending(c) > 0) osp_ws_conn_flush(c);
}

/* ---- this layer's loop hooks (ws_runtime.c) ------------------------------------------------- */

/* The handshake steps the TLS handshake threads finished for this loop's connections (or, at
 * shutdown, gave back unstarted): each connection goes on from where its step left it. */
static void tls_steps_back(osp_ws_loop *L) {
    osp_ws_tls_job *job = osp_ws_tls_pool_take_done(L);
    while (job) {
        osp_ws_tls_job *next = job->next;
        osp_ws_conn *c = (osp_ws_conn *)((char *)job - offsetof(osp_ws_conn, tls_job));
        job->next = NULL;
        c->tls_offloaded = false;
        if (c->state == OSP_WS_CONN_DEAD) {
            close(c->watch.fd); /* dropped while the thread had it: destroy left it open */
        } else if (job->cancelled) {
            osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL); /* shutting down */
        } else {
            c->tls_want_write = job->want_write;
            if (tls_step_result(c, job->rc, job->plain_http)) conn_read(c); /* the upgrade request may be here */
        }
        job = next;
    }
}

static void layer_iteration_end(void) {
    osp_ws_loop *L = osp_ws_loop_current();
    /* Finished handshake steps first (they may queue output and destroy connections), then
     * deferred flushes (they may destroy connections), then the memory budget's waiters,
     * then freeing what was destroyed. */
    tls_steps_back(L);
    flush_dirty();
    budget_resume();
    L->tls_step_ns = 0;
    L->tls_step_count = 0;
    /* A connection whose handshake step a thread still runs stays until the step is back. */
    osp_ws_conn *parked = NULL;
    while (L->zombie_conns) {
        osp_ws_conn *c = L->zombie_conns;
        L->zombie_conns = c->zombie_next;
        /* Still on the dirty list (destroyed after a flush that held it): freed once the next
         * flush has taken it off. */
        if (c->tls_offloaded || c->on_dirty) {
            c->zombie_next = parked;
            parked = c;
            continue;
        }
        conn_free(c);
    }
    L->zombie_conns = parked;
    /* Last: what this iteration freed (output drained, messages delivered, connections
     * freed just above) may be the room another loop's readers wait for. */
    budget_wake_others();
}

static void close_client(const osp_ws_entry *e, int64_t id, void *arg) {
    (void)id;
    (void)arg;
    if (e->kind == OSP_WS_KIND_CLIENT) osp_ws_conn_start_close(e->object, OSP_WS_CLOSE_NORMAL, NULL);
}

static void longest_close_timeout(const osp_ws_entry *e, int64_t id, void *arg) {
    (void)id;
    uint64_t *longest = arg;
    if (e->kind != OSP_WS_KIND_CLIENT && e->kind != OSP_WS_KIND_SERVER_CONN) return;
    uint64_t t = ((const osp_ws_conn *)e->object)->limits.close_timeout_ms;
    if (t > *longest) *longest = t;
}

/* Shutdown: clients close with 1000 (servers, a layer above, already closed theirs with 1001). */
static uint64_t layer_shutdown_begin(void) {
    osp_ws_registry_each(close_client, NULL);
    uint64_t longest = 0;
    osp_ws_registry_each(longest_close_timeout, &longest);
    return longest;
}

static void destroy_conn(const osp_ws_entry *e, int64_t id, void *arg) {
    (void)id;
    (void)arg;
    if (e->kind == OSP_WS_KIND_CLIENT || e->kind == OSP_WS_KIND_SERVER_CONN)
        osp_ws_conn_destroy(e->object, OSP_WS_CLOSE_ABNORMAL);
}

/* On each loop: drops its connections that are still open. */
static void destroy_conns_here(void *unused) {
    (void)unused;
    osp_ws_registry_each(destroy_conn, NULL);
}

/* Main loop: the shutdown's backstop. Each loop drops its own connections (only a loop
 * touches its connections). */
static void layer_shutdown_overdue(void) {
    unsigned n = osp_ws_loop_count();
    for (unsigned i = 0; i < n; i++) {
        osp_ws_loop *L = osp_ws_loop_at(i);
        if (L == osp_ws_loop_current()) destroy_conns_here(NULL);
        else if (!osp_ws_loop_post(L, destroy_conns_here, NULL))
            fprintf(stderr, "osprey runtime: cannot reach I/O loop %u to drop its connections\n", i);
    }
}

static const osp_ws_layer conn_layer = {
    .rank = 10,
    .wake = tx_drain_all,
    .iteration_end = layer_iteration_end,
    .shutdown_begin = layer_shutdown_begin,
    .shutdown_overdue = layer_shutdown_overdue,
    .released = release_shared,
};

__attribute__((constructor)) static void register_conn_layer(void) { osp_ws_runtime_add_layer(&conn_layer); }
