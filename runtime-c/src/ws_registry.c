/*
 * Ids, lazy start-up and shutdown of the WebSocket subsystem.
 *
 * Ids: one counter for servers and connections, starting at 1, never reused in a process.
 * Server connections get theirs when the opening handshake succeeds (a TCP connection that
 * never upgrades costs no id). A retired id stays in the table (about 40 bytes) so that later
 * calls can say "already closed" or "was stopped" instead of "unknown", but only the most
 * recent OSP_WS_RETIRED_KEEP of them: older ones are forgotten (then "unknown"), so the table
 * is bounded by live objects plus that many, whatever the number of connections over time.
 *
 * Shutdown (registered with osp_rt_at_shutdown on first use): client connections are closed
 * with 1000 and servers stopped with 1001 (their connections closed), each close bounded by
 * the close timeout; then the loop thread is joined and everything is freed.
 */
#include "ws_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t id; /* 0: empty slot */
    osp_ws_entry entry;
} slot;

/* Open addressing with linear probing; forgotten ids are deleted by backward shifting. */
static slot *table;
static size_t table_cap, table_used;
static int64_t next_id = 1;

/* The retired ids still remembered, oldest first (a ring of osp_ws_retired_keep). */
size_t osp_ws_retired_keep = OSP_WS_RETIRED_KEEP;
static size_t retired_cap;
static int64_t *retired;
static size_t retired_head, retired_count;

static osp_ws_conn *zombie_conns;
static osp_ws_server *zombie_servers;
static int live_conns;
static osp_ws_waiter *shutdown_waiter;
static osp_ws_timer shutdown_timer = {0, SIZE_MAX, NULL};

static size_t slot_of(int64_t id, size_t cap) {
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 17) & (cap - 1);
}

static bool grow(void) {
    size_t cap = table_cap ? table_cap * 2 : 256;
    slot *t = calloc(cap, sizeof *t);
    if (t == NULL) return false;
    for (size_t i = 0; i < table_cap; i++) {
        if (table[i].id == 0) continue;
        size_t j = slot_of(table[i].id, cap);
        while (t[j].id != 0) j = (j + 1) & (cap - 1);
        t[j] = table[i];
    }
    free(table);
    table = t;
    table_cap = cap;
    return true;
}

pthread_mutex_t osp_ws_tx_lock = PTHREAD_MUTEX_INITIALIZER;

int64_t osp_ws_registry_add(osp_ws_kind kind, void *object, int64_t owner) {
    /* websocketSend looks ids up on the program's thread (osp_ws_send): the table must not
     * move or change under it. */
    pthread_mutex_lock(&osp_ws_tx_lock);
    if ((table_used + 1) * 4 >= table_cap * 3 && !grow()) {
        pthread_mutex_unlock(&osp_ws_tx_lock);
        return 0;
    }
    int64_t id = next_id++;
    size_t j = slot_of(id, table_cap);
    while (table[j].id != 0) j = (j + 1) & (table_cap - 1);
    table[j].id = id;
    table[j].entry.kind = kind;
    table[j].entry.object = object;
    table[j].entry.code = 0;
    table[j].entry.owner = owner;
    table_used++;
    pthread_mutex_unlock(&osp_ws_tx_lock);
    return id;
}

static slot *find(int64_t id) {
    if (id <= 0 || table_cap == 0) return NULL;
    size_t j = slot_of(id, table_cap);
    while (table[j].id != 0) {
        if (table[j].id == id) return &table[j];
        j = (j + 1) & (table_cap - 1);
    }
    return NULL;
}

/* Removes a slot and closes the gap (linear probing's backward-shift deletion), so lookups
 * never stop early at a hole. With osp_ws_tx_lock held. */
static void erase(slot *victim) {
    size_t hole = (size_t)(victim - table), mask = table_cap - 1;
    table[hole].id = 0;
    table_used--;
    for (size_t j = (hole + 1) & mask; table[j].id != 0; j = (j + 1) & mask) {
        size_t home = slot_of(table[j].id, table_cap);
        /* Move j into the hole when its home is not cyclically within (hole, j]. */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays) continue;
        table[hole] = table[j];
        table[j].id = 0;
        hole = j;
    }
}

/* Remembers a retired id, forgetting the oldest one when OSP_WS_RETIRED_KEEP are kept. With
 * osp_ws_tx_lock held. */
static void remember_retired(int64_t id) {
    if (retired == NULL) {
        retired_cap = osp_ws_retired_keep ? osp_ws_retired_keep : 1;
        if ((retired = malloc(retired_cap * sizeof *retired)) == NULL) return;
    }
    if (retired_count == retired_cap) {
        slot *old = find(retired[retired_head]);
        if (old != NULL && old->entry.object == NULL) erase(old);
        retired_head = (retired_head + 1) % retired_cap;
        retired_count--;
    }
    retired[(retired_head + retired_count) % retired_cap] = id;
    retired_count++;
}

size_t osp_ws_registry_size(void) {
    pthread_mutex_lock(&osp_ws_tx_lock);
    size_t n = table_used;
    pthread_mutex_unlock(&osp_ws_tx_lock);
    return n;
}

const osp_ws_entry *osp_ws_registry_get(int64_t id) {
    slot *s = find(id);
    return s ? &s->entry : NULL;
}

void osp_ws_registry_retire(int64_t id, uint16_t code) {
    pthread_mutex_lock(&osp_ws_tx_lock); /* after it no sender can reach the object */
    slot *s = find(id);
    if (s != NULL && s->entry.object != NULL) {
        s->entry.object = NULL;
        s->entry.code = code;
        remember_retired(id);
    }
    pthread_mutex_unlock(&osp_ws_tx_lock);
}

void osp_ws_registry_each(void (*fn)(const osp_ws_entry *e, int64_t id, void *arg), void *arg) {
    /* fn may retire entries, and retiring may forget (erase) old ones, which moves slots: walk
     * a snapshot of the live ids, looking each one up again. */
    size_t n = 0;
    for (size_t i = 0; i < table_cap; i++)
        if (table[i].id != 0 && table[i].entry.object != NULL) n++;
    if (n == 0) return;
    int64_t *ids = malloc(n * sizeof *ids);
    if (ids == NULL) {
        fprintf(stderr, "osprey runtime: out of memory walking the WebSocket registry\n");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < table_cap && k < n; i++)
        if (table[i].id != 0 && table[i].entry.object != NULL) ids[k++] = table[i].id;
    for (size_t i = 0; i < k; i++) {
        slot *s = find(ids[i]);
        if (s != NULL && s->entry.object != NULL) fn(&s->entry, ids[i], arg);
    }
    free(ids);
}

/* ---- zombies and the reap hook -------------------------------------------------------------- */

void osp_ws_zombie_conn(osp_ws_conn *c) {
    c->zombie_next = zombie_conns;
    zombie_conns = c;
}

void osp_ws_zombie_server(osp_ws_server *s) {
    s->zombie_next = zombie_servers;
    zombie_servers = s;
}

static void reap(void) {
    /* End of the loop iteration: deferred flushes first (they may destroy connections). */
    osp_ws_conn_flush_dirty();
    osp_ws_conn_budget_resume();
    osp_ws_conn_end_iteration();
    while (zombie_conns) {
        osp_ws_conn *c = zombie_conns;
        zombie_conns = c->zombie_next;
        osp_ws_conn_free(c);
    }
    while (zombie_servers) {
        osp_ws_server *s = zombie_servers;
        zombie_servers = s->zombie_next;
        osp_ws_server_free(s);
    }
}

void osp_ws_live_conns_add(int delta) {
    live_conns += delta;
    if (live_conns == 0 && shutdown_waiter) {
        osp_ws_waiter_signal(shutdown_waiter);
        shutdown_waiter = NULL;
    }
}

/* ---- start-up ------------------------------------------------------------------------------ */

static void ws_shutdown(void);

/* Every eventfd wake-up: frames the program's threads posted, then connections whose handlers
 * caught up with their inbox. */
static void on_loop_wake(void) {
    osp_ws_srv_drain_all();
    osp_ws_tx_drain_all();
    osp_ws_inbox_resume_all();
}

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
                                    : osp_result_errorf("%s: cannot start the WebSocket runtime thread: %s", fn, why);
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

static void close_everything(const osp_ws_entry *e, int64_t id, void *arg) {
    (void)id;
    (void)arg;
    if (e->kind == OSP_WS_KIND_CLIENT) osp_ws_conn_start_close(e->object, OSP_WS_CLOSE_NORMAL, NULL);
    else if (e->kind == OSP_WS_KIND_SERVER) osp_ws_server_stop(e->object, NULL);
}

static void destroy_everything(const osp_ws_entry *e, int64_t id, void *arg) {
    (void)id;
    (void)arg;
    if (e->kind == OSP_WS_KIND_CLIENT || e->kind == OSP_WS_KIND_SERVER_CONN)
        osp_ws_conn_destroy(e->object, OSP_WS_CLOSE_ABNORMAL);
}

static void on_shutdown_timer(osp_ws_timer *t) {
    (void)t;
    /* Every close has its own deadline; this is only a backstop. */
    osp_ws_registry_each(destroy_everything, NULL);
}

static void longest_close_timeout(const osp_ws_entry *e, int64_t id, void *arg) {
    (void)id;
    uint64_t *longest = arg, t = 0;
    if (e->kind == OSP_WS_KIND_CLIENT || e->kind == OSP_WS_KIND_SERVER_CONN)
        t = ((const osp_ws_conn *)e->object)->limits.close_timeout_ms;
    if (t > *longest) *longest = t;
}

static void begin_shutdown(void *arg) {
    osp_ws_waiter *w = arg;
    osp_ws_timer_init(&shutdown_timer, on_shutdown_timer);
    osp_ws_registry_each(close_everything, NULL);
    if (live_conns == 0) {
        osp_ws_waiter_signal(w);
        return;
    }
    shutdown_waiter = w;
    /* Backstop after the longest close deadline of any live connection (limits are per
     * connection: websocketServerSetLimit / websocketSetDefaultLimit). */
    uint64_t longest = 0;
    osp_ws_registry_each(longest_close_timeout, &longest);
    osp_ws_timer_arm(&shutdown_timer, longest + 1000);
}

static void end_shutdown(void *arg) {
    (void)arg;
    osp_ws_timer_cancel(&shutdown_timer);
    shutdown_waiter = NULL;
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
    /* The loop thread is gone: what it owned can be freed from here. */
    reap();
    osp_ws_conn_release_shared();
    pthread_mutex_lock(&osp_ws_tx_lock); /* a sender on another thread may still look ids up */
    free(table);
    table = NULL;
    table_cap = table_used = 0;
    free(retired);
    retired = NULL;
    retired_head = retired_count = 0;
    pthread_mutex_unlock(&osp_ws_tx_lock);
}
