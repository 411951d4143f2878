/**
 * Shared by the language benchmarks (lang-bench.ts, lang-memory.ts) and the memory test
 * (tests/compiler/memory.test.ts): compiling an Osprey program through the driver, running an
 * executable measuring its CPU time and peak resident set (rusage: ru_maxrss = VmHWM), and medians.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  /** Peak resident set in kB: the kernel's maximum (rusage ru_maxrss) when gcc can build the
   *  measuring wrapper, otherwise the highest VmHWM seen while sampling every 10 ms (a lower bound). */
  peakKb: number;
}

/**
 * A tiny C wrapper: fork, exec, wait4, and write the child's rusage — user and system CPU time in
 * microseconds (GNU time prints only hundredths of a second, too coarse for fib(32)) and the
 * kernel's peak RSS — to the file named by its first argument.
 */
const MEASURE_C = `#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    pid_t pid = fork();
    if (pid == 0) { execvp(argv[2], argv + 2); _exit(127); }
    int status; struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) < 0) return 2;
    FILE *f = fopen(argv[1], "w");
    if (!f) return 2;
    fprintf(f, "%lld %lld %ld\\n", (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
            (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec, ru.ru_maxrss);
    fclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
`;

let measureExe: string | null | undefined;
function measureHelper(): string | null {
  if (measureExe !== undefined) return measureExe;
  const dir = tempDir('osprey-measure-');
  process.on('exit', () => removeDir(dir));
  try {
    compileC(MEASURE_C, dir, join(dir, 'measure'));
    measureExe = join(dir, 'measure');
  } catch {
    measureExe = null;
  }
  return measureExe;
}

/** Runs `exe` under the rusage wrapper (CPU time, exact peak RSS), or samples VmHWM without gcc;
 *  `env` adds environment variables. */
export function runMeasured(exe: string, args: string[] = [], env: Record<string, string> = {}): Promise<RunResult> {
  const helper = measureHelper();
  if (!helper) return runSampled(exe, args, env);
  const out = join(helper, '..', `rusage-${process.pid}-${Math.random().toString(36).slice(2)}`);
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(helper, [out, exe, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => {
      const ms = performance.now() - start;
      const [u, sy, m] = readFileSync(out, 'utf8').trim().split(' ').map(Number);
      rmSync(out, { force: true });
      resolve({ stdout, status, ms, cpuMs: (u! + sy!) / 1000, peakKb: m! });
    });
  });
}

function runSampled(exe: string, args: string[], env: Record<string, string>): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(exe, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
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
