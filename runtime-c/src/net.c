/*
 * Sockets for the WebSocket subsystem (see net.h).
 */
#include "net.h"
#include "loop.h"
#include "runtime.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

bool osp_ws_net_address_valid(const char *address) {
    unsigned char buf[sizeof(struct in6_addr)];
    if (strcmp(address, "localhost") == 0) return true;
    return inet_pton(AF_INET, address, buf) == 1 || inet_pton(AF_INET6, address, buf) == 1;
}

int osp_ws_net_listen(const char *address, int port, char *err, size_t errlen) {
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof ss);
    const char *literal = strcmp(address, "localhost") == 0 ? "127.0.0.1" : address;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    bool is_v6 = false;
    if (inet_pton(AF_INET, literal, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        sslen = sizeof *v4;
    } else if (inet_pton(AF_INET6, literal, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        sslen = sizeof *v6;
        is_v6 = true;
    } else {
        snprintf(err, errlen, "address \"%s\" is not a valid IPv4 or IPv6 address", address);
        return -1;
    }
    const char *lb = is_v6 ? "[" : "", *rb = is_v6 ? "]" : "";
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    /* SO_REUSEADDR: TIME_WAIT entries of a stopped server must not block a new bind. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
        snprintf(err, errlen, "cannot set SO_REUSEADDR: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
        int e = errno;
        if (e == EADDRINUSE)
            snprintf(err, errlen, "address %s%s%s:%d is already in use", lb, address, rb, port);
        else if (e == EACCES)
            snprintf(err, errlen, "permission denied binding %s%s%s:%d (ports below 1024 need privileges)",
                     lb, address, rb, port);
        else if (e == EADDRNOTAVAIL)
            snprintf(err, errlen, "address %s is not an address of this host (cannot bind %s%s%s:%d)",
                     address, lb, address, rb, port);
        else
            snprintf(err, errlen, "cannot bind %s%s%s:%d: %s", lb, address, rb, port, strerror(e));
        close(fd);
        return -1;
    }
    if (listen(fd, SOMAXCONN) != 0) {
        int e = errno;
        if (e == EADDRINUSE)
            snprintf(err, errlen, "address %s%s%s:%d is already in use", lb, address, rb, port);
        else
            snprintf(err, errlen, "cannot listen on %s%s%s:%d: %s", lb, address, rb, port, strerror(e));
        close(fd);
        return -1;
    }
    return fd;
}

static int remaining_ms(uint64_t deadline_ms) {
    uint64_t now = osp_ws_now_ms();
    if (now >= deadline_ms) return 0;
    uint64_t d = deadline_ms - now;
    return d > 60000 ? 60000 : (int)d;
}

/* Waits for `events` on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, uint64_t deadline_ms) {
    for (;;) {
        int ms = remaining_ms(deadline_ms);
        if (ms == 0) return 0;
        struct pollfd pfd = {fd, events, 0};
        osp_output_flush_pending(); /* the caller blocks on the network */
        int rc = poll(&pfd, 1, ms);
        if (rc > 0) return 1;
        if (rc < 0 && errno != EINTR) return -1;
    }
}

int osp_ws_net_connect(const char *host, int port, uint64_t deadline_ms, char *err, size_t errlen) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char port_text[8];
    snprintf(port_text, sizeof port_text, "%d", port);
    int gai = getaddrinfo(host, port_text, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve host \"%s\": %s",
                 host, gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
        return -1;
    }
    bool v6 = strchr(host, ':') != NULL;
    const char *lb = v6 ? "[" : "", *rb = v6 ? "]" : "";
    int last_errno = 0;
    bool timed_out = false;
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int rc;
        do {
            rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        } while (rc != 0 && errno == EINTR);
        if (rc != 0 && errno == EINPROGRESS) {
            int w = wait_fd(fd, POLLOUT, deadline_ms);
            if (w == 0) {
                timed_out = true;
                close(fd);
                fd = -1;
                break;
            }
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) soerr = errno;
            rc = soerr ? -1 : 0;
            errno = soerr;
        }
        if (rc == 0) break;
        last_errno = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        /* Small WebSocket messages should leave at once, not wait for Nagle's algorithm. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return fd;
    }
    if (timed_out)
        snprintf(err, errlen, "connecting to %s%s%s:%d timed out", lb, host, rb, port);
    else if (last_errno == ECONNREFUSED)
        snprintf(err, errlen, "connection refused by %s%s%s:%d (is a server listening there?)", lb, host,
                 rb, port);
    else
        snprintf(err, errlen, "cannot connect to %s%s%s:%d: %s", lb, host, rb, port,
                 strerror(last_errno));
    return -1;
}

ssize_t osp_ws_net_send(int fd, const void *p, size_t n) {
    for (;;) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w >= 0 || errno != EINTR) return w;
    }
}

ssize_t osp_ws_net_send2(int fd, const void *p1, size_t n1, const void *p2, size_t n2) {
    /* writev(2) cannot take MSG_NOSIGNAL, so sendmsg: a closed peer must not raise SIGPIPE. */
    struct iovec iov[2] = {{(void *)p1, n1}, {(void *)p2, n2}};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    for (;;) {
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (w >= 0 || errno != EINTR) return w;
    }
}

ssize_t osp_ws_net_recv(int fd, void *p, size_t n) {
    for (;;) {
        ssize_t r = recv(fd, p, n, 0);
        if (r >= 0 || errno != EINTR) return r;
    }
}

int osp_ws_net_write_all(int fd, const void *p, size_t n, uint64_t deadline_ms) {
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = osp_ws_net_send(fd, b, n);
        if (w > 0) {
            b += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        int r = wait_fd(fd, POLLOUT, deadline_ms);
        if (r == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (r < 0) return -1;
    }
    return 0;
}

ssize_t osp_ws_net_read_some(int fd, void *p, size_t n, uint64_t deadline_ms) {
    for (;;) {
        ssize_t r = osp_ws_net_recv(fd, p, n);
        if (r >= 0) return r;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        int w = wait_fd(fd, POLLIN, deadline_ms);
        if (w == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (w < 0) return -1;
    }
}

void osp_ws_net_peer_name(int fd, char *out, size_t outlen) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN];
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(out, outlen, "unknown peer");
        return;
    }
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(out, outlen, "%s:%u", host, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(out, outlen, "[%s]:%u", host, ntohs(a->sin6_port));
    } else {
        snprintf(out, outlen, "unknown peer");
    }
}
