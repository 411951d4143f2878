#!/usr/bin/env node
/**
 * Echo server on npm `ws` (a well-conforming Node peer). Echoes text and binary byte for byte;
 * permessage-deflate off; max message 16 MiB. Prints `listening on ws://HOST:PORT/PATH`.
 *   node ws-echo-server.mjs [--host 127.0.0.1] [--port 0] [--path /] [--max-payload N]
 * Stops on SIGTERM/SIGINT.
 */
import { WebSocketServer } from 'ws';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    path: { type: 'string' },
    'max-payload': { type: 'string', default: String(16 * 1024 * 1024) },
  },
});

const wss = new WebSocketServer({
  host: values.host,
  port: Number(values.port),
  path: values.path,
  maxPayload: Number(values['max-payload']),
  perMessageDeflate: false,
});
wss.on('error', (e) => {
  console.error(`ws-echo-server: ${e.message}`);
  process.exit(1);
});
wss.on('connection', (ws) => {
  ws.on('error', () => {}); // protocol errors close the socket; ws reports them here
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on('listening', () => {
  const { port } = wss.address();
  console.log(`listening on ws://${values.host}:${port}${values.path ?? '/'}`);
});
const stop = () => {
  for (const c of wss.clients) c.terminate();
  wss.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
