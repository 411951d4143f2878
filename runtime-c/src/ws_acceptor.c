/*
 * A listening socket's acceptor thread (see ws_acceptor.h).
 *
 * Normal priority, not SCHED_IDLE like the TLS handshake threads: on a busy machine an
 * idle-class acceptor would leave the backlog full of replays and legitimate clients to SYN
 * retries. Not registered with the collector (this file does not include gc.h): it touches
 * only its own state, the sockets and what its owner's callback touches, never the collected
 * heap, so a stop of the world has no reason to signal it and wait for its acknowledgement.
 */
#include "ws_acceptor.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Accepts every connection waiting on a's listening socket. The milliseconds to pause
 * accepting for (out of descriptors or memory: a level-triggered socket would otherwise be
 * reported ready at once, forever), or -1. */
static int accept_waiting(osp_ws_acceptor *a) {
    while (!atomic_load_explicit(&a->stop, memory_order_relaxed)) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof peer;
        memset(&peer, 0, sizeof peer);
        int fd = accept4(a->listen_fd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) return 100;
            return -1; /* EAGAIN: nothing more to accept */
        }
        a->take(a->owner, fd, &peer);
    }
    return -1;
}

static void *acceptor_main(void *arg) {
    osp_ws_acceptor *a = arg;
    (void)pthread_setname_np(pthread_self(), "osprey-acceptor");
    int pause_ms = -1;
    while (!atomic_load(&a->stop)) {
        /* While paused, only the wake-up is watched (poll ignores a negative fd). */
        struct pollfd fds[2] = {{pause_ms < 0 ? a->listen_fd : -1, POLLIN, 0}, {a->wake, POLLIN, 0}};
        int ready = poll(fds, 2, pause_ms);
        pause_ms = -1;
        if (ready < 0) {
            if (errno != EINTR) pause_ms = 100; /* ENOMEM: try again shortly */
            continue;
        }
        if (fds[0].revents & (POLLIN | POLLERR)) pause_ms = accept_waiting(a);
    }
    return NULL;
}

void osp_ws_acceptor_init(osp_ws_acceptor *a) {
    memset(a, 0, sizeof *a);
    a->listen_fd = -1;
    a->wake = -1;
}

int osp_ws_acceptor_start(osp_ws_acceptor *a, int listen_fd, osp_ws_acceptor_take_fn take, void *owner) {
    a->listen_fd = listen_fd;
    a->take = take;
    a->owner = owner;
    a->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (a->wake < 0) return errno;
    atomic_store(&a->stop, false);
    int rc = pthread_create(&a->thread, NULL, acceptor_main, a);
    if (rc != 0) {
        close(a->wake);
        a->wake = -1;
        return rc;
    }
    a->started = true;
    return 0;
}

void osp_ws_acceptor_stop(osp_ws_acceptor *a) {
    if (!a->started) return;
    atomic_store(&a->stop, true);
    uint64_t one = 1;
    /* The eventfd's counter cannot overflow from one write; a failure leaves the thread to
     * see the flag at its next wake-up, which the join waits for. */
    if (write(a->wake, &one, sizeof one) != (ssize_t)sizeof one)
        fprintf(stderr, "osprey runtime: cannot wake the WebSocket acceptor: %s\n", strerror(errno));
    int rc = pthread_join(a->thread, NULL);
    if (rc != 0) fprintf(stderr, "osprey runtime: cannot join the WebSocket acceptor: %s\n", strerror(rc));
    close(a->wake);
    a->wake = -1;
    a->started = false;
}
