// Where the bundled compiler lives and whether it is up to date. Plain JavaScript because
// bin/osprey.mjs uses it before anything can load TypeScript; scripts/bundle-compiler.ts writes
// the bundle.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout: the nearest directory above this module whose package.json is named "osprey"
 *  (this module is also bundled into build/compiler/, through scripts/build-cache.mjs). */
function findRoot() {
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = here; ; dir = dirname(dir)) {
    try {
      if (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name === 'osprey') return dir;
    } catch {
      // no package.json here, or not ours
    }
    if (dirname(dir) === dir) return dirname(here);
  }
}

export const ROOT = findRoot();
export const BUNDLE_DIR = join(ROOT, 'build', 'compiler');
export const BUNDLE = join(BUNDLE_DIR, 'osprey.mjs');
/** The resident compile server's entry (bin/launcher/osprey.c starts it; compiler/src/cli/server.ts). */
export const SERVER_BUNDLE = join(BUNDLE_DIR, 'server.mjs');
/** The identity stamp: see writeIdentityStamp. */
export const IDENTITY_STAMP = join(ROOT, 'build', 'identity');

/** What the bundle is built from: every .ts file (and every directory, so a deleted or renamed
 *  file counts) under these directories, plus these single files. */
export const SOURCE_DIRS = [join(ROOT, 'compiler', 'src'), join(ROOT, 'runtime-bindings'), join(ROOT, 'tools', 'abi-check')];
export const SOURCE_FILES = [join(ROOT, 'scripts', 'bundle-compiler.ts'), join(ROOT, 'scripts', 'build-cache.mjs'), join(ROOT, 'scripts', 'compiler-bundle.mjs'), join(ROOT, 'tsconfig.json')];

/** True when some source was modified at or after `since` (ms since the epoch). */
function changedSince(dir, since) {
  if (statSync(dir).mtimeMs >= since) return true;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (changedSince(p, since)) return true;
    } else if (e.name.endsWith('.ts') && statSync(p).mtimeMs >= since) {
      return true;
    }
  }
  return false;
}

/**
 * Whether build/compiler/osprey.mjs exists and is newer than every source it is built from. The
 * bundle's mtime is set to the moment its build started, so an edit made during a build makes
 * it stale. A walk of about 50 entries: well under a millisecond when the directories are cached.
 */
export function bundleIsFresh() {
  let built;
  try {
    built = statSync(BUNDLE).mtimeMs;
  } catch {
    return false;
  }
  try {
    if (SOURCE_FILES.some((f) => statSync(f).mtimeMs >= built)) return false;
    return !SOURCE_DIRS.some((d) => changedSince(d, built));
  } catch {
    return false;
  }
}

function addTree(h, dir, keep) {
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) addTree(h, p, keep);
    else if (keep(e.name)) h.update(p).update('\0').update(readFileSync(p)).update('\0');
  }
}

/**
 * What identifies the compiler that runs, for the build cache (scripts/build-cache.mjs): the
 * bytes of the bundle when it is used, else of every source it would be built from.
 */
export function compilerIdentity(usesBundle) {
  const h = createHash('sha256');
  if (usesBundle) {
    h.update('bundle\0');
    addTree(h, BUNDLE_DIR, (name) => name.endsWith('.mjs'));
  } else {
    h.update('sources\0');
    for (const d of SOURCE_DIRS) addTree(h, d, (name) => name.endsWith('.ts'));
    for (const f of SOURCE_FILES) h.update(readFileSync(f));
  }
  return h.digest('hex');
}

/** The runtime files that go into a program's cache key (scripts/build-cache.mjs runtimeInputs). */
export const RUNTIME_FILES = {
  release: join(ROOT, 'build', 'runtime', 'release', 'libosprey_runtime.a'),
  asan: join(ROOT, 'build', 'runtime', 'asan', 'libosprey_runtime.a'),
  inline: join(ROOT, 'build', 'runtime', 'release', 'inline.bc'),
};

function sha256File(path) {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch {
    return 'missing';
  }
}

/** The files whose size and modification time vouch for the stamp: the bundle directory and its
 *  files (a chunk added, removed or rewritten changes one of them) and the runtime files. */
function watchedFiles() {
  const files = [];
  const walk = (dir) => {
    files.push(dir);
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.mjs')) files.push(p);
    }
  };
  walk(BUNDLE_DIR);
  return [...files, ...Object.values(RUNTIME_FILES)];
}

function statLine(path) {
  try {
    const st = statSync(path, { bigint: true });
    return `watch ${st.size} ${st.mtimeNs} ${path}`;
  } catch {
    return `absent ${path}`;
  }
}

/**
 * The identity of the bundled compiler and of the runtime files, read from build/identity when
 * every file it vouches for still has the size and modification time recorded there, else
 * computed (SHA-256 of the bytes) and the stamp rewritten. Null when the bundle is not used.
 *
 * build/identity is also what the native launcher (bin/launcher/osprey.c) reads to decide a
 * cache hit without Node, so its format is a contract; one record per line, the path last:
 *   osprey-identity 1
 *   bundle-mtime-ns NS          the bundle's mtime; a source at or after it makes the bundle stale
 *   fresh-dir PATH              a directory of sources (every .ts file and subdirectory) ...
 *   fresh-file PATH             ... or a single source, both checked against bundle-mtime-ns
 *   watch SIZE MTIME_NS PATH    a file (or directory) that must still have this size and mtime
 *   absent PATH                 a runtime file that must still not exist
 *   compiler HEX                SHA-256 over the bundle's .mjs files (compilerIdentity)
 *   runtime NAME HEX|missing    SHA-256 of RUNTIME_FILES[NAME]
 *   flag ARG NORMALISED         a cache-relevant flag of `osprey run` (build-cache.mjs RUN_FLAGS)
 *   neutral ARG                 a flag that changes nothing in the executable
 * Paths holding a newline are never written (the stamp is then not written at all).
 */
export function stampedIdentity(flagTable = { flags: {}, neutral: [] }) {
  let built;
  try {
    built = statSync(BUNDLE, { bigint: true }).mtimeNs;
  } catch {
    return null;
  }
  try {
    const lines = readFileSync(IDENTITY_STAMP, 'utf8').split('\n');
    if (lines[0] === 'osprey-identity 1' && lines[1] === `bundle-mtime-ns ${built}`) {
      const record = parseStamp(lines);
      if (record && record.watch.every((l) => statLine(watchedPath(l)) === l)) return record.identity;
    }
  } catch {
    // No stamp yet, or unreadable: compute it below.
  }
  return writeIdentityStamp(built, flagTable);
}

/** The path of a `watch SIZE MTIME_NS PATH` or `absent PATH` line. */
function watchedPath(line) {
  return line.startsWith('absent ') ? line.slice(7) : line.split(' ').slice(3).join(' ');
}

function parseStamp(lines) {
  const identity = { compiler: null, runtime: {} };
  const watch = [];
  for (const l of lines) {
    if (l.startsWith('watch ') || l.startsWith('absent ')) watch.push(l);
    else if (l.startsWith('compiler ')) identity.compiler = l.slice(9);
    else if (l.startsWith('runtime ')) {
      const [, name, hex] = l.split(' ');
      identity.runtime[name] = hex;
    }
  }
  return identity.compiler ? { identity, watch } : null;
}

function writeIdentityStamp(built, flagTable) {
  // The watch lines are taken before hashing: a file changed meanwhile then no longer matches its
  // line, and the next call computes again instead of trusting a digest of other bytes.
  const watch = watchedFiles().map(statLine);
  const identity = {
    compiler: compilerIdentity(true),
    runtime: Object.fromEntries(Object.entries(RUNTIME_FILES).map(([name, path]) => [name, sha256File(path)])),
  };
  const lines = ['osprey-identity 1', `bundle-mtime-ns ${built}`];
  for (const d of SOURCE_DIRS) lines.push(`fresh-dir ${d}`);
  for (const f of SOURCE_FILES) lines.push(`fresh-file ${f}`);
  lines.push(...watch, `compiler ${identity.compiler}`);
  for (const [name, hex] of Object.entries(identity.runtime)) lines.push(`runtime ${name} ${hex}`);
  for (const [arg, normalised] of Object.entries(flagTable.flags)) lines.push(`flag ${arg} ${normalised}`);
  for (const arg of flagTable.neutral) lines.push(`neutral ${arg}`);
  if (!lines.some((l) => l.includes('\n'))) {
    try {
      const tmp = `${IDENTITY_STAMP}.${process.pid}.tmp`;
      writeFileSync(tmp, lines.join('\n') + '\n');
      renameSync(tmp, IDENTITY_STAMP);
    } catch {
      // A read-only installation: the identity is still right, only computed on every call.
    }
  }
  return identity;
}
