/*
 * Graceful termination. A program that serves WebSockets is usually stopped with SIGTERM (a
 * service manager) or SIGINT (Ctrl-C). With the default disposition the kernel would kill the
 * process at once and every peer would see the TCP connection vanish (1006). Instead, once the
 * WebSocket runtime starts, SIGTERM and SIGINT are blocked in the program's threads and taken by
 * one small watcher thread with sigwait(); it runs the normal shutdown (servers' connections
 * closed with 1001 "going away", clients' with 1000, each bounded by the close timeout — RFC 6455
 * §7.1.1/§7.4.1), flushes standard output and exits with status 128 + the signal number, as a
 * shell reports a signalled process.
 *
 * A signal whose disposition is not the default (the program or an embedding host installed its
 * own handler, or it was ignored when the process started), or that the starting thread already
 * blocks (the program takes it synchronously itself), is left alone.
 */
#include "runtime.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static sigset_t graceful_signals;

static void *graceful_signal_watcher(void *arg) {
    (void)arg;
    int signo = 0;
    for (;;) {
        int rc = sigwait(&graceful_signals, &signo);
        if (rc == 0) break;
        if (rc != EINTR) {
            osp_output_lock();
            fprintf(stderr, "osprey runtime: waiting for termination signals failed: %s\n", strerror(rc));
            osp_output_unlock();
            return NULL;
        }
    }
    osp_rt_exit_on_signal(signo);
}

/* Call from the thread that is about to start the runtime thread, before starting it: threads
 * created afterwards inherit the blocked mask, so only the watcher ever receives these signals.
 * Runs once per process: a second call must not touch `graceful_signals`, which the watcher may
 * not have passed to sigwait yet. */
static void install_once(void);

void osp_rt_install_graceful_signals(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    int rc = pthread_once(&once, install_once);
    if (rc != 0) {
        osp_output_lock();
        fprintf(stderr, "osprey runtime: cannot install the termination signal handling: %s\n", strerror(rc));
        osp_output_unlock();
    }
}

static void install_once(void) {
    static const int wanted[] = {SIGTERM, SIGINT, SIGHUP};
    if (sigemptyset(&graceful_signals) != 0) return;
    sigset_t blocked;
    if (pthread_sigmask(SIG_BLOCK, NULL, &blocked) != 0) return;
    int count = 0;
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        struct sigaction current;
        if (sigaction(wanted[i], NULL, &current) != 0) continue;
        if (current.sa_handler != SIG_DFL) continue; /* someone else owns it (or SIG_IGN) */
        /* Already blocked: the program takes it itself (sigwait, signalfd). */
        if (sigismember(&blocked, wanted[i]) == 1) continue;
        if (sigaddset(&graceful_signals, wanted[i]) == 0) count++;
    }
    if (count == 0) return;
    int rc = pthread_sigmask(SIG_BLOCK, &graceful_signals, NULL);
    if (rc != 0) {
        osp_output_lock();
        fprintf(stderr, "osprey runtime: cannot block termination signals: %s\n", strerror(rc));
        osp_output_unlock();
        return;
    }
    pthread_t watcher;
    rc = pthread_create(&watcher, NULL, graceful_signal_watcher, NULL);
    if (rc != 0) {
        /* Without a watcher the signals would stay pending forever: restore the default. */
        (void)pthread_sigmask(SIG_UNBLOCK, &graceful_signals, NULL);
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
}
