/**
 * Server limits and abuse, docs/WEBSOCKET-RUNTIME.md#conformance-cases cases 52–56 (hardening §3.2: message size,
 * fragment count, ping floods and output backpressure, idle timeout, connection limit).
 */
import { expect, it } from 'vitest';
import { describeTarget, expectRefused, itNeeds, useServer } from './harness.ts';
import { selected, SERVER_TARGETS } from './targets.ts';
import { expectFailStrict } from './verdict.ts';
import { B, buildFrame, buildRequest, CONT, OP, P, T, type RawConn } from './wsraw.ts';

const MiB = 1024 * 1024;

async function expectEcho(c: RawConn, text: string) {
  c.write(T(text));
  expect((await c.nextMessage()).payload.toString()).toBe(text);
}

for (const target of selected(SERVER_TARGETS)) {
  describeTarget(target, `server limits [${target.name}]`, () => {
    const h = useServer(target);

    it('52 single frame one byte over the 16 MiB default → fail 1009 before the payload is sent', async () => {
      const c = await h.open();
      c.write(buildFrame({ opcode: OP.BINARY, payload: Buffer.alloc(8), declaredLength: 16 * MiB + 1 }));
      await expectFailStrict(c, 1009);
    });

    it('53a message over a 1000-byte limit in 1-byte fragments → fail 1009 when the total crosses it', async () => {
      const s = await h.startExtra({ path: '/', maxMessage: 1000 });
      const c = await h.open({}, s.port);
      // The limit itself is fine: 1000 bytes in 1-byte fragments are echoed.
      const ok = [T('a', { fin: false }), ...Array.from({ length: 998 }, () => CONT('b', { fin: false })), CONT('c')];
      c.write(Buffer.concat(ok));
      expect((await c.nextMessage()).payload.length).toBe(1000);
      const over = [T('a', { fin: false }), ...Array.from({ length: 1000 }, () => CONT('b', { fin: false })), CONT('c')];
      c.write(Buffer.concat(over));
      await expectFailStrict(c, 1009);
    });

    itNeeds(target, ['messageTimeoutMs'], '53b 100 000 one-byte fragments of a message that never ends → fail 1008 (message timeout)', async () => {
      // A fragment count costs no memory beyond the message (one reassembly buffer), so it is
      // not what stops this: the message must be complete within messageTimeoutMs.
      const s = await h.startExtra({ path: '/', messageTimeoutMs: 1000 });
      const c = await h.open({}, s.port);
      const frames = [B('x', { fin: false }), ...Array.from({ length: 99_999 }, () => CONT('x', { fin: false }))];
      await c.writeChopped(Buffer.concat(frames), 64 * 1024);
      await expectFailStrict(c, 1008, { timeoutMs: 4000 });
    });

    it('54 10 000 pings of 125 bytes in one burst, reader paused → bounded pongs; server survives', async () => {
      const c = await h.open();
      c.socket.pause();
      const burst = Buffer.concat(Array.from({ length: 10_000 }, (_, i) => P(Buffer.alloc(125, 0x30 + (i % 10)))));
      c.socket.write(burst);
      await new Promise((r) => setTimeout(r, 300)); // the slow reader: let the server's output back up
      c.socket.resume();
      let pongs = 0;
      let closeCode: number | null | undefined;
      for (;;) {
        const e = await c.next(1000);
        if (!e) break;
        if (e.type !== 'frame') break;
        if (e.frame.opcode === OP.PONG) {
          expect(e.frame.payload.length).toBe(125);
          pongs++;
          if (pongs === 10_000) break;
        } else if (e.frame.opcode === OP.CLOSE) {
          closeCode = e.frame.closeCode;
          break;
        } else throw new Error(`unexpected opcode ${e.frame.opcode}`);
      }
      expect(pongs).toBeLessThanOrEqual(10_000);
      // Either the connection survived (it still echoes) or it was closed for policy/overload.
      if (closeCode === undefined) await expectEcho(c, 'after the flood');
      else expect([1008, 1013]).toContain(closeCode);
      const fresh = await h.open();
      await expectEcho(fresh, 'server alive');
    });

    itNeeds(target, ['idleTimeoutMs'], '55 idle connection → Close 1001 after the idle timeout, server closes TCP', async () => {
      const s = await h.startExtra({ path: '/', idleTimeoutMs: 500 });
      const c = await h.open({}, s.port);
      await expectFailStrict(c, 1001, { timeoutMs: 2500 });
    });

    itNeeds(target, ['maxConnections'], '56 connection limit 3: the 4th is refused (503 or TCP close), the others keep working', async () => {
      const s = await h.startExtra({ path: '/', maxConnections: 3 });
      const open = [await h.open({}, s.port), await h.open({}, s.port), await h.open({}, s.port)];
      const extra = await h.connect(s.port);
      extra.write(buildRequest(s.port));
      const head = await extra.readHead(2000);
      if (head) await expectRefused(extra, [503], 'connection over the limit');
      else expect(extra.peerEnded, 'refused by closing TCP').toBe(true);
      for (const [i, c] of open.entries()) await expectEcho(c, `still working ${i}`);
    });
  });
}
