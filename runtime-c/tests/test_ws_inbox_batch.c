/*
 * Message handlers fed in batches: the I/O loop starts the handler fibers of all the connections
 * whose messages one of its iterations read together, at the iteration's end (ws_inbox.c). With
 * one I/O loop and one scheduler worker (the strictest case), checked here over raw loopback
 * sockets whose frames are written in one burst, so that they arrive in the same iteration:
 *
 * - order: each connection's messages reach its handler in the order they were sent, one at a
 *   time, every one of them;
 * - a handler that parks (sleeps) in the middle of a batch does not hold up the other
 *   connections' messages of that batch: they are handled while it is parked;
 * - fairness: a connection whose inbox stays full (a slow handler under a burst) does not keep
 *   another connection's message waiting until its whole burst is handled.
 *
 * Runs under ASan + UBSan and ThreadSanitizer. Every String argument is a String
 * (osp_gc_strdup_c: length-prefixed), never a C literal.
 */
#include "ws_internal.h"
#include "check.h"
#include "loopback.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <time.h>

#define MSG(r) ((const char *)(intptr_t)(r).value)
#define CLIENTS 6
#define PER_CLIENT 40
#define FLOOD 1500

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a raw client: handshake, then masked text frames written in one burst ----------------- */

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int raw_connect(int port) {
    int fd = loopback_connect(port);
    if (fd < 0) return -1;
    static const char req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    char resp[1024];
    size_t got = 0;
    if (write_all(fd, (const uint8_t *)req, sizeof req - 1) != 0) goto fail;
    /* The 101 response, up to its blank line (the server sends nothing after it unasked). */
    while (got < sizeof resp - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) != 1) goto fail;
        ssize_t r = read(fd, resp + got, sizeof resp - 1 - got);
        if (r <= 0) goto fail;
        got += (size_t)r;
        resp[got] = '\0';
        if (strstr(resp, "\r\n\r\n")) break;
    }
    if (strncmp(resp, "HTTP/1.1 101", 12) != 0) goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

/* Appends one masked text frame (payload < 126 bytes) to buf at *at (RFC 6455 §5.2, §5.3). */
static void put_frame(uint8_t *buf, size_t *at, const char *text) {
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t n = strlen(text);
    buf[(*at)++] = 0x81;
    buf[(*at)++] = (uint8_t)(0x80 | n);
    memcpy(buf + *at, mask, 4);
    *at += 4;
    for (size_t i = 0; i < n; i++) buf[(*at)++] = (uint8_t)text[i] ^ mask[i % 4];
}

/* ---- the handler --------------------------------------------------------------------------- */

/* Per client index (the messages are "c<index>:<seq>" or "park"/"flood"/"late"). */
static atomic_int handled[CLIENTS];
static atomic_int out_of_order;
static atomic_int running[CLIENTS]; /* handler calls in progress per client: never above 1 */
static atomic_int overlapped;
static atomic_int others_done_while_parked = -1;
static atomic_int flood_handled;
static atomic_int flood_count_when_late_handled = -1;
static atomic_int parked_done;

/* Busy for about `us` microseconds without parking (a computing handler). */
static void compute(int us) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000000 + (t.tv_nsec - t0.tv_nsec) / 1000 < us);
}

static OspResult handler(void *env, int64_t connection_id, const char *message) {
    (void)env;
    (void)connection_id;
    if (strcmp(message, "park") == 0) {
        /* Parks (osp_sleep from a fiber gives its worker back) until the other clients' messages
         * of the batch are handled, or 3 s. With one worker they can only be handled meanwhile
         * if they run in fibers of their own. */
        int64_t until = now_ms() + 3000;
        int done = 0;
        while (now_ms() < until) {
            done = 0;
            for (int i = 1; i < CLIENTS; i++) done += atomic_load(&handled[i]);
            if (done == (CLIENTS - 1) * PER_CLIENT) break;
            osp_sleep(5);
        }
        atomic_store(&others_done_while_parked, done);
        atomic_store(&parked_done, 1);
        return osp_result_success(0);
    }
    if (strcmp(message, "flood") == 0) {
        compute(50); /* keeps the flooding connection's inbox from running empty */
        atomic_fetch_add(&flood_handled, 1);
        return osp_result_success(0);
    }
    if (strcmp(message, "late") == 0) {
        atomic_store(&flood_count_when_late_handled, atomic_load(&flood_handled));
        return osp_result_success(0);
    }
    int client = -1, seq = -1;
    if (sscanf(message, "c%d:%d", &client, &seq) != 2 || client < 0 || client >= CLIENTS) {
        atomic_fetch_add(&out_of_order, 1);
        return osp_result_success(0);
    }
    if (atomic_fetch_add(&running[client], 1) != 0) atomic_fetch_add(&overlapped, 1);
    if (seq != atomic_load(&handled[client])) atomic_fetch_add(&out_of_order, 1);
    atomic_fetch_add(&handled[client], 1);
    atomic_fetch_sub(&running[client], 1);
    return osp_result_success(0);
}

static int wait_for(atomic_int *v, int at_least, int ms) {
    for (int64_t until = now_ms() + ms; now_ms() < until;) {
        if (atomic_load(v) >= at_least) return 1;
        osp_sleep(5);
    }
    return atomic_load(v) >= at_least;
}

static void test_batches(void) {
    int port = free_port();
    OspResult r = osp_ws_create_server(port, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/"));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "create: %s", MSG(r));
    int64_t server = r.value;
    CHECK(osp_ws_server_on_message(server, handler, NULL).tag == OSP_RESULT_SUCCESS, "handler");
    CHECK(osp_ws_server_listen(server).tag == OSP_RESULT_SUCCESS, "listen");
    CHECK(osp_ws_loop_count() == 1, "one I/O loop (got %u)", osp_ws_loop_count());

    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = raw_connect(port);
        CHECK(fds[i] >= 0, "client %d connects", i);
    }

    /* Client 0 parks in its handler; clients 1… send PER_CLIENT messages each, every client's
     * frames in one write, all written back to back: one batch, or a few. */
    static uint8_t bursts[CLIENTS][PER_CLIENT * 16];
    size_t lens[CLIENTS] = {0};
    put_frame(bursts[0], &lens[0], "park");
    for (int i = 1; i < CLIENTS; i++) {
        for (int k = 0; k < PER_CLIENT; k++) {
            char text[32];
            snprintf(text, sizeof text, "c%d:%d", i, k);
            put_frame(bursts[i], &lens[i], text);
        }
    }
    for (int i = 0; i < CLIENTS; i++)
        if (fds[i] >= 0) CHECK(write_all(fds[i], bursts[i], lens[i]) == 0, "client %d writes its burst", i);
    CHECK(wait_for(&parked_done, 1, 5000), "the parked handler returns");
    CHECK(atomic_load(&others_done_while_parked) == (CLIENTS - 1) * PER_CLIENT,
          "the other connections' messages are handled while one handler is parked (%d of %d)",
          atomic_load(&others_done_while_parked), (CLIENTS - 1) * PER_CLIENT);
    for (int i = 1; i < CLIENTS; i++)
        CHECK(wait_for(&handled[i], PER_CLIENT, 3000), "client %d: all %d messages handled (%d)", i, PER_CLIENT,
              atomic_load(&handled[i]));
    CHECK(atomic_load(&out_of_order) == 0, "every connection's messages in order (%d out of order)",
          atomic_load(&out_of_order));
    CHECK(atomic_load(&overlapped) == 0, "one handler call at a time per connection");

    /* Fairness: client 1 floods with a handler that computes ~50 us per message (its inbox stays
     * full), then client 2's one message is handled long before the flood is. */
    if (fds[1] >= 0 && fds[2] >= 0) {
        size_t cap = FLOOD * 12, at = 0;
        uint8_t *flood = malloc(cap);
        CHECK(flood != NULL, "flood buffer");
        if (flood) {
            for (int k = 0; k < FLOOD; k++) put_frame(flood, &at, "flood");
            CHECK(write_all(fds[1], flood, at) == 0, "the flood is written");
            free(flood);
        }
        CHECK(wait_for(&flood_handled, 100, 3000), "the flood is being handled");
        uint8_t late[16];
        size_t late_len = 0;
        put_frame(late, &late_len, "late");
        CHECK(write_all(fds[2], late, late_len) == 0, "the late message is written");
        CHECK(wait_for(&flood_count_when_late_handled, 0, 5000), "the late message is handled");
        int when = atomic_load(&flood_count_when_late_handled);
        CHECK(when >= 0 && when < FLOOD / 2,
              "another connection's message waits for at most a slice of a flooding connection's burst "
              "(handled after %d of %d)", when, FLOOD);
        CHECK(wait_for(&flood_handled, FLOOD, 10000), "the whole flood is handled (%d)", atomic_load(&flood_handled));
    }

    for (int i = 0; i < CLIENTS; i++)
        if (fds[i] >= 0) close(fds[i]);
    r = osp_ws_stop_server(server);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "stop: %s", MSG(r));
}

int main(void) {
    setenv("OSPREY_IO_THREADS", "1", 1);
    setenv("OSPREY_THREADS", "1", 1);
    osp_rt_init(OSP_ABI_VERSION);
    test_batches();
    int status = check_summary("test_ws_inbox_batch");
    return osp_rt_shutdown(status);
}
