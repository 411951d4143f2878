/**
 * Shared helpers of the compiler tests: compile through the driver's programmatic API, link into a
 * private temp directory and run the executable.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildExecutable, renderErrors, type CompileOptions, type OptLevel } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';

export const ROOT = join(import.meta.dirname, '..', '..');
export const OSPREY_BIN = join(ROOT, 'bin', 'osprey.mjs');

export function listFiles(dir: string, ext: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p, ext));
    else if (name.endsWith(ext)) out.push(p);
  }
  return out;
}

export interface RunOutcome {
  compileErrors?: string;
  stdout: string;
  stderr: string;
  status: number | null;
}

/** Compiles `text` (named `path` in diagnostics), links it at -O0 and runs it. */
export async function compileAndRun(path: string, text: string, stdin = '', options: CompileOptions = {}, opt: OptLevel = 'fast'): Promise<RunOutcome> {
  const dir = mkdtempSync(join(tmpdir(), 'osprey-test-'));
  try {
    const exe = join(dir, 'prog');
    const r = await buildExecutable(new SourceFile(path, text), exe, opt, options);
    if (!r.executable) return { compileErrors: renderErrors(r), stdout: '', stderr: '', status: null };
    // The program runs in its own scratch directory (file built-ins write relative paths there).
    const cwd = join(dir, 'cwd');
    mkdirSync(cwd);
    const p = spawnSync(exe, [], { input: stdin, encoding: 'utf8', timeout: 20_000, cwd });
    return { stdout: p.stdout, stderr: p.stderr, status: p.status };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the `osprey` command line. */
export function runCli(args: string[], cwd = ROOT): { stdout: string; stderr: string; status: number | null } {
  const p = spawnSync(process.execPath, [OSPREY_BIN, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { stdout: p.stdout, stderr: p.stderr, status: p.status };
}
