#!/usr/bin/env tsx
/**
 * Long-running front-end fuzzer: the generators of tests/compiler/robustness-fuzz.ts (mutated
 * golden and diagnostics programs, random token streams, hand-written extremes and checker corner
 * cases) for N seconds. Each process keeps one LLVM context per emitted module (llvm-bindings
 * never frees them), so its memory grows by roughly 0.3 MB per compiled mutant.
 *
 *   npx tsx scripts/fuzz-compiler.ts --seconds 600            random seeds until time is up
 *   npx tsx scripts/fuzz-compiler.ts --seed 1234 --seconds 60  start from a given seed
 *   npx tsx scripts/fuzz-compiler.ts --budget 2000             per-input time budget in ms
 *
 * Every failing input is written to build/fuzz-compiler/<seed>-<n>.osp with its failure beside it
 * (<seed>-<n>.txt); the exit status is 1 when anything failed. Reproduce one with
 * `osprey check build/fuzz-compiler/<seed>-<n>.osp`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { extremes, fuzzCases, runCase, SEMANTIC_EDGES } from '../tests/compiler/robustness-fuzz.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? Number(process.argv[i + 1]) : fallback;
}

const seconds = arg('--seconds', 60);
const budget = arg('--budget', 2000);
let seed = arg('--seed', Math.floor(Math.random() * 2 ** 31));
const outDir = join(import.meta.dirname, '..', 'build', 'fuzz-compiler');
const deadline = Date.now() + seconds * 1000;

let cases = 0;
let failures = 0;
let compiled = 0;
let slowest = { ms: 0, name: '' };

function record(name: string, text: string, failure: string, tag: string): void {
  failures++;
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, `${tag}.osp`), text);
  writeFileSync(join(outDir, `${tag}.txt`), `${name}\n${failure}\n`);
  console.log(`FAIL ${tag} ${name}\n  ${failure.split('\n').join('\n  ')}`);
}

for (const [i, text] of SEMANTIC_EDGES.entries()) {
  const o = runCase(text, budget);
  cases++;
  if (!o.ok) record(`checker corner case ${i}`, text, o.failure, `edge-${i}`);
}

for (const [i, c] of extremes().entries()) {
  const o = runCase(c.text, Math.max(budget, 8000)); // large by design: a wider budget
  cases++;
  if (!o.ok) record(c.name, c.text, o.failure, `extreme-${i}`);
}

outer: while (Date.now() < deadline) {
  let n = 0;
  for (const c of fuzzCases(seed, 3, 300)) {
    if (Date.now() >= deadline) break outer;
    const o = runCase(c.text, budget);
    cases++;
    if (o.compiled) compiled++;
    if (o.ms > slowest.ms) slowest = { ms: o.ms, name: `seed ${seed}: ${c.name}` };
    if (!o.ok) record(c.name, c.text, o.failure, `${seed}-${n}`);
    n++;
  }
  console.log(`seed ${seed}: ${n} cases, ${failures} failures so far`);
  seed = (seed + 1) >>> 0;
}

console.log(`${cases} cases in ${seconds} s: ${failures} failures, ${compiled} mutants compiled; slowest ${slowest.ms.toFixed(0)} ms (${slowest.name})`);
process.exit(failures ? 1 : 0);
