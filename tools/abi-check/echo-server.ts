/**
 * The peer of the client probes: a Node `ws` server on loopback, independent of the library under
 * test. `/push` sends "abi-probe:push N" every 10 ms (so messages are in flight when a client
 * closes) and echoes what it receives; any other path only echoes.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface EchoServer {
  url: string;
  close(): Promise<void>;
}

export async function startEchoServer(): Promise<EchoServer> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  const timers = new Set<NodeJS.Timeout>();
  wss.on('error', () => {});
  wss.on('connection', (socket: WebSocket, req) => {
    socket.on('error', () => {});
    socket.on('message', (data, isBinary) => {
      if (socket.readyState === socket.OPEN) socket.send(data, { binary: isBinary });
    });
    if (req.url?.startsWith('/push')) {
      let n = 0;
      const timer = setInterval(() => {
        // Bounded: a probe never needs more than a few seconds of traffic.
        if (socket.readyState !== socket.OPEN || n >= 1000) {
          clearInterval(timer);
          timers.delete(timer);
          return;
        }
        socket.send(`abi-probe:push ${n++}`);
      }, 10);
      timers.add(timer);
      socket.on('close', () => {
        clearInterval(timer);
        timers.delete(timer);
      });
    }
  });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const { port } = wss.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearInterval(t);
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}
