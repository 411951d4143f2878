/**
 * The single definition of the Osprey runtime ABI.
 *
 * Everything that compiled Osprey code and the C runtime must agree on is written here once:
 * the Result layout and its tags, the handler (closure) calling convention, and every runtime
 * function's C symbol, C parameters and, for functions a program can call by name, the Osprey
 * name, Osprey parameters and Osprey type.
 *
 * Consumers:
 *   - compiler/src/codegen/runtime.ts declares every function in LLVM from this table;
 *   - scripts/gen-abi-header.ts writes runtime-c/include/osprey_abi.h from it
 *     (tests/abi/header.test.ts fails when the committed header is stale);
 *   - tests/abi/declarations.test.ts compiles the generated C prototypes with
 *     `clang-14 -S -emit-llvm` and checks the compiler declares each one identically.
 *
 * Why a 16-byte Result: on x86-64 System V a struct of two INTEGER eightbytes comes back in
 * RAX:RDX in both directions (IR calling C, C calling an IR function pointer) without any LLVM
 * attribute. Larger structs need `sret`, which llvm-bindings cannot set (see TOOLCHAIN.md), so
 * every payload is carried in one 64-bit word: Int as itself, Bool as 0/1, Unit as 0, and
 * String or any heap value as a pointer.
 */

/** Bumped on any change a separately built runtime library would notice. */
export const ABI_VERSION = 1;

/** `typedef struct { int64_t tag; int64_t value; } OspResult;` */
export const RESULT_STRUCT = {
  cName: 'OspResult',
  llvmName: 'OspResult',
  fields: [
    { name: 'tag', doc: 'OSP_RESULT_SUCCESS or OSP_RESULT_ERROR' },
    {
      name: 'value',
      doc:
        'Success: the payload word (Int itself, Bool 0/1, Unit 0, String as a pointer). ' +
        'Error: a pointer to a NUL-terminated UTF-8 message owned by the garbage collector.',
    },
  ],
} as const;

export const RESULT_TAGS = {
  Success: 0,
  Error: 1,
} as const;

/** Types as Osprey programs see them (only what the runtime's signatures need). */
export type OspreyType =
  | { kind: 'Int' }
  | { kind: 'String' }
  | { kind: 'Bool' }
  | { kind: 'Unit' }
  | { kind: 'Result'; ok: OspreyType; err: OspreyType }
  | { kind: 'Fn'; params: OspreyType[]; ret: OspreyType };

export const T = {
  Int: { kind: 'Int' } as OspreyType,
  String: { kind: 'String' } as OspreyType,
  Bool: { kind: 'Bool' } as OspreyType,
  Unit: { kind: 'Unit' } as OspreyType,
  Result: (ok: OspreyType, err: OspreyType): OspreyType => ({ kind: 'Result', ok, err }),
  Fn: (params: OspreyType[], ret: OspreyType): OspreyType => ({ kind: 'Fn', params, ret }),
};

/**
 * C-level value types. Each maps to exactly one C spelling and one LLVM (typed-pointer, LLVM 14)
 * spelling. `handler:*` names a function-pointer typedef from HANDLERS.
 */
export type CType =
  | 'void'
  | 'int64'
  | 'int32'
  | 'cstring'
  | 'ptr'
  | 'result'
  | `handler:${HandlerName}`;

export type HandlerName = 'message' | 'server_message';

/**
 * Handler calling convention. An Osprey function value is a closure `{ fn, env }`. The runtime
 * receives the two halves as two parameters (never a struct by value) and calls
 * `fn(env, args...)`, reading the returned OspResult. `env` may be NULL for a closure that
 * captures nothing. Every compiled Osprey function of type (A...) -> R has this shape.
 */
export interface HandlerSig {
  cTypedef: string;
  params: { name: string; type: CType }[];
  returns: CType;
  osprey: OspreyType;
  doc: string;
}

export const HANDLERS: Record<HandlerName, HandlerSig> = {
  message: {
    cTypedef: 'osp_message_handler_fn',
    params: [
      { name: 'env', type: 'ptr' },
      { name: 'message', type: 'cstring' },
    ],
    returns: 'result',
    osprey: T.Fn([T.String], T.Result(T.Unit, T.String)),
    doc: 'Client message handler: called once per received text message, in order.',
  },
  server_message: {
    cTypedef: 'osp_server_message_handler_fn',
    params: [
      { name: 'env', type: 'ptr' },
      { name: 'connection_id', type: 'int64' },
      { name: 'message', type: 'cstring' },
    ],
    returns: 'result',
    osprey: T.Fn([T.Int, T.String], T.Result(T.Unit, T.String)),
    doc: 'Server message handler: called with the connection id and each received text message.',
  },
};

export interface CParam {
  name: string;
  type: CType;
}

/** How an Osprey-visible built-in maps onto its C function. */
export interface OspreyBinding {
  /** The name Osprey code calls. */
  name: string;
  /** Osprey parameters in order, with the names used for named arguments. */
  params: { name: string; type: OspreyType }[];
  returns: OspreyType;
  /** Which --no-* capability removes it (LANGUAGE.md §15). */
  capability?: 'websocket' | 'http' | 'fs' | 'process';
}

export interface RuntimeFunction {
  symbol: string;
  params: CParam[];
  returns: CType;
  /** Present when Osprey code may call the function by name. A parameter of Fn type is passed as
   *  two C parameters: the function pointer then the environment. */
  osprey?: OspreyBinding;
  /** Never returns (the C header marks it `_Noreturn`). */
  noreturn?: boolean;
  doc: string;
}

const wsResultInt = T.Result(T.Int, T.String);
const wsResultUnit = T.Result(T.Unit, T.String);

export const RUNTIME_FUNCTIONS: RuntimeFunction[] = [
  // ---- process lifetime -------------------------------------------------------------------
  {
    symbol: 'osp_rt_init',
    params: [{ name: 'abi_version', type: 'int64' }],
    returns: 'void',
    doc:
      'Called first by the generated main(): checks the ABI version, starts the garbage collector ' +
      'and sets stdout to line buffering. Aborts with a message if the library was built for another ABI.',
  },
  {
    symbol: 'osp_rt_shutdown',
    params: [{ name: 'status', type: 'int64' }],
    returns: 'int32',
    doc:
      'Called last by the generated main(): stops every WebSocket server and connection, joins the ' +
      'runtime thread, flushes stdout and returns the process exit status (low 8 bits of `status`).',
  },
  {
    symbol: 'osp_rt_fail',
    params: [
      { name: 'message', type: 'cstring' },
      { name: 'location', type: 'cstring' },
    ],
    returns: 'void',
    noreturn: true,
    doc: 'A run-time failure (e.g. division by zero): prints `Error: MESSAGE at LOCATION` on stderr, exits 1.',
  },
  // ---- memory and strings -----------------------------------------------------------------
  {
    symbol: 'osp_alloc',
    params: [{ name: 'size', type: 'int64' }],
    returns: 'ptr',
    doc: 'Garbage-collected, zeroed allocation for records, closures and environments.',
  },
  {
    symbol: 'osp_string_concat',
    params: [
      { name: 'left', type: 'cstring' },
      { name: 'right', type: 'cstring' },
    ],
    returns: 'cstring',
    doc: 'A new garbage-collected string holding left followed by right.',
  },
  {
    symbol: 'osp_string_equals',
    params: [
      { name: 'left', type: 'cstring' },
      { name: 'right', type: 'cstring' },
    ],
    returns: 'int64',
    doc: '1 when the two strings have the same bytes, else 0.',
  },
  {
    symbol: 'osp_int_to_string',
    params: [{ name: 'value', type: 'int64' }],
    returns: 'cstring',
    doc: 'Decimal text of a signed 64-bit integer.',
  },
  {
    symbol: 'osp_bool_to_string',
    params: [{ name: 'value', type: 'int64' }],
    returns: 'cstring',
    doc: '"true" or "false".',
  },
  {
    symbol: 'osp_print',
    params: [{ name: 'text', type: 'cstring' }],
    returns: 'void',
    doc: 'Writes the text and a line feed to standard output (one process-wide stream).',
  },
  {
    symbol: 'osp_sleep',
    params: [{ name: 'milliseconds', type: 'int64' }],
    returns: 'void',
    doc: 'Pauses the calling thread; negative values count as 0. Runtime threads keep serving.',
  },
  // ---- WebSockets: spec/0016-websockets.md ------------------------------------------------
  {
    symbol: 'osp_ws_connect',
    params: [
      { name: 'url', type: 'cstring' },
      { name: 'handler', type: 'handler:message' },
      { name: 'handler_env', type: 'ptr' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketConnect',
      params: [
        { name: 'url', type: T.String },
        { name: 'messageHandler', type: HANDLERS.message.osprey },
      ],
      returns: wsResultInt,
      capability: 'websocket',
    },
    doc:
      'Opens a ws:// connection, completes the RFC 6455 opening handshake and returns its id. ' +
      'Every received text message is passed to the handler on the runtime thread, in order.',
  },
  {
    symbol: 'osp_ws_send',
    params: [
      { name: 'ws_id', type: 'int64' },
      { name: 'message', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketSend',
      params: [
        { name: 'wsID', type: T.Int },
        { name: 'message', type: T.String },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc: 'Sends one masked text message on a client connection.',
  },
  {
    symbol: 'osp_ws_close',
    params: [{ name: 'ws_id', type: 'int64' }],
    returns: 'result',
    osprey: {
      name: 'websocketClose',
      params: [{ name: 'wsID', type: T.Int }],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc:
      'Completes the closing handshake (1000) and releases the connection; when it returns the ' +
      'handler can no longer be called.',
  },
  {
    symbol: 'osp_ws_create_server',
    params: [
      { name: 'port', type: 'int64' },
      { name: 'address', type: 'cstring' },
      { name: 'path', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketCreateServer',
      params: [
        { name: 'port', type: T.Int },
        { name: 'address', type: T.String },
        { name: 'path', type: T.String },
      ],
      returns: wsResultInt,
      capability: 'websocket',
    },
    doc: 'Validates the port, address and path and returns a server id; nothing is bound yet.',
  },
  {
    symbol: 'osp_ws_server_listen',
    params: [{ name: 'server_id', type: 'int64' }],
    returns: 'result',
    osprey: {
      name: 'websocketServerListen',
      params: [{ name: 'serverID', type: T.Int }],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc: 'Binds and listens; returns once connections are being accepted.',
  },
  {
    symbol: 'osp_ws_server_broadcast',
    params: [
      { name: 'server_id', type: 'int64' },
      { name: 'message', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketServerBroadcast',
      params: [
        { name: 'serverID', type: T.Int },
        { name: 'message', type: T.String },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc: 'Queues a text message to every open connection of the server (Success with none).',
  },
  {
    symbol: 'osp_ws_stop_server',
    params: [{ name: 'server_id', type: 'int64' }],
    returns: 'result',
    osprey: {
      name: 'websocketStopServer',
      params: [{ name: 'serverID', type: T.Int }],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc:
      'Closes every connection with 1001, stops listening and frees the server; the port can be ' +
      'bound again at once.',
  },
  {
    symbol: 'osp_ws_server_on_message',
    params: [
      { name: 'server_id', type: 'int64' },
      { name: 'handler', type: 'handler:server_message' },
      { name: 'handler_env', type: 'ptr' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketServerOnMessage',
      params: [
        { name: 'serverID', type: T.Int },
        { name: 'handler', type: HANDLERS.server_message.osprey },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc:
      'Project addition (LANGUAGE.md §14.1): registers a handler for received text messages; it ' +
      'replaces the default echo.',
  },
  {
    symbol: 'osp_ws_server_send',
    params: [
      { name: 'server_id', type: 'int64' },
      { name: 'connection_id', type: 'int64' },
      { name: 'message', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketServerSend',
      params: [
        { name: 'serverID', type: T.Int },
        { name: 'connectionID', type: T.Int },
        { name: 'message', type: T.String },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc: 'Project addition (LANGUAGE.md §14.1): sends a text message to one connection of a server.',
  },
];

export function runtimeFunction(symbol: string): RuntimeFunction {
  const f = RUNTIME_FUNCTIONS.find((x) => x.symbol === symbol);
  if (!f) throw new Error(`runtime-bindings: no runtime function '${symbol}'`);
  return f;
}

export function ospreyBuiltin(name: string): RuntimeFunction | undefined {
  return RUNTIME_FUNCTIONS.find((x) => x.osprey?.name === name);
}
