/**
 * SIGTERM while a GC-heavy program sends (tests/hostile/signal-trial.ts): graceful in every
 * trial. Before the runtime had a real signal handler, a termination signal that arrived while
 * Boehm GC stopped the world killed the process outright (the collector's suspend mask unblocks
 * SIGTERM). 20 trials here; scripts/hostile/signals.ts runs 100.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workspace, type Workspace } from '../interop/compile.ts';
import { freePort } from '../peers/index.ts';
import { gcHeavySender, signalTrial } from './signal-trial.ts';

let ws: Workspace;
let exe: string;
let port: number;

beforeAll(async () => {
  ws = workspace();
  port = await freePort();
  exe = await ws.build('gc_heavy_sender', gcHeavySender(port));
}, 120_000);

afterAll(() => ws?.dispose());

describe('termination signals under garbage-collection pressure', () => {
  it('20 SIGTERMs at random moments: exit 143, Close 1000, no accepted message lost', async () => {
    const failures: string[] = [];
    let totalReceived = 0;
    for (let i = 0; i < 20; i++) {
      const r = await signalTrial(exe, port, Math.floor(Math.random() * 300));
      totalReceived += r.received;
      if (r.problems.length) failures.push(`trial ${i}: ${r.problems.join('; ')}`);
    }
    expect(failures).toEqual([]);
    expect(totalReceived).toBeGreaterThan(20);
  }, 240_000);
});
