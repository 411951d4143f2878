/*
 * One connection to a Redis server, driven by the runtime's event loop (loop.h): no thread of
 * its own, never a blocking call on the loop thread. hiredis does the RESP protocol only
 * (redisFormatCommandArgv to encode, redisReader to parse); the transport is our own
 * non-blocking socket, and for rediss:// the same OpenSSL setup as wss:// (ws_tls.c), because
 * Debian's hiredis 0.14 has no TLS and its async adapters would want to own the socket.
 *
 * Life of a connection: start() connects (non-blocking, to an address resolved beforehand, so a
 * reconnect never waits for DNS), runs the TLS handshake when asked, sends AUTH and SELECT and
 * consumes their replies; then on_ready. Every later reply goes to on_reply in order. Any failure
 * (refused, reset, EOF, a bad AUTH, the deadline) closes the socket and calls on_down once with a
 * reason a person can act on. The owner restarts it (with its own backoff) or frees it.
 *
 * Loop thread only, except osp_redis_url_parse.
 */
#ifndef OSP_REDIS_CONN_H
#define OSP_REDIS_CONN_H

#include "loop.h"
#include "ws_buf.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A parsed redis:// or rediss:// URL. The password is wiped by osp_redis_url_clear. */
typedef struct {
    bool tls;             /* rediss:// */
    char host[256];       /* without brackets for IPv6 */
    bool host_is_ip;
    int port;             /* 6379 when absent */
    int64_t db;           /* /N, 0 when absent */
    char user[128];       /* ACL user ("" = the default user) */
    char password[512];   /* "" = no AUTH */
} osp_redis_url;

/* Parses `url`; false with a message naming what is wrong. */
bool osp_redis_url_parse(const char *url, osp_redis_url *out, char *err, size_t errlen);
void osp_redis_url_clear(osp_redis_url *u);
/* "host:port" (IPv6 in brackets), for messages. */
void osp_redis_url_address(const osp_redis_url *u, char *out, size_t outlen);

typedef enum {
    OSP_REDIS_IDLE,       /* no socket */
    OSP_REDIS_CONNECTING, /* TCP connect in progress */
    OSP_REDIS_TLS,        /* TLS handshake */
    OSP_REDIS_AUTH,       /* AUTH / SELECT sent, replies pending */
    OSP_REDIS_READY,
} osp_redis_state;

typedef struct osp_redis_conn osp_redis_conn;

struct osp_redis_conn {
    osp_ws_watch watch;         /* first member: the loop hands back a pointer to it */
    osp_ws_timer deadline;      /* connect + TLS + AUTH must finish before it fires */
    osp_redis_state state;
    const osp_redis_url *url;   /* the owner's */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    SSL_CTX *tls_ctx;           /* the owner's, for rediss:// */
    SSL *ssl;
    bool tls_want_write;        /* OpenSSL needs the socket writable before it can go on */
    redisReader *reader;
    int handshake_replies;      /* AUTH/SELECT replies still to consume */
    /* Commands not yet written, in order: AUTH/SELECT, then the owner's (osp_redis_conn_send).
     * Wiped when freed (AUTH carries the password; publishes carry messages). */
    osp_ws_buf out;
    size_t out_off;
    void *owner;
    void (*on_ready)(osp_redis_conn *c);
    void (*on_reply)(osp_redis_conn *c, redisReply *reply); /* takes the reply (freeReplyObject) */
    void (*on_down)(osp_redis_conn *c, const char *why);
};

/* Initialises a connection (IDLE). */
void osp_redis_conn_init(osp_redis_conn *c, const osp_redis_url *url, const struct sockaddr_storage *addr,
                         socklen_t addr_len, SSL_CTX *tls_ctx, void *owner);
/* Starts connecting; everything must be done within timeout_ms. false with `why` when it cannot
 * even start (no socket); otherwise the outcome arrives as on_ready or on_down. */
bool osp_redis_conn_start(osp_redis_conn *c, uint64_t timeout_ms, char *why, size_t whylen);
/* Closes the socket without calling on_down (the owner is tearing down). */
void osp_redis_conn_close(osp_redis_conn *c);
/* READY only: queues encoded commands behind everything queued before and writes what the socket
 * takes (the rest when it is writable again). Their replies arrive through on_reply in the same
 * order. false when out of memory or the connection failed (on_down has then been called). */
bool osp_redis_conn_send(osp_redis_conn *c, const uint8_t *p, size_t n);
/* Bytes queued and not yet written. */
size_t osp_redis_conn_unsent(const osp_redis_conn *c);

/* A RESP command (binary-safe arguments) in a malloc'd buffer; NULL when out of memory. */
uint8_t *osp_redis_format(int argc, const char **argv, const size_t *argvlen, size_t *len);

/* Resolves the URL's host (blocking: call it on a helper thread, never on the loop) into the
 * first usable address. false with a message. */
bool osp_redis_resolve(const osp_redis_url *u, struct sockaddr_storage *addr, socklen_t *addr_len, char *err,
                       size_t errlen);

#endif /* OSP_REDIS_CONN_H */
