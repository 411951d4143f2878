/*
 * Graceful termination. A program that serves WebSockets is usually stopped with SIGTERM (a
 * service manager) or SIGINT (Ctrl-C). With the default disposition the kernel would kill the
 * process at once and every peer would see the TCP connection vanish (1006). Instead, once the
 * WebSocket runtime starts, a handler for SIGTERM and SIGINT writes the signal number into a pipe
 * read by one small watcher thread; it runs the normal shutdown (servers' connections closed with
 * 1001 "going away", clients' with 1000, each bounded by the close timeout — RFC 6455
 * §7.1.1/§7.4.1), flushes standard output and exits with status 128 + the signal number, as a
 * shell reports a signalled process. A handler (rather than blocking the signals and sigwait)
 * works whichever thread the kernel picks: the fiber scheduler's workers and helper threads exist
 * before the WebSocket runtime starts and do not share a signal mask set later.
 *
 * A signal whose disposition is not the default (the program or an embedding host installed its
 * own handler, or it was ignored when the process started), or that the starting thread already
 * blocks (the program takes it synchronously itself), is left alone.
 */
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int signal_pipe[2] = {-1, -1};

/* Async-signal-safe: one write. A full pipe (a second signal while shutting down) drops it. */
static void on_graceful_signal(int signo) {
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    ssize_t n = write(signal_pipe[1], &b, 1);
    (void)n;
    errno = saved;
}

static void *graceful_signal_watcher(void *arg) {
    (void)arg;
    unsigned char signo = 0;
    for (;;) {
        ssize_t n = read(signal_pipe[0], &signo, 1);
        if (n == 1) break;
        if (n < 0 && errno == EINTR) continue;
        osp_output_lock();
        fprintf(stderr, "osprey runtime: waiting for termination signals failed: %s\n", n < 0 ? strerror(errno) : "end of pipe");
        osp_output_unlock();
        return NULL;
    }
    (void)osp_rt_shutdown(128 + signo);
    _exit(128 + signo);
}

/* Once, from the thread that starts the WebSocket runtime. */
void osp_rt_install_graceful_signals(void) {
    static const int wanted[] = {SIGTERM, SIGINT};
    sigset_t blocked;
    if (pthread_sigmask(SIG_BLOCK, NULL, &blocked) != 0) return;
    int take[2] = {0, 0};
    int count = 0;
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        struct sigaction current;
        if (sigaction(wanted[i], NULL, &current) != 0) continue;
        if (current.sa_handler != SIG_DFL) continue; /* someone else owns it (or SIG_IGN) */
        /* Already blocked: the program takes it itself (sigwait, signalfd). */
        if (sigismember(&blocked, wanted[i]) == 1) continue;
        take[i] = 1;
        count++;
    }
    if (count == 0) return;
    if (pipe2(signal_pipe, O_CLOEXEC) != 0) {
        osp_output_lock();
        fprintf(stderr, "osprey runtime: cannot create the termination signal pipe: %s\n", strerror(errno));
        osp_output_unlock();
        return;
    }
    pthread_t watcher;
    int rc = pthread_create(&watcher, NULL, graceful_signal_watcher, NULL);
    if (rc != 0) {
        osp_output_lock();
        fprintf(stderr, "osprey runtime: cannot start the signal watcher thread: %s\n", strerror(rc));
        osp_output_unlock();
        return;
    }
    rc = pthread_detach(watcher);
    if (rc != 0) {
        osp_output_lock();
        fprintf(stderr, "osprey runtime: cannot detach the signal watcher thread: %s\n", strerror(rc));
        osp_output_unlock();
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_graceful_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        if (take[i] && sigaction(wanted[i], &sa, NULL) != 0) {
            osp_output_lock();
            fprintf(stderr, "osprey runtime: cannot handle signal %d: %s\n", wanted[i], strerror(errno));
            osp_output_unlock();
        }
    }
}
