/**
 * The scenario table of `osprey abi-check`: the only per-function knowledge of the harness.
 *
 * Everything else is derived from runtime-bindings/abi.ts: which checks apply (from the return
 * type and the parameter types), the argument list of every call (a parameter the table does not
 * name gets a default for its C type), and the handlers (generated from HANDLERS). This table only
 * says which real inputs drive a function down its success and error paths, and which values the
 * non-Result helpers must return.
 *
 * Values that need set-up (a server id, a connection id, a busy port) are *fixtures*: named values
 * that the probe generator materialises, in dependency order, from runtime calls (emitted exactly
 * like the probed call) and probe-support helpers.
 */
import { ABI_VERSION, type HandlerName } from '../../runtime-bindings/abi.ts';
import { integrityCasesFor, INTEGRITY_TARGETS, type IntegrityContent, type IntegrityTarget } from './integrity.ts';

/** An argument of a probed or set-up call. */
export type ArgValue =
  | { kind: 'int'; value: bigint }
  | { kind: 'string'; value: string }
  | { kind: 'fixture'; name: FixtureName }
  /** The generated recording handler of the parameter's handler type (its env gets the sentinel). */
  | { kind: 'handler' };

export const int = (value: number | bigint): ArgValue => ({ kind: 'int', value: BigInt(value) });
export const str = (value: string): ArgValue => ({ kind: 'string', value });
export const fx = (name: FixtureName): ArgValue => ({ kind: 'fixture', name });

export type FixtureName =
  | 'freePort'
  | 'busyPort'
  | 'closedPortUrl'
  | 'echoPushUrl'
  | 'serverId'
  | 'busyServerId'
  | 'listeningServerId'
  | 'connectionId'
  | 'clientId'
  | 'digestUrl'
  | 'digestClientId'
  | 'integrityUrl'
  | 'processId'
  | 'scratchFile'
  | 'scratchDirPath'
  | 'bufferedChannel'
  | 'selectArms'
  | 'finishedFiber';

/** One step of a fixture: a runtime call that must return Success, or probe-support C. */
export type FixtureStep =
  | { kind: 'call'; symbol: string; args: Record<string, ArgValue>; bindPayload?: boolean }
  | { kind: 'c'; code: string; failsWhen?: string; failure?: string };

export interface Fixture {
  doc: string;
  deps: FixtureName[];
  steps: FixtureStep[];
  /** C type and expression of the value once the steps ran (`fx_NAME` is the bound payload). */
  cType: 'int64_t' | 'const char *' | 'void *';
  value: string;
}

/** Identifiers no runtime ever hands out (the harness runs one probe per process). */
export const UNKNOWN_ID = 987654321n;

/** The path every probe server serves and every raw client asks for. */
export const PROBE_PATH = '/abi';

export const FIXTURES: Record<FixtureName, Fixture> = {
  bufferedChannel: {
    doc: 'a channel of capacity 2 holding one value (42)',
    deps: [],
    steps: [
      {
        kind: 'c',
        code: 'void *fx_channelHandle = osp_channel_new(2, "probe.osp:1:1");\nOspResult fx_channelSent = osp_channel_send(fx_channelHandle, 42);',
        failsWhen: 'fx_channelHandle == NULL || fx_channelSent.tag != OSP_RESULT_SUCCESS',
        failure: 'could not create a channel and send one value to it',
      },
    ],
    cType: 'void *',
    value: 'fx_channelHandle',
  },
  selectArms: {
    doc: 'one select arm: recv on the buffered channel',
    deps: ['bufferedChannel'],
    steps: [{ kind: 'c', code: 'int64_t fx_selectArmWords[3] = {OSP_SELECT_RECV, (int64_t)(intptr_t)fx_bufferedChannel, 0};' }],
    cType: 'void *',
    value: '(void *)fx_selectArmWords',
  },
  finishedFiber: {
    doc: "a fiber running the probe's recording fiber body (it returns 0)",
    deps: [],
    steps: [{ kind: 'c', code: 'void *fx_fiberHandle = osp_fiber_spawn(probe_handler_fiber_body, PROBE_ENV);' }],
    cType: 'void *',
    value: 'fx_fiberHandle',
  },
  freePort: {
    doc: 'a loopback port nobody listens on (bound to port 0 and released)',
    deps: [],
    steps: [],
    cType: 'int64_t',
    value: 'probe_free_port()',
  },
  busyPort: {
    doc: 'a loopback port the probe itself keeps listening on',
    deps: [],
    steps: [],
    cType: 'int64_t',
    value: 'probe_busy_port()',
  },
  closedPortUrl: {
    doc: 'ws://127.0.0.1:P/abi where nothing listens on P (connection refused)',
    deps: [],
    steps: [],
    cType: 'const char *',
    value: 'probe_closed_port_url()',
  },
  echoPushUrl: {
    doc: "the harness's Node `ws` server, which sends a text message every 10 ms and echoes",
    deps: [],
    steps: [],
    cType: 'const char *',
    value: 'probe_echo_url("/push")',
  },
  serverId: {
    doc: 'a server created on a free port',
    deps: ['freePort'],
    steps: [
      {
        kind: 'call',
        symbol: 'osp_ws_create_server',
        args: { port: fx('freePort'), address: str('127.0.0.1'), path: str(PROBE_PATH) },
        bindPayload: true,
      },
    ],
    cType: 'int64_t',
    value: 'fx_serverId',
  },
  busyServerId: {
    doc: 'a server created on a port the probe already listens on',
    deps: ['busyPort'],
    steps: [
      {
        kind: 'call',
        symbol: 'osp_ws_create_server',
        args: { port: fx('busyPort'), address: str('127.0.0.1'), path: str(PROBE_PATH) },
        bindPayload: true,
      },
    ],
    cType: 'int64_t',
    value: 'fx_busyServerId',
  },
  listeningServerId: {
    doc: 'a server listening on a free port',
    deps: ['serverId'],
    steps: [{ kind: 'call', symbol: 'osp_ws_server_listen', args: { server_id: fx('serverId') } }],
    cType: 'int64_t',
    value: 'fx_serverId',
  },
  connectionId: {
    doc: 'the id of a raw client connection, as the server handler reported it',
    deps: ['listeningServerId'],
    steps: [
      {
        kind: 'call',
        symbol: 'osp_ws_server_on_message',
        args: { server_id: fx('listeningServerId'), handler: { kind: 'handler' } },
      },
      {
        kind: 'c',
        code: 'int fx_rawFd = probe_raw_connect(fx_freePort, "/abi");',
        failsWhen: 'fx_rawFd < 0',
        failure: 'a raw client could not complete the opening handshake with the listening server',
      },
      {
        kind: 'c',
        code: 'probe_raw_send_text(fx_rawFd, "abi-probe:hello");',
        failsWhen: 'probe_handler_wait(1, 2000) < 1',
        failure: 'the server handler never reported the raw client\'s message within 2 s',
      },
    ],
    cType: 'int64_t',
    value: 'probe_handler_first_int()',
  },
  clientId: {
    doc: "a client connected to the harness's echo server",
    deps: ['echoPushUrl'],
    steps: [
      {
        kind: 'call',
        symbol: 'osp_ws_connect',
        args: { url: fx('echoPushUrl'), handler: { kind: 'handler' } },
        bindPayload: true,
      },
    ],
    cType: 'int64_t',
    value: 'fx_clientId',
  },
  digestUrl: {
    doc: "the harness's Node `ws` server at /digest/TOKEN, which records the length and SHA-256 of every message and reports them to a raw client",
    deps: [],
    steps: [],
    cType: 'const char *',
    value: 'probe_integrity_digest_url()',
  },
  digestClientId: {
    doc: "a client connected to the harness's /digest server",
    deps: ['digestUrl'],
    steps: [
      {
        kind: 'call',
        symbol: 'osp_ws_connect',
        args: { url: fx('digestUrl'), handler: { kind: 'handler' } },
        bindPayload: true,
      },
    ],
    cType: 'int64_t',
    value: 'fx_digestClientId',
  },
  integrityUrl: {
    doc: "the harness's Node `ws` server at /integrity, which sends every integrity message after announcing its length and SHA-256, then one over the limit",
    deps: [],
    steps: [],
    cType: 'const char *',
    value: 'probe_integrity_url(integrity_limit)',
  },
  processId: {
    doc: "a process spawned with `printf abi-probe:out; exit 3` whose events are not yet delivered",
    deps: [],
    steps: [
      { kind: 'c', code: 'probe_handler_expect("");' },
      {
        kind: 'call',
        symbol: 'osp_process_spawn',
        args: { command: str('printf abi-probe:out; exit 3'), handler: { kind: 'handler' } },
        bindPayload: true,
      },
    ],
    cType: 'int64_t',
    value: 'fx_processId',
  },
  scratchFile: {
    doc: 'an existing file in the probe\'s working directory, named after the probe process',
    deps: [],
    steps: [
      {
        kind: 'c',
        code:
          // A String of the ABI (length header, text, NUL) on the stack: the path is passed to the runtime.
          'int64_t fx_scratchFileBlock[13]; char *fx_scratchFileBuf = (char *)(fx_scratchFileBlock + 1);\n' +
          'snprintf(fx_scratchFileBuf, 96, "abi-probe-file-%ld", (long)getpid()); fx_scratchFileBlock[0] = (int64_t)strlen(fx_scratchFileBuf);\n' +
          'FILE *fx_scratchFp = fopen(fx_scratchFileBuf, "w"); int fx_scratchOk = fx_scratchFp != NULL && fputs("abi-probe", fx_scratchFp) >= 0;\n' +
          'if (fx_scratchFp != NULL && fclose(fx_scratchFp) != 0) fx_scratchOk = 0;',
        failsWhen: '!fx_scratchOk',
        failure: 'the probe could not create its scratch file in its working directory',
      },
    ],
    cType: 'const char *',
    value: 'fx_scratchFileBuf',
  },
  scratchDirPath: {
    doc: 'a path in the probe\'s working directory, named after the probe process, where nothing exists yet',
    deps: [],
    steps: [
      {
        kind: 'c',
        code:
          // A String of the ABI (length header, text, NUL) on the stack: the path is passed to the runtime.
          'int64_t fx_scratchDirBlock[13]; char *fx_scratchDirBuf = (char *)(fx_scratchDirBlock + 1);\n' +
          'snprintf(fx_scratchDirBuf, 96, "abi-probe-dir-%ld", (long)getpid()); fx_scratchDirBlock[0] = (int64_t)strlen(fx_scratchDirBuf);\n' +
          'if (rmdir(fx_scratchDirBuf) != 0) { /* usually absent */ }',
      },
    ],
    cType: 'const char *',
    value: 'fx_scratchDirBuf',
  },
};

/** What a scenario expects of a function that does not return a Result. */
export type ReturnExpectation =
  | { kind: 'string'; equals: string }
  | { kind: 'int'; equals: bigint }
  | { kind: 'zeroed'; bytes: number }
  | { kind: 'none' };

export interface Scenario {
  name: string;
  /** What the inputs are, in words (shown in reasons and docs/ABI.md). */
  doc: string;
  args: Record<string, ArgValue>;
  /** Result functions: which variant the inputs must produce. */
  expect?: 'success' | 'error';
  /** Result functions expecting Success: the payload it must carry (a String compared by length
   *  and bytes, NUL bytes included). */
  payload?: { kind: 'int'; equals: bigint } | { kind: 'string'; equals: string };
  /** Non-Result functions: the value they must return. */
  returns?: ReturnExpectation;
  /** The process ends inside the call (a `_Noreturn` function, or an abort on bad input). */
  exit?: { code: number | 'nonzero'; stderrIncludes: string };
  /** Standard output must contain this text. */
  stdoutIncludes?: string;
  /** The call must take at least this long (ms). */
  minDurationMs?: number;
  /** Fixtures set up although no argument names them (e.g. a connection that must exist). */
  extraFixtures?: FixtureName[];
  /** The raw client of the `connectionId` fixture must receive this text within 2 s. */
  rawClientReceives?: string;
  /** A message-integrity scenario (integrity.ts): the messages go through this route. */
  integrity?: IntegrityTarget;
  /** What the integrity messages are made of (integrity.ts, INTEGRITY_CASES). */
  integrityContent?: IntegrityContent;
  /** A connection-events scenario. 'open' / 'close': the probe registers logging open, message
   *  and close handlers on a listening server, drives two raw clients through it and checks this
   *  kind of event. 'client-close': two clients connect to the harness's Node server, register
   *  logging message and close handlers, and the server closes one with 1000 "bye" and vanishes
   *  from the other. */
  events?: 'open' | 'close' | 'client-close';
}

/** The connection-events scenario of osp_ws_server_on_open and osp_ws_server_on_close, in words. */
const EVENTS_DOC = 'a server given open, message and close handlers, then listening; two raw clients send 3 messages each, one closes with a close frame, the other drops its TCP connection';

/** The client close-event scenario of osp_ws_on_close, in words. */
const CLIENT_EVENTS_DOC =
  "two clients of the harness's Node `ws` server, each given a message handler and a close handler; the server sends each 3 messages, then closes one with 1000 \"bye\" and drops the other's TCP connection without a close frame";

/** The arguments of the probed call (receive routes) or the fixtures the sends need. */
const INTEGRITY_ARGS: Record<IntegrityTarget['route'], { args: Record<string, ArgValue>; extraFixtures?: FixtureName[] }> = {
  'client-send': { args: { ws_id: fx('digestClientId') } },
  'server-send': { args: { server_id: fx('listeningServerId'), connection_id: fx('connectionId') } },
  'server-broadcast': { args: { server_id: fx('listeningServerId') }, extraFixtures: ['connectionId'] },
  'client-send-binary': { args: { ws_id: fx('digestClientId') } },
  'server-send-binary': { args: { server_id: fx('listeningServerId'), connection_id: fx('connectionId') } },
  'server-broadcast-binary': { args: { server_id: fx('listeningServerId') }, extraFixtures: ['connectionId'] },
  'client-receive': { args: { url: fx('integrityUrl') } },
  'server-receive': { args: { server_id: fx('listeningServerId') } },
  'client-receive-record': { args: { url: fx('integrityUrl') } },
  'server-receive-record': { args: { server_id: fx('listeningServerId') } },
};

/** The integrity scenario of a message-carrying function (none for the others). */
export function integrityScenarios(symbol: string): Scenario[] {
  const t = INTEGRITY_TARGETS.find((x) => x.symbol === symbol);
  if (t === undefined) return [];
  const a = INTEGRITY_ARGS[t.route];
  return integrityCasesFor(t).map((c) => ({
    name: c.content === 'utf8' ? 'integrity' : `integrity-${c.name}`,
    doc: `messages of every integrity size ${t.direction === 'send' ? 'sent' : 'received'}${c.content === 'utf8' ? '' : ` (${c.doc})`}; ${t.doc}`,
    args: a.args,
    extraFixtures: a.extraFixtures,
    integrity: t,
    integrityContent: c.content,
  }));
}

/**
 * How a registered handler is made to run, and which call ends the registration. The probe then
 * checks the calls the handler received (env, arguments, thread) and that none arrives after the
 * closing call returned.
 */
export interface HandlerDriver {
  /** C run after the registering call succeeded; `fx_*` fixtures and `payload` are in scope. */
  trigger: string;
  /** The call that ends the registration, and its argument. */
  close: { symbol: string; arg: 'payload' | FixtureName };
  /** C run right after the closing call returned (stop traffic generators). */
  cleanup: string;
  /** 'caller': the handler runs on the thread of a later call (`deliverer`), synchronously;
   *  handler-order and handler-thread do not apply. Default: as a fiber on a scheduler worker. */
  delivery?: 'caller';
  deliverer?: string;
}

export const HANDLER_DRIVERS: Record<HandlerName, HandlerDriver> = {
  // The echo server pushes numbered text every 10 ms, so messages are in flight when the client
  // closes.
  message: {
    trigger: '',
    close: { symbol: 'osp_ws_close', arg: 'payload' },
    cleanup: '',
  },
  // A raw client sends a message, then keeps sending numbered messages every 5 ms while the
  // server stops.
  server_message: {
    trigger:
      'int rawFd = probe_raw_connect(fx_freePort, "/abi");\n' +
      'if (rawFd < 0) probe_step("raw client could not connect to the listening server");\n' +
      'else { probe_raw_send_text(rawFd, "abi-probe:hello"); probe_handler_wait(1, 2000);\n' +
      '       probe_raw_start_sender(rawFd, "abi-probe:more", 5); probe_pause_ms(50); }',
    close: { symbol: 'osp_ws_stop_server', arg: 'listeningServerId' },
    cleanup: 'probe_raw_stop_sender();',
  },
  // The message-record client handler (fn(Int, WebSocketMessage)): as `message`, the echo server
  // pushes numbered text while the client closes.
  ws_message: {
    trigger: '',
    close: { symbol: 'osp_ws_close', arg: 'payload' },
    cleanup: '',
  },
  // Connection events of a listening server: a raw client connects (open event), sends, and drops
  // its TCP connection without a Close frame (close event, 1006); the server is then stopped.
  ws_open: {
    trigger:
      'int rawFd = probe_raw_connect(fx_freePort, "/abi");\n' +
      'if (rawFd < 0) probe_step("raw client could not connect to the listening server");\n' +
      'else { probe_handler_wait(1, 2000); close(rawFd); }',
    close: { symbol: 'osp_ws_stop_server', arg: 'listeningServerId' },
    cleanup: '',
  },
  ws_server_close: {
    trigger:
      'int rawFd = probe_raw_connect(fx_freePort, "/abi");\n' +
      'if (rawFd < 0) probe_step("raw client could not connect to the listening server");\n' +
      'else { close(rawFd); probe_handler_wait(1, 2000); }',
    close: { symbol: 'osp_ws_stop_server', arg: 'listeningServerId' },
    cleanup: '',
  },
  // A client connection's close event: the close call itself delivers it.
  ws_close: {
    trigger: '',
    close: { symbol: 'osp_ws_close', arg: 'payload' },
    cleanup: '',
  },
  // docs/guide/14-builtins.md#processes: events are delivered on the thread calling awaitProcess, before it
  // returns; none after cleanupProcess.
  // A fiber body runs on a scheduler worker; await (from the probe's own thread) waits for it.
  fiber_body: {
    trigger: '',
    close: { symbol: 'osp_fiber_await', arg: 'payload' },
    cleanup: '',
  },
  // An HTTP handler runs only when a request arrives; the probe registers it and stops the server
  // without traffic (the HTTP suite in tests/runtime drives real requests).
  http_request: {
    trigger: '',
    close: { symbol: 'osp_http_stop_server', arg: 'payload' },
    cleanup: '',
  },
  process_event: {
    trigger: 'probe_handler_expect(""); if (tag == 0) { probe_enter_call("osp_process_await"); (void)osp_process_await(payload); probe_leave_call(); }',
    close: { symbol: 'osp_process_cleanup', arg: 'payload' },
    cleanup: '',
    delivery: 'caller',
    deliverer: 'osp_process_await',
  },
};

export const SCENARIOS: Record<string, Scenario[]> = {
  osp_rt_run_main: [
    { name: 'main-fiber', doc: 'the recording fiber body as the main fiber (returns 0: the process exits 0)', args: {}, exit: { code: 0, stderrIncludes: '' } },
  ],
  osp_fiber_await: [
    { name: 'finished', doc: 'a spawned fiber, awaited from a thread that is not a fiber', args: { fiber: fx('finishedFiber') }, returns: { kind: 'int', equals: 0n } },
  ],
  osp_channel_new: [
    { name: 'buffered', doc: 'capacity 4', args: { capacity: int(4), location: str('probe.osp:1:1') }, returns: { kind: 'none' } },
    {
      name: 'negative',
      doc: 'capacity -1 (a run-time failure)',
      args: { capacity: int(-1), location: str('probe.osp:1:1') },
      exit: { code: 1, stderrIncludes: 'channel capacity must be 0 or more, got -1 at probe.osp:1:1' },
    },
  ],
  osp_channel_send: [
    { name: 'room', doc: 'a channel of capacity 2 holding one value', args: { channel: fx('bufferedChannel'), value: int(7) }, expect: 'success' },
  ],
  osp_channel_recv: [
    { name: 'value', doc: 'a channel holding one value', args: { channel: fx('bufferedChannel') }, expect: 'success' },
  ],
  osp_select: [
    { name: 'ready', doc: 'one recv arm on a channel holding a value (arm 0 wins)', args: { arms: fx('selectArms'), count: int(1), has_default: int(0) }, expect: 'success' },
  ],
  osp_input: [
    { name: 'eof', doc: 'standard input at end of file (gives 0)', args: {}, returns: { kind: 'int', equals: 0n } },
  ],
  osp_string_length: [
    { name: 'bytes', doc: '"abi-probe \u00e9" (12 bytes)', args: { s: str('abi-probe \u00e9') }, expect: 'success', payload: { kind: 'int', equals: 12n } },
    { name: 'nul', doc: '"a\\0b\\0" (4 bytes, two of them NUL)', args: { s: str('a\u0000b\u0000') }, expect: 'success', payload: { kind: 'int', equals: 4n } },
  ],
  osp_string_contains: [
    { name: 'found', doc: '"abi-probe" contains "probe"', args: { haystack: str('abi-probe'), needle: str('probe') }, expect: 'success', payload: { kind: 'int', equals: 1n } },
    { name: 'after-nul', doc: '"a\\0probe" contains "probe" (found after a NUL byte)', args: { haystack: str('a\u0000probe'), needle: str('probe') }, expect: 'success', payload: { kind: 'int', equals: 1n } },
    { name: 'nul-needle', doc: '"ab" does not contain "\\0" (a NUL needle is a byte, not the end)', args: { haystack: str('ab'), needle: str('\u0000') }, expect: 'success', payload: { kind: 'int', equals: 0n } },
  ],
  osp_string_substring: [
    { name: 'clamped', doc: '"abi-probe", 4, 99 (end clamped)', args: { s: str('abi-probe'), start: int(4), end: int(99) }, expect: 'success', payload: { kind: 'string', equals: 'probe' } },
    { name: 'across-nul', doc: '"ab\\0cd", 1, 4 (across a NUL byte)', args: { s: str('ab\u0000cd'), start: int(1), end: int(4) }, expect: 'success', payload: { kind: 'string', equals: 'b\u0000c' } },
    { name: 'error', doc: '"abi-probe", 5, 2 (start > end)', args: { s: str('abi-probe'), start: int(5), end: int(2) }, expect: 'error' },
  ],
  osp_file_write: [
    { name: 'success', doc: 'a scratch file in the working directory', args: { path: fx('scratchFile'), content: str('abi-probe written') }, expect: 'success' },
    { name: 'error', doc: 'a path in a missing directory', args: { path: str('/nonexistent-abi-probe/x.txt'), content: str('x') }, expect: 'error' },
  ],
  osp_file_read: [
    { name: 'success', doc: 'an existing scratch file', args: { path: fx('scratchFile') }, expect: 'success' },
    { name: 'error', doc: 'a missing file', args: { path: str('/nonexistent-abi-probe/x.txt') }, expect: 'error' },
  ],
  osp_file_delete: [
    { name: 'success', doc: 'an existing scratch file', args: { path: fx('scratchFile') }, expect: 'success' },
    { name: 'error', doc: 'a missing file', args: { path: str('/nonexistent-abi-probe/x.txt') }, expect: 'error' },
  ],
  osp_directory_create: [
    { name: 'success', doc: 'a fresh path in the working directory', args: { path: fx('scratchDirPath') }, expect: 'success' },
    { name: 'error', doc: 'an existing directory (/tmp)', args: { path: str('/tmp') }, expect: 'error' },
  ],
  osp_file_exists: [
    { name: 'exists', doc: '/tmp', args: { path: str('/tmp') }, returns: { kind: 'int', equals: 1n } },
    { name: 'missing', doc: 'a missing path', args: { path: str('/nonexistent-abi-probe') }, returns: { kind: 'int', equals: 0n } },
  ],
  osp_process_spawn: [
    { name: 'success', doc: '`printf abi-probe:out`; events delivered by awaitProcess', args: { command: str('printf abi-probe:out') }, expect: 'success' },
    { name: 'error', doc: 'an empty command', args: { command: str('') }, expect: 'error' },
  ],
  osp_process_await: [
    { name: 'exit-code', doc: 'a spawned `exit 3`', args: { process_id: fx('processId') }, returns: { kind: 'int', equals: 3n } },
    { name: 'unknown', doc: 'an unknown process id', args: { process_id: { kind: 'int', value: UNKNOWN_ID } }, returns: { kind: 'int', equals: -1n } },
  ],
  osp_process_cleanup: [
    { name: 'never-awaited', doc: 'a spawned process never awaited (its events are delivered)', args: { process_id: fx('processId') }, returns: { kind: 'none' } },
    { name: 'unknown', doc: 'an unknown process id', args: { process_id: { kind: 'int', value: UNKNOWN_ID } }, returns: { kind: 'none' } },
  ],
  osp_rt_init: [
    { name: 'current', doc: 'the ABI version of the generated header', args: { abi_version: int(ABI_VERSION) }, returns: { kind: 'none' } },
    {
      name: 'mismatch',
      doc: 'an ABI version the library was not built for',
      args: { abi_version: int(ABI_VERSION + 1000) },
      exit: { code: 'nonzero', stderrIncludes: 'ABI' },
    },
  ],
  osp_rt_shutdown: [
    { name: 'status', doc: 'status 258 (only the low 8 bits reach the parent)', args: { status: int(258) }, returns: { kind: 'int', equals: 2n } },
  ],
  osp_rt_fail: [
    {
      name: 'fail',
      doc: 'a message and a source location',
      args: { message: str('abi-probe failure'), location: str('probe.osp:1:2') },
      exit: { code: 1, stderrIncludes: 'Error: abi-probe failure at probe.osp:1:2' },
    },
  ],
  osp_alloc: [{ name: 'alloc', doc: '48 bytes', args: { size: int(48) }, returns: { kind: 'zeroed', bytes: 48 } }],
  osp_string_concat: [
    {
      name: 'concat',
      doc: 'ASCII and multi-byte UTF-8 halves',
      args: { left: str('abi-'), right: str('probe \u00e9\u{1F985}') },
      returns: { kind: 'string', equals: 'abi-probe \u00e9\u{1F985}' },
    },
    {
      name: 'nul',
      doc: 'halves that end and start with a NUL byte',
      args: { left: str('abi\u0000'), right: str('\u0000probe') },
      returns: { kind: 'string', equals: 'abi\u0000\u0000probe' },
    },
  ],
  osp_string_build: [
    {
      name: 'build',
      doc: 'a string, INT64_MIN, a multi-byte string and 0',
      args: { count: int(4), int_mask: int(0b1010), part0: str('abi-'), part1: int(-(2n ** 63n)), part2: str(' \u00e9\u{1F985} '), part3: int(0) },
      returns: { kind: 'string', equals: 'abi--9223372036854775808 \u00e9\u{1F985} 0' },
    },
    {
      name: 'nul',
      doc: 'string parts holding NUL bytes around an Int part',
      args: { count: int(3), int_mask: int(0b010), part0: str('a\u0000'), part1: int(7), part2: str('\u0000b') },
      returns: { kind: 'string', equals: 'a\u00007\u0000b' },
    },
  ],
  osp_string_equals: [
    { name: 'equal', doc: 'two equal strings', args: { left: str('abi'), right: str('abi') }, returns: { kind: 'int', equals: 1n } },
    { name: 'different', doc: 'two different strings', args: { left: str('abi'), right: str('abd') }, returns: { kind: 'int', equals: 0n } },
    { name: 'after-nul', doc: 'strings that differ only after a NUL byte', args: { left: str('a\u0000b'), right: str('a\u0000c') }, returns: { kind: 'int', equals: 0n } },
    { name: 'nul-prefix', doc: '"a" and "a\\0" (one is the other plus a NUL byte)', args: { left: str('a'), right: str('a\u0000') }, returns: { kind: 'int', equals: 0n } },
    { name: 'nul-equal', doc: 'two equal strings holding NUL bytes', args: { left: str('a\u0000b'), right: str('a\u0000b') }, returns: { kind: 'int', equals: 1n } },
  ],
  osp_int_to_string: [
    { name: 'min', doc: 'INT64_MIN', args: { value: int(-(2n ** 63n)) }, returns: { kind: 'string', equals: '-9223372036854775808' } },
  ],
  osp_bool_to_string: [
    { name: 'true', doc: '1', args: { value: int(1) }, returns: { kind: 'string', equals: 'true' } },
    { name: 'false', doc: '0', args: { value: int(0) }, returns: { kind: 'string', equals: 'false' } },
  ],
  osp_string_from_c: [
    { name: 'text', doc: 'a C string of UTF-8 text', args: { text: str('abi-probe \u00e9') }, returns: { kind: 'string', equals: 'abi-probe \u00e9' } },
    { name: 'to-nul', doc: 'a C string: the copy ends at its first NUL', args: { text: str('abi\u0000probe') }, returns: { kind: 'string', equals: 'abi' } },
  ],
  osp_print: [
    { name: 'print', doc: 'one line of text', args: { text: str('abi-probe print') }, returns: { kind: 'none' }, stdoutIncludes: 'abi-probe print\n' },
    { name: 'nul', doc: 'a line holding NUL bytes (every byte is written)', args: { text: str('abi\u0000probe\u0000nul') }, returns: { kind: 'none' }, stdoutIncludes: 'abi\u0000probe\u0000nul\n' },
  ],
  osp_sleep: [
    { name: 'sleep', doc: '60 ms', args: { milliseconds: int(60) }, returns: { kind: 'none' }, minDurationMs: 60 },
    { name: 'negative', doc: '-5 ms (counts as 0)', args: { milliseconds: int(-5) }, returns: { kind: 'none' } },
  ],
  osp_ws_connect: [
    {
      name: 'success',
      doc: "the harness's Node `ws` echo server",
      args: { url: fx('echoPushUrl') },
      expect: 'success',
    },
    {
      name: 'error',
      doc: 'an unreachable address (127.0.0.1, closed port)',
      args: { url: fx('closedPortUrl') },
      expect: 'error',
    },
  ],
  osp_ws_send: [
    { name: 'success', doc: 'an open client connection', args: { ws_id: fx('clientId'), message: str('abi-probe:send') }, expect: 'success' },
    { name: 'error', doc: 'an unknown connection id', args: { ws_id: { kind: 'int', value: UNKNOWN_ID } }, expect: 'error' },
  ],
  osp_ws_close: [
    { name: 'success', doc: 'an open client connection', args: { ws_id: fx('clientId') }, expect: 'success' },
    { name: 'error', doc: 'an unknown connection id', args: { ws_id: { kind: 'int', value: UNKNOWN_ID } }, expect: 'error' },
  ],
  osp_ws_create_server: [
    {
      name: 'success',
      doc: 'a free loopback port, 127.0.0.1, /abi',
      args: { port: fx('freePort'), address: str('127.0.0.1'), path: str(PROBE_PATH) },
      expect: 'success',
    },
    {
      name: 'error',
      doc: 'port 70000 (out of range)',
      args: { port: int(70000), address: str('127.0.0.1'), path: str(PROBE_PATH) },
      expect: 'error',
    },
    // A NUL byte must be refused, not cut at: C code would bind 127.0.0.1 or serve /abi.
    { name: 'nul-address', doc: 'a free port, address "127.0.0.1\\0junk" (a NUL byte)', args: { port: fx('freePort'), address: str('127.0.0.1\u0000junk'), path: str(PROBE_PATH) }, expect: 'error' },
    { name: 'nul-path', doc: 'a free port, path "/abi\\0junk" (a NUL byte)', args: { port: fx('freePort'), address: str('127.0.0.1'), path: str(`${PROBE_PATH}\u0000junk`) }, expect: 'error' },
  ],
  osp_ws_server_listen: [
    { name: 'success', doc: 'a server created on a free port', args: { server_id: fx('serverId') }, expect: 'success' },
    { name: 'error', doc: 'a server created on a busy port', args: { server_id: fx('busyServerId') }, expect: 'error' },
  ],
  osp_ws_server_broadcast: [
    {
      name: 'success',
      doc: 'a listening server with one raw client connected',
      args: { server_id: fx('listeningServerId'), message: str('abi-probe:broadcast') },
      expect: 'success',
      extraFixtures: ['connectionId'],
      rawClientReceives: 'abi-probe:broadcast',
    },
    { name: 'error', doc: 'an unknown server id', args: { server_id: { kind: 'int', value: UNKNOWN_ID } }, expect: 'error' },
  ],
  osp_ws_stop_server: [
    { name: 'success', doc: 'a listening server', args: { server_id: fx('listeningServerId') }, expect: 'success' },
    { name: 'error', doc: 'an unknown server id', args: { server_id: { kind: 'int', value: UNKNOWN_ID } }, expect: 'error' },
  ],
  osp_ws_server_on_message: [
    { name: 'success', doc: 'a listening server; a raw client sends text', args: { server_id: fx('listeningServerId') }, expect: 'success' },
    { name: 'error', doc: 'an unknown server id', args: { server_id: { kind: 'int', value: UNKNOWN_ID } }, expect: 'error' },
  ],
  osp_ws_server_send: [
    {
      name: 'success',
      doc: 'a connection of a listening server',
      args: { server_id: fx('listeningServerId'), connection_id: fx('connectionId'), message: str('abi-probe:server-send') },
      expect: 'success',
      rawClientReceives: 'abi-probe:server-send',
    },
    {
      name: 'error',
      doc: 'an unknown connection id on a listening server',
      args: { server_id: fx('listeningServerId'), connection_id: { kind: 'int', value: UNKNOWN_ID } },
      expect: 'error',
    },
  ],
  // The binary sends: like their text twins (their integrity scenarios carry the messages); the
  // other handler shapes and the event registrations: the error path (an unknown id, a closed port).
  osp_ws_send_binary: [
    { name: 'success', doc: 'an open client connection', args: { ws_id: fx('clientId'), data: str('abi-probe:send-binary') }, expect: 'success' },
    { name: 'error', doc: 'an unknown connection id', args: { ws_id: { kind: 'int', value: UNKNOWN_ID } }, expect: 'error' },
  ],
  osp_ws_server_send_binary: [
    {
      name: 'success',
      doc: 'a connection of a listening server',
      args: { server_id: fx('listeningServerId'), connection_id: fx('connectionId'), data: str('abi-probe:server-send-binary') },
      expect: 'success',
    },
    {
      name: 'error',
      doc: 'an unknown connection id on a listening server',
      args: { server_id: fx('listeningServerId'), connection_id: { kind: 'int', value: UNKNOWN_ID } },
      expect: 'error',
    },
  ],
  osp_ws_server_broadcast_binary: [
    {
      name: 'success',
      doc: 'a listening server with one raw client connected',
      args: { server_id: fx('listeningServerId'), data: str('abi-probe:broadcast-binary') },
      expect: 'success',
      extraFixtures: ['connectionId'],
    },
    { name: 'error', doc: 'an unknown server id', args: { server_id: { kind: 'int', value: UNKNOWN_ID } }, expect: 'error' },
  ],
  osp_ws_connect_with_id: [{ name: 'error', doc: 'an unreachable address (127.0.0.1, closed port)', args: { url: fx('closedPortUrl') }, expect: 'error' }],
  osp_ws_connect_messages: [{ name: 'error', doc: 'an unreachable address (127.0.0.1, closed port)', args: { url: fx('closedPortUrl') }, expect: 'error' }],
  osp_ws_on_close: [
    { name: 'error', doc: 'an unknown connection id', args: { ws_id: { kind: 'int', value: UNKNOWN_ID } }, expect: 'error' },
    { name: 'events', doc: CLIENT_EVENTS_DOC, args: {}, events: 'client-close' },
  ],
  osp_ws_server_on_text: [{ name: 'error', doc: 'an unknown server id', args: { server_id: { kind: 'int', value: UNKNOWN_ID } }, expect: 'error' }],
  osp_ws_server_on_messages: [{ name: 'error', doc: 'an unknown server id', args: { server_id: { kind: 'int', value: UNKNOWN_ID } }, expect: 'error' }],
  osp_ws_server_on_open: [
    { name: 'error', doc: 'an unknown server id', args: { server_id: { kind: 'int', value: UNKNOWN_ID } }, expect: 'error' },
    { name: 'events', doc: EVENTS_DOC, args: { server_id: fx('serverId') }, events: 'open' },
  ],
  osp_ws_server_on_close: [
    { name: 'error', doc: 'an unknown server id', args: { server_id: { kind: 'int', value: UNKNOWN_ID } }, expect: 'error' },
    { name: 'events', doc: EVENTS_DOC, args: { server_id: fx('serverId') }, events: 'close' },
  ],
  osp_ws_server_set_limit: [
    { name: 'success', doc: 'maxFragments = 8 on a server not yet listening', args: { server_id: fx('serverId'), name: str('maxFragments'), value: int(8) }, expect: 'success' },
    { name: 'error', doc: 'an unknown limit name', args: { server_id: fx('serverId'), name: str('noSuchLimit'), value: int(8) }, expect: 'error' },
    { name: 'nul', doc: 'the name "maxFragments\\0x" (a NUL byte after a valid name)', args: { server_id: fx('serverId'), name: str('maxFragments\u0000x'), value: int(8) }, expect: 'error' },
  ],
  osp_ws_set_default_limit: [
    { name: 'success', doc: 'idleTimeoutMs = 0 (the default: off)', args: { name: str('idleTimeoutMs'), value: int(0) }, expect: 'success' },
    { name: 'error', doc: 'maxConnections = 0 (out of range)', args: { name: str('maxConnections'), value: int(0) }, expect: 'error' },
    { name: 'nul', doc: 'the name "idleTimeoutMs\\0x" = 0 (a NUL byte after a valid name)', args: { name: str('idleTimeoutMs\u0000x'), value: int(0) }, expect: 'error' },
  ],
  osp_ws_server_allow_origin: [
    { name: 'success', doc: 'http://localhost:8080 on a server not yet listening', args: { server_id: fx('serverId'), origin: str('http://localhost:8080') }, expect: 'success' },
    { name: 'error', doc: 'an origin with a path (not a serialized origin)', args: { server_id: fx('serverId'), origin: str('http://localhost:8080/chat') }, expect: 'error' },
    { name: 'nul', doc: 'the origin "http://localhost:8080\\0.evil" (a NUL byte after a valid origin)', args: { server_id: fx('serverId'), origin: str('http://localhost:8080\u0000.evil') }, expect: 'error' },
  ],
  osp_ws_create_secure_server: [
    // A success path needs a certificate and key on disk; tests/interop/tls.test.ts covers it with a
    // throwaway CA made by the openssl command line.
    {
      name: 'error',
      doc: 'a certificate file that does not exist',
      args: { port: fx('freePort'), address: str('127.0.0.1'), path: str(PROBE_PATH), cert_file: str('/nonexistent/abi-probe-cert.pem'), key_file: str('/nonexistent/abi-probe-key.pem') },
      expect: 'error',
    },
  ],
  osp_ws_set_trusted_ca: [
    { name: 'success', doc: '"" (no extra CA: the system trust store only)', args: { path: str('') }, expect: 'success' },
    { name: 'error', doc: 'a CA file that does not exist', args: { path: str('/nonexistent/abi-probe-ca.pem') }, expect: 'error' },
    { name: 'nul', doc: 'the path "\\0/nonexistent" (a NUL byte first: cut at it, the path would be "")', args: { path: str('\u0000/nonexistent') }, expect: 'error' },
  ],
  osp_ws_server_use_cluster: [
    // A success path needs a Redis server; tests/cluster runs a real redis-server.
    {
      name: 'error',
      doc: 'a Redis URL on a loopback port where nothing listens',
      args: { server_id: fx('serverId'), redis_url: str('redis://127.0.0.1:1/0'), channel: str('abi-probe') },
      expect: 'error',
    },
  ],
  osp_ws_server_cluster_status: [
    { name: 'error', doc: 'a server that has not joined a cluster', args: { server_id: fx('serverId') }, expect: 'error' },
  ],
  osp_ws_server_add_subprotocol: [
    { name: 'success', doc: '"chat.v1" on a server not yet listening', args: { server_id: fx('serverId'), protocol: str('chat.v1') }, expect: 'success' },
    { name: 'error', doc: 'a name with a space (not a token)', args: { server_id: fx('serverId'), protocol: str('chat v1') }, expect: 'error' },
    { name: 'nul', doc: 'the name "chat.v1\\0" (a NUL byte after a valid token)', args: { server_id: fx('serverId'), protocol: str('chat.v1\u0000') }, expect: 'error' },
  ],
};
