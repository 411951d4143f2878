// Pipeline position: the command line. Parses arguments, calls the driver, prints results and is
// the only module that calls process.exit. Exit status: 0 success (or the program's own status for
// `run`), 1 compile errors, 2 usage errors (unknown flag, missing file), 70 internal compiler error.

import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as buildCache from '../../scripts/build-cache.mjs';
import { InternalCompilerError } from './diagnostics/diagnostic.ts';
import { LinkError, makeBuildDir, removeBuildDir } from './backend/link.ts';
import {
  buildExecutable, checkSource, compileToLlvm, defaultOutputName, loadSource, parseSource, renderErrors,
  type Capability, type OptLevel,
} from './driver.ts';

const VERSION = '0.1.0';

const HELP = `osprey ${VERSION} — the Osprey compiler

Usage:
  osprey run FILE [flags]          compile, link and run FILE; its output and exit status pass through
  osprey build FILE [-o OUT]       compile and link an executable (default OUT: ./<basename> in the
                                   current directory, never beside the source)
  osprey check FILE                report errors only
  osprey FILE --emit=llvm|ast      print the LLVM IR or the syntax tree to stdout
  osprey abi-check ...             the runtime ABI checker
  osprey fmt [--check] FILE|DIR|-  format programs in place (--check: list unformatted files, exit 1)
  osprey lsp                       the language server, speaking LSP over stdin/stdout

Old spellings: osprey FILE --run | --compile [-o OUT] | --llvm | --ast
  (--compile without -o writes ./<basename> in the current directory)

Flags:
  -o OUT            output executable
  -O, --release     optimise (clang -O2); the default for build/--compile
  --fast, -O0       no optimisation (clang -O0); the default for run/--run
  --sanitize        instrument with ASan + UBSan and link the runtime's asan build
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
`;

class UsageError extends Error {}

type Mode = 'run' | 'build' | 'check' | 'llvm' | 'ast';

interface Args {
  mode: Mode;
  file: string;
  output: string | null;
  opt: OptLevel | null;
  disabled: Set<Capability>;
  sanitize: boolean;
  verbose: boolean;
}

function parseArgs(argv: string[]): Args | 'help' | 'version' {
  let mode: Mode | null = null;
  let file: string | null = null;
  let output: string | null = null;
  let opt: OptLevel | null = null;
  const disabled = new Set<Capability>();
  let sanitize = false;
  let verbose = false;
  const setMode = (m: Mode) => {
    if (mode !== null && mode !== m) throw new UsageError(`conflicting modes: ${mode} and ${m}`);
    mode = m;
  };
  let i = 0;
  const commands: Record<string, Mode> = { run: 'run', build: 'build', check: 'check' };
  if (argv[0] !== undefined && commands[argv[0]] !== undefined) {
    setMode(commands[argv[0]]!);
    i = 1;
  }
  for (; i < argv.length; i++) {
    const a = argv[i]!;
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
        sanitize = true;
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
  if (file === null) throw new UsageError('no input file (try --help)');
  return { mode: mode ?? 'llvm', file, output, opt, disabled, sanitize, verbose };
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

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'abi-check') return runAbiCheck(argv.slice(1));
  // Editor tools, each in its own bundle chunk (literal specifiers), loaded only by its command.
  if (argv[0] === 'fmt') return (await import('./tools/format/cli.ts')).fmtMain(argv.slice(1));
  if (argv[0] === 'lsp') return (await import('./tools/lsp/server.ts')).lspMain(argv.slice(1));
  const args = parseArgs(argv);
  if (args === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  if (args === 'version') {
    process.stdout.write(`osprey ${VERSION}\n`);
    return 0;
  }
  if (!existsSync(args.file) || !statSync(args.file).isFile()) throw new UsageError(`cannot read '${args.file}': no such file`);
  const file = loadSource(args.file);
  const options = { disabled: args.disabled, sanitize: args.sanitize };
  switch (args.mode) {
    case 'ast': {
      const r = parseSource(file);
      if (!r.ast) {
        process.stderr.write(renderErrors({ file, diagnostics: r.diagnostics }));
        return 1;
      }
      process.stdout.write(JSON.stringify(r.ast, jsonReplacer, 2) + '\n');
      return 0;
    }
    case 'check': {
      const r = checkSource(file, options);
      if (r.diagnostics.length) process.stderr.write(renderErrors(r));
      return r.typed ? 0 : 1;
    }
    case 'llvm': {
      const r = compileToLlvm(file, options);
      if (r.diagnostics.length) process.stderr.write(renderErrors(r));
      if (r.llvm === undefined) return 1;
      process.stdout.write(r.llvm);
      return 0;
    }
    case 'build': {
      const out = resolve(args.output ?? defaultOutputName(args.file));
      const r = await buildExecutable(file, out, args.opt ?? 'release', options);
      if (r.diagnostics.length) process.stderr.write(renderErrors(r));
      return r.executable ? 0 : 1;
    }
    case 'run': {
      // The build cache (scripts/build-cache.mjs): bin/osprey.mjs already looked the program up
      // and sets the compiler's identity when the command is cacheable.
      const compilerId = (globalThis as { ospreyCompilerIdentity?: string }).ospreyCompilerIdentity;
      const request = compilerId !== undefined && buildCache.cacheEnabled() ? buildCache.parseRunCommand(argv) : null;
      const key = request && compilerId !== undefined
        ? buildCache.cacheKey({ sourcePath: request.file, sourceText: file.text, flags: request.flags, compilerId })
        : null;
      const cached = key ? buildCache.lookup(key) : null;
      if (cached) {
        if (args.verbose) process.stderr.write(`osprey: cache hit, running ${cached}\n`);
        return await buildCache.runExecutable(cached);
      }
      const dir = makeBuildDir();
      try {
        const exe = join(dir, 'program');
        const r = await buildExecutable(file, exe, args.opt ?? 'fast', options);
        // Warnings go to stderr before the program runs; they never change the exit status.
        if (r.diagnostics.length) process.stderr.write(renderErrors(r));
        if (!r.executable) return 1;
        const stored = key ? buildCache.store(key, exe) : null;
        if (args.verbose) process.stderr.write(stored ? `osprey: compiled and cached as ${stored}\n` : 'osprey: compiled (not cached)\n');
        return await buildCache.runExecutable(exe);
      } finally {
        removeBuildDir(dir);
      }
    }
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`osprey: ${e.message}\n`);
      process.exit(2);
    }
    if (e instanceof LinkError) {
      process.stderr.write(`error: ${e.message}\n`);
      process.exit(1);
    }
    const msg = e instanceof Error ? (e instanceof InternalCompilerError ? e.message : e.stack ?? e.message) : String(e);
    process.stderr.write(`internal compiler error: ${msg}\nthis is a bug in osprey, please report it\n`);
    process.exit(70);
  },
);
