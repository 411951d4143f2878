/*
 * The I/O loops: OSPREY_IO_THREADS threads (default: one per online CPU), each running an epoll
 * loop for the connections pinned to it (docs/WEBSOCKET-RUNTIME.md#loops-per-core: no thread
 * per connection). Loop 0, the main loop, also runs the HTTP servers, the client connections
 * and the cluster bus. A WebSocket server's listening socket has its own acceptor thread
 * (ws_acceptor.c), which touches each accepted socket only until it posts it to a loop. Other
 * threads never touch sockets or connection state: they hand work to a loop
 * with osp_ws_loop_call_on (runs a function there and waits), osp_ws_loop_post (queues it) or a
 * layer's own posted records; an eventfd wakes the loop. Code already on that loop runs the
 * function directly. No Osprey code runs here: message handlers run as fibers (ws_inbox.c).
 *
 * Timers (handshake, close and idle deadlines) sit in each loop's binary min-heap keyed by
 * deadline.
 *
 * The threads are created lazily with pthread_create, which runtime.h maps to GC_pthread_create
 * (GC_THREADS), so Osprey handlers they run may allocate on the collected heap.
 */
#ifndef OSP_WS_LOOP_H
#define OSP_WS_LOOP_H

#include "ws_buf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The loop threads' name (pthread_setname_np): message handlers never run on them. */
#define OSP_WS_LOOP_THREAD_NAME "osprey-ws-io"

/* A file descriptor the loop watches; embed it in the owning object. */
typedef struct osp_ws_watch {
    int fd;
    uint32_t events; /* EPOLLIN/EPOLLOUT currently requested (0: not registered) */
    void (*on_event)(struct osp_ws_watch *w, uint32_t events);
} osp_ws_watch;

typedef struct osp_ws_timer {
    uint64_t deadline_ms; /* CLOCK_MONOTONIC milliseconds */
    uint32_t heap_index;  /* OSP_WS_TIMER_IDLE when not armed */
    uint32_t loop;        /* the index of the loop whose heap holds it (set when armed) */
    void (*on_fire)(struct osp_ws_timer *t);
} osp_ws_timer;

/* heap_index of a timer that is not armed. */
#define OSP_WS_TIMER_IDLE UINT32_MAX

struct osp_ws_conn;
struct osp_ws_command;
struct osp_ws_inbox;

/* The most I/O loops a process runs (OSPREY_IO_THREADS is clamped to it). */
#define OSP_WS_MAX_LOOPS 64

/* The shared receive buffer of one loop (ws_conn.c parses in place from it). */
#define OSP_WS_READ_BUFFER_SIZE (64 * 1024)

/* One I/O loop: a thread with its epoll set, its command queue and timer heap, and the state
 * the layers above keep per loop instead of per process (what a connection shares with the
 * other connections of its loop). Every connection belongs to exactly one loop; everything
 * below is touched by that loop's thread only unless noted. */
typedef struct osp_ws_loop {
    unsigned index; /* 0 … osp_ws_loop_count() - 1 */

    /* ---- loop.c -------------------------------------------------------------------------- */
    /* `mutex` guards the command queue and `running`; the loop never holds it while running a
     * command or a handler. */
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    struct osp_ws_command *queue_head, *queue_tail;
    bool running;
    bool stop_requested;
    pthread_t thread;
    int epoll_fd;
    osp_ws_watch wake_watch;
    /* osp_ws_loop_wake_on writes the eventfd only while the loop sleeps in epoll_wait (or is
     * about to): otherwise it raises wake_requested, which the loop looks at before it sleeps
     * again. Under load the loop is mostly awake, so most wake-ups then cost neither a write,
     * nor a read, nor an extra epoll_wait. Both sequentially consistent: a waker that finds
     * `sleeping` false raised wake_requested before the loop's look at it. Any thread. */
    atomic_bool sleeping;
    atomic_bool wake_requested;
    osp_ws_timer **heap;
    size_t heap_len, heap_cap;

    /* ---- ws_conn.c (docs/WEBSOCKET-RUNTIME.md#loops-per-core) ---------------------------- */
    /* The receive buffer every connection of the loop reads into and parses in place. */
    uint8_t read_buffer[OSP_WS_READ_BUFFER_SIZE];
    /* The output ("cork") buffer: the frames a connection produces while it is being served
     * (echoes, pongs, the 101) are built here and sent with one send(); only what the socket
     * does not take is copied into the connection's own queue. Owned by at most one
     * connection at a time, and only while that connection's own queue is empty (order). */
    osp_ws_buf cork;
    struct osp_ws_conn *cork_owner;
    /* Connections with queued output sent once, at the end of the loop iteration. */
    struct osp_ws_conn *dirty_head;
    /* Connections whose reading waits for room in the process memory budget. */
    struct osp_ws_conn *budget_head;
    /* The broadcast log of this iteration (osp_ws_bcast_append): encoded frames shared by
     * their recipients, who hold offsets into it; emptied once nothing refers to it. */
    osp_ws_buf bc_log;
    size_t bc_refs;
    bool bc_wipe; /* a recipient has the per-message wipe option */
    /* While handler calls are unfinished, the flush of broadcast frames waits for them until
     * this deadline (osp_ws_now_ms; 0: not holding), the timer waking the loop at it
     * (ws_conn.c, bc_hold). */
    uint64_t bc_hold_until;
    osp_ws_timer bc_hold_timer;
    /* Destroyed connections, freed at the end of the iteration. */
    struct osp_ws_conn *zombie_conns;
    /* Unfinished server TLS handshakes (docs/WEBSOCKET-RUNTIME.md#tls-handshakes), oldest
     * first, and the handshake work done in this iteration. */
    size_t tls_in_flight;
    struct osp_ws_conn *tls_oldest, *tls_newest;
    uint64_t tls_step_ns;
    unsigned tls_step_count;
    /* Client connections with frames posted by other threads (osp_ws_tx_lock). */
    struct osp_ws_conn *tx_list;

    /* ---- ws_inbox.c ---------------------------------------------------------------------- */
    /* Inboxes whose handlers caught up, so their connection may read again (inbox lock). */
    struct osp_ws_inbox *resume_head;

    /* ---- ws_loop_queue.c ----------------------------------------------------------------- */
    /* Records (sends, broadcasts, adopted sockets, stops) posted by other threads
     * (osp_ws_tx_lock), and the loop's buffer they are swapped into when it takes them. */
    osp_ws_buf post_pend;
    osp_ws_buf post_spare;
    /* Records taken from post_pend are being performed (no direct send may overtake them):
     * set under osp_ws_tx_lock, cleared by the loop when they are done. */
    atomic_bool post_draining;
} osp_ws_loop;

/* Someone waiting (on another thread) for the loop to finish something. */
typedef struct osp_ws_waiter {
    bool done;
    struct osp_ws_waiter *next; /* for owners that keep a list of waiters */
} osp_ws_waiter;

/* Starts the loop threads if they are not running. 0, or -1 with a reason in err. */
int osp_ws_loop_start(char *err, size_t errlen);
bool osp_ws_loop_running(void);
/* True on a loop thread (any loop's). */
bool osp_ws_loop_on_thread(void);
/* The loop whose thread this is; NULL on any other thread. */
osp_ws_loop *osp_ws_loop_current(void);
/* The first loop: the one servers are controlled from and client connections live on. Valid
 * from osp_ws_loop_start until the loops are released. */
osp_ws_loop *osp_ws_loop_main(void);
/* How many loops run (1 until started). */
unsigned osp_ws_loop_count(void);
/* Loop number i (0 ≤ i < osp_ws_loop_count()). */
osp_ws_loop *osp_ws_loop_at(unsigned i);

/* Runs fn(arg) on the main loop's thread and returns true when it has run (directly when
 * already there); false, without running it, when the loop is not running or is being stopped
 * (the caller answers with an Err: the program is exiting). */
bool osp_ws_loop_call(void (*fn)(void *), void *arg);
/* The same on loop L. A loop thread calling another loop this way waits for it: only the
 * shutdown and rare queries do, never two loops at each other. */
bool osp_ws_loop_call_on(osp_ws_loop *L, void (*fn)(void *), void *arg);
/* Queues fn(arg) on loop L without waiting (any thread, L's own included: it runs at L's next
 * wake-up, after what was queued before it). false (not queued) when L is not running or out
 * of memory. */
bool osp_ws_loop_post(osp_ws_loop *L, void (*fn)(void *), void *arg);

/* Waiters: the loop marks one done; another thread sleeps until it is. */
void osp_ws_waiter_signal(osp_ws_waiter *w);
void osp_ws_waiter_wait(osp_ws_waiter *w);
/* Signals every waiter of a list linked through `next` and empties the list. */
void osp_ws_waiters_signal_all(osp_ws_waiter **list);

/* Watches (loop thread only: a watch is registered with, and changed by, the calling thread's
 * loop; its owner never moves to another loop). set_events with 0 removes the fd from epoll.
 * 0 or -1 (errno). */
int osp_ws_watch_set(osp_ws_watch *w, uint32_t events);
/* For an edge-triggered watch (EPOLLET): asks epoll to report the current readiness again, as a
 * fresh edge at the next wait (a reader that stopped before draining the socket). 0 or -1. */
int osp_ws_watch_rearm(osp_ws_watch *w);

/* Timers (loop thread only: armed on the calling loop, cancelled on the loop that holds it). */
void osp_ws_timer_init(osp_ws_timer *t, void (*on_fire)(osp_ws_timer *));
void osp_ws_timer_arm(osp_ws_timer *t, uint64_t delay_ms);
void osp_ws_timer_cancel(osp_ws_timer *t);
bool osp_ws_timer_armed(const osp_ws_timer *t);

uint64_t osp_ws_now_ms(void);

/* Called by every loop at the end of every iteration (after events, commands and timers) so the
 * WebSocket layer can free objects whose teardown was deferred (osp_ws_loop_current() names
 * the loop). Set once before start. */
extern void (*osp_ws_loop_reap_hook)(void);
/* Called on the loop thread after every osp_ws_loop_wake / osp_ws_loop_wake_on (before the
 * queued commands run, when the wake-up came with commands). */
extern void (*osp_ws_loop_wake_hook)(void);
/* Wakes the main loop (eventfd) without posting a command; any thread. */
void osp_ws_loop_wake(void);
/* Wakes loop L. */
void osp_ws_loop_wake_on(osp_ws_loop *L);

/* Asks the loop threads to exit, joins them and releases their descriptors (not from a loop
 * thread). Nothing may still be watched. After it (from its first moment) commands are
 * refused and the loop never starts again. */
void osp_ws_loop_stop(void);
/* osp_ws_loop_call for the shutdown itself: runs even after osp_ws_loop_close (while the loop
 * thread still runs), when every other caller is refused. */
bool osp_ws_loop_call_closing(void (*fn)(void *), void *arg);
/* The same on loop L. */
bool osp_ws_loop_call_closing_on(osp_ws_loop *L, void (*fn)(void *), void *arg);
/* After osp_ws_loop_stop (the threads are joined): calls fn on the calling thread once per
 * loop, each time as that loop (osp_ws_loop_current() returns it), so the layers' end-of-
 * iteration and release hooks free what each loop still holds. */
void osp_ws_loop_each_stopped(void (*fn)(void));
/* After the layers have released their parts: wipes what the loops themselves held. */
void osp_ws_loop_release(void);
/* True once the loop was stopped or closed: it will never run again. Any thread. */
bool osp_ws_loop_closed(void);
/* Refuses every further command except osp_ws_loop_call_closing (shutdown starting), and any
 * later start. Commands queued before it still run, in order. */
void osp_ws_loop_close(void);

#endif /* OSP_WS_LOOP_H */
