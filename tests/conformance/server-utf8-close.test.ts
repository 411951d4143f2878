/**
 * Server UTF-8 handling and the closing handshake, docs/WEBSOCKET-RUNTIME.md#conformance-cases cases 35–51
 * (checklist §1.4 S-U1..S-U6, §1.5 S-C1..S-C8; Autobahn 6.x, 7.x).
 */
import { expect, it } from 'vitest';
import { describeTarget, useServer } from './harness.ts';
import { selected, SERVER_TARGETS } from './targets.ts';
import { awaitClose, expectFailStrict } from './verdict.ts';
import { B, buildFrame, C, CONT, describeEvent as show, OP, P, T, type RawConn } from './wsraw.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

async function expectEcho(c: RawConn, payload: Buffer, opcode: number = OP.TEXT) {
  const m = await c.nextMessage();
  expect(m.opcode).toBe(opcode);
  expect(m.payload.toString('hex')).toBe(payload.toString('hex'));
}

for (const target of selected(SERVER_TARGETS)) {
  describeTarget(target, `server UTF-8 and close [${target.name}]`, () => {
    const h = useServer(target);

    it('35 valid multi-byte text (κόσμε, U+24B62) → echoed byte-exact', async () => {
      const c = await h.open();
      for (const p of [Buffer.from('κόσμε'), hex('F0 A4 AD A2'), Buffer.from('Hello-µ@ßöäüàá-UTF-8!!')]) {
        c.write(T(p));
        await expectEcho(c, p);
      }
    });

    it('35b U+0000 inside text (NUL bytes are characters) → echoed byte-exact, never cut at the NUL', async () => {
      const c = await h.open();
      for (const p of [hex('61 00 62'), hex('00'), Buffer.concat([Buffer.from('κό'), hex('00 00'), Buffer.from('σμε')])]) {
        c.write(T(p));
        await expectEcho(c, p);
      }
    });

    it('36a E2 82 | AC split across two fragments → echo E2 82 AC', async () => {
      const c = await h.open();
      c.write(Buffer.concat([T(hex('E2 82'), { fin: false }), CONT(hex('AC'))]));
      await expectEcho(c, hex('E2 82 AC'));
    });

    it('36b E2 82 | AC split across two TCP writes inside one frame → echo E2 82 AC', async () => {
      const c = await h.open();
      const f = T(hex('E2 82 AC'));
      await c.writeChopped(f, f.length - 1);
      await expectEcho(c, hex('E2 82 AC'));
    });

    it('36c κόσμε in 1-byte fragments → echoed', async () => {
      const c = await h.open();
      const p = Buffer.from('κόσμε');
      const frames = [...p].map((b, i) => (i === 0 ? T(Buffer.from([b]), { fin: false }) : CONT(Buffer.from([b]), { fin: i === p.length - 1 })));
      c.write(Buffer.concat(frames));
      await expectEcho(c, p);
    });

    it('37 surrogate ED A0 80 in a single frame → fail 1007', async () => {
      const c = await h.open();
      c.write(T(hex('ED A0 80')));
      await expectFailStrict(c, 1007);
    });

    for (const [label, bytes] of [
      ['overlong C0 AF', 'C0 AF'],
      ['overlong E0 80 AF', 'E0 80 AF'],
      ['F4 90 80 80 (above U+10FFFF)', 'F4 90 80 80'],
      ['5-byte form F8 88 80 80 80', 'F8 88 80 80 80'],
    ] as const) {
      it(`38 ${label} → fail 1007`, async () => {
        const c = await h.open();
        c.write(T(hex(bytes)));
        await expectFailStrict(c, 1007);
      });
    }

    it('39a truncated sequence at the end of a text message (CE) → fail 1007', async () => {
      const c = await h.open();
      c.write(T(hex('61 CE')));
      await expectFailStrict(c, 1007);
    });

    it('39b the same bytes in a binary message → echoed (binary is not validated)', async () => {
      const c = await h.open();
      c.write(B(hex('61 CE FF FE')));
      await expectEcho(c, hex('61 CE FF FE'), OP.BINARY);
    });

    it('40 fail fast: first fragment 61 F4 90 80 80 (FIN=0) and nothing more → 1007 at once', async () => {
      const c = await h.open();
      c.write(T(hex('61 F4 90 80 80'), { fin: false }));
      const v = await expectFailStrict(c, 1007, { timeoutMs: 1000 });
      expect(v.closeAfterMs!).toBeLessThan(500);
    });

    it(`41 fail fast inside one frame: 20 of 1000 declared bytes, with FF → 1007${target.policy.utf8FailFastInsideFrame ? ' without waiting for the rest' : ' (target: at the end of the frame)'}`, async () => {
      const c = await h.open();
      const payload = Buffer.alloc(1000, 0x61);
      payload[10] = 0xff;
      const frame = T(payload);
      const headerLen = 2 + 2 + 4;
      c.write(frame.subarray(0, headerLen + 20));
      if (!target.policy.utf8FailFastInsideFrame) {
        expect(show(await c.expectQuiet(300))).toBe('nothing');
        c.write(frame.subarray(headerLen + 20));
      }
      const v = await expectFailStrict(c, 1007, { timeoutMs: 1000 });
      expect(v.closeAfterMs!).toBeLessThan(500);
    });

    it('42 non-characters and U+FFFD (EF BF BE, EF BF BF, F4 8F BF BF, EF BF BD) → echoed', async () => {
      const c = await h.open();
      for (const p of ['EF BF BE', 'EF BF BF', 'F4 8F BF BF', 'EF BF BD', 'F0 9F BF BE']) {
        c.write(T(hex(p)));
        await expectEcho(c, hex(p));
      }
    });

    it('43 Close(1000, "bye") → Close 1000, then the server closes TCP', async () => {
      const c = await h.open();
      c.write(C(1000, 'bye'));
      await expectFailStrict(c, 1000, { reply: false });
    });

    it('44 empty Close → empty Close or Close 1000 back, server closes TCP', async () => {
      const c = await h.open();
      c.write(C());
      await expectFailStrict(c, 1000, { reply: false, acceptEmpty: true });
    });

    it('45a Close payload of 1 byte → fail 1002', async () => {
      const c = await h.open();
      c.write(buildFrame({ opcode: OP.CLOSE, payload: Buffer.from([0x03]) }));
      await expectFailStrict(c, 1002);
    });

    it('45b Close 1000 with a 123-byte reason → Close 1000 back', async () => {
      const c = await h.open();
      c.write(C(1000, 'r'.repeat(123)));
      await expectFailStrict(c, 1000, { reply: false });
    });

    it('45c Close 1000 with a 124-byte reason (126-byte control frame) → fail 1002', async () => {
      const c = await h.open();
      c.write(C(1000, 'r'.repeat(124)));
      await expectFailStrict(c, 1002);
    });

    for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]) {
      it(`46 valid close code ${code} → Close ${code} or 1000 back`, async () => {
        const c = await h.open();
        c.write(C(code));
        await expectFailStrict(c, [code, 1000], { reply: false });
      });
    }

    for (const code of [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 5000, 65535]) {
      it(`47 invalid close code ${code} → fail 1002`, async () => {
        const c = await h.open();
        c.write(C(code));
        await expectFailStrict(c, 1002);
      });
    }

    it('48 close reason with invalid UTF-8 (03 E8 FF FE) → fail 1007', async () => {
      const c = await h.open();
      c.write(buildFrame({ opcode: OP.CLOSE, payload: hex('03 E8 FF FE') }));
      await expectFailStrict(c, 1007);
    });

    it('49 Close(1000), then ping, then T("x") → Close 1000 back, no pong, no echo', async () => {
      const c = await h.open();
      c.write(Buffer.concat([C(1000), P('after-close'), T('x')]));
      const v = await expectFailStrict(c, 1000, { reply: false });
      expect(v.before).toEqual([]);
      expect(c.events.filter((e) => e.type === 'frame').length, 'nothing after the Close either').toBe(1);
    });

    it('50 TCP FIN without a Close frame → the server closes its side and keeps serving', async () => {
      const c = await h.open();
      c.write(T('before-fin'));
      await expectEcho(c, Buffer.from('before-fin'));
      c.end();
      expect(await c.waitPeerEnd(1500), 'server closes TCP after our FIN').toBe(true);
      expect(c.events.filter((e) => e.type === 'frame').length, 'no frames after our FIN (no Close into a half-closed socket needed)').toBeLessThanOrEqual(2);
      const again = await h.open();
      again.write(T('still serving'));
      await expectEcho(again, Buffer.from('still serving'));
    });

    it('51 server-initiated close (SIGTERM: going away) that the peer never answers → TCP dropped after the close timeout', async () => {
      const s = await h.startExtra({ path: '/', closeTimeoutMs: 500 });
      const c = await h.open({}, s.port);
      c.write(T('hi'));
      await expectEcho(c, Buffer.from('hi'));
      const stopping = s.stop({ graceMs: 5000 });
      const v = await awaitClose(c, [1001, 1000], { reply: false, timeoutMs: 2000, tcpCloseMs: 2500 });
      await stopping;
      expect(`${v.kind}: ${v.detail}`).toBe(`strict: ${v.detail}`);
    });
  });
}
