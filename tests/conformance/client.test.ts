/**
 * Client direction, docs/WEBSOCKET-RUNTIME.md#conformance-cases cases 57–64 (checklist §1.7 C-H1..C-H9, C-F1..C-F5):
 * the client under test connects to a raw fake server that checks its request, answers with
 * good or broken handshakes, and sends valid and invalid frames (case 63 replays the server
 * cases 18–49 with the roles swapped, as Autobahn's fuzzingserver does).
 *
 * The client testee echoes every message, text and binary, and exits 0 when the server closes. Each test owns
 * its fake server and client process, so the tests run concurrently.
 */
import { expect, it, type TestContext } from 'vitest';
import { withTimeout, type ClientProcess, type Exit } from '../peers/index.ts';
import { FakeServer, response, sB, sC, sCONT, sf, sP, sPONG, sT } from './fakeserver.ts';
import { CLIENT_TARGETS, selected, type ClientTarget } from './targets.ts';
import { awaitClose } from './verdict.ts';
import { describeTarget } from './harness.ts';
import { OP, type HttpHead, type RawConn } from './wsraw.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/**
 * Upper bound for anything the client under test should do (answer, close, exit). Generous on
 * purpose: each case starts a client process, and on a loaded 2-core machine a 2–3 s bound
 * made different cases fail in different runs. Only failures wait this long; the cases that
 * measure a duration (58, 64a) assert lower bounds.
 */
const EVENT_MS = 15_000;

interface Session {
  fake: FakeServer;
  client: ClientProcess;
  conn: RawConn;
  req: HttpHead;
  /** The client's exit, at most `ms` from now (throws with its output otherwise). */
  exit(ms?: number): Promise<Exit>;
}

async function session(t: ClientTarget, ctx: TestContext, path = '/'): Promise<Session> {
  const fake = await FakeServer.start();
  const client = t.start(fake.url(path));
  ctx.onTestFinished(async () => {
    await client.stop({ graceMs: 1000 });
    await fake.close();
  });
  ctx.onTestFinished(() => {
    // C-F1 and RSV: every frame of the client under test is masked with RSV=0.
    expect(fake.conns.flatMap((c) => c.violations), 'frames from the client under test').toEqual([]);
  });
  const { conn, req } = await fake.accept(EVENT_MS).catch((e: Error) => {
    throw new Error(`${e.message}\nclient output:\n${client.output.join('\n')}`);
  });
  const exit = (ms = EVENT_MS) =>
    withTimeout(client.exited, ms, `${t.name} client exit`).catch((e: Error) => {
      throw new Error(`${e.message}\nclient output:\n${client.output.join('\n')}`);
    });
  return { fake, client, conn, req, exit };
}

/** Open session: 101 sent (optionally with frames in the same write). */
async function opened(t: ClientTarget, ctx: TestContext, ...frames: Buffer[]): Promise<Session> {
  const s = await session(t, ctx);
  s.conn.write(Buffer.concat([response(s.req), ...frames]));
  return s;
}

/** The client must treat the handshake as failed: no frames at all, TCP closed, exit status ≠ 0. */
async function expectHandshakeRejected(s: Session) {
  expect(await s.conn.waitPeerEnd(EVENT_MS), 'client closes TCP after a bad handshake').toBe(true);
  expect(Buffer.concat(s.conn.wsBytes).toString('hex'), 'no frames (not even a Close) after a failed handshake').toBe('');
  const exit = await s.exit();
  expect(exit.code, `exit status (${s.client.output.join(' | ')})`).not.toBe(0);
}

/** The client fails the connection with `codes`; strict = Close frame, then the server (we) closes TCP first. */
async function expectClientFails(s: Session, codes: number | number[]) {
  const v = await awaitClose(s.conn, Array.isArray(codes) ? codes : [codes], { closer: 'self', timeoutMs: EVENT_MS });
  expect(`${v.kind}: ${v.detail}`).toBe(`strict: ${v.detail}`);
  await s.exit();
  return v;
}

for (const target of selected(CLIENT_TARGETS)) {
  describeTarget(target, false, `client [${target.name}]`, () => {
    it('57a request: GET /chat?x=1 HTTP/1.1, Host with port, Upgrade/Connection tokens, version 13, 16-byte key', async (ctx) => {
      const s = await session(target, ctx, '/chat?x=1&y=%20');
      expect(s.req.startLine).toBe('GET /chat?x=1&y=%20 HTTP/1.1');
      expect(s.req.all('Host')).toEqual([`127.0.0.1:${s.fake.port}`]);
      expect(s.req.tokens('Upgrade')).toContain('websocket');
      expect(s.req.tokens('Connection')).toContain('upgrade');
      expect(s.req.all('Sec-WebSocket-Version')).toEqual(['13']);
      const keys = s.req.all('Sec-WebSocket-Key');
      expect(keys).toHaveLength(1);
      expect(keys[0]).toMatch(/^[A-Za-z0-9+/]{22}==$/);
      expect(Buffer.from(keys[0]!, 'base64')).toHaveLength(16);
      expect(s.req.get('Sec-WebSocket-Extensions'), 'no extension offered (compression off)').toBeUndefined();
      s.conn.write(Buffer.concat([response(s.req), sC(1000)]));
      await awaitClose(s.conn, [1000], { closer: 'self', reply: false, timeoutMs: EVENT_MS });
      expect((await s.exit()).code).toBe(0);
    });

    it('57b keys: 50 connects → 50 distinct 16-byte keys', async (ctx) => {
      const fake = await FakeServer.start();
      const clients: ClientProcess[] = [];
      ctx.onTestFinished(async () => {
        await Promise.all(clients.map((c) => c.stop({ graceMs: 500 })));
        await fake.close();
      });
      const keys: string[] = [];
      for (let batch = 0; batch < 5; batch++) {
        const started = Array.from({ length: 10 }, () => target.start(fake.url('/')));
        clients.push(...started);
        for (let i = 0; i < started.length; i++) {
          const { conn, req } = await fake.accept();
          keys.push(req.get('Sec-WebSocket-Key') ?? '');
          conn.write('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
          conn.end();
        }
        await Promise.all(started.map((c) => withTimeout(c.exited, EVENT_MS, 'client exit after 503')));
      }
      expect(keys.every((k) => Buffer.from(k, 'base64').length === 16)).toBe(true);
      expect(new Set(keys).size).toBe(50);
    }, 30_000);

    for (const [label, opts] of [
      ['wrong Sec-WebSocket-Accept', { accept: 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=' }],
      ['no Sec-WebSocket-Accept', { omit: ['Sec-WebSocket-Accept'] }],
      ['no Upgrade header', { omit: ['Upgrade'] }],
      ['Connection: keep-alive only', { omit: ['Connection'], extra: [['Connection', 'keep-alive']] }],
      ['status 200 OK', { status: '200 OK' }],
      ['status 403 Forbidden', { status: '403 Forbidden' }],
    ] as const) {
      it(`58 ${label} (+ a text frame in the same write) → handshake error, no frames, exit ≠ 0`, async (ctx) => {
        const s = await session(target, ctx);
        s.conn.write(Buffer.concat([response(s.req, opts as never), sT('must not be echoed')]));
        await expectHandshakeRejected(s);
      });
    }

    for (const [label, extra] of [
      ['unrequested Sec-WebSocket-Extensions: permessage-deflate', ['Sec-WebSocket-Extensions', 'permessage-deflate']],
      ['unrequested Sec-WebSocket-Protocol: chat', ['Sec-WebSocket-Protocol', 'chat']],
    ] as const) {
      it(`59 ${label} → the client fails the connection`, async (ctx) => {
        const s = await session(target, ctx);
        s.conn.write(Buffer.concat([response(s.req, { extra: [[...extra]] }), sT('must not be echoed')]));
        await expectHandshakeRejected(s);
      });
    }

    // C-H9 (checklist §1.7, beyond the §2.5 list): a hostile server.
    it('58 (C-H9) a 101 with 1 MiB of headers → handshake error, no frames, exit ≠ 0', async (ctx) => {
      const s = await session(target, ctx);
      const head = response(s.req).subarray(0, -2); // without the final CRLF
      s.conn.write(head);
      for (let i = 0; i < 1024 && !s.conn.peerEnded; i++) s.conn.write(`X-Pad-${i}: ${'p'.repeat(1000)}\r\n`);
      await expectHandshakeRejected(s);
    });

    it(`58 (C-H9) the server never answers → handshake timeout (${target.handshakeTimeoutMs} ms), exit ≠ 0`, async (ctx) => {
      // Measured from before the client starts: its deadline cannot expire earlier than that,
      // however long the spawn and the TCP accept take on a loaded machine.
      const t0 = performance.now();
      const s = await session(target, ctx);
      await expectHandshakeRejected(s);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(target.handshakeTimeoutMs * 0.9);
    });

    it('60 101 and a text frame in the same write → the message is delivered (echoed)', async (ctx) => {
      const s = await opened(target, ctx, sT('hello in the same write'));
      const m = await s.conn.nextMessage(EVENT_MS);
      expect(m.payload.toString()).toBe('hello in the same write');
      s.conn.write(sC(1000));
      await awaitClose(s.conn, [1000], { closer: 'self', reply: false, timeoutMs: EVENT_MS });
      expect((await s.exit()).code).toBe(0);
    });

    it('61 1000 echoed frames are all masked with fresh keys; a 70 000-byte echo uses a 64-bit length', async (ctx) => {
      const s = await opened(target, ctx);
      s.conn.write(Buffer.concat(Array.from({ length: 1000 }, (_, i) => sT(`m${i}`))));
      const keys: string[] = [];
      for (let i = 0; i < 1000; i++) {
        const m = await s.conn.nextMessage(EVENT_MS);
        expect(m.payload.toString()).toBe(`m${i}`);
        for (const f of m.frames) keys.push(f.maskKey!.toString('hex'));
      }
      expect(s.conn.violations, 'every client frame masked').toEqual([]);
      expect(new Set(keys).size, 'distinct mask keys').toBeGreaterThanOrEqual(keys.length - 2);
      const nums = keys.map((k) => parseInt(k, 16));
      const steps = new Set(nums.slice(1).map((n, i) => (n - nums[i]! + 2 ** 32) % 2 ** 32));
      expect(steps.size, 'mask keys are not a counter').toBeGreaterThan(10);
      const big = Buffer.alloc(70_000, 0x62);
      s.conn.write(sT(big));
      const m = await s.conn.nextMessage(EVENT_MS);
      expect(m.payload.equals(big)).toBe(true);
      if (m.frames.length === 1) expect(m.frames[0]!.extLengthBytes).toBe(8);
      expect(s.conn.violations).toEqual([]);
      s.conn.write(sC(1000));
      await awaitClose(s.conn, [1000], { closer: 'self', reply: false, timeoutMs: EVENT_MS });
    });

    it('62 a masked frame from the server → the client fails 1002', async (ctx) => {
      const s = await opened(target, ctx, sT('masked', { mask: true }));
      await expectClientFails(s, 1002);
    });

    // 63: the server cases 18–49 with the roles swapped.
    const failures: [string, () => Buffer, number | number[]][] = [
      ['RSV1 on text', () => sT('x', { rsv: 4 }), 1002],
      ['RSV=7 on close', () => sC(1000, '', { rsv: 7 }), 1002],
      ['opcode 3', () => sf({ opcode: 3, payload: 'x' }), 1002],
      ['opcode 0xB', () => sf({ opcode: 0xb }), 1002],
      ['64-bit length with the MSB set', () => sf({ opcode: OP.BINARY, payload: 'x', declaredLength: (1n << 63n) | 1n, lengthEncoding: 64 }), [1002, 1009]],
      ['continuation with nothing to continue', () => sCONT('orphan'), 1002],
      ['new text frame inside a fragmented message', () => Buffer.concat([sT('a', { fin: false }), sT('b')]), 1002],
      ['fragmented ping', () => Buffer.concat([sP('a', { fin: false }), sCONT('b')]), 1002],
      ['ping of 126 bytes', () => sP(Buffer.alloc(126, 0x70)), 1002],
      ['surrogate ED A0 80', () => sT(hex('ED A0 80')), 1007],
      ['overlong C0 AF', () => sT(hex('C0 AF')), 1007],
      ['F4 90 80 80', () => sT(hex('F4 90 80 80')), 1007],
      ['truncated CE at the end of a message', () => sT(hex('61 CE')), 1007],
      ['fail fast: first fragment 61 F4 90 80 80, nothing more', () => sT(hex('61 F4 90 80 80'), { fin: false }), 1007],
      ['Close payload of 1 byte', () => sf({ opcode: OP.CLOSE, payload: Buffer.from([3]) }), 1002],
      ['Close reason of 124 bytes', () => sC(1000, 'r'.repeat(124)), 1002],
      ['Close reason with invalid UTF-8', () => sf({ opcode: OP.CLOSE, payload: hex('03 E8 FF FE') }), 1007],
      ...[0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 5000, 65535].map(
        (code) => [`invalid close code ${code}`, () => sC(code), 1002] as [string, () => Buffer, number],
      ),
    ];
    for (const [label, frames, codes] of failures) {
      it(`63 ${label} → the client fails ${Array.isArray(codes) ? codes.join('/') : codes}`, async (ctx) => {
        const s = await opened(target, ctx, frames());
        await expectClientFails(s, codes);
      });
    }

    it('63 ping "x" → masked pong "x"; unsolicited pong → nothing', async (ctx) => {
      const s = await opened(target, ctx, sPONG('unsolicited'), sP('x'));
      const f = await s.conn.nextFrame(EVENT_MS);
      expect([f.opcode, f.payload.toString(), f.masked]).toEqual([OP.PONG, 'x', true]);
    });

    it('63 T(FIN=0 "frag1"), ping, CONT "frag2" → pong first, then the echo "frag1frag2"', async (ctx) => {
      const s = await opened(target, ctx, sT('frag1', { fin: false }), sP('between'));
      const f = await s.conn.nextFrame(EVENT_MS);
      expect([f.opcode, f.payload.toString()]).toEqual([OP.PONG, 'between']);
      s.conn.write(sCONT('frag2'));
      expect((await s.conn.nextMessage(EVENT_MS)).payload.toString()).toBe('frag1frag2');
    });

    it('63 valid UTF-8 split across fragments and non-characters → echoed byte-exact', async (ctx) => {
      const s = await opened(target, ctx, sT(hex('E2 82'), { fin: false }), sCONT(hex('AC')), sT(hex('EF BF BF F4 8F BF BF')));
      expect((await s.conn.nextMessage(EVENT_MS)).payload.toString('hex')).toBe('e282ac');
      expect((await s.conn.nextMessage(EVENT_MS)).payload.toString('hex')).toBe('efbfbff48fbfbf');
    });

    it('63 binary messages (0 bytes, bytes 1–255, 70 000 bytes, 3 fragments) → echoed as binary, byte-exact', async (ctx) => {
      const small = Buffer.from(Array.from({ length: 255 }, (_, i) => i + 1));
      const big = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i % 251) + 1));
      const s = await opened(target, ctx, sB(Buffer.alloc(0)), sB(small), sB(big), sB('frag', { fin: false }), sCONT('ment', { fin: false }), sCONT('ed!'));
      for (const want of [Buffer.alloc(0), small, big, Buffer.from('fragmented!')]) {
        const m = await s.conn.nextMessage(EVENT_MS);
        expect([m.opcode, m.payload.length, m.payload.equals(want)]).toEqual([OP.BINARY, want.length, true]);
      }
      expect(s.conn.violations).toEqual([]);
      s.conn.write(sC(1000));
      await awaitClose(s.conn, [1000], { closer: 'self', reply: false, timeoutMs: EVENT_MS });
      expect((await s.exit()).code).toBe(0);
    });

    // U+0000 is valid UTF-8: a text message holding it comes back whole (a String carries its length).
    it('63 text and binary holding NUL bytes (U+0000) → echoed byte-exact, kind kept', async (ctx) => {
      const text = Buffer.from('a\0b\0\0c');
      const bin = Buffer.from([0, 1, 0, 255, 0]);
      const s = await opened(target, ctx, sT(text), sB(bin));
      const t = await s.conn.nextMessage(EVENT_MS);
      expect([t.opcode, t.payload.toString('hex')]).toEqual([OP.TEXT, text.toString('hex')]);
      const b = await s.conn.nextMessage(EVENT_MS);
      expect([b.opcode, b.payload.toString('hex')]).toEqual([OP.BINARY, bin.toString('hex')]);
      s.conn.write(sC(1000));
      await awaitClose(s.conn, [1000], { closer: 'self', reply: false, timeoutMs: EVENT_MS });
    });

    for (const code of [1000, 1001, 1011, 3000, 4999]) {
      it(`63 valid close code ${code} → the client answers Close ${code} (or 1000) and exits`, async (ctx) => {
        const s = await opened(target, ctx, sC(code, 'bye'));
        const v = await awaitClose(s.conn, [code, 1000], { closer: 'self', reply: false, timeoutMs: EVENT_MS });
        expect(`${v.kind}: ${v.detail}`).toBe(`strict: ${v.detail}`);
        await s.exit();
      });
    }

    it(`64a Close 1000 and TCP kept open → the client answers Close 1000 and closes TCP after its close timeout (${target.closeTimeoutMs} ms)`, async (ctx) => {
      const s = await opened(target, ctx, sC(1000));
      const f = await s.conn.nextFrame(EVENT_MS);
      expect([f.opcode, f.closeCode]).toEqual([OP.CLOSE, 1000]);
      const t0 = performance.now();
      expect(await s.conn.waitPeerEnd(target.closeTimeoutMs + EVENT_MS), 'client closes TCP by itself').toBe(true);
      const waited = Math.round(s.conn.peerEndAt - t0);
      // RFC 6455 §7.1.1: the client SHOULD wait for the server to close TCP; it drops TCP itself
      // only when the server does not, after its close timeout (docs/WEBSOCKET-RUNTIME.md C-F4).
      expect(waited, `client FIN ${waited} ms after its Close (close timeout ${target.closeTimeoutMs} ms)`).toBeGreaterThanOrEqual(target.closeTimeoutMs / 2);
      expect((await s.exit()).code).toBe(0);
    });

    it('64b Close exchange, fake server closes TCP first → the client closes cleanly (no reset, nothing sent after)', async (ctx) => {
      const s = await opened(target, ctx, sC(1000));
      const f = await s.conn.nextFrame(EVENT_MS);
      expect([f.opcode, f.closeCode]).toEqual([OP.CLOSE, 1000]);
      s.conn.end();
      expect(await s.conn.waitPeerEnd(EVENT_MS)).toBe(true);
      expect(s.conn.events.filter((e) => e.type === 'error')).toEqual([]);
      expect(s.conn.events.filter((e) => e.type === 'frame')).toHaveLength(1);
      expect((await s.exit()).code).toBe(0);
    });
  });
}
