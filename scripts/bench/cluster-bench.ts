#!/usr/bin/env tsx
/**
 * The cluster benchmark (docs/CLUSTER.md): broadcast deliveries per second and publish-to-delivery
 * latency of 3 WebSocket server processes sharing broadcasts through one Redis, against the same
 * topology built with uWebSockets.js + ioredis, and against a single Osprey process holding all
 * the connections (no Redis) — interleaved in one run (A B C A B C …), on this machine.
 *
 *   npm run bench:cluster                        3 rounds, 3 nodes × 1,000 connections, 5 s each
 *   npm run bench:cluster -- --quick             1 round, 3 × 300 connections, 2 s (smoke test)
 *   npm run bench:cluster -- --rounds 5 --connections 1000 --duration 8 --window 8 --rate 20
 *
 * Load: one process per node (scripts/bench/cluster-load.mjs) holds that node's connections; its
 * first connection publishes broadcasts, every connection counts every broadcast it receives from
 * any node. Two phases on the same connections: throughput (--window publishes in flight per
 * publisher, as fast as the whole system goes: deliveries/s) and latency (--rate publishes per
 * second per publisher, below saturation: p50/p99/p99.9 from publish to delivery). On a small
 * machine the load processes share the CPUs with the servers and Redis; the throughput phase then
 * measures the whole system, load generators included. The Osprey nodes run tests/cluster/node-program.ts built
 * with `osprey build` (-O2): a handler fiber per message calls websocketServerBroadcast, as an
 * application would. A real redis-server runs on a free loopback port, without persistence.
 *
 * Results: a table on stdout and build/bench/cluster-bench-latest.{md,json}.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_PROGRAM } from '../../tests/cluster/node-program.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OUT_DIR = path.join(ROOT, 'build', 'bench');
const NOFILE = 20_000;

interface Options {
  rounds: number;
  nodes: number;
  connections: number;
  durationS: number;
  warmupS: number;
  window: number;
  rate: number;
  payload: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { rounds: 3, nodes: 3, connections: 1000, durationS: 5, warmupS: 1, window: 8, rate: 20, payload: 64 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
      return v;
    };
    if (a === '--quick') Object.assign(o, { rounds: 1, connections: 300, durationS: 2, warmupS: 0.5 });
    else if (a === '--rounds') o.rounds = num();
    else if (a === '--nodes') o.nodes = num();
    else if (a === '--connections') o.connections = num();
    else if (a === '--duration') o.durationS = num();
    else if (a === '--window') o.window = num();
    else if (a === '--rate') o.rate = num();
    else if (a === '--payload') o.payload = num();
    else throw new Error(`unknown argument ${a} (see the header of scripts/bench/cluster-bench.ts)`);
  }
  return o;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

interface Proc {
  child: ChildProcess;
  lines: string[];
  waitLine(re: RegExp, ms: number): Promise<string>;
  stop(): Promise<void>;
}

const live = new Set<Proc>();

function start(name: string, command: string, args: string[], env: Record<string, string> = {}): Proc {
  // A higher descriptor limit for 1,000s of connections; `exec` keeps the PID.
  const child = spawn('sh', ['-c', `ulimit -n ${NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`, 'sh', command, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  child.stdin!.on('error', () => {});
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  for (const s of [child.stdout!, child.stderr!]) {
    let partial = '';
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => {
      partial += chunk;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        lines.push(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
      }
      for (const w of waiters.splice(0)) w();
    });
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const p: Proc = {
    child,
    lines,
    async waitLine(re, ms) {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = lines.find((l) => re.test(l));
        if (hit) return hit;
        if (child.exitCode !== null || Date.now() > deadline)
          throw new Error(`${name}: no line matching ${re} (${child.exitCode !== null ? 'exited' : 'timeout'}):\n${lines.slice(-20).join('\n')}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
    async stop() {
      live.delete(p);
      if (child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        /* gone */
      }
      const t = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, 3000);
      await exited;
      clearTimeout(t);
    },
  };
  live.add(p);
  return p;
}

process.on('exit', () => {
  for (const p of live)
    try {
      process.kill(-p.child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
});

type Topology = 'osprey-cluster' | 'uws-cluster' | 'osprey-single';
const TOPOLOGIES: Topology[] = ['osprey-cluster', 'uws-cluster', 'osprey-single'];
const TITLES: Record<Topology, string> = {
  'osprey-cluster': 'Osprey, N processes + Redis',
  'uws-cluster': 'uWebSockets.js + ioredis, N processes + Redis',
  'osprey-single': 'Osprey, 1 process, no Redis',
};

interface Run {
  topology: Topology;
  round: number;
  /** throughput phase: --window publishes in flight per publisher */
  deliveriesPerSec: number;
  busMessagesPerSec: number; // Redis pub/sub messages out: publishes/s × subscribed nodes
  serverCpuS: number;
  /** latency phase: --rate publishes per second per publisher */
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  rateDeliveriesPerSec: number;
  errors: number;
}

interface PhaseResult {
  deliveries: number;
  sent: number;
  errors: number;
  bucketNs: number;
  buckets: [number, number][];
}

function cpuSeconds(pid: number): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, USER_HZ 100
  } catch {
    return 0;
  }
}

async function runOnce(topology: Topology, round: number, o: Options, exe: string, redisPort: number): Promise<Run> {
  const channel = `bench-${process.pid}-${round}-${topology}`;
  const redisUrl = `redis://127.0.0.1:${redisPort}/0`;
  const servers: Proc[] = [];
  const ports: number[] = [];
  const osprEnv = {
    OSPREY_WS_MAX_CONNECTIONS: String(NOFILE),
    OSPREY_WS_MAX_CONNECTIONS_PER_IP: String(NOFILE),
    OSPREY_WS_MAX_HANDSHAKES_PER_IP: String(NOFILE),
  };
  const count = topology === 'osprey-single' ? 1 : o.nodes;
  try {
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      ports.push(port);
      const p =
        topology === 'uws-cluster'
          ? start(`uws-${i}`, process.execPath, [path.join(ROOT, 'scripts/bench/uws-cluster-node.mjs'), '--port', String(port), '--redis', redisUrl, '--channel', channel])
          : start(`osprey-${i}`, exe, [String(port), topology === 'osprey-single' ? '' : redisUrl, channel], osprEnv);
      servers.push(p);
      await p.waitLine(/listening on ws:/, 20_000);
    }
    const urlOf = (i: number) => `ws://127.0.0.1:${ports[i % ports.length]}/${topology === 'uws-cluster' ? '' : 'room'}`;
    const loads: Proc[] = [];
    for (let i = 0; i < o.nodes; i++)
      loads.push(
        start(`load-${i}`, process.execPath, [
          path.join(ROOT, 'scripts/bench/cluster-load.mjs'), '--url', urlOf(i), '--connections', String(o.connections), '--id', String(i),
          '--payload', String(o.payload), '--warmup-ms', String(o.warmupS * 1000), '--duration-ms', String(o.durationS * 1000),
        ]),
      );
    for (const l of loads) await l.waitLine(/^(ready|error)/, 120_000);
    for (const l of loads) if (l.lines.some((x) => x.startsWith('error'))) throw new Error(l.lines.join('\n'));
    const phase = async (command: string): Promise<{ results: PhaseResult[]; cpuS: number }> => {
      const before = loads.map((l) => l.lines.length);
      const cpu0 = servers.reduce((sum, p) => sum + cpuSeconds(p.child.pid!), 0);
      for (const l of loads) l.child.stdin!.write(`${command}\n`);
      const lines = await Promise.all(
        loads.map(async (l, i) => {
          const deadline = Date.now() + (o.warmupS + o.durationS) * 1000 + 60_000;
          for (;;) {
            const hit = l.lines.slice(before[i]).find((x) => x.startsWith('result '));
            if (hit) return hit;
            if (l.child.exitCode !== null || Date.now() > deadline) throw new Error(`load ${i}: no result for ${command}:\n${l.lines.slice(-10).join('\n')}`);
            await new Promise((r) => setTimeout(r, 50));
          }
        }),
      );
      const cpuS = servers.reduce((sum, p) => sum + cpuSeconds(p.child.pid!), 0) - cpu0;
      return { results: lines.map((r) => JSON.parse(r.slice('result '.length)) as PhaseResult), cpuS };
    };
    // Latency first: after the throughput phase the slowest receivers still drain queues for a
    // while, which would be measured as latency.
    const latency = await phase(`rate ${o.rate}`);
    const throughput = await phase(`window ${o.window}`);
    for (const l of loads) l.child.stdin!.write('quit\n');
    await Promise.all(loads.map((l) => l.stop()));
    const merged = new Map<number, number>();
    for (const r of latency.results) for (const [b, n] of r.buckets) merged.set(b, (merged.get(b) ?? 0) + n);
    const sorted = [...merged.entries()].sort((a, b) => a[0] - b[0]);
    const total = sorted.reduce((sum, [, n]) => sum + n, 0);
    const bucketNs = latency.results[0]!.bucketNs;
    const quantile = (q: number) => {
      let seen = 0;
      for (const [b, n] of sorted) if ((seen += n) >= q * total) return ((b + 1) * bucketNs) / 1e6;
      return NaN;
    };
    const sum = (rs: PhaseResult[], f: (r: PhaseResult) => number) => rs.reduce((acc, r) => acc + f(r), 0);
    const publishesPerSec = sum(throughput.results, (r) => r.sent) / (o.warmupS + o.durationS);
    return {
      topology,
      round,
      deliveriesPerSec: sum(throughput.results, (r) => r.deliveries) / o.durationS,
      busMessagesPerSec: topology === 'osprey-single' ? 0 : publishesPerSec * o.nodes,
      serverCpuS: throughput.cpuS,
      p50Ms: quantile(0.5),
      p99Ms: quantile(0.99),
      p999Ms: quantile(0.999),
      rateDeliveriesPerSec: sum(latency.results, (r) => r.deliveries) / o.durationS,
      errors: sum(throughput.results, (r) => r.errors) + sum(latency.results, (r) => r.errors),
    };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main() {
  const o = parseArgs(process.argv.slice(2));
  fs.mkdirSync(OUT_DIR, { recursive: true });
  for (const tool of ['redis-server']) if (spawnSync('which', [tool]).status !== 0) throw new Error(`${tool} is not installed (npm install installs it)`);
  const src = path.join(OUT_DIR, 'cluster-node.osp');
  const exe = path.join(OUT_DIR, 'cluster-node');
  fs.writeFileSync(src, NODE_PROGRAM);
  const built = spawnSync(process.execPath, [path.join(ROOT, 'bin/osprey.mjs'), 'build', src, '-o', exe], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`osprey build failed:\n${built.stderr}${built.stdout}`);
  const redisPort = await freePort();
  const redisDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-redis-'));
  const redis = start('redis', 'redis-server', ['--bind', '127.0.0.1', '--port', String(redisPort), '--save', '', '--appendonly', 'no', '--dir', redisDir]);
  await redis.waitLine(/Ready to accept connections/, 10_000);
  const redisVersion = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout.trim();
  console.log(`cluster benchmark: ${o.nodes} nodes × ${o.connections} connections, window ${o.window} per publisher, ${o.payload}-byte messages, ${o.durationS} s per run, ${o.rounds} rounds; ${os.cpus().length} CPUs; ${redisVersion}`);
  const runs: Run[] = [];
  try {
    for (let round = 1; round <= o.rounds; round++)
      for (const t of TOPOLOGIES) {
        const r = await runOnce(t, round, o, exe, redisPort);
        runs.push(r);
        console.log(
          `round ${round} ${t.padEnd(15)} ${Math.round(r.deliveriesPerSec).toString().padStart(9)} deliveries/s (Redis ${Math.round(r.busMessagesPerSec)} msg/s out, server CPU ${r.serverCpuS.toFixed(1)} s) | at ${o.rate}/s per publisher: ${Math.round(r.rateDeliveriesPerSec)} deliveries/s, p50 ${r.p50Ms.toFixed(2)} ms p99 ${r.p99Ms.toFixed(2)} ms p99.9 ${r.p999Ms.toFixed(2)} ms | errors ${r.errors}`,
        );
      }
  } finally {
    await redis.stop();
    fs.rmSync(redisDir, { recursive: true, force: true });
  }
  const pick = (t: Topology, f: (r: Run) => number) => median(runs.filter((r) => r.topology === t).map(f));
  const ref = pick('uws-cluster', (r) => r.deliveriesPerSec);
  const refP99 = pick('uws-cluster', (r) => r.p99Ms);
  const md = [
    `${o.nodes} nodes × ${o.connections} connections, ${o.payload}-byte messages, ${o.durationS} s per phase × ${o.rounds} rounds (medians), ${os.cpus().length} CPUs, ${redisVersion.split(' ').slice(0, 3).join(' ')}. ` +
      `Throughput: ${o.window} broadcasts in flight per publisher (one per node). Latency: ${o.rate} broadcasts/s per publisher.`,
    '',
    '| topology | deliveries/s | × uWS+ioredis | Redis msg/s out | server CPU s | p50 ms | p99 ms | p99.9 ms | p99 × uWS | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...TOPOLOGIES.map((t) => {
      const d = pick(t, (r) => r.deliveriesPerSec);
      const p99 = pick(t, (r) => r.p99Ms);
      const errors = runs.filter((r) => r.topology === t).reduce((acc, r) => acc + r.errors, 0);
      return `| ${TITLES[t]} | ${Math.round(d)} | ${(d / ref).toFixed(2)} | ${Math.round(pick(t, (r) => r.busMessagesPerSec))} | ${pick(t, (r) => r.serverCpuS).toFixed(1)} | ${pick(t, (r) => r.p50Ms).toFixed(2)} | ${p99.toFixed(2)} | ${pick(t, (r) => r.p999Ms).toFixed(2)} | ${(p99 / refP99).toFixed(2)} | ${errors} |`;
    }),
  ].join('\n');
  console.log(`\n${md}`);
  fs.writeFileSync(path.join(OUT_DIR, 'cluster-bench-latest.md'), `${md}\n`);
  fs.writeFileSync(path.join(OUT_DIR, 'cluster-bench-latest.json'), JSON.stringify({ options: o, runs }, null, 2));
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
