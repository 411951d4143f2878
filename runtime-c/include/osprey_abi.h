/* GENERATED from runtime-bindings/abi.ts by `npm run gen:abi`. Do not edit. */
/* The Osprey runtime ABI: what compiled Osprey code and the C runtime agree on. */
#ifndef OSPREY_ABI_H
#define OSPREY_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OSP_ABI_VERSION 1

#define OSP_RESULT_SUCCESS 0
#define OSP_RESULT_ERROR 1

/* Returned by value in RAX:RDX (two INTEGER eightbytes, x86-64 System V). */
typedef struct {
    int64_t tag; /* OSP_RESULT_SUCCESS or OSP_RESULT_ERROR */
    int64_t value; /* Success: the payload word (Int itself, Bool 0/1, Unit 0, String as a pointer). Error: a pointer to a NUL-terminated UTF-8 message owned by the garbage collector. */
} OspResult;

/* Client message handler: called once per received text message, in order. Osprey type: (String) -> Result<Unit, String> */
typedef OspResult (*osp_message_handler_fn)(void *env, const char *message);

/* Server message handler: called with the connection id and each received text message. Osprey type: (Int, String) -> Result<Unit, String> */
typedef OspResult (*osp_server_message_handler_fn)(void *env, int64_t connection_id, const char *message);

/* Called first by the generated main(): checks the ABI version, starts the garbage collector and sets stdout to line buffering. Aborts with a message if the library was built for another ABI. */
void osp_rt_init(int64_t abi_version);

/* Called last by the generated main(): stops every WebSocket server and connection, joins the runtime thread, flushes stdout and returns the process exit status (low 8 bits of `status`). */
int32_t osp_rt_shutdown(int64_t status);

/* A run-time failure (e.g. division by zero): prints `Error: MESSAGE at LOCATION` on stderr, exits 1. */
_Noreturn void osp_rt_fail(const char *message, const char *location);

/* Garbage-collected, zeroed allocation for records, closures and environments. */
void *osp_alloc(int64_t size);

/* A new garbage-collected string holding left followed by right. */
const char *osp_string_concat(const char *left, const char *right);

/* 1 when the two strings have the same bytes, else 0. */
int64_t osp_string_equals(const char *left, const char *right);

/* Decimal text of a signed 64-bit integer. */
const char *osp_int_to_string(int64_t value);

/* "true" or "false". */
const char *osp_bool_to_string(int64_t value);

/* Writes the text and a line feed to standard output (one process-wide stream). */
void osp_print(const char *text);

/* Pauses the calling thread; negative values count as 0. Runtime threads keep serving. */
void osp_sleep(int64_t milliseconds);

/* Opens a ws:// connection, completes the RFC 6455 opening handshake and returns its id. Every received text message is passed to the handler on the runtime thread, in order.
 * Osprey: websocketConnect(url: String, messageHandler: (String) -> Result<Unit, String>) -> Result<Int, String> */
OspResult osp_ws_connect(const char *url, osp_message_handler_fn handler, void *handler_env);

/* Sends one masked text message on a client connection.
 * Osprey: websocketSend(wsID: Int, message: String) -> Result<Unit, String> */
OspResult osp_ws_send(int64_t ws_id, const char *message);

/* Completes the closing handshake (1000) and releases the connection; when it returns the handler can no longer be called.
 * Osprey: websocketClose(wsID: Int) -> Result<Unit, String> */
OspResult osp_ws_close(int64_t ws_id);

/* Validates the port, address and path and returns a server id; nothing is bound yet.
 * Osprey: websocketCreateServer(port: Int, address: String, path: String) -> Result<Int, String> */
OspResult osp_ws_create_server(int64_t port, const char *address, const char *path);

/* Binds and listens; returns once connections are being accepted.
 * Osprey: websocketServerListen(serverID: Int) -> Result<Unit, String> */
OspResult osp_ws_server_listen(int64_t server_id);

/* Queues a text message to every open connection of the server (Success with none).
 * Osprey: websocketServerBroadcast(serverID: Int, message: String) -> Result<Unit, String> */
OspResult osp_ws_server_broadcast(int64_t server_id, const char *message);

/* Closes every connection with 1001, stops listening and frees the server; the port can be bound again at once.
 * Osprey: websocketStopServer(serverID: Int) -> Result<Unit, String> */
OspResult osp_ws_stop_server(int64_t server_id);

/* Project addition (LANGUAGE.md §14.1): registers a handler for received text messages; it replaces the default echo.
 * Osprey: websocketServerOnMessage(serverID: Int, handler: (Int, String) -> Result<Unit, String>) -> Result<Unit, String> */
OspResult osp_ws_server_on_message(int64_t server_id, osp_server_message_handler_fn handler, void *handler_env);

/* Project addition (LANGUAGE.md §14.1): sends a text message to one connection of a server.
 * Osprey: websocketServerSend(serverID: Int, connectionID: Int, message: String) -> Result<Unit, String> */
OspResult osp_ws_server_send(int64_t server_id, int64_t connection_id, const char *message);

#ifdef __cplusplus
}
#endif

#endif /* OSPREY_ABI_H */
