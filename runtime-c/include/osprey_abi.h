/* GENERATED from runtime-bindings/abi.ts by `npm run gen:abi`. Do not edit. */
/* The Osprey runtime ABI: what compiled Osprey code and the C runtime agree on. */
#ifndef OSPREY_ABI_H
#define OSPREY_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OSP_ABI_VERSION 10

#define OSP_RESULT_SUCCESS 0
#define OSP_RESULT_ERROR 1

#define OSP_SELECT_RECV 0
#define OSP_SELECT_SEND 1
#define OSP_SELECT_ALWAYS 2

/* A String (const char *) points at its first byte; its length is the int64_t stored in the
 * OSP_STRING_HEADER_BYTES bytes before it, and a NUL follows its last byte. It may hold NUL bytes. */
#define OSP_STRING_HEADER_BYTES 8

/* Returned by value in RAX:RDX (two INTEGER eightbytes, x86-64 System V). */
typedef struct {
    int64_t tag; /* OSP_RESULT_SUCCESS or OSP_RESULT_ERROR */
    int64_t value; /* Success: the payload word (Int itself, Bool 0/1, Unit 0, String as a pointer). Error: a String (STRING_LAYOUT: length header, bytes, NUL) holding the message, owned by the garbage collector. */
} OspResult;

/* Text message handler: called once per received text message, in order (binary messages are not passed to it). Osprey type: (String) -> Result<Unit, String> */
typedef OspResult (*osp_message_handler_fn)(void *env, const char *message);

/* Text message handler with the connection id: called with the id and each received text message, in order. Osprey type: (Int, String) -> Result<Unit, String> */
typedef OspResult (*osp_server_message_handler_fn)(void *env, int64_t connection_id, const char *message);

/* Message handler for every data message, text and binary: called with the connection id and a WebSocketMessage record (words [0, type, data, timestamp]; type "text" or "binary"). Osprey type: (Int, WebSocketMessage) -> Result<Unit, String> */
typedef OspResult (*osp_ws_message_handler_fn)(void *env, int64_t connection_id, void *message);

/* Open event handler: called once per accepted connection, before any of its messages. Osprey type: (Int) -> Result<Unit, String> */
typedef OspResult (*osp_ws_open_handler_fn)(void *env, int64_t connection_id);

/* Server close event handler: called once per connection that had its open event, after its last message, with the close code (1006 when the TCP connection dropped without a Close frame) and reason. Osprey type: (Int, Int, String) -> Result<Unit, String> */
typedef OspResult (*osp_ws_server_close_handler_fn)(void *env, int64_t connection_id, int64_t code, const char *reason);

/* Client close event handler: called once when the connection ends, after its last message, with the close code (1006 when the TCP connection dropped without a Close frame) and reason. Osprey type: (Int, String) -> Result<Unit, String> */
typedef OspResult (*osp_ws_close_handler_fn)(void *env, int64_t code, const char *reason);

/* Process event callback (docs/guide/14-builtins.md#processes): event 1 a chunk of stdout, 2 a chunk of stderr, 3 the exit (data is the exit code in decimal; always last). Runs inside awaitProcess or cleanupProcess, before it returns (on the calling thread, or for a fiber on the helper thread making the call for it), or at exit; never on a runtime thread. Returns Unit (0). Osprey type: (Int, Int, String) -> Unit */
typedef int64_t (*osp_process_event_handler_fn)(void *env, int64_t process_id, int64_t event_type, const char *data);

/* HTTP request handler (docs/guide/17-http.md): method in upper case, path with its query string, the raw header block (CRLF-terminated lines) and the body; returns an HttpResponse record. Runs on a fiber, never on the I/O thread. Osprey type: (String, String, String, String) -> HttpResponse */
typedef void * (*osp_http_handler_fn)(void *env, const char *method, const char *path, const char *headers, const char *body);

/* A fiber computation (docs/guide/16-fibers-and-channels.md): the compiled `spawn e` / `Fiber { computation }` closure, returning its value as one word (a Bool as 0/1; a two-word value boxed by the compiler). Osprey type: () -> Int */
typedef int64_t (*osp_fiber_body_fn)(void *env);

/* Called first by the generated main(): checks the ABI version, starts the garbage collector, sets stdout to line buffering and raises the stack soft limit to 1 GiB where allowed (deep recursion). Aborts with a message if the library was built for another ABI. */
void osp_rt_init(int64_t abi_version);

/* Called last by the generated main(): stops every WebSocket server and connection, joins the runtime thread, flushes stdout and returns the process exit status (low 8 bits of `status`). */
int32_t osp_rt_shutdown(int64_t status);

/* A run-time failure (e.g. division by zero): prints `Error: MESSAGE at LOCATION` on stderr, exits 1. Both are read as NUL-terminated text only (never their length), so compiled code passes plain C text, not Strings. */
_Noreturn void osp_rt_fail(const char *message, const char *location);

/* Called by the generated main() after osp_rt_init: starts the fiber scheduler (one worker thread per core, OSPREY_THREADS to override) and runs the program (top-level statements, then `main`) as the main fiber on a 1 GiB reserved stack. Returns its exit status when the main fiber ends on the calling thread; when it ends on another worker that worker shuts the process down itself. */
int64_t osp_rt_run_main(osp_fiber_body_fn body, void *env);

/* `spawn e` / `Fiber<T> { computation }`: a new runnable fiber (its stack is allocated when it first runs). The handle's first word is its number, shared with channels (1, 2, 3, …). */
void *osp_fiber_spawn(osp_fiber_body_fn body, void *env);

/* Like osp_fiber_spawn, callable from any thread (a runtime I/O thread handing work to the scheduler): the closure runs as a new fiber on a worker. */
void *osp_sched_submit(osp_fiber_body_fn body, void *env);

/* +1 while an outside source (a runtime thread) may wake fibers, -1 when it stops: while any hold is taken, fibers that all wait are not reported as a deadlock. */
void osp_sched_hold_external(int64_t delta);

/* `await(f)`: parks the caller until the fiber ends and returns its value word (again on every later await). */
int64_t osp_fiber_await(void *fiber);

/* `yield`: lets every runnable fiber run before the caller continues. */
void osp_fiber_yield(void);

/* `Channel<T> { capacity: n }`: a FIFO channel of words; 0 is a rendezvous. A negative capacity is a run-time failure reported at `location`. The first word is the handle number. */
void *osp_channel_new(int64_t capacity, const char *location);

/* `send(c, v)`: parks the caller while the channel is full (for capacity 0, until a receiver takes v). */
OspResult osp_channel_send(void *channel, int64_t value);

/* `recv(c)`: parks the caller while the channel is empty; Success carries the value word. */
OspResult osp_channel_recv(void *channel);

/* `select`: `arms` holds `count` triples [kind, channel, value] (OSP_SELECT_*). Takes the first ready arm in order; with none ready returns -1 when there is a default arm, else parks until one is. The tag is the arm index (or -1), the value the word received by a recv arm. */
OspResult osp_select(void *arms, int64_t count, int64_t has_default);

/* Garbage-collected, zeroed allocation for records, closures and environments. */
void *osp_alloc(int64_t size);

/* A new garbage-collected string holding left followed by right. */
const char *osp_string_concat(const char *left, const char *right);

/* A new garbage-collected string: the first `count` (1-4) parts in order, each the decimal text of an Int when its bit in int_mask is set, else a string pointer. A chain of `+` or an interpolation costs one allocation per four parts. */
const char *osp_string_build(int64_t count, int64_t int_mask, int64_t part0, int64_t part1, int64_t part2, int64_t part3);

/* 1 when the two strings have the same bytes, else 0. */
int64_t osp_string_equals(const char *left, const char *right);

/* Decimal text of a signed 64-bit integer. */
const char *osp_int_to_string(int64_t value);

/* "true" or "false". */
const char *osp_bool_to_string(int64_t value);

/* A String copy of a NUL-terminated C string (what an `extern fn` declared to return String gives back; docs/guide/05-functions.md#calling-c-extern-fn): the bytes up to the first NUL. NULL gives the empty String. */
const char *osp_string_from_c(void *text);

/* Writes the text and a line feed to standard output (one process-wide stream). */
void osp_print(const char *text);

/* The command-line arguments after the program name (`osprey run FILE -- ARGS...`), as the value of the `args()` built-in, a List<String>: a garbage-collected block of 64-bit words [length, string 0, string 1, ...]. */
void *osp_args(void);

/* Pauses the calling fiber (its worker runs other fibers meanwhile; on a runtime thread, the thread); negative values count as 0. */
void osp_sleep(int64_t milliseconds);

/* Reads an integer from standard input like scanf("%ld"): skips white space, an optional sign and digits; the first non-digit stays unread. End of input or no digits gives 0. Called from a fiber, the fiber parks and the call runs on a helper thread (its worker runs other fibers).
 * Osprey: input() -> Int */
int64_t osp_input(void);

/* Success with the number of bytes of the string (never fails for a valid string).
 * Osprey: length(s: String) -> Result<Int, String> */
OspResult osp_string_length(const char *s);

/* Success with 1 when needle occurs in haystack as a byte substring (the empty needle always does), else 0.
 * Osprey: contains(haystack: String, needle: String) -> Result<Bool, String> */
OspResult osp_string_contains(const char *haystack, const char *needle);

/* Bytes start … end-1 after clamping both into [0, length]; Error `invalid substring range` when start > end after clamping.
 * Osprey: substring(s: String, start: Int, end: Int) -> Result<String, String> */
OspResult osp_string_substring(const char *s, int64_t start, int64_t end);

/* Creates or truncates the file and writes exactly the bytes of content. Error `writeFile: cannot open 'PATH' for writing: REASON` (or cannot write / finish writing).
 * Osprey: writeFile(path: String, content: String) -> Result<Unit, String> */
OspResult osp_file_write(const char *path, const char *content);

/* The whole file as a string. Error `readFile: cannot open 'PATH': REASON` (or cannot read).
 * Osprey: readFile(path: String) -> Result<String, String> */
OspResult osp_file_read(const char *path);

/* Removes a file. Error `deleteFile: cannot delete 'PATH': REASON` or `deleteFile: 'PATH' is a directory, not a file`.
 * Osprey: deleteFile(path: String) -> Result<Unit, String> */
OspResult osp_file_delete(const char *path);

/* Creates one directory. Error `createDirectory: 'PATH' already exists` or `createDirectory: cannot create 'PATH': REASON`.
 * Osprey: createDirectory(path: String) -> Result<Unit, String> */
OspResult osp_directory_create(const char *path);

/* 1 when a file or directory exists at the path, else 0. Removed by --sandbox only (docs/guide/18-security-flags.md).
 * Osprey: fileExists(path: String) -> Bool */
int64_t osp_file_exists(const char *path);

/* Runs `/bin/sh -c command` with stdout and stderr captured (stdin inherited) and returns its process id (1, 2, 3, …). No thread is started: events wait in the pipes until awaitProcess. Error `spawnProcess: cannot start '/bin/sh -c COMMAND': REASON` (or cannot create a pipe).
 * Osprey: spawnProcess(command: String, callback: (Int, Int, String) -> Unit) -> Result<Int, String> */
OspResult osp_process_spawn(const char *command, osp_process_event_handler_fn handler, void *handler_env);

/* On the calling thread: runs the callback for every output chunk in arrival order, reaps the child, runs the exit event and returns the exit code (-1 if killed by a signal, -1 for an unknown id). Awaiting again returns the same code without events. Called from a fiber, the fiber parks and the call runs on a helper thread (its worker runs other fibers).
 * Osprey: awaitProcess(processId: Int) -> Int */
int64_t osp_process_await(int64_t process_id);

/* Delivers the events of a process never awaited (as awaitProcess would), then releases its callback. Unknown ids and repeated calls do nothing. Processes never cleaned up are finished at exit. Called from a fiber, the fiber parks and the call runs on a helper thread (its worker runs other fibers).
 * Osprey: cleanupProcess(processId: Int) -> Unit */
void osp_process_cleanup(int64_t process_id);

/* Creates an HTTP/1.1 server for address:port (no socket yet) and returns its id.
 * Osprey: httpCreateServer(port: Int, address: String) -> Result<Int, String> */
OspResult osp_http_create_server(int64_t port, const char *address);

/* Binds and listens, then returns at once; every request is read on the runtime thread and its handler runs as a new fiber. Keep-alive, pipelining in order, Content-Length and chunked bodies.
 * Osprey: httpListen(serverID: Int, handler: (String, String, String, String) -> HttpResponse) -> Result<Unit, String> */
OspResult osp_http_listen(int64_t server_id, osp_http_handler_fn handler, void *handler_env);

/* Closes the listening socket and every connection of the server.
 * Osprey: httpStopServer(serverID: Int) -> Result<Unit, String> */
OspResult osp_http_stop_server(int64_t server_id);

/* Project addition: sets one limit of a server before httpListen. Names: maxRequestLineBytes (8192, 414), maxHeaderBytes (16384, 431), maxHeaders (100, 431), maxBodyBytes (1048576, 413), headerTimeoutMs (10000, 408), bodyTimeoutMs (30000, 408), idleTimeoutMs (60000), maxConnections (10000, 503).
 * Osprey: httpServerSetLimit(serverID: Int, name: String, value: Int) -> Result<Unit, String> */
OspResult osp_http_server_set_limit(int64_t server_id, const char *name, int64_t value);

/* Project addition: WebSocket upgrade requests for `path` on this HTTP server's port go to a new WebSocket server, whose id works with every websocketServer… function (handlers, send, broadcast, stop; limits and policies before the first connection). Everything else on the port stays HTTP.
 * Osprey: httpServerWebSocket(serverID: Int, path: String) -> Result<Int, String> */
OspResult osp_http_server_websocket(int64_t server_id, const char *path);

/* A client for an http:// or https:// base URL; `timeout` (milliseconds, 0 = 30000) bounds each whole request. https verifies the certificate and host name like wss://.
 * Osprey: httpCreateClient(baseUrl: String, timeout: Int) -> Result<Int, String> */
OspResult osp_http_create_client(const char *base_url, int64_t timeout);

/* GET baseUrl+path; the response (redirects are not followed) or an Error.
 * Osprey: httpGet(clientID: Int, path: String, headers: String) -> Result<HttpResponse, String> */
OspResult osp_http_get(int64_t client_id, const char *path, const char *headers);

/* POST with a Content-Length body.
 * Osprey: httpPost(clientID: Int, path: String, body: String, headers: String) -> Result<HttpResponse, String> */
OspResult osp_http_post(int64_t client_id, const char *path, const char *body, const char *headers);

/* PUT with a Content-Length body.
 * Osprey: httpPut(clientID: Int, path: String, body: String, headers: String) -> Result<HttpResponse, String> */
OspResult osp_http_put(int64_t client_id, const char *path, const char *body, const char *headers);

/* DELETE baseUrl+path.
 * Osprey: httpDelete(clientID: Int, path: String, headers: String) -> Result<HttpResponse, String> */
OspResult osp_http_delete(int64_t client_id, const char *path, const char *headers);

/* Any HttpMethod; note the order (headers, body), unlike httpPost (docs/guide/17-http.md).
 * Osprey: httpRequest(clientID: Int, method: HttpMethod, path: String, headers: String, body: String) -> Result<HttpResponse, String> */
OspResult osp_http_request(int64_t client_id, void *method, const char *path, const char *headers, const char *body);

/* Marks the client closed; later calls with its id are an Error.
 * Osprey: httpCloseClient(clientID: Int) -> Result<Unit, String> */
OspResult osp_http_close_client(int64_t client_id);

/* Opens a ws:// connection, completes the RFC 6455 opening handshake and returns its id. Every received text message is passed to the handler in a fiber on the scheduler (never on the WebSocket I/O thread), one at a time and in order. Called from a fiber, the fiber parks and the call runs on a helper thread (its worker runs other fibers).
 * Osprey: websocketConnect(url: String, messageHandler: (String) -> Result<Unit, String>) -> Result<Int, String> */
OspResult osp_ws_connect(const char *url, osp_message_handler_fn handler, void *handler_env);

/* websocketConnect with a handler of type fn(Int, String): the connection id and each text message (the compiler picks this symbol by the handler's type); otherwise as osp_ws_connect.
 * Osprey: websocketConnect(url: String, messageHandler: (Int, String) -> Result<Unit, String>) -> Result<Int, String> */
OspResult osp_ws_connect_with_id(const char *url, osp_server_message_handler_fn handler, void *handler_env);

/* websocketConnect with a handler of type fn(Int, WebSocketMessage): the connection id and every text and binary message (the compiler picks this symbol by the handler's type); otherwise as osp_ws_connect.
 * Osprey: websocketConnect(url: String, messageHandler: (Int, WebSocketMessage) -> Result<Unit, String>) -> Result<Int, String> */
OspResult osp_ws_connect_messages(const char *url, osp_ws_message_handler_fn handler, void *handler_env);

/* Sends one masked text message on a client connection.
 * Osprey: websocketSend(wsID: Int, message: String) -> Result<Unit, String> */
OspResult osp_ws_send(int64_t ws_id, const char *message);

/* Project addition (docs/guide/15-websockets.md): sends one masked binary message (any bytes) on a client connection.
 * Osprey: websocketSendBinary(wsID: Int, data: String) -> Result<Unit, String> */
OspResult osp_ws_send_binary(int64_t ws_id, const char *data);

/* Project addition (docs/guide/15-websockets.md): registers the handler called once when the client connection ends (close code and reason; 1006 when the TCP connection dropped without a Close frame), after its last message, in a fiber like the message handler. An Err when the connection already ended.
 * Osprey: websocketOnClose(wsID: Int, handler: (Int, String) -> Result<Unit, String>) -> Result<Unit, String> */
OspResult osp_ws_on_close(int64_t ws_id, osp_ws_close_handler_fn handler, void *handler_env);

/* Completes the closing handshake (1000) and releases the connection; when it returns the handler can no longer be called. Called from a fiber, the fiber parks and the call runs on a helper thread (its worker runs other fibers).
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

/* Closes every connection with 1001, stops listening and frees the server; the port can be bound again at once. Called from a fiber, the fiber parks and the call runs on a helper thread (its worker runs other fibers).
 * Osprey: websocketStopServer(serverID: Int) -> Result<Unit, String> */
OspResult osp_ws_stop_server(int64_t server_id);

/* Project addition (docs/guide/15-websockets.md): registers a handler for received text messages; it replaces the default echo. The handler runs in a fiber on the scheduler (never on the WebSocket I/O thread): per connection one message at a time, in order; different connections in parallel.
 * Osprey: websocketServerOnMessage(serverID: Int, handler: (Int, String) -> Result<Unit, String>) -> Result<Unit, String> */
OspResult osp_ws_server_on_message(int64_t server_id, osp_server_message_handler_fn handler, void *handler_env);

/* websocketServerOnMessage with a handler of type fn(String): each text message (the compiler picks this symbol by the handler's type); otherwise as osp_ws_server_on_message.
 * Osprey: websocketServerOnMessage(serverID: Int, handler: (String) -> Result<Unit, String>) -> Result<Unit, String> */
OspResult osp_ws_server_on_text(int64_t server_id, osp_message_handler_fn handler, void *handler_env);

/* websocketServerOnMessage with a handler of type fn(Int, WebSocketMessage): the connection id and every text and binary message (the compiler picks this symbol by the handler's type); otherwise as osp_ws_server_on_message.
 * Osprey: websocketServerOnMessage(serverID: Int, handler: (Int, WebSocketMessage) -> Result<Unit, String>) -> Result<Unit, String> */
OspResult osp_ws_server_on_messages(int64_t server_id, osp_ws_message_handler_fn handler, void *handler_env);

/* Project addition (docs/guide/15-websockets.md): registers the handler called with the id of every connection the server accepts, before any of its messages, in the connection's handler fiber. Before websocketServerListen: every connection then gets exactly one open and one close event, in that order.
 * Osprey: websocketServerOnOpen(serverID: Int, handler: (Int) -> Result<Unit, String>) -> Result<Unit, String> */
OspResult osp_ws_server_on_open(int64_t server_id, osp_ws_open_handler_fn handler, void *handler_env);

/* Project addition (docs/guide/15-websockets.md): registers the handler called once per connection when it ends (connection id, close code, reason; 1006 when the TCP connection dropped without a Close frame), after its last message. Before websocketServerListen.
 * Osprey: websocketServerOnClose(serverID: Int, handler: (Int, Int, String) -> Result<Unit, String>) -> Result<Unit, String> */
OspResult osp_ws_server_on_close(int64_t server_id, osp_ws_server_close_handler_fn handler, void *handler_env);

/* Project addition (docs/guide/15-websockets.md): sends a text message to one connection of a server.
 * Osprey: websocketServerSend(serverID: Int, connectionID: Int, message: String) -> Result<Unit, String> */
OspResult osp_ws_server_send(int64_t server_id, int64_t connection_id, const char *message);

/* Project addition (docs/CLUSTER.md): joins the server, before it listens, to every server on the same Redis (redis://[user:password@]host:port/db or rediss://) and channel: its broadcasts reach their connections too, websocketServerSend reaches their connections (ids carry the node id), and theirs reach it. Returns once connected and subscribed; Err naming the address when Redis cannot be reached.
 * Osprey: websocketServerUseCluster(serverID: Int, redisUrl: String, channelName: String) -> Result<Unit, String> */
OspResult osp_ws_server_use_cluster(int64_t server_id, const char *redis_url, const char *channel);

/* Project addition (docs/CLUSTER.md): one line on the server's cluster link, starting with "up:" or "reconnecting:", then the node id, Redis address, counters and the backlog waiting for the bus.
 * Osprey: websocketServerClusterStatus(serverID: Int) -> Result<String, String> */
OspResult osp_ws_server_cluster_status(int64_t server_id);

/* Project addition (docs/guide/15-websockets.md): sends a binary message (any bytes) to one connection of a server.
 * Osprey: websocketServerSendBinary(serverID: Int, connectionID: Int, data: String) -> Result<Unit, String> */
OspResult osp_ws_server_send_binary(int64_t server_id, int64_t connection_id, const char *data);

/* Project addition (docs/guide/15-websockets.md): queues a binary message to every open connection of the server.
 * Osprey: websocketServerBroadcastBinary(serverID: Int, data: String) -> Result<Unit, String> */
OspResult osp_ws_server_broadcast_binary(int64_t server_id, const char *data);

/* Project addition (docs/WEBSOCKET-OPTIONS.md): like websocketCreateServer, but every connection speaks TLS (wss://, TLS 1.2 or newer) with the PEM certificate chain and unencrypted PEM private key given. Error when a file cannot be read or parsed, or the key does not match the certificate.
 * Osprey: websocketCreateSecureServer(port: Int, address: String, path: String, certFile: String, keyFile: String) -> Result<Int, String> */
OspResult osp_ws_create_secure_server(int64_t port, const char *address, const char *path, const char *cert_file, const char *key_file);

/* Project addition (docs/WEBSOCKET-OPTIONS.md): trusts the CA certificates in a PEM file, in addition to the system trust store, for later wss:// connections (for tests and private deployments); "" removes it. Error when the file holds no loadable certificate.
 * Osprey: websocketSetTrustedCA(path: String) -> Result<Unit, String> */
OspResult osp_ws_set_trusted_ca(const char *path);

/* Project addition (docs/WEBSOCKET-OPTIONS.md): sets one limit of a server before websocketServerListen. Names: maxMessageBytes, maxFragments, maxRequestLineBytes, maxHeaderBytes, maxHeaders, handshakeTimeoutMs, closeTimeoutMs, idleTimeoutMs, messageTimeoutMs, maxOutputBytes, maxConnections, maxConnectionsPerIp, maxHandshakesPerIp, maxTlsHandshakeRatePerIp, wipeMessages. Error for an unknown name (listing the valid ones), a value out of range (stating the range), or a server already listening.
 * Osprey: websocketServerSetLimit(serverID: Int, name: String, value: Int) -> Result<Unit, String> */
OspResult osp_ws_server_set_limit(int64_t server_id, const char *name, int64_t value);

/* Project addition (docs/WEBSOCKET-OPTIONS.md): sets a process-wide default limit (same names and ranges as websocketServerSetLimit) for servers created and client connections opened afterwards; existing ones keep theirs. Outgoing messages are checked against the default maxMessageBytes.
 * Osprey: websocketSetDefaultLimit(name: String, value: Int) -> Result<Unit, String> */
OspResult osp_ws_set_default_limit(const char *name, int64_t value);

/* Project addition (docs/WEBSOCKET-OPTIONS.md): adds a serialized origin (scheme://host[:port], lower case) to the server allowlist, before websocketServerListen. With a non-empty list a handshake whose Origin is not byte-for-byte in it, or that has no Origin, is answered 403.
 * Osprey: websocketServerAllowOrigin(serverID: Int, origin: String) -> Result<Unit, String> */
OspResult osp_ws_server_allow_origin(int64_t server_id, const char *origin);

/* Project addition (docs/WEBSOCKET-OPTIONS.md): adds a supported subprotocol (an HTTP token), before websocketServerListen. The first of the client offers that the server supports is echoed once in Sec-WebSocket-Protocol; with no common one the handshake succeeds without it.
 * Osprey: websocketServerAddSubprotocol(serverID: Int, protocol: String) -> Result<Unit, String> */
OspResult osp_ws_server_add_subprotocol(int64_t server_id, const char *protocol);

#ifdef __cplusplus
}
#endif

#endif /* OSPREY_ABI_H */
