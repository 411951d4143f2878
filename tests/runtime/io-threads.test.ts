/**
 * OSPREY_IO_THREADS (docs/WEBSOCKET-RUNTIME.md#loops-per-core) on the release ws-echo-server:
 * the number of I/O loop threads the process runs is the one asked for (1 must stay valid), a
 * server with several loops echoes to clients spread over all of them, and a value outside
 * 1..64 is the Err of the first WebSocket call, naming the variable. Loopback only, every
 * process stopped.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { freePort, OSPREY_ECHO_SERVER, spawnPeer, type PeerProcess } from '../peers/index.ts';

const started: PeerProcess[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop()));
});

/** Threads of `pid` named `name`: by default the I/O loops (runtime-c/src/loop.h OSP_WS_LOOP_THREAD_NAME). */
function ioThreads(pid: number, name = 'osprey-ws-io'): number {
  return readdirSync(`/proc/${pid}/task`).filter((t) => {
    try {
      return readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim() === name;
    } catch {
      return false; // the thread ended meanwhile
    }
  }).length;
}

async function echoServer(loops: string): Promise<PeerProcess> {
  const server = await spawnPeer({
    name: 'ws-echo-server',
    command: OSPREY_ECHO_SERVER,
    args: ['--port', String(await freePort())],
    pipeStdin: true,
    env: { OSPREY_IO_THREADS: loops },
  });
  started.push(server);
  return server;
}

describe('OSPREY_IO_THREADS', () => {
  it.each([1, 2, 3])('%i loop(s): that many I/O threads, and every client of the server is echoed', async (loops) => {
    const server = await echoServer(String(loops));
    expect(ioThreads(server.pid)).toBe(loops);
    // The listening socket is served by its own acceptor thread, not by a loop
    // (docs/WEBSOCKET-RUNTIME.md#tls-handshakes).
    expect(ioThreads(server.pid, 'osprey-acceptor')).toBe(1);
    // More clients than loops, connected one after the other: the acceptor places them on
    // every loop in turn; each must get its own messages back, in order.
    const clients = await Promise.all(
      Array.from({ length: 2 * loops + 1 }, async () => {
        const ws = new WebSocket(server.url);
        await once(ws, 'open');
        return ws;
      }),
    );
    try {
      await Promise.all(
        clients.map(async (ws, i) => {
          const got: string[] = [];
          const done = new Promise<void>((resolve) =>
            ws.on('message', (data) => {
              got.push(String(data));
              if (got.length === 20) resolve();
            }),
          );
          for (let m = 0; m < 20; m++) ws.send(`client ${i} message ${m}`);
          await done;
          expect(got).toEqual(Array.from({ length: 20 }, (_, m) => `client ${i} message ${m}`));
        }),
      );
    } finally {
      for (const ws of clients) ws.close();
    }
  }, 30_000);

  it.each(['0', '65', 'two', '2x'])('OSPREY_IO_THREADS=%s is refused with a message naming it', (value) => {
    const r = spawnSync(OSPREY_ECHO_SERVER, ['--port', '1'], {
      input: '',
      env: { ...process.env, OSPREY_IO_THREADS: value },
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      `websocketCreateServer: cannot start the I/O loops: OSPREY_IO_THREADS must be a whole number from 1 to 64 (got '${value}')`,
    );
  });
});
