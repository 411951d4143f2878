/*
 * Each I/O loop's queue of posted records (docs/WEBSOCKET-RUNTIME.md, "Handler sends"): how a
 * thread that is not a connection's loop (a handler fiber's worker, another loop, the acceptor,
 * the main loop stopping a server) hands server work to that loop without waiting for it.
 *
 * Under osp_ws_tx_lock a poster appends a typed record (with a copy of the message, if any) to
 * the queue of the loop concerned; the loop is woken only when its queue was empty (a non-empty
 * queue means a wake-up is already due). Each loop takes its whole queue at its next wake-up,
 * before any command, and performs the records in the order they were posted through the
 * owner's table (ws_server.c), so one loop iteration carries every message posted meanwhile
 * (one send() per recipient) and a later command from the same caller finds them queued.
 *
 * This module owns the records' layout and the bytes posted per connection and not yet taken
 * (tx_posted, counted against the output cap); what a record does is the owner's.
 */
#ifndef OSP_WS_LOOP_QUEUE_H
#define OSP_WS_LOOP_QUEUE_H

#include "ws_internal.h"

/* What the owner of the records does with each one, on the loop it was posted to, in order. */
typedef struct {
    /* websocketServerSend to conn_id of server_id (posted while the connection was open). */
    void (*send)(int64_t server_id, int64_t conn_id, uint8_t opcode, const char *message, size_t len);
    /* websocketServerBroadcast: to this loop's connections of s. */
    void (*broadcast)(osp_ws_server *s, uint8_t opcode, const char *message, size_t len);
    /* An accepted socket (and its peer's IPv4-mapped address) placed on this loop. */
    void (*adopt)(osp_ws_server *s, int fd, const uint8_t addr[16]);
    /* s stops its part on this loop. */
    void (*stop)(osp_ws_server *s);
    /* Main loop: every loop is done with s. */
    void (*finish)(osp_ws_server *s);
} osp_ws_loop_queue_ops;

/* ---- posting (any thread) -------------------------------------------------------------------
 * The functions marked "lock held" are called with osp_ws_tx_lock held; `wake` collects the
 * loops to wake (osp_ws_loop_wake_on) after unlocking, NULL where a wake-up is already due. */

/* Lock held: posts a send of `len` bytes to c (a server connection, open when checked under this
 * hold of the lock) on its loop and counts them in c->tx_posted until the loop takes them.
 * Success, or an Err naming fn (memory budget, out of memory). */
OspResult osp_ws_loop_queue_send(osp_ws_conn *c, const char *fn, int64_t server_id, int64_t conn_id,
                                 uint8_t opcode, const char *message, size_t len, osp_ws_loop **wake);
/* Lock held: posts a broadcast of s to every loop, all or none (an Err naming fn when one queue
 * has no room); wake[i] for loop i. */
OspResult osp_ws_loop_queue_broadcast(osp_ws_server *s, const char *fn, uint8_t opcode, const char *message,
                                      size_t len, osp_ws_loop *wake[OSP_WS_MAX_LOOPS]);
/* Lock held: queues STOP for s on loop L. false (nothing queued): out of memory. */
bool osp_ws_loop_queue_stop(osp_ws_loop *L, osp_ws_server *s, osp_ws_loop **wake);
/* Takes the lock: hands the accepted socket fd to loop L and wakes it. false: out of memory
 * (the caller still owns fd). */
bool osp_ws_loop_queue_adopt(osp_ws_loop *L, osp_ws_server *s, int fd, const uint8_t addr[16]);
/* Takes the lock: has the main loop finish s and wakes it. false: out of memory. */
bool osp_ws_loop_queue_finish(osp_ws_server *s);

/* Lock held, on a thread that is not c's loop: claims c's socket for a direct frame
 * (osp_ws_conn_direct_send) when nothing posted to c's loop is waiting or being performed
 * (a direct frame must not overtake a send or a broadcast posted before it) and c's loop
 * allows it (osp_ws_conn_direct_claim). */
bool osp_ws_loop_queue_claim_direct(osp_ws_conn *c);

/* ---- the loop's side ------------------------------------------------------------------------ */

/* Loop thread, at each wake-up and before running commands: performs this loop's records
 * through ops, in the order they were posted. */
void osp_ws_loop_queue_drain(const osp_ws_loop_queue_ops *ops);
/* The loop thread is joined (osp_ws_loop_each_stopped): FINISH records nobody took are handed
 * to finish (the server is freed rather than leaked); everything else is dropped, and the
 * loop's queue buffers are freed wiped (records hold payloads). */
void osp_ws_loop_queue_release(void (*finish)(osp_ws_server *s));

#endif /* OSP_WS_LOOP_QUEUE_H */
