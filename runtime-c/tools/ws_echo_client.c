/*
 * ws-echo-client: connects with websocketConnect and sends every received text message back
 * with websocketSend from inside the handler (the client "testee" of docs/WEBSOCKET-RUNTIME.md#conformance-cases, as in
 * Autobahn's fuzzingserver mode).
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

static OspResult echo_back(void *env, const char *message) {
    (void)env;
    /* The handler may run before websocketConnect has returned the id (the server may send
     * right after the 101), so ask the runtime which connection this message came from. */
    return osp_ws_send(osp_ws_handler_connection_id(), message);
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
        OspResult t = osp_ws_set_trusted_ca(ca);
        if (t.tag != OSP_RESULT_SUCCESS) {
            fprintf(stderr, "ws-echo-client: %s\n", (const char *)(intptr_t)t.value);
            return osp_rt_shutdown(2);
        }
    }
    OspResult r = osp_ws_connect(url, echo_back, NULL);
    if (r.tag != OSP_RESULT_SUCCESS) {
        fprintf(stderr, "ws-echo-client: %s\n", (const char *)(intptr_t)r.value);
        return osp_rt_shutdown(1);
    }
    int64_t id = r.value;
    while (osp_ws_connection_state(id) != OSP_WS_STATE_CLOSED) osp_sleep(5);
    return osp_rt_shutdown(0);
}
