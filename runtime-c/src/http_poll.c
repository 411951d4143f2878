/*
 * The HTTP server's poll set and deadline heap (see http_poll.h). The set is waited on by one
 * thread at a time (the scheduler's poller role); the heap is touched only by the holder of the
 * HTTP server's connection role, except osp_http_deadlines_next, which reads an atomic copy of
 * the earliest deadline so the poller can choose its timeout without that role.
 */
#include "http_poll.h"
#include "loop.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static pthread_mutex_t init_mutex = PTHREAD_MUTEX_INITIALIZER;
static int poll_fd = -1;
static int wake_fd = -1;
static char wake_key; /* the eventfd's epoll key: its address */
/* An eventfd write is pending (not yet read back): later interrupts need not write again. */
static atomic_bool wake_pending;
/* The deadline the current wait sleeps until (0: not waiting or no deadline known yet;
 * UINT64_MAX: waiting without one). Arming an earlier deadline interrupts that wait. */
static _Atomic uint64_t waiting_until;

int osp_http_poll_init(void) {
    pthread_mutex_lock(&init_mutex);
    int rc = 0;
    if (poll_fd < 0) {
        int ep = epoll_create1(EPOLL_CLOEXEC);
        int ev = ep >= 0 ? eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) : -1;
        struct epoll_event e;
        memset(&e, 0, sizeof e);
        e.events = EPOLLIN; /* level-triggered: an unread wake-up keeps the next wait from sleeping */
        e.data.ptr = &wake_key;
        if (ep < 0 || ev < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e) != 0) {
            int saved = errno;
            if (ev >= 0) close(ev);
            if (ep >= 0) close(ep);
            errno = saved;
            rc = -1;
        } else {
            wake_fd = ev;
            poll_fd = ep;
        }
    }
    pthread_mutex_unlock(&init_mutex);
    return rc;
}

int osp_http_poll_ctl(int fd, uint32_t old_events, uint32_t events, void *ptr) {
    struct epoll_event e;
    memset(&e, 0, sizeof e);
    e.events = events;
    e.data.ptr = ptr;
    int op = events == 0 ? EPOLL_CTL_DEL : old_events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    return epoll_ctl(poll_fd, op, fd, &e);
}

void osp_http_poll_interrupt(void) {
    if (wake_fd < 0 || atomic_exchange(&wake_pending, true)) return;
    uint64_t one = 1;
    for (;;) {
        ssize_t n = write(wake_fd, &one, sizeof one);
        if (n == (ssize_t)sizeof one || !(n < 0 && errno == EINTR)) return; /* EAGAIN: already due */
    }
}

int osp_http_poll_wait(struct epoll_event *out, int max, uint64_t until_ms) {
    /* Announce the deadline first, then read the heap's: a deadline armed in between either is
     * seen here or sees this announcement and interrupts the wait (both sequentially consistent). */
    atomic_store(&waiting_until, until_ms ? until_ms : UINT64_MAX);
    uint64_t next = osp_http_deadlines_next();
    if (next != 0 && (until_ms == 0 || next < until_ms)) until_ms = next;
    int timeout = -1;
    if (until_ms != 0) {
        uint64_t now = osp_ws_now_ms();
        timeout = until_ms <= now ? 0 : until_ms - now > 60000 ? 60000 : (int)(until_ms - now);
    }
    int n = epoll_wait(poll_fd, out, max, timeout);
    atomic_store(&waiting_until, 0);
    if (n < 0) return 0; /* EINTR (the collector's signals): the caller looks again */
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (out[i].data.ptr == &wake_key) {
            uint64_t count;
            ssize_t r;
            do {
                r = read(wake_fd, &count, sizeof count);
            } while (r < 0 && errno == EINTR);
            atomic_store(&wake_pending, false);
            continue;
        }
        out[kept++] = out[i];
    }
    return kept;
}

/* ---- deadlines: a binary min-heap ------------------------------------------------------------ */

static osp_http_deadline **heap;
static size_t heap_len, heap_cap;
static _Atomic uint64_t heap_next; /* heap[0]->at_ms, 0 when empty */

static void publish_next(void) { atomic_store(&heap_next, heap_len ? heap[0]->at_ms : 0); }

static void heap_swap(size_t a, size_t b) {
    osp_http_deadline *t = heap[a];
    heap[a] = heap[b];
    heap[b] = t;
    heap[a]->index = (uint32_t)a;
    heap[b]->index = (uint32_t)b;
}

static void heap_up(size_t i) {
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (heap[parent]->at_ms <= heap[i]->at_ms) break;
        heap_swap(i, parent);
        i = parent;
    }
}

static void heap_down(size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_len && heap[l]->at_ms < heap[m]->at_ms) m = l;
        if (r < heap_len && heap[r]->at_ms < heap[m]->at_ms) m = r;
        if (m == i) return;
        heap_swap(i, m);
        i = m;
    }
}

void osp_http_deadline_init(osp_http_deadline *d, void (*fire)(osp_http_deadline *d)) {
    d->at_ms = 0;
    d->index = OSP_HTTP_DEADLINE_IDLE;
    d->fire = fire;
}

bool osp_http_deadline_armed(const osp_http_deadline *d) { return d->index != OSP_HTTP_DEADLINE_IDLE; }

static void remove_at(size_t i) {
    heap[i]->index = OSP_HTTP_DEADLINE_IDLE;
    heap_len--;
    if (i != heap_len) {
        heap[i] = heap[heap_len];
        heap[i]->index = (uint32_t)i;
        heap_up(i);
        heap_down(heap[i]->index);
    }
}

void osp_http_deadline_cancel(osp_http_deadline *d) {
    if (d->index == OSP_HTTP_DEADLINE_IDLE) return;
    remove_at(d->index);
    publish_next();
}

void osp_http_deadline_arm(osp_http_deadline *d, uint64_t at_ms) {
    if (d->index != OSP_HTTP_DEADLINE_IDLE) remove_at(d->index);
    if (heap_len == heap_cap) {
        size_t cap = heap_cap ? heap_cap * 2 : 64;
        osp_http_deadline **h = realloc(heap, cap * sizeof *h);
        if (h == NULL) {
            /* No slot: fire at once rather than never (every deadline ends in a close). */
            fprintf(stderr, "osprey runtime: out of memory arming an HTTP deadline\n");
            publish_next();
            d->fire(d);
            return;
        }
        heap = h;
        heap_cap = cap;
    }
    d->at_ms = at_ms;
    d->index = (uint32_t)heap_len;
    heap[heap_len++] = d;
    heap_up(d->index);
    publish_next();
    uint64_t until = atomic_load(&waiting_until);
    if (until != 0 && at_ms < until) osp_http_poll_interrupt();
}

void osp_http_deadlines_run(uint64_t now_ms) {
    while (heap_len > 0 && heap[0]->at_ms <= now_ms) {
        osp_http_deadline *d = heap[0];
        remove_at(0);
        publish_next();
        d->fire(d);
    }
}

uint64_t osp_http_deadlines_next(void) { return atomic_load(&heap_next); }
