/*
 * The WebSocket runtime thread: ONE thread running an epoll loop for every server, accepted
 * connection and client connection of the process (docs/WEBSOCKET-RUNTIME.md#one-event-loop: no thread per
 * connection). Other threads never touch sockets or connection state: they hand work to the
 * loop with osp_ws_loop_call, which runs a function on the loop thread and waits for it (an
 * eventfd wakes the loop). Code already on the loop thread runs the function directly. No
 * Osprey code runs here: message handlers run as fibers (ws_inbox.c).
 *
 * Timers (handshake, close and idle deadlines) sit in a binary min-heap keyed by deadline.
 *
 * The thread is created lazily with pthread_create, which runtime.h maps to GC_pthread_create
 * (GC_THREADS), so Osprey handlers it runs may allocate on the collected heap.
 */
#ifndef OSP_WS_LOOP_H
#define OSP_WS_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The loop thread's name (pthread_setname_np): message handlers never run on it. */
#define OSP_WS_LOOP_THREAD_NAME "osprey-ws-io"

/* A file descriptor the loop watches; embed it in the owning object. */
typedef struct osp_ws_watch {
    int fd;
    uint32_t events; /* EPOLLIN/EPOLLOUT currently requested (0: not registered) */
    void (*on_event)(struct osp_ws_watch *w, uint32_t events);
} osp_ws_watch;

typedef struct osp_ws_timer {
    uint64_t deadline_ms; /* CLOCK_MONOTONIC milliseconds */
    size_t heap_index;    /* SIZE_MAX when not armed */
    void (*on_fire)(struct osp_ws_timer *t);
} osp_ws_timer;

/* Someone waiting (on another thread) for the loop to finish something. */
typedef struct osp_ws_waiter {
    bool done;
    struct osp_ws_waiter *next; /* for owners that keep a list of waiters */
} osp_ws_waiter;

/* Starts the loop thread if it is not running. 0, or -1 with a reason in err. */
int osp_ws_loop_start(char *err, size_t errlen);
bool osp_ws_loop_running(void);
/* True on the loop thread itself. */
bool osp_ws_loop_on_thread(void);

/* Runs fn(arg) on the loop thread and returns true when it has run (directly when already
 * there); false, without running it, when the loop is not running or is being stopped (the
 * caller answers with an Err: the program is exiting). */
bool osp_ws_loop_call(void (*fn)(void *), void *arg);

/* Waiters: the loop marks one done; another thread sleeps until it is. */
void osp_ws_waiter_signal(osp_ws_waiter *w);
void osp_ws_waiter_wait(osp_ws_waiter *w);
/* Signals every waiter of a list linked through `next` and empties the list. */
void osp_ws_waiters_signal_all(osp_ws_waiter **list);

/* Watches (loop thread only). set_events with 0 removes the fd from epoll. 0 or -1 (errno). */
int osp_ws_watch_set(osp_ws_watch *w, uint32_t events);
/* For an edge-triggered watch (EPOLLET): asks epoll to report the current readiness again, as a
 * fresh edge at the next wait (a reader that stopped before draining the socket). 0 or -1. */
int osp_ws_watch_rearm(osp_ws_watch *w);

/* Timers (loop thread only). */
void osp_ws_timer_init(osp_ws_timer *t, void (*on_fire)(osp_ws_timer *));
void osp_ws_timer_arm(osp_ws_timer *t, uint64_t delay_ms);
void osp_ws_timer_cancel(osp_ws_timer *t);
bool osp_ws_timer_armed(const osp_ws_timer *t);

uint64_t osp_ws_now_ms(void);

/* Called by the loop at the end of every iteration (after events, commands and timers) so the
 * WebSocket layer can free objects whose teardown was deferred. Set once before start. */
extern void (*osp_ws_loop_reap_hook)(void);
/* Called on the loop thread after every osp_ws_loop_wake (before the queued commands run, when
 * the wake-up came with commands). */
extern void (*osp_ws_loop_wake_hook)(void);
/* Has the loop call its wake hook soon, without posting a command; any thread. Writes the
 * eventfd only when the loop sleeps in epoll_wait; a loop that is awake finds the request
 * before it sleeps again. */
void osp_ws_loop_wake(void);

/* Asks the loop thread to exit, joins it and releases its descriptors (not from the loop
 * thread). Nothing may still be watched. After it (from its first moment) commands are
 * refused and the loop never starts again. */
void osp_ws_loop_stop(void);
/* osp_ws_loop_call for the shutdown itself: runs even after osp_ws_loop_close (while the loop
 * thread still runs), when every other caller is refused. */
bool osp_ws_loop_call_closing(void (*fn)(void *), void *arg);
/* True once the loop was stopped or closed: it will never run again. Any thread. */
bool osp_ws_loop_closed(void);
/* Refuses every further command except osp_ws_loop_call_closing (shutdown starting), and any
 * later start. Commands queued before it still run, in order. */
void osp_ws_loop_close(void);

#endif /* OSP_WS_LOOP_H */
