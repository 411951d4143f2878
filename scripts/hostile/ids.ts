/**
 * Full-size id/slot attack (issue: "ids leak"): a million TCP connect-and-reset cycles against
 * the release ws-echo-server with default limits, 50 at a time from 127.0.0.3; the server's
 * RSS is read before, after the first 100,000 cycles and at the end. Ids are given at the
 * upgrade, so connections that never upgrade must cost nothing that stays.
 *
 *   npx tsx scripts/hostile/ids.ts [--cycles 1000000]
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { freePort, spawnPeer } from '../../tests/peers/index.ts';

const i = process.argv.indexOf('--cycles');
const cycles = i > 0 ? Number(process.argv[i + 1]) : 1_000_000;
const root = fileURLToPath(new URL('../../', import.meta.url));
const rss = (pid: number) => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
const MiB = 1024 * 1024;

const port = await freePort();
const server = await spawnPeer({ name: 'ws-echo-server', command: `${root}build/tools/ws-echo-server`, args: ['--port', String(port)] });
const before = rss(server.pid);
let done = 0, failed = 0, warm = 0;
const t0 = performance.now();

function cycle(): Promise<void> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.3' });
    s.once('connect', () => { s.resetAndDestroy(); resolve(); });
    s.once('error', () => { failed++; s.destroy(); resolve(); });
  });
}

async function worker() {
  while (done < cycles) {
    done++;
    await cycle();
    if (done === 100_000) warm = rss(server.pid);
  }
}
await Promise.all(Array.from({ length: 50 }, worker));
await new Promise((r) => setTimeout(r, 500));
const after = rss(server.pid);
const secs = (performance.now() - t0) / 1000;
await server.stop();
const fmt = (b: number) => `${(b / MiB).toFixed(1)} MiB`;
console.log(`${cycles} connect-and-reset cycles in ${secs.toFixed(0)} s (${failed} failed to connect)`);
console.log(`server RSS: before ${fmt(before)}, after 100,000 ${fmt(warm)}, after ${cycles} ${fmt(after)} (growth after warm-up ${fmt(after - warm)})`);
process.exit(after - warm < 4 * MiB ? 0 : 1);
