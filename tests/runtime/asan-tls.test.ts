/**
 * The wss:// paths of the runtime under AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer
 * on): build/tools/asan/ws-echo-server with a throwaway certificate serves `ws` clients (small and
 * 2 MiB messages, so partial SSL_write and WANT_WRITE happen, several clients at once), a plain
 * ws:// client, TLS garbage, a ClientHello cut short, a corrupted record after a good handshake,
 * and ClientHello replays (scripts/hostile/tls_replay.mjs) whose connections go away while their
 * handshake step is with a TLS handshake thread, the last of them while the server shuts down;
 * build/tools/asan/ws-echo-client talks wss:// to a Node https + ws server. Every process must end
 * cleanly and no sanitizer report may appear (reports go to files in a temporary directory).
 */
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { connect as tcpConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { freePort, makeTestCertificates, OSPREY_ECHO_CLIENT, OSPREY_ECHO_SERVER, runTlsReplay, spawnClient, spawnPeer, type PeerProcess, type TestCertificates } from '../peers/index.ts';

const ASAN_SERVER = OSPREY_ECHO_SERVER.replace(/ws-echo-server$/, 'asan/ws-echo-server');
const ASAN_CLIENT = OSPREY_ECHO_CLIENT.replace(/ws-echo-client$/, 'asan/ws-echo-client');

let dir: string;
let logs: string;
let certs: TestCertificates;
let server: PeerProcess | undefined;
let sanitizerEnv: Record<string, string>;

beforeAll(async () => {
  if (!existsSync(ASAN_SERVER)) return;
  dir = mkdtempSync(join(tmpdir(), 'osprey-asan-tls-'));
  logs = join(dir, 'logs');
  mkdirSync(logs);
  certs = makeTestCertificates(dir);
  sanitizerEnv = {
    ASAN_OPTIONS: `detect_leaks=1:abort_on_error=1:log_path=${logs}/sanitizer`,
    UBSAN_OPTIONS: `print_stacktrace=1:halt_on_error=1:log_path=${logs}/sanitizer`,
    OSPREY_WS_CLOSE_TIMEOUT_MS: '1000',
    OSPREY_WS_HANDSHAKE_TIMEOUT_MS: '2000',
  };
  server = await spawnPeer({
    name: 'asan-wss-echo-server',
    command: ASAN_SERVER,
    args: ['--port', String(await freePort()), '--cert', certs.cert, '--key', certs.key],
    env: sanitizerEnv,
    pipeStdin: true,
    readyTimeoutMs: 15_000,
  });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function reports(): string {
  return readdirSync(logs)
    .map((f) => `${f}:\n${readFileSync(join(logs, f), 'utf8').slice(0, 4000)}`)
    .join('\n');
}

async function echo(payloads: (string | Buffer)[]): Promise<void> {
  const s = new WebSocket(server!.url.replace('127.0.0.1', 'localhost'), { ca: readFileSync(certs.ca), maxPayload: 8 << 20 });
  await once(s, 'open');
  const got: Buffer[] = [];
  const all = new Promise<void>((resolve) =>
    s.on('message', (d: Buffer) => {
      got.push(Buffer.from(d));
      if (got.length === payloads.length) resolve();
    }),
  );
  for (const p of payloads) s.send(p);
  await all;
  payloads.forEach((p, i) => expect(got[i].equals(Buffer.from(p)), `message ${i}`).toBe(true));
  const closed = once(s, 'close');
  s.close(1000);
  await closed;
}

/** The replay attacker against the server for `seconds`. */
const replay = (seconds: number, concurrency: number) => runTlsReplay(server!.port, seconds, concurrency);

/** Opens a TCP connection, runs `act` on it, and resolves when the server has closed it. */
function rawSession(act: (s: Socket) => void): Promise<string> {
  return new Promise((resolve) => {
    const s = tcpConnect(server!.port, '127.0.0.1', () => act(s));
    let data = '';
    s.on('data', (d) => (data += d.toString('latin1')));
    s.on('error', () => resolve(`error ${data.slice(0, 40)}`));
    s.on('close', () => resolve(`closed ${data.slice(0, 40)}`));
    setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, 6000).unref();
  });
}

describe.skipIf(!existsSync(ASAN_SERVER) || !existsSync(ASAN_CLIENT))('wss:// under ASan + UBSan', () => {
  it('echo: small text, 2 MiB binary, 50 pipelined messages, 4 clients at once', async () => {
    const big = Buffer.alloc(2 << 20, 7);
    for (let i = 0; i < big.length; i += 4099) big[i] = i & 0xff;
    await echo(['hello', big]);
    await Promise.all([0, 1, 2, 3].map((k) => echo(Array.from({ length: 50 }, (_, i) => `client ${k} message ${i} ${'x'.repeat(i * 37)}`))));
  }, 60_000);

  it('hostile peers are refused and only their connection ends', async () => {
    // Plain HTTP to the TLS port is answered 400 and closed; whether the peer then sees a FIN or a
    // reset is the kernel's race, what matters is that the 400 arrived.
    expect(await rawSession((s) => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))).toMatch(/^(closed|error) HTTP\/1.1 400/);
    expect(await rawSession((s) => s.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x20, ...Array(32).fill(0xab)])))).toMatch(/^(closed|error)/);
    expect(await rawSession((s) => s.end(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])))).toMatch(/^(closed|error)/);
    // A good TLS handshake, then a corrupted application-data record on the raw socket.
    const corrupted = await new Promise<string>((resolve) => {
      const raw = tcpConnect(server!.port, '127.0.0.1', () => {
        const t = tlsConnect({ socket: raw, servername: 'localhost', ca: readFileSync(certs.ca) }, () => {
          raw.write(Buffer.from([0x17, 0x03, 0x03, 0x00, 0x20, ...Array(32).fill(0x5a)]));
        });
        t.on('error', () => {});
      });
      raw.on('error', () => resolve('error'));
      raw.on('close', () => resolve('closed'));
      setTimeout(() => {
        raw.destroy();
        resolve('timeout');
      }, 6000).unref();
    });
    expect(corrupted).not.toBe('timeout');
    // Clients that vanish (TCP reset) while 2 MiB echoes are being written to them: the server's
    // SSL_write meets EPIPE/ECONNRESET and must not die of SIGPIPE.
    for (let k = 0; k < 3; k++) {
      const s = new WebSocket(server!.url.replace('127.0.0.1', 'localhost'), { ca: readFileSync(certs.ca) });
      await once(s, 'open');
      s.send(Buffer.alloc(2 << 20, k));
      await new Promise((r) => setTimeout(r, 20));
      s.terminate();
    }
    await new Promise((r) => setTimeout(r, 200));
    await echo(['still serving']);
  }, 60_000);

  it('the client side: ws-echo-client over wss:// with --ca echoes and exits 0', async () => {
    const https = createHttpsServer({ cert: readFileSync(certs.cert), key: readFileSync(certs.key) });
    const wss = new WebSocketServer({ server: https });
    const received: string[] = [];
    const sent = ['one', 'two ' + 'y'.repeat(200_000), 'three'];
    wss.on('connection', (sock) => {
      sock.on('error', () => {});
      sock.on('message', (d) => {
        received.push(String(d));
        if (received.length === sent.length) sock.close(1000, 'done');
      });
      for (const m of sent) sock.send(m);
    });
    https.listen(0, '127.0.0.1');
    await once(https, 'listening');
    try {
      const port = (https.address() as { port: number }).port;
      const c = spawnClient({ name: 'asan-wss-echo-client', command: ASAN_CLIENT, args: ['--url', `wss://localhost:${port}/`, '--ca', certs.ca], env: sanitizerEnv });
      const exit = await c.exited;
      expect(exit.code, c.output.join('\n')).toBe(0);
      expect(received).toEqual(sent);
    } finally {
      https.close();
    }
  }, 60_000);

  it('ClientHello replays: connections dropped while a handshake thread steps them', async () => {
    // The replayer closes each connection as soon as the server's first flight (or its refusal)
    // arrives, so most connections whose step was handed to a handshake thread are gone when
    // the step comes back, or go while it runs.
    const report = await replay(1.5, 64);
    expect(report.answered).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 100));
    await echo(['still serving after the replays']);
  }, 60_000);

  it('the server stops cleanly and no sanitizer report was written', async () => {
    // Replays in flight while the server shuts down: steps queued for, or run by, the
    // handshake threads when the loops stop.
    const late = replay(1, 64).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    // End of standard input stops ws-echo-server through websocketStopServer and osp_rt_shutdown.
    server!.child.stdin?.end();
    const exit = await Promise.race([server!.exited, new Promise<null>((r) => setTimeout(() => r(null), 10_000))]);
    expect(exit, 'ws-echo-server did not stop within 10 s of EOF').not.toBeNull();
    expect(exit!.code, server!.output.join('\n')).toBe(0);
    await late;
    expect(reports()).toBe('');
  }, 30_000);
});
