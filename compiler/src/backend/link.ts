// Pipeline position: the last step. Writes the verified module as bitcode into a private build
// directory (never beside the source) and links it with the runtime archive through clang-14:
//   clang-14 -O{0|2} prog.bc libosprey_runtime.a -lssl -lcrypto -lgc -lpthread -lm -o OUT
// One clang process does optimisation, code generation (PIC, as Debian links PIE) and the link,
// which is cheaper than opt + llc + cc (three process start-ups).

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LLVM_TOOLS, RUNTIME_LINK_LIBS, runtimeInlineBitcode, runtimeLibrary } from '../../../runtime-bindings/toolchain.ts';
import type { IrModule } from '../codegen/llvm.ts';

const run = promisify(execFile);

/**
 * fast: -O0, the default of `osprey run` — a program that is run once is dominated by compile time
 *       (clang -O2 costs seconds on large modules), and self tail calls are loops in
 *       the IR already, so -O0 keeps deep recursion safe.
 * release: -O2, the default of `osprey build` (an artifact is run many times).
 */
export type OptLevel = 'fast' | 'release';

export class LinkError extends Error {}

/** A fresh private directory under $XDG_CACHE_HOME/osprey (or the temp dir) for one build. */
export function makeBuildDir(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const base = process.env.XDG_CACHE_HOME ? join(process.env.XDG_CACHE_HOME, 'osprey') : join(tmpdir(), `osprey-${uid}`);
  mkdirSync(base, { recursive: true, mode: 0o700 });
  return mkdtempSync(join(base, 'build-'));
}

export function removeBuildDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** `address`: ASan + UBSan with the runtime's asan flavour; `thread`: ThreadSanitizer with its
 * tsan flavour (clang's TSan runtime; the archive is instrumented by gcc against the same
 * interface). */
export type Sanitizer = 'address' | 'thread';

export interface LinkOptions {
  sanitize?: Sanitizer;
}

const SANITIZER_FLAGS: Record<Sanitizer, string[]> = {
  address: ['-fsanitize=address,undefined', '-fno-omit-frame-pointer'],
  thread: ['-fsanitize=thread', '-fno-omit-frame-pointer'],
};

export async function linkExecutable(ir: IrModule, output: string, opt: OptLevel, buildDir: string, options: LinkOptions = {}): Promise<void> {
  const lib = runtimeLibrary(options.sanitize === 'address' ? 'asan' : options.sanitize === 'thread' ? 'tsan' : 'release');
  if (!existsSync(lib)) {
    const how = options.sanitize === 'thread' ? 'npx tsx scripts/build-runtime.ts --tsan' : 'npx tsx scripts/build-runtime.ts';
    throw new LinkError(`the Osprey runtime library is missing (${lib}); build it with \`${how}\``);
  }
  const bc = join(buildDir, 'program.bc');
  // An optimised build gets the runtime's hot helpers as bitcode, so clang can inline them
  // (toolchain.ts runtimeInlineBitcode); a build without it is still correct, only slower.
  const inline = runtimeInlineBitcode();
  if (opt === 'release' && !options.sanitize && existsSync(inline)) ir.linkBitcode(inline);
  ir.writeBitcode(bc);
  const sanitize = options.sanitize ? SANITIZER_FLAGS[options.sanitize] : [];
  // --as-needed: a program that uses no WebSocket function does not load libssl and libcrypto at
  // start-up (their relocations cost more than a small program's whole run).
  // gold (binutils, always installed with ld) links a program in about two thirds of the CPU
  // time of the default bfd ld: ~25 ms of a hello-world build (docs/BENCHMARKS-LANG.md). The
  // sanitizer runtimes are left to the default linker they are tested with.
  const linker = options.sanitize ? [] : ['-fuse-ld=gold'];
  const args = [opt === 'release' ? '-O2' : '-O0', '-fPIC', ...sanitize, ...linker, bc, lib, '-Wl,--as-needed', ...RUNTIME_LINK_LIBS, '-o', output];
  try {
    const direct = driverBypass ? await directCommands(args, bc, output, join(buildDir, 'program.o')) : null;
    if (direct) {
      for (const [tool, toolArgs] of direct) await run(tool, toolArgs, { maxBuffer: 16 * 1024 * 1024 });
    } else {
      await run(LLVM_TOOLS.clang, args, { maxBuffer: 16 * 1024 * 1024 });
    }
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new LinkError(`linking failed:\n${(err.stderr ?? err.message).trim()}`);
  }
}

/**
 * A long-lived compiler (the compile server, compiler/src/cli/server.ts) skips the clang driver:
 * the driver process costs about 25 ms of CPU per build (it loads all of clang and LLVM only to
 * run the code generator, which it does in-process, and the linker). The server asks the driver
 * once per kind of build what it would run (`clang -###`) and then runs those two commands
 * itself: `clang -cc1` (code generation) and the linker, with the same arguments.
 */
let driverBypass = false;

export function bypassClangDriver(): void {
  driverBypass = true;
}

interface DriverPlan {
  commands: [string, string[]][];
  bc: string;
  output: string;
  object: string;
}

/** The driver's plan per build kind (its arguments with the paths left out) and directory. */
const plans = new Map<string, DriverPlan | null>();

/** The commands for one build, from the plan of its kind; null to run the driver instead. */
async function directCommands(args: string[], bc: string, output: string, object: string): Promise<[string, string[]][] | null> {
  const kind = JSON.stringify([process.cwd(), args.map((a) => (a === bc ? '<bc>' : a === output ? '<out>' : a))]);
  let plan = plans.get(kind);
  if (plan === undefined) {
    plan = await askDriver(args, bc, output);
    plans.set(kind, plan);
  }
  if (plan === null) return null;
  const p = plan;
  const swap = (a: string) => (a === p.bc ? bc : a === p.output ? output : a === p.object ? object : a);
  return p.commands.map(([tool, toolArgs]) => [tool, toolArgs.map(swap)]);
}

/** `clang -###`: the code generator's and the linker's command lines, or null when the plan is not
 *  the expected two commands (the driver is then used as it is). */
async function askDriver(args: string[], bc: string, output: string): Promise<DriverPlan | null> {
  try {
    const { stderr } = await run(LLVM_TOOLS.clang, ['-###', ...args], { maxBuffer: 16 * 1024 * 1024 });
    const commands = stderr.split('\n').filter((l) => l.startsWith(' "')).map(parseQuotedCommand);
    if (commands.length !== 2 || commands.some((c) => c === null)) return null;
    const [compile, link] = commands as string[][];
    if (compile![1] !== '-cc1' || compile!.indexOf('-o') < 0) return null;
    const object = compile![compile!.indexOf('-o') + 1]!;
    if (!link!.includes(object) || !link!.includes(output) || !compile!.includes(bc)) return null;
    return { commands: [[compile![0]!, compile!.slice(1)], [link![0]!, link!.slice(1)]], bc, output, object };
  } catch {
    return null;
  }
}

/** One line of `clang -###`: every word double-quoted, with backslash escapes. */
function parseQuotedCommand(line: string): string[] | null {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] === ' ') {
      i++;
      continue;
    }
    if (line[i] !== '"') return null;
    let word = '';
    for (i++; i < line.length && line[i] !== '"'; i++) {
      if (line[i] === '\\') i++;
      word += line[i] ?? '';
    }
    if (line[i] !== '"') return null;
    i++;
    words.push(word);
  }
  return words;
}
