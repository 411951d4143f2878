/*
 * The runtime thread's epoll loop, its command queue and its timer heap (see loop.h).
 */
#include "runtime.h"
#include "loop.h"

#include <errno.h>
#include <stdatomic.h>
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
    struct osp_ws_command *next;
} osp_ws_command;

/* The mutex protects the command queue, the running flag and every waiter's `done`; the loop
 * never holds it while running a command or a handler. */
static pthread_mutex_t loop_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t loop_cond = PTHREAD_COND_INITIALIZER;
static osp_ws_command *queue_head, *queue_tail;
static bool running;
/* Set when the loop is being stopped: from then on no command is accepted and the loop can
 * never start again (its descriptors are closed once the thread is joined; a restart racing
 * with that would watch a closed epoll fd). */
static bool closed;
static bool stop_posted; /* osp_ws_loop_stop has begun (it runs once) */
static bool stop_requested; /* loop thread only after start */
static pthread_t loop_thread;
static int epoll_fd = -1;
static osp_ws_watch wake_watch = {-1, 0, NULL};
/* osp_ws_loop_wake writes the eventfd only while the loop thread sleeps in epoll_wait (or is about
 * to): otherwise it raises wake_requested, which the loop looks at before it sleeps again. Under
 * load the loop is mostly awake, so most wake-ups then cost neither a write nor a read nor an
 * extra epoll_wait. Both are sequentially consistent: a waker that finds loop_sleeping false
 * raised wake_requested before the loop's look at it. */
static atomic_bool loop_sleeping;
static atomic_bool wake_requested;

static osp_ws_timer **heap;
static size_t heap_len, heap_cap;

void (*osp_ws_loop_reap_hook)(void);
void (*osp_ws_loop_wake_hook)(void);

uint64_t osp_ws_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool osp_ws_loop_running(void) {
    pthread_mutex_lock(&loop_mutex);
    bool r = running;
    pthread_mutex_unlock(&loop_mutex);
    return r;
}

bool osp_ws_loop_on_thread(void) {
    pthread_mutex_lock(&loop_mutex);
    bool r = running && pthread_equal(pthread_self(), loop_thread);
    pthread_mutex_unlock(&loop_mutex);
    return r;
}

/* ---- timers: a binary min-heap of deadlines ---------------------------------------------- */

static void heap_swap(size_t a, size_t b) {
    osp_ws_timer *t = heap[a];
    heap[a] = heap[b];
    heap[b] = t;
    heap[a]->heap_index = a;
    heap[b]->heap_index = b;
}

static void heap_up(size_t i) {
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (heap[parent]->deadline_ms <= heap[i]->deadline_ms) break;
        heap_swap(i, parent);
        i = parent;
    }
}

static void heap_down(size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_len && heap[l]->deadline_ms < heap[m]->deadline_ms) m = l;
        if (r < heap_len && heap[r]->deadline_ms < heap[m]->deadline_ms) m = r;
        if (m == i) break;
        heap_swap(i, m);
        i = m;
    }
}

void osp_ws_timer_init(osp_ws_timer *t, void (*on_fire)(osp_ws_timer *)) {
    t->deadline_ms = 0;
    t->heap_index = SIZE_MAX;
    t->on_fire = on_fire;
}

bool osp_ws_timer_armed(const osp_ws_timer *t) { return t->heap_index != SIZE_MAX; }

void osp_ws_timer_cancel(osp_ws_timer *t) {
    if (t->heap_index == SIZE_MAX) return;
    size_t i = t->heap_index;
    t->heap_index = SIZE_MAX;
    heap_len--;
    if (i == heap_len) return;
    heap[i] = heap[heap_len];
    heap[i]->heap_index = i;
    heap_up(i);
    heap_down(heap[i]->heap_index);
}

void osp_ws_timer_arm(osp_ws_timer *t, uint64_t delay_ms) {
    osp_ws_timer_cancel(t);
    if (heap_len == heap_cap) {
        size_t cap = heap_cap ? heap_cap * 2 : 64;
        osp_ws_timer **h = realloc(heap, cap * sizeof *h);
        if (h == NULL) {
            /* Without a timer slot the deadline cannot be honoured; fire at once instead of
             * never (the callers' deadlines all end in closing a connection). */
            fprintf(stderr, "osprey runtime: out of memory arming a WebSocket timer\n");
            t->on_fire(t);
            return;
        }
        heap = h;
        heap_cap = cap;
    }
    t->deadline_ms = osp_ws_now_ms() + delay_ms;
    t->heap_index = heap_len;
    heap[heap_len++] = t;
    heap_up(t->heap_index);
}

static void run_due_timers(void) {
    uint64_t now = osp_ws_now_ms();
    while (heap_len > 0 && heap[0]->deadline_ms <= now) {
        osp_ws_timer *t = heap[0];
        osp_ws_timer_cancel(t);
        t->on_fire(t);
    }
}

static int next_timeout_ms(void) {
    if (heap_len == 0) return -1;
    uint64_t now = osp_ws_now_ms();
    if (heap[0]->deadline_ms <= now) return 0;
    uint64_t d = heap[0]->deadline_ms - now;
    return d > 60000 ? 60000 : (int)d;
}

/* ---- watches ------------------------------------------------------------------------------ */

int osp_ws_watch_set(osp_ws_watch *w, uint32_t events) {
    if (events == w->events) return 0;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.ptr = w;
    int rc;
    if (events == 0)
        rc = epoll_ctl(epoll_fd, EPOLL_CTL_DEL, w->fd, &ev);
    else if (w->events == 0)
        rc = epoll_ctl(epoll_fd, EPOLL_CTL_ADD, w->fd, &ev);
    else
        rc = epoll_ctl(epoll_fd, EPOLL_CTL_MOD, w->fd, &ev);
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
    return epoll_ctl(epoll_fd, EPOLL_CTL_MOD, w->fd, &ev);
}

/* ---- commands ----------------------------------------------------------------------------- */

static void wake_loop(void) {
    uint64_t one = 1;
    for (;;) {
        ssize_t n = write(wake_watch.fd, &one, sizeof one);
        if (n == (ssize_t)sizeof one) return;
        if (n < 0 && errno == EINTR) continue;
        /* EAGAIN: the counter is saturated, so the loop is already due to wake. */
        return;
    }
}

void osp_ws_loop_wake(void) {
    atomic_store(&wake_requested, true);
    if (!atomic_load(&loop_sleeping)) return;
    /* Under the mutex: the eventfd is closed under it when the loop stops, so a late wake-up
     * can never write into a descriptor number that was reused meanwhile. */
    pthread_mutex_lock(&loop_mutex);
    if (running && !closed) wake_loop();
    pthread_mutex_unlock(&loop_mutex);
}

/* Queues a command and waits for it. With `internal` (the stop command) it is queued even
 * though the loop is closing. false when it was refused. */
static bool post_and_wait(void (*fn)(void *), void *arg, bool internal) {
    osp_ws_command cmd = {fn, arg, false, NULL};
    osp_output_flush_pending(); /* the program blocks until the runtime thread answers */
    pthread_mutex_lock(&loop_mutex);
    if (!running || (closed && !internal)) {
        pthread_mutex_unlock(&loop_mutex);
        return false;
    }
    if (queue_tail) queue_tail->next = &cmd;
    else queue_head = &cmd;
    queue_tail = &cmd;
    wake_loop();
    while (!cmd.done) pthread_cond_wait(&loop_cond, &loop_mutex);
    pthread_mutex_unlock(&loop_mutex);
    return true;
}

bool osp_ws_loop_call(void (*fn)(void *), void *arg) {
    if (osp_ws_loop_on_thread()) {
        fn(arg);
        return true;
    }
    return post_and_wait(fn, arg, false);
}

bool osp_ws_loop_call_closing(void (*fn)(void *), void *arg) {
    if (osp_ws_loop_on_thread()) {
        fn(arg);
        return true;
    }
    return post_and_wait(fn, arg, true);
}

static void run_commands(bool hook) {
    pthread_mutex_lock(&loop_mutex);
    osp_ws_command *list = queue_head;
    queue_head = queue_tail = NULL;
    pthread_mutex_unlock(&loop_mutex);
    /* Work posted without a command before one of these commands was queued is done first,
     * even when it was posted after this wake-up's first call of the hook (on_wake). */
    if (hook && list && osp_ws_loop_wake_hook) osp_ws_loop_wake_hook();
    while (list) {
        osp_ws_command *next = list->next; /* read before `done`: the caller may then return */
        list->fn(list->arg);
        pthread_mutex_lock(&loop_mutex);
        list->done = true;
        pthread_cond_broadcast(&loop_cond);
        pthread_mutex_unlock(&loop_mutex);
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
    atomic_store(&wake_requested, false); /* the hook below takes what it asked for */
    /* Work posted without a command (asynchronous client sends) first: a command posted after
     * it (websocketClose) must find it already queued, so order is kept. */
    if (osp_ws_loop_wake_hook) osp_ws_loop_wake_hook();
    run_commands(true);
}

void osp_ws_waiter_signal(osp_ws_waiter *w) {
    pthread_mutex_lock(&loop_mutex);
    w->done = true;
    pthread_cond_broadcast(&loop_cond);
    pthread_mutex_unlock(&loop_mutex);
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
    pthread_mutex_lock(&loop_mutex);
    while (!w->done) pthread_cond_wait(&loop_cond, &loop_mutex);
    pthread_mutex_unlock(&loop_mutex);
}

/* ---- the thread --------------------------------------------------------------------------- */

static void *loop_main(void *unused) {
    (void)unused;
    /* Named so tools (ps, gdb, the ABI harness) can tell it apart: no Osprey code runs on it. */
    (void)pthread_setname_np(pthread_self(), OSP_WS_LOOP_THREAD_NAME);
    /* 256 ready descriptors per wake-up: with many busy connections, fewer epoll_wait calls and
     * more sends coalesced per iteration (broadcasts are flushed once per iteration). */
    struct epoll_event events[256];
    while (!stop_requested) {
        /* Lines printed by handlers (and by the program's thread) reach a pipe before we sleep. */
        osp_output_flush_pending();
        atomic_store(&loop_sleeping, true);
        bool woken = atomic_exchange(&wake_requested, false);
        int n = epoll_wait(epoll_fd, events, (int)(sizeof events / sizeof events[0]), woken ? 0 : next_timeout_ms());
        atomic_store(&loop_sleeping, false);
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
        run_due_timers();
        if (osp_ws_loop_reap_hook) osp_ws_loop_reap_hook();
    }
    /* Commands that raced with the stop still get their answer. */
    run_commands(false);
    return NULL;
}

static void stop_command(void *unused) {
    (void)unused;
    stop_requested = true;
}

int osp_ws_loop_start(char *err, size_t errlen) {
    pthread_mutex_lock(&loop_mutex);
    if (running) {
        pthread_mutex_unlock(&loop_mutex);
        return 0;
    }
    if (closed) {
        snprintf(err, errlen, "the runtime has shut down (the program is exiting)");
        pthread_mutex_unlock(&loop_mutex);
        return -1;
    }
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0) {
        snprintf(err, errlen, "epoll_create1 failed: %s", strerror(errno));
        pthread_mutex_unlock(&loop_mutex);
        return -1;
    }
    wake_watch.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    wake_watch.events = 0;
    wake_watch.on_event = on_wake;
    if (wake_watch.fd < 0 || osp_ws_watch_set(&wake_watch, EPOLLIN) != 0) {
        snprintf(err, errlen, "eventfd setup failed: %s", strerror(errno));
        if (wake_watch.fd >= 0) close(wake_watch.fd);
        close(epoll_fd);
        epoll_fd = wake_watch.fd = -1;
        pthread_mutex_unlock(&loop_mutex);
        return -1;
    }
    stop_requested = false;
    /* pthread_create is GC_pthread_create here (runtime.h defines GC_THREADS). */
    int rc = pthread_create(&loop_thread, NULL, loop_main, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot create the runtime thread: %s", strerror(rc));
        close(wake_watch.fd);
        close(epoll_fd);
        epoll_fd = wake_watch.fd = -1;
        wake_watch.events = 0;
        pthread_mutex_unlock(&loop_mutex);
        return -1;
    }
    running = true;
    pthread_mutex_unlock(&loop_mutex);
    /* The loop submits handler fibers (ws_inbox.c) that may send to a channel a fiber waits on:
     * while the loop runs, fibers that all wait are not a deadlock. */
    osp_sched_hold_external(1);
    return 0;
}

void osp_ws_loop_stop(void) {
    if (osp_ws_loop_on_thread()) return;
    pthread_mutex_lock(&loop_mutex);
    bool first = running && !stop_posted;
    stop_posted = true;
    closed = true; /* no command is accepted from now on, and no restart */
    pthread_mutex_unlock(&loop_mutex);
    if (!first) return;
    /* Commands queued before `closed` run ahead of this one; none can be queued after it. */
    (void)post_and_wait(stop_command, NULL, true);
    pthread_join(loop_thread, NULL);
    pthread_mutex_lock(&loop_mutex);
    running = false;
    close(wake_watch.fd);
    close(epoll_fd);
    wake_watch.fd = -1;
    wake_watch.events = 0;
    epoll_fd = -1;
    pthread_mutex_unlock(&loop_mutex);
    osp_sched_hold_external(-1);
    free(heap);
    heap = NULL;
    heap_len = heap_cap = 0;
}

bool osp_ws_loop_closed(void) {
    pthread_mutex_lock(&loop_mutex);
    bool r = closed;
    pthread_mutex_unlock(&loop_mutex);
    return r;
}

void osp_ws_loop_close(void) {
    pthread_mutex_lock(&loop_mutex);
    closed = true;
    pthread_mutex_unlock(&loop_mutex);
}
