/**
 * One load process of `npm run bench:cluster` (scripts/bench/cluster-bench.ts): opens
 * --connections WebSocket connections to one node, then, on a command from its stdin, has its
 * first connection publish "bc:…" broadcasts and counts, on every connection, every broadcast delivered — its own
 * node's and the other nodes'. Each message carries its send time (CLOCK_MONOTONIC, the same clock
 * in every process of the machine), so each delivery gives a publish-to-delivery latency.
 *
 *   node scripts/bench/cluster-load.mjs --url ws://127.0.0.1:P/room --connections 1000 --id 0
 *        [--payload 64] [--warmup-ms 1000] [--duration-ms 5000]
 *
 * Prints "ready" once every connection is open; then runs one phase per stdin line ("window N":
 * N publishes in flight, for throughput; "rate N": N publishes per second, for latency below
 * saturation) and prints "result {json}" after each: deliveries in the measured window and a
 * latency histogram (10 µs buckets up to 2 s). "quit" ends it.
 * Plain JavaScript run with `node` (no TypeScript loader in the measured process).
 */
import WebSocket from 'ws';
import { createInterface } from 'node:readline';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const url = opt('--url');
const connections = Number(opt('--connections', '1000'));
const id = opt('--id', '0');
let window = 8;
const payload = Number(opt('--payload', '64'));
const warmupMs = Number(opt('--warmup-ms', '1000'));
const durationMs = Number(opt('--duration-ms', '5000'));
const BUCKET_NS = 10_000n;
const BUCKETS = 200_000; // 2 s
const hist = new Uint32Array(BUCKETS + 1);

let measuring = false;
let deliveries = 0;
let ownBack = 0;
let sent = 0;
let errors = 0;
const padding = 'x'.repeat(Math.max(0, payload - 40));
const prefix = `bc:${id}:`;

function onMessage(data, isBinary, isPublisher) {
  if (isBinary) return;
  const text = data.toString();
  if (!text.startsWith('bc:')) {
    if (text.startsWith('err:')) errors++;
    return;
  }
  const a = text.indexOf(':', 3);
  const b = text.indexOf(':', a + 1);
  const t = BigInt(text.slice(a + 1, b));
  if (measuring) {
    deliveries++;
    const bucket = Number((process.hrtime.bigint() - t) / BUCKET_NS);
    hist[bucket < BUCKETS ? bucket : BUCKETS]++;
  }
  if (isPublisher && text.startsWith(prefix)) {
    ownBack++;
    publish();
  }
}

let publisher;
let publishing = false;
let windowed = false; // the "window" phase: each echo of our own publish lets the next one go
function publish() {
  while (publishing && windowed && sent - ownBack < window) {
    sent++;
    publisher.send(`${prefix}${process.hrtime.bigint()}:${padding}`);
  }
}

async function open(i) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const isPublisher = i === 0;
  ws.on('message', (d, bin) => onMessage(d, bin, isPublisher));
  ws.on('error', () => errors++);
  ws.on('close', () => {
    if (!stopping) errors++;
  });
  return ws;
}

let stopping = false;
const sockets = [];
try {
  for (let i = 0; i < connections; i += 50) {
    const batch = [];
    for (let k = i; k < Math.min(connections, i + 50); k++) batch.push(open(k));
    sockets.push(...(await Promise.all(batch)));
  }
} catch (e) {
  console.log(`error: cannot open the connections: ${e.message}`);
  process.exit(1);
}
publisher = sockets[0];
console.log('ready');

// Phases, one per stdin line: "window N" (as fast as N publishes in flight allow: throughput) or
// "rate N" (N publishes per second: latency below saturation), then "quit".
let pacer = null;
function runPhase(kind, n) {
  hist.fill(0);
  deliveries = 0;
  sent = 0;
  ownBack = 0;
  publishing = true;
  windowed = kind === 'window';
  if (windowed) {
    window = n;
    publish();
  } else {
    // Every 10 ms, the publishes due by now (a steady rate; nothing waits for the echo).
    const startedNs = process.hrtime.bigint();
    pacer = setInterval(() => {
      const due = Math.floor((Number(process.hrtime.bigint() - startedNs) / 1e9) * n);
      while (sent < due) {
        sent++;
        publisher.send(`${prefix}${process.hrtime.bigint()}:${padding}`);
      }
    }, 10);
  }
  setTimeout(() => {
    measuring = true;
    setTimeout(() => {
      measuring = false;
      publishing = false;
      if (pacer) clearInterval(pacer);
      pacer = null;
      // Let what is in flight land before the next phase (it is not counted).
      setTimeout(() => {
        const buckets = [];
        for (let i = 0; i <= BUCKETS; i++) if (hist[i]) buckets.push([i, hist[i]]);
        console.log(`result ${JSON.stringify({ id, kind, deliveries, sent, errors, bucketNs: Number(BUCKET_NS), buckets })}`);
      }, 500);
    }, durationMs);
  }, warmupMs);
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === 'window' || cmd === 'rate') runPhase(cmd, Number(arg));
  else if (cmd === 'quit') {
    stopping = true;
    for (const s of sockets) s.terminate();
    // Into a pipe stdout is asynchronous: exit once everything is written.
    process.stdout.write('', () => process.exit(0));
  }
});
