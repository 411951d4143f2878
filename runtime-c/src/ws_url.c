/*
 * ws:// and wss:// URL parsing (RFC 6455 §3, RFC 3986 §3). Only what a WebSocket client needs: scheme,
 * host (reg-name, IPv4 or bracketed IPv6 literal), optional port, path and query. A fragment
 * is an error (RFC 6455 §3: "Fragment identifiers are meaningless in the context of WebSocket
 * URIs and MUST NOT be used").
 */
#include "ws_url.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool host_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

const char *osp_ws_url_parse(const char *url, osp_ws_url *out) {
    memset(out, 0, sizeof *out);
    for (const char *c = url; *c; c++) {
        unsigned char u = (unsigned char)*c;
        if (u <= 0x20 || u >= 0x7F) return "it contains a space, a control character or a non-ASCII byte (percent-encode them)";
        if (u == '#') return "it has a #fragment, which a WebSocket URL must not have (RFC 6455 §3)";
    }
    const char *p;
    if (strncasecmp(url, "ws://", 5) == 0) {
        p = url + 5;
    } else if (strncasecmp(url, "wss://", 6) == 0) {
        p = url + 6;
        out->secure = true;
    } else {
        return "it must start with ws:// or wss://";
    }
    const char *auth_end = p + strcspn(p, "/?");
    if (memchr(p, '@', (size_t)(auth_end - p)) != NULL)
        return "user information (user@host) is not supported in a WebSocket URL";
    const char *host_start, *host_end, *after_host;
    if (*p == '[') {
        host_start = p + 1;
        host_end = memchr(host_start, ']', (size_t)(auth_end - host_start));
        if (host_end == NULL) return "the IPv6 address is missing its closing ']'";
        for (const char *c = host_start; c < host_end; c++)
            if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') || (*c >= 'A' && *c <= 'F') ||
                  *c == ':' || *c == '.'))
                return "the IPv6 address in brackets is malformed";
        out->host_is_ipv6 = true;
        after_host = host_end + 1;
    } else {
        host_start = p;
        host_end = p;
        while (host_end < auth_end && *host_end != ':') host_end++;
        for (const char *c = host_start; c < host_end; c++)
            if (!host_char(*c)) return "the host name contains a character that is not allowed";
        after_host = host_end;
    }
    size_t host_len = (size_t)(host_end - host_start);
    if (host_len == 0) return "the host is empty";
    if (host_len >= sizeof out->host) return "the host name is too long";
    memcpy(out->host, host_start, host_len);
    /* RFC 6455 §3: the default port is 80 for ws:// and 443 for wss://. */
    int default_port = out->secure ? 443 : 80;
    out->port = default_port;
    if (after_host < auth_end) {
        if (*after_host != ':') return "unexpected characters after the host";
        const char *d = after_host + 1;
        if (d == auth_end) return "the port after ':' is empty";
        long port = 0;
        for (; d < auth_end; d++) {
            if (*d < '0' || *d > '9') return "the port is not a number";
            port = port * 10 + (*d - '0');
            if (port > 65535) return "the port is out of range (1-65535)";
        }
        if (port == 0) return "the port is out of range (1-65535)";
        out->port = (int)port;
    }
    /* RFC 6455 §4.1 item 4 / RFC 7230: Host carries the port unless it is the default. */
    int n;
    const char *lb = out->host_is_ipv6 ? "[" : "", *rb = out->host_is_ipv6 ? "]" : "";
    if (out->port == default_port)
        n = snprintf(out->host_header, sizeof out->host_header, "%s%s%s", lb, out->host, rb);
    else
        n = snprintf(out->host_header, sizeof out->host_header, "%s%s%s:%d", lb, out->host, rb, out->port);
    if (n < 0 || (size_t)n >= sizeof out->host_header) return "the host name is too long";
    /* RFC 6455 §3: resource name = path (or "/") + "?" query. */
    const char *rest = auth_end;
    if (*rest == '\0') {
        strcpy(out->resource, "/");
    } else {
        n = snprintf(out->resource, sizeof out->resource, "%s%s", *rest == '?' ? "/" : "", rest);
        if (n < 0 || (size_t)n >= sizeof out->resource) return "the path and query are too long";
    }
    return NULL;
}
