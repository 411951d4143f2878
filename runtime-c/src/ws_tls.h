/*
 * TLS for WebSockets (wss://, RFC 6455 §3 and §4.1 item 5) with OpenSSL 3: client and server
 * contexts, the client's blocking-with-deadline handshake and I/O on the calling thread, and the
 * non-blocking record I/O the loop thread uses for established connections.
 *
 * Policy: TLS 1.2 or newer; the client verifies the server's certificate chain against the
 * system trust store (plus the CA file set with websocketSetTrustedCA) and the host name or IP
 * address of the URL (RFC 6125 via X509_check_host/ip, done by OpenSSL during the handshake);
 * SNI carries the host name (never an IP literal, RFC 6066 §3). Renegotiation is refused.
 */
#ifndef OSP_WS_TLS_H
#define OSP_WS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

/* Connects a session to a non-blocking socket through a BIO that sends with MSG_NOSIGNAL (a reset
 * peer must not kill the process with SIGPIPE). false when OpenSSL is out of memory. */
bool osp_ws_tls_attach(SSL *ssl, int fd);

/* websocketSetTrustedCA: checks that `path` holds at least one PEM certificate and makes it an
 * extra trust anchor for later wss:// connections ("" removes it). false with a message. */
bool osp_ws_tls_set_trusted_ca(const char *path, char *err, size_t errlen);

/* A server context from a PEM certificate chain and private key; NULL with a message naming the
 * file and OpenSSL's reason (unreadable, not PEM, key does not match the certificate). */
SSL_CTX *osp_ws_tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen);

/* Client side, on the calling thread: a TLS session over the connected non-blocking fd, its
 * handshake finished before deadline_ms, the certificate verified for `host`. NULL with an
 * actionable message ("certificate verify failed: …", "host name mismatch: …", "TLS handshake
 * … failed: …"). */
SSL *osp_ws_tls_client_handshake(int fd, const char *host, bool host_is_ip, uint64_t deadline_ms,
                                 char *err, size_t errlen);

/* A client context with the wss:// client's policy (TLS >= 1.2, chain verified against the system
 * store and websocketSetTrustedCA's file), for connections that run their handshake on the loop
 * (rediss://, redis_conn.c) and set the host to check themselves. NULL with a message. */
SSL_CTX *osp_ws_tls_client_ctx(char *err, size_t errlen);

/* Blocking-with-deadline record I/O for the client's HTTP upgrade (same contract as
 * osp_ws_net_write_all / osp_ws_net_read_some: errno ETIMEDOUT on the deadline, EPROTO on a
 * TLS error). */
int osp_ws_tls_write_all(SSL *ssl, int fd, const void *p, size_t n, uint64_t deadline_ms);
ssize_t osp_ws_tls_read_some(SSL *ssl, int fd, void *p, size_t n, uint64_t deadline_ms);

/* Non-blocking I/O for the loop thread. Both return >0 bytes, 0 on end of stream (read only:
 * close_notify or the peer's FIN), or -1 with errno: EAGAIN when OpenSSL needs the socket to be
 * readable (*want_write false) or writable (*want_write true) first; another errno on failure. */
ssize_t osp_ws_tls_recv(SSL *ssl, void *p, size_t n, bool *want_write);
ssize_t osp_ws_tls_send(SSL *ssl, const void *p, size_t n, bool *want_write);

/* Server side, non-blocking: advances the handshake. 1 done, 0 call again when the socket is
 * readable (*want_write false) or writable (*want_write true), -1 failed (*plain_http set when
 * the peer spoke plain HTTP to the TLS port, so the caller can answer it in plain text). */
int osp_ws_tls_accept_step(SSL *ssl, bool *want_write, bool *plain_http);

/* Queues close_notify (best effort, non-blocking) before our FIN. */
void osp_ws_tls_shutdown(SSL *ssl);

#endif /* OSP_WS_TLS_H */
