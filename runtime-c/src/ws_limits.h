/*
 * Every limit and timeout of the WebSocket subsystem, in one struct with documented defaults
 * (docs/WEBSOCKET-RUNTIME.md#limits). The protocol core receives a pointer to it; the I/O layer reads the
 * process-wide copy from osp_ws_limits_get(), which applies environment overrides once.
 *
 * Environment overrides (decimal integers; an invalid or out-of-range value is reported once on
 * stderr and the default is kept). They exist so tests can exercise the limits quickly:
 *
 *   OSPREY_WS_MAX_MESSAGE             max_message            bytes, default 16 MiB
 *   OSPREY_WS_MAX_FRAGMENTS           max_fragments          frames per message, default 16 Mi
 *   OSPREY_WS_MAX_REQUEST_LINE        max_request_line       bytes, default 8 KiB
 *   OSPREY_WS_MAX_HEADER_BYTES        max_header_bytes       bytes, default 16 KiB
 *   OSPREY_WS_MAX_HEADERS             max_headers            header lines, default 100
 *   OSPREY_WS_HANDSHAKE_TIMEOUT_MS    handshake_timeout_ms   default 10000
 *   OSPREY_WS_CLOSE_TIMEOUT_MS        close_timeout_ms       default 5000
 *   OSPREY_WS_IDLE_TIMEOUT_MS         idle_timeout_ms        default 120000 (0: off)
 *   OSPREY_WS_MESSAGE_TIMEOUT_MS      message_timeout_ms     default 30000 (0: off)
 *   OSPREY_WS_MAX_OUTPUT              max_output             bytes queued per connection, default 1 MiB
 *   OSPREY_WS_MAX_CONNECTIONS         max_connections        per server, default 4096
 *   OSPREY_WS_MAX_CONNECTIONS_PER_IP  max_connections_per_ip per server and peer address, default 256
 *   OSPREY_WS_MAX_HANDSHAKES_PER_IP   max_handshakes_per_ip  unfinished handshakes per server and peer address, default 16
 *   OSPREY_WS_MAX_TLS_HANDSHAKE_RATE_PER_IP  max_tls_handshake_rate_per_ip  TLS handshakes started per second per wss:// server and peer address, default 200
 *   OSPREY_WS_MEMORY_BUDGET           (process-wide, osp_ws_memory_budget) default: physical memory / 32, 64 MiB to 1 GiB
 *   OSPREY_WS_WIPE_MESSAGES           wipe_messages          0 or 1, default 0 (wipe on free only)
 */
#ifndef OSP_WS_LIMITS_H
#define OSP_WS_LIMITS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    /* Largest data message after reassembly, and therefore largest data frame (RFC 6455 §10.4).
     * A frame header that declares more is refused with 1009 before any payload is read. */
    uint64_t max_message;
    /* Most frames one fragmented message may use. Exceeding it fails the connection with
     * 1009. Fragments are reassembled into one buffer (no per-fragment allocation), so their
     * count costs no memory beyond the message itself, and each costs O(1) work plus its
     * header bytes on the wire; the default (16 Mi) accepts any split of a 16 MiB message
     * into non-empty fragments, and the message timeout bounds a stream of empty ones. */
    uint32_t max_fragments;
    /* Opening handshake: longest request/status line, total bytes of header lines, and
     * number of header lines. Exceeding them answers 431 (400 for the request line). */
    uint32_t max_request_line;
    uint32_t max_header_bytes;
    uint32_t max_headers;
    /* Milliseconds from accept (server) or from the start of connect (client) until the
     * opening handshake must be complete (slowloris defence). */
    uint32_t handshake_timeout_ms;
    /* Milliseconds from sending a Close frame (or failing the connection) until the TCP
     * connection is dropped even if the peer never answers (RFC 6455 §7.1.1). */
    uint32_t close_timeout_ms;
    /* Milliseconds without any received byte after which a connection (either side) is
     * closed with 1001; 0 disables the check. After half of it in silence a Ping is sent, so a
     * live peer (its Pong) is never closed. */
    uint32_t idle_timeout_ms;
    /* Milliseconds a data message (all of its fragments) or a control frame may take to
     * arrive once its first byte has; slower peers are closed with 1008 (a trickled frame
     * must not pin its reassembly buffer forever). 0 disables the check. */
    uint32_t message_timeout_ms;
    /* Bytes that may wait in one connection's output queue. Above it the runtime stops reading
     * from that peer (echo, pongs), application sends fail, and broadcasts fail the connection
     * with 1008 (a slow consumer must not exhaust memory). */
    uint64_t max_output;
    /* Open connections (including ones still in the handshake) per server. Further
     * connections are answered 503 and closed. */
    uint32_t max_connections;
    /* Open connections per server from one peer address (an IPv6 address counts whole),
     * and connections from one address still in the opening handshake (TLS included).
     * Beyond them a new connection is answered 503 and closed. Servers only. */
    uint32_t max_connections_per_ip;
    uint32_t max_handshakes_per_ip;
    /* wss:// servers: TLS handshakes one peer address may start per second (after a quiet
     * second, a burst of as many). Connections beyond it are closed before any TLS work: a
     * ClientHello costs the server a key exchange and a signature, so replaying one on new
     * connections must not buy a peer the loop's time. Servers only. */
    uint32_t max_tls_handshake_rate_per_ip;
    /* 1: wipe every received message and every sent frame as soon as it has been delivered or
     * sent (the read buffer, the reassembly buffer, the output queue), so payloads do not
     * linger in reused memory. 0 (default): payload buffers are reused without a wipe, which
     * saves a pass over every byte (docs/WEBSOCKET-RUNTIME.md#wiping-secrets makes it an option). Either way every
     * buffer that held handshake data or payloads is wiped before it is freed, and the
     * handshake request is wiped as soon as it has been parsed. */
    uint32_t wipe_messages;
} osp_ws_limits;

/* The process-wide budget, in bytes, for received messages being reassembled and output
 * waiting for peers, over every connection (OSPREY_WS_MEMORY_BUDGET, read once; default:
 * physical memory / 32, clamped to 64 MiB – 1 GiB). */
uint64_t osp_ws_memory_budget(void);

/* The compiled-in defaults. */
void osp_ws_limits_default(osp_ws_limits *out);

/* The process-wide limits: defaults with environment overrides, computed on first call.
 * websocketSetDefaultLimit may change them later, so code on any thread other than before the
 * runtime starts takes a copy with osp_ws_limits_snapshot instead of reading through this. */
const osp_ws_limits *osp_ws_limits_get(void);

/* Copies the process-wide limits under their lock (any thread). */
void osp_ws_limits_snapshot(osp_ws_limits *out);

/* Sets one limit by its Osprey name ("maxMessageBytes", …; see the table in ws_limits.c) in
 * `l`, checking the range. Returns NULL, or a static explanation ("unknown" or "range") and
 * then writes the full message (naming the valid names or the range) into err. */
const char *osp_ws_limit_set(osp_ws_limits *l, const char *name, int64_t value, char *err,
                             size_t errlen);

/* The same on the process-wide limits (websocketSetDefaultLimit), under their lock. */
const char *osp_ws_limits_set_default(const char *name, int64_t value, char *err, size_t errlen);

#endif /* OSP_WS_LIMITS_H */
