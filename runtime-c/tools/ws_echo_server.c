/*
 * ws-echo-server: a WebSocket echo server built only from the runtime's ABI functions, for the
 * conformance suite and interop tests (the "testee" of docs/WEBSOCKET-RUNTIME.md#conformance-cases).
 *
 *   ws-echo-server --port P [--host 127.0.0.1] [--path /] [--origin O]... [--subprotocol S]...
 *                  [--limit NAME=VALUE]... [--cert CERT.pem --key KEY.pem]
 *
 * --origin adds O to the Origin allowlist (websocketServerAllowOrigin), --subprotocol adds a
 * supported subprotocol (websocketServerAddSubprotocol), --limit sets a server limit by its
 * Osprey name (websocketServerSetLimit), all before listening. --cert/--key make it a wss://
 * server (websocketCreateSecureServer) and the line says "listening on wss://…".
 *
 * Prints "listening on ws://HOST:PORT/PATH" once connections are accepted, then runs until
 * SIGTERM, SIGINT or end of standard input (when stdin is a pipe or socket), stops the server
 * (1001 to every connection) and exits 0; exits 1 with the error on stderr if the server cannot
 * be created or cannot listen, 2 on bad arguments. Limits come from the OSPREY_WS_* environment variables (runtime-c/src/ws_limits.h).
 */
#include "osprey_abi.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A command-line argument as the runtime's String arguments are (a length before the bytes, a
 * NUL after them: docs/ABI.md#strings); a C string is not one. */
static const char *arg_string(const char *text) { return osp_string_from_c((void *)(uintptr_t)text); }

static void usage(void) {
    fprintf(stderr, "usage: ws-echo-server --port P [--host 127.0.0.1] [--path /] [--origin O]... "
                    "[--subprotocol S]... [--limit NAME=VALUE]... [--cert CERT.pem --key KEY.pem]\n");
}

int main(int argc, char **argv) {
    /* SIGTERM/SIGINT are taken synchronously with sigtimedwait below; block them before any
     * thread exists (the collector's and the runtime's threads inherit the mask), so none of
     * them can be killed by the default action. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    osp_rt_init(OSP_ABI_VERSION);
    const char *host = "127.0.0.1", *path = "/", *cert = NULL, *key = NULL;
    long port = -1;
    /* Options applied once the server exists, in command-line order. */
    enum { OPT_ORIGIN, OPT_SUBPROTOCOL, OPT_LIMIT };
    struct { int kind; const char *arg; } opts[64];
    int nopts = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            port = strtol(argv[++i], &end, 10);
            if (*end != '\0') port = -1;
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc) {
            cert = argv[++i];
        } else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
            key = argv[++i];
        } else if ((strcmp(argv[i], "--origin") == 0 || strcmp(argv[i], "--subprotocol") == 0 ||
                    strcmp(argv[i], "--limit") == 0) && i + 1 < argc && nopts < 64) {
            opts[nopts].kind = argv[i][2] == 'o' ? OPT_ORIGIN : argv[i][2] == 's' ? OPT_SUBPROTOCOL : OPT_LIMIT;
            opts[nopts++].arg = argv[++i];
        } else {
            usage();
            return osp_rt_shutdown(2);
        }
    }
    if (port < 0 || (cert == NULL) != (key == NULL)) {
        usage();
        return osp_rt_shutdown(2);
    }
    OspResult r = cert ? osp_ws_create_secure_server(port, arg_string(host), arg_string(path), arg_string(cert), arg_string(key)) : osp_ws_create_server(port, arg_string(host), arg_string(path));
    if (r.tag != OSP_RESULT_SUCCESS) {
        fprintf(stderr, "ws-echo-server: %s\n", (const char *)(intptr_t)r.value);
        return osp_rt_shutdown(1);
    }
    int64_t server = r.value;
    for (int i = 0; i < nopts; i++) {
        if (opts[i].kind == OPT_ORIGIN) {
            r = osp_ws_server_allow_origin(server, arg_string(opts[i].arg));
        } else if (opts[i].kind == OPT_SUBPROTOCOL) {
            r = osp_ws_server_add_subprotocol(server, arg_string(opts[i].arg));
        } else {
            char name[64];
            const char *eq = strchr(opts[i].arg, '=');
            char *end = NULL;
            long long value = eq ? strtoll(eq + 1, &end, 10) : 0;
            if (eq == NULL || (size_t)(eq - opts[i].arg) >= sizeof name || end == eq + 1 || *end != '\0') {
                fprintf(stderr, "ws-echo-server: --limit expects NAME=VALUE, got \"%s\"\n", opts[i].arg);
                return osp_rt_shutdown(2);
            }
            memcpy(name, opts[i].arg, (size_t)(eq - opts[i].arg));
            name[eq - opts[i].arg] = '\0';
            r = osp_ws_server_set_limit(server, arg_string(name), value);
        }
        if (r.tag != OSP_RESULT_SUCCESS) {
            fprintf(stderr, "ws-echo-server: %s\n", (const char *)(intptr_t)r.value);
            return osp_rt_shutdown(2);
        }
    }
    r = osp_ws_server_listen(server);
    if (r.tag != OSP_RESULT_SUCCESS) {
        fprintf(stderr, "ws-echo-server: %s\n", (const char *)(intptr_t)r.value);
        return osp_rt_shutdown(1);
    }
    int v6 = strchr(host, ':') != NULL;
    printf("listening on %s://%s%s%s:%ld%s\n", cert ? "wss" : "ws", v6 ? "[" : "", host, v6 ? "]" : "", port, path);
    fflush(stdout);

    /* Wait for a stop signal or EOF on stdin (so a parent that dies takes us with it). Only a
     * pipe or socket on stdin is watched: /dev/null (e.g. Node's stdio 'ignore') is at EOF from
     * the start and would stop the server at once. */
    struct stat st;
    int stdin_open = fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
    for (;;) {
        struct timespec zero = {0, 0};
        if (sigtimedwait(&stop_signals, NULL, &zero) > 0) break;
        struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
        int n = poll(&pfd, stdin_open ? 1 : 0, 100);
        if (n > 0) {
            char buf[256];
            ssize_t got = read(STDIN_FILENO, buf, sizeof buf);
            if (got == 0) break;
            if (got < 0 && errno != EINTR && errno != EAGAIN) stdin_open = 0;
            if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) {
                if (got <= 0) break;
            }
        }
    }
    r = osp_ws_stop_server(server);
    if (r.tag != OSP_RESULT_SUCCESS) {
        fprintf(stderr, "ws-echo-server: %s\n", (const char *)(intptr_t)r.value);
        return osp_rt_shutdown(1);
    }
    return osp_rt_shutdown(0);
}
