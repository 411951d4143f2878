#!/usr/bin/env node
/**
 * Echo server on uWebSockets.js (`@trufflesuite/uws-js-unofficial`): the fast reference server
 * for benchmarks and a lenient interop peer. Refuses to run unless the native binary loaded
 * (the package can fall back to a JavaScript implementation, which would make numbers lie).
 *
 *   node uws-echo-server.mjs [--host 127.0.0.1] [--port 0] [--path /*]
 *        [--push-on-open TEXT] [--push-interval-ms N] [--push-message TEXT]
 *
 * --push-on-open sends TEXT to every client right after its handshake; --push-interval-ms sends
 * --push-message (default "tick N") to every open client every N ms (unsolicited server pushes).
 * Prints `uws native: true`, then `listening on ws://HOST:PORT/PATH`. Stops on SIGTERM/SIGINT.
 */
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const uws = require('@trufflesuite/uws-js-unofficial');
if (!/native code/.test(String(uws.App))) {
  console.error('uws-echo-server: FATAL: uWebSockets.js did not load its native binary (App is not native code)');
  process.exit(3);
}
console.log('uws native: true');

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    path: { type: 'string', default: '/*' },
    'push-on-open': { type: 'string' },
    'push-interval-ms': { type: 'string' },
    'push-message': { type: 'string' },
    'max-payload': { type: 'string', default: String(16 * 1024 * 1024) },
  },
});

const open = new Set();
let ticks = 0;
const app = uws.App().ws(values.path, {
  compression: uws.DISABLED,
  maxPayloadLength: Number(values['max-payload']),
  maxBackpressure: 64 * 1024 * 1024,
  idleTimeout: 0,
  open: (ws) => {
    open.add(ws);
    if (values['push-on-open'] !== undefined) ws.send(values['push-on-open'], false);
  },
  message: (ws, message, isBinary) => {
    ws.send(message, isBinary);
  },
  close: (ws) => {
    open.delete(ws);
  },
});
if (values['push-interval-ms'] !== undefined) {
  setInterval(() => {
    ticks++;
    const msg = values['push-message'] ?? `tick ${ticks}`;
    for (const ws of open) ws.send(msg, false);
  }, Number(values['push-interval-ms']));
}
app.listen(values.host, Number(values.port), (listenSocket) => {
  if (!listenSocket) {
    console.error(`uws-echo-server: cannot listen on ${values.host}:${values.port}`);
    process.exit(1);
  }
  const port = uws.us_socket_local_port(listenSocket);
  const shown = values.path.replace(/\*$/, '');
  console.log(`listening on ws://${values.host}:${port}${shown.startsWith('/') ? shown : '/'}`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
