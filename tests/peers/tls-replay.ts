/**
 * The ClientHello-replay attacker (scripts/hostile/tls_replay.mjs) as a test peer: runs it against
 * a wss:// port and returns its report. Used by the hostile suite and the ASan TLS test.
 */
import { spawn } from 'node:child_process';
import { PROJECT_ROOT } from './osprey.ts';

/** tls_replay.mjs's report: replays tried, answered with a TLS flight, answered otherwise, closed unanswered. */
export interface TlsReplayReport {
  attempts: number;
  answered: number;
  busy: number;
  refused: number;
}

/** Replays a captured ClientHello at `port` from `concurrency` connections for `seconds`; killed if it overstays. */
export function runTlsReplay(port: number, seconds: number, concurrency: number): Promise<TlsReplayReport> {
  const child = spawn(process.execPath, [`${PROJECT_ROOT}scripts/hostile/tls_replay.mjs`, String(port), String(seconds), String(concurrency)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const guard = setTimeout(() => child.kill('SIGKILL'), (seconds + 10) * 1000);
  return new Promise((resolve, reject) =>
    child.on('exit', (code) => {
      clearTimeout(guard);
      if (code !== 0) reject(new Error(`tls_replay.mjs exited with ${code}: ${out}`));
      else resolve(JSON.parse(out.trim().split('\n').at(-1)!) as TlsReplayReport);
    }),
  );
}
