/**
 * WebSocket message handlers run as fibers on the scheduler, never on the WebSocket I/O thread:
 * a handler that sleeps delays only its own connection, messages of one connection are handled
 * one at a time and in order, and a handler may itself connect to another server (on the I/O
 * thread that connect would have waited for the very thread it blocked). The compiled server
 * (programs.ts, fiberHandlerServer) answers every message with a top-level `let` as prefix, so
 * each answer also proves that handler fibers read top-level lets safely.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectWsClient, freePort, spawnPeer, type PeerProcess, type WsClient } from '../peers/index.ts';
import { workspace, type Workspace } from './compile.ts';
import { fiberHandlerServer } from './programs.ts';

let ws: Workspace;
let server: PeerProcess;
let url: string;

beforeAll(async () => {
  ws = workspace();
  const port = await freePort();
  let echoPort = await freePort();
  while (echoPort === port) echoPort = await freePort();
  const exe = await ws.build('fiber_handler_server', fiberHandlerServer(port, echoPort, 120_000));
  server = await spawnPeer({ name: 'osprey-fiber-handler-server', command: exe, args: [] });
  url = `ws://127.0.0.1:${port}/h`;
}, 90_000);

afterAll(async () => {
  await server?.stop();
  ws?.dispose();
});

async function closeAll(clients: WsClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

describe('WebSocket handlers as fibers', () => {
  it('a handler sleeping 1 s delays only its own connection (50 connections)', async () => {
    const clients: WsClient[] = [];
    try {
      for (let i = 0; i < 50; i++) clients.push(await connectWsClient(url));
      const [sleeper, ...others] = clients;
      // 49 connections × 10 sequential round trips; returns each one's latency and completion time.
      const roundTrips = async (tag: string): Promise<{ ms: number; at: number }[]> => {
        const done: { ms: number; at: number }[] = [];
        await Promise.all(
          others.map(async (c, i) => {
            for (let k = 0; k < 10; k++) {
              const text = `${tag}c${i}-m${k}`;
              const t0 = performance.now();
              c.send(text);
              const m = await c.next(5000);
              done.push({ ms: performance.now() - t0, at: performance.now() });
              expect(m.data.toString()).toBe(`echo:${text}`);
            }
          }),
        );
        return done;
      };
      // The yardstick: the same round trips on the same machine just before, with no handler
      // asleep. The bounds below are relative to it, so a loaded machine (load 15-30) that slows
      // every round trip does not fail the test, while the bug still does.
      const baselineStart = performance.now();
      const baseline = (await roundTrips('base-')).map((d) => d.ms).sort((a, b) => a - b);
      const baselineMs = performance.now() - baselineStart;
      const sleepStart = performance.now();
      sleeper.send('sleep');
      sleeper.send('after-sleep'); // queued behind the sleeping handler: same connection, in order
      let wokeAt = Infinity;
      const sleepReply = sleeper.next(5000).then((m) => ((wokeAt = performance.now()), m));
      const during = await roundTrips('');
      expect((await sleepReply).data.toString()).toBe('echo:slept');
      const slept = wokeAt - sleepStart;
      expect((await sleeper.next(5000)).data.toString()).toBe('echo:after-sleep');
      expect(during).toHaveLength(490);
      expect(slept).toBeGreaterThanOrEqual(990);
      // The others were served while the handler slept. With the handler on the I/O thread
      // nothing is served during the sleep: at most the one round trip per connection that
      // reached the server before the sleep message (49) completes before the sleeper's answer.
      // Idle, all 490 do (in ~50 ms). The yardstick's pace says how many this machine can do in
      // 1 s right now; a quarter of that (a loaded CI machine's stalls) and never fewer than 98,
      // twice what the bug allows.
      const servedWhileAsleep = during.filter((d) => d.at < wokeAt).length;
      const paceIn1s = Math.min(490, (490 * 1000) / baselineMs);
      const floor = Math.max(98, Math.floor(paceIn1s / 4));
      expect(
        servedWhileAsleep,
        `${servedWhileAsleep} of 490 round trips completed during the 1 s sleep (yardstick: 490 in ${baselineMs.toFixed(0)} ms)`,
      ).toBeGreaterThanOrEqual(floor);
      // With the handler on the I/O thread, the round trips queued behind the sleep wait up to
      // 1 s (the first of each of 49 connections: 10% of them, so p99 shows it). Typically p99 is a
      // few ms; the bound is 400 ms or 4x the yardstick's p99, whichever is larger.
      const latencies = during.map((d) => d.ms).sort((a, b) => a - b);
      const bound = Math.max(400, 4 * percentile(baseline, 99));
      expect(percentile(latencies, 99), `p99 ${percentile(latencies, 99).toFixed(1)} ms; yardstick p99 ${percentile(baseline, 99).toFixed(1)} ms`).toBeLessThan(bound);
    } finally {
      await closeAll(clients);
    }
  }, 30_000);

  it('keeps per-connection order with many messages while handlers yield', async () => {
    const clients: WsClient[] = [];
    try {
      for (let i = 0; i < 8; i++) clients.push(await connectWsClient(url));
      const count = 400;
      await Promise.all(
        clients.map(async (c, i) => {
          for (let k = 0; k < count; k++) c.send(`n${i}.${k}`); // all at once: they queue up
          for (let k = 0; k < count; k++) expect((await c.next(10_000)).data.toString()).toBe(`echo:n${i}.${k}`);
        }),
      );
    } finally {
      await closeAll(clients);
    }
  }, 60_000);

  it('a handler may connect to another server and relay its answer', async () => {
    const c = await connectWsClient(url);
    try {
      c.send('relay');
      expect((await c.next(5000)).data.toString()).toBe('via echo: relayed');
      // The relaying handler returned (websocketClose waited for its client); the connection
      // goes on being served.
      c.send('still here');
      expect((await c.next(5000)).data.toString()).toBe('echo:still here');
    } finally {
      await c.close();
    }
  }, 20_000);

  it('a handler returning Err is reported on stderr and the connection stays open', async () => {
    const c = await connectWsClient(url);
    try {
      c.send('fail');
      c.send('next');
      expect((await c.next(5000)).data.toString()).toBe('echo:next');
      // stderr is a separate pipe: its line may reach the test after the echo does.
      const reported = () => server.output.some((l) => /stderr: websocket server \d+ connection \d+: handler error: asked to fail/.test(l));
      for (let waited = 0; !reported() && waited < 5000; waited += 50) await new Promise((r) => setTimeout(r, 50));
      expect(reported()).toBe(true);
    } finally {
      await c.close();
    }
  }, 20_000);

  it('answers a burst far over the per-connection inbox bound completely and in order', async () => {
    // 200 messages of 64 KiB (12.5 MiB) sent at once are far over the 1 MiB bound on what may
    // wait for one connection's handler: reading that socket pauses and resumes as the handler
    // catches up, and no message is dropped, reordered or failed on the way.
    const c = await connectWsClient(url);
    try {
      const big = 'x'.repeat(64 * 1024);
      for (let k = 0; k < 200; k++) c.send(`${k}:${big}`);
      for (let k = 0; k < 200; k++) {
        const m = (await c.next(20_000)).data.toString();
        expect(m.slice(0, 16)).toBe(`echo:${k}:xxxxxxxxxxxxxxxxx`.slice(0, 16));
        expect(m.length).toBe(`echo:${k}:`.length + big.length);
      }
    } finally {
      await c.close();
    }
  }, 60_000);
});
