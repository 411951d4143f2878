// The build cache of `osprey run`: an unchanged program is not compiled again. Plain JavaScript
// because bin/osprey.mjs looks a program up here before it loads the compiler (Node start-up is
// then the only cost of a cache hit); the compiler's `run` (compiler/src/main.ts) stores into it.
//
// An entry is one executable, named by a SHA-256 key over everything that determines it: the
// source text and the path it was read from (run-time failure messages quote the path), the
// flags that change the build, the compiler (the bundle's bytes, or every compiler source when it
// runs unbundled) and the runtime it links (the archive, and for -O2 the inlined bitcode).
// Entries are written to a temporary name and renamed into place, so concurrent `osprey run`s
// never see half an executable; the directory is kept under a size bound by evicting the least
// recently used entries (a hit refreshes an entry's modification time).
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Bump when the key or the layout changes. */
const CACHE_FORMAT = 1;

/** Default bound of the cache directory (override: OSPREY_CACHE_MAX_MB). */
const DEFAULT_MAX_BYTES = 256 * 1024 * 1024;

/** The checkout: the nearest directory above this module whose package.json is named "osprey"
 *  (this module is also bundled into build/compiler/osprey.mjs). */
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

const ROOT = findRoot();

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

function sha256(...parts) {
  const h = createHash('sha256');
  for (const p of parts) {
    h.update(typeof p === 'string' ? p : p);
    h.update('\0');
  }
  return h.digest('hex');
}

/** The runtime files a build with these normalised flags links. */
function runtimeInputs(flags) {
  const flavour = flags.split(' ').includes('sanitize') ? 'asan' : 'release';
  const files = [join(ROOT, 'build', 'runtime', flavour, 'libosprey_runtime.a')];
  if (flags.startsWith('opt=release') && flavour === 'release') files.push(join(ROOT, 'build', 'runtime', 'release', 'inline.bc'));
  return files;
}

function fileDigest(path) {
  try {
    return sha256(readFileSync(path));
  } catch {
    return 'missing';
  }
}

/**
 * The key of a program. `compilerId` identifies the compiler that builds it (see
 * compilerIdentity in bin/osprey.mjs's helper compiler-bundle.mjs users); `sourcePath` is the path
 * as given on the command line.
 */
export function cacheKey({ sourcePath, sourceText, flags, compilerId }) {
  const runtime = runtimeInputs(flags).map(fileDigest);
  return sha256(`osprey-run-cache ${CACHE_FORMAT}`, compilerId, flags, ...runtime, sourcePath, sourceText);
}

function entryPath(key) {
  return join(cacheDir(), `${key}.exe`);
}

/** The cached executable of `key`, or null. A hit refreshes the entry's time (for eviction). */
export function lookup(key) {
  const p = entryPath(key);
  try {
    const now = new Date();
    utimesSync(p, now, now);
    return p;
  } catch {
    return null;
  }
}

/** Copies the executable at `exe` into the cache under `key` (temp + rename), then evicts the
 *  least recently used entries beyond the bound. Failures only mean no caching: they are ignored. */
export function store(key, exe) {
  const dir = cacheDir();
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = join(dir, `.${key}.${process.pid}.${Date.now()}.tmp`);
    copyFileSync(exe, tmp);
    chmodSync(tmp, 0o755);
    renameSync(tmp, entryPath(key));
    evict(dir);
    return entryPath(key);
  } catch {
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
    // A temporary file older than a minute was left by a process that died mid-copy.
    if (name.endsWith('.tmp')) {
      if (Date.now() - st.mtimeMs > 60_000) rmSync(p, { force: true });
      continue;
    }
    if (!name.endsWith('.exe')) continue;
    entries.push({ p, size: st.size, time: st.mtimeMs });
    total += st.size;
  }
  const bound = maxBytes();
  entries.sort((a, b) => a.time - b.time);
  for (const e of entries) {
    if (total <= bound) break;
    rmSync(e.p, { force: true });
    total -= e.size;
  }
}

/** Whether a path exists (re-exported for bin/osprey.mjs, which keeps its imports minimal). */
export function exists(path) {
  return existsSync(path);
}

/**
 * The parts of a command line that the cache needs, when it is a plain run: `run FILE [flags]`
 * or `FILE --run [flags]`. Null for anything else (other modes, -o, unknown flags), which then
 * takes the ordinary path through the compiler.
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
  for (const a of args) {
    if (a === '--run') run = true;
    else if (a === '-v' || a === '--verbose') verbose = true;
    else if (a === '--no-cache') return null;
    else if (a.startsWith('-')) flags.push(a);
    else if (file === null) file = a;
    else return null;
  }
  if (!run || file === null) return null;
  const normalized = normalizeRunFlags(flags);
  return normalized === null ? null : { file, flags: normalized, verbose };
}

/** Runs an executable with the terminal's stdio; resolves to its exit status (128 + signal).
 *  SIGTERM, SIGINT and SIGHUP are forwarded to it, as by `osprey run` (compiler/src/main.ts), so
 *  the program never outlives the command. */
export async function runExecutable(exe) {
  const { spawn } = await import('node:child_process');
  const { constants } = await import('node:os');
  return new Promise((resolveExit, reject) => {
    const child = spawn(exe, [], { stdio: 'inherit' });
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
