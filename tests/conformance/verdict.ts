/**
 * Verdicts of docs/WEBSOCKET-RUNTIME.md#conformance-cases for a connection the testee should close:
 *   strict  — a Close frame with one of the expected codes, then TCP closed by the right side
 *             (the server, RFC 6455 §7.1.1 / §5.5.1), and no masking/RSV violations;
 *   lenient — what Autobahn would still pass: TCP dropped without a Close frame, an empty Close,
 *             or the server leaving TCP open after the close exchange ("FAILED BY CLIENT");
 *   fail    — wrong close code, or nothing happened in time.
 * Our CI requires `strict`; the other two are kept so lenient peers (uWS.js) can be characterised.
 */
import { expect } from 'vitest';
import { buildFrame, C, closePayload, describeEvent, OP, type Frame, type RawConn } from './wsraw.ts';

export type VerdictKind = 'strict' | 'lenient' | 'fail';

export interface Verdict {
  kind: VerdictKind;
  detail: string;
  /** The testee's close code: a number, null for an empty Close, undefined when no Close came. */
  code: number | null | undefined;
  /** Frames the testee sent before its Close (echoes, pongs) — cases check these too. */
  before: Frame[];
  /** ms from the start of waiting until the Close frame arrived. */
  closeAfterMs?: number;
}

export interface AwaitCloseOptions {
  /** Which side must close TCP: 'peer' when the testee is the server, 'self' when we are (fake server). */
  closer?: 'peer' | 'self';
  /** How long to wait for the testee's Close (default 2000 ms). */
  timeoutMs?: number;
  /** How long the server may take to close TCP after the close exchange (default 1500 ms). */
  tcpCloseMs?: number;
  /** Whether to answer the testee's Close with our own (default true, as Autobahn does). */
  reply?: boolean;
  /** An empty Close counts as strict (answers to an empty Close, RFC 6455 §5.5.1). */
  acceptEmpty?: boolean;
}

/** Waits for the testee to close the connection and grades it. */
export async function awaitClose(conn: RawConn, codes: number[], o: AwaitCloseOptions = {}): Promise<Verdict> {
  const closer = o.closer ?? (conn.role === 'client' ? 'peer' : 'self');
  const timeoutMs = o.timeoutMs ?? 2000;
  const before: Frame[] = [];
  const start = performance.now();
  for (;;) {
    const left = timeoutMs - (performance.now() - start);
    const e = await conn.next(Math.max(1, left));
    if (!e) return { kind: 'fail', detail: `no Close frame and no TCP close within ${timeoutMs} ms`, code: undefined, before };
    if (e.type === 'end' || e.type === 'error') {
      return { kind: 'lenient', detail: `${describeEvent(e)} without a Close frame`, code: undefined, before };
    }
    const f = e.frame;
    if (f.opcode !== OP.CLOSE) {
      before.push(f);
      continue;
    }
    const closeAfterMs = Math.round(performance.now() - start);
    const code = f.closeCode;
    const v = (kind: VerdictKind, detail: string): Verdict => ({ kind, detail, code, before, closeAfterMs });
    let peerEndedBeforeReply = false;
    if (closer === 'self') {
      // Give a client that would close TCP on its own the chance to show it before we answer.
      await new Promise((r) => setTimeout(r, 100));
      peerEndedBeforeReply = conn.peerEnded;
    }
    if (o.reply ?? true) {
      conn.write(
        conn.role === 'client' ? C(code ?? undefined) : buildFrame({ opcode: OP.CLOSE, payload: closePayload(code ?? undefined), mask: false }),
      );
    }
    if (closer === 'self') conn.end();
    const ended = await conn.waitPeerEnd(o.tcpCloseMs ?? 1500);
    const shown = code === null ? 'an empty Close' : `Close ${code}`;
    if (conn.violations.length) return v('fail', `${shown}, but protocol violations: ${conn.violations.join('; ')}`);
    if (code === null && !o.acceptEmpty) return v('lenient', `${shown} (expected ${codes.join('/')})`);
    if (code !== null && !codes.includes(code)) return v('fail', `wrong code: ${shown} (expected ${codes.join('/')})`);
    if (closer === 'peer' && !ended) return v('lenient', `${shown}, but the server did not close TCP within ${o.tcpCloseMs ?? 1500} ms`);
    if (closer === 'self' && peerEndedBeforeReply) {
      const ms = Math.round(conn.peerEndAt - (start + closeAfterMs));
      return v('lenient', `${shown}, but the client closed TCP first (its FIN came ${ms} ms after its Close, before the server's Close reply)`);
    }
    if (closer === 'self' && !ended) return v('lenient', `${shown}, but the client did not close TCP after the server did`);
    return v('strict', `${shown}, TCP closed by the ${closer === 'peer' ? 'server' : 'fake server first'}`);
  }
}

/** Asserts a strict verdict with codes; returns it for further checks. */
export async function expectFailStrict(conn: RawConn, codes: number | number[], o: AwaitCloseOptions = {}): Promise<Verdict> {
  const v = await awaitClose(conn, Array.isArray(codes) ? codes : [codes], o);
  expect(`${v.kind}: ${v.detail}`).toBe(`strict: ${v.detail}`);
  return v;
}
