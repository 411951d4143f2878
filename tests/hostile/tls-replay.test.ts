/**
 * ClientHello replay against a wss:// server (docs/WEBSOCKET-RUNTIME.md#tls-handshakes): one
 * peer opens connection after connection and replays a captured ClientHello on each
 * (scripts/hostile/tls_replay.mjs), so every one it gets through costs the server a key
 * exchange and a signature. Meanwhile an established wss:// connection from the same address
 * measures its echo round trip. The release ws-echo-server must:
 *  - answer at most maxTlsHandshakeRatePerIp ClientHellos per second from that address (a burst
 *    of one second's worth, then the rate) and close the rest before any TLS work;
 *  - keep the established connection's echo round trip short. The same connection's round trip
 *    without the attack, measured just before it, is the yardstick (this machine may be busy
 *    with other work, and the attacker itself takes CPU): during the attack p50 stays within
 *    4× + 12 ms of it and p90 within 3× + 50 ms, bounds that hold on a heavily loaded 2-core
 *    machine — before the handshake bounds p50 went from 0.2 ms to 16–31 ms. When the machine
 *    is quiet enough to tell (load average under one per core, the yardstick's p99 under 3 ms),
 *    p99 during the attack must also stay under 10 ms: the bound the handshake threads are for
 *    (docs/WEBSOCKET-RUNTIME.md#tls-handshakes, which has the figures: with this dense sampling
 *    a quiet machine kept the build before the threads under it too; the sparser sampling of
 *    an earlier version, one round trip every 5 ms, measured 10.8–16 ms before and 8–13.6 ms
 *    after). About 2,000 round trips are measured during the attack, so p99 is the 20th worst,
 *    not one stall;
 *  - accept a new wss:// client from another address (127.0.0.2) during the attack within 3 s
 *    (the acceptor thread drains the replays; a full backlog would cost SYN retransmissions),
 *    and one from the attacker's address once the attack stops.
 * A low rate set with --limit shows the refusal deterministically, and peers holding 300
 * unfinished TLS handshakes open cannot lock a new client out (a loop keeps at most 256; a new
 * one drops the oldest; with two loops each keeps 256). Loopback only, a few seconds, every
 * process stopped.
 *
 * By hand, a longer attack (the percentiles are printed; OSPREY_IO_THREADS picks the loops,
 * TLS_REPLAY_SERVER another build's ws-echo-server to compare with):
 *   TLS_REPLAY_SECONDS=20 OSPREY_IO_THREADS=1 npx vitest run tests/hostile/tls-replay.test.ts -t 'keeps its round trip'
 */
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { freePort, makeTestCertificates, OSPREY_ECHO_SERVER, runTlsReplay, spawnPeer, type PeerProcess, type TestCertificates } from '../peers/index.ts';

let dir: string;
let certs: TestCertificates;
const started: PeerProcess[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'osprey-tls-replay-'));
  certs = makeTestCertificates(dir);
}, 60_000);

afterAll(async () => {
  await Promise.all(started.map((p) => p.stop()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** How long the attack runs (TLS_REPLAY_SECONDS by hand, for a measurement with more weight). */
const ATTACK_SECONDS = Number(process.env.TLS_REPLAY_SECONDS ?? 5);

/** The release wss:// echo server; `loops`: OSPREY_IO_THREADS (default: the environment's, else one per core). */
async function secureServer(limits: string[] = [], loops?: number): Promise<PeerProcess> {
  const server = await spawnPeer({
    name: 'wss-echo-server',
    command: process.env.TLS_REPLAY_SERVER ?? OSPREY_ECHO_SERVER,
    args: ['--port', String(await freePort()), '--cert', certs.cert, '--key', certs.key, ...limits.flatMap((l) => ['--limit', l])],
    pipeStdin: true,
    env: loops === undefined ? undefined : { OSPREY_IO_THREADS: String(loops) },
  });
  started.push(server);
  return server;
}

async function openClient(port: number): Promise<WebSocket> {
  const client = new WebSocket(`wss://localhost:${port}/`, { ca: readFileSync(certs.ca) });
  await once(client, 'open');
  return client;
}

/** One echo round trip in milliseconds. */
async function roundTrip(client: WebSocket, text: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  const echoed = once(client, 'message');
  client.send(text);
  const [data] = await echoed;
  expect(String(data)).toBe(text);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

describe('wss:// under a ClientHello replay', () => {
  it('the established connection keeps its round trip; the replays are rate-limited', async () => {
    const server = await secureServer();
    const client = await openClient(server.port);
    try {
      for (let i = 0; i < 20; i++) await roundTrip(client, `warm-up ${i}`);
      // One round trip, then a pause of about a millisecond (the server's loop goes back to
      // sleep, so each round trip includes its wake-up): some 2,000 samples in 5 s.
      const measure = async (ms: number, label: string) => {
        const rtts: number[] = [];
        const until = Date.now() + ms;
        while (Date.now() < until) {
          rtts.push(await roundTrip(client, `${label} ${rtts.length}`));
          await new Promise((r) => setTimeout(r, 1));
        }
        return rtts.sort((a, b) => a - b);
      };
      const loadBefore = loadavg()[0];
      const quiet = await measure(1500, 'quiet');
      const seconds = ATTACK_SECONDS;
      const attack = runTlsReplay(server.port, seconds, 128);
      // Give the attacker a moment to capture its ClientHello and get going.
      await new Promise((r) => setTimeout(r, 300));
      // Meanwhile a legitimate client from another address (127.0.0.2, loopback too, so the
      // attacker's rate does not apply to it) connects in the middle of the attack: the acceptor
      // thread must take it from behind the replays promptly, however busy the machine.
      const newcomer = (async () => {
        await new Promise((r) => setTimeout(r, Math.min(1500, seconds * 300)));
        const t0 = Date.now();
        const c = new WebSocket(`wss://localhost:${server.port}/`, { ca: readFileSync(certs.ca), localAddress: '127.0.0.2' });
        const opened = once(c, 'open').then(() => true);
        const gaveUp = new Promise<boolean>((r) => setTimeout(() => r(false), 10_000));
        const ok = await Promise.race([opened, gaveUp]);
        const openMs = Date.now() - t0;
        if (ok) await roundTrip(c, 'newcomer');
        c.terminate();
        return ok ? openMs : Infinity;
      })();
      const rtts = await measure((seconds - 0.6) * 1000, 'during the attack');
      const report = await attack;
      const newcomerOpenMs = await newcomer;
      const p50 = quantile(rtts, 0.5);
      const p90 = quantile(rtts, 0.9);
      const p99 = quantile(rtts, 0.99);
      const quietP50 = quantile(quiet, 0.5);
      const quietP90 = quantile(quiet, 0.9);
      const quietP99 = quantile(quiet, 0.99);
      console.log(
        `tls replay (${seconds} s, loops: ${process.env.OSPREY_IO_THREADS ?? 'one per core'}, load average ${loadBefore.toFixed(2)} before, ${loadavg()[0].toFixed(2)} after): ${JSON.stringify(report)}; ` +
          `echo round trip without the attack (${quiet.length} samples) p50 ${quietP50.toFixed(2)} ms, p90 ${quietP90.toFixed(2)} ms, p99 ${quietP99.toFixed(2)} ms, max ${quiet.at(-1)!.toFixed(2)} ms; ` +
          `during it (${rtts.length} samples) p50 ${p50.toFixed(2)} ms, p90 ${p90.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${rtts.at(-1)!.toFixed(2)} ms; ` +
          `a new client from another address opened in ${newcomerOpenMs} ms during it`,
      );
      // The attack did run at full speed, and the server did TLS work for at most one second's
      // burst plus the default rate (200/s) over the run, with slack for timing.
      expect(report.attempts).toBeGreaterThan(1500);
      expect(report.answered).toBeLessThanOrEqual(200 + 200 * seconds + 100);
      expect(report.refused + report.busy).toBeGreaterThan(report.attempts - report.answered - 200);
      expect(rtts.length).toBeGreaterThan(200);
      // TCP, TLS (on the idle-class handshake threads) and the upgrade, on a possibly busy
      // machine: a second, not the SYN retransmissions of a backlog left full.
      expect(newcomerOpenMs, 'a new client from another address, during the attack (ms to open)').toBeLessThan(3000);
      expect(p50, 'median echo round trip during the attack').toBeLessThan(4 * quietP50 + 12);
      expect(p90, '90th percentile echo round trip during the attack').toBeLessThan(3 * quietP90 + 50);
      // The absolute bound, only where it means something: on a quiet machine, one whose load
      // average was under one runnable thread per core when the test began and where the same
      // connection's p99 without the attack is under 3 ms. On a busy one (CI running other test
      // files on the same 2 cores) p99 is set by other programs' scheduling, attack or not: a
      // quiet yardstick alone is no proof, the other work comes and goes within seconds.
      const quietMachine = quietP99 < 3 && loadBefore < cpus().length;
      if (quietMachine) expect(p99, '99th percentile echo round trip during the attack (quiet machine)').toBeLessThan(10);
      // The same address gets a new wss:// connection once the attack is over.
      const later = await openClient(server.port);
      expect(await roundTrip(later, 'after the attack')).toBeLessThan(1000);
      later.close();
    } finally {
      client.terminate();
    }
  }, (ATTACK_SECONDS + 40) * 1000);

  it('maxTlsHandshakeRatePerIp: over the rate, connections are closed before any TLS work', async () => {
    const server = await secureServer(['maxTlsHandshakeRatePerIp=5']);
    const outcomes: string[] = [];
    const t0 = Date.now();
    for (let i = 0; i < 15; i++) {
      outcomes.push(
        await new Promise<string>((resolve) => {
          const t = tlsConnect({ port: server.port, host: '127.0.0.1', servername: 'localhost', ca: readFileSync(certs.ca) }, () => {
            resolve('handshake');
            t.destroy();
          });
          t.on('error', (e: NodeJS.ErrnoException) => resolve(`refused ${e.code ?? e.message}`));
        }),
      );
    }
    // A burst of five (one second's worth), then one every 200 ms: 15 quick attempts get 5 or 6.
    // On a loaded machine the attempts take longer, and the rate lets one more through per
    // 200 ms they took; some are refused whatever the load.
    const elapsedMs = Date.now() - t0;
    const done = outcomes.filter((o) => o === 'handshake').length;
    expect(done, outcomes.join(', ')).toBeGreaterThanOrEqual(5);
    expect(done, `${outcomes.join(', ')} in ${elapsedMs} ms`).toBeLessThanOrEqual(7 + Math.floor(elapsedMs / 200));
    expect(done, outcomes.join(', ')).toBeLessThan(15);
    expect(outcomes.slice(0, 5)).toEqual(Array(5).fill('handshake'));
    // After the rate has paid off, the address is served again.
    await new Promise((r) => setTimeout(r, 1100));
    const client = await openClient(server.port);
    expect(await roundTrip(client, 'paid off')).toBeLessThan(1000);
    client.close();
  }, 60_000);

  it.each([1, 2])('unfinished handshakes held open on %i I/O loop(s): past 256 per loop the oldest are dropped, a new client is served at once', async (loops) => {
    const server = await secureServer(['maxTlsHandshakeRatePerIp=1000000', 'maxHandshakesPerIp=1000000', 'maxConnectionsPerIp=1000000'], loops);
    const idle: Socket[] = [];
    let closedByServer = 0;
    // Connections are placed on the loops in turn: each loop gets 256 + 22 (or 256 + 44 on one).
    const held = 256 * loops + 44;
    try {
      for (let i = 0; i < held; i++) {
        const s = tcpConnect(server.port, '127.0.0.1');
        s.on('error', () => {});
        s.on('close', () => closedByServer++);
        idle.push(s);
        await once(s, 'connect');
      }
      // All accepted, none finishing: the 44 oldest go (the handshake timeout is 10 s away).
      const until = Date.now() + 5000;
      while (closedByServer < 44 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(closedByServer).toBeGreaterThanOrEqual(44);
      expect(closedByServer).toBeLessThan(100);
      const t0 = Date.now();
      const client = await openClient(server.port);
      expect(await roundTrip(client, 'not locked out')).toBeLessThan(1000);
      expect(Date.now() - t0, 'the new client waited for the held handshakes').toBeLessThan(3000);
      client.close();
    } finally {
      for (const s of idle) s.destroy();
    }
  }, 60_000);
});
