// The build cache of `osprey run`: an unchanged program is not compiled again. Plain JavaScript
// because bin/osprey.mjs looks a program up here before it loads the compiler; the compiler's
// `run` (compiler/src/main.ts) stores into it. The native launcher (bin/launcher/osprey.c) looks
// programs up by the same rules without starting Node: the key and the entry layout below are a
// contract between the two (tests/compiler/launcher.test.ts checks that they agree).
//
// The key of a program (CACHE_FORMAT 2) is the lowercase hex SHA-256 of this text:
//   osprey-run-cache 2\n
//   compiler HEX\n          the compiler's identity (compiler-bundle.mjs stampedIdentity)
//   runtime HEX[ HEX]\n     the runtime files the build links (runtimeInputs), space-separated
//   flags NORMALISED\n      normalizeRunFlags of the command's flags
//   source HEX\n            SHA-256 of the main file's bytes
//   path PATH               the main file's path as given on the command line (no newline after)
// An entry is a directory KEY/ in the cache directory holding `program` (the executable) and
// `manifest`:
//   osprey-run-entry 2\n
//   program SIZE HEX\n      the executable's size and SHA-256 (a damaged entry is rebuilt)
//   import HEX PATH\n       one per imported module: SHA-256 of its bytes, absolute path
// An entry is a hit only when every line still holds. The native launcher, having verified a hit
// by content, also writes a hit record into hits/ (bin/launcher/hit_record.h: the status of every
// file the entry depends on), from which bin/osprey starts the program next time without reading
// or hashing anything; eviction removes the records of evicted entries. Entries are written under a temporary name
// and renamed into place, so concurrent `osprey run`s never see half an entry; the directory is
// kept under a size bound by evicting the least recently used entries (a hit refreshes the
// entry directory's modification time).
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, copyFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { compilerIdentity, RUNTIME_FILES, stampedIdentity } from './compiler-bundle.mjs';

/** Bump when the key or the layout changes (and in bin/launcher/osprey.c). */
const CACHE_FORMAT = 2;

/** Default bound of the cache directory (override: OSPREY_CACHE_MAX_MB). */
const DEFAULT_MAX_BYTES = 256 * 1024 * 1024;


/** Flags of `osprey run` that change the executable, normalised (aliases merged, sorted). */
const RUN_FLAGS = {
  '-O': 'opt=release',
  '-O2': 'opt=release',
  '--release': 'opt=release',
  '-O0': 'opt=fast',
  '--fast': 'opt=fast',
  '--sanitize': 'sanitize',
  '--sandbox': 'sandbox',
  '--no-http': 'no-http',
  '--no-websocket': 'no-websocket',
  '--no-fs': 'no-fs',
  '--no-ffi': 'no-ffi',
};

/** Flags that change nothing in the executable. */
const NEUTRAL_FLAGS = new Set(['-v', '--verbose']);

/**
 * The build-relevant part of a `run` command's flags, or null when a flag is not one the cache
 * knows (then the command takes the ordinary path). The last optimisation flag wins, as in main.ts.
 */
export function normalizeRunFlags(flags) {
  let opt = 'opt=fast';
  const rest = new Set();
  for (const f of flags) {
    if (NEUTRAL_FLAGS.has(f)) continue;
    const n = RUN_FLAGS[f];
    if (n === undefined) return null;
    if (n.startsWith('opt=')) opt = n;
    else rest.add(n);
  }
  return [opt, ...[...rest].sort()].join(' ');
}

/** The cache directory: $OSPREY_CACHE_DIR, else $XDG_CACHE_HOME/osprey/run, else a private
 *  directory in the system temp directory. */
export function cacheDir() {
  if (process.env.OSPREY_CACHE_DIR) return resolve(process.env.OSPREY_CACHE_DIR);
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  if (process.env.XDG_CACHE_HOME) return join(process.env.XDG_CACHE_HOME, 'osprey', 'run');
  return join(tmpdir(), `osprey-${uid}`, 'run');
}

/** Whether `osprey run` uses the cache at all (OSPREY_NO_CACHE=1 turns it off). */
export function cacheEnabled() {
  const v = process.env.OSPREY_NO_CACHE;
  return v === undefined || v === '' || v === '0';
}

function sha256(data) {
  return createHash('sha256').update(data).digest('hex');
}

/** The runtime files a build with these normalised flags links, by their names in the identity
 *  stamp (compiler-bundle.mjs RUNTIME_FILES). */
export function runtimeInputs(flags) {
  const sanitize = flags.split(' ').includes('sanitize');
  if (sanitize) return ['asan'];
  return flags.startsWith('opt=release') ? ['release', 'inline'] : ['release'];
}

/** The identity of the compiler that runs and of the runtime files: from the stamp when the
 *  bundle is used (cheap), else hashed from the sources. */
export function identity(usesBundle) {
  if (usesBundle) {
    const stamped = stampedIdentity({ flags: RUN_FLAGS, neutral: [...NEUTRAL_FLAGS] });
    if (stamped) return stamped;
  }
  return {
    compiler: compilerIdentity(false),
    runtime: Object.fromEntries(Object.entries(RUNTIME_FILES).map(([name, path]) => [name, fileDigest(path)])),
  };
}

function fileDigest(path) {
  try {
    return sha256(readFileSync(path));
  } catch {
    return 'missing';
  }
}

/**
 * The key of a program (the format is described at the top of this file). `identity` is what
 * identity() returns; `source` the main file's bytes; `sourcePath` the path as given on the
 * command line.
 */
export function cacheKey({ sourcePath, source, flags, identity: id }) {
  const runtime = runtimeInputs(flags).map((name) => id.runtime[name] ?? 'missing');
  const text = `osprey-run-cache ${CACHE_FORMAT}\ncompiler ${id.compiler}\nruntime ${runtime.join(' ')}\nflags ${flags}\nsource ${sha256(source)}\npath ${sourcePath}`;
  return sha256(text);
}

function entryDir(key) {
  return join(cacheDir(), key);
}

/** The cached executable of `key`, or null when there is none or the entry no longer holds (an
 *  imported module changed, the executable was damaged). A hit refreshes the entry's time. */
export function lookup(key) {
  const dir = entryDir(key);
  try {
    const lines = readFileSync(join(dir, 'manifest'), 'utf8').split('\n');
    if (lines[0] !== `osprey-run-entry ${CACHE_FORMAT}`) return null;
    const program = join(dir, 'program');
    let sawProgram = false;
    for (const line of lines.slice(1)) {
      if (line === '') continue;
      const [kind, a, b] = line.split(' ');
      if (kind === 'program') {
        const bytes = readFileSync(program);
        if (String(bytes.length) !== a || sha256(bytes) !== b) return null;
        sawProgram = true;
      } else if (kind === 'import') {
        if (fileDigest(line.slice(kind.length + a.length + 2)) !== a) return null;
      } else {
        return null;
      }
    }
    if (!sawProgram) return null;
    const now = new Date();
    utimesSync(dir, now, now);
    return program;
  } catch {
    return null;
  }
}

/**
 * Copies the executable at `exe` into the cache under `key`, with the manifest of `imports` (each
 * `{ path, text }`: the absolute path and the text compiled), then evicts the least recently
 * used entries beyond the bound. Failures only mean no caching: they are ignored.
 */
export function store(key, exe, imports = []) {
  const dir = cacheDir();
  if (imports.some((m) => m.path.includes('\n'))) return null;
  const tmp = join(dir, `.${key}.${process.pid}.${Date.now()}.tmp`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    mkdirSync(tmp, { mode: 0o700 });
    const program = join(tmp, 'program');
    copyFileSync(exe, program);
    chmodSync(program, 0o755);
    const bytes = readFileSync(program);
    const lines = [`osprey-run-entry ${CACHE_FORMAT}`, `program ${bytes.length} ${sha256(bytes)}`];
    for (const m of imports) lines.push(`import ${sha256(Buffer.from(m.text, 'utf8'))} ${m.path}`);
    writeFileSync(join(tmp, 'manifest'), lines.join('\n') + '\n');
    // A directory cannot be renamed over a non-empty one: an older entry of the same key (a
    // damaged one, or one whose imports changed) goes first.
    rmSync(entryDir(key), { recursive: true, force: true });
    renameSync(tmp, entryDir(key));
    evict(dir);
    return join(entryDir(key), 'program');
  } catch {
    rmSync(tmp, { recursive: true, force: true });
    return null;
  }
}

function maxBytes() {
  const mb = Number(process.env.OSPREY_CACHE_MAX_MB);
  return Number.isFinite(mb) && mb > 0 ? mb * 1024 * 1024 : DEFAULT_MAX_BYTES;
}

function evict(dir) {
  const entries = [];
  let total = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    // A temporary entry older than a minute was left by a process that died mid-copy; a `.exe`
    // file is an entry of the first cache format, which nothing reads any more.
    if (name.endsWith('.tmp') || name.endsWith('.exe')) {
      if (name.endsWith('.exe') || Date.now() - st.mtimeMs > 60_000) rmSync(p, { recursive: true, force: true });
      continue;
    }
    if (!/^[0-9a-f]{64}$/.test(name)) continue;
    let size = 0;
    try {
      size = statSync(join(p, 'program')).size;
    } catch {
      // a damaged entry: size 0, evicted first only by age
    }
    entries.push({ p, size, time: st.mtimeMs });
    total += size;
  }
  const bound = maxBytes();
  entries.sort((a, b) => a.time - b.time);
  for (const e of entries) {
    if (total <= bound) break;
    rmSync(e.p, { recursive: true, force: true });
    total -= e.size;
  }
  pruneHitRecords(dir);
}

/** Removes the hit records (bin/launcher/hit_record.h) whose entry is gone, and temporary ones a
 *  dead launcher left. A record of a live entry stays: it is a few hundred bytes. */
function pruneHitRecords(dir) {
  const hits = join(dir, 'hits');
  let names;
  try {
    names = readdirSync(hits);
  } catch {
    return;
  }
  for (const name of names) {
    const p = join(hits, name);
    try {
      if (name.endsWith('.tmp')) {
        if (Date.now() - statSync(p).mtimeMs > 60_000) rmSync(p, { force: true });
        continue;
      }
      const entry = /^entry ([0-9a-f]{64})$/m.exec(readFileSync(p, 'utf8'));
      if (!entry || !existsSync(join(dir, entry[1]))) rmSync(p, { force: true });
    } catch {
      // removed meanwhile by another process
    }
  }
}

/** Whether a path exists (re-exported for bin/osprey.mjs, which keeps its imports minimal). */
export function exists(path) {
  return existsSync(path);
}

/**
 * The parts of a command line that the cache needs, when it is a plain run: `run FILE [flags]
 * [-- ARGS...]` or `FILE --run [flags] [-- ARGS...]`. Null for anything else (other modes, -o,
 * unknown flags), which then takes the ordinary path through the compiler.
 */
export function parseRunCommand(argv) {
  let args = argv;
  let run = false;
  if (args[0] === 'run') {
    run = true;
    args = args.slice(1);
  }
  let file = null;
  const flags = [];
  let verbose = false;
  let programArgs = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      programArgs = args.slice(i + 1);
      break;
    }
    if (a === '--run') run = true;
    else if (a === '-v' || a === '--verbose') verbose = true;
    else if (a === '--no-cache') return null;
    else if (a.startsWith('-')) flags.push(a);
    else if (file === null) file = a;
    else return null;
  }
  if (!run || file === null) return null;
  const normalized = normalizeRunFlags(flags);
  return normalized === null ? null : { file, flags: normalized, verbose, programArgs };
}

/** Runs an executable with the terminal's stdio; resolves to its exit status (128 + signal).
 *  SIGTERM, SIGINT and SIGHUP are forwarded to it, as by `osprey run` (compiler/src/main.ts), so
 *  the program never outlives the command. */
export async function runExecutable(exe, args = []) {
  const { spawn } = await import('node:child_process');
  const { constants } = await import('node:os');
  return new Promise((resolveExit, reject) => {
    const child = spawn(exe, args, { stdio: 'inherit' });
    const handlers = ['SIGTERM', 'SIGINT', 'SIGHUP'].map((sig) => {
      const h = () => {
        if (child.exitCode === null && child.signalCode === null) child.kill(sig);
      };
      process.on(sig, h);
      return [sig, h];
    });
    const done = () => {
      for (const [sig, h] of handlers) process.off(sig, h);
    };
    child.on('error', (e) => {
      done();
      reject(e);
    });
    child.on('exit', (code, signal) => {
      done();
      if (code !== null) resolveExit(code);
      else resolveExit(128 + (constants.signals[signal ?? ''] ?? 1));
    });
  });
}
