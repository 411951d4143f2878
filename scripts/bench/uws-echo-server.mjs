/**
 * uWebSockets.js echo (or broadcast) server for the WebSocket benchmark: the fast reference.
 *
 *   node scripts/bench/uws-echo-server.mjs [--host 127.0.0.1] [--port 0] [--broadcast]
 *
 * The package silently falls back to a JavaScript implementation when its native binary does
 * not load; that would make every comparison meaningless, so the server refuses to start unless
 * `uws.App` is native code.
 *
 * Broadcast uses uWS's own publish/subscribe (every socket subscribes to one topic and
 * `app.publish` sends to all of them, the sender included): the way uWS is meant to fan out.
 */
import uws from '@trufflesuite/uws-js-unofficial';
import { parseServerArgs, MAX_PAYLOAD } from './server-args.mjs';

if (!/native code/.test(String(uws.App))) {
  console.error('uWebSockets.js is not the native binary (JavaScript fallback loaded); refusing to benchmark');
  process.exit(3);
}

const opts = parseServerArgs(process.argv.slice(2));
const TOPIC = 'all';
let listenSocket = null;

const app = uws.App().ws('/*', {
  compression: uws.DISABLED,
  maxPayloadLength: MAX_PAYLOAD,
  // Slow receivers must not be skipped (publish) or closed: the load generator counts every
  // message, and a skipped one would be reported as lost.
  maxBackpressure: 256 * 1024 * 1024,
  closeOnBackpressureLimit: false,
  idleTimeout: 0,
  sendPingsAutomatically: false,
  open: (ws) => {
    if (opts.broadcast) ws.subscribe(TOPIC);
  },
  message: (ws, message, isBinary) => {
    if (opts.broadcast) app.publish(TOPIC, message, isBinary);
    else ws.send(message, isBinary);
  },
});

app.listen(opts.host, opts.port, (token) => {
  if (!token) {
    console.error(`uWS could not listen on ${opts.host}:${opts.port}`);
    process.exit(1);
  }
  listenSocket = token;
  console.log(`listening on ws://${opts.host}:${uws.us_socket_local_port(token)}/`);
});

function stop() {
  if (listenSocket) uws.us_listen_socket_close(listenSocket);
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
