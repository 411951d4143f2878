#!/usr/bin/env tsx
/**
 * WebSocket client benchmark: a compiled Osprey client against a `ws` client (Node), both
 * talking to the uWebSockets.js echo server, in one invocation.
 *
 *   npm run bench:ws-client                          5 rounds of 100,000 messages
 *   npm run bench:ws-client -- --rounds 3 --count 20000
 *
 * Each client sends the text messages "m1" .. "m<count>" as fast as its connection takes them
 * (respecting backpressure: the Osprey runtime refuses a send while more than 1 MiB is queued
 * and the program retries it after 1 ms; the ws client stops at bufferedAmount >= 1 MiB until
 * the last frame was written) and prints `done` when the echo of the last message arrives.
 *   - Osprey: scripts/bench/client_100k.osp, a template compiled here with the server's port and
 *     the count substituted (a program cannot read its command line). Its handler is stateless,
 *     so it only recognises the last message; a separate, untimed verification run of a variant
 *     that prints every message checks that all of them came back, in order, unchanged.
 *   - ws: scripts/bench/ws-client.mjs, which checks every echo (content and order) itself.
 *
 * Method. The machine is shared and noisy, so each round runs both clients back to back (the
 * order alternates between rounds), each against a freshly started uWS server, and the report
 * gives medians over rounds. A measurement runs from spawn to the `done` line: wall time, and
 * the client's CPU time (utime+stime of all its threads from /proc/PID/stat, read when `done`
 * arrives, while the process is still alive). Then the Osprey client is stopped with SIGTERM (the
 * runtime closes the connection gracefully; exit status 143) and the ws client closes and exits
 * by itself. Each round also runs both clients with --count 1 (connect, one echo): their
 * start-up cost, subtracted in the "net" columns. Any `error` line, a missing `done`, an
 * unexpected exit status, or a failed verification aborts the run.
 *
 * Results: a table on stdout and build/bench/ws-client-bench-<timestamp>.{json,md} (also copied to
 * ws-client-bench-latest.{json,md}).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BENCH_DIR = path.join(ROOT, 'scripts', 'bench');
const TEMPLATE = path.join(BENCH_DIR, 'client_100k.osp');
const WS_CLIENT = path.join(BENCH_DIR, 'ws-client.mjs');
const UWS_SERVER = path.join(BENCH_DIR, 'uws-echo-server.mjs');
const OUT_DIR = path.join(ROOT, 'build', 'bench');
const HOST = '127.0.0.1';
const CLK_TCK = 100;
/** A client that has not printed `done` by then has failed. */
const RUN_TIMEOUT_MS = 120_000;

interface Options {
  rounds: number;
  count: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { rounds: 5, count: 100_000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${a} needs a positive integer`);
      return v;
    };
    if (a === '--rounds') o.rounds = num();
    else if (a === '--count') o.count = num();
    else if (a === '--') continue;
    else throw new Error(`unknown argument: ${a}`);
  }
  return o;
}

// ---- Processes -----------------------------------------------------------------------------

const LIVE = new Set<ChildProcess>();

function stopAll(): void {
  for (const p of LIVE) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
}
process.on('exit', stopAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    stopAll();
    process.exit(130);
  });
}

function track(p: ChildProcess): ChildProcess {
  LIVE.add(p);
  p.on('exit', () => LIVE.delete(p));
  return p;
}

function exited(p: ChildProcess, timeoutMs: number): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve, reject) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve({ code: p.exitCode, signal: p.signalCode });
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`process ${p.pid} did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    p.once('exit', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal });
    });
  });
}

/** utime+stime of all threads of a live process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14 and 15 of proc(5)
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, HOST, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function startServer(port: number): Promise<ChildProcess> {
  const p = track(spawn(process.execPath, [UWS_SERVER, '--host', HOST, '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let err = '';
  p.stderr!.on('data', (d) => (err += d));
  const rl = createInterface({ input: p.stdout! });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`uWS server did not start within 10 s: ${err}`)), 10_000);
    rl.on('line', (line) => {
      if (line.startsWith('listening on ')) {
        clearTimeout(t);
        resolve();
      }
    });
    p.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`uWS server exited with ${code} before listening: ${err.trim()}`));
    });
  });
  return p;
}

async function stopServer(p: ChildProcess): Promise<void> {
  p.kill('SIGTERM');
  await exited(p, 10_000);
}

// ---- One measurement -----------------------------------------------------------------------

interface Measurement {
  client: 'osprey' | 'ws';
  count: number;
  wall: number; // seconds, spawn to `done`
  cpu: number; // client CPU seconds, spawn to `done`
  serverCpu: number; // uWS server CPU seconds over the same window
  retries?: number; // Osprey: sends refused because 1 MiB was queued, then retried
  lines?: string[]; // verification run: every stdout line
}

interface ClientRun {
  client: 'osprey' | 'ws';
  command: string;
  args: string[];
  count: number;
  /** Osprey: stop with SIGTERM after `done` (exit 143); ws: exits 0 by itself. */
  stopAfterDone: boolean;
  keepLines?: boolean;
}

async function measure(run: ClientRun, server: ChildProcess): Promise<Measurement> {
  const serverCpu0 = cpuSeconds(server.pid!);
  const t0 = process.hrtime.bigint();
  const p = track(spawn(run.command, run.args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  let stderr = '';
  p.stderr!.on('data', (d) => (stderr += d));
  const lines: string[] = [];
  const errors: string[] = [];
  let retries: number | undefined;
  let sentSeen: () => void = () => {};
  const sent = new Promise<void>((r) => (sentSeen = r));
  let doneAt: { wall: number; cpu: number; serverCpu: number } | null = null;
  const rl = createInterface({ input: p.stdout! });
  const done = new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${run.client} (count ${run.count}) printed no done within ${RUN_TIMEOUT_MS} ms`)), RUN_TIMEOUT_MS);
    rl.on('line', (line) => {
      if (line === 'done' && doneAt === null) {
        const wall = Number(process.hrtime.bigint() - t0) / 1e9;
        doneAt = { wall, cpu: cpuSeconds(p.pid!), serverCpu: cpuSeconds(server.pid!) - serverCpu0 };
        clearTimeout(t);
        resolve();
      } else if (line.startsWith('error') || line.startsWith('out of order')) {
        errors.push(line);
      } else {
        const m = /^sent (\d+) retries (-?\d+)$/.exec(line);
        if (m) {
          retries = Number(m[2]);
          if (retries < 0) errors.push(line);
          sentSeen();
        }
      }
      if (run.keepLines) lines.push(line);
    });
    p.once('exit', (code, signal) => {
      clearTimeout(t);
      if (doneAt === null) reject(new Error(`${run.client} exited (${code ?? signal}) before done: ${errors.join('; ')} ${stderr.trim()}`));
    });
  });
  try {
    await done;
  } catch (e) {
    p.kill('SIGKILL');
    throw e;
  }
  let status;
  if (run.stopAfterDone) {
    // The main thread prints `sent N retries R` once its last send returned; the echo of the
    // last message can be handled (and `done` printed) just before that line.
    await Promise.race([sent, new Promise((r) => setTimeout(r, 2000))]);
    p.kill('SIGTERM');
    status = await exited(p, 10_000);
    if (status.code !== 143) errors.push(`osprey exit status ${status.code ?? status.signal}, expected 143 (SIGTERM)`);
    if (retries === undefined) errors.push('osprey printed no `sent N retries R` line');
  } else {
    status = await exited(p, 10_000);
    if (status.code !== 0) errors.push(`ws client exit status ${status.code ?? status.signal}`);
  }
  rl.close();
  if (stderr.trim()) errors.push(`stderr: ${stderr.trim().slice(0, 500)}`);
  if (errors.length) throw new Error(`${run.client} (count ${run.count}): ${errors.join('; ')}`);
  const d = doneAt!;
  return { client: run.client, count: run.count, wall: d.wall, cpu: d.cpu, serverCpu: d.serverCpu, retries, lines: run.keepLines ? lines : undefined };
}

// ---- Building the Osprey client ------------------------------------------------------------

function buildOsprey(dir: string, port: number, count: number, verify: boolean): string {
  const src = fs.readFileSync(TEMPLATE, 'utf8');
  for (const token of ['__PORT__', '__COUNT__', '__VERIFY__']) {
    if (!src.includes(token)) throw new Error(`${path.relative(ROOT, TEMPLATE)} lost its ${token} placeholder`);
  }
  const name = `client-${count}${verify ? '-verify' : ''}`;
  const file = path.join(dir, `${name}.osp`);
  const exe = path.join(dir, name);
  fs.writeFileSync(file, src.replaceAll('__PORT__', String(port)).replaceAll('__COUNT__', String(count)).replaceAll('__VERIFY__', String(verify)));
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'osprey.mjs'), 'build', file, '-o', exe], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot compile ${file}:\n${r.stdout}${r.stderr}`);
  return exe;
}

// ---- Report --------------------------------------------------------------------------------

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmtInt = (x: number) => Math.round(x).toLocaleString('en-US');
const fmt = (x: number, d = 2) => x.toFixed(d);

function uwsIsNative(): boolean {
  const code = `const u=require('@trufflesuite/uws-js-unofficial');process.exit(/native code/.test(String(u.App))?0:3)`;
  return spawnSync(process.execPath, ['-e', code], { cwd: ROOT }).status === 0;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (!uwsIsNative()) throw new Error('uWebSockets.js did not load its native binary (String(uws.App) is not native code); refusing to benchmark');
  const load0 = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const port = await freePort();
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-client-bench-'));
  try {
    console.log(`building the Osprey client (port ${port}) in ${workDir}`);
    const ospreyMain = buildOsprey(workDir, port, o.count, false);
    const ospreyVerify = buildOsprey(workDir, port, o.count, true);
    const ospreyOne = buildOsprey(workDir, port, 1, false);
    const url = `ws://${HOST}:${port}/`;
    const runs = {
      osprey: { client: 'osprey', command: ospreyMain, args: [], count: o.count, stopAfterDone: true } as ClientRun,
      ws: { client: 'ws', command: process.execPath, args: [WS_CLIENT, '--url', url, '--count', String(o.count)], count: o.count, stopAfterDone: false } as ClientRun,
      osprey1: { client: 'osprey', command: ospreyOne, args: [], count: 1, stopAfterDone: true } as ClientRun,
      ws1: { client: 'ws', command: process.execPath, args: [WS_CLIENT, '--url', url, '--count', '1'], count: 1, stopAfterDone: false } as ClientRun,
    };
    const once = async (run: ClientRun): Promise<Measurement> => {
      const server = await startServer(port);
      try {
        return await measure(run, server);
      } finally {
        await stopServer(server);
      }
    };

    // Untimed: the Osprey client's echoes, every one, in order.
    const v = await once({ client: 'osprey', command: ospreyVerify, args: [], count: o.count, stopAfterDone: true, keepLines: true });
    const got = v.lines!.filter((l) => l.startsWith('got '));
    const bad = got.findIndex((l, i) => l !== `got m${i + 1}`);
    if (got.length !== o.count || bad >= 0) {
      throw new Error(`verification failed: ${got.length} of ${o.count} echoes, first wrong at ${bad} (${got[bad]})`);
    }
    console.log(`verification: the Osprey client received all ${fmtInt(o.count)} echoes in order (${v.retries} sends retried)`);

    const results: Measurement[][] = [];
    for (let r = 0; r < o.rounds; r++) {
      const order = r % 2 === 0 ? ['osprey', 'ws', 'osprey1', 'ws1'] : ['ws', 'osprey', 'ws1', 'osprey1'];
      const round: Measurement[] = [];
      for (const k of order) {
        const m = await once(runs[k as keyof typeof runs]);
        round.push(m);
        console.log(
          `round ${r + 1} ${m.client.padEnd(6)} count ${String(m.count).padStart(6)}: ${fmt(m.wall, 3)} s wall, ${fmt(m.cpu)} CPU-s client, ${fmt(m.serverCpu)} CPU-s server` +
            (m.retries !== undefined ? `, ${m.retries} retries` : ''),
        );
      }
      results.push(round);
    }

    const pick = (client: string, count: number) => results.map((rd) => rd.find((m) => m.client === client && m.count === count)!);
    const row = (client: 'osprey' | 'ws') => {
      const full = pick(client, o.count);
      const one = pick(client, 1);
      const wall = median(full.map((m) => m.wall));
      const cpu = median(full.map((m) => m.cpu));
      const wall1 = median(one.map((m) => m.wall));
      const cpu1 = median(one.map((m) => m.cpu));
      return {
        client,
        wall,
        cpu,
        msgPerS: o.count / wall,
        msgPerCpuS: o.count / cpu,
        serverCpu: median(full.map((m) => m.serverCpu)),
        wall1,
        cpu1,
        netMsgPerS: o.count / Math.max(1e-6, wall - wall1),
        netMsgPerCpuS: o.count / Math.max(1e-6, cpu - cpu1),
        walls: full.map((m) => m.wall),
        retries: full.map((m) => m.retries),
      };
    };
    const os_ = row('osprey');
    const ws = row('ws');
    const header = `| client | msg/s (median) | client CPU-s | msg/client CPU-s | uWS server CPU-s | start-up (count 1): wall s / CPU-s | net msg/s | net msg/CPU-s | walls per round (s) |`;
    const line = (x: ReturnType<typeof row>, title: string) =>
      `| ${title} | ${fmtInt(x.msgPerS)} | ${fmt(x.cpu)} | ${fmtInt(x.msgPerCpuS)} | ${fmt(x.serverCpu)} | ${fmt(x.wall1, 3)} / ${fmt(x.cpu1)} | ${fmtInt(x.netMsgPerS)} | ${fmtInt(x.netMsgPerCpuS)} | ${x.walls.map((w) => fmt(w, 2)).join(', ')} |`;
    const md = [
      `${o.rounds} rounds x ${fmtInt(o.count)} messages ("m1".."m${o.count}", 2-7 bytes) per client against the uWebSockets.js echo server (native); ${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}; load before ${load0}, after ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${new Date().toISOString()}`,
      '',
      header,
      '|---|---:|---:|---:|---:|---:|---:|---:|---|',
      line(os_, 'osprey (client_100k.osp)'),
      line(ws, 'ws 8 (ws-client.mjs)'),
      `| **osprey / ws** | **${fmt(os_.msgPerS / ws.msgPerS)}** | ${fmt(os_.cpu / ws.cpu)} | **${fmt(os_.msgPerCpuS / ws.msgPerCpuS)}** | ${fmt(os_.serverCpu / ws.serverCpu)} | | ${fmt(os_.netMsgPerS / ws.netMsgPerS)} | ${fmt(os_.netMsgPerCpuS / ws.netMsgPerCpuS)} | |`,
      '',
      `Osprey sends retried per round (1 MiB queued): ${os_.retries.join(', ')}.`,
    ].join('\n');
    console.log(`\n${md}`);
    fs.mkdirSync(OUT_DIR, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const json = JSON.stringify({ options: o, port, results, summary: { osprey: os_, ws } }, null, 2);
    for (const name of [`ws-client-bench-${stamp}`, 'ws-client-bench-latest']) {
      fs.writeFileSync(path.join(OUT_DIR, `${name}.md`), `${md}\n`);
      fs.writeFileSync(path.join(OUT_DIR, `${name}.json`), json);
    }
    console.log(`\nwritten: build/bench/ws-client-bench-${stamp}.{md,json}`);
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
    stopAll();
  }
}

main().catch((e) => {
  console.error(`ws-client-bench: ${(e as Error).message}`);
  stopAll();
  process.exit(1);
});
