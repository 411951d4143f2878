/**
 * Shared by the language benchmarks (lang-bench.ts, lang-memory.ts) and the memory test
 * (tests/compiler/memory.test.ts): compiling an Osprey program through the driver, running an
 * executable while sampling its peak resident set (VmHWM), and medians.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildExecutable, renderErrors, type OptLevel } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';

export const ROOT = join(import.meta.dirname, '..', '..');

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Compiles Osprey `text` into `exe` (throws with the rendered diagnostics when it does not compile). */
export async function compileOsprey(text: string, exe: string, opt: OptLevel): Promise<void> {
  const r = await buildExecutable(new SourceFile('bench.osp', text), exe, opt);
  if (!r.executable) throw new Error(`benchmark program does not compile:\n${renderErrors(r)}`);
}

/** Compiles C `text` with gcc (`-O2` unless told otherwise). */
export function compileC(text: string, dir: string, exe: string, flags: string[] = ['-O2']): void {
  const src = join(dir, `${exe.split('/').pop()}.c`);
  writeFileSync(src, text);
  const p = spawnSync('gcc', [...flags, '-o', exe, src], { encoding: 'utf8' });
  if (p.status !== 0) throw new Error(`gcc failed: ${p.stderr}`);
}

/** `/proc/PID/status` field in kB, or undefined once the process is gone. */
function statusKb(pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface RunResult {
  stdout: string;
  status: number | null;
  /** Wall time in ms. */
  ms: number;
  /** User + system CPU time in ms (of the process and the children it waited for), when known. */
  cpuMs?: number;
  /** Peak resident set in kB: the kernel's maximum (GNU time's %M) when /usr/bin/time exists,
   *  otherwise the highest VmHWM seen while sampling every 10 ms (a lower bound). */
  peakKb: number;
}

const GNU_TIME = '/usr/bin/time';
const hasGnuTime = existsSync(GNU_TIME) && spawnSync(GNU_TIME, ['-f', '%M', 'true']).status === 0;

/** Runs `exe` under GNU time (CPU time and exact peak RSS), or samples VmHWM without it. */
export function runMeasured(exe: string, args: string[] = []): Promise<RunResult> {
  if (!hasGnuTime) return runSampled(exe, args);
  const dir = tempDir('osprey-time-');
  const out = join(dir, 'time');
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(GNU_TIME, ['-o', out, '-f', '%U %S %M', exe, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => {
      const ms = performance.now() - start;
      const last = readFileSync(out, 'utf8').trim().split('\n').pop() ?? '';
      removeDir(dir);
      const [u, sy, m] = last.split(' ').map(Number);
      resolve({ stdout, status, ms, cpuMs: (u! + sy!) * 1000, peakKb: m! });
    });
  });
}

function runSampled(exe: string, args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(exe, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    let peakKb = 0;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const sample = () => {
      const kb = child.pid !== undefined ? statusKb(child.pid, 'VmHWM') : undefined;
      if (kb !== undefined && kb > peakKb) peakKb = kb;
    };
    const timer = setInterval(sample, 10);
    child.on('error', (e) => {
      clearInterval(timer);
      reject(e);
    });
    child.on('exit', (status) => {
      clearInterval(timer);
      resolve({ stdout, status, ms: performance.now() - start, peakKb });
    });
  });
}

/** Runs a command to completion (throws on failure); wall time, and CPU time when GNU time exists. */
export async function timeCommand(cmd: string, args: string[]): Promise<{ ms: number; cpuMs?: number }> {
  const r = await runMeasured(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status})`);
  return { ms: r.ms, cpuMs: r.cpuMs };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * The memory workload: `n` iterations, each building three short strings (concatenation and
 * toString) and a closure that captures the loop variable, then dropping them all. Only an
 * Int survives an iteration, so with a working collector the heap stays flat.
 */
export function churnProgram(n: number): string {
  return `fn step(acc: Int, i: Int) -> Int {
    let s = "item-" + toString(i) + "-" + toString(acc % 7)
    let f = fn(x: Int) -> Int => x + i % 3
    let same = s == "item-0-0"
    match same {
        true => acc + f(1)
        false => acc + f(0) % 2
    }
}
print(fold(range(0, ${n}), 0, step))
`;
}

/** What churnProgram(n) prints. */
export function churnExpected(n: number): string {
  let acc = 0;
  for (let i = 0; i < n; i++) {
    const same = i === 0 && acc % 7 === 0;
    acc = same ? acc + 1 + (i % 3) : acc + ((0 + (i % 3)) % 2);
  }
  return `${acc}\n`;
}
