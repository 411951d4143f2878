/**
 * Front-end robustness under hostile input (see robustness-fuzz.ts for the contract and the
 * generators): hand-written extremes — 10,000 nested parentheses, blocks, matches, lambdas; a
 * 100,000-term sum; 20,000 statements; 10,000 local lets; a 1 MB line; a huge literal — checker
 * corner cases, and one seeded round of mutated golden/diagnostics programs plus random token
 * streams. Bounded to well under 30 s on
 * two cores; `npx tsx scripts/fuzz-compiler.ts --seconds N` runs the same generators for longer.
 *
 * A failure names the case; rerun it with `FUZZ_SEED=<seed>` (the round is deterministic).
 */
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';
import { corpusYardstickMs, extremes, fuzzCases, runCase, SEMANTIC_EDGES } from './robustness-fuzz.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 20261129);

describe('the front end survives extreme inputs', () => {
  for (const c of extremes()) {
    it(c.name, { timeout: 60_000 }, () => {
      // Generous: these inputs are large, and CI machines are shared; the point is "not unbounded".
      // The flat extremes (a 100,000-term sum, a 3,000-constructor match) are compiled in full now,
      // in 1–4 s on an idle core; the whole suite running beside them can make that 5× slower.
      const o = runCase(c.text, 25_000);
      expect(o.failure).toBe('');
    });
  }

  it('10,000 nested parentheses give one nesting diagnostic, not a stack overflow', () => {
    const r = checkSource(new SourceFile('deep.osp', `let x = ${'('.repeat(10_000)}1${')'.repeat(10_000)}\n`));
    expect(r.diagnostics.map((d) => d.message)).toEqual(['this program is nested too deeply: more than 256 levels']);
  });

  it('nesting just under the limit still compiles', () => {
    const depth = 200;
    for (const [open, close] of [['(', ')'], ['{ ', ' }'], ['match 1 { _ => ', ' }'], ['fn() => ', '']] as const) {
      const o = runCase(`let x = ${open.repeat(depth)}1${close.repeat(depth)}\nprint(1)\n`);
      expect(o.failure).toBe('');
      expect(o.compiled, `${depth} × ${open}`).toBe(true);
    }
  });
});

describe('checker corner cases', () => {
  it('never throw and only ever report errors', () => {
    const failures = SEMANTIC_EDGES.map((text) => ({ text, o: runCase(text) })).filter((x) => !x.o.ok);
    expect(failures.map((f) => `${JSON.stringify(f.text)}: ${f.o.failure}`)).toEqual([]);
  });
});

describe(`mutated programs and random token streams (seed ${SEED})`, () => {
  it('never throw, never hang, only ever report errors', { timeout: 120_000 }, () => {
    const failures: string[] = [];
    let n = 0;
    // The time budget exists to catch super-linear front-end behaviour on hostile input (a
    // quadratic scan of a 35 KB line, backtracking that explodes): such a case takes seconds to
    // minutes, where the slowest legitimate case takes ~0.2 s. On an idle machine the budget is
    // 2 s; a loaded one (load average 15-30) once stretched a legitimate case to 2011 ms. So a case
    // over 2 s is measured against a yardstick taken right then, on the same machine: the whole
    // unmutated corpus through the same front end (~0.9 s idle). It fails only when it took longer
    // than 2 s AND longer than twice that yardstick — the budget grows with the machine's slowdown
    // and does not shrink on an idle one.
    const BUDGET_MS = 2000;
    for (const c of fuzzCases(SEED, 3, 300)) {
      const o = runCase(c.text, Infinity);
      n++;
      if (!o.ok) failures.push(`${c.name}: ${o.failure}`);
      else if (o.ms > BUDGET_MS) {
        const yardstick = corpusYardstickMs();
        const budget = Math.max(BUDGET_MS, 2 * yardstick);
        if (o.ms > budget) failures.push(`${c.name}: took ${o.ms.toFixed(0)} ms (budget ${budget.toFixed(0)} ms: 2 s, or twice the ${yardstick.toFixed(0)} ms the unmutated corpus took just now)`);
      }
    }
    expect(n).toBeGreaterThan(300);
    expect(failures).toEqual([]);
  });
});
