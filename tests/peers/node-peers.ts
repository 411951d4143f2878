/**
 * Launchers for the Node peers: an npm `ws` echo server, a uWebSockets.js echo server (both as
 * child processes, so they never share an event loop with the test or a load generator), and an
 * in-process `ws` client helper for interop tests.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { spawnPeer, LOOPBACK, withTimeout, type PeerProcess } from './process.ts';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

export interface NodeEchoServerOptions {
  host?: string;
  port?: number;
  /** ws: the only endpoint path (default: any). uWS: route pattern (default "/*"). */
  path?: string;
  maxPayload?: number;
}

export function startWsEchoServer(opts: NodeEchoServerOptions = {}): Promise<PeerProcess> {
  const args = [here('./ws-echo-server.mjs'), '--host', opts.host ?? LOOPBACK, '--port', String(opts.port ?? 0)];
  if (opts.path !== undefined) args.push('--path', opts.path);
  if (opts.maxPayload !== undefined) args.push('--max-payload', String(opts.maxPayload));
  return spawnPeer({ name: 'ws-echo-server', command: process.execPath, args });
}

export interface UwsEchoServerOptions extends NodeEchoServerOptions {
  /** Text sent to each client right after its handshake. */
  pushOnOpen?: string;
  /** Push a text message to every open client every N ms. */
  pushIntervalMs?: number;
  /** The periodic message (default "tick N"). */
  pushMessage?: string;
}

/** True when uWebSockets.js loads its native addon in this process (not the JS fallback). */
export function uwsIsNative(): boolean {
  const uws = createRequire(import.meta.url)('@trufflesuite/uws-js-unofficial') as { App: unknown };
  return /native code/.test(String(uws.App));
}

/**
 * Starts uws-echo-server.mjs. Throws if the child did not report `uws native: true` (the script
 * itself exits with status 3 when the native binary did not load).
 */
export async function startUwsEchoServer(opts: UwsEchoServerOptions = {}): Promise<PeerProcess> {
  const args = [here('./uws-echo-server.mjs'), '--host', opts.host ?? LOOPBACK, '--port', String(opts.port ?? 0)];
  if (opts.path !== undefined) args.push('--path', opts.path);
  if (opts.maxPayload !== undefined) args.push('--max-payload', String(opts.maxPayload));
  if (opts.pushOnOpen !== undefined) args.push('--push-on-open', opts.pushOnOpen);
  if (opts.pushIntervalMs !== undefined) args.push('--push-interval-ms', String(opts.pushIntervalMs));
  if (opts.pushMessage !== undefined) args.push('--push-message', opts.pushMessage);
  const peer = await spawnPeer({ name: 'uws-echo-server', command: process.execPath, args });
  if (!peer.output.includes('uws native: true')) {
    await peer.stop();
    throw new Error(`uws-echo-server: native uWebSockets.js binary not confirmed:\n${peer.output.join('\n')}`);
  }
  return peer;
}

export interface WsMessage {
  data: Buffer;
  isBinary: boolean;
}

/** An in-process `ws` client with a message queue; every socket has an 'error' listener. */
export interface WsClient {
  ws: WebSocket;
  /** Errors the socket reported (protocol violations by the server land here). */
  errors: Error[];
  send(data: string | Buffer): void;
  /** The next message, waiting at most timeoutMs (default 2000). */
  next(timeoutMs?: number): Promise<WsMessage>;
  /** Sends a Close (default 1000) and resolves with the code/reason the peer answered. */
  close(code?: number, reason?: string): Promise<{ code: number; reason: string }>;
  /** Resolves when the connection is closed (either side). */
  closed: Promise<{ code: number; reason: string }>;
}

export async function connectWsClient(
  url: string,
  opts: { protocols?: string[]; timeoutMs?: number; maxPayload?: number; headers?: Record<string, string> } = {},
): Promise<WsClient> {
  const ws = new WebSocket(url, opts.protocols ?? [], {
    perMessageDeflate: false,
    maxPayload: opts.maxPayload ?? 16 * 1024 * 1024,
    headers: opts.headers,
    handshakeTimeout: opts.timeoutMs ?? 5000,
  });
  const errors: Error[] = [];
  const queue: WsMessage[] = [];
  const waiters: ((m: WsMessage) => void)[] = [];
  ws.on('error', (e) => errors.push(e));
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    const m = { data: Buffer.from(data), isBinary };
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    }),
    opts.timeoutMs ?? 5000,
    `ws connect ${url}`,
  ).catch((e) => {
    ws.terminate();
    throw e;
  });
  return {
    ws,
    errors,
    send: (data) => ws.send(data),
    next: (timeoutMs = 2000) => {
      const m = queue.shift();
      if (m) return Promise.resolve(m);
      let w!: (m: WsMessage) => void;
      const p = new Promise<WsMessage>((resolve) => {
        w = resolve;
        waiters.push(w);
      });
      return withTimeout(p, timeoutMs, 'ws client message').finally(() => {
        const i = waiters.indexOf(w);
        if (i >= 0) waiters.splice(i, 1);
      });
    },
    close: async (code = 1000, reason = '') => {
      if (ws.readyState === WebSocket.OPEN) ws.close(code, reason);
      const r = await withTimeout(closed, 5000, 'ws close').catch((e) => {
        ws.terminate();
        throw e;
      });
      return r;
    },
    closed,
  };
}

/** Connects, sends each message, collects one reply per message, closes with 1000. */
export async function runWsClient(url: string, messages: (string | Buffer)[], timeoutMs = 2000): Promise<WsMessage[]> {
  const c = await connectWsClient(url);
  try {
    const replies: WsMessage[] = [];
    for (const m of messages) c.send(m);
    for (let i = 0; i < messages.length; i++) replies.push(await c.next(timeoutMs));
    await c.close();
    return replies;
  } finally {
    c.ws.terminate();
  }
}
