/*
 * The runtime thread's epoll loop, its command queue and its timer heap (see loop.h).
 */
#include "runtime.h"
#include "loop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

typedef struct osp_ws_command {
    void (*fn)(void *);
    void *arg;
    bool done;
    bool detached; /* osp_ws_loop_post: nobody waits; the loop frees it after running it */
    struct osp_ws_command *next;
} osp_ws_command;

/* The loops; created together by osp_ws_loop_start. `state_mutex` guards `loop_count`,
 * `started`, `closed` and `stop_posted`. */
static pthread_mutex_t state_mutex = PTHREAD_MUTEX_INITIALIZER;
static osp_ws_loop *loops[OSP_WS_MAX_LOOPS];
static unsigned loop_count;
static bool started;
/* Set when the loops are being stopped: from then on no command is accepted and they can
 * never start again (their descriptors are closed once the threads are joined; a restart
 * racing with that would watch a closed epoll fd). */
static bool closed;
static bool stop_posted; /* osp_ws_loop_stop has begun (it runs once) */

/* The loop whose thread this is (NULL on any other thread). */
static __thread osp_ws_loop *current_loop;

/* Waiters of every loop share one mutex and condition: a waiter does not know which loop
 * finishes its operation, and they are rare (closes, server stops). */
static pthread_mutex_t waiter_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t waiter_cond = PTHREAD_COND_INITIALIZER;

void (*osp_ws_loop_reap_hook)(void);
void (*osp_ws_loop_wake_hook)(void);

uint64_t osp_ws_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool osp_ws_loop_running(void) {
    pthread_mutex_lock(&state_mutex);
    bool r = started;
    pthread_mutex_unlock(&state_mutex);
    return r;
}

bool osp_ws_loop_on_thread(void) { return current_loop != NULL; }

osp_ws_loop *osp_ws_loop_current(void) { return current_loop; }

osp_ws_loop *osp_ws_loop_main(void) { return loops[0]; }

unsigned osp_ws_loop_count(void) {
    pthread_mutex_lock(&state_mutex);
    unsigned n = loop_count ? loop_count : 1;
    pthread_mutex_unlock(&state_mutex);
    return n;
}

osp_ws_loop *osp_ws_loop_at(unsigned i) { return i < OSP_WS_MAX_LOOPS ? loops[i] : NULL; }

/* The loop that arms timers and registers watches: the calling thread's (they are loop
 * thread only). */
static osp_ws_loop *here(const char *what) {
    osp_ws_loop *L = current_loop;
    if (L == NULL) {
        fprintf(stderr, "osprey runtime: internal error: %s off the I/O threads\n", what);
        abort();
    }
    return L;
}

/* ---- timers: a binary min-heap of deadlines ---------------------------------------------- */

static void heap_swap(osp_ws_loop *L, size_t a, size_t b) {
    osp_ws_timer **heap = L->heap;
    osp_ws_timer *t = heap[a];
    heap[a] = heap[b];
    heap[b] = t;
    heap[a]->heap_index = (uint32_t)a;
    heap[b]->heap_index = (uint32_t)b;
}

static void heap_up(osp_ws_loop *L, size_t i) {
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (L->heap[parent]->deadline_ms <= L->heap[i]->deadline_ms) break;
        heap_swap(L, i, parent);
        i = parent;
    }
}

static void heap_down(osp_ws_loop *L, size_t i) {
    osp_ws_timer **heap = L->heap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < L->heap_len && heap[l]->deadline_ms < heap[m]->deadline_ms) m = l;
        if (r < L->heap_len && heap[r]->deadline_ms < heap[m]->deadline_ms) m = r;
        if (m == i) break;
        heap_swap(L, i, m);
        i = m;
    }
}

void osp_ws_timer_init(osp_ws_timer *t, void (*on_fire)(osp_ws_timer *)) {
    t->deadline_ms = 0;
    t->heap_index = OSP_WS_TIMER_IDLE;
    t->loop = 0;
    t->on_fire = on_fire;
}

bool osp_ws_timer_armed(const osp_ws_timer *t) { return t->heap_index != OSP_WS_TIMER_IDLE; }

void osp_ws_timer_cancel(osp_ws_timer *t) {
    if (t->heap_index == OSP_WS_TIMER_IDLE) return;
    osp_ws_loop *L = loops[t->loop];
    size_t i = t->heap_index;
    t->heap_index = OSP_WS_TIMER_IDLE;
    L->heap_len--;
    if (i == L->heap_len) return;
    L->heap[i] = L->heap[L->heap_len];
    L->heap[i]->heap_index = (uint32_t)i;
    heap_up(L, i);
    heap_down(L, L->heap[i]->heap_index);
}

void osp_ws_timer_arm(osp_ws_timer *t, uint64_t delay_ms) {
    osp_ws_timer_cancel(t);
    osp_ws_loop *L = here("arming a timer");
    if (L->heap_len == L->heap_cap) {
        /* heap_index is 32 bits: four billion armed timers would need far more memory anyway. */
        size_t cap = L->heap_cap ? L->heap_cap * 2 : 64;
        osp_ws_timer **h = realloc(L->heap, cap * sizeof *h);
        if (h == NULL) {
            /* Without a timer slot the deadline cannot be honoured; fire at once instead of
             * never (the callers' deadlines all end in closing a connection). */
            fprintf(stderr, "osprey runtime: out of memory arming a WebSocket timer\n");
            t->on_fire(t);
            return;
        }
        L->heap = h;
        L->heap_cap = cap;
    }
    t->loop = L->index;
    t->deadline_ms = osp_ws_now_ms() + delay_ms;
    t->heap_index = (uint32_t)L->heap_len;
    L->heap[L->heap_len++] = t;
    heap_up(L, t->heap_index);
}

static void run_due_timers(osp_ws_loop *L) {
    uint64_t now = osp_ws_now_ms();
    while (L->heap_len > 0 && L->heap[0]->deadline_ms <= now) {
        osp_ws_timer *t = L->heap[0];
        osp_ws_timer_cancel(t);
        t->on_fire(t);
    }
}

static int next_timeout_ms(osp_ws_loop *L) {
    if (L->heap_len == 0) return -1;
    uint64_t now = osp_ws_now_ms();
    if (L->heap[0]->deadline_ms <= now) return 0;
    uint64_t d = L->heap[0]->deadline_ms - now;
    return d > 60000 ? 60000 : (int)d;
}

/* ---- watches ------------------------------------------------------------------------------ */

int osp_ws_watch_set(osp_ws_watch *w, uint32_t events) {
    if (events == w->events) return 0;
    /* The calling loop's epoll set: a watch's owner lives on one loop for its whole life. */
    osp_ws_loop *L = here("watching a descriptor");
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.ptr = w;
    int rc;
    if (events == 0)
        rc = epoll_ctl(L->epoll_fd, EPOLL_CTL_DEL, w->fd, &ev);
    else if (w->events == 0)
        rc = epoll_ctl(L->epoll_fd, EPOLL_CTL_ADD, w->fd, &ev);
    else
        rc = epoll_ctl(L->epoll_fd, EPOLL_CTL_MOD, w->fd, &ev);
    if (rc != 0) return -1;
    w->events = events;
    return 0;
}

int osp_ws_watch_rearm(osp_ws_watch *w) {
    if (w->events == 0) return 0;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = w->events;
    ev.data.ptr = w;
    return epoll_ctl(here("watching a descriptor")->epoll_fd, EPOLL_CTL_MOD, w->fd, &ev);
}

/* ---- commands ----------------------------------------------------------------------------- */

static void wake_loop(osp_ws_loop *L) {
    uint64_t one = 1;
    for (;;) {
        ssize_t n = write(L->wake_watch.fd, &one, sizeof one);
        if (n == (ssize_t)sizeof one) return;
        if (n < 0 && errno == EINTR) continue;
        /* EAGAIN: the counter is saturated, so the loop is already due to wake. */
        return;
    }
}

void osp_ws_loop_wake_on(osp_ws_loop *L) {
    if (L == NULL) return;
    atomic_store(&L->wake_requested, true);
    if (!atomic_load(&L->sleeping)) return; /* awake: it looks at wake_requested before sleeping */
    /* Under the mutex: the eventfd is closed under it when the loop stops, so a late wake-up
     * can never write into a descriptor number that was reused meanwhile. */
    pthread_mutex_lock(&L->mutex);
    if (L->running && L->wake_watch.fd >= 0) wake_loop(L);
    pthread_mutex_unlock(&L->mutex);
}

void osp_ws_loop_wake(void) { osp_ws_loop_wake_on(loops[0]); }

static bool is_closed(void) {
    pthread_mutex_lock(&state_mutex);
    bool r = closed;
    pthread_mutex_unlock(&state_mutex);
    return r;
}

/* Queues a command on L and waits for it. With `internal` (the shutdown's commands) it is
 * queued even though the loops are closing. false when it was refused. */
static bool post_and_wait(osp_ws_loop *L, void (*fn)(void *), void *arg, bool internal) {
    if (L == NULL) return false;
    osp_ws_command cmd = {fn, arg, false, false, NULL};
    osp_output_flush_pending(); /* the program blocks until the runtime thread answers */
    bool refused = !internal && is_closed();
    pthread_mutex_lock(&L->mutex);
    if (!L->running || refused) {
        pthread_mutex_unlock(&L->mutex);
        return false;
    }
    if (L->queue_tail) L->queue_tail->next = &cmd;
    else L->queue_head = &cmd;
    L->queue_tail = &cmd;
    wake_loop(L);
    while (!cmd.done) pthread_cond_wait(&L->cond, &L->mutex);
    pthread_mutex_unlock(&L->mutex);
    return true;
}

bool osp_ws_loop_call_on(osp_ws_loop *L, void (*fn)(void *), void *arg) {
    if (L != NULL && current_loop == L) {
        fn(arg);
        return true;
    }
    return post_and_wait(L, fn, arg, false);
}

bool osp_ws_loop_call(void (*fn)(void *), void *arg) { return osp_ws_loop_call_on(loops[0], fn, arg); }

bool osp_ws_loop_call_closing_on(osp_ws_loop *L, void (*fn)(void *), void *arg) {
    if (L != NULL && current_loop == L) {
        fn(arg);
        return true;
    }
    return post_and_wait(L, fn, arg, true);
}

bool osp_ws_loop_call_closing(void (*fn)(void *), void *arg) {
    return osp_ws_loop_call_closing_on(loops[0], fn, arg);
}

bool osp_ws_loop_post(osp_ws_loop *L, void (*fn)(void *), void *arg) {
    if (L == NULL) return false;
    osp_ws_command *cmd = calloc(1, sizeof *cmd);
    if (cmd == NULL) return false;
    cmd->fn = fn;
    cmd->arg = arg;
    cmd->detached = true;
    pthread_mutex_lock(&L->mutex);
    if (!L->running) {
        pthread_mutex_unlock(&L->mutex);
        free(cmd);
        return false;
    }
    if (L->queue_tail) L->queue_tail->next = cmd;
    else L->queue_head = cmd;
    L->queue_tail = cmd;
    wake_loop(L);
    pthread_mutex_unlock(&L->mutex);
    return true;
}

static void run_commands(osp_ws_loop *L, bool hook) {
    pthread_mutex_lock(&L->mutex);
    osp_ws_command *list = L->queue_head;
    L->queue_head = L->queue_tail = NULL;
    pthread_mutex_unlock(&L->mutex);
    /* Work posted without a command before one of these commands was queued is done first,
     * even when it was posted after this wake-up's first call of the hook (on_wake). */
    if (hook && list && osp_ws_loop_wake_hook) osp_ws_loop_wake_hook();
    while (list) {
        osp_ws_command *next = list->next; /* read before `done`: the caller may then return */
        list->fn(list->arg);
        if (list->detached) {
            free(list);
            list = next;
            continue;
        }
        pthread_mutex_lock(&L->mutex);
        list->done = true;
        pthread_cond_broadcast(&L->cond);
        pthread_mutex_unlock(&L->mutex);
        list = next;
    }
}

static void on_wake(osp_ws_watch *w, uint32_t events) {
    (void)events;
    uint64_t count;
    ssize_t n;
    do {
        n = read(w->fd, &count, sizeof count);
    } while (n < 0 && errno == EINTR);
    atomic_store(&current_loop->wake_requested, false); /* the hook below takes what it asked for */
    /* Work posted without a command (asynchronous client sends) first: a command posted after
     * it (websocketClose) must find it already queued, so order is kept. */
    if (osp_ws_loop_wake_hook) osp_ws_loop_wake_hook();
    run_commands(current_loop, true);
}

void osp_ws_waiter_signal(osp_ws_waiter *w) {
    pthread_mutex_lock(&waiter_mutex);
    w->done = true;
    pthread_cond_broadcast(&waiter_cond);
    pthread_mutex_unlock(&waiter_mutex);
}

void osp_ws_waiters_signal_all(osp_ws_waiter **list) {
    for (osp_ws_waiter *w = *list, *next; w; w = next) {
        next = w->next; /* read first: once signalled, the waiter's stack frame may be gone */
        osp_ws_waiter_signal(w);
    }
    *list = NULL;
}

void osp_ws_waiter_wait(osp_ws_waiter *w) {
    osp_output_flush_pending();
    pthread_mutex_lock(&waiter_mutex);
    while (!w->done) pthread_cond_wait(&waiter_cond, &waiter_mutex);
    pthread_mutex_unlock(&waiter_mutex);
}

/* ---- the threads -------------------------------------------------------------------------- */

static void *loop_main(void *arg) {
    osp_ws_loop *L = arg;
    current_loop = L;
    /* Named so tools (ps, gdb, the ABI harness) can tell it apart: no Osprey code runs on it. */
    (void)pthread_setname_np(pthread_self(), OSP_WS_LOOP_THREAD_NAME);
    /* 256 ready descriptors per wake-up: with many busy connections, fewer epoll_wait calls and
     * more sends coalesced per iteration (broadcasts are flushed once per iteration). */
    struct epoll_event events[256];
    while (!L->stop_requested) {
        /* Lines printed by handlers (and by the program's thread) reach a pipe before we sleep. */
        osp_output_flush_pending();
        atomic_store(&L->sleeping, true);
        bool woken = atomic_exchange(&L->wake_requested, false);
        int n = epoll_wait(L->epoll_fd, events, (int)(sizeof events / sizeof events[0]), woken ? 0 : next_timeout_ms(L));
        atomic_store(&L->sleeping, false);
        if (woken && osp_ws_loop_wake_hook) osp_ws_loop_wake_hook();
        if (n < 0) {
            /* EINTR: the garbage collector's stop-the-world signal, among others. */
            if (errno != EINTR) {
                fprintf(stderr, "osprey runtime: epoll_wait failed: %s\n", strerror(errno));
                osp_sleep(10);
            }
            n = 0;
        }
        for (int i = 0; i < n; i++) {
            osp_ws_watch *w = events[i].data.ptr;
            /* A watch removed by an earlier event of this batch has events == 0; its owner is
             * only freed by the reap hook below, so the pointer is still valid here. */
            if (w->events == 0) continue;
            w->on_event(w, events[i].events);
        }
        run_due_timers(L);
        if (osp_ws_loop_reap_hook) osp_ws_loop_reap_hook();
    }
    /* Commands that raced with the stop still get their answer. */
    run_commands(L, false);
    current_loop = NULL;
    return NULL;
}

static void stop_command(void *unused) {
    (void)unused;
    current_loop->stop_requested = true;
}

/* A new loop's memory and descriptors (not yet its thread); NULL with err set. */
static osp_ws_loop *loop_new(unsigned index, char *err, size_t errlen) {
    osp_ws_loop *L = calloc(1, sizeof *L);
    if (L == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    L->index = index;
    pthread_mutex_init(&L->mutex, NULL);
    pthread_cond_init(&L->cond, NULL);
    /* The two shared buffers of ws_conn.c: counted against the memory budget, with the small
     * fixed allowance a full budget never refuses (a 101 or a pong still goes out). */
    L->cork.counted = L->cork.small_always = true;
    L->bc_log.counted = L->bc_log.small_always = true;
    L->post_pend.counted = L->post_spare.counted = true;
    L->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (L->epoll_fd < 0) {
        snprintf(err, errlen, "epoll_create1 failed: %s", strerror(errno));
        free(L);
        return NULL;
    }
    L->wake_watch.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    L->wake_watch.on_event = on_wake;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.ptr = &L->wake_watch;
    if (L->wake_watch.fd < 0 || epoll_ctl(L->epoll_fd, EPOLL_CTL_ADD, L->wake_watch.fd, &ev) != 0) {
        snprintf(err, errlen, "eventfd setup failed: %s", strerror(errno));
        if (L->wake_watch.fd >= 0) close(L->wake_watch.fd);
        close(L->epoll_fd);
        free(L);
        return NULL;
    }
    L->wake_watch.events = EPOLLIN;
    return L;
}

/* A loop whose thread never started. */
static void loop_free(osp_ws_loop *L) {
    close(L->wake_watch.fd);
    close(L->epoll_fd);
    pthread_mutex_destroy(&L->mutex);
    pthread_cond_destroy(&L->cond);
    free(L);
}

/* OSPREY_IO_THREADS, or one loop per online CPU. 0 with err set when the variable is not a
 * whole number from 1 to OSP_WS_MAX_LOOPS. */
static unsigned loops_wanted(char *err, size_t errlen) {
    const char *env = getenv("OSPREY_IO_THREADS");
    if (env && *env) {
        char *end;
        errno = 0;
        long n = strtol(env, &end, 10);
        if (errno != 0 || *end != '\0' || n < 1 || n > OSP_WS_MAX_LOOPS) {
            snprintf(err, errlen, "OSPREY_IO_THREADS must be a whole number from 1 to %d (got '%.40s')",
                     OSP_WS_MAX_LOOPS, env);
            return 0;
        }
        return (unsigned)n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > OSP_WS_MAX_LOOPS) n = OSP_WS_MAX_LOOPS;
    return (unsigned)n;
}

int osp_ws_loop_start(char *err, size_t errlen) {
    pthread_mutex_lock(&state_mutex);
    if (started) {
        pthread_mutex_unlock(&state_mutex);
        return 0;
    }
    if (closed) {
        snprintf(err, errlen, "the runtime has shut down (the program is exiting)");
        pthread_mutex_unlock(&state_mutex);
        return -1;
    }
    unsigned want = loops_wanted(err, errlen);
    if (want == 0) {
        pthread_mutex_unlock(&state_mutex);
        return -1;
    }
    unsigned made = 0;
    for (; made < want; made++) {
        osp_ws_loop *L = loop_new(made, err, errlen);
        if (L == NULL) break;
        /* pthread_create is GC_pthread_create here (runtime.h defines GC_THREADS). */
        int rc = pthread_create(&L->thread, NULL, loop_main, L);
        if (rc != 0) {
            snprintf(err, errlen, "cannot create the runtime thread: %s", strerror(rc));
            loop_free(L);
            break;
        }
        L->running = true;
        loops[made] = L;
    }
    if (made < want) {
        /* All or nothing: the threads already made are stopped again. */
        for (unsigned i = 0; i < made; i++) {
            osp_ws_loop *L = loops[i];
            (void)post_and_wait(L, stop_command, NULL, true);
            pthread_join(L->thread, NULL);
            loop_free(L);
            loops[i] = NULL;
        }
        pthread_mutex_unlock(&state_mutex);
        return -1;
    }
    loop_count = made;
    started = true;
    pthread_mutex_unlock(&state_mutex);
    /* The loops submit handler fibers (ws_inbox.c) that may send to a channel a fiber waits
     * on: while they run, fibers that all wait are not a deadlock. */
    osp_sched_hold_external(1);
    return 0;
}

void osp_ws_loop_stop(void) {
    if (osp_ws_loop_on_thread()) return;
    pthread_mutex_lock(&state_mutex);
    bool first = started && !stop_posted;
    stop_posted = true;
    closed = true; /* no command is accepted from now on, and no restart */
    unsigned n = loop_count;
    pthread_mutex_unlock(&state_mutex);
    if (!first) return;
    /* The main loop last: another loop may still hand it a finished server. */
    for (unsigned k = n; k-- > 0;) {
        osp_ws_loop *L = loops[k];
        /* Commands queued before `closed` run ahead of this one; none can be queued after it. */
        (void)post_and_wait(L, stop_command, NULL, true);
        pthread_join(L->thread, NULL);
        pthread_mutex_lock(&L->mutex);
        L->running = false;
        close(L->wake_watch.fd);
        close(L->epoll_fd);
        L->wake_watch.fd = -1;
        L->wake_watch.events = 0;
        L->epoll_fd = -1;
        pthread_mutex_unlock(&L->mutex);
        free(L->heap);
        L->heap = NULL;
        L->heap_len = L->heap_cap = 0;
    }
    pthread_mutex_lock(&state_mutex);
    started = false;
    pthread_mutex_unlock(&state_mutex);
    osp_sched_hold_external(-1);
}

void osp_ws_loop_each_stopped(void (*fn)(void)) {
    pthread_mutex_lock(&state_mutex);
    unsigned n = started ? 0 : loop_count;
    pthread_mutex_unlock(&state_mutex);
    for (unsigned i = 0; i < n; i++) {
        current_loop = loops[i];
        fn();
    }
    current_loop = NULL;
}

void osp_ws_loop_release(void) {
    pthread_mutex_lock(&state_mutex);
    unsigned n = started ? 0 : loop_count;
    pthread_mutex_unlock(&state_mutex);
    /* The objects themselves stay: a late wake-up from another thread (a handler fiber still
     * finishing while the process exits) finds a stopped loop, never freed memory. */
    for (unsigned i = 0; i < n; i++) osp_ws_wipe(loops[i]->read_buffer, sizeof loops[i]->read_buffer);
}

bool osp_ws_loop_closed(void) { return is_closed(); }

void osp_ws_loop_close(void) {
    pthread_mutex_lock(&state_mutex);
    closed = true;
    pthread_mutex_unlock(&state_mutex);
}
