/*
 * Process lifetime, results, memory, strings and output: the small runtime every Osprey
 * executable links. The WebSocket subsystem lives in the ws_* modules and registers its own
 * shutdown hook on first use.
 */
#include "runtime.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t output_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t hooks_mutex = PTHREAD_MUTEX_INITIALIZER;
static void (*shutdown_hooks[OSP_MAX_SHUTDOWN_HOOKS])(void);
static int shutdown_hook_count;

void osp_output_lock(void) { pthread_mutex_lock(&output_mutex); }
void osp_output_unlock(void) { pthread_mutex_unlock(&output_mutex); }

/* stdout is block-buffered when it is not a terminal: a million prints into a pipe cost a few
 * hundred writes, not a million. What a program printed still reaches the reader promptly, because
 * the buffer is flushed whenever the program blocks (sleep, input, awaiting a process, waiting
 * for the WebSocket runtime), before the runtime thread waits for network events, before a process
 * is spawned, at exit, on a run-time failure and on SIGTERM/SIGINT/SIGHUP. `output_pending` is set
 * by every print so that those flushes cost one atomic load when nothing was printed. */
static char stdout_buffer[64 * 1024];
static atomic_int output_pending;

void osp_output_flush_pending(void) {
    if (!atomic_exchange_explicit(&output_pending, 0, memory_order_acq_rel)) return;
    osp_output_lock();
    if (fflush(stdout) != 0) {
        /* The reader went away or the disk is full; osp_rt_shutdown reports it at exit. */
    }
    osp_output_unlock();
}

/* Command-line arguments for args(). glibc passes (argc, argv, envp) to ELF constructors, so the
 * generated `main` keeps its ABI (no parameters) and the runtime still sees them. */
static int program_argc;
static char **program_argv;

__attribute__((constructor)) static void capture_arguments(int argc, char **argv, char **envp) {
    (void)envp;
    program_argc = argc;
    program_argv = argv;
}

void *osp_args(void) {
    int64_t count = program_argc > 1 ? (int64_t)program_argc - 1 : 0;
    /* An Osprey List is a GC block of 64-bit words: [length, element 0, element 1, ...]. */
    int64_t *list = osp_alloc((count + 1) * (int64_t)sizeof(int64_t));
    list[0] = count;
    for (int64_t i = 0; i < count; i++) {
        const char *arg = program_argv[i + 1];
        list[i + 1] = (int64_t)(intptr_t)osp_gc_strndup(arg, strlen(arg));
    }
    return list;
}

/* Osprey has no loops: self tail calls compile to jumps, but deep non-tail and mutual recursion
 * still use the stack. Linux checks RLIMIT_STACK when the main thread's stack grows, so raising
 * the soft limit here lets it grow into the gap the kernel left below it at exec time (at least
 * 128 MiB). Best effort: a refused raise leaves the limit as it was. */
static void raise_stack_limit(void) {
    const rlim_t want = (rlim_t)1 << 30; /* 1 GiB */
    struct rlimit rl;
    if (getrlimit(RLIMIT_STACK, &rl) != 0) return;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want) return;
    rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want) ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_STACK, &rl) != 0) {
        /* Not permitted: deep recursion then fails at the usual depth. */
    }
}

void osp_rt_init(int64_t abi_version) {
    if (abi_version != OSP_ABI_VERSION) {
        fprintf(stderr,
                "osprey runtime: this program was compiled for runtime ABI %" PRId64
                " but the linked runtime implements ABI %d; rebuild the program with a matching compiler\n",
                abi_version, OSP_ABI_VERSION);
        exit(70); /* EX_SOFTWARE */
    }
    GC_INIT();
    raise_stack_limit();
    /* A terminal gets every line as it is printed; a pipe or file gets 64 KiB blocks (see
     * osp_output_flush_pending for when they are written). Lines written by the runtime thread
     * and the main thread stay whole and in order either way (osp_output_lock). */
    int rc = isatty(STDOUT_FILENO) ? setvbuf(stdout, NULL, _IOLBF, 0)
                                   : setvbuf(stdout, stdout_buffer, _IOFBF, sizeof stdout_buffer);
    if (rc != 0) {
        fprintf(stderr, "osprey runtime: cannot set the buffering of stdout\n");
    }
    /* Buffered output is written and servers close cleanly when the program is told to stop. */
    osp_rt_install_graceful_signals();
}

void osp_rt_at_shutdown(void (*hook)(void)) {
    pthread_mutex_lock(&hooks_mutex);
    for (int i = 0; i < shutdown_hook_count; i++) {
        if (shutdown_hooks[i] == hook) {
            pthread_mutex_unlock(&hooks_mutex);
            return;
        }
    }
    if (shutdown_hook_count == OSP_MAX_SHUTDOWN_HOOKS) {
        pthread_mutex_unlock(&hooks_mutex);
        fprintf(stderr, "osprey runtime: internal error: too many shutdown hooks\n");
        abort();
    }
    shutdown_hooks[shutdown_hook_count++] = hook;
    pthread_mutex_unlock(&hooks_mutex);
}

bool (*osp_rt_on_loop_thread)(void);
/* Set when a termination signal started the shutdown: whichever thread finishes exiting
 * reports that signal (128 + its number), not the status main happened to return meanwhile. */
static int64_t signal_status;

int32_t osp_rt_shutdown_for_signal(int signo) {
    pthread_mutex_lock(&hooks_mutex);
    if (signal_status == 0) signal_status = 128 + signo;
    pthread_mutex_unlock(&hooks_mutex);
    return osp_rt_shutdown(128 + signo);
}
static pthread_cond_t hooks_done = PTHREAD_COND_INITIALIZER;
static int hooks_running; /* hooks being run by some thread now */

int32_t osp_rt_shutdown(int64_t status) {
    /* Two threads may exit at once (main returning while the signal watcher handles SIGTERM).
     * Each hook runs once; a caller that finds the others' hooks still running waits for them,
     * so the process never exits in the middle of a closing handshake. */
    pthread_mutex_lock(&hooks_mutex);
    for (;;) {
        if (shutdown_hook_count == 0) {
            bool loop_thread = osp_rt_on_loop_thread != NULL && osp_rt_on_loop_thread();
            while (hooks_running > 0 && !loop_thread) pthread_cond_wait(&hooks_done, &hooks_mutex);
            break;
        }
        void (*hook)(void) = shutdown_hooks[--shutdown_hook_count];
        hooks_running++;
        pthread_mutex_unlock(&hooks_mutex);
        hook();
        pthread_mutex_lock(&hooks_mutex);
        hooks_running--;
        pthread_cond_broadcast(&hooks_done);
    }
    if (signal_status != 0) status = signal_status;
    pthread_mutex_unlock(&hooks_mutex);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "osprey runtime: writing standard output failed: %s\n", strerror(errno));
        return 1;
    }
    /* C semantics: only the low 8 bits reach the parent (LANGUAGE.md §2.3). */
    return (int32_t)(status & 0xff);
}

void osp_rt_fail(const char *message, const char *location) {
    osp_output_lock();
    fflush(stdout);
    fprintf(stderr, "Error: %s at %s\n", message, location);
    fflush(stderr);
    osp_output_unlock();
    _Exit(1);
}

/* ---- Results -------------------------------------------------------------------------- */

OspResult osp_result_success(int64_t value) {
    OspResult r = {OSP_RESULT_SUCCESS, value};
    return r;
}

OspResult osp_result_errorf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    char *msg = GC_MALLOC_ATOMIC((size_t)n + 1);
    if (msg == NULL) {
        static const char oom[] = "out of memory while reporting an error";
        OspResult r = {OSP_RESULT_ERROR, (int64_t)(intptr_t)oom};
        return r;
    }
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
    OspResult r = {OSP_RESULT_ERROR, (int64_t)(intptr_t)msg};
    return r;
}

/* ---- Memory and strings --------------------------------------------------------------- */

static _Noreturn void out_of_memory(size_t size) {
    osp_output_lock();
    fflush(stdout);
    fprintf(stderr, "Error: out of memory (allocating %zu bytes)\n", size);
    osp_output_unlock();
    _Exit(1);
}

void *osp_alloc(int64_t size) {
    size_t n = size > 0 ? (size_t)size : 1;
    void *p = GC_MALLOC(n); /* GC_MALLOC returns zeroed memory */
    if (p == NULL) out_of_memory(n);
    return p;
}

char *osp_gc_strndup(const char *bytes, size_t len) {
    char *s = GC_MALLOC_ATOMIC(len + 1);
    if (s == NULL) out_of_memory(len + 1);
    if (len) memcpy(s, bytes, len);
    s[len] = '\0';
    return s;
}

const char *osp_string_concat(const char *left, const char *right) {
    size_t a = strlen(left), b = strlen(right);
    size_t total;
    if (__builtin_add_overflow(a, b, &total) || total == SIZE_MAX) out_of_memory(SIZE_MAX);
    char *s = GC_MALLOC_ATOMIC(total + 1);
    if (s == NULL) out_of_memory(total + 1);
    memcpy(s, left, a);
    memcpy(s + a, right, b);
    s[total] = '\0';
    return s;
}

int64_t osp_string_equals(const char *left, const char *right) {
    return strcmp(left, right) == 0;
}

const char *osp_int_to_string(int64_t value) {
    /* Digits from the right, without snprintf: printing numbers is a hot path (interpolation),
     * and the format machinery cost a third of a print-heavy program's time. The magnitude is
     * taken as unsigned so INT64_MIN needs no special case. */
    char buf[24];
    char *end = buf + sizeof buf;
    char *p = end;
    uint64_t magnitude = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    do {
        *--p = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (value < 0) *--p = '-';
    return osp_gc_strndup(p, (size_t)(end - p));
}

const char *osp_bool_to_string(int64_t value) {
    return value ? "true" : "false";
}

void osp_print(const char *text) {
    osp_output_lock();
    flockfile(stdout); /* one stdio lock for the line; the signal path's flush respects it */
    fputs_unlocked(text, stdout);
    putc_unlocked('\n', stdout);
    funlockfile(stdout);
    atomic_store_explicit(&output_pending, 1, memory_order_release);
    osp_output_unlock();
}

/* osp_sleep lives in fiber.c: it parks the calling fiber. */
