/**
 * Launchers for the Debian python3-websockets 10.4 peers (python_echo_server.py,
 * python_client.py). They always run /usr/bin/python3: the pyenv python3 first on PATH does not
 * see Debian's dist-packages.
 */
import { fileURLToPath } from 'node:url';
import { spawnClient, spawnPeer, LOOPBACK, type ClientProcess, type Exit, type PeerProcess } from './process.ts';

export const SYSTEM_PYTHON = '/usr/bin/python3';
const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

export interface PythonEchoServerOptions {
  host?: string;
  /** 0 (default) lets the OS choose. */
  port?: number;
  /** Only this path is an endpoint; others get 404. Default: every path. */
  path?: string;
  /** Max message size in bytes; default 16 MiB. */
  maxSize?: number;
  /** Origin allowlist (403 otherwise); the string "null-origin" allows requests without Origin. */
  origins?: string[];
  /** Supported subprotocols in preference order. */
  subprotocols?: string[];
  /** At most this many open connections; more get 503. */
  maxConnections?: number;
  /** Handshake deadline in ms (default 10 000). */
  openTimeoutMs?: number;
  /** Close handshake timeout in ms (default 2000). */
  closeTimeoutMs?: number;
  /** Keep-alive ping interval in ms (default: no pings). */
  pingIntervalMs?: number;
}

export function startPythonEchoServer(opts: PythonEchoServerOptions = {}): Promise<PeerProcess> {
  const args = [here('./python_echo_server.py'), '--host', opts.host ?? LOOPBACK, '--port', String(opts.port ?? 0)];
  if (opts.path !== undefined) args.push('--path', opts.path);
  if (opts.maxSize !== undefined) args.push('--max-size', String(opts.maxSize));
  if (opts.origins) args.push('--origins', opts.origins.join(','));
  if (opts.subprotocols) args.push('--subprotocols', opts.subprotocols.join(','));
  if (opts.maxConnections !== undefined) args.push('--max-connections', String(opts.maxConnections));
  if (opts.openTimeoutMs !== undefined) args.push('--open-timeout', String(opts.openTimeoutMs / 1000));
  if (opts.closeTimeoutMs !== undefined) args.push('--close-timeout', String(opts.closeTimeoutMs / 1000));
  if (opts.pingIntervalMs !== undefined) args.push('--ping-interval', String(opts.pingIntervalMs / 1000));
  return spawnPeer({ name: 'python-echo-server', command: SYSTEM_PYTHON, args });
}

export interface PythonClientOptions {
  /** Text messages to send in order. */
  send?: string[];
  /** Binary messages to send after the text ones. */
  sendBinary?: Buffer[];
  /** Replies to wait for before closing (default: one per sent message). */
  expect?: number;
  /** Echo every received message until the server closes (the testee role). */
  echo?: boolean;
  subprotocols?: string[];
  /** Opening handshake deadline in ms (default 10 000). */
  openTimeoutMs?: number;
  closeTimeoutMs?: number;
}

/** One line of python_client.py output. */
export type PythonClientEvent =
  | { type: 'open'; subprotocol: string | null }
  | { type: 'text' | 'binary'; data: string; hex: string }
  | { type: 'close'; code: number | null; reason: string };

/** Starts python_client.py; read `stdoutLines` (JSON) or use runPythonClient for the result. */
export function startPythonClient(url: string, opts: PythonClientOptions = {}): ClientProcess {
  const args = [here('./python_client.py'), '--url', url];
  for (const s of opts.send ?? []) args.push('--send', s);
  for (const b of opts.sendBinary ?? []) args.push('--send-hex', b.toString('hex'));
  if (opts.expect !== undefined) args.push('--expect', String(opts.expect));
  if (opts.echo) args.push('--echo');
  for (const p of opts.subprotocols ?? []) args.push('--subprotocol', p);
  if (opts.openTimeoutMs !== undefined) args.push('--open-timeout', String(opts.openTimeoutMs / 1000));
  if (opts.closeTimeoutMs !== undefined) args.push('--close-timeout', String(opts.closeTimeoutMs / 1000));
  return spawnClient({ name: 'python-client', command: SYSTEM_PYTHON, args });
}

/** Runs python_client.py to completion: its exit status and parsed events. */
export async function runPythonClient(
  url: string,
  opts: PythonClientOptions = {},
): Promise<Exit & { events: PythonClientEvent[]; output: string[] }> {
  const c = startPythonClient(url, opts);
  const exit = await c.exited;
  const events = c.stdoutLines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as PythonClientEvent);
  return { ...exit, events, output: c.output };
}
