/**
 * The peer of the client probes: a Node `ws` server on loopback, independent of the library under
 * test.
 *   /push                       sends "abi-probe:push N" every 10 ms (so messages are in flight
 *                               when a client closes) and echoes what it receives;
 *   /digest                     answers every message with "abi-probe:digest N LEN SHA256" (the
 *                               integrity check of websocketSend: what arrived, without sending
 *                               it back through the client's receive path);
 *   /integrity/LIMIT/TOKEN      sends every integrity message (integrity.ts), each announced by
 *                               "abi-probe:expect N LEN SHA256", then, when LIMIT > 0, the
 *                               message of LIMIT bytes and one of LIMIT + 1, and records the Close
 *                               code the client answers with under TOKEN;
 *   /closecode/TOKEN/WAIT_MS    answers "abi-probe:closecode CODE" (or "none") once the
 *                               connection of TOKEN has closed, waiting up to WAIT_MS;
 *   anything else               echoes.
 */
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { INTEGRITY_SIZES, integrityMessage } from './integrity.ts';

export interface EchoServer {
  url: string;
  close(): Promise<void>;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Close codes by token, bounded: a run has at most a few integrity probes per library. */
const MAX_TOKENS = 256;

export async function startEchoServer(): Promise<EchoServer> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  const timers = new Set<NodeJS.Timeout>();
  const closeCodes = new Map<string, number>();
  const closeWaiters = new Map<string, (() => void)[]>();
  const recordClose = (token: string, code: number): void => {
    if (closeCodes.size >= MAX_TOKENS) closeCodes.delete(closeCodes.keys().next().value as string);
    closeCodes.set(token, code);
    for (const wake of closeWaiters.get(token) ?? []) wake();
    closeWaiters.delete(token);
  };
  wss.on('error', () => {});
  wss.on('connection', (socket: WebSocket, req) => {
    socket.on('error', () => {});
    const url = req.url ?? '/';
    const integrity = /^\/integrity\/(\d+)\/([\w-]+)$/.exec(url);
    const closecode = /^\/closecode\/([\w-]+)\/(\d+)$/.exec(url);
    if (integrity) {
      const limit = Number(integrity[1]);
      const token = integrity[2];
      socket.on('close', (code) => recordClose(token, code));
      const sizes: number[] = [...INTEGRITY_SIZES, ...(limit > 0 ? [limit] : [])];
      sizes.forEach((n, i) => {
        const m = integrityMessage(n, i);
        socket.send(`abi-probe:expect ${i} ${n} ${sha256(m)}`);
        socket.send(m, { binary: false });
      });
      if (limit > 0) socket.send(integrityMessage(limit + 1, 999), { binary: false });
      return;
    }
    if (closecode) {
      const token = closecode[1];
      const waitMs = Math.min(Number(closecode[2]), 10_000);
      const answer = (): void => {
        clearTimeout(timer);
        timers.delete(timer);
        const code = closeCodes.get(token);
        if (socket.readyState === socket.OPEN) socket.send(`abi-probe:closecode ${code ?? 'none'}`);
      };
      const timer = setTimeout(answer, waitMs);
      timers.add(timer);
      if (closeCodes.has(token)) answer();
      else closeWaiters.set(token, [...(closeWaiters.get(token) ?? []), answer]);
      return;
    }
    if (url === '/digest') {
      let n = 0;
      socket.on('message', (data: Buffer, isBinary) => {
        if (socket.readyState !== socket.OPEN) return;
        const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
        socket.send(`abi-probe:digest ${n++} ${bytes.length} ${sha256(bytes)}${isBinary ? ' binary' : ''}`);
      });
      return;
    }
    socket.on('message', (data, isBinary) => {
      if (socket.readyState === socket.OPEN) socket.send(data, { binary: isBinary });
    });
    if (url.startsWith('/push')) {
      let n = 0;
      const timer = setInterval(() => {
        // Bounded: a probe never needs more than a few seconds of traffic.
        if (socket.readyState !== socket.OPEN || n >= 1000) {
          clearInterval(timer);
          timers.delete(timer);
          return;
        }
        socket.send(`abi-probe:push ${n++}`);
      }, 10);
      timers.add(timer);
      socket.on('close', () => {
        clearInterval(timer);
        timers.delete(timer);
      });
    }
  });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const { port } = wss.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}
