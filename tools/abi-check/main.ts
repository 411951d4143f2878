/**
 * `osprey abi-check [--runtime PATH] [--json]`: checks that a runtime library implements the
 * Osprey runtime ABI of runtime-bindings/abi.ts.
 *
 * For every runtime function the harness generates a C probe from the ABI table and the scenario
 * table (scenarios.ts), compiles it with clang-14 under ASan + UBSan against the generated header,
 * links it with the library and runs each scenario in its own process with a timeout (runner.ts),
 * then reports one row per function and check (report.ts). Exit status: 0 when every check
 * passes, 1 when any fails, 2 on a usage or set-up error.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { RUNTIME_FUNCTIONS } from '../../runtime-bindings/abi.ts';
import { PROJECT_ROOT, runtimeLibrary } from '../../runtime-bindings/toolchain.ts';
import { startEchoServer } from './echo-server.ts';
import { inspectLibrary } from './library.ts';
import { generateProbe } from './probe-gen.ts';
import { buildReport, renderJson, renderTable, type AbiReport } from './report.ts';
import { buildAndRunAll, DEFAULT_CC, DEFAULT_TIMEOUT_MS, Limiter, prepareToolchain } from './runner.ts';

export const USAGE = `usage: osprey abi-check [--runtime PATH] [--json] [--only SYMBOL,...] [--timeout MS]

Checks that a runtime library (static .a or shared .so) implements the Osprey runtime ABI
(runtime-bindings/abi.ts; docs/ABI.md). Default library: the project's own
${relative(PROJECT_ROOT, runtimeLibrary('release'))}

  --runtime PATH   the library under test
  --json           print the report as JSON instead of a table
  --only LIST      probe only these C symbols (comma-separated)
  --timeout MS     per-probe-process timeout (default ${DEFAULT_TIMEOUT_MS})
  --cc PATH        C compiler for the probes (default ${DEFAULT_CC})

Environment: OSP_ABI_CHECK_TRACE=1 copies the stderr of every probe process that fails;
OSP_ABI_CHECK_KEEP=1 keeps the generated probe sources and executables.

Exit status: 0 when every check passes, 1 when a check fails, 2 on a usage or set-up error.
`;

export interface AbiCheckOptions {
  runtime: string;
  only?: string[];
  timeoutMs?: number;
  cc?: string;
  /** Concurrent probe processes (default: twice the cores; probes mostly wait on sockets). */
  jobs?: number;
}

/** Runs the whole check and returns the report (the programmatic entry the tests use). */
export async function runAbiCheck(opts: AbiCheckOptions): Promise<AbiReport> {
  const lib = await inspectLibrary(opts.runtime);
  const functions = RUNTIME_FUNCTIONS.filter((f) => !opts.only || opts.only.includes(f.symbol));
  const workDir = mkdtempSync(join(tmpdir(), 'osprey-abi-check-'));
  const echo = await startEchoServer();
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  try {
    const runOpts = { timeoutMs, echoUrl: echo.url, workDir, cc: opts.cc ?? DEFAULT_CC };
    const tc = await prepareToolchain(runOpts);
    const cores = availableParallelism();
    const cpu = new Limiter(cores);
    const runs = new Limiter(opts.jobs ?? Math.max(4, cores * 2));
    const plans = functions.filter((f) => lib.defined.has(f.symbol)).map((f) => generateProbe(f, lib.defined));
    const outcomes = await buildAndRunAll(plans, lib, tc, runOpts, cpu, runs);
    return buildReport(lib, functions, outcomes, timeoutMs);
  } finally {
    await echo.close();
    if (process.env.OSP_ABI_CHECK_KEEP) process.stderr.write(`osprey abi-check: probes kept in ${workDir}\n`);
    else rmSync(workDir, { recursive: true, force: true });
  }
}

interface ParsedArgs {
  runtime: string;
  json: boolean;
  only?: string[];
  timeoutMs?: number;
  cc?: string;
}

function parseArgs(argv: string[]): ParsedArgs | string {
  const out: ParsedArgs = { runtime: runtimeLibrary('release'), json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string | undefined => {
      const eq = a.indexOf('=');
      if (eq >= 0) return a.slice(eq + 1);
      return argv[++i];
    };
    const flag = a.split('=')[0];
    if (flag === '--json') out.json = true;
    else if (flag === '--runtime') {
      const v = value();
      if (!v) return '--runtime needs a PATH';
      out.runtime = v;
    } else if (flag === '--only') {
      const v = value();
      if (!v) return '--only needs a comma-separated list of symbols';
      out.only = v.split(',').filter(Boolean);
      const unknown = out.only.filter((s) => !RUNTIME_FUNCTIONS.some((f) => f.symbol === s));
      if (unknown.length) return `--only: not a runtime function of abi.ts: ${unknown.join(', ')}`;
    } else if (flag === '--timeout') {
      const v = Number(value());
      if (!Number.isInteger(v) || v < 1000) return '--timeout needs a number of milliseconds (>= 1000)';
      out.timeoutMs = v;
    } else if (flag === '--cc') {
      const v = value();
      if (!v) return '--cc needs a PATH';
      out.cc = v;
    } else if (flag === '-h' || flag === '--help') return '';
    else return `unknown argument '${a}'`;
  }
  return out;
}

export async function abiCheckMain(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if (typeof args === 'string') {
    if (args) process.stderr.write(`osprey abi-check: ${args}\n\n`);
    (args ? process.stderr : process.stdout).write(USAGE);
    return args ? 2 : 0;
  }
  let report: AbiReport;
  try {
    report = await runAbiCheck({ runtime: args.runtime, only: args.only, timeoutMs: args.timeoutMs, cc: args.cc });
  } catch (e) {
    process.stderr.write(`osprey abi-check: ${(e as Error).message}\n`);
    return 2;
  }
  process.stdout.write(args.json ? renderJson(report) : renderTable(report));
  return report.failed === 0 ? 0 : 1;
}
