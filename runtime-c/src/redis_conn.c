/*
 * A Redis connection on the event loop (redis_conn.h): our non-blocking socket and OpenSSL for
 * the transport, hiredis for RESP.
 */
#include "redis_conn.h"
#include "runtime.h"
#include "ws_buf.h"
#include "ws_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* ---- URLs ---------------------------------------------------------------------------------- */

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, s+n) into out (NUL-terminated); false when malformed or too long. */
static bool decode_part(const char *s, size_t n, char *out, size_t outlen) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n) return false;
            int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) return false;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (ch == '\0' || k + 1 >= outlen) return false;
        out[k++] = ch;
    }
    out[k] = '\0';
    return true;
}

bool osp_redis_url_parse(const char *url, osp_redis_url *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const char *p;
    if (strncmp(url, "redis://", 8) == 0) {
        p = url + 8;
    } else if (strncmp(url, "rediss://", 9) == 0) {
        p = url + 9;
        out->tls = true;
    } else {
        snprintf(err, errlen, "\"%.200s\" is not a Redis URL (expected redis://host:port/db or rediss://…)", url);
        return false;
    }
    /* Authority ends at '/', '?' or the end. */
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@') at = q; /* the last '@': a password may contain an encoded one only */
    const char *host = p;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        bool ok;
        if (colon) {
            ok = decode_part(p, (size_t)(colon - p), out->user, sizeof out->user) &&
                 decode_part(colon + 1, (size_t)(at - colon - 1), out->password, sizeof out->password);
        } else {
            /* redis://password@host is how several clients spell a password without a user. */
            ok = decode_part(p, (size_t)(at - p), out->password, sizeof out->password);
        }
        if (!ok) {
            osp_redis_url_clear(out);
            snprintf(err, errlen, "the user or password of the Redis URL is malformed or too long");
            return false;
        }
        host = at + 1;
    }
    const char *port_at = NULL, *host_end = end;
    if (*host == '[') {
        const char *close = memchr(host, ']', (size_t)(end - host));
        if (close == NULL) {
            osp_redis_url_clear(out);
            snprintf(err, errlen, "the IPv6 address of the Redis URL has no closing ']'");
            return false;
        }
        if ((size_t)(close - host - 1) >= sizeof out->host) goto bad_host;
        memcpy(out->host, host + 1, (size_t)(close - host - 1));
        out->host[close - host - 1] = '\0';
        if (close + 1 < end) {
            if (close[1] != ':') goto bad_host;
            port_at = close + 2;
        }
    } else {
        const char *colon = memchr(host, ':', (size_t)(end - host));
        if (colon) {
            port_at = colon + 1;
            host_end = colon;
        }
        if ((size_t)(host_end - host) >= sizeof out->host) goto bad_host;
        memcpy(out->host, host, (size_t)(host_end - host));
        out->host[host_end - host] = '\0';
    }
    if (out->host[0] == '\0') goto bad_host;
    out->port = 6379;
    if (port_at) {
        long v = 0;
        const char *q = port_at;
        if (q == end) goto bad_port;
        for (; q < end; q++) {
            if (*q < '0' || *q > '9' || v > 65535) goto bad_port;
            v = v * 10 + (*q - '0');
        }
        if (v < 1 || v > 65535) goto bad_port;
        out->port = (int)v;
    }
    if (*end == '/' && end[1] != '\0') {
        const char *q = end + 1;
        int64_t v = 0;
        for (; *q && *q != '?' && *q != '#'; q++) {
            if (*q < '0' || *q > '9' || v > 1000000) {
                osp_redis_url_clear(out);
                snprintf(err, errlen, "the database of the Redis URL must be a number (redis://host:port/0)");
                return false;
            }
            v = v * 10 + (*q - '0');
        }
        out->db = v;
    }
    unsigned char probe[sizeof(struct in6_addr)];
    out->host_is_ip = inet_pton(AF_INET, out->host, probe) == 1 || inet_pton(AF_INET6, out->host, probe) == 1;
    return true;
bad_host:
    osp_redis_url_clear(out);
    snprintf(err, errlen, "the Redis URL \"%.200s\" has no valid host", url);
    return false;
bad_port:
    osp_redis_url_clear(out);
    snprintf(err, errlen, "the port of the Redis URL must be 1…65535");
    return false;
}

void osp_redis_url_clear(osp_redis_url *u) { explicit_bzero(u, sizeof *u); }

void osp_redis_url_address(const osp_redis_url *u, char *out, size_t outlen) {
    bool v6 = strchr(u->host, ':') != NULL;
    snprintf(out, outlen, "%s%s%s:%d", v6 ? "[" : "", u->host, v6 ? "]" : "", u->port);
}

bool osp_redis_resolve(const osp_redis_url *u, struct sockaddr_storage *addr, socklen_t *addr_len, char *err,
                       size_t errlen) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char port[16];
    snprintf(port, sizeof port, "%d", u->port);
    int rc = getaddrinfo(u->host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        char a[300];
        osp_redis_url_address(u, a, sizeof a);
        snprintf(err, errlen, "cannot resolve Redis host %s: %s", a, gai_strerror(rc));
        return false;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

uint8_t *osp_redis_format(int argc, const char **argv, const size_t *argvlen, size_t *len) {
    char *cmd = NULL;
    long long n = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (n < 0 || cmd == NULL) return NULL;
    *len = (size_t)n;
    return (uint8_t *)cmd; /* hiredis allocates it with malloc (its default allocator) */
}

/* ---- the connection ------------------------------------------------------------------------ */

static void set_events(osp_redis_conn *c, uint32_t events) {
    if (c->watch.events == events) return;
    (void)osp_ws_watch_set(&c->watch, events);
}

static void drop_socket(osp_redis_conn *c) {
    osp_ws_timer_cancel(&c->deadline);
    if (c->watch.fd >= 0) {
        set_events(c, 0);
        if (c->ssl && c->state == OSP_REDIS_READY) osp_ws_tls_shutdown(c->ssl);
        close(c->watch.fd);
        c->watch.fd = -1;
    }
    c->watch.events = 0;
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->reader) {
        redisReaderFree(c->reader);
        c->reader = NULL;
    }
    osp_ws_buf_free(&c->out); /* wiped: AUTH carries the password */
    c->out_off = 0;
    c->tls_want_write = false;
    c->handshake_replies = 0;
    c->state = OSP_REDIS_IDLE;
}

static void go_down(osp_redis_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void go_down(osp_redis_conn *c, const char *fmt, ...) {
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    drop_socket(c);
    c->on_down(c, why); /* last: the owner may restart or free c */
}

static const char *tls_reason(void) {
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown OpenSSL error";
}

static void on_deadline(osp_ws_timer *t) {
    osp_redis_conn *c = (osp_redis_conn *)((char *)t - offsetof(osp_redis_conn, deadline));
    char a[300];
    osp_redis_url_address(c->url, a, sizeof a);
    const char *phase = c->state == OSP_REDIS_CONNECTING ? "connecting to"
                        : c->state == OSP_REDIS_TLS      ? "in the TLS handshake with"
                                                         : "waiting for AUTH/SELECT replies from";
    go_down(c, "timed out %s Redis at %s", phase, a);
}

/* Raw transport. >0, 0 (would block; *ww: needs writability), -1 failure, -2 EOF. */
static ssize_t raw_recv(osp_redis_conn *c, uint8_t *p, size_t n, bool *ww) {
    *ww = false;
    if (c->ssl) {
        ssize_t r = osp_ws_tls_recv(c->ssl, p, n, ww);
        if (r > 0) return r;
        if (r == 0) return -2;
        return errno == EAGAIN ? 0 : -1;
    }
    for (;;) {
        ssize_t r = recv(c->watch.fd, p, n, 0);
        if (r > 0) return r;
        if (r == 0) return -2;
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
}

static ssize_t raw_send(osp_redis_conn *c, const uint8_t *p, size_t n, bool *ww) {
    *ww = true;
    if (c->ssl) {
        ssize_t r = osp_ws_tls_send(c->ssl, p, n, ww);
        if (r > 0) return r;
        return errno == EAGAIN ? 0 : -1;
    }
    for (;;) {
        ssize_t r = send(c->watch.fd, p, n, MSG_NOSIGNAL);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
}

static void update_interest(osp_redis_conn *c) {
    bool out = c->tls_want_write || c->out_off < c->out.len;
    set_events(c, EPOLLIN | (out ? EPOLLOUT : 0));
}

static void became_ready(osp_redis_conn *c) {
    osp_ws_timer_cancel(&c->deadline);
    c->state = OSP_REDIS_READY;
    c->on_ready(c);
}

/* Writes queued commands; false when the connection went down. */
static bool flush_out(osp_redis_conn *c) {
    while (c->out_off < c->out.len) {
        bool ww;
        ssize_t r = raw_send(c, c->out.data + c->out_off, c->out.len - c->out_off, &ww);
        if (r < 0) {
            char a[300];
            osp_redis_url_address(c->url, a, sizeof a);
            go_down(c, "lost the connection to Redis at %s: %s", a, strerror(errno));
            return false;
        }
        if (r == 0) break; /* EPOLLOUT (or, for TLS wanting to read, EPOLLIN) resumes it */
        c->out_off += (size_t)r;
    }
    if (c->out_off == c->out.len) {
        osp_ws_buf_clear(&c->out);
        c->out_off = 0;
    } else if (c->out_off > 65536 && c->out_off * 2 > c->out.len) {
        osp_ws_buf_consume(&c->out, c->out_off); /* keep the buffer from creeping forward */
        c->out_off = 0;
    }
    update_interest(c);
    return true;
}

static bool append_cmd(osp_redis_conn *c, int argc, const char **argv, const size_t *lens) {
    size_t n;
    uint8_t *cmd = osp_redis_format(argc, argv, lens, &n);
    if (cmd == NULL) return false;
    int rc = osp_ws_buf_append(&c->out, cmd, n);
    osp_ws_free_wiped(cmd, n);
    return rc == 0;
}

static void begin_auth(osp_redis_conn *c) {
    c->state = OSP_REDIS_AUTH;
    bool ok = true;
    if (c->url->password[0]) {
        if (c->url->user[0]) {
            const char *argv[] = {"AUTH", c->url->user, c->url->password};
            size_t lens[] = {4, strlen(c->url->user), strlen(c->url->password)};
            ok = append_cmd(c, 3, argv, lens);
        } else {
            const char *argv[] = {"AUTH", c->url->password};
            size_t lens[] = {4, strlen(c->url->password)};
            ok = append_cmd(c, 2, argv, lens);
        }
        c->handshake_replies++;
    }
    if (ok && c->url->db != 0) {
        char db[24];
        snprintf(db, sizeof db, "%lld", (long long)c->url->db);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, strlen(db)};
        ok = append_cmd(c, 2, argv, lens);
        c->handshake_replies++;
    }
    if (!ok) {
        go_down(c, "out of memory");
        return;
    }
    if (c->handshake_replies == 0) {
        update_interest(c);
        became_ready(c);
        return;
    }
    (void)flush_out(c);
}

static void tls_step(osp_redis_conn *c) {
    ERR_clear_error();
    int rc = SSL_connect(c->ssl);
    if (rc == 1) {
        ERR_clear_error();
        begin_auth(c);
        return;
    }
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        set_events(c, e == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN);
        return;
    }
    char a[300];
    osp_redis_url_address(c->url, a, sizeof a);
    long v = SSL_get_verify_result(c->ssl);
    if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
        go_down(c, "TLS to Redis at %s: certificate verify failed: the certificate is not valid for \"%s\"", a,
                c->url->host);
    else if (v != X509_V_OK)
        go_down(c, "TLS to Redis at %s: certificate verify failed: %s (for a private CA, trust it with "
                   "websocketSetTrustedCA)", a, X509_verify_cert_error_string(v));
    else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
        go_down(c, "TLS to Redis at %s failed: the server closed the connection (is it a TLS port?)", a);
    else
        go_down(c, "TLS to Redis at %s failed: %s", a, tls_reason());
}

static void start_tls(osp_redis_conn *c) {
    c->state = OSP_REDIS_TLS;
    c->ssl = SSL_new(c->tls_ctx);
    if (c->ssl == NULL || !osp_ws_tls_attach(c->ssl, c->watch.fd)) {
        go_down(c, "cannot create a TLS session: %s", tls_reason());
        return;
    }
    SSL_set_connect_state(c->ssl);
    bool ok;
    if (c->url->host_is_ip) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), c->url->host) == 1;
    } else {
        /* Host name checked during the handshake (RFC 6125), SNI for servers with several names. */
        ok = SSL_set1_host(c->ssl, c->url->host) == 1 && SSL_set_tlsext_host_name(c->ssl, c->url->host) == 1;
    }
    if (!ok) {
        go_down(c, "cannot set the TLS host name \"%s\": %s", c->url->host, tls_reason());
        return;
    }
    tls_step(c);
}

/* Reads and dispatches replies; false when the connection went down or was closed meanwhile. */
static bool read_replies(osp_redis_conn *c) {
    static uint8_t buf[65536]; /* loop thread only */
    for (int rounds = 0; rounds < 16; rounds++) {
        bool ww;
        ssize_t r = raw_recv(c, buf, sizeof buf, &ww);
        char a[300];
        if (r == 0) {
            c->tls_want_write = ww;
            break;
        }
        if (r < 0) {
            osp_redis_url_address(c->url, a, sizeof a);
            if (r == -2) go_down(c, "Redis at %s closed the connection", a);
            else go_down(c, "lost the connection to Redis at %s: %s", a, strerror(errno));
            return false;
        }
        if (redisReaderFeed(c->reader, (const char *)buf, (size_t)r) != REDIS_OK) {
            osp_redis_url_address(c->url, a, sizeof a);
            go_down(c, "Redis at %s sent a malformed reply", a);
            return false;
        }
        osp_ws_wipe(buf, (size_t)r);
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
                osp_redis_url_address(c->url, a, sizeof a);
                go_down(c, "Redis at %s sent a malformed reply: %s", a, c->reader->errstr);
                return false;
            }
            if (reply == NULL) break;
            redisReply *rep = reply;
            if (c->state == OSP_REDIS_AUTH) {
                c->handshake_replies--;
                if (rep->type == REDIS_REPLY_ERROR) {
                    osp_redis_url_address(c->url, a, sizeof a);
                    char msg[200];
                    snprintf(msg, sizeof msg, "%.*s", (int)(rep->len < 190 ? rep->len : 190), rep->str);
                    freeReplyObject(rep);
                    go_down(c, "Redis at %s refused AUTH/SELECT: %s", a, msg);
                    return false;
                }
                freeReplyObject(rep);
                if (c->handshake_replies == 0) {
                    int fd = c->watch.fd;
                    became_ready(c);
                    if (c->state != OSP_REDIS_READY || c->watch.fd != fd) return false;
                }
                continue;
            }
            int fd = c->watch.fd;
            c->on_reply(c, rep); /* takes the reply */
            if (c->state != OSP_REDIS_READY || c->watch.fd != fd) return false;
        }
        if ((size_t)r < sizeof buf && !(c->ssl && SSL_pending(c->ssl) > 0)) break;
    }
    return true;
}

static void on_event(osp_ws_watch *w, uint32_t events) {
    osp_redis_conn *c = (osp_redis_conn *)w;
    char a[300];
    switch (c->state) {
    case OSP_REDIS_IDLE:
        return;
    case OSP_REDIS_CONNECTING: {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (getsockopt(c->watch.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) soerr = errno;
        if (soerr == 0 && (events & (EPOLLERR | EPOLLHUP))) soerr = ECONNREFUSED;
        if (soerr != 0) {
            osp_redis_url_address(c->url, a, sizeof a);
            go_down(c, "cannot connect to Redis at %s: %s", a, strerror(soerr));
            return;
        }
        if (c->tls_ctx) start_tls(c);
        else begin_auth(c);
        return;
    }
    case OSP_REDIS_TLS:
        tls_step(c);
        return;
    case OSP_REDIS_AUTH:
    case OSP_REDIS_READY:
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP) || c->tls_want_write) {
            c->tls_want_write = false;
            if (!read_replies(c)) return;
        }
        (void)flush_out(c);
        return;
    }
}

void osp_redis_conn_init(osp_redis_conn *c, const osp_redis_url *url, const struct sockaddr_storage *addr,
                         socklen_t addr_len, SSL_CTX *tls_ctx, void *owner) {
    memset(c, 0, sizeof *c);
    c->watch.fd = -1;
    c->watch.on_event = on_event;
    osp_ws_timer_init(&c->deadline, on_deadline);
    c->url = url;
    memcpy(&c->addr, addr, addr_len);
    c->addr_len = addr_len;
    c->tls_ctx = tls_ctx;
    c->owner = owner;
}

bool osp_redis_conn_start(osp_redis_conn *c, uint64_t timeout_ms, char *why, size_t whylen) {
    drop_socket(c);
    int fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "cannot create a socket: %s", strerror(errno));
        return false;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* small publishes, no Nagle delay */
    if (connect(fd, (const struct sockaddr *)&c->addr, c->addr_len) != 0 && errno != EINPROGRESS) {
        char a[300];
        osp_redis_url_address(c->url, a, sizeof a);
        snprintf(why, whylen, "cannot connect to Redis at %s: %s", a, strerror(errno));
        close(fd);
        return false;
    }
    c->reader = redisReaderCreate();
    if (c->reader == NULL) {
        close(fd);
        snprintf(why, whylen, "out of memory");
        return false;
    }
    c->watch.fd = fd;
    c->state = OSP_REDIS_CONNECTING;
    if (osp_ws_watch_set(&c->watch, EPOLLOUT) != 0) {
        snprintf(why, whylen, "cannot watch the Redis socket: %s", strerror(errno));
        drop_socket(c);
        return false;
    }
    osp_ws_timer_arm(&c->deadline, timeout_ms);
    return true;
}

void osp_redis_conn_close(osp_redis_conn *c) { drop_socket(c); }

bool osp_redis_conn_send(osp_redis_conn *c, const uint8_t *p, size_t n) {
    if (c->state != OSP_REDIS_READY) return false;
    if (n && osp_ws_buf_append(&c->out, p, n) != 0) return false;
    return flush_out(c);
}

size_t osp_redis_conn_unsent(const osp_redis_conn *c) { return c->out.len - c->out_off; }
