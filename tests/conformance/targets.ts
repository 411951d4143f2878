/**
 * The testees the conformance suite runs against. Every server case runs once per server target
 * and every client case once per client target (a parameterised describe), so the python oracle
 * validates the tests in the same run that grades our runtime.
 *
 * To add a target append one entry to SERVER_TARGETS built with commandServerTarget(...) — it only
 * needs the ws-echo-server command line (--port/--host/--path, "listening on ws://..." line) and
 * the OSPREY_WS_* environment — or, for a program without a command line, like the echo server
 * compiled by our `osprey` compiler, a target whose start() builds it (compiledOspreyServerTarget).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OSPREY_BIN, workspace } from '../interop/compile.ts';
import { binaryEchoClient } from '../interop/programs.ts';
import { ospreyEchoProgram } from './osprey-echo-program.ts';
import {
  freePort,
  OSPREY_ECHO_CLIENT,
  OSPREY_ECHO_SERVER,
  startCommandEchoClient,
  startCommandEchoServer,
  spawnClient,
  startPythonClient,
  startPythonEchoServer,
  startUwsEchoServer,
  startWsEchoServer,
  type ClientProcess,
  type CommandServerOptions,
  type PeerProcess,
} from '../peers/index.ts';

/** What a case may ask of a server beyond "echo on /". */
export interface EchoServerConfig {
  path?: string;
  maxMessage?: number;
  maxFragments?: number;
  handshakeTimeoutMs?: number;
  closeTimeoutMs?: number;
  idleTimeoutMs?: number;
  messageTimeoutMs?: number;
  maxConnections?: number;
  origins?: string[];
  subprotocols?: string[];
}
export type ServerFeature = keyof EchoServerConfig;

/**
 * Where a target legitimately differs from our strict policy (docs/WEBSOCKET-RUNTIME.md#strict-policy), as data. Each
 * field documents why; the strict values are in STRICT_POLICY.
 */
export interface ServerPolicy {
  /** Statuses accepted for `Sec-WebSocket-Version: 8` (strict: 426 + Sec-WebSocket-Version: 13). */
  badVersionStatus: number[];
  /** Whether that answer must carry `Sec-WebSocket-Version: 13`. */
  badVersionAdvertises: boolean;
  /** Header lines the server accepts (strict: 100, answering 431 beyond). */
  maxHeaders: number;
  /** Total header bytes the server accepts (strict: 16 KiB). */
  maxHeaderBytes: number;
  /** Statuses for a request with too many / too large headers (strict: 431 or 400). */
  headerLimitStatus: number[];
  /** Statuses for an over-long request line (strict: 400 or 414 or 431). */
  requestLineStatus: number[];
  /** Whether invalid UTF-8 is detected before the frame that carries it is complete (§1.4 S-U3). */
  utf8FailFastInsideFrame: boolean;
  /** Codes accepted for a 64-bit length with the MSB set (§1.2 S-F3). */
  msbLengthCodes: number[];
  /**
   * Whether a valid message that precedes a bad frame in the same write must be echoed before
   * the failure (Autobahn 3.2 / 4.1.3 / 5.15 grade the opposite NON-STRICT).
   */
  echoBeforeFailure: boolean;
  /** Statuses for a malformed request head (S-H12; strict: 400). */
  malformedStatus: number[];
}

export const STRICT_POLICY: ServerPolicy = {
  badVersionStatus: [426],
  badVersionAdvertises: true,
  maxHeaders: 100,
  maxHeaderBytes: 16 * 1024,
  headerLimitStatus: [431, 400],
  requestLineStatus: [400, 414, 431],
  utf8FailFastInsideFrame: true,
  msbLengthCodes: [1002, 1009],
  echoBeforeFailure: true,
  malformedStatus: [400],
};

export interface ServerTarget {
  name: string;
  /** null when the target can run here; otherwise why not (the describe is skipped with it). */
  unavailable(): string | null;
  /** Features a case cannot configure on this target, with the reason (→ it.todo). */
  pending: Partial<Record<ServerFeature, string>>;
  policy: ServerPolicy;
  start(cfg?: EchoServerConfig): Promise<PeerProcess>;
}

export interface ClientTarget {
  name: string;
  unavailable(): string | null;
  /** Close-handshake timeout the client is started with (ms), for case 64. */
  closeTimeoutMs: number;
  /** Opening-handshake timeout the client is started with (ms), for C-H9. */
  handshakeTimeoutMs: number;
  /** Starts the client against `url`; it echoes text and binary messages until the server closes. */
  start(url: string): ClientProcess;
}

function assertSupported(t: { name: string; pending: Partial<Record<ServerFeature, string>> }, cfg: EchoServerConfig) {
  for (const k of Object.keys(cfg) as ServerFeature[]) {
    if (cfg[k] !== undefined && t.pending[k]) throw new Error(`${t.name} cannot configure ${k}: ${t.pending[k]}`);
  }
}

// ---- python-websockets 10.4: the oracle -------------------------------------------------------

export const pythonServer: ServerTarget = {
  name: 'python-websockets',
  unavailable: () => (existsSync('/usr/bin/python3') ? null : '/usr/bin/python3 missing (apt-get install python3-websockets)'),
  pending: {
    maxFragments: 'python-websockets 10.4 has no fragment-count limit (only max_size)',
    idleTimeoutMs: 'python-websockets 10.4 has no idle timeout (it relies on keep-alive pings)',
    messageTimeoutMs: 'python-websockets 10.4 has no per-message deadline',
  },
  policy: {
    ...STRICT_POLICY,
    // websockets/legacy/server.py raises InvalidHeaderValue for an unsupported version, which
    // becomes a plain 400 (no 426, no Sec-WebSocket-Version list). Accepted: the RFC's §4.4 426
    // is what we require of ourselves, python's answer still refuses the upgrade.
    badVersionStatus: [400],
    badVersionAdvertises: false,
    // websockets/legacy/http.py: MAX_HEADERS = 256, MAX_LINE = 4110 bytes, no total-size limit.
    maxHeaders: 256,
    maxHeaderBytes: Number.POSITIVE_INFINITY,
    // Over-long lines / too many headers raise SecurityError → python answers 400 (never 431).
    headerLimitStatus: [400],
    requestLineStatus: [400],
    // The legacy protocol reads a whole frame before decoding it, so invalid UTF-8 is caught at
    // the end of the frame (per fragment, not per TCP read) — Autobahn 6.4.3/6.4.4 NON-STRICT.
    utf8FailFastInsideFrame: false,
    // Echoing is the application's task; the protocol's reader fails the connection on the next
    // frame before that task runs, so "Hello" is usually not echoed (Autobahn: NON-STRICT).
    echoBeforeFailure: false,
  },
  start(cfg = {}) {
    assertSupported(this, cfg);
    return startPythonEchoServer({
      path: cfg.path,
      maxSize: cfg.maxMessage,
      origins: cfg.origins,
      subprotocols: cfg.subprotocols,
      maxConnections: cfg.maxConnections,
      openTimeoutMs: cfg.handshakeTimeoutMs,
      closeTimeoutMs: cfg.closeTimeoutMs ?? 1000,
    });
  },
};

// ---- executables with the ws-echo-server command line (our runtime) ----------------------------

/** Environment variables of runtime-c/src/ws_limits.h for each configurable limit. */
const LIMIT_ENV: Partial<Record<ServerFeature, string>> = {
  maxMessage: 'OSPREY_WS_MAX_MESSAGE',
  maxFragments: 'OSPREY_WS_MAX_FRAGMENTS',
  handshakeTimeoutMs: 'OSPREY_WS_HANDSHAKE_TIMEOUT_MS',
  closeTimeoutMs: 'OSPREY_WS_CLOSE_TIMEOUT_MS',
  idleTimeoutMs: 'OSPREY_WS_IDLE_TIMEOUT_MS',
  messageTimeoutMs: 'OSPREY_WS_MESSAGE_TIMEOUT_MS',
  maxConnections: 'OSPREY_WS_MAX_CONNECTIONS',
};

export function commandServerTarget(
  name: string,
  executable: string,
  policy: ServerPolicy = STRICT_POLICY,
  argv?: CommandServerOptions['argv'],
  extraEnv: () => Record<string, string> = () => ({}),
): ServerTarget {
  return {
    name,
    unavailable: () => (existsSync(executable) ? null : `${executable} not built (npx tsx scripts/build-runtime.ts)`),
    // Origin allowlist and subprotocols: ws-echo-server's --origin / --subprotocol flags call
    // websocketServerAllowOrigin / websocketServerAddSubprotocol before listening.
    pending: {},
    policy,
    start(cfg = {}) {
      assertSupported(this, cfg);
      const env: Record<string, string> = { OSPREY_WS_CLOSE_TIMEOUT_MS: '1000', ...extraEnv() };
      for (const [k, v] of Object.entries(cfg) as [ServerFeature, unknown][]) {
        const name = LIMIT_ENV[k];
        if (name && v !== undefined) env[name] = String(v);
      }
      const extraArgs = [
        ...(cfg.origins ?? []).flatMap((o) => ['--origin', o]),
        ...(cfg.subprotocols ?? []).flatMap((p) => ['--subprotocol', p]),
      ];
      return startCommandEchoServer(executable, { path: cfg.path, env, argv, extraArgs }, this.name);
    },
  };
}

export function commandClientTarget(name: string, executable: string): ClientTarget {
  return {
    name,
    unavailable: () => (existsSync(executable) ? null : `${executable} not built (npx tsx scripts/build-runtime.ts)`),
    closeTimeoutMs: 1000,
    handshakeTimeoutMs: 1000,
    start(url) {
      const env = { OSPREY_WS_CLOSE_TIMEOUT_MS: String(this.closeTimeoutMs), OSPREY_WS_HANDSHAKE_TIMEOUT_MS: String(this.handshakeTimeoutMs) };
      return startCommandEchoClient(executable, url, { env }, name);
    },
  };
}

export const pythonClient: ClientTarget = {
  name: 'python-websockets',
  unavailable: pythonServer.unavailable,
  closeTimeoutMs: 1000,
  handshakeTimeoutMs: 1000,
  start(url) {
    return startPythonClient(url, { echo: true, closeTimeoutMs: this.closeTimeoutMs, openTimeoutMs: this.handshakeTimeoutMs });
  },
};

// ---- an echo server compiled by `osprey` from Osprey source ------------------------------------

/**
 * The echo server of osprey-echo-program.ts compiled with `osprey build` (source → compiler →
 * LLVM → executable linked with the C runtime), graded by the same strict table as the C testee.
 * An Osprey program cannot read its command line, so port, path, Origin allowlist and subprotocols
 * are written into the source and the program is built for each server the suite starts (each
 * file's shared server at file start, plus one per extra configuration; ~1 s each). Limits come
 * through the OSPREY_WS_* environment, as for the C testee; `argv` gives it an empty command line.
 */
export function compiledOspreyServerTarget(name = 'osprey-compiled', policy: ServerPolicy = STRICT_POLICY): ServerTarget {
  return {
    name,
    unavailable: () =>
      existsSync(OSPREY_BIN) && existsSync(OSPREY_ECHO_SERVER) ? null : 'the osprey compiler or the C runtime is not built (npm install)',
    pending: {},
    policy,
    async start(cfg = {}) {
      assertSupported(this, cfg);
      const port = await freePort();
      const source = ospreyEchoProgram({ port, path: cfg.path, origins: cfg.origins, subprotocols: cfg.subprotocols });
      const env: Record<string, string> = { OSPREY_WS_CLOSE_TIMEOUT_MS: '1000' };
      for (const [k, v] of Object.entries(cfg) as [ServerFeature, unknown][]) {
        const variable = LIMIT_ENV[k];
        if (variable && v !== undefined) env[variable] = String(v);
      }
      // The build directory goes as soon as the server runs (or failed to start): the running
      // process keeps its executable, and nothing is left behind for a hook to clean up.
      const ws = workspace();
      try {
        const exe = await ws.build(`echo_${port}`, source);
        return await startCommandEchoServer(exe, { port, env, argv: () => [] }, name);
      } finally {
        ws.dispose();
      }
    },
  };
}

export const SERVER_TARGETS: ServerTarget[] = [
  pythonServer,
  commandServerTarget('osprey-c-runtime', OSPREY_ECHO_SERVER),
  compiledOspreyServerTarget(),
];

/**
 * The echo client of tests/interop/programs.ts (binaryEchoClient) compiled with `osprey build`:
 * a fn(Int, WebSocketMessage) handler that answers text with websocketSend and binary with
 * websocketSendBinary on its own connection id, the URL from args(), exit 0 after its
 * websocketOnClose handler ran. Built once per test process, on first use.
 */
let compiledClient: string | undefined;
function compiledClientExecutable(): string {
  if (compiledClient) return compiledClient;
  const dir = mkdtempSync(join(tmpdir(), 'osprey-conformance-client-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'echo_client.osp'), binaryEchoClient());
  execFileSync(process.execPath, [OSPREY_BIN, 'build', join(dir, 'echo_client.osp'), '-o', join(dir, 'echo_client')], { stdio: 'pipe', timeout: 120_000 });
  compiledClient = join(dir, 'echo_client');
  return compiledClient;
}

export const compiledOspreyClient: ClientTarget = {
  name: 'osprey-compiled',
  unavailable: () => (existsSync(OSPREY_BIN) && existsSync(OSPREY_ECHO_CLIENT) ? null : 'the osprey compiler or the C runtime is not built (npm install)'),
  closeTimeoutMs: 1000,
  handshakeTimeoutMs: 1000,
  start(url) {
    const env = { OSPREY_WS_CLOSE_TIMEOUT_MS: String(this.closeTimeoutMs), OSPREY_WS_HANDSHAKE_TIMEOUT_MS: String(this.handshakeTimeoutMs) };
    return spawnClient({ name: 'osprey-compiled-client', command: compiledClientExecutable(), args: [url], env });
  },
};

export const CLIENT_TARGETS: ClientTarget[] = [pythonClient, commandClientTarget('osprey-c-runtime', OSPREY_ECHO_CLIENT), compiledOspreyClient];

/**
 * Characterisation only (never in the default run): npm `ws` and uWebSockets.js graded by the
 * same strict table, to see which cases a lenient implementation fails (docs/WEBSOCKET-RUNTIME.md#conformance-cases notes
 * uWS.js drops TCP instead of sending 1002). Select with CONFORMANCE_TARGETS=ws,uws.
 */
function nodeServerTarget(name: string, start: (path: string) => Promise<PeerProcess>): ServerTarget {
  const pending: Partial<Record<ServerFeature, string>> = {};
  for (const f of ['maxMessage', 'maxFragments', 'handshakeTimeoutMs', 'closeTimeoutMs', 'idleTimeoutMs', 'messageTimeoutMs', 'maxConnections', 'origins', 'subprotocols'] as const) {
    pending[f] = `${name} echo peer does not configure ${f}`;
  }
  return {
    name,
    unavailable: () => null,
    pending,
    policy: STRICT_POLICY,
    start(cfg = {}) {
      assertSupported({ name, pending }, { ...cfg, handshakeTimeoutMs: undefined });
      return start(cfg.path ?? '/');
    },
  };
}
/**
 * The C testee built with -fsanitize=address,undefined (build/tools/asan/ws-echo-server), for
 * tests/runtime/asan-conformance.test.ts: selected with CONFORMANCE_TARGETS=osprey-c-runtime-asan.
 * Sanitizer reports go to files under $OSPREY_SANITIZER_LOG_DIR (the test asserts none appear).
 * LeakSanitizer stays on (detect_leaks=1): the runtime keeps its connection state in malloc'd
 * memory referenced from malloc'd or static memory, never only from the Boehm GC heap, so there
 * are no false leak reports (checked on 2026-11-29 with the whole server suite). If a future change
 * makes the GC heap the only holder of a malloc'd block, LSan will report it: set detect_leaks=0
 * here and say why.
 */
export const OSPREY_ASAN_ECHO_SERVER = OSPREY_ECHO_SERVER.replace(/ws-echo-server$/, 'asan/ws-echo-server');
const asanServer = commandServerTarget('osprey-c-runtime-asan', OSPREY_ASAN_ECHO_SERVER, STRICT_POLICY, undefined, () => {
  const dir = process.env.OSPREY_SANITIZER_LOG_DIR;
  const log = dir ? `:log_path=${dir}/sanitizer` : '';
  return {
    ASAN_OPTIONS: `detect_leaks=1:abort_on_error=1:handle_abort=1${log}`,
    UBSAN_OPTIONS: `print_stacktrace=1:halt_on_error=1${log}`,
  };
});

const CHARACTERISATION_TARGETS: ServerTarget[] = [
  nodeServerTarget('ws', (path) => startWsEchoServer({ path })),
  nodeServerTarget('uws', (path) => startUwsEchoServer({ path: path === '/' ? '/' : path })),
  asanServer,
];

/**
 * Restrict targets with CONFORMANCE_TARGETS=name1,name2 (e.g. only the oracle); names of the
 * characterisation targets (ws, uws) add those.
 */
export function selected<T extends { name: string }>(all: T[]): T[] {
  const only = process.env.CONFORMANCE_TARGETS?.split(',').map((s) => s.trim());
  if (!only) return all;
  const pool = all === (SERVER_TARGETS as unknown) ? [...all, ...(CHARACTERISATION_TARGETS as unknown as T[])] : all;
  return pool.filter((t) => only.includes(t.name));
}
