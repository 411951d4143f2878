#!/usr/bin/env tsx
/**
 * HTTP benchmark: the compiled Osprey server (httpCreateServer/httpListen, every request's
 * handler a fiber) against uWebSockets.js's HTTP (`App().get`) and Node's `http`, on this
 * machine, in one invocation.
 *
 *   npm run bench:http                       3 rounds, 5 s per measurement
 *   npm run bench:http -- --quick            1 round, 2 s per measurement (smoke test)
 *   npm run bench:http -- --rounds 5 --duration 8 --connections 64
 *   npm run bench:http -- --server base=/path/to/osprey.mjs   also a server built by another checkout
 *   npm run bench:http -- --no-node                           without Node's http (shorter rounds)
 *
 * Method. The machine is shared and noisy, so nothing is compared across runs: each round measures
 * every server back to back (A B C A B C …) against the same long-running servers, and the report
 * gives medians over rounds and ratios against uWebSockets.js. Load: `wrk` (Debian), one thread,
 * `--connections` keep-alive connections, a small GET / answered with a 2-byte body. Around each
 * measurement the script reads the server's CPU time (/proc/PID/stat utime+stime, all threads),
 * so the second figure is requests per second of server CPU, and its context switches (all
 * threads' /proc/PID/task/TID/status), reported per request. A run with socket errors or non-2xx
 * answers is reported as failed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OUT_DIR = path.join(ROOT, 'build', 'bench');
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '64' },
    quick: { type: 'boolean', default: false },
    server: { type: 'string', multiple: true, default: [] },
    'no-node': { type: 'boolean', default: false },
  },
});
const rounds = values.quick ? 1 : Number(values.rounds);
const duration = values.quick ? 2 : Number(values.duration);
const connections = Number(values.connections);

const OSPREY_SOURCE = `
fn handle(method: String, path: String, headers: String, body: String) -> HttpResponse = HttpResponse {
    status: 200, headers: "", contentType: "text/plain", contentLength: 2, streamFd: -1,
    isComplete: true, partialBody: "hi", partialLength: 2
}
match httpCreateServer(port: PORT, address: "127.0.0.1") {
    Success { value } => match httpListen(serverID: value, handler: handle) {
        Success { value } => print("listening on http://127.0.0.1:PORT/")
        Error { message } => print("listen failed: \${message}")
    }
    Error { message } => print("create failed: \${message}")
}
sleep(86400000)
`;

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

interface Server {
  name: string;
  port: number;
  child: ChildProcess;
}

async function start(name: string, command: string, args: string[], port: number): Promise<Server> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} did not start`)), 15_000);
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('listening on')) {
        clearTimeout(t);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
  });
  return { name, port, child };
}

/** Voluntary and involuntary context switches of every thread of the process so far. */
function contextSwitches(pid: number): number {
  let n = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const st = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      for (const m of st.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) n += Number(m[1]);
    } catch {
      /* the thread ended meanwhile */
    }
  }
  return n;
}

function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime
}

interface Sample {
  rps: number;
  perCpuSecond: number;
  switchesPerRequest: number;
  ok: boolean;
  note: string;
}

function measure(s: Server): Sample {
  const before = cpuSeconds(s.child.pid!);
  const switchesBefore = contextSwitches(s.child.pid!);
  const r = spawnSync('wrk', ['-t1', `-c${connections}`, `-d${duration}s`, `http://127.0.0.1:${s.port}/`], { encoding: 'utf8', timeout: (duration + 30) * 1000 });
  const cpu = cpuSeconds(s.child.pid!) - before;
  const switches = contextSwitches(s.child.pid!) - switchesBefore;
  const out = r.stdout ?? '';
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors|Non-2xx/.exec(out);
  return { rps, perCpuSecond: cpu > 0 ? total / cpu : 0, switchesPerRequest: total > 0 ? switches / total : 0, ok: r.status === 0 && rps > 0 && !errors, note: errors ? out.split('\n').filter((l) => /errors|Non-2xx/.test(l)).join('; ') : '' };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : 0;
};

async function main(): Promise<void> {
  if (spawnSync('wrk', ['--version']).error) throw new Error('wrk is not installed (apt-get install wrk; scripts/system-deps.mjs lists it)');
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const ospPort = await freePort();
  const src = path.join(OUT_DIR, 'http-bench-server.osp');
  const exe = path.join(OUT_DIR, 'http-bench-server');
  fs.writeFileSync(src, OSPREY_SOURCE.replaceAll('PORT', String(ospPort)));
  const built = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'osprey.mjs'), 'build', src, '-o', exe], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`osprey build failed:\n${built.stderr}`);
  // Extra Osprey servers: the same program built by another checkout's compiler and runtime.
  const extra: Server[] = [];
  for (const spec of values.server as string[]) {
    const eq = spec.indexOf('=');
    if (eq <= 0) throw new Error(`--server wants NAME=PATH/TO/bin/osprey.mjs, got ${spec}`);
    const name = spec.slice(0, eq);
    const port = await freePort();
    const xsrc = path.join(OUT_DIR, `http-bench-server-${name}.osp`);
    const xexe = path.join(OUT_DIR, `http-bench-server-${name}`);
    fs.writeFileSync(xsrc, OSPREY_SOURCE.replaceAll('PORT', String(port)));
    const b = spawnSync(process.execPath, [spec.slice(eq + 1), 'build', xsrc, '-o', xexe], { encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`${name}: osprey build failed:\n${b.stderr}`);
    extra.push(await start(name, xexe, [], port));
  }
  const peers = path.join(ROOT, 'scripts', 'bench', 'http-peers.mjs');
  const uwsPort = await freePort();
  const nodePort = await freePort();
  const servers = [
    await start('osprey', exe, [], ospPort),
    ...extra,
    await start('uws', process.execPath, [peers, 'uws', String(uwsPort)], uwsPort),
    ...(values['no-node'] ? [] : [await start('node', process.execPath, [peers, 'node', String(nodePort)], nodePort)]),
  ];
  const samples = new Map<string, Sample[]>(servers.map((s) => [s.name, []]));
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const s of servers) {
        const m = measure(s);
        samples.get(s.name)!.push(m);
        console.log(`round ${round} ${s.name.padEnd(6)} ${m.ok ? '' : 'FAILED '}${Math.round(m.rps)} req/s, ${Math.round(m.perCpuSecond)} req per server CPU-second, ${m.switchesPerRequest.toFixed(3)} context switches per request ${m.note}`);
      }
    }
  } finally {
    for (const s of servers) s.child.kill('SIGTERM');
  }
  const ref = samples.get('uws')!.filter((m) => m.ok);
  const refRps = median(ref.map((m) => m.rps));
  const refCpu = median(ref.map((m) => m.perCpuSecond));
  const lines = [
    `HTTP GET / (2-byte body), wrk -t1 -c${connections}, ${duration} s x ${rounds} rounds, interleaved; ${os.cpus().length} cores; medians; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} at the end`,
    '',
    '| server | req/s | vs uWS | req per server CPU-s | vs uWS | context switches per request |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const s of servers) {
    const ok = samples.get(s.name)!.filter((m) => m.ok);
    const rps = median(ok.map((m) => m.rps));
    const cpu = median(ok.map((m) => m.perCpuSecond));
    const sw = median(ok.map((m) => m.switchesPerRequest));
    lines.push(`| ${s.name} | ${Math.round(rps)} | ${(rps / refRps).toFixed(2)} | ${Math.round(cpu)} | ${(cpu / refCpu).toFixed(2)} | ${sw.toFixed(3)} |${ok.length < rounds ? ` (${rounds - ok.length} failed runs)` : ''}`);
  }
  const report = lines.join('\n');
  console.log(`\n${report}`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  fs.writeFileSync(path.join(OUT_DIR, `http-bench-${stamp}.md`), report + '\n');
  fs.writeFileSync(path.join(OUT_DIR, 'http-bench-latest.md'), report + '\n');
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
