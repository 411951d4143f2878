/**
 * Where the built runtime lives and how a program links against it. Shared by the build script
 * (which produces the libraries) and the compiler driver (which links programs).
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/**
 * The checkout (the directory of the package.json named "osprey"), found by walking up from this
 * module: run from source that is the parent of runtime-bindings/, but in the bundled compiler
 * (build/compiler/osprey.mjs, scripts/bundle-compiler.ts) import.meta.url is the bundle's.
 */
function findProjectRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = here; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'osprey') return dir;
      } catch {
        // not our package.json; keep walking
      }
    }
    if (dirname(dir) === dir) return dirname(here);
  }
}

export const PROJECT_ROOT = findProjectRoot();
export const RUNTIME_SOURCE_DIR = join(PROJECT_ROOT, 'runtime-c', 'src');
export const RUNTIME_INCLUDE_DIR = join(PROJECT_ROOT, 'runtime-c', 'include');
export const RUNTIME_TEST_DIR = join(PROJECT_ROOT, 'runtime-c', 'tests');
export const BUILD_DIR = join(PROJECT_ROOT, 'build');

/** Runtime flavours: `release` for programs, `asan` for sanitizer runs of whole programs. */
export type RuntimeFlavour = 'release' | 'asan';

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

/** System libraries every Osprey executable links after the runtime archive. */
export const RUNTIME_LINK_LIBS = ['-lssl', '-lcrypto', '-lgc', '-lpthread', '-lm'];

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
};

/** The LLVM 14 tools the pipeline drives (Debian's llvm-14 package). */
export const LLVM_TOOLS = {
  opt: '/usr/bin/opt-14',
  llc: '/usr/bin/llc-14',
  clang: '/usr/bin/clang-14',
  llvmLink: '/usr/bin/llvm-link-14',
};
