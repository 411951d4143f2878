/**
 * Memory stays bounded: strings, records, lists and closures live on the Boehm-collected heap
 * (runtime-c/src/core.c osp_alloc / osp_gc_strndup), so a program that builds and drops two
 * million short strings and closures keeps a small, flat resident set. Without collection it
 * would need several hundred MB. scripts/bench/lang-memory.ts runs the ten-million version.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { churnExpected, churnProgram, compileOsprey, removeDir, runMeasured, tempDir } from '../../scripts/bench/lang-common.ts';

const N = 2_000_000;

/** 100,000 fibers alive at once: all spawned (on one worker, before any runs) before the first
 *  is awaited; a fiber holds no stack until it first runs (runtime-c/README.md, "Fibers"). */
function liveFibersProgram(n: number): string {
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

describe('memory', () => {
  it('100,000 live fibers peak under 256 MB', { timeout: 60_000 }, async () => {
    const dir = tempDir('osprey-fibers-memory-');
    try {
      const exe = join(dir, 'fibers');
      await compileOsprey(liveFibersProgram(100_000), exe, 'fast');
      const r = await runMeasured(exe, [], { OSPREY_THREADS: '1' });
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(`${100_000 * 100_001}\n`);
      expect(r.peakKb).toBeGreaterThan(0);
      expect(r.peakKb / 1024).toBeLessThan(256);
    } finally {
      removeDir(dir);
    }
  });

  it(`building and dropping ${N / 1e6} million strings and closures peaks under 100 MB`, { timeout: 60_000 }, async () => {
    const dir = tempDir('osprey-memory-');
    try {
      const exe = join(dir, 'churn');
      await compileOsprey(churnProgram(N), exe, 'fast');
      const r = await runMeasured(exe);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(churnExpected(N));
      expect(r.peakKb).toBeGreaterThan(0);
      expect(r.peakKb / 1024).toBeLessThan(100);
    } finally {
      removeDir(dir);
    }
  });
});
