/**
 * The build cache of `osprey run` (scripts/build-cache.mjs): a second run of an unchanged program
 * does not compile (observable through `-v`, which says which path was taken, and through the
 * cache directory), while a changed source, a different flag or another cache key rebuilds.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OSPREY_BIN } from './helpers.ts';

const work = mkdtempSync(join(tmpdir(), 'osprey-cache-test-'));
const cacheDir = join(work, 'cache');
afterAll(() => rmSync(work, { recursive: true, force: true }));

function osprey(args: string[], env: Record<string, string> = {}) {
  const p = spawnSync(process.execPath, [OSPREY_BIN, ...args], {
    cwd: work,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, OSPREY_CACHE_DIR: cacheDir, OSPREY_NO_CACHE: '', ...env },
  });
  return { stdout: p.stdout, stderr: p.stderr, status: p.status };
}

const entries = () => readdirSync(cacheDir).filter((n) => /^[0-9a-f]{64}$/.test(n)).length;

describe.sequential('osprey run build cache', () => {
  const prog = join(work, 'prog.osp');

  it('compiles on the first run and runs the cached executable on the second', () => {
    writeFileSync(prog, 'print("first")\nfn main() -> Int = 3\n');
    const a = osprey(['run', 'prog.osp', '-v']);
    expect(a.stdout).toBe('first\n');
    expect(a.status).toBe(3);
    expect(a.stderr).toContain('osprey: compiled and cached');
    expect(entries()).toBe(1);
    const b = osprey(['run', 'prog.osp', '-v']);
    expect(b.stdout).toBe('first\n');
    expect(b.status).toBe(3);
    expect(b.stderr).toContain('osprey: cache hit');
    expect(entries()).toBe(1);
  });

  it('rebuilds when the source changes', () => {
    writeFileSync(prog, 'print("second")\n');
    const r = osprey(['run', 'prog.osp', '-v']);
    expect(r.stdout).toBe('second\n');
    expect(r.stderr).toContain('osprey: compiled and cached');
    expect(osprey(['run', 'prog.osp', '-v']).stderr).toContain('osprey: cache hit');
  });

  it('rebuilds for a flag that changes the build, and the old spelling shares the entry', () => {
    const before = entries();
    const r = osprey(['run', 'prog.osp', '-v', '-O']);
    expect(r.stdout).toBe('second\n');
    expect(r.stderr).toContain('osprey: compiled and cached');
    expect(entries()).toBe(before + 1);
    expect(osprey(['prog.osp', '--run', '--release', '-v']).stderr).toContain('osprey: cache hit');
  });

  it('never caches a program that does not compile, and --no-cache / OSPREY_NO_CACHE compile again', () => {
    const before = entries();
    writeFileSync(join(work, 'bad.osp'), 'print(undefinedThing)\n');
    const bad = osprey(['run', 'bad.osp', '-v']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('undefinedThing');
    expect(entries()).toBe(before);
    expect(osprey(['run', 'prog.osp', '-v', '--no-cache']).stderr).toContain('osprey: compiled (not cached)');
    expect(osprey(['run', 'prog.osp', '-v'], { OSPREY_NO_CACHE: '1' }).stderr).toContain('osprey: compiled (not cached)');
  });

  it('keeps the directory within OSPREY_CACHE_MAX_MB by evicting the least recently used entries', () => {
    // Executables are tens of kilobytes: a 1 MB bound holds a handful, never all of 3 + the rest.
    for (let i = 0; i < 3; i++) {
      writeFileSync(join(work, `p${i}.osp`), `print(${i})\n`);
      expect(osprey(['run', `p${i}.osp`], { OSPREY_CACHE_MAX_MB: '0.05' }).stdout).toBe(`${i}\n`);
    }
    // 50 kB holds at most one executable of this size.
    expect(entries()).toBeLessThanOrEqual(1);
  });
});
