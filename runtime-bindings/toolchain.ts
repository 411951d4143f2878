/**
 * Where the built runtime lives and how a program links against it. Shared by the build script
 * (which produces the libraries) and the compiler driver (which links programs).
 */
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve, sep } from 'node:path';

/**
 * The installed package's root, found from this module's own location (import.meta.url), never
 * from the working directory or a package.json: the code runs from one of three places of a
 * fixed layout, so `npm install -g .`, `npm link` and a plain checkout all work.
 *   - from source (tsx):                 <root>/runtime-bindings/toolchain.ts
 *   - in the bundle's entry:             <root>/build/compiler/osprey.mjs
 *   - in a chunk of the bundle:          <root>/build/compiler/chunks/*.mjs
 * (scripts/bundle-compiler.ts writes the last two.)
 */
function findProjectRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const layouts = [['build', 'compiler', 'chunks'], ['build', 'compiler'], ['runtime-bindings']];
  for (const parts of layouts) {
    if (here.endsWith(sep + parts.join(sep))) return resolve(here, ...parts.map(() => '..'));
  }
  throw new Error(`osprey: cannot tell where the package root is from ${here} (expected runtime-bindings/ or build/compiler/)`);
}

export const PROJECT_ROOT = findProjectRoot();
export const RUNTIME_SOURCE_DIR = join(PROJECT_ROOT, 'runtime-c', 'src');
export const RUNTIME_INCLUDE_DIR = join(PROJECT_ROOT, 'runtime-c', 'include');
export const RUNTIME_TEST_DIR = join(PROJECT_ROOT, 'runtime-c', 'tests');
export const BUILD_DIR = join(PROJECT_ROOT, 'build');

/** Runtime flavours: `release` for programs, `asan` for sanitizer runs of whole programs, `tsan`
 * for ThreadSanitizer runs of the multi-threaded C tests and programs (`build-runtime.ts --tsan`,
 * built on demand only: runtime-c/README.md, "ThreadSanitizer"). */
export type RuntimeFlavour = 'release' | 'asan' | 'tsan';

export function runtimeLibrary(flavour: RuntimeFlavour = 'release'): string {
  return join(BUILD_DIR, 'runtime', flavour, 'libosprey_runtime.a');
}

/**
 * The runtime's small hot functions (allocation, string building and comparison: core.c) as LLVM
 * bitcode, built by clang-14 next to the release archive. An optimised build links this module
 * into the program before clang-14 -O2 runs, so those functions are inlined into the generated
 * code and their attributes (nounwind, noalias results of the collector's allocators) are known;
 * the archive's copy of core.o is then never pulled in, since the program defines its symbols.
 */
export const RUNTIME_INLINE_SOURCES = ['core.c'];

export function runtimeInlineBitcode(): string {
  return join(BUILD_DIR, 'runtime', 'release', 'inline.bc');
}

/** System libraries every Osprey executable links after the runtime archive. hiredis is linked
 * from its static archive: only a program that joins a cluster pulls its objects in, and a built
 * executable does not need the hiredis shared library on the machine it is deployed to. */
export const RUNTIME_LINK_LIBS = ['-lssl', '-lcrypto', '-l:libhiredis.a', '-lgc', '-lpthread', '-lm'];

/** Warnings are errors in the runtime (DEVELOPERS standards). */
export const RUNTIME_CFLAGS = [
  '-std=gnu11',
  '-Wall',
  '-Wextra',
  '-Werror',
  '-Wshadow',
  '-Wstrict-prototypes',
  '-Wvla',
  '-fPIC',
  '-D_GNU_SOURCE',
];

export const FLAVOUR_CFLAGS: Record<RuntimeFlavour, string[]> = {
  release: ['-O2', '-g'],
  asan: ['-O1', '-g', '-fno-omit-frame-pointer', '-fsanitize=address,undefined', '-fno-sanitize-recover=undefined'],
  tsan: ['-O1', '-g', '-fno-omit-frame-pointer', '-fsanitize=thread'],
};

/** ThreadSanitizer's settings for the C tests and for programs linked with the tsan flavour
 * (`osprey build --sanitize=thread`): every report is printed (not only the first), a report makes
 * the exit status 66, and runtime-c/tsan.supp is read (runtime-c/README.md, "ThreadSanitizer"). */
export function tsanOptions(): string {
  const supp = join(PROJECT_ROOT, 'runtime-c', 'tsan.supp');
  return `suppressions=${supp}:halt_on_error=0:exitcode=66:second_deadlock_stack=1`;
}

/** The LLVM 14 tools the pipeline drives (Debian's llvm-14 package). */
export const LLVM_TOOLS = {
  opt: '/usr/bin/opt-14',
  llc: '/usr/bin/llc-14',
  clang: '/usr/bin/clang-14',
  llvmLink: '/usr/bin/llvm-link-14',
};
