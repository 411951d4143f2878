/**
 * Child-process plumbing shared by every peer launcher: spawn a peer in its own process group,
 * wait for its "listening on ws://HOST:PORT/PATH" line, and stop it by signalling the whole group
 * and awaiting its exit. Servers and clients alike are loopback-only.
 *
 * Every launcher in tests/peers/ returns a PeerProcess (servers) or a ClientProcess (one-shot
 * clients); callers must `stop()` what they start (afterEach/afterAll), and a process-exit hook
 * kills any group left behind by a crashed test file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { once } from 'node:events';

export const LOOPBACK = '127.0.0.1';

/** The ready line every peer script prints (our C tools print the same shape). */
export const LISTENING_LINE = /listening on (wss?:\/\/([^\s:/]+|\[[^\]]+\]):(\d+)(\/\S*)?)/;

export interface SpawnOptions {
  /** A short name for messages ("python-echo", "ws-echo-server", ...). */
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** How long to wait for the listening line; 10 s by default. */
  readyTimeoutMs?: number;
  /** Keep the child's stdin as an open pipe (our C tools stop on stdin EOF). */
  pipeStdin?: boolean;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running server peer. */
export interface PeerProcess {
  name: string;
  pid: number;
  host: string;
  port: number;
  /** The URL from the listening line, e.g. ws://127.0.0.1:40123/ */
  url: string;
  /** Every stdout and stderr line seen so far (stderr lines are prefixed "stderr: "). */
  output: string[];
  child: ChildProcess;
  /** Resolves when the process exits (on its own or after stop()). */
  exited: Promise<Exit>;
  /** SIGTERM the process group, SIGKILL after graceMs (default 2000), and await exit. */
  stop(opts?: { signal?: NodeJS.Signals; graceMs?: number }): Promise<Exit>;
}

/** A one-shot client peer: no ready line, runs until it exits. */
export interface ClientProcess {
  name: string;
  pid: number;
  output: string[];
  stdoutLines: string[];
  child: ChildProcess;
  exited: Promise<Exit>;
  stop(opts?: { signal?: NodeJS.Signals; graceMs?: number }): Promise<Exit>;
}

const liveGroups = new Set<number>();
process.once('exit', () => {
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

/** A port that was free a moment ago (for peers that cannot take port 0). */
export async function freePort(host = LOOPBACK): Promise<number> {
  const srv = createServer();
  srv.listen(0, host);
  await once(srv, 'listening');
  const addr = srv.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function startChild(opts: SpawnOptions): {
  child: ChildProcess;
  output: string[];
  stdoutLines: string[];
  exited: Promise<Exit>;
  onLine: (fn: (line: string, stream: 'stdout' | 'stderr') => void) => void;
  stop: (o?: { signal?: NodeJS.Signals; graceMs?: number }) => Promise<Exit>;
} {
  const child = spawn(opts.command, opts.args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    // A process group of its own, so stop() reaches grandchildren too.
    detached: true,
    stdio: [opts.pipeStdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`${opts.name}: spawn ${opts.command} failed`);
  const pgid = child.pid;
  liveGroups.add(pgid);
  const output: string[] = [];
  const stdoutLines: string[] = [];
  const listeners: ((line: string, stream: 'stdout' | 'stderr') => void)[] = [];
  for (const stream of ['stdout', 'stderr'] as const) {
    let partial = '';
    child[stream]!.setEncoding('utf8');
    child[stream]!.on('data', (chunk: string) => {
      partial += chunk;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl).replace(/\r$/, '');
        partial = partial.slice(nl + 1);
        output.push(stream === 'stderr' ? `stderr: ${line}` : line);
        if (stream === 'stdout') stdoutLines.push(line);
        for (const l of listeners) l(line, stream);
      }
    });
  }
  // stdin errors (EPIPE after the child exits) must not crash the test process.
  child.stdin?.on('error', () => {});
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      liveGroups.delete(pgid);
      resolve({ code, signal });
    });
    child.once('error', () => {
      liveGroups.delete(pgid);
      resolve({ code: -1, signal: null });
    });
  });
  let stopping: Promise<Exit> | undefined;
  const stop = (o: { signal?: NodeJS.Signals; graceMs?: number } = {}): Promise<Exit> => {
    if (stopping) return stopping;
    stopping = (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      const kill = (sig: NodeJS.Signals) => {
        try {
          process.kill(-pgid, sig);
        } catch {
          /* group already gone */
        }
      };
      kill(o.signal ?? 'SIGTERM');
      const timer = setTimeout(() => kill('SIGKILL'), o.graceMs ?? 2000);
      const r = await exited;
      clearTimeout(timer);
      // Grandchildren that ignored the signal.
      kill('SIGKILL');
      return r;
    })();
    return stopping;
  };
  return { child, output, stdoutLines, exited, onLine: (fn) => listeners.push(fn), stop };
}

/** Spawns a server peer and resolves once it printed its listening line. */
export async function spawnPeer(opts: SpawnOptions): Promise<PeerProcess> {
  const c = startChild(opts);
  const timeoutMs = opts.readyTimeoutMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    const m = await new Promise<RegExpMatchArray>((resolve, reject) => {
      for (const line of c.output) {
        const mm = LISTENING_LINE.exec(line);
        if (mm) return resolve(mm);
      }
      c.onLine((line) => {
        const mm = LISTENING_LINE.exec(line);
        if (mm) resolve(mm);
      });
      c.exited.then((e) =>
        reject(new Error(`${opts.name} exited (code ${e.code}, signal ${e.signal}) before listening:\n${c.output.join('\n')}`)),
      );
      timer = setTimeout(
        () => reject(new Error(`${opts.name}: no "listening on ws://..." line within ${timeoutMs} ms:\n${c.output.join('\n')}`)),
        timeoutMs,
      );
    });
    const host = m[2]!.replace(/^\[|\]$/g, '');
    return {
      name: opts.name,
      pid: c.child.pid!,
      host,
      port: Number(m[3]),
      url: m[1]!.endsWith('/') || m[4] ? m[1]! : `${m[1]}/`,
      output: c.output,
      child: c.child,
      exited: c.exited,
      stop: c.stop,
    };
  } catch (e) {
    await c.stop({ signal: 'SIGKILL' });
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** Spawns a one-shot client peer. */
export function spawnClient(opts: Omit<SpawnOptions, 'readyTimeoutMs'>): ClientProcess {
  const c = startChild(opts);
  return {
    name: opts.name,
    pid: c.child.pid!,
    output: c.output,
    stdoutLines: c.stdoutLines,
    child: c.child,
    exited: c.exited,
    stop: c.stop,
  };
}

/** Awaits `p` for at most `ms`; rejects with `what` on timeout. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
