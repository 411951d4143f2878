/*
 * Fibers, channels and select (docs/guide/16-fibers-and-channels.md): the internal interface between the scheduler
 * (fiber.c) and the channel module (channel.c). Compiled code only sees the osp_fiber_* /
 * osp_channel_* / osp_select functions of the ABI (include/osprey_abi.h).
 *
 * Threads and locks: every field of the scheduler, of every fiber and of every channel is guarded
 * by one lock, osp_sched_lock (see fiber.c for why one lock). A fiber parks with the lock held;
 * the scheduler releases it only after the fiber's registers are saved, so a waker (which must
 * hold the lock to find the fiber) can never resume a fiber that has not finished switching out.
 */
#ifndef OSP_FIBER_H
#define OSP_FIBER_H

#include "runtime.h"

typedef struct osp_fiber osp_fiber;
typedef struct osp_waiter osp_waiter;

/* One blocked operation of one fiber (or foreign thread) on a channel or on a fiber's result:
 * lives on the blocked fiber's own stack, which stays put while it is parked. A select has one
 * waiter per channel arm; the first to fire wins and the others are unlinked. */
struct osp_waiter {
    osp_fiber *fiber;
    osp_waiter *prev, *next; /* in the channel's (or awaited fiber's) wait queue */
    struct osp_wait_queue *queue; /* the queue holding this waiter, NULL once removed */
    int64_t value;           /* send: the word to deliver; recv: the word received */
    int64_t arm;             /* select arm index (0 for a plain send/recv/await) */
    int is_send;
};

typedef struct osp_wait_queue {
    osp_waiter *head, *tail;
} osp_wait_queue;

/* Lock/unlock the scheduler lock (channels and fibers). */
void osp_sched_lock(void);
void osp_sched_unlock(void);

/* The calling fiber, or NULL on a thread that is not running a fiber (the WebSocket runtime
 * thread calling a handler, a C test's own thread). */
osp_fiber *osp_fiber_self(void);

/* Who blocks: the running fiber, or for a foreign thread `thread_record` (caller's storage,
 * set up here with a condition variable; release it with osp_blocker_end). */
typedef struct osp_thread_record osp_thread_record;
struct osp_thread_record {
    unsigned char opaque[272];
};
osp_fiber *osp_blocker_begin(osp_thread_record *thread_record);
void osp_blocker_end(osp_fiber *blocker);

/* With the lock held: blocks `me` until one of `ops` (already queued, ops[i].fiber == me) fires
 * (osp_waiter_fire) and returns the waiter that fired. The lock is NOT held on return (the
 * waiter's value is safe to read: it was written under the lock before the wake-up). `op` and
 * `handle` describe the wait for the deadlock report ("recv", 3). */
osp_waiter *osp_sched_block(osp_fiber *me, osp_waiter *ops, int nops, const char *op, int64_t handle);

/* With the lock held: completes `w` (the caller already stored w->value for a recv), unlinks every
 * other waiter of the same blocked operation, and makes its fiber runnable. */
void osp_waiter_fire(osp_waiter *w);

void osp_wait_queue_push(osp_wait_queue *q, osp_waiter *w);
osp_waiter *osp_wait_queue_pop(osp_wait_queue *q);

/* Handle numbers shown by print (docs/guide/16-fibers-and-channels.md): one counter shared by fibers and channels. */
int64_t osp_next_handle(void);

#endif /* OSP_FIBER_H */
