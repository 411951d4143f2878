/**
 * Bounded CI run of the libFuzzer targets (scripts/fuzz.ts): frame codec, handshake parser,
 * I/O-free session and UTF-8 validator, 10 s each, run at the same time. A crash, sanitizer report, leak or timeout in
 * any of them fails the test with the reproducing command. The long run is
 * `npx tsx scripts/fuzz.ts` (10 min per target).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SECONDS = Number(process.env.OSPREY_FUZZ_SECONDS ?? '10');

describe.skipIf(!existsSync('/usr/bin/clang-14'))('libFuzzer targets (clang-14, ASan + UBSan)', () => {
  it(`frame, handshake, session and utf8 run ${SECONDS} s each without a finding`, async () => {
    let out: { stdout: string; stderr: string };
    try {
      out = await run('npx', ['tsx', 'scripts/fuzz.ts', '--seconds', String(SECONDS), '--parallel', '--only', 'frame,handshake,session,utf8'], {
        cwd: ROOT,
        timeout: (SECONDS + 100) * 1000,
        maxBuffer: 16 * 1024 * 1024,
      });
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(`scripts/fuzz.ts failed:\n${err.stdout ?? ''}${err.stderr ?? ''}${err.message}`);
    }
    const lines = out.stdout.split('\n').filter((l) => l.startsWith('fuzz '));
    expect(lines, out.stdout).toHaveLength(4);
    for (const l of lines) expect(l, out.stdout).toMatch(/: ok — \d+ runs/);
  }, 180_000);
});
