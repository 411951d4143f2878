/**
 * Launchers for the programs under test built from our C runtime by
 * `npx tsx scripts/build-runtime.ts` (sources in runtime-c/tools/):
 *
 *   build/tools/ws-echo-server --port P [--host 127.0.0.1] [--path /]
 *       echoes text and binary; prints `listening on ws://HOST:PORT/PATH`; stops on SIGTERM or
 *       stdin EOF (so the launcher keeps stdin as an open pipe).
 *   build/tools/ws-echo-client --url ws://...
 *       echoes every received message, text and binary; exits 0 when the server closes the connection.
 *
 * A compiled Osprey program with the same command line can reuse these through
 * startCommandEchoServer / startCommandEchoClient with another executable path.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort, LOOPBACK, spawnClient, spawnPeer, type ClientProcess, type PeerProcess } from './process.ts';

export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const OSPREY_ECHO_SERVER = `${PROJECT_ROOT}build/tools/ws-echo-server`;
export const OSPREY_ECHO_CLIENT = `${PROJECT_ROOT}build/tools/ws-echo-client`;

export interface CommandServerOptions {
  host?: string;
  /** Default: a free port chosen just before the spawn. */
  port?: number;
  path?: string;
  /** Extra environment (limit/timeout overrides such as OSPREY_WS_* variables). */
  env?: Record<string, string>;
  /** Extra command-line arguments appended after --port/--host/--path. */
  extraArgs?: string[];
  /**
   * The command line for programs that do not take --port/--host/--path (e.g. a compiled Osprey
   * program reading its port elsewhere); it must still print `listening on ws://HOST:PORT/PATH`.
   */
  argv?: (where: { port: number; host: string; path: string }) => string[];
}

/** Starts any executable that follows the ws-echo-server command line. */
export async function startCommandEchoServer(
  executable: string,
  opts: CommandServerOptions = {},
  name = 'ws-echo-server',
): Promise<PeerProcess> {
  if (!existsSync(executable)) throw new Error(`${name}: ${executable} does not exist (run: npx tsx scripts/build-runtime.ts)`);
  const port = opts.port ?? (await freePort());
  const where = { port, host: opts.host ?? LOOPBACK, path: opts.path ?? '/' };
  const args = opts.argv
    ? opts.argv(where)
    : ['--port', String(where.port), '--host', where.host, '--path', where.path, ...(opts.extraArgs ?? [])];
  return spawnPeer({ name, command: executable, args, env: opts.env, pipeStdin: true });
}

/** Starts any executable that follows the ws-echo-client command line. */
export function startCommandEchoClient(
  executable: string,
  url: string,
  opts: { env?: Record<string, string>; extraArgs?: string[] } = {},
  name = 'ws-echo-client',
): ClientProcess {
  if (!existsSync(executable)) throw new Error(`${name}: ${executable} does not exist (run: npx tsx scripts/build-runtime.ts)`);
  return spawnClient({ name, command: executable, args: ['--url', url, ...(opts.extraArgs ?? [])], env: opts.env });
}

export const startOspreyEchoServer = (opts: CommandServerOptions = {}) => startCommandEchoServer(OSPREY_ECHO_SERVER, opts);
export const startOspreyEchoClient = (url: string, opts: { env?: Record<string, string>; extraArgs?: string[] } = {}) =>
  startCommandEchoClient(OSPREY_ECHO_CLIENT, url, opts);
export const ospreyToolsBuilt = () => existsSync(OSPREY_ECHO_SERVER) && existsSync(OSPREY_ECHO_CLIENT);

