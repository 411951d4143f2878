/**
 * Builds and runs the probes: compiles each generated probe with clang-14 under ASan + UBSan
 * against the generated header, links it with the library under test, runs every scenario in its
 * own process with a timeout, and turns what happened (report lines, exit status, sanitizer
 * reports, standard streams) into per-scenario outcomes.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderCHeader } from '../../runtime-bindings/c-header.ts';
import { LLVM_TOOLS, PROJECT_ROOT } from '../../runtime-bindings/toolchain.ts';
import { linkArgs, type RuntimeLibrary } from './library.ts';
import { generateDispatcher, type PlannedScenario, type ProbePlan } from './probe-gen.ts';

/** Where probe_support.c/.h are installed: tools/abi-check/ under the package root (this module's
 *  own import.meta.url is a chunk of the bundle when the compiler runs from build/compiler). */
const HERE = join(PROJECT_ROOT, 'tools', 'abi-check');

const SANITIZE = ['-fsanitize=address,undefined', '-fno-sanitize-recover=undefined'];
const CFLAGS = ['-std=gnu11', '-g', '-O1', '-fno-omit-frame-pointer', '-Wall', '-Wextra', '-Wno-unused-parameter', '-Wno-unreachable-code', ...SANITIZE];

export interface RunOptions {
  /** Per scenario process (ms). */
  timeoutMs: number;
  echoUrl: string;
  /** Where probes are built; removed by the caller. */
  workDir: string;
  cc: string;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
/** The exit status of a probe process after a sanitizer report. */
export const SANITIZER_EXIT = 86;
export const DEFAULT_CC = LLVM_TOOLS.clang;

export interface ReportedCheck {
  check: string;
  pass: boolean;
  reason: string;
}

export interface ScenarioOutcome {
  planned: PlannedScenario;
  checks: ReportedCheck[];
  setupFailure?: string;
  done: boolean;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  lastStep?: string;
  stdout: string;
  stderr: string;
  /** First sanitizer or fatal report, in one line. */
  sanitizer?: string;
  /** When the report is about a string argument the probe passed to another runtime function
   *  (and freed after that call returned): that function, and an explanation. */
  blame?: { fn: string; note: string };
  /** Leak reports attributed to the library under test (`fn`: the runtime function whose call
   *  allocated the memory, when the stack names one). */
  leaks: { fn?: string; text: string }[];
}

export interface ProbeOutcome {
  plan: ProbePlan;
  /** Set when the probe did not compile or link. */
  buildError?: string;
  scenarios: ScenarioOutcome[];
}

/** Runs at most `n` tasks at a time. */
export class Limiter {
  private active = 0;
  private queue: (() => void)[] = [];
  constructor(private readonly n: number) {}
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.n) await new Promise<void>((r) => this.queue.push(r));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

interface Exec {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const MAX_CAPTURE = 1 << 20;

function exec(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs: number; cwd?: string }): Promise<Exec> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < MAX_CAPTURE) stdout += d.toString('utf8');
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < MAX_CAPTURE) stderr += d.toString('utf8');
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: 127, signal: null, stdout, stderr: stderr + String(e), timedOut });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Object files are cached across runs by content: a probe depends only on its source. */
function cacheDir(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const d = join(tmpdir(), `osprey-abi-check-${uid}`);
  mkdirSync(d, { recursive: true });
  return d;
}

async function compileCached(cc: string, source: string, includeDir: string, name: string): Promise<{ obj?: string; error?: string }> {
  const header = readFileSync(join(includeDir, 'osprey_abi.h'), 'utf8');
  const supportHeader = readFileSync(join(HERE, 'probe_support.h'), 'utf8');
  const key = createHash('sha256').update([cc, CFLAGS.join(' '), header, supportHeader, source].join('\0')).digest('hex').slice(0, 24);
  const obj = join(cacheDir(), `${name}-${key}.o`);
  if (existsSync(obj)) return { obj };
  // Private names until the atomic rename: concurrent harness runs may build the same probe.
  const src = join(cacheDir(), `${name}-${key}.${process.pid}.c`);
  const tmp = `${obj}.${process.pid}.tmp`;
  writeFileSync(src, source);
  try {
    const r = await exec(cc, [...CFLAGS, `-I${includeDir}`, `-I${HERE}`, '-c', src, '-o', tmp], { timeoutMs: 60_000 });
    if (r.code !== 0) return { error: firstDiagnostic(r.stderr) || `compiler exited with ${r.code}` };
    renameSync(tmp, obj);
    return { obj };
  } finally {
    rmSync(src, { force: true });
    rmSync(tmp, { force: true });
  }
}

function firstDiagnostic(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => /error|undefined reference|multiple definition/i.test(l));
  return (lines[0] ?? stderr.split('\n')[0] ?? '').trim().slice(0, 300);
}

export interface Toolchain {
  includeDir: string;
  supportObj: string;
}

/** Writes the generated header and compiles the probe support library. */
export async function prepareToolchain(opts: RunOptions): Promise<Toolchain> {
  const includeDir = join(opts.workDir, 'include');
  mkdirSync(includeDir, { recursive: true });
  writeFileSync(join(includeDir, 'osprey_abi.h'), renderCHeader());
  const support = await compileCached(opts.cc, readFileSync(join(HERE, 'probe_support.c'), 'utf8'), includeDir, 'probe_support');
  if (!support.obj) throw new Error(`cannot compile the probe support library: ${support.error}`);
  return { includeDir, supportObj: support.obj };
}

/**
 * Compiles every probe, links them into one executable with the library (falling back to one
 * executable per function when that fails, so a link error is attributed to its function) and
 * runs every scenario in its own process.
 */
export async function buildAndRunAll(
  plans: ProbePlan[],
  lib: RuntimeLibrary,
  tc: Toolchain,
  opts: RunOptions,
  cpu: Limiter,
  runs: Limiter,
): Promise<Map<string, ProbeOutcome>> {
  const outcomes = new Map<string, ProbeOutcome>();
  const objects = new Map<string, string>();
  await Promise.all(
    plans.map((plan) =>
      cpu.run(async () => {
        writeFileSync(join(opts.workDir, `probe_${plan.fn.symbol}.c`), plan.source); // for people reading along
        const c = await compileCached(opts.cc, plan.source, tc.includeDir, `probe_${plan.fn.symbol}`);
        if (c.obj) objects.set(plan.fn.symbol, c.obj);
        else outcomes.set(plan.fn.symbol, { plan, buildError: `probe did not compile: ${c.error}`, scenarios: [] });
      }),
    ),
  );
  const linkable = plans.filter((p) => objects.has(p.fn.symbol));
  const link = async (group: ProbePlan[], exe: string): Promise<string | undefined> => {
    const symbols = group.map((p) => p.fn.symbol);
    const d = await compileCached(opts.cc, generateDispatcher(symbols), tc.includeDir, 'probe_main');
    if (!d.obj) return `probe dispatcher did not compile: ${d.error}`;
    const objs = symbols.map((s) => objects.get(s)!);
    const l = await exec(opts.cc, [...SANITIZE, d.obj, ...objs, tc.supportObj, ...linkArgs(lib), '-o', exe], { timeoutMs: 120_000 });
    return l.code === 0 ? undefined : `probe did not link against ${lib.path}: ${firstDiagnostic(l.stderr)}`;
  };
  const exeOf = new Map<string, string>();
  const all = join(opts.workDir, 'probe');
  if (linkable.length > 0 && (await link(linkable, all)) === undefined) {
    for (const p of linkable) exeOf.set(p.fn.symbol, all);
  } else {
    await Promise.all(
      linkable.map((p) =>
        cpu.run(async () => {
          const exe = join(opts.workDir, `probe_${p.fn.symbol}`);
          const error = await link([p], exe);
          if (error) outcomes.set(p.fn.symbol, { plan: p, buildError: error, scenarios: [] });
          else exeOf.set(p.fn.symbol, exe);
        }),
      ),
    );
  }
  await Promise.all(
    linkable
      .filter((p) => exeOf.has(p.fn.symbol))
      .map(async (plan) => {
        const exe = exeOf.get(plan.fn.symbol)!;
        const scenarios = await Promise.all(
          plan.scenarios.map((planned, i) => runs.run(() => runScenario(exe, plan.fn.symbol, i, planned, lib, opts))),
        );
        outcomes.set(plan.fn.symbol, { plan, scenarios });
      }),
  );
  return outcomes;
}

async function runScenario(exe: string, symbol: string, index: number, planned: PlannedScenario, lib: RuntimeLibrary, opts: RunOptions): Promise<ScenarioOutcome> {
  const report = join(opts.workDir, `${symbol}.${index}.report`);
  rmSync(report, { force: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    OSP_PROBE_REPORT: report,
    OSP_PROBE_ECHO_URL: opts.echoUrl,
    // One exit status for every sanitizer report (the sanitizers share their common flags).
    ASAN_OPTIONS: `detect_leaks=1:halt_on_error=1:abort_on_error=0:symbolize=1:detect_stack_use_after_return=0:allocator_may_return_null=1:exitcode=${SANITIZER_EXIT}`,
    LSAN_OPTIONS: 'max_leaks=8',
    UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
    ASAN_SYMBOLIZER_PATH: '/usr/bin/llvm-symbolizer-14',
  };
  // In the work directory: the file scenarios' scratch paths are relative, so they go with it.
  const r = await exec(exe, [symbol, String(index)], { env, timeoutMs: opts.timeoutMs, cwd: opts.workDir });
  if (process.env.OSP_ABI_CHECK_TRACE && (r.code !== 0 || r.signal || r.timedOut)) {
    process.stderr.write(`--- ${symbol} scenario ${index}: exit ${r.code} ${r.signal ?? ''}${r.timedOut ? ' (timed out)' : ''}\n${r.stderr}\n`);
  }
  const lines = existsSync(report) ? readFileSync(report, 'utf8').split('\n') : [];
  const checks: ReportedCheck[] = [];
  let done = false;
  let lastStep: string | undefined;
  let setupFailure: string | undefined;
  const args: { start: bigint; size: bigint; fn: string }[] = [];
  for (const line of lines) {
    const f = line.split('\t');
    if (f[0] === 'STEP') lastStep = f[1];
    else if (f[0] === 'ARG' && f.length === 4) args.push({ start: BigInt(f[1]), size: BigInt(f[2]), fn: f[3] });
    else if (f[0] === 'DONE') done = true;
    else if (f[0] === 'CHECK' && f.length >= 4) {
      if (f[1] === 'setup') setupFailure = f[3];
      else checks.push({ check: f[1], pass: f[2] === 'pass', reason: f.slice(3).join(' ') });
    }
  }
  return {
    planned,
    checks,
    setupFailure,
    done,
    exitCode: r.code,
    signal: r.signal,
    timedOut: r.timedOut,
    lastStep,
    stdout: r.stdout,
    stderr: r.stderr,
    sanitizer: sanitizerReport(r.stderr, lib),
    blame: borrowedArgument(r.stderr, args),
    leaks: leakReports(r.stderr, lib),
  };
}

/** When a sanitizer report is about memory the probe passed as a string argument (and freed after
 * the call returned), names the call: the library kept a borrowed pointer. */
function borrowedArgument(stderr: string, args: { start: bigint; size: bigint; fn: string }[]): { fn: string; note: string } | undefined {
  const m = /ERROR: AddressSanitizer: [\w-]+ on (?:unknown )?address (0x[0-9a-f]+)/.exec(stderr);
  if (!m) return undefined;
  const addr = BigInt(m[1]);
  const arg = args.find((a) => addr >= a.start && addr < a.start + a.size);
  if (!arg) return undefined;
  return {
    fn: arg.fn,
    note: `the memory is a string argument passed to ${arg.fn}, freed after that call returned: the library kept a borrowed pointer (strings are borrowed only for the call)`,
  };
}

/** A stack frame belongs to the library under test when it names an osp_ function or lies in the
 * library's shared object. */
function libraryFrame(frame: string, lib: RuntimeLibrary): string | undefined {
  const m = /#\d+ 0x[0-9a-f]+ (?:in (\S+) ?(.*)|\((.*)\))/.exec(frame);
  if (!m) return undefined;
  const fn = m[1];
  const where = (m[2] ?? m[3] ?? '').trim();
  if (fn !== undefined && fn.startsWith('osp_')) return `${fn}${where ? ` (${shortLocation(where)})` : ''}`;
  if (lib.kind === 'shared' && where.includes(lib.path)) return `${fn ?? '??'} (${shortLocation(where)})`;
  return undefined;
}

/** The first frame that is not the sanitizer's own interceptor, e.g. "handshake (ws.c:452)". */
function firstUserFrame(frame: string): string | undefined {
  const m = /#\d+ 0x[0-9a-f]+ (?:in (\S+) ?(.*)|\((.*)\))/.exec(frame);
  if (!m) return undefined;
  const fn = m[1];
  if (fn !== undefined && /^(_*interceptor_|__asan|__sanitizer|__ubsan|__lsan)/.test(fn)) return undefined;
  const where = (m[2] ?? m[3] ?? '').trim();
  return `${fn ?? '??'}${where ? ` (${shortLocation(where)})` : ''}`;
}

function shortLocation(where: string): string {
  return where.replace(/^.*\//, '').replace(/\)$/, '');
}

export function sanitizerReport(stderr: string, lib: RuntimeLibrary): string | undefined {
  const lines = stderr.split('\n');
  const ubsan = lines.find((l) => l.includes('runtime error:'));
  if (ubsan) return `UndefinedBehaviorSanitizer: ${ubsan.replace(/^.*?runtime error: /, '')} (${shortLocation(ubsan.split(': runtime error')[0])})`;
  const i = lines.findIndex((l) => /ERROR: AddressSanitizer:/.test(l));
  if (i < 0) return undefined;
  const head = lines[i].replace(/^==\d+==ERROR: AddressSanitizer: /, '').replace(/ \(pc 0x.*$/, '').replace(/ at pc 0x.*$/, '');
  const access = lines.slice(i, i + 6).map((l) => /The signal is caused by a (\w+) memory access/.exec(l)?.[1] ?? /^(READ|WRITE) of size \d+/.exec(l)?.[0]).find(Boolean);
  let frame: string | undefined;
  const stack = lines.slice(i + 1, i + 40).filter((l) => /^\s+#\d+/.test(l));
  for (const l of stack) {
    frame = libraryFrame(l, lib);
    if (frame) break;
  }
  for (const l of stack) {
    if (frame) break;
    frame = firstUserFrame(l);
  }
  if (!frame) {
    const summary = lines.find((l) => l.startsWith('SUMMARY: AddressSanitizer:'));
    const m = summary ? / in (\S+)$/.exec(summary) : null;
    if (m) frame = m[1];
  }
  const nullCall = lines.slice(i, i + 8).some((l) => l.includes('pc points to the zero page'));
  return `AddressSanitizer: ${head}${access ? ` (${access})` : ''}${nullCall ? ' - a call through a NULL function pointer' : ''}${frame ? ` in ${frame}` : ''}`;
}

export function leakReports(stderr: string, lib: RuntimeLibrary): { fn?: string; text: string }[] {
  if (!stderr.includes('LeakSanitizer: detected memory leaks')) return [];
  const out: { fn?: string; text: string }[] = [];
  const blocks = stderr.split(/\n(?=(?:Direct|Indirect) leak of )/);
  for (const b of blocks) {
    const head = /^(Direct|Indirect) leak of (\d+) byte\(s\) in (\d+) object\(s\)/.exec(b);
    if (!head) continue;
    let frame: string | undefined;
    let entry: string | undefined;
    for (const l of b.split('\n').slice(1)) {
      if (!/^\s+#\d+/.test(l)) break;
      const f = libraryFrame(l, lib);
      frame ??= f;
      // The outermost osp_ frame is the ABI function the program called.
      const m = /#\d+ 0x[0-9a-f]+ in (osp_\w+)/.exec(l);
      if (m) entry = m[1];
    }
    // Leaks whose allocation stack never enters the library (the sanitizer runtime, libgc or
    // OpenSSL initialising themselves) are not the library's.
    if (frame) out.push({ fn: entry, text: `${head[1].toLowerCase()} leak of ${head[2]} byte(s) in ${head[3]} object(s) allocated in ${frame}` });
  }
  return out;
}
