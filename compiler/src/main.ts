// Pipeline position: the command line. Parses arguments, calls the driver, prints results and is
// the only module that calls process.exit. Exit status: 0 success (or the program's own status for
// `run`), 1 compile errors, 2 usage errors (unknown flag, missing file), 70 internal compiler error.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import * as buildCache from '../../scripts/build-cache.mjs';
import { closestName, InternalCompilerError } from './diagnostics/diagnostic.ts';
import { LinkError, makeBuildDir, removeBuildDir, type Sanitizer } from './backend/link.ts';
import {
  buildExecutable, checkSource, compileToLlvm, defaultOutputName, loadSource, parseSource, renderErrors,
  type Capability, type OptLevel,
} from './driver.ts';

const VERSION = '0.1.0';

const HELP = `osprey ${VERSION} — the Osprey compiler

Usage:
  osprey run FILE [flags] [-- ARGS...]
                                   compile, link and run FILE with ARGS (the program reads them
                                   with args()); its output and exit status pass through, and
                                   SIGTERM/SIGINT/SIGHUP are forwarded to it
  osprey build FILE [-o OUT]       compile and link an executable (default OUT: ./<basename> in the
                                   current directory; OUT's folder is created if missing)
  osprey check FILE                report errors only
  osprey FILE --emit=llvm|ast      print the LLVM IR or the syntax tree to stdout
  osprey abi-check ...             the runtime ABI checker
  osprey fmt [--check] FILE|DIR|-  format programs in place (--check: list unformatted files, exit 1)
  osprey lsp                       the language server, speaking LSP over stdin/stdout
  osprey help                      this help

FILE is the main file of the program: \`import name\` loads name.osp beside it (\`import a.b\`
loads a/b.osp), so \`osprey build main.osp\` builds the whole program.

Old spellings: osprey FILE --run | --compile [-o OUT] | --llvm | --ast
  (--compile without -o writes ./<basename> in the current directory)

Flags:
  -o OUT            output executable
  -O, --release     optimise (clang -O2); the default for build/--compile
  --fast, -O0       no optimisation (clang -O0); the default for run/--run
  --sanitize        instrument with ASan + UBSan and link the runtime's asan build
  --sanitize=thread instrument with ThreadSanitizer and link the runtime's tsan build (built by
                    \`npx tsx scripts/build-runtime.ts --tsan\`; runtime-c/README.md)
  --sandbox         disable HTTP, WebSocket, file system, FFI and processes
  --no-http --no-websocket --no-fs --no-ffi
                    disable one capability: its built-ins become undefined functions
  -v, --verbose     say on stderr whether \`run\` used the build cache
  --no-cache        \`run\`: compile even when the build cache has the program
  -h, --help        this help
  --version         print the version

Build files live in $XDG_CACHE_HOME/osprey (or the system temp directory) and are removed after use.
\`run\` keeps the executables it builds in a cache ($OSPREY_CACHE_DIR, else $XDG_CACHE_HOME/osprey/run,
else the system temp directory; at most $OSPREY_CACHE_MAX_MB, default 256 MB; OSPREY_NO_CACHE=1 turns
it off), keyed by the source, the flags, the compiler and the runtime: running an unchanged program
again starts it without compiling.

The \`osprey\` command (bin/osprey, a native launcher) starts a cached program without Node and sends
build, check and run to a resident compile server, one per user and installation, which exits after
OSPREY_SERVER_IDLE_SECONDS (default 600) idle; OSPREY_NO_SERVER=1 compiles directly.
`;

class UsageError extends Error {}

type Mode = 'run' | 'build' | 'check' | 'llvm' | 'ast';

/** The subcommands, for did-you-mean (abi-check is dispatched before argument parsing). */
const COMMANDS = ['run', 'build', 'check', 'fmt', 'lsp', 'help', 'abi-check'];

interface Args {
  mode: Mode;
  file: string;
  /** Arguments after `--`, passed to the program by `run`. */
  programArgs: string[];
  output: string | null;
  opt: OptLevel | null;
  disabled: Set<Capability>;
  sanitize: Sanitizer | undefined;
  verbose: boolean;
}

function parseArgs(argv: string[]): Args | 'help' | 'version' {
  let mode: Mode | null = null;
  let file: string | null = null;
  let output: string | null = null;
  let opt: OptLevel | null = null;
  const disabled = new Set<Capability>();
  let sanitize: Sanitizer | undefined;
  let verbose = false;
  const setMode = (m: Mode) => {
    if (mode !== null && mode !== m) throw new UsageError(`conflicting modes: ${mode} and ${m}`);
    mode = m;
  };
  let i = 0;
  let programArgs: string[] = [];
  const commands: Record<string, Mode> = { run: 'run', build: 'build', check: 'check' };
  if (argv[0] !== undefined && commands[argv[0]] !== undefined) {
    setMode(commands[argv[0]]!);
    i = 1;
  } else if (argv[0] !== undefined && !argv[0].startsWith('-')) {
    // The old spellings start with the file (`osprey FILE --run`). A first word that is neither
    // a command nor an existing path nor a `.osp` name is a mistyped command (`osprey buld x.osp`).
    const word = argv[0];
    if (!word.endsWith('.osp') && !pathExists(word)) {
      const guess = closestName(word, COMMANDS);
      throw new UsageError(`unknown command '${word}'${guess ? ` — did you mean '${guess}'?` : ''} (commands: ${COMMANDS.join(', ')}; try osprey help)`);
    }
  }
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      programArgs = argv.slice(i + 1);
      break;
    }
    switch (a) {
      case '-h':
      case '--help':
        return 'help';
      case '--version':
        return 'version';
      case '--run':
        setMode('run');
        continue;
      case '--compile':
        setMode('build');
        continue;
      case '--llvm':
      case '--emit=llvm':
        setMode('llvm');
        continue;
      case '--ast':
      case '--emit=ast':
        setMode('ast');
        continue;
      case '-o':
        output = argv[++i] ?? null;
        if (output === null) throw new UsageError('-o needs a file name');
        continue;
      case '-O':
      case '-O2':
      case '--release':
        opt = 'release';
        continue;
      case '-O0':
      case '--fast':
        opt = 'fast';
        continue;
      case '--sanitize':
      case '--sanitize=address':
        sanitize = 'address';
        continue;
      case '--sanitize=thread':
        sanitize = 'thread';
        continue;
      case '-v':
      case '--verbose':
        verbose = true;
        continue;
      case '--no-cache':
        continue;
      case '--sandbox':
        for (const c of ['http', 'websocket', 'fs', 'ffi', 'process', 'sandbox'] as const) disabled.add(c);
        continue;
      case '--no-http':
        disabled.add('http');
        continue;
      case '--no-websocket':
        disabled.add('websocket');
        continue;
      case '--no-fs':
        disabled.add('fs');
        continue;
      case '--no-ffi':
        disabled.add('ffi');
        continue;
    }
    if (a.startsWith('--emit=')) throw new UsageError(`unknown --emit kind '${a.slice(7)}' (expected llvm or ast)`);
    if (a.startsWith('-')) throw new UsageError(`unknown option: ${a}`);
    if (file !== null) throw new UsageError(`unexpected argument: ${a}`);
    file = a;
  }
  if (file === null) throw new UsageError(`no input file (usage: osprey ${mode ?? 'run'} FILE; try osprey help)`);
  if (programArgs.length > 0 && mode !== 'run') throw new UsageError('arguments after -- are passed to the program, which only `osprey run` runs');
  return { mode: mode ?? 'llvm', file, programArgs, output, opt, disabled, sanitize, verbose };
}

function pathExists(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Same file on disk (hard links and symlinks included); false when either does not exist. */
function sameFile(a: string, b: string): boolean {
  try {
    const sa = statSync(a);
    const sb = statSync(b);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

/**
 * Where `build` writes: OUT (inside it when OUT is a folder, or ends with `/`), or ./<basename>.
 * Refuses to write over the source, and creates OUT's folder when it is missing.
 */
function outputPath(source: string, output: string | null): string {
  let out = resolve(output ?? defaultOutputName(source));
  if (output !== null && (output.endsWith('/') || (pathExists(out) && statSync(out).isDirectory()))) {
    out = join(out, defaultOutputName(source));
  }
  if (out === resolve(source) || sameFile(out, source)) {
    const hint = output === null
      ? `the source has no .osp extension, so the default output name is the source itself; choose one with -o, e.g. osprey build ${source} -o ${basename(source)}.out`
      : 'choose another -o';
    throw new UsageError(`refusing to overwrite the source file ${source} with the executable: ${hint}`);
  }
  if (pathExists(out) && statSync(out).isDirectory()) throw new UsageError(`cannot write the executable to ${out}: it is a directory`);
  const folder = dirname(out);
  try {
    mkdirSync(folder, { recursive: true });
  } catch (e) {
    throw new UsageError(`cannot create the output folder ${folder}: ${(e as NodeJS.ErrnoException).code === 'EEXIST' || (e as NodeJS.ErrnoException).code === 'ENOTDIR' ? 'a file is in the way' : (e as Error).message}`);
  }
  return out;
}

async function runAbiCheck(argv: string[]): Promise<number> {
  // A literal specifier, so the bundler (scripts/bundle-compiler.ts) puts abi-check in its own
  // chunk, loaded only by this command.
  const mod = await import('../../tools/abi-check/main.ts');
  return mod.abiCheckMain(argv);
}

function jsonReplacer(key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (key === 'span' && value && typeof value === 'object') {
    const s = value as { start: number; end: number };
    return `${s.start}..${s.end}`;
  }
  return value;
}

/** A shell's status for a process killed by a signal: 128 + its number. */
function signalStatus(signal: string | null): number {
  return 128 + ((signal !== null ? (osConstants.signals as Record<string, number>)[signal] : undefined) ?? 1);
}

/** Signals a service manager, `timeout` or a terminal sends to stop `osprey run`. */
const FORWARDED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/**
 * Signal handling for `osprey run`: a signal that arrives while compiling stops the build (the
 * caller removes the build directory and exits 128 + n); once the program runs, the signal is
 * forwarded to it and `osprey run` waits for it to exit, so it never outlives us holding a port.
 */
class RunSignals {
  child: ChildProcess | null = null;
  received: NodeJS.Signals | null = null;
  private readonly handlers = new Map<NodeJS.Signals, () => void>();

  install(): void {
    for (const sig of FORWARDED_SIGNALS) {
      const h = () => {
        this.received ??= sig;
        if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill(sig);
      };
      this.handlers.set(sig, h);
      process.on(sig, h);
    }
  }

  uninstall(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
    this.handlers.clear();
  }

  /** The exit status for a signal received before the program started, if any. */
  get interruptedStatus(): number | null {
    return this.received === null ? null : signalStatus(this.received);
  }
}

function runExecutable(exe: string, args: string[], signals: RunSignals): Promise<number> {
  return new Promise((resolveExit, reject) => {
    const child = spawn(exe, args, { stdio: 'inherit' });
    signals.child = child;
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code !== null) resolveExit(code);
      else resolveExit(signalStatus(signal));
    });
  });
}

/** Where a command's output goes: this process's stdout and stderr, or the compile server's
 *  reply (`serving`). */
interface CommandIO {
  serving: boolean;
  stdout(text: string): void;
  stderr(text: string): void;
}

type ServedRun = { status: number; exec?: string; fallback?: boolean };

async function main(argv: string[], io: CommandIO): Promise<number | ServedRun> {
  if (argv[0] === 'abi-check') return runAbiCheck(argv.slice(1));
  // Editor tools, each in its own bundle chunk (literal specifiers), loaded only by its command.
  if (argv[0] === 'fmt') return (await import('./tools/format/cli.ts')).fmtMain(argv.slice(1));
  if (argv[0] === 'lsp') return (await import('./tools/lsp/server.ts')).lspMain(argv.slice(1));
  if (argv.length === 0) {
    io.stderr(HELP);
    return 2;
  }
  if (argv[0] === 'help') {
    io.stdout(HELP);
    return 0;
  }
  const args = parseArgs(argv);
  if (args === 'help') {
    io.stdout(HELP);
    return 0;
  }
  if (args === 'version') {
    io.stdout(`osprey ${VERSION}\n`);
    return 0;
  }
  if (!pathExists(args.file)) throw new UsageError(`cannot read '${args.file}': no such file`);
  if (statSync(args.file).isDirectory()) {
    throw new UsageError(`'${args.file}' is a directory; give the program's main .osp file (imports are found beside it)`);
  }
  if (!statSync(args.file).isFile()) throw new UsageError(`cannot read '${args.file}': not a regular file`);
  // Resolve the output (and refuse to overwrite the source) before compiling anything.
  const buildOutput = args.mode === 'build' ? outputPath(args.file, args.output) : null;
  let file;
  try {
    file = loadSource(args.file);
  } catch (e) {
    throw new UsageError(`cannot read '${args.file}': ${(e as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
  }
  const options = { disabled: args.disabled, sanitize: args.sanitize };
  switch (args.mode) {
    case 'ast': {
      const r = parseSource(file);
      if (!r.ast) {
        io.stderr(renderErrors({ file, diagnostics: r.diagnostics }));
        return 1;
      }
      io.stdout(JSON.stringify(r.ast, jsonReplacer, 2) + '\n');
      return 0;
    }
    case 'check': {
      const r = checkSource(file, options);
      if (r.diagnostics.length) io.stderr(renderErrors(r));
      return r.typed ? 0 : 1;
    }
    case 'llvm': {
      const r = compileToLlvm(file, options);
      if (r.diagnostics.length) io.stderr(renderErrors(r));
      if (r.llvm === undefined) return 1;
      io.stdout(r.llvm);
      return 0;
    }
    case 'build': {
      const r = await buildExecutable(file, buildOutput!, args.opt ?? 'release', options);
      // Warnings go to stderr too; they never change the exit status.
      if (r.diagnostics.length) io.stderr(renderErrors(r));
      return r.executable ? 0 : 1;
    }
    case 'run': {
      const signals = new RunSignals();
      if (!io.serving) signals.install();
      // The build cache (scripts/build-cache.mjs): bin/osprey.mjs (or the compile server) already
      // looked the program up and sets the identity of the compiler when the command is cacheable.
      const identity = (globalThis as { ospreyIdentity?: buildCache.CacheIdentity }).ospreyIdentity;
      const request = identity !== undefined && buildCache.cacheEnabled() ? buildCache.parseRunCommand(argv) : null;
      const key = request && identity !== undefined
        ? buildCache.cacheKey({ sourcePath: request.file, source: Buffer.from(file.text, 'utf8'), flags: request.flags, identity })
        : null;
      // The compile server hands a cacheable run back to the launcher, which starts the program
      // itself (bin/launcher/osprey.c); anything else it cannot serve.
      if (io.serving && key === null) return { status: 0, fallback: true };
      const cached = key ? buildCache.lookup(key) : null;
      if (cached) {
        if (args.verbose) io.stderr(`osprey: cache hit, running ${cached}\n`);
        if (io.serving) return { status: 0, exec: cached };
        try {
          return await runExecutable(cached, args.programArgs, signals);
        } finally {
          signals.uninstall();
        }
      }
      const dir = makeBuildDir();
      try {
        const exe = join(dir, 'program');
        const r = await buildExecutable(file, exe, args.opt ?? 'fast', options);
        if (signals.interruptedStatus !== null) return signals.interruptedStatus;
        // Warnings go to stderr before the program runs; they never change the exit status.
        if (r.diagnostics.length) io.stderr(renderErrors(r));
        if (!r.executable) return 1;
        // Every imported module goes into the entry's manifest: an edit to one is a miss.
        const imports = (r.sources?.files ?? []).slice(1).map((e) => ({ path: resolve(e.file.path), text: e.file.text }));
        const stored = key ? buildCache.store(key, exe, imports) : null;
        if (args.verbose) io.stderr(stored ? `osprey: compiled and cached as ${stored}\n` : 'osprey: compiled (not cached)\n');
        if (io.serving) return stored ? { status: 0, exec: stored } : { status: 0, fallback: true };
        return await runExecutable(exe, args.programArgs, signals);
      } finally {
        removeBuildDir(dir);
        signals.uninstall();
      }
    }
  }
}

/** The exit status and the message of a command that threw (usage, link and internal errors). */
export function failureOutcome(e: unknown): { status: number; message: string } {
  if (e instanceof UsageError) return { status: 2, message: `osprey: ${e.message}\n` };
  if (e instanceof LinkError) return { status: 1, message: `error: ${e.message}\n` };
  const msg = e instanceof Error ? (e instanceof InternalCompilerError ? e.message : e.stack ?? e.message) : String(e);
  const maps = e instanceof InternalCompilerError || process.env.OSPREY_SOURCE_MAPS === '1' ? '' : '(run with OSPREY_SOURCE_MAPS=1 for a stack trace in the TypeScript sources)\n';
  return { status: 70, message: `internal compiler error: ${msg}\n${maps}this is a bug in osprey, please report it\n` };
}

/**
 * One command as the compile server runs it (compiler/src/cli/server.ts): output collected
 * instead of written, and a cacheable `run` answered with the executable to start (`exec`) or,
 * when it cannot be cached, `fallback` (the launcher then runs the command directly).
 */
export async function serveCommand(argv: string[]): Promise<{ status: number; stdout: string; stderr: string; exec?: string; fallback?: boolean }> {
  let stdout = '';
  let stderr = '';
  const io: CommandIO = { serving: true, stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) };
  try {
    const r = await main(argv, io);
    if (typeof r === 'number') return { status: r, stdout, stderr };
    return { ...r, stdout, stderr };
  } catch (e) {
    const f = failureOutcome(e);
    return { status: f.status, stdout, stderr: stderr + f.message };
  }
}

/** `osprey ARGS...` in this process (compiler/src/cli/osprey.ts): exits with the status. */
export function cliMain(argv: string[]): void {
  const io: CommandIO = { serving: false, stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) };
  main(argv, io).then(
    (r) => process.exit(typeof r === 'number' ? r : r.status),
    (e: unknown) => {
      const f = failureOutcome(e);
      process.stderr.write(f.message);
      process.exit(f.status);
    },
  );
}
