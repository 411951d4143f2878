#!/usr/bin/env tsx
/**
 * Builds the C runtime once (at `npm install`) as static libraries, never per program.
 *
 *   tsx scripts/build-runtime.ts            release + asan archives under build/runtime/
 *   tsx scripts/build-runtime.ts --tests    also builds runtime-c/tests/test_*.c with ASan+UBSan and runs them
 *   tsx scripts/build-runtime.ts --check    rebuilds only when a runtime source is newer than the archives
 *   tsx scripts/build-runtime.ts --tsan     only the tsan archive; builds runtime-c/tests/test_*.c with
 *                                           ThreadSanitizer and runs them (`--tsan --only a,b`: those tests)
 *
 * Tools (runtime-c/tools/*.c: test peers, the load generator) are linked against the release
 * archive into build/tools/NAME (underscores become dashes); the echo server and client also
 * against the asan archive into build/tools/asan/NAME.
 *
 * The native `osprey` launcher is two programs, built in every mode including --check: bin/osprey
 * (bin/launcher/fast.c), freestanding, which starts an unchanged program from its hit record, and
 * bin/osprey-launcher (bin/launcher/osprey.c: the build cache by content, the client of the compile
 * server), linked statically (a dynamic libc and libcrypto cost more at start-up than a small
 * program's whole run).
 *
 * Objects are rebuilt only when their source or any header is newer, so a repeat run is quick.
 */
import { $, fs, path } from 'zx';
import {
  BUILD_DIR,
  PROJECT_ROOT,
  FLAVOUR_CFLAGS,
  RUNTIME_CFLAGS,
  RUNTIME_INCLUDE_DIR,
  RUNTIME_LINK_LIBS,
  RUNTIME_SOURCE_DIR,
  RUNTIME_TEST_DIR,
  RUNTIME_INLINE_SOURCES,
  LLVM_TOOLS,
  runtimeInlineBitcode,
  runtimeLibrary,
  tsanOptions,
  type RuntimeFlavour,
} from '../runtime-bindings/toolchain.ts';

$.verbose = false;
const args = new Set(process.argv.slice(2));
const CC = process.env.CC ?? 'gcc';

function listC(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f: string) => f.endsWith(".c"))
    .sort()
    .map((f: string) => path.join(dir, f));
}

function newestHeaderTime(): number {
  const dirs = [RUNTIME_INCLUDE_DIR, RUNTIME_SOURCE_DIR];
  let newest = 0;
  for (const d of dirs) {
    for (const f of fs.readdirSync(d)) {
      if (f.endsWith('.h')) newest = Math.max(newest, fs.statSync(path.join(d, f)).mtimeMs);
    }
  }
  return newest;
}

function mtime(p: string): number {
  return fs.existsSync(p) ? fs.statSync(p).mtimeMs : 0;
}

async function buildFlavour(flavour: RuntimeFlavour): Promise<string[]> {
  const objDir = path.join(BUILD_DIR, 'runtime', flavour, 'obj');
  fs.mkdirpSync(objDir);
  const headers = newestHeaderTime();
  const objects: string[] = [];
  const jobs: Promise<unknown>[] = [];
  for (const src of listC(RUNTIME_SOURCE_DIR)) {
    const obj = path.join(objDir, path.basename(src, '.c') + '.o');
    objects.push(obj);
    if (mtime(obj) > Math.max(mtime(src), headers)) continue;
    jobs.push(
      $`${CC} ${RUNTIME_CFLAGS} ${FLAVOUR_CFLAGS[flavour]} -I${RUNTIME_INCLUDE_DIR} -I${RUNTIME_SOURCE_DIR} -c ${src} -o ${obj}`,
    );
  }
  await Promise.all(jobs);
  const lib = runtimeLibrary(flavour);
  if (jobs.length > 0 || !fs.existsSync(lib)) {
    fs.rmSync(lib, { force: true });
    await $`ar rcs ${lib} ${objects}`;
  }
  return objects;
}

/** The inlinable runtime bitcode (toolchain.ts runtimeInlineBitcode): the sources compiled by
 * clang-14 to bitcode and linked into one module, rebuilt when a source or header is newer. */
async function buildInlineBitcode(): Promise<void> {
  const out = runtimeInlineBitcode();
  const sources = RUNTIME_INLINE_SOURCES.map((f) => path.join(RUNTIME_SOURCE_DIR, f));
  if (mtime(out) > Math.max(newestHeaderTime(), ...sources.map(mtime))) return;
  fs.mkdirpSync(path.dirname(out));
  const parts = sources.map((src) => path.join(path.dirname(out), `inline-${path.basename(src, '.c')}.bc`));
  await Promise.all(
    sources.map(
      (src, i) =>
        $`${LLVM_TOOLS.clang} ${RUNTIME_CFLAGS} -O2 -emit-llvm -I${RUNTIME_INCLUDE_DIR} -I${RUNTIME_SOURCE_DIR} -c ${src} -o ${parts[i]}`,
    ),
  );
  await $`${LLVM_TOOLS.llvmLink} ${parts} -o ${out}`;
}

/** Tools also built against the ASan+UBSan archive into build/tools/asan/ (sanitizer runs of
 * the conformance suite: tests/runtime/asan-conformance.test.ts). */
const ASAN_TOOLS = ['ws_echo_server', 'ws_echo_client'];

async function buildTools(): Promise<void> {
  const toolDir = path.join(PROJECT_ROOT, 'runtime-c', 'tools');
  const outDir = path.join(BUILD_DIR, 'tools');
  fs.mkdirpSync(path.join(outDir, 'asan'));
  const lib = runtimeLibrary('release');
  const asanLib = runtimeLibrary('asan');
  await Promise.all(
    listC(toolDir).map(async (src) => {
      const name = path.basename(src, '.c');
      const bin = path.join(outDir, name.replace(/_/g, '-'));
      if (mtime(bin) <= Math.max(mtime(src), mtime(lib))) {
        await $`${CC} ${RUNTIME_CFLAGS} -O2 -g -I${RUNTIME_INCLUDE_DIR} -I${RUNTIME_SOURCE_DIR} ${src} ${lib} -o ${bin} ${RUNTIME_LINK_LIBS}`;
      }
      const asanBin = path.join(outDir, 'asan', name.replace(/_/g, '-'));
      if (ASAN_TOOLS.includes(name) && mtime(asanBin) <= Math.max(mtime(src), mtime(asanLib))) {
        await $`${CC} ${RUNTIME_CFLAGS} ${FLAVOUR_CFLAGS.asan} -I${RUNTIME_INCLUDE_DIR} -I${RUNTIME_SOURCE_DIR} ${src} ${asanLib} -o ${asanBin} ${RUNTIME_LINK_LIBS}`;
      }
    }),
  );
}

/** bin/osprey and bin/osprey-launcher from bin/launcher/, each rebuilt when a source of the
 * launcher is newer. Written to a temporary name and renamed, so a concurrent `osprey` never
 * starts half a binary. */
async function buildLauncher(): Promise<void> {
  const dir = path.join(PROJECT_ROOT, 'bin', 'launcher');
  const inputs = fs.readdirSync(dir).filter((f: string) => /\.[ch]$/.test(f)).map((f: string) => path.join(dir, f));
  const newest = Math.max(...inputs.map(mtime));
  const flags = RUNTIME_CFLAGS.filter((f) => f !== '-fPIC');
  const build = async (name: string, command: (tmp: string) => Promise<unknown>): Promise<void> => {
    const out = path.join(PROJECT_ROOT, 'bin', name);
    if (mtime(out) > newest) return;
    const tmp = `${out}.${process.pid}.tmp`;
    await command(tmp);
    fs.renameSync(tmp, out);
  };
  // The full launcher first: bin/osprey hands everything it does not serve to it.
  await build('osprey-launcher', (tmp) => $`${CC} ${flags} -O2 -ffunction-sections -fdata-sections -static ${path.join(dir, 'osprey.c')} -o ${tmp} -Wl,--gc-sections -lcrypto`);
  // No libc, no start files, not position-independent (nothing to relocate at start), no stack
  // protector (it needs libc's canary set-up): see bin/launcher/fast.c.
  await build('osprey', (tmp) => $`${CC} ${flags} -Os -static -nostdlib -ffreestanding -fno-builtin -fno-stack-protector -fno-pie -no-pie -fno-asynchronous-unwind-tables -Wl,--build-id=none ${path.join(dir, 'fast.c')} -o ${tmp}`);
}

/** The C tests under ThreadSanitizer (`--tsan`; `--only a,b` runs just those). A test fails on a
 * non-zero exit or any ThreadSanitizer report. */
async function runTsanTests(objects: string[]): Promise<void> {
  const onlyIdx = process.argv.indexOf('--only');
  const only = onlyIdx >= 0 ? new Set((process.argv[onlyIdx + 1] ?? '').split(',').filter(Boolean)) : null;
  const tests = listC(RUNTIME_TEST_DIR)
    .filter((f) => path.basename(f).startsWith('test_'))
    .filter((f) => !only || only.has(path.basename(f, '.c')));
  if (only && tests.length !== only.size) {
    console.error(`--only names a test that does not exist: ${[...only].join(', ')} (runtime-c/tests/test_*.c)`);
    process.exit(2);
  }
  const binDir = path.join(BUILD_DIR, 'runtime', 'tests-tsan');
  fs.mkdirpSync(binDir);
  await Promise.all(
    tests.map((t) => {
      const bin = path.join(binDir, path.basename(t, '.c'));
      return $`${CC} ${RUNTIME_CFLAGS} ${FLAVOUR_CFLAGS.tsan} -I${RUNTIME_INCLUDE_DIR} -I${RUNTIME_SOURCE_DIR} ${t} ${objects} -o ${bin} ${RUNTIME_LINK_LIBS}`;
    }),
  );
  let failed = 0;
  for (const t of tests) {
    const bin = path.join(binDir, path.basename(t, '.c'));
    const started = Date.now();
    const r = await $({ nothrow: true, quiet: true, env: { ...process.env, TSAN_OPTIONS: tsanOptions() } })`${bin}`;
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    const reports = (r.stderr.match(/WARNING: ThreadSanitizer:/g) ?? []).length;
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    if (r.exitCode !== 0 || reports > 0) {
      failed++;
      console.error(`FAILED under TSan: ${path.basename(bin)} (exit ${r.exitCode}, ${reports} ThreadSanitizer reports, ${secs} s)`);
    } else {
      console.log(`tsan ok: ${path.basename(bin)} (${secs} s)`);
    }
  }
  console.log(`C runtime tests under ThreadSanitizer: ${tests.length - failed} passed, ${failed} failed`);
  if (failed) process.exit(1);
}

async function runCTests(objects: string[]): Promise<void> {
  const tests = listC(RUNTIME_TEST_DIR).filter((f) => path.basename(f).startsWith('test_'));
  const binDir = path.join(BUILD_DIR, 'runtime', 'tests');
  fs.mkdirpSync(binDir);
  let failed = 0;
  for (const t of tests) {
    const bin = path.join(binDir, path.basename(t, '.c'));
    await $`${CC} ${RUNTIME_CFLAGS} ${FLAVOUR_CFLAGS.asan} -I${RUNTIME_INCLUDE_DIR} -I${RUNTIME_SOURCE_DIR} ${t} ${objects} -o ${bin} ${RUNTIME_LINK_LIBS}`;
    const r = await $({ nothrow: true, env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=1', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1' } })`${bin}`;
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    if (r.exitCode !== 0) {
      failed++;
      console.error(`FAILED: ${path.basename(bin)} (exit ${r.exitCode})`);
    }
  }
  console.log(`C runtime tests: ${tests.length - failed} passed, ${failed} failed`);
  if (failed) process.exit(1);
}

if (args.has('--tsan')) {
  // Only the tsan archive and the tests: the release and asan archives are left alone, so this
  // can run beside another build of them (the test suite runs both at once).
  await runTsanTests(await buildFlavour('tsan'));
} else if (args.has('--check')) {
  const lib = runtimeLibrary('release');
  const sources = listC(RUNTIME_SOURCE_DIR);
  const newest = Math.max(newestHeaderTime(), ...sources.map(mtime));
  if (mtime(lib) < newest || mtime(runtimeLibrary('asan')) < newest) {
    await buildFlavour('release');
    await buildFlavour('asan');
  }
  await buildInlineBitcode();
  await buildTools();
  await buildLauncher();
} else {
  await buildFlavour('release');
  await buildInlineBitcode();
  const asanObjects = await buildFlavour('asan');
  await buildTools();
  await buildLauncher();
  console.log(`runtime built: ${runtimeLibrary('release')}; launcher: ${path.join(PROJECT_ROOT, 'bin', 'osprey')}`);
  if (args.has('--tests')) await runCTests(asanObjects);
}
