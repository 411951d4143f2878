/*
 * Each I/O loop's queue of posted records (see ws_loop_queue.h).
 *
 * A send goes to its connection's loop; a broadcast, to every loop, appended to all the queues
 * under one hold of the lock, so every recipient sees broadcasts (and the sends made between
 * them) in one order. The acceptor hands accepted sockets to their loop (ADOPT) and stopping a
 * server reaches every loop (STOP) the same way; the last loop done has the main loop finish
 * it (FINISH).
 *
 * The queue is one growable buffer per loop (loop.h, post_pend) of records, each followed by
 * its message bytes padded to 8. The loop swaps it with a second buffer (post_spare) when it
 * takes the queue, so senders get an allocation to reuse and nothing is copied twice.
 */
#include "ws_loop_queue.h"

#include <string.h>

typedef enum { POST_SEND, POST_BROADCAST, POST_ADOPT, POST_STOP, POST_FINISH } post_kind;

typedef struct {
    uint32_t kind;     /* post_kind */
    uint32_t opcode;   /* SEND, BROADCAST: text or binary */
    int64_t server_id;
    int64_t conn_id;   /* SEND */
    osp_ws_server *server; /* BROADCAST, ADOPT, STOP, FINISH: alive until every loop did its STOP */
    size_t len;        /* message bytes following the record, then padding to 8 */
    int32_t fd;        /* ADOPT: the accepted socket */
    uint8_t addr[16];  /* ADOPT: the peer's address (IPv4-mapped) */
} posted_record;

static size_t record_size(size_t len) { return sizeof(posted_record) + ((len + 7) & ~(size_t)7); }

/* With osp_ws_tx_lock held and room reserved: appends a record to loop L's queue. *wake gets L
 * when the queue was empty (otherwise a wake-up is already due). */
static void append_record(osp_ws_loop *L, const posted_record *r, const char *message, osp_ws_loop **wake) {
    osp_ws_buf *pend = &L->post_pend;
    size_t total = record_size(r->len);
    uint8_t *dst = pend->data + pend->len;
    memcpy(dst, r, sizeof *r);
    if (r->len) memcpy(dst + sizeof *r, message, r->len);
    memset(dst + sizeof *r + r->len, 0, total - sizeof *r - r->len);
    if (pend->len == 0) *wake = L;
    pend->len += total;
}

/* With osp_ws_tx_lock held: room for a record of `len` message bytes on L's queue. 0, or
 * OSP_WS_BUF_OVER_BUDGET / -1. Records without a message are never refused by the budget. */
static int reserve_record(osp_ws_loop *L, size_t len) {
    size_t total = record_size(len);
    if (total < len) return -1;
    return osp_ws_buf_reserve(&L->post_pend, total, SIZE_MAX);
}

static OspResult reserve_error(int rc, const char *fn) {
    if (rc == OSP_WS_BUF_OVER_BUDGET) return osp_ws_budget_error(fn);
    return osp_result_errorf("%s: out of memory", fn);
}

/* A record without a message (ADOPT, FINISH) for loop L, waking it. false when it could not be
 * queued (out of memory). */
static bool post_control(osp_ws_loop *L, const posted_record *r) {
    osp_ws_loop *wake = NULL;
    pthread_mutex_lock(&osp_ws_tx_lock);
    bool ok = reserve_record(L, 0) == 0;
    if (ok) append_record(L, r, NULL, &wake);
    pthread_mutex_unlock(&osp_ws_tx_lock);
    osp_ws_loop_wake_on(wake);
    return ok;
}

OspResult osp_ws_loop_queue_send(osp_ws_conn *c, const char *fn, int64_t server_id, int64_t conn_id,
                                 uint8_t opcode, const char *message, size_t len, osp_ws_loop **wake) {
    int rc = reserve_record(c->loop, len);
    if (rc != 0) return reserve_error(rc, fn);
    posted_record r = {POST_SEND, opcode, server_id, conn_id, NULL, len, -1, {0}};
    append_record(c->loop, &r, message, wake);
    c->tx_posted += len;
    return osp_result_success(0);
}

OspResult osp_ws_loop_queue_broadcast(osp_ws_server *s, const char *fn, uint8_t opcode, const char *message,
                                      size_t len, osp_ws_loop *wake[OSP_WS_MAX_LOOPS]) {
    unsigned n = osp_ws_loop_count();
    for (unsigned i = 0; i < n; i++) {
        int rc = reserve_record(osp_ws_loop_at(i), len);
        if (rc != 0) return reserve_error(rc, fn);
    }
    posted_record r = {POST_BROADCAST, opcode, s->id, 0, s, len, -1, {0}};
    for (unsigned i = 0; i < n; i++) append_record(osp_ws_loop_at(i), &r, message, &wake[i]);
    return osp_result_success(0);
}

bool osp_ws_loop_queue_stop(osp_ws_loop *L, osp_ws_server *s, osp_ws_loop **wake) {
    if (reserve_record(L, 0) != 0) return false;
    posted_record r = {POST_STOP, 0, s->id, 0, s, 0, -1, {0}};
    append_record(L, &r, NULL, wake);
    return true;
}

bool osp_ws_loop_queue_adopt(osp_ws_loop *L, osp_ws_server *s, int fd, const uint8_t addr[16]) {
    posted_record r = {POST_ADOPT, 0, s->id, 0, s, 0, fd, {0}};
    memcpy(r.addr, addr, 16);
    return post_control(L, &r);
}

bool osp_ws_loop_queue_finish(osp_ws_server *s) {
    posted_record r = {POST_FINISH, 0, s->id, 0, s, 0, -1, {0}};
    return post_control(osp_ws_loop_main(), &r);
}

bool osp_ws_loop_queue_claim_direct(osp_ws_conn *c) {
    osp_ws_loop *L = c->loop;
    return L->post_pend.len == 0 && !atomic_load_explicit(&L->post_draining, memory_order_acquire) &&
           osp_ws_conn_direct_claim(c);
}

static void perform(const osp_ws_loop_queue_ops *ops, const posted_record *r, const char *message) {
    switch ((post_kind)r->kind) {
    case POST_SEND:
        ops->send(r->server_id, r->conn_id, (uint8_t)r->opcode, message, r->len);
        return;
    case POST_BROADCAST:
        ops->broadcast(r->server, (uint8_t)r->opcode, message, r->len);
        return;
    case POST_ADOPT:
        ops->adopt(r->server, r->fd, r->addr);
        return;
    case POST_STOP:
        ops->stop(r->server);
        return;
    case POST_FINISH:
        ops->finish(r->server);
        return;
    }
}

void osp_ws_loop_queue_drain(const osp_ws_loop_queue_ops *ops) {
    osp_ws_loop *L = osp_ws_loop_current();
    osp_ws_buf *const pend = &L->post_pend, *const spare = &L->post_spare;
    pthread_mutex_lock(&osp_ws_tx_lock);
    if (pend->len == 0) {
        pthread_mutex_unlock(&osp_ws_tx_lock);
        return;
    }
    /* Swap the buffers: the senders get an allocation to reuse and nothing is copied. */
    osp_ws_buf taken = *pend;
    *pend = *spare;
    *spare = taken;
    atomic_store_explicit(&L->post_draining, true, memory_order_relaxed); /* under the lock */
    /* The sends taken now count as their connections' output queue (the loop's tx_queued at
     * its next flush), no longer as posted. */
    for (size_t at = 0; at < spare->len;) {
        const posted_record *r = (const posted_record *)(spare->data + at);
        if (r->kind == POST_SEND) {
            const osp_ws_entry *e = osp_ws_registry_get(r->conn_id);
            if (e && e->kind == OSP_WS_KIND_SERVER_CONN && e->object) {
                osp_ws_conn *c = e->object;
                c->tx_posted -= r->len < c->tx_posted ? r->len : c->tx_posted;
            }
        }
        at += record_size(r->len);
    }
    pthread_mutex_unlock(&osp_ws_tx_lock);
    for (size_t at = 0; at < spare->len;) {
        const posted_record *r = (const posted_record *)(spare->data + at);
        at += record_size(r->len);
        perform(ops, r, (const char *)(r + 1));
    }
    /* Performed: each send is now in its connection's output, which keeps direct sends off
     * that connection until it has gone out. */
    atomic_store_explicit(&L->post_draining, false, memory_order_release);
    osp_ws_buf_clear(spare); /* wiped: the records hold payloads */
}

void osp_ws_loop_queue_release(void (*finish)(osp_ws_server *s)) {
    osp_ws_loop *L = osp_ws_loop_current();
    for (size_t at = 0; at < L->post_pend.len;) {
        const posted_record *r = (const posted_record *)(L->post_pend.data + at);
        if (r->kind == POST_FINISH) finish(r->server);
        at += record_size(r->len);
    }
    osp_ws_buf_free(&L->post_pend);
    osp_ws_buf_free(&L->post_spare);
}
