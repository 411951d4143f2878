/**
 * Sanity checks of every peer launcher: start, echo one text and one binary message, stop
 * (process group gone). Our own tools are checked once they are built.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  connectWsClient,
  ospreyToolsBuilt,
  OSPREY_ECHO_SERVER,
  runPythonClient,
  runWsClient,
  startOspreyEchoClient,
  startOspreyEchoServer,
  startPythonEchoServer,
  startUwsEchoServer,
  startWsEchoServer,
  uwsIsNative,
  withTimeout,
  type PeerProcess,
} from './index.ts';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { WebSocketServer } from 'ws';

const started: PeerProcess[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop()));
});

async function track(p: Promise<PeerProcess>): Promise<PeerProcess> {
  const peer = await p;
  started.push(peer);
  return peer;
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

async function expectEchoAndStop(peer: PeerProcess) {
  expect(peer.host).toBe('127.0.0.1');
  expect(peer.port).toBeGreaterThan(0);
  const replies = await runWsClient(peer.url, ['héllo', Buffer.from([0, 1, 2, 255])]);
  expect(replies.map((r) => [r.isBinary, r.data.toString('hex')])).toEqual([
    [false, Buffer.from('héllo').toString('hex')],
    [true, '000102ff'],
  ]);
  const exit = await peer.stop();
  expect(exit.code === 0 || exit.signal === 'SIGTERM', `exit ${JSON.stringify(exit)}`).toBe(true);
  expect(groupAlive(peer.pid)).toBe(false);
}

describe('peer launchers', () => {
  it('python3-websockets echo server (/usr/bin/python3, websockets 10.4)', async () => {
    await expectEchoAndStop(await track(startPythonEchoServer()));
  });

  it('python3-websockets echo server echoes a 2 MiB message (max_size 16 MiB)', async () => {
    const peer = await track(startPythonEchoServer());
    const big = Buffer.alloc(2 * 1024 * 1024, 0x5a);
    const [r] = await runWsClient(peer.url, [big], 5000);
    expect(r!.data.equals(big)).toBe(true);
  });

  it('python3-websockets client against the ws echo server', async () => {
    const peer = await track(startWsEchoServer());
    const r = await runPythonClient(peer.url, { send: ['one', 'two'], sendBinary: [Buffer.from('00ff', 'hex')] });
    expect(r.code, r.output.join('\n')).toBe(0);
    expect(r.events.map((e) => e.type)).toEqual(['open', 'text', 'text', 'binary', 'close']);
    expect(r.events.filter((e) => e.type === 'binary').map((e) => (e as { hex: string }).hex)).toEqual(['00ff']);
  });

  it('ws echo server and ws client helper', async () => {
    await expectEchoAndStop(await track(startWsEchoServer()));
  });

  it('uWebSockets.js echo server runs its native binary', async () => {
    expect(uwsIsNative(), 'uWS.App is native code in this process').toBe(true);
    const peer = await track(startUwsEchoServer());
    expect(peer.output).toContain('uws native: true');
    await expectEchoAndStop(peer);
  });

  it('uWebSockets.js echo server pushes unsolicited messages on open and periodically', async () => {
    const peer = await track(startUwsEchoServer({ pushOnOpen: 'welcome', pushIntervalMs: 50, pushMessage: 'tick' }));
    const c = await connectWsClient(peer.url);
    try {
      expect((await c.next()).data.toString()).toBe('welcome');
      expect((await c.next()).data.toString()).toBe('tick');
      expect(c.errors).toEqual([]);
    } finally {
      c.ws.terminate();
    }
  });

  it.skipIf(!existsSync(OSPREY_ECHO_SERVER))('osprey ws-echo-server (build/tools)', async () => {
    await expectEchoAndStop(await track(startOspreyEchoServer()));
  });

  it.skipIf(!ospreyToolsBuilt())('osprey ws-echo-client echoes a pushed message and exits 0 when the server closes', async () => {
    // An in-process ws server (not an echo server, or the two would ping-pong forever).
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    wss.on('error', () => {});
    await once(wss, 'listening');
    const echoed = new Promise<string>((resolve) =>
      wss.on('connection', (ws) => {
        ws.on('error', () => {});
        ws.on('message', (d) => {
          resolve(d.toString());
          ws.close(1000, 'done');
        });
        ws.send('echo me');
      }),
    );
    const client = startOspreyEchoClient(`ws://127.0.0.1:${(wss.address() as { port: number }).port}/`);
    try {
      expect(await withTimeout(echoed, 5000, 'echo from ws-echo-client')).toBe('echo me');
      const exit = await withTimeout(client.exited, 5000, 'ws-echo-client exit');
      expect(exit.code, client.output.join('\n')).toBe(0);
    } finally {
      await client.stop();
      await new Promise((r) => wss.close(r));
    }
  });
});
