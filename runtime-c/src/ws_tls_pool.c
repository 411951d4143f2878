/*
 * The TLS handshake threads (see ws_tls_pool.h).
 *
 * Why a low priority rather than a budget on the loop: a handshake step is not divisible, so a
 * loop that runs one makes every established connection of that loop wait for it, and the
 * handshakes a peer gets through also take CPU the loops would need on a busy machine. The
 * threads run in the SCHED_IDLE class (sched(7)): a thread of any normal class that wakes on a
 * CPU running one preempts it at once, by definition (the fair scheduler's wake-up check,
 * before any time-slice comparison), so a loop woken by an established connection's data never
 * waits for a handshake step, and handshakes only get the CPU the loops and the rest of the
 * machine leave (still a small share, weight 3 against 1024 per busy thread, so they progress
 * on a saturated machine). Nice 19 (weight 15) is not enough for that: the EEVDF scheduler
 * (Linux 6.6 on) lets the running thread finish a protected part of its slice, about a
 * millisecond of real time whatever its weight, before a woken thread of equal slice preempts
 * it — as long as a handshake step. It is the fallback when SCHED_IDLE is refused (a seccomp
 * policy). Moving a thread to a lower class or priority needs no privilege.
 *
 * The threads are not registered with the garbage collector (this file does not include gc.h,
 * so pthread_create is the C library's): they never touch the collected heap, and a stop of
 * the world must not wait for a thread that runs at the lowest priority.
 */
#include "ws_tls_pool.h"
#include "loop.h"
#include "ws_tls.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* The threads' name (pthread_setname_np): "osprey-tls-hs" in ps and perf. */
#define OSP_WS_TLS_POOL_THREAD_NAME "osprey-tls-hs"
/* The fallback: the lowest nice level (setpriority(2)). */
#define OSP_WS_TLS_POOL_NICE 19

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_work = PTHREAD_COND_INITIALIZER;
static osp_ws_tls_job *queue_head, *queue_tail;       /* submitted, not started */
static osp_ws_tls_job *done_head[OSP_WS_MAX_LOOPS];    /* finished, per loop, oldest first */
static osp_ws_tls_job *done_tail[OSP_WS_MAX_LOOPS];
static pthread_t threads[OSP_WS_MAX_LOOPS];
static unsigned thread_count;
static bool started;  /* the threads were started (thread_count of them, maybe 0) */
static bool stopping; /* osp_ws_tls_pool_stop: no new job, threads exit */

/* A handshake leaves the ephemeral key exchange's secrets and the signature's temporaries in
 * the stack area OpenSSL's calls used; overwrite it after every step, as the loops do after
 * record I/O (docs/WEBSOCKET-RUNTIME.md#wiping-secrets). 64 KiB is well beyond the deepest
 * handshake's use; the threads have the default 8 MiB stack. */
__attribute__((noinline)) static void wipe_handshake_stack(void) {
    unsigned char scratch[64 * 1024];
    OPENSSL_cleanse(scratch, sizeof scratch);
    __asm__ volatile("" : : "r"(scratch) : "memory");
}

static void queue_unlink(osp_ws_tls_job *job) {
    if (job->prev) job->prev->next = job->next;
    else queue_head = job->next;
    if (job->next) job->next->prev = job->prev;
    else queue_tail = job->prev;
    job->prev = job->next = NULL;
}

/* Under pool_lock: appends a finished (or cancelled) job to its loop's list. */
static void finish(osp_ws_tls_job *job) {
    unsigned i = job->loop->index;
    job->state = OSP_WS_TLS_JOB_DONE;
    job->prev = job->next = NULL;
    if (done_tail[i]) done_tail[i]->next = job;
    else done_head[i] = job;
    done_tail[i] = job;
}

static void *pool_main(void *arg) {
    (void)arg;
    (void)pthread_setname_np(pthread_self(), OSP_WS_TLS_POOL_THREAD_NAME);
    /* On Linux the scheduling class and the nice level are per thread (PRIO_PROCESS with a
     * thread id sets this one only). Failing both, handshakes still run off the loops, at
     * normal priority. */
    struct sched_param idle_param = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle_param) != 0 &&
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), OSP_WS_TLS_POOL_NICE) != 0)
        fprintf(stderr, "osprey runtime: cannot lower the TLS handshake thread's priority: %s\n", strerror(errno));
    pthread_mutex_lock(&pool_lock);
    for (;;) {
        while (!stopping && queue_head == NULL) pthread_cond_wait(&pool_work, &pool_lock);
        if (stopping) break;
        osp_ws_tls_job *job = queue_head;
        queue_unlink(job);
        job->state = OSP_WS_TLS_JOB_RUNNING;
        pthread_mutex_unlock(&pool_lock);
        job->rc = osp_ws_tls_accept_step(job->ssl, &job->want_write, &job->plain_http);
        wipe_handshake_stack();
        osp_ws_loop *L = job->loop;
        pthread_mutex_lock(&pool_lock);
        finish(job); /* from here the job is its loop's again: not touched after the unlock */
        pthread_mutex_unlock(&pool_lock);
        /* L is still there: osp_ws_tls_pool_stop joins this thread before the loops are
         * released. */
        osp_ws_loop_wake_on(L);
        pthread_mutex_lock(&pool_lock);
    }
    pthread_mutex_unlock(&pool_lock);
    return NULL;
}

/* Under pool_lock: one thread per I/O loop (the loops are running: a loop asks). */
static void start_threads(void) {
    started = true;
    unsigned want = osp_ws_loop_count();
    if (want > OSP_WS_MAX_LOOPS) want = OSP_WS_MAX_LOOPS;
    while (thread_count < want) {
        int rc = pthread_create(&threads[thread_count], NULL, pool_main, NULL);
        if (rc != 0) {
            fprintf(stderr, "osprey runtime: cannot start a TLS handshake thread (%s); %s\n", strerror(rc),
                    thread_count ? "fewer run" : "handshakes run on the I/O loops");
            break;
        }
        thread_count++;
    }
}

bool osp_ws_tls_pool_submit(osp_ws_tls_job *job) {
    pthread_mutex_lock(&pool_lock);
    if (!started && !stopping) start_threads();
    bool ok = !stopping && thread_count > 0;
    if (ok) {
        job->rc = 0;
        job->want_write = job->plain_http = job->cancelled = false;
        job->state = OSP_WS_TLS_JOB_QUEUED;
        job->next = NULL;
        job->prev = queue_tail;
        if (queue_tail) queue_tail->next = job;
        else queue_head = job;
        queue_tail = job;
        pthread_cond_signal(&pool_work);
    }
    pthread_mutex_unlock(&pool_lock);
    return ok;
}

bool osp_ws_tls_pool_cancel(osp_ws_tls_job *job) {
    pthread_mutex_lock(&pool_lock);
    bool taken = job->state == OSP_WS_TLS_JOB_QUEUED;
    if (taken) {
        queue_unlink(job);
        job->state = OSP_WS_TLS_JOB_IDLE;
    }
    pthread_mutex_unlock(&pool_lock);
    return taken;
}

osp_ws_tls_job *osp_ws_tls_pool_take_done(osp_ws_loop *L) {
    unsigned i = L->index;
    pthread_mutex_lock(&pool_lock);
    osp_ws_tls_job *list = done_head[i];
    done_head[i] = done_tail[i] = NULL;
    for (osp_ws_tls_job *j = list; j; j = j->next) j->state = OSP_WS_TLS_JOB_IDLE;
    pthread_mutex_unlock(&pool_lock);
    return list;
}

void osp_ws_tls_pool_stop(void) {
    pthread_mutex_lock(&pool_lock);
    stopping = true;
    pthread_cond_broadcast(&pool_work);
    unsigned n = thread_count;
    pthread_mutex_unlock(&pool_lock);
    for (unsigned i = 0; i < n; i++) {
        int rc = pthread_join(threads[i], NULL);
        if (rc != 0) fprintf(stderr, "osprey runtime: cannot join a TLS handshake thread: %s\n", strerror(rc));
    }
    pthread_mutex_lock(&pool_lock);
    thread_count = 0;
    while (queue_head) {
        osp_ws_tls_job *job = queue_head;
        queue_unlink(job);
        job->cancelled = true;
        finish(job);
    }
    pthread_mutex_unlock(&pool_lock);
}
