/*
 * Internal interface shared by the runtime's modules (not part of the ABI; compiled code never
 * sees it). The ABI itself is in include/osprey_abi.h, generated from runtime-bindings/abi.ts.
 */
#ifndef OSP_RUNTIME_H
#define OSP_RUNTIME_H

/* Boehm GC must see every thread that may touch collected memory: with GC_THREADS defined,
 * gc.h redirects pthread_create to GC_pthread_create in every file that includes this header. */
#define GC_THREADS
#include <gc.h>

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "osprey_abi.h"

/* ---- Results -------------------------------------------------------------------------- */

OspResult osp_result_success(int64_t value);
/* An Error whose message is formatted like printf into garbage-collected memory. */
OspResult osp_result_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- Memory --------------------------------------------------------------------------- */

/* Strings (runtime-bindings/abi.ts, STRING_LAYOUT): a String points at its first byte; the
 * int64_t before it is its byte length and a NUL follows the bytes. It may hold NUL bytes, so
 * C code never asks strlen/strcmp/strstr/printf("%s") about one. */

/* A garbage-collected String holding a copy of `len` bytes: the one way C code makes an Osprey
 * String from bytes it holds (a message, a file, a header), NUL bytes included. */
char *osp_gc_strndup(const char *bytes, size_t len);
/* A String copy of a NUL-terminated C string (an argv entry, strerror text, an extern's result). */
char *osp_gc_strdup_c(const char *text);
/* The byte length of an Osprey String: the one way C code asks, never strlen. */
static inline size_t osp_str_len(const char *s) {
    int64_t len;
    __builtin_memcpy(&len, s - OSP_STRING_HEADER_BYTES, sizeof len);
    return (size_t)len;
}
/* True when the String holds a NUL byte: it cannot go to a C API that takes a path, an address
 * or a name (those APIs would see only the bytes before it); the caller returns an Err. */
bool osp_str_has_nul(const char *s);
/* For a String that goes to a C API (a path, a command, an address, a name): when it holds a NUL
 * byte, sets *err to "FN: the WHAT contains a NUL byte (at byte N), which is not allowed in a
 * WHAT" and returns true. A NULL String passes (the callers report it themselves). */
bool osp_str_refuse_nul(const char *fn, const char *what, const char *s, OspResult *err);
/* A constant String with a length header, for C code that returns a fixed text as a String:
 *   OSP_STATIC_STRING(yes_text, "true");  ...  return yes_text.bytes;                          */
#define OSP_STATIC_STRING(name, literal)                                                         \
    static const struct {                                                                        \
        int64_t length;                                                                          \
        char bytes[sizeof(literal)];                                                             \
    } name = {(int64_t)sizeof(literal) - 1, literal}

/* ---- Lifetime ------------------------------------------------------------------------- */

/* Subsystems that own threads or sockets register a hook that osp_rt_shutdown() runs (in
 * reverse order of registration) before stdout is flushed. At most OSP_MAX_SHUTDOWN_HOOKS. */
#define OSP_MAX_SHUTDOWN_HOOKS 8
void osp_rt_at_shutdown(void (*hook)(void));
/* Set by the WebSocket runtime: true on its event-loop thread, which must never wait for
 * another thread's shutdown hooks (they wait for that very thread). */
extern bool (*osp_rt_on_loop_thread)(void);

/* Once per process (osp_rt_init), before any other thread starts: SIGTERM, SIGINT and SIGHUP
 * (when they have their default disposition) run the shutdown hooks, flush stdout and exit with
 * 128 + the signal number (osp_rt_shutdown_for_signal). A second call finds them blocked and does
 * nothing. */
void osp_rt_install_graceful_signals(void);
#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer builds: the collector's stop-the-world signals TSan can deliver (tsan_gc.c).
 * osp_rt_init calls the first before GC_INIT and the second right after it. */
void osp_rt_tsan_gc_signals_before_init(void);
void osp_rt_tsan_gc_signals_after_init(void);
/* Suspend signals declined so far because they interrupted TSan's runtime (tsan_gc.c). */
uint64_t osp_rt_tsan_gc_suspends_declined(void);
#endif
/* osp_rt_shutdown(128 + signo) for the signal watcher; a concurrent exit of the program then
 * reports the same status. */
int32_t osp_rt_shutdown_for_signal(int signo);

/* Runs fn(arg), which may block for a long time (reading input, waiting for a process or for the
 * WebSocket thread). Called from a fiber, the fiber parks and a helper thread makes the call, so
 * the worker goes on running other fibers; from any other thread, fn runs right there. */
void osp_sched_run_blocking(void (*fn)(void *arg), void *arg);

/* Runs body(envs[i]) for each of the n closures as a new fiber, like osp_sched_submit from any
 * thread, with one scheduler lock acquisition and at most one worker wake-up for the batch (the
 * HTTP server submits every request parsed in one loop iteration at once). */
void osp_sched_submit_many(osp_fiber_body_fn body, void *const *envs, size_t n);
/* Call every few milliseconds after osp_sched_submit_many while it returns true (fibers are
 * still queued): when no fiber was taken from the run queue since the previous call although it
 * holds some (every worker that is awake is busy in a long-running fiber), wakes an idle worker
 * for them. */
bool osp_sched_nudge(void);
/* An idle poller: a worker that runs out of fibers polls a set of sockets itself instead of
 * sleeping on the scheduler's futex (Go's scheduler polls the network the same way), so a busy
 * server reads, runs handlers and writes on one worker with no thread hand-off. At most one
 * worker polls at a time (the poller role); the others sleep as before. The HTTP server
 * (http_server.c) registers one; docs/BENCHMARKS-HTTP.md explains why. */
typedef struct osp_idle_poller {
    /* Whether to poll at all (a server listens); any thread, cheap. */
    bool (*wanted)(void);
    /* Blocks until there is I/O to process (> 0), interrupt() or the CLOCK_MONOTONIC deadline
     * (`until_ns` < 0: none). Called with no lock held, by the poller role's holder only. */
    int (*wait)(int64_t until_ns);
    /* Processes what wait() found, on the worker's own stack, no lock held, still as the
     * poller role's holder. Fibers it starts with osp_sched_submit_here run on this worker. */
    void (*process)(void);
    /* Makes a wait() in progress (or the next one) return at once; any thread. */
    void (*interrupt)(void);
} osp_idle_poller;
/* Installs the idle poller (once; later calls are ignored unless it is the same). */
void osp_sched_set_idle_poller(const osp_idle_poller *p);
/* Whether a worker holds the poller role now, and how many times it was taken so far (a
 * watchdog compares the count between two looks: a role left vacant that long means its last
 * holder is busy in a long handler and no other worker took over). Any thread. */
bool osp_sched_poller_held(uint64_t *taken);
/* Wakes one idle worker to take the vacant poller role (any thread): a watchdog that found it
 * vacant too long. Otherwise the role goes only to a worker that becomes idle while every other
 * worker is idle too. */
void osp_sched_wake_poller(void);
/* osp_sched_submit, except that on a worker outside any fiber (the idle poller's process(), a
 * park hook) the new fiber runs next on that same worker, without waking another one. */
void osp_sched_submit_here(osp_fiber_body_fn body, void *env);
/* From now on, whenever the calling fiber parks (blocks in a channel operation, await, sleep or a
 * blocking call; not when it yields), its worker calls hook(arg) once the fiber is switched out,
 * with no scheduler lock held. The fiber may already run again (on another worker) or even have
 * finished by then, so `arg` must outlive it. The HTTP server's handler runners use it to hand
 * their queue on. No-op outside a fiber. */
void osp_fiber_set_park_hook(void (*hook)(void *arg), void *arg);

/* stdout is block-buffered when it is not a terminal. Call before blocking (sleeping, waiting for
 * another thread, a child process or the network): writes what was printed, if anything. */
void osp_output_flush_pending(void);

/* Serialises writes to stdout and stderr from the main thread and the runtime thread so that
 * lines never interleave. */
void osp_output_lock(void);
void osp_output_unlock(void);

/* ---- WebSocket introspection (not part of the ABI: for tools and tests) --------------- */

enum {
    OSP_WS_STATE_UNKNOWN = -1, /* no such id */
    OSP_WS_STATE_CLOSED = 0,   /* connection closed / server stopped */
    OSP_WS_STATE_OPEN = 1,     /* connection open / server exists */
    OSP_WS_STATE_CLOSING = 2,  /* closing handshake in progress */
};
/* State of a connection or server id. Any thread except from inside osp_rt_shutdown. */
int osp_ws_connection_state(int64_t id);
/* Open (post-handshake) connections of a server; -1 for an unknown or stopped server id. */
int64_t osp_ws_server_open_connections(int64_t server_id);
/* Inside a WebSocket message handler: the id of the connection the message came from; else 0. */
int64_t osp_ws_handler_connection_id(void);

#endif /* OSP_RUNTIME_H */
