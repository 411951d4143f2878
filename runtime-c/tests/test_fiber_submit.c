/*
 * The scheduler seen from C: a thread that is not a fiber (as a WebSocket I/O thread will be)
 * hands closures to the scheduler with osp_sched_submit; each runs as a fiber and sends on a
 * channel the main fiber receives from. Also: a foreign thread blocking in recv/send on a
 * rendezvous channel (it waits on a condition variable, never on a worker), select from a
 * fiber, await of a finished fiber twice, a collection forced while fibers are parked, and
 * batches (osp_sched_submit_many) with the nudge that keeps a computing fiber from holding up
 * the rest of its batch (osp_sched_nudge).
 *
 * osp_rt_run_main never returns: the main fiber's end exits the process with its status, so the
 * summary is printed from inside the main fiber.
 */
#include "check.h"
#include "fiber.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

static int64_t osp_now_ms_for_tests(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum { SUBMITTED = 200 };

static void *results;    /* Channel<Int>: what the submitted fibers send */
static void *handoff;    /* Channel<Int>, capacity 0: main fiber <-> foreign thread */

static int64_t submitted_body(void *env) {
    int64_t n = (int64_t)(intptr_t)env;
    OspResult r = osp_channel_send(results, n);
    return r.tag == OSP_RESULT_SUCCESS ? n : -1;
}

static void *submitter(void *arg) {
    (void)arg;
    for (int64_t i = 1; i <= SUBMITTED; i++) {
        if (osp_sched_submit(submitted_body, (void *)(intptr_t)i) == NULL) return NULL;
    }
    /* A foreign thread blocking on a rendezvous: the main fiber receives this value. */
    OspResult s = osp_channel_send(handoff, 4242);
    if (s.tag != OSP_RESULT_SUCCESS) return NULL;
    /* And receiving from it: the main fiber sends back. */
    OspResult r = osp_channel_recv(handoff);
    osp_sched_hold_external(-1);
    return r.tag == OSP_RESULT_SUCCESS && r.value == 99 ? (void *)1 : NULL;
}

/* ---- osp_sched_submit_many and osp_sched_nudge ------------------------------------------ */

enum { BATCH = 100, QUICK = 6 };
static void *batch_results; /* Channel<Int> */
static atomic_int quick_done;
static atomic_int spinner_saw_quick_done = -1;

static int64_t quick_body(void *env) {
    atomic_fetch_add(&quick_done, 1);
    return osp_channel_send(batch_results, (int64_t)(intptr_t)env).tag == OSP_RESULT_SUCCESS;
}

/* Computes (never parks) for about 400 ms, then records how many quick fibers of its batch had
 * run meanwhile: all of them, when another worker was nudged awake for the queue. */
static int64_t spinner_body(void *env) {
    (void)env;
    int64_t until = osp_now_ms_for_tests() + 400;
    volatile uint64_t x = 0;
    while (osp_now_ms_for_tests() < until) x++;
    atomic_store(&spinner_saw_quick_done, atomic_load(&quick_done));
    return osp_channel_send(batch_results, -1).tag == OSP_RESULT_SUCCESS;
}

static int spin_mark;
static int64_t mixed_body(void *env) { return env == &spin_mark ? spinner_body(env) : quick_body(env); }

static void *batch_submitter(void *arg) {
    (void)arg;
    /* Two plain batches: every closure runs once. */
    void *envs[BATCH];
    for (int b = 0; b < 2; b++) {
        for (int i = 0; i < BATCH; i++) envs[i] = (void *)(intptr_t)(b * BATCH + i + 1);
        osp_sched_submit_many(quick_body, envs, BATCH);
    }
    /* Then a long computation ahead of quick fibers in one batch, with the nudges the HTTP
     * server gives while batch fibers are queued. */
    /* Every fiber of those batches has counted itself before the count starts again (a fixed
     * pause was not always enough on a slow or loaded machine, under ThreadSanitizer). */
    while (atomic_load(&quick_done) < 2 * BATCH) osp_sleep(2);
    osp_sleep(50);
    atomic_store(&quick_done, 0);
    /* One batch (one wake-up): the spinner first, so the worker woken for it takes it. */
    void *mixed[1 + QUICK];
    mixed[0] = &spin_mark;
    for (int i = 0; i < QUICK; i++) mixed[1 + i] = (void *)(intptr_t)1000;
    osp_sched_submit_many(mixed_body, mixed, 1 + QUICK);
    while (osp_sched_nudge()) osp_sleep(2);
    osp_sched_hold_external(-1);
    return (void *)1;
}

static int64_t square_body(void *env) {
    int64_t n = (int64_t)(intptr_t)env;
    osp_fiber_yield();
    return n * n;
}

/* Parks on a channel holding the only pointer to a collected block, then checks it. */
static void *gc_wake;
static int64_t keeper_body(void *env) {
    (void)env;
    char *kept = GC_MALLOC_ATOMIC(64);
    if (kept == NULL) return 0;
    strcpy(kept, "still here");
    OspResult r = osp_channel_recv(gc_wake);
    return r.tag == OSP_RESULT_SUCCESS && strcmp(kept, "still here") == 0;
}

static int64_t main_body(void *env) {
    (void)env;
    results = osp_channel_new(8, "test_fiber_submit.c");
    handoff = osp_channel_new(0, "test_fiber_submit.c");
    /* While the thread may still hand work over, fibers waiting for it are not a deadlock. */
    osp_sched_hold_external(1);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, submitter, NULL) == 0, "pthread_create");

    int64_t sum = 0;
    for (int i = 0; i < SUBMITTED; i++) {
        OspResult r = osp_channel_recv(results);
        CHECK(r.tag == OSP_RESULT_SUCCESS, "recv %d", i);
        sum += r.value;
    }
    CHECK(sum == (int64_t)SUBMITTED * (SUBMITTED + 1) / 2, "sum of submitted values: %lld", (long long)sum);

    OspResult h = osp_channel_recv(handoff);
    CHECK(h.tag == OSP_RESULT_SUCCESS && h.value == 4242, "value sent by a foreign thread: %lld", (long long)h.value);
    CHECK(osp_channel_send(handoff, 99).tag == OSP_RESULT_SUCCESS, "send to a foreign thread");
    void *thread_ok = NULL;
    CHECK(pthread_join(thread, &thread_ok) == 0 && thread_ok != NULL, "the foreign thread saw every step succeed");

    /* await twice gives the same value. */
    void *f = osp_fiber_spawn(square_body, (void *)(intptr_t)12);
    CHECK(osp_fiber_await(f) == 144, "await");
    CHECK(osp_fiber_await(f) == 144, "await again");

    /* select: the first ready arm in order; the default when none is. */
    void *a = osp_channel_new(1, "test_fiber_submit.c");
    void *b = osp_channel_new(1, "test_fiber_submit.c");
    int64_t arms[6] = {OSP_SELECT_RECV, (int64_t)(intptr_t)a, 0, OSP_SELECT_RECV, (int64_t)(intptr_t)b, 0};
    OspResult none = osp_select(arms, 2, 1);
    CHECK(none.tag == -1, "select with nothing ready takes the default: %lld", (long long)none.tag);
    osp_channel_send(b, 5);
    OspResult got = osp_select(arms, 2, 0);
    CHECK(got.tag == 1 && got.value == 5, "select takes the ready arm: %lld %lld", (long long)got.tag, (long long)got.value);

    /* Batches from a foreign thread, and a long fiber that must not hold up its batch. */
    batch_results = osp_channel_new(16, "test_fiber_submit.c");
    osp_sched_hold_external(1);
    pthread_t batcher;
    CHECK(pthread_create(&batcher, NULL, batch_submitter, NULL) == 0, "pthread_create");
    int64_t batch_sum = 0;
    for (int i = 0; i < 2 * BATCH; i++) {
        OspResult r = osp_channel_recv(batch_results);
        CHECK(r.tag == OSP_RESULT_SUCCESS, "batch recv %d", i);
        batch_sum += r.value;
    }
    CHECK(batch_sum == (int64_t)(2 * BATCH) * (2 * BATCH + 1) / 2, "every closure of two batches ran once: %lld", (long long)batch_sum);
    int quick_seen = 0, spinner_seen = 0;
    for (int i = 0; i < 1 + QUICK; i++) {
        OspResult r = osp_channel_recv(batch_results);
        if (r.value == -1) spinner_seen++;
        else if (r.value == 1000) quick_seen++;
    }
    CHECK(spinner_seen == 1 && quick_seen == QUICK, "the mixed batch ran: %d spinner, %d quick", spinner_seen, quick_seen);
    CHECK(atomic_load(&spinner_saw_quick_done) == QUICK,
          "the quick fibers queued behind a computing one ran while it computed (another worker was nudged): %d of %d",
          atomic_load(&spinner_saw_quick_done), QUICK);
    void *batcher_ok = NULL;
    CHECK(pthread_join(batcher, &batcher_ok) == 0 && batcher_ok != NULL, "the batch submitter finished");

    /* A collection while a fiber is parked keeps what only its stack refers to. */
    gc_wake = osp_channel_new(0, "test_fiber_submit.c");
    void *keeper = osp_fiber_spawn(keeper_body, NULL);
    osp_sleep(20);
    for (int i = 0; i < 20; i++) {
        for (int k = 0; k < 1000; k++) {
            char *junk = GC_MALLOC_ATOMIC(64);
            if (junk) memset(junk, 'x', 64);
        }
        GC_gcollect();
    }
    osp_channel_send(gc_wake, 1);
    CHECK(osp_fiber_await(keeper) == 1, "the parked fiber's block survived collections");

    return check_summary("fiber scheduler");
}

int main(void) {
    /* Two workers whatever the machine: a computing fiber must leave its batch another worker. */
    setenv("OSPREY_THREADS", "2", 1);
    osp_rt_init(OSP_ABI_VERSION);
    osp_rt_run_main(main_body, NULL);
    return 1; /* not reached: the main fiber's end exits */
}
