/*
 * Broadcasts from a handler, with the recipients spread over three I/O loops
 * (OSPREY_IO_THREADS=3): each loop keeps one copy of a broadcast frame in its broadcast log and
 * every recipient sends it from there, or from a copy of what its socket did not take.
 *
 *   - a storm of broadcasts made by one handler call arrives whole and in order at every
 *     recipient, on every loop, including a raw peer with a tiny receive buffer that reads
 *     nothing until the storm is over (its socket takes a part of a frame, the rest is copied
 *     out of the shared log into its own queue);
 *   - the loops send the storm with a few flushes, not one per broadcast: while the handler that
 *     broadcasts is still running, a loop holds the broadcast frames it already has (at most a
 *     couple of milliseconds) so they go out with the ones still coming, one send() per
 *     recipient for the batch;
 *   - that hold is bounded: a handler that broadcasts and then blocks for a long time, with
 *     more of its connection's messages queued behind, does not keep its broadcast from the
 *     other recipients until it returns.
 *
 * Runs under ASan + UBSan and TSan. Every String argument is a String (osp_gc_strdup_c), never a
 * C literal.
 */
#include "ws_internal.h"
#include "check.h"
#include "loopback.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>

#define MSG(r) ((const char *)(intptr_t)(r).value)
#define LOOPS 3
#define CLIENTS 6
#define STORM 16
#define SIZE 3000
/* Between two broadcasts of the storm the handler computes this long (so a loop that flushed
 * each broadcast as it came would flush STORM times). */
#define STORM_GAP_US 100
#define PARK_MS 1500

static int64_t server;
static atomic_int parked_returned;

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* "S:<i>:" then a pattern that depends on i and the offset, SIZE bytes in all. */
static void storm_text(char *text, int i) {
    int h = snprintf(text, SIZE + 1, "S:%d:", i);
    for (int k = h; k < SIZE; k++) text[k] = (char)('a' + (k * 7 + i) % 26);
    text[SIZE] = 0;
}

static bool storm_matches(const char *got, size_t len, int i) {
    static char want[SIZE + 1];
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mu);
    storm_text(want, i);
    bool same = len == SIZE && memcmp(got, want, SIZE) == 0;
    pthread_mutex_unlock(&mu);
    return same;
}

static OspResult handler(void *env, int64_t connection_id, const char *message) {
    (void)env;
    (void)connection_id;
    if (strcmp(message, "storm") == 0) {
        char *text = malloc(SIZE + 1);
        if (text == NULL) return osp_result_errorf("out of memory");
        for (int i = 0; i < STORM; i++) {
            storm_text(text, i);
            OspResult r = osp_ws_server_broadcast(server, osp_gc_strdup_c(text));
            if (r.tag != OSP_RESULT_SUCCESS) {
                free(text);
                return r;
            }
            for (uint64_t until = now_us() + STORM_GAP_US; now_us() < until;) {
            }
        }
        free(text);
    } else if (strcmp(message, "park") == 0) {
        OspResult r = osp_ws_server_broadcast(server, osp_gc_strdup_c("parked"));
        osp_sleep(PARK_MS); /* blocks this handler call; "after" waits behind it */
        atomic_store(&parked_returned, 1);
        return r;
    }
    return osp_result_success(0);
}

/* A runtime client's inbox: storm messages checked in order; "parked" noted with its time. */
typedef struct {
    pthread_mutex_t mu;
    int storm, broken;
    int extra, extra_out_of_order; /* "x<i>": broadcasts while a handler blocks */
    uint64_t parked_at_us;
} inbox;

static inbox boxes[CLIENTS];

static OspResult on_message(void *env, const char *message) {
    inbox *b = env;
    pthread_mutex_lock(&b->mu);
    if (strcmp(message, "parked") == 0) {
        b->parked_at_us = now_us();
    } else if (message[0] == 'x') {
        if (atoi(message + 1) != b->extra) b->extra_out_of_order++;
        b->extra++;
    } else {
        if (!storm_matches(message, strlen(message), b->storm)) b->broken++;
        b->storm++;
    }
    pthread_mutex_unlock(&b->mu);
    return osp_result_success(0);
}

static int extra_count(inbox *b) {
    pthread_mutex_lock(&b->mu);
    int n = b->extra;
    pthread_mutex_unlock(&b->mu);
    return n;
}

static int storm_count(inbox *b) {
    pthread_mutex_lock(&b->mu);
    int n = b->storm;
    pthread_mutex_unlock(&b->mu);
    return n;
}

static uint64_t parked_at(inbox *b) {
    pthread_mutex_lock(&b->mu);
    uint64_t t = b->parked_at_us;
    pthread_mutex_unlock(&b->mu);
    return t;
}

/* ---- a raw peer that reads late through a tiny receive buffer ------------------------------- */

static int raw_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int small = 2048; /* the kernel doubles it; still far below one storm frame */
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = loopback_address(port);
    const char *req = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
        close(fd);
        return -1;
    }
    /* The 101, byte by byte so no frame byte is taken with it. */
    char head[1024];
    size_t n = 0;
    while (n < sizeof head - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) != 1 || read(fd, head + n, 1) != 1) break;
        n++;
        if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0) break;
    }
    head[n] = 0;
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads exactly len bytes (5 s at most between two reads). */
static bool read_exact(int fd, uint8_t *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) != 1) return false;
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0 && !(n < 0 && errno == EINTR)) return false;
        if (n > 0) got += (size_t)n;
    }
    return true;
}

/* The next server frame (unmasked, RFC 6455 §5.1): its opcode and payload (at most cap bytes). */
static bool read_frame(int fd, int *opcode, uint8_t *payload, size_t cap, size_t *len) {
    uint8_t h[8];
    if (!read_exact(fd, h, 2)) return false;
    *opcode = h[0] & 0x0F;
    uint64_t n = h[1] & 0x7F;
    if (n == 126) {
        if (!read_exact(fd, h, 2)) return false;
        n = (uint64_t)h[0] << 8 | h[1];
    } else if (n == 127) {
        if (!read_exact(fd, h, 8)) return false;
        n = 0;
        for (int i = 0; i < 8; i++) n = n << 8 | h[i];
    }
    if (n > cap || (h[1] & 0x80 && n <= 125)) return false;
    *len = (size_t)n;
    return read_exact(fd, payload, *len);
}

/* Broadcast frames flushed by every loop so far (ws_conn.c). */
static size_t flushes(void) { return atomic_load(&osp_ws_test_bcast_flushes); }

int main(void) {
    setenv("OSPREY_IO_THREADS", "3", 1);
    osp_rt_init(OSP_ABI_VERSION);
    int port = free_port();
    OspResult r = osp_ws_create_server(port, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/"));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "create: %s", MSG(r));
    server = r.value;
    CHECK(osp_ws_loop_count() == LOOPS, "%d loops (got %u)", LOOPS, osp_ws_loop_count());
    CHECK(osp_ws_server_on_message(server, handler, NULL).tag == OSP_RESULT_SUCCESS, "handler");
    CHECK(osp_ws_server_listen(server).tag == OSP_RESULT_SUCCESS, "listen");
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);

    int64_t clients[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        pthread_mutex_init(&boxes[i].mu, NULL);
        r = osp_ws_connect(osp_gc_strdup_c(url), on_message, &boxes[i]);
        CHECK(r.tag == OSP_RESULT_SUCCESS, "connect %d: %s", i, MSG(r));
        clients[i] = r.value;
    }
    int slow = raw_connect(port);
    CHECK(slow >= 0, "the slow raw peer is connected");
    /* Connections are spread over the loops round-robin: wait until all are open. */
    for (int waited = 0; osp_ws_server_open_connections(server) < CLIENTS + 1 && waited < 5000; waited += 5)
        osp_sleep(5);
    CHECK(osp_ws_server_open_connections(server) == CLIENTS + 1, "%d connections open", CLIENTS + 1);

    /* The storm: one handler call, STORM broadcasts. */
    size_t before = flushes();
    CHECK(osp_ws_send(clients[0], osp_gc_strdup_c("storm")).tag == OSP_RESULT_SUCCESS, "ask for the storm");
    for (int waited = 0; waited < 10000; waited += 5) {
        int done = 0;
        for (int i = 0; i < CLIENTS; i++) done += storm_count(&boxes[i]) == STORM;
        if (done == CLIENTS) break;
        osp_sleep(5);
    }
    size_t storm_flushes = flushes() - before;
    printf("storm: %d broadcasts of %d B to %d recipients on %d loops: %zu flushes\n", STORM, SIZE, CLIENTS + 1, LOOPS,
           storm_flushes);
    for (int i = 0; i < CLIENTS; i++) {
        CHECK(storm_count(&boxes[i]) == STORM && boxes[i].broken == 0,
              "client %d: %d of %d storm messages, %d not intact or out of order", i, storm_count(&boxes[i]), STORM,
              boxes[i].broken);
    }
    /* One flush per broadcast per loop would be STORM * LOOPS = 48; holding makes it about one
     * per loop (more when a busy machine stalls the handler past the hold's deadline). */
    CHECK(storm_flushes <= STORM, "the loops sent %d broadcasts with %zu flushes (at most %d)", STORM, storm_flushes,
          STORM);

    /* The slow peer reads only now; its frames came partly from the shared log, partly from
     * the copies made when its socket was full. */
    static uint8_t payload[SIZE + 1];
    int intact = 0;
    for (int i = 0; i < STORM; i++) {
        int op = 0;
        size_t len = 0;
        if (!read_frame(slow, &op, payload, SIZE, &len)) break;
        if (op == 1 && storm_matches((const char *)payload, len, i)) intact++;
    }
    CHECK(intact == STORM, "the slow peer got %d of %d storm messages intact and in order", intact, STORM);

    /* A handler that broadcasts and then blocks, with another message of its connection queued
     * behind it: the other recipients still get the broadcast at once. */
    uint64_t asked = now_us();
    CHECK(osp_ws_send(clients[0], osp_gc_strdup_c("park")).tag == OSP_RESULT_SUCCESS, "park");
    CHECK(osp_ws_send(clients[0], osp_gc_strdup_c("after")).tag == OSP_RESULT_SUCCESS, "after");
    for (int waited = 0; waited < 5000; waited += 2) {
        int got = 0;
        for (int i = 1; i < CLIENTS; i++) got += parked_at(&boxes[i]) != 0;
        if (got == CLIENTS - 1) break;
        osp_sleep(2);
    }
    uint64_t latest = 0;
    for (int i = 1; i < CLIENTS; i++) {
        uint64_t t = parked_at(&boxes[i]);
        CHECK(t != 0, "client %d got the broadcast made before the handler blocked", i);
        if (t > latest) latest = t;
    }
    printf("a blocked handler's broadcast: at every recipient %.1f ms after it was asked for\n",
           latest ? (double)(latest - asked) / 1000.0 : -1.0);
    CHECK(latest != 0 && !atomic_load(&parked_returned) && latest - asked < (uint64_t)PARK_MS * 1000 / 2,
          "it arrived %.1f ms after it was asked for, while the handler still blocked (%d ms)",
          latest ? (double)(latest - asked) / 1000.0 : -1.0, PARK_MS);

    /* While that handler still blocks (every loop with broadcast frames holds them up to its
     * deadline), recipients that vanish with a reset while frames are held for them: the
     * others get every broadcast, in order (ASan: a connection destroyed while it waited on a
     * held flush is freed only once that flush is done with it). */
    enum { VANISHING = 4, EXTRA = 20 };
    int vanishing[VANISHING];
    for (int i = 0; i < VANISHING; i++) vanishing[i] = raw_connect(port);
    for (int waited = 0; osp_ws_server_open_connections(server) < CLIENTS + 1 + VANISHING && waited < 1000; waited += 2)
        osp_sleep(2);
    for (int i = 0; i < EXTRA; i++) {
        char text[16];
        snprintf(text, sizeof text, "x%d", i);
        CHECK(osp_ws_server_broadcast(server, osp_gc_strdup_c(text)).tag == OSP_RESULT_SUCCESS, "broadcast %s", text);
        if (i == EXTRA / 4) {
            for (int k = 0; k < VANISHING; k++) {
                if (vanishing[k] < 0) continue;
                struct linger lg = {1, 0};
                (void)setsockopt(vanishing[k], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                close(vanishing[k]);
            }
        }
        osp_sleep(1);
    }
    for (int waited = 0; waited < 5000; waited += 5) {
        int done = 0;
        for (int i = 1; i < CLIENTS; i++) done += extra_count(&boxes[i]) == EXTRA;
        if (done == CLIENTS - 1) break;
        osp_sleep(5);
    }
    for (int i = 1; i < CLIENTS; i++)
        CHECK(extra_count(&boxes[i]) == EXTRA && boxes[i].extra_out_of_order == 0,
              "client %d: %d of %d broadcasts made while recipients vanished (%d out of order)", i,
              extra_count(&boxes[i]), EXTRA, boxes[i].extra_out_of_order);

    close(slow);
    r = osp_ws_stop_server(server);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "stop: %s", MSG(r));
    return osp_rt_shutdown(check_summary("test_ws_bcast_shared"));
}
