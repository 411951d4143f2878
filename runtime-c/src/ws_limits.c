/*
 * Defaults and environment overrides of the WebSocket limits (see ws_limits.h for the list).
 */
#include "ws_limits.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void osp_ws_limits_default(osp_ws_limits *out) {
    out->max_message = 16u * 1024 * 1024;
    out->max_fragments = 16u * 1024 * 1024;
    out->max_request_line = 8 * 1024;
    out->max_header_bytes = 16 * 1024;
    out->max_headers = 100;
    out->handshake_timeout_ms = 10000;
    out->close_timeout_ms = 5000;
    out->idle_timeout_ms = 120000;
    out->message_timeout_ms = 30000;
    out->max_output = 1024 * 1024;
    out->max_connections = 4096;
    out->max_connections_per_ip = 256;
    out->max_handshakes_per_ip = 16;
    out->max_tls_handshake_rate_per_ip = 200;
    out->wipe_messages = 0;
}

/* Reads NAME as a decimal integer in [min, max]; leaves *value untouched when unset or bad. */
static void override_u64(const char *name, uint64_t min, uint64_t max, uint64_t *value) {
    const char *text = getenv(name);
    if (text == NULL || *text == '\0') return;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v < min || v > max) {
        fprintf(stderr,
                "osprey runtime: ignoring %s=\"%s\": expected an integer from %llu to %llu\n",
                name, text, (unsigned long long)min, (unsigned long long)max);
        return;
    }
    *value = v;
}

static void override_u32(const char *name, uint32_t min, uint32_t max, uint32_t *value) {
    uint64_t v = *value;
    override_u64(name, min, max, &v);
    *value = (uint32_t)v;
}

static osp_ws_limits process_limits;
static pthread_once_t process_limits_once = PTHREAD_ONCE_INIT;
/* Guards process_limits after start-up: websocketSetDefaultLimit may run on any thread while
 * the runtime thread and other callers take copies. */
static pthread_mutex_t process_limits_lock = PTHREAD_MUTEX_INITIALIZER;

static void load_process_limits(void) {
    osp_ws_limits *l = &process_limits;
    osp_ws_limits_default(l);
    /* The message limit stays below 2^62 so size arithmetic can never overflow. */
    override_u64("OSPREY_WS_MAX_MESSAGE", 1, (uint64_t)1 << 40, &l->max_message);
    override_u32("OSPREY_WS_MAX_FRAGMENTS", 1, 1u << 30, &l->max_fragments);
    override_u32("OSPREY_WS_MAX_REQUEST_LINE", 64, 1u << 20, &l->max_request_line);
    override_u32("OSPREY_WS_MAX_HEADER_BYTES", 64, 1u << 24, &l->max_header_bytes);
    override_u32("OSPREY_WS_MAX_HEADERS", 4, 10000, &l->max_headers);
    override_u32("OSPREY_WS_HANDSHAKE_TIMEOUT_MS", 1, 3600000, &l->handshake_timeout_ms);
    override_u32("OSPREY_WS_CLOSE_TIMEOUT_MS", 1, 3600000, &l->close_timeout_ms);
    override_u32("OSPREY_WS_IDLE_TIMEOUT_MS", 0, 86400000, &l->idle_timeout_ms);
    override_u32("OSPREY_WS_MESSAGE_TIMEOUT_MS", 0, 3600000, &l->message_timeout_ms);
    override_u64("OSPREY_WS_MAX_OUTPUT", 1024, (uint64_t)1 << 40, &l->max_output);
    override_u32("OSPREY_WS_MAX_CONNECTIONS", 1, 1000000, &l->max_connections);
    override_u32("OSPREY_WS_MAX_CONNECTIONS_PER_IP", 1, 1000000, &l->max_connections_per_ip);
    override_u32("OSPREY_WS_MAX_HANDSHAKES_PER_IP", 1, 1000000, &l->max_handshakes_per_ip);
    override_u32("OSPREY_WS_MAX_TLS_HANDSHAKE_RATE_PER_IP", 1, 1000000, &l->max_tls_handshake_rate_per_ip);
    override_u32("OSPREY_WS_WIPE_MESSAGES", 0, 1, &l->wipe_messages);
}

static uint64_t memory_budget;
static pthread_once_t memory_budget_once = PTHREAD_ONCE_INIT;

static void load_memory_budget(void) {
    /* A share of physical memory, so one process cannot be pushed into the OOM killer by its
     * peers, yet large enough for many connections' messages in flight at once. */
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t physical = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : (uint64_t)2 << 30;
    uint64_t budget = physical / 32;
    if (budget < (uint64_t)64 << 20) budget = (uint64_t)64 << 20;
    if (budget > (uint64_t)1 << 30) budget = (uint64_t)1 << 30;
    override_u64("OSPREY_WS_MEMORY_BUDGET", (uint64_t)1 << 20, (uint64_t)1 << 40, &budget);
    memory_budget = budget;
}

uint64_t osp_ws_memory_budget(void) {
    pthread_once(&memory_budget_once, load_memory_budget);
    return memory_budget;
}

const osp_ws_limits *osp_ws_limits_get(void) {
    pthread_once(&process_limits_once, load_process_limits);
    return &process_limits;
}

void osp_ws_limits_snapshot(osp_ws_limits *out) {
    (void)osp_ws_limits_get();
    pthread_mutex_lock(&process_limits_lock);
    *out = process_limits;
    pthread_mutex_unlock(&process_limits_lock);
}

/* The limits an Osprey program may set (websocketServerSetLimit, websocketSetDefaultLimit),
 * with the same ranges as the environment overrides above. The ranges keep every size below
 * 2^40 so no size arithmetic can overflow, and every timeout within an hour (a day for idle). */
typedef struct {
    const char *name;
    size_t offset;
    bool is_u64;
    uint64_t min, max;
} limit_entry;

#define LIMIT_U32(n, f, lo, hi) {n, offsetof(osp_ws_limits, f), false, lo, hi}
#define LIMIT_U64(n, f, lo, hi) {n, offsetof(osp_ws_limits, f), true, lo, hi}
static const limit_entry limit_table[] = {
    LIMIT_U64("maxMessageBytes", max_message, 1, (uint64_t)1 << 40),
    LIMIT_U32("maxFragments", max_fragments, 1, 1u << 30),
    LIMIT_U32("maxRequestLineBytes", max_request_line, 64, 1u << 20),
    LIMIT_U32("maxHeaderBytes", max_header_bytes, 64, 1u << 24),
    LIMIT_U32("maxHeaders", max_headers, 4, 10000),
    LIMIT_U32("handshakeTimeoutMs", handshake_timeout_ms, 1, 3600000),
    LIMIT_U32("closeTimeoutMs", close_timeout_ms, 1, 3600000),
    LIMIT_U32("idleTimeoutMs", idle_timeout_ms, 0, 86400000),
    LIMIT_U32("messageTimeoutMs", message_timeout_ms, 0, 3600000),
    LIMIT_U64("maxOutputBytes", max_output, 1024, (uint64_t)1 << 40),
    LIMIT_U32("maxConnections", max_connections, 1, 1000000),
    LIMIT_U32("maxConnectionsPerIp", max_connections_per_ip, 1, 1000000),
    LIMIT_U32("maxHandshakesPerIp", max_handshakes_per_ip, 1, 1000000),
    LIMIT_U32("maxTlsHandshakeRatePerIp", max_tls_handshake_rate_per_ip, 1, 1000000),
    LIMIT_U32("wipeMessages", wipe_messages, 0, 1),
};
#define LIMIT_COUNT (sizeof limit_table / sizeof limit_table[0])

const char *osp_ws_limit_set(osp_ws_limits *l, const char *name, int64_t value, char *err,
                             size_t errlen) {
    const limit_entry *e = NULL;
    for (size_t i = 0; name != NULL && i < LIMIT_COUNT; i++)
        if (strcmp(limit_table[i].name, name) == 0) e = &limit_table[i];
    if (e == NULL) {
        /* Name every valid limit so the message says how to fix the call. */
        size_t used = 0;
        int n = snprintf(err, errlen, "unknown limit \"%s\" (valid names: ", name ? name : "(null)");
        if (n < 0) return "unknown";
        used = (size_t)n < errlen ? (size_t)n : errlen;
        for (size_t i = 0; i < LIMIT_COUNT && used < errlen; i++) {
            n = snprintf(err + used, errlen - used, "%s%s", i ? ", " : "", limit_table[i].name);
            if (n < 0) break;
            used += (size_t)n < errlen - used ? (size_t)n : errlen - used;
        }
        if (used < errlen) (void)snprintf(err + used, errlen - used, ")");
        return "unknown";
    }
    if (value < 0 || (uint64_t)value < e->min || (uint64_t)value > e->max) {
        (void)snprintf(err, errlen, "%s must be from %llu to %llu (got %lld)", e->name,
                       (unsigned long long)e->min, (unsigned long long)e->max, (long long)value);
        return "range";
    }
    char *field = (char *)l + e->offset;
    if (e->is_u64) {
        uint64_t v = (uint64_t)value;
        memcpy(field, &v, sizeof v);
    } else {
        uint32_t v = (uint32_t)value;
        memcpy(field, &v, sizeof v);
    }
    return NULL;
}

const char *osp_ws_limits_set_default(const char *name, int64_t value, char *err, size_t errlen) {
    (void)osp_ws_limits_get();
    pthread_mutex_lock(&process_limits_lock);
    const char *bad = osp_ws_limit_set(&process_limits, name, value, err, errlen);
    pthread_mutex_unlock(&process_limits_lock);
    return bad;
}
