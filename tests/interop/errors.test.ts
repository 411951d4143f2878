/**
 * Every failure a program can meet through the WebSocket functions comes back as an `Err` whose
 * message says what went wrong and with what (the port, the address, the id, the HTTP status).
 */
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnClient } from '../peers/index.ts';
import { workspace, type Workspace } from './compile.ts';
import { errorPaths } from './programs.ts';

let ws: Workspace;
let busy: Server;
let lines: string[] = [];
let exitCode: number | null = null;
let output: string[] = [];
const ports = { busyPort: 0, closedPort: 0, ownPort: 0 };

beforeAll(async () => {
  ws = workspace();
  busy = createServer();
  busy.listen(0, '127.0.0.1');
  await once(busy, 'listening');
  ports.busyPort = (busy.address() as { port: number }).port;
  ports.closedPort = await freePort();
  ports.ownPort = await freePort();
  const exe = await ws.build('error_paths', errorPaths(ports.busyPort, ports.closedPort, ports.ownPort));
  const c = spawnClient({ name: 'error_paths', command: exe, args: [] });
  exitCode = (await c.exited).code;
  lines = c.stdoutLines;
  output = c.output;
}, 60_000);

afterAll(async () => {
  busy?.close();
  ws?.dispose();
});

function line(label: string): string {
  const l = lines.find((x) => x.startsWith(`${label}: `));
  expect(l, `no line for ${label} in:\n${output.join('\n')}`).toBeDefined();
  return l!.slice(label.length + 2);
}

describe('WebSocket Err paths from Osprey code', () => {
  it('the program ran to the end', () => {
    expect(exitCode, output.join('\n')).toBe(0);
    expect(lines).toContain('closed-checks done');
    expect(lines).toContain('stopped');
  });
  it('port out of range names the port and the range', () => {
    expect(line('port-range')).toMatch(/70000.*(range|1-65535|1–65535)/i);
    expect(line('port-zero')).toMatch(/\b0\b.*(range|1-65535)/i);
  });
  it('an invalid address is named', () => {
    expect(line('bad-address')).toMatch(/999\.1\.2\.3.*(not a valid|invalid)|(not a valid|invalid).*999\.1\.2\.3/i);
  });
  it('unknown server ids are reported for listen, broadcast and stop', () => {
    for (const l of ['unknown-server', 'unknown-broadcast', 'unknown-stop']) expect(line(l)).toMatch(/unknown.*4242|4242.*unknown/i);
  });
  it('unknown connection ids are reported for send and close', () => {
    for (const l of ['unknown-send', 'unknown-close']) expect(line(l)).toMatch(/unknown.*4242|4242.*unknown/i);
  });
  it('connection refused names the address', () => {
    const { closedPort } = ports;
    expect(line('refused')).toMatch(new RegExp(`refused.*127\\.0\\.0\\.1:${closedPort}|127\\.0\\.0\\.1:${closedPort}.*refused`, 'i'));
  });
  it('a URL that is not ws:// is refused before connecting', () => {
    expect(line('bad-url')).toMatch(/ws:\/\//);
  });
  it('an address already in use is named', () => {
    const { busyPort } = ports;
    expect(line('in-use')).toMatch(new RegExp(`in use.*${busyPort}|${busyPort}.*in use`, 'i'));
  });
  it('listening twice is an error', () => {
    expect(line('listen-twice')).toMatch(/already listening/i);
  });
  it('a refused handshake reports the HTTP status', () => {
    expect(line('wrong-path')).toMatch(/404/);
  });
  it('send after close and a second close are errors; the first close succeeds', () => {
    expect(line('first-close')).toBe('ok');
    expect(line('send-after-close')).toMatch(/closed|not connected|unknown/i);
    expect(line('close-twice')).toMatch(/already closed|unknown/i);
  });
  it('stopping a stopped server is an error', () => {
    expect(line('stop-twice')).toMatch(/unknown|stopped/i);
  });
});
