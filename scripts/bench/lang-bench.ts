#!/usr/bin/env tsx
/**
 * Language benchmarks: the compiler's own speed and the speed of the code it generates, each
 * against gcc on the equivalent C program, on this machine, in one invocation.
 *
 *   npm run bench:lang                      5 rounds (about 2 minutes on 2 cores)
 *   npm run bench:lang -- --rounds 9
 *   npm run bench:lang -- --write           also rewrite the table in docs/BENCHMARKS-LANG.md
 *
 * Method. Machines here are shared and noisy, so nothing is compared across runs: every round
 * measures the Osprey side and the C side of every row back to back (interleaved: A B A B …),
 * and the table gives the median over rounds of each side and the ratio of the medians. The
 * ratio is of CPU time (user + system, of the process and the children it waited for: GNU time
 * for processes, process.cpuUsage() in-process), which a loaded machine disturbs far less than
 * wall time; the wall-time medians are shown beside it.
 *
 * Rows:
 *   * front end, in-process on a generated 20,000-line program (2,000 functions with lets, a
 *     match, arithmetic, an interpolated string and a call): lexing + parsing + checking
 *     (`checkSource`), and IR emission (lowering + LLVM emission + verification + printing), in
 *     lines per second, each after one warm-up; against `gcc -fsyntax-only` and `gcc -S -O0` on the
 *     equivalent C program (a separate process each time, so gcc pays its start-up).
 *   * end to end, hello world: `osprey build --fast` (-O0) and `osprey build` (-O2), i.e. Node
 *     start-up + front end + clang-14 + link, against `gcc -O0` and `gcc -O2` on hello.c.
 *   * compile latency: a 100,000-element list literal and a 10,000-line program built at -O2
 *     (CPU time and peak RSS) against gcc -O2 on the C equivalents, and `osprey run` of an
 *     unchanged program (a build-cache hit) against running its executable directly.
 *   * generated code (osprey build, -O2) against gcc -O2: the twelve programs of lang-programs.ts
 *     (recursion, folds, strings, closures, lists, trees, unions); both sides print their result,
 *     which must agree. The table ends with their geometric mean and highest ratio.
 */
import { writeFileSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { checkSource, emitTyped } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';
import { BENCH_PROGRAMS } from './lang-programs.ts';
import { compileC, compileOsprey, median, removeDir, ROOT, runMeasured, tempDir, timeCommand } from './lang-common.ts';

const argv = process.argv.slice(2);
const roundsAt = argv.indexOf('--rounds');
const ROUNDS = roundsAt >= 0 ? Number(argv[roundsAt + 1]) : 5;
const WRITE = argv.includes('--write');
const OSPREY = join(ROOT, 'bin', 'osprey.mjs');

// ---- programs -------------------------------------------------------------------------------

const FUNCTIONS = 2000;

/** 2,000 ten-line functions: 20,000 lines of Osprey. */
function frontEndOsprey(functions = FUNCTIONS): string {
  const out: string[] = [];
  for (let k = 0; k < functions; k++) {
    out.push(
      `fn f${k}(a: Int, b: Int) -> Int {`,
      `    let x = a * ${(k % 97) + 1} + b`,
      `    let y = match x % 3 {`,
      `        0 => x + 1`,
      `        1 => x * 2`,
      `        _ => x - ${k}`,
      `    }`,
      `    let label = "f${k}: \${y}"`,
      k === 0 ? '    y % 1000' : `    y % 1000 + f${k - 1}(a: b % 10, b: x % 10)`,
      `}`,
    );
  }
  out[out.length - 1] = `} print(f${functions - 1}(a: 1, b: 2))`;
  return out.join('\n') + '\n';
}

function frontEndC(functions = FUNCTIONS): string {
  const out = ['#include <stdint.h>', '#include <stdio.h>'];
  for (let k = 0; k < functions; k++) {
    out.push(
      `static int64_t f${k}(int64_t a, int64_t b) {`,
      `    int64_t x = a * ${(k % 97) + 1} + b;`,
      `    int64_t y;`,
      `    switch (x % 3) {`,
      `    case 0: y = x + 1; break;`,
      `    case 1: y = x * 2; break;`,
      `    default: y = x - ${k}; break;`,
      `    }`,
      `    char label[64]; snprintf(label, sizeof label, "f${k}: %lld", (long long)y); (void)label;`,
      k === 0 ? '    return y % 1000;' : `    return y % 1000 + f${k - 1}(b % 10, x % 10);`,
      `}`,
    );
  }
  out.push(`int main(void) { printf("%lld\\n", (long long)f${functions - 1}(1, 2)); return 0; }`);
  return out.join('\n') + '\n';
}

const HELLO_OSP = 'print("Hello, World!")\n';
const HELLO_C = '#include <stdio.h>\nint main(void) { puts("Hello, World!"); return 0; }\n';

/** A list literal of `n` Ints, and its C counterpart (a static array). */
function listOsprey(n: number): string {
  const xs = Array.from({ length: n }, (_, i) => String((i * 7919) % 100003)).join(', ');
  return `let xs = [${xs}]\nmatch xs[${n - 1}] {\n    Success { value } => print(value)\n    Error { message } => print(message)\n}\n`;
}
function listC(n: number): string {
  const xs = Array.from({ length: n }, (_, i) => String((i * 7919) % 100003)).join(', ');
  return `#include <stdio.h>\n#include <stdint.h>\nstatic const int64_t xs[] = {${xs}};\nint main(void) { printf("%lld\\n", (long long)xs[${n - 1}]); return 0; }\n`;
}

const RUNTIME_PROGRAMS = BENCH_PROGRAMS.map((p) => ({ name: p.name, osprey: p.osprey(p.benchSize), c: p.c(p.benchSize) }));

// ---- measurement ------------------------------------------------------------------------------

interface Sample {
  /** Wall time, ms. */
  ms: number;
  /** CPU time, ms (falls back to wall time when unknown). */
  cpu: number;
  /** Peak resident set of the process tree, kB (compile-latency rows). */
  peakKb?: number;
}

interface Row {
  group: string;
  name: string;
  osprey: Sample[];
  c: Sample[];
  /** How a side's median is shown: a time in ms or a throughput in lines/s. */
  unit: 'ms' | 'lines/s';
  lines?: number;
  ospreyLabel: string;
  cLabel: string;
}

const rows: Row[] = [];
function row(r: Omit<Row, 'osprey' | 'c'>): Row {
  const x = { ...r, osprey: [], c: [] };
  rows.push(x);
  return x;
}

function timed(f: () => void): Sample {
  const t = performance.now();
  const c = process.cpuUsage();
  f();
  const d = process.cpuUsage(c);
  return { ms: performance.now() - t, cpu: (d.user + d.system) / 1000 };
}

async function command(cmd: string, args: string[]): Promise<Sample> {
  const r = await timeCommand(cmd, args);
  return { ms: r.ms, cpu: r.cpuMs ?? r.ms };
}

/** A command whose peak memory matters too. */
async function commandWithPeak(cmd: string, args: string[]): Promise<Sample> {
  const r = await runMeasured(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status})`);
  return { ms: r.ms, cpu: r.cpuMs ?? r.ms, peakKb: r.peakKb };
}

async function run(exe: string): Promise<Sample> {
  const r = await runMeasured(exe);
  if (r.status !== 0) throw new Error(`${exe} exited with ${r.status}`);
  return { ms: r.ms, cpu: r.cpuMs ?? r.ms };
}

const dir = tempDir('osprey-lang-bench-');
try {
  // Front end.
  const ospText = frontEndOsprey();
  const cText = frontEndC();
  const ospLines = ospText.split('\n').length - 1;
  const cLines = cText.split('\n').length - 1;
  const cFront = join(dir, 'front.c');
  writeFileSync(cFront, cText);
  const check = () => {
    const r = checkSource(new SourceFile('front.osp', ospText));
    if (!r.typed) throw new Error('the generated front-end program does not check');
    return r;
  };
  const checked = check(); // warm-up, and the typed tree the emission rows reuse
  emitTyped(checked.file, checked.typed!).print();
  const front = row({ group: 'front end', name: `parse + check, ${ospLines.toLocaleString('en')} lines`, unit: 'lines/s', lines: ospLines, ospreyLabel: 'osprey (in-process)', cLabel: 'gcc -fsyntax-only' });
  const emit = row({ group: 'front end', name: `check + IR emission, ${ospLines.toLocaleString('en')} lines`, unit: 'lines/s', lines: ospLines, ospreyLabel: 'osprey (in-process)', cLabel: 'gcc -S -O0' });
  const emitOnly = row({ group: 'front end', name: 'IR emission alone (lower + emit + verify + print)', unit: 'lines/s', lines: ospLines, ospreyLabel: 'osprey (in-process)', cLabel: '—' });

  // End to end.
  const helloOsp = join(dir, 'hello.osp');
  writeFileSync(helloOsp, HELLO_OSP);
  const helloC = join(dir, 'hello.c');
  writeFileSync(helloC, HELLO_C);
  const e2eFast = row({ group: 'end to end', name: 'hello world, fast build', unit: 'ms', ospreyLabel: 'osprey build --fast', cLabel: 'gcc -O0' });
  const e2eRelease = row({ group: 'end to end', name: 'hello world, release build', unit: 'ms', ospreyLabel: 'osprey build (-O2)', cLabel: 'gcc -O2' });

  // Compile latency: large inputs, and `osprey run` of an unchanged program (build cache).
  process.env.OSPREY_CACHE_DIR = join(dir, 'run-cache');
  const listOsp = join(dir, 'list.osp');
  writeFileSync(listOsp, listOsprey(100_000));
  const listCFile = join(dir, 'list.c');
  writeFileSync(listCFile, listC(100_000));
  const bigList = row({ group: 'compile latency', name: '100,000-element list literal, release build', unit: 'ms', ospreyLabel: 'osprey build', cLabel: 'gcc -O2 (static array)' });
  const tenKOsp = join(dir, 'tenk.osp');
  writeFileSync(tenKOsp, frontEndOsprey(1000));
  const tenKC = join(dir, 'tenk.c');
  writeFileSync(tenKC, frontEndC(1000));
  const tenK = row({ group: 'compile latency', name: '10,000 lines, release build', unit: 'ms', ospreyLabel: 'osprey build', cLabel: 'gcc -O2' });
  const cachedHello = row({ group: 'compile latency', name: 'osprey run hello world, unchanged (cache hit)', unit: 'ms', ospreyLabel: 'osprey run', cLabel: 'the executable itself' });
  const fibOsp = join(dir, 'fib.osp');
  const fibProgram = BENCH_PROGRAMS.find((p) => p.slug === 'fib')!;
  writeFileSync(fibOsp, fibProgram.osprey(fibProgram.benchSize));
  const cachedFib = row({ group: 'compile latency', name: `osprey run ${fibProgram.name}, unchanged (cache hit)`, unit: 'ms', ospreyLabel: 'osprey run', cLabel: 'the executable itself' });
  const helloRunExe = join(dir, 'hello-run');
  const fibRunExe = join(dir, 'fib-run');
  await compileOsprey(HELLO_OSP, helloRunExe, 'fast');
  await compileOsprey(fibProgram.osprey(fibProgram.benchSize), fibRunExe, 'fast');
  // Fill the cache once.
  await command(process.execPath, [OSPREY, 'run', helloOsp]);
  await command(process.execPath, [OSPREY, 'run', fibOsp]);

  // Generated code.
  const runtime = [];
  for (const [i, p] of RUNTIME_PROGRAMS.entries()) {
    const ospExe = join(dir, `rt${i}-osprey`);
    const cExe = join(dir, `rt${i}-c`);
    await compileOsprey(p.osprey, ospExe, 'release');
    compileC(p.c, dir, cExe);
    const a = await runMeasured(ospExe);
    const b = await runMeasured(cExe);
    if (a.status !== 0 || b.status !== 0 || a.stdout !== b.stdout) {
      throw new Error(`${p.name}: outputs differ: osprey ${JSON.stringify(a.stdout)} (exit ${a.status}), C ${JSON.stringify(b.stdout)} (exit ${b.status})`);
    }
    runtime.push({ ospExe, cExe, row: row({ group: 'generated code', name: p.name, unit: 'ms', ospreyLabel: 'osprey -O2', cLabel: 'gcc -O2' }) });
  }

  for (let round = 1; round <= ROUNDS; round++) {
    front.osprey.push(timed(() => check()));
    front.c.push(await command('gcc', ['-fsyntax-only', cFront]));
    let typed = checked;
    emit.osprey.push(timed(() => {
      typed = check();
      emitTyped(typed.file, typed.typed!).print();
    }));
    emit.c.push(await command('gcc', ['-S', '-O0', '-o', join(dir, 'front.s'), cFront]));
    emitOnly.osprey.push(timed(() => emitTyped(typed.file, typed.typed!).print()));

    e2eFast.osprey.push(await command(process.execPath, [OSPREY, 'build', '--fast', helloOsp, '-o', join(dir, 'hello-osp')]));
    e2eFast.c.push(await command('gcc', ['-O0', '-o', join(dir, 'hello-c'), helloC]));
    e2eRelease.osprey.push(await command(process.execPath, [OSPREY, 'build', helloOsp, '-o', join(dir, 'hello-osp')]));
    e2eRelease.c.push(await command('gcc', ['-O2', '-o', join(dir, 'hello-c'), helloC]));

    bigList.osprey.push(await commandWithPeak(process.execPath, [OSPREY, 'build', listOsp, '-o', join(dir, 'list-osp')]));
    bigList.c.push(await commandWithPeak('gcc', ['-O2', '-o', join(dir, 'list-c'), listCFile]));
    tenK.osprey.push(await commandWithPeak(process.execPath, [OSPREY, 'build', tenKOsp, '-o', join(dir, 'tenk-osp')]));
    tenK.c.push(await commandWithPeak('gcc', ['-O2', '-o', join(dir, 'tenk-c'), tenKC]));
    cachedHello.osprey.push(await command(process.execPath, [OSPREY, 'run', helloOsp]));
    cachedHello.c.push(await run(helloRunExe));
    cachedFib.osprey.push(await command(process.execPath, [OSPREY, 'run', fibOsp]));
    cachedFib.c.push(await run(fibRunExe));

    for (const r of runtime) {
      r.row.osprey.push(await run(r.ospExe));
      r.row.c.push(await run(r.cExe));
    }
    console.error(`round ${round}/${ROUNDS} done`);
  }
} finally {
  removeDir(dir);
}

// ---- report -----------------------------------------------------------------------------------

function fmt(m: number): string {
  return m >= 1000 ? `${(m / 1000).toFixed(2)} s` : `${m.toFixed(m < 10 ? 1 : 0)} ms`;
}

function show(r: Row, xs: Sample[]): string {
  if (!xs.length) return '—';
  const cpu = median(xs.map((x) => x.cpu));
  const wall = median(xs.map((x) => x.ms));
  const peaks = xs.map((x) => x.peakKb).filter((k): k is number => k !== undefined);
  const peak = peaks.length ? `, peak ${(Math.max(...peaks) / 1024).toFixed(0)} MB` : '';
  if (r.unit === 'ms') return `${fmt(cpu)} CPU (${fmt(wall)} wall${peak})`;
  return `${Math.round((r.lines! / cpu) * 1000).toLocaleString('en')} lines/s (${fmt(cpu)} CPU, ${fmt(wall)} wall)`;
}

const cpu = cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU';
const date = new Date().toISOString().slice(0, 10);
const table = [
  `Machine: ${cpus().length} cores (${cpu}), Node ${process.version}, ${date}. ` +
    `Command: \`npm run bench:lang -- --rounds ${ROUNDS}\`; medians of ${ROUNDS} interleaved rounds.`,
  '',
  '| group | benchmark | Osprey | C (gcc 12) | Osprey ÷ C (CPU time) |',
  '|---|---|---|---|---|',
  ...rows.map((r) => {
    const cpu = (xs: Sample[]) => median(xs.map((x) => x.cpu));
    const ratio = r.c.length ? `${(cpu(r.osprey) / cpu(r.c)).toFixed(2)}×` : '—';
    return `| ${r.group} | ${r.name} | ${r.ospreyLabel}: ${show(r, r.osprey)} | ${r.c.length ? `${r.cLabel}: ${show(r, r.c)}` : '—'} | ${ratio} |`;
  }),
  '',
  generatedSummary(),
].join('\n');

/** Geometric mean and maximum of the generated-code ratios (the speed target: ≤ 1.2×, none above 2×). */
function generatedSummary(): string {
  const ratios = rows
    .filter((r) => r.group === 'generated code' && r.c.length)
    .map((r) => ({ name: r.name, ratio: median(r.osprey.map((x) => x.cpu)) / median(r.c.map((x) => x.cpu)) }));
  if (!ratios.length) return '';
  const geo = Math.exp(ratios.reduce((a, r) => a + Math.log(r.ratio), 0) / ratios.length);
  const worst = ratios.reduce((a, r) => (r.ratio > a.ratio ? r : a));
  return `Generated code over ${ratios.length} programs: geometric mean ${geo.toFixed(2)}× gcc -O2, highest ${worst.ratio.toFixed(2)}× (${worst.name}).`;
}

console.log(table);

if (WRITE) {
  const doc = join(ROOT, 'docs', 'BENCHMARKS-LANG.md');
  const text = readFileSync(doc, 'utf8');
  const begin = '<!-- lang-bench:begin -->';
  const end = '<!-- lang-bench:end -->';
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < 0) throw new Error(`${doc} has no ${begin} … ${end} markers`);
  writeFileSync(doc, `${text.slice(0, a + begin.length)}\n${table}\n${text.slice(b)}`);
  console.error(`table written to ${doc}`);
}
