/**
 * Shared by the language benchmarks (lang-bench.ts, lang-memory.ts) and the memory test
 * (tests/compiler/memory.test.ts): compiling an Osprey program through the driver, running an
 * executable while sampling its peak resident set (VmHWM), and medians.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
  spawnSync('sh', ['-c', `cat > '${src}'`], { input: text });
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
  /** Highest VmHWM seen while sampling, in kB (a lower bound of the true peak; sampled every 10 ms). */
  peakKb: number;
}

/** Runs `exe`, sampling VmHWM until it exits. */
export function runMeasured(exe: string, args: string[] = []): Promise<RunResult> {
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
    // 'exit' fires before the zombie is reaped only if we sample first: sample on every chunk too.
    child.stdout.on('data', sample);
    child.on('exit', (status) => {
      clearInterval(timer);
      resolve({ stdout, status, ms: performance.now() - start, peakKb });
    });
  });
}

/** Runs a command to completion and returns its wall time in ms (throws on failure). */
export function timeCommand(cmd: string, args: string[], cwd = ROOT): number {
  const start = performance.now();
  const p = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  const ms = performance.now() - start;
  if (p.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${p.status}): ${p.stderr}`);
  return ms;
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
