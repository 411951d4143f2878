/**
 * The compiled Osprey client against a uWebSockets.js server (its native binary asserted) that
 * echoes and also pushes unsolicited messages. The common exchange with every server (ws, uWS,
 * python3-websockets: UTF-8, 70 KB, clean close checked on the wire) is in matrix.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  spawnClient,
  startUwsEchoServer,
  uwsIsNative,
  type PeerProcess,
} from '../peers/index.ts';
import { workspace, type Workspace } from './compile.ts';
import { sendingClient } from './programs.ts';

let ws: Workspace;
beforeAll(() => {
  ws = workspace();
});
afterAll(() => ws?.dispose());

async function runClient(name: string, url: string, messages: string[], waitMs: number) {
  const exe = await ws.build(name, sendingClient(url, messages, waitMs));
  const c = spawnClient({ name, command: exe, args: [] });
  const exit = await c.exited;
  return { exit, lines: c.stdoutLines, output: c.output };
}

describe('compiled Osprey client with a uWebSockets.js server', () => {
  let server: PeerProcess;
  beforeAll(async () => {
    expect(uwsIsNative()).toBe(true);
    server = await startUwsEchoServer({ pushOnOpen: 'welcome from uWS', pushIntervalMs: 200, pushMessage: 'tick' });
  });
  afterAll(async () => server?.stop());

  it('receives echoes and unsolicited pushes through its handler, in order, then closes', async () => {
    const r = await runClient('uws_client', server.url, ['one', 'two', 'three'], 1000);
    expect(r.exit.code, r.output.join('\n')).toBe(0);
    const got = r.lines.filter((l) => l.startsWith('got: '));
    // The push on open comes first: the server sends it before any of our messages can arrive.
    expect(got[0]).toBe('got: welcome from uWS');
    const echoes = got.filter((l) => ['got: one', 'got: two', 'got: three'].includes(l));
    expect(echoes).toEqual(['got: one', 'got: two', 'got: three']);
    expect(got.filter((l) => l === 'got: tick').length).toBeGreaterThanOrEqual(2);
    expect(r.lines).toContain('connected');
    expect(r.lines.indexOf('sent 3')).toBeGreaterThan(r.lines.indexOf('sent 1'));
    // After websocketClose returns, the handler is never called again.
    expect(r.lines[r.lines.length - 1]).toBe('closed');
  });
});
