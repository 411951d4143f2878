/*
 * WebSocket servers: websocketCreateServer, websocketServerListen, websocketServerOnMessage,
 * websocketServerSend, websocketServerBroadcast, websocketStopServer (spec/0016 §16.4,
 * docs/guide/15-websockets.md), the admission and placement of accepted connections (the
 * acceptor thread itself is ws_acceptor.c) and the server side of the opening handshake.
 *
 * With no handler registered a server echoes every data message to its sender, same opcode,
 * byte for byte (docs/guide/15-websockets.md project decision). A registered handler receives each text
 * message instead (as a NUL-terminated copy: text after an embedded NUL is not visible to it);
 * binary messages are then ignored.
 */
#include "ws_internal.h"
#include "ws_cluster.h"
#include "ws_loop_queue.h"
#include "ws_peer_table.h"
#include "net.h"
#include "ws_handshake.h"
#include "ws_tls.h"
#include "fiber.h"

#include <openssl/err.h>

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void post_adopt(osp_ws_loop *L, osp_ws_server *s, int fd, const uint8_t addr[16], bool *failed);
static void post_finish(osp_ws_server *s);
static void post_stop_all(osp_ws_server *s);
static void loop_done(osp_ws_server *s);

/* ---- per-address counts (ws_peer_table.c) ------------------------------------------------ */

/* The opening handshake of c is over (upgraded, refused or dropped). */
static void handshake_uncount(osp_ws_conn *c) {
    osp_ws_server *s = c->server;
    if (!c->handshake_counted || s == NULL) return;
    c->handshake_counted = false;
    pthread_mutex_lock(&s->lock);
    osp_ws_peer_count *e = osp_ws_peer_find(&s->peers, c->peer_addr);
    if (e != NULL) {
        e->handshakes--;
        osp_ws_peer_release_if_idle(&s->peers, e);
    }
    pthread_mutex_unlock(&s->lock);
}

/* ---- accepting ----------------------------------------------------------------------------- */

static void server_handshake_input(osp_ws_conn *c, uint8_t *data, size_t len);
static void server_deliver(osp_ws_conn *c, uint8_t opcode, const uint8_t *data, size_t len);
static void server_conn_gone(osp_ws_conn *c);

/* What a server connection reports (ws_conn.c calls up through it). */
static const osp_ws_conn_owner server_conn_owner = {
    .handshake_input = server_handshake_input,
    .deliver = server_deliver,
    .ingested = osp_ws_inbox_hand_over,
    .gone = server_conn_gone,
    .output_pressure = osp_ws_inbox_output_pressure,
    .freed = osp_ws_inbox_conn_freed,
};

/* Stopped servers whose last connection is gone, freed at the end of the main loop's
 * iteration (main loop only). */
static osp_ws_server *zombie_servers;

static void refuse_busy(int fd) {
    static const char busy[] =
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    (void)osp_ws_net_send(fd, busy, sizeof busy - 1); /* best effort: the socket is fresh */
    close(fd);
}

/* The acceptor: counts a new connection from `addr` against s's limits (connections, per
 * address, TLS handshake rate). true when it may go on, counted; false when it was refused
 * (the socket is closed then). The acceptor thread, or the HTTP server's loop; takes s->lock. */
static bool admit_count(osp_ws_server *s, int fd, const uint8_t addr[16]) {
    const osp_ws_limits *lim = &s->limits;
    pthread_mutex_lock(&s->lock);
    /* Connection limit (docs/WEBSOCKET-RUNTIME.md#limits), applied at accept. */
    if (s->conn_count >= lim->max_connections) {
        pthread_mutex_unlock(&s->lock);
        refuse_busy(fd);
        return false;
    }
    /* Per peer address (README limits table): one host must not take every slot, with open
     * connections or with handshakes it never finishes. */
    osp_ws_peer_count *per_ip = osp_ws_peer_get(&s->peers, addr);
    if (per_ip == NULL || per_ip->conns >= lim->max_connections_per_ip ||
        per_ip->handshakes >= lim->max_handshakes_per_ip) {
        if (per_ip) osp_ws_peer_release_if_idle(&s->peers, per_ip);
        pthread_mutex_unlock(&s->lock);
        refuse_busy(fd);
        return false;
    }
    if (s->tls_ctx && !osp_ws_peer_tls_rate_allows(per_ip, lim->max_tls_handshake_rate_per_ip)) {
        /* Over its TLS handshake rate: closed before any TLS work (a ClientHello replayed on
         * new connections costs the acceptor an accept and a close, not a key exchange). The
         * close resets the connection (SO_LINGER 0): no FIN exchange and no TIME_WAIT socket
         * for the kernel to keep, per refused replay; nothing was sent that a reset could
         * destroy. */
        pthread_mutex_unlock(&s->lock);
        struct linger reset = {1, 0};
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset); /* best effort: a FIN otherwise */
        close(fd);
        return false;
    }
    s->conn_count++;
    per_ip->conns++;
    per_ip->handshakes++;
    pthread_mutex_unlock(&s->lock);
    return true;
}

/* Undoes admit_count for a connection that could not be set up. */
static void admit_uncount(osp_ws_server *s, const uint8_t addr[16]) {
    pthread_mutex_lock(&s->lock);
    s->conn_count--;
    osp_ws_peer_count *e = osp_ws_peer_find(&s->peers, addr);
    if (e != NULL) {
        e->conns--;
        e->handshakes--;
        osp_ws_peer_release_if_idle(&s->peers, e);
    }
    pthread_mutex_unlock(&s->lock);
}

/* On the loop the connection will live on: takes an admitted socket into the server (its
 * handshake not yet read). NULL when it could not be set up (uncounted, the socket closed). */
static osp_ws_conn *admit_here(osp_ws_server *s, int fd, const uint8_t addr[16]) {
    osp_ws_loop *L = osp_ws_loop_current();
    const osp_ws_limits *lim = &s->limits;
    osp_ws_conn *c = osp_ws_conn_new(fd, OSP_WS_ROLE_SERVER, OSP_WS_CONN_HANDSHAKE, lim, &server_conn_owner);
    bool tls_ok = true;
    if (c != NULL) {
        c->http = malloc(sizeof *c->http);
        if (c->http) osp_http_parser_init(c->http, false, &c->limits);
        if (s->tls_ctx) {
            /* wss://: the TLS handshake runs first, non-blocking, under the same handshake
             * deadline as the HTTP upgrade; counted among this loop's unfinished ones. */
            tls_ok = osp_ws_conn_begin_tls(c, s->tls_ctx);
            ERR_clear_error();
        }
    }
    if (c == NULL || c->http == NULL || !tls_ok || osp_ws_conn_start(c) != 0) {
        admit_uncount(s, addr);
        if (c) {
            osp_ws_conn_discard(c); /* never registered: freed at once, fd closed */
        } else {
            close(fd);
        }
        return NULL;
    }
    c->server = s;
    osp_ws_conn **head = &s->loop_conns[L->index];
    c->srv_next = *head;
    if (*head) (*head)->srv_prev = c;
    *head = c;
    s->loop_conn_count[L->index]++;
    memcpy(c->peer_addr, addr, 16);
    c->ip_counted = c->handshake_counted = true;
    /* The id comes with the upgrade (server_handshake_input): a TCP connection that
     * never completes the handshake costs no registry entry. */
    /* Slowloris defence: the whole request must arrive within the handshake deadline. */
    osp_ws_timer_arm(&c->timer, lim->handshake_timeout_ms);
    return c;
}

/* The acceptor thread places accepted connections on the loops in turn: an accept and its
 * admission checks are cheap, the TLS handshake and everything after it is spread. One
 * acceptor rather than a SO_REUSEPORT socket per loop keeps a second bind of the port an
 * error (EADDRINUSE), the admission tables in one place and the placement even
 * (docs/WEBSOCKET-RUNTIME.md#loops-per-core). */
static void place(osp_ws_server *s, int fd, const uint8_t addr[16]) {
    unsigned n = osp_ws_loop_count();
    osp_ws_loop *L = osp_ws_loop_at(s->next_loop++ % n);
    bool failed = L == NULL;
    if (!failed) post_adopt(L, s, fd, addr, &failed);
    if (failed) {
        admit_uncount(s, addr);
        close(fd);
    }
}

/* The acceptor thread (ws_acceptor.h), for each accepted socket: admission, then placement.
 * It touches only s's admission state (under s->lock) and the loops' queues, never the
 * collected heap (the acceptor thread is not registered with the collector). */
static void take_accepted(void *owner, int fd, const struct sockaddr_storage *peer) {
    osp_ws_server *s = owner;
    uint8_t addr[16];
    osp_ws_peer_key(peer, addr);
    if (!admit_count(s, fd, addr)) return;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    place(s, fd, addr);
}

/* ---- handshake ----------------------------------------------------------------------------- */

static void handshake_refuse(osp_ws_conn *c, const osp_ws_server_verdict *v) {
    handshake_uncount(c);
    osp_http_parser_free(c->http);
    free(c->http);
    c->http = NULL;
    if (osp_ws_handshake_write_response(v, osp_ws_conn_out_buf(c)) != 0) {
        osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
        return;
    }
    /* RFC 6455 §4.2.1: after a failed handshake the server answers and closes; no frames. */
    c->state = OSP_WS_CONN_CLOSED_WAIT;
    c->fin_after_flush = true;
    osp_ws_timer_arm(&c->timer, c->limits.close_timeout_ms);
    osp_ws_conn_flush(c);
}

static void server_handshake_input(osp_ws_conn *c, uint8_t *data, size_t len) {
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
    osp_ws_server *s = c->server;
    osp_ws_handshake_check_request(c->http, s->path, &v);
    osp_ws_handshake_apply_policy(c->http, (const char *const *)s->origins, s->origin_count,
                                  (const char *const *)s->protocols, s->protocol_count, &v);
    if (v.status != 101) {
        handshake_refuse(c, &v);
        return;
    }
    osp_http_parser_free(c->http); /* wipes the request: it may hold cookies or tokens */
    free(c->http);
    c->http = NULL;
    handshake_uncount(c);
    c->id = osp_ws_registry_add_in(OSP_WS_KIND_SERVER_CONN, c, s->id,
                                   s->cluster ? osp_ws_cluster_id_base(s->cluster) : 0);
    if (c->id == 0) {
        osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
        return;
    }
    /* Into the loop's shared output buffer: an idle connection keeps no buffer of its own. */
    if (osp_ws_handshake_write_response(&v, osp_ws_conn_out_buf(c)) != 0) {
        osp_ws_conn_destroy(c, OSP_WS_CLOSE_ABNORMAL);
        return;
    }
    osp_ws_conn_opened(c);
    /* The open event goes into the connection's inbox before any of its messages. */
    if (s->events) osp_ws_inbox_open_event(c);
    /* docs/WEBSOCKET-RUNTIME.md S-H13: bytes after the request in the same read are already frames. */
    if (used < len) osp_ws_conn_ingest(c, data + used, len - used);
    /* The caller (the read path) flushes the 101 and any answers. */
}

/* ---- messages ------------------------------------------------------------------------------ */

static void server_deliver(osp_ws_conn *c, uint8_t opcode, const uint8_t *data, size_t len) {
    osp_ws_server *s = c->server;
    int shape = atomic_load_explicit(&s->handler_shape, memory_order_acquire);
    if (shape < 0) {
        /* Default: echo, same opcode, byte for byte. Its bytes count against the output cap
         * at once, so reading stops (conn_read) as soon as the peer owes us more than
         * maxOutputBytes of echoes, and against the process memory budget. */
        int rc = osp_ws_conn_queue_frame(c, opcode, data, len);
        if (rc == OSP_WS_BUF_OVER_BUDGET)
            osp_ws_conn_fail(c, OSP_WS_CLOSE_TRY_AGAIN, "server memory budget exhausted; try again later");
        else if (rc != 0)
            osp_ws_conn_fail(c, OSP_WS_CLOSE_INTERNAL_ERROR, "out of memory");
        return;
    }
    /* fn(String) and fn(Int, String) take text only; fn(Int, WebSocketMessage) takes both. */
    if (opcode != OSP_WS_OP_TEXT && shape != OSP_WS_SHAPE_MESSAGE) return;
    osp_ws_inbox_deliver(c, opcode, data, len);
}

/* A stopped server's last connection is gone: wake websocketStopServer, free it later. */
static void server_finish(osp_ws_server *s) {
    osp_ws_waiters_signal_all(&s->stop_waiters);
    s->zombie_next = zombie_servers;
    zombie_servers = s;
}

static void server_conn_gone(osp_ws_conn *c) {
    osp_ws_server *s = c->server;
    if (s == NULL) return; /* never admitted */
    /* Its close event goes behind its last message, while c->server still names the server. */
    osp_ws_inbox_close_event(c);
    handshake_uncount(c);
    pthread_mutex_lock(&s->lock);
    if (c->ip_counted) {
        c->ip_counted = false;
        osp_ws_peer_count *e = osp_ws_peer_find(&s->peers, c->peer_addr);
        if (e != NULL) {
            e->conns--;
            osp_ws_peer_release_if_idle(&s->peers, e);
        }
    }
    s->conn_count--;
    pthread_mutex_unlock(&s->lock);
    unsigned i = c->loop->index; /* this loop's */
    if (c->srv_prev) c->srv_prev->srv_next = c->srv_next;
    else s->loop_conns[i] = c->srv_next;
    if (c->srv_next) c->srv_next->srv_prev = c->srv_prev;
    c->srv_prev = c->srv_next = NULL;
    c->server = NULL;
    s->loop_conn_count[i]--;
    if (s->loop_stopped[i] && s->loop_conn_count[i] == 0) loop_done(s);
}

static void server_free(osp_ws_server *s) {
    if (s->cluster) osp_ws_cluster_free(s->cluster);
    pthread_mutex_destroy(&s->lock);
    osp_ws_peer_table_free(&s->peers);
    free(s->path);
    SSL_CTX_free(s->tls_ctx);
    for (size_t i = 0; i < s->origin_count; i++) free(s->origins[i]);
    for (size_t i = 0; i < s->protocol_count; i++) free(s->protocols[i]);
    if (s->handler_env_cell) GC_FREE(s->handler_env_cell);
    if (s->events) GC_FREE(s->events);
    free(s);
}

/* This loop has stopped its part of s and has no connection of s left: the last loop to get
 * there has the main loop finish s (waiters, free). */
static void loop_done(osp_ws_server *s) {
    pthread_mutex_lock(&s->lock);
    bool last = --s->loops_running == 0;
    pthread_mutex_unlock(&s->lock);
    if (!last) return;
    if (osp_ws_loop_current() == osp_ws_loop_main()) {
        server_finish(s);
        return;
    }
    post_finish(s);
}

/* On each loop (a STOP record): 1001 to every connection of s this loop serves. */
static void stop_here(osp_ws_server *s) {
    unsigned i = osp_ws_loop_current()->index;
    /* RFC 6455 §7.4.1: 1001, the endpoint is going away. Connections still in the opening
     * handshake are simply dropped. The list changes under destroy, so walk a snapshot. */
    osp_ws_conn *c = s->loop_conns[i];
    while (c) {
        osp_ws_conn *next = c->srv_next;
        if (c->state == OSP_WS_CONN_HANDSHAKE) osp_ws_conn_destroy(c, OSP_WS_CLOSE_GOING_AWAY);
        else osp_ws_conn_start_close(c, OSP_WS_CLOSE_GOING_AWAY, "server stopping");
        c = next;
    }
    /* Marked after the walk: the connections destroyed in it do not finish the loop early. */
    s->loop_stopped[i] = true;
    if (s->loop_conn_count[i] == 0) loop_done(s);
}

/* Stops a server (main loop): stop listening, retire the id, then every loop closes its
 * connections with 1001 (shutdown too). */
static void server_stop(osp_ws_server *s, osp_ws_waiter *w) {
    s->stopping = true;
    if (s->cluster) osp_ws_cluster_stop(s->cluster);
    if (s->cluster_joining) osp_ws_cluster_abandon_join(s->cluster_joining);
    if (s->listening && !s->attached) {
        /* The listening socket goes first so no new connection slips in; its acceptor is
         * joined before it is closed, so no ADOPT is posted after the STOP records below. */
        osp_ws_acceptor_stop(&s->acceptor);
        close(s->listen_fd);
        s->listen_fd = -1;
        s->listening = false;
    }
    if (w) {
        w->next = s->stop_waiters;
        s->stop_waiters = w;
    }
    /* Retired and the stop queued on every loop under one hold of the lock: a send or
     * broadcast posted for s is either queued before the stop on every loop or refused, so
     * no loop meets s after it has stopped its part. */
    pthread_mutex_lock(&osp_ws_tx_lock);
    osp_ws_registry_retire(s->id, 0);
    post_stop_all(s);
    pthread_mutex_unlock(&osp_ws_tx_lock);
}

/* ---- the ABI functions --------------------------------------------------------------------- */

/* Finds a live server or explains why not. */
static osp_ws_server *lookup_server(const char *fn, int64_t id, OspResult *err) {
    osp_ws_entry found;
    const osp_ws_entry *e = osp_ws_registry_find(id, &found) ? &found : NULL;
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
    SSL_CTX *tls_ctx; /* owned by the server once created */
    const char *fn;
    OspResult result;
} create_args;

static void do_create(void *p) {
    create_args *a = p;
    osp_ws_server *s = calloc(1, sizeof *s);
    char *path = strdup(a->path);
    if (s == NULL || path == NULL) {
        free(s);
        free(path);
        SSL_CTX_free(a->tls_ctx);
        a->result = osp_result_errorf("%s: out of memory", a->fn);
        return;
    }
    s->tls_ctx = a->tls_ctx;
    s->port = (int)a->port;
    pthread_mutex_init(&s->lock, NULL);
    s->loops_running = osp_ws_loop_count();
    atomic_init(&s->handler_shape, -1);
    osp_ws_limits_snapshot(&s->limits);
    snprintf(s->address, sizeof s->address, "%s", a->address);
    s->path = path;
    s->listen_fd = -1;
    osp_ws_acceptor_init(&s->acceptor);
    s->id = osp_ws_registry_add(OSP_WS_KIND_SERVER, s, 0);
    if (s->id == 0) {
        server_free(s);
        a->result = osp_result_errorf("%s: out of memory", a->fn);
        return;
    }
    a->result = osp_result_success(s->id);
}

/* Checks the arguments both server constructors share; false with *err set. */
static bool server_args_valid(const char *fn, int64_t port, const char *address, const char *path,
                              OspResult *err);

static OspResult create_server(const char *fn, int64_t port, const char *address, const char *path,
                               SSL_CTX *tls_ctx) {
    OspResult err;
    if (!osp_ws_runtime_ensure(fn, &err)) {
        SSL_CTX_free(tls_ctx);
        return err;
    }
    create_args a = {port, address, path, tls_ctx, fn, {0, 0}};
    if (!osp_ws_loop_call(do_create, &a)) {
        SSL_CTX_free(tls_ctx);
        return osp_ws_shut_down_error(fn);
    }
    return a.result;
}

OspResult osp_ws_create_server(int64_t port, const char *address, const char *path) {
    static const char fn[] = "websocketCreateServer";
    OspResult err;
    if (!server_args_valid(fn, port, address, path, &err)) return err;
    return create_server(fn, port, address, path, NULL);
}

OspResult osp_ws_create_secure_server(int64_t port, const char *address, const char *path,
                                      const char *cert_file, const char *key_file) {
    static const char fn[] = "websocketCreateSecureServer";
    OspResult err;
    if (!server_args_valid(fn, port, address, path, &err)) return err;
    if (cert_file == NULL || key_file == NULL) return osp_result_errorf("%s: the certificate or key file is null", fn);
    if (osp_str_refuse_nul(fn, "certificate file path", cert_file, &err) ||
        osp_str_refuse_nul(fn, "key file path", key_file, &err))
        return err;
    /* Loaded now, so a wrong file is this call's Err rather than a failure per connection. */
    char why[600];
    SSL_CTX *ctx = osp_ws_tls_server_ctx(cert_file, key_file, why, sizeof why);
    if (ctx == NULL) return osp_result_errorf("%s: %s", fn, why);
    return create_server(fn, port, address, path, ctx);
}

static bool server_args_valid(const char *fn, int64_t port, const char *address, const char *path,
                              OspResult *err) {
#define REFUSE(...) do { *err = osp_result_errorf(__VA_ARGS__); return false; } while (0)
    if (port < 1 || port > 65535)
        REFUSE("%s: port %" PRId64 " is out of range (1-65535)", fn, port);
    if (address == NULL) REFUSE("%s: the address is null", fn);
    if (path == NULL) REFUSE("%s: the path is null", fn);
    /* A NUL would silently cut the text C code sees: refuse it where the user can act on it. */
    if (osp_str_refuse_nul(fn, "address", address, err) || osp_str_refuse_nul(fn, "path", path, err)) return false;
    if (strlen(address) >= 64 || !osp_ws_net_address_valid(address))
        REFUSE("%s: address \"%s\" is not a valid IPv4 or IPv6 address "
               "(use e.g. \"127.0.0.1\", \"0.0.0.0\", \"::1\" or \"localhost\")",
               fn, address);
    if (path[0] != '/')
        REFUSE("%s: path \"%s\" must start with '/' (e.g. \"/chat\")", fn, path);
    size_t plen = strlen(path);
    if (plen > 2048) REFUSE("%s: path is longer than 2048 bytes", fn);
    for (size_t i = 0; i < plen; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch <= 0x20 || ch >= 0x7F || ch == '?' || ch == '#')
            REFUSE("%s: path \"%s\" may not contain spaces, control or non-ASCII "
                   "characters, '?' or '#'", fn, path);
    }
    return true;
#undef REFUSE
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
    if (s->attached) {
        /* httpServerWebSocket: the HTTP server's socket is the listening one; this only
         * freezes the settings, as for any server. */
        s->listening = true;
        a->result = osp_result_success(0);
        return;
    }
    char why[200];
    int fd = osp_ws_net_listen(s->address, s->port, why, sizeof why);
    if (fd < 0) {
        a->result = osp_result_errorf("%s: %s", fn, why);
        return;
    }
    s->listen_fd = fd;
    int rc = osp_ws_acceptor_start(&s->acceptor, fd, take_accepted, s);
    if (rc != 0) {
        close(fd);
        s->listen_fd = -1;
        a->result = osp_result_errorf("%s: cannot start the acceptor thread: %s", fn, strerror(rc));
        return;
    }
    s->listening = true;
    a->result = osp_result_success(0);
}

/* ---- a path of an HTTP server (httpServerWebSocket) --------------------------------------- */

static void do_attach(void *p) {
    id_args *a = p;
    osp_ws_server *s = lookup_server("httpServerWebSocket", a->id, &a->result);
    if (s == NULL) return;
    s->attached = true;
    a->result = osp_result_success(s->id);
}

OspResult osp_ws_create_attached_server(int port, const char *address, const char *path) {
    OspResult r = osp_ws_create_server(port, address, path);
    if (r.tag != OSP_RESULT_SUCCESS) return r;
    id_args a = {r.value, {0, 0}};
    osp_ws_loop_call(do_attach, &a);
    return a.result;
}

bool osp_ws_server_adopt(int64_t id, int fd, uint8_t *bytes, size_t len) {
    OspResult ignored;
    osp_ws_server *s = lookup_server("httpServerWebSocket", id, &ignored);
    if (s == NULL || s->stopping || !s->attached) return false;
    s->listening = true; /* settings are frozen from the first connection on */
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    memset(&peer, 0, sizeof peer);
    if (getpeername(fd, (struct sockaddr *)&peer, &peer_len) != 0) memset(&peer, 0, sizeof peer);
    uint8_t addr[16];
    osp_ws_peer_key(&peer, addr);
    if (!admit_count(s, fd, addr)) return true; /* refused (503): the socket is closed */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* On the HTTP server's loop, which has the request's bytes. */
    osp_ws_conn *c = admit_here(s, fd, addr);
    if (c == NULL) return true; /* failed: the socket is closed */
    osp_ws_conn_ingest(c, bytes, len);
    if (c->state != OSP_WS_CONN_DEAD) osp_ws_conn_flush(c);
    return true;
}

OspResult osp_ws_server_listen(int64_t server_id) {
    OspResult err;
    if (!osp_ws_runtime_ensure("websocketServerListen", &err)) return err;
    id_args a = {server_id, {0, 0}};
    if (!osp_ws_loop_call(do_listen, &a)) return osp_ws_shut_down_error("websocketServerListen");
    return a.result;
}

typedef struct {
    int64_t id;
    osp_ws_msg_handler handler;
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
    /* Every loop delivers to it: the pair changes under the inbox lock, then the shape. */
    osp_ws_inbox_replace_handler(&s->handler, s->handler_env_cell, &a->handler, a->env);
    atomic_store_explicit(&s->handler_shape, (int)a->handler.shape, memory_order_release);
    a->result = osp_result_success(0);
}

static OspResult on_message_shaped(int64_t server_id, osp_ws_msg_handler handler, void *handler_env) {
    if (!osp_ws_msg_handler_set(&handler)) return osp_result_errorf("websocketServerOnMessage: the handler is null");
    OspResult err;
    if (!osp_ws_runtime_ensure("websocketServerOnMessage", &err)) return err;
    on_message_args a = {server_id, handler, handler_env, {0, 0}};
    if (!osp_ws_loop_call(do_on_message, &a)) return osp_ws_shut_down_error("websocketServerOnMessage");
    return a.result;
}

OspResult osp_ws_server_on_message(int64_t server_id, osp_server_message_handler_fn handler,
                                   void *handler_env) {
    osp_ws_msg_handler h = {OSP_WS_SHAPE_ID_TEXT, {.id_text = handler}};
    return on_message_shaped(server_id, h, handler_env);
}

OspResult osp_ws_server_on_text(int64_t server_id, osp_message_handler_fn handler, void *handler_env) {
    osp_ws_msg_handler h = {OSP_WS_SHAPE_TEXT, {.text = handler}};
    return on_message_shaped(server_id, h, handler_env);
}

OspResult osp_ws_server_on_messages(int64_t server_id, osp_ws_message_handler_fn handler, void *handler_env) {
    osp_ws_msg_handler h = {OSP_WS_SHAPE_MESSAGE, {.message = handler}};
    return on_message_shaped(server_id, h, handler_env);
}

/* ---- connection events: websocketServerOnOpen / websocketServerOnClose ----------------------- */

typedef struct {
    const char *fn;
    int64_t id;
    osp_ws_open_handler_fn open;          /* one of the two */
    osp_ws_server_close_handler_fn close;
    void *env;
    OspResult result;
} on_event_args;

static void do_on_event(void *p) {
    on_event_args *a = p;
    osp_ws_server *s = lookup_server(a->fn, a->id, &a->result);
    if (s == NULL) return;
    /* Every connection gets both events or neither: a handler registered while connections
     * are being accepted would see closes without opens (or opens without closes). */
    if (s->listening) {
        a->result = osp_result_errorf("%s: server %" PRId64 " is already listening; register connection "
                                      "event handlers before websocketServerListen", a->fn, s->id);
        return;
    }
    if (s->events == NULL) {
        /* Uncollectable: a root for the handlers' environments while the server lives. */
        s->events = GC_MALLOC_UNCOLLECTABLE(sizeof *s->events);
        if (s->events == NULL) {
            a->result = osp_result_errorf("%s: out of memory", a->fn);
            return;
        }
        memset(s->events, 0, sizeof *s->events);
    }
    if (a->open) {
        s->events->open = a->open;
        s->events->open_env = a->env;
    } else {
        s->events->server_close = a->close;
        s->events->server_close_env = a->env;
    }
    a->result = osp_result_success(0);
}

static OspResult on_event(on_event_args a) {
    if (a.open == NULL && a.close == NULL) return osp_result_errorf("%s: the handler is null", a.fn);
    OspResult err;
    if (!osp_ws_runtime_ensure(a.fn, &err)) return err;
    if (!osp_ws_loop_call(do_on_event, &a)) return osp_ws_shut_down_error(a.fn);
    return a.result;
}

OspResult osp_ws_server_on_open(int64_t server_id, osp_ws_open_handler_fn handler, void *handler_env) {
    return on_event((on_event_args){"websocketServerOnOpen", server_id, handler, NULL, handler_env, {0, 0}});
}

OspResult osp_ws_server_on_close(int64_t server_id, osp_ws_server_close_handler_fn handler, void *handler_env) {
    return on_event((on_event_args){"websocketServerOnClose", server_id, NULL, handler, handler_env, {0, 0}});
}

typedef struct {
    int64_t server_id;
    int64_t conn_id;
    const char *message;
    size_t len;
    OspResult result;
    const char *fn;  /* the Osprey function: websocketServerSend, …Broadcast, or their …Binary */
    uint8_t opcode;  /* text or binary */
} send_args;

/* Finds server_id's connection conn_id, or explains why not. With osp_ws_tx_lock held or on the
 * loop thread (the loop registers and retires ids under the lock). */
static osp_ws_conn *lookup_server_conn(const char *fn, int64_t server_id, int64_t conn_id, OspResult *err) {
    osp_ws_server *s = lookup_server(fn, server_id, err);
    if (s == NULL) return NULL;
    osp_ws_entry found;
    const osp_ws_entry *e = osp_ws_registry_find(conn_id, &found) ? &found : NULL;
    if (e == NULL || e->kind != OSP_WS_KIND_SERVER_CONN || e->owner != server_id) {
        *err = osp_result_errorf("%s: server %" PRId64 " has no connection %" PRId64, fn, server_id, conn_id);
        return NULL;
    }
    if (e->object == NULL) {
        *err = osp_result_errorf("%s: connection %" PRId64 " is already closed (code %u)", fn, conn_id, e->code);
        return NULL;
    }
    return e->object;
}

/* Loop thread: queues a text frame for an open connection, flushed at the end of the loop
 * iteration (several sends in one iteration share one send()). 0, -1 or OSP_WS_BUF_OVER_BUDGET. */
static int queue_send(osp_ws_conn *c, uint8_t opcode, const char *message, size_t len) {
    int rc = osp_ws_conn_queue_frame(c, opcode, (const uint8_t *)message, len);
    if (rc != 0) return rc;
    osp_ws_conn_check_backpressure(c);
    osp_ws_conn_flush_soon(c);
    return 0;
}

static void do_server_send(void *p) {
    send_args *a = p;
    const char *fn = a->fn;
    osp_ws_conn *c = lookup_server_conn(fn, a->server_id, a->conn_id, &a->result);
    if (c == NULL) return;
    a->result = osp_ws_send_permission(c, fn, a->conn_id, !osp_ws_conn_accepts_data(c),
                                       osp_ws_conn_pending(c), a->len);
    if (a->result.tag != OSP_RESULT_SUCCESS) return;
    int rc = queue_send(c, a->opcode, a->message, a->len);
    if (rc != 0) {
        a->result = rc == OSP_WS_BUF_OVER_BUDGET ? osp_ws_budget_error(fn) : osp_result_errorf("%s: out of memory", fn);
        return;
    }
    a->result = osp_result_success(0);
}

/* Loop thread: queues one broadcast frame for every open connection of s (recipients over the
 * output cap are failed with 1008). 0, or -1 when the broadcast log cannot hold the frame. */
static int broadcast(osp_ws_server *s, uint8_t opcode, const char *message, size_t len) {
    /* One header for every recipient: server frames are unmasked (RFC 6455 §5.1), so the
     * frame is the same bytes for all of them. */
    uint8_t header[OSP_WS_MAX_FRAME_HEADER];
    size_t hlen = osp_ws_frame_encode_header(header, true, opcode, len, NULL);
    /* The frame is stored once, in the loop's broadcast log; recipients send it from there. */
    size_t at;
    if (osp_ws_bcast_append(header, hlen, (const uint8_t *)message, len, &at, s->limits.wipe_messages != 0) != 0)
        return -1;
    osp_ws_conn *c = s->loop_conns[osp_ws_loop_current()->index];
    while (c) {
        osp_ws_conn *next = c->srv_next; /* c may be destroyed below */
        if (osp_ws_conn_accepts_data(c)) {
            int rc = 0;
            if (osp_ws_output_would_overflow(osp_ws_conn_pending(c), len, c->limits.max_output)) {
                /* A consumer this slow would make the queue grow without bound: 1008. */
                osp_ws_conn_fail(c, OSP_WS_CLOSE_POLICY, "too slow: output queue over the limit");
            } else if ((rc = osp_ws_conn_queue_logged(c, at, hlen + len)) != 0) {
                if (rc == OSP_WS_BUF_OVER_BUDGET)
                    osp_ws_conn_fail(c, OSP_WS_CLOSE_TRY_AGAIN, "server memory budget exhausted");
                else
                    osp_ws_conn_fail(c, OSP_WS_CLOSE_INTERNAL_ERROR, "out of memory");
            } else {
                osp_ws_conn_check_backpressure(c);
                /* Queued now, sent at the end of the loop iteration together with the other
                 * messages broadcast meanwhile: one send() per recipient, not per message. */
                osp_ws_conn_flush_soon(c);
            }
        }
        c = next;
    }
    osp_ws_bcast_end();
    return 0;
}

/* ---- hand-offs through each loop's queue (ws_loop_queue.c) ------------------------------- */

static void post_adopt(osp_ws_loop *L, osp_ws_server *s, int fd, const uint8_t addr[16], bool *failed) {
    *failed = !osp_ws_loop_queue_adopt(L, s, fd, addr);
}

/* Any loop: the last loop done with s hands it to the main loop. Without memory for the record
 * the server is never freed (reported): better than freeing it under another loop. */
static void post_finish(osp_ws_server *s) {
    if (!osp_ws_loop_queue_finish(s))
        fprintf(stderr, "osprey runtime: out of memory finishing WebSocket server %" PRId64 "\n", s->id);
}

/* With osp_ws_tx_lock held (main loop): queues STOP for s on every loop, its own included. A
 * loop whose record cannot be queued (out of memory) stops its part at once when it is this
 * one, and is otherwise counted as done, its connections left to their own closes. */
static void post_stop_all(osp_ws_server *s) {
    unsigned n = osp_ws_loop_count();
    osp_ws_loop *wake[OSP_WS_MAX_LOOPS] = {0};
    for (unsigned i = 0; i < n; i++) {
        osp_ws_loop *L = osp_ws_loop_at(i);
        if (osp_ws_loop_queue_stop(L, s, &wake[i])) {
            continue;
        } else if (L == osp_ws_loop_current()) {
            stop_here(s);
        } else {
            fprintf(stderr, "osprey runtime: out of memory stopping WebSocket server %" PRId64 " on I/O loop %u\n",
                    s->id, i);
            s->loop_stopped[i] = true;
            loop_done(s);
        }
    }
    for (unsigned i = 0; i < n; i++) osp_ws_loop_wake_on(wake[i]);
}

/* Posts a broadcast of server_id to every loop and wakes them. */
static OspResult broadcast_everywhere(const char *fn, int64_t server_id, uint8_t opcode, const char *message,
                                      size_t len) {
    osp_ws_loop *wake[OSP_WS_MAX_LOOPS] = {0};
    OspResult result;
    pthread_mutex_lock(&osp_ws_tx_lock);
    osp_ws_server *s = lookup_server(fn, server_id, &result);
    if (s != NULL) result = osp_ws_loop_queue_broadcast(s, fn, opcode, message, len, wake);
    pthread_mutex_unlock(&osp_ws_tx_lock);
    for (unsigned i = 0; i < OSP_WS_MAX_LOOPS; i++) osp_ws_loop_wake_on(wake[i]);
    return result;
}

/* With osp_ws_tx_lock held. false (nothing posted): the caller makes the send synchronously on
 * *loop (the connection's) instead. *direct: the connection whose socket this thread claimed
 * to write the frame itself once it has unlocked (docs/WEBSOCKET-RUNTIME.md, "Handler sends"). */
static bool post_send(const char *fn, int64_t server_id, int64_t conn_id, uint8_t opcode, const char *message,
                      size_t len, osp_ws_loop **wake, osp_ws_loop **loop, osp_ws_conn **direct, OspResult *result) {
    osp_ws_conn *c = lookup_server_conn(fn, server_id, conn_id, result);
    if (c == NULL) return true;
    *loop = c->loop;
    /* Nothing queued for c anywhere, and not a handler with more of c's messages to answer
     * (their answers are batched through the loop: one send() for all of them). */
    if (!osp_ws_inbox_more_waiting(conn_id) && osp_ws_loop_queue_claim_direct(c)) {
        *direct = c;
        *result = osp_result_success(0);
        return true;
    }
    /* What the loop has queued (as of its last flush), what is posted for c and not yet taken,
     * and the new message (c->limits is written only when c is made). Posted only while that
     * stays within half the output cap, the point where the loop holds deliveries to the
     * connection's handler (ws_inbox.c); beyond it the send waits for the loop, which checks
     * the cap exactly, so a handler answering each message with at most half the cap is still
     * never refused. */
    size_t pending = c->tx_queued + c->tx_posted + c->tx_pend.len; /* tx_pend: the rest of a direct frame */
    if (pending + len + OSP_WS_MAX_FRAME_HEADER > c->limits.max_output / 2 || pending + len < len) return false;
    /* Ids are registered when the opening handshake has completed, so a registered connection
     * is open until it sends its Close (tx_shut, set under the lock). */
    *result = osp_ws_send_permission(c, fn, conn_id, c->tx_shut, pending, len);
    if (result->tag != OSP_RESULT_SUCCESS) return true;
    *result = osp_ws_loop_queue_send(c, fn, server_id, conn_id, opcode, message, len, wake);
    return true;
}

/* ---- the records, performed on the loop they were posted to -------------------------------- */

static void perform_send(int64_t server_id, int64_t conn_id, uint8_t opcode, const char *message, size_t len) {
    OspResult ignored;
    osp_ws_conn *c = lookup_server_conn("websocketServerSend", server_id, conn_id, &ignored);
    /* Closed or closing since it was posted: dropped, as a message queued but not yet sent
     * would be. */
    if (c == NULL || c->loop != osp_ws_loop_current() || !osp_ws_conn_accepts_data(c)) return;
    int rc = queue_send(c, opcode, message, len);
    if (rc == OSP_WS_BUF_OVER_BUDGET)
        osp_ws_conn_fail(c, OSP_WS_CLOSE_TRY_AGAIN, "server memory budget exhausted");
    else if (rc != 0)
        osp_ws_conn_fail(c, OSP_WS_CLOSE_INTERNAL_ERROR, "out of memory");
}

static void perform_broadcast(osp_ws_server *s, uint8_t opcode, const char *message, size_t len) {
    /* No room in the broadcast log: the recipients could not be told apart from those
     * that got it, so they are failed like any recipient the runtime cannot serve. */
    if (broadcast(s, opcode, message, len) != 0) {
        for (osp_ws_conn *c = s->loop_conns[osp_ws_loop_current()->index], *next; c; c = next) {
            next = c->srv_next;
            if (osp_ws_conn_accepts_data(c))
                osp_ws_conn_fail(c, OSP_WS_CLOSE_INTERNAL_ERROR, "out of memory");
        }
    }
}

static void perform_adopt(osp_ws_server *s, int fd, const uint8_t addr[16]) { (void)admit_here(s, fd, addr); }

static const osp_ws_loop_queue_ops server_records = {
    .send = perform_send,
    .broadcast = perform_broadcast,
    .adopt = perform_adopt,
    .stop = stop_here,
    .finish = server_finish,
};

/* Loop thread, at each wake-up and before running commands: performs this loop's records. */
static void srv_drain_all(void) { osp_ws_loop_queue_drain(&server_records); }

/* websocketServerUseCluster: a broadcast (conn_id 0) of a clustered server goes on the bus too,
 * and so does a send to a connection of another node (the node id is in the id's high bits).
 * Returns true when the call is complete (*result says how), false when it goes on locally. */
static bool cluster_route(const char *fn, int64_t server_id, int64_t conn_id, uint8_t opcode, const char *message,
                          size_t len, OspResult *result) {
    const uint8_t kind = opcode == OSP_WS_OP_BINARY ? OSP_WS_BUS_BINARY : OSP_WS_BUS_TEXT;
    if (conn_id != 0 && (uint64_t)conn_id >> OSP_WS_CLUSTER_NODE_SHIFT == 0) return false; /* not clustered */
    pthread_mutex_lock(&osp_ws_tx_lock); /* keeps the server, and so its cluster, alive */
    OspResult ignored;
    osp_ws_server *s = lookup_server(fn, server_id, &ignored);
    bool done = false;
    if (s != NULL && s->cluster != NULL) {
        if (conn_id == 0) {
            /* Published first, delivered locally after: an Err (backlog full) means nothing was
             * delivered anywhere. */
            done = !osp_ws_cluster_publish(s->cluster, fn, kind, 0, (const uint8_t *)message, len, result);
        } else if (osp_ws_cluster_is_remote(s->cluster, conn_id)) {
            done = true;
            if (osp_ws_cluster_publish(s->cluster, fn, kind, conn_id, (const uint8_t *)message, len, result))
                *result = osp_result_success(0);
        }
    }
    pthread_mutex_unlock(&osp_ws_tx_lock);
    return done;
}

/* osp_ws_cluster_deliver: what another node of s's cluster published. */
static bool bus_deliver(osp_ws_server *s, uint8_t kind, int64_t target, const uint8_t *data, size_t len) {
    if ((kind != OSP_WS_BUS_TEXT && kind != OSP_WS_BUS_BINARY) || s->stopping) return false;
    const uint8_t opcode = kind == OSP_WS_BUS_BINARY ? OSP_WS_OP_BINARY : OSP_WS_OP_TEXT;
    if (target == 0) {
        /* Through every loop's queue, in the same order as local broadcasts. */
        OspResult r = broadcast_everywhere("websocketServerBroadcast", s->id, opcode, (const char *)data, len);
        return r.tag == OSP_RESULT_SUCCESS;
    }
    OspResult ignored;
    osp_ws_conn *c = lookup_server_conn("websocketServerSend", s->id, target, &ignored);
    if (c != NULL && c->loop != osp_ws_loop_current()) {
        /* Another loop's connection: posted to it like a send from a handler. */
        osp_ws_loop *wake = NULL;
        pthread_mutex_lock(&osp_ws_tx_lock);
        OspResult posted = osp_ws_loop_queue_send(c, "websocketServerSend", s->id, target, opcode,
                                                  (const char *)data, len, &wake);
        pthread_mutex_unlock(&osp_ws_tx_lock);
        osp_ws_loop_wake_on(wake);
        return posted.tag == OSP_RESULT_SUCCESS;
    }
    if (c == NULL || !osp_ws_conn_accepts_data(c)) return false;
    if (osp_ws_output_would_overflow(osp_ws_conn_pending(c), len, c->limits.max_output)) return false;
    int rc = queue_send(c, opcode, (const char *)data, len);
    if (rc == OSP_WS_BUF_OVER_BUDGET) osp_ws_conn_fail(c, OSP_WS_CLOSE_TRY_AGAIN, "server memory budget exhausted");
    else if (rc != 0) osp_ws_conn_fail(c, OSP_WS_CLOSE_INTERNAL_ERROR, "out of memory");
    return rc == 0;
}

/* websocketServerSend and …Binary once the message is checked (a.len set). */
static OspResult server_send(send_args a) {
    const char *fn = a.fn;
    int64_t server_id = a.server_id, connection_id = a.conn_id;
    const char *message = a.message;
    OspResult err;
    if (!osp_ws_runtime_ensure(fn, &err)) return err;
    if (cluster_route(fn, server_id, connection_id, a.opcode, message, a.len, &a.result)) return a.result;
    if (osp_ws_loop_on_thread()) {
        /* On a loop thread: the connection's own loop sends at once; another loop's
         * connection gets the message through its queue. */
        osp_ws_entry e;
        if (!osp_ws_registry_find(connection_id, &e) || osp_ws_loop_at(e.loop) == osp_ws_loop_current() || e.object == NULL) {
            do_server_send(&a);
            return a.result;
        }
    }
    if (osp_ws_loop_closed()) return osp_ws_shut_down_error(fn);
    osp_ws_loop *wake = NULL, *loop = NULL;
    osp_ws_conn *direct = NULL;
    pthread_mutex_lock(&osp_ws_tx_lock);
    bool posted = post_send(fn, server_id, connection_id, a.opcode, message, a.len, &wake, &loop, &direct, &a.result);
    pthread_mutex_unlock(&osp_ws_tx_lock);
    /* Claimed: c stays alive (its loop waits for this write before it closes or frees it). */
    if (direct) osp_ws_conn_direct_send(direct, a.opcode, (const uint8_t *)message, a.len);
    osp_ws_loop_wake_on(wake);
    if (posted) return a.result;
    /* Near the cap: the connection's loop takes what this thread posted before it, then this
     * send. */
    if (!osp_ws_loop_call_on(loop, do_server_send, &a)) return osp_ws_shut_down_error(fn);
    return a.result;
}

OspResult osp_ws_server_send(int64_t server_id, int64_t connection_id, const char *message) {
    send_args a = {server_id, connection_id, message, 0, {0, 0}, "websocketServerSend", OSP_WS_OP_TEXT};
    OspResult err;
    if (!osp_ws_check_outgoing(a.fn, message, &a.len, &err)) return err;
    return server_send(a);
}

OspResult osp_ws_server_send_binary(int64_t server_id, int64_t connection_id, const char *data) {
    send_args a = {server_id, connection_id, data, 0, {0, 0}, "websocketServerSendBinary", OSP_WS_OP_BINARY};
    OspResult err;
    if (!osp_ws_check_outgoing_binary(a.fn, data, &a.len, &err)) return err;
    return server_send(a);
}

/* websocketServerBroadcast and …Binary once the message is checked (a.len set). */
static OspResult server_broadcast(send_args a) {
    const char *fn = a.fn;
    int64_t server_id = a.server_id;
    const char *message = a.message;
    OspResult err;
    if (!osp_ws_runtime_ensure(fn, &err)) return err;
    if (cluster_route(fn, server_id, 0, a.opcode, message, a.len, &a.result)) return a.result;
    /* From any thread, a loop's included: through every loop's queue, so all recipients see
     * broadcasts in one order. */
    if (osp_ws_loop_closed() && !osp_ws_loop_on_thread()) return osp_ws_shut_down_error(fn);
    return broadcast_everywhere(fn, server_id, a.opcode, message, a.len);
}

OspResult osp_ws_server_broadcast(int64_t server_id, const char *message) {
    send_args a = {server_id, 0, message, 0, {0, 0}, "websocketServerBroadcast", OSP_WS_OP_TEXT};
    OspResult err;
    if (!osp_ws_check_outgoing(a.fn, message, &a.len, &err)) return err;
    return server_broadcast(a);
}

OspResult osp_ws_server_broadcast_binary(int64_t server_id, const char *data) {
    send_args a = {server_id, 0, data, 0, {0, 0}, "websocketServerBroadcastBinary", OSP_WS_OP_BINARY};
    OspResult err;
    if (!osp_ws_check_outgoing_binary(a.fn, data, &a.len, &err)) return err;
    return server_broadcast(a);
}

static void do_stop(void *p) {
    osp_ws_waited_call *a = p;
    osp_ws_server *s = lookup_server("websocketStopServer", a->id, &a->result);
    if (s == NULL) return;
    server_stop(s, a->wait ? &a->waiter : NULL);
    a->result = osp_result_success(0);
}

/* Returns when every connection is closed and none of the server's handlers runs (called from a
 * handler fiber it does not wait for handler calls in progress: see ws_inbox.c). */
typedef struct {
    int64_t id;
    OspResult result;
    osp_fiber *caller; /* the fiber calling websocketStopServer: a handler does not wait for handlers */
} stop_job_args;

static void stop_job(void *arg) {
    stop_job_args *a = arg;
    a->result = osp_ws_loop_call_waited("websocketStopServer", a->id, do_stop);
    if (a->result.tag == OSP_RESULT_SUCCESS) osp_ws_inbox_quiesce(0, a->id, a->caller);
}

OspResult osp_ws_stop_server(int64_t server_id) {
    stop_job_args a = {server_id, {0, 0}, osp_fiber_self()};
    osp_sched_run_blocking(stop_job, &a);
    return a.result;
}

/* ---- configuration before listen: limits, origins, subprotocols --------------------------- */

typedef struct {
    const char *fn;
    int64_t id;
    const char *name;  /* limit name, origin or subprotocol */
    int64_t value;
    int what;          /* 0 limit, 1 origin, 2 subprotocol */
    OspResult result;
} config_args;

static void do_configure(void *p) {
    config_args *a = p;
    osp_ws_server *s = lookup_server(a->fn, a->id, &a->result);
    if (s == NULL) return;
    /* Accepted connections copy the limits and the handshake reads the lists, so changing them
     * while connections are being accepted would give different peers different rules. */
    if (s->listening) {
        a->result = osp_result_errorf("%s: server %" PRId64 " is already listening; call %s before "
                                      "websocketServerListen", a->fn, s->id, a->fn);
        return;
    }
    if (a->what == 0) {
        char why[400];
        if (osp_ws_limit_set(&s->limits, a->name, a->value, why, sizeof why) != NULL) {
            a->result = osp_result_errorf("%s: %s", a->fn, why);
            return;
        }
        a->result = osp_result_success(0);
        return;
    }
    char **list = a->what == 1 ? s->origins : s->protocols;
    size_t *count = a->what == 1 ? &s->origin_count : &s->protocol_count;
    for (size_t i = 0; i < *count; i++) {
        if (strcmp(list[i], a->name) == 0) { /* already listed: nothing to do */
            a->result = osp_result_success(0);
            return;
        }
    }
    if (*count >= OSP_WS_MAX_POLICY_ENTRIES) {
        a->result = osp_result_errorf("%s: server %" PRId64 " already lists %d entries (the maximum)",
                                      a->fn, s->id, OSP_WS_MAX_POLICY_ENTRIES);
        return;
    }
    char *copy = strdup(a->name);
    if (copy == NULL) {
        a->result = osp_result_errorf("%s: out of memory", a->fn);
        return;
    }
    list[(*count)++] = copy;
    a->result = osp_result_success(0);
}

static OspResult configure(const char *fn, int64_t id, const char *name, int64_t value, int what) {
    OspResult err;
    if (!osp_ws_runtime_ensure(fn, &err)) return err;
    config_args a = {fn, id, name, value, what, {0, 0}};
    if (!osp_ws_loop_call(do_configure, &a)) return osp_ws_shut_down_error(fn);
    return a.result;
}

OspResult osp_ws_server_set_limit(int64_t server_id, const char *name, int64_t value) {
    static const char fn[] = "websocketServerSetLimit";
    if (name == NULL) return osp_result_errorf("%s: the limit name is null", fn);
    OspResult refused;
    if (osp_str_refuse_nul(fn, "limit name", name, &refused)) return refused;
    return configure(fn, server_id, name, value, 0);
}

OspResult osp_ws_set_default_limit(const char *name, int64_t value) {
    static const char fn[] = "websocketSetDefaultLimit";
    if (name == NULL) return osp_result_errorf("%s: the limit name is null", fn);
    OspResult refused;
    if (osp_str_refuse_nul(fn, "limit name", name, &refused)) return refused;
    char why[400];
    if (osp_ws_limits_set_default(name, value, why, sizeof why) != NULL)
        return osp_result_errorf("%s: %s", fn, why);
    return osp_result_success(0);
}

/* RFC 6454 §6.2: the ASCII serialization of an origin is scheme "://" host [":" port], scheme
 * and host in lower case, no path and no trailing slash. Browsers send exactly that in Origin,
 * so the allowlist is compared byte for byte and must be written in that form. */
static bool origin_serialized(const char *o) {
    const char *p = o;
    if (!(*p >= 'a' && *p <= 'z')) return false;
    while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.') p++;
    if (strncmp(p, "://", 3) != 0) return false;
    p += 3;
    const char *host = p;
    if (*p == '[') {
        p++;
        while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || *p == ':' || *p == '.') p++;
        if (*p != ']' || p == host + 1) return false;
        p++;
    } else {
        while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.') p++;
        if (p == host) return false;
    }
    if (*p == ':') {
        p++;
        long port = 0;
        const char *digits = p;
        while (*p >= '0' && *p <= '9' && port <= 65535) port = port * 10 + (*p++ - '0');
        if (p == digits || port < 1 || port > 65535 || *digits == '0') return false;
    }
    return *p == '\0';
}

OspResult osp_ws_server_allow_origin(int64_t server_id, const char *origin) {
    static const char fn[] = "websocketServerAllowOrigin";
    if (origin == NULL) return osp_result_errorf("%s: the origin is null", fn);
    OspResult refused;
    if (osp_str_refuse_nul(fn, "origin", origin, &refused)) return refused;
    if (strlen(origin) > 512 || !origin_serialized(origin))
        return osp_result_errorf("%s: \"%s\" is not a serialized origin (expected scheme://host[:port] "
                                 "in lower case, without path or trailing slash, e.g. "
                                 "\"https://example.com\" or \"http://localhost:8080\")", fn, origin);
    return configure(fn, server_id, origin, 0, 1);
}

OspResult osp_ws_server_add_subprotocol(int64_t server_id, const char *protocol) {
    static const char fn[] = "websocketServerAddSubprotocol";
    if (protocol == NULL) return osp_result_errorf("%s: the subprotocol is null", fn);
    OspResult refused;
    if (osp_str_refuse_nul(fn, "subprotocol name", protocol, &refused)) return refused;
    size_t n = strlen(protocol);
    /* RFC 6455 §4.1 item 10 / §11.3.4: a subprotocol name is an HTTP token. */
    if (n > 128 || !osp_ws_token_valid(protocol, n))
        return osp_result_errorf("%s: \"%s\" is not a valid subprotocol name (1-128 characters of "
                                 "letters, digits and !#$%%&'*+-.^_`|~; no spaces or commas)", fn, protocol);
    return configure(fn, server_id, protocol, 0, 2);
}

/* ---- this layer's loop hooks (ws_runtime.c) ------------------------------------------------- */

static void layer_iteration_end(void) {
    if (osp_ws_loop_current() != osp_ws_loop_main()) return; /* servers are finished there */
    while (zombie_servers) {
        osp_ws_server *s = zombie_servers;
        zombie_servers = s->zombie_next;
        server_free(s);
    }
}

static void stop_server(const osp_ws_entry *e, int64_t id, void *arg) {
    (void)id;
    uint64_t *longest = arg;
    if (e->kind != OSP_WS_KIND_SERVER) return;
    osp_ws_server *s = e->object;
    /* Its connections (on every loop) copied its limits. */
    if (s->limits.close_timeout_ms > *longest) *longest = s->limits.close_timeout_ms;
    server_stop(s, NULL);
}

/* Shutdown: every server stops (1001 to its connections; the connection layer below waits for
 * their close deadlines). */
static uint64_t layer_shutdown_begin(void) {
    uint64_t longest = 0;
    osp_ws_registry_each(stop_server, &longest);
    return longest;
}

/* The loop is stopped: records nobody took hold payloads; freed wiped. A server whose last
 * loop finished just before the main loop stopped is finished (freed) here. */
static void release_posted(void) {
    osp_ws_loop_queue_release(server_finish);
    layer_iteration_end();
}

static const osp_ws_layer server_layer = {
    .rank = 30,
    .wake = srv_drain_all,
    .iteration_end = layer_iteration_end,
    .shutdown_begin = layer_shutdown_begin,
    .released = release_posted,
};

__attribute__((constructor)) static void register_server_layer(void) {
    osp_ws_runtime_add_layer(&server_layer);
    osp_ws_cluster_deliver = bus_deliver; /* the cluster (below this module) delivers through it */
}
