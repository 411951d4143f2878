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

/* Set on the thread that runs the program (osp_rt_init): it alone uses osp_alloc's free lists. */
static __thread int alloc_fast_thread __attribute__((tls_model("initial-exec")));

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
        list[i + 1] = (int64_t)(intptr_t)osp_gc_strdup_c(arg);
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
#if defined(__SANITIZE_THREAD__)
    osp_rt_tsan_gc_signals_before_init();
#endif
    GC_INIT();
#if defined(__SANITIZE_THREAD__)
    osp_rt_tsan_gc_signals_after_init();
#endif
    /* Start with a 16 MiB heap rather than Boehm's 256 KiB: an allocating program otherwise runs
     * many tiny collections while the heap grows (the binary-tree benchmark spent a quarter of
     * its instructions there). The pages are only touched as objects are allocated. The usual
     * GC_INITIAL_HEAP_SIZE variable still takes precedence. */
    if (getenv("GC_INITIAL_HEAP_SIZE") == NULL && !GC_expand_hp((size_t)16 << 20)) {
        /* Refused (address space limits): the collector grows the heap on demand as before. */
    }
    /* Collect when half the heap has been allocated since the last collection, rather than a
     * third of it (Boehm's default): a program that keeps a large structure alive while it
     * allocates (a list of 100,000 cells being mapped) otherwise re-marks it half again as often.
     * Not the whole heap (a divisor of 1): a collection then never frees as much as the next
     * trigger needs once anything is live, so the heap grew at every cycle (the list benchmark:
     * 16 -> 41 MiB and 16,000 page faults, against 7,300 with 2, where the heap settles at about
     * twice the live data). GC_FREE_SPACE_DIVISOR still takes precedence. */
    if (getenv("GC_FREE_SPACE_DIVISOR") == NULL) GC_set_free_space_divisor(2);
    raise_stack_limit();
    alloc_fast_thread = 1; /* this thread runs the program: osp_alloc's free lists are its own */
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
    /* C semantics: only the low 8 bits reach the parent (docs/guide/01-getting-started.md#fn-main-and-the-exit-status). */
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
    /* The message is a String: formatted straight into a block with a length header. */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    char *block = GC_MALLOC_ATOMIC(OSP_STRING_HEADER_BYTES + (size_t)n + 1);
    if (block == NULL) {
        OSP_STATIC_STRING(oom, "out of memory while reporting an error");
        OspResult r = {OSP_RESULT_ERROR, (int64_t)(intptr_t)oom.bytes};
        return r;
    }
    char *msg = block + OSP_STRING_HEADER_BYTES;
    va_start(ap, fmt);
    int written = vsnprintf(msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int64_t len = written < 0 ? 0 : written > n ? n : written;
    msg[len] = '\0';
    memcpy(block, &len, sizeof len);
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

/* Small-object fast path of osp_alloc, for the thread that runs the program. Records, closure
 * environments and list cells are mostly a few words, allocated and dropped at a high rate, and
 * each GC_MALLOC costs a shared-library call, a thread-local lookup and the collector's own fast
 * path (about 90 instructions). Instead, objects of each size class come in batches from
 * GC_malloc_many and are handed out from a free list: a load, a store and a clear.
 * The list heads are ordinary static data, which the collector scans as roots, so objects still
 * waiting in a list are never reclaimed; GC_malloc_many clears every object except its link word,
 * which is cleared when the object is handed out. Other threads (the WebSocket runtime thread
 * calling handlers) keep using GC_MALLOC, so the lists need no lock. */
#define OSP_GRANULE 16
#define OSP_SMALL_GRANULES 4 /* objects up to 64 bytes */
static void *small_free[OSP_SMALL_GRANULES + 1];

void *osp_alloc(int64_t size) {
    size_t n = size > 0 ? (size_t)size : 1;
    if (n <= OSP_SMALL_GRANULES * OSP_GRANULE && alloc_fast_thread) {
        size_t granules = (n + OSP_GRANULE - 1) / OSP_GRANULE;
        void *p = small_free[granules];
        if (p == NULL) {
            p = GC_malloc_many(granules * OSP_GRANULE);
            if (p == NULL) out_of_memory(n);
        }
        small_free[granules] = GC_NEXT(p);
        GC_NEXT(p) = NULL;
        return p;
    }
    void *p = GC_MALLOC(n); /* GC_MALLOC returns zeroed memory */
    if (p == NULL) out_of_memory(n);
    return p;
}

/* A String block of `len` bytes (not yet written) with its header and terminating NUL. The
 * collector never scans it (atomic) and recognises the interior pointer to the bytes. */
static char *string_alloc(size_t len) {
    size_t size;
    if (__builtin_add_overflow(len, (size_t)OSP_STRING_HEADER_BYTES + 1, &size) || len > (size_t)INT64_MAX)
        out_of_memory(SIZE_MAX);
    char *block = GC_MALLOC_ATOMIC(size);
    if (block == NULL) out_of_memory(size);
    int64_t n = (int64_t)len;
    memcpy(block, &n, sizeof n);
    char *s = block + OSP_STRING_HEADER_BYTES;
    s[len] = '\0';
    return s;
}

char *osp_gc_strndup(const char *bytes, size_t len) {
    char *s = string_alloc(len);
    if (len) memcpy(s, bytes, len);
    return s;
}

char *osp_gc_strdup_c(const char *text) { return osp_gc_strndup(text, strlen(text)); }

const char *osp_string_from_c(void *text) {
    return text == NULL ? osp_gc_strndup("", 0) : osp_gc_strdup_c((const char *)text);
}

bool osp_str_has_nul(const char *s) { return memchr(s, '\0', osp_str_len(s)) != NULL; }

bool osp_str_refuse_nul(const char *fn, const char *what, const char *s, OspResult *err) {
    if (s == NULL) return false;
    const char *nul = memchr(s, '\0', osp_str_len(s));
    if (nul == NULL) return false;
    /* "an address", "an origin" but "a path", "a URL" (what is lower case but for acronyms). */
    const char *article = strchr("aeiou", what[0]) != NULL && what[0] != '\0' ? "an" : "a";
    *err = osp_result_errorf("%s: the %s contains a NUL byte (at byte %zu), which is not allowed in %s %s", fn, what,
                             (size_t)(nul - s), article, what);
    return true;
}

const char *osp_string_concat(const char *left, const char *right) {
    size_t a = osp_str_len(left), b = osp_str_len(right);
    size_t total;
    if (__builtin_add_overflow(a, b, &total)) out_of_memory(SIZE_MAX);
    char *s = string_alloc(total);
    memcpy(s, left, a);
    memcpy(s + a, right, b);
    return s;
}

/* Decimal text of `value` written backwards ending at `end` (exclusive); returns its first byte.
 * Two digits per step: this is the hot path of toString and of interpolation. */
static char *format_int(char *end, int64_t value) {
    static const char pairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    uint64_t magnitude = value < 0 ? 0u - (uint64_t)value : (uint64_t)value;
    char *p = end;
    while (magnitude >= 100) {
        unsigned k = (unsigned)(magnitude % 100) * 2;
        magnitude /= 100;
        *--p = pairs[k + 1];
        *--p = pairs[k];
    }
    if (magnitude >= 10) {
        unsigned k = (unsigned)magnitude * 2;
        *--p = pairs[k + 1];
        *--p = pairs[k];
    } else {
        *--p = (char)('0' + magnitude);
    }
    if (value < 0) *--p = '-';
    return p;
}

#define OSP_INT_TEXT_MAX 20 /* "-9223372036854775808" */

const char *osp_string_build(int64_t count, int64_t int_mask, int64_t part0, int64_t part1, int64_t part2,
                             int64_t part3) {
    const int64_t parts[4] = {part0, part1, part2, part3};
    char digits[4][OSP_INT_TEXT_MAX];
    const char *text[4];
    size_t len[4];
    size_t total = 0;
    int n = count < 0 ? 0 : count > 4 ? 4 : (int)count;
    for (int i = 0; i < n; i++) {
        if (int_mask & ((int64_t)1 << i)) {
            char *end = digits[i] + OSP_INT_TEXT_MAX;
            text[i] = format_int(end, parts[i]);
            len[i] = (size_t)(end - text[i]);
        } else {
            text[i] = (const char *)(intptr_t)parts[i];
            len[i] = osp_str_len(text[i]);
        }
        if (__builtin_add_overflow(total, len[i], &total)) out_of_memory(SIZE_MAX);
    }
    char *s = string_alloc(total);
    char *p = s;
    for (int i = 0; i < n; i++) {
        memcpy(p, text[i], len[i]);
        p += len[i];
    }
    return s;
}

/* Equal lengths and equal bytes: a NUL inside either String is an ordinary byte. */
int64_t osp_string_equals(const char *left, const char *right) {
    size_t n = osp_str_len(left);
    return n == osp_str_len(right) && memcmp(left, right, n) == 0;
}

const char *osp_int_to_string(int64_t value) {
    char buf[OSP_INT_TEXT_MAX];
    char *start = format_int(buf + sizeof buf, value);
    return osp_gc_strndup(start, (size_t)(buf + sizeof buf - start));
}

const char *osp_bool_to_string(int64_t value) {
    OSP_STATIC_STRING(true_text, "true");
    OSP_STATIC_STRING(false_text, "false");
    return value ? true_text.bytes : false_text.bytes;
}

void osp_print(const char *text) {
    osp_output_lock();
    flockfile(stdout); /* one stdio lock for the line; the signal path's flush respects it */
    /* Every byte of the String, NUL bytes included. */
    size_t len = osp_str_len(text);
    if (len != 0 && fwrite_unlocked(text, 1, len, stdout) != len) {
        /* stdout is closed or full: osp_rt_shutdown reports the failed flush at exit. */
    }
    putc_unlocked('\n', stdout);
    funlockfile(stdout);
    atomic_store_explicit(&output_pending, 1, memory_order_release);
    osp_output_unlock();
}

/* osp_sleep lives in fiber.c: it parks the calling fiber. */
