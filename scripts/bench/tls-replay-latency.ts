/**
 * The echo round trip of an established wss:// connection while a ClientHello replay runs
 * (scripts/hostile/tls_replay.mjs) against the same server, for several builds of
 * ws-echo-server, interleaved in one run so the machine's load falls on all of them alike
 * (docs/WEBSOCKET-RUNTIME.md#tls-handshakes has the figures).
 *
 *   npx tsx scripts/bench/tls-replay-latency.ts [--rounds N] [--seconds S] [LABEL=PATH/TO/ws-echo-server ...]
 *
 * Without builds named it measures this checkout's build/tools/ws-echo-server. Each round runs
 * every build with OSPREY_IO_THREADS=1 and 2, and two samplings: "dense" as
 * tests/hostile/tls-replay.test.ts does (one round trip, then a 1 ms pause) and "5ms" (one round
 * trip every 5 ms). Prints one line per run with the load average before it, then the medians
 * of each configuration's p50/p90/p99 over the rounds.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { freePort, makeTestCertificates, OSPREY_ECHO_SERVER, PROJECT_ROOT, spawnPeer } from '../../tests/peers/index.ts';

const args = process.argv.slice(2);
let rounds = 2;
let seconds = 4;
const builds: { label: string; path: string }[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--rounds') rounds = Number(args[++i]);
  else if (args[i] === '--seconds') seconds = Number(args[++i]);
  else {
    const eq = args[i].indexOf('=');
    if (eq <= 0) throw new Error(`expected LABEL=PATH, got ${args[i]}`);
    builds.push({ label: args[i].slice(0, eq), path: args[i].slice(eq + 1) });
  }
}
if (builds.length === 0) builds.push({ label: 'this', path: OSPREY_ECHO_SERVER });

const dir = mkdtempSync(join(tmpdir(), 'osprey-tls-replay-bench-'));
const certs = makeTestCertificates(dir);

async function roundTrip(client: WebSocket, text: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  const echoed = once(client, 'message');
  client.send(text);
  await echoed;
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Runs the attacker for `secs`; resolves when it exits (killed if it overstays). */
function replay(port: number, secs: number): Promise<void> {
  const child = spawn(process.execPath, [`${PROJECT_ROOT}scripts/hostile/tls_replay.mjs`, String(port), String(secs), '128'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const guard = setTimeout(() => child.kill('SIGKILL'), (secs + 10) * 1000);
  return new Promise((resolve) => child.on('exit', () => (clearTimeout(guard), resolve())));
}

const q = (s: number[], p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];

async function measureOnce(path: string, loops: number, sampling: 'dense' | '5ms') {
  const server = await spawnPeer({
    name: 'wss-echo-server',
    command: path,
    args: ['--port', String(await freePort()), '--cert', certs.cert, '--key', certs.key],
    pipeStdin: true,
    env: { OSPREY_IO_THREADS: String(loops) },
  });
  try {
    const client = new WebSocket(`wss://localhost:${server.port}/`, { ca: readFileSync(certs.ca) });
    await once(client, 'open');
    for (let i = 0; i < 20; i++) await roundTrip(client, `warm-up ${i}`);
    const load = loadavg()[0];
    const attack = replay(server.port, seconds);
    await new Promise((r) => setTimeout(r, 300));
    const rtts: number[] = [];
    const until = Date.now() + (seconds - 0.6) * 1000;
    while (Date.now() < until) {
      const started = Date.now();
      rtts.push(await roundTrip(client, `sample ${rtts.length}`));
      const pause = sampling === 'dense' ? 1 : Math.max(0, 5 - (Date.now() - started));
      await new Promise((r) => setTimeout(r, pause));
    }
    await attack;
    client.close();
    rtts.sort((a, b) => a - b);
    return { load, n: rtts.length, p50: q(rtts, 0.5), p90: q(rtts, 0.9), p99: q(rtts, 0.99) };
  } finally {
    await server.stop();
  }
}

const results = new Map<string, { p50: number; p90: number; p99: number; load: number }[]>();
try {
  for (let round = 0; round < rounds; round++) {
    for (const loops of [1, 2]) {
      for (const sampling of ['dense', '5ms'] as const) {
        for (const b of builds) {
          const r = await measureOnce(b.path, loops, sampling);
          const key = `${b.label} loops=${loops} ${sampling}`;
          if (!results.has(key)) results.set(key, []);
          results.get(key)!.push(r);
          console.log(`round ${round + 1} ${key}: ${r.n} samples p50 ${r.p50.toFixed(2)} p90 ${r.p90.toFixed(2)} p99 ${r.p99.toFixed(2)} ms (load ${r.load.toFixed(2)})`);
        }
      }
    }
  }
  console.log('medians over the rounds:');
  const med = (xs: number[]) => {
    const s = xs.sort((a, b) => a - b);
    return (s[Math.floor((s.length - 1) / 2)] + s[Math.ceil((s.length - 1) / 2)]) / 2;
  };
  for (const [key, rs] of results)
    console.log(`${key}: p50 ${med(rs.map((r) => r.p50)).toFixed(2)} p90 ${med(rs.map((r) => r.p90)).toFixed(2)} p99 ${med(rs.map((r) => r.p99)).toFixed(2)} ms; p99 per round ${rs.map((r) => r.p99.toFixed(1)).join(', ')}; load ${rs.map((r) => r.load.toFixed(1)).join(', ')}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
