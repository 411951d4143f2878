/*
 * The cluster bus (ws_cluster.h, docs/CLUSTER.md): two Redis connections per clustered server,
 * both on the runtime's event loop (redis_conn.c) — one that publishes and runs the bookkeeping
 * commands, one that is subscribed to the channel.
 *
 * Bus message (one Redis pub/sub message, all integers big-endian):
 *   0  "OSPC"  4  version (1)  5  kind (1 text, 2 binary)  6  2 bytes zero
 *   8  node id (u32)  12  instance nonce (u64, random per join)  20  sequence (u64, from 1)
 *   28 target (i64: 0 broadcast, else a connection id)  36  payload length (u32)  40  payload
 * The payload is opaque bytes (NUL bytes included). (node, nonce, sequence) lets a receiver drop
 * duplicates (a publish resent after a reconnect) and count losses (messages published while it
 * was not subscribed) per publishing node; Redis keeps each publisher's order.
 *
 * Publishing never blocks: each broadcast is delivered locally by the server at once and becomes
 * a record in the backlog (a FIFO of encoded PUBLISH commands) until Redis acknowledges it, so a
 * record written just before a connection dropped is sent again after the reconnect (the
 * receivers' sequence check removes the duplicate). The backlog is bounded in bytes; past the
 * bound a broadcast is refused with an Err (nothing delivered). After a reconnect the backlog
 * waits (at most OSP_CLUSTER_GATE_MS) until as many subscribers are back on the channel as before
 * the outage, so messages queued during a Redis restart are not published into an empty channel.
 *
 * Node ids come from INCR on "osprey:cluster:{CHANNEL}:nodes" at join; after a reconnect (a
 * restarted Redis has forgotten the counter) the node raises the counter back to at least its own
 * id, so a node joining later does not get an id in use.
 */
#include "ws_cluster.h"
#include "redis_conn.h"
#include "ws_internal.h"
#include "ws_tls.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BUS_HEADER 40
#define BUS_VERSION 1
/* connect + TLS + AUTH, at join and at every reconnect attempt */
#define OSP_CLUSTER_CONNECT_TIMEOUT_MS 5000
#define OSP_CLUSTER_BACKOFF_MIN_MS 100
#define OSP_CLUSTER_BACKOFF_MAX_MS 5000
/* liveness: a PUBSUB NUMSUB every second; no answer for this long = Redis is gone */
#define OSP_CLUSTER_HEARTBEAT_MS 1000
#define OSP_CLUSTER_DEAD_MS 5000
/* after a reconnect, wait this long at most for the other nodes to be subscribed again */
#define OSP_CLUSTER_GATE_MS 3000
#define OSP_CLUSTER_GATE_POLL_MS 50
#define OSP_CLUSTER_DEFAULT_BACKLOG (16u * 1024 * 1024)
/* distinct publishers remembered for the duplicate check */
#define OSP_CLUSTER_MAX_PEERS 4096

typedef enum { CL_JOINING, CL_UP, CL_RECONNECTING, CL_FAILED, CL_STOPPED } cl_state;

/* What a reply on the publishing connection answers, in the order the commands were queued. */
typedef enum { Q_PUBLISH, Q_PROBE, Q_INCR, Q_RESTORE, Q_NUMSUB } q_kind;

typedef struct {
    uint8_t *cmd; /* the encoded (S)PUBLISH command, malloc'd, wiped when freed */
    size_t len;
} bus_record;

typedef struct {
    uint32_t node;
    uint64_t nonce;
    uint64_t last_seq;
    uint64_t seen; /* for eviction: the receive counter when last heard from */
} peer;

struct osp_ws_cluster {
    int64_t server_id;
    osp_ws_server *server; /* loop thread */
    osp_redis_url url;
    char address[300];     /* host:port for messages */
    char *channel;         /* malloc'd, channel_len bytes (may hold any byte) */
    size_t channel_len;
    char *counter_key;     /* osprey:cluster:{CHANNEL}:nodes */
    size_t counter_key_len;
    SSL_CTX *tls_ctx;
    osp_redis_conn pub, sub;
    _Atomic int state;     /* cl_state; read by publishers */
    bool sharded;
    bool force_plain; /* OSPREY_CLUSTER_PUBSUB=plain: PUBLISH/SUBSCRIBE even on Redis 7 */
    bool probe_done, node_done, subscribed;
    uint32_t node_id;      /* written once before the server is linked */
    uint64_t nonce;
    /* join */
    osp_ws_waiter *join_waiter;
    char join_error[500];
    /* reconnecting */
    osp_ws_timer retry_timer, heartbeat_timer, gate_timer;
    uint64_t backoff_ms;
    unsigned attempts;
    uint64_t down_since_ms;
    char last_error[400];
    bool gate_closed;
    uint64_t gate_until_ms;
    int64_t subscribers_before; /* subscribers seen by the last heartbeat while up */
    int64_t subscribers;
    bool hb_outstanding;
    uint64_t hb_sent_ms;
    /* replies expected on `pub`, oldest first */
    uint8_t *q;
    size_t q_cap, q_head, q_count;
    /* the backlog, guarded by `lock` (publishers on any thread append, the loop writes and
     * acknowledges): records [head, head+count) of a ring; [head, head+sent) are written and
     * wait for their acknowledgement */
    pthread_mutex_t lock;
    bus_record *ring;
    size_t ring_cap, ring_head, ring_count, ring_sent;
    size_t backlog_bytes, backlog_limit;
    uint64_t next_seq;
    bool flush_listed; /* lock: a loop wake-up is due for this cluster */
    /* receivers' bookkeeping (loop thread) */
    peer *peers;
    size_t peer_count;
    uint64_t received, duplicates, lost, malformed, undeliverable, collisions, reconnects;
    uint64_t refused; /* publishes Redis answered with an error (dropped; last_error says why) */
    uint64_t published; /* lock */
    uint64_t acknowledged;
    osp_ws_cluster *next; /* the loop's list of clusters (flushed at the end of each iteration) */
};

static osp_ws_cluster *clusters; /* loop thread */

bool (*osp_ws_cluster_deliver)(struct osp_ws_server *s, uint8_t kind, int64_t target, const uint8_t *data,
                               size_t len);

static cl_state state_of(const osp_ws_cluster *cl) { return (cl_state)atomic_load(&((osp_ws_cluster *)cl)->state); }

int64_t osp_ws_cluster_id_base(const osp_ws_cluster *cl) {
    return (int64_t)((uint64_t)cl->node_id << OSP_WS_CLUSTER_NODE_SHIFT);
}

bool osp_ws_cluster_is_remote(const osp_ws_cluster *cl, int64_t conn_id) {
    uint64_t node = (uint64_t)conn_id >> OSP_WS_CLUSTER_NODE_SHIFT;
    return conn_id > 0 && node != 0 && node != cl->node_id;
}

/* ---- encoding --------------------------------------------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 3; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

/* ---- the reply queue of `pub` --------------------------------------------------------------- */

static bool q_push(osp_ws_cluster *cl, q_kind k) {
    if (cl->q_count == cl->q_cap) {
        size_t cap = cl->q_cap ? cl->q_cap * 2 : 64;
        uint8_t *q = malloc(cap);
        if (q == NULL) return false;
        for (size_t i = 0; i < cl->q_count; i++) q[i] = cl->q[(cl->q_head + i) % cl->q_cap];
        free(cl->q);
        cl->q = q;
        cl->q_cap = cap;
        cl->q_head = 0;
    }
    cl->q[(cl->q_head + cl->q_count) % cl->q_cap] = (uint8_t)k;
    cl->q_count++;
    return true;
}

static bool q_pop(osp_ws_cluster *cl, q_kind *k) {
    if (cl->q_count == 0) return false;
    *k = (q_kind)cl->q[cl->q_head];
    cl->q_head = (cl->q_head + 1) % cl->q_cap;
    cl->q_count--;
    return true;
}

/* Queues a bookkeeping command on `pub`; false when it went down (handled) or out of memory. */
static bool pub_command(osp_ws_cluster *cl, q_kind k, int argc, const char **argv, const size_t *lens) {
    size_t n;
    uint8_t *cmd = osp_redis_format(argc, argv, lens, &n);
    if (cmd == NULL) return false;
    bool ok = q_push(cl, k);
    if (ok) ok = osp_redis_conn_send(&cl->pub, cmd, n);
    osp_ws_free_wiped(cmd, n);
    return ok;
}

static bool send_numsub(osp_ws_cluster *cl) {
    const char *argv[] = {"PUBSUB", cl->sharded ? "SHARDNUMSUB" : "NUMSUB", cl->channel};
    size_t lens[] = {6, strlen(argv[1]), cl->channel_len};
    return pub_command(cl, Q_NUMSUB, 3, argv, lens);
}

/* ---- the backlog ---------------------------------------------------------------------------- */

static void record_free(bus_record *r) {
    osp_ws_free_wiped(r->cmd, r->len);
    r->cmd = NULL;
}

/* Loop thread: writes the records not yet written to `pub` (one buffer, one write). */
static void flush_backlog(osp_ws_cluster *cl) {
    if (cl->pub.state != OSP_REDIS_READY || state_of(cl) != CL_UP || cl->gate_closed) return;
    pthread_mutex_lock(&cl->lock);
    cl->flush_listed = false;
    size_t from = cl->ring_sent, to = cl->ring_count;
    bool ok = true;
    for (size_t i = from; i < to && ok; i++) {
        bus_record *r = &cl->ring[(cl->ring_head + i) % cl->ring_cap];
        ok = osp_ws_buf_append(&cl->pub.out, r->cmd, r->len) == 0 && q_push(cl, Q_PUBLISH);
        if (ok) cl->ring_sent++;
    }
    pthread_mutex_unlock(&cl->lock);
    if (cl->ring_sent > from) (void)osp_redis_conn_send(&cl->pub, NULL, 0);
}

/* Loop thread: Redis acknowledged the oldest written record. */
static void acknowledge(osp_ws_cluster *cl) {
    pthread_mutex_lock(&cl->lock);
    if (cl->ring_sent > 0) {
        bus_record *r = &cl->ring[cl->ring_head];
        cl->backlog_bytes -= r->len;
        record_free(r);
        cl->ring_head = (cl->ring_head + 1) % cl->ring_cap;
        cl->ring_count--;
        cl->ring_sent--;
        cl->acknowledged++;
    }
    pthread_mutex_unlock(&cl->lock);
}

bool osp_ws_cluster_publish(osp_ws_cluster *cl, const char *fn, uint8_t kind, int64_t target,
                            const uint8_t *data, size_t len, OspResult *err) {
    cl_state st = state_of(cl);
    if (st == CL_STOPPED || st == CL_FAILED) {
        *err = osp_result_errorf("%s: server %" PRId64 " has left its cluster (it is stopping)", fn, cl->server_id);
        return false;
    }
    if (len > UINT32_MAX - BUS_HEADER) {
        *err = osp_result_errorf("%s: a message of %zu bytes is too large for the cluster bus", fn, len);
        return false;
    }
    pthread_mutex_lock(&cl->lock);
    /* The record's size is known before anything is allocated: RESP framing of three
     * arguments is at most 3 × (1 + 20 + 2) + the argument bytes + the array header. */
    size_t estimate = 96 + cl->channel_len + BUS_HEADER + len;
    if (cl->backlog_bytes + estimate > cl->backlog_limit) {
        size_t waiting = cl->ring_count, bytes = cl->backlog_bytes;
        bool down = state_of(cl) != CL_UP;
        uint64_t since = down && cl->down_since_ms ? osp_ws_now_ms() - cl->down_since_ms : 0;
        pthread_mutex_unlock(&cl->lock);
        if (down)
            *err = osp_result_errorf("%s: the cluster bus (Redis at %s) has been unreachable for %.1f s and %zu "
                                     "messages (%zu bytes) wait for it, the limit "
                                     "(OSPREY_CLUSTER_BACKLOG_BYTES) is %zu bytes; nothing was sent",
                                     fn, cl->address, (double)since / 1000.0, waiting, bytes, cl->backlog_limit);
        else
            *err = osp_result_errorf("%s: Redis at %s is not keeping up: %zu messages (%zu bytes) wait for it, the "
                                     "limit (OSPREY_CLUSTER_BACKLOG_BYTES) is %zu bytes; nothing was sent",
                                     fn, cl->address, waiting, bytes, cl->backlog_limit);
        return false;
    }
    uint8_t *msg = malloc(BUS_HEADER + len);
    bus_record rec = {NULL, 0};
    if (msg != NULL) {
        memcpy(msg, "OSPC", 4);
        msg[4] = BUS_VERSION;
        msg[5] = kind;
        msg[6] = msg[7] = 0;
        put_u32(msg + 8, cl->node_id);
        put_u64(msg + 12, cl->nonce);
        put_u64(msg + 20, cl->next_seq);
        put_u64(msg + 28, (uint64_t)target);
        put_u32(msg + 36, (uint32_t)len);
        if (len) memcpy(msg + BUS_HEADER, data, len);
        const char *argv[] = {cl->sharded ? "SPUBLISH" : "PUBLISH", cl->channel, (const char *)msg};
        size_t lens[] = {strlen(argv[0]), cl->channel_len, BUS_HEADER + len};
        rec.cmd = osp_redis_format(3, argv, lens, &rec.len);
        osp_ws_free_wiped(msg, BUS_HEADER + len);
    }
    if (rec.cmd != NULL && cl->ring_count == cl->ring_cap) {
        size_t cap = cl->ring_cap ? cl->ring_cap * 2 : 256;
        bus_record *ring = malloc(cap * sizeof *ring);
        if (ring == NULL) {
            record_free(&rec);
        } else {
            for (size_t i = 0; i < cl->ring_count; i++) ring[i] = cl->ring[(cl->ring_head + i) % cl->ring_cap];
            free(cl->ring);
            cl->ring = ring;
            cl->ring_cap = cap;
            cl->ring_head = 0;
        }
    }
    if (rec.cmd == NULL) {
        pthread_mutex_unlock(&cl->lock);
        *err = osp_result_errorf("%s: out of memory", fn);
        return false;
    }
    cl->ring[(cl->ring_head + cl->ring_count) % cl->ring_cap] = rec;
    cl->ring_count++;
    cl->backlog_bytes += rec.len;
    cl->next_seq++;
    cl->published++;
    bool wake = !cl->flush_listed;
    cl->flush_listed = true;
    pthread_mutex_unlock(&cl->lock);
    /* On the main loop (the cluster's) the end of the iteration flushes (reap hook); elsewhere
     * one wake-up carries every publish made until the loop runs. */
    if (wake && osp_ws_loop_current() != osp_ws_loop_main()) osp_ws_loop_wake();
    return true;
}

/* ---- receiving ---------------------------------------------------------------------------- */

static peer *peer_for(osp_ws_cluster *cl, uint32_t node, uint64_t nonce) {
    for (size_t i = 0; i < cl->peer_count; i++)
        if (cl->peers[i].node == node && cl->peers[i].nonce == nonce) return &cl->peers[i];
    if (cl->peers == NULL) {
        cl->peers = calloc(OSP_CLUSTER_MAX_PEERS, sizeof *cl->peers);
        if (cl->peers == NULL) return NULL;
    }
    size_t slot = cl->peer_count;
    if (slot == OSP_CLUSTER_MAX_PEERS) { /* forget the publisher heard from least recently */
        slot = 0;
        for (size_t i = 1; i < cl->peer_count; i++)
            if (cl->peers[i].seen < cl->peers[slot].seen) slot = i;
    } else {
        cl->peer_count++;
    }
    cl->peers[slot] = (peer){node, nonce, 0, 0};
    return &cl->peers[slot];
}

static void bus_message(osp_ws_cluster *cl, const uint8_t *m, size_t n) {
    if (n < BUS_HEADER || memcmp(m, "OSPC", 4) != 0 || m[4] != BUS_VERSION || get_u32(m + 36) != n - BUS_HEADER) {
        cl->malformed++;
        return;
    }
    uint8_t kind = m[5];
    uint32_t node = get_u32(m + 8);
    uint64_t nonce = get_u64(m + 12), seq = get_u64(m + 20);
    int64_t target = (int64_t)get_u64(m + 28);
    if (node == cl->node_id) {
        if (nonce == cl->nonce) return; /* our own publish: delivered locally when it was made */
        /* Two live nodes with one id (possible only if Redis lost its counter and a node joined
         * before this one reconnected): their connection ids are ambiguous. */
        if (cl->collisions++ == 0)
            fprintf(stderr, "osprey cluster: another process on channel %.*s uses node id %u too; "
                            "restart one of them so it gets a fresh id\n",
                    (int)(cl->channel_len < 100 ? cl->channel_len : 100), cl->channel, node);
    }
    cl->received++;
    peer *p = peer_for(cl, node, nonce);
    if (p != NULL) {
        p->seen = cl->received;
        if (seq <= p->last_seq) {
            cl->duplicates++;
            return;
        }
        if (p->last_seq != 0 && seq > p->last_seq + 1) cl->lost += seq - p->last_seq - 1;
        p->last_seq = seq;
    }
    if (target != 0 && (uint64_t)target >> OSP_WS_CLUSTER_NODE_SHIFT != cl->node_id) return; /* another node's */
    if (cl->server == NULL) return;
    if (osp_ws_cluster_deliver == NULL ||
        !osp_ws_cluster_deliver(cl->server, kind, target, m + BUS_HEADER, n - BUS_HEADER))
        cl->undeliverable++;
}

/* ---- connection life ------------------------------------------------------------------------ */

static void become_down(osp_ws_cluster *cl, const char *why);

static void schedule_retry(osp_ws_cluster *cl) {
    uint8_t r[2] = {0, 0};
    if (RAND_bytes(r, sizeof r) != 1) memset(r, 0, sizeof r);
    /* ±25 % jitter so nodes restarted together do not reconnect in lock step */
    uint64_t jitter = cl->backoff_ms / 2 * ((uint64_t)r[0] << 8 | r[1]) / 65535;
    osp_ws_timer_arm(&cl->retry_timer, cl->backoff_ms * 3 / 4 + jitter);
    cl->backoff_ms = cl->backoff_ms * 2 > OSP_CLUSTER_BACKOFF_MAX_MS ? OSP_CLUSTER_BACKOFF_MAX_MS : cl->backoff_ms * 2;
}

static void start_pub(osp_ws_cluster *cl) {
    char why[400];
    cl->probe_done = cl->node_done = cl->subscribed = false;
    if (!osp_redis_conn_start(&cl->pub, OSP_CLUSTER_CONNECT_TIMEOUT_MS, why, sizeof why)) become_down(cl, why);
}

static void on_retry(osp_ws_timer *t) {
    osp_ws_cluster *cl = (osp_ws_cluster *)((char *)t - offsetof(osp_ws_cluster, retry_timer));
    if (state_of(cl) != CL_RECONNECTING) return;
    cl->attempts++;
    start_pub(cl);
}

static void open_gate(osp_ws_cluster *cl) {
    cl->gate_closed = false;
    osp_ws_timer_cancel(&cl->gate_timer);
    flush_backlog(cl);
}

static void on_gate(osp_ws_timer *t) {
    osp_ws_cluster *cl = (osp_ws_cluster *)((char *)t - offsetof(osp_ws_cluster, gate_timer));
    if (state_of(cl) != CL_UP || !cl->gate_closed) return;
    if (osp_ws_now_ms() >= cl->gate_until_ms) {
        open_gate(cl); /* the missing nodes may be gone for good: publish anyway */
        return;
    }
    if (!send_numsub(cl)) return;
    osp_ws_timer_arm(&cl->gate_timer, OSP_CLUSTER_GATE_POLL_MS);
}

static void on_heartbeat(osp_ws_timer *t) {
    osp_ws_cluster *cl = (osp_ws_cluster *)((char *)t - offsetof(osp_ws_cluster, heartbeat_timer));
    if (state_of(cl) != CL_UP) return;
    if (cl->hb_outstanding) {
        if (osp_ws_now_ms() - cl->hb_sent_ms >= OSP_CLUSTER_DEAD_MS) {
            char why[400];
            snprintf(why, sizeof why, "Redis at %s did not answer for %d s", cl->address, OSP_CLUSTER_DEAD_MS / 1000);
            become_down(cl, why);
            return;
        }
    } else if (!cl->gate_closed) {
        cl->hb_outstanding = true;
        cl->hb_sent_ms = osp_ws_now_ms();
        if (!send_numsub(cl)) return;
    }
    osp_ws_timer_arm(&cl->heartbeat_timer, OSP_CLUSTER_HEARTBEAT_MS);
}

/* Both connections are ready and subscribed. */
static void became_up(osp_ws_cluster *cl) {
    bool first = state_of(cl) == CL_JOINING;
    atomic_store(&cl->state, CL_UP);
    cl->backoff_ms = OSP_CLUSTER_BACKOFF_MIN_MS;
    cl->attempts = 0;
    cl->down_since_ms = 0;
    cl->hb_outstanding = false;
    osp_ws_timer_arm(&cl->heartbeat_timer, OSP_CLUSTER_HEARTBEAT_MS);
    if (first) {
        pthread_mutex_lock(&osp_ws_tx_lock); /* publishers read it under the lock (ws_server.c) */
        cl->server->cluster = cl;
        pthread_mutex_unlock(&osp_ws_tx_lock);
        cl->server->cluster_joining = NULL;
        osp_ws_waiters_signal_all(&cl->join_waiter);
        return;
    }
    cl->reconnects++;
    /* Hold the backlog until the channel has its subscribers back (or the gate times out). */
    cl->gate_closed = true;
    cl->gate_until_ms = osp_ws_now_ms() + OSP_CLUSTER_GATE_MS;
    if (send_numsub(cl)) osp_ws_timer_arm(&cl->gate_timer, OSP_CLUSTER_GATE_POLL_MS);
}

static void become_down(osp_ws_cluster *cl, const char *why) {
    cl_state st = state_of(cl);
    osp_redis_conn_close(&cl->pub);
    osp_redis_conn_close(&cl->sub);
    osp_ws_timer_cancel(&cl->heartbeat_timer);
    osp_ws_timer_cancel(&cl->gate_timer);
    cl->q_count = 0;
    cl->hb_outstanding = false;
    cl->gate_closed = false;
    snprintf(cl->last_error, sizeof cl->last_error, "%s", why);
    pthread_mutex_lock(&cl->lock);
    cl->ring_sent = 0; /* written but not acknowledged: written again after the reconnect */
    pthread_mutex_unlock(&cl->lock);
    if (st == CL_JOINING) {
        atomic_store(&cl->state, CL_FAILED);
        snprintf(cl->join_error, sizeof cl->join_error, "%s", why);
        osp_ws_waiters_signal_all(&cl->join_waiter);
        return;
    }
    if (st == CL_STOPPED || st == CL_FAILED) return;
    if (st == CL_UP) {
        cl->down_since_ms = osp_ws_now_ms();
        fprintf(stderr, "osprey cluster: server %" PRId64 ": %s; reconnecting\n", cl->server_id, why);
    }
    atomic_store(&cl->state, CL_RECONNECTING);
    schedule_retry(cl);
}

static void pub_down(osp_redis_conn *c, const char *why) { become_down(c->owner, why); }
static void sub_down(osp_redis_conn *c, const char *why) { become_down(c->owner, why); }

static void start_sub(osp_ws_cluster *cl) {
    char why[400];
    if (!osp_redis_conn_start(&cl->sub, OSP_CLUSTER_CONNECT_TIMEOUT_MS, why, sizeof why)) become_down(cl, why);
}

static void pub_ready(osp_redis_conn *c) {
    osp_ws_cluster *cl = c->owner;
    cl->q_count = 0;
    /* Sharded pub/sub (Redis 7: SPUBLISH/SSUBSCRIBE) when the server knows it. */
    const char *probe[] = {"COMMAND", "INFO", "SSUBSCRIBE"};
    size_t probe_lens[] = {7, 4, 10};
    if (!pub_command(cl, Q_PROBE, 3, probe, probe_lens)) return;
    if (cl->node_id == 0) {
        const char *argv[] = {"INCR", cl->counter_key};
        size_t lens[] = {4, cl->counter_key_len};
        (void)pub_command(cl, Q_INCR, 2, argv, lens);
    } else {
        static const char script[] =
            "local v = tonumber(redis.call('GET', KEYS[1]) or '0') "
            "if v < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end return 1";
        char id[16];
        snprintf(id, sizeof id, "%u", cl->node_id);
        const char *argv[] = {"EVAL", script, "1", cl->counter_key, id};
        size_t lens[] = {4, sizeof script - 1, 1, cl->counter_key_len, strlen(id)};
        (void)pub_command(cl, Q_RESTORE, 5, argv, lens);
    }
}

static void reply_text(const redisReply *r, char *out, size_t outlen) {
    int n = (int)(r->len < 200 ? r->len : 200);
    snprintf(out, outlen, "%.*s", n, r->str ? r->str : "");
}

static void pub_reply(osp_redis_conn *c, redisReply *r) {
    osp_ws_cluster *cl = c->owner;
    q_kind k;
    if (!q_pop(cl, &k)) {
        freeReplyObject(r);
        become_down(cl, "Redis sent a reply nobody asked for");
        return;
    }
    char text[220], why[800];
    switch (k) {
    case Q_PUBLISH:
        if (r->type == REDIS_REPLY_ERROR) {
            reply_text(r, text, sizeof text);
            snprintf(cl->last_error, sizeof cl->last_error, "Redis refused a publish: %s", text);
            if (cl->refused++ == 0)
                fprintf(stderr, "osprey cluster: server %" PRId64 ": Redis at %s refused a publish: %s\n", cl->server_id,
                        cl->address, text);
        }
        freeReplyObject(r);
        acknowledge(cl);
        return;
    case Q_PROBE:
        /* Redis 7 answers with the command's description, older servers with a nil entry. */
        /* Decided once, at join: publishers on other threads read it, and records already in the
         * backlog were encoded with it. */
        if (state_of(cl) == CL_JOINING)
            cl->sharded = !cl->force_plain && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
                          r->element[0]->type == REDIS_REPLY_ARRAY;
        cl->probe_done = true;
        freeReplyObject(r);
        break;
    case Q_INCR:
    case Q_RESTORE:
        if (r->type == REDIS_REPLY_ERROR) {
            reply_text(r, text, sizeof text);
            freeReplyObject(r);
            snprintf(why, sizeof why, "Redis at %s refused to assign a node id: %s", cl->address, text);
            become_down(cl, why);
            return;
        }
        if (k == Q_INCR) {
            long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
            cl->node_id = v > 0 ? (uint32_t)((uint64_t)(v - 1) % OSP_WS_CLUSTER_MAX_NODE + 1) : 1;
        }
        cl->node_done = true;
        freeReplyObject(r);
        break;
    case Q_NUMSUB: {
        long long n = -1;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->type == REDIS_REPLY_INTEGER)
            n = r->element[1]->integer;
        freeReplyObject(r);
        if (n < 0) return;
        cl->subscribers = n;
        if (cl->gate_closed) {
            if (n >= cl->subscribers_before) open_gate(cl);
        } else {
            cl->hb_outstanding = false;
            cl->subscribers_before = n;
        }
        return;
    }
    }
    if (cl->probe_done && cl->node_done && cl->sub.state == OSP_REDIS_IDLE) start_sub(cl);
}

static void sub_ready(osp_redis_conn *c) {
    osp_ws_cluster *cl = c->owner;
    const char *argv[] = {cl->sharded ? "SSUBSCRIBE" : "SUBSCRIBE", cl->channel};
    size_t lens[] = {strlen(argv[0]), cl->channel_len};
    size_t n;
    uint8_t *cmd = osp_redis_format(2, argv, lens, &n);
    if (cmd == NULL) {
        become_down(cl, "out of memory");
        return;
    }
    (void)osp_redis_conn_send(c, cmd, n);
    osp_ws_free_wiped(cmd, n);
}

static bool reply_is(const redisReply *r, const char *word) {
    return r->type == REDIS_REPLY_STRING && r->len == strlen(word) && memcmp(r->str, word, r->len) == 0;
}

static void sub_reply(osp_redis_conn *c, redisReply *r) {
    osp_ws_cluster *cl = c->owner;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        const redisReply *what = r->element[0];
        if ((reply_is(what, "message") || reply_is(what, "smessage")) && r->element[2]->type == REDIS_REPLY_STRING) {
            bus_message(cl, (const uint8_t *)r->element[2]->str, r->element[2]->len);
            freeReplyObject(r);
            return;
        }
        if (reply_is(what, "subscribe") || reply_is(what, "ssubscribe")) {
            freeReplyObject(r);
            if (!cl->subscribed) {
                cl->subscribed = true;
                became_up(cl);
            }
            return;
        }
        if (reply_is(what, "sunsubscribe") || reply_is(what, "unsubscribe")) {
            /* Redis moved the channel's slot away (Redis Cluster resharding): subscribe again. */
            freeReplyObject(r);
            become_down(cl, "Redis unsubscribed the node from the channel");
            return;
        }
    }
    if (r->type == REDIS_REPLY_ERROR) {
        char text[220], why[800];
        reply_text(r, text, sizeof text);
        freeReplyObject(r);
        snprintf(why, sizeof why, "Redis at %s refused the subscription: %s", cl->address, text);
        become_down(cl, why);
        return;
    }
    freeReplyObject(r);
}

/* End of every loop iteration: write what was published meanwhile. */
static void cluster_reap(void) {
    if (osp_ws_loop_current() != osp_ws_loop_main()) return; /* clusters live on the main loop */
    for (osp_ws_cluster *cl = clusters; cl; cl = cl->next) {
        pthread_mutex_lock(&cl->lock);
        bool due = cl->ring_sent < cl->ring_count;
        cl->flush_listed = false; /* the next publish wakes the loop again */
        pthread_mutex_unlock(&cl->lock);
        if (due) flush_backlog(cl);
    }
}

/* The cluster's part of every loop iteration: after the server layer queued this iteration's
 * broadcasts, their publishes go to Redis in one write. */
static const osp_ws_layer cluster_layer = {
    .rank = 40,
    .iteration_end = cluster_reap,
};

__attribute__((constructor)) static void register_cluster_layer(void) { osp_ws_runtime_add_layer(&cluster_layer); }

/* ---- joining -------------------------------------------------------------------------------- */

static void cluster_destroy(osp_ws_cluster *cl) {
    osp_redis_url_clear(&cl->url);
    for (size_t i = 0; i < cl->ring_count; i++) record_free(&cl->ring[(cl->ring_head + i) % cl->ring_cap]);
    free(cl->ring);
    free(cl->q);
    free(cl->peers);
    free(cl->channel);
    free(cl->counter_key);
    SSL_CTX_free(cl->tls_ctx);
    pthread_mutex_destroy(&cl->lock);
    free(cl);
}

static void unlink_cluster(osp_ws_cluster *cl) {
    for (osp_ws_cluster **p = &clusters; *p; p = &(*p)->next)
        if (*p == cl) {
            *p = cl->next;
            break;
        }
}

void osp_ws_cluster_stop(osp_ws_cluster *cl) {
    if (state_of(cl) == CL_STOPPED) return;
    /* Best effort: what the socket takes now (no waiting: the server is going away). */
    if (state_of(cl) == CL_UP) {
        cl->gate_closed = false;
        flush_backlog(cl);
    }
    atomic_store(&cl->state, CL_STOPPED);
    osp_redis_conn_close(&cl->pub);
    osp_redis_conn_close(&cl->sub);
    osp_ws_timer_cancel(&cl->retry_timer);
    osp_ws_timer_cancel(&cl->heartbeat_timer);
    osp_ws_timer_cancel(&cl->gate_timer);
    unlink_cluster(cl);
}

void osp_ws_cluster_abandon_join(osp_ws_cluster *cl) {
    if (state_of(cl) != CL_JOINING) return;
    cl->server->cluster_joining = NULL;
    cl->server = NULL; /* it is being freed: the join must not link it */
    become_down(cl, "the server was stopped while it joined");
}

void osp_ws_cluster_free(osp_ws_cluster *cl) {
    osp_ws_cluster_stop(cl);
    cluster_destroy(cl);
}

typedef struct {
    osp_ws_cluster *cl;
    osp_ws_waiter waiter;
    OspResult result;
    bool wait;
} join_args;

static const char use_fn[] = "websocketServerUseCluster";

static void do_join(void *p) {
    join_args *a = p;
    osp_ws_cluster *cl = a->cl;
    osp_ws_entry found;
    const osp_ws_entry *e = osp_ws_registry_find(cl->server_id, &found) ? &found : NULL;
    if (e == NULL || e->kind != OSP_WS_KIND_SERVER || e->object == NULL) {
        a->result = osp_result_errorf("%s: unknown server id %" PRId64 "%s", use_fn, cl->server_id,
                                      e && e->kind == OSP_WS_KIND_SERVER ? " (that server was stopped)" : "");
        return;
    }
    osp_ws_server *s = e->object;
    if (s->listening) {
        a->result = osp_result_errorf("%s: server %" PRId64 " is already listening; join the cluster before "
                                      "websocketServerListen (connection ids carry the node id)", use_fn, s->id);
        return;
    }
    if (s->stopping) {
        a->result = osp_result_errorf("%s: server %" PRId64 " is stopping", use_fn, s->id);
        return;
    }
    if (s->cluster != NULL || s->cluster_joining != NULL) {
        a->result = osp_result_errorf("%s: server %" PRId64 " has already joined a cluster", use_fn, s->id);
        return;
    }
    cl->server = s;
    s->cluster_joining = cl;
    cl->next = clusters;
    clusters = cl;
    a->wait = true;
    a->waiter.next = NULL;
    cl->join_waiter = &a->waiter;
    a->result = osp_result_success(0);
    start_pub(cl);
}

static void do_join_end(void *p) {
    join_args *a = p;
    osp_ws_cluster *cl = a->cl;
    if (cl->server) cl->server->cluster_joining = NULL;
    if (state_of(cl) != CL_UP) {
        osp_ws_cluster_stop(cl);
        cluster_destroy(cl);
        a->cl = NULL;
    }
}

typedef struct {
    int64_t server_id;
    const char *url;
    const char *channel;
    size_t channel_len;
    OspResult result;
} use_args;

static size_t backlog_limit_from_env(void) {
    const char *v = getenv("OSPREY_CLUSTER_BACKLOG_BYTES");
    if (v == NULL || *v == '\0') return OSP_CLUSTER_DEFAULT_BACKLOG;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < 4096 || n > (1ull << 40)) return OSP_CLUSTER_DEFAULT_BACKLOG;
    return (size_t)n;
}

static void use_job(void *p) {
    use_args *u = p;
    char err[400];
    osp_ws_cluster *cl = calloc(1, sizeof *cl);
    if (cl == NULL) {
        u->result = osp_result_errorf("%s: out of memory", use_fn);
        return;
    }
    pthread_mutex_init(&cl->lock, NULL);
    cl->server_id = u->server_id;
    atomic_store(&cl->state, CL_JOINING);
    cl->backlog_limit = backlog_limit_from_env();
    /* Plain pub/sub on purpose: every node of one channel must use the same kind (a sharded and
     * a plain subscriber do not hear each other), e.g. while some nodes talk to an older Redis. */
    const char *mode = getenv("OSPREY_CLUSTER_PUBSUB");
    cl->force_plain = mode != NULL && strcmp(mode, "plain") == 0;
    cl->next_seq = 1;
    cl->backoff_ms = OSP_CLUSTER_BACKOFF_MIN_MS;
    cl->subscribers_before = 1;
    osp_ws_timer_init(&cl->retry_timer, on_retry);
    osp_ws_timer_init(&cl->heartbeat_timer, on_heartbeat);
    osp_ws_timer_init(&cl->gate_timer, on_gate);
    if (!osp_redis_url_parse(u->url, &cl->url, err, sizeof err)) {
        u->result = osp_result_errorf("%s: %s", use_fn, err);
        cluster_destroy(cl);
        return;
    }
    osp_redis_url_address(&cl->url, cl->address, sizeof cl->address);
    static const char prefix[] = "osprey:cluster:{", suffix[] = "}:nodes";
    cl->channel = malloc(u->channel_len + 1);
    cl->counter_key_len = sizeof prefix - 1 + u->channel_len + sizeof suffix - 1;
    cl->counter_key = malloc(cl->counter_key_len + 1);
    if (cl->channel == NULL || cl->counter_key == NULL || RAND_bytes((unsigned char *)&cl->nonce, sizeof cl->nonce) != 1) {
        u->result = osp_result_errorf("%s: out of memory or no randomness", use_fn);
        cluster_destroy(cl);
        return;
    }
    memcpy(cl->channel, u->channel, u->channel_len);
    cl->channel[u->channel_len] = '\0';
    cl->channel_len = u->channel_len;
    memcpy(cl->counter_key, prefix, sizeof prefix - 1);
    memcpy(cl->counter_key + sizeof prefix - 1, u->channel, u->channel_len);
    memcpy(cl->counter_key + sizeof prefix - 1 + u->channel_len, suffix, sizeof suffix);
    struct sockaddr_storage addr;
    socklen_t addr_len = 0;
    if (!osp_redis_resolve(&cl->url, &addr, &addr_len, err, sizeof err)) {
        u->result = osp_result_errorf("%s: %s", use_fn, err);
        cluster_destroy(cl);
        return;
    }
    if (cl->url.tls && (cl->tls_ctx = osp_ws_tls_client_ctx(err, sizeof err)) == NULL) {
        u->result = osp_result_errorf("%s: rediss://%s: %s", use_fn, cl->address, err);
        cluster_destroy(cl);
        return;
    }
    osp_redis_conn_init(&cl->pub, &cl->url, &addr, addr_len, cl->tls_ctx, cl);
    cl->pub.on_ready = pub_ready;
    cl->pub.on_reply = pub_reply;
    cl->pub.on_down = pub_down;
    osp_redis_conn_init(&cl->sub, &cl->url, &addr, addr_len, cl->tls_ctx, cl);
    cl->sub.on_ready = sub_ready;
    cl->sub.on_reply = sub_reply;
    cl->sub.on_down = sub_down;
    OspResult err_result;
    if (!osp_ws_runtime_ensure(use_fn, &err_result)) {
        u->result = err_result;
        cluster_destroy(cl);
        return;
    }
    join_args a = {cl, {false, NULL}, {0, 0}, false};
    if (!osp_ws_loop_call(do_join, &a)) {
        u->result = osp_ws_shut_down_error(use_fn);
        cluster_destroy(cl);
        return;
    }
    if (a.result.tag != OSP_RESULT_SUCCESS) {
        u->result = a.result;
        cluster_destroy(cl);
        return;
    }
    osp_ws_waiter_wait(&a.waiter); /* bounded: the connect deadline answers within seconds */
    char why[sizeof cl->join_error];
    snprintf(why, sizeof why, "%s", cl->join_error);
    if (!osp_ws_loop_call(do_join_end, &a)) {
        u->result = osp_ws_shut_down_error(use_fn);
        return;
    }
    if (a.cl == NULL) u->result = osp_result_errorf("%s: cannot join the cluster: %s", use_fn, why);
    else u->result = osp_result_success(0);
}

OspResult osp_ws_server_use_cluster(int64_t server_id, const char *redis_url, const char *channel) {
    if (redis_url == NULL || channel == NULL) return osp_result_errorf("%s: the URL or channel is null", use_fn);
    OspResult refused;
    if (osp_str_refuse_nul(use_fn, "Redis URL", redis_url, &refused)) return refused;
    size_t channel_len = osp_str_len(channel);
    if (channel_len == 0 || channel_len > 1024)
        return osp_result_errorf("%s: the channel name must be 1 to 1024 bytes (got %zu)", use_fn, channel_len);
    use_args u = {server_id, redis_url, channel, channel_len, {0, 0}};
    /* Resolving the host and waiting for Redis block: a fiber parks meanwhile. */
    osp_sched_run_blocking(use_job, &u);
    return u.result;
}

/* ---- status --------------------------------------------------------------------------------- */

typedef struct {
    int64_t server_id;
    OspResult result;
} status_args;

static void do_status(void *p) {
    status_args *a = p;
    static const char fn[] = "websocketServerClusterStatus";
    osp_ws_entry found;
    const osp_ws_entry *e = osp_ws_registry_find(a->server_id, &found) ? &found : NULL;
    if (e == NULL || e->kind != OSP_WS_KIND_SERVER || e->object == NULL) {
        a->result = osp_result_errorf("%s: unknown server id %" PRId64 "%s", fn, a->server_id,
                                      e && e->kind == OSP_WS_KIND_SERVER ? " (that server was stopped)" : "");
        return;
    }
    osp_ws_server *s = e->object;
    osp_ws_cluster *cl = s->cluster;
    if (cl == NULL) {
        a->result = osp_result_errorf("%s: server %" PRId64 " has not joined a cluster (websocketServerUseCluster)",
                                      fn, a->server_id);
        return;
    }
    pthread_mutex_lock(&cl->lock);
    size_t waiting = cl->ring_count, bytes = cl->backlog_bytes;
    uint64_t published = cl->published;
    pthread_mutex_unlock(&cl->lock);
    char head[1200];
    cl_state st = state_of(cl);
    if (st == CL_UP) {
        snprintf(head, sizeof head, "up: node %u, Redis %s, %s pub/sub, %lld subscribers", cl->node_id, cl->address,
                 cl->sharded ? "sharded" : "plain", (long long)cl->subscribers);
    } else {
        double since = cl->down_since_ms ? (double)(osp_ws_now_ms() - cl->down_since_ms) / 1000.0 : 0.0;
        snprintf(head, sizeof head, "reconnecting: node %u, Redis %s unreachable for %.1f s, attempt %u: %s",
                 cl->node_id, cl->address, since, cl->attempts, cl->last_error);
    }
    char text[2000];
    int n = snprintf(text, sizeof text,
                     "%s; published %" PRIu64 ", received %" PRIu64 ", duplicates dropped %" PRIu64
                     ", lost %" PRIu64 ", undeliverable %" PRIu64 ", refused by Redis %" PRIu64 ", reconnects %" PRIu64
                     ", backlog %zu messages (%zu bytes, limit %zu)",
                     head, published, cl->received, cl->duplicates, cl->lost, cl->undeliverable, cl->refused,
                     cl->reconnects, waiting, bytes, cl->backlog_limit);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof text) n = (int)sizeof text - 1;
    a->result = osp_result_success((int64_t)(intptr_t)osp_gc_strndup(text, (size_t)n));
}

OspResult osp_ws_server_cluster_status(int64_t server_id) {
    static const char fn[] = "websocketServerClusterStatus";
    OspResult err;
    if (!osp_ws_runtime_ensure(fn, &err)) return err;
    status_args a = {server_id, {0, 0}};
    if (!osp_ws_loop_call(do_status, &a)) return osp_ws_shut_down_error(fn);
    return a.result;
}
