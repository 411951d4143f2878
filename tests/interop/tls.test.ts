/**
 * wss:// — TLS in websocketConnect and websocketCreateSecureServer (docs/WEBSOCKET-OPTIONS.md).
 *
 * A throwaway CA and two server certificates (one for localhost/127.0.0.1, one for another host
 * name) are made with the `openssl` command line in a temporary directory. Then:
 *  (a) a compiled Osprey client against local TLS servers (Node `https` + `ws`): untrusted CA →
 *      "certificate verify failed…", trusted (websocketSetTrustedCA) → echo by host name and by IP
 *      address, a certificate for another name → "host name mismatch", a plain server → handshake
 *      failure; all as Err values.
 *  (b) a compiled Osprey secure server: Err for a missing certificate and for a key that does not
 *      match; then `ws` and python3-websockets clients (trusting the CA) get echoes, a plain ws://
 *      client and TLS garbage are refused cleanly, and the server keeps serving.
 * Loopback only; every process and server is stopped in afterAll.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect as tcpConnect, createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { freePort, makeTestCertificates, spawnClient, spawnPeer, SYSTEM_PYTHON, type PeerProcess } from '../peers/index.ts';
import { workspace, type Workspace } from './compile.ts';

let ws: Workspace;
let dir: string;
const servers: (HttpsServer | TcpServer)[] = [];
let secure: PeerProcess | undefined;

/** A Node https + ws echo server with the given certificate. */
async function tlsEchoServer(name: 'server' | 'other'): Promise<number> {
  const server = createHttpsServer({ cert: readFileSync(join(dir, `${name}.pem`)), key: readFileSync(join(dir, `${name}.key`)) });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (sock) => {
    sock.on('error', () => {});
    sock.on('message', (data, isBinary) => sock.send(data, { binary: isBinary }));
  });
  server.on('tlsClientError', () => {}); // the refused handshakes of the untrusted/mismatch cases
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  servers.push(server);
  return (server.address() as { port: number }).port;
}

const clientProgram = (p: { good: number; other: number; plain: number; ca: string; missing: string }) => `
fn show(label: String, r: Result<Success, String>) -> Int = match r {
    Success _ => { print("\${label}: ok") 0 }
    Err e => { print("\${label}: \${e}") 1 }
}

fn attempt(label: String, url: String) -> Int = match websocketConnect(url: url, messageHandler: |m| => { print("\${label} got: \${m}") Success() }) {
    Success id => {
        let sent = websocketSend(wsID: id, message: "hello over tls")
        sleep(400)
        let closed = websocketClose(id)
        print("\${label}: connected")
        0
    }
    Err e => { print("\${label}: \${e}") 1 }
}

fn main() -> Int = {
    let a = attempt(label: "untrusted", url: "wss://localhost:${p.good}/")
    let b = show(label: "ca-missing", r: websocketSetTrustedCA("${p.missing}"))
    let c = show(label: "ca", r: websocketSetTrustedCA("${p.ca}"))
    let d = attempt(label: "by-name", url: "wss://localhost:${p.good}/")
    let e = attempt(label: "by-ip", url: "wss://127.0.0.1:${p.good}/")
    let f = attempt(label: "mismatch", url: "wss://localhost:${p.other}/")
    let g = attempt(label: "plain", url: "wss://127.0.0.1:${p.plain}/")
    print("client done")
    0
}
`;

const serverProgram = (p: { port: number; cert: string; key: string; otherKey: string; missing: string }) => `
fn main() -> Int = {
    match websocketCreateSecureServer(port: ${p.port}, address: "127.0.0.1", path: "/", certFile: "${p.missing}", keyFile: "${p.key}") {
        Success s => print("missing-cert: unexpected success")
        Err e => print("missing-cert: \${e}")
    }
    match websocketCreateSecureServer(port: ${p.port}, address: "127.0.0.1", path: "/", certFile: "${p.cert}", keyFile: "${p.otherKey}") {
        Success s => print("mismatched-key: unexpected success")
        Err e => print("mismatched-key: \${e}")
    }
    match websocketCreateSecureServer(port: ${p.port}, address: "127.0.0.1", path: "/", certFile: "${p.cert}", keyFile: "${p.key}") {
        Success sid => {
            match websocketServerListen(sid) {
                Success _ => print("listening on wss://127.0.0.1:${p.port}/")
                Err e => print("listen: \${e}")
            }
            sleep(30000)
            let stopped = websocketStopServer(sid)
            0
        }
        Err e => { print("create: \${e}") 1 }
    }
}
`;

let clientLines: string[] = [];
let clientOutput: string[] = [];
let clientCode: number | null = null;

beforeAll(async () => {
  ws = workspace();
  dir = ws.dir;
  makeTestCertificates(dir);
  const good = await tlsEchoServer('server');
  const other = await tlsEchoServer('other');
  // A plain (non-TLS) HTTP server: answers the ClientHello with garbage and closes.
  const plainServer = createTcpServer((s) => {
    s.on('error', () => {}); // the client resets once it sees this is not TLS
    s.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  plainServer.listen(0, '127.0.0.1');
  await once(plainServer, 'listening');
  servers.push(plainServer);
  const plain = (plainServer.address() as { port: number }).port;
  const port = await freePort();
  const [clientExe, serverExe] = await Promise.all([
    ws.build('tls_client', clientProgram({ good, other, plain, ca: join(dir, 'ca.pem'), missing: join(dir, 'missing.pem') })),
    ws.build('tls_server', serverProgram({ port, cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), otherKey: join(dir, 'other.key'), missing: join(dir, 'missing.pem') })),
  ]);
  const c = spawnClient({ name: 'tls_client', command: clientExe, args: [] });
  const exit = await Promise.race([c.exited, new Promise<null>((r) => setTimeout(() => r(null), 30_000))]);
  if (exit === null) await c.stop();
  clientCode = exit ? exit.code : null;
  clientLines = c.stdoutLines;
  clientOutput = c.output;
  secure = await spawnPeer({ name: 'tls_server', command: serverExe, args: [], readyTimeoutMs: 15_000 });
}, 120_000);

afterAll(async () => {
  await secure?.stop();
  for (const s of servers) s.close();
  ws?.dispose();
});

function clientLine(label: string): string {
  const l = clientLines.find((x) => x.startsWith(`${label}: `));
  expect(l, `no line for ${label} in:\n${clientOutput.join('\n')}`).toBeDefined();
  return l!.slice(label.length + 2);
}

describe('(a) Osprey wss:// client', () => {
  it('ran to the end', () => {
    expect(clientCode, clientOutput.join('\n')).toBe(0);
    expect(clientLines).toContain('client done');
  });
  it('an untrusted CA is "certificate verify failed" naming the reason', () => {
    expect(clientLine('untrusted')).toMatch(/^websocketConnect: localhost:\d+: certificate verify failed: (unable to get local issuer certificate|self.signed certificate in certificate chain).*websocketSetTrustedCA/);
  });
  it('websocketSetTrustedCA reports an unreadable file and accepts the test CA', () => {
    expect(clientLine('ca-missing')).toMatch(/websocketSetTrustedCA: cannot read CA file ".*missing\.pem": No such file or directory/);
    expect(clientLine('ca')).toBe('ok');
  });
  it('with the CA trusted: verified by host name (SNI) and by IP address, messages echo', () => {
    expect(clientLine('by-name')).toBe('connected');
    expect(clientLine('by-name got')).toBe('hello over tls');
    expect(clientLine('by-ip')).toBe('connected');
    expect(clientLine('by-ip got')).toBe('hello over tls');
  });
  it('a certificate for another host name is refused, naming the mismatch', () => {
    expect(clientLine('mismatch')).toMatch(/certificate verify failed: host name mismatch: the server's certificate is not valid for "localhost"/);
  });
  it('a server that does not speak TLS is a TLS handshake failure', () => {
    expect(clientLine('plain')).toMatch(/websocketConnect: 127\.0\.0\.1:\d+: TLS handshake failed: /);
  });
});

function wsOpen(url: string, opts: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const s = new WebSocket(url, { handshakeTimeout: 5000, ...opts });
    s.once('open', () => resolve(s));
    s.once('error', reject);
    s.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

async function wsEcho(text: string): Promise<string> {
  const s = await wsOpen(secure!.url, { ca: readFileSync(join(dir, 'ca.pem')) });
  const got = new Promise<string>((r) => s.once('message', (d) => r(String(d))));
  s.send(text);
  const reply = await got;
  const closed = new Promise<number>((r) => s.once('close', (code) => r(code)));
  s.close(1000);
  expect(await closed).toBe(1000);
  return reply;
}

describe('(b) Osprey wss:// server', () => {
  it('a missing certificate file and a non-matching key are Err values naming the file', () => {
    const out = secure!.output;
    expect(out.find((l) => l.startsWith('missing-cert: '))).toMatch(/websocketCreateSecureServer: cannot read certificate file ".*missing\.pem": No such file or directory/);
    expect(out.find((l) => l.startsWith('mismatched-key: '))).toMatch(/websocketCreateSecureServer: .*other\.key.*(does not match|mismatch)/);
  });
  it('a ws client trusting the CA gets an echo (text, 100 KB)', async () => {
    expect(await wsEcho('hello from ws over tls')).toBe('hello from ws over tls');
    const big = 'é'.repeat(50_000);
    expect(await wsEcho(big)).toBe(big);
  });
  it('a python3-websockets client with an ssl context gets an echo', async () => {
    const script = [
      'import asyncio, ssl, sys, websockets',
      'async def main():',
      '    ctx = ssl.create_default_context(cafile=sys.argv[2])',
      '    async with websockets.connect(sys.argv[1], ssl=ctx, open_timeout=5) as ws:',
      '        await ws.send("hello from python")',
      '        print("echo:", await asyncio.wait_for(ws.recv(), 5))',
      'asyncio.run(main())',
    ].join('\n');
    const c = spawnClient({ name: 'python-tls', command: SYSTEM_PYTHON, args: ['-c', script, secure!.url.replace('127.0.0.1', 'localhost'), join(dir, 'ca.pem')] });
    const exit = await c.exited;
    expect(exit.code, c.output.join('\n')).toBe(0);
    expect(c.stdoutLines).toContain('echo: hello from python');
  });
  it('a plain ws:// client is refused with HTTP 400, TLS garbage is dropped, and the server keeps serving', async () => {
    const plainUrl = secure!.url.replace('wss://', 'ws://');
    await expect(wsOpen(plainUrl)).rejects.toThrow(/HTTP 400/);
    // A TLS record header announcing a handshake, then junk: a bad ClientHello.
    const junk = await new Promise<string>((resolve) => {
      const s = tcpConnect(secure!.port, '127.0.0.1', () => s.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x10, ...Array(16).fill(0xab)])));
      s.on('error', () => resolve('error'));
      s.on('close', () => resolve('closed'));
      s.resume();
      setTimeout(() => { s.destroy(); resolve('timeout'); }, 5000).unref();
    });
    expect(junk).not.toBe('timeout');
    // An untrusting client fails its own verification; the server just loses that connection.
    await expect(wsOpen(secure!.url)).rejects.toThrow(/self.signed|unable to verify|local issuer/i);
    expect(await wsEcho('still serving')).toBe('still serving');
    expect(secure!.output.join('\n')).not.toMatch(/AddressSanitizer|runtime error|Segmentation/);
  });
});
