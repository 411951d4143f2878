/**
 * The peer of `npm run bench:cluster`: one node of a WebSocket cluster built the way users of
 * uWebSockets.js do it — uWS's own pub/sub for the local fan-out, a Redis channel (ioredis, one
 * publishing and one subscribed connection) between the nodes.
 *
 *   node scripts/bench/uws-cluster-node.mjs --port P --redis redis://127.0.0.1:6379/0 --channel room
 *
 * Same protocol as the Osprey node of the benchmark (tests/cluster/node-program.ts): a text
 * message starting with "bc:" is broadcast to every client of every node, the sender's included;
 * each node delivers its own copy locally at once and publishes once to Redis. A bus message is
 * the node's random id, a space, then the payload, so a node skips its own.
 *
 * Plain JavaScript run with `node`; prints `listening on ws://127.0.0.1:P/` when ready.
 */
import uws from '@trufflesuite/uws-js-unofficial';
import Redis from 'ioredis';
import { randomBytes } from 'node:crypto';

if (!/native code/.test(String(uws.App))) {
  console.error('uWebSockets.js is not the native binary (JavaScript fallback loaded); refusing to benchmark');
  process.exit(3);
}

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const port = Number(opt('--port', '0'));
const redisUrl = opt('--redis', 'redis://127.0.0.1:6379/0');
const channel = opt('--channel', 'room');
const nodeId = randomBytes(8).toString('hex');
const TOPIC = 'room';

const pub = new Redis(redisUrl, { enableOfflineQueue: true, lazyConnect: true });
const sub = new Redis(redisUrl, { lazyConnect: true });
await pub.connect();
await sub.connect();

let app;
sub.on('messageBuffer', (_channel, message) => {
  const sep = message.indexOf(0x20);
  if (sep < 0 || message.toString('latin1', 0, sep) === nodeId) return;
  app.publish(TOPIC, message.subarray(sep + 1), false);
});
await sub.subscribe(channel);
const prefix = Buffer.from(`${nodeId} `);

app = uws.App().ws('/*', {
  compression: uws.DISABLED,
  maxPayloadLength: 16 * 1024 * 1024,
  maxBackpressure: 256 * 1024 * 1024,
  closeOnBackpressureLimit: false,
  idleTimeout: 0,
  sendPingsAutomatically: false,
  open: (ws) => ws.subscribe(TOPIC),
  message: (ws, message, isBinary) => {
    const m = Buffer.from(message); // uWS reuses the buffer after the callback
    if (m.length >= 3 && m[0] === 0x62 && m[1] === 0x63 && m[2] === 0x3a) {
      app.publish(TOPIC, m, isBinary);
      pub.publish(channel, Buffer.concat([prefix, m]));
    }
  },
});

app.listen('127.0.0.1', port, (token) => {
  if (!token) {
    console.error(`uWS could not listen on 127.0.0.1:${port}`);
    process.exit(1);
  }
  console.log(`listening on ws://127.0.0.1:${uws.us_socket_local_port(token)}/`);
});

const stop = () => {
  pub.disconnect();
  sub.disconnect();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
