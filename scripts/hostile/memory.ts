/**
 * Full-size memory attack (issue: "hostile clients cannot exhaust memory"): the release
 * ws-echo-server with DEFAULT limits, 200 hostile connections from 127.0.0.2 (memory_attack.py:
 * a third trickle a 16 MiB frame, a third send 16 MiB messages and never read the echoes, a
 * third go idle after one 16 MiB message) and a well-behaved `ws` client that sends a small
 * message every 200 ms and times its echo. Prints the server's peak RSS (VmHWM) against the
 * default memory budget (physical memory / 32, 64 MiB – 1 GiB).
 *
 *   npx tsx scripts/hostile/memory.ts [--connections 200] [--seconds 45]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { freePort, spawnPeer } from '../../tests/peers/index.ts';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const connections = arg('connections', 200);
const seconds = arg('seconds', 45);
const root = fileURLToPath(new URL('../../', import.meta.url));
const MiB = 1024 * 1024;
const budget = Math.min(Math.max(Math.floor(totalmem() / 32), 64 * MiB), 1024 * MiB);

const status = (pid: number, field: string) => {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
};

const port = await freePort();
// Defaults only: no OSPREY_WS_* override reaches the server.
const env: Record<string, string | undefined> = {};
for (const k of Object.keys(process.env)) if (k.startsWith('OSPREY_WS_')) env[k] = undefined;
const server = await spawnPeer({ name: 'ws-echo-server', command: `${root}build/tools/ws-echo-server`, args: ['--port', String(port)], env });
const baseline = status(server.pid, 'VmRSS');

const good = new WebSocket(`ws://127.0.0.1:${port}/`);
await new Promise((r, j) => { good.once('open', r); good.once('error', j); });
let sentAt = 0, worst = 0, echoes = 0, missed = 0, waiting = false;
good.on('message', () => { worst = Math.max(worst, performance.now() - sentAt); echoes++; waiting = false; });
const ticker = setInterval(() => {
  if (waiting) { missed++; return; }
  waiting = true; sentAt = performance.now(); good.send(`tick ${echoes}`);
}, 200);

let peak = 0;
const sampler = setInterval(() => { peak = Math.max(peak, status(server.pid, 'VmRSS')); }, 250);
const attacker = spawn('python3', [`${root}scripts/hostile/memory_attack.py`, String(port), String(connections), String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
let report = '';
attacker.stdout.on('data', (d: Buffer) => (report += d.toString()));
await new Promise((r) => attacker.on('exit', r));
clearInterval(ticker);
clearInterval(sampler);
const hwm = status(server.pid, 'VmHWM');
good.close();
await server.stop();
const fmt = (b: number) => `${(b / MiB).toFixed(1)} MiB`;
console.log(report.trim());
console.log(`connections ${connections}, ${seconds} s, budget ${fmt(budget)}, server RSS at start ${fmt(baseline)}, peak RSS (sampled) ${fmt(peak)}, VmHWM ${fmt(hwm)}`);
console.log(`well-behaved client: ${echoes} echoes, slowest ${worst.toFixed(0)} ms, ${missed} ticks skipped waiting for an echo`);
console.log(`bound: budget + 64 MiB = ${fmt(budget + 64 * MiB)} -> ${hwm <= budget + 64 * MiB ? 'HELD' : 'EXCEEDED'}`);
process.exit(hwm <= budget + 64 * MiB && echoes > 0 ? 0 : 1);
