/*
 * The fiber scheduler (docs/guide/16-fibers-and-channels.md): M:N green threads on a pool of worker threads.
 *
 * - The main program is a fiber too (osp_rt_run_main). Stacks (fiber_stack.c: a guard page
 *   below each, 1 GiB for the main fiber, 16 MiB for spawned ones, pooled) are taken when a fiber
 *   first runs and given back when it finishes.
 * - Context switches are a few instructions of x86-64 assembly (callee-saved registers pushed on
 *   the fiber's own stack): no signal mask syscall as with swapcontext.
 * - Workers: one per core (OSPREY_THREADS overrides), the process's main thread being worker 0.
 *   Every worker is registered with Boehm GC (GC_pthread_create).
 * - One lock (sched_lock) guards the run queue, timers, every fiber's state and every channel. A
 *   single lock makes select over several channels and deadlock detection simple and correct;
 *   uncontended it costs ~20 ns, and the per-worker `runnext` slot keeps a ping-pong between two
 *   fibers on one worker (no cross-thread wake-up), which is where Go spends its time too.
 * - An idle poller (osp_sched_set_idle_poller; the HTTP server's sockets): a worker with nothing
 *   to run takes the poller role, if no other worker holds it, and waits in the poller instead of
 *   on the futex, counted as idle; a wake-up that finds no worker on the futex interrupts that
 *   wait (the poller's eventfd). Fibers the poller starts run next on its own worker.
 * - Garbage collection: the collector scans the stack of the fiber each worker is running
 *   (GC_set_stackbottom on every switch) and the stacks of parked fibers from a push-other-roots
 *   callback. A switch is a critical section the collector waits for before stopping the world,
 *   so it never sees a thread whose stack pointer and registered stack bottom disagree.
 * - A guard-page hit is reported from a SIGSEGV handler on an alternate signal stack:
 *   "stack overflow in function NAME", exit status 134.
 * - When every fiber waits for something no fiber, timer or outside source can provide, the
 *   program stops with "deadlock: all fibers are blocked (main fiber waiting in recv on channel
 *   3)" instead of hanging.
 */
#include "fiber.h"
#include "fiber_stack.h"
#include "sanitizer.h"

#include <gc/gc_mark.h>

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <link.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#if OSP_TSAN
/* TSan's dynamic annotations (no public header declares them). */
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
#endif

/* ---- configuration ---------------------------------------------------------------------- */

#define MAX_WORKERS 256
#define ALTSTACK_BYTES (64 * 1024)

/* ---- data ------------------------------------------------------------------------------- */

enum fiber_state { FIBER_NEW, FIBER_READY, FIBER_RUNNING, FIBER_PARKED, FIBER_DONE };

/* A fiber. The first three words are read by compiled code: the handle number (display), then
 * done and result (await reads them through osp_fiber_await). Allocated from the collector and
 * linked into sched.live while not finished, so nothing a live fiber holds (its closure, its
 * awaiters) is collected; once finished it lives as long as a program value refers to it. */
struct osp_fiber {
    int64_t id;
    int64_t done;
    int64_t result;
    osp_fiber_body_fn body;
    void *env;
    int state;
    int is_main;
    osp_fiber_stack stack; /* stack.lo NULL: none (not started, or finished) */
    void *sp;           /* saved stack pointer while switched out */
    atomic_int running; /* 1 while a worker's registers hold this fiber (GC scans it as a thread) */
    osp_fiber *next_ready;
    osp_fiber *live_prev, *live_next;
    osp_wait_queue awaiters; /* fibers blocked in await on this one */
    /* The operation it is blocked in: its waiters (on this fiber's stack) and the one that fired. */
    osp_waiter *ops;
    int nops;
    osp_waiter *fired;
    const char *wait_op;
    int64_t wait_handle;
    int64_t wake_at_ns; /* sleeping: monotonic deadline */
    int64_t timer_seq;
    /* A foreign thread blocked in a channel operation is represented by a stack-allocated fiber
     * record with this condition variable (it never runs on a worker). */
    pthread_cond_t *thread_cond;
    void *asan_fake_stack;
    void (*on_park)(void *arg); /* osp_fiber_set_park_hook */
    void *on_park_arg;
};

typedef struct {
    int index;
    void *sched_sp;     /* the worker loop's context while a fiber runs */
    osp_fiber *current; /* fiber running on this worker, or NULL in the loop */
    osp_fiber *runnext; /* woken by the current fiber: runs next here (LIFO, like Go's runnext) */
    void *gc_handle;
    struct GC_stack_base native_base;
    int unlock_after_switch; /* the fiber parked with sched_lock held: release it in the loop */
    osp_fiber *finished;     /* the fiber that just ended: recycle its stack in the loop */
    void (*park_hook)(void *arg); /* the fiber that just parked asked for this: run in the loop, unlocked */
    void *park_hook_arg;
    void *asan_fake_stack;   /* the loop's ASan fake stack while a fiber runs */
    const void *native_asan_bottom;
    size_t native_asan_size;
    void *tsan_loop_fiber; /* the thread's own TSan context: the worker loop's (TSan builds only) */
    /* Scheduling decisions taken (under sched.lock). An idle worker steals another's runnext only
     * when this did not move since its previous look: that worker is stuck in one long fiber.
     * Stealing eagerly would split a ping-pong across threads and pay a wake-up per message. */
    uint64_t ticks;
    uint64_t seen_ticks[MAX_WORKERS + 1];
    int active; /* its loop runs (sched.lock) */
} osp_worker;

static struct {
    pthread_mutex_t lock;
    /* Idle workers sleep on this futex word (see idle_wait); a wake-up bumps it. Not a condition
     * variable: glibc's condition wait relocks the mutex as if contended, so every worker wake-up
     * cost a futex wake more when the worker released sched.lock (one per HTTP batch). */
    _Atomic uint32_t wake_seq;
    atomic_int sleepers; /* workers in (or entering) the futex wait */
    /* A wake-up was sent and the worker it woke has not run yet: a burst of wake-ups (a loop of
     * spawns) then costs one futex wake, not one each (a condition variable skips them the same
     * way). The woken worker passes the wake-up on when it finds more queued than the fiber it
     * takes (next_fiber), so every fiber of the burst still gets a worker. Cleared by every
     * worker that enters or leaves the wait, so it cannot stay raised with a worker asleep. */
    atomic_bool waking;
    /* Idle workers, most recently idle last (sched.lock), and the last one's index for wakers
     * that do not hold the lock (-1: none). A wake-up goes to the most recently idle worker: its
     * caches are warm, and under a steady stream of HTTP batches one worker takes them all while
     * the others stay asleep. Waking the longest idle one instead (the futex queue's order)
     * alternated batches between workers, and the cold worker's batches came out smaller: about
     * twice the runner starts and context switches per request (docs/BENCHMARKS-HTTP.md). */
    int idle_order[MAX_WORKERS + 1];
    int idle_order_len;
    atomic_int newest_idle;
    int started;
    int nworkers;      /* worker loops running (sched.lock) */
    int nslots;        /* entries of `workers` */
    int idle;          /* workers waiting on `wake` */
    int blocked_threads; /* foreign threads blocked in a channel operation */
    int external_holds;  /* outside event sources that may wake a fiber (osp_sched_hold_external) */
    osp_fiber *ready_head, *ready_tail;
    osp_fiber *live; /* every fiber not yet finished (a GC root: this struct is static data) */
    int64_t live_count;
    osp_fiber *main;
    /* Timers: a binary min-heap of sleeping fibers by wake_at_ns (malloc'd; the fibers are
     * reachable through `live`). */
    osp_fiber **timers;
    size_t ntimers, timers_cap;
    int64_t timer_seq;
    /* The idle poller (osp_sched_set_idle_poller): `polling` says a worker holds the poller role
     * (sched.lock; mirrored in poll_held for lock-free readers), `poller_waiting` that it is
     * blocked in the poller's wait() and counted in `idle` (a wake-up then interrupts that wait
     * when no worker sleeps on the futex), `poll_taken` how often the role was taken. */
    const osp_idle_poller *poller;
    int polling;
    atomic_bool poll_held;
    atomic_bool poller_waiting;
    _Atomic uint64_t poll_taken;
    atomic_bool poll_asked; /* osp_sched_wake_poller: the next idle worker takes the role */
    uint64_t ready_pops;      /* fibers taken from the shared queue so far (osp_sched_nudge) */
    uint64_t nudge_seen_pops; /* ready_pops at the previous osp_sched_nudge */
} sched = {.lock = PTHREAD_MUTEX_INITIALIZER, .newest_idle = -1};

/* Slot 0 is the main thread (osp_rt_run_main), 1… the worker threads. Malloc'd, not scanned by
 * the collector: every fiber a worker refers to is also on sched.live. */
static osp_worker *workers;
static __thread osp_worker *tls_worker;

static atomic_int_fast64_t next_handle = 1;

/* The collector/switch handshake (see the file comment). */
static atomic_int switches_in_progress;
static atomic_int collector_waiting;

/* Executable load address, for naming the function that overflowed its stack. */
static uintptr_t exe_load_bias;

int64_t osp_next_handle(void) { return atomic_fetch_add(&next_handle, 1); }

void osp_sched_lock(void) { pthread_mutex_lock(&sched.lock); }
void osp_sched_unlock(void) { pthread_mutex_unlock(&sched.lock); }

/* The worker of the calling thread. Never inlined or cached across a context switch: a fiber may
 * resume on another thread, and a compiler may otherwise keep the old thread's TLS address. */
__attribute__((noinline, noipa)) static osp_worker *current_worker(void) {
    osp_worker *w = tls_worker;
    __asm__ volatile("" ::: "memory");
    return w;
}

osp_fiber *osp_fiber_self(void) {
    osp_worker *w = current_worker();
    return w ? w->current : NULL;
}

static _Noreturn void sched_fatal(const char *fmt, const char *detail) {
    osp_output_lock();
    fflush(stdout);
    fputs("Error: ", stderr);
    fprintf(stderr, fmt, detail);
    fputc('\n', stderr);
    fflush(stderr);
    osp_output_unlock();
    _Exit(1);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- idle workers -------------------------------------------------------------------------- */

/* Wakes one idle worker, if one sleeps and none is being woken; any thread, with or without
 * sched.lock. A worker counted in sched.idle read wake_seq under the lock before it slept, so the
 * increment below either makes its futex wait return at once or comes before the wake. */
static uint32_t idle_bit(int index) { return 1u << ((unsigned)index & 31u); }

static void wake_idle_worker(void) {
    atomic_fetch_add(&sched.wake_seq, 1);
    if (atomic_load(&sched.sleepers) == 0) {
        /* No worker sleeps on the futex: the one idle worker, if any, waits in the poller. It
         * announced that under sched.lock before it let go of the lock, and whoever made work
         * runnable did so under the lock, so this sees it (or the poller sees the work). */
        if (atomic_load(&sched.poller_waiting)) sched.poller->interrupt();
        return;
    }
    if (!atomic_exchange(&sched.waking, true)) {
        /* The most recently idle worker first (each waits with its own bit); if it is not in the
         * wait (just leaving it, or not yet in it: then it sees the new wake_seq and returns at
         * once), any sleeper. */
        int newest = atomic_load(&sched.newest_idle);
        long woken = 0;
        if (newest >= 0)
            woken = syscall(SYS_futex, &sched.wake_seq, FUTEX_WAKE_BITSET_PRIVATE, 1, NULL, NULL, idle_bit(newest));
        if (woken <= 0) (void)syscall(SYS_futex, &sched.wake_seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
}

/* The idle-order list (sched.lock held). */
static void idle_order_push(int index) {
    sched.idle_order[sched.idle_order_len++] = index;
    atomic_store(&sched.newest_idle, index);
}

static void idle_order_remove(int index) {
    int n = sched.idle_order_len;
    for (int i = n - 1; i >= 0; i--) {
        if (sched.idle_order[i] != index) continue;
        memmove(&sched.idle_order[i], &sched.idle_order[i + 1], (size_t)(n - 1 - i) * sizeof sched.idle_order[0]);
        n--;
        break;
    }
    sched.idle_order_len = n;
    atomic_store(&sched.newest_idle, n > 0 ? sched.idle_order[n - 1] : -1);
}

/* Sleeps until wake_idle_worker or the CLOCK_MONOTONIC deadline (`until_ns` < 0: none); entered
 * and left with sched.lock held. May return early (a signal, a wake-up meant for another worker):
 * the caller looks at the queues again either way. */
static void idle_wait(const osp_worker *w, int64_t until_ns) {
#if OSP_TSAN
    /* TSan holds an asynchronous signal back until the thread reaches one of its interceptors,
     * and it does not know that a raw futex wait blocks: a worker asleep here would never take
     * the collector's suspend signal, and the collection would wait for it forever. Wake at
     * least every 5 ms (the lock taken on return delivers the signal). */
    int64_t tsan_poll = now_ns() + 5000000;
    if (until_ns < 0 || until_ns > tsan_poll) until_ns = tsan_poll;
#endif
    uint32_t seq = atomic_load(&sched.wake_seq);
    idle_order_push(w->index);
    pthread_mutex_unlock(&sched.lock);
    atomic_fetch_add(&sched.sleepers, 1);
    atomic_store(&sched.waking, false);
    struct timespec ts;
    if (until_ns >= 0) {
        ts.tv_sec = (time_t)(until_ns / 1000000000);
        ts.tv_nsec = (long)(until_ns % 1000000000);
    }
    /* FUTEX_WAIT_BITSET: the deadline is absolute, on CLOCK_MONOTONIC. */
    (void)syscall(SYS_futex, &sched.wake_seq, FUTEX_WAIT_BITSET_PRIVATE, seq, until_ns >= 0 ? &ts : NULL, NULL,
                  idle_bit(w->index));
    atomic_fetch_sub(&sched.sleepers, 1);
    atomic_store(&sched.waking, false);
    pthread_mutex_lock(&sched.lock);
    idle_order_remove(w->index);
}

/* ---- context switch ------------------------------------------------------------------------ */

/* osp_ctx_switch(save, to): pushes the callee-saved registers on the current stack, stores the
 * stack pointer in *save, loads `to` and pops the registers saved there. A new stack is prepared
 * by prepare_stack() so that the first switch "returns" into fiber_start. */
void osp_ctx_switch(void **save, void *to);
__asm__(".text\n"
        ".globl osp_ctx_switch\n"
        ".type osp_ctx_switch,@function\n"
        "osp_ctx_switch:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size osp_ctx_switch, .-osp_ctx_switch\n");

/* Enters the critical section the collector waits for (GC_EVENT_PRE_STOP_WORLD). */
static void switch_begin(void) {
    for (;;) {
        atomic_fetch_add(&switches_in_progress, 1);
        if (!atomic_load(&collector_waiting)) return;
        atomic_fetch_sub(&switches_in_progress, 1);
        while (atomic_load(&collector_waiting)) sched_yield();
    }
}
static void switch_end(void) { atomic_fetch_sub(&switches_in_progress, 1); }

static GC_on_collection_event_proc previous_collection_event;
static void on_collection_event(GC_EventType event) {
    if (event == GC_EVENT_PRE_STOP_WORLD) {
        atomic_store(&collector_waiting, 1);
        while (atomic_load(&switches_in_progress) != 0) {
            /* A switch is a handful of instructions: spin. */
        }
    } else if (event == GC_EVENT_POST_START_WORLD) {
        atomic_store(&collector_waiting, 0);
    }
    if (previous_collection_event) previous_collection_event(event);
}

/* Parked (and ready-but-suspended) fibers' stacks: the collector sees no thread on them.
 *
 * Runs with the world stopped, without sched.lock (its holder may be stopped): every other
 * thread is frozen at some instruction, possibly half-way through live_link, prepare_stack or
 * give_stack. Those order their stores for this observer (stop_world_fence), so what is read here
 * is either the old or the new state, never a mix. Under ThreadSanitizer these reads are not
 * recorded: the stop and the restart that order them against the workers' writes happen inside
 * the collector, which is not instrumented (only the stop's acknowledgement is visible to TSan). */
static GC_push_other_roots_proc previous_push_other_roots;
static void push_fiber_stacks(void) {
#if OSP_TSAN
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
#endif
    for (osp_fiber *f = sched.live; f != NULL; f = f->live_next) {
        if (f->stack.lo != NULL && f->sp != NULL && !atomic_load(&f->running)) {
            GC_push_all_eager(f->sp, f->stack.hi);
        }
    }
#if OSP_TSAN
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
#endif
    if (previous_push_other_roots) previous_push_other_roots();
}

/* ---- stacks -------------------------------------------------------------------------------- */

/* Orders this thread's stores for the collector, which reads the fiber list and stacks while
 * the thread is stopped at an arbitrary instruction (push_fiber_stacks): a compiler barrier is
 * what a signal-interrupted observer needs (the stop itself is a full memory barrier). */
static inline void stop_world_fence(void) { atomic_signal_fence(memory_order_seq_cst); }

/* Gives f's stack back (fiber_stack.c), in the worker loop after the switch away from f (so
 * never the current stack or TSan context). */
static void give_stack(osp_fiber *f) {
    atomic_store(&f->running, 0);
    f->sp = NULL; /* first: a collection that stops this thread below skips the fiber */
    stop_world_fence();
    osp_fiber_stack_give(&f->stack);
}

static void fiber_start(void);

/* Gives `f` a stack whose first switch enters fiber_start with the stack aligned as after a call. */
static void prepare_stack(osp_fiber *f) {
    if (!osp_fiber_stack_take(&f->stack, f->is_main)) {
        char detail[160];
        snprintf(detail, sizeof detail, "%s (%" PRId64 " fibers alive; the system limits memory mappings per process, see vm.max_map_count)",
                 strerror(errno), sched.live_count);
        sched_fatal("cannot allocate a stack for a new fiber: %s", detail);
    }
    uintptr_t top = (uintptr_t)f->stack.hi & ~(uintptr_t)15;
    void **sp = (void **)top;
    *--sp = NULL;                 /* fake return address of fiber_start (alignment as after a call) */
    *--sp = (void *)fiber_start;  /* osp_ctx_switch's `ret` lands here */
    for (int i = 0; i < 6; i++) *--sp = NULL; /* rbp rbx r12 r13 r14 r15 */
    stop_world_fence(); /* the range is complete before sp makes the collector push it */
    f->sp = sp;
}

/* ---- run queue and timers (sched.lock held) --------------------------------------------- */

static void enqueue_ready(osp_fiber *f) {
    f->next_ready = NULL;
    if (sched.ready_tail) sched.ready_tail->next_ready = f;
    else sched.ready_head = f;
    sched.ready_tail = f;
}

static void push_ready(osp_fiber *f) {
    enqueue_ready(f);
    if (sched.idle > 0) wake_idle_worker();
}

static osp_fiber *pop_ready(void) {
    osp_fiber *f = sched.ready_head;
    if (f) {
        sched.ready_pops++;
        sched.ready_head = f->next_ready;
        if (!sched.ready_head) sched.ready_tail = NULL;
        f->next_ready = NULL;
    }
    return f;
}

/* Makes a parked or new fiber runnable. Woken by a running fiber, it goes to that worker's
 * runnext slot (the displaced one to the shared queue), so a ping-pong stays on one thread. */
static void make_ready(osp_fiber *f) {
    f->state = FIBER_READY;
    osp_worker *w = current_worker();
    if (w && w->current) {
        osp_fiber *old = w->runnext;
        w->runnext = f;
        if (old) push_ready(old);
        return;
    }
    push_ready(f);
}

static int timer_before(const osp_fiber *a, const osp_fiber *b) {
    return a->wake_at_ns < b->wake_at_ns || (a->wake_at_ns == b->wake_at_ns && a->timer_seq < b->timer_seq);
}

static void timer_push(osp_fiber *f) {
    if (sched.ntimers == sched.timers_cap) {
        size_t cap = sched.timers_cap ? sched.timers_cap * 2 : 64;
        osp_fiber **t = realloc(sched.timers, cap * sizeof *t);
        if (t == NULL) sched_fatal("out of memory (%s)", "timer heap");
        sched.timers = t;
        sched.timers_cap = cap;
    }
    f->timer_seq = sched.timer_seq++;
    size_t i = sched.ntimers++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(f, sched.timers[parent])) break;
        sched.timers[i] = sched.timers[parent];
        i = parent;
    }
    sched.timers[i] = f;
}

static osp_fiber *timer_pop(void) {
    osp_fiber *top = sched.timers[0];
    osp_fiber *last = sched.timers[--sched.ntimers];
    size_t i = 0, n = sched.ntimers;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && timer_before(sched.timers[c + 1], sched.timers[c])) c++;
        if (!timer_before(sched.timers[c], last)) break;
        sched.timers[i] = sched.timers[c];
        i = c;
    }
    if (n > 0) sched.timers[i] = last;
    return top;
}

/* Wakes sleepers whose deadline passed; returns the next deadline or -1. */
static int64_t run_timers(void) {
    if (sched.ntimers == 0) return -1;
    int64_t now = now_ns();
    while (sched.ntimers > 0 && sched.timers[0]->wake_at_ns <= now) {
        osp_fiber *f = timer_pop();
        f->state = FIBER_READY;
        push_ready(f);
    }
    return sched.ntimers > 0 ? sched.timers[0]->wake_at_ns : -1;
}

/* ---- deadlock ------------------------------------------------------------------------------ */

static _Noreturn void report_deadlock(void) {
    char what[200];
    osp_fiber *m = sched.main;
    const char *noun = m->wait_op && strcmp(m->wait_op, "await") == 0 ? "fiber" : "channel";
    if (m->wait_op && strcmp(m->wait_op, "select") == 0)
        snprintf(what, sizeof what, "main fiber waiting in select");
    else
        snprintf(what, sizeof what, "main fiber waiting in %s on %s %" PRId64, m->wait_op ? m->wait_op : "a channel operation", noun,
                 m->wait_handle);
    int64_t others = sched.live_count - 1;
    if (others > 0) {
        size_t n = strlen(what);
        snprintf(what + n, sizeof what - n, "; %" PRId64 " other fiber%s blocked", others, others == 1 ? "" : "s");
    }
    sched_fatal("deadlock: all fibers are blocked (%s)", what);
}

/* ---- the worker loop ----------------------------------------------------------------------- */

static void after_switch_to_loop(osp_worker *w) {
    switch_end();
#if OSP_ASAN
    __sanitizer_finish_switch_fiber(w->asan_fake_stack, NULL, NULL);
#endif
#if OSP_TSAN
    /* sched.lock was taken by the fiber that parked and is released below by this loop: tell
     * TSan the loop's context holds it now (the fiber's context let go of it in switch_to_loop). */
    if (w->unlock_after_switch) {
        __tsan_mutex_pre_lock(&sched.lock, 0);
        __tsan_mutex_post_lock(&sched.lock, 0, 0);
    }
#endif
    if (w->finished) {
        osp_fiber *f = w->finished;
        w->finished = NULL;
        give_stack(f);
    }
    if (w->unlock_after_switch) {
        w->unlock_after_switch = 0;
        pthread_mutex_unlock(&sched.lock);
    }
    if (w->park_hook) {
        void (*hook)(void *) = w->park_hook;
        w->park_hook = NULL;
        hook(w->park_hook_arg);
    }
}

static void run_fiber(osp_worker *w, osp_fiber *f) {
    if (f->stack.lo == NULL) prepare_stack(f);
    f->state = FIBER_RUNNING;
    w->current = f;
    switch_begin();
    struct GC_stack_base sb = {.mem_base = f->stack.hi};
    GC_set_stackbottom(w->gc_handle, &sb);
    atomic_store(&f->running, 1);
#if OSP_ASAN
    const void *usable;
    size_t usable_bytes;
    osp_fiber_stack_usable(&f->stack, &usable, &usable_bytes);
    __sanitizer_start_switch_fiber(&w->asan_fake_stack, usable, usable_bytes);
#endif
#if OSP_TSAN
    __tsan_switch_to_fiber(f->stack.tsan_fiber, 0);
#endif
    osp_ctx_switch(&w->sched_sp, f->sp);
    w = current_worker();
    after_switch_to_loop(w);
}

/* An idle worker takes the poller role (sched.lock held, and held again on return): it
 * waits in the poller's wait() instead of on the futex, counted as idle meanwhile so wake-ups
 * reach it (wake_idle_worker interrupts the wait), then processes what it found as a busy
 * worker. Fibers that processing starts go to this worker's runnext (osp_sched_submit_here): a
 * request is read, handled and answered on this thread with no wake-up of another. */
static void poll_instead_of_sleeping(int64_t deadline) {
    sched.polling = 1;
    atomic_store(&sched.poll_held, true);
    atomic_fetch_add(&sched.poll_taken, 1);
    sched.idle++;
    /* Other workers busy: look again within 2 ms, as an idle worker on the futex does (one of
     * them may hold a runnext fiber while it computes). */
    int64_t until = sched.idle < sched.nworkers ? now_ns() + 2000000 : deadline;
    if (deadline >= 0 && deadline < until) until = deadline;
    atomic_store(&sched.poller_waiting, true);
    const osp_idle_poller *p = sched.poller;
    pthread_mutex_unlock(&sched.lock);
    int found = p->wait(until);
    pthread_mutex_lock(&sched.lock);
    atomic_store(&sched.poller_waiting, false);
    sched.idle--;
    if (found > 0) {
        pthread_mutex_unlock(&sched.lock);
        p->process();
        pthread_mutex_lock(&sched.lock);
    }
    sched.polling = 0;
    atomic_store(&sched.poll_held, false);
}

/* Takes the next fiber to run, waiting while there is none; NULL tells worker 0 to return
 * (never happens: the process exits when the main fiber ends). */
static osp_fiber *next_fiber(osp_worker *w) {
    pthread_mutex_lock(&sched.lock);
    for (;;) {
        int64_t deadline = run_timers();
        /* runnext first (a woken fiber runs next, on this worker), except every 61st decision:
         * then the shared queue first, so two fibers waking each other forever cannot starve
         * the others (Go's scheduler uses the same period). */
        osp_fiber *f = NULL;
        if (w->ticks % 61 == 60) f = pop_ready();
        if (!f && w->runnext) {
            f = w->runnext;
            w->runnext = NULL;
        }
        if (!f) f = pop_ready();
        if (!f) {
            /* A worker busy in one long fiber may hold a woken fiber in its runnext slot. */
            for (int i = 0; i < sched.nslots && !f; i++) {
                osp_worker *o = &workers[i];
                if (o == w || !o->active) continue;
                if (o->runnext && o->ticks == w->seen_ticks[i]) {
                    f = o->runnext;
                    o->runnext = NULL;
                }
                w->seen_ticks[i] = o->ticks;
            }
        }
        if (f) {
            w->ticks++;
            /* More is runnable: pass the wake-up on (wake-ups sent while this worker was being
             * woken were folded into its own). */
            if (sched.ready_head != NULL && sched.idle > 0) wake_idle_worker();
            pthread_mutex_unlock(&sched.lock);
            return f;
        }
        if (sched.idle == sched.nworkers - 1 && deadline < 0 && sched.external_holds == 0 && sched.blocked_threads == 0 &&
            sched.main != NULL && !sched.main->done && sched.main->state == FIBER_PARKED) {
            report_deadlock();
        }
        /* The role goes to the last worker to become idle (the others all idle: a busy server's
         * one hot worker polls between its batches), or to one the watchdog woke for it. An
         * idle worker that woke on its own (a 2 ms look for stuck runnext fibers) while another
         * works leaves the role vacant: taking it made the two workers alternate the batches,
         * each sleeping and waking in turn. */
        if (sched.poller != NULL && !sched.polling && (sched.idle + 1 >= sched.nworkers || atomic_exchange(&sched.poll_asked, false)) &&
            sched.poller->wanted()) {
            poll_instead_of_sleeping(deadline);
            continue;
        }
        sched.idle++;
        int others_busy = sched.idle < sched.nworkers;
        if (deadline >= 0 || others_busy) {
            /* With other workers busy, look again soon: one of them may sit on a runnext fiber
             * while it computes. */
            int64_t until = others_busy ? now_ns() + 2000000 : deadline;
            if (deadline >= 0 && deadline < until) until = deadline;
            idle_wait(w, until);
        } else {
            idle_wait(w, -1);
        }
        sched.idle--;
    }
}

/* The signal stack the overflow report runs on (a worker lives as long as the process; mmap'd so
 * the collector does not scan it and leak checkers do not count it). */
static void init_altstack(void) {
    stack_t ss;
    ss.ss_sp = mmap(NULL, ALTSTACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ss.ss_sp == MAP_FAILED) return; /* no overflow report on this thread; nothing else changes */
    ss.ss_size = ALTSTACK_BYTES;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) != 0 && munmap(ss.ss_sp, ALTSTACK_BYTES) != 0) {
        /* Nothing more to undo. */
    }
}

static void worker_init(osp_worker *w, int index) {
    w->index = index;
    tls_worker = w;
    w->gc_handle = GC_get_my_stackbottom(&w->native_base);
#if OSP_TSAN
    w->tsan_loop_fiber = __tsan_get_current_fiber();
#endif
    init_altstack();
    pthread_mutex_lock(&sched.lock);
    w->active = 1;
    sched.nworkers++;
    pthread_mutex_unlock(&sched.lock);
}

static void *worker_main(void *arg) {
    osp_worker *w = arg;
    /* Named explicitly: a thread inherits its creator's name, and the first spawn may come from
     * the WebSocket I/O thread (osprey-ws-io), which must not be confused with a worker. */
    (void)pthread_setname_np(pthread_self(), "osprey-worker");
    worker_init(w, w->index);
    for (;;) {
        osp_fiber *f = next_fiber(w);
        run_fiber(w, f);
    }
    return NULL;
}

/* ---- fibers -------------------------------------------------------------------------------- */

static void live_link(osp_fiber *f) {
    f->live_next = sched.live;
    if (sched.live) sched.live->live_prev = f;
    stop_world_fence(); /* f leads to the rest of the list before the list leads to f */
    sched.live = f;
    sched.live_count++;
}

static void live_unlink(osp_fiber *f) {
    if (f->live_prev) f->live_prev->live_next = f->live_next;
    else sched.live = f->live_next;
    if (f->live_next) f->live_next->live_prev = f->live_prev;
    stop_world_fence(); /* the list skips f before f stops leading to the rest of it */
    f->live_prev = f->live_next = NULL;
    sched.live_count--;
}

/* Switches from the running fiber to its worker's loop. sched.lock is held and is released by
 * the loop once this fiber's registers are saved; it is not held when this returns (resumed). */
static void switch_to_loop(osp_fiber *f, int exiting) {
    osp_worker *w = current_worker();
    w->unlock_after_switch = 1;
    if (exiting) w->finished = f;
    else if (f->on_park && f->state == FIBER_PARKED) {
        w->park_hook = f->on_park;
        w->park_hook_arg = f->on_park_arg;
    }
    w->current = NULL;
    switch_begin();
    GC_set_stackbottom(w->gc_handle, &w->native_base);
    atomic_store(&f->running, 0);
#if OSP_ASAN
    __sanitizer_start_switch_fiber(exiting ? NULL : &f->asan_fake_stack, w->native_asan_bottom, w->native_asan_size);
#endif
#if OSP_TSAN
    /* The lock goes to the loop with the switch (after_switch_to_loop takes it over for TSan). */
    __tsan_mutex_pre_unlock(&sched.lock, 0);
    __tsan_mutex_post_unlock(&sched.lock, 0);
    __tsan_switch_to_fiber(w->tsan_loop_fiber, 0);
#endif
    osp_ctx_switch(&f->sp, w->sched_sp);
    /* Resumed, perhaps on another worker (run_fiber did the bookkeeping). */
    switch_end();
#if OSP_ASAN
    __sanitizer_finish_switch_fiber(f->asan_fake_stack, NULL, NULL);
#endif
}

static _Noreturn void finish_main(int64_t status);

static void fiber_start(void) {
    switch_end();
#if OSP_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    osp_fiber *f = osp_fiber_self();
    int64_t result = f->body(f->env);
    pthread_mutex_lock(&sched.lock);
    f->result = result;
    f->done = 1;
    f->state = FIBER_DONE;
    f->body = NULL;
    f->env = NULL;
    osp_waiter *aw;
    while ((aw = osp_wait_queue_pop(&f->awaiters)) != NULL) {
        aw->value = result;
        osp_waiter_fire(aw);
    }
    live_unlink(f);
    if (f->is_main) {
        pthread_mutex_unlock(&sched.lock);
        finish_main(result);
    }
    switch_to_loop(f, 1);
    __builtin_unreachable();
}

static osp_fiber *new_fiber(osp_fiber_body_fn body, void *env) {
    osp_fiber *f = GC_MALLOC(sizeof *f);
    if (f == NULL) sched_fatal("out of memory (%s)", "creating a fiber");
    f->body = body;
    f->env = env;
    f->state = FIBER_NEW;
    return f;
}

static void sched_start(void);

void *osp_fiber_spawn(osp_fiber_body_fn body, void *env) {
    sched_start();
    osp_fiber *f = new_fiber(body, env);
    f->id = osp_next_handle();
    pthread_mutex_lock(&sched.lock);
    live_link(f);
    f->state = FIBER_READY;
    enqueue_ready(f);
    bool wake = sched.idle > 0;
    pthread_mutex_unlock(&sched.lock);
    /* Signalled once the lock is free: a worker woken under it would at once block on the lock
     * this thread still holds (a futex wait and wake more per spawn). No wake-up is lost: an idle
     * worker counted above read the futex word under the lock before it slept (idle_wait). */
    if (wake) wake_idle_worker();
    return f;
}

void *osp_sched_submit(osp_fiber_body_fn body, void *env) { return osp_fiber_spawn(body, env); }

void osp_sched_submit_many(osp_fiber_body_fn body, void *const *envs, size_t n) {
    if (n == 0) return;
    sched_start();
    /* Allocated before taking the lock (the collector may run); the chain through next_ready
     * keeps them reachable from this stack until they are linked into sched.live. */
    osp_fiber *first = NULL, *last = NULL;
    for (size_t i = 0; i < n; i++) {
        osp_fiber *f = new_fiber(body, envs[i]);
        f->id = osp_next_handle();
        f->state = FIBER_READY;
        if (last) last->next_ready = f;
        else first = f;
        last = f;
    }
    pthread_mutex_lock(&sched.lock);
    for (osp_fiber *f = first; f != NULL; f = f->next_ready) live_link(f);
    if (sched.ready_tail) sched.ready_tail->next_ready = first;
    else sched.ready_head = first;
    sched.ready_tail = last;
    /* One wake-up for the whole batch: the woken worker runs them one after another, and the
     * submitter calls osp_sched_nudge while they are outstanding, so one that takes long does
     * not hold up the rest. (Waking a second worker at once would have both contend for
     * sched.lock over a batch that one of them finishes in microseconds.) */
    if (sched.idle > 0) wake_idle_worker();
    pthread_mutex_unlock(&sched.lock);
}

void osp_sched_set_idle_poller(const osp_idle_poller *p) {
    pthread_mutex_lock(&sched.lock);
    if (sched.poller == NULL) sched.poller = p;
    pthread_mutex_unlock(&sched.lock);
}

bool osp_sched_poller_held(uint64_t *taken) {
    *taken = atomic_load(&sched.poll_taken);
    return atomic_load(&sched.poll_held);
}

void osp_sched_wake_poller(void) {
    atomic_store(&sched.poll_asked, true);
    pthread_mutex_lock(&sched.lock);
    bool wake = sched.idle > 0;
    pthread_mutex_unlock(&sched.lock);
    if (wake) wake_idle_worker();
}

void osp_sched_submit_here(osp_fiber_body_fn body, void *env) {
    osp_worker *w = current_worker();
    if (w == NULL || w->current != NULL) {
        (void)osp_sched_submit(body, env);
        return;
    }
    osp_fiber *f = new_fiber(body, env);
    f->id = osp_next_handle();
    pthread_mutex_lock(&sched.lock);
    live_link(f);
    f->state = FIBER_READY;
    bool wake = false;
    if (w->runnext == NULL) {
        w->runnext = f; /* this worker runs it next: no other worker is woken */
    } else {
        enqueue_ready(f);
        wake = sched.idle > 0;
    }
    pthread_mutex_unlock(&sched.lock);
    if (wake) wake_idle_worker();
}

void osp_fiber_set_park_hook(void (*hook)(void *arg), void *arg) {
    osp_fiber *self = osp_fiber_self();
    if (self) {
        self->on_park = hook;
        self->on_park_arg = arg;
    }
}

bool osp_sched_nudge(void) {
    pthread_mutex_lock(&sched.lock);
    bool queued = sched.ready_head != NULL;
    bool stalled = queued && sched.ready_pops == sched.nudge_seen_pops;
    sched.nudge_seen_pops = sched.ready_pops;
    if (stalled && sched.idle > 0) wake_idle_worker();
    pthread_mutex_unlock(&sched.lock);
    return queued;
}

int64_t osp_fiber_await(void *handle) {
    osp_fiber *f = handle;
    pthread_mutex_lock(&sched.lock);
    if (!f->done) {
        osp_thread_record rec;
        osp_fiber *me = osp_blocker_begin(&rec);
        osp_waiter w = {.fiber = me};
        osp_wait_queue_push(&f->awaiters, &w);
        osp_sched_block(me, &w, 1, "await", f->id);
        osp_blocker_end(me);
        return w.value;
    }
    int64_t r = f->result;
    pthread_mutex_unlock(&sched.lock);
    return r;
}

void osp_fiber_yield(void) {
    osp_fiber *self = osp_fiber_self();
    if (self == NULL) {
        sched_yield();
        return;
    }
    pthread_mutex_lock(&sched.lock);
    osp_worker *w = current_worker();
    /* Sleepers that are due count as runnable; the others (a program's long sleep) do not keep
     * a yield from returning at once. */
    (void)run_timers();
    if (sched.ready_head == NULL && w->runnext == NULL) {
        pthread_mutex_unlock(&sched.lock);
        return;
    }
    /* Behind everything already runnable (the runnext slot included). */
    if (w->runnext) {
        push_ready(w->runnext);
        w->runnext = NULL;
    }
    self->state = FIBER_READY;
    /* No idle worker is woken for this fiber: this worker takes the queue's next fiber at once. */
    enqueue_ready(self);
    switch_to_loop(self, 0);
}

void osp_sleep(int64_t milliseconds) {
    osp_output_flush_pending(); /* what was printed reaches a pipe before the program waits */
    if (milliseconds <= 0) return;
    osp_fiber *self = osp_fiber_self();
    if (self == NULL) {
        /* A runtime thread (a WebSocket handler) or a C caller: sleep the thread. */
        struct timespec ts = {(time_t)(milliseconds / 1000), (long)(milliseconds % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        return;
    }
    pthread_mutex_lock(&sched.lock);
    self->wake_at_ns = now_ns() + milliseconds * 1000000;
    self->state = FIBER_PARKED;
    self->wait_op = "sleep";
    timer_push(self);
    switch_to_loop(self, 0);
}

/* ---- blocking and waking (sched.lock held) --------------------------------------------------- */

void osp_wait_queue_push(osp_wait_queue *q, osp_waiter *w) {
    w->queue = q;
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail) q->tail->next = w;
    else q->head = w;
    q->tail = w;
}

static void wait_queue_remove(osp_waiter *w) {
    osp_wait_queue *q = w->queue;
    if (q == NULL) return;
    if (w->prev) w->prev->next = w->next;
    else q->head = w->next;
    if (w->next) w->next->prev = w->prev;
    else q->tail = w->prev;
    w->prev = w->next = NULL;
    w->queue = NULL;
}

osp_waiter *osp_wait_queue_pop(osp_wait_queue *q) {
    osp_waiter *w = q->head;
    if (w) wait_queue_remove(w);
    return w;
}

void osp_waiter_fire(osp_waiter *w) {
    osp_fiber *f = w->fiber;
    f->fired = w;
    wait_queue_remove(w);
    /* A select's other arms no longer wait. */
    for (int i = 0; i < f->nops; i++) wait_queue_remove(&f->ops[i]);
    f->ops = NULL;
    f->nops = 0;
    if (f->thread_cond) {
        pthread_cond_signal(f->thread_cond);
        return;
    }
    make_ready(f);
}

_Static_assert(sizeof(osp_fiber) + sizeof(pthread_cond_t) <= sizeof(osp_thread_record), "osp_thread_record too small");

osp_fiber *osp_blocker_begin(osp_thread_record *thread_record) {
    osp_fiber *self = osp_fiber_self();
    if (self) return self;
    osp_fiber *rec = (osp_fiber *)(void *)thread_record->opaque;
    memset(rec, 0, sizeof *rec);
    pthread_cond_t *cond = (pthread_cond_t *)(void *)(thread_record->opaque + sizeof *rec);
    if (pthread_cond_init(cond, NULL) != 0) sched_fatal("%s", "cannot create a condition variable for a blocked thread");
    rec->thread_cond = cond;
    return rec;
}

void osp_blocker_end(osp_fiber *blocker) {
    if (blocker->thread_cond) pthread_cond_destroy(blocker->thread_cond);
}

osp_waiter *osp_sched_block(osp_fiber *me, osp_waiter *ops, int nops, const char *op, int64_t handle) {
    me->ops = ops;
    me->nops = nops;
    me->fired = NULL;
    me->wait_op = op;
    me->wait_handle = handle;
    if (me->thread_cond) {
        /* A foreign thread (a WebSocket handler, a C caller): wait under the same lock. */
        sched.blocked_threads++;
        while (me->fired == NULL) pthread_cond_wait(me->thread_cond, &sched.lock);
        sched.blocked_threads--;
        me->wait_op = NULL;
        pthread_mutex_unlock(&sched.lock);
        return me->fired;
    }
    me->state = FIBER_PARKED;
    switch_to_loop(me, 0);
    /* The waker wrote `fired` and the waiter's value under the lock before making this fiber
     * runnable; the worker that resumed it took the lock since, so they are visible here. */
    me->wait_op = NULL;
    return me->fired;
}

/* ---- blocking calls on helper threads -------------------------------------------------- */

/* A blocking call of a parked fiber (on that fiber's stack). */
typedef struct blocking_job {
    void (*fn)(void *arg);
    void *arg;
    osp_fiber *fiber;
    struct blocking_job *next;
} blocking_job;

/* Jobs and helper threads, under sched.lock. Helpers are created on demand (one per call in
 * flight at most) and stay for later calls. */
static blocking_job *jobs_head, *jobs_tail;
static int helpers_idle;
static pthread_cond_t jobs_ready = PTHREAD_COND_INITIALIZER;

static void *blocking_helper(void *unused) {
    (void)unused;
    (void)pthread_setname_np(pthread_self(), "osprey-helper");
    pthread_mutex_lock(&sched.lock);
    for (;;) {
        while (jobs_head == NULL) {
            helpers_idle++;
            pthread_cond_wait(&jobs_ready, &sched.lock);
            helpers_idle--;
        }
        blocking_job *job = jobs_head;
        jobs_head = job->next;
        if (jobs_head == NULL) jobs_tail = NULL;
        pthread_mutex_unlock(&sched.lock);
        job->fn(job->arg);
        pthread_mutex_lock(&sched.lock);
        sched.external_holds--;
        job->fiber->state = FIBER_READY;
        push_ready(job->fiber);
    }
    return NULL;
}

void osp_sched_run_blocking(void (*fn)(void *arg), void *arg) {
    osp_fiber *self = osp_fiber_self();
    if (self == NULL) {
        fn(arg);
        return;
    }
    blocking_job job = {fn, arg, self, NULL};
    pthread_mutex_lock(&sched.lock);
    if (helpers_idle == 0) {
        pthread_t t;
        int rc = pthread_create(&t, NULL, blocking_helper, NULL);
        if (rc != 0) {
            /* No helper: block this worker instead (the call still happens). */
            pthread_mutex_unlock(&sched.lock);
            fn(arg);
            return;
        }
        pthread_detach(t);
    }
    if (jobs_tail) jobs_tail->next = &job;
    else jobs_head = &job;
    jobs_tail = &job;
    /* A fiber waiting for outside work is not deadlocked. */
    sched.external_holds++;
    pthread_cond_signal(&jobs_ready);
    self->state = FIBER_PARKED;
    self->wait_op = "blocking call";
    /* The helper takes the job only under the lock, which the loop releases once this fiber is
     * switched out: it cannot make the fiber runnable before that. */
    switch_to_loop(self, 0);
}

/* ---- start-up, the main fiber, stack overflow ------------------------------------------- */

static int find_exe_bias(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    (void)data;
    exe_load_bias = info->dlpi_addr; /* the first object is the executable */
    return 1;
}

/* Writes the name of the function containing `pc` (from the executable's symbol table; mapped
 * read-only from /proc/self/exe with async-signal-safe calls only) into out. */
static void function_name_at(uintptr_t pc, char *out, size_t outlen) {
    strncpy(out, "(unknown)", outlen);
    out[outlen - 1] = '\0';
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
        close(fd);
        return;
    }
    const unsigned char *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (img == MAP_FAILED) return;
    size_t size = (size_t)st.st_size;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
    uintptr_t addr = pc - exe_load_bias;
    if (eh->e_shoff == 0 || eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > size) goto done;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(img + eh->e_shoff);
    for (int i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum) continue;
        const Elf64_Shdr *strs = &sh[sh[i].sh_link];
        if (sh[i].sh_offset + sh[i].sh_size > size || strs->sh_offset + strs->sh_size > size) continue;
        const Elf64_Sym *syms = (const Elf64_Sym *)(img + sh[i].sh_offset);
        size_t n = sh[i].sh_size / sizeof(Elf64_Sym);
        for (size_t k = 0; k < n; k++) {
            if (ELF64_ST_TYPE(syms[k].st_info) != STT_FUNC) continue;
            if (addr < syms[k].st_value || addr >= syms[k].st_value + (syms[k].st_size ? syms[k].st_size : 1)) continue;
            if (syms[k].st_name >= strs->sh_size) continue;
            const char *name = (const char *)img + strs->sh_offset + syms[k].st_name;
            /* Compiled Osprey functions are ospu.NAME (nested: ospu.OUTER.NAME.N). */
            if (strncmp(name, "ospu.", 5) == 0) name += 5;
            size_t len = strnlen(name, strs->sh_size - syms[k].st_name);
            /* Drop a trailing ".N" uniqueness suffix. */
            size_t cut = len;
            while (cut > 0 && name[cut - 1] >= '0' && name[cut - 1] <= '9') cut--;
            if (cut > 0 && cut < len && name[cut - 1] == '.') len = cut - 1;
            if (len >= outlen) len = outlen - 1;
            memcpy(out, name, len);
            out[len] = '\0';
            goto done;
        }
    }
done:
    munmap((void *)img, size);
}

static struct sigaction previous_segv;

static void write_all(int fd, const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t k = write(fd, s, n);
        if (k <= 0) return;
        s += k;
        n -= (size_t)k;
    }
}

static void on_segv(int sig, siginfo_t *info, void *uc_arg) {
    osp_worker *w = tls_worker;
    osp_fiber *f = w ? w->current : NULL;
    uintptr_t addr = (uintptr_t)info->si_addr;
    if (f && osp_fiber_stack_overflowed(&f->stack, addr)) {
        ucontext_t *uc = uc_arg;
        char name[256];
        function_name_at((uintptr_t)uc->uc_mcontext.gregs[REG_RIP], name, sizeof name);
        char id[32];
        char *p = id + sizeof id;
        *--p = '\0';
        int64_t v = f->id;
        do {
            *--p = (char)('0' + v % 10);
            v /= 10;
        } while (v > 0);
        fflush(stdout); /* not async-signal-safe, but the process ends here; output so far matters */
        write_all(2, "Error: stack overflow in function ");
        write_all(2, name);
        if (f->is_main) write_all(2, " (main fiber)\n");
        else {
            write_all(2, " (fiber ");
            write_all(2, p);
            write_all(2, ")\n");
        }
        _exit(134);
    }
    /* Not ours: let the previous disposition handle the re-executed fault. */
    sigaction(sig, &previous_segv, NULL);
}

static void install_overflow_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &previous_segv) != 0) {
        /* Without it an overflow is a plain SIGSEGV; everything else works. */
    }
}

static int configured_workers(void) {
    const char *env = getenv("OSPREY_THREADS");
    if (env && *env) {
        char *end;
        errno = 0;
        long n = strtol(env, &end, 10);
        if (errno != 0 || *end != '\0' || n < 1 || n > MAX_WORKERS) {
            sched_fatal("OSPREY_THREADS must be a whole number from 1 to 256 (got '%s')", env);
        }
        return (int)n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > MAX_WORKERS) n = MAX_WORKERS;
    return (int)n;
}

static pthread_once_t start_once = PTHREAD_ONCE_INIT;
static int start_with_main_thread;

static void start_scheduler(void) {
    osp_fiber_stack_setup();
    /* Deadlines (timers, the idle poll) are CLOCK_MONOTONIC times (idle_wait): a wall-clock
     * change must not stretch or cut a sleep. */
    dl_iterate_phdr(find_exe_bias, NULL);
    previous_push_other_roots = GC_get_push_other_roots();
    GC_set_push_other_roots(push_fiber_stacks);
    previous_collection_event = GC_get_on_collection_event();
    GC_set_on_collection_event(on_collection_event);
    install_overflow_handler();
    int n = configured_workers();
    sched.nslots = n + 1;
    workers = calloc((size_t)sched.nslots, sizeof *workers);
    if (workers == NULL) sched_fatal("out of memory (%s)", "scheduler workers");
    /* With osp_rt_run_main the calling thread is one of the n workers (slot 0); started by a
     * spawn from plain C, all n are new threads. */
    int threads = start_with_main_thread ? n - 1 : n;
    for (int i = 1; i <= threads; i++) {
        workers[i].index = i;
        pthread_t t;
        int rc = pthread_create(&t, NULL, worker_main, &workers[i]);
        if (rc != 0) sched_fatal("cannot start a scheduler worker thread: %s", strerror(rc));
        pthread_detach(t);
    }
    sched.started = 1;
}

static void sched_start(void) { pthread_once(&start_once, start_scheduler); }

void osp_sched_hold_external(int64_t delta) {
    pthread_mutex_lock(&sched.lock);
    sched.external_holds += (int)delta;
    pthread_mutex_unlock(&sched.lock);
}

static _Noreturn void finish_main(int64_t status) {
    /* Other fibers are abandoned, as when any program's main returns. */
    exit(osp_rt_shutdown(status));
}

int64_t osp_rt_run_main(osp_fiber_body_fn body, void *env) {
    start_with_main_thread = 1;
    sched_start();
    osp_worker *w = &workers[0];
    worker_init(w, 0);
#if OSP_ASAN
    {
        pthread_attr_t a;
        void *addr;
        size_t sz;
        if (pthread_getattr_np(pthread_self(), &a) == 0) {
            if (pthread_attr_getstack(&a, &addr, &sz) == 0) {
                w->native_asan_bottom = addr;
                w->native_asan_size = sz;
            }
            pthread_attr_destroy(&a);
        }
    }
#endif
    osp_fiber *m = new_fiber(body, env);
    m->is_main = 1;
    m->id = 0;
    pthread_mutex_lock(&sched.lock);
    live_link(m);
    sched.main = m;
    m->state = FIBER_READY;
    pthread_mutex_unlock(&sched.lock);
    run_fiber(w, m);
    for (;;) {
        osp_fiber *f = next_fiber(w);
        run_fiber(w, f);
    }
}
