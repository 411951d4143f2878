#!/usr/bin/env tsx
/**
 * End-to-end compile latency of hello world through the `osprey` command as a user runs it — the
 * native launcher (bin/osprey) with its resident compile server — against gcc, and `osprey run`
 * of an unchanged program (a build-cache hit) against running the executable directly.
 *
 *   npm run bench:compile-latency                 7 rounds
 *   npm run bench:compile-latency -- --rounds 11 --write   also rewrite the table in docs/BENCHMARKS-LANG.md
 *   npm run bench:compile-latency -- --hits-only [--hit-rounds N]   only the cache-hit table (a minute)
 *
 * Method (as scripts/bench/lang-bench.ts): the Osprey side and the C side of a row are measured
 * back to back in every round (A B A B …), the table shows the medians over rounds and the ratio
 * of the medians, of CPU time. The CPU of a build through the server is the launcher's own (wait4
 * rusage) plus what the server spent on the request: the difference of its /proc/PID/stat
 * utime + stime + cutime + cstime (which includes clang and the linker, the children it waits
 * for) before and after. That figure has the kernel's 10 ms tick resolution, so a warm sample is
 * five builds in a row (and five gcc runs), divided by five. A cold sample stops the server first:
 * the launcher starts a new one, whose whole CPU time (start-up included) is counted.
 *
 * Cache hits last about a millisecond, less than spawning a process from Node, so they get their
 * own table: scripts/bench/alternate.c runs `osprey run` (bin/osprey and its hit record), the full
 * launcher verifying by content (bin/osprey-launcher, what every hit cost before hit records),
 * an exec-only static glibc program and the executable itself in rotation, HIT_ROUNDS times each,
 * with each run's CPU time from wait4 (exact, not tick-sampled); the table shows the median and
 * p90 of each and their ratios to the executable's.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { compileC, median, removeDir, ROOT, runMeasured, tempDir } from './lang-common.ts';

const argv = process.argv.slice(2);
const roundsAt = argv.indexOf('--rounds');
const ROUNDS = roundsAt >= 0 ? Number(argv[roundsAt + 1]) : 7;
const WRITE = argv.includes('--write');
const HITS_ONLY = argv.includes('--hits-only');
const hitRoundsAt = argv.indexOf('--hit-rounds');
const HIT_ROUNDS = hitRoundsAt >= 0 ? Number(argv[hitRoundsAt + 1]) : 400;
const FULL_LAUNCHER = join(ROOT, 'bin', 'osprey-launcher');
const LAUNCHER = join(ROOT, 'bin', 'osprey');
const NODE_CLI = join(ROOT, 'bin', 'osprey.mjs');
const BATCH = 5;
const TICK_MS = 10;

if (!existsSync(LAUNCHER)) throw new Error(`${LAUNCHER} is missing: run npx tsx scripts/build-runtime.ts`);

interface Sample {
  ms: number;
  cpu: number;
}
interface Row {
  name: string;
  ospreyLabel: string;
  cLabel: string;
  osprey: Sample[];
  c: Sample[];
}
const rows: Row[] = [];
const row = (name: string, ospreyLabel: string, cLabel: string): Row => {
  const r = { name, ospreyLabel, cLabel, osprey: [], c: [] };
  rows.push(r);
  return r;
};

const dir = tempDir('osprey-compile-latency-');
let hitTable = '';

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

/**
 * The cache-hit table: HIT_ROUNDS rotations of the four commands (alternate.c), after the run
 * that writes hello world's hit record (files must have settled for a second first).
 */
function measureHits(hello: string, exe: string, wrapper: string): string {
  const alternate = join(dir, 'alternate');
  const built = spawnSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', alternate, join(ROOT, 'scripts', 'bench', 'alternate.c')], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`gcc alternate.c failed: ${built.stderr}`);
  const runEnv = { ...process.env, ...env };
  spawnSync('sleep', ['1.2']);
  const verbose = spawnSync(LAUNCHER, ['run', hello, '-v'], { env: runEnv, encoding: 'utf8' });
  const again = spawnSync(LAUNCHER, ['run', hello, '-v'], { env: runEnv, encoding: 'utf8' });
  if (!again.stderr.includes('unchanged since verified')) throw new Error(`no hit record was written: ${verbose.stderr}${again.stderr}`);
  const commands = [
    { label: '`osprey run hello.osp` (bin/osprey, hit record)', argv: [LAUNCHER, 'run', hello] },
    { label: 'the full launcher, verifying by content (bin/osprey-launcher run hello.osp: every hit before hit records)', argv: [FULL_LAUNCHER, 'run', hello] },
    { label: 'a static glibc program that only execs the executable', argv: [wrapper, exe] },
    { label: 'the executable itself', argv: [exe] },
  ];
  const args = [String(HIT_ROUNDS)];
  for (const c of commands) args.push('--', ...c.argv);
  const r = spawnSync(alternate, args, { env: runEnv, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`alternate failed: ${r.stderr}`);
  const cpu: number[][] = commands.map(() => []);
  const wall: number[][] = commands.map(() => []);
  for (const line of r.stdout.trim().split('\n')) {
    const [k, c, w] = line.split(' ').map(Number);
    cpu[k!]!.push(c! / 1000);
    wall[k!]!.push(w! / 1000);
  }
  const direct = commands.length - 1;
  const med0 = median(cpu[direct]!);
  const p900 = quantile(cpu[direct]!, 0.9);
  const ms = (m: number) => `${m.toFixed(2)} ms`;
  return [
    `${HIT_ROUNDS} rotations of the four commands (\`--hit-rounds\`), hello world, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} at the end. CPU time per run (user + system, wait4):`,
    '',
    '| command | CPU median | CPU p90 | wall median | ÷ executable (median) | ÷ executable (p90) |',
    '|---|---|---|---|---|---|',
    ...commands.map((c, k) => `| ${c.label} | ${ms(median(cpu[k]!))} | ${ms(quantile(cpu[k]!, 0.9))} | ${ms(median(wall[k]!))} | ${(median(cpu[k]!) / med0).toFixed(2)}× | ${(quantile(cpu[k]!, 0.9) / p900).toFixed(2)}× |`),
  ].join('\n');
}
const serverDir = join(dir, 'server');
const env: Record<string, string> = {
  OSPREY_CACHE_DIR: join(dir, 'cache'),
  OSPREY_SERVER_DIR: serverDir,
  OSPREY_NO_SERVER: '0',
  OSPREY_NO_CACHE: '',
  OSPREY_SERVER_IDLE_SECONDS: '600',
};

function serverPid(): number | null {
  if (!existsSync(serverDir)) return null;
  const f = readdirSync(serverDir).find((n) => n.endsWith('.sock.pid'));
  return f ? Number(readFileSync(join(serverDir, f), 'utf8').trim()) : null;
}

/** The server's CPU so far, its own and its waited-for children's (clang, the linker), in ms. */
function serverCpu(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * TICK_MS;
}

function stopServer(): void {
  const pid = serverPid();
  if (pid === null) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
  for (const n of readdirSync(serverDir)) if (n.endsWith('.sock') || n.endsWith('.pid')) removeDir(join(serverDir, n));
}

async function measured(cmd: string, args: string[], extra: Record<string, string> = {}): Promise<Sample> {
  const r = await runMeasured(cmd, args, { ...env, ...extra });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status})`);
  return { ms: r.ms, cpu: r.cpuMs ?? r.ms };
}

/** BATCH runs of a command; per-run averages (plus the server's share when `server`). */
async function batch(cmd: string, args: string[], server = false): Promise<Sample> {
  const pid = server ? serverPid() : null;
  if (server && pid === null) throw new Error('no compile server is running');
  const before = pid !== null ? serverCpu(pid) : 0;
  let ms = 0;
  let cpu = 0;
  for (let i = 0; i < BATCH; i++) {
    const s = await measured(cmd, args);
    ms += s.ms;
    cpu += s.cpu;
  }
  if (pid !== null) {
    if (serverPid() !== pid) throw new Error('the compile server was replaced during a batch');
    cpu += serverCpu(pid) - before;
  }
  return { ms: ms / BATCH, cpu: cpu / BATCH };
}

try {
  const hello = join(dir, 'hello.osp');
  writeFileSync(hello, 'print("Hello, world!")\n');
  const helloC = join(dir, 'hello.c');
  writeFileSync(helloC, '#include <stdio.h>\nint main(void) {\n    puts("Hello, world!");\n    return 0;\n}\n');
  const out = join(dir, 'hello-osp');
  const cOut = join(dir, 'hello-c');

  const warmFast = row('hello world, fast build, warm compile server', 'osprey build --fast (launcher + server)', 'gcc -O0');
  const coldFast = row('hello world, fast build, compile server started by the build', 'osprey build --fast (cold server)', 'gcc -O0');
  const directFast = row('hello world, fast build, no server (OSPREY_NO_SERVER=1)', 'osprey build --fast (Node)', 'gcc -O0');
  const warmRelease = row('hello world, release build, warm compile server', 'osprey build (-O2, launcher + server)', 'gcc -O2');
  const hitNode = row('osprey run hello world, unchanged (cache hit), through Node', 'node bin/osprey.mjs run', 'the executable itself');
  // The floor of a libc launcher that starts the program with execve: a static C program that
  // does nothing else.
  const wrapper = join(dir, 'exec-only');
  compileC('#include <unistd.h>\nint main(int argc, char **argv) {\n    if (argc < 2) return 2;\n    execv(argv[1], argv + 1);\n    return 127;\n}\n', dir, wrapper, ['-O2', '-static']);

  // Warm-up: the server, the cache entry, the file system cache.
  await measured(LAUNCHER, ['build', '--fast', hello, '-o', out]);
  await measured(LAUNCHER, ['run', hello]);
  const exe = join(dir, 'cache', readdirSync(join(dir, 'cache')).find((n) => /^[0-9a-f]{64}$/.test(n))!, 'program');
  await measured(LAUNCHER, ['build', hello, '-o', out]);

  for (let round = 1; round <= (HITS_ONLY ? 0 : ROUNDS); round++) {
    warmFast.osprey.push(await batch(LAUNCHER, ['build', '--fast', hello, '-o', out], true));
    warmFast.c.push(await batch('gcc', ['-O0', '-o', cOut, helloC]));

    stopServer();
    const cold = await measured(LAUNCHER, ['build', '--fast', hello, '-o', out]);
    const pid = serverPid();
    if (pid === null) throw new Error('the launcher did not start a compile server');
    coldFast.osprey.push({ ms: cold.ms, cpu: cold.cpu + serverCpu(pid) });
    coldFast.c.push(await measured('gcc', ['-O0', '-o', cOut, helloC]));

    directFast.osprey.push(await measured(LAUNCHER, ['build', '--fast', hello, '-o', out], { OSPREY_NO_SERVER: '1' }));
    directFast.c.push(await measured('gcc', ['-O0', '-o', cOut, helloC]));

    warmRelease.osprey.push(await batch(LAUNCHER, ['build', hello, '-o', out], true));
    warmRelease.c.push(await batch('gcc', ['-O2', '-o', cOut, helloC]));

    hitNode.osprey.push(await measured(process.execPath, [NODE_CLI, 'run', hello]));
    hitNode.c.push(await measured(exe, []));
    console.error(`round ${round}/${ROUNDS} done`);
  }
  hitTable = measureHits(hello, exe, wrapper);
} finally {
  stopServer();
  removeDir(dir);
}

const fmt = (m: number) => (m >= 1000 ? `${(m / 1000).toFixed(2)} s` : `${m.toFixed(m < 10 ? 2 : 0)} ms`);
const med = (xs: Sample[], k: 'ms' | 'cpu') => median(xs.map((s) => s[k]));
const lines = [
  `Machine: ${cpus().length} cores (${cpus()[0]?.model.split(' ').slice(0, 2).join(' ') ?? 'unknown'}), Node ${process.version}, ${new Date().toISOString().slice(0, 10)}. Command: \`npm run bench:compile-latency -- --rounds ${ROUNDS}\`; medians of ${ROUNDS} interleaved rounds.`,
  '',
  '| benchmark | Osprey | C | Osprey ÷ C (CPU time) |',
  '|---|---|---|---|',
  ...rows.map((r) => {
    const o = med(r.osprey, 'cpu');
    const c = med(r.c, 'cpu');
    return `| ${r.name} | ${r.ospreyLabel}: ${fmt(o)} CPU (${fmt(med(r.osprey, 'ms'))} wall) | ${r.cLabel}: ${fmt(c)} CPU (${fmt(med(r.c, 'ms'))} wall) | ${(o / c).toFixed(2)}× |`;
  }),
];
const table = HITS_ONLY ? hitTable : lines.join('\n') + '\n\n' + hitTable;
console.log(table);
if (WRITE && !HITS_ONLY) {
  const doc = join(ROOT, 'docs', 'BENCHMARKS-LANG.md');
  const text = readFileSync(doc, 'utf8');
  const begin = '<!-- compile-latency:begin -->';
  const end = '<!-- compile-latency:end -->';
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < 0) throw new Error(`${doc} has no ${begin} … ${end} block`);
  writeFileSync(doc, text.slice(0, a + begin.length) + '\n' + table + '\n' + text.slice(b));
  console.error(`wrote ${doc}`);
}
