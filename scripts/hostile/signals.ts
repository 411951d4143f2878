/**
 * Full-size signal run: 100 SIGTERMs at random moments of a GC-heavy sending program
 * (tests/hostile/signal-trial.ts); every one must be graceful (exit 143, Close 1000, every
 * accepted message received). CI runs 20 (tests/hostile/signals.test.ts).
 *
 *   npx tsx scripts/hostile/signals.ts [--trials 100]
 */
import { workspace } from '../../tests/interop/compile.ts';
import { freePort } from '../../tests/peers/index.ts';
import { gcHeavySender, signalTrial } from '../../tests/hostile/signal-trial.ts';

const i = process.argv.indexOf('--trials');
const trials = i > 0 ? Number(process.argv[i + 1]) : 100;
const ws = workspace();
const port = await freePort();
const exe = await ws.build('gc_heavy_sender', gcHeavySender(port));
let graceful = 0, received = 0;
for (let t = 0; t < trials; t++) {
  const r = await signalTrial(exe, port, Math.floor(Math.random() * 400));
  received += r.received;
  if (r.problems.length === 0) graceful++;
  else console.log(`trial ${t}: ${r.problems.join('; ')}`);
}
ws.dispose();
console.log(`${graceful} of ${trials} SIGTERMs graceful (exit 143, Close 1000, no accepted message lost); ${received} messages received in all`);
process.exit(graceful === trials ? 0 : 1);
