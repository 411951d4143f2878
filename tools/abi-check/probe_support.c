/*
 * Support library of the ABI probes: reporting, safe reads of untrusted pointers, the handler
 * recorder, loopback ports and a raw RFC 6455 client. See probe_support.h.
 */
#define _GNU_SOURCE
#include "probe_support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

char probe_env_sentinel[64] = "osprey abi-check handler environment sentinel";

static int report_fd = 2;
static pthread_t main_thread;
static int read_pipe[2] = {-1, -1};
static pthread_mutex_t read_mutex = PTHREAD_MUTEX_INITIALIZER;

/* ---- reporting --------------------------------------------------------------------------- */

static void sanitize(char *s) {
    for (; *s; s++) {
        if (*s == '\t' || *s == '\n' || *s == '\r') *s = ' ';
    }
}

static void emit(const char *line) {
    size_t n = strlen(line);
    /* One write per line: the report survives a crash that follows immediately. */
    ssize_t w = write(report_fd, line, n);
    (void)w;
}

void probe_begin(void) {
    signal(SIGPIPE, SIG_IGN);
    const char *path = getenv("OSP_PROBE_REPORT");
    if (path != NULL) {
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) report_fd = fd;
    }
    main_thread = pthread_self();
    if (pipe2(read_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        emit("CHECK\tprobe\tfail\tcannot create the pipe used for guarded reads\n");
        _exit(3);
    }
}

void probe_step(const char *fmt, ...) {
    char text[512], line[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    sanitize(text);
    snprintf(line, sizeof line, "STEP\t%s\n", text);
    emit(line);
}

void probe_check(const char *check, int pass, const char *fmt, ...) {
    char text[1024], line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    sanitize(text);
    snprintf(line, sizeof line, "CHECK\t%s\t%s\t%s\n", check, pass ? "pass" : "fail", text);
    emit(line);
}

void probe_done(void) { emit("DONE\n"); }

uint64_t probe_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void probe_pause_ms(int ms) { sleep_ms(ms); }

/* ---- arguments --------------------------------------------------------------------------- */

/* A String of the runtime ABI (OSP_STRING_HEADER_BYTES of length, the bytes, a NUL) in malloc'd
 * memory with `pad` spare zero bytes after it; released with probe_string_free. */
char *probe_string_new(const char *bytes, size_t n, size_t pad) {
    char *block = calloc(OSP_STRING_HEADER_BYTES + n + 1 + pad, 1);
    if (block == NULL) abort();
    int64_t len = (int64_t)n;
    memcpy(block, &len, sizeof len);
    char *s = block + OSP_STRING_HEADER_BYTES;
    if (n && bytes != NULL) memcpy(s, bytes, n);
    return s;
}

void probe_string_free(char *s) {
    if (s != NULL) free(s - OSP_STRING_HEADER_BYTES);
}

char *probe_arg_string(const char *fn, const char *s, size_t n) {
    /* Padded so a runtime that writes a 24-byte struct through the first argument (hidden sret
     * pointer) corrupts probe memory instead of crashing: the probe then diagnoses it. */
    char *copy = probe_string_new(s, n, 63);
    char line[200];
    snprintf(line, sizeof line, "ARG\t%p\t%zu\t%s\n", (void *)copy, n + 64, fn);
    emit(line);
    return copy;
}

void probe_arg_release(char *s) { probe_string_free(s); }

static int bound_socket(int64_t *port_out) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        close(fd);
        return -1;
    }
    *port_out = ntohs(a.sin_port);
    return fd;
}

int64_t probe_free_port(void) {
    int64_t port = 0;
    int fd = bound_socket(&port);
    if (fd >= 0) close(fd);
    return port;
}

int64_t probe_closed_port(void) { return probe_free_port(); }

int64_t probe_busy_port(void) {
    int64_t port = 0;
    int fd = bound_socket(&port);
    /* Kept open and listening until the probe exits. */
    if (fd >= 0 && listen(fd, 4) != 0) port = 0;
    return port;
}

/* The URL functions hand out Strings of the ABI in static blocks (header, text, NUL): each call
 * overwrites the previous text, as a probe uses one URL per call. */
static const char *static_string(int64_t *block, size_t cap_words, const char *text) {
    size_t n = strlen(text);
    size_t room = (cap_words - 1) * sizeof(int64_t) - 1;
    if (n > room) n = room;
    block[0] = (int64_t)n;
    char *s = (char *)(block + 1);
    memcpy(s, text, n);
    s[n] = '\0';
    return s;
}

const char *probe_closed_port_url(void) {
    static int64_t block[1 + 64 / sizeof(int64_t)];
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%" PRId64 "/abi", probe_closed_port());
    return static_string(block, sizeof block / sizeof block[0], url);
}

const char *probe_echo_url(const char *suffix) {
    static int64_t block[1 + 256 / sizeof(int64_t)];
    char url[256];
    const char *base = getenv("OSP_PROBE_ECHO_URL");
    if (base == NULL) base = "ws://127.0.0.1:1";
    snprintf(url, sizeof url, "%s%s", base, suffix);
    return static_string(block, sizeof block / sizeof block[0], url);
}

/* ---- guarded reads ------------------------------------------------------------------------ */

/* The kernel copies from our own address space for write(2) and answers EFAULT instead of
 * faulting, so an arbitrary word can be tested as a pointer. The raw syscall bypasses the ASan
 * interceptor, which would otherwise report a wild pointer as a probe bug. */
static int copy_chunk(uintptr_t p, void *out, size_t n) {
    long w = syscall(SYS_write, read_pipe[1], (const void *)p, n);
    if (w != (long)n) {
        char drain[4096];
        while (w > 0 && read(read_pipe[0], drain, sizeof drain) > 0) {
        }
        return 0;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(read_pipe[0], (char *)out + got, n - got);
        if (r <= 0) return 0;
        got += (size_t)r;
    }
    return 1;
}

int probe_read_bytes(int64_t addr, void *out, size_t n) {
    uintptr_t p = (uintptr_t)addr;
    if (p < 4096) return 0;
    char scratch[4096];
    int ok = 1;
    pthread_mutex_lock(&read_mutex);
    while (n > 0) {
        size_t in_page = 4096 - (p & 4095);
        size_t chunk = n < in_page ? n : in_page;
        if (!copy_chunk(p, out ? out : scratch, chunk)) {
            ok = 0;
            break;
        }
        if (out) out = (char *)out + chunk;
        p += chunk;
        n -= chunk;
    }
    pthread_mutex_unlock(&read_mutex);
    return ok;
}

#define PROBE_MAX_STRING (1u << 20)

/* The length of the String at an untrusted address, from its header; 0 with *why set when the
 * header is unreadable, implausible (beyond `max`) or not followed by the NUL after the bytes. */
static int read_string_length(uintptr_t p, size_t max, size_t *len, const char **why) {
    if (p == 0) {
        *why = "NULL";
        return 0;
    }
    int64_t header = 0;
    if (p < OSP_STRING_HEADER_BYTES || !probe_read_bytes((int64_t)(p - OSP_STRING_HEADER_BYTES), &header, sizeof header)) {
        *why = probe_read_bytes((int64_t)p, &header, 1) ? "a pointer without a readable length header before it"
                                                        : "not a readable pointer";
        return 0;
    }
    if (header < 0 || (uint64_t)header > max) {
        *why = header < 0 ? "a String whose length header is negative" : "a String whose length header is beyond any length the probe expects (not a String, or a plain C string?)";
        return 0;
    }
    char nul = 1;
    if (!probe_read_bytes((int64_t)(p + (size_t)header), &nul, 1)) {
        *why = "a String whose bytes run into unreadable memory before the length its header gives";
        return 0;
    }
    if (nul != '\0') {
        *why = "a String without the NUL after the bytes its length header counts (header and bytes disagree)";
        return 0;
    }
    *len = (size_t)header;
    return 1;
}

int probe_read_cstring(int64_t addr, char *out, size_t cap, size_t *len, const char **why) {
    uintptr_t p = (uintptr_t)addr;
    size_t total = 0;
    if (!read_string_length(p, PROBE_MAX_STRING, &total, why)) return 0;
    size_t take = total < cap - 1 ? total : cap - 1;
    if (take > 0 && !probe_read_bytes((int64_t)p, out, take)) {
        *why = "not a readable pointer";
        return 0;
    }
    out[take] = '\0';
    *len = total;
    return 1;
}

const char *probe_utf8_error(const char *s, size_t n) {
    static __thread char why[96];
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t need;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            need = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3;
            cp = c & 0x07;
        } else {
            snprintf(why, sizeof why, "byte 0x%02X at offset %zu cannot start a UTF-8 sequence", c, i);
            return why;
        }
        if (i + need >= n) {
            snprintf(why, sizeof why, "truncated UTF-8 sequence at offset %zu", i);
            return why;
        }
        for (size_t k = 1; k <= need; k++) {
            unsigned char cc = (unsigned char)s[i + k];
            if ((cc & 0xC0) != 0x80) {
                snprintf(why, sizeof why, "byte 0x%02X at offset %zu is not a UTF-8 continuation byte", cc, i + k);
                return why;
            }
            cp = (cp << 6) | (cc & 0x3F);
        }
        /* RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
        if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
            snprintf(why, sizeof why, "invalid UTF-8 code point U+%04X at offset %zu", cp, i);
            return why;
        }
        i += need + 1;
    }
    return NULL;
}

const char *probe_quote(const char *s, size_t n) {
    static __thread char buf[160];
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < n && o < 120; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7F) {
            buf[o++] = (char)c;
        } else {
            o += (size_t)snprintf(buf + o, sizeof buf - o, "\\x%02X", c);
        }
    }
    if (n > 0 && o >= 120) o += (size_t)snprintf(buf + o, sizeof buf - o, "...");
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* ---- results ----------------------------------------------------------------------------- */

int probe_result_tag(const char *fn, OspResult r, int64_t arg0) {
    if (r.tag == OSP_RESULT_SUCCESS || r.tag == OSP_RESULT_ERROR) {
        probe_check("result-tag", 1, "%s returned tag %" PRId64, fn, r.tag);
        return (int)r.tag;
    }
    if (arg0 != 0 && r.tag == arg0) {
        probe_check("result-tag", 0,
                    "returned tag 0x%" PRIx64 ", the address of its first argument: the function returns a "
                    "struct larger than 16 bytes through a hidden sret pointer (RDI), so RAX:RDX hold garbage",
                    (uint64_t)r.tag);
    } else if (r.tag >= -1000 && r.tag < 0) {
        probe_check("result-tag", 0,
                    "returned tag %" PRId64 ": not a tagged Result - raw integer return (an error code?)", r.tag);
    } else if ((uint64_t)r.tag <= 0xFFFFFFFFu) {
        probe_check("result-tag", 0, "returned tag %" PRId64 ": not a tagged Result - raw integer return?", r.tag);
    } else if ((uint64_t)r.tag >= 0xFFFFFFFF00000000u) {
        probe_check("result-tag", 0,
                    "returned tag %" PRId64 " (0x%" PRIx64 "): not a tagged Result - raw integer return?", r.tag,
                    (uint64_t)r.tag);
    } else {
        probe_check("result-tag", 0,
                    "returned tag 0x%" PRIx64 ": not a tagged Result (looks like a pointer or garbage in RAX)",
                    (uint64_t)r.tag);
    }
    return -1;
}

int probe_error_message(const char *fn, OspResult r, char *msg, size_t cap) {
    size_t len = 0;
    const char *why = NULL;
    if (!probe_read_cstring(r.value, msg, cap, &len, &why)) {
        probe_check("error-message", 0, "%s returned Error whose payload 0x%" PRIx64 " is %s, not a message", fn,
                    (uint64_t)r.value, why);
        return 0;
    }
    if (len == 0) {
        probe_check("error-message", 0, "%s returned Error with an empty message", fn);
        return 0;
    }
    char *full = malloc(len + 1);
    if (full == NULL) abort();
    const char *bad = NULL;
    if (probe_read_cstring(r.value, full, len + 1, &len, &why)) bad = probe_utf8_error(full, len);
    if (bad != NULL) {
        probe_check("error-message", 0, "%s returned an Error message that is not valid UTF-8: %s in %s", fn, bad,
                    probe_quote(full, len));
        free(full);
        return 0;
    }
    probe_check("error-message", 1, "%s", probe_quote(full, len));
    free(full);
    return 1;
}

void probe_setup_failed(const char *call, OspResult r) {
    char msg[200];
    size_t len = 0;
    const char *why = NULL;
    if (r.tag == OSP_RESULT_ERROR && probe_read_cstring(r.value, msg, sizeof msg, &len, &why))
        probe_check("setup", 0, "set-up call %s returned Error %s", call, probe_quote(msg, len));
    else if (r.tag == OSP_RESULT_ERROR)
        probe_check("setup", 0,
                    "set-up call %s returned tag 1 (Error) with payload 0x%" PRIx64 ", which is %s, not a message - a raw integer return?",
                    call, (uint64_t)r.value, why);
    else
        probe_check("setup", 0, "set-up call %s returned tag %" PRId64 ", not Success%s", call, r.tag,
                    r.tag == OSP_RESULT_SUCCESS ? "" : " - not a tagged Result");
}

/* ---- calls in progress --------------------------------------------------------------------- */

static const char *volatile current_call;

void probe_enter_call(const char *fn) {
    probe_step("during the call to %s", fn);
    current_call = fn;
}

void probe_leave_call(void) {
    const char *fn = current_call;
    current_call = NULL;
    if (fn != NULL) probe_step("after %s returned", fn);
}

/* ---- handler recorder ---------------------------------------------------------------------- */

static struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int count;
    int after_close;
    uint64_t closed_at;
    const char *closed_by;
    char kind[40];
    char expect[128];
    char bad_env[400];
    char bad_args[400];
    char bad_thread[400];
    char bad_order[200];
    char late[200];
    int64_t first_int;
    int have_int;
    /* Last sequence number seen per connection (the first Int argument, 0 without one). */
    int64_t seq_key[8];
    long seq_last[8];
    int seq_used;
    int ordered; /* calls that carried a sequence number */
} H = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, NULL, "", "abi-probe:", "", "", "", "", "", -1, 0, {0}, {0}, 0, 0};

/* The peers number their messages ("abi-probe:push 17"): the number after the last space, or -1. */
static long sequence_number(const char *text, size_t len) {
    const char *sp = memrchr(text, ' ', len);
    if (sp == NULL || sp[1] == '\0') return -1;
    char *end = NULL;
    long n = strtol(sp + 1, &end, 10);
    return (end != NULL && *end == '\0' && n >= 0) ? n : -1;
}

void probe_handler_expect(const char *prefix) {
    pthread_mutex_lock(&H.mutex);
    snprintf(H.expect, sizeof H.expect, "%s", prefix);
    pthread_mutex_unlock(&H.mutex);
}

static int capture_handler_call(const char *handler_kind, int argc, const int64_t *argv, unsigned string_mask);

OspResult probe_handler_called(const char *kind, void *env, int argc, const int64_t *argv, unsigned string_mask) {
    /* An integrity scenario records whole messages and judges them itself. */
    if (capture_handler_call(kind, argc, argv, string_mask)) {
        pthread_mutex_lock(&H.mutex);
        H.count++;
        if (H.closed_by != NULL) H.after_close++;
        pthread_cond_broadcast(&H.cond);
        pthread_mutex_unlock(&H.mutex);
        OspResult ok = {OSP_RESULT_SUCCESS, 0};
        return ok;
    }
    pthread_t self = pthread_self();
    const char *in_call = current_call;
    /* Examine the arguments before taking the lock: reads may be slow. */
    char arg_problem[400] = "";
    long seq = -1;
    for (int i = 0; i < argc && !arg_problem[0]; i++) {
        if (!(string_mask & (1u << i))) continue;
        char text[256];
        size_t len = 0;
        const char *why = NULL;
        if (argv[i] == (int64_t)(intptr_t)PROBE_ENV) {
            snprintf(arg_problem, sizeof arg_problem,
                     "handler's string argument %d is the registered env %p: arguments swapped?", i + 1, PROBE_ENV);
        } else if (!probe_read_cstring(argv[i], text, sizeof text, &len, &why)) {
            snprintf(arg_problem, sizeof arg_problem, "handler's string argument %d (0x%" PRIx64 ") is %s", i + 1,
                     (uint64_t)argv[i], why);
        } else if (strncmp(text, H.expect, strlen(H.expect)) != 0) {
            snprintf(arg_problem, sizeof arg_problem,
                     "handler's string argument %d is %s, not the text the peer sent (starting \"%s\")", i + 1,
                     probe_quote(text, len), H.expect);
        } else if (probe_utf8_error(text, len) != NULL) {
            snprintf(arg_problem, sizeof arg_problem, "handler's string argument %d is not valid UTF-8", i + 1);
        } else {
            seq = sequence_number(text, len);
        }
    }
    int64_t key = 0;
    for (int i = 0; i < argc; i++) {
        if (!(string_mask & (1u << i))) {
            key = argv[i];
            break;
        }
    }
    char env_problem[400] = "";
    if (env != PROBE_ENV) {
        char text[64];
        size_t len = 0;
        const char *why = NULL;
        int is_text = probe_read_cstring((int64_t)(intptr_t)env, text, sizeof text, &len, &why) &&
                      strncmp(text, H.expect, strlen(H.expect)) == 0;
        snprintf(env_problem, sizeof env_problem, "handler called with env %p instead of the registered %p%s", env,
                 PROBE_ENV, is_text ? " - it points at the received message: message and env swapped?" : "");
    }

    pthread_mutex_lock(&H.mutex);
    H.count++;
    snprintf(H.kind, sizeof H.kind, "%s", kind);
    if (env_problem[0] && !H.bad_env[0]) snprintf(H.bad_env, sizeof H.bad_env, "%s", env_problem);
    if (arg_problem[0] && !H.bad_args[0]) snprintf(H.bad_args, sizeof H.bad_args, "%s", arg_problem);
    if (seq >= 0) {
        H.ordered++;
        int k = 0;
        while (k < H.seq_used && H.seq_key[k] != key) k++;
        if (k == H.seq_used && k < 8) {
            H.seq_used++;
            H.seq_key[k] = key;
            H.seq_last[k] = -1;
        }
        if (k < 8) {
            if (seq <= H.seq_last[k] && !H.bad_order[0])
                snprintf(H.bad_order, sizeof H.bad_order,
                         "handler received message %ld after message %ld: out of order or repeated", seq, H.seq_last[k]);
            H.seq_last[k] = seq;
        }
    }
    /* The runtime names its WebSocket I/O thread; a handler there would stall every socket. */
    char thread_name[32] = "";
    if (pthread_getname_np(self, thread_name, sizeof thread_name) != 0) thread_name[0] = '\0';
    if (strcmp(thread_name, "osprey-ws-io") == 0 && !H.bad_thread[0])
        snprintf(H.bad_thread, sizeof H.bad_thread,
                 "handler ran on the runtime's WebSocket I/O thread (%s), not as a fiber on a scheduler worker",
                 thread_name);
    if (pthread_equal(self, main_thread) && !H.bad_thread[0]) {
        if (in_call)
            snprintf(H.bad_thread, sizeof H.bad_thread,
                     "handler ran on the calling thread, synchronously inside %s, not on the runtime's thread", in_call);
        else
            snprintf(H.bad_thread, sizeof H.bad_thread, "handler ran on the program's main thread");
    }
    if (!H.have_int) {
        for (int i = 0; i < argc; i++) {
            if (!(string_mask & (1u << i))) {
                H.first_int = argv[i];
                H.have_int = 1;
                break;
            }
        }
    }
    if (H.closed_by != NULL) {
        H.after_close++;
        if (!H.late[0])
            snprintf(H.late, sizeof H.late, "handler called %" PRIu64 " ms after %s returned",
                     probe_now_ms() - H.closed_at, H.closed_by);
    }
    pthread_cond_broadcast(&H.cond);
    pthread_mutex_unlock(&H.mutex);
    OspResult ok = {OSP_RESULT_SUCCESS, 0};
    return ok;
}

int probe_handler_wait(int n, int ms) {
    uint64_t deadline = probe_now_ms() + (uint64_t)ms;
    pthread_mutex_lock(&H.mutex);
    while (H.count < n) {
        uint64_t now = probe_now_ms();
        if (now >= deadline) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t left = deadline - now;
        if (left > 50) left = 50;
        ts.tv_nsec += (long)left * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&H.cond, &H.mutex, &ts);
    }
    int c = H.count;
    pthread_mutex_unlock(&H.mutex);
    return c;
}

int probe_handler_count(void) {
    pthread_mutex_lock(&H.mutex);
    int c = H.count;
    pthread_mutex_unlock(&H.mutex);
    return c;
}

int64_t probe_handler_first_int(void) {
    pthread_mutex_lock(&H.mutex);
    int64_t v = H.have_int ? H.first_int : -1;
    pthread_mutex_unlock(&H.mutex);
    return v;
}

void probe_handler_mark_closed(const char *by) {
    pthread_mutex_lock(&H.mutex);
    H.closed_by = by;
    H.closed_at = probe_now_ms();
    pthread_mutex_unlock(&H.mutex);
}

void probe_handler_report_caller(const char *registrar, const char *deliverer) {
    pthread_mutex_lock(&H.mutex);
    int n = H.count;
    if (n == 0) {
        probe_check("handler-invoked", 0, "handler registered with %s was not invoked by the time %s returned", registrar, deliverer);
        const char *na = "not exercised: the handler was never invoked";
        probe_check("handler-env", 0, "%s", na);
        probe_check("handler-args", 0, "%s", na);
    } else {
        probe_check("handler-invoked", 1, "invoked %d time(s) through the function pointer before %s returned", n, deliverer);
        probe_check("handler-env", !H.bad_env[0], "%s", H.bad_env[0] ? H.bad_env : "env identical on every call");
        probe_check("handler-args", !H.bad_args[0], "%s",
                    H.bad_args[0] ? H.bad_args : "every string argument readable UTF-8 with the expected text");
    }
    pthread_mutex_unlock(&H.mutex);
}

void probe_handler_report(const char *registrar, int wait_ms, int expect_calls, const char *note) {
    int n = probe_handler_wait(expect_calls, wait_ms);
    pthread_mutex_lock(&H.mutex);
    if (n == 0) {
        probe_check("handler-invoked", 0, "handler registered with %s never invoked within %d.%d s%s", registrar,
                    wait_ms / 1000, (wait_ms % 1000) / 100, note);
        const char *na = "not exercised: the handler was never invoked";
        probe_check("handler-env", 0, "%s", na);
        probe_check("handler-args", 0, "%s", na);
        probe_check("handler-order", 0, "%s", na);
        probe_check("handler-thread", 0, "%s", na);
    } else {
        probe_check("handler-invoked", 1, "invoked %d time(s) through the function pointer", n);
        probe_check("handler-env", !H.bad_env[0], "%s", H.bad_env[0] ? H.bad_env : "env identical on every call");
        probe_check("handler-args", !H.bad_args[0], "%s",
                    H.bad_args[0] ? H.bad_args : "every string argument readable UTF-8 with the text sent");
        if (H.bad_order[0])
            probe_check("handler-order", 0, "%s", H.bad_order);
        else if (H.ordered < 2)
            probe_check("handler-order", 0, "only %d numbered message(s) arrived; cannot judge the order", H.ordered);
        else
            probe_check("handler-order", 1, "%d numbered messages arrived in the order sent", H.ordered);
        probe_check("handler-thread", !H.bad_thread[0], "%s",
                    H.bad_thread[0] ? H.bad_thread : "called as a fiber on a scheduler worker, never on the I/O thread nor inside the caller's call");
    }
    pthread_mutex_unlock(&H.mutex);
}

void probe_handler_report_after_close(int quiet_ms) {
    sleep_ms(quiet_ms);
    pthread_mutex_lock(&H.mutex);
    if (H.closed_by == NULL)
        probe_check("handler-after-close", 0, "not exercised: the connection or server could not be closed");
    else if (H.after_close > 0)
        probe_check("handler-after-close", 0, "%s (%d call(s) after it returned)", H.late, H.after_close);
    else
        probe_check("handler-after-close", 1, "no call in the %d ms after %s returned", quiet_ms, H.closed_by);
    pthread_mutex_unlock(&H.mutex);
}

/* ---- raw RFC 6455 client ------------------------------------------------------------------- */

static int send_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int recv_exact(int fd, void *buf, size_t n, int timeout_ms) {
    char *p = buf;
    uint64_t deadline = probe_now_ms() + (uint64_t)timeout_ms;
    while (n > 0) {
        uint64_t now = probe_now_ms();
        if (now >= deadline) return -1;
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, (int)(deadline - now));
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) return -1;
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int probe_raw_connect(int64_t port, const char *path) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%" PRId64
                     "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     path, port);
    if (send_all(fd, req, (size_t)n) != 0) {
        close(fd);
        return -1;
    }
    /* Byte by byte up to the blank line, so no frame byte is consumed with the headers. */
    char resp[2048];
    size_t len = 0;
    while (len < sizeof resp - 1) {
        if (recv_exact(fd, resp + len, 1, 2000) != 0) {
            close(fd);
            return -1;
        }
        len++;
        if (len >= 4 && memcmp(resp + len - 4, "\r\n\r\n", 4) == 0) break;
    }
    resp[len] = '\0';
    if (strncmp(resp, "HTTP/1.1 101", 12) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int probe_raw_send_text(int fd, const char *text) {
    size_t n = strlen(text);
    unsigned char frame[14 + 1024];
    if (n > 1024) return -1;
    size_t h = 0;
    frame[h++] = 0x81; /* FIN + text */
    if (n <= 125) {
        frame[h++] = (unsigned char)(0x80 | n);
    } else {
        frame[h++] = 0x80 | 126;
        frame[h++] = (unsigned char)(n >> 8);
        frame[h++] = (unsigned char)n;
    }
    /* RFC 6455 §5.3: clients mask every frame. A fixed key is fine for a test peer. */
    const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    memcpy(frame + h, key, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) frame[h + i] = (unsigned char)text[i] ^ key[i & 3];
    return send_all(fd, frame, h + n);
}

int probe_raw_recv_text(int fd, char *buf, size_t cap, int timeout_ms) {
    uint64_t deadline = probe_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = probe_now_ms();
        if (now >= deadline) return -1;
        int left = (int)(deadline - now);
        unsigned char hdr[2];
        if (recv_exact(fd, hdr, 2, left) != 0) return -1;
        uint64_t len = hdr[1] & 0x7F;
        if (len == 126) {
            unsigned char ext[2];
            if (recv_exact(fd, ext, 2, left) != 0) return -1;
            len = ((uint64_t)ext[0] << 8) | ext[1];
        } else if (len == 127) {
            unsigned char ext[8];
            if (recv_exact(fd, ext, 8, left) != 0) return -1;
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | ext[i];
        }
        unsigned char key[4] = {0, 0, 0, 0};
        if ((hdr[1] & 0x80) && recv_exact(fd, key, 4, left) != 0) return -1;
        if (len > 1u << 20) return -1;
        char *payload = malloc(len + 1);
        if (payload == NULL) return -1;
        if (len > 0 && recv_exact(fd, payload, (size_t)len, left) != 0) {
            free(payload);
            return -1;
        }
        for (uint64_t i = 0; i < len; i++) payload[i] ^= (char)key[i & 3];
        int opcode = hdr[0] & 0x0F;
        if (opcode == 0x8) {
            free(payload);
            return -1;
        }
        if (opcode == 0x1) {
            size_t take = len < cap - 1 ? (size_t)len : cap - 1;
            memcpy(buf, payload, take);
            buf[take] = '\0';
            free(payload);
            return (int)take;
        }
        free(payload);
    }
}

static struct {
    pthread_t thread;
    int running;
    volatile int stop;
    int fd;
    int interval_ms;
    char text[128];
} sender;

static void *sender_main(void *arg) {
    (void)arg;
    for (long n = 0; !sender.stop; n++) {
        char text[160];
        snprintf(text, sizeof text, "%s %ld", sender.text, n);
        if (probe_raw_send_text(sender.fd, text) != 0) break;
        sleep_ms(sender.interval_ms);
    }
    return NULL;
}

void probe_raw_start_sender(int fd, const char *text, int interval_ms) {
    if (sender.running) return;
    sender.fd = fd;
    sender.stop = 0;
    sender.interval_ms = interval_ms;
    snprintf(sender.text, sizeof sender.text, "%s", text);
    if (pthread_create(&sender.thread, NULL, sender_main, NULL) == 0) sender.running = 1;
}

void probe_raw_stop_sender(void) {
    if (!sender.running) return;
    sender.stop = 1;
    pthread_join(sender.thread, NULL);
    sender.running = 0;
}

/* ---- message integrity ----------------------------------------------------------------------- */

/* A FIFO of whole messages: what the handler received (capture) or what the raw client read. */
struct msg_node {
    struct msg_node *next;
    size_t len;
    char *data;
    int kind; /* MSG_TEXT, MSG_BINARY, or MSG_UNKNOWN when the receiver cannot tell */
};

struct msg_queue {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    struct msg_node *head, *tail;
    int closed;     /* the producer stopped (raw reader: connection closed or failed) */
    int close_code; /* the code of a Close frame the raw reader received, 0 without one, -1 none */
};

static void queue_init(struct msg_queue *q) {
    pthread_mutex_init(&q->mutex, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->head = q->tail = NULL;
    q->closed = 0;
    q->close_code = -1;
}

static void queue_push(struct msg_queue *q, char *data, size_t len, int kind) {
    struct msg_node *n = malloc(sizeof *n);
    if (n == NULL) abort();
    n->next = NULL;
    n->len = len;
    n->data = data;
    n->kind = kind;
    pthread_mutex_lock(&q->mutex);
    if (q->tail) q->tail->next = n;
    else q->head = n;
    q->tail = n;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mutex);
}

static void queue_close(struct msg_queue *q, int close_code) {
    pthread_mutex_lock(&q->mutex);
    q->closed = 1;
    q->close_code = close_code;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mutex);
}

static void deadline_timespec(uint64_t deadline_ms, struct timespec *ts) {
    uint64_t now = probe_now_ms();
    uint64_t left = deadline_ms > now ? deadline_ms - now : 0;
    if (left > 50) left = 50;
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_nsec += (long)left * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* 1 with a message, 0 on timeout, -1 when the producer stopped and nothing is left. `kind`
 * (may be NULL) receives the message's kind. */
static int queue_pop_kind(struct msg_queue *q, int timeout_ms, char **data, size_t *len, int *kind) {
    uint64_t deadline = probe_now_ms() + (uint64_t)timeout_ms;
    pthread_mutex_lock(&q->mutex);
    while (q->head == NULL && !q->closed && probe_now_ms() < deadline) {
        struct timespec ts;
        deadline_timespec(deadline, &ts);
        pthread_cond_timedwait(&q->cond, &q->mutex, &ts);
    }
    struct msg_node *n = q->head;
    int stopped = q->closed;
    if (n != NULL) {
        q->head = n->next;
        if (q->head == NULL) q->tail = NULL;
    }
    pthread_mutex_unlock(&q->mutex);
    if (n == NULL) return stopped ? -1 : 0;
    *data = n->data;
    *len = n->len;
    if (kind != NULL) *kind = n->kind;
    free(n);
    return 1;
}

static int queue_pop(struct msg_queue *q, int timeout_ms, char **data, size_t *len) {
    return queue_pop_kind(q, timeout_ms, data, len, NULL);
}

/* Waits until the producer stopped; returns the Close code (0: closed without a code, -1: no
 * Close frame, -2: still open after timeout_ms). */
static int queue_wait_closed(struct msg_queue *q, int timeout_ms) {
    uint64_t deadline = probe_now_ms() + (uint64_t)timeout_ms;
    pthread_mutex_lock(&q->mutex);
    while (!q->closed && probe_now_ms() < deadline) {
        struct timespec ts;
        deadline_timespec(deadline, &ts);
        pthread_cond_timedwait(&q->cond, &q->mutex, &ts);
    }
    int code = q->closed ? q->close_code : -2;
    pthread_mutex_unlock(&q->mutex);
    return code;
}

static struct msg_queue capture_queue;
static volatile int capture_active;
static size_t capture_max;

void probe_capture_start(size_t max_bytes) {
    queue_init(&capture_queue);
    capture_max = max_bytes;
    capture_active = 1;
}

int probe_capture_next(int timeout_ms, char **msg, size_t *len) {
    return queue_pop(&capture_queue, timeout_ms, msg, len) == 1;
}

/* probe_capture_next, with the kind the handler was told (MSG_UNKNOWN for a String handler). */
static int capture_next_kind(int timeout_ms, char **msg, size_t *len, int *kind) {
    return queue_pop_kind(&capture_queue, timeout_ms, msg, len, kind) == 1;
}

/* Stops capturing and frees what is left: the copies were allocated under the library's frames
 * (the handler runs on its thread), so LeakSanitizer would otherwise blame the library. */
static void capture_stop(void) {
    capture_active = 0;
    char *m;
    size_t l;
    while (queue_pop(&capture_queue, 0, &m, &l) == 1) free(m);
}

/* A whole String (length header, bytes, NUL) at an untrusted address, up to `max` bytes, malloc'd; NULL with
 * *why set when it is unreadable, not a String, or longer. */
static char *read_cstring_alloc(int64_t addr, size_t max, size_t *len, const char **why) {
    uintptr_t p = (uintptr_t)addr;
    size_t total = 0;
    if (!read_string_length(p, (size_t)INT64_MAX, &total, why)) return NULL;
    if (total > max) {
        *why = "longer than any message the probe sent";
        return NULL;
    }
    char *out = malloc(total + 1);
    if (out == NULL) abort();
    if (total > 0 && !probe_read_bytes((int64_t)p, out, total)) {
        *why = "not a readable pointer";
        free(out);
        return NULL;
    }
    out[total] = '\0';
    *len = total;
    return out;
}

/* A message the checks will not match, whose text says why (the reason is shown when it fails). */
static void capture_unreadable(const char *what, const char *why) {
    char text[200];
    int n = snprintf(text, sizeof text, "<the handler's %s was %s>", what, why);
    char *copy = strdup(text);
    if (copy == NULL) abort();
    queue_push(&capture_queue, copy, (size_t)n, MSG_UNKNOWN);
}

/* A WebSocketMessage record (runtime-bindings/abi.ts: words [0, type, data, timestamp]): its data
 * copied whole, and its type as MSG_TEXT ("text"), MSG_BINARY ("binary") or MSG_BAD_TYPE. */
static void capture_record(int64_t addr) {
    int64_t words[4];
    if (addr == (int64_t)(intptr_t)PROBE_ENV) {
        capture_unreadable("WebSocketMessage argument", "the registered env: arguments swapped?");
        return;
    }
    if (!probe_read_bytes(addr, words, sizeof words)) {
        capture_unreadable("WebSocketMessage argument", "not a readable record of 4 words");
        return;
    }
    size_t tn = 0, dn = 0;
    const char *why = NULL;
    char *type = read_cstring_alloc(words[1], 16, &tn, &why);
    if (type == NULL) {
        capture_unreadable("WebSocketMessage type", why);
        return;
    }
    int kind = tn == 4 && memcmp(type, "text", 4) == 0 ? MSG_TEXT : tn == 6 && memcmp(type, "binary", 6) == 0 ? MSG_BINARY : MSG_BAD_TYPE;
    free(type);
    char *data = read_cstring_alloc(words[2], capture_max, &dn, &why);
    if (data == NULL) {
        capture_unreadable("WebSocketMessage data", why);
        return;
    }
    queue_push(&capture_queue, data, dn, kind);
}

/* Called first by probe_handler_called while capturing: copies the message argument whole. */
static int capture_handler_call(const char *handler_kind, int argc, const int64_t *argv, unsigned string_mask) {
    if (!capture_active) return 0;
    if (strcmp(handler_kind, "ws_message") == 0 && argc == 2) {
        capture_record(argv[1]);
        return 1;
    }
    for (int i = 0; i < argc; i++) {
        if (!(string_mask & (1u << i))) continue;
        size_t len = 0;
        const char *why = NULL;
        char *copy = read_cstring_alloc(argv[i], capture_max, &len, &why);
        if (copy == NULL) {
            /* Recorded as a message the checks will not match, with the reason as its text. */
            char text[160];
            int n = snprintf(text, sizeof text, "<the handler's string argument was %s>", why);
            copy = strdup(text);
            if (copy == NULL) abort();
            len = (size_t)n;
        }
        queue_push(&capture_queue, copy, len, MSG_UNKNOWN);
        break;
    }
    return 1;
}

static int integrity_content; /* INTEGRITY_UTF8, INTEGRITY_NUL_BYTES or INTEGRITY_BINARY */
static int integrity_kind;    /* the kind every message must arrive as: MSG_TEXT, MSG_BINARY, or MSG_UNKNOWN (unchecked) */

void probe_integrity_set_content(int content, int kind) {
    integrity_content = content;
    integrity_kind = kind;
}

static const char *kind_name(int kind) {
    switch (kind) {
    case MSG_TEXT: return "text";
    case MSG_BINARY: return "binary";
    case MSG_BAD_TYPE: return "neither \"text\" nor \"binary\"";
    default: return "unknown";
    }
}

/* A WebSocketMessage type as the handler saw it, for reasons. */
static const char *type_name(int kind) {
    switch (kind) {
    case MSG_TEXT: return "\"text\"";
    case MSG_BINARY: return "\"binary\"";
    case MSG_BAD_TYPE: return "that is neither \"text\" nor \"binary\"";
    default: return "(unreadable)";
    }
}

char *probe_integrity_text(size_t n, unsigned index) {
    char *out = probe_string_new(NULL, n, 0);
    uint32_t state = (uint32_t)(0x85ebca6bu ^ ((uint32_t)n * 2246822519u) ^ (index * 3266489917u));
    if (state == 0) state = 1;
    if (integrity_content == INTEGRITY_BINARY) {
        for (size_t at = 0; at < n; at++) {
            if (at < 256) {
                /* i -> i * 167 + c (mod 256) is a bijection: the first 256 bytes hold every value once. */
                out[at] = (char)(unsigned char)(at * 167u + index * 59u + (unsigned)n);
                continue;
            }
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            out[at] = (char)(unsigned char)(state >> 24);
        }
        out[n] = '\0';
        return out;
    }
    size_t at = 0;
    while (at < n) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        uint32_t r = state;
        size_t room = n - at;
        static const unsigned widths[5] = {1, 1, 2, 3, 4};
        size_t w = widths[r % 5];
        if (w > room) w = room;
        uint32_t v = r >> 8;
        unsigned char *o = (unsigned char *)out + at;
        if (w == 1) {
            o[0] = integrity_content == INTEGRITY_NUL_BYTES && v % 3 == 0 ? 0 : (unsigned char)(0x21 + v % 94);
        } else if (w == 2) {
            uint32_t cp = 0x80 + v % 0x780;
            o[0] = (unsigned char)(0xC0 | (cp >> 6));
            o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        } else if (w == 3) {
            uint32_t cp = 0x800 + v % 0xF800;
            if (cp >= 0xD800 && cp <= 0xDFFF) cp -= 0x800; /* no surrogates */
            o[0] = (unsigned char)(0xE0 | (cp >> 12));
            o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        } else {
            uint32_t cp = 0x10000 + v % 0x100000;
            o[0] = (unsigned char)(0xF0 | (cp >> 18));
            o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
            o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            o[3] = (unsigned char)(0x80 | (cp & 0x3F));
        }
        at += w;
    }
    out[n] = '\0';
    return out;
}

const char *probe_integrity_token(void) {
    static char token[64];
    if (token[0] == '\0') snprintf(token, sizeof token, "%ld-%" PRIu64, (long)getpid(), probe_now_ms());
    return token;
}

const char *probe_integrity_url(int64_t limit) {
    char path[160];
    const char *suffix = integrity_content == INTEGRITY_NUL_BYTES ? "/nul" : integrity_content == INTEGRITY_BINARY ? "/binary" : "";
    snprintf(path, sizeof path, "/integrity/%" PRId64 "/%s%s", limit, probe_integrity_token(), suffix);
    return probe_echo_url(path);
}

static void sha256_hex(const char *data, size_t len, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        snprintf(out, 65, "%s", "(sha256 failed)");
        return;
    }
    for (unsigned i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* "4,097" */
static const char *grouped(int64_t n, char buf[32]) {
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%" PRId64, n < 0 ? -n : n);
    size_t o = 0;
    if (n < 0) buf[o++] = '-';
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* What went wrong with one message, collected so the report names every failing size. */
struct integrity_log {
    const char *fn;
    int failures;
    char first[700];
    char sizes[300];
};

static void integrity_fail(struct integrity_log *log, int64_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void integrity_fail(struct integrity_log *log, int64_t size, const char *fmt, ...) {
    char text[600], g[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (log->failures == 0) snprintf(log->first, sizeof log->first, "%s: the %s-byte message %s", log->fn, grouped(size, g), text);
    size_t used = strlen(log->sizes);
    if (used < sizeof log->sizes - 40)
        snprintf(log->sizes + used, sizeof log->sizes - used, "%s%s", used ? ", " : "", grouped(size, g));
    log->failures++;
}

static void integrity_report(struct integrity_log *log, const int64_t *sizes, int stopped_at, int count, int64_t limit) {
    if (log->failures == 0 && stopped_at < 0) {
        int64_t most = 0;
        for (int i = 0; i < count; i++)
            if (sizes[i] > most) most = sizes[i];
        char g[32];
        probe_check("integrity", 1, "%d messages of 0 to %s bytes%s arrived byte for byte, in order", count, grouped(most, g),
                    limit > 0 ? " (the configured limit)" : "");
        return;
    }
    char rest[200] = "";
    if (stopped_at >= 0) snprintf(rest, sizeof rest, "; the sequence stopped there (%d of %d sizes not checked)", count - stopped_at - 1, count);
    if (log->failures <= 1)
        probe_check("integrity", 0, "%s%s", log->first, rest);
    else
        probe_check("integrity", 0, "%s; %d sizes failed: %s bytes%s", log->first, log->failures, log->sizes, rest);
}

/* How `got` differs from `want`, in words: truncated, extended, reordered or altered. */
static void describe_difference(char *out, size_t cap, const char *want, size_t wn, const char *got, size_t gn,
                                const int64_t *sizes, int count, int index) {
    char g1[32], g2[32];
    size_t common = wn < gn ? wn : gn;
    size_t at = 0;
    while (at < common && want[at] == got[at]) at++;
    for (int j = 0; j < count; j++) {
        if (j == index || (size_t)sizes[j] != gn || gn == 0) continue;
        char *other = probe_integrity_text(gn, (unsigned)j);
        int same = memcmp(other, got, gn) == 0;
        probe_string_free(other);
        if (same) {
            snprintf(out, cap, "was not delivered in its place: message #%d (%s bytes) arrived instead - reordered or dropped", j, grouped((int64_t)gn, g1));
            return;
        }
    }
    if (gn < wn && at == gn)
        snprintf(out, cap, "arrived truncated to its first %s bytes", grouped((int64_t)gn, g1));
    else if (gn > wn && at == wn)
        snprintf(out, cap, "arrived with %s bytes appended (%s bytes in all)", grouped((int64_t)(gn - wn), g1), grouped((int64_t)gn, g2));
    else
        snprintf(out, cap, "arrived altered: %s bytes, first difference at byte %s", grouped((int64_t)gn, g1), grouped((int64_t)at, g2));
}

/* Error text of a refused call, for reasons. */
static const char *result_text(OspResult r, char *buf, size_t cap) {
    size_t len = 0;
    const char *why = NULL;
    if (r.tag == OSP_RESULT_ERROR && probe_read_cstring(r.value, buf, cap, &len, &why)) return probe_quote(buf, len);
    snprintf(buf, cap, "tag %" PRId64, r.tag);
    return buf;
}

/* ---- the raw client's reader: every data message into a queue, the Close code at the end ---- */

static struct {
    pthread_t thread;
    int running;
    int fd;
    size_t max;
    struct msg_queue q;
} raw_reader;

static void *raw_reader_main(void *arg) {
    (void)arg;
    int fd = raw_reader.fd;
    char *msg = NULL;
    size_t len = 0;
    int code = -1;
    int msg_kind = MSG_UNKNOWN; /* from the opcode of the message's first frame */
    for (;;) {
        unsigned char hdr[2];
        if (recv_exact(fd, hdr, 2, 30000) != 0) break;
        uint64_t n = hdr[1] & 0x7F;
        if (n == 126) {
            unsigned char ext[2];
            if (recv_exact(fd, ext, 2, 30000) != 0) break;
            n = ((uint64_t)ext[0] << 8) | ext[1];
        } else if (n == 127) {
            unsigned char ext[8];
            if (recv_exact(fd, ext, 8, 30000) != 0) break;
            n = 0;
            for (int i = 0; i < 8; i++) n = (n << 8) | ext[i];
        }
        unsigned char key[4] = {0, 0, 0, 0};
        if ((hdr[1] & 0x80) && recv_exact(fd, key, 4, 30000) != 0) break;
        if (n > raw_reader.max || len + n > raw_reader.max) break;
        int opcode = hdr[0] & 0x0F;
        char *payload = malloc((size_t)n + 1);
        if (payload == NULL) abort();
        if (n > 0 && recv_exact(fd, payload, (size_t)n, 30000) != 0) {
            free(payload);
            break;
        }
        for (uint64_t i = 0; i < n; i++) payload[i] ^= (char)key[i & 3];
        if (opcode == 0x8) {
            code = n >= 2 ? (((unsigned char)payload[0] << 8) | (unsigned char)payload[1]) : 0;
            free(payload);
            break;
        }
        if (opcode >= 0x8) { /* ping/pong: not part of any message */
            free(payload);
            continue;
        }
        /* Text, binary or a continuation: reassemble until FIN. */
        if (msg == NULL) msg_kind = opcode == 0x1 ? MSG_TEXT : opcode == 0x2 ? MSG_BINARY : MSG_UNKNOWN;
        char *grown = realloc(msg, len + (size_t)n + 1);
        if (grown == NULL) abort();
        msg = grown;
        memcpy(msg + len, payload, (size_t)n);
        len += (size_t)n;
        free(payload);
        if (hdr[0] & 0x80) {
            msg[len] = '\0';
            queue_push(&raw_reader.q, msg, len, msg_kind);
            msg = NULL;
            len = 0;
        }
    }
    free(msg);
    queue_close(&raw_reader.q, code);
    return NULL;
}

static void raw_reader_start(int fd, size_t max) {
    queue_init(&raw_reader.q);
    raw_reader.fd = fd;
    raw_reader.max = max;
    if (pthread_create(&raw_reader.thread, NULL, raw_reader_main, NULL) == 0) raw_reader.running = 1;
    else queue_close(&raw_reader.q, -1);
}

static void raw_reader_stop(void) {
    if (!raw_reader.running) return;
    shutdown(raw_reader.fd, SHUT_RDWR);
    pthread_join(raw_reader.thread, NULL);
    raw_reader.running = 0;
    char *m;
    size_t l;
    while (queue_pop(&raw_reader.q, 0, &m, &l) == 1) free(m);
}

/* One masked frame of any length (RFC 6455 §5.2, 64-bit length above 65,535): binary (0x2) in
 * the binary case, text (0x1) otherwise. */
static int raw_send_frame(int fd, const char *data, size_t n) {
    unsigned char hdr[14];
    size_t h = 0;
    hdr[h++] = integrity_content == INTEGRITY_BINARY ? 0x82 : 0x81;
    if (n <= 125) {
        hdr[h++] = (unsigned char)(0x80 | n);
    } else if (n <= 0xFFFF) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(n >> 8);
        hdr[h++] = (unsigned char)n;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) hdr[h++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    const unsigned char key[4] = {0x5a, 0x13, 0xc7, 0x9e};
    memcpy(hdr + h, key, 4);
    h += 4;
    if (send_all(fd, hdr, h) != 0) return -1;
    unsigned char chunk[65536];
    for (size_t off = 0; off < n;) {
        size_t take = n - off < sizeof chunk ? n - off : sizeof chunk;
        for (size_t i = 0; i < take; i++) chunk[i] = (unsigned char)data[off + i] ^ key[(off + i) & 3];
        if (send_all(fd, chunk, take) != 0) return -1;
        off += take;
    }
    return 0;
}

#define INTEGRITY_WAIT_MS 5000

static int64_t over_limit_size(int64_t limit) { return limit + 1; }

static void limit_not_exercised(const char *fn) {
    probe_check("message-limit", 0, "not exercised: %s could not be checked at the limit because the library does not define osp_ws_set_default_limit", fn);
}

/* Send direction: compares what the peer received (through `next`) with what was sent. */
typedef int (*received_fn)(int timeout_ms, char **msg, size_t *len);

static int raw_next(int timeout_ms, char **msg, size_t *len) { return queue_pop(&raw_reader.q, timeout_ms, msg, len); }

/* The digest the Node server answered with: "abi-probe:digest N LEN SHA256". */
static int parse_digest(const char *text, const char *word, long *index, size_t *len, char sha[65]) {
    char prefix[40];
    snprintf(prefix, sizeof prefix, "abi-probe:%s ", word);
    size_t pl = strlen(prefix);
    if (strncmp(text, prefix, pl) != 0) return 0;
    unsigned long long l = 0;
    char hex[65];
    if (sscanf(text + pl, "%ld %llu %64s", index, &l, hex) != 3) return 0;
    *len = (size_t)l;
    memcpy(sha, hex, 65);
    return 1;
}

/* Send direction, raw client: one message at a time, each compared with what the raw client read. */
static void integrity_send_raw(const char *fn, probe_send_fn send, const int64_t *sizes, int count, int64_t limit) {
    struct integrity_log log = {fn, 0, "", ""};
    int stopped_at = -1;
    char errbuf[200], why[300], g[32];
    for (int i = 0; i < count; i++) {
        size_t n = (size_t)sizes[i];
        char *msg = probe_integrity_text(n, (unsigned)i);
        probe_step("sending the %s-byte message #%d through %s", grouped((int64_t)n, g), i, fn);
        OspResult r = send(msg);
        if (r.tag != OSP_RESULT_SUCCESS) {
            integrity_fail(&log, (int64_t)n, "was refused: %s returned %s", fn, result_text(r, errbuf, sizeof errbuf));
            probe_string_free(msg);
            continue;
        }
        char *got = NULL;
        size_t gn = 0;
        int got_kind = MSG_UNKNOWN;
        int st = queue_pop_kind(&raw_reader.q, INTEGRITY_WAIT_MS, &got, &gn, &got_kind);
        if (st != 1) {
            integrity_fail(&log, (int64_t)n, "never arrived: %s returned Success but the peer %s", fn,
                           st < 0 ? "connection closed first" : "received nothing within 5 s (dropped)");
            probe_string_free(msg);
            stopped_at = i;
            break;
        }
        if (gn != n || memcmp(got, msg, n) != 0) {
            describe_difference(why, sizeof why, msg, n, got, gn, sizes, count, i);
            integrity_fail(&log, (int64_t)n, "%s", why);
        } else if (integrity_kind != MSG_UNKNOWN && got_kind != integrity_kind) {
            integrity_fail(&log, (int64_t)n, "arrived whole but as a %s message (opcode 0x%d): %s must send %s (opcode 0x%d)", kind_name(got_kind),
                           got_kind == MSG_BINARY ? 2 : 1, fn, kind_name(integrity_kind), integrity_kind == MSG_BINARY ? 2 : 1);
        }
        free(got);
        probe_string_free(msg);
    }
    integrity_report(&log, sizes, stopped_at, count, limit);

    if (limit <= 0) {
        limit_not_exercised(fn);
        return;
    }
    if (stopped_at >= 0) {
        probe_check("message-limit", 0, "not exercised: the integrity sequence stopped first");
        return;
    }
    size_t over = (size_t)over_limit_size(limit);
    char *msg = probe_integrity_text(over, 999);
    probe_step("sending a message one byte over the configured limit through %s", fn);
    OspResult r = send(msg);
    probe_string_free(msg);
    char gl[32], go[32];
    if (r.tag == OSP_RESULT_ERROR) {
        /* Refused: nothing of it may reach the peer; the next message must arrive first and whole. */
        char *marker = probe_integrity_text(125, 1000);
        OspResult m = send(marker);
        char *got = NULL;
        size_t gn = 0;
        int st = m.tag == OSP_RESULT_SUCCESS ? raw_next(INTEGRITY_WAIT_MS, &got, &gn) : 0;
        int clean = st == 1 && gn == 125 && memcmp(got, marker, 125) == 0;
        if (m.tag != OSP_RESULT_SUCCESS)
            probe_check("message-limit", 0, "%s refused the %s-byte message (one over the limit) but then also refused a 125-byte one: %s", fn, grouped((int64_t)over, go), result_text(m, errbuf, sizeof errbuf));
        else if (!clean)
            probe_check("message-limit", 0, "%s returned Error for the %s-byte message (one over the limit of %s), but the peer then received %s instead of the next 125-byte message", fn, grouped((int64_t)over, go), grouped(limit, gl),
                        st == 1 ? "something else (part of the refused message?)" : "nothing");
        else
            probe_check("message-limit", 1, "%s-byte message (limit + 1) refused with Error %s; nothing of it reached the peer", grouped((int64_t)over, go), result_text(r, errbuf, sizeof errbuf));
        free(got);
        probe_string_free(marker);
        return;
    }
    char *got = NULL;
    size_t gn = 0;
    char seen[120] = "";
    if (raw_next(1000, &got, &gn) == 1) snprintf(seen, sizeof seen, "; the peer received %s bytes of it", grouped((int64_t)gn, g));
    free(got);
    probe_check("message-limit", 0, "%s returned %s for a %s-byte message, one byte over the configured limit of %s: it must return Error, not send it%s", fn,
                r.tag == OSP_RESULT_SUCCESS ? "Success" : "no valid Result", grouped((int64_t)over, go), grouped(limit, gl), seen);
}

/* What the harness's Node server received on this process's /digest connection: it answers a raw
 * client (independent of the runtime's receive path) with "abi-probe:digests LEN SHA256;..." once
 * `count` messages arrived or `timeout_ms` passed. Returns the number of entries parsed, -1 when
 * the server could not be asked. */
struct peer_digest {
    size_t len;
    char sha[65];
    int kind; /* MSG_TEXT or MSG_BINARY: the opcode the Node server saw */
};

static int node_digests(int count, int timeout_ms, struct peer_digest *out, int cap) {
    const char *base = getenv("OSP_PROBE_ECHO_URL");
    int port = 0;
    if (base == NULL || sscanf(base, "ws://127.0.0.1:%d", &port) != 1) return -1;
    char path[200];
    snprintf(path, sizeof path, "/digests/%s/%d/%d", probe_integrity_token(), count, timeout_ms);
    int fd = probe_raw_connect(port, path);
    if (fd < 0) return -1;
    char text[8192];
    int n = probe_raw_recv_text(fd, text, sizeof text, timeout_ms + 2000);
    close(fd);
    if (n < 0 || strncmp(text, "abi-probe:digests", 17) != 0) return -1;
    int k = 0;
    char *save = NULL;
    for (char *e = strtok_r(text + 17, ";", &save); e != NULL && k < cap; e = strtok_r(NULL, ";", &save)) {
        unsigned long long l = 0;
        char hex[65], flag[16] = "";
        int fields = sscanf(e, " %llu %64s %15s", &l, hex, flag);
        if (fields < 2) continue;
        out[k].len = (size_t)l;
        memcpy(out[k].sha, hex, 65);
        out[k].kind = fields == 3 && strcmp(flag, "binary") == 0 ? MSG_BINARY : MSG_TEXT;
        k++;
    }
    return k;
}

const char *probe_integrity_digest_url(void) {
    char path[120];
    snprintf(path, sizeof path, "/digest/%s", probe_integrity_token());
    return probe_echo_url(path);
}

/* Send direction, osp_ws_send: every message is sent, then the Node server says what it received,
 * in order, through a raw client. Nothing depends on the runtime's own receive path. */
void probe_integrity_send_digest(const char *fn, probe_send_fn send, const int64_t *sizes, int count, int64_t limit) {
    struct integrity_log log = {fn, 0, "", ""};
    int stopped_at = -1;
    char errbuf[200], g[32], g2[32];
    char (*want)[65] = calloc((size_t)count + 2, 65);
    char (*refused)[200] = calloc((size_t)count + 2, 200);
    int *sent_index = calloc((size_t)count + 2, sizeof *sent_index);
    if (want == NULL || refused == NULL || sent_index == NULL) abort();
    int sent = 0;
    for (int i = 0; i < count; i++) {
        size_t n = (size_t)sizes[i];
        char *msg = probe_integrity_text(n, (unsigned)i);
        sha256_hex(msg, n, want[i]);
        probe_step("sending the %s-byte message #%d through %s", grouped((int64_t)n, g), i, fn);
        OspResult r = send(msg);
        probe_string_free(msg);
        if (r.tag != OSP_RESULT_SUCCESS) snprintf(refused[i], 200, "%s", result_text(r, errbuf, sizeof errbuf));
        else sent_index[sent++] = i;
    }
    struct peer_digest got[64];
    int k = sent > 0 ? node_digests(sent, INTEGRITY_WAIT_MS, got, 64) : 0;
    if (k < 0) {
        probe_check("integrity", 0, "not exercised: the probe could not ask the harness's server what it received");
        free(want);
        free(refused);
        free(sent_index);
        if (limit > 0) probe_check("message-limit", 0, "not exercised: the probe could not ask the harness's server what it received");
        else limit_not_exercised(fn);
        return;
    }
    /* In the order sent, so the first failure reported is the smallest size that failed. */
    for (int i = 0, j = 0; i < count; i++) {
        size_t n = (size_t)sizes[i];
        if (refused[i][0]) {
            integrity_fail(&log, (int64_t)n, "was refused: %s returned %s", fn, refused[i]);
            continue;
        }
        int at = j++; /* this message's place among those the peer should have received */
        if (at >= k) {
            integrity_fail(&log, (int64_t)n, "never arrived: %s returned Success, but the peer received only %d of the %d messages sent within 5 s (dropped)", fn, k, sent);
            continue;
        }
        if (got[at].len == n && strcmp(got[at].sha, want[i]) == 0) {
            if (integrity_kind != MSG_UNKNOWN && got[at].kind != integrity_kind)
                integrity_fail(&log, (int64_t)n, "arrived whole but as a %s message (opcode 0x%d): %s must send %s (opcode 0x%d)", kind_name(got[at].kind),
                               got[at].kind == MSG_BINARY ? 2 : 1, fn, kind_name(integrity_kind), integrity_kind == MSG_BINARY ? 2 : 1);
            continue;
        }
        int elsewhere = -1;
        for (int o = 0; o < sent && elsewhere < 0; o++)
            if (o != at && got[at].len == (size_t)sizes[sent_index[o]] && strcmp(got[at].sha, want[sent_index[o]]) == 0) elsewhere = sent_index[o];
        if (elsewhere >= 0)
            integrity_fail(&log, (int64_t)n, "was not received in its place: the peer received message #%d (%s bytes) there - reordered or dropped", elsewhere, grouped(sizes[elsewhere], g));
        else if (got[at].len != n)
            integrity_fail(&log, (int64_t)n, "arrived as %s bytes (%s)", grouped((int64_t)got[at].len, g2), got[at].len < n ? "truncated" : "extended");
        else
            integrity_fail(&log, (int64_t)n, "arrived altered (same length, different SHA-256)");
    }
    if (k > sent && sent > 0)
        integrity_fail(&log, sizes[sent_index[sent - 1]], "was followed by %d message(s) the program never sent: the peer received %d for the %d sent (duplicated?)", k - sent, k, sent);
    integrity_report(&log, sizes, stopped_at, count, limit);

    if (limit <= 0) {
        limit_not_exercised(fn);
    } else {
        char go[32], gl[32];
        size_t over = (size_t)over_limit_size(limit);
        char *msg = probe_integrity_text(over, 999);
        probe_step("sending a message one byte over the configured limit through %s", fn);
        OspResult r = send(msg);
        probe_string_free(msg);
        char *marker = probe_integrity_text(125, 1000);
        char marker_sha[65];
        sha256_hex(marker, 125, marker_sha);
        OspResult m = r.tag == OSP_RESULT_ERROR ? send(marker) : r;
        probe_string_free(marker);
        int more = node_digests(k + 1, r.tag == OSP_RESULT_ERROR ? INTEGRITY_WAIT_MS : 1000, got, 64);
        if (r.tag == OSP_RESULT_ERROR) {
            if (m.tag != OSP_RESULT_SUCCESS)
                probe_check("message-limit", 0, "%s refused the %s-byte message (one over the limit) but then also refused a 125-byte one: %s", fn, grouped((int64_t)over, go), result_text(m, errbuf, sizeof errbuf));
            else if (more == k + 1 && got[k].len == 125 && strcmp(got[k].sha, marker_sha) == 0)
                probe_check("message-limit", 1, "%s-byte message (limit + 1) refused with Error %s; nothing of it reached the peer", grouped((int64_t)over, go), result_text(r, errbuf, sizeof errbuf));
            else
                probe_check("message-limit", 0, "%s returned Error for the %s-byte message (one over the limit of %s), but the peer then received %s instead of the next 125-byte message", fn, grouped((int64_t)over, go), grouped(limit, gl),
                            more > k ? "something else (part of the refused message?)" : "nothing");
        } else {
            char seen[120] = "";
            if (more > k) snprintf(seen, sizeof seen, "; the peer received %s bytes of it", grouped((int64_t)got[k].len, g));
            probe_check("message-limit", 0, "%s returned %s for a %s-byte message, one byte over the configured limit of %s: it must return Error, not send it%s", fn,
                        r.tag == OSP_RESULT_SUCCESS ? "Success" : "no valid Result", grouped((int64_t)over, go), grouped(limit, gl), seen);
        }
    }
    free(want);
    free(refused);
    free(sent_index);
}

void probe_integrity_send_raw(const char *fn, probe_send_fn send, int fd, const int64_t *sizes, int count, int64_t limit) {
    int64_t most = limit > 0 ? over_limit_size(limit) : 0;
    for (int i = 0; i < count; i++)
        if (sizes[i] > most) most = sizes[i];
    raw_reader_start(fd, (size_t)most + 1024);
    integrity_send_raw(fn, send, sizes, count, limit);
    raw_reader_stop();
}

/* The Close code the harness's Node server saw on the connection of this process's token. */
static int node_close_code(int timeout_ms) {
    const char *base = getenv("OSP_PROBE_ECHO_URL");
    int port = 0;
    if (base == NULL || sscanf(base, "ws://127.0.0.1:%d", &port) != 1) return -3;
    char path[160];
    snprintf(path, sizeof path, "/closecode/%s/%d", probe_integrity_token(), timeout_ms);
    int fd = probe_raw_connect(port, path);
    if (fd < 0) return -3;
    char text[128];
    int n = probe_raw_recv_text(fd, text, sizeof text, timeout_ms + 2000);
    close(fd);
    int code = -1;
    if (n < 0 || sscanf(text, "abi-probe:closecode %d", &code) != 1) return -1;
    return code;
}

static void receive_digest(const char *fn, const int64_t *sizes, int count, int64_t limit) {
    struct integrity_log log = {fn, 0, "", ""};
    int stopped_at = -1;
    char g[32];
    char *pending = NULL; /* an announcement popped while expecting a message */
    size_t pending_len = 0;
    for (int i = 0; i < count; i++) {
        size_t n = (size_t)sizes[i];
        char *ann = pending;
        size_t an = pending_len;
        pending = NULL;
        if (ann == NULL && !probe_capture_next(INTEGRITY_WAIT_MS, &ann, &an)) {
            integrity_fail(&log, (int64_t)n, "never reached the handler (nothing within 5 s)");
            stopped_at = i;
            break;
        }
        long index = -1;
        size_t want_len = 0;
        char want_sha[65];
        if (!parse_digest(ann, "expect", &index, &want_len, want_sha)) {
            integrity_fail(&log, (int64_t)n, "could not be matched: the handler received %s bytes where the peer's announcement of message #%d was due - messages reordered or delivered twice", grouped((int64_t)an, g), i);
            free(ann);
            stopped_at = i;
            break;
        }
        free(ann);
        if (index != i || want_len != n) {
            integrity_fail(&log, (int64_t)n, "was announced out of sequence (#%ld of %s bytes): the harness's peer and probe disagree", index, grouped((int64_t)want_len, g));
            stopped_at = i;
            break;
        }
        char *got = NULL;
        size_t gn = 0;
        int got_kind = MSG_UNKNOWN;
        if (!capture_next_kind(INTEGRITY_WAIT_MS, &got, &gn, &got_kind)) {
            integrity_fail(&log, (int64_t)n, "never reached the handler (nothing within 5 s after the peer sent it)");
            stopped_at = i;
            break;
        }
        long next_index;
        size_t next_len;
        char next_sha[65];
        if (parse_digest(got, "expect", &next_index, &next_len, next_sha)) {
            integrity_fail(&log, (int64_t)n, "never reached the handler (dropped: the next message came first)");
            pending = got;
            pending_len = gn;
            continue;
        }
        char got_sha[65];
        sha256_hex(got, gn, got_sha);
        if (gn != n)
            integrity_fail(&log, (int64_t)n, "reached the handler as %s bytes (%s)", grouped((int64_t)gn, g), gn < n ? "truncated" : "extended");
        else if (strcmp(got_sha, want_sha) != 0)
            integrity_fail(&log, (int64_t)n, "reached the handler altered (same length, different SHA-256)");
        else if (integrity_kind != MSG_UNKNOWN && got_kind != integrity_kind)
            integrity_fail(&log, (int64_t)n, "reached the handler whole but with the WebSocketMessage type %s: the peer sent it as %s", type_name(got_kind), kind_name(integrity_kind));
        free(got);
    }
    free(pending);
    integrity_report(&log, sizes, stopped_at, count, limit);
    if (limit <= 0) {
        limit_not_exercised(fn);
        return;
    }
    if (stopped_at >= 0) {
        probe_check("message-limit", 0, "not exercised: the integrity sequence stopped first");
        return;
    }
    /* The peer sent limit + 1 bytes last: the runtime must fail the connection with 1009 from
     * the frame header, and never hand any of it to the handler. */
    char go[32], gl[32];
    int64_t over = over_limit_size(limit);
    int code = node_close_code(3000);
    char *late = NULL;
    size_t ln = 0;
    int delivered = probe_capture_next(100, &late, &ln);
    if (delivered)
        probe_check("message-limit", 0, "the handler registered with %s received %s bytes after the peer sent a %s-byte message, one over the configured limit of %s: it must be refused (Close 1009), not delivered", fn,
                    grouped((int64_t)ln, g), grouped(over, go), grouped(limit, gl));
    else if (code == 1009)
        probe_check("message-limit", 1, "a %s-byte message (limit + 1) from the peer was refused with Close 1009", grouped(over, go));
    else if (code == -3)
        probe_check("message-limit", 0, "not exercised: the probe could not ask the harness's server how the connection closed");
    else if (code < 0)
        probe_check("message-limit", 0, "%s: the peer sent a %s-byte message (one over the configured limit of %s) and the connection was not closed within 3 s: expected Close 1009", fn, grouped(over, go), grouped(limit, gl));
    else
        probe_check("message-limit", 0, "%s: the peer sent a %s-byte message (one over the configured limit of %s) and the connection was closed with %d instead of 1009", fn, grouped(over, go), grouped(limit, gl), code);
    free(late);
}

void probe_integrity_receive_digest(const char *fn, const int64_t *sizes, int count, int64_t limit) {
    receive_digest(fn, sizes, count, limit);
    capture_stop();
}

void probe_integrity_receive_raw(const char *fn, int64_t port, const int64_t *sizes, int count, int64_t limit) {
    struct integrity_log log = {fn, 0, "", ""};
    int stopped_at = -1;
    char why[300], g[32];
    int fd = probe_raw_connect(port, "/abi");
    if (fd < 0) {
        probe_check("integrity", 0, "not exercised: a raw client could not connect to the listening server");
        probe_check("message-limit", 0, "not exercised: a raw client could not connect to the listening server");
        return;
    }
    raw_reader_start(fd, 1 << 20);
    for (int i = 0; i < count; i++) {
        size_t n = (size_t)sizes[i];
        char *msg = probe_integrity_text(n, (unsigned)i);
        probe_step("a raw client sends the %s-byte message #%d to the handler of %s", grouped((int64_t)n, g), i, fn);
        if (raw_send_frame(fd, msg, n) != 0) {
            integrity_fail(&log, (int64_t)n, "could not be sent: the server closed the connection (Close %d)", queue_wait_closed(&raw_reader.q, 500));
            probe_string_free(msg);
            stopped_at = i;
            break;
        }
        char *got = NULL;
        size_t gn = 0;
        int got_kind = MSG_UNKNOWN;
        if (!capture_next_kind(INTEGRITY_WAIT_MS, &got, &gn, &got_kind)) {
            integrity_fail(&log, (int64_t)n, "never reached the handler (nothing within 5 s)");
            probe_string_free(msg);
            stopped_at = i;
            break;
        }
        if (gn != n || memcmp(got, msg, n) != 0) {
            describe_difference(why, sizeof why, msg, n, got, gn, sizes, count, i);
            char text[340];
            snprintf(text, sizeof text, "%s at the handler", why);
            integrity_fail(&log, (int64_t)n, "%s", text);
        } else if (integrity_kind != MSG_UNKNOWN && got_kind != integrity_kind) {
            integrity_fail(&log, (int64_t)n, "reached the handler whole but with the WebSocketMessage type %s: the raw client sent it as %s", type_name(got_kind), kind_name(integrity_kind));
        }
        free(got);
        probe_string_free(msg);
    }
    integrity_report(&log, sizes, stopped_at, count, limit);
    if (limit <= 0) {
        limit_not_exercised(fn);
    } else if (stopped_at >= 0) {
        probe_check("message-limit", 0, "not exercised: the integrity sequence stopped first");
    } else {
        char go[32], gl[32];
        int64_t over = over_limit_size(limit);
        char *msg = probe_integrity_text((size_t)over, 999);
        probe_step("a raw client sends a message one byte over the configured limit to the handler of %s", fn);
        (void)raw_send_frame(fd, msg, (size_t)over); /* the server may close before reading it all */
        probe_string_free(msg);
        int code = queue_wait_closed(&raw_reader.q, 3000);
        char *late = NULL;
        size_t ln = 0;
        int delivered = probe_capture_next(100, &late, &ln);
        if (delivered)
            probe_check("message-limit", 0, "the handler registered with %s received %s bytes after a raw client sent a %s-byte message, one over the configured limit of %s: it must be refused (Close 1009), not delivered", fn,
                        grouped((int64_t)ln, g), grouped(over, go), grouped(limit, gl));
        else if (code == 1009)
            probe_check("message-limit", 1, "a %s-byte message (limit + 1) from a client was refused with Close 1009", grouped(over, go));
        else if (code == -2)
            probe_check("message-limit", 0, "%s: a raw client sent a %s-byte message (one over the configured limit of %s) and the server neither closed nor refused it within 3 s: expected Close 1009", fn, grouped(over, go), grouped(limit, gl));
        else if (code == -1 || code == 0)
            probe_check("message-limit", 0, "%s: a raw client sent a %s-byte message (one over the configured limit of %s) and the server dropped the connection without Close 1009", fn, grouped(over, go), grouped(limit, gl));
        else
            probe_check("message-limit", 0, "%s: a raw client sent a %s-byte message (one over the configured limit of %s) and the server closed with %d instead of 1009", fn, grouped(over, go), grouped(limit, gl), code);
        free(late);
    }
    raw_reader_stop();
    close(fd);
    capture_stop();
}

/* ---- connection events (osp_ws_server_on_open / osp_ws_server_on_close) -------------------- */

enum { EVENT_CAP = 64, EVENT_REASON_CAP = 64 };

struct event_record {
    char kind; /* 'o' open, 'm' message, 'c' close */
    int64_t id;
    int64_t code;
    char reason[EVENT_REASON_CAP];
    size_t reason_len;
    int env_ok;
};

static struct {
    pthread_mutex_t lock;
    struct event_record log[EVENT_CAP];
    int count;
    int overflow;
} events = {PTHREAD_MUTEX_INITIALIZER, {{0, 0, 0, {0}, 0, 0}}, 0, 0};

/* Appends one event, judged (env_ok) before it is appended: judging it afterwards by index raced
 * with another connection's handler appending in between. */
static void event_record_judged(char kind, int env_ok, int64_t id, int64_t code, const char *reason) {
    struct event_record e = {kind, id, code, {0}, 0, env_ok};
    if (reason != NULL) {
        char text[EVENT_REASON_CAP];
        size_t len = 0;
        const char *why = NULL;
        if (probe_read_cstring((int64_t)(intptr_t)reason, text, sizeof text, &len, &why)) {
            e.reason_len = len < sizeof e.reason ? len : sizeof e.reason - 1;
            memcpy(e.reason, text, e.reason_len);
        }
    }
    pthread_mutex_lock(&events.lock);
    if (events.count < EVENT_CAP) events.log[events.count++] = e;
    else events.overflow = 1;
    pthread_mutex_unlock(&events.lock);
}

static void event_record(char kind, void *env, int64_t id, int64_t code, const char *reason) {
    event_record_judged(kind, env == PROBE_ENV, id, code, reason);
}

OspResult probe_event_on_open(void *env, int64_t connection_id) {
    event_record('o', env, connection_id, 0, NULL);
    return (OspResult){OSP_RESULT_SUCCESS, 0};
}

OspResult probe_event_on_message(void *env, int64_t connection_id, const char *message) {
    (void)message;
    event_record('m', env, connection_id, 0, NULL);
    return (OspResult){OSP_RESULT_SUCCESS, 0};
}

OspResult probe_event_on_close(void *env, int64_t connection_id, int64_t code, const char *reason) {
    event_record('c', env, connection_id, code, reason);
    return (OspResult){OSP_RESULT_SUCCESS, 0};
}

static int events_closed(void) {
    pthread_mutex_lock(&events.lock);
    int n = 0;
    for (int i = 0; i < events.count; i++) n += events.log[i].kind == 'c';
    pthread_mutex_unlock(&events.lock);
    return n;
}

/* A masked close frame carrying `code` and `reason` (RFC 6455 §5.5.1). */
static int raw_send_close(int fd, uint16_t code, const char *reason) {
    size_t n = strlen(reason);
    if (n > 123) return -1;
    unsigned char frame[2 + 4 + 125];
    const unsigned char key[4] = {0x11, 0x8c, 0x42, 0xe7};
    unsigned char payload[125];
    payload[0] = (unsigned char)(code >> 8);
    payload[1] = (unsigned char)code;
    memcpy(payload + 2, reason, n);
    frame[0] = 0x88; /* FIN + close */
    frame[1] = (unsigned char)(0x80 | (n + 2));
    memcpy(frame + 2, key, 4);
    for (size_t i = 0; i < n + 2; i++) frame[6 + i] = payload[i] ^ key[i & 3];
    return send_all(fd, frame, 6 + n + 2);
}

#define EVENT_CLOSE_REASON "abi-probe bye"
#define EVENT_MESSAGES 3

/* What one connection's events must be: open, its messages, one close with the expected code. */
static int check_connection(const char *fn, int which, const char *who, int64_t want_code, const char *want_reason,
                            int64_t id, int messages, char *why, size_t cap) {
    int opens = 0, closes = 0, seen_messages = 0;
    int first_open = -1, last_close = -1, first_message = -1, last_message = -1, position = 0;
    const struct event_record *close_event = NULL;
    for (int i = 0; i < events.count; i++) {
        const struct event_record *e = &events.log[i];
        if (e->id != id) continue;
        if (e->kind == 'o') {
            opens++;
            if (first_open < 0) first_open = position;
        } else if (e->kind == 'c') {
            closes++;
            last_close = position;
            if (close_event == NULL) close_event = e;
        } else {
            seen_messages++;
            if (first_message < 0) first_message = position;
            last_message = position;
        }
        position++;
    }
    if (which == 0) {
        if (opens == 0) return snprintf(why, cap, "%s: the %s connection (id %" PRId64 ") got no open event", fn, who, id), 0;
        if (opens > 1) return snprintf(why, cap, "%s: the %s connection (id %" PRId64 ") got %d open events, not one", fn, who, id, opens), 0;
        if (first_open != 0) return snprintf(why, cap, "%s: the %s connection's open event (id %" PRId64 ") came after its first message or its close: out of order", fn, who, id), 0;
        return 1;
    }
    if (closes == 0) return snprintf(why, cap, "%s: the %s connection (id %" PRId64 ") got no close event within 3 s", fn, who, id), 0;
    if (closes > 1) return snprintf(why, cap, "%s: the %s connection (id %" PRId64 ") got %d close events, not one", fn, who, id, closes), 0;
    if (last_close != position - 1 || (last_message >= 0 && last_message > last_close))
        return snprintf(why, cap, "%s: the %s connection's close event (id %" PRId64 ") came before its messages: out of order", fn, who, id), 0;
    if (seen_messages != messages)
        return snprintf(why, cap, "%s: the %s connection (id %" PRId64 ") delivered %d of its %d messages before its close event", fn, who, id, seen_messages, messages), 0;
    if (close_event->code != want_code)
        return snprintf(why, cap, "%s: the %s connection's close event (id %" PRId64 ") has code %" PRId64 ", expected %" PRId64, fn, who, id, close_event->code, want_code), 0;
    size_t want_len = strlen(want_reason);
    if (close_event->reason_len != want_len || memcmp(close_event->reason, want_reason, want_len) != 0)
        return snprintf(why, cap, "%s: the %s connection's close event (id %" PRId64 ") has reason %s, expected %s", fn, who, id,
                        probe_quote(close_event->reason, close_event->reason_len), probe_quote(want_reason, want_len)), 0;
    (void)first_message;
    return 1;
}

void probe_events_drive(const char *fn, int which, int64_t port) {
    /* Connection A sends its messages and a close frame 1000 with a reason; connection B sends its
     * messages and drops the TCP connection without a close frame (1006). */
    int a = probe_raw_connect(port, "/abi");
    int b = a >= 0 ? probe_raw_connect(port, "/abi") : -1;
    if (a < 0 || b < 0) {
        if (a >= 0) close(a);
        probe_check("events", 0, "not exercised: a raw client could not connect to the server of %s", fn);
        return;
    }
    char text[64];
    int sent_ok = 1;
    for (int i = 0; i < EVENT_MESSAGES; i++) {
        snprintf(text, sizeof text, "abi-probe:event %d", i);
        sent_ok &= probe_raw_send_text(a, text) == 0 && probe_raw_send_text(b, text) == 0;
    }
    /* The messages first reach the handler, so "close before its messages" is the runtime's doing. */
    probe_pause_ms(200);
    sent_ok &= raw_send_close(a, 1000, EVENT_CLOSE_REASON) == 0;
    /* RST-free drop: the peer sees EOF without a close frame. */
    close(b);
    char scratch[128];
    (void)probe_raw_recv_text(a, scratch, sizeof scratch, 500); /* the server's close reply, if any */
    close(a);
    if (!sent_ok) {
        probe_check("events", 0, "not exercised: the raw clients could not send to the server of %s", fn);
        return;
    }
    uint64_t deadline = probe_now_ms() + 3000;
    while (events_closed() < 2 && probe_now_ms() < deadline) probe_pause_ms(20);
    probe_pause_ms(300); /* a duplicate close arrives late */

    pthread_mutex_lock(&events.lock);
    /* The two connections, in the order of their first event (either may come first). */
    int64_t ids[2] = {-1, -1};
    int distinct = 0, env_bad = 0;
    for (int i = 0; i < events.count; i++) {
        int64_t id = events.log[i].id;
        env_bad |= !events.log[i].env_ok;
        if (id == ids[0] || id == ids[1]) continue;
        if (distinct < 2) ids[distinct] = id;
        distinct++;
    }
    char why[400] = "";
    int ok = 1;
    if (events.overflow) ok = 0, snprintf(why, sizeof why, "%s: more than %d events for 2 connections", fn, EVENT_CAP);
    else if (env_bad) ok = 0, snprintf(why, sizeof why, "%s: an event handler was called with an env other than the registered one", fn);
    else if (distinct != 2) ok = 0, snprintf(why, sizeof why, "%s: events named %d connection ids for 2 connections", fn, distinct);
    else {
        /* Which id is A: the one whose close carries code 1000, else the first seen. */
        int a_index = 0;
        for (int i = 0; i < events.count; i++)
            if (events.log[i].kind == 'c' && events.log[i].code == 1000) a_index = events.log[i].id == ids[0] ? 0 : 1;
        ok = check_connection(fn, which, "closing (close frame 1000)", 1000, EVENT_CLOSE_REASON, ids[a_index], EVENT_MESSAGES, why, sizeof why) &&
             check_connection(fn, which, "dropped (TCP closed without a close frame)", 1006, "", ids[1 - a_index], EVENT_MESSAGES, why, sizeof why);
    }
    pthread_mutex_unlock(&events.lock);
    if (ok)
        probe_check("events", 1, "%s", which == 0 ? "one open event per connection, before its messages"
                                                  : "one close event per connection, after its messages: 1000 with the reason for a close frame, 1006 for a dropped connection");
    else
        probe_check("events", 0, "%s", why);
}

/* ---- client close events (osp_ws_on_close) ------------------------------------------------- */

/* One env per client connection, so the handlers tell the two connections apart; the probe binds
 * each to the connection id osp_ws_connect returned (events are logged with that id). */
static char client_event_envs[2][16];
static int64_t client_event_ids[2] = {-1, -1};

void *probe_client_event_env(int which) { return client_event_envs[which & 1]; }

void probe_client_event_bind(int which, int64_t connection_id) {
    pthread_mutex_lock(&events.lock);
    client_event_ids[which & 1] = connection_id;
    pthread_mutex_unlock(&events.lock);
}

const char *probe_client_events_url(int which) { return probe_echo_url(which == 0 ? "/closeafter/bye" : "/closeafter/vanish"); }

/* Which connection an env belongs to (0 or 1), or -1 for an env the probe never registered. */
static int client_event_index(void *env) { return env == client_event_envs[0] ? 0 : env == client_event_envs[1] ? 1 : -1; }

/* Logged with the connection's index (an event may come before the probe bound the id, e.g. a
 * handler called inside osp_ws_connect); probe_client_events_check turns indexes into ids. */
static void client_event_record(char kind, void *env, int64_t code, const char *reason) {
    /* Either registered env is right here (event_record judges against PROBE_ENV). */
    int which = client_event_index(env);
    event_record_judged(kind, which >= 0, which, code, reason);
}

OspResult probe_client_event_on_message(void *env, const char *message) {
    (void)message;
    client_event_record('m', env, 0, NULL);
    return (OspResult){OSP_RESULT_SUCCESS, 0};
}

OspResult probe_client_event_on_close(void *env, int64_t code, const char *reason) {
    client_event_record('c', env, code, reason);
    return (OspResult){OSP_RESULT_SUCCESS, 0};
}

#define CLIENT_CLOSE_REASON "bye"

void probe_client_events_check(const char *fn) {
    uint64_t deadline = probe_now_ms() + 3000;
    while (events_closed() < 2 && probe_now_ms() < deadline) probe_pause_ms(20);
    probe_pause_ms(300); /* a duplicate close arrives late */
    pthread_mutex_lock(&events.lock);
    char why[400] = "";
    int ok = 1, env_bad = 0;
    for (int i = 0; i < events.count; i++) {
        env_bad |= !events.log[i].env_ok;
        if (events.log[i].env_ok) events.log[i].id = client_event_ids[events.log[i].id];
    }
    if (events.overflow) ok = 0, snprintf(why, sizeof why, "%s: more than %d events for 2 connections", fn, EVENT_CAP);
    else if (env_bad) ok = 0, snprintf(why, sizeof why, "%s: a handler was called with an env other than the one registered for its connection", fn);
    else
        ok = check_connection(fn, 1, "client whose server closed with 1000 \"" CLIENT_CLOSE_REASON "\"", 1000, CLIENT_CLOSE_REASON, client_event_ids[0], EVENT_MESSAGES, why, sizeof why) &&
             check_connection(fn, 1, "client whose server vanished (TCP closed without a close frame)", 1006, "", client_event_ids[1], EVENT_MESSAGES, why, sizeof why);
    pthread_mutex_unlock(&events.lock);
    if (ok)
        probe_check("events", 1, "one close event per client connection, after its messages: 1000 \"bye\" when the server closed, 1006 when it vanished");
    else
        probe_check("events", 0, "%s", why);
}
