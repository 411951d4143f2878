#!/usr/bin/env tsx
/**
 * WebSocket benchmark: our runtime's echo server against uWebSockets.js and `ws`, on this
 * machine, in one invocation.
 *
 *   npm run bench:ws                      3 rounds, 5 s per measurement (about 6 minutes)
 *   npm run bench:ws -- --quick           1 round, 1.5 s per measurement (smoke test)
 *   npm run bench:ws -- --rounds 5 --duration 8 --scenarios pingpong-32,flood-32
 *   npm run bench:ws -- --servers osprey,uws --server compiled=build/examples/echo-server
 *
 * Method. Machines here are shared and noisy, so nothing is compared across runs: every round
 * runs every scenario on every server back to back (A B C A B C ...), each measurement against a
 * freshly started server, and the report gives medians over rounds and ratios against
 * uWebSockets.js. The load comes from build/tools/ws-loadgen (runtime-c/tools/ws_loadgen.c), one C
 * process that validates every echoed byte; a run with any error counts as failed. Around the
 * measured window (the loadgen's `@@measure-start` / `@@measure-end` markers) the script reads
 * the server's CPU time (/proc/PID/stat utime+stime, all threads) and the machine's CPU time
 * (/proc/stat), so each run also shows how busy the load generator and other processes were.
 *
 * Metrics: messages (deliveries for broadcast) per second, messages per second of server CPU,
 * round-trip latency percentiles, server peak RSS (VmHWM), and for the idle scenario the resident
 * memory per held connection ((VmRSS while holding - VmRSS before) / connections).
 *
 * Servers are entries of SERVERS below; a server that lacks a capability a scenario needs is
 * skipped with a note. Our runtime's `broadcast` and `handler-echo` capabilities come from
 * scripts/bench/osprey_broadcast_server.c (websocketServerOnMessage with websocketServerBroadcast,
 * or with websocketServerSend to the sender: the echo an application writes); the echo
 * scenarios use ws-echo-server's built-in echo, which never leaves the I/O thread. `--server NAME=PATH` adds any
 * executable that follows the ws-echo-server command line (a compiled Osprey program later).
 *
 * Results: a table on stdout, and build/bench/ws-bench-<timestamp>.{json,md} (also copied to
 * ws-bench-latest.{json,md}).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { $ } from 'zx';
import { RUNTIME_CFLAGS, RUNTIME_INCLUDE_DIR, RUNTIME_LINK_LIBS, runtimeLibrary } from '../../runtime-bindings/toolchain.ts';

$.verbose = false;

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HOST = '127.0.0.1';
const LOADGEN = path.join(ROOT, 'build', 'tools', 'ws-loadgen');
const OSPREY_ECHO_SERVER = path.join(ROOT, 'build', 'tools', 'ws-echo-server');
/** Our runtime's broadcast, until ws-echo-server (or a compiled Osprey program) has a mode for it. */
const OSPREY_BROADCAST_SOURCE = path.join(ROOT, 'scripts', 'bench', 'osprey_broadcast_server.c');
const OSPREY_BROADCAST_SERVER = path.join(ROOT, 'build', 'bench', 'osprey-broadcast-server');
const BENCH_DIR = path.join(ROOT, 'scripts', 'bench');
const OUT_DIR = path.join(ROOT, 'build', 'bench');
const REFERENCE = 'uws';
const LISTENING_LINE = /listening on (ws:\/\/([^\s:/]+|\[[^\]]+\]):(\d+)(\/\S*)?)/;
/** The idle scenario holds 10,000 connections; each side needs a descriptor per connection. */
const NOFILE_WANTED = 20_000;
const CLK_TCK = 100; // Linux USER_HZ; checked against `getconf CLK_TCK` at start-up

// ---- Binary snapshots ----------------------------------------------------------------------

/**
 * Colleagues rebuild build/tools/ while a benchmark runs; a binary replaced mid-run would mix
 * versions (or fail with "Permission denied" while the linker writes it). main() copies every
 * executable it will run into a private directory first, and launches use the copies.
 */
const SNAPSHOTS = new Map<string, string>();
const SNAPSHOT_DIR = path.join(os.tmpdir(), `ws-bench-${process.pid}`);
const snap = (exe: string): string => SNAPSHOTS.get(exe) ?? exe;

function snapshotBinaries(executables: string[]): void {
  fs.mkdirSync(SNAPSHOT_DIR, { recursive: true });
  for (const exe of executables) {
    if (SNAPSHOTS.has(exe) || !fs.existsSync(exe)) continue;
    const copy = path.join(SNAPSHOT_DIR, `${SNAPSHOTS.size}-${path.basename(exe)}`);
    fs.copyFileSync(exe, copy);
    fs.chmodSync(copy, 0o755);
    SNAPSHOTS.set(exe, copy);
  }
}

function removeSnapshots(): void {
  fs.rmSync(SNAPSHOT_DIR, { recursive: true, force: true });
}

// ---- Servers -------------------------------------------------------------------------------

type Capability = 'echo' | 'broadcast' | 'handler-echo';

interface Launch {
  command: string;
  args: string[];
  /** Keep stdin as an open pipe (our C tools stop on stdin EOF). */
  stdinPipe?: boolean;
  /** Extra environment for the server. */
  env?: Record<string, string>;
  /** Extra load generator flags this server needs for this capability (e.g. `--text`). */
  loadgenArgs?: string[];
}

interface ServerSpec {
  id: string;
  title: string;
  /** Why the server cannot run here, or null. */
  unavailable(): string | null;
  /** How to start it per capability; a missing capability skips the scenarios that need it. */
  launch: Partial<Record<Capability, (port: number) => Launch>>;
  /** Shown when a scenario is skipped for a missing capability. */
  missing?: Partial<Record<Capability, string>>;
  /** Native executables to snapshot before the runs. */
  executables?: string[];
}

function nodeServer(script: string, extra: string[] = []): (port: number) => Launch {
  return (port) => ({ command: process.execPath, args: [path.join(BENCH_DIR, script), '--host', HOST, '--port', String(port), ...extra] });
}

/**
 * Any executable with the ws-echo-server command line (`--port P --host H`, stops on stdin EOF).
 * `broadcastExecutable`, if given, has the same command line and relays every message to all
 * clients.
 */
function commandServer(
  id: string,
  executable: string,
  title = `${id} (${path.relative(ROOT, executable)})`,
  broadcastExecutable?: string,
  extraEnv: Record<string, string> = {},
): ServerSpec {
  // The runtime answers 503 above OSPREY_WS_MAX_CONNECTIONS (default 4096) and above the
  // per-address caps (256 connections, 16 unfinished handshakes from one address); the Node
  // servers have no such caps, and every load generator connection comes from 127.0.0.1, so
  // raise them above the idle scenario's 10,000 connections.
  const launch = (exe: string, extra: string[] = []) => (port: number): Launch => ({
    command: snap(exe),
    args: ['--port', String(port), '--host', HOST, ...extra],
    stdinPipe: true,
    env: {
      OSPREY_WS_MAX_CONNECTIONS: String(NOFILE_WANTED),
      OSPREY_WS_MAX_CONNECTIONS_PER_IP: String(NOFILE_WANTED),
      OSPREY_WS_MAX_HANDSHAKES_PER_IP: String(NOFILE_WANTED),
      ...extraEnv,
    },
  });
  const spec: ServerSpec = {
    id,
    title,
    unavailable: () => (fs.existsSync(executable) ? null : `${path.relative(ROOT, executable)} is not built`),
    launch: { echo: launch(executable) },
    missing: {
      broadcast: `${path.basename(executable)} has no broadcast mode yet`,
      'handler-echo': `${path.basename(executable)} echoes on the I/O thread, without a handler`,
    },
    executables: [executable],
  };
  if (broadcastExecutable && fs.existsSync(broadcastExecutable)) {
    spec.launch.broadcast = launch(broadcastExecutable);
    spec.launch['handler-echo'] = launch(broadcastExecutable, ['--echo']);
    spec.executables!.push(broadcastExecutable);
  }
  return spec;
}

/**
 * Builds scripts/bench/osprey_broadcast_server.c against the release runtime archive (only when
 * the source or the archive changed). Returns the executable, or undefined with a warning.
 */
async function buildOspreyBroadcastServer(): Promise<string | undefined> {
  const lib = runtimeLibrary('release');
  if (!fs.existsSync(lib)) return undefined;
  const mtime = (f: string) => (fs.existsSync(f) ? fs.statSync(f).mtimeMs : 0);
  if (mtime(OSPREY_BROADCAST_SERVER) > Math.max(mtime(OSPREY_BROADCAST_SOURCE), mtime(lib))) return OSPREY_BROADCAST_SERVER;
  fs.mkdirSync(path.dirname(OSPREY_BROADCAST_SERVER), { recursive: true });
  const r = await $({ nothrow: true })`${process.env.CC ?? 'gcc'} ${RUNTIME_CFLAGS} -O2 -g -I${RUNTIME_INCLUDE_DIR} ${OSPREY_BROADCAST_SOURCE} ${lib} -o ${OSPREY_BROADCAST_SERVER} ${RUNTIME_LINK_LIBS}`;
  if (r.exitCode !== 0) {
    console.error(`warning: cannot build ${path.relative(ROOT, OSPREY_BROADCAST_SERVER)}; osprey broadcast is skipped\n${r.stderr.trim()}`);
    return undefined;
  }
  return OSPREY_BROADCAST_SERVER;
}

function uwsUnavailable(): string | null {
  try {
    const code = `const u=require('@trufflesuite/uws-js-unofficial');process.exit(/native code/.test(String(u.App))?0:3)`;
    const r = spawnSyncStatus(process.execPath, ['-e', code]);
    return r === 0 ? null : 'uWebSockets.js did not load its native binary (String(uws.App) is not native code)';
  } catch (e) {
    return `uWebSockets.js: ${(e as Error).message}`;
  }
}

/**
 * Our runtime twice, the same binaries: with one I/O loop (OSPREY_IO_THREADS=1, the figures
 * earlier reports give) and with LOOPS_N loops (one per core here), so the report shows what
 * the loops per core buy side by side (column "x 1 loop": osprey-Nio / osprey, paired by
 * round).
 */
const LOOPS_N = 2;
const ONE_LOOP = 'osprey';
const N_LOOPS = `osprey-${LOOPS_N}io`;
const OSPREY_VARIANTS: { id: string; loops: number }[] = [
  { id: ONE_LOOP, loops: 1 },
  { id: N_LOOPS, loops: LOOPS_N },
];
const ospreyTitle = (loops: number) =>
  `osprey runtime, OSPREY_IO_THREADS=${loops} (build/tools/ws-echo-server; broadcast: scripts/bench/osprey_broadcast_server.c)`;
const ospreyServer = (id: string, loops: number, broadcastExecutable?: string) =>
  commandServer(id, OSPREY_ECHO_SERVER, ospreyTitle(loops), broadcastExecutable, { OSPREY_IO_THREADS: String(loops) });

/** The built-in servers; the `osprey` ones are completed in main() once the broadcast harness is built. */
const SERVERS: ServerSpec[] = [
  ...OSPREY_VARIANTS.map((v) => ospreyServer(v.id, v.loops)),
  {
    id: 'uws',
    title: 'uWebSockets.js (native, publish/subscribe broadcast)',
    unavailable: uwsUnavailable,
    // Its echo already answers from the message handler (ws.send in `message`).
    launch: { echo: nodeServer('uws-echo-server.mjs'), broadcast: nodeServer('uws-echo-server.mjs', ['--broadcast']), 'handler-echo': nodeServer('uws-echo-server.mjs') },
  },
  {
    id: 'ws',
    title: 'ws 8 (bufferutil, loop broadcast)',
    unavailable: () => null,
    launch: { echo: nodeServer('ws-echo-server.mjs'), broadcast: nodeServer('ws-echo-server.mjs', ['--broadcast']), 'handler-echo': nodeServer('ws-echo-server.mjs') },
  },
];

// ---- Scenarios -----------------------------------------------------------------------------

interface Scenario {
  id: string;
  title: string;
  needs: Capability;
  kind: 'traffic' | 'idle';
  connections: number;
  size: number;
  mode: 'pingpong' | 'flood' | 'broadcast' | 'idle';
  window?: number;
  /** Extra load generator flags for every server in this scenario. */
  loadgenArgs?: string[];
}

const SCENARIOS: Scenario[] = [
  { id: 'pingpong-32', title: '100 connections x 32 B ping-pong', needs: 'echo', kind: 'traffic', mode: 'pingpong', connections: 100, size: 32 },
  { id: 'pingpong-16k', title: '100 connections x 16 KiB ping-pong', needs: 'echo', kind: 'traffic', mode: 'pingpong', connections: 100, size: 16384 },
  { id: 'flood-32', title: '100 connections x 32 B flood, 16 in flight each', needs: 'echo', kind: 'traffic', mode: 'flood', connections: 100, size: 32, window: 16 },
  // Text: our runtime's ABI hands message handlers text only, so every server relays text here.
  { id: 'broadcast-1k', title: '1 KiB text broadcast to 1,000 connections, 16 in flight (deliveries/s)', needs: 'broadcast', kind: 'traffic', mode: 'broadcast', connections: 1000, size: 1024, window: 16, loadgenArgs: ['--text'] },
  // An application's echo: our server runs websocketServerOnMessage + websocketServerSend
  // (scripts/bench/osprey_broadcast_server.c --echo: handler fibers, whose sends their own
  // thread writes or posts to the I/O thread); uWS and ws answer from their message callbacks as in the echo scenarios. Text,
  // since handlers take text.
  { id: 'handler-pingpong-32', title: 'handler echo: 100 connections x 32 B text ping-pong', needs: 'handler-echo', kind: 'traffic', mode: 'pingpong', connections: 100, size: 32, loadgenArgs: ['--text'] },
  { id: 'handler-flood-32', title: 'handler echo: 100 connections x 32 B text flood, 16 in flight each', needs: 'handler-echo', kind: 'traffic', mode: 'flood', connections: 100, size: 32, window: 16, loadgenArgs: ['--text'] },
  { id: 'idle-10k', title: '10,000 idle connections (memory per connection)', needs: 'echo', kind: 'idle', mode: 'idle', connections: 10_000, size: 32 },
];

// ---- Command line --------------------------------------------------------------------------

interface Options {
  quick: boolean;
  rounds: number;
  duration: number;
  warmup: number;
  idleHold: number;
  scenarios: Scenario[];
  servers: ServerSpec[];
  pin: boolean;
  build: boolean;
  out: string | null;
}

function usage(exitCode: number): never {
  console.log(`usage: npm run bench:ws -- [options]
  --quick                 1 round, 1.5 s measurements (smoke test)
  --rounds N              rounds of every scenario on every server (default 3)
  --duration S            measured seconds per run (default 5)
  --warmup S              warm-up seconds per run (default 1)
  --idle-hold S           seconds the idle scenario holds its connections (default 3)
  --scenarios a,b         subset of: ${SCENARIOS.map((s) => s.id).join(', ')}
  --servers a,b           subset of the server ids (default: all available)
  --server NAME=PATH[,BROADCAST_PATH]
                          add an executable with the ws-echo-server command line (always run);
                          BROADCAST_PATH: one with the same command line that relays to all
  --pin                   pin each server to CPU 0 and the load generator to CPU 1 (taskset)
  --no-build              do not run scripts/build-runtime.ts --check first
  --out FILE              also write the JSON result to FILE`);
  process.exit(exitCode);
}

function parseOptions(argv: string[]): Options {
  const o: Options = { quick: false, rounds: 3, duration: 5, warmup: 1, idleHold: 3, scenarios: SCENARIOS, servers: SERVERS, pin: false, build: true, out: null };
  let scenarioFilter: string[] | null = null;
  let serverFilter: string[] | null = null;
  const added: string[] = []; // --server entries always run, whatever --servers says
  const set = { rounds: false, duration: false, warmup: false, idleHold: false };
  const num = (v: string | undefined, name: string): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n <= 0) {
      console.error(`${name} needs a positive number`);
      usage(2);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case '--quick': o.quick = true; break;
      case '--rounds': o.rounds = Math.round(num(argv[++i], a)); set.rounds = true; break;
      case '--duration': o.duration = num(argv[++i], a); set.duration = true; break;
      case '--warmup': o.warmup = Number(argv[++i]); set.warmup = true; break;
      case '--idle-hold': o.idleHold = num(argv[++i], a); set.idleHold = true; break;
      case '--scenarios': scenarioFilter = (argv[++i] ?? '').split(','); break;
      case '--servers': serverFilter = (argv[++i] ?? '').split(','); break;
      case '--server': {
        const m = /^([\w.-]+)=([^,]+)(?:,(.+))?$/.exec(argv[++i] ?? '');
        if (!m) usage(2);
        const echo = path.resolve(m[2]!);
        o.servers = [...o.servers, commandServer(m[1]!, echo, `${m[1]} (${echo})`, m[3] ? path.resolve(m[3]) : undefined)];
        added.push(m[1]!);
        break;
      }
      case '--pin': o.pin = true; break;
      case '--no-build': o.build = false; break;
      case '--out': o.out = argv[++i] ?? null; break;
      case '-h': case '--help': usage(0);
      default:
        console.error(`unknown option ${a}`);
        usage(2);
    }
  }
  if (o.quick) {
    if (!set.rounds) o.rounds = 1;
    if (!set.duration) o.duration = 1.5;
    if (!set.warmup) o.warmup = 0.5;
    if (!set.idleHold) o.idleHold = 1.5;
  }
  if (scenarioFilter) {
    const unknown = scenarioFilter.filter((id) => !SCENARIOS.some((s) => s.id === id));
    if (unknown.length) { console.error(`unknown scenario(s): ${unknown.join(', ')}`); usage(2); }
    o.scenarios = SCENARIOS.filter((s) => scenarioFilter!.includes(s.id));
  }
  if (serverFilter) {
    const unknown = serverFilter.filter((id) => !o.servers.some((s) => s.id === id));
    if (unknown.length) { console.error(`unknown server(s): ${unknown.join(', ')}`); usage(2); }
    o.servers = o.servers.filter((s) => serverFilter!.includes(s.id) || added.includes(s.id));
  }
  return o;
}

// ---- Processes and /proc -------------------------------------------------------------------

function spawnSyncStatus(cmd: string, args: string[]): number | null {
  return spawnSync(cmd, args, { stdio: 'ignore', cwd: ROOT, timeout: 15_000 }).status;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, HOST);
  await once(srv, 'listening');
  const addr = srv.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** utime + stime of every thread of pid, in clock ticks; null once the process is gone. */
function cpuTicks(pid: number): number | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // fields 14 and 15 of proc(5)
  } catch {
    return null;
  }
}

/** A field of /proc/PID/status in KiB (VmRSS, VmHWM), or null. */
function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Busy and total CPU ticks of the whole machine (/proc/stat "cpu" line). */
function machineTicks(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** Process groups (servers) and processes (load generators) to kill if the script is interrupted. */
const liveGroups = new Set<number>();
const liveChildren = new Set<ChildProcess>();
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    for (const pgid of liveGroups) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const c of liveChildren) c.kill('SIGKILL');
    console.error(`ws-bench: interrupted (${sig})`);
    process.exit(130);
  });
}

interface Running {
  child: ChildProcess;
  pid: number;
  url: string;
  output: string[];
  exited: Promise<void>;
}

function lineReader(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      onLine(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
    }
  });
  stream.on('end', () => {
    if (partial) onLine(partial);
  });
}

/** `sh -c 'ulimit -n N; exec CMD ARGS'` keeps the PID of CMD and raises its descriptor limit. */
function withLimits(cmd: string, args: string[], cpu: number | null): [string, string[]] {
  const pin = cpu === null ? [] : ['taskset', '-c', String(cpu)];
  const script = `ulimit -n ${NOFILE_WANTED} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  return ['sh', ['-c', script, 'sh', ...pin, cmd, ...args]];
}

async function startServer(launch: Launch, cpu: number | null, name: string): Promise<Running> {
  const [cmd, args] = withLimits(launch.command, launch.args, cpu);
  const child = spawn(cmd, args, {
    cwd: ROOT,
    env: { ...process.env, ...launch.env },
    detached: true,
    stdio: [launch.stdinPipe ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  child.stdin?.on('error', () => {});
  const output: string[] = [];
  liveGroups.add(child.pid!);
  const exited = new Promise<void>((r) =>
    child.once('exit', () => {
      liveGroups.delete(child.pid!);
      r();
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no "listening on ws://..." within 10 s\n${output.join('\n')}`)), 10_000);
    const onLine = (line: string) => {
      output.push(line);
      const m = LISTENING_LINE.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[4] ? m[1]! : `${m[1]}/`);
      }
    };
    lineReader(child.stdout!, onLine);
    lineReader(child.stderr!, onLine);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${name} exited before listening (code ${child.exitCode}, signal ${child.signalCode})\n${output.join('\n')}`));
    });
  });
  return { child, pid: child.pid!, url, output, exited };
}

async function stopServer(s: Running): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const kill = (sig: NodeJS.Signals) => {
    try {
      process.kill(-s.pid, sig);
    } catch {
      /* already gone */
    }
  };
  kill('SIGTERM');
  s.child.stdin?.end();
  const timer = setTimeout(() => kill('SIGKILL'), 3000);
  await s.exited;
  clearTimeout(timer);
}

// ---- One measurement -----------------------------------------------------------------------

interface LoadgenReport {
  msgs_per_s: number;
  messages: number;
  duration_s: number;
  connect_ms: number;
  opened: number;
  client_cpu_s: number;
  latency_us: { mean: number; p50: number; p90: number; p99: number; p999: number; max: number; samples: number };
  errors: Record<string, number> & { total: number };
  first_error: string;
  ok: boolean;
}

interface RunResult {
  server: string;
  scenario: string;
  round: number;
  ok: boolean;
  error?: string;
  msgsPerSec?: number;
  windowS?: number;
  serverCpuS?: number;
  msgsPerServerCpuS?: number;
  serverCpuPct?: number;
  clientCpuPct?: number;
  /** CPU used by everything else on the machine during the window, in % of all cores. */
  otherCpuPct?: number;
  latencyUs?: { p50: number; p90: number; p99: number; p999: number; max: number };
  peakRssKiB?: number;
  baseRssKiB?: number;
  heldRssKiB?: number;
  bytesPerConnection?: number;
  connectMs?: number;
  loadgen?: LoadgenReport;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runOne(server: ServerSpec, sc: Scenario, round: number, o: Options): Promise<RunResult> {
  const base: RunResult = { server: server.id, scenario: sc.id, round, ok: false };
  const launch = server.launch[sc.needs]!(await freePort());
  let srv: Running;
  try {
    srv = await startServer(launch, o.pin ? 0 : null, server.id);
  } catch (e) {
    return { ...base, error: (e as Error).message.split('\n')[0] };
  }
  try {
    await sleep(150); // let the server settle before the baseline memory reading
    const baseRss = statusKiB(srv.pid, 'VmRSS');
    const duration = sc.kind === 'idle' ? o.idleHold : o.duration;
    const lgArgs = [
      '--url', srv.url, '--mode', sc.mode, '-c', String(sc.connections), '-s', String(sc.size),
      '-d', String(duration), '--warmup', String(o.warmup), '--label', `${server.id}/${sc.id}/r${round}`,
      ...(sc.window ? ['-w', String(sc.window)] : []),
      ...(sc.loadgenArgs ?? []),
      ...(launch.loadgenArgs ?? []),
    ];
    const [cmd, args] = withLimits(snap(LOADGEN), lgArgs, o.pin ? 1 : null);
    const lg = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    liveChildren.add(lg);
    lg.once('exit', () => liveChildren.delete(lg));
    const stdout: string[] = [];
    const stderr: string[] = [];
    let cpu0: number | null = null, cpu1: number | null = null;
    let m0 = machineTicks(), m1 = m0;
    let rssHeld: number | null = null;
    let sampler: NodeJS.Timeout | undefined;
    lineReader(lg.stdout!, (l) => stdout.push(l));
    lineReader(lg.stderr!, (l) => {
      stderr.push(l);
      if (l.startsWith('@@measure-start')) {
        cpu0 = cpuTicks(srv.pid);
        m0 = machineTicks();
        if (sc.kind === 'idle') {
          sampler = setInterval(() => {
            rssHeld = statusKiB(srv.pid, 'VmRSS') ?? rssHeld;
          }, 100);
        }
      } else if (l.startsWith('@@measure-end')) {
        cpu1 = cpuTicks(srv.pid);
        m1 = machineTicks();
        clearInterval(sampler);
      }
    });
    const [code] = (await once(lg, 'exit')) as [number | null];
    clearInterval(sampler);
    await sleep(20); // the last output chunks
    const peak = statusKiB(srv.pid, 'VmHWM');
    const serverAlive = srv.child.exitCode === null && srv.child.signalCode === null;
    const jsonLine = stdout.filter((l) => l.startsWith('{')).pop();
    if (!jsonLine) {
      return { ...base, error: `loadgen exit ${code}, no report: ${stderr.filter((l) => !l.startsWith('@@')).slice(-3).join(' | ')}` };
    }
    const rep = JSON.parse(jsonLine) as LoadgenReport;
    const windowS = rep.duration_s;
    const serverCpuS = cpu0 !== null && cpu1 !== null ? (cpu1 - cpu0) / CLK_TCK : undefined;
    const machineBusyS = (m1.busy - m0.busy) / CLK_TCK;
    const cores = os.cpus().length;
    const r: RunResult = {
      ...base,
      ok: code === 0 && rep.ok && serverAlive,
      msgsPerSec: rep.msgs_per_s,
      windowS,
      serverCpuS,
      msgsPerServerCpuS: serverCpuS ? rep.messages / serverCpuS : undefined,
      serverCpuPct: serverCpuS !== undefined && windowS > 0 ? (100 * serverCpuS) / windowS : undefined,
      clientCpuPct: windowS > 0 ? (100 * rep.client_cpu_s) / windowS : undefined,
      otherCpuPct:
        serverCpuS !== undefined && windowS > 0
          ? Math.max(0, (100 * (machineBusyS - serverCpuS - rep.client_cpu_s)) / (windowS * cores))
          : undefined,
      latencyUs: { p50: rep.latency_us.p50, p90: rep.latency_us.p90, p99: rep.latency_us.p99, p999: rep.latency_us.p999, max: rep.latency_us.max },
      peakRssKiB: peak ?? undefined,
      baseRssKiB: baseRss ?? undefined,
      heldRssKiB: rssHeld ?? undefined,
      bytesPerConnection:
        sc.kind === 'idle' && rssHeld !== null && baseRss !== null && rep.opened > 0 ? ((rssHeld - baseRss) * 1024) / rep.opened : undefined,
      connectMs: rep.connect_ms,
      loadgen: rep,
    };
    if (!r.ok) {
      r.error = !serverAlive
        ? `server died (${srv.output.slice(-2).join(' | ')})`
        : rep.first_error || `loadgen exit ${code}${rep.messages === 0 ? ' (no messages)' : ''}`;
    }
    return r;
  } finally {
    await stopServer(srv);
  }
}

// ---- Aggregation and reports ---------------------------------------------------------------

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1]! + s[m]!) / 2;
}

interface Summary {
  server: string;
  scenario: string;
  runs: number;
  failed: number;
  skipped?: string;
  errors: string[];
  msgsPerSec?: number;
  msgsPerSecMin?: number;
  msgsPerSecMax?: number;
  msgsPerServerCpuS?: number;
  serverCpuPct?: number;
  clientCpuPct?: number;
  otherCpuPct?: number;
  p50Us?: number;
  p99Us?: number;
  p999Us?: number;
  peakRssKiB?: number;
  heldRssKiB?: number;
  bytesPerConnection?: number;
  connectMs?: number;
  /** Ratios against the reference server (uWebSockets.js), median of per-round ratios: >1 = more, <1 = less. */
  vsRef?: { msgsPerSec?: number; msgsPerServerCpuS?: number; p50?: number; p99?: number; peakRss?: number; bytesPerConnection?: number };
  /** The N-loop osprey against the 1-loop one (same binaries), median of per-round ratios. */
  vsOneLoop?: { msgsPerSec?: number; msgsPerServerCpuS?: number; p99?: number };
}

/** Median over rounds of (a's run / b's run of the same round). */
function pairedRatio(results: RunResult[], scenario: string, a: string, b: string, f: (r: RunResult) => number | undefined): number | undefined {
  const bRuns = new Map(results.filter((r) => r.server === b && r.scenario === scenario && r.ok).map((r) => [r.round, r]));
  return median(
    results
      .filter((r) => r.server === a && r.scenario === scenario && r.ok && bRuns.has(r.round))
      .map((r) => {
        const x = f(r), y = f(bRuns.get(r.round)!);
        return x !== undefined && y !== undefined && y > 0 ? x / y : undefined;
      })
      .filter((x): x is number => x !== undefined && Number.isFinite(x)),
  );
}

function summarize(results: RunResult[], scenarios: Scenario[], servers: ServerSpec[], skips: Map<string, string>): Summary[] {
  const out: Summary[] = [];
  for (const sc of scenarios) {
    const rows: Summary[] = [];
    for (const sv of servers) {
      const key = `${sv.id}/${sc.id}`;
      const runs = results.filter((r) => r.server === sv.id && r.scenario === sc.id);
      const ok = runs.filter((r) => r.ok);
      const med = (f: (r: RunResult) => number | undefined) => median(ok.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x)));
      const rates = ok.map((r) => r.msgsPerSec!).filter((x) => x !== undefined);
      rows.push({
        server: sv.id,
        scenario: sc.id,
        runs: runs.length,
        failed: runs.length - ok.length,
        skipped: skips.get(key),
        errors: [...new Set(runs.filter((r) => !r.ok).map((r) => r.error ?? 'failed'))],
        msgsPerSec: med((r) => r.msgsPerSec),
        msgsPerSecMin: rates.length ? Math.min(...rates) : undefined,
        msgsPerSecMax: rates.length ? Math.max(...rates) : undefined,
        msgsPerServerCpuS: med((r) => r.msgsPerServerCpuS),
        serverCpuPct: med((r) => r.serverCpuPct),
        clientCpuPct: med((r) => r.clientCpuPct),
        otherCpuPct: med((r) => r.otherCpuPct),
        p50Us: med((r) => r.latencyUs?.p50),
        p99Us: med((r) => r.latencyUs?.p99),
        p999Us: med((r) => r.latencyUs?.p999),
        peakRssKiB: med((r) => r.peakRssKiB),
        heldRssKiB: med((r) => r.heldRssKiB),
        bytesPerConnection: med((r) => r.bytesPerConnection),
        connectMs: med((r) => r.connectMs),
      });
    }
    // Ratios are paired by round (this server's run / the reference's run of the same round, a
    // few seconds apart), then the median over rounds is taken: slow drifts in machine load
    // cancel out better than in a ratio of medians.
    const refRuns = new Map(results.filter((r) => r.server === REFERENCE && r.scenario === sc.id && r.ok).map((r) => [r.round, r]));
    if (refRuns.size > 0) {
      for (const row of rows) {
        const pairs = results
          .filter((r) => r.server === row.server && r.scenario === sc.id && r.ok && refRuns.has(r.round))
          .map((r) => [r, refRuns.get(r.round)!] as const);
        const paired = (f: (r: RunResult) => number | undefined) =>
          median(
            pairs
              .map(([a, b]) => {
                const x = f(a), y = f(b);
                return x !== undefined && y !== undefined && y > 0 ? x / y : undefined;
              })
              .filter((x): x is number => x !== undefined && Number.isFinite(x)),
          );
        row.vsRef = {
          msgsPerSec: paired((r) => r.msgsPerSec),
          msgsPerServerCpuS: paired((r) => r.msgsPerServerCpuS),
          p50: paired((r) => r.latencyUs?.p50),
          p99: paired((r) => r.latencyUs?.p99),
          peakRss: paired((r) => r.peakRssKiB),
          bytesPerConnection: paired((r) => r.bytesPerConnection),
        };
      }
    }
    for (const row of rows) {
      if (row.server !== N_LOOPS) continue;
      row.vsOneLoop = {
        msgsPerSec: pairedRatio(results, sc.id, N_LOOPS, ONE_LOOP, (r) => r.msgsPerSec),
        msgsPerServerCpuS: pairedRatio(results, sc.id, N_LOOPS, ONE_LOOP, (r) => r.msgsPerServerCpuS),
        p99: pairedRatio(results, sc.id, N_LOOPS, ONE_LOOP, (r) => r.latencyUs?.p99),
      };
    }
    out.push(...rows);
  }
  return out;
}

const fmtInt = (x?: number) => (x === undefined ? '-' : Math.round(x).toLocaleString('en-US'));
const fmtX = (x?: number) => (x === undefined ? '-' : `${x.toFixed(2)}x`);
const fmtPct = (x?: number) => (x === undefined ? '-' : `${Math.round(x)}%`);
const fmtUs = (x?: number) => (x === undefined ? '-' : Math.round(x).toLocaleString('en-US'));
const fmtMiB = (kib?: number) => (kib === undefined ? '-' : (kib / 1024).toFixed(1));
const fmtSpread = (s: Summary) =>
  s.msgsPerSec && s.msgsPerSecMin !== undefined && s.msgsPerSecMax !== undefined && s.runs > 1
    ? `±${Math.round((50 * (s.msgsPerSecMax - s.msgsPerSecMin)) / s.msgsPerSec)}%`
    : '';

function tableFor(sc: Scenario, rows: Summary[]): { head: string[]; body: string[][]; notes: string[] } {
  const notes: string[] = [];
  for (const r of rows) {
    if (r.skipped) notes.push(`${r.server}: skipped: ${r.skipped}`);
    for (const e of r.errors) notes.push(`${r.server}: FAILED ${r.failed}/${r.runs}: ${e}`);
    if (r.clientCpuPct !== undefined && r.clientCpuPct > 90)
      notes.push(`${r.server}: the load generator used ${Math.round(r.clientCpuPct)}% of a core: the result may be generator-bound`);
  }
  if (sc.kind === 'idle') {
    return {
      head: ['server', 'conns', 'B/conn', 'x uWS', 'held RSS MiB', 'peak RSS MiB', 'x uWS', 'connect ms'],
      body: rows.filter((r) => !r.skipped).map((r) => [
        r.server, fmtInt(sc.connections), fmtInt(r.bytesPerConnection), fmtX(r.vsRef?.bytesPerConnection),
        fmtMiB(r.heldRssKiB), fmtMiB(r.peakRssKiB), fmtX(r.vsRef?.peakRss), fmtInt(r.connectMs),
      ]),
      notes,
    };
  }
  const unit = sc.mode === 'broadcast' ? 'deliv/s' : 'msg/s';
  return {
    head: ['server', unit, 'spread', 'x uWS', 'x 1 loop', `${unit} per srv CPU-s`, 'x uWS', 'p50 us', 'p99 us', 'p99.9 us', 'p99 x uWS', 'srv CPU', 'gen CPU', 'other CPU', 'peak RSS MiB'],
    body: rows.filter((r) => !r.skipped).map((r) => [
      r.server, fmtInt(r.msgsPerSec), fmtSpread(r), fmtX(r.vsRef?.msgsPerSec), fmtX(r.vsOneLoop?.msgsPerSec), fmtInt(r.msgsPerServerCpuS), fmtX(r.vsRef?.msgsPerServerCpuS),
      fmtUs(r.p50Us), fmtUs(r.p99Us), fmtUs(r.p999Us), fmtX(r.vsRef?.p99), fmtPct(r.serverCpuPct), fmtPct(r.clientCpuPct),
      fmtPct(r.otherCpuPct), fmtMiB(r.peakRssKiB),
    ]),
    notes,
  };
}

function textTable(head: string[], body: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...body.map(line)].join('\n');
}

function mdTable(head: string[], body: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...body.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

// ---- Main ----------------------------------------------------------------------------------

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  const tck = Number((await $`getconf CLK_TCK`.nothrow()).stdout.trim());
  if (tck && tck !== CLK_TCK) throw new Error(`CLK_TCK is ${tck}, this script assumes ${CLK_TCK}`);

  if (o.build) {
    const b = await $({ cwd: ROOT, nothrow: true })`npx tsx scripts/build-runtime.ts --check`;
    if (b.exitCode !== 0) console.error(`warning: build-runtime --check failed; using the binaries already built\n${b.stderr.trim().split('\n').slice(-5).join('\n')}`);
  }
  if (!fs.existsSync(LOADGEN)) throw new Error(`${LOADGEN} is missing: run npx tsx scripts/build-runtime.ts`);
  if (o.servers.some((s) => s.id.startsWith('osprey')) && o.scenarios.some((sc) => sc.needs === 'broadcast' || sc.needs === 'handler-echo')) {
    const exe = await buildOspreyBroadcastServer();
    for (const v of OSPREY_VARIANTS) {
      const i = o.servers.findIndex((s) => s.id === v.id);
      if (i >= 0) o.servers[i] = ospreyServer(v.id, v.loops, exe);
    }
  }

  const skips = new Map<string, string>();
  const servers: ServerSpec[] = [];
  for (const sv of o.servers) {
    const why = sv.unavailable();
    if (why) {
      console.error(`note: server ${sv.id} skipped: ${why}`);
      for (const sc of o.scenarios) skips.set(`${sv.id}/${sc.id}`, why);
    } else servers.push(sv);
  }
  for (const sv of servers)
    for (const sc of o.scenarios)
      if (!sv.launch[sc.needs]) skips.set(`${sv.id}/${sc.id}`, sv.missing?.[sc.needs] ?? `no ${sc.needs} capability`);

  snapshotBinaries([LOADGEN, ...servers.flatMap((sv) => sv.executables ?? [])]);
  process.once('exit', removeSnapshots);

  const started = new Date();
  const load0 = fs.readFileSync('/proc/loadavg', 'utf8').trim();
  const rev = (await $({ cwd: ROOT, nothrow: true })`git rev-parse --short HEAD`).stdout.trim();
  const dirty = (await $({ cwd: ROOT, nothrow: true })`git status --porcelain`).stdout.trim() !== '';
  console.log(
    `ws-bench: ${o.rounds} round(s) x ${o.scenarios.length} scenario(s) x ${servers.length} server(s); ` +
      `${o.duration} s measured after ${o.warmup} s warm-up (idle hold ${o.idleHold} s); ${os.cpus().length} cores; load ${load0}`,
  );

  const results: RunResult[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    for (const sc of o.scenarios) {
      for (const sv of servers) {
        if (skips.has(`${sv.id}/${sc.id}`)) continue;
        const r = await runOne(sv, sc, round, o);
        results.push(r);
        const what =
          sc.kind === 'idle'
            ? `${fmtInt(r.bytesPerConnection)} B/conn, peak ${fmtMiB(r.peakRssKiB)} MiB`
            : `${fmtInt(r.msgsPerSec)} ${sc.mode === 'broadcast' ? 'deliv' : 'msg'}/s, p99 ${fmtUs(r.latencyUs?.p99)} us, srv CPU ${fmtPct(r.serverCpuPct)}, gen CPU ${fmtPct(r.clientCpuPct)}, other ${fmtPct(r.otherCpuPct)}`;
        console.log(`[round ${round}/${o.rounds}] ${sc.id.padEnd(13)} ${sv.id.padEnd(10)} ${r.ok ? what : `FAILED: ${r.error}`}`);
      }
    }
  }

  const finished = new Date();
  const load1 = fs.readFileSync('/proc/loadavg', 'utf8').trim();
  const summary = summarize(results, o.scenarios, o.servers, skips);
  const meta = {
    started: started.toISOString(),
    finished: finished.toISOString(),
    host: os.hostname(),
    cpus: `${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}`,
    kernel: os.release(),
    node: process.version,
    git: `${rev}${dirty ? ' (uncommitted changes)' : ''}`,
    loadavgBefore: load0,
    loadavgAfter: load1,
    rounds: o.rounds,
    durationS: o.duration,
    warmupS: o.warmup,
    idleHoldS: o.idleHold,
    quick: o.quick,
    pinned: o.pin,
    reference: REFERENCE,
    servers: o.servers.map((s) => ({ id: s.id, title: s.title })),
  };

  const md: string[] = [
    `# WebSocket benchmark (${meta.started})`,
    '',
    `${meta.cpus}, Linux ${meta.kernel}, Node ${meta.node}, git ${meta.git}. ${o.rounds} round(s), interleaved; ` +
      `${o.duration} s measured after ${o.warmup} s warm-up per run; medians over rounds; ratios against uWebSockets.js ` +
      `are medians of per-round ratios (x uWS > 1 = more). Load average before ${load0}, after ${load1}.` +
      (o.quick ? ' **Quick run: numbers are indicative only.**' : ''),
    '',
    'Servers: ' + o.servers.map((s) => `\`${s.id}\` = ${s.title}`).join('; ') + '.',
    '',
  ];
  console.log('');
  for (const sc of o.scenarios) {
    const rows = summary.filter((s) => s.scenario === sc.id);
    const t = tableFor(sc, rows);
    console.log(`${sc.id}: ${sc.title}`);
    if (t.body.length) console.log(textTable(t.head, t.body));
    for (const n of t.notes) console.log(`  note: ${n}`);
    console.log('');
    md.push(`## ${sc.id}: ${sc.title}`, '');
    if (t.body.length) md.push(mdTable(t.head, t.body), '');
    for (const n of t.notes) md.push(`- ${n}`);
    if (t.notes.length) md.push('');
  }
  md.push(
    'Columns: spread = half the min-max range over rounds relative to the median; srv CPU = server CPU time / window ' +
      '(all threads; 100% = one core); gen CPU = load generator; other CPU = everything else on the machine in % of all cores ' +
      '(noise from other users); peak RSS = server VmHWM; B/conn = (VmRSS while holding - VmRSS before) / connections.',
    '',
  );

  fs.mkdirSync(OUT_DIR, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const json = JSON.stringify({ meta, summary, runs: results }, null, 2);
  const files = [`ws-bench-${stamp}.json`, 'ws-bench-latest.json'].map((f) => path.join(OUT_DIR, f));
  for (const f of files) fs.writeFileSync(f, json);
  for (const f of [`ws-bench-${stamp}.md`, 'ws-bench-latest.md']) fs.writeFileSync(path.join(OUT_DIR, f), md.join('\n'));
  if (o.out) fs.writeFileSync(o.out, json);
  console.log(`results: ${path.relative(ROOT, files[0]!)} and .md (also ws-bench-latest.*)`);

  const failed = results.filter((r) => !r.ok).length;
  if (failed) console.log(`${failed} run(s) FAILED`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`ws-bench: ${(e as Error).stack ?? e}`);
    process.exit(1);
  },
);
