/**
 * One SIGTERM trial against a GC-heavy Osprey client that sends as fast as it can: the program
 * allocates on every iteration (the collector stops the world often) and prints "sent N" for
 * every message websocketSend accepted. A `ws` server in this process receives them; the
 * program is killed with SIGTERM at a random moment. Graceful means: exit status 143, a Close
 * frame with 1000, and every accepted message received, in order, before it.
 *
 * Used by tests/hostile/signals.test.ts (a bounded number of trials) and
 * scripts/hostile/signals.ts (100 trials).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { WebSocketServer } from 'ws';

/** The Osprey program: connects to ws://127.0.0.1:PORT/ and sends m0, m1, … until refused. */
export function gcHeavySender(port: number): string {
  return `
// Builds a string one character at a time: many short-lived collected objects per message.
fn churn(n: Int, s: String) -> String = match n {
    0 => s
    _ => churn(n: n - 1, s: "\${s}x")
}

fn pump(ws: Int, i: Int) -> Int = {
    let garbage = churn(n: 300, s: "")
    match websocketSend(wsID: ws, message: "m\${i}") {
        Success _ => {
            print("sent \${i}")
            pump(ws: ws, i: i + 1)
        }
        Err message => {
            print("refused at \${i}: \${message}")
            i
        }
    }
}

fn onMessage(message: String) -> Result<Success, String> = Success()

match websocketConnect(url: "ws://127.0.0.1:${port}/", messageHandler: onMessage) {
    Success ws => {
        let n = pump(ws: ws, i: 0)
        print("done \${n}")
    }
    Err message => print("connect failed: \${message}")
}
`;
}

export interface TrialResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  closeCode: number | null;
  received: number;
  /** Highest n of a "sent n" line (-1: none). */
  lastAccepted: number;
  /** Empty when graceful; otherwise what went wrong. */
  problems: string[];
}

/**
 * Runs one trial: a server on `port` (the program was built for it), the program, SIGTERM
 * `delayMs` after the first message arrived.
 */
export async function signalTrial(exe: string, port: number, delayMs: number): Promise<TrialResult> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port });
  await once(wss, 'listening');
  const problems: string[] = [];
  let received = 0;
  let closeCode: number | null = null;
  let firstMessage!: () => void;
  const started = new Promise<void>((r) => (firstMessage = r));
  const closed = new Promise<void>((resolve) => {
    wss.on('connection', (sock) => {
      sock.on('message', (data) => {
        const text = data.toString();
        if (closeCode !== null) problems.push(`message after the Close: ${text}`);
        if (text !== `m${received}`) problems.push(`expected m${received}, got ${text}`);
        received++;
        if (received === 1) firstMessage();
      });
      sock.on('close', (code) => {
        closeCode = code;
        resolve();
      });
    });
  });
  const child = spawn(exe, [], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.on('exit', (code, signal) => r({ code, signal })),
  );
  const guard = setTimeout(() => child.kill('SIGKILL'), 20_000);
  try {
    await Promise.race([started, exited]);
    await new Promise((r) => setTimeout(r, delayMs));
    child.kill('SIGTERM');
    const exit = await exited;
    await Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]);
    let lastAccepted = -1;
    for (const m of stdout.matchAll(/^sent (\d+)$/gm)) lastAccepted = Math.max(lastAccepted, Number(m[1]));
    if (exit.code !== 143) problems.push(`exit ${exit.code} signal ${exit.signal}; stderr: ${stderr.slice(-500)}`);
    if (closeCode !== 1000) problems.push(`close code ${closeCode}`);
    if (received < lastAccepted + 1) problems.push(`accepted up to m${lastAccepted} but received ${received}`);
    return { exitCode: exit.code, signal: exit.signal, closeCode, received, lastAccepted, problems };
  } finally {
    clearTimeout(guard);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const c of wss.clients) c.terminate();
    await new Promise((r) => wss.close(() => r(undefined)));
  }
}
