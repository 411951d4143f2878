/*
 * Socket helpers for the WebSocket subsystem: listening sockets, blocking-with-deadline client
 * connects and I/O used by the client's handshake, non-blocking sends without SIGPIPE.
 * Errors come back as text a person can act on (they end up in Result messages).
 */
#ifndef OSP_WS_NET_H
#define OSP_WS_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Is `address` an IPv4/IPv6 literal or "localhost"? */
bool osp_ws_net_address_valid(const char *address);

/* Creates a non-blocking listening socket on address:port (SO_REUSEADDR, so a stopped server's
 * port can be bound again at once). Returns the fd, or -1 with a message in err. */
int osp_ws_net_listen(const char *address, int port, char *err, size_t errlen);

/* Connects to host:port, trying each resolved address, before deadline_ms (osp_ws_now_ms clock).
 * Returns a connected non-blocking fd, or -1 with a message in err. */
int osp_ws_net_connect(const char *host, int port, uint64_t deadline_ms, char *err, size_t errlen);

/* Writes all n bytes on a non-blocking fd, waiting with poll until deadline_ms. 0 or -1 (errno;
 * ETIMEDOUT on the deadline). */
int osp_ws_net_write_all(int fd, const void *p, size_t n, uint64_t deadline_ms);

/* Reads what is available on a non-blocking fd, waiting with poll until deadline_ms.
 * >0 bytes, 0 on EOF, -1 with errno (ETIMEDOUT on the deadline). */
ssize_t osp_ws_net_read_some(int fd, void *p, size_t n, uint64_t deadline_ms);

/* send(2) with MSG_NOSIGNAL (a closed peer must not kill the process with SIGPIPE), retrying on
 * EINTR. Returns bytes sent, or -1 with errno (EAGAIN when the socket buffer is full). */
ssize_t osp_ws_net_send(int fd, const void *p, size_t n);

/* The same for two pieces in one system call (sendmsg with MSG_NOSIGNAL): a frame header and
 * its payload without copying them together first. */
ssize_t osp_ws_net_send2(int fd, const void *p1, size_t n1, const void *p2, size_t n2);

/* recv(2) retrying on EINTR. */
ssize_t osp_ws_net_recv(int fd, void *p, size_t n);

/* "a.b.c.d:port" or "[v6]:port" of the peer, for messages. */
void osp_ws_net_peer_name(int fd, char *out, size_t outlen);

#endif /* OSP_WS_NET_H */
