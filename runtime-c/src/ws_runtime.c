/*
 * Lazy start-up and shutdown of the WebSocket subsystem, and the loop hooks of its layers.
 *
 * The modules above it (ws_conn.c, ws_inbox.c, ws_server.c) register an osp_ws_layer from an
 * ELF constructor: what each does at every eventfd wake-up, at the end of every loop iteration
 * and at shutdown. So this module calls none of them, and the runtime's module graph has no
 * cycle (tests/runtime/module-graph.test.ts).
 *
 * Shutdown (registered with osp_rt_at_shutdown on first use): client connections are closed
 * with 1000 and servers stopped with 1001 (their connections closed), each close bounded by
 * the close timeout; then the loop thread is joined and everything is freed.
 */
#include "ws_internal.h"

#include <stdio.h>
#include <stdlib.h>

#define OSP_WS_MAX_LAYERS 8
static const osp_ws_layer *layers[OSP_WS_MAX_LAYERS]; /* by rank, lowest first */
static size_t layer_count;

/* Connections of every loop; live_lock guards the count and the shutdown's waiter. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static int live_conns;
static osp_ws_waiter *shutdown_waiter;
static osp_ws_timer shutdown_timer = {0, OSP_WS_TIMER_IDLE, 0, NULL};

void osp_ws_runtime_add_layer(const osp_ws_layer *layer) {
    /* ELF constructors: one thread, before main. */
    if (layer_count == OSP_WS_MAX_LAYERS) {
        fprintf(stderr, "osprey runtime: internal error: too many WebSocket layers\n");
        abort();
    }
    size_t at = layer_count++;
    while (at > 0 && layers[at - 1]->rank > layer->rank) {
        layers[at] = layers[at - 1];
        at--;
    }
    layers[at] = layer;
}

/* End of every loop iteration: deferred flushes, then freeing what was torn down. */
static void reap(void) {
    for (size_t i = 0; i < layer_count; i++)
        if (layers[i]->iteration_end) layers[i]->iteration_end();
}

/* Every eventfd wake-up, before the queued commands: work the program's threads posted. */
static void on_loop_wake(void) {
    for (size_t i = 0; i < layer_count; i++)
        if (layers[i]->wake) layers[i]->wake();
}

void osp_ws_live_conns_add(int delta) {
    pthread_mutex_lock(&live_lock);
    live_conns += delta;
    osp_ws_waiter *w = live_conns == 0 ? shutdown_waiter : NULL;
    if (w) shutdown_waiter = NULL;
    pthread_mutex_unlock(&live_lock);
    if (w) osp_ws_waiter_signal(w);
}

/* ---- start-up ------------------------------------------------------------------------------ */

static void ws_shutdown(void);

static pthread_mutex_t start_mutex = PTHREAD_MUTEX_INITIALIZER;

OspResult osp_ws_shut_down_error(const char *fn) {
    return osp_result_errorf("%s: the WebSocket runtime has shut down (the program is exiting)", fn);
}

bool osp_ws_runtime_ensure(const char *fn, OspResult *err) {
    if (osp_ws_loop_running()) return true;
    if (osp_ws_loop_closed()) {
        *err = osp_ws_shut_down_error(fn);
        return false;
    }
    pthread_mutex_lock(&start_mutex);
    (void)osp_ws_limits_get(); /* read the environment once, before the thread starts */
    osp_ws_loop_reap_hook = reap;
    osp_rt_on_loop_thread = osp_ws_loop_on_thread;
    osp_ws_loop_wake_hook = on_loop_wake;
    char why[160];
    /* Before the loop thread exists, so it inherits the blocked termination signals. */
    static bool signals_installed;
    if (!signals_installed) {
        osp_rt_install_graceful_signals();
        signals_installed = true;
    }
    int rc = osp_ws_loop_start(why, sizeof why);
    if (rc == 0) osp_rt_at_shutdown(ws_shutdown);
    pthread_mutex_unlock(&start_mutex);
    if (rc != 0) {
        *err = osp_ws_loop_closed() ? osp_ws_shut_down_error(fn)
                                    : osp_result_errorf("%s: cannot start the I/O loops: %s", fn, why);
        return false;
    }
    return true;
}

OspResult osp_ws_loop_call_waited(const char *fn, int64_t id, void (*run)(void *)) {
    OspResult err;
    if (!osp_ws_runtime_ensure(fn, &err)) return err;
    osp_ws_waited_call call = {id, {false, NULL}, !osp_ws_loop_on_thread(), {0, 0}};
    if (!osp_ws_loop_call(run, &call)) return osp_ws_shut_down_error(fn);
    if (call.wait && call.result.tag == OSP_RESULT_SUCCESS) osp_ws_waiter_wait(&call.waiter);
    return call.result;
}

/* ---- shutdown ------------------------------------------------------------------------------ */

static void on_shutdown_timer(osp_ws_timer *t) {
    (void)t;
    /* Every close has its own deadline; this is only a backstop. */
    for (size_t i = 0; i < layer_count; i++)
        if (layers[i]->shutdown_overdue) layers[i]->shutdown_overdue();
}

static void begin_shutdown(void *arg) {
    osp_ws_waiter *w = arg;
    osp_ws_timer_init(&shutdown_timer, on_shutdown_timer);
    /* Highest layer first: servers stop (closing their connections) before anything below. */
    uint64_t longest = 0;
    for (size_t i = layer_count; i-- > 0;) {
        if (!layers[i]->shutdown_begin) continue;
        uint64_t t = layers[i]->shutdown_begin();
        if (t > longest) longest = t;
    }
    pthread_mutex_lock(&live_lock);
    bool none = live_conns == 0;
    if (!none) shutdown_waiter = w;
    pthread_mutex_unlock(&live_lock);
    if (none) {
        osp_ws_waiter_signal(w);
        return;
    }
    /* Backstop after the longest close deadline of any live connection (limits are per
     * connection: websocketServerSetLimit / websocketSetDefaultLimit). */
    osp_ws_timer_arm(&shutdown_timer, longest + 1000);
}

static void end_shutdown(void *arg) {
    (void)arg;
    osp_ws_timer_cancel(&shutdown_timer);
    pthread_mutex_lock(&live_lock);
    shutdown_waiter = NULL;
    pthread_mutex_unlock(&live_lock);
}

/* Once per loop, as that loop (osp_ws_loop_each_stopped). */
static void release_layers(void) {
    for (size_t i = 0; i < layer_count; i++)
        if (layers[i]->released) layers[i]->released();
}

static void ws_shutdown(void) {
    if (!osp_ws_loop_running()) {
        osp_ws_loop_close(); /* never started: it must not start during or after the exit */
        return;
    }
    if (osp_ws_loop_on_thread()) {
        /* osp_rt_shutdown called on the loop thread (no Osprey code runs there, but a C caller
         * could): the thread cannot join itself. */
        fprintf(stderr, "osprey runtime: program exit requested from a WebSocket handler; "
                        "connections are dropped without a closing handshake\n");
        return;
    }
    /* From here on calls from other threads get an Err: nothing can be created behind the
     * shutdown's back (it would never be closed or freed). Commands already queued run first. */
    osp_ws_loop_close();
    osp_ws_waiter w = {false, NULL};
    if (osp_ws_loop_call_closing(begin_shutdown, &w)) {
        osp_ws_waiter_wait(&w);
        (void)osp_ws_loop_call_closing(end_shutdown, NULL);
    }
    osp_ws_loop_stop();
    /* Then the TLS handshake threads: a step they finish goes back to its loop's list, which
     * the reap below empties (ws_conn.c frees a connection only once its step is back). */
    osp_ws_tls_pool_stop();
    /* The loop threads are gone: what they owned can be freed from here, loop by loop. */
    osp_ws_loop_each_stopped(reap);
    osp_ws_loop_each_stopped(release_layers);
    osp_ws_loop_release();
    osp_ws_registry_release();
}
