/**
 * The compiled Osprey server against independent clients: npm `ws` and python3-websockets.
 * The server is an Osprey program (programs.ts) built with `osprey build`, so these tests cover
 * the whole path: source → compiler → LLVM → executable → C runtime → the wire.
 *
 * The common exchange with each client (multi-byte UTF-8, 70 KB, clean close 1000, checked on
 * the wire) is in the interop matrix, matrix.test.ts; this file keeps the distinctive cases.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectWsClient, freePort, runPythonClient, spawnPeer, type PeerProcess } from '../peers/index.ts';
import { workspace, type Workspace } from './compile.ts';
import { echoServer, relayServer } from './programs.ts';

let ws: Workspace;
let echo: PeerProcess;
let echoUrl: string;

beforeAll(async () => {
  ws = workspace();
  const port = await freePort();
  const exe = await ws.build('echo_server', echoServer(port, '/echo', 120_000));
  echo = await spawnPeer({ name: 'osprey-echo-server', command: exe, args: [] });
  echoUrl = `ws://127.0.0.1:${port}/echo`;
});

afterAll(async () => {
  await echo?.stop();
  ws?.dispose();
});

const sizes = [0, 125, 126, 65535, 65536, 1024 * 1024];

/** Printable ASCII that varies per position, so a shifted or truncated echo is caught. */
function text(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(33 + ((i * 7) % 94));
  return s;
}

describe('compiled Osprey echo server with a ws client', () => {
  for (const n of sizes) {
    it(`echoes a ${n}-byte text message byte for byte`, async () => {
      const c = await connectWsClient(echoUrl);
      try {
        c.send(text(n));
        const m = await c.next(5000);
        expect(m.isBinary).toBe(false);
        expect(m.data.length).toBe(n);
        expect(m.data.toString('utf8')).toBe(text(n));
      } finally {
        await c.close();
      }
      expect(c.errors).toEqual([]);
    });
  }

  it('echoes binary with the same opcode, embedded NULs included', async () => {
    const c = await connectWsClient(echoUrl);
    const payload = Buffer.from([0, 1, 2, 0xff, 0, 0x80, 0x7f]);
    c.send(payload);
    const m = await c.next();
    expect(m.isBinary).toBe(true);
    expect(Buffer.compare(m.data, payload)).toBe(0);
    await c.close();
  });

  it('reassembles a fragmented message and echoes it whole', async () => {
    const c = await connectWsClient(echoUrl);
    c.ws.send('frag-one|', { fin: false });
    c.ws.send('frag-two|', { fin: false });
    c.ws.send('frag-three', { fin: true });
    const m = await c.next();
    expect(m.data.toString()).toBe('frag-one|frag-two|frag-three');
    await c.close();
  });

  it('answers a ping with a pong carrying the same payload', async () => {
    const c = await connectWsClient(echoUrl);
    const pong = new Promise<Buffer>((resolve) => c.ws.once('pong', (d: Buffer) => resolve(d)));
    c.ws.ping(Buffer.from('are you there'));
    expect((await pong).toString()).toBe('are you there');
    await c.close();
  });

  it('completes the close handshake echoing the status code', async () => {
    const c = await connectWsClient(echoUrl);
    const r = await c.close(4000, 'done here');
    expect(r.code).toBe(4000);
  });
});

describe('compiled Osprey echo server with a python3-websockets client', () => {
  it('echoes text of every length-encoding boundary size', async () => {
    const messages = [text(1), text(125), text(126), text(65535), text(65536)];
    const r = await runPythonClient(echoUrl, { send: messages });
    expect(r.code, r.output.join('\n')).toBe(0);
    const texts = r.events.filter((e) => e.type === 'text');
    expect(texts.map((e) => (e as { data: string }).data)).toEqual(messages);
    const close = r.events.find((e) => e.type === 'close');
    expect(close).toMatchObject({ code: 1000 });
  });

  it('echoes binary messages including the empty one', async () => {
    const bins = [Buffer.alloc(0), Buffer.from([0, 255, 1, 254]), Buffer.alloc(60_000, 0xab)];
    const r = await runPythonClient(echoUrl, { sendBinary: bins });
    expect(r.code, r.output.join('\n')).toBe(0);
    const got = r.events.filter((e) => e.type === 'binary').map((e) => (e as { hex: string }).hex);
    expect(got).toEqual(bins.map((b) => b.toString('hex')));
  });
});

describe('compiled Osprey chat room (handler relays with websocketServerBroadcast)', () => {
  it('delivers one participant message to all three clients', async () => {
    const port = await freePort();
    const exe = await ws.build('relay_server', relayServer(port, 60_000));
    const server = await spawnPeer({ name: 'osprey-relay-server', command: exe, args: [] });
    try {
      const url = `ws://127.0.0.1:${port}/room`;
      const clients = [await connectWsClient(url), await connectWsClient(url), await connectWsClient(url)];
      clients[1]!.send('hello room');
      const got = await Promise.all(clients.map((c) => c.next(5000)));
      for (const m of got) expect(m.data.toString()).toMatch(/^\d+ says hello room$/);
      // Every client saw the same sender id.
      expect(new Set(got.map((m) => m.data.toString())).size).toBe(1);
      await Promise.all(clients.map((c) => c.close()));
      expect(server.output.some((l) => /^from \d+: hello room$/.test(l))).toBe(true);
    } finally {
      await server.stop();
    }
  });
});

describe('websocketStopServer', () => {
  it('closes open connections with 1001, exits cleanly, and frees the port at once', async () => {
    const port = await freePort();
    const exe = await ws.build('short_server', echoServer(port, '/s', 1500));
    const server = await spawnPeer({ name: 'osprey-short-server', command: exe, args: [] });
    const c = await connectWsClient(`ws://127.0.0.1:${port}/s`);
    const closed = await c.closed;
    expect(closed.code).toBe(1001);
    const exit = await server.exited;
    expect(exit.code).toBe(0);
    expect(server.output).toContain('stopped');
    // The port can be bound again immediately by a new server.
    const again = await spawnPeer({ name: 'osprey-rebind', command: exe, args: [] });
    const c2 = await connectWsClient(`ws://127.0.0.1:${port}/s`);
    c2.send('again');
    expect((await c2.next()).data.toString()).toBe('again');
    await c2.close().catch(() => undefined);
    await again.stop();
  });
});

describe('termination signals', () => {
  it('SIGTERM closes every connection with 1001 and exits with 128 + 15', async () => {
    const port = await freePort();
    const exe = await ws.build('term_server', echoServer(port, '/t', 60_000));
    const server = await spawnPeer({ name: 'osprey-term-server', command: exe, args: [] });
    const clients = [await connectWsClient(`ws://127.0.0.1:${port}/t`), await connectWsClient(`ws://127.0.0.1:${port}/t`)];
    process.kill(server.pid, 'SIGTERM');
    for (const c of clients) expect((await c.closed).code).toBe(1001);
    expect(await server.exited).toEqual({ code: 143, signal: null });
  });
});
