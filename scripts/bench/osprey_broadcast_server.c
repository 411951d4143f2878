/*
 * osprey-broadcast-server: the benchmark's chat-room server on our runtime, written only against
 * the runtime ABI (osprey_abi.h), the way a compiled Osprey program would use it:
 *
 *   websocketServerOnMessage(server, handler)   handler(conn, message) =
 *       websocketServerBroadcast(server, message)
 *
 * Every received text message is relayed unchanged to every open connection (the sender
 * included), which is the contract of the benchmark's `broadcast` capability (the load generator
 * runs with --text: the ABI hands handlers text messages only).
 *
 * With --echo the handler answers its sender instead, the benchmark's `handler-echo` capability:
 *
 *   handler(conn, message) = websocketServerSend(server, conn, message)
 *
 * so the echo goes through everything a program's handler does (the message copied for the
 * handler, a fiber per connection draining its inbox, the send written by the handler's thread
 * or posted to the I/O thread: docs/WEBSOCKET-RUNTIME.md, "Handler sends"), where
 * ws-echo-server's built-in echo never leaves the I/O thread.
 *
 *   osprey-broadcast-server --port P [--host 127.0.0.1] [--path /] [--echo]
 *
 * Built by scripts/bench/ws-bench.ts into build/bench/ against the release runtime archive.
 * Prints "listening on ws://HOST:PORT/PATH"; stops on SIGTERM, SIGINT or end of standard input.
 * Remove it once the runtime's own echo server (or a compiled Osprey program) has a broadcast
 * mode, and point the benchmark's server list at that instead.
 */
#include "osprey_abi.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A command-line argument as the runtime's String arguments are (a length before the bytes, a
 * NUL after them: docs/ABI.md#strings); a C string is not one. */
static const char *arg_string(const char *text) { return osp_string_from_c((void *)(uintptr_t)text); }

static int64_t server_id;

static OspResult echo(void *env, int64_t connection_id, const char *message) {
    (void)env;
    return osp_ws_server_send(server_id, connection_id, message);
}

static OspResult relay(void *env, int64_t connection_id, const char *message) {
    (void)env;
    (void)connection_id;
    return osp_ws_server_broadcast(server_id, message);
}

static int fail(const char *what, OspResult r) {
    fprintf(stderr, "osprey-broadcast-server: %s: %s\n", what, (const char *)(intptr_t)r.value);
    return osp_rt_shutdown(1);
}

int main(int argc, char **argv) {
    /* Stop signals are taken synchronously below; block them before the runtime starts threads. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    osp_rt_init(OSP_ABI_VERSION);

    const char *host = "127.0.0.1", *path = "/";
    long port = -1;
    bool echo_mode = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--echo") == 0) echo_mode = true;
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) host = argv[++i];
        else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc) path = argv[++i];
        else port = -1, i = argc;
    }
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: osprey-broadcast-server --port P [--host 127.0.0.1] [--path /] [--echo]\n");
        return osp_rt_shutdown(2);
    }
    OspResult r = osp_ws_create_server(port, arg_string(host), arg_string(path));
    if (r.tag != OSP_RESULT_SUCCESS) return fail("websocketCreateServer", r);
    server_id = r.value;
    r = osp_ws_server_on_message(server_id, echo_mode ? echo : relay, NULL);
    if (r.tag != OSP_RESULT_SUCCESS) return fail("websocketServerOnMessage", r);
    r = osp_ws_server_listen(server_id);
    if (r.tag != OSP_RESULT_SUCCESS) return fail("websocketServerListen", r);
    printf("listening on ws://%s:%ld%s\n", host, port, path);
    fflush(stdout);

    for (;;) {
        struct timespec zero = {0, 0};
        if (sigtimedwait(&stop, NULL, &zero) > 0) break;
        struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
        if (poll(&pfd, 1, 100) > 0) {
            char buf[64];
            ssize_t got = read(STDIN_FILENO, buf, sizeof buf);
            if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) break;
        }
    }
    r = osp_ws_stop_server(server_id);
    if (r.tag != OSP_RESULT_SUCCESS) return fail("websocketStopServer", r);
    return osp_rt_shutdown(0);
}
