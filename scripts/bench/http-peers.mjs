#!/usr/bin/env node
/**
 * The reference HTTP servers of `npm run bench:http`: uWebSockets.js (`App().get`, its native
 * binary asserted) or Node's `http`, answering GET / with the same 2-byte text/plain body as the
 * Osprey server. Prints `listening on http://HOST:PORT/`; stops on SIGTERM.
 *
 *   node http-peers.mjs uws|node PORT
 */
import { createRequire } from 'node:module';
import http from 'node:http';

const [kind, portText] = process.argv.slice(2);
const port = Number(portText);
if (kind === 'uws') {
  const require = createRequire(import.meta.url);
  const uws = require('@trufflesuite/uws-js-unofficial');
  if (!/native code/.test(String(uws.App))) {
    console.error('http-peers: uWebSockets.js did not load its native binary');
    process.exit(3);
  }
  uws
    .App()
    .get('/*', (res) => {
      res.writeHeader('Content-Type', 'text/plain').end('hi');
    })
    .listen('127.0.0.1', port, (token) => {
      if (!token) {
        console.error(`http-peers: uws cannot listen on ${port}`);
        process.exit(1);
      }
      console.log(`listening on http://127.0.0.1:${port}/`);
    });
} else if (kind === 'node') {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '2' });
    res.end('hi');
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${port}/`));
} else {
  console.error('usage: http-peers.mjs uws|node PORT');
  process.exit(2);
}
process.on('SIGTERM', () => process.exit(0));
