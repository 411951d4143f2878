/**
 * The conformance suite's server cases, once, against the echo-server testee built with
 * -fsanitize=address,undefined (build/tools/asan/ws-echo-server, from scripts/build-runtime.ts).
 * Every case must pass and no sanitizer report may appear: the testee's ASan/UBSan output goes to
 * files in a temporary directory (log_path), which must stay empty. LeakSanitizer is on (see the
 * osprey-c-runtime-asan target in tests/conformance/targets.ts).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { OSPREY_ASAN_ECHO_SERVER } from '../conformance/targets.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FILES = ['server-framing', 'server-handshake', 'server-limits', 'server-utf8-close'].map((f) => `tests/conformance/${f}.test.ts`);

describe.skipIf(!existsSync(OSPREY_ASAN_ECHO_SERVER))('conformance server cases against the ASan+UBSan testee', () => {
  it('all pass with no sanitizer report', async () => {
    const logs = mkdtempSync(join(tmpdir(), 'osprey-sanitizer-'));
    try {
      let out: { stdout: string; stderr: string };
      try {
        out = await run('npx', ['vitest', 'run', ...FILES], {
          cwd: ROOT,
          timeout: 150_000,
          maxBuffer: 64 * 1024 * 1024,
          env: { ...process.env, CONFORMANCE_TARGETS: 'osprey-c-runtime-asan', OSPREY_SANITIZER_LOG_DIR: logs, FORCE_COLOR: '0', NO_COLOR: '1' },
        });
      } catch (e) {
        const err = e as { stdout?: string; stderr?: string; message: string };
        throw new Error(`conformance run failed:\n${(err.stdout ?? '').slice(-6000)}${(err.stderr ?? '').slice(-4000)}`);
      }
      const passed = /Tests\s+(\d+) passed/.exec(out.stdout);
      expect(passed, out.stdout.slice(-3000)).not.toBeNull();
      expect(Number(passed![1])).toBeGreaterThan(50);
      expect(out.stdout).not.toMatch(/\b[1-9]\d* failed/);
      const reports = readdirSync(logs).map((f) => `${f}:\n${readFileSync(join(logs, f), 'utf8').slice(0, 4000)}`);
      expect(reports.join('\n')).toBe('');
    } finally {
      rmSync(logs, { recursive: true, force: true });
    }
  }, 170_000);
});
