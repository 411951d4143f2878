/*
 * Stopping the world while other threads are busy in synchronisation: three collector-registered
 * threads create, lock and destroy mutexes, copy memory and allocate, while the main thread
 * forces collections. Every collection must finish.
 *
 * Under ThreadSanitizer the collector's suspend signal often lands inside TSan's own runtime
 * here (the count is printed), where TSan's handler used to wait for a lock the interrupted code
 * holds (tsan_gc.c). Linked with clang's TSan runtime, as programs are, this test aborted ("Signals
 * delivery fails constantly") within its first 5 collections in 4 runs of 4 without the fix (then 150 collections); with
 * gcc's libtsan, which the C tests use, it passed either way (7 runs), so there it checks that
 * declining and the collector's re-sends keep every stop finishing. fibers/gc_busy.osp is the
 * regression test with clang's runtime. The other builds run it as a stress of the stop.
 *
 * A watchdog thread the collector does not know about (so it is never stopped) fails the test
 * with a message if a collection takes longer than WATCHDOG_S, instead of letting it hang.
 */
#include "check.h"
#include "runtime.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

enum { BUSY_THREADS = 3, COLLECTIONS = 20, WATCHDOG_S = 30 };

static atomic_bool stop;
static atomic_int collections_done;
static atomic_long busy_rounds;

static void *busy(void *arg) {
    pthread_mutex_t *m = arg;
    void *volatile keep = NULL;
    static _Thread_local char from[4096], to[4096];
    while (!atomic_load(&stop)) {
        /* Each of these goes through TSan's runtime with its per-thread lock held at some point:
         * a mutex's first use (its sync object is created), lock and unlock, destruction and
         * free, a sequentially consistent read-modify-write, a long memcpy (trace parts fill
         * up and are switched), an allocation on the collected heap. */
        pthread_mutex_t *fresh = malloc(sizeof *fresh);
        if (fresh == NULL || pthread_mutex_init(fresh, NULL) != 0) abort();
        if (pthread_mutex_lock(fresh) != 0 || pthread_mutex_unlock(fresh) != 0 || pthread_mutex_destroy(fresh) != 0) abort();
        free(fresh);
        if (pthread_mutex_lock(m) != 0) abort();
        keep = GC_MALLOC(48);
        memcpy(to, from, sizeof to);
        if (pthread_mutex_unlock(m) != 0) abort();
        atomic_fetch_add(&busy_rounds, 1);
    }
    (void)keep;
    return NULL;
}

/* Created with the system's pthread_create, not the collector's, so no collection stops it. */
static void *watchdog(void *arg) {
    (void)arg;
    int seen = -1;
    time_t since = time(NULL);
    while (atomic_load(&collections_done) < COLLECTIONS) {
        int now = atomic_load(&collections_done);
        if (now != seen) {
            seen = now;
            since = time(NULL);
        } else if (time(NULL) - since > WATCHDOG_S) {
            fprintf(stderr, "FAIL: collection %d of %d did not finish within %d s (a thread never acknowledged the stop)\n",
                    now + 1, COLLECTIONS, WATCHDOG_S);
            fflush(stderr);
            _exit(1);
        }
        usleep(50000);
    }
    return NULL;
}

int main(void) {
    osp_rt_init(OSP_ABI_VERSION);
    pthread_t dog;
#undef pthread_create /* the system's: the watchdog is not the collector's thread */
#undef pthread_join
    CHECK(pthread_create(&dog, NULL, watchdog, NULL) == 0, "starting the watchdog");
    static pthread_mutex_t locks[BUSY_THREADS];
    pthread_t threads[BUSY_THREADS];
    for (int i = 0; i < BUSY_THREADS; i++) {
        CHECK(pthread_mutex_init(&locks[i], NULL) == 0, "mutex %d", i);
        CHECK(GC_pthread_create(&threads[i], NULL, busy, &locks[i]) == 0, "starting busy thread %d", i);
    }
    while (atomic_load(&busy_rounds) == 0) usleep(1000);
    for (int i = 0; i < COLLECTIONS; i++) {
        GC_gcollect();
        atomic_fetch_add(&collections_done, 1);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < BUSY_THREADS; i++) CHECK(GC_pthread_join(threads[i], NULL) == 0, "joining busy thread %d", i);
    CHECK(pthread_join(dog, NULL) == 0, "joining the watchdog");
    CHECK(atomic_load(&collections_done) == COLLECTIONS, "%d collections", atomic_load(&collections_done));
    CHECK(atomic_load(&busy_rounds) > 0, "the busy threads ran");
#if defined(__SANITIZE_THREAD__)
    printf("gc stop: %ld busy rounds, %" PRIu64 " suspend signals declined inside TSan's runtime\n", atomic_load(&busy_rounds),
           osp_rt_tsan_gc_suspends_declined());
#endif
    return check_summary("gc stop");
}
