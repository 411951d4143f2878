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

describe('memory', () => {
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
