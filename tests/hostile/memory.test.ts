/**
 * 200 hostile connections against the release ws-echo-server (scripts/hostile/memory_attack.py:
 * a third trickle a 16 MiB frame, a third send 16 MiB messages and never read the echoes, a
 * third go idle after one 16 MiB message), with a 64 MiB memory budget so the run stays short:
 * the server's peak RSS (VmHWM) stays under the budget plus 64 MiB of fixed overhead, and a
 * well-behaved client on the same server keeps getting its echoes. The full-size run with the
 * default budget is scripts/hostile/memory.ts (results in the README).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { connectWsClient, freePort, spawnPeer } from '../peers/index.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MiB = 1024 * 1024;
const status = (pid: number, field: string) =>
  Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;

describe('memory budget under hostile clients', () => {
  it('200 attacking connections: RSS ≤ budget + 64 MiB, a well-behaved client is still served', async () => {
    const budget = 64 * MiB;
    const port = await freePort();
    const server = await spawnPeer({
      name: 'ws-echo-server',
      command: `${ROOT}build/tools/ws-echo-server`,
      args: ['--port', String(port)],
      env: { OSPREY_WS_MEMORY_BUDGET: String(budget), OSPREY_WS_MESSAGE_TIMEOUT_MS: '4000' },
    });
    const good = await connectWsClient(`ws://127.0.0.1:${port}/`);
    const attacker = spawn('python3', [`${ROOT}scripts/hostile/memory_attack.py`, String(port), '200', '8'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let report = '';
    attacker.stdout.on('data', (d: Buffer) => (report += d.toString()));
    const done = new Promise((r) => attacker.on('exit', r));
    try {
      let echoes = 0;
      let peak = 0;
      const t0 = Date.now();
      while (Date.now() - t0 < 7000) {
        good.send(`tick ${echoes}`);
        const m = await good.next(3000);
        expect(m.data.toString()).toBe(`tick ${echoes}`);
        echoes++;
        peak = Math.max(peak, status(server.pid, 'VmRSS'));
        await new Promise((r) => setTimeout(r, 100));
      }
      await done;
      const hwm = status(server.pid, 'VmHWM');
      const summary = JSON.parse(report.trim().split('\n').pop()!);
      const sent = Object.values(summary.attacks as Record<string, { sent_mib: number }>).reduce((a, s) => a + s.sent_mib, 0);
      // The attack really pushed more than the budget at the server.
      expect(sent * MiB).toBeGreaterThan(budget);
      expect(hwm, `peak RSS ${(hwm / MiB).toFixed(1)} MiB (sampled ${(peak / MiB).toFixed(1)}), attack ${JSON.stringify(summary)}`).toBeLessThanOrEqual(budget + 64 * MiB);
      expect(echoes).toBeGreaterThan(20);
      good.send('after');
      expect((await good.next(3000)).data.toString()).toBe('after');
    } finally {
      attacker.kill('SIGKILL');
      await good.close().catch(() => undefined);
      await server.stop();
    }
  }, 60_000);
});
