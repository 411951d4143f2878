/*
 * The TLS handshake threads (docs/WEBSOCKET-RUNTIME.md#tls-handshakes): server-side handshake
 * steps run here, off the I/O loops, in the idle scheduling class (SCHED_IDLE), so a loop never
 * spends a key exchange or a signature (about half a millisecond of CPU each) while an
 * established connection waits for it, and the scheduler runs the loops before any handshake.
 *
 * A loop hands one step of one connection's handshake over as a job: it stops watching the
 * socket first, and touches neither the SSL session nor the socket until the job comes back.
 * A thread of the pool runs the step (SSL_do_handshake: reads the peer's flight, writes ours),
 * then queues the job on its loop's finished list and wakes the loop, which takes the finished
 * jobs at the end of its iteration (osp_ws_tls_pool_take_done) and goes on with the
 * connection. Jobs are served in the order they were submitted. The pool holds nothing of its
 * own per job: the job lives in the connection that submitted it.
 */
#ifndef OSP_WS_TLS_POOL_H
#define OSP_WS_TLS_POOL_H

#include <stdbool.h>

#include <openssl/ssl.h>

struct osp_ws_loop;

typedef enum {
    OSP_WS_TLS_JOB_IDLE,    /* not submitted, or taken back by its loop */
    OSP_WS_TLS_JOB_QUEUED,  /* waiting for a thread (osp_ws_tls_pool_cancel takes it back) */
    OSP_WS_TLS_JOB_RUNNING, /* a thread is stepping the handshake */
    OSP_WS_TLS_JOB_DONE,    /* on its loop's finished list */
} osp_ws_tls_job_state;

typedef struct osp_ws_tls_job {
    /* Set by the loop before it submits the job. */
    SSL *ssl;
    struct osp_ws_loop *loop;
    /* The step's outcome, as osp_ws_tls_accept_step returns it (1 done, 0 call again when the
     * socket is readable or, with want_write, writable; -1 failed, plain_http when the peer
     * spoke plain HTTP); `cancelled` when the pool stopped before the step ran. */
    int rc;
    bool want_write;
    bool plain_http;
    bool cancelled;
    /* The pool's (under its lock). */
    osp_ws_tls_job_state state;
    struct osp_ws_tls_job *prev, *next;
} osp_ws_tls_job;

/* Loop thread: queues one handshake step of job->ssl. The caller no longer touches the SSL
 * session or its socket until the job comes back from osp_ws_tls_pool_take_done. false (not
 * queued) when the pool cannot run it (its threads could not be started, or it was stopped):
 * the caller steps the handshake itself. Starts the threads on first use, one per I/O loop. */
bool osp_ws_tls_pool_submit(osp_ws_tls_job *job);

/* Loop thread: takes a job back that no thread has started (a connection dropped while its
 * step waited). true when taken back (IDLE again: the socket and session are the caller's),
 * false when a thread runs it or has finished it: it comes back through take_done. */
bool osp_ws_tls_pool_cancel(osp_ws_tls_job *job);

/* Loop L's thread (or, after the pool was stopped, the thread releasing L): L's finished jobs,
 * in the order they finished, linked through `next`; each is IDLE again. NULL when none. */
osp_ws_tls_job *osp_ws_tls_pool_take_done(struct osp_ws_loop *L);

/* At shutdown, after the loops have stopped: lets the threads finish the step they are in,
 * joins them, and hands every job not yet started back to its loop's finished list, cancelled.
 * Later submissions are refused. */
void osp_ws_tls_pool_stop(void);

#endif /* OSP_WS_TLS_POOL_H */
