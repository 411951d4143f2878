/**
 * The interop matrix (docs/INTEROP.md): our compiled Osprey CLIENT against independent servers,
 * and our compiled Osprey SERVER against independent clients, one describe per cell. Every cell
 * runs the same exchange: connect, three text messages echoed back (ASCII, multi-byte UTF-8,
 * a 70 KB message mixing both), then a clean close with 1000.
 *
 * Every cell runs through a wire tap: a loopback TCP relay between the two peers that parses both
 * directions, so each cell checks on the wire, whoever the peers are: a 101 without
 * Sec-WebSocket-Extensions, client frames masked and server frames not, RSV bits 0, the echoed
 * payloads byte for byte, the closing handshake (Close 1000 from the side that closes, Close 1000
 * back), no data after a Close, and both directions ended by FIN (no reset). Where our runtime is
 * the server it must also end TCP first (RFC 6455 §7.1.1).
 *
 * Distinctive cases stay in server.test.ts (length boundaries, binary, fragmentation, ping,
 * 1 MiB, close codes, the relay, websocketStopServer), client.test.ts (uWS pushes) and
 * errors.test.ts; the browser chat room is tests/browser/chat.test.ts.
 */
import { createRequire } from 'node:module';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectWsClient,
  freePort,
  runPythonClient,
  spawnClient,
  spawnPeer,
  startPythonEchoServer,
  startUwsEchoServer,
  startWsEchoServer,
  uwsIsNative,
  withTimeout,
  type PeerProcess,
} from '../peers/index.ts';
import { FrameParser, OP, type Frame } from '../conformance/wsraw.ts';
import { launchChromium, type Browser } from '../browser/chromium.ts';
import { workspace, type Workspace } from './compile.ts';
import { echoServer, sendingClient } from './programs.ts';

// ---- the exchange every cell runs ---------------------------------------------------------------

const ASCII = 'hello from the interop matrix';
const UTF8 = 'κόσμε — 𤭢 — 日本語 — naïve — U+FFFD \ufffd';
/** ~70 KB (71 680 bytes): position-dependent ASCII with a 2-byte and a 4-byte character every 64 bytes. */
const BIG = (() => {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  let s = '';
  for (let i = 0; Buffer.byteLength(s) < 71_680 - 64; i++) {
    let chunk = '';
    for (let j = 0; j < 58; j++) chunk += alphabet[(i * 7 + j * 13) % alphabet.length];
    s += `${chunk}é𝄞`;
  }
  while (Buffer.byteLength(s) < 71_680) s += 'z';
  return s;
})();
const MESSAGES = [ASCII, UTF8, BIG];

// ---- the wire tap -------------------------------------------------------------------------------

interface Direction {
  frames: Frame[];
  head: string;
  /** 'fin' when this side ended its stream, 'error: …' on a reset/error. */
  ended: string | null;
  endedAt: number;
}

interface TapConnection {
  /** client → server */
  up: Direction;
  /** server → client */
  down: Direction;
  done: Promise<void>;
}

interface Tap {
  port: number;
  url(path: string): string;
  connections: TapConnection[];
  close(): Promise<void>;
}

function direction(): Direction & { push(b: Buffer): void } {
  const parser = new FrameParser();
  let pending = Buffer.alloc(0);
  let inFrames = false;
  const d = {
    frames: [] as Frame[],
    head: '',
    ended: null as string | null,
    endedAt: 0,
    push(chunk: Buffer) {
      if (inFrames) {
        d.frames.push(...parser.push(chunk));
        return;
      }
      pending = Buffer.concat([pending, chunk]);
      const end = pending.indexOf('\r\n\r\n');
      if (end < 0) return;
      d.head = pending.subarray(0, end).toString('latin1');
      inFrames = true;
      d.frames.push(...parser.push(pending.subarray(end + 4)));
    },
  };
  return d;
}

/** A loopback relay to 127.0.0.1:`target` that records both directions of every connection. */
async function startTap(target: number): Promise<Tap> {
  const connections: TapConnection[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: target, allowHalfOpen: true });
    sockets.add(client).add(upstream);
    const up = direction();
    const down = direction();
    const pipe = (from: Socket, to: Socket, d: ReturnType<typeof direction>) =>
      new Promise<void>((resolve) => {
        from.on('data', (b: Buffer) => {
          d.push(b);
          to.write(b);
        });
        from.on('end', () => {
          d.ended ??= 'fin';
          d.endedAt = performance.now();
          to.end();
          resolve();
        });
        from.on('error', (e) => {
          d.ended ??= `error: ${e.message}`;
          d.endedAt = performance.now();
          to.destroy();
          resolve();
        });
        from.on('close', () => {
          if (!d.ended) {
            d.ended = 'closed without FIN';
            d.endedAt = performance.now();
          }
          resolve();
        });
      });
    const done = Promise.all([pipe(client, upstream, up), pipe(upstream, client, down)]).then(() => {
      client.destroy();
      upstream.destroy();
    });
    connections.push({ up, down, done });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    port,
    url: (path) => `ws://127.0.0.1:${port}${path}`,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const header = (head: string, name: string) =>
  head
    .split('\r\n')
    .slice(1)
    .map((l) => l.split(':'))
    .filter(([k]) => k!.trim().toLowerCase() === name)
    .map(([, ...v]) => v.join(':').trim());

/** The text messages of one direction, reassembled from their frames (pings/pongs skipped). */
function textMessages(d: Direction): string[] {
  const out: string[] = [];
  let parts: Buffer[] | null = null;
  for (const f of d.frames) {
    if (f.opcode === OP.TEXT) parts = [f.payload];
    else if (f.opcode === OP.CONT && parts) parts.push(f.payload);
    else continue;
    if (f.fin) {
      out.push(Buffer.concat(parts!).toString('utf8'));
      parts = null;
    }
  }
  return out;
}

/** The wire checks of every cell: handshake, masking, echoes, closing handshake, TCP ends. */
async function expectCleanExchange(tap: Tap, o: { closer: 'client' | 'server'; ourServer: boolean }) {
  expect(tap.connections, 'one connection through the tap').toHaveLength(1);
  const c = tap.connections[0]!;
  await withTimeout(c.done, 5000, 'both directions of the tapped connection to end');

  expect(c.up.head).toMatch(/^GET \S+ HTTP\/1\.1$/m);
  expect(c.down.head).toMatch(/^HTTP\/1\.1 101 /);
  expect(header(c.down.head, 'sec-websocket-extensions'), 'S-H11: no extension negotiated').toEqual([]);

  for (const f of c.up.frames) {
    expect(f.masked, 'client frames are masked').toBe(true);
    expect(f.rsv).toBe(0);
  }
  for (const f of c.down.frames) {
    expect(f.masked, 'server frames are not masked').toBe(false);
    expect(f.rsv).toBe(0);
  }

  // The data: each message once each way, as text, byte for byte and in order.
  for (const d of [c.up, c.down]) {
    const payloads = textMessages(d);
    expect(payloads.length).toBe(MESSAGES.length);
    expect(payloads.map((p) => Buffer.byteLength(p))).toEqual(MESSAGES.map((m) => Buffer.byteLength(m)));
    expect(payloads).toEqual(MESSAGES);
  }

  // The closing handshake: Close 1000 from the closer, Close 1000 back, nothing after either.
  const [first, second] = o.closer === 'client' ? [c.up, c.down] : [c.down, c.up];
  for (const d of [first, second]) {
    const closes = d.frames.filter((f) => f.opcode === OP.CLOSE);
    expect(closes.map((f) => f.closeCode)).toEqual([1000]);
    expect(d.frames[d.frames.length - 1]!.opcode, 'the Close is the last frame').toBe(OP.CLOSE);
  }
  expect(c.up.ended).toBe('fin');
  expect(c.down.ended).toBe('fin');
  if (o.ourServer) expect(c.down.endedAt, 'our server ends TCP first (RFC 6455 §7.1.1)').toBeLessThanOrEqual(c.up.endedAt);
}

// ---- our client against independent servers ----------------------------------------------------

let ws: Workspace;
let ourServer: PeerProcess;
let ourServerPort: number;

beforeAll(async () => {
  ws = workspace();
  ourServerPort = await freePort();
  const exe = await ws.build('matrix_echo_server', echoServer(ourServerPort, '/echo', 120_000));
  ourServer = await spawnPeer({ name: 'osprey-echo-server', command: exe, args: [] });
});

afterAll(async () => {
  await ourServer?.stop();
  ws?.dispose();
});

/** Builds and runs the compiled client through a tap to `serverPort`; returns its output. */
async function runOurClient(name: string, serverPort: number, path: string) {
  const tap = await startTap(serverPort);
  try {
    const exe = await ws.build(name, sendingClient(tap.url(path), MESSAGES, 1500));
    const client = spawnClient({ name, command: exe, args: [] });
    const exit = await withTimeout(client.exited, 20_000, `${name} to exit`);
    expect(exit.code, client.output.join('\n')).toBe(0);
    const lines = client.stdoutLines;
    expect(lines[0]).toBe('connected');
    expect(lines.filter((l) => l.startsWith('got: '))).toEqual(MESSAGES.map((m) => `got: ${m}`));
    expect(lines[lines.length - 1]).toBe('closed');
    return tap;
  } catch (e) {
    await tap.close();
    throw e;
  }
}

function clientCell(peer: string, start: () => Promise<PeerProcess>, check?: (server: PeerProcess) => void) {
  describe(`our client × ${peer} server`, () => {
    let server: PeerProcess | undefined;
    // The shared compiled server is stopped by the file's afterAll.
    afterAll(async () => (server === ourServer ? undefined : server?.stop()));
    it('connects, gets ASCII, multi-byte UTF-8 and 70 KB text echoed, closes cleanly with 1000', async () => {
      server = await start();
      check?.(server);
      const tap = await runOurClient(`client_${peer.replace(/\W/g, '_')}`, server.port, new URL(server.url).pathname);
      try {
        await expectCleanExchange(tap, { closer: 'client', ourServer: peer === 'osprey' });
      } finally {
        await tap.close();
      }
    });
  });
}

clientCell('ws', () => startWsEchoServer());
clientCell('uWebSockets.js', () => startUwsEchoServer(), (server) => {
  expect(uwsIsNative()).toBe(true);
  expect(server.output).toContain('uws native: true');
});
clientCell('python3-websockets', () => startPythonEchoServer());
clientCell('osprey', async () => ourServer);

describe('our client × Chromium server', () => {
  it.skip('n/a: a browser has no WebSocket server API', () => {});
});

// ---- our server against independent clients ----------------------------------------------------

describe('our server × ws client', () => {
  it('echoes ASCII, multi-byte UTF-8 and 70 KB text, closes cleanly with 1000', async () => {
    const tap = await startTap(ourServerPort);
    try {
      const c = await connectWsClient(tap.url('/echo'));
      for (const m of MESSAGES) c.send(m);
      for (const m of MESSAGES) {
        const got = await c.next(5000);
        expect(got.isBinary).toBe(false);
        expect(got.data.toString('utf8')).toBe(m);
      }
      expect(await c.close(1000)).toEqual({ code: 1000, reason: '' });
      expect(c.errors).toEqual([]);
      await expectCleanExchange(tap, { closer: 'client', ourServer: true });
    } finally {
      await tap.close();
    }
  });
});

describe('our server × uWebSockets.js client', () => {
  it('n/a: uWebSockets.js has no client API (server only)', () => {
    const uws = createRequire(import.meta.url)('@trufflesuite/uws-js-unofficial') as Record<string, unknown>;
    expect(typeof uws.App).toBe('function');
    expect(Object.keys(uws).filter((k) => /client|connect|websocket/i.test(k))).toEqual([]);
  });
});

describe('our server × python3-websockets client', () => {
  it('echoes ASCII, multi-byte UTF-8 and 70 KB text, closes cleanly with 1000', async () => {
    const tap = await startTap(ourServerPort);
    try {
      const r = await runPythonClient(tap.url('/echo'), { send: MESSAGES });
      expect(r.code, r.output.join('\n')).toBe(0);
      expect(r.events.filter((e) => e.type === 'text').map((e) => (e as { data: string }).data)).toEqual(MESSAGES);
      expect(r.events.find((e) => e.type === 'close')).toMatchObject({ code: 1000 });
      await expectCleanExchange(tap, { closer: 'client', ourServer: true });
    } finally {
      await tap.close();
    }
  });
});

describe('our server × Chromium client', () => {
  let browser: Browser | undefined;
  afterAll(async () => browser?.close());

  it('echoes ASCII, multi-byte UTF-8 and 70 KB text, closes cleanly with 1000', async () => {
    browser = await launchChromium();
    const tap = await startTap(ourServerPort);
    try {
      const page = await browser.context.newPage();
      await page.setContent('<!doctype html><title>interop matrix</title>');
      const r = await page.evaluate(
        async ({ url, messages }) => {
          const socket = new WebSocket(url);
          const got: string[] = [];
          await new Promise<void>((resolve, reject) => {
            socket.onopen = () => resolve();
            socket.onerror = () => reject(new Error('WebSocket error before open'));
          });
          const extensions = socket.extensions;
          const all = new Promise<void>((resolve) => {
            socket.onmessage = (e) => {
              got.push(String(e.data));
              if (got.length === messages.length) resolve();
            };
          });
          for (const m of messages) socket.send(m);
          await all;
          const close = await new Promise<{ code: number; reason: string; wasClean: boolean }>((resolve) => {
            socket.onclose = (e) => resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean });
            socket.close(1000);
          });
          return { got, close, extensions };
        },
        { url: tap.url('/echo'), messages: MESSAGES },
      );
      expect(r.extensions, 'S-H11: permessage-deflate declined').toBe('');
      expect(r.got).toEqual(MESSAGES);
      expect(r.close).toEqual({ code: 1000, reason: '', wasClean: true });
      // Chromium offered permessage-deflate; the server's 101 did not take it.
      expect(header(tap.connections[0]!.up.head, 'sec-websocket-extensions').join(',')).toMatch(/permessage-deflate/);
      await expectCleanExchange(tap, { closer: 'client', ourServer: true });
    } finally {
      await tap.close();
    }
  }, 30_000);
});
