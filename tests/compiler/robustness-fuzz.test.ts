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
import { extremes, fuzzCases, runCase, SEMANTIC_EDGES } from './robustness-fuzz.ts';

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
    for (const c of fuzzCases(SEED, 3, 300)) {
      const o = runCase(c.text, 2000);
      n++;
      if (!o.ok) failures.push(`${c.name}: ${o.failure}`);
    }
    expect(n).toBeGreaterThan(300);
    expect(failures).toEqual([]);
  });
});
