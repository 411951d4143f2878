/*
 * HTTP/1.1 client (docs/guide/17-http.md): httpCreateClient, httpGet/Post/Put/Delete/Request and
 * httpCloseClient. One request per connection ("Connection: close"); `https://` goes through
 * the same OpenSSL client setup as wss:// (certificate chain and host name verified).
 *
 * A request runs on a helper thread (osp_sched_run_blocking) so the calling fiber parks and its
 * worker runs other fibers. The client's timeout bounds the whole request: connect, TLS
 * handshake, sending and receiving. Redirects are not followed (the 3xx status is returned).
 * Responses are framed by Transfer-Encoding: chunked, Content-Length, or the end of the
 * connection; a body over OSP_HTTP_CLIENT_MAX_BODY is an Error.
 */
#include "runtime.h"
#include "http_msg.h"
#include "net.h"
#include "loop.h"
#include "ws_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OSP_HTTP_CLIENT_MAX_BODY (16u * 1024u * 1024u)
#define MAX_CLIENTS 4096
#define DEFAULT_TIMEOUT_MS 30000

typedef struct {
    bool tls;
    atomic_bool closed; /* httpCloseClient, from any fiber while others make requests */
    char host[256];
    bool host_is_ip;
    int port;
    char base_path[1024]; /* "" or "/prefix" without a trailing slash */
    int64_t timeout_ms;
} http_client;

static pthread_mutex_t clients_mutex = PTHREAD_MUTEX_INITIALIZER;
static http_client *clients[MAX_CLIENTS];
static int64_t client_count;

static http_client *client_get(int64_t id) {
    pthread_mutex_lock(&clients_mutex);
    http_client *c = (id >= 1 && id <= client_count) ? clients[id - 1] : NULL;
    pthread_mutex_unlock(&clients_mutex);
    return c;
}

/* http[s]://host[:port][/path]; NULL or what is wrong. */
static const char *parse_url(const char *url, http_client *c) {
    const char *p;
    if (strncmp(url, "http://", 7) == 0) {
        c->tls = false;
        p = url + 7;
        c->port = 80;
    } else if (strncmp(url, "https://", 8) == 0) {
        c->tls = true;
        p = url + 8;
        c->port = 443;
    } else {
        return "the URL must start with http:// or https://";
    }
    const char *host_end;
    const char *host = p;
    if (*p == '[') {
        host = p + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL) return "unclosed [ in an IPv6 address";
        p = host_end + 1;
    } else {
        host_end = p;
        while (*host_end && *host_end != ':' && *host_end != '/' && *host_end != '?' && *host_end != '#') host_end++;
        p = host_end;
    }
    size_t hn = (size_t)(host_end - host);
    if (hn == 0) return "the host is empty";
    if (hn >= sizeof c->host) return "the host name is too long";
    for (size_t i = 0; i < hn; i++) {
        unsigned char ch = (unsigned char)host[i];
        if (ch <= 0x20 || ch >= 0x7F || ch == '@') return "the host contains a character that is not allowed";
    }
    memcpy(c->host, host, hn);
    c->host[hn] = '\0';
    if (*p == ':') {
        p++;
        long port = 0;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            port = port * 10 + (*p - '0');
            if (++digits > 5) return "the port is out of range (1-65535)";
            p++;
        }
        if (digits == 0 || port < 1 || port > 65535) return "the port is out of range (1-65535)";
        c->port = (int)port;
    }
    if (*p != '\0' && *p != '/') return "unexpected text after the host (query and fragment belong in the path)";
    size_t pn = strlen(p);
    while (pn > 0 && p[pn - 1] == '/') pn--;
    if (pn >= sizeof c->base_path) return "the path is too long";
    for (size_t i = 0; i < pn; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= 0x20 || ch >= 0x7F) return "the path contains a space or control character";
    }
    memcpy(c->base_path, p, pn);
    c->base_path[pn] = '\0';
    unsigned char tmp[16];
    c->host_is_ip = inet_pton(AF_INET, c->host, tmp) == 1 || inet_pton(AF_INET6, c->host, tmp) == 1;
    return NULL;
}

OspResult osp_http_create_client(const char *base_url, int64_t timeout) {
    static const char fn[] = "httpCreateClient";
    if (base_url == NULL || base_url[0] == '\0') return osp_result_errorf("%s: the base URL is empty", fn);
    OspResult refused;
    if (osp_str_refuse_nul(fn, "base URL", base_url, &refused)) return refused;
    if (timeout < 0) return osp_result_errorf("%s: the timeout must be 0 (default, 30000 ms) or a positive number of milliseconds, got %" PRId64, fn, timeout);
    http_client *c = calloc(1, sizeof *c);
    if (c == NULL) return osp_result_errorf("%s: out of memory", fn);
    const char *bad = parse_url(base_url, c);
    if (bad) {
        free(c);
        return osp_result_errorf("%s: bad URL \"%s\": %s", fn, base_url, bad);
    }
    c->timeout_ms = timeout == 0 ? DEFAULT_TIMEOUT_MS : timeout;
    pthread_mutex_lock(&clients_mutex);
    if (client_count == MAX_CLIENTS) {
        pthread_mutex_unlock(&clients_mutex);
        free(c);
        return osp_result_errorf("%s: too many HTTP clients (at most %d per process)", fn, MAX_CLIENTS);
    }
    clients[client_count++] = c;
    int64_t id = client_count;
    pthread_mutex_unlock(&clients_mutex);
    return osp_result_success(id);
}

OspResult osp_http_close_client(int64_t client_id) {
    http_client *c = client_get(client_id);
    if (c == NULL) return osp_result_errorf("httpCloseClient: no HTTP client with id %" PRId64, client_id);
    /* One step: of two concurrent closes exactly one succeeds. */
    if (atomic_exchange(&c->closed, true)) return osp_result_errorf("httpCloseClient: client %" PRId64 " is already closed", client_id);
    return osp_result_success(0);
}

/* ---- one request ---------------------------------------------------------------------------- */

typedef struct {
    const char *fn;
    http_client *client;
    const char *method;
    const char *path, *headers, *body;
    bool send_body;
    OspResult result;
} request_args;

typedef struct {
    int fd;
    SSL *ssl;
    uint64_t deadline;
} channel;

static int ch_write(channel *ch, const void *p, size_t n) {
    return ch->ssl ? osp_ws_tls_write_all(ch->ssl, ch->fd, p, n, ch->deadline) : osp_ws_net_write_all(ch->fd, p, n, ch->deadline);
}

static ssize_t ch_read(channel *ch, void *p, size_t n) {
    return ch->ssl ? osp_ws_tls_read_some(ch->ssl, ch->fd, p, n, ch->deadline) : osp_ws_net_read_some(ch->fd, p, n, ch->deadline);
}

static OspResult io_error(request_args *a, const char *what) {
    if (errno == ETIMEDOUT)
        return osp_result_errorf("%s: timed out after %" PRId64 " ms %s %s:%d", a->fn, a->client->timeout_ms, what, a->client->host, a->client->port);
    return osp_result_errorf("%s: %s %s:%d failed: %s", a->fn, what, a->client->host, a->client->port, strerror(errno));
}

/* The response record (HttpResponse: tag word, then the eight fields in declaration order). */
static void *make_response(int status, const char *headers, size_t headers_len, const char *content_type,
                           size_t ct_len, const uint8_t *body, size_t body_len) {
    int64_t *r = GC_MALLOC(9 * sizeof *r);
    if (r == NULL) return NULL;
    r[0] = 0;
    r[1] = status;
    r[2] = (int64_t)(intptr_t)osp_gc_strndup(headers, headers_len);
    r[3] = (int64_t)(intptr_t)osp_gc_strndup(content_type, ct_len);
    r[4] = (int64_t)body_len;
    r[5] = -1;
    r[6] = 1;
    r[7] = (int64_t)(intptr_t)osp_gc_strndup((const char *)body, body_len);
    r[8] = (int64_t)body_len;
    return r;
}

static OspResult exchange(request_args *a, channel *ch) {
    http_client *c = a->client;
    osp_ws_buf req = {0};
    char line[512];
    const char *path = a->path;
    if (path[0] != '/' && path[0] != '\0') return osp_result_errorf("%s: the path must start with /, got \"%s\"", a->fn, path);
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7F)
            return osp_result_errorf("%s: the path contains a space or control character (percent-encode it)", a->fn);
    bool ipv6 = strchr(c->host, ':') != NULL;
    bool default_port = c->port == (c->tls ? 443 : 80);
    int ok = 0;
    ok |= osp_ws_buf_append(&req, a->method, strlen(a->method));
    ok |= osp_ws_buf_append(&req, " ", 1);
    ok |= osp_ws_buf_append(&req, c->base_path, strlen(c->base_path));
    ok |= osp_ws_buf_append(&req, path[0] ? path : "/", path[0] ? strlen(path) : 1);
    if (default_port) snprintf(line, sizeof line, " HTTP/1.1\r\nHost: %s%s%s\r\n", ipv6 ? "[" : "", c->host, ipv6 ? "]" : "");
    else snprintf(line, sizeof line, " HTTP/1.1\r\nHost: %s%s%s:%d\r\n", ipv6 ? "[" : "", c->host, ipv6 ? "]" : "", c->port);
    ok |= osp_ws_buf_append(&req, line, strlen(line));
    ok |= osp_ws_buf_append(&req, "Connection: close\r\n", 19);
    bool has_ct;
    const char *bad = osp_http_append_user_headers(&req, a->headers, false, &has_ct);
    if (bad) {
        osp_ws_buf_free(&req);
        return osp_result_errorf("%s: the headers argument has %s", a->fn, bad);
    }
    size_t body_len = a->body ? osp_str_len(a->body) : 0; /* every byte, NUL bytes included */
    if (a->send_body || body_len > 0) {
        snprintf(line, sizeof line, "Content-Length: %zu\r\n", body_len);
        ok |= osp_ws_buf_append(&req, line, strlen(line));
    }
    ok |= osp_ws_buf_append(&req, "\r\n", 2);
    if (body_len) ok |= osp_ws_buf_append(&req, a->body, body_len);
    if (ok != 0) {
        osp_ws_buf_free(&req);
        return osp_result_errorf("%s: out of memory", a->fn);
    }
    int wr = ch_write(ch, req.data, req.len);
    osp_ws_buf_free(&req);
    if (wr != 0) return io_error(a, "sending the request to");

    /* Response head, skipping interim 1xx responses. */
    osp_ws_limits lim;
    osp_ws_limits_default(&lim);
    lim.max_request_line = 8192;
    lim.max_header_bytes = 65536;
    lim.max_headers = 200;
    osp_http_parser head;
    uint8_t buf[16384];
    size_t have = 0, off = 0;
    bool eof = false;
    bool is_head = strcmp(a->method, "HEAD") == 0;
    OspResult result;
    osp_ws_buf body = {0};
    for (;;) {
        osp_http_parser_init(&head, true, &lim);
        osp_http_status st = OSP_HTTP_INCOMPLETE;
        for (;;) {
            size_t used = 0;
            if (off < have) st = osp_http_parse(&head, buf + off, have - off, &used);
            off += used;
            if (st != OSP_HTTP_INCOMPLETE) break;
            if (eof) break;
            ssize_t n = ch_read(ch, buf, sizeof buf);
            if (n < 0) {
                osp_http_parser_free(&head);
                return io_error(a, "waiting for the response from");
            }
            if (n == 0) eof = true;
            have = (size_t)n;
            off = 0;
        }
        if (st != OSP_HTTP_DONE) {
            osp_http_parser_free(&head);
            if (st == OSP_HTTP_ERROR) return osp_result_errorf("%s: malformed response from %s:%d: %s", a->fn, c->host, c->port, head.error_text);
            return osp_result_errorf("%s: %s:%d closed the connection before a complete response", a->fn, c->host, c->port);
        }
        if (head.status_code >= 200 || head.status_code == 101) break;
        osp_http_parser_free(&head);
    }
    int status = head.status_code;
    uint32_t te_first, cl_first, ct_first;
    uint32_t te = osp_http_header_find(&head, "Transfer-Encoding", &te_first);
    uint32_t cl = osp_http_header_find(&head, "Content-Length", &cl_first);
    bool no_body = is_head || status == 204 || status == 304 || (status >= 100 && status < 200);
    enum { BY_NONE, BY_CHUNKED, BY_LENGTH, BY_CLOSE } framing = BY_NONE;
    uint64_t length = 0;
    if (!no_body) {
        if (te > 0) {
            size_t n;
            const char *v = osp_http_header_value(&head, te_first, &n);
            if (te > 1 || !(n >= 7 && osp_http_ieq(v + n - 7, 7, "chunked"))) {
                osp_http_parser_free(&head);
                return osp_result_errorf("%s: unsupported Transfer-Encoding in the response from %s:%d", a->fn, c->host, c->port);
            }
            framing = BY_CHUNKED;
        } else if (cl > 0) {
            size_t n;
            const char *v = osp_http_header_value(&head, cl_first, &n);
            bool valid = n > 0 && n <= 18;
            for (size_t i = 0; valid && i < n; i++) {
                if (v[i] < '0' || v[i] > '9') valid = false;
                else length = length * 10 + (uint64_t)(v[i] - '0');
            }
            if (!valid || cl > 1) {
                osp_http_parser_free(&head);
                return osp_result_errorf("%s: malformed Content-Length in the response from %s:%d", a->fn, c->host, c->port);
            }
            if (length > OSP_HTTP_CLIENT_MAX_BODY) {
                osp_http_parser_free(&head);
                return osp_result_errorf("%s: the response body (%" PRIu64 " bytes) is larger than the limit of %u bytes", a->fn, length, OSP_HTTP_CLIENT_MAX_BODY);
            }
            framing = length ? BY_LENGTH : BY_NONE;
        } else {
            framing = BY_CLOSE;
        }
    }
    osp_chunked chunked;
    osp_chunked_init(&chunked);
    const char *fail = NULL;
    while (framing != BY_NONE) {
        if (off < have) {
            size_t avail = have - off;
            if (framing == BY_CHUNKED) {
                size_t used = 0;
                const char *why = NULL;
                bool too_large = false;
                osp_http_status st = osp_chunked_feed(&chunked, buf + off, avail, &used, &body, OSP_HTTP_CLIENT_MAX_BODY, &why, &too_large);
                off += used;
                if (st == OSP_HTTP_ERROR) {
                    fail = too_large ? "the response body is larger than the limit of 16 MiB" : why;
                    break;
                }
                if (st == OSP_HTTP_DONE) break;
            } else {
                size_t n = avail;
                if (framing == BY_LENGTH && n > length - body.len) n = (size_t)(length - body.len);
                if (framing == BY_CLOSE && body.len + n > OSP_HTTP_CLIENT_MAX_BODY) {
                    fail = "the response body is larger than the limit of 16 MiB";
                    break;
                }
                if (osp_ws_buf_append(&body, buf + off, n) != 0) {
                    fail = "out of memory";
                    break;
                }
                off += n;
                if (framing == BY_LENGTH && body.len == length) break;
            }
            continue;
        }
        if (eof) {
            if (framing != BY_CLOSE) fail = "the connection closed before the whole body arrived";
            break;
        }
        ssize_t n = ch_read(ch, buf, sizeof buf);
        if (n < 0) {
            osp_http_parser_free(&head);
            osp_ws_buf_free(&body);
            return io_error(a, "reading the response body from");
        }
        if (n == 0) eof = true;
        have = (size_t)n;
        off = 0;
    }
    if (fail) {
        result = osp_result_errorf("%s: bad response from %s:%d: %s", a->fn, c->host, c->port, fail);
    } else {
        size_t hstart = (size_t)head.part_off[2] + head.part_len[2] + 2;
        size_t hend = head.buf.len >= 2 ? head.buf.len - 2 : hstart;
        if (hstart > hend) hstart = hend;
        const char *ct = "";
        size_t ct_len = 0;
        if (osp_http_header_find(&head, "Content-Type", &ct_first) > 0) ct = osp_http_header_value(&head, ct_first, &ct_len);
        void *r = make_response(status, (const char *)head.buf.data + hstart, hend - hstart, ct, ct_len, body.data ? body.data : (const uint8_t *)"", body.len);
        result = r ? osp_result_success((int64_t)(intptr_t)r) : osp_result_errorf("%s: out of memory", a->fn);
    }
    osp_http_parser_free(&head);
    osp_ws_buf_free(&body);
    return result;
}

static void request_job(void *arg) {
    request_args *a = arg;
    http_client *c = a->client;
    char err[512];
    uint64_t deadline = osp_ws_now_ms() + (uint64_t)c->timeout_ms;
    int fd = osp_ws_net_connect(c->host, c->port, deadline, err, sizeof err);
    if (fd < 0) {
        a->result = osp_result_errorf("%s: cannot connect to %s:%d: %s", a->fn, c->host, c->port, err);
        return;
    }
    channel ch = {fd, NULL, deadline};
    if (c->tls) {
        ch.ssl = osp_ws_tls_client_handshake(fd, c->host, c->host_is_ip, deadline, err, sizeof err);
        if (ch.ssl == NULL) {
            close(fd);
            a->result = osp_result_errorf("%s: https://%s:%d: %s", a->fn, c->host, c->port, err);
            return;
        }
    }
    a->result = exchange(a, &ch);
    if (ch.ssl) {
        osp_ws_tls_shutdown(ch.ssl);
        SSL_free(ch.ssl);
    }
    close(fd);
}

static OspResult run(const char *fn, int64_t client_id, const char *method, const char *path, const char *headers,
                     const char *body, bool send_body) {
    http_client *c = client_get(client_id);
    if (c == NULL) return osp_result_errorf("%s: no HTTP client with id %" PRId64, fn, client_id);
    if (atomic_load(&c->closed)) return osp_result_errorf("%s: client %" PRId64 " was closed", fn, client_id);
    OspResult refused;
    if (osp_str_refuse_nul(fn, "path", path, &refused) || osp_str_refuse_nul(fn, "headers", headers, &refused)) return refused;
    if (path == NULL) path = "/";
    request_args a = {fn, c, method, path, headers ? headers : "", body, send_body, {0, 0}};
    osp_sched_run_blocking(request_job, &a);
    return a.result;
}

OspResult osp_http_get(int64_t id, const char *path, const char *headers) {
    return run("httpGet", id, "GET", path, headers, NULL, false);
}
OspResult osp_http_post(int64_t id, const char *path, const char *body, const char *headers) {
    return run("httpPost", id, "POST", path, headers, body, true);
}
OspResult osp_http_put(int64_t id, const char *path, const char *body, const char *headers) {
    return run("httpPut", id, "PUT", path, headers, body, true);
}
OspResult osp_http_delete(int64_t id, const char *path, const char *headers) {
    return run("httpDelete", id, "DELETE", path, headers, NULL, false);
}

/* HttpMethod is a union of unit constructors: a GC block whose first word is the tag, in the
 * declaration order GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS. */
OspResult osp_http_request(int64_t id, void *method, const char *path, const char *headers, const char *body) {
    static const char *names[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"};
    int64_t tag = method ? *(const int64_t *)method : -1;
    if (tag < 0 || tag > 6) return osp_result_errorf("httpRequest: unknown HTTP method (tag %" PRId64 ")", tag);
    bool send_body = tag == 1 || tag == 2 || tag == 4 || (body && osp_str_len(body) > 0);
    return run("httpRequest", id, names[tag], path, headers, body, send_body);
}
