/*
 * ws:// and wss:// URL parsing for websocketConnect (RFC 6455 §3). No I/O.
 */
#ifndef OSP_WS_URL_H
#define OSP_WS_URL_H

#include <stdbool.h>

typedef struct {
    char host[256];        /* without brackets: "127.0.0.1", "example.com", "::1" */
    bool host_is_ipv6;     /* it was a bracketed literal */
    bool secure;           /* wss:// (TLS) */
    int port;              /* 1-65535; 80 (ws) or 443 (wss) when the URL has none */
    char host_header[300]; /* value of the Host header: host, brackets kept, ":port" unless default */
    char resource[4096];   /* path (default "/") plus "?query" */
} osp_ws_url;

/* Parses url; on failure returns a static description of what is wrong, else NULL. */
const char *osp_ws_url_parse(const char *url, osp_ws_url *out);

#endif /* OSP_WS_URL_H */
