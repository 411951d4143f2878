/*
 * WebSocket servers in several processes (on several machines) sharing broadcasts and sends
 * through a Redis pub/sub channel (websocketServerUseCluster; docs/CLUSTER.md).
 *
 * The interface to the server (ws_server.c) is narrow: the server asks the cluster to publish a
 * broadcast or a send to a connection of another node (osp_ws_cluster_publish), and the cluster
 * hands messages from other nodes back to the server for local delivery
 * (osp_ws_cluster_deliver, set by ws_server.c). Connection ids of a clustered server carry the node id in their
 * high bits (OSP_WS_CLUSTER_NODE_SHIFT), so an id names its node and stays a plain Int.
 */
#ifndef OSP_WS_CLUSTER_H
#define OSP_WS_CLUSTER_H

#include "runtime.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct osp_ws_cluster osp_ws_cluster;

/* Connection id = node id << 40 | the process-local id; node ids are 1 … 2^23-1, so ids stay
 * positive 64-bit integers. */
#define OSP_WS_CLUSTER_NODE_SHIFT 40
#define OSP_WS_CLUSTER_MAX_NODE ((1u << 23) - 1)

/* Message kinds on the bus (the WebSocket opcode the recipients get). */
#define OSP_WS_BUS_TEXT 1
#define OSP_WS_BUS_BINARY 2

/* Local delivery of what other nodes publish, set by ws_server.c (above this module, so the
 * cluster reaches it only through this pointer): a broadcast (target 0) to s's open connections,
 * or a send to s's connection `target`. `kind` is OSP_WS_BUS_TEXT or OSP_WS_BUS_BINARY. false when
 * it could not be delivered (no such connection, closed, or a kind the server does not send). */
struct osp_ws_server;
extern bool (*osp_ws_cluster_deliver)(struct osp_ws_server *s, uint8_t kind, int64_t target, const uint8_t *data,
                                      size_t len);

/* The high bits of this node's connection ids (node id << OSP_WS_CLUSTER_NODE_SHIFT). Any thread
 * holding a reference (the node id never changes once joined). */
int64_t osp_ws_cluster_id_base(const osp_ws_cluster *cl);
/* True when conn_id names a connection of another node of this cluster. */
bool osp_ws_cluster_is_remote(const osp_ws_cluster *cl, int64_t conn_id);

/* Any thread, with osp_ws_tx_lock held (it keeps the server, and so the cluster, alive): puts a
 * broadcast (target 0) or a send to connection `target` on the bus, in call order. false with
 * *err (an Err naming `fn`) when the cluster is stopped or its backlog for the bus is full. */
bool osp_ws_cluster_publish(osp_ws_cluster *cl, const char *fn, uint8_t kind, int64_t target,
                            const uint8_t *data, size_t len, OspResult *err);

/* Loop thread: the server is stopping (last messages flushed best effort, Redis connections
 * closed) / being freed. */
void osp_ws_cluster_stop(osp_ws_cluster *cl);
void osp_ws_cluster_free(osp_ws_cluster *cl);
/* Loop thread: the server is stopping while websocketServerUseCluster still connects for it: the
 * join fails ("the server was stopped") and the cluster forgets the server. */
void osp_ws_cluster_abandon_join(osp_ws_cluster *cl);

#endif /* OSP_WS_CLUSTER_H */
