#!/usr/bin/env tsx
/**
 * Memory benchmark: compiles (osprey build -O2) and runs a program that builds and drops ten
 * million short strings and ten million closures, and reports its peak resident set (ru_maxrss, i.e. VmHWM).
 * Fails (exit 1) when the peak reaches 100 MB or the program prints a wrong result.
 *
 *   npx tsx scripts/bench/lang-memory.ts                 10 million iterations, -O2
 *   npx tsx scripts/bench/lang-memory.ts --n 2000000 --fast
 *   npm run bench:lang-memory -- --write   also rewrite the figure in docs/BENCHMARKS-LANG.md
 *
 * As a control, the same program runs with one million iterations and the collector switched off
 * (Boehm's GC_DONT_GC environment variable): its peak shows how much the workload really
 * allocates, i.e. that the flat figure above is the collector's doing and not an optimiser that
 * removed the allocations.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { churnExpected, churnProgram, compileOsprey, removeDir, ROOT, runMeasured, tempDir } from './lang-common.ts';

const argv = process.argv.slice(2);
const nIndex = argv.indexOf('--n');
const N = nIndex >= 0 ? Number(argv[nIndex + 1]) : 10_000_000;
const opt = argv.includes('--fast') ? 'fast' : 'release';
const LIMIT_MB = 100;

const dir = tempDir('osprey-lang-memory-');
try {
  const exe = join(dir, 'churn');
  await compileOsprey(churnProgram(N), exe, opt);
  const r = await runMeasured(exe);
  const ok = r.status === 0 && r.stdout === churnExpected(N);
  const peakMb = r.peakKb / 1024;
  const lines: string[] = [];
  const say = (line: string) => {
    console.log(line);
    lines.push(line);
  };
  say(`${N.toLocaleString('en')} strings + closures built and dropped (${opt === 'fast' ? '-O0' : '-O2'}): ` +
    `peak RSS ${peakMb.toFixed(1)} MB, ${(r.ms / 1000).toFixed(2)} s, result ${ok ? 'correct' : 'WRONG'}`);

  const controlN = 1_000_000;
  const controlExe = join(dir, 'control');
  await compileOsprey(churnProgram(controlN), controlExe, opt);
  process.env.GC_DONT_GC = '1';
  const c = await runMeasured(controlExe);
  delete process.env.GC_DONT_GC;
  say(`control, collector off (GC_DONT_GC=1), ${controlN.toLocaleString('en')} iterations: peak RSS ${(c.peakKb / 1024).toFixed(1)} MB`);

  if (process.argv.includes('--write')) {
    const doc = join(ROOT, 'docs', 'BENCHMARKS-LANG.md');
    const text = readFileSync(doc, 'utf8');
    const begin = '<!-- lang-memory:begin -->';
    const end = '<!-- lang-memory:end -->';
    const a = text.indexOf(begin);
    const b = text.indexOf(end);
    if (a < 0 || b < 0) throw new Error(`${doc} has no ${begin} … ${end} markers`);
    const when = `Machine: ${cpus().length} cores, ${new Date().toISOString().slice(0, 10)}; command: \`npm run bench:lang-memory -- --write\`.`;
    writeFileSync(doc, `${text.slice(0, a + begin.length)}\n${when}\n\n${lines.map((l) => `* ${l}`).join('\n')}\n${text.slice(b)}`);
  }

  if (!ok) {
    console.error(`wrong result: exit ${r.status}, stdout ${JSON.stringify(r.stdout)}`);
    process.exitCode = 1;
  } else if (peakMb >= LIMIT_MB) {
    console.error(`peak RSS ${peakMb.toFixed(1)} MB is not under ${LIMIT_MB} MB`);
    process.exitCode = 1;
  } else console.log(`OK: under ${LIMIT_MB} MB`);
} finally {
  removeDir(dir);
}
