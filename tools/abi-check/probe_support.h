/*
 * Support library of the ABI probes (`osprey abi-check`). Every generated probe links this file;
 * it never calls the runtime under test, so it builds once and a missing runtime symbol can only
 * fail the probe of the function that needs it.
 *
 * A probe reports on the file named by $OSP_PROBE_REPORT, one line per event, each written with a
 * single write(2) so nothing is lost when the probe crashes right after:
 *   STEP <text>                      what the probe is about to do (names a hang or a crash)
 *   CHECK <check> <pass|fail> <why>  one verdict; the harness attributes it to the probed function
 *   ARG <address> <size> <function>  a string argument passed to that function (see below)
 *   DONE                             the scenario ran to its end
 * Fields are tab-separated; reasons never contain tabs or newlines.
 */
#ifndef OSP_PROBE_SUPPORT_H
#define OSP_PROBE_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "osprey_abi.h"

/* ---- reporting ------------------------------------------------------------------------- */

void probe_begin(void);
void probe_step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void probe_check(const char *check, int pass, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void probe_done(void);
uint64_t probe_now_ms(void);

/* ---- arguments ------------------------------------------------------------------------- */

/* The environment every probe handler is registered with: a distinctive static object. */
extern char probe_env_sentinel[64];
#define PROBE_ENV ((void *)probe_env_sentinel)

/* A String of the runtime ABI (OSP_STRING_HEADER_BYTES of length before the bytes, a NUL after
 * them) holding `n` bytes copied from `bytes` (zeros when NULL), in malloc'd memory followed by
 * `pad` spare zero bytes. Release with probe_string_free. */
char *probe_string_new(const char *bytes, size_t n, size_t pad);
void probe_string_free(char *s);

/* A malloc'd, padded String copy of the `n` bytes at `s` (NUL bytes included). Strings are borrowed for the duration of a call (docs/ABI.md),
 * so the probe frees every argument right after the call returns: a runtime that kept the
 * pointer shows up as an ASan heap-use-after-free. Each copy is reported (`ARG addr size fn`) so
 * the harness can name the call whose argument was used after it returned. */
char *probe_arg_string(const char *fn, const char *s, size_t n);
void probe_arg_release(char *s);

/* Free, occupied (a listening socket kept open by the probe) and closed loopback ports. */
int64_t probe_free_port(void);
int64_t probe_busy_port(void);
int64_t probe_closed_port(void);
/* "ws://127.0.0.1:PORT/abi" for a port nobody listens on. */
const char *probe_closed_port_url(void);
/* The harness's independent echo server (Node `ws`), from $OSP_PROBE_ECHO_URL, plus `suffix`. */
const char *probe_echo_url(const char *suffix);

/* ---- reading what came back ------------------------------------------------------------ */

/* Copies a String (length header, bytes, NUL) from an untrusted address without faulting (the
 * kernel reports EFAULT for unreadable pages): the header must be readable and plausible and the
 * byte after the counted ones a NUL. Returns 1 and fills `out` (NUL-terminated, truncated to
 * cap-1) and *len (the full length) on success; returns 0 and sets *why on failure. */
int probe_read_cstring(int64_t addr, char *out, size_t cap, size_t *len, const char **why);
/* Whether `n` bytes at `addr` are readable; copies them to `out` when out != NULL. */
int probe_read_bytes(int64_t addr, void *out, size_t n);
/* NULL when valid UTF-8, else a description of the first bad sequence. */
const char *probe_utf8_error(const char *s, size_t n);
/* Describes a string for a reason: quoted, escaped, at most ~60 characters. */
const char *probe_quote(const char *s, size_t n);

/* Checks an OspResult the probed function returned. `arg0` is the address of the first pointer
 * argument (0 when none): a tag equal to it betrays a hidden sret pointer. Reports `result-tag`;
 * returns the tag when valid, -1 otherwise. */
int probe_result_tag(const char *fn, OspResult r, int64_t arg0);
/* Validates the Error payload (reports `error-message`); fills msg when valid. */
int probe_error_message(const char *fn, OspResult r, char *msg, size_t cap);
/* Reports a set-up call that did not return Success (check `setup`). */
void probe_setup_failed(const char *call, OspResult r);

/* ---- runtime calls in progress (handler thread check) ---------------------------------- */

void probe_enter_call(const char *fn);
void probe_leave_call(void);

/* ---- handlers ---------------------------------------------------------------------------- */

/* Every generated handler forwards here: `kind` is the HANDLERS name, `argc` words follow, with
 * `string_mask` bit i set when argument i is a C string. */
OspResult probe_handler_called(const char *kind, void *env, int argc, const int64_t *argv, unsigned string_mask);
/* The text the peer sends and handler messages must start with. */
void probe_handler_expect(const char *prefix);
/* Waits up to `ms` for at least `n` calls; returns the count. */
int probe_handler_wait(int n, int ms);
int probe_handler_count(void);
/* The connection id (first Int argument) of the first call, or -1. */
int64_t probe_handler_first_int(void);
/* From now on every handler call is a call after close/stop. */
void probe_handler_mark_closed(const char *by);
/* Waits for `expect_calls` calls, then reports handler-invoked, handler-env, handler-args,
 * handler-order and handler-thread for the registering function. */
void probe_handler_report(const char *registrar, int wait_ms, int expect_calls, const char *note);
/* For handlers delivered on the caller's thread (process events): reports handler-invoked,
 * handler-env and handler-args from the calls made so far, after `deliverer` returned. */
void probe_handler_report_caller(const char *registrar, const char *deliverer);
/* Waits `quiet_ms`, then reports handler-after-close. */
void probe_handler_report_after_close(int quiet_ms);

/* Sleeps, resuming after signals. */
void probe_pause_ms(int ms);

/* ---- a raw WebSocket client independent of the runtime under test ------------------------ */

int probe_raw_connect(int64_t port, const char *path);
int probe_raw_send_text(int fd, const char *text);
/* Reads frames until a text frame arrives; returns its length or -1 after `timeout_ms`. */
int probe_raw_recv_text(int fd, char *buf, size_t cap, int timeout_ms);
/* Sends "`text` N" (N = 0, 1, ...) every `interval_ms` from a thread until probe_raw_stop_sender or a write fails. */
void probe_raw_start_sender(int fd, const char *text, int interval_ms);
void probe_raw_stop_sender(void);

/* ---- message integrity (tools/abi-check/integrity.ts) ------------------------------------ */

/* What the integrity messages are made of (integrity.ts, INTEGRITY_CASES). */
enum { INTEGRITY_UTF8 = 0, INTEGRITY_NUL_BYTES = 1, INTEGRITY_BINARY = 2 };
/* The kind of a received message: the opcode of its first frame at a raw peer, the
 * WebSocketMessage type at a handler; MSG_UNKNOWN where the receiver is not told (a String
 * handler), MSG_BAD_TYPE for a record whose type is neither "text" nor "binary". */
enum { MSG_UNKNOWN = 0, MSG_TEXT = 1, MSG_BINARY = 2, MSG_BAD_TYPE = 3 };

/* A String (probe_string_new; release with probe_string_free) of exactly `n` bytes, different for
 * every `index`: valid UTF-8 (1- to 4-byte sequences), with NUL bytes in the nul-bytes case, or
 * bytes of every value in the binary case (the first 256 bytes hold each value once). */
char *probe_integrity_text(size_t n, unsigned index);
/* Chooses the messages probe_integrity_text, the raw client and the harness's /integrity server
 * make (`content`, INTEGRITY_*; the raw client sends binary frames in the binary case), and the
 * kind every message must arrive as (`kind`, MSG_TEXT, MSG_BINARY, or MSG_UNKNOWN: unchecked). */
void probe_integrity_set_content(int content, int kind);

/* From now on every handler call also copies its first string argument (a WebSocketMessage
 * handler: the record's data, and its type), whole, into a FIFO (up to `max_bytes` bytes each)
 * that probe_capture_next pops. */
void probe_capture_start(size_t max_bytes);
/* Pops the oldest captured message (malloc'd, NUL-terminated; the caller frees it). Returns 1,
 * or 0 when nothing arrived within `timeout_ms`. */
int probe_capture_next(int timeout_ms, char **msg, size_t *len);

/* A sending runtime call with every argument but the message bound (generated per probe). */
typedef OspResult (*probe_send_fn)(const char *message);

/* A "abi-probe:..." token unique to this process, for the Node server's per-connection state. */
const char *probe_integrity_token(void);

/* The drivers: each pushes `count` messages of `sizes[i]` bytes (the last one the configured
 * limit) through its route and compares what arrives, then (when `limit` > 0) pushes one of
 * limit + 1 bytes, which must be refused. They report the `integrity` and `message-limit` checks
 * for `fn`; `limit` 0 means the limit could not be configured (no osp_ws_set_default_limit). */
/* osp_ws_send: the Node server (path from probe_integrity_digest_url) records what it receives and
 * tells a raw client, so the runtime's receive path plays no part. */
const char *probe_integrity_digest_url(void);
void probe_integrity_send_digest(const char *fn, probe_send_fn send, const int64_t *sizes, int count, int64_t limit);
/* osp_ws_server_send / broadcast: the raw client `fd` reads every frame. */
void probe_integrity_send_raw(const char *fn, probe_send_fn send, int fd, const int64_t *sizes, int count, int64_t limit);
/* osp_ws_connect's handler: the Node server (path /integrity/LIMIT/TOKEN) announces each message. */
void probe_integrity_receive_digest(const char *fn, const int64_t *sizes, int count, int64_t limit);
/* osp_ws_server_on_message's handler: a raw client connects to `port` and sends. */
void probe_integrity_receive_raw(const char *fn, int64_t port, const int64_t *sizes, int count, int64_t limit);
/* "/integrity/LIMIT/TOKEN" on the harness's Node server. */
const char *probe_integrity_url(int64_t limit);

/* ---- connection events ------------------------------------------------------------------- */

/* Handlers that log every open, message and close event (with the connection id, the close code
 * and reason), registered with osp_ws_server_on_open / _on_message / _on_close by the probe. */
OspResult probe_event_on_open(void *env, int64_t connection_id);
OspResult probe_event_on_message(void *env, int64_t connection_id, const char *message);
OspResult probe_event_on_close(void *env, int64_t connection_id, int64_t code, const char *reason);
/* Two raw clients connect to `port` and send 3 messages each; one then sends a close frame (1000,
 * "abi-probe bye"), the other drops its TCP connection. Reports the `events` check for `fn`:
 * `which` 0 the open events (one per connection, first), 1 the close events (one per connection,
 * last, 1000 with the reason and 1006). */
void probe_events_drive(const char *fn, int which, int64_t port);

/* Client close events (osp_ws_on_close). The probe connects two clients to the harness's Node
 * server, URL probe_client_events_url(0) (which closes with 1000 "bye") and (1) (which drops the
 * TCP connection), each registered with env probe_client_event_env(i) for both handlers and bound
 * to its connection id with probe_client_event_bind, then sends "abi-probe:go" on each: the server
 * sends 3 messages and ends the connection. probe_client_events_check reports the `events` check
 * for `fn`: one close event per connection, after its 3 messages, 1000 "bye" and 1006 "". */
void *probe_client_event_env(int which);
void probe_client_event_bind(int which, int64_t connection_id);
const char *probe_client_events_url(int which);
OspResult probe_client_event_on_message(void *env, const char *message);
OspResult probe_client_event_on_close(void *env, int64_t code, const char *reason);
void probe_client_events_check(const char *fn);

#endif /* OSP_PROBE_SUPPORT_H */
