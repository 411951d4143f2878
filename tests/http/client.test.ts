/**
 * The compiled Osprey HTTP client (docs/guide/17-http.md, runtime-c/src/http_client.c) against a Node
 * `http` server and an `https` one (throwaway CA from tests/peers/certs.ts) and Python's
 * http.server: every method, headers out and in, Content-Length, chunked and close-delimited
 * bodies, redirects returned (not followed), the body limit, the timeout, certificate and host
 * name failures, and the errors a program can cause. Loopback only; every server is closed.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workspace, type Workspace } from '../interop/compile.ts';
import { freePort, makeTestCertificates, type TestCertificates } from '../peers/index.ts';

const run = promisify(execFile);
let ws: Workspace;
let certDir: string;
let certs: TestCertificates;
const servers: Server[] = [];
let python: ChildProcess | undefined;

function route(req: IncomingMessage, res: ServerResponse): void {
  let body = '';
  req.on('data', (d: Buffer) => (body += d.toString()));
  req.on('end', () => {
    const url = req.url ?? '';
    if (url === '/chunked') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.write('part one, ');
      setTimeout(() => res.end('part two'), 50);
    } else if (url === '/redirect') {
      res.writeHead(302, { Location: '/elsewhere' });
      res.end('moved');
    } else if (url === '/big') {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      const mb = Buffer.alloc(1024 * 1024, 'x');
      let sent = 0;
      const more = (): void => {
        while (sent < 17) {
          sent++;
          if (!res.write(mb)) return void res.once('drain', more);
        }
        res.end();
      };
      more();
    } else if (url === '/slow') {
      setTimeout(() => res.end('too late'), 3000);
    } else if (url === '/empty') {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Seen-Client': String(req.headers['x-client'] ?? '') });
      res.end(`${req.method} ${url} ${body}`);
    }
  });
}

async function listen(server: Server): Promise<number> {
  const port = await freePort();
  server.listen(port, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  servers.push(server);
  return port;
}

const CLIENT = (base: string, ca: string | null, timeout: number, paths: string[]): string => `
fn show(label: String, r: Result<HttpResponse, String>) -> Unit = match r {
    Success { value } => print("\${label}: \${value.status} [\${value.contentType}] \${toString(value.contentLength)} \${value.partialBody}")
    Error { message } => print("\${label}: error \${message}")
}
${ca ? `match websocketSetTrustedCA(path: "${ca}") {
    Success { value } => print("ca set")
    Error { message } => print("ca failed: \${message}")
}` : ''}
match httpCreateClient(baseUrl: "${base}", timeout: ${timeout}) {
    Success { value } => {
        let c = value
        ${paths.map((p) => `show(label: "get ${p}", r: httpGet(clientID: c, path: "${p}", headers: "X-Client: osprey"))`).join('\n        ')}
        show(label: "post", r: httpPost(clientID: c, path: "/echo", body: "post body", headers: ""))
        show(label: "put", r: httpPut(clientID: c, path: "/echo", body: "put body", headers: ""))
        show(label: "delete", r: httpDelete(clientID: c, path: "/item/7", headers: ""))
        show(label: "patch", r: httpRequest(clientID: c, method: PATCH, path: "/echo", headers: "", body: "patch body"))
        show(label: "injection", r: httpGet(clientID: c, path: "/", headers: "X-A: 1\\r\\rX-B: 2"))
        match httpCloseClient(clientID: c) {
            Success { value } => print("closed")
            Error { message } => print("close failed: \${message}")
        }
        show(label: "after close", r: httpGet(clientID: c, path: "/", headers: ""))
    }
    Error { message } => print("client failed: \${message}")
}
`;

async function runClient(name: string, source: string): Promise<string[]> {
  const exe = await ws.build(name, source);
  const { stdout } = await run(exe, [], { timeout: 30_000 });
  return stdout.trim().split('\n');
}

beforeAll(() => {
  ws = workspace();
  certDir = mkdtempSync(join(tmpdir(), 'osprey-http-certs-'));
  certs = makeTestCertificates(certDir);
});

afterAll(() => {
  for (const s of servers) {
    s.closeAllConnections?.();
    s.close();
  }
  python?.kill('SIGKILL');
  ws?.dispose();
  rmSync(certDir, { recursive: true, force: true });
});

describe('HTTP client', () => {
  it('against Node http: methods, headers, chunked, redirect returned, body limit, timeout', async () => {
    const port = await listen(createHttp(route));
    const lines = await runClient('client_node', CLIENT(`http://127.0.0.1:${port}`, null, 1500, ['/hello?x=1', '/chunked', '/redirect', '/empty', '/big', '/slow']));
    expect(lines[0]).toBe('get /hello?x=1: 200 [text/plain; charset=utf-8] 15 GET /hello?x=1 ');
    expect(lines[1]).toBe('get /chunked: 200 [text/plain] 18 part one, part two');
    expect(lines[2]).toBe('get /redirect: 302 [] 5 moved');
    expect(lines[3]).toBe('get /empty: 204 [] 0 ');
    expect(lines[4]).toMatch(/^get \/big: error httpGet: bad response from 127\.0\.0\.1:\d+: the response body is larger than the limit of 16 MiB$/);
    expect(lines[5]).toMatch(/^get \/slow: error httpGet: timed out after 1500 ms waiting for the response from 127\.0\.0\.1:\d+$/);
    expect(lines[6]).toBe('post: 200 [text/plain; charset=utf-8] 20 POST /echo post body');
    expect(lines[7]).toBe('put: 200 [text/plain; charset=utf-8] 18 PUT /echo put body');
    expect(lines[8]).toBe('delete: 200 [text/plain; charset=utf-8] 15 DELETE /item/7 ');
    expect(lines[9]).toBe('patch: 200 [text/plain; charset=utf-8] 22 PATCH /echo patch body');
    expect(lines[10]).toBe('injection: error httpGet: the headers argument has a bare CR in the header text');
    expect(lines[11]).toBe('closed');
    expect(lines[12]).toMatch(/^after close: error httpGet: client \d+ was closed$/);
  }, 60_000);

  it('sends the caller\'s headers and returns the response headers raw', async () => {
    const port = await listen(createHttp(route));
    const src = `
match httpCreateClient(baseUrl: "http://127.0.0.1:${port}/", timeout: 2000) {
    Success { value } => match httpGet(clientID: value, path: "/h", headers: "X-Client: osprey-7\\r\\n") {
        Success { value } => print(value.headers)
        Error { message } => print("error \${message}")
    }
    Error { message } => print("client failed: \${message}")
}`;
    const lines = await runClient('client_headers', src);
    expect(lines).toContain('X-Seen-Client: osprey-7\r');
    // Node frames this one chunked; the raw block keeps every line as received.
    expect(lines.some((l) => /^Transfer-Encoding: chunked\r?$/.test(l)), JSON.stringify(lines)).toBe(true);
    expect(lines.some((l) => /^Date: \w{3}, /.test(l)), JSON.stringify(lines)).toBe(true);
  }, 60_000);

  it('https with a throwaway CA: verified; an untrusted CA and a host name mismatch are errors', async () => {
    const good = await listen(createHttps({ cert: readFileSync(certs.cert), key: readFileSync(certs.key) }, route));
    const other = await listen(createHttps({ cert: readFileSync(certs.otherCert), key: readFileSync(certs.otherKey) }, route));
    const ok = await runClient('client_tls', CLIENT(`https://127.0.0.1:${good}`, certs.ca, 5000, ['/secure']));
    expect(ok[0]).toBe('ca set');
    expect(ok[1]).toBe('get /secure: 200 [text/plain; charset=utf-8] 12 GET /secure ');
    const untrusted = await runClient('client_tls_untrusted', CLIENT(`https://localhost:${good}`, null, 5000, ['/']));
    expect(untrusted[0]).toMatch(/^get \/: error httpGet: https:\/\/localhost:\d+: .*certificate verify failed/);
    const mismatch = await runClient('client_tls_mismatch', CLIENT(`https://localhost:${other}`, certs.ca, 5000, ['/']));
    expect(mismatch[1]).toMatch(/^get \/: error httpGet: https:\/\/localhost:\d+: .*(host name mismatch|certificate verify failed)/);
  }, 90_000);

  it('against Python http.server: a file with Content-Length, a 404, and connection refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-http-py-'));
    writeFileSync(join(dir, 'file.txt'), 'served by python\n');
    const port = await freePort();
    python = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', dir], { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await fetch(`http://127.0.0.1:${port}/file.txt`);
        break;
      } catch {
        if (Date.now() > deadline) throw new Error('python http.server did not start');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const src = `
fn show(label: String, r: Result<HttpResponse, String>) -> Unit = match r {
    Success { value } => print("\${label}: \${value.status} \${toString(value.contentLength)}")
    Error { message } => print("\${label}: error \${message}")
}
match httpCreateClient(baseUrl: "http://127.0.0.1:${port}", timeout: 3000) {
    Success { value } => {
        show(label: "file", r: httpGet(clientID: value, path: "/file.txt", headers: ""))
        show(label: "missing", r: httpGet(clientID: value, path: "/nope", headers: ""))
    }
    Error { message } => print("client failed: \${message}")
}
match httpCreateClient(baseUrl: "http://127.0.0.1:1", timeout: 3000) {
    Success { value } => show(label: "refused", r: httpGet(clientID: value, path: "/", headers: ""))
    Error { message } => print("client failed: \${message}")
}
match httpCreateClient(baseUrl: "ftp://x", timeout: 3000) {
    Success { value } => print("unexpected")
    Error { message } => print(message)
}`;
    const lines = await runClient('client_python', src);
    python.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    expect(lines[0]).toBe('file: 200 17');
    expect(lines[1]).toMatch(/^missing: 404 /);
    expect(lines[2]).toMatch(/^refused: error httpGet: cannot connect to 127\.0\.0\.1:1: .*refused/i);
    expect(lines[3]).toBe('httpCreateClient: bad URL "ftp://x": the URL must start with http:// or https://');
  }, 60_000);
});
