/*
 * HTTP/1.1 server (docs/guide/17-http.md): httpCreateServer, httpListen, httpStopServer and
 * httpServerSetLimit.
 *
 * Threads. The listening sockets are on the first I/O loop (loop.c), which only accepts. The
 * connections are in the HTTP poll set (http_poll.c), which no thread owns: a fiber worker that
 * runs out of fibers takes the scheduler's poller role (osp_idle_poller, fiber.c; at most one
 * worker holds it) and waits there instead of on the scheduler's futex, then reads and parses
 * what it finds and queues the complete requests; the runner fiber that takes them runs next on
 * that same worker (osp_sched_submit_here), calls the Osprey handler, serialises its
 * HttpResponse and sends it itself. A saturated server thus reads, handles and answers on one
 * worker with no thread hand-off (Go's scheduler polls the network the same way). Handlers
 * never run on an I/O loop thread. A handler that parks hands the rest of the queue to a new
 * runner at once (park hook); one that computes for long is covered by the watchdog, a 2 ms
 * timer on the I/O loop that runs while the server is active: it starts another runner for
 * requests queued behind a computing one, and when the poller role has stayed vacant since its
 * previous look (its last holder is busy in a handler) it wakes an idle worker, which takes the
 * role and goes on reading the other connections. So a slow handler delays only its own
 * request. The watchdog stops after a look with no activity (an idle server has no periodic
 * wake-up) and the poller asks for it again when it leaves its wait.
 *
 * Ownership. Every connection's state (buffers, phase, deadline, socket) and the servers'
 * connection lists belong to the holder of the connection role (conn_role, a mutex held only
 * for short stretches of I/O and parsing, never across a handler or a wait): the poller while it
 * processes a batch, a handler's worker while it sends its response, the I/O loop while it
 * accepts, stops a server or runs the hand-over. A handler that finds the role taken pushes its
 * response on a lock-free stack and tries the role once more; every holder takes that stack
 * over before it lets go and looks at it again after (role_release), so no response waits for a
 * later event. A connection whose handler runs (PH_BUSY) or whose socket is on its way to a
 * WebSocket server (PH_HANDOVER) is touched by nobody but that job; closed meanwhile it is only
 * marked dead and freed by whoever finishes the job. Closed connections are freed by the poller
 * after the batch it collected (a collected event may still name one; it is skipped because its
 * watch's events are 0), never while another thread may hold such an event.
 *
 * One request per connection is in flight at a time and the next pipelined request is parsed
 * only after the previous response was written, which answers pipelined requests in order and
 * bounds memory (input is left in the socket while a handler runs, so TCP pushes back on the
 * client). Connections are registered once, edge-triggered (CONN_EVENTS): no epoll_ctl per
 * request. docs/BENCHMARKS-HTTP.md explains these choices with measurements.
 *
 * Connection phases and their deadlines (osp_http_limits; a min-heap in http_poll.c, run by the
 * poller and, while the poller role is vacant, by the watchdog): IDLE (keep-alive, waiting for
 * the first byte of a request: idleTimeoutMs, then closed silently), HEAD (headerTimeoutMs from
 * the first byte: 408), BODY (bodyTimeoutMs from the end of the head: 408), BUSY (handler
 * running: no timer), WRITING (the response did not fit the socket buffer: bodyTimeoutMs to
 * drain it, then the connection is dropped), LINGER (after a final error response: the write
 * side is shut and input is discarded for a moment so the client reads the response instead of
 * a reset), HANDOVER (an upgrade request's socket goes to the WebSocket server on the I/O loop).
 */
#include "runtime.h"
#include "http_msg.h"
#include "http_poll.h"
#include "http_server.h"
#include "loop.h"
#include "net.h"
#include "ws_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SERVERS 4096
#define READ_CHUNK 65536
#define LINGER_MS 2000
/* Each connection is registered once, edge-triggered, for everything it may ever wait for, so
 * answering a request costs no epoll_ctl: while a handler runs, input is simply left unread
 * (TCP pushes back on the client) and read when the response is out. */
#define CONN_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

/* PH_HANDOVER: an upgrade request's socket is on its way to the WebSocket server (its
 * adoption runs on the I/O loop, handover_on_loop); nobody else touches the connection. */
typedef enum { PH_IDLE, PH_HEAD, PH_BODY, PH_BUSY, PH_WRITING, PH_LINGER, PH_HANDOVER } conn_phase;

struct http_conn;

/* A server's life. Every transition is one atomic step taken by the thread that acts on it, so
 * two fibers stopping (or listening on) the same server cannot both act: each stop used to see
 * "listening", both stopped the socket and both released the scheduler hold (deadlock detection
 * then counted one outside source too few). STARTING: a listen is in progress on some thread. */
enum { HTTP_CREATED, HTTP_LISTENING, HTTP_STOPPED, HTTP_STARTING };

typedef struct http_server {
    int64_t id;
    int port;
    char address[256];
    _Atomic int state; /* HTTP_CREATED … */
    osp_http_handler_fn handler;
    void *handler_env;
    osp_http_limits limits;
    osp_ws_watch listen_watch;
    struct http_conn *conns;
    uint32_t conn_count;
    /* A path turned into a WebSocket endpoint (httpServerWebSocket): its server id, else 0. */
    char ws_path[1024];
    int64_t ws_server_id;
} http_server;

typedef struct http_conn {
    osp_ws_watch watch; /* first: the poll set's events carry the connection's address */
    osp_http_deadline timer;
    /* The current phase's deadline (osp_ws_now_ms; 0: none, while a handler runs). The heap
     * timer is moved only when a deadline comes earlier than it, and one that fires early is
     * armed again for the rest: a keep-alive request goes IDLE, HEAD, BUSY, IDLE, and moving the
     * timer at each step cost two heap operations per request. */
    uint64_t deadline_ms;
    http_server *server;
    struct http_conn *prev, *next;
    osp_ws_buf in;
    size_t in_off; /* bytes of `in` already parsed */
    osp_ws_buf out;
    size_t out_off;
    osp_request_reader req;
    conn_phase phase;
    bool continue_sent;
    bool peer_closed;
    /* Edge-triggered epoll (CONN_EVENTS) reports new input once: `readable` says the socket may
     * still hold bytes we have not read (cleared by a short read or EAGAIN), `eof_pending` that
     * the peer's FIN is among them (EPOLLRDHUP), so a short read does not mean drained. */
    bool readable;
    bool eof_pending;
    bool close_after_write;
    bool closed; /* socket closed and unlinked; freed by settle() */
    bool handed_over; /* the socket went to a WebSocket server (httpServerWebSocket) */
    bool dead;   /* closed while its handler ran: freed when the handler's response arrives */
} http_conn;

/* One request handed to a fiber. Collector memory: the fiber record keeps it alive. */
typedef struct http_job_s {
    http_conn *conn;
    int64_t server_id;
    osp_http_handler_fn handler;
    void *handler_env;
    char *method, *path, *headers, *body;
    bool is_head;
    bool keep_alive;
    int minor;
    char *response; /* collector memory (no pointers), handed to the loop; NULL: out of memory */
    size_t response_len;
    struct http_job_s *next_done; /* on the completed-jobs queue */
} http_job;

/* Responses of handlers that found the connection role taken, for its holder (role_release). A
 * lock-free stack: handlers push, the holder takes all at once (no ABA hazard); the static head
 * is a root for the collector, which keeps the jobs alive. */
static _Atomic(http_job *) done_stack;

static pthread_mutex_t servers_mutex = PTHREAD_MUTEX_INITIALIZER;
static http_server *servers[MAX_SERVERS];
static int64_t server_count;
static bool shutdown_hook_set;
/* Set by the shutdown hook, read by handler fibers on any worker (job_run). */
static atomic_bool shutting_down;

/* Ids are shared with nothing else; they start at 1 and are never reused. */
static http_server *server_get(int64_t id) {
    pthread_mutex_lock(&servers_mutex);
    http_server *s = (id >= 1 && id <= server_count) ? servers[id - 1] : NULL;
    pthread_mutex_unlock(&servers_mutex);
    return s;
}

OspResult osp_http_create_server(int64_t port, const char *address) {
    static const char fn[] = "httpCreateServer";
    if (port < 1 || port > 65535) return osp_result_errorf("%s: port %" PRId64 " is out of range (1-65535)", fn, port);
    if (address == NULL || address[0] == '\0') return osp_result_errorf("%s: the address is empty", fn);
    OspResult refused;
    if (osp_str_refuse_nul(fn, "address", address, &refused)) return refused;
    if (strlen(address) >= sizeof ((http_server *)0)->address || !osp_ws_net_address_valid(address))
        return osp_result_errorf("%s: \"%s\" is not an IP address or localhost", fn, address);
    /* Uncollectable: the collector must see the handler's environment through it. */
    http_server *s = GC_MALLOC_UNCOLLECTABLE(sizeof *s);
    if (s == NULL) return osp_result_errorf("%s: out of memory", fn);
    memset(s, 0, sizeof *s);
    s->port = (int)port;
    snprintf(s->address, sizeof s->address, "%s", address);
    osp_http_limits_default(&s->limits);
    s->listen_watch.fd = -1;
    pthread_mutex_lock(&servers_mutex);
    if (server_count == MAX_SERVERS) {
        pthread_mutex_unlock(&servers_mutex);
        GC_FREE(s);
        return osp_result_errorf("%s: too many HTTP servers (at most %d per process)", fn, MAX_SERVERS);
    }
    servers[server_count++] = s;
    s->id = server_count;
    pthread_mutex_unlock(&servers_mutex);
    return osp_result_success(s->id);
}

/* ---- connections (connection role holder) ----------------------------------------------------- */

static void conn_event(http_conn *c, uint32_t events);
static void conn_timer(osp_http_deadline *t);
static void conn_process(http_conn *c);
static void conn_read(http_conn *c);

static bool reading_phase(const http_conn *c) {
    return c->phase == PH_IDLE || c->phase == PH_HEAD || c->phase == PH_BODY;
}

/* Goes on with what is buffered, then with what the socket may still hold: an edge-triggered
 * watch reports bytes that arrived while a handler ran only once, and they are ours to read. */
static void conn_resume(http_conn *c) {
    conn_process(c);
    if (!c->closed && c->readable && (reading_phase(c) || c->phase == PH_LINGER)) conn_read(c);
}

static void conn_free(http_conn *c) {
    osp_request_reader_free(&c->req);
    osp_ws_buf_free(&c->in);
    osp_ws_buf_free(&c->out);
    free(c);
}

/* The connection role: whoever holds it may touch every connection of every server (their
 * buffers, phases, deadlines and sockets) and the servers' connection lists. Held only for
 * short stretches of I/O and parsing, never across a handler or a blocking wait (role_take,
 * role_release). Lock order: conn_role, then runq_lock or the scheduler's lock. */
static pthread_mutex_t conn_role = PTHREAD_MUTEX_INITIALIZER;

/* Closed connections wait here until the poller role's holder has processed the events it
 * collected (one of them may still name the connection: it is skipped because its watch's
 * events are 0), and are freed by it (poller_process). Role holder only. */
static http_conn *graveyard;

static void bury(http_conn *c) {
    c->next = graveyard;
    graveyard = c;
}

static void submit_pending(void);
static void drain_done(void);

/* The clock read once per hold of the connection role (0: not yet in this one). A keep-alive
 * request moves its connection's deadline twice, and reading the clock for each was about 1 %
 * of the server's CPU; the deadlines are seconds apart and a hold lasts at most a few
 * milliseconds. Role holder only. */
static uint64_t iteration_now_ms;

static uint64_t loop_now_ms(void) {
    if (iteration_now_ms == 0) iteration_now_ms = osp_ws_now_ms();
    return iteration_now_ms;
}

static void role_take(void) { pthread_mutex_lock(&conn_role); }

/* Releases the role after handing the requests parsed meanwhile to the runners. A response
 * pushed on done_stack by a handler that found the role taken is then taken over here (the
 * pusher tries the role once more after its push, so between the two one of them sends it). */
static void role_release(void) {
    for (;;) {
        submit_pending();
        iteration_now_ms = 0;
        pthread_mutex_unlock(&conn_role);
        if (atomic_load(&done_stack) == NULL || pthread_mutex_trylock(&conn_role) != 0) return;
        drain_done();
    }
}

static void conn_close(http_conn *c) {
    if (c->closed) return;
    osp_http_deadline_cancel(&c->timer);
    /* A hand-over in progress owns the socket: handover_on_loop closes it when it finds the
     * connection closed. */
    if (!c->handed_over && c->phase != PH_HANDOVER) {
        if (c->watch.events != 0) (void)osp_http_poll_ctl(c->watch.fd, c->watch.events, 0, c);
        close(c->watch.fd);
    }
    c->watch.events = 0;
    c->watch.fd = -1;
    http_server *s = c->server;
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->conn_count--;
    c->closed = true;
}

/* Called last by every entry point (event, deadline, response, stop): a closed connection is
 * buried here, never deeper in the call chain that may still use it, and not while a handler's
 * fiber or a hand-over still points at it (job_done or handover_on_loop buries it then). */
static void settle(http_conn *c) {
    if (!c->closed || c->dead) return;
    if (c->phase == PH_BUSY || c->phase == PH_HANDOVER) c->dead = true;
    else bury(c);
}

static void set_deadline(http_conn *c, uint64_t delay_ms) {
    c->deadline_ms = loop_now_ms() + delay_ms;
    if (!osp_http_deadline_armed(&c->timer) || c->timer.at_ms > c->deadline_ms) osp_http_deadline_arm(&c->timer, c->deadline_ms);
}

static void set_phase(http_conn *c, conn_phase phase) {
    /* The same phase again keeps its deadline (a head dribbled byte by byte still times out). */
    if (c->phase == phase && c->deadline_ms != 0) return;
    c->phase = phase;
    const osp_http_limits *l = &c->server->limits;
    switch (phase) {
    case PH_IDLE: set_deadline(c, l->idle_timeout_ms); break;
    case PH_HEAD: set_deadline(c, l->header_timeout_ms); break;
    case PH_BODY: set_deadline(c, l->body_timeout_ms); break;
    case PH_WRITING: set_deadline(c, l->body_timeout_ms); break;
    case PH_LINGER: set_deadline(c, LINGER_MS); break;
    case PH_BUSY:
    case PH_HANDOVER: c->deadline_ms = 0; break; /* a timer that fires meanwhile does nothing */
    }
}

/* Sends what it can; false when the connection was closed. */
static bool conn_flush(http_conn *c) {
    while (c->out.len > c->out_off) {
        ssize_t n = osp_ws_net_send(c->watch.fd, c->out.data + c->out_off, c->out.len - c->out_off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
            conn_close(c);
            return false;
        }
        c->out_off += (size_t)n;
    }
    osp_ws_buf_clear(&c->out);
    c->out_off = 0;
    return true;
}

/* The response was queued: write it, then either close, linger, or go on with the next request. */
static void after_response(http_conn *c) {
    if (!conn_flush(c)) return;
    if (c->out.len > c->out_off) {
        set_phase(c, PH_WRITING); /* EPOLLOUT reports when the socket takes more */
        return;
    }
    if (c->close_after_write) {
        /* Lingering close: shut our side so the client sees the response and an orderly end,
         * and discard what it still sends for a moment (closing with unread input would reset
         * the connection and could destroy the response in flight). */
        if (c->peer_closed || shutdown(c->watch.fd, SHUT_WR) != 0) {
            conn_close(c);
            return;
        }
        set_phase(c, PH_LINGER);
        if (c->readable) conn_read(c);
        return;
    }
    osp_request_reader_reset(&c->req, &c->server->limits);
    c->continue_sent = false;
    if (c->peer_closed && c->in.len == c->in_off) {
        conn_close(c);
        return;
    }
    set_phase(c, c->in.len > c->in_off ? PH_HEAD : PH_IDLE);
    conn_resume(c);
}

static void append_text(osp_ws_buf *b, const char *s) {
    if (osp_ws_buf_append(b, s, strlen(s)) != 0) {
        /* Out of memory: the response is dropped with the connection (checked by the caller). */
    }
}

/* A response the runtime writes itself (errors found while reading a request). */
static void send_error(http_conn *c, int status, const char *text) {
    char head[512], date[40];
    osp_http_date(date, sizeof date, (int64_t)time(NULL));
    size_t body_len = strlen(text) + 1;
    snprintf(head, sizeof head,
             "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             status, osp_http_reason(status), date, body_len);
    append_text(&c->out, head);
    append_text(&c->out, text);
    append_text(&c->out, "\n");
    c->close_after_write = true;
    after_response(c);
}

static char *gc_copy(const char *p, size_t n) { return osp_gc_strndup(p, n); }

/* The request's method as a String: the common ones are constants (Strings are immutable), so
 * most requests allocate nothing for it. */
static const char *method_string(const char *m, size_t n) {
    OSP_STATIC_STRING(get_text, "GET");
    OSP_STATIC_STRING(head_text, "HEAD");
    OSP_STATIC_STRING(post_text, "POST");
    OSP_STATIC_STRING(put_text, "PUT");
    OSP_STATIC_STRING(delete_text, "DELETE");
    OSP_STATIC_STRING(patch_text, "PATCH");
    OSP_STATIC_STRING(options_text, "OPTIONS");
    static const char *const known[] = {get_text.bytes,   head_text.bytes,  post_text.bytes,   put_text.bytes,
                                        delete_text.bytes, patch_text.bytes, options_text.bytes};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (osp_str_len(known[i]) == n && memcmp(known[i], m, n) == 0) return known[i];
    return gc_copy(m, n);
}

/* Runs one request's handler and hands the response to the loop (on a runner fiber). */
static void job_run(http_job *j);

/* Requests dispatched during one hold of the connection role, queued together when it ends
 * (role_release). Role holder only; a static list head is a root for the collector. */
static http_job *submit_head, *submit_tail;

/* Handler runners. Handlers run on fibers, never on an I/O loop thread, but not on a fiber each:
 * a runner fiber takes requests from the run queue one after another until it is empty, so a
 * batch costs no fiber start while a runner is still working, and one otherwise, instead of a
 * fiber created, scheduled, switched to and retired per request. A runner started by the poller
 * runs next on the poller's own worker (osp_sched_submit_here): no wake-up of another worker. A
 * handler that waits (a channel, await, sleep, a blocking call) parks its runner: the park hook
 * starts another runner for the rest of the queue at once. A handler that computes for long keeps
 * its runner: the watchdog checks every few milliseconds while requests are queued and starts
 * another runner when none was taken since the previous check (so a slow handler delays only its
 * own request). The queue's static head is a root for the collector; the lock is never held
 * while anything else is taken. */
static pthread_mutex_t runq_lock = PTHREAD_MUTEX_INITIALIZER;
static http_job *runq_head, *runq_tail;
static int runners_unstarted; /* spawned, not yet running: a new one would wait behind them */
/* Runners between taking requests, or in a handler that has not parked: each takes what is queued
 * once its current handler returns, so a new batch needs no new runner (no fiber start, no worker
 * wake-up) while one of them is counted here. */
static int runners_running;
static uint64_t runq_taken;   /* requests taken so far (stall check) */
static uint64_t runq_seen_taken;
/* A runner yields to the scheduler after this many requests in a row, so other fibers (WebSocket
 * handlers, spawned fibers) get their turn under a steady stream of requests. */
#define RUNNER_FAIRNESS_BATCH 64
#define STALL_CHECK_MS 2

/* What the park hook knows of a runner: whether it is counted in runners_running (runq_lock). The
 * hook runs after the runner's fiber is switched out, when that fiber may already have resumed
 * elsewhere or even finished, so records are never freed: a finished runner's record goes to a
 * free list for the next one. A late hook can then only mark a record parked while a runner runs
 * with it (that runner puts itself back in the count at its next look at the queue; an
 * undercount meanwhile at worst starts a runner more than needed) or while it is free (the next
 * runner to take it gives the count back: claim_record). */
typedef struct runner_record {
    bool parked; /* not counted in runners_running */
    struct runner_record *next_free;
    struct runner_record *next_made; /* every record ever made: reachable for leak checkers */
} runner_record;
static runner_record *free_runner_records; /* runq_lock */
static runner_record *made_runner_records; /* runq_lock */

static int64_t runner_run(void *unused);

static void start_runner(void) {
    osp_sched_submit_here(runner_run, NULL);
}

/* A runner's handler parked (the worker calls this, no lock held): it no longer takes requests
 * until it resumes, so when requests wait and no runner is on its way, start one for them. */
static void runner_parked(void *arg) {
    runner_record *rec = arg;
    pthread_mutex_lock(&runq_lock);
    if (!rec->parked) {
        rec->parked = true;
        runners_running--;
    }
    bool start = runq_head != NULL && runners_unstarted == 0;
    if (start) runners_unstarted++;
    pthread_mutex_unlock(&runq_lock);
    if (start) start_runner();
}

/* Counts a runner in runners_running with its record (runq_lock held). A late park hook of the
 * record's previous runner may have taken one off the count after that runner had left: given
 * back here. */
static void claim_record(runner_record *rec) {
    if (rec->parked) runners_running++;
    rec->parked = false;
    rec->next_free = NULL;
    runners_running++;
}

static int64_t runner_run(void *unused) {
    (void)unused;
    pthread_mutex_lock(&runq_lock);
    runners_unstarted--;
    runner_record *rec = free_runner_records;
    if (rec != NULL) {
        free_runner_records = rec->next_free;
        claim_record(rec);
    }
    pthread_mutex_unlock(&runq_lock);
    if (rec == NULL && (rec = malloc(sizeof *rec)) != NULL) {
        rec->parked = false;
        pthread_mutex_lock(&runq_lock);
        rec->next_made = made_runner_records;
        made_runner_records = rec;
        claim_record(rec);
        pthread_mutex_unlock(&runq_lock);
    }
    /* Without a record (out of memory) the runner is never counted: submissions then start
     * runners as if it were not there, which costs speed, not correctness. */
    if (rec != NULL) osp_fiber_set_park_hook(runner_parked, rec);
    for (int in_a_row = 1;; in_a_row++) {
        pthread_mutex_lock(&runq_lock);
        if (rec != NULL && rec->parked) {
            rec->parked = false; /* resumed after its handler parked */
            runners_running++;
        }
        http_job *j = runq_head;
        if (j != NULL) {
            runq_head = j->next_done;
            if (runq_head == NULL) runq_tail = NULL;
            runq_taken++;
        } else if (rec != NULL) {
            runners_running--;
            rec->next_free = free_runner_records;
            free_runner_records = rec;
        }
        pthread_mutex_unlock(&runq_lock);
        if (j == NULL) {
            osp_fiber_set_park_hook(NULL, NULL);
            return 0;
        }
        j->next_done = NULL;
        job_run(j);
        if (in_a_row % RUNNER_FAIRNESS_BATCH == 0) osp_fiber_yield();
    }
}

static void submit_later(http_job *j) {
    j->next_done = NULL;
    if (submit_tail) submit_tail->next_done = j;
    else submit_head = j;
    submit_tail = j;
}

static void submit_pending(void) {
    if (submit_head == NULL) return;
    pthread_mutex_lock(&runq_lock);
    if (runq_tail) runq_tail->next_done = submit_head;
    else runq_head = submit_head;
    runq_tail = submit_tail;
    /* A runner that is running takes the new requests when its current handler returns (if that
     * takes long, the stall check starts another); one is started only when none runs. */
    bool start = runners_running == 0 && runners_unstarted == 0;
    if (start) runners_unstarted++;
    pthread_mutex_unlock(&runq_lock);
    submit_head = submit_tail = NULL;
    if (start) start_runner();
}

static void dispatch_job(http_conn *c);

typedef struct {
    http_conn *conn;
    int64_t ws_server_id;
    uint8_t *bytes; /* the request and what was read after it (may hold cookies: wiped) */
    size_t len;
} handover;

/* On the I/O loop (the WebSocket server adopts sockets there): the connection stays in
 * PH_HANDOVER, untouched by anyone else, until this takes the connection role again. */
static void handover_on_loop(void *arg) {
    handover *h = arg;
    http_conn *c = h->conn;
    role_take();
    bool dead = c->dead; /* closed meanwhile (a stop): the socket is ours to close */
    role_release();
    bool taken = !dead && osp_ws_server_adopt(h->ws_server_id, c->watch.fd, h->bytes, h->len);
    osp_ws_free_wiped(h->bytes, h->len ? h->len : 1);
    free(h);
    role_take();
    if (c->dead) {
        /* Closed while it was adopted or before (a stop): adopted, the WebSocket server owns
         * the socket now; else it is closed here. */
        if (!taken) close(c->watch.fd);
        c->watch.fd = -1;
        bury(c);
    } else if (taken) {
        /* The socket belongs to the WebSocket server now: forget it without closing it. */
        c->watch.fd = -1;
        c->in_off = c->in.len;
        c->handed_over = true;
        c->phase = PH_IDLE;
        conn_close(c);
        settle(c);
    } else {
        /* Not taken (that server stopped): an ordinary request. Registered afresh: an
         * edge-triggered watch reports input already waiting. */
        c->phase = PH_IDLE;
        c->readable = false;
        if (osp_http_poll_ctl(c->watch.fd, 0, CONN_EVENTS, c) != 0) {
            conn_close(c);
            settle(c);
        } else {
            c->watch.events = CONN_EVENTS;
            dispatch_job(c);
            settle(c);
        }
    }
    role_release();
}

/* An upgrade request for the server's WebSocket path goes to the attached WebSocket server
 * (httpServerWebSocket) with everything read after it, on the I/O loop; true when it went
 * there (or the connection was closed). */
static bool hand_over_websocket(http_conn *c) {
    http_server *s = c->server;
    osp_http_parser *h = &c->req.head;
    if (s->ws_server_id == 0 || !osp_http_header_has_token(h, "Upgrade", "websocket")) return false;
    size_t n;
    const char *target = osp_http_part(h, 1, &n);
    const char *q = memchr(target, '?', n);
    size_t path_len = q ? (size_t)(q - target) : n;
    if (path_len != strlen(s->ws_path) || memcmp(target, s->ws_path, path_len) != 0) return false;
    size_t rest = c->in.len - c->in_off;
    size_t total = h->buf.len + rest;
    handover *ho = malloc(sizeof *ho);
    uint8_t *bytes = malloc(total ? total : 1);
    if (ho == NULL || bytes == NULL) {
        free(ho);
        free(bytes);
        return false;
    }
    memcpy(bytes, h->buf.data, h->buf.len);
    if (rest) memcpy(bytes + h->buf.len, c->in.data + c->in_off, rest);
    *ho = (handover){c, s->ws_server_id, bytes, total};
    /* Out of the poll set first: no poller reads the socket the WebSocket server will own. */
    if (osp_http_poll_ctl(c->watch.fd, c->watch.events, 0, c) != 0) {
        osp_ws_free_wiped(bytes, total ? total : 1);
        free(ho);
        conn_close(c);
        return true;
    }
    c->watch.events = 0;
    set_phase(c, PH_HANDOVER);
    osp_http_deadline_cancel(&c->timer);
    if (!osp_ws_loop_post(osp_ws_loop_main(), handover_on_loop, ho)) {
        /* The I/O loop is stopping (the program exits): the connection ends here. */
        osp_ws_free_wiped(bytes, total ? total : 1);
        free(ho);
        c->phase = PH_IDLE;
        conn_close(c);
    }
    return true;
}

static void dispatch(http_conn *c) {
    if (hand_over_websocket(c)) return;
    if (c->closed) return;
    dispatch_job(c);
}

/* The request just parsed goes to the run queue (submitted when the role is released). */
static void dispatch_job(http_conn *c) {
    http_server *s = c->server;
    osp_http_parser *h = &c->req.head;
    http_job *j = GC_MALLOC(sizeof *j);
    if (j == NULL) {
        send_error(c, 503, "out of memory");
        return;
    }
    size_t n;
    const char *m = osp_http_part(h, 0, &n);
    j->method = (char *)method_string(m, n);
    j->is_head = osp_http_ieq(m, n, "HEAD");
    const char *p = osp_http_part(h, 1, &n);
    j->path = gc_copy(p, n);
    /* The raw header block: every header line with its CRLF, without the blank line. */
    size_t start = (size_t)h->part_off[2] + h->part_len[2] + 2;
    size_t end = h->buf.len >= 2 ? h->buf.len - 2 : start;
    j->headers = gc_copy((const char *)h->buf.data + (start < end ? start : end), start < end ? end - start : 0);
    OSP_STATIC_STRING(empty_body, "");
    j->body = c->req.body.len ? gc_copy((const char *)c->req.body.data, c->req.body.len) : (char *)empty_body.bytes;
    j->keep_alive = c->req.keep_alive;
    j->minor = h->version_minor;
    j->conn = c;
    j->server_id = s->id;
    j->handler = s->handler;
    j->handler_env = s->handler_env;
    if (!j->keep_alive) c->close_after_write = true;
    set_phase(c, PH_BUSY);
    submit_later(j);
}

/* Parses buffered input; dispatches a complete request or answers a malformed one. */
static void conn_process(http_conn *c) {
    while (!c->closed && (c->phase == PH_IDLE || c->phase == PH_HEAD || c->phase == PH_BODY)) {
        size_t avail = c->in.len - c->in_off;
        if (avail == 0) {
            osp_ws_buf_clear(&c->in);
            c->in_off = 0;
            if (c->peer_closed) conn_close(c);
            return;
        }
        if (c->phase == PH_IDLE) set_phase(c, PH_HEAD);
        size_t used = 0;
        osp_http_status st = osp_request_feed(&c->req, c->in.data + c->in_off, avail, &used);
        c->in_off += used;
        if (st == OSP_HTTP_ERROR) {
            send_error(c, c->req.error_status, c->req.error_text ? c->req.error_text : "bad request");
            return;
        }
        if (st == OSP_HTTP_DONE) {
            dispatch(c);
            return;
        }
        /* Incomplete: everything available was consumed. */
        if (osp_request_head_done(&c->req)) {
            if (c->phase != PH_BODY) set_phase(c, PH_BODY);
            if (c->req.expect_continue && !c->continue_sent) {
                c->continue_sent = true;
                append_text(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
                if (!conn_flush(c)) return;
            }
        }
    }
}

static void conn_read(http_conn *c) {
    int rounds;
    for (rounds = 0; rounds < 16; rounds++) {
        /* Compact before growing: pipelined input is consumed from the front. */
        if (c->in_off > 0 && c->in_off == c->in.len) {
            osp_ws_buf_clear(&c->in);
            c->in_off = 0;
        }
        if (osp_ws_buf_reserve(&c->in, READ_CHUNK, SIZE_MAX) != 0) {
            conn_close(c);
            return;
        }
        ssize_t n = osp_ws_net_recv(c->watch.fd, c->in.data + c->in.len, READ_CHUNK);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->readable = false;
                break;
            }
            conn_close(c);
            return;
        }
        if (n == 0) {
            c->peer_closed = true;
            c->readable = false;
            break;
        }
        /* A short read took everything the socket held (bytes arriving later raise a new edge),
         * unless the peer's FIN is still behind them: then read on until recv says 0. */
        if ((size_t)n < READ_CHUNK && !c->eof_pending) c->readable = false;
        if (c->phase == PH_LINGER) {
            if (!c->readable) break;
            continue; /* discarded */
        }
        c->in.len += (size_t)n;
        /* Parse as we go so a flood of pipelined bytes is never buffered beyond one read. */
        conn_process(c);
        if (c->closed || !reading_phase(c)) return;
        if (!c->readable) break;
    }
    if (rounds == 16 && c->readable && osp_http_poll_ctl(c->watch.fd, c->watch.events, c->watch.events, c) != 0) {
        /* Fair to the other connections: the poller comes back for the rest (a fresh edge). */
        conn_close(c);
        return;
    }
    if (c->phase == PH_LINGER) {
        if (c->peer_closed) conn_close(c);
        return;
    }
    conn_process(c);
}

static void conn_event_inner(http_conn *c, uint32_t events);

static void conn_event(http_conn *c, uint32_t events) {
    conn_event_inner(c, events);
    settle(c);
}

static void conn_event_inner(http_conn *c, uint32_t events) {
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->readable = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->eof_pending = true;
    /* The edge-triggered watch reports EPOLLOUT along with most input events: only pending
     * output matters. */
    if ((events & EPOLLOUT) && c->out.len > c->out_off) {
        if (!conn_flush(c)) return;
        if (c->phase == PH_WRITING && c->out.len == c->out_off) {
            c->phase = PH_IDLE; /* after_response picks the next phase (and reads on) */
            after_response(c);
            return;
        }
    }
    if (c->readable) {
        if (c->closed) return;
        if (c->phase == PH_BUSY || c->phase == PH_WRITING) {
            /* Read when the response is out (conn_resume); a reset or hang-up is noted now. */
            if (events & (EPOLLHUP | EPOLLERR)) c->peer_closed = true;
            return;
        }
        conn_read(c);
    }
}

static void conn_timer(osp_http_deadline *t) {
    http_conn *c = (http_conn *)((char *)t - offsetof(http_conn, timer));
    if (c->deadline_ms == 0) return; /* a handler runs: the next phase sets a deadline */
    if (loop_now_ms() < c->deadline_ms) {
        osp_http_deadline_arm(t, c->deadline_ms); /* an earlier phase's deadline: not ours */
        return;
    }
    switch (c->phase) {
    case PH_HEAD:
        send_error(c, 408, "request header timeout");
        break;
    case PH_BODY:
        send_error(c, 408, "request body timeout");
        break;
    default:
        conn_close(c);
        break;
    }
    settle(c);
}

/* On the I/O loop, which watches the listening sockets (accepting is rare; the connections go to
 * the poll set that idle workers wait on). */
static void server_accept(osp_ws_watch *w, uint32_t events) {
    (void)events;
    http_server *s = (http_server *)((char *)w - offsetof(http_server, listen_watch));
    role_take();
    for (int i = 0; i < 64; i++) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        if (s->conn_count >= s->limits.max_connections) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            (void)osp_ws_net_send(fd, busy, sizeof busy - 1);
            close(fd);
            continue;
        }
        http_conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->watch.fd = fd;
        c->server = s;
        osp_http_deadline_init(&c->timer, conn_timer);
        osp_request_reader_init(&c->req, &s->limits);
        c->next = s->conns;
        if (s->conns) s->conns->prev = c;
        s->conns = c;
        s->conn_count++;
        /* Idle, but the first request gets headerTimeoutMs to start (a silent client). */
        c->phase = PH_IDLE;
        set_deadline(c, s->limits.header_timeout_ms);
        if (osp_http_poll_ctl(fd, 0, CONN_EVENTS, c) != 0) conn_close(c);
        else c->watch.events = CONN_EVENTS;
        settle(c);
    }
    role_release();
}

/* ---- handler fibers ----------------------------------------------------------------------- */

/* The record layout of HttpResponse (a GC block of words: tag, then the eight fields in order). */
enum { R_TAG, R_STATUS, R_HEADERS, R_CONTENT_TYPE, R_CONTENT_LENGTH, R_STREAM_FD, R_IS_COMPLETE, R_BODY, R_BODY_LENGTH };

static void report_bad_response(http_job *j, const char *why) {
    osp_output_lock();
    fprintf(stderr, "http server %" PRId64 ": the handler's response to %s %s is invalid (%s); answered 500\n",
            j->server_id, j->method, j->path, why);
    fflush(stderr);
    osp_output_unlock();
}

/* The Date header changes once a second: each worker formats it once per second, not per
 * response (thread-local, so workers never share or lock it). */
static const char *current_http_date(void) {
    static __thread int64_t formatted_second = -1;
    static __thread char text[40];
    int64_t now = (int64_t)time(NULL);
    if (now != formatted_second) {
        osp_http_date(text, sizeof text, now);
        formatted_second = now;
    }
    return text;
}

static size_t decimal_digits(uint64_t v) {
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

static char *write_bytes(char *w, const void *p, size_t n) {
    memcpy(w, p, n);
    return w + n;
}

static char *write_decimal(char *w, uint64_t v, size_t digits) {
    for (size_t i = digits; i > 0; i--) {
        w[i - 1] = (char)('0' + v % 10);
        v /= 10;
    }
    return w + digits;
}

#define WRITE_LITERAL(w, lit) ((w) = write_bytes((w), (lit), sizeof(lit) - 1))

/* The response is written straight into the block of collector memory the connection is sent from
 * (pointer-free, so the collector never scans it): its size is computed first, so there is no
 * intermediate buffer to fill, copy and wipe per response. */
static void serialise(http_job *j, const int64_t *r) {
    int64_t status = r ? r[R_STATUS] : 500;
    const char *user_headers = r ? (const char *)r[R_HEADERS] : NULL;
    const char *content_type = r ? (const char *)r[R_CONTENT_TYPE] : NULL;
    const char *body = r ? (const char *)r[R_BODY] : NULL;
    const char *bad = NULL;
    if (status < 200 || status > 999) bad = "status must be between 200 and 999";
    osp_ws_buf extra = {0};
    bool has_ct = false;
    if (bad == NULL && user_headers && osp_str_has_nul(user_headers)) bad = "a NUL byte in headers";
    if (bad == NULL && content_type && osp_str_has_nul(content_type)) bad = "a NUL byte in contentType";
    if (bad == NULL) bad = osp_http_append_user_headers(&extra, user_headers, true, &has_ct);
    if (bad == NULL && content_type && !has_ct) {
        for (const char *p = content_type; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7F) bad = "a control character in contentType";
    }
    if (bad != NULL) {
        report_bad_response(j, bad);
        osp_ws_buf_clear(&extra);
        status = 500;
        OSP_STATIC_STRING(invalid_response_body, "internal server error: the handler returned an invalid response\n");
        body = invalid_response_body.bytes;
        content_type = "text/plain; charset=utf-8";
        has_ct = false;
    }
    size_t body_len = body != NULL ? osp_str_len(body) : 0; /* every byte, NUL bytes included */
    bool no_body_status = status == 204 || status == 304;
    const char *reason = osp_http_reason((int)status);
    const char *date = current_http_date();
    size_t reason_len = strlen(reason), date_len = strlen(date);
    bool put_content_type = content_type && content_type[0] && !has_ct && !no_body_status;
    size_t content_type_len = put_content_type ? strlen(content_type) : 0;
    size_t length_digits = decimal_digits(body_len);
    static const char close_header[] = "Connection: close\r\n";
    static const char keep_alive_header[] = "Connection: keep-alive\r\n";
    const char *connection = !j->keep_alive ? close_header : j->minor == 0 ? keep_alive_header : NULL;
    size_t connection_len = connection == close_header ? sizeof close_header - 1
                            : connection != NULL       ? sizeof keep_alive_header - 1
                                                       : 0;
    bool put_body = !j->is_head && !no_body_status;
    /* The status is 200..999 (three digits); the literals below with their lengths. */
    size_t total = sizeof "HTTP/1.1 " - 1 + 3 + 1 + reason_len + sizeof "\r\nDate: " - 1 + date_len + 2 +
                   (put_content_type ? sizeof "Content-Type: " - 1 + content_type_len + 2 : 0) + extra.len +
                   (no_body_status ? 0 : sizeof "Content-Length: " - 1 + length_digits + 2) + connection_len + 2;
    bool fits = !put_body || !__builtin_add_overflow(total, body_len, &total);
    char *block = fits ? GC_MALLOC_ATOMIC(total) : NULL;
    if (block != NULL) {
        char *w = block;
        WRITE_LITERAL(w, "HTTP/1.1 ");
        w = write_decimal(w, (uint64_t)status, 3);
        *w++ = ' ';
        w = write_bytes(w, reason, reason_len);
        WRITE_LITERAL(w, "\r\nDate: ");
        w = write_bytes(w, date, date_len);
        WRITE_LITERAL(w, "\r\n");
        if (put_content_type) {
            WRITE_LITERAL(w, "Content-Type: ");
            w = write_bytes(w, content_type, content_type_len);
            WRITE_LITERAL(w, "\r\n");
        }
        if (extra.len) w = write_bytes(w, extra.data, extra.len);
        if (!no_body_status) {
            WRITE_LITERAL(w, "Content-Length: ");
            w = write_decimal(w, body_len, length_digits);
            WRITE_LITERAL(w, "\r\n");
        }
        if (connection != NULL) w = write_bytes(w, connection, connection_len);
        WRITE_LITERAL(w, "\r\n");
        if (put_body && body_len) w = write_bytes(w, body, body_len);
        if ((size_t)(w - block) != total) abort(); /* the size computed above is the layout written */
    }
    /* The user's headers may carry cookies or tokens: wiped before they are freed. */
    osp_ws_buf_free(&extra);
    j->response = block;
    j->response_len = block ? total : 0;
}

/* Sends a handler's response straight from its block when nothing else waits to go out (the
 * usual case): only what the socket does not take is copied to the connection's output buffer.
 * False when the connection failed or memory ran out: the caller closes it. */
static bool send_response(http_conn *c, const char *bytes, size_t len) {
    size_t sent = 0;
    if (c->out.len == c->out_off) {
        while (sent < len) {
            ssize_t n = osp_ws_net_send(c->watch.fd, bytes + sent, len - sent);
            if (n < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
                break;
            }
            sent += (size_t)n;
        }
    }
    return sent == len || osp_ws_buf_append(&c->out, bytes + sent, len - sent) == 0;
}

static void job_done(void *arg) {
    http_job *j = arg;
    http_conn *c = j->conn;
    if (c->dead) {
        bury(c);
        j->response = NULL;
        return;
    }
    if (j->response == NULL || !send_response(c, j->response, j->response_len)) {
        j->response = NULL;
        c->phase = PH_IDLE;
        conn_close(c);
        settle(c);
        return;
    }
    j->response = NULL;
    c->phase = PH_IDLE; /* after_response picks the next phase */
    after_response(c);
    settle(c);
}

static void (*chained_wake_hook)(void);
static bool wake_hook_installed;

static void drain_done(void) {
    http_job *stack = atomic_exchange_explicit(&done_stack, NULL, memory_order_acquire);
    http_job *list = NULL; /* in completion order */
    while (stack) {
        http_job *next = stack->next_done;
        stack->next_done = list;
        list = stack;
        stack = next;
    }
    while (list) {
        http_job *j = list;
        list = j->next_done;
        j->next_done = NULL;
        job_done(j);
    }
}

/* The handler's worker writes its response itself: it takes the connection role when free and
 * sends (then parses the connection's next pipelined request, if any). When the role is taken,
 * the response goes on done_stack for the holder (role_release), so a handler never waits for
 * another thread's I/O. */
static void job_run(http_job *j) {
    void *r = j->handler(j->handler_env, j->method, j->path, j->headers, j->body);
    serialise(j, r);
    if (atomic_load(&shutting_down)) {
        j->response = NULL;
        return;
    }
    if (pthread_mutex_trylock(&conn_role) == 0) {
        job_done(j);
        role_release();
        return;
    }
    http_job *top = atomic_load_explicit(&done_stack, memory_order_relaxed);
    do {
        j->next_done = top;
    } while (!atomic_compare_exchange_weak_explicit(&done_stack, &top, j, memory_order_seq_cst, memory_order_relaxed));
    /* The holder may have let go between the two tries and missed the push: try once more. */
    if (pthread_mutex_trylock(&conn_role) == 0) {
        drain_done();
        role_release();
    }
}

/* ---- the poller and its watchdog ------------------------------------------------------------- */

/* Idle fiber workers poll the connections (osp_idle_poller, runtime.h): the one holding the
 * scheduler's poller role waits in the poll set (http_poll.c), then reads, parses and queues the
 * requests it finds, and the runner that takes them runs next on the same worker, which writes
 * the responses too: a busy server reads, handles and answers on one thread with no hand-off. */
#define POLL_EVENTS_MAX 256
static struct epoll_event poll_events[POLL_EVENTS_MAX]; /* the poller role's holder only */
static int poll_count;
static atomic_int listening_servers;
/* Returns from the poller's wait (the watchdog's sign of activity). */
static _Atomic uint64_t poll_returns;

/* The watchdog: a timer on the I/O loop, every STALL_CHECK_MS while the HTTP server is active,
 * for what no worker can see while every awake one runs a long handler: requests queued behind
 * a computing runner (another runner is started), and the poller role left vacant since its
 * previous look (an idle worker is woken to take it; due deadlines are run meanwhile). It stops
 * after a look that found nothing to do and no activity, so an idle server has no periodic
 * wake-up; the poller asks for it again (one loop wake-up) when it leaves its wait. */
static osp_ws_timer watchdog_timer; /* I/O loop only */
static atomic_bool watchdog_on;     /* armed, or asked for */
static atomic_bool watchdog_asked;
static uint64_t watchdog_seen_returns, watchdog_seen_taken; /* I/O loop only */

static void watchdog_ask(void) {
    if (atomic_load(&watchdog_on) || atomic_exchange(&watchdog_on, true)) return;
    atomic_store(&watchdog_asked, true);
    osp_ws_loop_wake();
}

static void watchdog(osp_ws_timer *t) {
    pthread_mutex_lock(&runq_lock);
    bool queued = runq_head != NULL;
    bool start = queued && runq_taken == runq_seen_taken && runners_unstarted == 0;
    runq_seen_taken = runq_taken;
    if (start) runners_unstarted++;
    pthread_mutex_unlock(&runq_lock);
    if (start) start_runner(); /* from the I/O loop: queued, and an idle worker is woken */
    /* A runner waiting in the scheduler's queue behind a long fiber gets a worker too. */
    bool fibers_queued = osp_sched_nudge();
    uint64_t taken;
    bool vacant = !osp_sched_poller_held(&taken) && atomic_load(&listening_servers) > 0;
    if (vacant && taken == watchdog_seen_taken) {
        osp_sched_wake_poller();
        role_take();
        osp_http_deadlines_run(loop_now_ms());
        role_release();
    }
    watchdog_seen_taken = taken;
    uint64_t returns = atomic_load(&poll_returns);
    bool active = returns != watchdog_seen_returns;
    watchdog_seen_returns = returns;
    if (queued || fibers_queued || vacant || active) {
        osp_ws_timer_arm(t, STALL_CHECK_MS);
        return;
    }
    atomic_store(&watchdog_on, false);
    /* A return counted after the look above found the watchdog still on and asked no one. */
    if (atomic_load(&poll_returns) != returns && !atomic_exchange(&watchdog_on, true)) osp_ws_timer_arm(t, STALL_CHECK_MS);
}

static void http_wake(void) {
    if (chained_wake_hook) chained_wake_hook();
    if (osp_ws_loop_current() != osp_ws_loop_main()) return; /* the watchdog lives on the main loop */
    if (atomic_exchange(&watchdog_asked, false) && !osp_ws_timer_armed(&watchdog_timer)) osp_ws_timer_arm(&watchdog_timer, STALL_CHECK_MS);
}

static bool poller_wanted(void) { return atomic_load(&listening_servers) > 0; }

static int poller_wait(int64_t until_ns) {
    /* Rounded up: waking before a fiber's deadline would only poll again. */
    uint64_t until_ms = until_ns < 0 ? 0 : (uint64_t)until_ns / 1000000u + 1;
    poll_count = osp_http_poll_wait(poll_events, POLL_EVENTS_MAX, until_ms);
    atomic_fetch_add(&poll_returns, 1);
    /* This worker may now run a long fiber: somebody must notice if it does. */
    watchdog_ask();
    uint64_t next = osp_http_deadlines_next();
    return poll_count > 0 || (next != 0 && next <= osp_ws_now_ms());
}

static void poller_process(void) {
    role_take();
    for (int i = 0; i < poll_count; i++) {
        http_conn *c = poll_events[i].data.ptr;
        /* Closed (or handed over) since the wait collected the event: buried, not yet freed. */
        if (c->watch.events == 0) continue;
        conn_event(c, poll_events[i].events);
    }
    poll_count = 0;
    osp_http_deadlines_run(loop_now_ms());
    /* No event collected by this role's holder names them any more; the next wait cannot. */
    while (graveyard) {
        http_conn *c = graveyard;
        graveyard = c->next;
        conn_free(c);
    }
    role_release();
}

static void poller_interrupt(void) { osp_http_poll_interrupt(); }

static const osp_idle_poller http_poller = {poller_wanted, poller_wait, poller_process, poller_interrupt};

/* ---- listen / stop -------------------------------------------------------------------------- */

typedef struct {
    http_server *s;
    char err[256];
    bool ok;
} listen_args;

static void listen_on_loop(void *arg) {
    listen_args *a = arg;
    http_server *s = a->s;
    if (!wake_hook_installed) {
        if (osp_http_poll_init() != 0) {
            snprintf(a->err, sizeof a->err, "cannot create the HTTP poll set: %s", strerror(errno));
            return;
        }
        wake_hook_installed = true;
        chained_wake_hook = osp_ws_loop_wake_hook;
        osp_ws_loop_wake_hook = http_wake;
        osp_ws_timer_init(&watchdog_timer, watchdog);
        osp_sched_set_idle_poller(&http_poller);
    }
    int fd = osp_ws_net_listen(s->address, s->port, a->err, sizeof a->err);
    if (fd < 0) return;
    s->listen_watch.fd = fd;
    s->listen_watch.on_event = server_accept;
    if (osp_ws_watch_set(&s->listen_watch, EPOLLIN) != 0) {
        snprintf(a->err, sizeof a->err, "cannot watch the listening socket: %s", strerror(errno));
        close(fd);
        s->listen_watch.fd = -1;
        return;
    }
    a->ok = true;
}

static void stop_on_loop(void *arg) {
    http_server *s = arg;
    if (s->listen_watch.fd >= 0) {
        (void)osp_ws_watch_set(&s->listen_watch, 0);
        close(s->listen_watch.fd);
        s->listen_watch.fd = -1;
    }
    role_take();
    while (s->conns) {
        http_conn *c = s->conns;
        conn_close(c);
        settle(c);
    }
    role_release();
}

/* A server stopped listening: the poller looks again whether it is still wanted. */
static void listening_ended(void) {
    atomic_fetch_sub(&listening_servers, 1);
    osp_http_poll_interrupt();
}

static void http_shutdown(void) {
    atomic_store(&shutting_down, true);
    pthread_mutex_lock(&servers_mutex);
    int64_t n = server_count;
    pthread_mutex_unlock(&servers_mutex);
    for (int64_t i = 0; i < n; i++) {
        http_server *s = servers[i];
        /* A listen in progress (STARTING) finds the server stopped and closes its socket. */
        if (atomic_exchange(&s->state, HTTP_STOPPED) != HTTP_LISTENING) continue;
        if (osp_ws_loop_running()) osp_ws_loop_call(stop_on_loop, s);
        listening_ended();
    }
}

static void set_ws_path(void *p) {
    struct { http_server *s; const char *path; int64_t id; } *a = p;
    role_take(); /* read by the role's holder (hand_over_websocket) */
    snprintf(a->s->ws_path, sizeof a->s->ws_path, "%s", a->path);
    a->s->ws_server_id = a->id;
    role_release();
}

OspResult osp_http_listen(int64_t server_id, osp_http_handler_fn handler, void *handler_env) {
    static const char fn[] = "httpListen";
    http_server *s = server_get(server_id);
    if (s == NULL) return osp_result_errorf("%s: no HTTP server with id %" PRId64, fn, server_id);
    if (handler == NULL) return osp_result_errorf("%s: the handler is null", fn);
    int prev = HTTP_CREATED;
    if (!atomic_compare_exchange_strong(&s->state, &prev, HTTP_STARTING)) {
        if (prev == HTTP_STOPPED) return osp_result_errorf("%s: server %" PRId64 " was stopped; create a new one", fn, server_id);
        return osp_result_errorf("%s: server %" PRId64 " is already listening", fn, server_id);
    }
    OspResult err;
    if (!osp_ws_runtime_ensure(fn, &err)) {
        prev = HTTP_STARTING; /* back to created, unless a stop came meanwhile */
        (void)atomic_compare_exchange_strong(&s->state, &prev, HTTP_CREATED);
        return err;
    }
    pthread_mutex_lock(&servers_mutex);
    if (!shutdown_hook_set) {
        shutdown_hook_set = true;
        osp_rt_at_shutdown(http_shutdown);
    }
    pthread_mutex_unlock(&servers_mutex);
    s->handler = handler;
    s->handler_env = handler_env;
    listen_args a = {s, "", false};
    osp_ws_loop_call(listen_on_loop, &a);
    if (!a.ok) {
        prev = HTTP_STARTING;
        (void)atomic_compare_exchange_strong(&s->state, &prev, HTTP_CREATED);
        return osp_result_errorf("%s: cannot listen on %s:%d: %s", fn, s->address, s->port, a.err);
    }
    /* Requests may arrive at any time: fibers waiting for them are not deadlocked. Taken before
     * the server is seen listening, so a stop never releases a hold not yet taken. */
    osp_sched_hold_external(1);
    /* Idle workers poll from now on (counted before the server is seen listening, so a stop
     * never uncounts a server not yet counted). */
    atomic_fetch_add(&listening_servers, 1);
    prev = HTTP_STARTING;
    if (!atomic_compare_exchange_strong(&s->state, &prev, HTTP_LISTENING)) {
        /* Stopped (httpStopServer, shutdown) while it started: that stop left the socket to us. */
        if (osp_ws_loop_running()) osp_ws_loop_call(stop_on_loop, s);
        listening_ended();
        osp_sched_hold_external(-1);
        s->handler_env = NULL;
        return osp_result_errorf("%s: server %" PRId64 " was stopped while it started listening", fn, server_id);
    }
    return osp_result_success(0);
}

OspResult osp_http_stop_server(int64_t server_id) {
    static const char fn[] = "httpStopServer";
    http_server *s = server_get(server_id);
    if (s == NULL) return osp_result_errorf("%s: no HTTP server with id %" PRId64, fn, server_id);
    int prev = atomic_exchange(&s->state, HTTP_STOPPED);
    if (prev == HTTP_STOPPED) return osp_result_errorf("%s: server %" PRId64 " is already stopped", fn, server_id);
    if (prev == HTTP_LISTENING) {
        osp_ws_loop_call(stop_on_loop, s);
        listening_ended();
        osp_sched_hold_external(-1);
    }
    /* HTTP_STARTING: the listening thread finds it stopped, closes its socket and lets go of the
     * handler; the loop may still dispatch to it until then. */
    if (prev != HTTP_STARTING) s->handler_env = NULL;
    /* Its WebSocket path stops with it (that server has no socket of its own). */
    if (s->ws_server_id != 0) (void)osp_ws_stop_server(s->ws_server_id);
    return osp_result_success(0);
}

OspResult osp_http_server_websocket(int64_t server_id, const char *path) {
    static const char fn[] = "httpServerWebSocket";
    http_server *s = server_get(server_id);
    if (s == NULL) return osp_result_errorf("%s: no HTTP server with id %" PRId64, fn, server_id);
    if (atomic_load(&s->state) == HTTP_STOPPED) return osp_result_errorf("%s: server %" PRId64 " was stopped", fn, server_id);
    if (path == NULL || path[0] != '/') return osp_result_errorf("%s: the path must start with /, got \"%s\"", fn, path ? path : "");
    OspResult refused;
    if (osp_str_refuse_nul(fn, "path", path, &refused)) return refused;
    if (strlen(path) >= sizeof s->ws_path) return osp_result_errorf("%s: the path is too long", fn);
    if (strchr(path, '?') != NULL) return osp_result_errorf("%s: the path must not contain a query (?)", fn);
    if (s->ws_server_id != 0) return osp_result_errorf("%s: server %" PRId64 " already serves WebSockets on %s", fn, server_id, s->ws_path);
    /* s->address is a C array: the WebSocket server takes Strings (length-prefixed). */
    OspResult r = osp_ws_create_attached_server(s->port, osp_gc_strdup_c(s->address), path);
    if (r.tag != OSP_RESULT_SUCCESS) return r;
    /* Set under the connection role (set_ws_path): its holder reads these fields. */
    struct { http_server *s; const char *path; int64_t id; } a = {s, path, r.value};
    osp_ws_loop_call(set_ws_path, &a);
    return r;
}

OspResult osp_http_server_set_limit(int64_t server_id, const char *name, int64_t value) {
    static const char fn[] = "httpServerSetLimit";
    http_server *s = server_get(server_id);
    if (s == NULL) return osp_result_errorf("%s: no HTTP server with id %" PRId64, fn, server_id);
    int state = atomic_load(&s->state);
    if (state != HTTP_CREATED) return osp_result_errorf("%s: set limits before httpListen (server %" PRId64 " is %s)", fn, server_id, state == HTTP_STOPPED ? "stopped" : "listening");
    const char *bad = osp_http_limit_set(&s->limits, name, value);
    if (bad) return osp_result_errorf("%s: %s", fn, bad);
    return osp_result_success(0);
}
