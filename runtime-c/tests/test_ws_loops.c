/*
 * Several I/O loops (OSPREY_IO_THREADS=3) in one process: accepted connections are spread over
 * the loops, ids stay unique, a handler's websocketServerSend reaches a connection on any loop,
 * broadcasts posted from two threads at once arrive at every recipient in one and the same
 * order, the open-connection count adds up every loop, and stopping the server closes the
 * connections of every loop (1001) and frees the port. Runs under ASan + UBSan. Every String
 * argument is a String (osp_gc_strdup_c: length-prefixed), never a C literal.
 */
#include "ws_internal.h"
#include "check.h"
#include "loopback.h"

#include <inttypes.h>
#include <stdlib.h>

#define MSG(r) ((const char *)(intptr_t)(r).value)
#define LOOPS 3
#define CLIENTS 9
#define PER_THREAD 100

typedef struct {
    pthread_mutex_t mu;
    int count;
    char *messages[2 * PER_THREAD + 8];
} inbox;

static OspResult on_message(void *env, const char *message) {
    inbox *b = env;
    pthread_mutex_lock(&b->mu);
    if (b->count < (int)(sizeof b->messages / sizeof b->messages[0])) b->messages[b->count] = strdup(message);
    b->count++;
    pthread_mutex_unlock(&b->mu);
    return osp_result_success(0);
}

static inbox boxes[CLIENTS], echo;

static void inbox_free(inbox *b) {
    for (int i = 0; i < b->count && i < (int)(sizeof b->messages / sizeof b->messages[0]); i++) free(b->messages[i]);
}

static int inbox_count(inbox *b) {
    pthread_mutex_lock(&b->mu);
    int n = b->count;
    pthread_mutex_unlock(&b->mu);
    return n;
}

static int inbox_wait(inbox *b, int count, int ms) {
    for (int waited = 0; waited <= ms; waited += 5) {
        if (inbox_count(b) >= count) return 1;
        osp_sleep(5);
    }
    return 0;
}

static int wait_state(int64_t id, int state, int ms) {
    for (int waited = 0; waited <= ms; waited += 5) {
        if (osp_ws_connection_state(id) == state) return 1;
        osp_sleep(5);
    }
    return 0;
}

/* The server's handler: remembers each connection id it sees and answers "re: …" with
 * websocketServerSend from the handler's fiber (posted to the connection's loop). */
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t seen[CLIENTS * 2];
static int seen_count;
static int64_t the_server;

static OspResult server_handler(void *env, int64_t connection_id, const char *message) {
    (void)env;
    pthread_mutex_lock(&seen_mu);
    if (seen_count < CLIENTS * 2) seen[seen_count++] = connection_id;
    pthread_mutex_unlock(&seen_mu);
    char reply[128];
    snprintf(reply, sizeof reply, "re: %s", message);
    return osp_ws_server_send(the_server, connection_id, osp_gc_strdup_c(reply));
}

typedef struct {
    char tag;
    int failures;
} broadcaster;

static void *broadcast_thread(void *arg) {
    broadcaster *b = arg;
    char text[16];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(text, sizeof text, "%c%03d", b->tag, i);
        if (osp_ws_server_broadcast(the_server, osp_gc_strdup_c(text)).tag != OSP_RESULT_SUCCESS) b->failures++;
    }
    return NULL;
}

static void test_loops(void) {
    int port = free_port();
    OspResult r = osp_ws_create_server(port, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/"));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "create: %s", MSG(r));
    the_server = r.value;
    CHECK(osp_ws_loop_count() == LOOPS, "OSPREY_IO_THREADS=%d runs %d loops (got %u)", LOOPS, LOOPS,
          osp_ws_loop_count());
    CHECK(osp_ws_server_on_message(the_server, server_handler, NULL).tag == OSP_RESULT_SUCCESS, "handler");
    CHECK(osp_ws_server_listen(the_server).tag == OSP_RESULT_SUCCESS, "listen");

    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    int64_t clients[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        pthread_mutex_init(&boxes[i].mu, NULL);
        r = osp_ws_connect(osp_gc_strdup_c(url), on_message, &boxes[i]);
        CHECK(r.tag == OSP_RESULT_SUCCESS, "connect %d: %s", i, MSG(r));
        clients[i] = r.value;
        char hello[32];
        snprintf(hello, sizeof hello, "hi %d", i);
        CHECK(osp_ws_send(clients[i], osp_gc_strdup_c(hello)).tag == OSP_RESULT_SUCCESS, "send %d", i);
    }
    /* Every handler reply came back: sends from a fiber reach a connection on any loop. */
    for (int i = 0; i < CLIENTS; i++) {
        CHECK(inbox_wait(&boxes[i], 1, 5000), "client %d got its reply", i);
        char want[32];
        snprintf(want, sizeof want, "re: hi %d", i);
        CHECK(boxes[i].messages[0] && strcmp(boxes[i].messages[0], want) == 0, "client %d reply text: %s", i,
              boxes[i].messages[0] ? boxes[i].messages[0] : "(none)");
    }
    CHECK(osp_ws_server_open_connections(the_server) == CLIENTS, "open connections across loops: %" PRId64,
          osp_ws_server_open_connections(the_server));

    /* Ids are unique across loops, and the acceptor placed the connections on every loop. */
    int per_loop[LOOPS] = {0};
    int duplicates = 0;
    for (int i = 0; i < seen_count; i++) {
        for (int j = 0; j < i; j++)
            if (seen[j] == seen[i]) duplicates++;
        for (int k = 0; k < CLIENTS; k++)
            if (seen[i] == clients[k]) duplicates++; /* a client id is never a server connection's */
        osp_ws_entry e;
        CHECK(osp_ws_registry_find(seen[i], &e) && e.kind == OSP_WS_KIND_SERVER_CONN && e.loop < LOOPS,
              "connection %" PRId64 " is registered with its loop", seen[i]);
        if (e.loop < LOOPS) per_loop[e.loop]++;
    }
    CHECK(seen_count == CLIENTS && duplicates == 0, "%d connections, %d duplicate ids", seen_count, duplicates);
    for (int k = 0; k < LOOPS; k++)
        CHECK(per_loop[k] == CLIENTS / LOOPS, "loop %d serves %d connections (want %d)", k, per_loop[k],
              CLIENTS / LOOPS);

    /* Broadcasts from two threads at once: every recipient gets all of them, in one order. */
    broadcaster a = {'A', 0}, b = {'B', 0};
    pthread_t ta, tb;
    CHECK(pthread_create(&ta, NULL, broadcast_thread, &a) == 0, "thread A");
    CHECK(pthread_create(&tb, NULL, broadcast_thread, &b) == 0, "thread B");
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.failures == 0 && b.failures == 0, "broadcasts accepted (%d, %d refused)", a.failures, b.failures);
    const int total = 1 + 2 * PER_THREAD;
    for (int i = 0; i < CLIENTS; i++) CHECK(inbox_wait(&boxes[i], total, 10000), "client %d got every broadcast", i);
    int order_differs = 0, own_order_broken = 0;
    for (int i = 0; i < CLIENTS; i++) {
        int next_a = 0, next_b = 0;
        for (int m = 1; m < total; m++) {
            const char *got = boxes[i].messages[m], *first = boxes[0].messages[m];
            if (!got || !first || strcmp(got, first) != 0) order_differs++;
            if (got && got[0] == 'A' && atoi(got + 1) != next_a++) own_order_broken++;
            if (got && got[0] == 'B' && atoi(got + 1) != next_b++) own_order_broken++;
        }
    }
    CHECK(order_differs == 0, "all recipients saw the broadcasts in the same order (%d differ)", order_differs);
    CHECK(own_order_broken == 0, "each thread's broadcasts arrived in the order it made them (%d out of order)",
          own_order_broken);

    /* Stopping reaches every loop: each connection gets 1001, the server is gone. */
    r = osp_ws_stop_server(the_server);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "stop: %s", MSG(r));
    for (int i = 0; i < CLIENTS; i++) {
        CHECK(wait_state(clients[i], OSP_WS_STATE_CLOSED, 6000), "client %d closed by the stop", i);
        r = osp_ws_send(clients[i], osp_gc_strdup_c("x"));
        CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "already closed (code 1001)"),
              "client %d saw 1001: %s", i, MSG(r));
    }
    CHECK(osp_ws_server_open_connections(the_server) == -1, "a stopped server has no count");
    r = osp_ws_server_broadcast(the_server, osp_gc_strdup_c("late"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "unknown server id"), "broadcast after stop: %s",
          MSG(r));

    /* The port is free again at once, and the new server spreads its connections too. */
    r = osp_ws_create_server(port, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/"));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "create again: %s", MSG(r));
    int64_t again = r.value;
    CHECK(osp_ws_server_listen(again).tag == OSP_RESULT_SUCCESS, "rebind the same port");
    pthread_mutex_init(&echo.mu, NULL);
    int64_t last = 0;
    for (int i = 0; i < LOOPS; i++) {
        r = osp_ws_connect(osp_gc_strdup_c(url), on_message, &echo);
        CHECK(r.tag == OSP_RESULT_SUCCESS, "connect to the new server: %s", MSG(r));
        last = r.value;
        CHECK(osp_ws_send(last, osp_gc_strdup_c("echo")).tag == OSP_RESULT_SUCCESS, "send");
    }
    CHECK(inbox_wait(&echo, LOOPS, 5000), "echo from every loop of the new server");
    /* Left open on purpose: osp_rt_shutdown stops the server on every loop. */
    (void)last;
}

int main(void) {
    setenv("OSPREY_IO_THREADS", "3", 1);
    osp_rt_init(OSP_ABI_VERSION);
    test_loops();
    int status = check_summary("test_ws_loops");
    status = osp_rt_shutdown(status);
    for (int i = 0; i < CLIENTS; i++) inbox_free(&boxes[i]);
    inbox_free(&echo);
    return status;
}
