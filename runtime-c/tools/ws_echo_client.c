/*
 * ws-echo-client: connects with websocketConnect and a fn(Int, WebSocketMessage) handler and
 * sends every received message back from inside the handler, text with websocketSend and binary
 * with websocketSendBinary (the client "testee" of docs/WEBSOCKET-RUNTIME.md#conformance-cases, as
 * in Autobahn's fuzzingserver mode).
 *
 *   ws-echo-client --url ws://127.0.0.1:9001/runCase?case=1 [--ca CA.pem]
 *
 * --ca trusts the CA certificates in that PEM file for a wss:// URL (websocketSetTrustedCA).
 *
 * Exits 0 when the server closes the connection, 1 with the error on stderr when the
 * connection cannot be made, 2 on bad arguments.
 */
#include "osprey_abi.h"
#include "runtime.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The handler gets its connection id (it may run before websocketConnect has returned it: the
 * server may send right after the 101) and the WebSocketMessage record, words
 * [0, type, data, timestamp]. */
static OspResult echo_back(void *env, int64_t connection_id, void *message) {
    (void)env;
    const int64_t *record = message;
    const char *type = (const char *)(intptr_t)record[1];
    const char *data = (const char *)(intptr_t)record[2];
    if (strcmp(type, "binary") == 0) return osp_ws_send_binary(connection_id, data);
    return osp_ws_send(connection_id, data);
}

int main(int argc, char **argv) {
    osp_rt_init(OSP_ABI_VERSION);
    const char *url = NULL, *ca = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc) {
            ca = argv[++i];
        } else {
            url = NULL;
            break;
        }
    }
    if (url == NULL) {
        fprintf(stderr, "usage: ws-echo-client --url ws://HOST:PORT/PATH [--ca CA.pem]\n");
        return osp_rt_shutdown(2);
    }
    if (ca != NULL) {
        OspResult t = osp_ws_set_trusted_ca(osp_gc_strdup_c(ca));
        if (t.tag != OSP_RESULT_SUCCESS) {
            fprintf(stderr, "ws-echo-client: %s\n", (const char *)(intptr_t)t.value);
            return osp_rt_shutdown(2);
        }
    }
    OspResult r = osp_ws_connect_messages(osp_gc_strdup_c(url), echo_back, NULL);
    if (r.tag != OSP_RESULT_SUCCESS) {
        fprintf(stderr, "ws-echo-client: %s\n", (const char *)(intptr_t)r.value);
        return osp_rt_shutdown(1);
    }
    int64_t id = r.value;
    while (osp_ws_connection_state(id) != OSP_WS_STATE_CLOSED) osp_sleep(5);
    return osp_rt_shutdown(0);
}
