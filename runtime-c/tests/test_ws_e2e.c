/*
 * End-to-end test of the WebSocket ABI over loopback: a server and clients in one process
 * (the server runs on the runtime thread while websocketConnect handshakes on this thread).
 * Covers echo, server handlers and websocketServerSend, broadcast to 3 clients, close
 * semantics, stop + immediate rebind of the same port, and the error paths with their texts.
 */
#include "runtime.h"
#include "check.h" /* messages are passed as Strings: osp_gc_strdup_c gives them their length header */
#include "loopback.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define MSG(r) ((const char *)(intptr_t)(r).value)

/* ---- a thread-safe inbox for client handlers ---------------------------------------------- */

#define INBOX_MAX 64
typedef struct {
    pthread_mutex_t mu;
    int count;
    char *messages[INBOX_MAX]; /* malloc'd copies */
    int64_t reply_to;          /* when set, the handler replies on this connection */
    int close_from_handler;    /* when set, the handler closes its own connection */
    OspResult close_result;
} inbox;

static void inbox_init(inbox *b) {
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
}

static void inbox_free(inbox *b) {
    for (int i = 0; i < b->count && i < INBOX_MAX; i++) free(b->messages[i]);
    pthread_mutex_destroy(&b->mu);
}

static OspResult on_message(void *env, const char *message) {
    inbox *b = env;
    pthread_mutex_lock(&b->mu);
    if (b->count < INBOX_MAX) b->messages[b->count] = strdup(message);
    b->count++;
    pthread_mutex_unlock(&b->mu);
    if (b->close_from_handler) {
        /* Reentrancy: closing our own connection from its handler must not deadlock. */
        b->close_result = osp_ws_close(osp_ws_handler_connection_id());
    }
    if (strcmp(message, "fail please") == 0) return osp_result_errorf("handler refused %s", message);
    return osp_result_success(0);
}

static int inbox_wait(inbox *b, int count, int ms) {
    for (int waited = 0; waited <= ms; waited += 5) {
        pthread_mutex_lock(&b->mu);
        int n = b->count;
        pthread_mutex_unlock(&b->mu);
        if (n >= count) return 1;
        osp_sleep(5);
    }
    return 0;
}

static const char *inbox_at(inbox *b, int i) {
    pthread_mutex_lock(&b->mu);
    const char *s = i < b->count && i < INBOX_MAX ? b->messages[i] : NULL;
    pthread_mutex_unlock(&b->mu);
    return s;
}

static int wait_state(int64_t id, int state, int ms) {
    for (int waited = 0; waited <= ms; waited += 5) {
        if (osp_ws_connection_state(id) == state) return 1;
        osp_sleep(5);
    }
    return 0;
}

static int wait_open_connections(int64_t server, int64_t n, int ms) {
    for (int waited = 0; waited <= ms; waited += 5) {
        if (osp_ws_server_open_connections(server) == n) return 1;
        osp_sleep(5);
    }
    return 0;
}

/* ---- server handler: replies through websocketServerSend from inside the handler ---------- */

typedef struct {
    int64_t server;
    int calls;
} server_env;

static OspResult server_handler(void *env, int64_t connection_id, const char *message) {
    server_env *s = env;
    s->calls++;
    char reply[256];
    snprintf(reply, sizeof reply, "re: %s", message);
    return osp_ws_server_send(s->server, connection_id, osp_gc_strdup_c(reply));
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_echo_and_close(void) {
    int port = free_port();
    OspResult r = osp_ws_create_server(port, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/chat"));
    CHECK(r.tag == OSP_RESULT_SUCCESS && r.value > 0, "create: %s", MSG(r));
    int64_t server = r.value;
    r = osp_ws_server_listen(server);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "listen: %s", MSG(r));
    r = osp_ws_server_listen(server);
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "already listening"), "listen twice: %s", MSG(r));

    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/chat?room=1", port);
    inbox b;
    inbox_init(&b);
    r = osp_ws_connect(osp_gc_strdup_c(url), on_message, &b);
    CHECK(r.tag == OSP_RESULT_SUCCESS && r.value > 0, "connect: %s", MSG(r));
    int64_t ws = r.value;
    CHECK(ws != server, "ids are distinct");

    r = osp_ws_send(ws, osp_gc_strdup_c("Hello"));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "send: %s", MSG(r));
    r = osp_ws_send(ws, osp_gc_strdup_c("κόσμε ✓"));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "send utf-8: %s", MSG(r));
    CHECK(inbox_wait(&b, 2, 3000), "two echoes arrive");
    CHECK(inbox_at(&b, 0) && strcmp(inbox_at(&b, 0), "Hello") == 0, "first echo in order");
    CHECK(inbox_at(&b, 1) && strcmp(inbox_at(&b, 1), "κόσμε ✓") == 0, "second echo in order");

    /* A 1 MiB message (64-bit length on the wire, masked by the client, echoed unmasked). */
    size_t big_len = 1024 * 1024;
    char *big = malloc(big_len + 1);
    for (size_t i = 0; i < big_len; i++) big[i] = (char)('a' + i % 26);
    big[big_len] = '\0';
    r = osp_ws_send(ws, osp_gc_strdup_c(big));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "send 1 MiB: %s", MSG(r));
    CHECK(inbox_wait(&b, 3, 5000), "1 MiB echo arrives");
    CHECK(inbox_at(&b, 2) && strcmp(inbox_at(&b, 2), big) == 0, "1 MiB echo is byte-exact");
    free(big);

    r = osp_ws_send(ws, osp_gc_strdup_c("fail please")); /* the handler returns Error: reported, stays open */
    CHECK(r.tag == OSP_RESULT_SUCCESS, "send: %s", MSG(r));
    CHECK(inbox_wait(&b, 4, 3000), "handler error message arrives");
    r = osp_ws_send(ws, osp_gc_strdup_c("still open"));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "connection stays open after a handler error: %s", MSG(r));
    CHECK(inbox_wait(&b, 5, 3000), "message after handler error");

    r = osp_ws_send(ws, osp_gc_strdup_c("\xC0\xAF"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "websocketSend: the message is not valid UTF-8"),
          "invalid UTF-8 refused: %s", MSG(r));

    r = osp_ws_close(ws);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "close: %s", MSG(r));
    CHECK(osp_ws_connection_state(ws) == OSP_WS_STATE_CLOSED, "closed after websocketClose returns");
    int before = b.count;
    r = osp_ws_close(ws);
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "websocketClose: connection") &&
              check_contains(MSG(r), "is already closed"),
          "close twice: %s", MSG(r));
    r = osp_ws_send(ws, osp_gc_strdup_c("late"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "already closed"), "send after close: %s", MSG(r));
    osp_sleep(50);
    CHECK(b.count == before, "no handler call after websocketClose returned");
    CHECK(wait_open_connections(server, 0, 3000), "server side connection gone");

    /* Closing from inside the handler: Success, asynchronous, no deadlock. */
    inbox c;
    inbox_init(&c);
    c.close_from_handler = 1;
    r = osp_ws_connect(osp_gc_strdup_c(url), on_message, &c);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "connect: %s", MSG(r));
    int64_t ws2 = r.value;
    r = osp_ws_send(ws2, osp_gc_strdup_c("bye"));
    CHECK(inbox_wait(&c, 1, 3000), "message before closing from the handler");
    CHECK(wait_state(ws2, OSP_WS_STATE_CLOSED, 3000), "closed from handler");
    CHECK(c.close_result.tag == OSP_RESULT_SUCCESS, "websocketClose from the handler returns Success");

    r = osp_ws_stop_server(server);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "stop: %s", MSG(r));
    r = osp_ws_stop_server(server);
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "websocketStopServer: unknown server id"),
          "stop twice: %s", MSG(r));
    inbox_free(&b);
    inbox_free(&c);
}

/* Its connection is left open for osp_rt_shutdown to close; freed after that. */
static inbox left_open;

static void test_broadcast_stop_rebind(void) {
    int port = free_port();
    OspResult r = osp_ws_create_server(port, osp_gc_strdup_c("localhost"), osp_gc_strdup_c("/live"));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "create: %s", MSG(r));
    int64_t server = r.value;
    r = osp_ws_server_broadcast(server, osp_gc_strdup_c("nobody listens"));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "broadcast with no connections: %s", MSG(r));
    r = osp_ws_server_listen(server);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "listen: %s", MSG(r));
    r = osp_ws_server_broadcast(server, osp_gc_strdup_c("still nobody"));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "broadcast with zero connections: %s", MSG(r));

    char url[128];
    snprintf(url, sizeof url, "ws://localhost:%d/live", port);
    inbox boxes[3];
    int64_t ids[3];
    for (int i = 0; i < 3; i++) {
        inbox_init(&boxes[i]);
        r = osp_ws_connect(osp_gc_strdup_c(url), on_message, &boxes[i]);
        CHECK(r.tag == OSP_RESULT_SUCCESS, "connect %d: %s", i, MSG(r));
        ids[i] = r.value;
    }
    CHECK(wait_open_connections(server, 3, 3000), "3 connections open");
    r = osp_ws_server_broadcast(server, osp_gc_strdup_c("news for all"));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "broadcast: %s", MSG(r));
    for (int i = 0; i < 3; i++) {
        CHECK(inbox_wait(&boxes[i], 1, 3000), "client %d got the broadcast", i);
        CHECK(inbox_at(&boxes[i], 0) && strcmp(inbox_at(&boxes[i], 0), "news for all") == 0,
              "client %d broadcast text", i);
    }

    /* A handler replaces the echo; it answers with websocketServerSend from inside. */
    server_env env = {server, 0};
    r = osp_ws_server_on_message(server, server_handler, &env);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "on_message: %s", MSG(r));
    r = osp_ws_send(ids[0], osp_gc_strdup_c("question"));
    CHECK(inbox_wait(&boxes[0], 2, 3000), "reply from the server handler");
    CHECK(inbox_at(&boxes[0], 1) && strcmp(inbox_at(&boxes[0], 1), "re: question") == 0,
          "handler reply text: %s", inbox_at(&boxes[0], 1) ? inbox_at(&boxes[0], 1) : "(none)");
    CHECK(env.calls == 1, "server handler called once");

    r = osp_ws_server_send(server, 424242, osp_gc_strdup_c("x"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "websocketServerSend: server") &&
              check_contains(MSG(r), "has no connection 424242"),
          "server send to unknown connection: %s", MSG(r));

    r = osp_ws_stop_server(server);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "stop: %s", MSG(r));
    for (int i = 0; i < 3; i++)
        CHECK(wait_state(ids[i], OSP_WS_STATE_CLOSED, 6000), "client %d closed by the stop", i);
    r = osp_ws_server_broadcast(server, osp_gc_strdup_c("gone"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "unknown server id"), "broadcast after stop: %s",
          MSG(r));
    r = osp_ws_send(ids[0], osp_gc_strdup_c("x"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "already closed (code 1001)"),
          "client sees 1001 going away: %s", MSG(r));

    /* SO_REUSEADDR: the same port binds again at once. */
    r = osp_ws_create_server(port, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/live"));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "create again: %s", MSG(r));
    int64_t again = r.value;
    r = osp_ws_server_listen(again);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "rebind the same port immediately: %s", MSG(r));
    inbox *b = &left_open;
    inbox_init(b);
    r = osp_ws_connect(osp_gc_strdup_c(url), on_message, b);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "connect to the rebound server: %s", MSG(r));
    r = osp_ws_send(r.value, osp_gc_strdup_c("again"));
    CHECK(inbox_wait(b, 1, 3000), "echo from the rebound server");
    /* Left open on purpose: osp_rt_shutdown must close it (1000) and stop the server (1001). */
    for (int i = 0; i < 3; i++) inbox_free(&boxes[i]);
}

static void test_errors(void) {
    OspResult r;
    r = osp_ws_create_server(70000, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/"));
    CHECK(r.tag == OSP_RESULT_ERROR &&
              strcmp(MSG(r), "websocketCreateServer: port 70000 is out of range (1-65535)") == 0,
          "%s", MSG(r));
    r = osp_ws_create_server(0, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "port 0 is out of range"), "%s", MSG(r));
    r = osp_ws_create_server(8080, osp_gc_strdup_c("999.1.1.1"), osp_gc_strdup_c("/"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "address \"999.1.1.1\" is not a valid"), "%s", MSG(r));
    r = osp_ws_create_server(8080, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("chat"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "must start with '/'"), "%s", MSG(r));

    /* Address in use: a plain socket holds the port. */
    int port = free_port();
    int holder = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback_address(port);
    CHECK(bind(holder, (struct sockaddr *)&a, sizeof a) == 0 && listen(holder, 1) == 0, "holder bound");
    r = osp_ws_create_server(port, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/"));
    CHECK(r.tag == OSP_RESULT_SUCCESS, "create does not bind: %s", MSG(r));
    int64_t busy = r.value;
    r = osp_ws_server_listen(busy);
    char expected[128];
    snprintf(expected, sizeof expected, "websocketServerListen: address 127.0.0.1:%d is already in use", port);
    CHECK(r.tag == OSP_RESULT_ERROR && strcmp(MSG(r), expected) == 0, "%s", MSG(r));
    close(holder);
    r = osp_ws_server_listen(busy);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "listen once the port is free: %s", MSG(r));

    /* 404: the server exists but not at this path. */
    char url[128];
    inbox b;
    inbox_init(&b);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/elsewhere", port);
    r = osp_ws_connect(osp_gc_strdup_c(url), on_message, &b);
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "server answered HTTP 404 Not Found"), "%s", MSG(r));
    r = osp_ws_stop_server(busy);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "stop: %s", MSG(r));

    /* Connection refused: nothing listens on the port now. */
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    r = osp_ws_connect(osp_gc_strdup_c(url), on_message, &b);
    snprintf(expected, sizeof expected, "connection refused by 127.0.0.1:%d", port);
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), expected), "%s", MSG(r));

    r = osp_ws_connect(osp_gc_strdup_c("ws://example.invalid/"), on_message, &b);
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "cannot resolve host \"example.invalid\""), "%s",
          MSG(r));
    /* wss:// to a closed port fails at TCP, before any TLS. */
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/", port);
    r = osp_ws_connect(osp_gc_strdup_c(url), on_message, &b);
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), expected), "%s", MSG(r));
    r = osp_ws_connect(osp_gc_strdup_c("ws://127.0.0.1/a#b"), on_message, &b);
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "fragment"), "%s", MSG(r));
    r = osp_ws_connect(osp_gc_strdup_c("http://127.0.0.1/"), on_message, &b);
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "must start with ws://"), "%s", MSG(r));
    r = osp_ws_connect(osp_gc_strdup_c("ws://127.0.0.1:99999/"), on_message, &b);
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "port is out of range"), "%s", MSG(r));

    r = osp_ws_send(987654, osp_gc_strdup_c("x"));
    CHECK(r.tag == OSP_RESULT_ERROR && strcmp(MSG(r), "websocketSend: unknown connection id 987654") == 0, "%s",
          MSG(r));
    r = osp_ws_close(987654);
    CHECK(r.tag == OSP_RESULT_ERROR && strcmp(MSG(r), "websocketClose: unknown connection id 987654") == 0, "%s",
          MSG(r));
    r = osp_ws_server_listen(987654);
    CHECK(r.tag == OSP_RESULT_ERROR && strcmp(MSG(r), "websocketServerListen: unknown server id 987654") == 0,
          "%s", MSG(r));
    r = osp_ws_server_broadcast(-1, osp_gc_strdup_c("x"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "unknown server id -1"), "%s", MSG(r));
    r = osp_ws_stop_server(0);
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "unknown server id 0"), "%s", MSG(r));
    r = osp_ws_server_send(987654, 1, osp_gc_strdup_c("x"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "unknown server id"), "%s", MSG(r));
    r = osp_ws_server_on_message(987654, server_handler, NULL);
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "unknown server id"), "%s", MSG(r));
    r = osp_ws_send(busy, osp_gc_strdup_c("x"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "is a server id"), "%s", MSG(r));
    inbox_free(&b);
}

/* ---- handler environments stay reachable for the collector -------------------------------- */

#define GC_MAGIC 0x5EC2E7C0FFEEULL
/* Written by the handler's fiber, polled by the test: atomics (volatile orders nothing across
 * threads, and the flag must be seen with the value written before it). */
static atomic_int gc_env_ok, gc_env_calls;

static OspResult gc_handler(void *env, const char *message) {
    (void)message;
    const uint64_t *e = env;
    atomic_store(&gc_env_ok, e != NULL && e[0] == GC_MAGIC && e[1] == ~GC_MAGIC);
    atomic_fetch_add(&gc_env_calls, 1);
    return osp_result_success(0);
}

/* Allocates the environment in a frame of its own, so no pointer to it stays on main's stack. */
static __attribute__((noinline)) int64_t connect_with_fresh_env(const char *url) {
    uint64_t *env = osp_alloc(64);
    env[0] = GC_MAGIC;
    env[1] = ~GC_MAGIC;
    OspResult r = osp_ws_connect(osp_gc_strdup_c(url), gc_handler, env);
    env = NULL;
    return r.tag == OSP_RESULT_SUCCESS ? r.value : -1;
}

static __attribute__((noinline)) void churn(void) {
    /* Overwrite the collected heap: a freed environment would lose its magic words. */
    for (int i = 0; i < 20000; i++) {
        uint64_t *junk = osp_alloc(64);
        junk[0] = 0;
        junk[1] = 0;
    }
}

static void test_handler_env_survives_gc(void) {
    int port = free_port();
    OspResult r = osp_ws_create_server(port, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/"));
    int64_t server = r.value;
    CHECK(osp_ws_server_listen(server).tag == OSP_RESULT_SUCCESS, "listen");
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    int64_t ws = connect_with_fresh_env(url);
    CHECK(ws > 0, "connect");
    for (int i = 0; i < 3; i++) {
        GC_gcollect();
        churn();
    }
    GC_gcollect();
    osp_ws_send(ws, osp_gc_strdup_c("after collection"));
    for (int i = 0; i < 400 && atomic_load(&gc_env_calls) == 0; i++) osp_sleep(5);
    CHECK(atomic_load(&gc_env_calls) == 1 && atomic_load(&gc_env_ok), "the handler environment survived collections");
    CHECK(osp_ws_close(ws).tag == OSP_RESULT_SUCCESS, "close");
    CHECK(osp_ws_stop_server(server).tag == OSP_RESULT_SUCCESS, "stop");
}

/* ---- asynchronous sends from the program's thread ----------------------------------------- */

typedef struct {
    atomic_int calls; /* written by the handler's fiber (one call at a time), read by the test */
    atomic_int out_of_order;
} order_env;

static OspResult order_handler(void *env, int64_t connection_id, const char *message) {
    (void)connection_id;
    order_env *o = env;
    /* The first message stalls this connection's handler (a fiber; the loop goes on), so its
     * inbox fills, the server stops reading the socket, the client's sends pile up unsent and
     * the output cap (1 MiB) must refuse one of them. */
    int calls = atomic_load(&o->calls);
    if (calls == 0) osp_sleep(1000);
    if (atoi(message) != calls) atomic_fetch_add(&o->out_of_order, 1);
    atomic_store(&o->calls, calls + 1);
    return osp_result_success(0);
}

static void test_async_send_order_cap_close(void) {
    int port = free_port();
    OspResult r = osp_ws_create_server(port, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/"));
    int64_t server = r.value;
    order_env o = {0, 0};
    CHECK(osp_ws_server_on_message(server, order_handler, &o).tag == OSP_RESULT_SUCCESS, "handler");
    CHECK(osp_ws_server_listen(server).tag == OSP_RESULT_SUCCESS, "listen");
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    inbox b;
    inbox_init(&b);
    r = osp_ws_connect(osp_gc_strdup_c(url), on_message, &b);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "connect: %s", MSG(r));
    int64_t ws = r.value;
    enum { BIG = 64 * 1024, TRIES = 2000 };
    char *msg = malloc(BIG + 1);
    CHECK(msg != NULL, "malloc");
    if (msg == NULL) return;
    memset(msg, 'x', BIG);
    msg[BIG] = '\0';
    int accepted = 0;
    OspResult refused = {0, 0};
    for (int i = 0; i < TRIES; i++) {
        int n = snprintf(msg, 16, "%06d", i);
        msg[n] = 'x'; /* keep the padding behind the number */
        r = osp_ws_send(ws, osp_gc_strdup_c(msg));
        if (r.tag != OSP_RESULT_SUCCESS) {
            refused = r;
            break;
        }
        accepted++;
    }
    CHECK(refused.tag == OSP_RESULT_ERROR && check_contains(MSG(refused), "bytes waiting to be sent (limit 1048576); "
                                                                           "the server is not reading"),
          "over the cap: %s", refused.tag == OSP_RESULT_ERROR ? MSG(refused) : "(every send accepted)");
    CHECK(accepted > 1 && accepted < TRIES, "accepted %d of %d before the cap", accepted, TRIES);
    /* Small messages after the big ones, then close at once: every accepted message must reach
     * the server, in order, before our Close. */
    int small = 0;
    for (int t = 0; t < 1000 && small < 100; t++) {
        snprintf(msg, 16, "%06d", accepted + small);
        r = osp_ws_send(ws, osp_gc_strdup_c(msg));
        if (r.tag == OSP_RESULT_SUCCESS) small++;
        else osp_sleep(5); /* still over the cap while the server's handler sleeps */
    }
    CHECK(small == 100, "small sends accepted once the loop drained: %d", small);
    r = osp_ws_close(ws);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "close: %s", MSG(r));
    CHECK(wait_open_connections(server, 0, 3000), "server saw the close");
    /* Messages received before the close are still handed to the handler after it (one at a
     * time, in order): wait for the last, bounded. */
    for (int t = 0; t < 1000 && atomic_load(&o.calls) < accepted + small; t++) osp_sleep(5);
    CHECK(atomic_load(&o.calls) == accepted + small && atomic_load(&o.out_of_order) == 0,
          "server got %d of %d messages, %d out of order", atomic_load(&o.calls), accepted + small, atomic_load(&o.out_of_order));
    r = osp_ws_send(ws, osp_gc_strdup_c("late"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "already closed"), "send after close: %s", MSG(r));
    free(msg);
    CHECK(osp_ws_stop_server(server).tag == OSP_RESULT_SUCCESS, "stop");
    inbox_free(&b);
}

/* websocketServerSend and websocketServerBroadcast from a thread other than the loop's are
 * posted without waiting: they must still reach each client in the order they were made, and
 * all of them before the 1001 of a websocketStopServer made right after by the same thread. */
static int64_t first_conn;
static OspResult remember_conn(void *env, int64_t connection_id, const char *message) {
    (void)env;
    (void)message;
    __atomic_store_n(&first_conn, connection_id, __ATOMIC_SEQ_CST);
    return osp_result_success(0);
}

static void test_posted_server_sends_order_then_stop(void) {
    int port = free_port();
    OspResult r = osp_ws_create_server(port, osp_gc_strdup_c("127.0.0.1"), osp_gc_strdup_c("/"));
    int64_t server = r.value;
    CHECK(osp_ws_server_on_message(server, remember_conn, NULL).tag == OSP_RESULT_SUCCESS, "handler");
    CHECK(osp_ws_server_listen(server).tag == OSP_RESULT_SUCCESS, "listen");
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    inbox a, b;
    inbox_init(&a);
    inbox_init(&b);
    r = osp_ws_connect(osp_gc_strdup_c(url), on_message, &a);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "connect a: %s", MSG(r));
    int64_t wa = r.value;
    r = osp_ws_connect(osp_gc_strdup_c(url), on_message, &b);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "connect b: %s", MSG(r));
    int64_t wb = r.value;
    CHECK(wait_open_connections(server, 2, 3000), "2 connections open");
    osp_ws_send(wa, osp_gc_strdup_c("hello"));
    for (int t = 0; t < 600 && __atomic_load_n(&first_conn, __ATOMIC_SEQ_CST) == 0; t++) osp_sleep(5);
    int64_t conn = __atomic_load_n(&first_conn, __ATOMIC_SEQ_CST);
    CHECK(conn != 0, "the handler saw client a's connection");
    enum { N = 60 };
    char text[32];
    for (int i = 0; i < N; i++) {
        snprintf(text, sizeof text, "%c%03d", i % 2 ? 's' : 'b', i);
        r = i % 2 ? osp_ws_server_send(server, conn, osp_gc_strdup_c(text)) : osp_ws_server_broadcast(server, osp_gc_strdup_c(text));
        CHECK(r.tag == OSP_RESULT_SUCCESS, "posted %s: %s", text, MSG(r));
    }
    r = osp_ws_server_send(server, conn + 1000, osp_gc_strdup_c("x"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "has no connection"), "unknown connection: %s", MSG(r));
    r = osp_ws_stop_server(server);
    CHECK(r.tag == OSP_RESULT_SUCCESS, "stop: %s", MSG(r));
    CHECK(wait_state(wa, OSP_WS_STATE_CLOSED, 6000) && wait_state(wb, OSP_WS_STATE_CLOSED, 6000), "both closed");
    CHECK(inbox_wait(&a, N, 100), "a got all %d messages before the close", N);
    CHECK(inbox_wait(&b, N / 2, 100), "b got all %d broadcasts before the close", N / 2);
    int bad = 0;
    for (int i = 0, j = 0; i < N; i++) {
        snprintf(text, sizeof text, "%c%03d", i % 2 ? 's' : 'b', i);
        if (!inbox_at(&a, i) || strcmp(inbox_at(&a, i), text) != 0) bad++;
        if (i % 2 == 0 && (!inbox_at(&b, j++) || strcmp(inbox_at(&b, j - 1), text) != 0)) bad++;
    }
    CHECK(bad == 0, "posted sends and broadcasts arrived in order (%d misplaced)", bad);
    r = osp_ws_server_send(server, conn, osp_gc_strdup_c("late"));
    CHECK(r.tag == OSP_RESULT_ERROR && check_contains(MSG(r), "unknown server id"), "send after stop: %s", MSG(r));
    inbox_free(&a);
    inbox_free(&b);
}

int main(void) {
    osp_rt_init(OSP_ABI_VERSION);
    test_handler_env_survives_gc();
    test_errors();
    test_echo_and_close();
    test_broadcast_stop_rebind();
    test_async_send_order_cap_close();
    test_posted_server_sends_order_then_stop();
    int status = check_summary("test_ws_e2e");
    status = osp_rt_shutdown(status);
    inbox_free(&left_open);
    return status;
}
