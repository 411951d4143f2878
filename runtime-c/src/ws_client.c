/*
 * WebSocket client connections: websocketConnect, websocketSend, websocketClose
 * (spec/0016 §16.3, docs/guide/15-websockets.md).
 *
 * websocketConnect does the TCP connect and the opening handshake on the calling thread with
 * a deadline (so a program may connect to a server it runs itself: that server is served by
 * the loop thread meanwhile), then hands the socket to the loop thread. From a fiber (a message
 * handler included) the call runs on a helper thread while the fiber is parked.
 *
 * The handler is called in a fiber (ws_inbox.c) once per received message, in order: a handler
 * of type fn(String) or fn(Int, String) gets text messages only (binary ones are not passed to
 * it), fn(Int, WebSocketMessage) gets every data message. websocketOnClose adds a close event
 * after the last message. A handler returning Error is reported on stderr; the connection stays
 * open.
 */
#include "ws_internal.h"
#include "net.h"
#include "ws_handshake.h"
#include "ws_tls.h"
#include "ws_url.h"
#include "fiber.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void client_deliver(osp_ws_conn *c, uint8_t opcode, const uint8_t *data, size_t len) {
    if (!osp_ws_msg_handler_takes(&c->handler, opcode)) return;
    osp_ws_inbox_deliver(c, opcode, data, len);
}

/* What a client connection reports (ws_conn.c calls up through it). */
/* The connection ended: its close event (websocketOnClose) goes behind its last message. */
static void client_conn_gone(osp_ws_conn *c) { osp_ws_inbox_close_event(c); }

static const osp_ws_conn_owner client_conn_owner = {
    .deliver = client_deliver,
    .ingested = osp_ws_inbox_hand_over,
    .gone = client_conn_gone,
    .output_pressure = osp_ws_inbox_output_pressure,
    .freed = osp_ws_inbox_conn_freed,
};

/* ---- websocketConnect ---------------------------------------------------------------------- */

typedef struct {
    int fd;
    SSL *tls; /* wss://: owned by the connection once registered (NULL afterwards) */
    osp_ws_msg_handler handler;
    void *env;
    const osp_ws_limits *limits; /* the snapshot the handshake used */
    uint8_t *leftover; /* frames that came with the 101 (docs/WEBSOCKET-RUNTIME.md C-H8) */
    size_t leftover_len;
    OspResult result;
} register_args;

static void do_register(void *p) {
    register_args *a = p;
    void **cell = GC_MALLOC_UNCOLLECTABLE(sizeof(void *));
    osp_ws_conn *c = cell ? osp_ws_conn_new(a->fd, OSP_WS_ROLE_CLIENT, OSP_WS_CONN_OPEN, a->limits, &client_conn_owner) : NULL;
    if (c == NULL) {
        if (cell) GC_FREE(cell);
        a->result = osp_result_errorf("websocketConnect: out of memory");
        return;
    }
    /* Uncollectable: a root for the collector, so the handler's environment lives as long as
     * the connection even when compiled code no longer references it. */
    *cell = a->env;
    c->handler_env_cell = cell;
    c->handler = a->handler;
    c->tls = a->tls;
    a->tls = NULL;
    c->id = osp_ws_registry_add(OSP_WS_KIND_CLIENT, c, 0);
    a->fd = -1; /* owned by the connection from here on */
    if (c->id == 0 || osp_ws_conn_start(c) != 0) {
        osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
        a->result = osp_result_errorf("websocketConnect: cannot register the connection: %s",
                                      c->id == 0 ? "out of memory" : strerror(errno));
        return;
    }
    osp_ws_conn_opened(c);
    a->result = osp_result_success(c->id);
    if (a->leftover_len) osp_ws_conn_ingest(c, a->leftover, a->leftover_len);
    /* Records OpenSSL decrypted past the 101 raise no epoll event: read them next turn. */
    if (c->tls && c->state != OSP_WS_CONN_DEAD && SSL_pending(c->tls) > 0) osp_ws_timer_arm(&c->tls_kick, 0);
    osp_ws_conn_flush(c);
}

/* Printable copy of the server's reason phrase (it is untrusted text). */
static void sanitize(const char *in, size_t n, char *out, size_t outlen) {
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < outlen; i++) {
        unsigned char ch = (unsigned char)in[i];
        out[j++] = (ch >= 0x20 && ch < 0x7F) ? (char)ch : '?';
    }
    out[j] = '\0';
}

static OspResult connect_now(const char *url, osp_ws_msg_handler handler, void *handler_env);

typedef struct {
    const char *url;
    osp_ws_msg_handler handler;
    void *handler_env;
    OspResult result;
} connect_job_args;

static void connect_job(void *arg) {
    connect_job_args *a = arg;
    a->result = connect_now(a->url, a->handler, a->handler_env);
}

/* The handshake waits for the network: the calling fiber parks, not its worker. */
static OspResult connect_shaped(const char *url, osp_ws_msg_handler handler, void *handler_env) {
    connect_job_args a = {url, handler, handler_env, {0, 0}};
    osp_sched_run_blocking(connect_job, &a);
    return a.result;
}

OspResult osp_ws_connect(const char *url, osp_message_handler_fn handler, void *handler_env) {
    osp_ws_msg_handler h = {OSP_WS_SHAPE_TEXT, {.text = handler}};
    return connect_shaped(url, h, handler_env);
}

OspResult osp_ws_connect_with_id(const char *url, osp_server_message_handler_fn handler, void *handler_env) {
    osp_ws_msg_handler h = {OSP_WS_SHAPE_ID_TEXT, {.id_text = handler}};
    return connect_shaped(url, h, handler_env);
}

OspResult osp_ws_connect_messages(const char *url, osp_ws_message_handler_fn handler, void *handler_env) {
    osp_ws_msg_handler h = {OSP_WS_SHAPE_MESSAGE, {.message = handler}};
    return connect_shaped(url, h, handler_env);
}

static OspResult connect_now(const char *url, osp_ws_msg_handler handler, void *handler_env) {
    static const char fn[] = "websocketConnect";
    if (url == NULL) return osp_result_errorf("%s: the URL is null", fn);
    OspResult refused;
    if (osp_str_refuse_nul(fn, "URL", url, &refused)) return refused;
    if (!osp_ws_msg_handler_set(&handler)) return osp_result_errorf("%s: the message handler is null", fn);
    osp_ws_url u;
    const char *bad = osp_ws_url_parse(url, &u);
    if (bad) return osp_result_errorf("%s: bad URL \"%s\": %s", fn, url, bad);
    OspResult result;
    if (!osp_ws_runtime_ensure(fn, &result)) return result;
    /* One copy of the limits for the whole connection (websocketSetDefaultLimit may change the
     * process default meanwhile, on another thread). */
    osp_ws_limits snap;
    osp_ws_limits_snapshot(&snap);
    const osp_ws_limits *lim = &snap;
    const char *lb = u.host_is_ipv6 ? "[" : "", *rb = u.host_is_ipv6 ? "]" : "";
    uint64_t deadline = osp_ws_now_ms() + lim->handshake_timeout_ms;
    char why[300];
    int fd = osp_ws_net_connect(u.host, u.port, deadline, why, sizeof why);
    if (fd < 0) return osp_result_errorf("%s: %s", fn, why);
    SSL *tls = NULL;
    if (u.secure) {
        /* wss:// (RFC 6455 §3, §4.1 item 5): TLS first, certificate and host name verified. */
        bool is_ip = u.host_is_ipv6 || strspn(u.host, "0123456789.") == strlen(u.host);
        tls = osp_ws_tls_client_handshake(fd, u.host, is_ip, deadline, why, sizeof why);
        if (tls == NULL) {
            close(fd);
            return osp_result_errorf("%s: %s%s%s:%d: %s", fn, lb, u.host, rb, u.port, why);
        }
    }

    char key[OSP_WS_KEY_LEN + 1];
    osp_ws_buf request = {0};
    osp_http_parser resp;
    osp_http_parser_init(&resp, true, lim);
    uint8_t buf[4096];
    size_t leftover_off = 0, leftover_len = 0;
    if (!osp_ws_make_key(key)) {
        result = osp_result_errorf("%s: cannot make a handshake key: OpenSSL RAND_bytes failed", fn);
        goto fail;
    }
    if (osp_ws_handshake_write_request(u.host_header, u.resource, key, &request) != 0) {
        result = osp_result_errorf("%s: out of memory", fn);
        goto fail;
    }
    if ((tls ? osp_ws_tls_write_all(tls, fd, request.data, request.len, deadline)
             : osp_ws_net_write_all(fd, request.data, request.len, deadline)) != 0) {
        result = errno == ETIMEDOUT
                     ? osp_result_errorf("%s: handshake with %s%s%s:%d timed out after %u ms", fn, lb,
                                         u.host, rb, u.port, lim->handshake_timeout_ms)
                     : osp_result_errorf("%s: sending the handshake to %s%s%s:%d failed: %s", fn, lb,
                                         u.host, rb, u.port, strerror(errno));
        goto fail;
    }
    /* Read until the response head is complete; nothing is sent before the 101 is validated
     * (docs/WEBSOCKET-RUNTIME.md C-F5). */
    for (;;) {
        ssize_t n = tls ? osp_ws_tls_read_some(tls, fd, buf, sizeof buf, deadline)
                        : osp_ws_net_read_some(fd, buf, sizeof buf, deadline);
        if (n < 0) {
            result = errno == ETIMEDOUT
                         ? osp_result_errorf("%s: handshake with %s%s%s:%d timed out after %u ms", fn, lb,
                                             u.host, rb, u.port, lim->handshake_timeout_ms)
                         : osp_result_errorf("%s: reading the handshake response from %s%s%s:%d failed: %s",
                                             fn, lb, u.host, rb, u.port, strerror(errno));
            goto fail;
        }
        if (n == 0) {
            result = osp_result_errorf("%s: %s%s%s:%d closed the connection during the handshake "
                                       "(is it a WebSocket server?)", fn, lb, u.host, rb, u.port);
            goto fail;
        }
        size_t used = 0;
        osp_http_status st = osp_http_parse(&resp, buf, (size_t)n, &used);
        if (st == OSP_HTTP_ERROR) {
            result = osp_result_errorf("%s: handshake with %s%s%s:%d failed: malformed HTTP response (%s)",
                                       fn, lb, u.host, rb, u.port, resp.error_text);
            goto fail;
        }
        if (st == OSP_HTTP_DONE) {
            leftover_off = used;
            leftover_len = (size_t)n - used;
            break;
        }
    }
    int status = 0;
    const char *problem = osp_ws_handshake_check_response(&resp, key, &status);
    if (problem) {
        if (status != 101) {
            size_t rn;
            const char *reason = osp_http_part(&resp, 2, &rn);
            char clean[80];
            sanitize(reason, rn, clean, sizeof clean);
            result = osp_result_errorf("%s: handshake refused by %s%s%s:%d: server answered HTTP %d%s%s",
                                       fn, lb, u.host, rb, u.port, status, clean[0] ? " " : "", clean);
        } else {
            result = osp_result_errorf("%s: handshake with %s%s%s:%d failed: %s", fn, lb, u.host, rb,
                                       u.port, problem);
        }
        goto fail;
    }
    osp_http_parser_free(&resp);
    osp_ws_buf_free(&request);
    register_args a = {fd, tls, handler, handler_env, lim, buf + leftover_off, leftover_len, {0, 0}};
    if (!osp_ws_loop_call(do_register, &a)) a.result = osp_ws_shut_down_error(fn);
    SSL_free(a.tls); /* not taken over (out of memory, or the program is exiting) */
    if (a.fd >= 0) close(a.fd);
    osp_ws_wipe(buf, sizeof buf);
    return a.result;

fail:
    SSL_free(tls);
    close(fd);
    osp_http_parser_free(&resp);
    osp_ws_buf_free(&request);
    osp_ws_wipe(buf, sizeof buf);
    return result;
}

/* ---- websocketSend / websocketClose -------------------------------------------------------- */

/* Finds a live client connection or explains why not. */
static osp_ws_conn *lookup_client(const char *fn, int64_t id, OspResult *err) {
    osp_ws_entry found;
    const osp_ws_entry *e = osp_ws_registry_find(id, &found) ? &found : NULL;
    if (e == NULL) {
        *err = osp_result_errorf("%s: unknown connection id %" PRId64, fn, id);
        return NULL;
    }
    if (e->kind == OSP_WS_KIND_SERVER) {
        *err = osp_result_errorf("%s: %" PRId64 " is a server id, not a connection id", fn, id);
        return NULL;
    }
    if (e->kind == OSP_WS_KIND_SERVER_CONN) {
        *err = osp_result_errorf("%s: %" PRId64 " is a connection accepted by server %" PRId64
                                 "; use websocketServerSend", fn, id, e->owner);
        return NULL;
    }
    if (e->object == NULL) {
        *err = osp_result_errorf("%s: connection %" PRId64 " is already closed (code %u)", fn, id, e->code);
        return NULL;
    }
    return e->object;
}

typedef struct {
    int64_t id;
    const char *fn;  /* websocketSend or websocketSendBinary */
    uint8_t opcode;
    const char *message;
    size_t len;
    OspResult result;
} client_send_args;

static void do_send(void *p) {
    client_send_args *a = p;
    const char *fn = a->fn;
    osp_ws_conn *c = lookup_client(fn, a->id, &a->result);
    if (c == NULL) return;
    /* Frames the program's threads posted first go first, and count against the cap. */
    osp_ws_tx_drain(c);
    a->result = osp_ws_send_permission(c, fn, a->id, !osp_ws_conn_accepts_data(c),
                                       osp_ws_conn_pending(c), a->len);
    if (a->result.tag != OSP_RESULT_SUCCESS) return;
    int rc = osp_ws_conn_queue_frame(c, a->opcode, (const uint8_t *)a->message, a->len);
    if (rc == OSP_WS_BUF_OVER_BUDGET) {
        a->result = osp_ws_budget_error(fn);
        return;
    }
    if (rc != 0) {
        a->result = osp_result_errorf("%s: cannot queue the frame (out of memory, or OpenSSL RAND_bytes "
                                      "failed to make a masking key)", fn);
        return;
    }
    osp_ws_conn_flush(c);
    a->result = osp_result_success(0);
}

/* websocketSend and websocketSendBinary once the message is checked (a.len set). */
static OspResult client_send(client_send_args a) {
    const char *fn = a.fn;
    int64_t ws_id = a.id;
    const char *message = a.message;
    OspResult err;
    if (!osp_ws_runtime_ensure(fn, &err)) return err;
    if (osp_ws_loop_on_thread()) {
        /* On the loop thread itself: the connection is this thread's; queue and flush at once. */
        do_send(&a);
        return a.result;
    }
    /* Any other thread does not wait for the loop (FINDINGS.md, "Client side"): it checks the
     * id and the connection's state under osp_ws_tx_lock (the loop retires ids and marks
     * closing connections under it too), encodes and masks the frame into the connection's
     * posted queue, and wakes the loop only when that makes the list of such queues non-empty.
     * Order is kept: one queue per connection, taken before any command (websocketClose) the
     * same thread posts later, and before the loop queues a Close. */
    bool wake = false;
    osp_ws_loop *loop = NULL; /* the connection's (loops are never freed) */
    pthread_mutex_lock(&osp_ws_tx_lock);
    osp_ws_conn *c = lookup_client(fn, ws_id, &a.result);
    if (c != NULL) {
        loop = c->loop;
        a.result = osp_ws_tx_post(c, fn, ws_id, a.opcode, message, a.len, &wake);
    }
    pthread_mutex_unlock(&osp_ws_tx_lock);
    if (wake) osp_ws_loop_wake_on(loop);
    return a.result;
}

OspResult osp_ws_send(int64_t ws_id, const char *message) {
    client_send_args a = {ws_id, "websocketSend", OSP_WS_OP_TEXT, message, 0, {0, 0}};
    OspResult err;
    if (!osp_ws_check_outgoing(a.fn, message, &a.len, &err)) return err;
    return client_send(a);
}

OspResult osp_ws_send_binary(int64_t ws_id, const char *data) {
    client_send_args a = {ws_id, "websocketSendBinary", OSP_WS_OP_BINARY, data, 0, {0, 0}};
    OspResult err;
    if (!osp_ws_check_outgoing_binary(a.fn, data, &a.len, &err)) return err;
    return client_send(a);
}

/* ---- websocketOnClose ----------------------------------------------------------------------- */

typedef struct {
    int64_t id;
    osp_ws_close_handler_fn handler;
    void *env;
    OspResult result;
} on_close_args;

static void do_on_close(void *p) {
    on_close_args *a = p;
    static const char fn[] = "websocketOnClose";
    osp_ws_conn *c = lookup_client(fn, a->id, &a->result);
    if (c == NULL) return;
    if (c->events == NULL) {
        /* Uncollectable: a root for the handler's environment while the connection lives. */
        c->events = GC_MALLOC_UNCOLLECTABLE(sizeof *c->events);
        if (c->events == NULL) {
            a->result = osp_result_errorf("%s: out of memory", fn);
            return;
        }
        memset(c->events, 0, sizeof *c->events);
    }
    c->events->close = a->handler;
    c->events->close_env = a->env;
    c->close_event_owed = true;
    a->result = osp_result_success(0);
}

OspResult osp_ws_on_close(int64_t ws_id, osp_ws_close_handler_fn handler, void *handler_env) {
    static const char fn[] = "websocketOnClose";
    if (handler == NULL) return osp_result_errorf("%s: the handler is null", fn);
    OspResult err;
    if (!osp_ws_runtime_ensure(fn, &err)) return err;
    on_close_args a = {ws_id, handler, handler_env, {0, 0}};
    if (!osp_ws_loop_call(do_on_close, &a)) return osp_ws_shut_down_error(fn);
    return a.result;
}

static void do_close(void *p) {
    osp_ws_waited_call *a = p;
    osp_ws_conn *c = lookup_client("websocketClose", a->id, &a->result);
    if (c == NULL) return;
    /* RFC 6455 §7.1.2: start the closing handshake with 1000 (a close the peer started is
     * simply waited for). Once this runs no data message is delivered any more. */
    osp_ws_conn_start_close(c, OSP_WS_CLOSE_NORMAL, NULL);
    if (c->state == OSP_WS_CONN_DEAD) a->wait = false;
    if (a->wait) osp_ws_conn_add_waiter(c, &a->waiter);
    a->result = osp_result_success(0);
}

/* Returns when the handler can no longer be called (called from a handler fiber it does not wait
 * for handler calls in progress: see ws_inbox.c). */
typedef struct {
    int64_t id;
    OspResult result;
    osp_fiber *caller; /* the fiber calling websocketClose: a handler does not wait for handlers */
} close_job_args;

static void close_job(void *arg) {
    close_job_args *a = arg;
    a->result = osp_ws_loop_call_waited("websocketClose", a->id, do_close);
    if (a->result.tag == OSP_RESULT_SUCCESS) osp_ws_inbox_quiesce(a->id, 0, a->caller);
}

OspResult osp_ws_close(int64_t ws_id) {
    close_job_args a = {ws_id, {0, 0}, osp_fiber_self()};
    osp_sched_run_blocking(close_job, &a);
    return a.result;
}

/* ---- internal queries (runtime.h) ---------------------------------------------------------- */

typedef struct {
    int64_t id;
    int state;
    int64_t count;
} query_args;

/* On the loop of the object asked about (a connection's own; for a server, each loop in turn,
 * adding its open connections there to the count). */
static void do_state(void *p) {
    query_args *a = p;
    osp_ws_entry found;
    const osp_ws_entry *e = osp_ws_registry_find(a->id, &found) ? &found : NULL;
    if (e == NULL) {
        a->state = OSP_WS_STATE_UNKNOWN;
        return;
    }
    if (e->object == NULL) {
        a->state = OSP_WS_STATE_CLOSED;
        return;
    }
    if (e->kind == OSP_WS_KIND_SERVER) {
        /* Alive while this loop runs: it is freed only once every loop has stopped its part. */
        osp_ws_server *s = e->object;
        a->state = OSP_WS_STATE_OPEN;
        if (a->count < 0) a->count = 0;
        for (osp_ws_conn *c = s->loop_conns[osp_ws_loop_current()->index]; c; c = c->srv_next)
            if (c->state == OSP_WS_CONN_OPEN) a->count++;
        return;
    }
    if (osp_ws_loop_at(e->loop) != osp_ws_loop_current()) return; /* the caller asked the right loop */
    osp_ws_conn *c = e->object;
    a->state = osp_ws_conn_accepts_data(c) ? OSP_WS_STATE_OPEN : OSP_WS_STATE_CLOSING;
}

int osp_ws_connection_state(int64_t id) {
    if (!osp_ws_loop_running()) return id > 0 ? OSP_WS_STATE_CLOSED : OSP_WS_STATE_UNKNOWN;
    query_args a = {id, OSP_WS_STATE_UNKNOWN, 0};
    osp_ws_entry e;
    osp_ws_loop *L = osp_ws_registry_find(id, &e) ? osp_ws_loop_at(e.loop) : osp_ws_loop_main();
    if (!osp_ws_loop_call_on(L, do_state, &a)) return id > 0 ? OSP_WS_STATE_CLOSED : OSP_WS_STATE_UNKNOWN;
    return a.state;
}

int64_t osp_ws_server_open_connections(int64_t server_id) {
    if (!osp_ws_loop_running()) return -1;
    query_args a = {server_id, OSP_WS_STATE_UNKNOWN, -1}; /* stays -1 unless it is a server */
    unsigned n = osp_ws_loop_count();
    for (unsigned i = 0; i < n; i++) {
        if (!osp_ws_loop_call_on(osp_ws_loop_at(i), do_state, &a)) return -1;
        if (a.state != OSP_WS_STATE_OPEN) return -1;
    }
    return a.count;
}


/* ---- websocketSetTrustedCA ------------------------------------------------------------------ */

OspResult osp_ws_set_trusted_ca(const char *path) {
    static const char fn[] = "websocketSetTrustedCA";
    if (path == NULL) return osp_result_errorf("%s: the path is null", fn);
    OspResult refused;
    if (osp_str_refuse_nul(fn, "path", path, &refused)) return refused;
    char why[600];
    if (!osp_ws_tls_set_trusted_ca(path, why, sizeof why)) return osp_result_errorf("%s: %s", fn, why);
    return osp_result_success(0);
}
