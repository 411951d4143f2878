/*
 * The acceptor thread (ws_acceptor.h) on a loopback listening socket: every connection reaches
 * the owner's callback with a non-blocking, close-on-exec socket and the peer's address; the
 * callback runs on a thread named osprey-acceptor that is not registered with the garbage
 * collector (a stop of the world must not signal or wait for it) while a collection runs;
 * out of descriptors, the acceptor pauses instead of spinning on the ready socket and takes the
 * waiting connection once descriptors are free again; stopping joins the thread, after which
 * no callback runs, and stopping an acceptor that never started does nothing. Runs under ASan +
 * UBSan and under ThreadSanitizer.
 */
#include "runtime.h"
#include "ws_acceptor.h"
#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

enum { CLIENTS = 8 };

typedef struct {
    pthread_mutex_t mu;
    int taken;
    int nonblocking_cloexec; /* sockets that had both flags */
    int loopback_peers;      /* peers that were 127.0.0.1 */
    int unregistered_calls;  /* callbacks on a thread the collector does not know */
    int named_calls;         /* callbacks on a thread named osprey-acceptor */
} taken_log;

static void take(void *owner, int fd, const struct sockaddr_storage *peer) {
    taken_log *log = owner;
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    const struct sockaddr_in *in = (const struct sockaddr_in *)peer;
    char name[32] = "";
    (void)pthread_getname_np(pthread_self(), name, sizeof name);
    int registered = GC_thread_is_registered();
    pthread_mutex_lock(&log->mu);
    log->taken++;
    if (fl >= 0 && (fl & O_NONBLOCK) && fdfl >= 0 && (fdfl & FD_CLOEXEC)) log->nonblocking_cloexec++;
    if (peer->ss_family == AF_INET && in->sin_addr.s_addr == htonl(INADDR_LOOPBACK)) log->loopback_peers++;
    if (!registered) log->unregistered_calls++;
    if (strcmp(name, "osprey-acceptor") == 0) log->named_calls++;
    pthread_mutex_unlock(&log->mu);
    close(fd);
}

static int taken_count(taken_log *log) {
    pthread_mutex_lock(&log->mu);
    int n = log->taken;
    pthread_mutex_unlock(&log->mu);
    return n;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits up to 5 s for the callback to have run `n` times. */
static bool wait_taken(taken_log *log, int n) {
    int64_t until = now_ms() + 5000;
    while (taken_count(log) < n && now_ms() < until) usleep(2000);
    return taken_count(log) >= n;
}

/* A listening loopback socket on an ephemeral port (non-blocking, as the servers' are). */
static int listen_loopback(struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof *addr;
    if (bind(fd, (struct sockaddr *)addr, sizeof *addr) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)addr, &len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A client socket, connected (the handshake completes in the kernel's backlog). */
static int connect_loopback(const struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static double process_cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* An acceptor started on a new loopback listening socket, its callback `take` logging into
 * `log`. The listening socket, or -1 (reported). */
static int start_on_loopback(osp_ws_acceptor *a, taken_log *log, struct sockaddr_in *addr) {
    int lfd = listen_loopback(addr);
    CHECK(lfd >= 0, "listen: %s", strerror(errno));
    if (lfd < 0) return -1;
    osp_ws_acceptor_init(a);
    int rc = osp_ws_acceptor_start(a, lfd, take, log);
    CHECK(rc == 0, "start: %s", strerror(rc));
    if (rc != 0) {
        close(lfd);
        return -1;
    }
    return lfd;
}

static void test_accepts_unregistered(void) {
    taken_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct sockaddr_in addr;
    osp_ws_acceptor a;
    int lfd = start_on_loopback(&a, &log, &addr);
    if (lfd < 0) return;
    int clients[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        clients[i] = connect_loopback(&addr);
        CHECK(clients[i] >= 0, "connect %d: %s", i, strerror(errno));
        /* A collection while the acceptor runs: it neither waits for nor stops that thread. */
        if (i == CLIENTS / 2) GC_gcollect();
    }
    CHECK(wait_taken(&log, CLIENTS), "took %d of %d connections", taken_count(&log), CLIENTS);
    osp_ws_acceptor_stop(&a);
    CHECK(!a.started && a.wake == -1, "stopped: started %d, wake %d", a.started, a.wake);
    CHECK(log.nonblocking_cloexec == CLIENTS, "%d of %d sockets non-blocking and close-on-exec",
          log.nonblocking_cloexec, CLIENTS);
    CHECK(log.loopback_peers == CLIENTS, "%d of %d peers were 127.0.0.1", log.loopback_peers, CLIENTS);
    CHECK(log.named_calls == CLIENTS, "%d of %d callbacks on osprey-acceptor", log.named_calls, CLIENTS);
    CHECK(log.unregistered_calls == CLIENTS,
          "%d of %d callbacks on a thread unknown to the collector (the acceptor must not be registered)",
          log.unregistered_calls, CLIENTS);

    /* Stopped: a new connection waits in the backlog, no callback runs. */
    int late = connect_loopback(&addr);
    CHECK(late >= 0, "connect after stop: %s", strerror(errno));
    usleep(100 * 1000);
    CHECK(taken_count(&log) == CLIENTS, "a callback ran after stop (%d)", taken_count(&log));
    if (late >= 0) close(late);
    for (int i = 0; i < CLIENTS; i++)
        if (clients[i] >= 0) close(clients[i]);
    close(lfd);
}

/* Out of descriptors (EMFILE) the socket stays readable: the acceptor pauses 100 ms at a time
 * instead of spinning on it, and takes the connection once a descriptor is free. */
static void test_pauses_out_of_descriptors(void) {
    taken_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct sockaddr_in addr;
    osp_ws_acceptor a;
    int lfd = start_on_loopback(&a, &log, &addr);
    if (lfd < 0) return;
    int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(client >= 0, "socket: %s", strerror(errno));
    struct rlimit old;
    CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0, "getrlimit: %s", strerror(errno));
    /* Every descriptor below a lowered limit taken, so accept4 fails with EMFILE. */
    struct rlimit low = old;
    low.rlim_cur = 256;
    enum { MAX_FILLERS = 256 };
    int fillers[MAX_FILLERS], nfill = 0;
    bool lowered = client >= 0 && old.rlim_cur >= low.rlim_cur && setrlimit(RLIMIT_NOFILE, &low) == 0;
    CHECK(lowered, "setrlimit: %s", strerror(errno));
    if (lowered) {
        for (;;) {
            int fd = dup(client);
            if (fd < 0) break;
            if (nfill == MAX_FILLERS) {
                close(fd);
                break;
            }
            fillers[nfill++] = fd;
        }
        int dup_errno = errno;
        CHECK(dup_errno == EMFILE, "filling the table stopped with %s", strerror(dup_errno));
        CHECK(connect(client, (const struct sockaddr *)&addr, sizeof addr) == 0, "connect: %s", strerror(errno));
        double cpu0 = process_cpu_ms();
        usleep(500 * 1000);
        double cpu = process_cpu_ms() - cpu0;
        CHECK(taken_count(&log) == 0, "a connection was taken without a descriptor for it");
        /* Spinning on the ready socket would take most of a core (at least a share of it on a
         * loaded machine); pausing costs five failed accepts. */
        CHECK(cpu < 40.0, "%.1f ms of CPU in 500 ms out of descriptors: the acceptor spins", cpu);
        for (int i = 0; i < nfill; i++) close(fillers[i]);
        CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0, "restoring the limit: %s", strerror(errno));
        CHECK(wait_taken(&log, 1), "the waiting connection was not taken once descriptors were free");
    }
    osp_ws_acceptor_stop(&a);
    if (client >= 0) close(client);
    close(lfd);
}

static void test_stop_unstarted(void) {
    osp_ws_acceptor a;
    osp_ws_acceptor_init(&a);
    osp_ws_acceptor_stop(&a); /* nothing to join, nothing to close */
    CHECK(!a.started && a.wake == -1 && a.listen_fd == -1, "an unstarted acceptor changed on stop");
}

int main(void) {
    GC_INIT();
    test_accepts_unregistered();
    test_pauses_out_of_descriptors();
    test_stop_unstarted();
    return check_summary("test_ws_acceptor");
}
