/*
 * Graceful termination. A program that serves WebSockets is usually stopped with SIGTERM (a
 * service manager) or SIGINT (Ctrl-C). With the default disposition the kernel would kill the
 * process at once and every peer would see the TCP connection vanish (1006). Instead, once the
 * WebSocket runtime starts, SIGTERM and SIGINT get a real handler that writes the signal number
 * into a self-pipe, and one small watcher thread reading that pipe runs the normal shutdown
 * (servers' connections closed with 1001 "going away", clients' with 1000, each bounded by the
 * close timeout — RFC 6455 §7.1.1/§7.4.1, and every message websocketSend accepted is sent
 * before the Close), flushes standard output and exits with status 128 + the signal number, as
 * a shell reports a signalled process.
 *
 * Why a handler and not only a blocked mask and sigwait: Boehm GC stops the world by signalling
 * every thread and parking it in sigsuspend with a mask that *unblocks* SIGTERM and SIGINT. A
 * termination signal with the default disposition arriving then kills the process outright. A
 * handler makes the disposition safe in any thread and any mask. The fiber scheduler's worker
 * and helper threads exist before the WebSocket runtime starts and keep their own masks, so the
 * handler may run on any of them; it only writes to the pipe, and the watcher (where the signals
 * are unblocked) does the rest.
 *
 * A signal whose disposition is not the default (the program or an embedding host installed its
 * own handler, or it was ignored when the process started), or that the starting thread already
 * blocks (the program takes it synchronously itself), is left alone.
 */
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static sigset_t graceful_signals;
static int signal_pipe[2] = {-1, -1};

/* Async-signal-safe: one write to a non-blocking pipe; errno is preserved for the interrupted
 * code. A full pipe means a signal is already waiting to be handled. */
static void on_termination_signal(int signo) {
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    ssize_t n = write(signal_pipe[1], &b, 1);
    (void)n;
    errno = saved;
}

static void *graceful_signal_watcher(void *arg) {
    (void)arg;
    /* This thread takes the signals: unblocked here only. */
    (void)pthread_sigmask(SIG_UNBLOCK, &graceful_signals, NULL);
    unsigned char signo = 0;
    for (;;) {
#if defined(__SANITIZE_THREAD__)
        /* ThreadSanitizer delivers an asynchronous signal (the collector's stop-the-world one)
         * only in a call it knows blocks, and read is not one: a watcher asleep in read would
         * never be stopped and every collection would wait for it. poll is one. */
        struct pollfd pfd = {.fd = signal_pipe[0], .events = POLLIN};
        if (poll(&pfd, 1, -1) < 0 && errno == EINTR) continue;
#endif
        ssize_t n = read(signal_pipe[0], &signo, 1);
        if (n == 1) break;
        if (n < 0 && errno == EINTR) continue;
        osp_output_lock();
        fprintf(stderr, "osprey runtime: waiting for termination signals failed: %s\n",
                n < 0 ? strerror(errno) : "the pipe was closed");
        osp_output_unlock();
        return NULL;
    }
    (void)osp_rt_shutdown_for_signal(signo);
    _exit(128 + signo);
}

/* Call from the thread that is about to start the runtime thread, before starting it: threads
 * created afterwards inherit the blocked mask, so the watcher is where the signals land.
 * Runs once per process (osp_rt_init calls it for every program; the WebSocket runtime again):
 * a second run must not clear `graceful_signals`, which the new watcher may not have read yet. */
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
    if (pipe2(signal_pipe, O_CLOEXEC) != 0) {
        osp_output_lock();
        fprintf(stderr, "osprey runtime: cannot create the signal pipe: %s\n", strerror(errno));
        osp_output_unlock();
        return;
    }
    /* The handler's end never blocks; the watcher's end does. */
    int flags = fcntl(signal_pipe[1], F_GETFL);
    if (flags < 0 || fcntl(signal_pipe[1], F_SETFL, flags | O_NONBLOCK) != 0) {
        osp_output_lock();
        fprintf(stderr, "osprey runtime: cannot configure the signal pipe: %s\n", strerror(errno));
        osp_output_unlock();
        close(signal_pipe[0]);
        close(signal_pipe[1]);
        signal_pipe[0] = signal_pipe[1] = -1;
        return;
    }
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
        /* Without a watcher nobody would act on the signals: keep the default disposition. */
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
    /* Installed last, once the watcher exists to act on what the handler writes. SA_RESTART:
     * a thread that takes the signal (one parked by the collector, say) resumes its system
     * call. Every signal is blocked while the handler runs. */
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = on_termination_signal;
    act.sa_flags = SA_RESTART;
    (void)sigfillset(&act.sa_mask);
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        if (sigismember(&graceful_signals, wanted[i]) != 1) continue;
        if (sigaction(wanted[i], &act, NULL) != 0) {
            osp_output_lock();
            fprintf(stderr, "osprey runtime: cannot install the handler for signal %d: %s\n", wanted[i],
                    strerror(errno));
            osp_output_unlock();
        }
    }
}
