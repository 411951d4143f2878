/**
 * The peer of the client probes: a Node `ws` server on loopback, independent of the library under
 * test.
 *   /push                       sends "abi-probe:push N" every 10 ms (so messages are in flight
 *                               when a client closes) and echoes what it receives;
 *   /digest/TOKEN               records the length and SHA-256 of every message under TOKEN
 *                               and answers nothing (the integrity check of websocketSend);
 *   /digests/TOKEN/COUNT/WAIT   answers "abi-probe:digests LEN SHA256;LEN SHA256;..." once COUNT
 *                               messages arrived on /digest/TOKEN or WAIT ms passed: the probe
 *                               asks with its raw client, so the runtime's receive path plays no
 *                               part in judging what it sent;
 *   /integrity/LIMIT/TOKEN[/nul|/binary]
 *                               sends every integrity message (integrity.ts; UTF-8 text, text
 *                               with NUL bytes, or binary frames), each announced by a text
 *                               frame "abi-probe:expect N LEN SHA256", then, when LIMIT > 0, the
 *                               message of LIMIT bytes and one of LIMIT + 1, and records the Close
 *                               code the client answers with under TOKEN;
 *   /closecode/TOKEN/WAIT_MS    answers "abi-probe:closecode CODE" (or "none") once the
 *                               connection of TOKEN has closed, waiting up to WAIT_MS;
 *   /closeafter/bye|vanish      on "abi-probe:go", sends "abi-probe:event 0".."abi-probe:event 2", then
 *                               closes with 1000 "bye" (bye) or, once the messages were written,
 *                               drops the TCP connection without a close frame (vanish): the
 *                               client close events of websocketOnClose;
 *   anything else               echoes.
 */
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { INTEGRITY_LIMIT, INTEGRITY_SIZES, integrityMessage, type IntegrityContent } from './integrity.ts';

export interface EchoServer {
  url: string;
  close(): Promise<void>;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** State by token, bounded: a run has a handful of integrity probes per library. */
const MAX_TOKENS = 256;
const MAX_DIGESTS = 64;

/** Remembers at most MAX_TOKENS entries, dropping the oldest. */
function remember<T>(map: Map<string, T>, key: string, value: T): void {
  if (!map.has(key) && map.size >= MAX_TOKENS) map.delete(map.keys().next().value as string);
  map.set(key, value);
}

export async function startEchoServer(): Promise<EchoServer> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  const timers = new Set<NodeJS.Timeout>();
  const wake = (waiters: Map<string, (() => void)[]>, token: string): void => {
    const list = waiters.get(token) ?? [];
    waiters.delete(token);
    for (const w of list) w();
  };
  const closeCodes = new Map<string, number>();
  const closeWaiters = new Map<string, (() => void)[]>();
  const recordClose = (token: string, code: number): void => {
    remember(closeCodes, token, code);
    wake(closeWaiters, token);
  };
  const digests = new Map<string, string[]>();
  const digestWaiters = new Map<string, (() => void)[]>();
  // The integrity messages are the same for every connection: built once per server.
  const messages = new Map<string, { bytes: Buffer; sha: string }>();
  const message = (n: number, i: number, content: IntegrityContent): { bytes: Buffer; sha: string } => {
    const key = `${n}/${i}/${content}`;
    let m = messages.get(key);
    if (!m) {
      const bytes = integrityMessage(n, i, content);
      m = { bytes, sha: sha256(bytes) };
      remember(messages, key, m);
    }
    return m;
  };
  /** Calls `answer` once `ready()` holds (checked whenever `waiters` of `token` wake) or after `waitMs`. */
  const whenReady = (waiters: Map<string, (() => void)[]>, token: string, waitMs: number, ready: () => boolean, answer: () => void): void => {
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      timers.delete(timer);
      answer();
    };
    const timer = setTimeout(finish, Math.min(waitMs, 10_000));
    timers.add(timer);
    if (ready()) return finish();
    const check = (): void => {
      if (ready()) finish();
      else if (!done) waiters.set(token, [...(waiters.get(token) ?? []), check]);
    };
    waiters.set(token, [...(waiters.get(token) ?? []), check]);
  };
  wss.on('error', () => {});
  wss.on('connection', (socket: WebSocket, req) => {
    socket.on('error', () => {});
    const url = req.url ?? '/';
    const integrity = /^\/integrity\/(\d+)\/([\w-]+)(?:\/(nul|binary))?$/.exec(url);
    const closecode = /^\/closecode\/([\w-]+)\/(\d+)$/.exec(url);
    const digest = /^\/digest\/([\w-]+)$/.exec(url);
    const digestQuery = /^\/digests\/([\w-]+)\/(\d+)\/(\d+)$/.exec(url);
    if (integrity) {
      const limit = Number(integrity[1]);
      const token = integrity[2];
      const content: IntegrityContent = integrity[3] === 'nul' ? 'nul' : integrity[3] === 'binary' ? 'binary' : 'utf8';
      const binary = content === 'binary';
      socket.on('close', (code) => recordClose(token, code));
      const sizes: number[] = [...INTEGRITY_SIZES, ...(limit > 0 ? [limit] : [])];
      sizes.forEach((n, i) => {
        const m = message(n, i, content);
        socket.send(`abi-probe:expect ${i} ${n} ${m.sha}`);
        socket.send(m.bytes, { binary });
      });
      if (limit > 0) socket.send(message(limit + 1, 999, content).bytes, { binary });
      return;
    }
    if (digest) {
      const token = digest[1];
      remember(digests, token, []);
      socket.on('message', (data: Buffer, isBinary) => {
        const list = digests.get(token);
        if (list === undefined || list.length >= MAX_DIGESTS) return;
        list.push(`${data.length} ${sha256(data)}${isBinary ? ' binary' : ''}`);
        wake(digestWaiters, token);
      });
      return;
    }
    if (digestQuery) {
      const [, token, count, waitMs] = digestQuery;
      whenReady(digestWaiters, token, Number(waitMs), () => (digests.get(token)?.length ?? 0) >= Number(count), () => {
        if (socket.readyState === socket.OPEN) socket.send(`abi-probe:digests ${(digests.get(token) ?? []).join(';')}`);
      });
      return;
    }
    const closeAfter = /^\/closeafter\/(bye|vanish)$/.exec(url);
    if (closeAfter) {
      const vanish = closeAfter[1] === 'vanish';
      let started = false;
      socket.on('message', (data) => {
        if (started || data.toString() !== 'abi-probe:go') return;
        started = true;
        for (let i = 0; i < 3; i++) {
          const last = i === 2;
          socket.send(`abi-probe:event ${i}`, () => {
            // The messages are in the kernel's buffer: what follows cannot overtake them.
            if (!last || socket.readyState !== socket.OPEN) return;
            if (vanish) socket.terminate();
            else socket.close(1000, 'bye');
          });
        }
      });
      return;
    }
    if (closecode) {
      const [, token, waitMs] = closecode;
      whenReady(closeWaiters, token, Number(waitMs), () => closeCodes.has(token), () => {
        if (socket.readyState === socket.OPEN) socket.send(`abi-probe:closecode ${closeCodes.get(token) ?? 'none'}`);
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
  // Built before any probe runs: on a loaded machine even ~0.1 s of generation inside a connection
  // handler delays other probes' handshakes by seconds.
  for (const content of ['utf8', 'nul', 'binary'] as const) {
    INTEGRITY_SIZES.forEach((n, i) => message(n, i, content));
    message(INTEGRITY_LIMIT, INTEGRITY_SIZES.length, content);
    message(INTEGRITY_LIMIT + 1, 999, content);
  }
  const { port } = wss.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        closeWaiters.clear();
        digestWaiters.clear();
        for (const t of timers) clearTimeout(t);
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}
