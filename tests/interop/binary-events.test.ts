/**
 * Binary messages, the fn(Int, WebSocketMessage) handler shape and connection events, against
 * independent peers (docs/guide/15-websockets.md#message-handlers):
 *   - the compiled echo client (programs.ts, binaryEchoClient) against an npm `ws` server and a
 *     python3-websockets server that send text, a 0-byte binary, 1 MiB binary and a binary
 *     message in 4 fragments and compare every echo byte for byte and kind for kind;
 *   - the compiled event server (eventEchoServer) against `ws` and python3-websockets clients
 *     sending the same messages;
 *   - open/close events under 1,000 connections that connect, send and drop, half with a Close
 *     frame and half without: every open has exactly one close, after it, with the right code.
 * The cases holding NUL bytes (U+0000 in text, every byte value in binary) run as separate tests:
 * a String carries its length, so they arrive whole.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import {
  connectWsClient,
  freePort,
  spawnClient,
  spawnPeer,
  SYSTEM_PYTHON,
  withTimeout,
  type PeerProcess,
} from '../peers/index.ts';
import { BINARY_CASES, firstDifference, type BinaryCase } from './binary-cases.ts';
import { workspace, type Workspace } from './compile.ts';
import { binaryEchoClient, eventEchoServer } from './programs.ts';

const PYTHON_PEER = fileURLToPath(new URL('../peers/python_binary_peer.py', import.meta.url));

let ws: Workspace;
let clientExe: string;

beforeAll(async () => {
  ws = workspace();
  clientExe = await ws.build('binary_echo_client', binaryEchoClient());
}, 120_000);

afterAll(() => ws?.dispose());

const casesFor = (withNul: boolean) => BINARY_CASES.filter((c) => Boolean(c.nul) === withNul);

/** Runs the compiled echo client against `url`; resolves with its output once it exited. */
async function runEchoClient(url: string) {
  const c = spawnClient({ name: 'osprey-binary-echo-client', command: clientExe, args: [url] });
  const exit = await withTimeout(c.exited, 30_000, 'the compiled echo client exits');
  return { exit, lines: c.stdoutLines, output: c.output };
}

/** The connection id the client printed, and that every handler call got the same id. */
function expectOwnConnectionId(lines: string[], messages: number) {
  const connected = lines.find((l) => l.startsWith('connected '));
  expect(connected, lines.join('\n')).toBeDefined();
  const id = connected!.split(' ')[1];
  const calls = lines.filter((l) => l.startsWith('message '));
  expect(calls.length).toBe(messages);
  for (const l of calls) expect(l.split(' ')[1], l).toBe(id);
}

/**
 * An in-process `ws` server that, on its first connection, sends every case (fragmented ones as
 * continuation frames) and compares each echo; resolves with one verdict per case.
 */
async function wsDriverServer(cases: BinaryCase[]) {
  const port = await freePort();
  const server = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false, maxPayload: 1 << 24 });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const verdicts = new Promise<string[]>((resolve) => {
    server.once('connection', (sock: WebSocket) => {
      const out: string[] = [];
      const queue: { data: Buffer; binary: boolean }[] = [];
      let wake: (() => void) | null = null;
      sock.on('message', (data: Buffer, isBinary: boolean) => {
        queue.push({ data: Buffer.from(data), binary: isBinary });
        wake?.();
      });
      sock.on('error', () => undefined);
      void (async () => {
        for (const c of cases) {
          if (c.fragments) {
            const step = Math.ceil(c.data.length / c.fragments);
            for (let i = 0; i < c.fragments; i++) {
              sock.send(c.data.subarray(i * step, (i + 1) * step), { binary: true, fin: i === c.fragments - 1 });
            }
          } else sock.send(c.data, { binary: c.binary });
          const deadline = Date.now() + 10_000;
          while (queue.length === 0 && Date.now() < deadline) {
            await new Promise<void>((r) => {
              wake = r;
              setTimeout(r, 100);
            });
          }
          const got = queue.shift();
          if (!got) {
            out.push(`${c.name}: no echo within 10 s`);
            break;
          }
          const diff = firstDifference(c.data, got.data);
          out.push(
            diff < 0 && got.binary === c.binary
              ? `${c.name}: ok`
              : `${c.name}: sent ${c.binary ? 'binary' : 'text'} ${c.data.length} bytes, got ${got.binary ? 'binary' : 'text'} ${got.data.length} bytes (first difference at ${diff})`,
          );
        }
        sock.close(1000, 'done');
        resolve(out);
      })();
    });
  });
  return { url: `ws://127.0.0.1:${port}/`, verdicts, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('the compiled fn(Int, WebSocketMessage) echo client', () => {
  for (const withNul of [false, true]) {
    const cases = casesFor(withNul);
    const names = cases.map((c) => c.name).join(', ');
    const label = withNul ? ' (NUL bytes)' : '';

    it(`echoes ${names} to an npm ws server, byte for byte and kind for kind${label}`, async () => {
      const server = await wsDriverServer(cases);
      try {
        const [r, verdicts] = await Promise.all([runEchoClient(server.url), withTimeout(server.verdicts, 40_000, 'ws driver verdicts')]);
        expect(verdicts).toEqual(cases.map((c) => `${c.name}: ok`));
        expect(r.exit.code, r.output.join('\n')).toBe(0);
        expectOwnConnectionId(r.lines, cases.length);
        // The server closed with 1000 "done": the client's close event saw it.
        expect(r.lines).toContain('closed 1000 done');
      } finally {
        await server.close();
      }
    }, 60_000);

    it(`echoes ${names} to a python3-websockets server${label}`, async () => {
      const peer = await spawnPeer({
        name: 'python-binary-peer',
        command: SYSTEM_PYTHON,
        args: [PYTHON_PEER, '--serve', '--cases', cases.map((c) => c.name).join(',')],
      });
      try {
        const r = await runEchoClient(peer.url);
        const exit = await withTimeout(peer.exited, 20_000, 'python peer exits');
        const verdicts = peer.output.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { case: string; ok: boolean });
        expect(verdicts.map((v) => `${v.case}: ${v.ok}`), peer.output.join('\n')).toEqual(cases.map((c) => `${c.name}: true`));
        expect(exit.code).toBe(0);
        expect(r.exit.code, r.output.join('\n')).toBe(0);
        expectOwnConnectionId(r.lines, cases.length);
        expect(r.lines).toContain('closed 1000 ');
      } finally {
        await peer.stop();
      }
    }, 60_000);
  }
});

describe('the compiled event server (OnOpen, OnMessage with WebSocketMessage, OnClose)', () => {
  let server: PeerProcess;
  beforeAll(async () => {
    const port = await freePort();
    const exe = await ws.build('event_echo_server', eventEchoServer(port, 600_000));
    server = await spawnPeer({ name: 'osprey-event-server', command: exe, args: [], env: { OSPREY_WS_MAX_HANDSHAKES_PER_IP: '64', OSPREY_WS_MAX_CONNECTIONS_PER_IP: '2048' } });
  }, 90_000);
  afterAll(async () => server?.stop());

  /** The server's output lines about connection `id`. */
  const about = (id: string) => server.output.filter((l) => / \d+/.test(l) && l.split(' ')[1] === id && /^(open|close|message) /.test(l));

  for (const withNul of [false, true]) {
    const cases = casesFor(withNul);
    const label = withNul ? ' (NUL bytes)' : '';

    it(`echoes text and binary messages to an npm ws client, kind for kind${label}`, async () => {
      const c = await connectWsClient(server.url);
      try {
        for (const k of cases) {
          if (k.fragments) {
            const step = Math.ceil(k.data.length / k.fragments);
            for (let i = 0; i < k.fragments; i++) c.ws.send(k.data.subarray(i * step, (i + 1) * step), { binary: true, fin: i === k.fragments - 1 });
          } else c.ws.send(k.data, { binary: k.binary });
          const m = await c.next(10_000);
          expect([k.name, m.isBinary, m.data.length, firstDifference(k.data, m.data)]).toEqual([k.name, k.binary, k.data.length, -1]);
        }
      } finally {
        await c.close();
      }
    }, 60_000);

    it(`echoes them to a python3-websockets client${label}`, async () => {
      const c = spawnClient({ name: 'python-binary-peer', command: SYSTEM_PYTHON, args: [PYTHON_PEER, '--connect', server.url, '--cases', cases.map((k) => k.name).join(',')] });
      const exit = await withTimeout(c.exited, 30_000, 'python client exits');
      const verdicts = c.stdoutLines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { case: string; ok: boolean });
      expect(verdicts.map((v) => `${v.case}: ${v.ok}`), c.output.join('\n')).toEqual(cases.map((k) => `${k.name}: true`));
      expect(exit.code).toBe(0);
    }, 60_000);
  }

  it('gives each of 1,000 connections exactly one open and one close event, in order, with the right code', async () => {
    const total = 1000;
    const batch = 25;
    const clean = new Map<string, boolean>(); // marker → closed with a Close frame
    for (let start = 0; start < total; start += batch) {
      await Promise.all(
        Array.from({ length: Math.min(batch, total - start) }, async (_, j) => {
          const k = start + j;
          const marker = `client-${k}`;
          const c = await connectWsClient(server.url);
          c.send(marker);
          const echo = await c.next(10_000);
          expect(echo.data.toString()).toBe(marker);
          clean.set(marker, k % 2 === 0);
          if (k % 2 === 0) await c.close(1000, 'bye');
          else {
            c.ws.terminate(); // TCP dropped without a Close frame
            await withTimeout(c.closed, 5000, 'terminate');
          }
        }),
      );
    }
    const idOf = new Map<string, string>();
    for (const l of server.output) {
      const m = /^message (\d+) text \d+ (client-\d+)$/.exec(l);
      if (m) idOf.set(m[2]!, m[1]!);
    }
    // Every connection's close event arrives (the server notices each drop at once). Counted per
    // id of this test: connections of the earlier tests may still be reporting theirs.
    const ids = new Set(idOf.values());
    const closedIds = () => new Set(server.output.filter((l) => l.startsWith('close ')).map((l) => l.split(' ')[1]!).filter((id) => ids.has(id)));
    const deadline = Date.now() + 20_000;
    while (closedIds().size < ids.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(idOf.size).toBe(total);
    const problems: string[] = [];
    for (const [marker, id] of idOf) {
      const events = about(id).map((l) => l.split(' ')[0]);
      if (events.join(',') !== 'open,message,close') problems.push(`${marker} (connection ${id}): ${events.join(',')}`);
      const close = about(id).find((l) => l.startsWith('close '));
      const code = close?.split(' ')[2];
      const want = clean.get(marker) ? '1000' : '1006';
      if (code !== want) problems.push(`${marker} (connection ${id}): close code ${code}, expected ${want}`);
      if (clean.get(marker) && close !== `close ${id} 1000 bye`) problems.push(`${marker}: ${close} (expected the reason "bye")`);
    }
    expect(problems.slice(0, 20)).toEqual([]);
    // Nothing but those events: one open and one close per connection, 1,000 of each.
    const eventsOf = (kind: string) => server.output.filter((l) => l.startsWith(`${kind} `) && ids.has(l.split(' ')[1]!)).length;
    expect([eventsOf('open'), eventsOf('close')]).toEqual([total, total]);
  }, 240_000);
});
