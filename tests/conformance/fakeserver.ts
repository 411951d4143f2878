/**
 * Raw fake server for the client direction (Autobahn's `fuzzingserver` role): accepts the client
 * under test on 127.0.0.1:0, hands each connection to the test as a RawConn (role 'server':
 * frames from the client must be masked), and lets the test write any HTTP response and any
 * frames — valid or not — byte for byte.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { acceptFor, buildFrame, closePayload, OP, RawConn, type FrameSpec, type HttpHead } from './wsraw.ts';

export class FakeServer {
  readonly conns: RawConn[] = [];
  private queue: RawConn[] = [];
  private wake: (() => void) | null = null;
  private sockets = new Set<Socket>();
  port = 0;

  private constructor(private readonly server: Server) {
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      const c = new RawConn(s, 'server');
      this.conns.push(c);
      this.queue.push(c);
      const w = this.wake;
      this.wake = null;
      w?.();
    });
  }

  static async start(): Promise<FakeServer> {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const f = new FakeServer(server);
    f.port = (server.address() as { port: number }).port;
    return f;
  }

  url(path = '/'): string {
    return `ws://127.0.0.1:${this.port}${path}`;
  }

  /** The next accepted connection and its request head. */
  async accept(timeoutMs = 5000): Promise<{ conn: RawConn; req: HttpHead }> {
    const deadline = performance.now() + timeoutMs;
    while (this.queue.length === 0) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`fake server: no client connected within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
    const conn = this.queue.shift()!;
    const req = await conn.readHead(timeoutMs);
    if (!req) throw new Error('fake server: client connected but sent no complete request');
    return { conn, req };
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export interface ResponseOptions {
  status?: string;
  /** Override the accept value (wrong accept cases). */
  accept?: string;
  omit?: string[];
  extra?: [string, string][];
}

/** A 101 response for `req` (or a variation of it). */
export function response(req: HttpHead, o: ResponseOptions = {}): Buffer {
  const key = req.get('Sec-WebSocket-Key') ?? '';
  const omit = new Set((o.omit ?? []).map((s) => s.toLowerCase()));
  const headers: [string, string][] = (
    [
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
      ['Sec-WebSocket-Accept', o.accept ?? acceptFor(key)],
    ] as [string, string][]
  )
    .filter(([k]) => !omit.has(k.toLowerCase()))
    .concat(o.extra ?? []);
  return Buffer.from(`HTTP/1.1 ${o.status ?? '101 Switching Protocols'}\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
}

/** Server frames are unmasked unless the spec says otherwise. */
export const sf = (spec: FrameSpec) => buildFrame({ mask: false, ...spec });
export const sT = (p: Buffer | string, o: Omit<FrameSpec, 'opcode' | 'payload'> = {}) => sf({ ...o, opcode: OP.TEXT, payload: p });
export const sCONT = (p: Buffer | string, o: Omit<FrameSpec, 'opcode' | 'payload'> = {}) => sf({ ...o, opcode: OP.CONT, payload: p });
export const sB = (p: Buffer | string, o: Omit<FrameSpec, 'opcode' | 'payload'> = {}) => sf({ ...o, opcode: OP.BINARY, payload: p });
export const sP = (p: Buffer | string = '', o: Omit<FrameSpec, 'opcode' | 'payload'> = {}) => sf({ ...o, opcode: OP.PING, payload: p });
export const sPONG = (p: Buffer | string = '') => sf({ opcode: OP.PONG, payload: p });
export const sC = (code?: number, reason: Buffer | string = '', o: Omit<FrameSpec, 'opcode' | 'payload'> = {}) =>
  sf({ ...o, opcode: OP.CLOSE, payload: closePayload(code, reason) });
