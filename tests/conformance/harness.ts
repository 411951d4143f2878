/**
 * Per-target scaffolding for the server-direction files: one shared echo server per target and
 * file (beforeAll/afterAll), extra servers for cases that need another configuration (stopped in
 * afterEach), and every raw connection closed in afterEach.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PeerProcess } from '../peers/index.ts';
import type { EchoServerConfig, ServerFeature, ServerTarget } from './targets.ts';
import { connectRaw, openRaw, Tracker, type HttpHead, type RawConn, type RequestOptions } from './wsraw.ts';

/** The shared server's handshake deadline: short, so case 14 (slowloris) stays quick. */
export const SHARED_HANDSHAKE_TIMEOUT_MS = 1500;

export interface ServerHarness {
  readonly server: PeerProcess;
  readonly port: number;
  /** A tracked TCP connection to the shared server (no handshake yet). */
  connect(port?: number): Promise<RawConn>;
  /** A tracked connection after a valid handshake. */
  open(o?: RequestOptions, port?: number): Promise<RawConn>;
  /** Starts another server of the same target with `cfg`; stopped after the test. */
  startExtra(cfg: EchoServerConfig): Promise<PeerProcess>;
}

export function useServer(target: ServerTarget): ServerHarness {
  const tracker = new Tracker();
  const extra: PeerProcess[] = [];
  let server: PeerProcess | undefined;
  beforeAll(async () => {
    server = await target.start({ path: '/', handshakeTimeoutMs: SHARED_HANDSHAKE_TIMEOUT_MS });
  });
  afterEach(async () => {
    const violations = tracker.violations();
    tracker.closeAll();
    await Promise.all(extra.splice(0).map((p) => p.stop()));
    // S-F7 and RSV: every frame of the server under test is unmasked with RSV=0.
    expect(violations, 'frames from the server under test').toEqual([]);
  });
  afterAll(async () => {
    await server?.stop();
  });
  return {
    get server() {
      return server!;
    },
    get port() {
      return server!.port;
    },
    connect: async (port) => tracker.add(await connectRaw(port ?? server!.port)),
    open: async (o, port) => tracker.add(await openRaw(port ?? server!.port, o)),
    startExtra: async (cfg) => {
      const p = await target.start(cfg);
      extra.push(p);
      return p;
    },
  };
}

/**
 * describe() for one target; when the target cannot run here (binary not built), a single
 * skipped test says why instead of silently skipping every case.
 */
export function describeTarget(target: { name: string; unavailable(): string | null }, ...rest: [string, () => void] | [boolean, string, () => void]): void {
  const [concurrent, title, fn] = rest.length === 3 ? rest : [false, ...rest];
  const reason = target.unavailable();
  if (reason) describe(title, () => it.skip(`target unavailable: ${reason}`));
  else (concurrent ? describe.concurrent : describe)(title, fn);
}

/** `it`, or `it.todo` naming the missing option when the target cannot configure a feature. */
export function itNeeds(target: ServerTarget, features: ServerFeature[], name: string, fn: () => Promise<void>, timeout?: number): void {
  const missing = features.map((f) => target.pending[f]).filter(Boolean);
  if (missing.length) it.todo(`${name} — ${missing.join('; ')}`);
  else it(name, fn, timeout);
}

/** Asserts a refused handshake: one of `statuses`, no 101, and the server closes TCP. */
export async function expectRefused(conn: RawConn, statuses: number[], what: string): Promise<HttpHead> {
  const head = await conn.readHead(2000);
  expect(head?.startLine ?? `no HTTP response (${conn.peerEnded ? 'TCP closed' : 'timeout'})`, what).toMatch(
    new RegExp(`^HTTP/1\\.1 (${statuses.join('|')})\\b`),
  );
  expect(await conn.waitPeerEnd(2000), `${what}: server closes TCP after ${head!.status}`).toBe(true);
  return head!;
}
