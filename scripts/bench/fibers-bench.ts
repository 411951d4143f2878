#!/usr/bin/env tsx
/**
 * Fiber benchmarks: compiled Osprey fibers and channels against Go goroutines and channels, side
 * by side on this machine, in one invocation.
 *
 *   npm run bench:fibers                     5 rounds
 *   npm run bench:fibers -- --rounds 9
 *   npm run bench:fibers -- --write          also rewrite the table in docs/BENCHMARKS-FIBERS.md
 *
 * Rows (the Go programs are scripts/bench/go/*.go; the Osprey programs are generated below):
 *   * spawn + await of 100,000 fibers: all are spawned before the first is awaited (the Go side
 *     gives each goroutine a one-slot result channel: Osprey's await);
 *   * 1,000,000 messages ping-ponged between two fibers (500,000 round trips) over channels of
 *     capacity 0 (rendezvous) and of capacity 64.
 *
 * Method: `osprey build` (-O2) and `go build`, both using every core (Osprey: one worker per
 * core; Go: GOMAXPROCS = cores). Every round runs each row's Osprey and Go programs back to back
 * (interleaved), and the table gives medians over rounds and the ratio of the medians. The ratio
 * is of CPU time (user + system), which a loaded shared machine disturbs far less than wall time;
 * wall time and peak RSS are shown beside it. Every run's output is checked against the expected
 * result (a wrong answer fails the benchmark).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { compileOsprey, median, removeDir, ROOT, runMeasured, tempDir } from './lang-common.ts';

const argv = process.argv.slice(2);
const roundsAt = argv.indexOf('--rounds');
const ROUNDS = roundsAt >= 0 ? Number(argv[roundsAt + 1]) : 5;
const WRITE = argv.includes('--write');

const SPAWNED = 100_000;
const MESSAGES = 1_000_000;

function spawnProgram(n: number): string {
  return `fn work(i: Int) -> Int = 2 * i
fn run(i: Int, n: Int) -> Int = match i > n {
    true => 0
    false => {
        let f = spawn work(i)
        let rest = run(i: i + 1, n: n)
        rest + await(f)
    }
}
print(run(i: 1, n: ${n}))
`;
}

function pingPongProgram(messages: number, capacity: number): string {
  const rounds = messages / 2;
  return `fn ponger(ping: Channel<Int>, pong: Channel<Int>, left: Int) -> Int = match left {
    0 => 0
    _ => match recv(ping) {
        Success { value } => {
            send(pong, value + 1)
            ponger(ping: ping, pong: pong, left: left - 1)
        }
        Error { message } => -1
    }
}
fn pinger(ping: Channel<Int>, pong: Channel<Int>, i: Int, n: Int, acc: Int) -> Int = match i == n {
    true => acc
    false => {
        send(ping, i)
        match recv(pong) {
            Success { value } => pinger(ping: ping, pong: pong, i: i + 1, n: n, acc: acc + value)
            Error { message } => -1
        }
    }
}
let ping = Channel<Int> { capacity: ${capacity} }
let pong = Channel<Int> { capacity: ${capacity} }
let other = spawn ponger(ping: ping, pong: pong, left: ${rounds})
print(pinger(ping: ping, pong: pong, i: 0, n: ${rounds}, acc: 0))
`;
}

interface Row {
  name: string;
  osprey: { source: string };
  go: { file: string; args: string[] };
  expected: string;
}

const pingPongSum = (messages: number): bigint => {
  const r = BigInt(messages / 2);
  return (r * (r - 1n)) / 2n + r; // Σ (i + 1) for i < r
};

const ROWS: Row[] = [
  {
    name: `spawn + await, ${SPAWNED.toLocaleString('en-US')} fibers`,
    osprey: { source: spawnProgram(SPAWNED) },
    go: { file: 'spawn.go', args: [String(SPAWNED)] },
    expected: String(BigInt(SPAWNED) * BigInt(SPAWNED + 1)),
  },
  {
    name: `ping-pong, ${MESSAGES.toLocaleString('en-US')} messages, capacity 0`,
    osprey: { source: pingPongProgram(MESSAGES, 0) },
    go: { file: 'pingpong.go', args: [String(MESSAGES), '0'] },
    expected: String(pingPongSum(MESSAGES)),
  },
  {
    name: `ping-pong, ${MESSAGES.toLocaleString('en-US')} messages, capacity 64`,
    osprey: { source: pingPongProgram(MESSAGES, 64) },
    go: { file: 'pingpong.go', args: [String(MESSAGES), '64'] },
    expected: String(pingPongSum(MESSAGES)),
  },
];

interface Sample {
  cpuMs: number;
  ms: number;
  peakKb: number;
}

async function main(): Promise<void> {
  const dir = tempDir('fibers-bench-');
  try {
    const goVersion = execFileSync('go', ['version'], { encoding: 'utf8' }).trim();
    const built: { osprey: string; go: string }[] = [];
    for (const [i, row] of ROWS.entries()) {
      const ospExe = join(dir, `row${i}-osprey`);
      await compileOsprey(row.osprey.source, ospExe, 'release');
      const goExe = join(dir, `row${i}-go`);
      execFileSync('go', ['build', '-o', goExe, join(ROOT, 'scripts', 'bench', 'go', row.go.file)], {
        env: { ...process.env, GO111MODULE: 'off', GOFLAGS: '' },
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      built.push({ osprey: ospExe, go: goExe });
    }
    const samples = ROWS.map(() => ({ osprey: [] as Sample[], go: [] as Sample[] }));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const [i, row] of ROWS.entries()) {
        for (const side of ['osprey', 'go'] as const) {
          const exe = built[i]![side];
          const args = side === 'go' ? row.go.args : [];
          const r = await runMeasured(exe, args);
          if (r.status !== 0 || r.stdout.trim() !== row.expected) {
            throw new Error(`${side} ${row.name}: exit ${r.status}, printed ${JSON.stringify(r.stdout.trim())}, expected ${row.expected}`);
          }
          samples[i]![side].push({ cpuMs: r.cpuMs ?? r.ms, ms: r.ms, peakKb: r.peakKb });
        }
      }
      process.stderr.write(`round ${round}/${ROUNDS} done\n`);
    }
    const lines: string[] = [];
    lines.push(
      `${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${goVersion}, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ` +
        `medians of ${ROUNDS} interleaved rounds; every run's output checked`,
      '',
      '| benchmark | Osprey CPU | Go CPU | Osprey ÷ Go (CPU) | Osprey wall | Go wall | peak RSS Osprey / Go |',
      '|---|---:|---:|---:|---:|---:|---|',
    );
    for (const [i, row] of ROWS.entries()) {
      const o = samples[i]!.osprey;
      const g = samples[i]!.go;
      const oc = median(o.map((s) => s.cpuMs));
      const gc = median(g.map((s) => s.cpuMs));
      const ow = median(o.map((s) => s.ms));
      const gw = median(g.map((s) => s.ms));
      const om = median(o.map((s) => s.peakKb)) / 1024;
      const gm = median(g.map((s) => s.peakKb)) / 1024;
      lines.push(
        `| ${row.name} | ${oc.toFixed(0)} ms | ${gc.toFixed(0)} ms | ${(oc / gc).toFixed(2)}× | ${ow.toFixed(0)} ms | ${gw.toFixed(0)} ms | ${om.toFixed(1)} / ${gm.toFixed(1)} MiB |`,
      );
    }
    const table = lines.join('\n');
    console.log(table);
    if (WRITE) {
      const doc = join(ROOT, 'docs', 'BENCHMARKS-FIBERS.md');
      const text = readFileSync(doc, 'utf8');
      const begin = '<!-- bench:fibers begin -->';
      const end = '<!-- bench:fibers end -->';
      const a = text.indexOf(begin);
      const b = text.indexOf(end);
      if (a < 0 || b < a) throw new Error(`${doc} has no ${begin} … ${end} markers`);
      writeFileSync(doc, `${text.slice(0, a + begin.length)}\n${table}\n${text.slice(b)}`);
      console.log(`wrote ${doc}`);
    }
  } finally {
    removeDir(dir);
  }
}

await main();
