/**
 * ThreadSanitizer runs of the multi-threaded runtime (runtime-c/README.md, "ThreadSanitizer"):
 * C tests built against the runtime's tsan flavour (`scripts/build-runtime.ts --tsan`), and golden
 * programs that use fibers, channels, select and WebSocket/HTTP handlers compiled with
 * `--sanitize=thread`. A run fails on any ThreadSanitizer report, besides a wrong output or
 * exit status.
 *
 * `npm test` runs every C test (about 35 s wall, 13 s CPU on 2 cores: the hostile and conformance
 * tests mostly wait on their timeouts) and a few programs; `npm run test:tsan`
 * (OSPREY_TSAN_FULL=1) also every such golden program and two cluster nodes (the cluster tests'
 * node program) sharing a room through a real redis-server.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildExecutable, renderErrors } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';
import { tsanOptions } from '../../runtime-bindings/toolchain.ts';
import { listFiles, ROOT } from '../compiler/helpers.ts';
import { NODE_PROGRAM } from '../cluster/node-program.ts';
import { connect, startRedis, waitFor, type Client, type RedisServer } from '../cluster/support.ts';
import { freePort, spawnClient, type ClientProcess } from '../peers/process.js';

const run = promisify(execFile);
const FULL = process.env.OSPREY_TSAN_FULL === '1';
const PROGRAMS = join(ROOT, 'tests', 'programs');

/** Programs of the fast subset (paths under tests/programs). The two GC programs force
 * collections while other fibers run: under TSan the collector's suspend signal now and then
 * lands inside TSan's own runtime, whose handler then waited for a lock the interrupted code
 * held, until such signals were declined (runtime-c/README.md, "Boehm GC under TSan"). Before
 * that, gc_busy.osp failed 9 runs in 30 (a hang ended by libgc's "Signals delivery fails
 * constantly", or TSan's CHECK on a fiber context being created) and gc_parked.osp, which hung
 * once in CI, 12 in 400 with a 100 KB initial heap. */
const FAST_PROGRAMS = [
  'fibers/chain.osp',
  'fibers/select_wait.osp',
  'fibers/blocking_calls.osp',
  'fibers/gc_parked.osp',
  'fibers/gc_busy.osp',
  'websocket/handler_fibers.osp',
];

/** Not run under TSan, with the reason. */
const EXCLUDED: Record<string, string> = {
  // Its point is the guard-page report from the SIGSEGV handler on the alternate signal stack;
  // TSan's own SIGSEGV handling of a stack overflow inside instrumented code never reaches it.
  // Single-threaded; covered by the ordinary golden run.
  'fibers/stack_overflow.osp': 'guard-page overflow report (not a threading test)',
};

function directives(text: string, name: string): string[] {
  const re = new RegExp(`^\\s*//\\s*${name}:(?: (.*))?$`, 'gm');
  return [...text.matchAll(re)].map((m) => m[1] ?? '');
}

/** Golden programs that exercise threads: fibers, WebSocket and HTTP handlers. */
function threadedPrograms(): string[] {
  const all = ['fibers', 'websocket', 'http'].flatMap((d) => listFiles(join(PROGRAMS, d), '.osp')).map((f) => relative(PROGRAMS, f));
  return all.filter((rel) => {
    const text = readFileSync(join(PROGRAMS, rel), 'utf8');
    if (/^\/\/ library:/.test(text) || /^\s*\/\/\s*check-only\b/m.test(text)) return false;
    if (directives(text, 'compile-error').length > 0 || directives(text, 'flags').length > 0) return false;
    return !(rel in EXCLUDED) && (FULL || FAST_PROGRAMS.includes(rel));
  });
}

function reportsIn(stderr: string): string[] {
  return stderr.split(/^==================$/m).filter((block) => block.includes('WARNING: ThreadSanitizer'));
}

describe('ThreadSanitizer', () => {
  let cTestOutput = '';
  beforeAll(async () => {
    // Builds the tsan archive (the programs link it) and runs every C test.
    let out: { stdout: string; stderr: string };
    try {
      out = await run('npx', ['tsx', 'scripts/build-runtime.ts', '--tsan'], { cwd: ROOT, timeout: 400_000, maxBuffer: 64 * 1024 * 1024 });
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(`C tests under ThreadSanitizer failed:\n${(err.stdout ?? '').slice(-6000)}${(err.stderr ?? '').slice(-12000)}${err.message}`);
    }
    cTestOutput = out.stdout + out.stderr;
  }, 420_000);

  it('the C tests pass with no report', () => {
    const summary = /C runtime tests under ThreadSanitizer: (\d+) passed, (\d+) failed/.exec(cTestOutput);
    expect(summary, cTestOutput.slice(-4000)).not.toBeNull();
    expect(Number(summary![2])).toBe(0);
    expect(Number(summary![1])).toBe(listFiles(join(ROOT, 'runtime-c', 'tests'), '.c').filter((f) => /\/test_[^/]+\.c$/.test(f)).length);
    expect(reportsIn(cTestOutput)).toEqual([]);
  });

  describe.concurrent('golden programs built with --sanitize=thread', () => {
    for (const rel of threadedPrograms()) {
      it(rel, async () => {
        const text = readFileSync(join(PROGRAMS, rel), 'utf8');
        const dir = mkdtempSync(join(tmpdir(), 'osprey-tsan-'));
        try {
          const exe = join(dir, 'prog');
          const r = await buildExecutable(new SourceFile(rel, text), exe, 'fast', { sanitize: 'thread', cwd: PROGRAMS });
          expect(r.executable ? '' : renderErrors(r)).toBe('');
          const cwd = join(dir, 'cwd');
          mkdirSync(cwd);
          const stdin = directives(text, 'stdin').map((l) => l + '\n').join('');
          const p = spawnSync(exe, [], { input: stdin, encoding: 'utf8', timeout: 60_000, cwd, env: { ...process.env, TSAN_OPTIONS: tsanOptions() } });
          expect(reportsIn(p.stderr), p.stderr.slice(0, 12000)).toEqual([]);
          expect(p.stdout).toBe(directives(text, 'expect').map((l) => l + '\n').join(''));
          for (const s of directives(text, 'stderr')) expect(p.stderr).toContain(s);
          expect(p.status).toBe(Number(directives(text, 'exit')[0] ?? '0'));
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }, 120_000);
    }
  });

  // The cluster bus: Redis connections and the backlog on the main loop, deliveries to every
  // loop, handler fibers answering with cross-node sends and broadcasts.
  it.runIf(FULL)('two cluster nodes sharing a room through Redis', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-tsan-cluster-'));
    let redis: RedisServer | undefined;
    const nodes: ClientProcess[] = [];
    const clients: Client[] = [];
    try {
      const exe = join(dir, 'node');
      const r = await buildExecutable(new SourceFile('cluster-node.osp', NODE_PROGRAM), exe, 'fast', { sanitize: 'thread' });
      expect(r.executable ? '' : renderErrors(r)).toBe('');
      redis = await startRedis();
      const ports = [await freePort(), await freePort()];
      for (const port of ports) {
        const node = spawnClient({
          name: `tsan-cluster-node-${port}`,
          command: exe,
          args: [String(port), `redis://127.0.0.1:${redis.port}`, 'tsan-room'],
          env: { TSAN_OPTIONS: tsanOptions(), OSPREY_IO_THREADS: '2' },
        });
        nodes.push(node);
        await waitFor(() => node.stdoutLines.some((l) => l.startsWith('listening on')) || node.child.exitCode !== null, 30_000, () => node.output.join('\n'));
        expect(node.stdoutLines.join('\n')).toContain('listening on');
      }
      for (let i = 0; i < 6; i++) clients.push(await connect(ports[i % 2]));
      const ROUNDS = 40;
      for (let round = 0; round < ROUNDS; round++) {
        clients[round % 6].send(`bc:${round}`);
        clients[(round + 1) % 6].send(`to:${clients[(round + 3) % 6].id}:${round}`);
      }
      // Every client gets every broadcast; every cross-node send reaches its addressee.
      await waitFor(
        () => clients.every((c) => c.got.filter((m) => m.startsWith('bc:')).length === ROUNDS),
        60_000,
        () => clients.map((c) => c.got.filter((m) => m.startsWith('bc:')).length).join(','),
      );
      await waitFor(
        () => clients.reduce((n, c) => n + c.got.filter((m) => m.startsWith('to:')).length, 0) === ROUNDS,
        30_000,
        () => clients.map((c) => c.got.filter((m) => m.startsWith('to:')).length).join(','),
      );
      expect(clients.flatMap((c) => c.got.filter((m) => m.startsWith('err:')))).toEqual([]);
      for (const c of clients) c.close();
      for (const node of nodes) await node.stop({ signal: 'SIGTERM', graceMs: 10_000 });
      for (const node of nodes) expect(reportsIn(node.output.join('\n')), node.output.join('\n').slice(0, 12000)).toEqual([]);
    } finally {
      for (const c of clients) c.close();
      for (const node of nodes) await node.stop({ signal: 'SIGKILL' });
      await redis?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
