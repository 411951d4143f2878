/**
 * The compiler finds its runtime relative to its own files (runtime-bindings/toolchain.ts), not
 * from the working directory or a package.json: from source, from the bundle, and through a
 * symlinked `osprey` command (what `npm link` / `npm install -g .` create), run from elsewhere.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT, runtimeLibrary } from '../../runtime-bindings/toolchain.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
const HELLO = join(ROOT, 'examples', 'hello.osp');
const BUNDLE = join(ROOT, 'build', 'compiler', 'osprey.mjs');
const away = mkdtempSync(join(tmpdir(), 'osprey-elsewhere-'));

afterAll(() => rmSync(away, { recursive: true, force: true }));

describe('the package root', () => {
  it('is the checkout when run from source', () => {
    expect(PROJECT_ROOT).toBe(ROOT);
    expect(runtimeLibrary('release')).toBe(join(ROOT, 'build', 'runtime', 'release', 'libosprey_runtime.a'));
  });

  it.skipIf(!existsSync(BUNDLE))('is found by the bundle (its chunks included) from another working directory', () => {
    const out = execFileSync(process.execPath, [BUNDLE, 'run', HELLO], { cwd: away, encoding: 'utf8', timeout: 60_000 });
    expect(out).toBe('Hello, Osprey!\n');
    // The harness is a chunk of its own; it finds its C probe support (tools/abi-check/) the same way.
    const report = execFileSync(process.execPath, [BUNDLE, 'abi-check', '--only', 'osp_print', '--json'], { cwd: away, encoding: 'utf8', timeout: 120_000 });
    expect((JSON.parse(report) as { failed: number; passed: number }).failed).toBe(0);
  });

  it('is found through a symlinked osprey command, as npm link installs it', () => {
    const link = join(away, 'osprey');
    symlinkSync(join(ROOT, 'bin', 'osprey.mjs'), link);
    const out = execFileSync(process.execPath, [link, 'run', HELLO], { cwd: away, encoding: 'utf8', timeout: 60_000 });
    expect(out).toBe('Hello, Osprey!\n');
  });
});
