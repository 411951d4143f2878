/*
 * TLS for WebSockets (see ws_tls.h). Every SSL_* call is preceded by ERR_clear_error() because
 * SSL_get_error() inspects the thread's error queue and a stale entry would misclassify the
 * result (SSL_get_error(3): "the current thread's error queue must be empty before the TLS/SSL
 * I/O operation is attempted").
 */
#include "ws_tls.h"
#include "loop.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* ---- a socket BIO that never raises SIGPIPE -------------------------------------------------- */

/* OpenSSL's own socket BIO writes with write(2): a peer that reset the connection would kill the
 * whole process with SIGPIPE (the runtime does not change the program's signal dispositions).
 * This BIO sends with MSG_NOSIGNAL, as net.c does for plain connections, and otherwise behaves
 * like BIO_s_socket on a non-blocking fd: EAGAIN/EINTR become retry flags (BIO_set_retry_read(3)),
 * so SSL_get_error reports WANT_READ/WANT_WRITE. */
static BIO_METHOD *nosig_method;
static pthread_once_t nosig_once = PTHREAD_ONCE_INIT;

static int nosig_fd(BIO *b) { return (int)(intptr_t)BIO_get_data(b); }

static int nosig_write(BIO *b, const char *in, int n) {
    BIO_clear_retry_flags(b);
    ssize_t w;
    do w = send(nosig_fd(b), in, (size_t)n, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
    return (int)w;
}

static int nosig_read(BIO *b, char *out, int n) {
    BIO_clear_retry_flags(b);
    ssize_t r;
    do r = recv(nosig_fd(b), out, (size_t)n, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
    return (int)r; /* 0: EOF */
}

static int nosig_puts(BIO *b, const char *str) { return nosig_write(b, str, (int)strlen(str)); }

static long nosig_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)b;
    (void)num;
    (void)ptr;
    /* Nothing is buffered here, so a flush always succeeds; everything else is unsupported. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int nosig_create(BIO *b) {
    BIO_set_init(b, 1);
    return 1;
}

static void make_nosig_method(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "osprey socket");
    if (m == NULL) return;
    if (BIO_meth_set_write(m, nosig_write) != 1 || BIO_meth_set_read(m, nosig_read) != 1 ||
        BIO_meth_set_puts(m, nosig_puts) != 1 || BIO_meth_set_ctrl(m, nosig_ctrl) != 1 ||
        BIO_meth_set_create(m, nosig_create) != 1) {
        BIO_meth_free(m);
        return;
    }
    nosig_method = m;
}

bool osp_ws_tls_attach(SSL *ssl, int fd) {
    if (pthread_once(&nosig_once, make_nosig_method) != 0 || nosig_method == NULL) return false;
    BIO *bio = BIO_new(nosig_method);
    if (bio == NULL) return false;
    BIO_set_data(bio, (void *)(intptr_t)fd);
    /* SSL_set_bio(3): the same BIO for reading and writing; the session takes its one reference. */
    SSL_set_bio(ssl, bio, bio);
    return true;
}

/* ---- the extra trust anchor ---------------------------------------------------------------- */

static pthread_mutex_t ca_lock = PTHREAD_MUTEX_INITIALIZER;
static char *trusted_ca; /* malloc'd path, NULL for none */

/* OpenSSL's reason for the last error on this thread, for messages. */
static const char *last_reason(void) {
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown OpenSSL error";
}

bool osp_ws_tls_set_trusted_ca(const char *path, char *err, size_t errlen) {
    if (path[0] != '\0') {
        /* Load it once now so a wrong path is reported by the call that set it, not by every
         * later websocketConnect. */
        X509_STORE *store = X509_STORE_new();
        if (store == NULL) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
        ERR_clear_error();
        int ok = X509_STORE_load_file(store, path);
        int count = 0;
        if (ok == 1) {
            STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);
            count = objs ? sk_X509_OBJECT_num(objs) : 0;
        }
        X509_STORE_free(store);
        if (ok != 1 || count <= 0) {
            struct stat st;
            if (stat(path, &st) != 0)
                snprintf(err, errlen, "cannot read CA file \"%s\": %s", path, strerror(errno));
            else
                snprintf(err, errlen, "no PEM certificate could be loaded from \"%s\" (%s)", path,
                         ok == 1 ? "the file holds no certificate" : last_reason());
            ERR_clear_error();
            return false;
        }
    }
    char *copy = NULL;
    if (path[0] != '\0' && (copy = strdup(path)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    pthread_mutex_lock(&ca_lock);
    free(trusted_ca);
    trusted_ca = copy;
    pthread_mutex_unlock(&ca_lock);
    return true;
}

/* Settings shared by both sides (SSL_CTX_set_min_proto_version(3), SSL_CTX_set_mode(3)). */
static bool common_ctx_setup(SSL_CTX *ctx) {
    /* TLS 1.2 is the oldest version without known protocol breaks (RFC 8996 deprecates 1.0/1.1). */
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) return false;
    /* Partial writes let SSL_write behave like send(2) on our output queue; a moving buffer is
     * needed because the queue may be reallocated between a WANT_WRITE and the retry;
     * released buffers keep idle connections small. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* No renegotiation (a DoS vector, and TLS 1.3 has none). The WebSocket closing handshake, not
     * close_notify, says whether the stream ended cleanly, so a missing close_notify is just EOF
     * (SSL_OP_IGNORE_UNEXPECTED_EOF, OpenSSL 3.0). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
    /* Without it OpenSSL leaves decrypted records (the upgrade request's cookies and tokens,
     * payloads) in its record buffers after SSL_read has copied them out, and frees those
     * buffers unwiped (SSL_MODE_RELEASE_BUFFERS): cleanse them as soon as they are consumed. */
    SSL_CTX_set_options(ctx, SSL_OP_CLEANSE_PLAINTEXT);
    return true;
}

SSL_CTX *osp_ws_tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen) {
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || !common_ctx_setup(ctx)) {
        snprintf(err, errlen, "cannot create a TLS context: %s", last_reason());
        SSL_CTX_free(ctx);
        return NULL;
    }
    struct stat st;
    if (stat(cert_file, &st) != 0) {
        snprintf(err, errlen, "cannot read certificate file \"%s\": %s", cert_file, strerror(errno));
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        snprintf(err, errlen, "cannot load the certificate from \"%s\" (a PEM certificate chain is "
                              "expected): %s", cert_file, last_reason());
        goto fail;
    }
    if (stat(key_file, &st) != 0) {
        snprintf(err, errlen, "cannot read private key file \"%s\": %s", key_file, strerror(errno));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errlen, "cannot load the private key from \"%s\" (an unencrypted PEM key is "
                              "expected, or it does not match the certificate): %s", key_file, last_reason());
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "the private key in \"%s\" does not match the certificate in \"%s\"",
                 key_file, cert_file);
        goto fail;
    }
    ERR_clear_error();
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

/* ---- client handshake and blocking-with-deadline I/O --------------------------------------- */

/* Waits until fd is readable or writable, as OpenSSL asked, before the deadline. 0 or -1 (errno
 * ETIMEDOUT). */
static int wait_for(int fd, bool want_write, uint64_t deadline_ms) {
    for (;;) {
        uint64_t now = osp_ws_now_ms();
        if (now >= deadline_ms) {
            errno = ETIMEDOUT;
            return -1;
        }
        uint64_t left = deadline_ms - now;
        struct pollfd p = {fd, (short)(want_write ? POLLOUT : POLLIN), 0};
        int n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n > 0) return 0;
        if (n < 0 && errno != EINTR) return -1;
    }
}

SSL *osp_ws_tls_client_handshake(int fd, const char *host, bool host_is_ip, uint64_t deadline_ms,
                                 char *err, size_t errlen) {
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    if (ctx == NULL || !common_ctx_setup(ctx)) {
        snprintf(err, errlen, "cannot create a TLS context: %s", last_reason());
        goto fail;
    }
    /* Verify the chain (SSL_CTX_set_verify(3)): the handshake fails on any verification error. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(err, errlen, "cannot load the system trust store: %s", last_reason());
        goto fail;
    }
    pthread_mutex_lock(&ca_lock);
    int ca_ok = trusted_ca == NULL || SSL_CTX_load_verify_locations(ctx, trusted_ca, NULL) == 1;
    if (!ca_ok) snprintf(err, errlen, "cannot load the trusted CA file \"%s\": %s", trusted_ca, last_reason());
    pthread_mutex_unlock(&ca_lock);
    if (!ca_ok) goto fail;
    ssl = SSL_new(ctx);
    if (ssl == NULL || !osp_ws_tls_attach(ssl, fd)) {
        snprintf(err, errlen, "cannot create a TLS session: %s", last_reason());
        goto fail;
    }
    SSL_set_connect_state(ssl);
    if (host_is_ip) {
        /* An IP literal is checked against the certificate's iPAddress SANs; no SNI for it
         * (RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted in HostName"). */
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1) {
            snprintf(err, errlen, "cannot check the certificate against IP address %s", host);
            goto fail;
        }
    } else {
        /* RFC 6125 host name check during the handshake (SSL_set1_host(3)), and SNI so a server
         * with several names picks the right certificate. */
        if (SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1) {
            snprintf(err, errlen, "cannot set the TLS host name \"%s\": %s", host, last_reason());
            goto fail;
        }
    }
    for (;;) {
        ERR_clear_error();
        int rc = SSL_connect(ssl);
        if (rc == 1) break;
        int e = SSL_get_error(ssl, rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (wait_for(fd, e == SSL_ERROR_WANT_WRITE, deadline_ms) != 0) {
                snprintf(err, errlen, errno == ETIMEDOUT ? "TLS handshake timed out" : "TLS handshake failed: %s",
                         strerror(errno));
                goto fail;
            }
            continue;
        }
        long v = SSL_get_verify_result(ssl);
        if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
            snprintf(err, errlen, "certificate verify failed: host name mismatch: the server's certificate "
                                  "is not valid for \"%s\"", host);
        } else if (v != X509_V_OK) {
            snprintf(err, errlen, "certificate verify failed: %s (for a private CA, trust it with "
                                  "websocketSetTrustedCA)", X509_verify_cert_error_string(v));
        } else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
            snprintf(err, errlen, "TLS handshake failed: the server closed the connection (%s)",
                     errno ? strerror(errno) : "is it a TLS server?");
        } else {
            snprintf(err, errlen, "TLS handshake failed: %s", last_reason());
        }
        goto fail;
    }
    ERR_clear_error();
    SSL_CTX_free(ctx); /* the session keeps its own reference */
    return ssl;
fail:
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return NULL;
}

int osp_ws_tls_write_all(SSL *ssl, int fd, const void *p, size_t n, uint64_t deadline_ms) {
    const char *c = p;
    while (n > 0) {
        bool want_write = false;
        ssize_t w = osp_ws_tls_send(ssl, c, n, &want_write);
        if (w > 0) {
            c += w;
            n -= (size_t)w;
            continue;
        }
        if (errno != EAGAIN || wait_for(fd, want_write, deadline_ms) != 0) return -1;
    }
    return 0;
}

ssize_t osp_ws_tls_read_some(SSL *ssl, int fd, void *p, size_t n, uint64_t deadline_ms) {
    for (;;) {
        bool want_write = false;
        ssize_t r = osp_ws_tls_recv(ssl, p, n, &want_write);
        if (r >= 0) return r;
        if (errno != EAGAIN || wait_for(fd, want_write, deadline_ms) != 0) return -1;
    }
}

/* ---- non-blocking record I/O ---------------------------------------------------------------- */

ssize_t osp_ws_tls_recv(SSL *ssl, void *p, size_t n, bool *want_write) {
    *want_write = false;
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(ssl, p, n > INT_MAX ? INT_MAX : (int)n);
    if (r > 0) return r;
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        *want_write = true;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0; /* close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF) */
    case SSL_ERROR_SYSCALL:
        if (errno == 0) return 0; /* EOF without close_notify */
        ERR_clear_error();
        return -1;
    default:
        /* A bad record MAC, a decode error, an alert: the stream cannot be trusted further. */
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

ssize_t osp_ws_tls_send(SSL *ssl, const void *p, size_t n, bool *want_write) {
    *want_write = false;
    ERR_clear_error();
    errno = 0;
    int w = SSL_write(ssl, p, n > INT_MAX ? INT_MAX : (int)n);
    if (w > 0) return w;
    switch (SSL_get_error(ssl, w)) {
    case SSL_ERROR_WANT_WRITE:
        *want_write = true;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_READ:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_SYSCALL:
        if (errno == 0) errno = EPIPE;
        ERR_clear_error();
        return -1;
    default:
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

int osp_ws_tls_accept_step(SSL *ssl, bool *want_write, bool *plain_http) {
    *want_write = false;
    *plain_http = false;
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl);
    if (rc == 1) return 1;
    int e = SSL_get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_READ) return 0;
    if (e == SSL_ERROR_WANT_WRITE) {
        *want_write = true;
        return 0;
    }
    /* OpenSSL recognises a plain HTTP request on a TLS port (SSL_R_HTTP_REQUEST). */
    unsigned long last = ERR_peek_last_error();
    *plain_http = e == SSL_ERROR_SSL && ERR_GET_LIB(last) == ERR_LIB_SSL && ERR_GET_REASON(last) == SSL_R_HTTP_REQUEST;
    ERR_clear_error();
    return -1;
}

void osp_ws_tls_shutdown(SSL *ssl) {
    ERR_clear_error();
    /* SSL_shutdown(3): 0 means close_notify was sent and we did not wait for the peer's, which
     * is all we want before our FIN; < 0 (WANT_WRITE, or the peer already gone) is not worth
     * retrying: the WebSocket Close frame already ended the stream. */
    int rc = SSL_shutdown(ssl);
    if (rc < 0) ERR_clear_error();
}

SSL_CTX *osp_ws_tls_client_ctx(char *err, size_t errlen) {
    /* The same policy as the wss:// client (osp_ws_tls_client_handshake): TLS >= 1.2, the
     * system trust store plus websocketSetTrustedCA's file, verification required. */
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || !common_ctx_setup(ctx)) {
        snprintf(err, errlen, "cannot create a TLS context: %s", last_reason());
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(err, errlen, "cannot load the system trust store: %s", last_reason());
        SSL_CTX_free(ctx);
        return NULL;
    }
    pthread_mutex_lock(&ca_lock);
    int ca_ok = trusted_ca == NULL || SSL_CTX_load_verify_locations(ctx, trusted_ca, NULL) == 1;
    if (!ca_ok) snprintf(err, errlen, "cannot load the trusted CA file \"%s\": %s", trusted_ca, last_reason());
    pthread_mutex_unlock(&ca_lock);
    ERR_clear_error();
    if (!ca_ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}
