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
 * attribute. Larger structs need `sret`, which llvm-bindings cannot set (compiler/src/codegen/llvm.ts), so
 * every payload is carried in one 64-bit word: Int as itself, Bool as 0/1, Unit as 0, and
 * String or any heap value as a pointer.
 */

/** Bumped on any change a separately built runtime library would notice. */
export const ABI_VERSION = 10;

/**
 * How a String crosses the ABI (ABI 8). A String is ONE pointer, to the first byte of a block
 * laid out as `[int64 length][length bytes][NUL]`: the byte count sits in the 8 bytes before the
 * pointer and a NUL follows the bytes. A String may hold any bytes, NUL included; its length is
 * the header, never strlen. Every `cstring` parameter or return of a runtime function, a handler
 * argument and a Result's String payload (an Err message too) is such a String; the blocks are
 * garbage-collected (C code builds them with osp_gc_strndup) or constant (compiled literals are
 * globals `{ i64 len, [len+1 x i8] }`, the runtime's own `OSP_STATIC_STRING`).
 *
 * Why a header before the pointer rather than a pointer + length pair: the value stays one word,
 * so every signature keeps its shape (no struct by value across the C/LLVM boundary, where
 * llvm-bindings cannot set the attributes a larger aggregate would need), a String still fits a
 * Result payload, a list cell or a closure slot, the length is O(1), Boehm recognises the
 * interior pointer, and the trailing NUL lets a path or an address go to a C API unchanged (a
 * String holding a NUL byte is refused there with an Err naming the problem).
 * Why 8 bytes rather than 4: Boehm allocates in 16-byte granules, so a 4-byte header would save
 * memory only for strings of 4 to 7 bytes, and an 8-byte header keeps the bytes 8-aligned
 * (docs/BENCHMARKS-LANG.md has the before/after memory figures).
 */
export const STRING_LAYOUT = {
  headerBytes: 8,
  lengthType: 'int64',
  terminator: 'NUL after the last byte (not counted in the length)',
} as const;

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
        'Error: a String (STRING_LAYOUT: length header, bytes, NUL) holding the message, owned by the garbage collector.',
    },
  ],
} as const;

export const RESULT_TAGS = {
  Success: 0,
  Error: 1,
} as const;

/** Kinds of select arms in the word triples `[kind, channel, value]` osp_select reads
 *  (docs/guide/16-fibers-and-channels.md): a `recv(c)` arm, a `send(c, v)` arm, or any other (always ready) arm. */
export const SELECT_ARM_KINDS = {
  Recv: 0,
  Send: 1,
  Always: 2,
} as const;

/** Types as Osprey programs see them (only what the runtime's signatures need). */
export type OspreyType =
  | { kind: 'Int' }
  | { kind: 'String' }
  | { kind: 'Bool' }
  | { kind: 'Unit' }
  | { kind: 'Result'; ok: OspreyType; err: OspreyType }
  | { kind: 'Fn'; params: OspreyType[]; ret: OspreyType }
  /** A built-in declared type (docs/guide/17-http.md), passed as a pointer to its GC block of words
   *  `[tag, field…]` (fields in declaration order; Bool as 0/1). */
  | { kind: 'Adt'; name: 'HttpResponse' | 'HttpMethod' | 'WebSocketMessage' };

export const T = {
  Int: { kind: 'Int' } as OspreyType,
  String: { kind: 'String' } as OspreyType,
  Bool: { kind: 'Bool' } as OspreyType,
  Unit: { kind: 'Unit' } as OspreyType,
  Result: (ok: OspreyType, err: OspreyType): OspreyType => ({ kind: 'Result', ok, err }),
  Fn: (params: OspreyType[], ret: OspreyType): OspreyType => ({ kind: 'Fn', params, ret }),
  HttpResponse: { kind: 'Adt', name: 'HttpResponse' } as OspreyType,
  HttpMethod: { kind: 'Adt', name: 'HttpMethod' } as OspreyType,
  /** `{ type: String, data: String, timestamp: Int }` (docs/guide/15-websockets.md): a GC block of
   *  words `[0, type, data, timestamp]`; type is "text" or "binary", timestamp the milliseconds
   *  since the epoch (CLOCK_REALTIME) when the I/O thread received it. */
  WebSocketMessage: { kind: 'Adt', name: 'WebSocketMessage' } as OspreyType,
};

/**
 * C-level value types. Each maps to exactly one C spelling and one LLVM (typed-pointer, LLVM 14)
 * spelling. `handler:*` names a function-pointer typedef from HANDLERS.
 */
export type CType =
  | 'void'
  | 'int64'
  | 'int32'
  /** An Osprey String (STRING_LAYOUT): `const char *` to its bytes, length in the header. */
  | 'cstring'
  | 'ptr'
  | 'result'
  | `handler:${HandlerName}`;

export type HandlerName =
  | 'message'
  | 'server_message'
  | 'ws_message'
  | 'ws_open'
  | 'ws_server_close'
  | 'ws_close'
  | 'process_event'
  | 'fiber_body'
  | 'http_request';

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
    doc: 'Text message handler: called once per received text message, in order (binary messages are not passed to it).',
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
    doc: 'Text message handler with the connection id: called with the id and each received text message, in order.',
  },
  ws_message: {
    cTypedef: 'osp_ws_message_handler_fn',
    params: [
      { name: 'env', type: 'ptr' },
      { name: 'connection_id', type: 'int64' },
      { name: 'message', type: 'ptr' },
    ],
    returns: 'result',
    osprey: T.Fn([T.Int, T.WebSocketMessage], T.Result(T.Unit, T.String)),
    doc:
      'Message handler for every data message, text and binary: called with the connection id and a ' +
      'WebSocketMessage record (words [0, type, data, timestamp]; type "text" or "binary").',
  },
  ws_open: {
    cTypedef: 'osp_ws_open_handler_fn',
    params: [
      { name: 'env', type: 'ptr' },
      { name: 'connection_id', type: 'int64' },
    ],
    returns: 'result',
    osprey: T.Fn([T.Int], T.Result(T.Unit, T.String)),
    doc: 'Open event handler: called once per accepted connection, before any of its messages.',
  },
  ws_server_close: {
    cTypedef: 'osp_ws_server_close_handler_fn',
    params: [
      { name: 'env', type: 'ptr' },
      { name: 'connection_id', type: 'int64' },
      { name: 'code', type: 'int64' },
      { name: 'reason', type: 'cstring' },
    ],
    returns: 'result',
    osprey: T.Fn([T.Int, T.Int, T.String], T.Result(T.Unit, T.String)),
    doc:
      'Server close event handler: called once per connection that had its open event, after its last ' +
      'message, with the close code (1006 when the TCP connection dropped without a Close frame) and reason.',
  },
  ws_close: {
    cTypedef: 'osp_ws_close_handler_fn',
    params: [
      { name: 'env', type: 'ptr' },
      { name: 'code', type: 'int64' },
      { name: 'reason', type: 'cstring' },
    ],
    returns: 'result',
    osprey: T.Fn([T.Int, T.String], T.Result(T.Unit, T.String)),
    doc:
      'Client close event handler: called once when the connection ends, after its last message, with the ' +
      'close code (1006 when the TCP connection dropped without a Close frame) and reason.',
  },
  process_event: {
    cTypedef: 'osp_process_event_handler_fn',
    params: [
      { name: 'env', type: 'ptr' },
      { name: 'process_id', type: 'int64' },
      { name: 'event_type', type: 'int64' },
      { name: 'data', type: 'cstring' },
    ],
    returns: 'int64',
    osprey: T.Fn([T.Int, T.Int, T.String], T.Unit),
    doc:
      'Process event callback (docs/guide/14-builtins.md#processes): event 1 a chunk of stdout, 2 a chunk of stderr, ' +
      '3 the exit (data is the exit code in decimal; always last). Runs inside awaitProcess or ' +
      'cleanupProcess, before it returns (on the calling thread, or for a fiber on the helper thread ' +
      'making the call for it), or at exit; never on a runtime thread. Returns Unit (0).',
  },
  http_request: {
    cTypedef: 'osp_http_handler_fn',
    params: [
      { name: 'env', type: 'ptr' },
      { name: 'method', type: 'cstring' },
      { name: 'path', type: 'cstring' },
      { name: 'headers', type: 'cstring' },
      { name: 'body', type: 'cstring' },
    ],
    returns: 'ptr',
    osprey: T.Fn([T.String, T.String, T.String, T.String], T.HttpResponse),
    doc:
      'HTTP request handler (docs/guide/17-http.md): method in upper case, path with its query string, the raw ' +
      'header block (CRLF-terminated lines) and the body; returns an HttpResponse record. Runs on a fiber, never on the I/O thread.',
  },
  fiber_body: {
    cTypedef: 'osp_fiber_body_fn',
    params: [{ name: 'env', type: 'ptr' }],
    returns: 'int64',
    osprey: T.Fn([], T.Int),
    doc:
      'A fiber computation (docs/guide/16-fibers-and-channels.md): the compiled `spawn e` / `Fiber { computation }` closure, ' +
      'returning its value as one word (a Bool as 0/1; a two-word value boxed by the compiler).',
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
  /** Which --no-* capability removes it (docs/guide/18-security-flags.md). */
  capability?: 'websocket' | 'http' | 'fs' | 'process' | 'sandbox';
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
      'Called first by the generated main(): checks the ABI version, starts the garbage collector, ' +
      'sets stdout to line buffering and raises the stack soft limit to 1 GiB where allowed (deep ' +
      'recursion). Aborts with a message if the library was built for another ABI.',
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
    doc:
      'A run-time failure (e.g. division by zero): prints `Error: MESSAGE at LOCATION` on stderr, exits 1. ' +
      'Both are read as NUL-terminated text only (never their length), so compiled code passes plain C text, not Strings.',
  },
  // ---- memory and strings -----------------------------------------------------------------
  {
    symbol: 'osp_rt_run_main',
    params: [
      { name: 'body', type: 'handler:fiber_body' },
      { name: 'env', type: 'ptr' },
    ],
    returns: 'int64',
    doc:
      'Called by the generated main() after osp_rt_init: starts the fiber scheduler (one worker thread ' +
      'per core, OSPREY_THREADS to override) and runs the program (top-level statements, then `main`) as ' +
      'the main fiber on a 1 GiB reserved stack. Returns its exit status when the main fiber ends on ' +
      'the calling thread; when it ends on another worker that worker shuts the process down itself.',
  },
  // ---- fibers and channels: docs/guide/16-fibers-and-channels.md ------------------------------------------------
  {
    symbol: 'osp_fiber_spawn',
    params: [
      { name: 'body', type: 'handler:fiber_body' },
      { name: 'env', type: 'ptr' },
    ],
    returns: 'ptr',
    doc:
      '`spawn e` / `Fiber<T> { computation }`: a new runnable fiber (its stack is allocated when it first ' +
      'runs). The handle\'s first word is its number, shared with channels (1, 2, 3, …).',
  },
  {
    symbol: 'osp_sched_submit',
    params: [
      { name: 'body', type: 'handler:fiber_body' },
      { name: 'env', type: 'ptr' },
    ],
    returns: 'ptr',
    doc:
      'Like osp_fiber_spawn, callable from any thread (a runtime I/O thread handing work to the ' +
      'scheduler): the closure runs as a new fiber on a worker.',
  },
  {
    symbol: 'osp_sched_hold_external',
    params: [{ name: 'delta', type: 'int64' }],
    returns: 'void',
    doc:
      '+1 while an outside source (a runtime thread) may wake fibers, -1 when it stops: while any ' +
      'hold is taken, fibers that all wait are not reported as a deadlock.',
  },
  {
    symbol: 'osp_fiber_await',
    params: [{ name: 'fiber', type: 'ptr' }],
    returns: 'int64',
    doc: '`await(f)`: parks the caller until the fiber ends and returns its value word (again on every later await).',
  },
  {
    symbol: 'osp_fiber_yield',
    params: [],
    returns: 'void',
    doc: '`yield`: lets every runnable fiber run before the caller continues.',
  },
  {
    symbol: 'osp_channel_new',
    params: [
      { name: 'capacity', type: 'int64' },
      { name: 'location', type: 'cstring' },
    ],
    returns: 'ptr',
    doc:
      '`Channel<T> { capacity: n }`: a FIFO channel of words; 0 is a rendezvous. A negative capacity is a ' +
      'run-time failure reported at `location`. The first word is the handle number.',
  },
  {
    symbol: 'osp_channel_send',
    params: [
      { name: 'channel', type: 'ptr' },
      { name: 'value', type: 'int64' },
    ],
    returns: 'result',
    doc: '`send(c, v)`: parks the caller while the channel is full (for capacity 0, until a receiver takes v).',
  },
  {
    symbol: 'osp_channel_recv',
    params: [{ name: 'channel', type: 'ptr' }],
    returns: 'result',
    doc: '`recv(c)`: parks the caller while the channel is empty; Success carries the value word.',
  },
  {
    symbol: 'osp_select',
    params: [
      { name: 'arms', type: 'ptr' },
      { name: 'count', type: 'int64' },
      { name: 'has_default', type: 'int64' },
    ],
    returns: 'result',
    doc:
      '`select`: `arms` holds `count` triples [kind, channel, value] (OSP_SELECT_*). Takes the first ready ' +
      'arm in order; with none ready returns -1 when there is a default arm, else parks until one is. ' +
      'The tag is the arm index (or -1), the value the word received by a recv arm.',
  },
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
    symbol: 'osp_string_build',
    params: [
      { name: 'count', type: 'int64' },
      { name: 'int_mask', type: 'int64' },
      { name: 'part0', type: 'int64' },
      { name: 'part1', type: 'int64' },
      { name: 'part2', type: 'int64' },
      { name: 'part3', type: 'int64' },
    ],
    returns: 'cstring',
    doc:
      'A new garbage-collected string: the first `count` (1-4) parts in order, each the decimal text of an Int when its bit in int_mask is set, else a string pointer. A chain of `+` or an interpolation costs one allocation per four parts.',
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
    symbol: 'osp_string_from_c',
    params: [{ name: 'text', type: 'ptr' }],
    returns: 'cstring',
    doc:
      'A String copy of a NUL-terminated C string (what an `extern fn` declared to return String ' +
      'gives back; docs/guide/05-functions.md#calling-c-extern-fn): the bytes up to the first NUL. NULL gives the empty String.',
  },
  {
    symbol: 'osp_print',
    params: [{ name: 'text', type: 'cstring' }],
    returns: 'void',
    doc: 'Writes the text and a line feed to standard output (one process-wide stream).',
  },
  {
    symbol: 'osp_args',
    params: [],
    returns: 'ptr',
    doc:
      'The command-line arguments after the program name (`osprey run FILE -- ARGS...`), as the ' +
      'value of the `args()` built-in, a List<String>: a garbage-collected block of 64-bit words ' +
      '[length, string 0, string 1, ...].',
  },
  {
    symbol: 'osp_sleep',
    params: [{ name: 'milliseconds', type: 'int64' }],
    returns: 'void',
    doc:
      'Pauses the calling fiber (its worker runs other fibers meanwhile; on a runtime thread, the thread); ' +
      'negative values count as 0.',
  },
  // ---- strings and input: docs/guide/14-builtins.md#input and docs/guide/12-strings-and-display.md#string-functions (byte semantics) -----------------------
  {
    symbol: 'osp_input',
    params: [],
    returns: 'int64',
    osprey: { name: 'input', params: [], returns: T.Int },
    doc:
      'Reads an integer from standard input like scanf("%ld"): skips white space, an optional sign ' +
      'and digits; the first non-digit stays unread. End of input or no digits gives 0. ' +
      'Called from a fiber, the fiber parks and the call runs on a helper thread (its worker runs other fibers).',
  },
  {
    symbol: 'osp_string_length',
    params: [{ name: 's', type: 'cstring' }],
    returns: 'result',
    osprey: { name: 'length', params: [{ name: 's', type: T.String }], returns: T.Result(T.Int, T.String) },
    doc: 'Success with the number of bytes of the string (never fails for a valid string).',
  },
  {
    symbol: 'osp_string_contains',
    params: [
      { name: 'haystack', type: 'cstring' },
      { name: 'needle', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'contains',
      params: [
        { name: 'haystack', type: T.String },
        { name: 'needle', type: T.String },
      ],
      returns: T.Result(T.Bool, T.String),
    },
    doc: 'Success with 1 when needle occurs in haystack as a byte substring (the empty needle always does), else 0.',
  },
  {
    symbol: 'osp_string_substring',
    params: [
      { name: 's', type: 'cstring' },
      { name: 'start', type: 'int64' },
      { name: 'end', type: 'int64' },
    ],
    returns: 'result',
    osprey: {
      name: 'substring',
      params: [
        { name: 's', type: T.String },
        { name: 'start', type: T.Int },
        { name: 'end', type: T.Int },
      ],
      returns: T.Result(T.String, T.String),
    },
    doc:
      'Bytes start … end-1 after clamping both into [0, length]; Error `invalid substring range` ' +
      'when start > end after clamping.',
  },
  // ---- files: docs/guide/14-builtins.md#files --------------------------------------------------------------
  {
    symbol: 'osp_file_write',
    params: [
      { name: 'path', type: 'cstring' },
      { name: 'content', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'writeFile',
      params: [
        { name: 'path', type: T.String },
        { name: 'content', type: T.String },
      ],
      returns: T.Result(T.Unit, T.String),
      capability: 'fs',
    },
    doc:
      'Creates or truncates the file and writes exactly the bytes of content. Error ' +
      "`writeFile: cannot open 'PATH' for writing: REASON` (or cannot write / finish writing).",
  },
  {
    symbol: 'osp_file_read',
    params: [{ name: 'path', type: 'cstring' }],
    returns: 'result',
    osprey: { name: 'readFile', params: [{ name: 'path', type: T.String }], returns: T.Result(T.String, T.String), capability: 'fs' },
    doc: "The whole file as a string. Error `readFile: cannot open 'PATH': REASON` (or cannot read).",
  },
  {
    symbol: 'osp_file_delete',
    params: [{ name: 'path', type: 'cstring' }],
    returns: 'result',
    osprey: { name: 'deleteFile', params: [{ name: 'path', type: T.String }], returns: T.Result(T.Unit, T.String), capability: 'fs' },
    doc: "Removes a file. Error `deleteFile: cannot delete 'PATH': REASON` or `deleteFile: 'PATH' is a directory, not a file`.",
  },
  {
    symbol: 'osp_directory_create',
    params: [{ name: 'path', type: 'cstring' }],
    returns: 'result',
    osprey: { name: 'createDirectory', params: [{ name: 'path', type: T.String }], returns: T.Result(T.Unit, T.String), capability: 'fs' },
    doc: "Creates one directory. Error `createDirectory: 'PATH' already exists` or `createDirectory: cannot create 'PATH': REASON`.",
  },
  {
    symbol: 'osp_file_exists',
    params: [{ name: 'path', type: 'cstring' }],
    returns: 'int64',
    osprey: { name: 'fileExists', params: [{ name: 'path', type: T.String }], returns: T.Bool, capability: 'sandbox' },
    doc: '1 when a file or directory exists at the path, else 0. Removed by --sandbox only (docs/guide/18-security-flags.md).',
  },
  // ---- processes: docs/guide/14-builtins.md#processes ------------------------------------------------------
  {
    symbol: 'osp_process_spawn',
    params: [
      { name: 'command', type: 'cstring' },
      { name: 'handler', type: 'handler:process_event' },
      { name: 'handler_env', type: 'ptr' },
    ],
    returns: 'result',
    osprey: {
      name: 'spawnProcess',
      params: [
        { name: 'command', type: T.String },
        { name: 'callback', type: HANDLERS.process_event.osprey },
      ],
      returns: T.Result(T.Int, T.String),
      capability: 'process',
    },
    doc:
      'Runs `/bin/sh -c command` with stdout and stderr captured (stdin inherited) and returns its ' +
      'process id (1, 2, 3, …). No thread is started: events wait in the pipes until awaitProcess. ' +
      "Error `spawnProcess: cannot start '/bin/sh -c COMMAND': REASON` (or cannot create a pipe).",
  },
  {
    symbol: 'osp_process_await',
    params: [{ name: 'process_id', type: 'int64' }],
    returns: 'int64',
    osprey: { name: 'awaitProcess', params: [{ name: 'processId', type: T.Int }], returns: T.Int, capability: 'process' },
    doc:
      'On the calling thread: runs the callback for every output chunk in arrival order, reaps the ' +
      'child, runs the exit event and returns the exit code (-1 if killed by a signal, -1 for an ' +
      'unknown id). Awaiting again returns the same code without events. ' +
      'Called from a fiber, the fiber parks and the call runs on a helper thread (its worker runs other fibers).',
  },
  {
    symbol: 'osp_process_cleanup',
    params: [{ name: 'process_id', type: 'int64' }],
    returns: 'void',
    osprey: { name: 'cleanupProcess', params: [{ name: 'processId', type: T.Int }], returns: T.Unit, capability: 'process' },
    doc:
      'Delivers the events of a process never awaited (as awaitProcess would), then releases its ' +
      'callback. Unknown ids and repeated calls do nothing. Processes never cleaned up are finished at exit. ' +
      'Called from a fiber, the fiber parks and the call runs on a helper thread (its worker runs other fibers).',
  },
  // ---- HTTP: docs/guide/17-http.md---------------------------------------------------------
  {
    symbol: 'osp_http_create_server',
    params: [
      { name: 'port', type: 'int64' },
      { name: 'address', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'httpCreateServer',
      params: [
        { name: 'port', type: T.Int },
        { name: 'address', type: T.String },
      ],
      returns: wsResultInt,
      capability: 'http',
    },
    doc: 'Creates an HTTP/1.1 server for address:port (no socket yet) and returns its id.',
  },
  {
    symbol: 'osp_http_listen',
    params: [
      { name: 'server_id', type: 'int64' },
      { name: 'handler', type: 'handler:http_request' },
      { name: 'handler_env', type: 'ptr' },
    ],
    returns: 'result',
    osprey: {
      name: 'httpListen',
      params: [
        { name: 'serverID', type: T.Int },
        { name: 'handler', type: HANDLERS.http_request.osprey },
      ],
      returns: wsResultUnit,
      capability: 'http',
    },
    doc:
      'Binds and listens, then returns at once; every request is read on the runtime thread and its ' +
      'handler runs as a new fiber. Keep-alive, pipelining in order, Content-Length and chunked bodies.',
  },
  {
    symbol: 'osp_http_stop_server',
    params: [{ name: 'server_id', type: 'int64' }],
    returns: 'result',
    osprey: {
      name: 'httpStopServer',
      params: [{ name: 'serverID', type: T.Int }],
      returns: wsResultUnit,
      capability: 'http',
    },
    doc: 'Closes the listening socket and every connection of the server.',
  },
  {
    symbol: 'osp_http_server_set_limit',
    params: [
      { name: 'server_id', type: 'int64' },
      { name: 'name', type: 'cstring' },
      { name: 'value', type: 'int64' },
    ],
    returns: 'result',
    osprey: {
      name: 'httpServerSetLimit',
      params: [
        { name: 'serverID', type: T.Int },
        { name: 'name', type: T.String },
        { name: 'value', type: T.Int },
      ],
      returns: wsResultUnit,
      capability: 'http',
    },
    doc:
      'Project addition: sets one limit of a server before httpListen. Names: maxRequestLineBytes (8192, 414), ' +
      'maxHeaderBytes (16384, 431), maxHeaders (100, 431), maxBodyBytes (1048576, 413), headerTimeoutMs (10000, 408), ' +
      'bodyTimeoutMs (30000, 408), idleTimeoutMs (60000), maxConnections (10000, 503).',
  },
  {
    symbol: 'osp_http_server_websocket',
    params: [
      { name: 'server_id', type: 'int64' },
      { name: 'path', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'httpServerWebSocket',
      params: [
        { name: 'serverID', type: T.Int },
        { name: 'path', type: T.String },
      ],
      returns: wsResultInt,
      capability: 'http',
    },
    doc:
      'Project addition: WebSocket upgrade requests for `path` on this HTTP server\'s port go to a new ' +
      'WebSocket server, whose id works with every websocketServer… function (handlers, send, broadcast, ' +
      'stop; limits and policies before the first connection). Everything else on the port stays HTTP.',
  },
  {
    symbol: 'osp_http_create_client',
    params: [
      { name: 'base_url', type: 'cstring' },
      { name: 'timeout', type: 'int64' },
    ],
    returns: 'result',
    osprey: {
      name: 'httpCreateClient',
      params: [
        { name: 'baseUrl', type: T.String },
        { name: 'timeout', type: T.Int },
      ],
      returns: wsResultInt,
      capability: 'http',
    },
    doc:
      'A client for an http:// or https:// base URL; `timeout` (milliseconds, 0 = 30000) bounds each whole ' +
      'request. https verifies the certificate and host name like wss://.',
  },
  {
    symbol: 'osp_http_get',
    params: [
      { name: 'client_id', type: 'int64' },
      { name: 'path', type: 'cstring' },
      { name: 'headers', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'httpGet',
      params: [
        { name: 'clientID', type: T.Int },
        { name: 'path', type: T.String },
        { name: 'headers', type: T.String },
      ],
      returns: T.Result(T.HttpResponse, T.String),
      capability: 'http',
    },
    doc: 'GET baseUrl+path; the response (redirects are not followed) or an Error.',
  },
  {
    symbol: 'osp_http_post',
    params: [
      { name: 'client_id', type: 'int64' },
      { name: 'path', type: 'cstring' },
      { name: 'body', type: 'cstring' },
      { name: 'headers', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'httpPost',
      params: [
        { name: 'clientID', type: T.Int },
        { name: 'path', type: T.String },
        { name: 'body', type: T.String },
        { name: 'headers', type: T.String },
      ],
      returns: T.Result(T.HttpResponse, T.String),
      capability: 'http',
    },
    doc: 'POST with a Content-Length body.',
  },
  {
    symbol: 'osp_http_put',
    params: [
      { name: 'client_id', type: 'int64' },
      { name: 'path', type: 'cstring' },
      { name: 'body', type: 'cstring' },
      { name: 'headers', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'httpPut',
      params: [
        { name: 'clientID', type: T.Int },
        { name: 'path', type: T.String },
        { name: 'body', type: T.String },
        { name: 'headers', type: T.String },
      ],
      returns: T.Result(T.HttpResponse, T.String),
      capability: 'http',
    },
    doc: 'PUT with a Content-Length body.',
  },
  {
    symbol: 'osp_http_delete',
    params: [
      { name: 'client_id', type: 'int64' },
      { name: 'path', type: 'cstring' },
      { name: 'headers', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'httpDelete',
      params: [
        { name: 'clientID', type: T.Int },
        { name: 'path', type: T.String },
        { name: 'headers', type: T.String },
      ],
      returns: T.Result(T.HttpResponse, T.String),
      capability: 'http',
    },
    doc: 'DELETE baseUrl+path.',
  },
  {
    symbol: 'osp_http_request',
    params: [
      { name: 'client_id', type: 'int64' },
      { name: 'method', type: 'ptr' },
      { name: 'path', type: 'cstring' },
      { name: 'headers', type: 'cstring' },
      { name: 'body', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'httpRequest',
      params: [
        { name: 'clientID', type: T.Int },
        { name: 'method', type: T.HttpMethod },
        { name: 'path', type: T.String },
        { name: 'headers', type: T.String },
        { name: 'body', type: T.String },
      ],
      returns: T.Result(T.HttpResponse, T.String),
      capability: 'http',
    },
    doc: 'Any HttpMethod; note the order (headers, body), unlike httpPost (docs/guide/17-http.md).',
  },
  {
    symbol: 'osp_http_close_client',
    params: [{ name: 'client_id', type: 'int64' }],
    returns: 'result',
    osprey: {
      name: 'httpCloseClient',
      params: [{ name: 'clientID', type: T.Int }],
      returns: wsResultUnit,
      capability: 'http',
    },
    doc: 'Marks the client closed; later calls with its id are an Error.',
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
      'Every received text message is passed to the handler in a fiber on the scheduler (never on the ' +
      'WebSocket I/O thread), one at a time and in order. ' +
      'Called from a fiber, the fiber parks and the call runs on a helper thread (its worker runs other fibers).',
  },
  {
    symbol: 'osp_ws_connect_with_id',
    params: [
      { name: 'url', type: 'cstring' },
      { name: 'handler', type: 'handler:server_message' },
      { name: 'handler_env', type: 'ptr' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketConnect',
      params: [
        { name: 'url', type: T.String },
        { name: 'messageHandler', type: HANDLERS.server_message.osprey },
      ],
      returns: wsResultInt,
      capability: 'websocket',
    },
    doc:
      'websocketConnect with a handler of type ' + 'fn(Int, String): the connection id and each text message' + ' (the compiler picks this symbol by the ' +
      'handler\'s type); otherwise as osp_ws_connect.',
  },
  {
    symbol: 'osp_ws_connect_messages',
    params: [
      { name: 'url', type: 'cstring' },
      { name: 'handler', type: 'handler:ws_message' },
      { name: 'handler_env', type: 'ptr' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketConnect',
      params: [
        { name: 'url', type: T.String },
        { name: 'messageHandler', type: HANDLERS.ws_message.osprey },
      ],
      returns: wsResultInt,
      capability: 'websocket',
    },
    doc:
      'websocketConnect with a handler of type ' + 'fn(Int, WebSocketMessage): the connection id and every text and binary message' + ' (the compiler picks this symbol by the ' +
      'handler\'s type); otherwise as osp_ws_connect.',
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
    symbol: 'osp_ws_send_binary',
    params: [
      { name: 'ws_id', type: 'int64' },
      { name: 'data', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketSendBinary',
      params: [
        { name: 'wsID', type: T.Int },
        { name: 'data', type: T.String },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc: 'Project addition (docs/guide/15-websockets.md): sends one masked binary message (any bytes) on a client connection.',
  },
  {
    symbol: 'osp_ws_on_close',
    params: [
      { name: 'ws_id', type: 'int64' },
      { name: 'handler', type: 'handler:ws_close' },
      { name: 'handler_env', type: 'ptr' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketOnClose',
      params: [
        { name: 'wsID', type: T.Int },
        { name: 'handler', type: HANDLERS.ws_close.osprey },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc:
      'Project addition (docs/guide/15-websockets.md): registers the handler called once when the client ' +
      'connection ends (close code and reason; 1006 when the TCP connection dropped without a Close frame), ' +
      'after its last message, in a fiber like the message handler. An Err when the connection already ended.',
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
      'handler can no longer be called. Called from a fiber, the fiber parks and the call runs on a helper thread (its worker runs other fibers).',
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
      'bound again at once. Called from a fiber, the fiber parks and the call runs on a helper thread (its worker runs other fibers).',
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
      'Project addition (docs/guide/15-websockets.md): registers a handler for received text messages; it ' +
      'replaces the default echo. The handler runs in a fiber on the scheduler (never on the WebSocket ' +
      'I/O thread): per connection one message at a time, in order; different connections in parallel.',
  },
  {
    symbol: 'osp_ws_server_on_text',
    params: [
      { name: 'server_id', type: 'int64' },
      { name: 'handler', type: 'handler:message' },
      { name: 'handler_env', type: 'ptr' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketServerOnMessage',
      params: [
        { name: 'serverID', type: T.Int },
        { name: 'handler', type: HANDLERS.message.osprey },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc:
      'websocketServerOnMessage with a handler of type ' + 'fn(String): each text message' + ' (the compiler picks this symbol by ' +
      'the handler\'s type); otherwise as osp_ws_server_on_message.',
  },
  {
    symbol: 'osp_ws_server_on_messages',
    params: [
      { name: 'server_id', type: 'int64' },
      { name: 'handler', type: 'handler:ws_message' },
      { name: 'handler_env', type: 'ptr' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketServerOnMessage',
      params: [
        { name: 'serverID', type: T.Int },
        { name: 'handler', type: HANDLERS.ws_message.osprey },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc:
      'websocketServerOnMessage with a handler of type ' + 'fn(Int, WebSocketMessage): the connection id and every text and binary message' + ' (the compiler picks this symbol by ' +
      'the handler\'s type); otherwise as osp_ws_server_on_message.',
  },
  {
    symbol: 'osp_ws_server_on_open',
    params: [
      { name: 'server_id', type: 'int64' },
      { name: 'handler', type: 'handler:ws_open' },
      { name: 'handler_env', type: 'ptr' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketServerOnOpen',
      params: [
        { name: 'serverID', type: T.Int },
        { name: 'handler', type: HANDLERS.ws_open.osprey },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc:
      'Project addition (docs/guide/15-websockets.md): registers the handler called with the id of every ' +
      'connection the server accepts, before any of its messages, in the connection\'s handler fiber. Before ' +
      'websocketServerListen: every connection then gets exactly one open and one close event, in that order.',
  },
  {
    symbol: 'osp_ws_server_on_close',
    params: [
      { name: 'server_id', type: 'int64' },
      { name: 'handler', type: 'handler:ws_server_close' },
      { name: 'handler_env', type: 'ptr' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketServerOnClose',
      params: [
        { name: 'serverID', type: T.Int },
        { name: 'handler', type: HANDLERS.ws_server_close.osprey },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc:
      'Project addition (docs/guide/15-websockets.md): registers the handler called once per connection when it ' +
      'ends (connection id, close code, reason; 1006 when the TCP connection dropped without a Close frame), after ' +
      'its last message. Before websocketServerListen.',
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
    doc: 'Project addition (docs/guide/15-websockets.md): sends a text message to one connection of a server.',
  },
  {
    symbol: 'osp_ws_server_use_cluster',
    params: [
      { name: 'server_id', type: 'int64' },
      { name: 'redis_url', type: 'cstring' },
      { name: 'channel', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketServerUseCluster',
      params: [
        { name: 'serverID', type: T.Int },
        { name: 'redisUrl', type: T.String },
        { name: 'channelName', type: T.String },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc:
      'Project addition (docs/CLUSTER.md): joins the server, before it listens, to every server on the same Redis ' +
      '(redis://[user:password@]host:port/db or rediss://) and channel: its broadcasts reach their connections too, ' +
      'websocketServerSend reaches their connections (ids carry the node id), and theirs reach it. Returns once ' +
      'connected and subscribed; Err naming the address when Redis cannot be reached.',
  },
  {
    symbol: 'osp_ws_server_cluster_status',
    params: [{ name: 'server_id', type: 'int64' }],
    returns: 'result',
    osprey: {
      name: 'websocketServerClusterStatus',
      params: [{ name: 'serverID', type: T.Int }],
      returns: T.Result(T.String, T.String),
      capability: 'websocket',
    },
    doc:
      'Project addition (docs/CLUSTER.md): one line on the server\'s cluster link, starting with "up:" or ' +
      '"reconnecting:", then the node id, Redis address, counters and the backlog waiting for the bus.',
  },
  {
    symbol: 'osp_ws_server_send_binary',
    params: [
      { name: 'server_id', type: 'int64' },
      { name: 'connection_id', type: 'int64' },
      { name: 'data', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketServerSendBinary',
      params: [
        { name: 'serverID', type: T.Int },
        { name: 'connectionID', type: T.Int },
        { name: 'data', type: T.String },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc: 'Project addition (docs/guide/15-websockets.md): sends a binary message (any bytes) to one connection of a server.',
  },
  {
    symbol: 'osp_ws_server_broadcast_binary',
    params: [
      { name: 'server_id', type: 'int64' },
      { name: 'data', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketServerBroadcastBinary',
      params: [
        { name: 'serverID', type: T.Int },
        { name: 'data', type: T.String },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc: 'Project addition (docs/guide/15-websockets.md): queues a binary message to every open connection of the server.',
  },
  {
    symbol: 'osp_ws_create_secure_server',
    params: [
      { name: 'port', type: 'int64' },
      { name: 'address', type: 'cstring' },
      { name: 'path', type: 'cstring' },
      { name: 'cert_file', type: 'cstring' },
      { name: 'key_file', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketCreateSecureServer',
      params: [
        { name: 'port', type: T.Int },
        { name: 'address', type: T.String },
        { name: 'path', type: T.String },
        { name: 'certFile', type: T.String },
        { name: 'keyFile', type: T.String },
      ],
      returns: wsResultInt,
      capability: 'websocket',
    },
    doc:
      'Project addition (docs/WEBSOCKET-OPTIONS.md): like websocketCreateServer, but every connection ' +
      'speaks TLS (wss://, TLS 1.2 or newer) with the PEM certificate chain and unencrypted PEM ' +
      'private key given. Error when a file cannot be read or parsed, or the key does not match the ' +
      'certificate.',
  },
  {
    symbol: 'osp_ws_set_trusted_ca',
    params: [{ name: 'path', type: 'cstring' }],
    returns: 'result',
    osprey: {
      name: 'websocketSetTrustedCA',
      params: [{ name: 'path', type: T.String }],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc:
      'Project addition (docs/WEBSOCKET-OPTIONS.md): trusts the CA certificates in a PEM file, in ' +
      'addition to the system trust store, for later wss:// connections (for tests and private ' +
      'deployments); "" removes it. Error when the file holds no loadable certificate.',
  },
  {
    symbol: 'osp_ws_server_set_limit',
    params: [
      { name: 'server_id', type: 'int64' },
      { name: 'name', type: 'cstring' },
      { name: 'value', type: 'int64' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketServerSetLimit',
      params: [
        { name: 'serverID', type: T.Int },
        { name: 'name', type: T.String },
        { name: 'value', type: T.Int },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc:
      'Project addition (docs/WEBSOCKET-OPTIONS.md): sets one limit of a server before ' +
      'websocketServerListen. Names: maxMessageBytes, maxFragments, maxRequestLineBytes, ' +
      'maxHeaderBytes, maxHeaders, handshakeTimeoutMs, closeTimeoutMs, idleTimeoutMs, ' +
      'messageTimeoutMs, maxOutputBytes, maxConnections, maxConnectionsPerIp, maxHandshakesPerIp, maxTlsHandshakeRatePerIp, ' +
      'wipeMessages. Error for an unknown name (listing the valid ones), a value ' +
      'out of range (stating the range), or a server already listening.',
  },
  {
    symbol: 'osp_ws_set_default_limit',
    params: [
      { name: 'name', type: 'cstring' },
      { name: 'value', type: 'int64' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketSetDefaultLimit',
      params: [
        { name: 'name', type: T.String },
        { name: 'value', type: T.Int },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc:
      'Project addition (docs/WEBSOCKET-OPTIONS.md): sets a process-wide default limit (same names ' +
      'and ranges as websocketServerSetLimit) for servers created and client connections opened ' +
      'afterwards; existing ones keep theirs. Outgoing messages are checked against the default ' +
      'maxMessageBytes.',
  },
  {
    symbol: 'osp_ws_server_allow_origin',
    params: [
      { name: 'server_id', type: 'int64' },
      { name: 'origin', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketServerAllowOrigin',
      params: [
        { name: 'serverID', type: T.Int },
        { name: 'origin', type: T.String },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc:
      'Project addition (docs/WEBSOCKET-OPTIONS.md): adds a serialized origin (scheme://host[:port], ' +
      'lower case) to the server allowlist, before websocketServerListen. With a non-empty list a ' +
      'handshake whose Origin is not byte-for-byte in it, or that has no Origin, is answered 403.',
  },
  {
    symbol: 'osp_ws_server_add_subprotocol',
    params: [
      { name: 'server_id', type: 'int64' },
      { name: 'protocol', type: 'cstring' },
    ],
    returns: 'result',
    osprey: {
      name: 'websocketServerAddSubprotocol',
      params: [
        { name: 'serverID', type: T.Int },
        { name: 'protocol', type: T.String },
      ],
      returns: wsResultUnit,
      capability: 'websocket',
    },
    doc:
      'Project addition (docs/WEBSOCKET-OPTIONS.md): adds a supported subprotocol (an HTTP token), ' +
      'before websocketServerListen. The first of the client offers that the server supports is ' +
      'echoed once in Sec-WebSocket-Protocol; with no common one the handshake succeeds without it.',
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
