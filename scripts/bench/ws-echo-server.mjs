/**
 * `ws` (npm) echo (or broadcast) server for the WebSocket benchmark: the most used Node server.
 *
 *   node scripts/bench/ws-echo-server.mjs [--host 127.0.0.1] [--port 0] [--broadcast]
 *
 * permessage-deflate is off (the other servers do not offer it either); bufferutil and
 * utf-8-validate are installed, so ws uses its native masking and UTF-8 helpers. Broadcast is
 * the loop from the ws README: send the received message to every open client.
 */
import { WebSocketServer, WebSocket } from 'ws';
import { parseServerArgs, MAX_PAYLOAD } from './server-args.mjs';

const opts = parseServerArgs(process.argv.slice(2));

const wss = new WebSocketServer({
  host: opts.host,
  port: opts.port,
  perMessageDeflate: false,
  maxPayload: MAX_PAYLOAD,
  clientTracking: true,
});

wss.on('connection', (ws) => {
  ws.on('error', () => {}); // a reset peer must not crash the server
  ws.on('message', (data, isBinary) => {
    if (opts.broadcast) {
      for (const client of wss.clients) {
        if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
      }
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
});

wss.on('listening', () => {
  const addr = wss.address();
  console.log(`listening on ws://${opts.host}:${addr.port}/`);
});
wss.on('error', (err) => {
  console.error(`ws server error: ${err.message}`);
  process.exit(1);
});

function stop() {
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
