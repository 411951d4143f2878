/**
 * Before/after comparison of generated code: the twelve programs of `npm run bench:lang`
 * (scripts/bench/lang-programs.ts) built with -O2 by another checkout's compiler ("before", e.g. a
 * worktree of main), by this one ("after") and by gcc -O2, all run interleaved in one process
 * (before, after, C, before, after, C, …). Prints CPU-time medians and ratios, plus callgrind
 * instruction counts (repeatable on a loaded machine) at the sizes given by --icount-scale.
 *
 *   npx tsx scripts/bench/lang-compare.ts --before /path/to/other/checkout [--rounds 5] [--no-icount]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_PROGRAMS } from './lang-programs.ts';
import { compileC, median, removeDir, ROOT, runMeasured, tempDir } from './lang-common.ts';

const argv = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const at = argv.indexOf(name);
  return at >= 0 ? argv[at + 1] : undefined;
};
const beforeRoot = option('--before');
if (!beforeRoot || !existsSync(join(beforeRoot, 'bin', 'osprey.mjs'))) {
  console.error('usage: lang-compare.ts --before CHECKOUT [--rounds N] [--no-icount]   (CHECKOUT has bin/osprey.mjs)');
  process.exit(2);
}
const ROUNDS = Number(option('--rounds') ?? 5);
const ICOUNT = !argv.includes('--no-icount');
/** Smaller sizes for callgrind (it runs programs about 50 times slower). */
const ICOUNT_SIZE: Record<string, number> = {
  fib: 30, fold_sum: 2_000_000, string_concat: 400_000, string_interp: 200_000, ackermann: 8, hanoi: 20,
  binary_tree: 14, closures: 2_000_000, list_processing: 30_000, collatz: 100_000, gcd: 600_000, expr_eval: 16,
};

const dir = tempDir('osprey-lang-compare-');
process.on('exit', () => removeDir(dir));
const build = (root: string, text: string, exe: string): void => {
  const src = `${exe}.osp`;
  writeFileSync(src, text);
  execFileSync(process.execPath, [join(root, 'bin', 'osprey.mjs'), 'build', src, '-o', exe], { stdio: ['ignore', 'ignore', 'inherit'] });
};
const instructions = (exe: string): number => {
  const out = execFileSync('sh', ['-c', 'valgrind --tool=callgrind --callgrind-out-file=/dev/null "$0" 2>&1 >/dev/null', exe], { encoding: 'utf8' });
  const m = /refs:\s+([\d,]+)/.exec(out);
  if (!m) throw new Error(`no instruction count for ${exe}:\n${out}`);
  return Number(m[1]!.replace(/,/g, ''));
};

const SIDES = ['before', 'after', 'c'] as const;
type Side = (typeof SIDES)[number];
const rows: { name: string; cpu: Record<Side, number>; icount?: Record<Side, number> }[] = [];
for (const p of BENCH_PROGRAMS) {
  const exe = (side: Side, tag: string): string => join(dir, `${p.slug}-${tag}.${side}`);
  const sizes: [string, number][] = [['bench', p.benchSize]];
  if (ICOUNT) sizes.push(['icount', ICOUNT_SIZE[p.slug] ?? p.goldenSize]);
  for (const [tag, n] of sizes) {
    build(beforeRoot, p.osprey(n), exe('before', tag));
    build(ROOT, p.osprey(n), exe('after', tag));
    compileC(p.c(n), dir, exe('c', tag));
  }
  const cpu: Record<Side, number[]> = { before: [], after: [], c: [] };
  let expected: string | undefined;
  for (let r = 0; r < ROUNDS; r++) {
    for (const side of SIDES) {
      const run = await runMeasured(exe(side, 'bench'));
      if (run.status !== 0) throw new Error(`${p.slug} (${side}) exited with ${run.status}`);
      expected ??= run.stdout;
      if (run.stdout !== expected) throw new Error(`${p.slug}: ${side} printed ${run.stdout.trim()}, expected ${expected.trim()}`);
      cpu[side].push(run.cpuMs ?? run.ms);
    }
  }
  const row: (typeof rows)[number] = { name: p.name, cpu: { before: median(cpu.before), after: median(cpu.after), c: median(cpu.c) } };
  if (ICOUNT) row.icount = { before: instructions(exe('before', 'icount')), after: instructions(exe('after', 'icount')), c: instructions(exe('c', 'icount')) };
  rows.push(row);
  console.error(`${p.slug}: done`);
}

const ms = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toPrecision(2)) + ' ms';
const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
const geo = (xs: number[]): number => Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
console.log('| program | CPU before | CPU after | gcc -O2 | CPU ÷ C before → after | instructions ÷ C before → after |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) {
  const ic = r.icount ? `${ratio(r.icount.before, r.icount.c)} → ${ratio(r.icount.after, r.icount.c)}` : '—';
  console.log(`| ${r.name} | ${ms(r.cpu.before)} | ${ms(r.cpu.after)} | ${ms(r.cpu.c)} | ${ratio(r.cpu.before, r.cpu.c)} → ${ratio(r.cpu.after, r.cpu.c)} | ${ic} |`);
}
const g = (side: Side, key: 'cpu' | 'icount'): string => geo(rows.map((r) => r[key]![side] / r[key]!.c)).toFixed(2) + '×';
const icountGeo = ICOUNT ? `**${g('before', 'icount')} → ${g('after', 'icount')}**` : '—';
console.log(`| **geometric mean** | | | | **${g('before', 'cpu')} → ${g('after', 'cpu')}** | ${icountGeo} |`);
const worst = rows.reduce((a, b) => (b.cpu.after / b.cpu.c > a.cpu.after / a.cpu.c ? b : a));
console.log(`\nHighest after (CPU): ${ratio(worst.cpu.after, worst.cpu.c)} (${worst.name}); ${ROUNDS} rounds, medians.`);
