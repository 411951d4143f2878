/*
 * WebSocket servers: websocketCreateServer, websocketServerListen, websocketServerOnMessage,
 * websocketServerSend, websocketServerBroadcast, websocketStopServer (spec/0016 §16.4,
 * LANGUAGE.md §14.1), the accept path and the server side of the opening handshake.
 *
 * With no handler registered a server echoes every data message to its sender, same opcode,
 * byte for byte (LANGUAGE.md §14.1 project decision). A registered handler receives each text
 * message instead (as a NUL-terminated copy: text after an embedded NUL is not visible to it);
 * binary messages are then ignored.
 */
#include "ws_internal.h"
#include "net.h"
#include "ws_handshake.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static osp_ws_server *server_of_watch(osp_ws_watch *w) {
    return (osp_ws_server *)((char *)w - offsetof(osp_ws_server, listen_watch));
}
static osp_ws_server *server_of_timer(osp_ws_timer *t) {
    return (osp_ws_server *)((char *)t - offsetof(osp_ws_server, accept_retry));
}

/* ---- accepting ----------------------------------------------------------------------------- */

static void refuse_busy(int fd) {
    static const char busy[] =
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    (void)osp_ws_net_send(fd, busy, sizeof busy - 1); /* best effort: the socket is fresh */
    close(fd);
}

static void accept_ready(osp_ws_watch *w, uint32_t events) {
    (void)events;
    osp_ws_server *s = server_of_watch(w);
    const osp_ws_limits *lim = osp_ws_limits_get();
    for (int i = 0; i < 64 && s->listening; i++) {
        int fd = accept4(s->listen_watch.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: pause accepting for a moment instead of spinning on a
                 * level-triggered listening socket. */
                if (osp_ws_watch_set(&s->listen_watch, 0) == 0)
                    osp_ws_timer_arm(&s->accept_retry, 100);
            }
            return; /* EAGAIN: nothing more to accept */
        }
        /* Connection limit (WEBSOCKET.md §3.2), applied at accept. */
        if (s->conn_count >= lim->max_connections) {
            refuse_busy(fd);
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        osp_ws_conn *c = osp_ws_conn_new(fd, OSP_WS_ROLE_SERVER, OSP_WS_CONN_HANDSHAKE);
        if (c != NULL) {
            c->http = malloc(sizeof *c->http);
            if (c->http) osp_http_parser_init(c->http, false, lim);
        }
        if (c == NULL || c->http == NULL || osp_ws_conn_start(c) != 0) {
            if (c) {
                c->state = OSP_WS_CONN_DEAD; /* never registered: free directly */
                close(fd);
                osp_ws_live_conns_add(-1);
                osp_ws_conn_free(c);
            } else {
                close(fd);
            }
            continue;
        }
        c->server = s;
        c->srv_next = s->conns;
        if (s->conns) s->conns->srv_prev = c;
        s->conns = c;
        s->conn_count++;
        c->id = osp_ws_registry_add(OSP_WS_KIND_SERVER_CONN, c, s->id);
        if (c->id == 0) {
            osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
            continue;
        }
        /* Slowloris defence: the whole request must arrive within the handshake deadline. */
        osp_ws_timer_arm(&c->timer, lim->handshake_timeout_ms);
    }
}

static void accept_retry_fire(osp_ws_timer *t) {
    osp_ws_server *s = server_of_timer(t);
    if (s->listening && osp_ws_watch_set(&s->listen_watch, EPOLLIN) != 0)
        osp_ws_timer_arm(&s->accept_retry, 100);
}

/* ---- handshake ----------------------------------------------------------------------------- */

static void handshake_refuse(osp_ws_conn *c, const osp_ws_server_verdict *v) {
    osp_http_parser_free(c->http);
    free(c->http);
    c->http = NULL;
    if (osp_ws_handshake_write_response(v, &c->out) != 0) {
        osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
        return;
    }
    /* RFC 6455 §4.2.1: after a failed handshake the server answers and closes; no frames. */
    c->state = OSP_WS_CONN_CLOSED_WAIT;
    c->fin_after_flush = true;
    osp_ws_timer_arm(&c->timer, osp_ws_limits_get()->close_timeout_ms);
    osp_ws_conn_flush(c);
}

void osp_ws_server_handshake_input(osp_ws_conn *c, uint8_t *data, size_t len) {
    size_t used = 0;
    osp_http_status st = osp_http_parse(c->http, data, len, &used);
    if (st == OSP_HTTP_INCOMPLETE) return;
    osp_ws_server_verdict v;
    if (st == OSP_HTTP_ERROR) {
        memset(&v, 0, sizeof v);
        v.status = c->http->error_status;
        v.reason = osp_ws_http_reason(v.status);
        v.detail = c->http->error_text;
        handshake_refuse(c, &v);
        return;
    }
    osp_ws_handshake_check_request(c->http, c->server->path, &v);
    if (v.status != 101) {
        handshake_refuse(c, &v);
        return;
    }
    osp_http_parser_free(c->http); /* wipes the request: it may hold cookies or tokens */
    free(c->http);
    c->http = NULL;
    if (osp_ws_handshake_write_response(&v, &c->out) != 0) {
        osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
        return;
    }
    osp_ws_conn_opened(c);
    /* WEBSOCKET.md S-H13: bytes after the request in the same read are already frames. */
    if (used < len) osp_ws_conn_ingest(c, data + used, len - used);
    /* The caller (the read path) flushes the 101 and any answers. */
}

/* ---- messages ------------------------------------------------------------------------------ */

void osp_ws_server_deliver(osp_ws_conn *c, uint8_t opcode, const uint8_t *data, size_t len) {
    osp_ws_server *s = c->server;
    if (s->handler == NULL) {
        /* Default: echo, same opcode, byte for byte. */
        if (osp_ws_conn_queue_frame(c, opcode, data, len) != 0)
            osp_ws_conn_fail(c, OSP_WS_CLOSE_INTERNAL_ERROR, "out of memory");
        return;
    }
    if (opcode != OSP_WS_OP_TEXT) return; /* the handler takes text only */
    const char *message = osp_gc_strndup((const char *)data, len);
    osp_server_message_handler_fn fn = s->handler;
    void *env = *s->handler_env_cell;
    int64_t server_id = s->id;
    int64_t previous = osp_ws_handler_conn_id;
    osp_ws_handler_conn_id = c->id;
    OspResult r = fn(env, c->id, message);
    osp_ws_handler_conn_id = previous;
    if (r.tag != OSP_RESULT_SUCCESS) {
        const char *why = r.value ? (const char *)(intptr_t)r.value : "(no message)";
        osp_output_lock();
        fflush(stdout);
        fprintf(stderr, "websocket server %" PRId64 " connection %" PRId64 ": handler error: %s\n",
                server_id, c->id, why);
        fflush(stderr);
        osp_output_unlock();
    }
}

/* A stopped server's last connection is gone: wake websocketStopServer, free it later. */
static void server_finish(osp_ws_server *s) {
    osp_ws_waiters_signal_all(&s->stop_waiters);
    osp_ws_zombie_server(s);
}

void osp_ws_server_conn_gone(osp_ws_conn *c) {
    osp_ws_server *s = c->server;
    if (c->srv_prev) c->srv_prev->srv_next = c->srv_next;
    else s->conns = c->srv_next;
    if (c->srv_next) c->srv_next->srv_prev = c->srv_prev;
    c->srv_prev = c->srv_next = NULL;
    c->server = NULL;
    s->conn_count--;
    if (s->stopping && s->conn_count == 0) server_finish(s);
}

void osp_ws_server_free(osp_ws_server *s) {
    free(s->path);
    if (s->handler_env_cell) GC_FREE(s->handler_env_cell);
    free(s);
}

void osp_ws_server_stop(osp_ws_server *s, osp_ws_waiter *w) {
    s->stopping = true;
    osp_ws_registry_retire(s->id, 0);
    if (s->listening) {
        /* The listening socket goes first so no new connection slips in. */
        osp_ws_timer_cancel(&s->accept_retry);
        (void)osp_ws_watch_set(&s->listen_watch, 0);
        close(s->listen_watch.fd);
        s->listen_watch.events = 0;
        s->listening = false;
    }
    if (w) {
        w->next = s->stop_waiters;
        s->stop_waiters = w;
    }
    if (s->conn_count == 0) {
        server_finish(s); /* nothing to wait for */
        return;
    }
    /* RFC 6455 §7.4.1: 1001, the endpoint is going away. Connections still in the opening
     * handshake are simply dropped. The list changes under destroy, so walk a snapshot. */
    osp_ws_conn *c = s->conns;
    while (c) {
        osp_ws_conn *next = c->srv_next;
        if (c->state == OSP_WS_CONN_HANDSHAKE) osp_ws_conn_destroy(c, OSP_WS_CLOSE_GOING_AWAY);
        else osp_ws_conn_start_close(c, OSP_WS_CLOSE_GOING_AWAY, "server stopping");
        c = next;
    }
}

/* ---- the ABI functions --------------------------------------------------------------------- */

/* Finds a live server or explains why not. */
static osp_ws_server *lookup_server(const char *fn, int64_t id, OspResult *err) {
    const osp_ws_entry *e = osp_ws_registry_get(id);
    if (e == NULL) {
        *err = osp_result_errorf("%s: unknown server id %" PRId64, fn, id);
        return NULL;
    }
    if (e->kind != OSP_WS_KIND_SERVER) {
        *err = osp_result_errorf("%s: %" PRId64 " is a connection id, not a server id", fn, id);
        return NULL;
    }
    if (e->object == NULL) {
        *err = osp_result_errorf("%s: unknown server id %" PRId64 " (that server was stopped)", fn, id);
        return NULL;
    }
    return e->object;
}

typedef struct {
    int64_t port;
    const char *address;
    const char *path;
    OspResult result;
} create_args;

static void do_create(void *p) {
    create_args *a = p;
    osp_ws_server *s = calloc(1, sizeof *s);
    char *path = strdup(a->path);
    if (s == NULL || path == NULL) {
        free(s);
        free(path);
        a->result = osp_result_errorf("websocketCreateServer: out of memory");
        return;
    }
    s->port = (int)a->port;
    snprintf(s->address, sizeof s->address, "%s", a->address);
    s->path = path;
    s->listen_watch.fd = -1;
    s->listen_watch.on_event = accept_ready;
    osp_ws_timer_init(&s->accept_retry, accept_retry_fire);
    s->id = osp_ws_registry_add(OSP_WS_KIND_SERVER, s, 0);
    if (s->id == 0) {
        osp_ws_server_free(s);
        a->result = osp_result_errorf("websocketCreateServer: out of memory");
        return;
    }
    a->result = osp_result_success(s->id);
}

OspResult osp_ws_create_server(int64_t port, const char *address, const char *path) {
    static const char fn[] = "websocketCreateServer";
    if (port < 1 || port > 65535)
        return osp_result_errorf("%s: port %" PRId64 " is out of range (1-65535)", fn, port);
    if (address == NULL) return osp_result_errorf("%s: the address is null", fn);
    if (path == NULL) return osp_result_errorf("%s: the path is null", fn);
    if (strlen(address) >= 64 || !osp_ws_net_address_valid(address))
        return osp_result_errorf("%s: address \"%s\" is not a valid IPv4 or IPv6 address "
                                 "(use e.g. \"127.0.0.1\", \"0.0.0.0\", \"::1\" or \"localhost\")",
                                 fn, address);
    if (path[0] != '/')
        return osp_result_errorf("%s: path \"%s\" must start with '/' (e.g. \"/chat\")", fn, path);
    size_t plen = strlen(path);
    if (plen > 2048) return osp_result_errorf("%s: path is longer than 2048 bytes", fn);
    for (size_t i = 0; i < plen; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch <= 0x20 || ch >= 0x7F || ch == '?' || ch == '#')
            return osp_result_errorf("%s: path \"%s\" may not contain spaces, control or non-ASCII "
                                     "characters, '?' or '#'", fn, path);
    }
    OspResult err;
    if (!osp_ws_runtime_ensure(fn, &err)) return err;
    create_args a = {port, address, path, {0, 0}};
    osp_ws_loop_call(do_create, &a);
    return a.result;
}

typedef struct {
    int64_t id;
    OspResult result;
} id_args;

static void do_listen(void *p) {
    id_args *a = p;
    static const char fn[] = "websocketServerListen";
    osp_ws_server *s = lookup_server(fn, a->id, &a->result);
    if (s == NULL) return;
    if (s->listening) {
        bool v6 = strchr(s->address, ':') != NULL;
        a->result = osp_result_errorf("%s: server %" PRId64 " is already listening on %s%s%s:%d", fn,
                                      s->id, v6 ? "[" : "", s->address, v6 ? "]" : "", s->port);
        return;
    }
    char why[200];
    int fd = osp_ws_net_listen(s->address, s->port, why, sizeof why);
    if (fd < 0) {
        a->result = osp_result_errorf("%s: %s", fn, why);
        return;
    }
    s->listen_watch.fd = fd;
    if (osp_ws_watch_set(&s->listen_watch, EPOLLIN) != 0) {
        close(fd);
        s->listen_watch.fd = -1;
        a->result = osp_result_errorf("%s: cannot watch the listening socket: %s", fn, strerror(errno));
        return;
    }
    s->listening = true;
    a->result = osp_result_success(0);
}

OspResult osp_ws_server_listen(int64_t server_id) {
    OspResult err;
    if (!osp_ws_runtime_ensure("websocketServerListen", &err)) return err;
    id_args a = {server_id, {0, 0}};
    osp_ws_loop_call(do_listen, &a);
    return a.result;
}

typedef struct {
    int64_t id;
    osp_server_message_handler_fn handler;
    void *env;
    OspResult result;
} on_message_args;

static void do_on_message(void *p) {
    on_message_args *a = p;
    osp_ws_server *s = lookup_server("websocketServerOnMessage", a->id, &a->result);
    if (s == NULL) return;
    if (s->handler_env_cell == NULL) {
        /* Uncollectable: a root for the collector, so the closure environment lives as long as
         * the server even when compiled code no longer references it. */
        s->handler_env_cell = GC_MALLOC_UNCOLLECTABLE(sizeof(void *));
        if (s->handler_env_cell == NULL) {
            a->result = osp_result_errorf("websocketServerOnMessage: out of memory");
            return;
        }
    }
    *s->handler_env_cell = a->env;
    s->handler = a->handler;
    a->result = osp_result_success(0);
}

OspResult osp_ws_server_on_message(int64_t server_id, osp_server_message_handler_fn handler,
                                   void *handler_env) {
    if (handler == NULL) return osp_result_errorf("websocketServerOnMessage: the handler is null");
    OspResult err;
    if (!osp_ws_runtime_ensure("websocketServerOnMessage", &err)) return err;
    on_message_args a = {server_id, handler, handler_env, {0, 0}};
    osp_ws_loop_call(do_on_message, &a);
    return a.result;
}

typedef struct {
    int64_t server_id;
    int64_t conn_id;
    const char *message;
    size_t len;
    OspResult result;
} send_args;

static void do_server_send(void *p) {
    send_args *a = p;
    static const char fn[] = "websocketServerSend";
    osp_ws_server *s = lookup_server(fn, a->server_id, &a->result);
    if (s == NULL) return;
    const osp_ws_entry *e = osp_ws_registry_get(a->conn_id);
    if (e == NULL || e->kind != OSP_WS_KIND_SERVER_CONN || e->owner != s->id) {
        a->result = osp_result_errorf("%s: server %" PRId64 " has no connection %" PRId64, fn, s->id,
                                      a->conn_id);
        return;
    }
    osp_ws_conn *c = e->object;
    if (c == NULL) {
        a->result = osp_result_errorf("%s: connection %" PRId64 " is already closed (code %u)", fn,
                                      a->conn_id, e->code);
        return;
    }
    if (c->state != OSP_WS_CONN_OPEN || c->close_sent) {
        a->result = osp_result_errorf("%s: connection %" PRId64 " is %s", fn, a->conn_id,
                                      c->state == OSP_WS_CONN_HANDSHAKE ? "still in its opening handshake"
                                                                        : "closing");
        return;
    }
    const osp_ws_limits *lim = osp_ws_limits_get();
    if (osp_ws_conn_pending(c) >= lim->max_output) {
        a->result = osp_result_errorf("%s: connection %" PRId64 " has %zu bytes waiting to be sent "
                                      "(limit %llu); the peer is not reading",
                                      fn, a->conn_id, osp_ws_conn_pending(c),
                                      (unsigned long long)lim->max_output);
        return;
    }
    if (osp_ws_conn_queue_frame(c, OSP_WS_OP_TEXT, (const uint8_t *)a->message, a->len) != 0) {
        a->result = osp_result_errorf("%s: out of memory", fn);
        return;
    }
    osp_ws_conn_flush(c);
    a->result = osp_result_success(0);
}

OspResult osp_ws_server_send(int64_t server_id, int64_t connection_id, const char *message) {
    OspResult err;
    send_args a = {server_id, connection_id, message, 0, {0, 0}};
    if (!osp_ws_check_outgoing("websocketServerSend", message, &a.len, &err)) return err;
    if (!osp_ws_runtime_ensure("websocketServerSend", &err)) return err;
    osp_ws_loop_call(do_server_send, &a);
    return a.result;
}

static void do_broadcast(void *p) {
    send_args *a = p;
    static const char fn[] = "websocketServerBroadcast";
    osp_ws_server *s = lookup_server(fn, a->server_id, &a->result);
    if (s == NULL) return;
    const osp_ws_limits *lim = osp_ws_limits_get();
    osp_ws_conn *c = s->conns;
    while (c) {
        osp_ws_conn *next = c->srv_next; /* c may be destroyed below */
        if (c->state == OSP_WS_CONN_OPEN && !c->close_sent) {
            if (osp_ws_conn_pending(c) >= lim->max_output) {
                /* A consumer this slow would make the queue grow without bound: 1008. */
                osp_ws_conn_fail(c, OSP_WS_CLOSE_POLICY, "too slow: output queue over the limit");
            } else if (osp_ws_conn_queue_frame(c, OSP_WS_OP_TEXT, (const uint8_t *)a->message, a->len) != 0) {
                osp_ws_conn_fail(c, OSP_WS_CLOSE_INTERNAL_ERROR, "out of memory");
            } else {
                osp_ws_conn_flush(c);
            }
        }
        c = next;
    }
    a->result = osp_result_success(0);
}

OspResult osp_ws_server_broadcast(int64_t server_id, const char *message) {
    OspResult err;
    send_args a = {server_id, 0, message, 0, {0, 0}};
    if (!osp_ws_check_outgoing("websocketServerBroadcast", message, &a.len, &err)) return err;
    if (!osp_ws_runtime_ensure("websocketServerBroadcast", &err)) return err;
    osp_ws_loop_call(do_broadcast, &a);
    return a.result;
}

typedef struct {
    int64_t id;
    osp_ws_waiter waiter;
    bool wait;
    OspResult result;
} stop_args;

static void do_stop(void *p) {
    stop_args *a = p;
    osp_ws_server *s = lookup_server("websocketStopServer", a->id, &a->result);
    if (s == NULL) return;
    osp_ws_server_stop(s, a->wait ? &a->waiter : NULL);
    a->result = osp_result_success(0);
}

OspResult osp_ws_stop_server(int64_t server_id) {
    OspResult err;
    if (!osp_ws_runtime_ensure("websocketStopServer", &err)) return err;
    /* From a handler (the loop thread) the stop completes asynchronously: waiting would block
     * the very thread that runs the closing handshakes. */
    stop_args a = {server_id, {false, NULL}, !osp_ws_loop_on_thread(), {0, 0}};
    osp_ws_loop_call(do_stop, &a);
    if (a.wait && a.result.tag == OSP_RESULT_SUCCESS) osp_ws_waiter_wait(&a.waiter);
    return a.result;
}
