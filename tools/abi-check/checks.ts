/**
 * The checks of `osprey abi-check`, in report order, each with what it verifies. The probe
 * generator decides which apply to a function (from its C return and parameter types); the
 * documentation generator (scripts/gen-abi-doc.ts) prints this table.
 */
export const CHECK_ORDER = [
  'symbol',
  'link',
  'result-tag',
  'success-path',
  'error-path',
  'error-message',
  'returns',
  'exit-status',
  'output',
  'delivery',
  'integrity',
  'message-limit',
  'events',
  'handler-invoked',
  'handler-env',
  'handler-args',
  'handler-order',
  'handler-thread',
  'handler-after-close',
  'no-crash',
  'no-leak',
] as const;

export type CheckName = (typeof CHECK_ORDER)[number];

export const CHECK_DOCS: Record<CheckName, string> = {
  symbol: 'The library defines the C symbol (`nm`; `nm -D` for a shared object).',
  link: 'A probe compiled with clang-14 against the generated header links with the library, ASan and UBSan.',
  'result-tag':
    'Every returned OspResult has tag 0 or 1. Anything else is diagnosed: a small or negative integer is a raw integer return; the address of the first argument is a struct over 16 bytes returned through a hidden sret pointer.',
  'success-path': 'The scenario inputs meant to succeed return Success; a `Result<Unit, …>` carries payload 0.',
  'error-path': 'The scenario inputs meant to fail (unknown id, busy port, closed port, port out of range…) return Error.',
  'error-message':
    'The Error payload is a readable pointer (checked without faulting) to a non-empty, NUL-terminated, valid UTF-8 message.',
  returns: 'A function without a Result returns the expected value (a readable UTF-8 string, zeroed memory, an integer).',
  'exit-status': 'A function that ends the process does so with the documented status and message.',
  output: 'Text the function prints reaches standard output.',
  delivery: 'A message the function reports as sent is received by an independent raw RFC 6455 client.',
  integrity:
    'Every message-carrying function, in its direction (send: an independent peer receives; receive: the handler receives), carries messages of 0, 1, 125, 126, 4,095, 4,096, 4,097, 65,535, 65,536 and 1,000,000 bytes and of the configured maxMessageBytes, mixing 1- to 4-byte UTF-8, byte for byte, in order and of the kind sent (text or binary: the frame opcode at a peer, the WebSocketMessage type at a handler); then the same with NUL bytes inside the text, and, through the functions that carry binary messages, binary messages holding every byte value. A truncated, extended, altered, dropped or reordered message, or one of the wrong kind, fails with the function and the size.',
  'message-limit':
    'A message one byte over the configured maxMessageBytes is refused, never truncated: a sending function returns Error and nothing of it reaches the peer; a receiving side closes with 1009 and the handler never sees it.',
  events:
    'The connection events of a server: two raw clients each send 3 messages; one then sends a close frame (1000, "abi-probe bye"), the other drops its TCP connection. Each connection gets exactly one open event, before its messages, and exactly one close event, after all its messages: 1000 with the reason for the close frame, 1006 and an empty reason for the dropped connection. The close events of a client (osp_ws_on_close): two clients of the harness\'s Node server get 3 messages each; the server then closes one with 1000 "bye" and drops the other\'s TCP connection: each client gets exactly one close event, after its 3 messages, 1000 "bye" and 1006 "". A missing, duplicated or reordered event fails with the function, the connection and what was wrong.',
  'handler-invoked': 'The handler registered with the function is called through its function pointer within 2 s.',
  'handler-env': 'Every call passes the environment pointer the handler was registered with (a sentinel), as the first argument.',
  'handler-args': 'The remaining arguments are in order and typed: each string is readable UTF-8 with the text the peer sent.',
  'handler-order': 'Numbered messages from one peer connection reach the handler once each, in the order they were sent.',
  'handler-thread':
    "The handler runs as a fiber on one of the scheduler's worker threads: never on the runtime's WebSocket I/O thread (named osprey-ws-io), never synchronously inside the caller's call.",
  'handler-after-close':
    'No call arrives after websocketClose / websocketStopServer returned (traffic keeps flowing while the probe closes; it then watches 300 ms).',
  'no-crash':
    'Every scenario process exits cleanly within the timeout: no signal, no ASan or UBSan report, no hang. A report about a string argument that the library kept after the call returned names that call.',
  'no-leak':
    'LeakSanitizer reports no leak whose allocation stack enters the library (memory of the Boehm collector is not malloc memory and is not leak-checked).',
};
