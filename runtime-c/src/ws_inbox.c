/*
 * The hand-off of received messages from the WebSocket thread to Osprey message handlers.
 *
 * Handlers never run on the WebSocket (I/O) thread: a handler that sleeps, connects, waits for a
 * process or computes for a long time would stall every socket of the process. Instead each
 * connection with a handler has an inbox: the loop thread appends a copy of every received text
 * message to it (the messages of one read together: osp_ws_inbox_hand_over) and, when no fiber
 * is draining that inbox, lists it; at the end of the loop iteration the drains of all listed
 * inboxes are submitted to the scheduler at once (osp_sched_submit_many). Each drain fiber calls
 * its connection's handler for each queued message in order and exits when the inbox is empty.
 * So per connection messages are handled one at a time and in order, while different
 * connections are handled in parallel by the scheduler's workers.
 *
 * Connection events travel the same queue: a server connection's open event is queued when its
 * id is given (before any of its messages can arrive), its close event when it is destroyed
 * (after its last message), so open → messages → close holds by construction. websocketClose
 * and websocketStopServer drop undelivered messages, never events: the close event of a
 * connection they closed is delivered before they return (unless called from a handler).
 *
 * Bounded: the bytes waiting in an inbox count against the connection's maxOutputBytes; above it
 * the loop stops reading that socket (TCP backpressure on the peer) and resumes once the handler
 * has worked the inbox down to half of it. Likewise, while the connection's output queue is over
 * half its limit (the peer does not read our answers fast enough) no further message is handed to
 * the handler: the drain fiber exits and the loop starts a new one once the queue has drained to a
 * quarter, so a handler answering each message with at most half the limit is not refused by
 * websocketServerSend for a full queue that it could not see coming.
 *
 * Lifetimes: an inbox is collector-uncollectable (it holds the handler's environment, a root) and
 * reference counted: by its connection until the connection is freed, by a drain fiber while one
 * is scheduled or running, by the list of inboxes waiting to resume reading. Messages received
 * before the connection ended are still delivered after it ended (the peer's last words reach
 * the handler; sends to the closed id fail). websocketClose and websocketStopServer drop the
 * messages not yet handed to the handler and wait for a handler call in progress to return, so
 * that when they return the handler can no longer be called; called from inside a handler they
 * do not wait for handlers (two handlers closing each other's connections would wait forever).
 *
 * One mutex (inbox_lock) guards every inbox field except `conn`, which is the loop thread's. It is never held while calling a handler, the loop or the scheduler.
 */
#include "ws_internal.h"
#include "fiber.h"
#include "ws_handoff.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    DELIVER_TEXT,
    DELIVER_BINARY,
    DELIVER_OPEN,
    DELIVER_CLOSE, /* code; bytes: the reason */
} delivery_kind;

typedef struct osp_ws_delivery {
    struct osp_ws_delivery *next;
    delivery_kind kind;
    uint16_t code;        /* DELIVER_CLOSE */
    int64_t received_ms;  /* CLOCK_REALTIME on the I/O thread at receipt (WebSocketMessage.timestamp) */
    size_t len;
    char bytes[]; /* the message (or close reason), not NUL-terminated */
} osp_ws_delivery;

static bool is_message(const osp_ws_delivery *d) { return d->kind == DELIVER_TEXT || d->kind == DELIVER_BINARY; }

struct osp_ws_inbox {
    osp_ws_delivery *head, *tail;
    size_t bytes;          /* payload bytes queued */
    size_t limit;          /* pause reading above it (the connection's maxOutputBytes) */
    int refs;
    bool draining;         /* a drain fiber is scheduled or running */
    bool closed;           /* websocketClose/StopServer: nothing more is delivered */
    bool wipe;             /* the per-message wipe option: queued copies are wiped when freed */
    bool resume_listed;    /* on the list the loop works through at its next wake-up */
    bool start_listed;     /* on its loop's list of drains to start at the iteration's end */
    bool read_paused;      /* the loop stopped reading the socket because of this inbox */
    bool output_full;      /* the connection's output queue is over its limit: hold deliveries */
    osp_fiber *drainer;    /* the drain fiber while it runs (NULL before it starts) */
    int64_t conn_id;
    int64_t server_id;     /* 0 for a client connection */
    osp_ws_msg_handler handler;
    void *env;             /* the handler's environment: kept alive by this (uncollectable) record */
    osp_ws_events events;  /* event handlers and environments, copied when an event is queued */
    osp_ws_conn *conn;     /* loop thread: the connection, NULL once it was freed */
    /* Loop thread, no lock: the messages of the bytes being ingested, handed over to the queue
     * together when the ingest ends (osp_ws_inbox_hand_over) or before an event. */
    osp_ws_delivery *held_head, *held_tail;
    size_t held_bytes;
    osp_ws_loop *loop;     /* the connection's loop (loops are never freed) */
    struct osp_ws_inbox *prev, *next;  /* every live inbox */
    struct osp_ws_inbox *resume_next;
    struct osp_ws_inbox *start_next;
};

static pthread_mutex_t inbox_lock = PTHREAD_MUTEX_INITIALIZER;
/* Broadcast whenever a drain fiber finishes: websocketClose/StopServer wait on it. */
static pthread_cond_t drain_done = PTHREAD_COND_INITIALIZER;
static osp_ws_inbox *live_inboxes;
/* The inboxes to resume are listed on their connection's loop (resume_head, inbox lock). */

/* Per loop (by index), the inboxes that received messages during the current iteration and had
 * no drain fiber: their drains are started together when the iteration ends (start_listed),
 * with one scheduler hand-off and at most one worker wake-up for all of them, the way the HTTP
 * server submits a batch of requests. Started one by one, every message read by a ping-pong or
 * flood iteration woke a worker that went back to sleep before the next connection's message
 * arrived (docs/BENCHMARKS-WS.md, "Batched drain starts"). Each is still its own fiber, so a
 * handler that parks or computes holds up only its own connection. Only the loop thread
 * touches its entries; an inbox on a list holds a reference. */
static struct {
    osp_ws_inbox *head, *tail;
} start_lists[OSP_WS_MAX_LOOPS];

static void free_delivery(osp_ws_delivery *d, bool wipe) {
    if (wipe) osp_ws_wipe(d->bytes, d->len);
    free(d);
}

/* With inbox_lock held: drops the queued messages (every delivery with `all`; events stay
 * otherwise: websocketClose/StopServer still deliver the close event). */
static void drop_queued(osp_ws_inbox *in, bool all) {
    osp_ws_delivery **p = &in->head;
    in->tail = NULL;
    while (*p) {
        osp_ws_delivery *d = *p;
        if (all || is_message(d)) {
            *p = d->next;
            in->bytes -= d->len;
            osp_ws_handoff_done();
            free_delivery(d, in->wipe);
        } else {
            in->tail = d;
            p = &d->next;
        }
    }
}

/* With inbox_lock held; frees the record when the last reference goes. */
static void unref_locked(osp_ws_inbox *in) {
    if (--in->refs > 0) return;
    drop_queued(in, true);
    if (in->prev) in->prev->next = in->next;
    else live_inboxes = in->next;
    if (in->next) in->next->prev = in->prev;
    GC_FREE(in);
}

static osp_ws_inbox *inbox_new(osp_ws_conn *c) {
    osp_ws_inbox *in = GC_MALLOC_UNCOLLECTABLE(sizeof *in);
    if (in == NULL) return NULL;
    memset(in, 0, sizeof *in);
    in->refs = 1; /* the connection's */
    in->conn = c;
    in->loop = c->loop;
    in->conn_id = c->id;
    in->wipe = c->limits.wipe_messages != 0;
    in->limit = c->limits.max_output > 0 ? (size_t)c->limits.max_output : SIZE_MAX;
    pthread_mutex_lock(&inbox_lock);
    in->next = live_inboxes;
    if (live_inboxes) live_inboxes->prev = in;
    live_inboxes = in;
    pthread_mutex_unlock(&inbox_lock);
    return in;
}

static void report_handler_error(const osp_ws_inbox *in, OspResult r) {
    const char *why = r.value ? (const char *)(intptr_t)r.value : "(no message)";
    osp_output_lock();
    fflush(stdout);
    if (in->server_id)
        fprintf(stderr, "websocket server %" PRId64 " connection %" PRId64 ": handler error: %s\n", in->server_id,
                in->conn_id, why);
    else
        fprintf(stderr, "websocket connection %" PRId64 ": handler error: %s\n", in->conn_id, why);
    fflush(stderr);
    osp_output_unlock();
}

/* A collected String holding "text" or "binary" (never a C literal: it is an Osprey value). */
static const char *kind_name(delivery_kind kind) {
    return kind == DELIVER_TEXT ? osp_gc_strndup("text", 4) : osp_gc_strndup("binary", 6);
}

/* Calls the handler for one delivery (no lock held). The copies are collected Osprey values. */
static OspResult call_handler(const osp_ws_inbox *in, const osp_ws_delivery *d, const osp_ws_msg_handler *h,
                              void *env, const osp_ws_events *ev) {
    switch (d->kind) {
    case DELIVER_OPEN:
        return ev->open(ev->open_env, in->conn_id);
    case DELIVER_CLOSE: {
        const char *reason = osp_gc_strndup(d->bytes, d->len);
        if (in->server_id) return ev->server_close(ev->server_close_env, in->conn_id, d->code, reason);
        return ev->close(ev->close_env, d->code, reason);
    }
    case DELIVER_TEXT:
    case DELIVER_BINARY:
        break;
    }
    const char *data = osp_ws_handler_copy(in->wipe, (const uint8_t *)d->bytes, d->len);
    switch (h->shape) {
    case OSP_WS_SHAPE_TEXT:
        return h->fn.text(env, data);
    case OSP_WS_SHAPE_ID_TEXT:
        return h->fn.id_text(env, in->conn_id, data);
    case OSP_WS_SHAPE_MESSAGE:
        break;
    }
    /* WebSocketMessage { type, data, timestamp }: the record layout the compiler uses, a block
     * of words [constructor tag 0, field…] in declaration order. */
    int64_t *record = GC_MALLOC(4 * sizeof(int64_t));
    if (record == NULL) return osp_result_errorf("out of memory for a WebSocketMessage");
    record[0] = 0;
    record[1] = (int64_t)(intptr_t)kind_name(d->kind);
    record[2] = (int64_t)(intptr_t)data;
    record[3] = d->received_ms;
    return h->fn.message(env, in->conn_id, record);
}

/* The connection whose handler this thread is running while more of its messages wait, and the
 * fiber running it (a fiber that parked and resumed on another worker is not found here, so a
 * stale entry is never believed): osp_ws_inbox_more_waiting. */
static __thread struct {
    osp_fiber *fiber;
    int64_t conn_id;
} batch_hint;

bool osp_ws_inbox_more_waiting(int64_t conn_id) {
    return conn_id != 0 && batch_hint.conn_id == conn_id && batch_hint.fiber == osp_fiber_self();
}

/* A drain yields its worker after this many handler calls in a row, so the drains started
 * after it (other connections of the same batch) get their turn while a connection whose peer
 * keeps its inbox full is being worked through (the HTTP runners do the same). */
#define DRAIN_FAIRNESS_BATCH 64

/* The drain fiber: one handler call per queued message or event, in order, then exit. */
static int64_t drain(void *arg) {
    osp_ws_inbox *in = arg;
    osp_fiber *self = osp_fiber_self();
    pthread_mutex_lock(&inbox_lock);
    in->drainer = self;
    for (unsigned calls = 1;; calls++) {
        osp_ws_delivery *d = in->head;
        /* Messages wait while the output queue is full; after websocketClose none is queued. */
        if (d == NULL || (is_message(d) && (in->closed || in->output_full))) break;
        in->head = d->next;
        if (in->head == NULL) in->tail = NULL;
        in->bytes -= d->len;
        /* More of this connection's messages wait behind this one (a hint: one arriving
         * during the call is not counted). */
        bool more = in->head != NULL;
        /* Read under the lock: the loop updates them when websocketServerOnMessage replaced the
         * handler. */
        osp_ws_msg_handler handler = in->handler;
        void *env = in->env;
        osp_ws_events events = in->events;
        /* Reading was paused for this inbox and it is down to half: ask the loop to resume. */
        if (in->read_paused && in->bytes <= in->limit / 2 && !in->resume_listed) {
            in->resume_listed = true;
            in->refs++;
            in->resume_next = in->loop->resume_head;
            in->loop->resume_head = in;
            osp_ws_loop *loop = in->loop;
            pthread_mutex_unlock(&inbox_lock);
            osp_ws_loop_wake_on(loop);
        } else {
            pthread_mutex_unlock(&inbox_lock);
        }
        batch_hint.fiber = more ? self : NULL;
        batch_hint.conn_id = more ? in->conn_id : 0;
        OspResult r = call_handler(in, d, &handler, env, &events);
        batch_hint.fiber = NULL; /* this thread's, whichever worker the handler returned on */
        batch_hint.conn_id = 0;
        free_delivery(d, in->wipe);
        if (r.tag != OSP_RESULT_SUCCESS) report_handler_error(in, r);
        osp_ws_handoff_done(); /* after the call: a loop holding broadcasts waits for them */
        /* Returns at once when nothing else is runnable. */
        if (calls % DRAIN_FAIRNESS_BATCH == 0) osp_fiber_yield();
        pthread_mutex_lock(&inbox_lock);
    }
    in->drainer = NULL;
    in->draining = false;
    pthread_cond_broadcast(&drain_done);
    unref_locked(in); /* the drain's reference */
    pthread_mutex_unlock(&inbox_lock);
    /* What the handlers printed reaches a pipe now: an idle worker does not flush, and the I/O
     * thread flushes only before its next wait, which may be long after the last event (a close
     * event's line would otherwise sit in the buffer while the program idles). One atomic load
     * when nothing was printed. */
    osp_output_flush_pending();
    return 0;
}

/* With inbox_lock held: whether a drain fiber has to be submitted (the caller does, unlocked). */
static bool start_drain_locked(osp_ws_inbox *in) {
    if (in->draining || in->head == NULL) return false;
    if (is_message(in->head) && (in->closed || in->output_full)) return false;
    in->draining = true;
    in->refs++; /* the drain fiber's */
    return true;
}

/* Loop thread, inbox_lock held: in's drain is to be started at the end of this iteration. */
static void list_start_locked(osp_ws_inbox *in) {
    in->start_listed = true;
    in->refs++; /* the list's */
    in->start_next = NULL;
    unsigned i = in->loop->index;
    if (start_lists[i].tail) start_lists[i].tail->start_next = in;
    else start_lists[i].head = in;
    start_lists[i].tail = in;
}

/* Loop thread, end of each iteration: starts the drains listed during it, in the order their
 * first messages arrived, with one scheduler call per STARTS_PER_SUBMIT of them. */
#define STARTS_PER_SUBMIT 64
static void start_listed_drains(void) {
    osp_ws_loop *L = osp_ws_loop_current();
    if (L == NULL || start_lists[L->index].head == NULL) return;
    osp_ws_inbox *list = start_lists[L->index].head;
    start_lists[L->index].head = start_lists[L->index].tail = NULL;
    while (list) {
        void *envs[STARTS_PER_SUBMIT];
        size_t n = 0;
        pthread_mutex_lock(&inbox_lock);
        while (list && n < STARTS_PER_SUBMIT) {
            osp_ws_inbox *in = list;
            list = in->start_next;
            in->start_next = NULL;
            in->start_listed = false;
            /* Not needed any more when a drain started meanwhile (an event of the same
             * connection) or websocketClose dropped the messages. */
            if (start_drain_locked(in)) envs[n++] = in;
            unref_locked(in); /* the list's (a started drain holds its own) */
        }
        pthread_mutex_unlock(&inbox_lock);
        osp_sched_submit_many(drain, envs, n);
    }
}

/* Loop thread. c is the connection (NULL when already freed). */
static void submit_drain(osp_ws_inbox *in, osp_ws_conn *c) {
    if (osp_sched_submit(drain, in) != NULL) return;
    /* osp_sched_submit only fails fatally today; keep the inbox consistent anyway. */
    pthread_mutex_lock(&inbox_lock);
    in->draining = false;
    unref_locked(in);
    pthread_mutex_unlock(&inbox_lock);
    if (c) osp_ws_conn_fail(c, OSP_WS_CLOSE_INTERNAL_ERROR, "cannot start a handler fiber");
}

/* With inbox_lock held, loop thread: the handlers registered now (websocketServerOnMessage may
 * replace one between messages). */
static void snapshot_handlers_locked(osp_ws_inbox *in, const osp_ws_conn *c) {
    if (c->server) {
        in->server_id = c->server->id;
        in->handler = c->server->handler;
        in->env = c->server->handler_env_cell ? *c->server->handler_env_cell : NULL;
        if (c->server->events) in->events = *c->server->events;
    } else {
        in->handler = c->handler;
        in->env = c->handler_env_cell ? *c->handler_env_cell : NULL;
        if (c->events) in->events = *c->events;
    }
}

/* With inbox_lock held, loop thread: moves the held messages to the end of the queue (or drops
 * them when websocketClose closed the inbox meanwhile) and lists the inbox for a drain start
 * when none runs. Returns whether reading has to pause (the queue went over the limit). */
static bool hand_over_locked(osp_ws_inbox *in, const osp_ws_conn *c) {
    osp_ws_delivery *first = in->held_head, *last = in->held_tail;
    if (first == NULL) return false;
    size_t bytes = in->held_bytes;
    in->held_head = in->held_tail = NULL;
    in->held_bytes = 0;
    if (in->closed) {
        while (first) {
            osp_ws_delivery *next = first->next;
            free_delivery(first, in->wipe);
            first = next;
        }
        return false;
    }
    snapshot_handlers_locked(in, c);
    size_t count = 0;
    for (const osp_ws_delivery *d = first; d; d = d->next) count++;
    osp_ws_handoff_queued(count);
    if (in->tail) in->tail->next = first;
    else in->head = first;
    in->tail = last;
    in->bytes += bytes;
    bool pause = in->bytes > in->limit && !in->read_paused;
    if (pause) in->read_paused = true;
    /* Its drain, if one is needed, starts with the iteration's batch. */
    if (!in->draining && !in->start_listed) list_start_locked(in);
    return pause;
}

void osp_ws_inbox_hand_over(osp_ws_conn *c) {
    osp_ws_inbox *in = c->inbox;
    if (in == NULL || in->held_head == NULL) return;
    /* The time of receipt: one reading for the messages of one ingest (read together). */
    int64_t now = osp_ws_wall_ms();
    for (osp_ws_delivery *d = in->held_head; d; d = d->next) d->received_ms = now;
    pthread_mutex_lock(&inbox_lock);
    bool pause = hand_over_locked(in, c);
    pthread_mutex_unlock(&inbox_lock);
    if (pause && c->state != OSP_WS_CONN_DEAD) osp_ws_conn_set_inbox_paused(c, true);
}

/* Loop thread: adds a delivery to c's inbox (made on first use). A message is held until the
 * ingest that produced it ends (osp_ws_inbox_hand_over: one lock for all the messages of one
 * read); an event goes to the queue at once, behind the held messages, and starts a drain if
 * none runs. Messages are dropped once the inbox is closed; events never are. */
static void enqueue(osp_ws_conn *c, delivery_kind kind, uint16_t code, const uint8_t *data, size_t len) {
    if (c->inbox == NULL && (c->inbox = inbox_new(c)) == NULL) {
        if (kind != DELIVER_CLOSE) osp_ws_conn_fail(c, OSP_WS_CLOSE_INTERNAL_ERROR, "out of memory");
        return;
    }
    osp_ws_inbox *in = c->inbox;
    osp_ws_delivery *d = malloc(sizeof *d + (len ? len : 1));
    if (d == NULL) {
        if (kind != DELIVER_CLOSE) osp_ws_conn_fail(c, OSP_WS_CLOSE_INTERNAL_ERROR, "out of memory");
        return;
    }
    d->next = NULL;
    d->kind = kind;
    d->code = code;
    d->received_ms = 0; /* messages: set when handed over */
    d->len = len;
    if (len) memcpy(d->bytes, data, len);
    if (kind == DELIVER_TEXT || kind == DELIVER_BINARY) {
        if (in->held_tail) in->held_tail->next = d;
        else in->held_head = d;
        in->held_tail = d;
        in->held_bytes += len;
        return;
    }
    int64_t now = in->held_head ? osp_ws_wall_ms() : 0;
    for (osp_ws_delivery *h = in->held_head; h; h = h->next) h->received_ms = now;
    pthread_mutex_lock(&inbox_lock);
    bool pause = hand_over_locked(in, c);
    snapshot_handlers_locked(in, c);
    if (in->tail) in->tail->next = d;
    else in->head = d;
    in->tail = d;
    in->bytes += len; /* a close reason counts like a message: the drain subtracts it */
    osp_ws_handoff_queued(1);
    bool submit = start_drain_locked(in);
    pthread_mutex_unlock(&inbox_lock);
    if (pause && c->state != OSP_WS_CONN_DEAD) osp_ws_conn_set_inbox_paused(c, true);
    if (submit) submit_drain(in, c->state != OSP_WS_CONN_DEAD ? c : NULL);
}

void osp_ws_inbox_deliver(osp_ws_conn *c, uint8_t opcode, const uint8_t *data, size_t len) {
    enqueue(c, opcode == OSP_WS_OP_BINARY ? DELIVER_BINARY : DELIVER_TEXT, 0, data, len);
}

void osp_ws_inbox_open_event(osp_ws_conn *c) {
    const osp_ws_server *s = c->server;
    if (s == NULL || s->events == NULL) return;
    c->close_event_owed = true;
    if (s->events->open) enqueue(c, DELIVER_OPEN, 0, NULL, 0);
}

void osp_ws_inbox_close_event(osp_ws_conn *c) {
    if (!c->close_event_owed) return;
    c->close_event_owed = false;
    bool wanted = c->server ? c->server->events && c->server->events->server_close : c->events && c->events->close;
    if (!wanted) return;
    uint16_t code = c->session.close_code ? c->session.close_code : OSP_WS_CLOSE_ABNORMAL;
    size_t reason_len = code == OSP_WS_CLOSE_ABNORMAL ? 0 : c->session.close_reason_len;
    enqueue(c, DELIVER_CLOSE, code, (const uint8_t *)c->session.close_reason, reason_len);
}

void osp_ws_inbox_output_pressure(osp_ws_conn *c, bool full) {
    osp_ws_inbox *in = c->inbox;
    if (in == NULL) return;
    pthread_mutex_lock(&inbox_lock);
    in->output_full = full;
    bool submit = start_drain_locked(in);
    pthread_mutex_unlock(&inbox_lock);
    if (submit) submit_drain(in, c);
}

void osp_ws_inbox_replace_handler(osp_ws_msg_handler *slot, void **env_cell, const osp_ws_msg_handler *h, void *env) {
    pthread_mutex_lock(&inbox_lock);
    *env_cell = env;
    *slot = *h;
    pthread_mutex_unlock(&inbox_lock);
}

/* Loop thread, each wake-up: resumes reading the connections whose handlers caught up. */
static void resume_all(void) {
    pthread_mutex_lock(&inbox_lock);
    osp_ws_loop *L = osp_ws_loop_current();
    osp_ws_inbox *list = L->resume_head;
    L->resume_head = NULL;
    for (osp_ws_inbox *in = list; in; in = in->resume_next) in->resume_listed = false;
    pthread_mutex_unlock(&inbox_lock);
    while (list) {
        osp_ws_inbox *in = list;
        list = in->resume_next;
        pthread_mutex_lock(&inbox_lock);
        bool resume = in->read_paused && in->bytes <= in->limit / 2;
        if (resume) in->read_paused = false;
        osp_ws_conn *c = in->conn; /* the loop's (this thread's) field */
        unref_locked(in);           /* not the last reference while c holds one */
        pthread_mutex_unlock(&inbox_lock);
        if (resume && c != NULL) osp_ws_conn_set_inbox_paused(c, false);
    }
}

void osp_ws_inbox_conn_freed(osp_ws_conn *c) {
    osp_ws_inbox *in = c->inbox;
    if (in == NULL) return;
    c->inbox = NULL;
    in->conn = NULL;
    int64_t now = in->held_head ? osp_ws_wall_ms() : 0;
    for (osp_ws_delivery *h = in->held_head; h; h = h->next) h->received_ms = now;
    pthread_mutex_lock(&inbox_lock);
    (void)hand_over_locked(in, c); /* normally nothing is held: each ingest hands over */
    /* Messages held back for a full output queue are still delivered (their answers fail:
     * the connection is closed), as every message received before the end is. */
    in->output_full = false;
    bool submit = start_drain_locked(in);
    unref_locked(in); /* not the last reference when a drain was just started */
    pthread_mutex_unlock(&inbox_lock);
    if (submit) submit_drain(in, NULL);
}

/* With inbox_lock held: whether the calling fiber is draining some inbox (runs a handler). */
static bool in_handler_locked(osp_fiber *self) {
    if (self == NULL) return false;
    for (osp_ws_inbox *in = live_inboxes; in; in = in->next)
        if (in->drainer == self) return true;
    return false;
}

void osp_ws_inbox_quiesce(int64_t conn_id, int64_t server_id, osp_fiber *caller) {
    pthread_mutex_lock(&inbox_lock);
    for (osp_ws_inbox *in = live_inboxes; in; in = in->next) {
        if ((conn_id && in->conn_id == conn_id) || (server_id && in->server_id == server_id)) {
            in->closed = true;
            drop_queued(in, false);
        }
    }
    if (!in_handler_locked(caller)) {
        for (;;) {
            bool busy = false;
            for (osp_ws_inbox *in = live_inboxes; in && !busy; in = in->next)
                busy = in->draining && ((conn_id && in->conn_id == conn_id) || (server_id && in->server_id == server_id));
            if (!busy) break;
            pthread_cond_wait(&drain_done, &inbox_lock);
        }
    }
    pthread_mutex_unlock(&inbox_lock);
}

int64_t osp_ws_handler_connection_id(void) {
    osp_fiber *self = osp_fiber_self();
    if (self == NULL) return 0;
    int64_t id = 0;
    pthread_mutex_lock(&inbox_lock);
    for (osp_ws_inbox *in = live_inboxes; in && id == 0; in = in->next)
        if (in->drainer == self) id = in->conn_id;
    pthread_mutex_unlock(&inbox_lock);
    return id;
}

/* The loop stopped (its thread is joined): drains it still owed are started, as the loop's
 * next iteration would have. */
static void release_lists(void) { start_listed_drains(); }

/* The drains are started twice per iteration end: before the connection layer's deferred
 * flushes (rank 10), so that the handlers run on a worker while the loop writes the
 * iteration's output (broadcasts to many connections take long; started after it, a
 * broadcasting handler's post found the loop asleep and woke it: 0.72x the 1-loop broadcast
 * deliveries per CPU-second), and again after it for what that work handed over (a TLS
 * handshake finished by the handshake threads may bring messages with it). */
static const osp_ws_layer inbox_start_layer = {
    .rank = 5,
    .iteration_end = start_listed_drains,
};

static const osp_ws_layer inbox_layer = {
    .rank = 20,
    .wake = resume_all,
    .iteration_end = start_listed_drains,
    .released = release_lists,
};

__attribute__((constructor)) static void register_inbox_layer(void) {
    osp_ws_runtime_add_layer(&inbox_start_layer);
    osp_ws_runtime_add_layer(&inbox_layer);
}
