/*
 * The HTTP server's poll set and deadlines (http_poll.c): one epoll set holding every HTTP
 * connection, waited on by whichever fiber worker holds the scheduler's poller role (an idle
 * worker polls the sockets itself: osp_idle_poller in runtime.h), and a min-heap of the
 * connections' phase deadlines, run by whoever holds the server's connection role
 * (http_server.c). Neither belongs to an I/O loop thread.
 */
#ifndef OSP_HTTP_POLL_H
#define OSP_HTTP_POLL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

/* Creates the poll set and its wake-up eventfd (once; any thread). 0, or -1 with errno. */
int osp_http_poll_init(void);
/* Registers, changes (events != 0) or removes (events == 0) `fd` with `ptr` as its key. 0 or -1. */
int osp_http_poll_ctl(int fd, uint32_t old_events, uint32_t events, void *ptr);
/* Waits until events arrive, osp_http_poll_interrupt or `until_ms` (CLOCK_MONOTONIC ms, as
 * osp_ws_now_ms; 0: no deadline). Fills `out` with up to `max` events, the wake-up eventfd's
 * own event already taken out; returns how many are left (0: woken or timed out). */
int osp_http_poll_wait(struct epoll_event *out, int max, uint64_t until_ms);
/* Makes the current or next osp_http_poll_wait return; any thread. One eventfd write per wait
 * at most (a flag folds the others). */
void osp_http_poll_interrupt(void);

/* A deadline in the heap (embedded in its owner). */
typedef struct osp_http_deadline {
    uint64_t at_ms;     /* CLOCK_MONOTONIC ms */
    uint32_t index;     /* in the heap; OSP_HTTP_DEADLINE_IDLE when not armed */
    void (*fire)(struct osp_http_deadline *d);
} osp_http_deadline;
#define OSP_HTTP_DEADLINE_IDLE UINT32_MAX

/* The heap is guarded by the caller's lock (the HTTP server's connection role). */
void osp_http_deadline_init(osp_http_deadline *d, void (*fire)(osp_http_deadline *d));
bool osp_http_deadline_armed(const osp_http_deadline *d);
/* Arms `d` for `at_ms` (moving it if armed). Interrupts a poll wait that would sleep past it. */
void osp_http_deadline_arm(osp_http_deadline *d, uint64_t at_ms);
void osp_http_deadline_cancel(osp_http_deadline *d);
/* Fires (after removing) every deadline due at `now_ms`. */
void osp_http_deadlines_run(uint64_t now_ms);
/* The earliest deadline (0: none); any thread (an atomic copy). */
uint64_t osp_http_deadlines_next(void);

#endif /* OSP_HTTP_POLL_H */
