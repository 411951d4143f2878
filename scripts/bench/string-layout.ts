#!/usr/bin/env tsx
/**
 * Strings with a length header against the NUL-terminated strings before them: the string
 * programs of `npm run bench:lang`, the memory workload of `npm run bench:lang-memory` and its
 * collector-off control, each built (-O2) by this checkout and by a baseline checkout, run side by
 * side in one invocation.
 *
 *   npx tsx scripts/bench/string-layout.ts --baseline DIR            5 rounds
 *   npx tsx scripts/bench/string-layout.ts --baseline DIR --write    also rewrite the table in
 *                                                                    docs/BENCHMARKS-LANG.md
 *
 * DIR is another checkout whose runtime and compiler bundle are built (`npm install`), e.g. a
 * worktree of the commit before strings carried their length:
 *   git worktree add --detach /tmp/osprey-before b9727bc && cp -al node_modules /tmp/osprey-before/ &&
 *   (cd /tmp/osprey-before && npx tsx scripts/build-runtime.ts && npx tsx scripts/bundle-compiler.ts)
 *
 * Method (as bench:lang): nothing is compared across runs; every round runs each program's
 * baseline and current executables back to back, alternating which goes first, and the table
 * gives the median CPU time (user + system) and peak RSS of each side and their ratio
 * (current / baseline: below 1 is better). Both sides must print the same result.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { churnExpected, churnProgram, compileOsprey, median, removeDir, ROOT, runMeasured, tempDir } from './lang-common.ts';
import { BENCH_PROGRAMS } from './lang-programs.ts';

const argv = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const BASELINE = option('--baseline');
const ROUNDS = Number(option('--rounds') ?? 5);
if (!BASELINE) {
  console.error('usage: string-layout.ts --baseline DIR [--rounds N] [--write]  (DIR: a built checkout to compare with)');
  process.exit(2);
}

interface Row {
  name: string;
  text: string;
  env?: Record<string, string>;
  expected?: string;
}

const MEMORY_N = 10_000_000;
const CONTROL_N = 1_000_000;
const rows: Row[] = [
  ...BENCH_PROGRAMS.filter((p) => p.slug.startsWith('string_')).map((p) => ({ name: p.name, text: p.osprey(p.benchSize) })),
  { name: `bench:lang-memory churn, ${MEMORY_N.toLocaleString('en')} iterations`, text: churnProgram(MEMORY_N), expected: churnExpected(MEMORY_N) },
  {
    name: `bench:lang-memory control (collector off), ${CONTROL_N.toLocaleString('en')} iterations`,
    text: churnProgram(CONTROL_N),
    env: { GC_DONT_GC: '1' },
    expected: churnExpected(CONTROL_N),
  },
];

const dir = tempDir('osprey-string-layout-');
try {
  const exes = await Promise.all(
    rows.map(async (row, i) => {
      const src = join(dir, `p${i}.osp`);
      writeFileSync(src, row.text);
      const current = join(dir, `p${i}-current`);
      await compileOsprey(row.text, current, 'release');
      const baseline = join(dir, `p${i}-baseline`);
      const b = spawnSync(process.execPath, [join(BASELINE, 'bin', 'osprey.mjs'), 'build', src, '-o', baseline], { encoding: 'utf8' });
      if (b.status !== 0) throw new Error(`the baseline compiler failed on ${row.name}:\n${b.stderr}`);
      return { current, baseline };
    }),
  );
  const samples = rows.map(() => ({ current: [] as { cpu: number; kb: number }[], baseline: [] as { cpu: number; kb: number }[] }));
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < rows.length; i++) {
      const order = (round + i) % 2 === 0 ? (['baseline', 'current'] as const) : (['current', 'baseline'] as const);
      const outputs: Record<string, string> = {};
      for (const side of order) {
        const r = await runMeasured(exes[i]![side], [], rows[i]!.env ?? {});
        if (r.status !== 0) throw new Error(`${rows[i]!.name} (${side}) exited with ${r.status}`);
        outputs[side] = r.stdout;
        samples[i]![side].push({ cpu: r.cpuMs ?? r.ms, kb: r.peakKb });
      }
      if (outputs.current !== outputs.baseline) throw new Error(`${rows[i]!.name}: the two sides printed different results`);
      if (rows[i]!.expected !== undefined && outputs.current !== rows[i]!.expected) throw new Error(`${rows[i]!.name}: wrong result`);
    }
  }
  const lines = [
    `Machine: ${cpus().length} cores, ${new Date().toISOString().slice(0, 10)}; command: \`npx tsx scripts/bench/string-layout.ts --baseline DIR --write\` (${ROUNDS} rounds, medians; ratio = with header / before, below 1 is better).`,
    '',
    '| program (-O2) | CPU before | CPU with header | ratio | peak RSS before | peak RSS with header | ratio |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  rows.forEach((row, i) => {
    const s = samples[i]!;
    const cpuB = median(s.baseline.map((x) => x.cpu));
    const cpuC = median(s.current.map((x) => x.cpu));
    const kbB = median(s.baseline.map((x) => x.kb));
    const kbC = median(s.current.map((x) => x.kb));
    lines.push(
      `| ${row.name} | ${(cpuB / 1000).toFixed(2)} s | ${(cpuC / 1000).toFixed(2)} s | ${(cpuC / cpuB).toFixed(2)} | ` +
        `${(kbB / 1024).toFixed(1)} MB | ${(kbC / 1024).toFixed(1)} MB | ${(kbC / kbB).toFixed(2)} |`,
    );
  });
  for (const l of lines) console.log(l);
  if (argv.includes('--write')) {
    const path = join(ROOT, 'docs', 'BENCHMARKS-LANG.md');
    const doc = readFileSync(path, 'utf8');
    const begin = '<!-- string-layout:begin -->';
    const end = '<!-- string-layout:end -->';
    const a = doc.indexOf(begin);
    const b = doc.indexOf(end);
    if (a < 0 || b < a) throw new Error(`docs/BENCHMARKS-LANG.md has no ${begin} … ${end} block`);
    writeFileSync(path, doc.slice(0, a + begin.length) + '\n' + lines.join('\n') + '\n' + doc.slice(b));
    console.log('wrote docs/BENCHMARKS-LANG.md');
  }
} finally {
  removeDir(dir);
}
