/*
 * Defaults and environment overrides of the WebSocket limits (see ws_limits.h for the list).
 */
#include "ws_limits.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

void osp_ws_limits_default(osp_ws_limits *out) {
    out->max_message = 16u * 1024 * 1024;
    out->max_fragments = 1024;
    out->max_request_line = 8 * 1024;
    out->max_header_bytes = 16 * 1024;
    out->max_headers = 100;
    out->handshake_timeout_ms = 10000;
    out->close_timeout_ms = 5000;
    out->idle_timeout_ms = 0;
    out->max_output = 1024 * 1024;
    out->max_connections = 4096;
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
    override_u64("OSPREY_WS_MAX_OUTPUT", 1024, (uint64_t)1 << 40, &l->max_output);
    override_u32("OSPREY_WS_MAX_CONNECTIONS", 1, 1000000, &l->max_connections);
}

const osp_ws_limits *osp_ws_limits_get(void) {
    pthread_once(&process_limits_once, load_process_limits);
    return &process_limits;
}
