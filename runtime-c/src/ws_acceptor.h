/*
 * A listening socket's acceptor thread ("osprey-acceptor" in ps -L): it accepts every
 * connection as it arrives and hands each socket, with its peer's address, to its owner's
 * callback, which decides what becomes of it (a WebSocket server applies its admission limits
 * and places the socket on an I/O loop: ws_server.c). The thread exists so that no I/O loop
 * accepts: a replay flood brings thousands of connections a second to accept and reset, and
 * an established connection whose loop ran them would wait behind each run
 * (docs/WEBSOCKET-RUNTIME.md#tls-handshakes).
 *
 * The thread is not registered with the garbage collector (ws_acceptor.c does not include
 * gc.h, so its pthread_create is the C library's): a stop of the world neither signals nor
 * waits for it. The callback runs on it, so it must never allocate from or keep a pointer
 * into the collected heap; its owner, the sockets and whatever it posts are malloc'd.
 */
#ifndef OSP_WS_ACCEPTOR_H
#define OSP_WS_ACCEPTOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

/* On the acceptor thread, for each accepted socket (non-blocking, close-on-exec): the callback
 * owns `fd` from then on (closes it, or passes it on). */
typedef void (*osp_ws_acceptor_take_fn)(void *owner, int fd, const struct sockaddr_storage *peer);

/* Embedded in its owner; the owner's thread starts and stops it (the same thread). */
typedef struct osp_ws_acceptor {
    pthread_t thread;
    bool started;
    int listen_fd;        /* the owner's; never closed here */
    int wake;             /* an eventfd that ends the thread's poll; -1 when not started */
    _Atomic bool stop;
    osp_ws_acceptor_take_fn take;
    void *owner;
} osp_ws_acceptor;

/* A stopped acceptor (osp_ws_acceptor_stop does nothing to it). */
void osp_ws_acceptor_init(osp_ws_acceptor *a);

/* Starts accepting on `listen_fd` (a listening, non-blocking socket), calling take(owner, …)
 * for each connection. 0, or an errno (no eventfd, no thread). */
int osp_ws_acceptor_start(osp_ws_acceptor *a, int listen_fd, osp_ws_acceptor_take_fn take, void *owner);

/* Stops the thread and waits for it, so the listening socket can be closed afterwards (its
 * descriptor never reused under a thread still accepting on it) and no callback runs once
 * this returns. Does nothing to an acceptor that is not started. */
void osp_ws_acceptor_stop(osp_ws_acceptor *a);

#endif
