/**
 * The compiled Osprey HTTP server (docs/guide/17-http.md, runtime-c/src/http_server.c) against
 * independent clients: curl, Python's http.client, Node's fetch, and raw sockets for malformed
 * and hostile requests (smuggling pairs, oversized lines and heads, slowloris heads and bodies,
 * 10,000 pipelined requests). Loopback only; the server process is killed in afterAll.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workspace, type Workspace } from '../interop/compile.ts';
import { freePort } from '../peers/process.ts';

const run = promisify(execFile);
const SOURCE = readFileSync(new URL('./server.osp.txt', import.meta.url), 'utf8');

let ws: Workspace;
let server: ChildProcess | undefined;
let port = 0;
let stderr = '';

beforeAll(async () => {
  ws = workspace();
  port = await freePort();
  const exe = await ws.build('http_server', SOURCE.replace('PORT', String(port)));
  // Two workers at least, whatever the machine: a handler busy computing must leave the others
  // a worker (a one-core machine would otherwise run every handler on one thread).
  const child = spawn(exe, [], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OSPREY_THREADS: '2' } });
  server = child;
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('server did not print "listening"')), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('listening')) {
        clearTimeout(t);
        resolve();
      }
      if (d.toString().includes('failed')) reject(new Error(d.toString()));
    });
  });
}, 90_000);

afterAll(() => {
  server?.kill('SIGKILL');
  ws?.dispose();
});

/** Sends raw bytes (optionally in timed pieces) and collects everything until the server closes
 *  or `untilBytes`/`idleMs` says enough. */
function raw(pieces: (string | Buffer | { waitMs: number })[], opts: { timeoutMs?: number; endAfterSend?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    }, opts.timeoutMs ?? 5000);
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => {
      /* a reset after the response: what arrived is the answer */
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    sock.on('connect', async () => {
      try {
        for (const p of pieces) {
          if (typeof p === 'object' && !Buffer.isBuffer(p)) await new Promise((r) => setTimeout(r, p.waitMs));
          else if (!sock.destroyed) sock.write(p);
        }
        if (opts.endAfterSend) sock.end();
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

function statusOf(response: string): number {
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(response);
  return m ? Number(m[1]) : -1;
}

describe('HTTP server with independent clients', () => {
  it('curl: GET with Date, Content-Type, the handler\'s header and the real Content-Length', async () => {
    const { stdout } = await run('curl', ['-s', '-i', '--max-time', '5', `http://127.0.0.1:${port}/`]);
    const [head, body] = stdout.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(head).toMatch(/\r\nDate: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT/);
    expect(head).toMatch(/\r\nContent-Type: text\/plain/);
    expect(head).toMatch(/\r\nX-Osprey: yes/);
    // The handler says contentLength 0; the runtime sends the real length.
    expect(head).toMatch(/\r\nContent-Length: 2(\r|$)/);
    expect(body).toBe('hi');
  });

  it('curl: POST with a Content-Length body and with a chunked body; 404 passes through', async () => {
    const a = await run('curl', ['-s', '--max-time', '5', '--data-binary', 'abc', `http://127.0.0.1:${port}/echo`]);
    expect(a.stdout).toBe('POST abc');
    const b = await run('curl', ['-s', '--max-time', '5', '-H', 'Transfer-Encoding: chunked', '--data-binary', 'chunky body', `http://127.0.0.1:${port}/echo`]);
    expect(b.stdout).toBe('POST chunky body');
    const c = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', `http://127.0.0.1:${port}/missing`]);
    expect(c.stdout).toBe('404');
  });

  it('curl: a 2 MiB upload is refused with 413 (Expect: 100-continue never invited)', async () => {
    const { stdout } = await run('bash', ['-c', `head -c 2097152 /dev/zero | tr '\\0' a | curl -s -o /dev/null -w '%{http_code}' --max-time 10 --data-binary @- http://127.0.0.1:${port}/echo`]);
    expect(stdout).toBe('413');
  });

  it('python http.client: keep-alive reuses one connection; HEAD has Content-Length and no body', async () => {
    const script = `
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", ${port}, timeout=5)
c.request("GET", "/a?x=1"); r = c.getresponse(); b1 = r.read(); s1 = c.sock
c.request("POST", "/echo", body=b"py body"); r2 = c.getresponse(); b2 = r2.read()
same = s1 is c.sock and c.sock is not None
c.request("HEAD", "/"); r3 = c.getresponse(); b3 = r3.read()
print(b1.decode(), b2.decode(), same, r3.status, r3.getheader("Content-Length"), len(b3), sep="|")
`;
    const { stdout } = await run('python3', ['-c', script], { timeout: 15_000 });
    expect(stdout.trim()).toBe('/a?x=1|POST py body|True|200|2|0');
  });

  it('Node fetch: GET and POST, and the handler sees the raw header block', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/echo`, { method: 'POST', body: 'from fetch' });
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('POST from fetch');
    const h = await fetch(`http://127.0.0.1:${port}/headers`, { headers: { 'X-Test-Header': 'value 42' } });
    const text = await h.text();
    expect(text).toMatch(/(^|\r\n)x-test-header: value 42\r\n/i);
    expect(text).toMatch(/(^|\r\n)host: 127\.0\.0\.1:\d+\r\n/i);
  });

  it('a slow handler delays only its own request (each request is its own fiber)', async () => {
    const t0 = Date.now();
    const slow = fetch(`http://127.0.0.1:${port}/slow`).then((r) => r.text());
    await new Promise((r) => setTimeout(r, 100));
    const fast = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text());
    const fastMs = Date.now() - t0;
    expect(fast).toBe('hi');
    expect(fastMs).toBeLessThan(800);
    expect(await slow).toBe('slow done');
  });

  it('a handler busy computing delays only its own request, even among requests that arrived with it', async () => {
    // Connect first, then send every request at once, so the server reads them in one loop
    // iteration and hands them to the scheduler as one batch: the fast ones must not wait
    // behind the computing one on its worker.
    const open = () =>
      new Promise<Socket>((resolve, reject) => {
        const s = connect(port, '127.0.0.1', () => resolve(s));
        s.once('error', reject);
      });
    const socks = await Promise.all(Array.from({ length: 9 }, open));
    const t0 = Date.now();
    const answered = socks.map(
      (s) =>
        new Promise<{ body: string; ms: number }>((resolve) => {
          let text = '';
          s.on('data', (d) => {
            text += d.toString('latin1');
            if (/\r\n\r\n(hi|spun \d+)$/.test(text)) resolve({ body: text.slice(text.indexOf('\r\n\r\n') + 4), ms: Date.now() - t0 });
          });
        }),
    );
    socks.forEach((s, i) => s.write(`GET ${i === 0 ? '/spin' : '/'} HTTP/1.1\r\nHost: x\r\n\r\n`));
    const [spin, ...fast] = await Promise.all(answered);
    socks.forEach((s) => s.destroy());
    expect(spin!.body).toMatch(/^spun \d+$/);
    for (const f of fast) expect(f.body).toBe('hi');
    const slowestFast = Math.max(...fast.map((f) => f.ms));
    // The computation takes a few hundred milliseconds; the others are answered while it runs.
    expect(spin!.ms).toBeGreaterThan(100);
    expect(slowestFast).toBeLessThan(spin!.ms / 2);
  });

  it('handlers that wait run side by side, even among requests that arrived together', async () => {
    // Sent at once, so they reach the server as one batch: each handler sleeps 400 ms, and the
    // next request must not wait for it (one after another they would take 8 s).
    const open = () =>
      new Promise<Socket>((resolve, reject) => {
        const s = connect(port, '127.0.0.1', () => resolve(s));
        s.once('error', reject);
      });
    const socks = await Promise.all(Array.from({ length: 20 }, open));
    const t0 = Date.now();
    const answered = socks.map(
      (s) =>
        new Promise<string>((resolve) => {
          let text = '';
          s.on('data', (d) => {
            text += d.toString('latin1');
            if (text.endsWith('\r\n\r\nnapped')) resolve(text);
          });
        }),
    );
    socks.forEach((s) => s.write('GET /nap HTTP/1.1\r\nHost: x\r\n\r\n'));
    const texts = await Promise.all(answered);
    const ms = Date.now() - t0;
    socks.forEach((s) => s.destroy());
    for (const t of texts) expect(t).toMatch(/^HTTP\/1\.1 200 /);
    expect(ms).toBeGreaterThanOrEqual(390);
    expect(ms).toBeLessThan(2500);
  });
});

describe('HTTP server: idle workers poll the sockets', () => {
  const open = () =>
    new Promise<Socket>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });
  /** Sends one GET on `s` and resolves with the body and the milliseconds it took. */
  const ask = (s: Socket, path: string) =>
    new Promise<{ body: string; ms: number }>((resolve) => {
      const t0 = Date.now();
      let text = '';
      const onData = (d: Buffer) => {
        text += d.toString('latin1');
        const end = text.indexOf('\r\n\r\n');
        const length = /\r\nContent-Length: (\d+)\r\n/.exec(text.slice(0, end + 2));
        if (end >= 0 && length && text.length >= end + 4 + Number(length[1])) {
          s.off('data', onData);
          resolve({ body: text.slice(end + 4), ms: Date.now() - t0 });
        }
      };
      s.on('data', onData);
      s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    });

  it('a handler computing on the polling worker does not stop the others from being read and answered', async () => {
    // The worker that polled the /spin request runs its handler itself, so it stops polling for
    // a few hundred milliseconds; requests that arrive afterwards, one by one on another
    // connection, must be picked up by the other worker (the vacant poller role is taken over).
    const [spinner, other] = await Promise.all([open(), open()]);
    await ask(other, '/'); // both connections known to the server
    const spin = ask(spinner, '/spin');
    await new Promise((r) => setTimeout(r, 40));
    const quick: number[] = [];
    let spun: { body: string; ms: number } | undefined;
    void spin.then((r) => (spun = r));
    for (let i = 0; i < 5 && spun === undefined; i++) {
      const r = await ask(other, '/');
      expect(r.body).toBe('hi');
      quick.push(r.ms);
      await new Promise((r) => setTimeout(r, 10));
    }
    const done = await spin;
    spinner.destroy();
    other.destroy();
    expect(done.body).toMatch(/^spun \d+$/);
    expect(done.ms).toBeGreaterThan(150);
    expect(quick.length).toBeGreaterThanOrEqual(2);
    // Each answered while the computation ran, not after it (tens of milliseconds on a quiet
    // machine; the bound leaves room for a loaded one).
    expect(Math.max(...quick)).toBeLessThan(done.ms / 2);
  });

  it('an idle server uses no CPU: no periodic wake-up of the poller, the workers or the watchdog', async () => {
    // A burst of requests first (the poller, its watchdog and the runners all active), then
    // silence; the kept-alive connections of earlier tests close after idleTimeoutMs (1.5 s).
    const socks = await Promise.all(Array.from({ length: 8 }, open));
    await Promise.all(socks.flatMap((s) => Array.from({ length: 5 }, () => 0).map(() => ask(s, '/'))).slice(0, 8));
    socks.forEach((s) => s.destroy());
    await new Promise((r) => setTimeout(r, 2500));
    const ticks = () => {
      const stat = readFileSync(`/proc/${server!.pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(f[11]) + Number(f[12]); // utime + stime, clock ticks (1/100 s)
    };
    const switches = () => {
      let n = 0;
      for (const tid of readdirSync(`/proc/${server!.pid}/task`)) {
        const st = readFileSync(`/proc/${server!.pid}/task/${tid}/status`, 'utf8');
        for (const m of st.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) n += Number(m[1]);
      }
      return n;
    };
    const [t0, s0] = [ticks(), switches()];
    await new Promise((r) => setTimeout(r, 5000));
    const [t1, s1] = [ticks(), switches()];
    expect(t1 - t0).toBeLessThanOrEqual(1);
    // A 2 ms timer anywhere would be 2,500 wake-ups in 5 s.
    expect(s1 - s0).toBeLessThan(20);
  }, 15_000);
});

describe('WebSockets on the HTTP port (httpServerWebSocket)', () => {
  it('an upgrade to /ws is a WebSocket (default echo); other paths and plain GET /ws stay HTTP', async () => {
    const { WebSocket } = await import('ws');
    const sock = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    const echoed = await new Promise<string>((resolve, reject) => {
      sock.on('open', () => sock.send('same port'));
      sock.on('message', (d) => resolve(d.toString()));
      sock.on('error', reject);
    });
    expect(echoed).toBe('same port');
    // HTTP keeps working while the WebSocket is open.
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('hi');
    sock.close(1000);
    await new Promise((r) => sock.once('close', r));
    const plain = await fetch(`http://127.0.0.1:${port}/ws`);
    expect(await plain.text()).toBe('/ws');
    const other = new WebSocket(`ws://127.0.0.1:${port}/elsewhere`);
    const status = await new Promise<number>((resolve) => {
      other.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      other.on('error', () => resolve(-1));
    });
    // Not the WebSocket path: the request went to the Osprey handler like any other.
    expect(status).toBe(200);
  });
});

describe('HTTP server with malformed and hostile requests', () => {
  const host = 'Host: x\r\n';
  it('Content-Length together with Transfer-Encoding is refused with 400 (smuggling)', async () => {
    const r = await raw([`POST /echo HTTP/1.1\r\n${host}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${host}\r\n`]);
    expect(statusOf(r)).toBe(400);
    expect(r).toMatch(/Connection: close/);
    expect(r).not.toMatch(/smuggled/);
  });

  it.each([
    ['a malformed Content-Length', 'Content-Length: 5a\r\n'],
    ['a signed Content-Length', 'Content-Length: +5\r\n'],
    ['two Content-Length headers', 'Content-Length: 3\r\nContent-Length: 3\r\n'],
    ['a non-chunked transfer coding', 'Transfer-Encoding: identity\r\n'],
    ['chunked not last', 'Transfer-Encoding: chunked, identity\r\n'],
    ['whitespace before the colon', 'Content-Length : 3\r\n'],
    ['an obs-fold line', 'X-A: 1\r\n  folded\r\n'],
  ])('%s is refused with 400', async (_name, header) => {
    const r = await raw([`POST /echo HTTP/1.1\r\n${host}${header}\r\nabc`]);
    expect(statusOf(r)).toBe(400);
  });

  it('no Host in HTTP/1.1, a bare LF and an unknown version are refused (400, 400, 505)', async () => {
    expect(statusOf(await raw(['GET / HTTP/1.1\r\n\r\n']))).toBe(400);
    expect(statusOf(await raw([`GET / HTTP/1.1\n${host}\r\n`]))).toBe(400);
    expect(statusOf(await raw([`GET / HTTP/2.0\r\n${host}\r\n`]))).toBe(505);
  });

  it('limits: request line over 8 KiB → 414, headers over 16 KiB → 431, 101 header lines → 431, body over 1 MiB → 413', async () => {
    expect(statusOf(await raw([`GET /${'a'.repeat(9000)} HTTP/1.1\r\n${host}\r\n`]))).toBe(414);
    expect(statusOf(await raw([`GET / HTTP/1.1\r\n${host}X-Big: ${'b'.repeat(17000)}\r\n\r\n`]))).toBe(431);
    const many = Array.from({ length: 101 }, (_, i) => `X-H${i}: v\r\n`).join('');
    expect(statusOf(await raw([`GET / HTTP/1.1\r\n${host}${many}\r\n`]))).toBe(431);
    expect(statusOf(await raw([`POST /echo HTTP/1.1\r\n${host}Content-Length: 1048577\r\n\r\n`]))).toBe(413);
    // Chunked: the limit is checked at each chunk size, before its data is buffered.
    expect(statusOf(await raw([`POST /echo HTTP/1.1\r\n${host}Transfer-Encoding: chunked\r\n\r\n100001\r\n`]))).toBe(413);
  });

  it('slowloris: a head dribbled past headerTimeoutMs gets 408; a stalled body gets 408', async () => {
    const t0 = Date.now();
    const pieces: (string | { waitMs: number })[] = ['GET / HTTP/1.1\r\n'];
    for (let i = 0; i < 20; i++) pieces.push({ waitMs: 100 }, `X-Slow-${i}: y\r\n`);
    const r = await raw(pieces, { timeoutMs: 4000 });
    expect(statusOf(r)).toBe(408);
    expect(Date.now() - t0).toBeLessThan(2500);
    const b = await raw([`POST /echo HTTP/1.1\r\n${host}Content-Length: 10\r\n\r\nabc`], { timeoutMs: 4000 });
    expect(statusOf(b)).toBe(408);
  });

  it('10,000 pipelined requests on one connection are answered in order', async () => {
    const n = 10_000;
    const reqs = Array.from({ length: n }, (_, i) => `GET /p/${i} HTTP/1.1\r\n${host}\r\n`).join('') + `GET /p/last HTTP/1.1\r\n${host}Connection: close\r\n\r\n`;
    const r = await raw([reqs], { timeoutMs: 30_000 });
    const bodies = [...r.matchAll(/\r\n\r\n(\/p\/(?:\d+|last))/g)].map((m) => m[1]);
    expect(bodies.length).toBe(n + 1);
    for (let i = 0; i < n; i++) if (bodies[i] !== `/p/${i}`) expect(bodies[i]).toBe(`/p/${i}`);
    expect(bodies[n]).toBe('/p/last');
    expect(r.match(/Connection: close/g)?.length).toBe(1);
  }, 40_000);

  it('responses larger than the socket buffers, read late and pipelined, arrive whole and in order', async () => {
    // Each /echo answer repeats a 700 KiB body, eight of them: more than the loopback socket
    // buffers hold (4 MiB to send, 128 KiB to receive) while the client is not reading, so the
    // server's send stops part way and the rest waits for the client (the partial-send path).
    // The client reads nothing for 400 ms, then everything.
    const bodies = 'abcdefgh'.split('').map((c) => c.repeat(700 * 1024));
    const last = bodies.length - 1;
    const reqs = bodies.map((b, i) => `POST /echo HTTP/1.1\r\n${host}Content-Length: ${b.length}\r\n${i === last ? 'Connection: close\r\n' : ''}\r\n${b}`);
    const r = await new Promise<Buffer>((resolve, reject) => {
      const sock = connect(port, '127.0.0.1');
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => reject(new Error('no complete answer within 10 s')), 10_000);
      sock.on('data', (d) => chunks.push(d));
      sock.on('error', reject);
      sock.on('close', () => {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks));
      });
      sock.on('connect', () => {
        sock.pause();
        sock.write(reqs.join(''));
        setTimeout(() => sock.resume(), 400);
      });
    });
    const text = r.toString('latin1');
    const answers = text.split(/HTTP\/1\.1 200 OK\r\n/).slice(1);
    expect(answers.length).toBe(bodies.length);
    answers.forEach((a, i) => {
      const [head, body] = [a.slice(0, a.indexOf('\r\n\r\n')), a.slice(a.indexOf('\r\n\r\n') + 4)];
      expect(head).toContain(`Content-Length: ${bodies[i]!.length + 5}`);
      expect(body.length).toBe(bodies[i]!.length + 5);
      expect(body === `POST ${bodies[i]}`).toBe(true);
    });
  }, 20_000);

  it('one keep-alive connection: no request sees the previous one\'s headers or body, and no response carries the previous one\'s bytes', async () => {
    // A connection reuses one request record and one response buffer for all its requests:
    // each request must see only its own method, path, headers and body, and each response must
    // be exactly its own (a shorter one after a longer one, a small one after one too large to
    // keep), whether the requests come one after another or pipelined in one write.
    const secretReq = `POST /all HTTP/1.1\r\nHost: x\r\nX-Secret: s3cr3t-token\r\nContent-Length: 14\r\n\r\nfirst-body-xyz`;
    const plainReq = `GET /all HTTP/1.1\r\nHost: x\r\n\r\n`;
    const echo = (body: string) => `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const big = 'B'.repeat(40 * 1024);
    const mid = 'M'.repeat(9000);
    const requests = [secretReq, plainReq, echo(big), echo('ab'), echo(mid), plainReq, `GET / HTTP/1.1\r\nHost: x\r\n\r\n`];
    const expected = [
      'POST /all|Host: x\r\nX-Secret: s3cr3t-token\r\nContent-Length: 14\r\n|first-body-xyz',
      'GET /all|Host: x\r\n|',
      `POST ${big}`,
      'POST ab',
      `POST ${mid}`,
      'GET /all|Host: x\r\n|',
      'hi',
    ];
    /** Splits a byte stream into responses by their Content-Length; what is left must be nothing. */
    const split = (text: string): { bodies: string[]; rest: string } => {
      const bodies: string[] = [];
      let at = 0;
      for (;;) {
        const end = text.indexOf('\r\n\r\n', at);
        if (end < 0) break;
        const length = /\r\nContent-Length: (\d+)\r\n/.exec(text.slice(at, end + 2));
        if (!length || text.length < end + 4 + Number(length[1])) break;
        bodies.push(text.slice(end + 4, end + 4 + Number(length[1])));
        at = end + 4 + Number(length[1]);
      }
      return { bodies, rest: text.slice(at) };
    };
    const conversation = (pipelined: boolean) =>
      new Promise<string>((resolve, reject) => {
        const sock = connect(port, '127.0.0.1');
        let text = '';
        let sent = 0;
        const timer = setTimeout(() => {
          sock.destroy();
          reject(new Error(`no complete answers within 10 s: ${JSON.stringify(text.slice(0, 300))}`));
        }, 10_000);
        sock.on('error', reject);
        sock.on('data', (d) => {
          text += d.toString('latin1');
          const answered = split(text).bodies.length;
          if (answered === requests.length) {
            clearTimeout(timer);
            sock.destroy();
            resolve(text);
          } else if (!pipelined && answered === sent) sock.write(requests[sent++]!);
        });
        sock.on('connect', () => {
          if (pipelined) {
            sock.write(requests.join(''));
            sent = requests.length;
          } else sock.write(requests[sent++]!);
        });
      });
    for (const pipelined of [false, true]) {
      const { bodies, rest } = split(await conversation(pipelined));
      expect(bodies.length).toBe(expected.length);
      bodies.forEach((b, i) => expect(b === expected[i], `${pipelined ? 'pipelined' : 'one by one'}, response ${i}: ${JSON.stringify(b.slice(0, 120))}`).toBe(true));
      expect(rest).toBe('');
    }
  }, 30_000);

  it('keep-alive: the connection outlives the previous head deadline and closes after idleTimeoutMs', async () => {
    // headerTimeoutMs is 700 and idleTimeoutMs 1500: the second request comes 1 s after the
    // first (its head deadline long past), and the silence after it closes the connection.
    const sock = connect(port, '127.0.0.1');
    let text = '';
    sock.on('data', (d) => (text += d.toString('latin1')));
    const closedAt = new Promise<number>((resolve) => sock.on('close', () => resolve(Date.now())));
    const answered = async (body: string) => {
      for (let i = 0; i < 200 && !text.endsWith(`\r\n\r\n${body}`); i++) await new Promise((r) => setTimeout(r, 10));
      expect(text.endsWith(`\r\n\r\n${body}`)).toBe(true);
    };
    sock.write(`GET /first HTTP/1.1\r\n${host}\r\n`);
    await answered('/first');
    await new Promise((r) => setTimeout(r, 1000));
    sock.write(`GET /second HTTP/1.1\r\n${host}\r\n`);
    await answered('/second');
    const answeredAt = Date.now();
    const idleMs = (await closedAt) - answeredAt;
    expect(idleMs).toBeGreaterThan(1200);
    expect(idleMs).toBeLessThan(3500);
    expect(text.match(/HTTP\/1\.1 200/g)?.length).toBe(2);
  });

  it('Connection: close is honoured and HTTP/1.0 closes by default', async () => {
    const a = await raw([`GET / HTTP/1.1\r\n${host}Connection: close\r\n\r\n`], { timeoutMs: 3000 });
    expect(a).toMatch(/Connection: close\r\n\r\nhi$/);
    const b = await raw(['GET / HTTP/1.0\r\n\r\n'], { timeoutMs: 3000 });
    expect(b).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(b).toMatch(/hi$/);
  });

  it('the server is still healthy and printed nothing unexpected', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/`);
    expect(await r.text()).toBe('hi');
    expect(stderr).toBe('');
  });
});
