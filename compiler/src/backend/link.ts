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

export interface LinkOptions {
  /** Instrument the program with ASan + UBSan and link the runtime's asan flavour. */
  sanitize?: boolean;
}

export async function linkExecutable(ir: IrModule, output: string, opt: OptLevel, buildDir: string, options: LinkOptions = {}): Promise<void> {
  const lib = runtimeLibrary(options.sanitize ? 'asan' : 'release');
  if (!existsSync(lib)) {
    throw new LinkError(`the Osprey runtime library is missing (${lib}); build it with \`npx tsx scripts/build-runtime.ts\``);
  }
  const bc = join(buildDir, 'program.bc');
  // An optimised build gets the runtime's hot helpers as bitcode, so clang can inline them
  // (toolchain.ts runtimeInlineBitcode); a build without it is still correct, only slower.
  const inline = runtimeInlineBitcode();
  if (opt === 'release' && !options.sanitize && existsSync(inline)) ir.linkBitcode(inline);
  ir.writeBitcode(bc);
  const sanitize = options.sanitize ? ['-fsanitize=address,undefined', '-fno-omit-frame-pointer'] : [];
  // --as-needed: a program that uses no WebSocket function does not load libssl and libcrypto at
  // start-up (their relocations cost more than a small program's whole run).
  // gold (binutils, always installed with ld) links a program in about two thirds of the CPU
  // time of the default bfd ld: ~25 ms of a hello-world build (docs/BENCHMARKS-LANG.md). The
  // sanitizer runtimes are left to the default linker they are tested with.
  const linker = options.sanitize ? [] : ['-fuse-ld=gold'];
  const args = [opt === 'release' ? '-O2' : '-O0', '-fPIC', ...sanitize, ...linker, bc, lib, '-Wl,--as-needed', ...RUNTIME_LINK_LIBS, '-o', output];
  try {
    await run(LLVM_TOOLS.clang, args, { maxBuffer: 16 * 1024 * 1024 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new LinkError(`linking failed:\n${(err.stderr ?? err.message).trim()}`);
  }
}
