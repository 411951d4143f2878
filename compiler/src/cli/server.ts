// The resident compile server: one per user, started by the native launcher (bin/launcher/osprey.c)
// on the first `osprey build/run/check` that misses the build cache, so later builds skip Node's
// start-up and the loading of llvm-bindings and the compiler (about 110 ms of CPU per build).
//
//   node build/compiler/server.mjs SOCKET IDLE_SECONDS [READY_FD]
//
// READY_FD, when given, receives one byte once the server listens (and is closed), so the
// launcher waits exactly as long as the start-up takes and sees a server that died at once.
// SOCKET is in a directory the launcher made private (0700, owned by the user). Requests are
// served one at a time (each sets the client's working directory, environment and umask for its
// duration, so two builds never see each other's); the server exits after IDLE_SECONDS without a
// request, and as soon as a request names a compiler other than the one it loaded (the bundle was
// rebuilt): it answers "stale" and the launcher starts a fresh server.
//
// Protocol (all integers unsigned 32-bit little-endian):
//   request  LEN, then LEN bytes: NUL-terminated fields
//            "osprey-compile 1", COMPILER_HEX, CWD, UMASK (octal), ARGC, ARGV..., ENVC, ENV...
//   reply    any number of '.' bytes (one a second while the request waits or runs: the
//            launcher takes silence without CPU use as a hung server), then 'R', STATUS, KIND, and three
//            lengths EXEC, STDOUT, STDERR followed by those bytes. KIND: 0 exit with STATUS
//            after writing STDOUT and STDERR; 1 also start the executable EXEC (a cached `run`);
//            2 the server cannot serve this command (compile directly); 3 stale server.
import { createServer, type Socket } from 'node:net';
import { closeSync, lstatSync, readFileSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { bundleIsFresh } from '../../../scripts/compiler-bundle.mjs';
import * as buildCache from '../../../scripts/build-cache.mjs';

const PROTOCOL = 'osprey-compile 1';
const KIND_EXIT = 0;
const KIND_EXEC = 1;
const KIND_FALLBACK = 2;
const KIND_STALE = 3;
/** A request larger than this is refused (argv and environment are a few kilobytes). */
const MAX_REQUEST = 4 * 1024 * 1024;
/** A server retires (the next build starts a fresh one) after this many requests or once its
 *  resident set is above this, so whatever a long session leaves behind stays bounded. */
const RETIRE_AFTER_REQUESTS = 2000;
const RETIRE_ABOVE_RSS = 1024 * 1024 * 1024;

const [socketPath, idleArg, readyFdArg] = process.argv.slice(2);
if (!socketPath) {
  process.stderr.write('usage: server.mjs SOCKET [IDLE_SECONDS]\n');
  process.exit(2);
}
const idleMs = Math.max(1, Number(idleArg) || 600) * 1000;

// The identity is taken before the compiler is loaded: a bundle rebuilt in between then shows as
// a mismatch on the first request instead of being vouched for by code that is not running.
if (!bundleIsFresh()) {
  process.stderr.write('osprey compile server: the compiler bundle is stale; not starting\n');
  process.exit(1);
}
const loadedCompiler = buildCache.identity(true).compiler;
const { serveCommand } = await import('../main.ts');
(await import('../backend/link.ts')).bypassClangDriver();

interface Request {
  compiler: string;
  cwd: string;
  umask: number;
  argv: string[];
  env: Record<string, string>;
}

function parseRequest(body: Buffer): Request | null {
  const fields = body.toString('utf8').split('\0');
  if (fields[fields.length - 1] !== '') return null;
  let i = 0;
  const next = () => fields[i++];
  if (next() !== PROTOCOL) return null;
  const compiler = next();
  const cwd = next();
  const umask = parseInt(next() ?? '', 8);
  const argc = Number(next());
  if (compiler === undefined || cwd === undefined || !Number.isInteger(argc) || argc < 0 || Number.isNaN(umask)) return null;
  const argv = fields.slice(i, i + argc);
  i += argc;
  const envc = Number(next());
  if (!Number.isInteger(envc) || envc < 0 || i + envc + 1 !== fields.length) return null;
  const env: Record<string, string> = {};
  for (const kv of fields.slice(i, i + envc)) {
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return { compiler, cwd, umask, argv, env };
}

function reply(sock: Socket, status: number, kind: number, exec = '', stdout = '', stderr = ''): void {
  const parts = [Buffer.from(exec, 'utf8'), Buffer.from(stdout, 'utf8'), Buffer.from(stderr, 'utf8')];
  const head = Buffer.alloc(21);
  head.write('R', 0);
  head.writeUInt32LE(status >>> 0, 1);
  head.writeUInt32LE(kind, 5);
  parts.forEach((p, n) => head.writeUInt32LE(p.length, 9 + 4 * n));
  sock.end(Buffer.concat([head, ...parts]));
}

/** Runs one command with the client's directory, environment and umask. */
async function serve(req: Request): Promise<{ status: number; kind: number; exec?: string; stdout: string; stderr: string }> {
  const savedCwd = process.cwd();
  const savedEnv = { ...process.env };
  const savedUmask = process.umask(req.umask);
  try {
    process.chdir(req.cwd);
    for (const k of Object.keys(process.env)) delete process.env[k];
    Object.assign(process.env, req.env);
    (globalThis as { ospreyIdentity?: buildCache.CacheIdentity }).ospreyIdentity = buildCache.identity(true);
    const r = await serveCommand(req.argv);
    const kind = r.fallback ? KIND_FALLBACK : r.exec !== undefined ? KIND_EXEC : KIND_EXIT;
    return { status: r.status, kind, exec: r.exec, stdout: r.stdout, stderr: r.stderr };
  } finally {
    for (const k of Object.keys(process.env)) delete process.env[k];
    Object.assign(process.env, savedEnv);
    process.umask(savedUmask);
    process.chdir(savedCwd);
  }
}

/** The socket file we bound, to remove it at exit only while it is still ours. */
let boundIno: number | bigint | null = null;

/** SOCKET.pid holds the server's process id (for tools and tests that stop it). */
const pidFile = `${socketPath}.pid`;

function removeSocket(): void {
  try {
    if (readFileSync(pidFile, 'utf8').trim() === String(process.pid)) unlinkSync(pidFile);
  } catch {
    // none, or a newer server's
  }
  try {
    if (boundIno !== null && lstatSync(socketPath!).ino === boundIno) unlinkSync(socketPath!);
  } catch {
    // already gone or replaced by a newer server's
  }
  boundIno = null;
}

function shutdown(code: number): never {
  removeSocket();
  process.exit(code);
}

let queue: Promise<void> = Promise.resolve();
let pending = 0;
let idleTimer: NodeJS.Timeout | null = null;
let stale = false;
let served = 0;

function armIdle(): void {
  if (idleTimer) clearTimeout(idleTimer);
  idleTimer = pending === 0 ? setTimeout(() => shutdown(0), idleMs) : null;
}

const server = createServer((sock) => {
  pending++;
  armIdle();
  const chunks: Buffer[] = [];
  let size = 0;
  let started = false;
  // One byte a second tells the launcher the server is alive while the request waits its turn.
  const alive = setInterval(() => {
    if (!sock.destroyed) sock.write('.');
  }, 1000);
  const finish = () => {
    clearInterval(alive);
    pending--;
    armIdle();
  };
  sock.on('error', () => {
    // The client went away (killed, or timed out on us): its reply is dropped.
  });
  sock.on('close', () => {
    if (!started) finish();
  });
  sock.on('data', (data) => {
    if (started) return;
    chunks.push(data);
    size += data.length;
    const all = Buffer.concat(chunks);
    if (all.length < 4) return;
    const len = all.readUInt32LE(0);
    if (len > MAX_REQUEST) {
      started = true;
      finish();
      sock.destroy();
      return;
    }
    if (all.length < 4 + len) return;
    started = true;
    const req = parseRequest(all.subarray(4, 4 + len));
    queue = queue.then(async () => {
      try {
        if (!req) {
          reply(sock, 2, KIND_EXIT, '', '', 'osprey: malformed request to the compile server\n');
        } else if (stale || req.compiler !== loadedCompiler || !bundleIsFresh()) {
          stale = true;
          server.close();
          removeSocket();
          reply(sock, 0, KIND_STALE);
        } else if (!sock.destroyed) {
          const r = await serve(req);
          reply(sock, r.status, r.kind, r.exec, r.stdout, r.stderr);
          if (++served >= RETIRE_AFTER_REQUESTS || process.memoryUsage.rss() > RETIRE_ABOVE_RSS) {
            // Retiring works like being stale: no new connections, exit once the queue is empty.
            stale = true;
            server.close();
            removeSocket();
          }
        }
      } catch (e) {
        reply(sock, 0, KIND_FALLBACK, '', '', '');
        process.stderr.write(`osprey compile server: ${(e as Error).stack ?? String(e)}\n`);
      } finally {
        finish();
        if (stale && pending === 0) setTimeout(() => shutdown(0), 100);
      }
    });
  });
});

server.on('error', (e) => {
  process.stderr.write(`osprey compile server: ${e.message}\n`);
  shutdown(1);
});
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => shutdown(0));

// The launcher holds the start lock and removed any dead socket file: bind, then say so.
server.listen(socketPath, () => {
  try {
    boundIno = lstatSync(socketPath).ino;
    writeFileSync(pidFile, `${process.pid}\n`);
  } catch {
    shutdown(1);
  }
  if (readyFdArg !== undefined) {
    const fd = Number(readyFdArg);
    try {
      writeSync(fd, 'R');
      closeSync(fd);
    } catch {
      // the launcher gave up waiting: it compiles directly, and the next build finds us
    }
  }
  armIdle();
});
