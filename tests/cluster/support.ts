/**
 * What the cluster tests need around the Osprey nodes: a real redis-server on a free loopback
 * port with a temporary directory (no persistence), WebSocket clients that collect what they
 * receive, and waiting with a deadline.
 */
import { Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { freePort, spawnClient, type ClientProcess } from '../peers/process.js';

export interface RedisServer {
  port: number;
  proc: ClientProcess;
  /** SIGKILL: the abrupt end a crash or an OOM kill gives. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisOptions {
  port?: number;
  /** requirepass */
  password?: string;
  /** TLS only (the plain port disabled): certificate and key for the server */
  tls?: { cert: string; key: string; ca: string };
}

/**
 * Resolves once 127.0.0.1:port is up within `ms`, or rejects. Plain redis (`ping`): the server
 * must answer a RESP PING (+PONG, or -NOAUTH with a password: either way it is up). TLS-only: a
 * TCP connection that opens is enough (no handshake here).
 */
async function probeRedis(port: number, ms: number, ping: boolean): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const s = new Socket();
    const finish = (error?: Error) => {
      clearTimeout(timer);
      s.destroy();
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(() => finish(new Error('no answer')), ms);
    s.once('error', (e) => finish(e));
    s.connect(port, '127.0.0.1', () => {
      if (ping) s.write('PING\r\n');
      else finish();
    });
    if (ping) s.once('data', (d) => finish(/^[+-]/.test(d.toString()) ? undefined : new Error(`unexpected answer ${d.toString()}`)));
  });
}

export async function startRedis(opts: RedisOptions = {}): Promise<RedisServer> {
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'osprey-redis-'));
  const args = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'];
  if (opts.tls) {
    args.push('--port', '0', '--tls-port', String(port), '--tls-cert-file', opts.tls.cert, '--tls-key-file', opts.tls.key,
      '--tls-ca-cert-file', opts.tls.ca, '--tls-auth-clients', 'no');
  } else {
    args.push('--port', String(port));
  }
  if (opts.password) args.push('--requirepass', opts.password);
  const proc = spawnClient({ name: 'redis-server', command: 'redis-server', args });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await probeRedis(port, 500, !opts.tls);
      break;
    } catch (e) {
      if (proc.child.exitCode !== null || Date.now() > deadline) {
        await proc.stop({ signal: 'SIGKILL' });
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`redis-server did not start on port ${port}: ${String(e)}\n${proc.output.join('\n')}`);
      }
      await sleep(50);
    }
  }
  return {
    port,
    proc,
    async kill() {
      await proc.stop({ signal: 'SIGKILL' });
      rmSync(dir, { recursive: true, force: true });
    },
    async stop() {
      await proc.stop({ signal: 'SIGTERM', graceMs: 2000 });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `cond` every 20 ms until it holds; throws with `what()` after `ms`. */
export async function waitFor(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what()}`);
    await sleep(20);
  }
}

/** A WebSocket client that keeps every message it receives, in order: text in `got`, binary in
 * `gotBinary`. */
export interface Client {
  ws: WebSocket;
  got: string[];
  gotBinary: Buffer[];
  closed: boolean;
  /** The connection id its node gave it ("whoami"). */
  id: bigint;
  send(text: string): void;
  /** Sends a command and resolves with the first new message that starts with one of `prefixes`. */
  ask(text: string, prefixes: string[], ms?: number): Promise<string>;
  close(): void;
}

export async function connect(port: number): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/room`);
  const c: Client = {
    ws,
    got: [],
    gotBinary: [],
    closed: false,
    id: 0n,
    send: (t) => ws.send(t),
    async ask(text, prefixes, ms = 5000) {
      const from = c.got.length;
      ws.send(text);
      let found: string | undefined;
      await waitFor(
        () => (found = c.got.slice(from).find((m) => prefixes.some((p) => m.startsWith(p)))) !== undefined,
        ms,
        () => `an answer to ${text} on port ${port}; got ${JSON.stringify(c.got.slice(from))}`,
      );
      return found!;
    },
    close: () => ws.close(),
  };
  ws.on('message', (d, isBinary) => {
    const bytes = Array.isArray(d) ? Buffer.concat(d) : Buffer.from(d as Buffer);
    if (isBinary) c.gotBinary.push(bytes);
    else c.got.push(bytes.toString());
  });
  ws.on('close', () => {
    c.closed = true;
  });
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const id = await c.ask('whoami', ['id:']);
  c.id = BigInt(id.slice(3));
  return c;
}
