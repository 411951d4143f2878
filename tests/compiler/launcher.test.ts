/**
 * The native launcher (bin/osprey, from bin/launcher/osprey.c) and the compile server
 * (compiler/src/cli/server.ts).
 *
 * Cache hits: the launcher must find exactly the entries the compiler stores (one key definition,
 * scripts/build-cache.mjs), and must never run a stale one. To see which path it took, these
 * tests put a fake `node` first on PATH: a launcher that falls back to the compiler runs it
 * (exit 99, "FAKE-NODE" on stderr), a cache hit never does.
 *
 * The server: every test uses its own private socket directory and stops the servers it started.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listFiles, OSPREY_BIN, ROOT } from './helpers.ts';

const LAUNCHER = join(ROOT, 'bin', 'osprey');
const work = mkdtempSync(join(tmpdir(), 'osprey-launcher-test-'));
const cacheDir = join(work, 'cache');
const fakeBin = join(work, 'fake-bin');
mkdirSync(fakeBin);
writeFileSync(join(fakeBin, 'node'), '#!/bin/sh\necho FAKE-NODE >&2\nexit 99\n');
chmodSync(join(fakeBin, 'node'), 0o755);

const serverDirs: string[] = [];
afterAll(() => {
  for (const dir of serverDirs) stopServers(dir);
  rmSync(work, { recursive: true, force: true });
});

const baseEnv = { ...process.env, OSPREY_CACHE_DIR: cacheDir, OSPREY_NO_CACHE: '', OSPREY_NO_BUNDLE: '', CI: '' };

interface Outcome {
  stdout: string;
  stderr: string;
  status: number | null;
}

/** The launcher with the fake node first on PATH and no server: only a cache hit succeeds. */
function launcherOnly(args: string[]): Outcome {
  const p = spawnSync(LAUNCHER, args, { cwd: work, encoding: 'utf8', timeout: 30_000, env: { ...baseEnv, OSPREY_NO_SERVER: '1', PATH: `${fakeBin}:${process.env.PATH}` } });
  return { stdout: p.stdout, stderr: p.stderr, status: p.status };
}

/** The compiler through Node (stores into the cache on a miss). */
function direct(args: string[], env: Record<string, string> = {}): Outcome {
  const p = spawnSync(process.execPath, [OSPREY_BIN, ...args], { cwd: work, encoding: 'utf8', timeout: 120_000, env: { ...baseEnv, OSPREY_NO_SERVER: '1', ...env } });
  return { stdout: p.stdout, stderr: p.stderr, status: p.status };
}

const entries = () => (existsSync(cacheDir) ? readdirSync(cacheDir).filter((n) => /^[0-9a-f]{64}$/.test(n)) : []);

const missed = (o: Outcome) => o.status === 99 && o.stderr.includes('FAKE-NODE');

describe.sequential('native launcher: build cache hits without Node', () => {
  it('the launcher exists (built by scripts/build-runtime.ts)', () => {
    expect(existsSync(LAUNCHER)).toBe(true);
  });

  it('finds what the compiler stored, passing arguments, output and exit status through', () => {
    writeFileSync(join(work, 'args.osp'), 'forEach(args(), |a| => print("arg ${a}"))\nfn main() -> Int = 7\n');
    const first = direct(['run', 'args.osp', '--', 'x', 'y z']);
    expect(first.stdout).toBe('arg x\narg y z\n');
    expect(first.status).toBe(7);
    const hit = launcherOnly(['run', 'args.osp', '-v', '--', 'x', 'y z', '--flag']);
    expect(hit.stderr).toContain('osprey: cache hit, running');
    expect(hit.stdout).toBe('arg x\narg y z\narg --flag\n');
    expect(hit.status).toBe(7);
    // The old spelling and an alias of the same flags share the entry.
    expect(launcherOnly(['args.osp', '--run', '--fast']).status).toBe(7);
  });

  it('an edited source is a miss, and the rebuilt entry is a hit', () => {
    const prog = join(work, 'edit.osp');
    writeFileSync(prog, 'print("one")\n');
    expect(direct(['run', 'edit.osp']).stdout).toBe('one\n');
    expect(launcherOnly(['run', 'edit.osp']).stdout).toBe('one\n');
    writeFileSync(prog, 'print("two")\n');
    expect(missed(launcherOnly(['run', 'edit.osp']))).toBe(true);
    expect(direct(['run', 'edit.osp']).stdout).toBe('two\n');
    expect(launcherOnly(['run', 'edit.osp']).stdout).toBe('two\n');
  });

  it('an edited imported module is a miss (the entry records every module it was built from)', () => {
    mkdirSync(join(work, 'lib'), { recursive: true });
    writeFileSync(join(work, 'multi.osp'), 'import lib.greet\nprint(greet.hello("x"))\n');
    writeFileSync(join(work, 'lib', 'greet.osp'), 'fn hello(n: String) -> String = "hello ${n}"\n');
    expect(direct(['run', 'multi.osp']).stdout).toBe('hello x\n');
    expect(launcherOnly(['run', 'multi.osp']).stdout).toBe('hello x\n');
    writeFileSync(join(work, 'lib', 'greet.osp'), 'fn hello(n: String) -> String = "bye ${n}"\n');
    expect(missed(launcherOnly(['run', 'multi.osp']))).toBe(true);
    // Node's own lookup applies the same rule: it rebuilds rather than run the stale program.
    const rebuilt = direct(['run', 'multi.osp', '-v']);
    expect(rebuilt.stdout).toBe('bye x\n');
    expect(rebuilt.stderr).toContain('compiled and cached');
    expect(launcherOnly(['run', 'multi.osp']).stdout).toBe('bye x\n');
  });

  it('different flags are different entries, the same flags in another order the same', () => {
    writeFileSync(join(work, 'flags.osp'), 'print("f")\n');
    const before = entries().length;
    direct(['run', 'flags.osp']);
    direct(['run', 'flags.osp', '--no-fs', '--no-http']);
    expect(entries().length).toBe(before + 2);
    expect(launcherOnly(['run', 'flags.osp']).stdout).toBe('f\n');
    expect(launcherOnly(['run', 'flags.osp', '--no-http', '--no-fs']).stdout).toBe('f\n');
    expect(missed(launcherOnly(['run', 'flags.osp', '-O']))).toBe(true);
    // A flag the cache does not know, and --no-cache, always go to the compiler.
    expect(missed(launcherOnly(['run', 'flags.osp', '--no-cache']))).toBe(true);
  });

  it('a damaged entry (executable or manifest) is a miss and gets rebuilt', () => {
    writeFileSync(join(work, 'damage.osp'), 'print("intact")\n');
    const before = new Set(entries());
    direct(['run', 'damage.osp']);
    const key = entries().find((k) => !before.has(k))!;
    expect(key).toBeDefined();
    const program = join(cacheDir, key, 'program');
    const bytes = readFileSync(program);
    bytes[bytes.length - 100] ^= 0xff;
    writeFileSync(program, bytes);
    expect(missed(launcherOnly(['run', 'damage.osp']))).toBe(true);
    expect(direct(['run', 'damage.osp', '-v']).stderr).toContain('compiled and cached');
    expect(launcherOnly(['run', 'damage.osp']).stdout).toBe('intact\n');
    writeFileSync(join(cacheDir, key, 'manifest'), 'garbage\n');
    expect(missed(launcherOnly(['run', 'damage.osp']))).toBe(true);
    rmSync(join(cacheDir, key, 'manifest'));
    expect(missed(launcherOnly(['run', 'damage.osp']))).toBe(true);
    expect(direct(['run', 'damage.osp']).stdout).toBe('intact\n');
    expect(launcherOnly(['run', 'damage.osp']).stdout).toBe('intact\n');
  });

  it('a copy of the launcher away from its installation says how to install it instead', () => {
    const copy = join(work, 'elsewhere', 'bin', 'osprey');
    mkdirSync(join(work, 'elsewhere', 'bin'), { recursive: true });
    writeFileSync(copy, readFileSync(LAUNCHER));
    chmodSync(copy, 0o755);
    const p = spawnSync(copy, ['--version'], { encoding: 'utf8', env: baseEnv });
    expect(p.status).toBe(70);
    expect(p.stderr).toContain('link bin/osprey onto PATH');
  });

  it('commands other than a cacheable run go to the compiler', () => {
    expect(missed(launcherOnly(['--version']))).toBe(true);
    expect(missed(launcherOnly(['check', 'edit.osp']))).toBe(true);
  });
});

// ---- hit records: bin/osprey's path (bin/launcher/fast.c, bin/launcher/hit_record.h) ----------

/** Waits until the wall clock is early in a second, so that what follows (a write and a launcher
 *  run, a few milliseconds) happens within one second. */
async function earlyInASecond(): Promise<void> {
  while (Date.now() % 1000 < 30 || Date.now() % 1000 > 400) await sleep(10);
}

/** Waits until the current second (and the one before, for the coarse file clock) is over: what
 *  was written before is then "settled" for the hit-record rule. */
async function nextSecond(): Promise<void> {
  const second = Math.floor(Date.now() / 1000);
  while (Math.floor(Date.now() / 1000) <= second || Date.now() % 1000 < 30) await sleep(20);
}

const servedByRecord = (o: Outcome) => o.status === 0 && o.stderr.includes('osprey: cache hit (unchanged since verified)');
const servedByContent = (o: Outcome) => o.status === 0 && o.stderr.includes('osprey: cache hit, running');

/** The hit records that name `path` (records are named by a hash; their text says what they are for). */
function recordsOf(cache: string, path: string): string[] {
  const dir = join(cache, 'hits');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => !n.endsWith('.tmp'))
    .filter((n) => readFileSync(join(dir, n), 'utf8').split('\n').includes(`path ${path}`))
    .map((n) => join(dir, n));
}

/** A program compiled into the cache, then run through the launcher once its files have settled,
 *  which verifies it by content and writes its hit record. */
async function recorded(name: string, text: string, args: string[] = [], status = 0): Promise<string> {
  writeFileSync(join(work, name), text);
  expect(direct(['run', name, ...args]).status).toBe(status);
  await nextSecond();
  const verified = launcherOnly(['run', name, '-v', ...args]);
  expect(verified.status).toBe(status);
  expect(verified.stderr).toContain('osprey: cache hit, running');
  expect(recordsOf(cacheDir, name)).toHaveLength(1);
  return name;
}

describe.sequential('native launcher: hit records (an unchanged program started from a few stat calls)', () => {
  it('an unchanged run is served from its record, written only once its files have settled', async () => {
    writeFileSync(join(work, 'settle.osp'), 'print("settled")\n');
    expect(direct(['run', 'settle.osp']).stdout).toBe('settled\n');
    // Changed in this second: verified by content, and not recorded (racy timestamps).
    await earlyInASecond();
    writeFileSync(join(work, 'settle.osp'), 'print("settled")\n');
    const racy = launcherOnly(['run', 'settle.osp', '-v']);
    expect(servedByContent(racy)).toBe(true);
    expect(racy.stdout).toBe('settled\n');
    expect(recordsOf(cacheDir, 'settle.osp')).toHaveLength(0);
    await nextSecond();
    expect(servedByContent(launcherOnly(['run', 'settle.osp', '-v']))).toBe(true);
    expect(recordsOf(cacheDir, 'settle.osp')).toHaveLength(1);
    const hit = launcherOnly(['run', 'settle.osp', '-v', '--', 'a']);
    expect(servedByRecord(hit)).toBe(true);
    expect(hit.stdout).toBe('settled\n');
    // Arguments, output and exit status pass through as on the other path.
    await recorded('status.osp', 'forEach(args(), |a| => print("arg ${a}"))\nfn main() -> Int = 5\n', [], 5);
    const withArgs = launcherOnly(['run', 'status.osp', '-v', '--', 'x', 'y z', '--flag']);
    expect(withArgs.stderr).toContain('cache hit (unchanged since verified)');
    expect(withArgs.stdout).toBe('arg x\narg y z\narg --flag\n');
    expect(withArgs.status).toBe(5);
  });

  it('an edit of the same size in the same second is a miss, and the rebuild is recorded anew', async () => {
    await recorded('same.osp', 'print("AAAA")\n');
    await earlyInASecond();
    writeFileSync(join(work, 'same.osp'), 'print("BBBB")\n');
    expect(missed(launcherOnly(['run', 'same.osp']))).toBe(true);
    expect(direct(['run', 'same.osp']).stdout).toBe('BBBB\n');
    // Just rebuilt: verified by content, not yet recorded; once settled, recorded again.
    await nextSecond();
    expect(servedByContent(launcherOnly(['run', 'same.osp', '-v']))).toBe(true);
    const hit = launcherOnly(['run', 'same.osp', '-v']);
    expect(servedByRecord(hit)).toBe(true);
    expect(hit.stdout).toBe('BBBB\n');
  });

  it('a touched source (same bytes) is still a hit, verified by content', async () => {
    await recorded('touch.osp', 'print("touched")\n');
    const later = new Date(Date.now() + 5000);
    utimesSync(join(work, 'touch.osp'), later, later);
    const touched = launcherOnly(['run', 'touch.osp', '-v']);
    expect(servedByContent(touched)).toBe(true);
    expect(touched.stdout).toBe('touched\n');
  });

  it('an edited imported module is a miss even when the main file is unchanged', async () => {
    mkdirSync(join(work, 'hlib'), { recursive: true });
    writeFileSync(join(work, 'hlib', 'part.osp'), 'fn word() -> String = "first"\n');
    await recorded('imports.osp', 'import hlib.part\nprint(part.word())\n');
    expect(servedByRecord(launcherOnly(['run', 'imports.osp', '-v']))).toBe(true);
    writeFileSync(join(work, 'hlib', 'part.osp'), 'fn word() -> String = "other"\n');
    expect(missed(launcherOnly(['run', 'imports.osp']))).toBe(true);
  });

  it('flags: each spelling has its own record, and other flags are another entry', async () => {
    await recorded('hflags.osp', 'print("hf")\n', ['--no-http', '--no-fs']);
    expect(servedByRecord(launcherOnly(['run', 'hflags.osp', '-v', '--no-http', '--no-fs']))).toBe(true);
    // The same entry by another spelling: verified by content (no record of this spelling yet).
    expect(servedByContent(launcherOnly(['run', 'hflags.osp', '-v', '--no-fs', '--no-http']))).toBe(true);
    expect(missed(launcherOnly(['run', 'hflags.osp', '--no-http']))).toBe(true);
    expect(missed(launcherOnly(['run', 'hflags.osp', '--no-http', '--no-fs', '--no-cache']))).toBe(true);
  });

  it('a replaced or modified executable is never started from the record', async () => {
    await recorded('tamper.osp', 'print("genuine")\n');
    const key = readFileSync(recordsOf(cacheDir, 'tamper.osp')[0]!, 'utf8').match(/^entry ([0-9a-f]{64})$/m)![1]!;
    const program = join(cacheDir, key, 'program');
    const original = readFileSync(program);
    // Replaced by another file (another inode), even one with the same size and times.
    const st = statSync(program);
    const foreign = join(cacheDir, key, 'foreign');
    writeFileSync(foreign, `#!/bin/sh\necho FOREIGN\n${'#'.repeat(original.length - 24)}\n`, { mode: 0o755 });
    expect(statSync(foreign).size).toBe(st.size);
    utimesSync(foreign, st.atime, st.mtime);
    renameSync(foreign, program);
    const replaced = launcherOnly(['run', 'tamper.osp']);
    expect(replaced.stdout).not.toContain('FOREIGN');
    expect(missed(replaced)).toBe(true);
    // Modified in place, times put back: the change time still differs.
    writeFileSync(program, original);
    chmodSync(program, 0o755);
    expect(direct(['run', 'tamper.osp']).stdout).toBe('genuine\n');
    await nextSecond();
    expect(servedByContent(launcherOnly(['run', 'tamper.osp', '-v']))).toBe(true);
    const before = statSync(program);
    const fd = openSync(program, 'r+');
    writeSync(fd, Buffer.from([original[original.length - 100]! ^ 0xff]), 0, 1, original.length - 100);
    closeSync(fd);
    utimesSync(program, before.atime, before.mtime);
    expect(missed(launcherOnly(['run', 'tamper.osp']))).toBe(true);
  });

  it('an executable others may write is not started from the record', async () => {
    await recorded('mode.osp', 'print("mode")\n');
    const key = readFileSync(recordsOf(cacheDir, 'mode.osp')[0]!, 'utf8').match(/^entry ([0-9a-f]{64})$/m)![1]!;
    chmodSync(join(cacheDir, key, 'program'), 0o777);
    const o = launcherOnly(['run', 'mode.osp', '-v']);
    expect(o.stderr).not.toContain('unchanged since verified');
    chmodSync(join(cacheDir, key, 'program'), 0o755);
  });

  it('a damaged or foreign record is ignored', async () => {
    await recorded('record.osp', 'print("rec")\n');
    const record = recordsOf(cacheDir, 'record.osp')[0]!;
    const text = readFileSync(record, 'utf8');
    for (const bad of [
      text.replace(/^program .*$/m, 'program 1 2 3 4 5'),
      text.replace(/\n$/, ''), // torn: the last line has no newline
      text.replace(/^path .*$/m, 'path other.osp'),
      text + 'unknown line\n',
      text.replace(/^entry .*$/m, 'entry ../../../../bin'),
    ]) {
      writeFileSync(record, bad, { mode: 0o600 });
      const o = launcherOnly(['run', 'record.osp', '-v']);
      expect(o.stderr).not.toContain('unchanged since verified');
      expect(o.stdout).toBe('rec\n'); // verified by content instead (and the record rewritten)
    }
    expect(servedByRecord(launcherOnly(['run', 'record.osp', '-v']))).toBe(true);
    chmodSync(record, 0o666);
    expect(launcherOnly(['run', 'record.osp', '-v']).stderr).not.toContain('unchanged since verified');
  });

  it('concurrent runs all start the program, with or without a record', async () => {
    writeFileSync(join(work, 'many.osp'), 'print("many")\n');
    expect(direct(['run', 'many.osp']).stdout).toBe('many\n');
    await nextSecond();
    const env = { ...baseEnv, OSPREY_NO_SERVER: '1', PATH: `${fakeBin}:${process.env.PATH}` };
    for (let round = 0; round < 2; round++) {
      const outcomes = await Promise.all(Array.from({ length: 8 }, () => launcher(['run', 'many.osp', '-v'], env)));
      for (const o of outcomes) {
        expect(o.status).toBe(0);
        expect(o.stdout).toBe('many\n');
      }
    }
    expect(recordsOf(cacheDir, 'many.osp')).toHaveLength(1);
    expect(servedByRecord(launcherOnly(['run', 'many.osp', '-v']))).toBe(true);
  });

  it('a changed compiler is a miss: a rebuilt bundle, an edited compiler source', async () => {
    // An installation of its own (the launchers, the bundle entry, the runtime, a stamp naming
    // them), sharing the compiler's identity, so that what the real compiler stores is its hit.
    const inst = join(work, 'inst');
    for (const d of ['bin', 'build/compiler', 'build/runtime/release', 'compiler/src']) mkdirSync(join(inst, d), { recursive: true });
    for (const f of ['bin/osprey', 'bin/osprey-launcher']) {
      writeFileSync(join(inst, f), readFileSync(join(ROOT, f)));
      chmodSync(join(inst, f), 0o755);
    }
    writeFileSync(join(inst, 'bin/osprey.mjs'), ''); // what a miss runs (through the fake node)
    writeFileSync(join(inst, 'compiler/src/main.ts'), 'export {};\n');
    const past = new Date(Date.now() - 60_000);
    utimesSync(join(inst, 'compiler/src/main.ts'), past, past);
    utimesSync(join(inst, 'compiler/src'), past, past);
    writeFileSync(join(inst, 'build/compiler/osprey.mjs'), readFileSync(join(ROOT, 'build/compiler/osprey.mjs')));
    writeFileSync(join(inst, 'build/runtime/release/libosprey_runtime.a'), readFileSync(join(ROOT, 'build/runtime/release/libosprey_runtime.a')));
    const real = readFileSync(join(ROOT, 'build/identity'), 'utf8').split('\n');
    const watch = (p: string) => {
      const s = statSync(p, { bigint: true });
      return `watch ${s.size} ${s.mtimeNs} ${p}`;
    };
    const stamp = (compiler: string) =>
      [
        'osprey-identity 1',
        `bundle-mtime-ns ${statSync(join(inst, 'build/compiler/osprey.mjs'), { bigint: true }).mtimeNs}`,
        `fresh-dir ${join(inst, 'compiler/src')}`,
        watch(join(inst, 'build/compiler/osprey.mjs')),
        watch(join(inst, 'build/runtime/release/libosprey_runtime.a')),
        `compiler ${compiler}`,
        ...real.filter((l) => l.startsWith('runtime ') || l.startsWith('flag ') || l.startsWith('neutral ')),
        '',
      ].join('\n');
    const compiler = real.find((l) => l.startsWith('compiler '))!.slice(9);
    writeFileSync(join(inst, 'build/identity'), stamp(compiler));
    const inInst = (args: string[]): Outcome => {
      const p = spawnSync(join(inst, 'bin/osprey'), args, { cwd: work, encoding: 'utf8', timeout: 30_000, env: { ...baseEnv, OSPREY_NO_SERVER: '1', PATH: `${fakeBin}:${process.env.PATH}` } });
      return { stdout: p.stdout, stderr: p.stderr, status: p.status };
    };
    writeFileSync(join(work, 'compiler.osp'), 'print("compiled")\n');
    expect(direct(['run', 'compiler.osp']).stdout).toBe('compiled\n');
    await nextSecond();
    expect(servedByContent(inInst(['run', 'compiler.osp', '-v']))).toBe(true);
    expect(servedByRecord(inInst(['run', 'compiler.osp', '-v']))).toBe(true);

    // A compiler source edited after the bundle was built: the compiler is stale.
    const now = new Date();
    utimesSync(join(inst, 'compiler/src/main.ts'), now, now);
    expect(missed(inInst(['run', 'compiler.osp']))).toBe(true);
    utimesSync(join(inst, 'compiler/src/main.ts'), past, past);
    expect(servedByRecord(inInst(['run', 'compiler.osp', '-v']))).toBe(true);

    // The bundle rebuilt (another compiler, another identity): another key, a miss.
    writeFileSync(join(inst, 'build/compiler/osprey.mjs'), readFileSync(join(ROOT, 'build/compiler/osprey.mjs'), 'utf8') + '\n// rebuilt\n');
    writeFileSync(join(inst, 'build/identity'), stamp('0'.repeat(64)));
    expect(missed(inInst(['run', 'compiler.osp']))).toBe(true);
  });
});

// ---- the compile server ----------------------------------------------------------------

function newServerDir(): string {
  const dir = mkdtempSync(join(work, 'srv-'));
  chmodSync(dir, 0o700);
  serverDirs.push(dir);
  return dir;
}

function serverPid(dir: string): number | null {
  for (const name of readdirSync(dir)) {
    if (name.endsWith('.sock.pid')) return Number(readFileSync(join(dir, name), 'utf8').trim());
  }
  return null;
}

/** Running (a killed server that its reaper has not collected yet is a zombie: not alive). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

function stopServers(dir: string): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.pid')) continue;
    const pid = Number(readFileSync(join(dir, name), 'utf8').trim());
    try {
      process.kill(pid, 'SIGCONT');
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function serverEnv(dir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...baseEnv, OSPREY_NO_SERVER: '0', OSPREY_SERVER_DIR: dir, OSPREY_SERVER_IDLE_SECONDS: '120', ...extra };
}

function launcher(args: string[], env: NodeJS.ProcessEnv): Promise<Outcome> {
  return new Promise((resolve) => {
    const p = spawn(LAUNCHER, args, { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 120_000);
    p.on('close', (status) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, status });
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A program whose front end takes a while (hundreds of functions), to catch the server mid-build. */
function bigProgram(name: string, n: number): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`fn f${i}(x: Int) -> Int = match x % 3 {\n  0 => x + ${i}\n  1 => x * 2\n  _ => x - 1\n}`);
  lines.push(`print(toString(f${n - 1}(5)))`);
  writeFileSync(join(work, name), lines.join('\n') + '\n');
  return name;
}

describe.sequential('compile server', () => {
  it('diagnostics through the server are byte-identical to a direct compile, and a run goes through it', async () => {
    const dir = newServerDir();
    writeFileSync(join(work, 'bad.osp'), 'let x: Int = "text"\nprint(undefinedThing)\n');
    const served = await launcher(['check', 'bad.osp'], serverEnv(dir));
    expect(serverPid(dir)).not.toBeNull();
    const plain = direct(['check', 'bad.osp']);
    expect(served.status).toBe(1);
    expect(served.stderr).toBe(plain.stderr);
    expect(served.stdout).toBe(plain.stdout);
    const servedBuild = await launcher(['build', 'bad.osp', '-o', 'bad-out'], serverEnv(dir));
    const plainBuild = direct(['build', 'bad.osp', '-o', 'bad-out']);
    expect([servedBuild.status, servedBuild.stderr]).toEqual([plainBuild.status, plainBuild.stderr]);
    // Usage errors too.
    const usage = await launcher(['build', 'missing.osp'], serverEnv(dir));
    expect([usage.status, usage.stderr]).toEqual([2, direct(['build', 'missing.osp']).stderr]);
    // A run: compiled by the server, stored, started by the launcher; then a plain cache hit.
    writeFileSync(join(work, 'served-run.osp'), 'forEach(args(), |a| => print("served ${a}"))\nfn main() -> Int = 4\n');
    const run = await launcher(['run', 'served-run.osp', '-v', '--', 'a'], serverEnv(dir));
    expect(run.stdout).toBe('served a\n');
    expect(run.status).toBe(4);
    expect(run.stderr).toContain('osprey: compiled and cached');
    expect(launcherOnly(['run', 'served-run.osp', '--', 'a', 'b']).stdout).toBe('served a\nserved b\n');
  }, 120_000);

  it('serves two concurrent builds, each with its own working directory and output', async () => {
    const dir = newServerDir();
    mkdirSync(join(work, 'c1'), { recursive: true });
    mkdirSync(join(work, 'c2'), { recursive: true });
    writeFileSync(join(work, 'c1', 'p.osp'), 'print("one")\n');
    writeFileSync(join(work, 'c2', 'p.osp'), 'print("two")\n');
    const env = serverEnv(dir);
    const build = (sub: string) =>
      new Promise<number | null>((resolve) => {
        const p = spawn(LAUNCHER, ['build', 'p.osp', '--fast'], { cwd: join(work, sub), env, stdio: 'ignore' });
        p.on('close', resolve);
      });
    const [a, b] = await Promise.all([build('c1'), build('c2')]);
    expect([a, b]).toEqual([0, 0]);
    expect(spawnSync(join(work, 'c1', 'p'), { encoding: 'utf8' }).stdout).toBe('one\n');
    expect(spawnSync(join(work, 'c2', 'p'), { encoding: 'utf8' }).stdout).toBe('two\n');
    expect(serverPid(dir)).not.toBeNull();
  }, 120_000);

  it('a server killed mid-build, or one that hangs, never fails the build', async () => {
    const dir = newServerDir();
    const env = serverEnv(dir, { OSPREY_SERVER_TIMEOUT_MS: '3000' });
    writeFileSync(join(work, 'warm.osp'), 'print("warm")\n');
    expect((await launcher(['build', 'warm.osp', '--fast'], env)).status).toBe(0);
    const pid = serverPid(dir)!;
    expect(alive(pid)).toBe(true);
    const name = bigProgram('killed.osp', 1500);
    const pending = launcher(['build', name, '--fast'], env);
    await sleep(400);
    process.kill(pid, 'SIGKILL');
    const killed = await pending;
    expect(killed.status).toBe(0);
    expect(spawnSync(join(work, 'killed'), { encoding: 'utf8' }).stdout).toBe('4\n');

    // The next build starts a fresh server; stop it (SIGSTOP): the launcher waits for its
    // heartbeat, gives up after OSPREY_SERVER_TIMEOUT_MS, kills it and compiles directly.
    expect((await launcher(['build', 'warm.osp', '--fast'], env)).status).toBe(0);
    const second = serverPid(dir)!;
    expect(second).not.toBe(pid);
    process.kill(second, 'SIGSTOP');
    const started = Date.now();
    const hung = await launcher(['build', 'warm.osp', '--fast', '-o', 'warm-hung'], env);
    expect(hung.status).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2500);
    expect(spawnSync(join(work, 'warm-hung'), { encoding: 'utf8' }).stdout).toBe('warm\n');
    await sleep(200);
    expect(alive(second)).toBe(false);
  }, 180_000);

  it('a server busy with a long compile (no heartbeat, but on the CPU) is waited for, not killed', async () => {
    const dir = newServerDir();
    // 1.5 s of silence (the least the launcher accepts) is less than this program's front end,
    // which runs without yielding.
    const env = serverEnv(dir, { OSPREY_SERVER_TIMEOUT_MS: '1500' });
    writeFileSync(join(work, 'idle.osp'), 'print("idle")\n');
    expect((await launcher(['check', 'idle.osp'], env)).status).toBe(0);
    const pid = serverPid(dir)!;
    const name = bigProgram('busy.osp', 2000);
    const r = await launcher(['build', name, '--fast'], env);
    expect(r.status).toBe(0);
    expect(spawnSync(join(work, 'busy'), { encoding: 'utf8' }).stdout).toBe('4\n');
    expect(alive(pid)).toBe(true);
    expect(serverPid(dir)).toBe(pid);
  }, 180_000);

  it('a server that loaded another compiler answers "stale", exits, and is replaced', async () => {
    const dir = newServerDir();
    const env = serverEnv(dir);
    writeFileSync(join(work, 'stale.osp'), 'print("fresh")\n');
    expect((await launcher(['build', 'stale.osp', '--fast'], env)).status).toBe(0);
    const old = serverPid(dir)!;
    const sock = join(dir, readdirSync(dir).find((n) => n.endsWith('.sock'))!);
    // A request naming another compiler, as a launcher of a rebuilt bundle sends it.
    const fields = ['osprey-compile 1', 'f'.repeat(64), work, '22', '2', 'check', 'stale.osp', '0'];
    const body = Buffer.from(fields.join('\0') + '\0');
    const head = Buffer.alloc(4);
    head.writeUInt32LE(body.length);
    const answer = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const c = connect(sock, () => c.end(Buffer.concat([head, body])));
      c.on('data', (d) => chunks.push(d));
      c.on('end', () => resolve(Buffer.concat(chunks)));
      c.on('error', reject);
    });
    const r = answer.subarray(answer.indexOf('R'));
    expect(r.readUInt32LE(5)).toBe(3); // KIND_STALE
    for (let i = 0; i < 50 && alive(old); i++) await sleep(100);
    expect(alive(old)).toBe(false);
    const next = await launcher(['run', 'stale.osp'], env);
    expect(next.stdout).toBe('fresh\n');
    const replacement = serverPid(dir);
    expect(replacement).not.toBeNull();
    expect(replacement).not.toBe(old);
  }, 120_000);

  it('every diagnostics snapshot comes through the server byte for byte', () => {
    const dir = newServerDir();
    const fixtures = join(ROOT, 'tests', 'compiler', 'diagnostics');
    const env = serverEnv(dir);
    for (const file of listFiles(fixtures, '.osp')) {
      const name = basename(file, '.osp');
      const flags = /^\/\/ flags:(.*)$/m.exec(readFileSync(file, 'utf8').split('\n')[0] ?? '')?.[1]?.trim().split(/\s+/) ?? [];
      const p = spawnSync(LAUNCHER, ['check', `${name}.osp`, ...flags], { cwd: fixtures, encoding: 'utf8', timeout: 60_000, env });
      expect(p.stderr, name).toBe(readFileSync(join(fixtures, `${name}.stderr`), 'utf8'));
      expect(p.status, name).toBe(name.startsWith('warn_') ? 0 : 1);
    }
    expect(serverPid(dir)).not.toBeNull();
  }, 180_000);

  it('the multi-file golden programs run through the server as through the compiler', () => {
    const dir = newServerDir();
    const programs = join(ROOT, 'tests', 'programs');
    const env = serverEnv(dir);
    for (const file of listFiles(join(programs, 'imports'), '.osp')) {
      const text = readFileSync(file, 'utf8');
      if (/^\/\/ library:/.test(text)) continue;
      const rel = relative(programs, file);
      const directive = (name: string) => [...text.matchAll(new RegExp(`^\\s*//\\s*${name}:(?: (.*))?$`, 'gm'))].map((m) => m[1] ?? '');
      const p = spawnSync(LAUNCHER, ['run', rel], { cwd: programs, encoding: 'utf8', timeout: 60_000, env, input: directive('stdin').map((l) => l + '\n').join('') });
      const errors = directive('compile-error');
      if (errors.length > 0) {
        expect(p.status, rel).toBe(1);
        for (const m of errors) expect(p.stderr, rel).toContain(m);
        const plain = spawnSync(process.execPath, [OSPREY_BIN, 'run', rel], { cwd: programs, encoding: 'utf8', timeout: 60_000, env: { ...env, OSPREY_NO_SERVER: '1' } });
        expect(p.stderr, rel).toBe(plain.stderr);
        continue;
      }
      expect(p.stdout, rel).toBe(directive('expect').map((l) => l + '\n').join(''));
      expect(p.status, rel).toBe(Number(directive('exit')[0] ?? '0'));
    }
    expect(serverPid(dir)).not.toBeNull();
  }, 180_000);
});
