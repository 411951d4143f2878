/**
 * The `ws` side of the client benchmark (scripts/bench/ws-client-bench.ts): the same job as
 * scripts/bench/client_100k.osp, in Node with `ws`, in its own process.
 *
 *   node scripts/bench/ws-client.mjs --url ws://127.0.0.1:PORT/ [--count 100000]
 *
 * Connects, sends the text messages "m1" .. "m<count>" as fast as the socket takes them, and
 * checks every echo as it arrives (it must be exactly the next message, in order). Prints `done`
 * once the echo of the last message arrived and all were right, then closes and exits 0. Any
 * problem prints a line starting with `error` and exits 1.
 *
 * Backpressure like the Osprey runtime's: at most about 1 MiB may wait in the client's output
 * (ws's bufferedAmount: bytes not yet handed to the kernel). Once above it, one more message is
 * sent with a callback (called when that frame has been written) and sending resumes from there.
 *
 * Plain JavaScript run with `node`, not tsx, so no TypeScript loader runs in the measured process.
 */
import WebSocket from 'ws';

const HIGH_WATER = 1024 * 1024;

let url = null;
let count = 100_000;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--url') url = argv[++i];
  else if (argv[i] === '--count') count = Number(argv[++i]);
  else fail(`unknown argument: ${argv[i]}`);
}
if (!url || !Number.isInteger(count) || count < 1) fail('usage: ws-client.mjs --url URL [--count N]');

function fail(why) {
  console.log(`error: ${why}`);
  process.exit(1);
}

const ws = new WebSocket(url, { perMessageDeflate: false });
let next = 1; // next message to send
let received = 0; // echoes checked so far

function pump(err) {
  if (err) fail(`send failed: ${err.message}`);
  while (next <= count) {
    const m = `m${next++}`;
    if (ws.bufferedAmount >= HIGH_WATER) {
      ws.send(m, pump);
      return;
    }
    ws.send(m);
  }
}

ws.on('open', () => pump());
ws.on('message', (data, isBinary) => {
  const want = `m${received + 1}`;
  if (isBinary || data.toString() !== want) fail(`out of order: expected ${want}, got ${isBinary ? 'binary' : data.toString().slice(0, 40)}`);
  received++;
  if (received === count) {
    console.log('done');
    ws.close(1000);
  }
});
ws.on('close', () => {
  if (received !== count) fail(`closed after ${received} of ${count} echoes`);
  process.exit(0);
});
ws.on('error', (e) => fail(e.message));
