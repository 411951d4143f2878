/**
 * Limits, the Origin allowlist and subprotocol selection set from Osprey code (project additions
 * websocketSetDefaultLimit, websocketServerSetLimit, websocketServerAllowOrigin,
 * websocketServerAddSubprotocol — docs/WEBSOCKET-OPTIONS.md). One compiled program configures a
 * server (printing every Result), listens, and the test drives it from Node's `ws` client and raw
 * sockets: allowed/refused origins, the selected subprotocol, a message over the server's
 * maxMessageBytes (1009), the connection limit (503), and the Err texts.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { freePort, spawnPeer, type PeerProcess } from '../peers/index.ts';
import { workspace, type Workspace } from './compile.ts';

const program = (port: number) => `
fn show(label: String, r: Result<Success, String>) -> Int = match r {
    Success _ => { print("\${label}: ok") 0 }
    Err e => { print("\${label}: \${e}") 1 }
}

fn main() -> Int = {
    let a = show(label: "default-unknown", r: websocketSetDefaultLimit(name: "maxBananas", value: 1))
    let b = show(label: "default-range", r: websocketSetDefaultLimit(name: "maxConnections", value: 0))
    let c = show(label: "default-ok", r: websocketSetDefaultLimit(name: "closeTimeoutMs", value: 1000))
    match websocketCreateServer(port: ${port}, address: "127.0.0.1", path: "/limits") {
        Success sid => {
            let d = show(label: "limit-unknown", r: websocketServerSetLimit(serverID: sid, name: "maxBananas", value: 1))
            let e = show(label: "limit-range", r: websocketServerSetLimit(serverID: sid, name: "maxMessageBytes", value: -5))
            let f = show(label: "limit-message", r: websocketServerSetLimit(serverID: sid, name: "maxMessageBytes", value: 64))
            let g = show(label: "limit-connections", r: websocketServerSetLimit(serverID: sid, name: "maxConnections", value: 2))
            let h = show(label: "origin-bad", r: websocketServerAllowOrigin(serverID: sid, origin: "https://Example.com/app"))
            let i = show(label: "origin-ok", r: websocketServerAllowOrigin(serverID: sid, origin: "https://app.example"))
            let j = show(label: "protocol-bad", r: websocketServerAddSubprotocol(serverID: sid, protocol: "chat, v2"))
            let k = show(label: "protocol-ok", r: websocketServerAddSubprotocol(serverID: sid, protocol: "superchat"))
            let l = show(label: "protocol-ok2", r: websocketServerAddSubprotocol(serverID: sid, protocol: "chat.v2"))
            let m = show(label: "listen", r: websocketServerListen(sid))
            let n = show(label: "limit-after-listen", r: websocketServerSetLimit(serverID: sid, name: "maxFragments", value: 4))
            let o = show(label: "origin-after-listen", r: websocketServerAllowOrigin(serverID: sid, origin: "https://late.example"))
            print("listening on ws://127.0.0.1:${port}/limits")
            sleep(20000)
            let p = show(label: "stop", r: websocketStopServer(sid))
            0
        }
        Err e => { print("create: \${e}") 1 }
    }
}
`;

let ws: Workspace;
let server: PeerProcess;
let url: string;

beforeAll(async () => {
  ws = workspace();
  const port = await freePort();
  const exe = await ws.build('limits', program(port));
  server = await spawnPeer({ name: 'limits', command: exe, args: [], readyTimeoutMs: 10_000 });
  url = `ws://127.0.0.1:${port}/limits`;
}, 90_000);

afterAll(async () => {
  await server?.stop();
  ws?.dispose();
});

/** Closes and waits for the close handshake to end: the server counts a connection until then. */
async function closeAndWait(sock: WebSocket): Promise<void> {
  if (sock.readyState === WebSocket.CLOSED) return;
  const closed = new Promise((r) => sock.once('close', r));
  sock.close();
  await closed;
}

function line(label: string): string {
  const l = server.output.find((x) => x.startsWith(`${label}: `));
  expect(l, `no line for ${label} in:\n${server.output.join('\n')}`).toBeDefined();
  return l!.slice(label.length + 2);
}

/** Opens a ws client; resolves with the socket once open, or with the HTTP status it was refused with. */
function open(opts: { origin?: string; protocols?: string[] }): Promise<{ sock?: WebSocket; status?: number }> {
  return new Promise((resolve, reject) => {
    const sock = new WebSocket(url, opts.protocols ?? [], { origin: opts.origin, handshakeTimeout: 3000 });
    sock.once('open', () => resolve({ sock }));
    sock.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode });
      res.resume();
      sock.terminate();
    });
    sock.once('error', (e) => reject(e));
  });
}

describe('limits, origins and subprotocols from Osprey code', () => {
  it('every configuration call before listen returns the documented Result', () => {
    expect(line('default-unknown')).toMatch(/websocketSetDefaultLimit: unknown limit "maxBananas" \(valid names: maxMessageBytes, .*maxConnections.*\)/);
    expect(line('default-range')).toMatch(/maxConnections must be from 1 to 1000000 \(got 0\)/);
    expect(line('default-ok')).toBe('ok');
    expect(line('limit-unknown')).toMatch(/websocketServerSetLimit: unknown limit "maxBananas" \(valid names: .*handshakeTimeoutMs.*\)/);
    expect(line('limit-range')).toMatch(/maxMessageBytes must be from 1 to \d+ \(got -5\)/);
    expect(line('limit-message')).toBe('ok');
    expect(line('limit-connections')).toBe('ok');
    expect(line('origin-bad')).toMatch(/websocketServerAllowOrigin: "https:\/\/Example.com\/app" is not a serialized origin/);
    expect(line('origin-ok')).toBe('ok');
    expect(line('protocol-bad')).toMatch(/websocketServerAddSubprotocol: "chat, v2" is not a valid subprotocol name/);
    expect(line('protocol-ok')).toBe('ok');
    expect(line('listen')).toBe('ok');
  });

  it('configuration after listen is refused with an Err that says so', () => {
    expect(line('limit-after-listen')).toMatch(/already listening; call websocketServerSetLimit before websocketServerListen/);
    expect(line('origin-after-listen')).toMatch(/already listening/);
  });

  it('Origin allowlist: exact match → 101, other or missing Origin → 403', async () => {
    expect((await open({ origin: 'https://evil.example' })).status).toBe(403);
    expect((await open({ origin: 'https://app.example.evil' })).status).toBe(403);
    expect((await open({})).status).toBe(403);
    const ok = await open({ origin: 'https://app.example' });
    expect(ok.sock).toBeDefined();
    await closeAndWait(ok.sock!);
  });

  it('subprotocol: the first offer the server supports is echoed once; none in common → none', async () => {
    const a = await open({ origin: 'https://app.example', protocols: ['chat', 'chat.v2', 'superchat'] });
    expect(a.sock!.protocol).toBe('chat.v2');
    await closeAndWait(a.sock!); // the server allows two connections (maxConnections 2)
    const b = await open({ origin: 'https://app.example', protocols: ['mqtt'] }).catch((e: Error) => ({ error: e.message }));
    // ws rejects a 101 without a protocol when it offered some ("Server sent no subprotocol").
    expect(JSON.stringify(b)).toMatch(/no subprotocol|"sock"/i);
    if ('sock' in b && b.sock) await closeAndWait(b.sock);
  });

  it('maxMessageBytes set from Osprey: a 65-byte message fails the connection with 1009, 64 bytes echo', async () => {
    const { sock } = await open({ origin: 'https://app.example' });
    const echoed = new Promise<string>((r) => sock!.once('message', (d) => r(String(d))));
    sock!.send('x'.repeat(64));
    expect(await echoed).toBe('x'.repeat(64));
    const closed = new Promise<number>((r) => sock!.once('close', (code) => r(code)));
    sock!.send('y'.repeat(65));
    expect(await closed).toBe(1009);
  });

  it('maxConnections set from Osprey: the third concurrent connection is answered 503', async () => {
    await new Promise((r) => setTimeout(r, 300)); // earlier connections finish their close
    const a = await open({ origin: 'https://app.example' });
    const b = await open({ origin: 'https://app.example' });
    // A raw socket sees the 503 the server writes at accept time.
    const status = await new Promise<string>((resolve, reject) => {
      const s = connect(Number(new URL(url).port), '127.0.0.1');
      let got = '';
      s.on('data', (d) => (got += d.toString('latin1')));
      s.on('close', () => resolve(got.split('\r\n')[0]));
      s.on('error', reject);
      setTimeout(() => s.destroy(), 3000).unref();
    });
    expect(status).toBe('HTTP/1.1 503 Service Unavailable');
    for (const s of [a.sock!, b.sock!]) {
      const closed = new Promise((r) => s.once('close', r));
      s.close();
      await closed;
    }
  });
});
