/*
 * Channels and select (docs/guide/16-fibers-and-channels.md). A channel is a FIFO of 64-bit words (every
 * Osprey value is one word) with a fixed capacity; capacity 0 is a rendezvous: a send completes
 * only when a receiver takes the value. Blocked senders and receivers wait in FIFO queues of
 * waiters that live on their own stacks (fiber.h). Everything here runs under the scheduler lock.
 */
#include "fiber.h"

#include <alloca.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* The first word is the handle number (compiled code reads it for display). */
typedef struct {
    int64_t id;
    int64_t capacity;
    int64_t *buffer; /* capacity words, from the collector (the values stay reachable) */
    int64_t head;    /* index of the oldest buffered value */
    int64_t count;
    osp_wait_queue senders;   /* blocked senders; waiter.value is the value to deliver */
    osp_wait_queue receivers; /* blocked receivers */
} osp_channel;

void *osp_channel_new(int64_t capacity, const char *location) {
    if (capacity < 0) {
        char message[96];
        snprintf(message, sizeof message, "channel capacity must be 0 or more, got %" PRId64, capacity);
        osp_rt_fail(message, location);
    }
    if (capacity > ((int64_t)1 << 32)) {
        char message[96];
        snprintf(message, sizeof message, "channel capacity %" PRId64 " is too large (at most 4294967296)", capacity);
        osp_rt_fail(message, location);
    }
    osp_channel *c = GC_MALLOC(sizeof *c);
    if (c == NULL) osp_rt_fail("out of memory creating a channel", location);
    c->id = osp_next_handle();
    c->capacity = capacity;
    if (capacity > 0) {
        c->buffer = GC_MALLOC((size_t)capacity * sizeof(int64_t));
        if (c->buffer == NULL) osp_rt_fail("out of memory creating a channel buffer", location);
    }
    return c;
}

static void buffer_put(osp_channel *c, int64_t v) {
    c->buffer[(c->head + c->count) % c->capacity] = v;
    c->count++;
}

static int64_t buffer_take(osp_channel *c) {
    int64_t v = c->buffer[c->head];
    c->buffer[c->head] = 0; /* do not keep the value alive from the buffer */
    c->head = (c->head + 1) % c->capacity;
    c->count--;
    return v;
}

static int can_send(const osp_channel *c) { return c->receivers.head != NULL || c->count < c->capacity; }
static int can_recv(const osp_channel *c) { return c->count > 0 || c->senders.head != NULL; }

/* Both with the lock held and the readiness checked. */
static void send_now(osp_channel *c, int64_t v) {
    osp_waiter *r = osp_wait_queue_pop(&c->receivers);
    if (r) {
        r->value = v;
        osp_waiter_fire(r);
    } else {
        buffer_put(c, v);
    }
}

static int64_t recv_now(osp_channel *c) {
    if (c->count > 0) {
        int64_t v = buffer_take(c);
        /* A sender waiting for room moves its value into the freed slot. */
        osp_waiter *s = osp_wait_queue_pop(&c->senders);
        if (s) {
            buffer_put(c, s->value);
            osp_waiter_fire(s);
        }
        return v;
    }
    osp_waiter *s = osp_wait_queue_pop(&c->senders);
    int64_t v = s->value;
    osp_waiter_fire(s);
    return v;
}

OspResult osp_channel_send(void *channel, int64_t value) {
    osp_channel *c = channel;
    osp_sched_lock();
    if (can_send(c)) {
        send_now(c, value);
        osp_sched_unlock();
        return osp_result_success(0);
    }
    osp_thread_record rec;
    osp_fiber *me = osp_blocker_begin(&rec);
    osp_waiter w = {.fiber = me, .value = value, .is_send = 1};
    osp_wait_queue_push(&c->senders, &w);
    osp_sched_block(me, &w, 1, "send", c->id);
    osp_blocker_end(me);
    return osp_result_success(0);
}

OspResult osp_channel_recv(void *channel) {
    osp_channel *c = channel;
    osp_sched_lock();
    if (can_recv(c)) {
        int64_t v = recv_now(c);
        osp_sched_unlock();
        return osp_result_success(v);
    }
    osp_thread_record rec;
    osp_fiber *me = osp_blocker_begin(&rec);
    osp_waiter w = {.fiber = me};
    osp_wait_queue_push(&c->receivers, &w);
    osp_sched_block(me, &w, 1, "recv", c->id);
    int64_t v = w.value;
    osp_blocker_end(me);
    return osp_result_success(v);
}

/* Arms are triples of words [kind, channel, value]. The first ready arm in source order wins;
 * with none ready, the default arm (-1) when there is one, else wait on every channel arm. */
OspResult osp_select(void *arms, int64_t count, int64_t has_default) {
    const int64_t *a = arms;
    osp_sched_lock();
    for (int64_t i = 0; i < count; i++) {
        int64_t kind = a[3 * i];
        osp_channel *c = (osp_channel *)(intptr_t)a[3 * i + 1];
        if (kind == OSP_SELECT_ALWAYS) {
            osp_sched_unlock();
            OspResult r = {i, 0};
            return r;
        }
        if (kind == OSP_SELECT_RECV && can_recv(c)) {
            int64_t v = recv_now(c);
            osp_sched_unlock();
            OspResult r = {i, v};
            return r;
        }
        if (kind == OSP_SELECT_SEND && can_send(c)) {
            send_now(c, a[3 * i + 2]);
            osp_sched_unlock();
            OspResult r = {i, 0};
            return r;
        }
    }
    if (has_default || count == 0) {
        osp_sched_unlock();
        OspResult r = {-1, 0};
        return r;
    }
    osp_thread_record rec;
    osp_fiber *me = osp_blocker_begin(&rec);
    /* A select has a handful of arms (bounded by the source text). */
    osp_waiter *ws = alloca((size_t)count * sizeof *ws);
    for (int64_t i = 0; i < count; i++) {
        osp_channel *c = (osp_channel *)(intptr_t)a[3 * i + 1];
        int is_send = a[3 * i] == OSP_SELECT_SEND;
        ws[i] = (osp_waiter){.fiber = me, .arm = i, .is_send = is_send, .value = is_send ? a[3 * i + 2] : 0};
        osp_wait_queue_push(is_send ? &c->senders : &c->receivers, &ws[i]);
    }
    osp_waiter *fired = osp_sched_block(me, ws, (int)count, "select", 0);
    OspResult r = {fired->arm, fired->is_send ? 0 : fired->value};
    osp_blocker_end(me);
    return r;
}
