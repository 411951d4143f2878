/*
 * Several I/O loops (OSPREY_IO_THREADS=3) in one process: accepted connections are spread over
 * the loops, ids stay unique, a handler's websocketServerSend reaches a connection on any loop,
 * broadcasts posted from two threads at once arrive at every recipient in one and the same
 * order, the open-connection count adds up every loop, and stopping the server closes the
 * connections of every loop (1001) and frees the port; handlers' sends (direct from the
 * handler's thread or through the loop) arrive whole and in order, bursts larger than a socket
 * buffer and several handlers sending to one connection at once included. Runs under ASan + UBSan. Every String
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

/* ---- handler sends: direct from the handler's thread, or through the loop ------------------
 * A handler answers with many large messages (more than the socket takes at once, so direct
 * sends are cut short and the loop sends the rest), and handlers of several connections send
 * to one connection at the same time (one sender writes the socket while the others post).
 * Every message must arrive whole and, per sender, in order; a frame split between two
 * writers would make the client fail the connection (1002). Then stopping the server closes
 * every connection with 1001: its Close follows whole frames only. */

#define FAN_SENDERS 3
#define FAN_COUNT 60
#define BURST_COUNT 40
#define BIG (48 * 1024)

static int64_t sends_server, fan_target;

/* "burst N SIZE": N messages "B:<i>:" padded with 'x' to SIZE bytes, to the sender;
 * "fan TAG N SIZE": N messages "<TAG>:<i>:" padded, to fan_target; "target": remember me. */
static OspResult sends_handler(void *env, int64_t connection_id, const char *message) {
    (void)env;
    char tag[8] = "B";
    int n = 0, size = 0;
    int64_t to = connection_id;
    if (strcmp(message, "target") == 0) {
        __atomic_store_n(&fan_target, connection_id, __ATOMIC_SEQ_CST);
        return osp_ws_server_send(sends_server, connection_id, osp_gc_strdup_c("ready"));
    }
    if (sscanf(message, "burst %d %d", &n, &size) != 2) {
        if (sscanf(message, "fan %7s %d %d", tag, &n, &size) != 3) return osp_result_errorf("bad request");
        to = __atomic_load_n(&fan_target, __ATOMIC_SEQ_CST);
    }
    char *text = malloc((size_t)size + 1);
    for (int i = 0; i < n; i++) {
        int h = snprintf(text, (size_t)size + 1, "%s:%d:", tag, i);
        memset(text + h, 'x', (size_t)(size - h));
        text[size] = 0;
        OspResult r = osp_ws_server_send(sends_server, to, osp_gc_strdup_c(text));
        if (r.tag != OSP_RESULT_SUCCESS) {
            free(text);
            return r;
        }
    }
    free(text);
    return osp_result_success(0);
}

typedef struct {
    pthread_mutex_t mu;
    int received, broken, out_of_order;
    int next[FAN_SENDERS + 1]; /* per tag: B, F0, F1, F2 */
    int size;
    int period; /* a sender's numbering restarts at 0 with each request of it */
} checked_inbox;

static OspResult checked_message(void *env, const char *message) {
    checked_inbox *b = env;
    pthread_mutex_lock(&b->mu);
    if (strcmp(message, "ready") == 0) {
        b->received++;
        pthread_mutex_unlock(&b->mu);
        return osp_result_success(0);
    }
    char tag[8];
    int seq = -1, at = 0;
    size_t len = osp_str_len(message);
    int slot = -1;
    if (sscanf(message, "%7[^:]:%d:%n", tag, &seq, &at) == 2 && at > 0) {
        if (strcmp(tag, "B") == 0) slot = 0;
        else if (tag[0] == 'F' && tag[1] >= '0' && tag[1] < '0' + FAN_SENDERS && tag[2] == 0) slot = 1 + tag[1] - '0';
    }
    bool whole = slot >= 0 && len == (size_t)b->size;
    for (size_t i = (size_t)at; whole && i < len; i++) whole = message[i] == 'x';
    if (!whole) b->broken++;
    else if (seq != b->next[slot]++ % b->period) b->out_of_order++;
    b->received++;
    pthread_mutex_unlock(&b->mu);
    return osp_result_success(0);
}

static int checked_count(checked_inbox *b) {
    pthread_mutex_lock(&b->mu);
    int n = b->received;
    pthread_mutex_unlock(&b->mu);
    return n;
}

static void test_handler_sends(void) {
    int port = free_port();
    OspResult r = osp_ws_create_server(port, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/"));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "create: %s", MSG(r));
    sends_server = r.value;
    CHECK(osp_ws_server_on_message(sends_server, sends_handler, NULL).tag == OSP_RESULT_SUCCESS, "handler");
    CHECK(osp_ws_server_listen(sends_server).tag == OSP_RESULT_SUCCESS, "listen");
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);

    /* One connection asks for bursts, several times; each direct send is cut short after 1000
     * bytes (as a full socket would), so the loop sends the rest of each frame. */
    __atomic_store_n(&osp_ws_test_direct_send_max, 1000, __ATOMIC_SEQ_CST);
    static checked_inbox burst = {.mu = PTHREAD_MUTEX_INITIALIZER, .size = BIG, .period = BURST_COUNT};
    r = osp_ws_connect(osp_gc_strdup_c(url), checked_message, &burst);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "connect: %s", MSG(r));
    int64_t bursty = r.value;
    char req[64];
    snprintf(req, sizeof req, "burst %d %d", BURST_COUNT, BIG);
    for (int k = 0; k < 3; k++) CHECK(osp_ws_send(bursty, osp_gc_strdup_c(req)).tag == OSP_RESULT_SUCCESS, "burst %d", k);

    /* A target, and senders whose handlers all send to it at once. */
    static checked_inbox fan = {.mu = PTHREAD_MUTEX_INITIALIZER, .size = 2048, .period = FAN_COUNT};
    r = osp_ws_connect(osp_gc_strdup_c(url), checked_message, &fan);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "connect target: %s", MSG(r));
    int64_t target = r.value;
    CHECK(osp_ws_send(target, osp_gc_strdup_c("target")).tag == OSP_RESULT_SUCCESS, "register the target");
    for (int waited = 0; checked_count(&fan) < 1 && waited < 5000; waited += 5) osp_sleep(5);
    CHECK(checked_count(&fan) == 1, "the target is known to the server");
    int64_t senders[FAN_SENDERS];
    static inbox ignored[FAN_SENDERS];
    for (int i = 0; i < FAN_SENDERS; i++) {
        pthread_mutex_init(&ignored[i].mu, NULL);
        r = osp_ws_connect(osp_gc_strdup_c(url), on_message, &ignored[i]);
        CHECK(r.tag == OSP_RESULT_SUCCESS, "connect sender %d: %s", i, MSG(r));
        senders[i] = r.value;
    }
    for (int i = 0; i < FAN_SENDERS; i++) {
        snprintf(req, sizeof req, "fan F%d %d %d", i, FAN_COUNT, 2048);
        CHECK(osp_ws_send(senders[i], osp_gc_strdup_c(req)).tag == OSP_RESULT_SUCCESS, "fan %d", i);
    }

    const int burst_total = 3 * BURST_COUNT, fan_total = 1 + FAN_SENDERS * FAN_COUNT;
    for (int waited = 0; (checked_count(&burst) < burst_total || checked_count(&fan) < fan_total) && waited < 15000;
         waited += 10)
        osp_sleep(10);
    CHECK(checked_count(&burst) == burst_total, "every burst message arrived (%d of %d)", checked_count(&burst),
          burst_total);
    CHECK(burst.broken == 0 && burst.out_of_order == 0, "bursts whole and in order (%d broken, %d out of order)",
          burst.broken, burst.out_of_order);
    CHECK(checked_count(&fan) == fan_total, "every fanned-in message arrived (%d of %d)", checked_count(&fan),
          fan_total);
    CHECK(fan.broken == 0 && fan.out_of_order == 0,
          "messages from handlers sending at once: whole, and in order per sender (%d broken, %d out of order)",
          fan.broken, fan.out_of_order);
    CHECK(osp_ws_connection_state(bursty) == OSP_WS_STATE_OPEN && osp_ws_connection_state(target) == OSP_WS_STATE_OPEN,
          "no connection was failed for a bad frame");

    __atomic_store_n(&osp_ws_test_direct_send_max, 0, __ATOMIC_SEQ_CST);

    /* A last burst, then the stop: the Close (1001) comes after whole frames only. */
    snprintf(req, sizeof req, "burst %d %d", BURST_COUNT, BIG);
    CHECK(osp_ws_send(bursty, osp_gc_strdup_c(req)).tag == OSP_RESULT_SUCCESS, "last burst");
    for (int waited = 0; checked_count(&burst) == burst_total && waited < 5000; waited += 1) osp_sleep(1);
    r = osp_ws_stop_server(sends_server);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "stop: %s", MSG(r));
    CHECK(wait_state(bursty, OSP_WS_STATE_CLOSED, 6000), "the bursty client is closed");
    r = osp_ws_send(bursty, osp_gc_strdup_c("x"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "already closed (code 1001)"),
          "closed with 1001 after a burst in progress, not failed: %s", MSG(r));
    CHECK(burst.broken == 0 && burst.out_of_order == 0, "the last burst's messages that arrived are whole and in order");
    for (int i = 0; i < FAN_SENDERS; i++) inbox_free(&ignored[i]);
}

int main(void) {
    setenv("OSPREY_IO_THREADS", "3", 1);
    osp_rt_init(OSP_ABI_VERSION);
    test_loops();
    test_handler_sends();
    int status = check_summary("test_ws_loops");
    status = osp_rt_shutdown(status);
    for (int i = 0; i < CLIENTS; i++) inbox_free(&boxes[i]);
    inbox_free(&echo);
    return status;
}
