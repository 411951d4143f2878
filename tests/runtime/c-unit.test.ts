/**
 * The C runtime's unit tests (runtime-c/tests/test_*.c) under AddressSanitizer and
 * UndefinedBehaviorSanitizer with leak detection, through the same command developers run:
 * `npx tsx scripts/build-runtime.ts --tests`.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('C runtime unit tests (ASan + UBSan)', () => {
  it('scripts/build-runtime.ts --tests passes with no sanitizer report', async () => {
    let out: { stdout: string; stderr: string };
    try {
      out = await run('npx', ['tsx', 'scripts/build-runtime.ts', '--tests'], { cwd: ROOT, timeout: 240_000, maxBuffer: 64 * 1024 * 1024 });
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(`C unit tests failed:\n${(err.stdout ?? '').slice(-8000)}${(err.stderr ?? '').slice(-8000)}${err.message}`);
    }
    const summary = /C runtime tests: (\d+) passed, (\d+) failed/.exec(out.stdout);
    expect(summary, out.stdout.slice(-4000)).not.toBeNull();
    expect(Number(summary![2])).toBe(0);
    expect(Number(summary![1])).toBeGreaterThan(0);
    expect(out.stdout + out.stderr).not.toMatch(/ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
  }, 260_000);
});
