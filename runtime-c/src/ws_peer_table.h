/*
 * A server's per-peer-address counts: open connections, unfinished opening handshakes and the
 * TLS handshake rate of each address (maxConnectionsPerIp, maxHandshakesPerIp,
 * maxTlsHandshakeRatePerIp; docs/WEBSOCKET-RUNTIME.md#limits). An open-addressing table keyed
 * by the address with a process secret, so peers cannot choose addresses that all collide.
 * No locking of its own: the server calls it under its lock.
 */
#ifndef OSP_WS_PEER_TABLE_H
#define OSP_WS_PEER_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct osp_ws_peer_count {
    uint8_t addr[16]; /* IPv6, or IPv4-mapped (osp_ws_peer_key) */
    bool used;        /* false: an empty slot */
    uint32_t conns;
    uint32_t handshakes;
    /* wss:// servers, maxTlsHandshakeRatePerIp as a generic cell rate algorithm: the time
     * (CLOCK_MONOTONIC microseconds) at which this address's TLS handshakes are paid off. An
     * address with no connection stays in the table until then. */
    uint64_t tls_paid_us;
} osp_ws_peer_count;

typedef struct osp_ws_peer_table {
    osp_ws_peer_count *slots;
    size_t cap, used;
} osp_ws_peer_table;

/* The table key of a peer's socket address: both families share one table. */
void osp_ws_peer_key(const struct sockaddr_storage *ss, uint8_t out[16]);

/* addr's entry, or NULL. */
osp_ws_peer_count *osp_ws_peer_find(osp_ws_peer_table *t, const uint8_t addr[16]);

/* addr's entry, added with zero counts (the caller counts at once); NULL out of memory or
 * without randomness for the table's secret. */
osp_ws_peer_count *osp_ws_peer_get(osp_ws_peer_table *t, const uint8_t addr[16]);

/* Removes e when nothing is left to remember about its address: no connection, no handshake,
 * its TLS handshake rate paid off. e is invalid afterwards either way (entries move). */
void osp_ws_peer_release_if_idle(osp_ws_peer_table *t, osp_ws_peer_count *e);

/* maxTlsHandshakeRatePerIp: `rate` handshakes per second, and a burst of as many from an
 * address that has been quiet for a second. True (and the handshake paid for) when one more
 * may start now. */
bool osp_ws_peer_tls_rate_allows(osp_ws_peer_count *e, uint32_t rate);

void osp_ws_peer_table_free(osp_ws_peer_table *t);

#endif
