/**
 * Raw RFC 6455 peer for the conformance suite: plain TCP sockets, hand-built frames, and a frame
 * parser that turns whatever the testee sends into an event queue the tests await with short
 * timeouts. Used both as a client against a server under test (RawConn from connectRaw) and as
 * the fake server that drives a client under test (fakeserver.ts wraps accepted sockets in RawConn).
 *
 * Nothing here validates the testee on the way in except what every case needs: frames from a
 * server must be unmasked, frames from a client masked, RSV bits zero (recorded in `violations`).
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

export function acceptFor(key: string): string {
  return createHash('sha1').update(key.trim() + GUID).digest('base64');
}

// ---- frames -------------------------------------------------------------------------------

export interface FrameSpec {
  /** Default true. */
  fin?: boolean;
  /** RSV1..RSV3 as a 3-bit number (RSV1 = 4). Default 0. */
  rsv?: number;
  opcode: number;
  payload?: Buffer | string;
  /** Default true (client → server frames); the fake server passes false. */
  mask?: boolean;
  maskKey?: Buffer;
  /** Declared payload length when it should differ from payload.length (truncated/oversized frames). */
  declaredLength?: bigint | number;
  /** Force a length encoding: 7-bit, 16-bit (126) or 64-bit (127), even when not minimal. */
  lengthEncoding?: 7 | 16 | 64;
}

export function buildFrame(spec: FrameSpec): Buffer {
  const payload = typeof spec.payload === 'string' ? Buffer.from(spec.payload, 'utf8') : (spec.payload ?? Buffer.alloc(0));
  const declared = BigInt(spec.declaredLength ?? payload.length);
  const mask = spec.mask ?? true;
  const enc = spec.lengthEncoding ?? (declared <= 125n ? 7 : declared <= 0xffffn ? 16 : 64);
  const head: number[] = [((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) | (spec.opcode & 0x0f)];
  const maskBit = mask ? 0x80 : 0;
  let ext = Buffer.alloc(0);
  if (enc === 7) head.push(maskBit | Number(declared));
  else if (enc === 16) {
    head.push(maskBit | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(Number(declared));
  } else {
    head.push(maskBit | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(declared);
  }
  const key = mask ? (spec.maskKey ?? randomBytes(4)) : Buffer.alloc(0);
  const body = Buffer.from(payload);
  if (mask) for (let i = 0; i < body.length; i++) body[i]! ^= key[i & 3]!;
  return Buffer.concat([Buffer.from(head), ext, key, body]);
}

type Opts = Omit<FrameSpec, 'opcode' | 'payload'>;
/** Masked text frame (FIN=1 unless opts say otherwise). */
export const T = (p: Buffer | string, o: Opts = {}) => buildFrame({ ...o, opcode: OP.TEXT, payload: p });
export const B = (p: Buffer | string, o: Opts = {}) => buildFrame({ ...o, opcode: OP.BINARY, payload: p });
export const CONT = (p: Buffer | string, o: Opts = {}) => buildFrame({ ...o, opcode: OP.CONT, payload: p });
export const P = (p: Buffer | string = '', o: Opts = {}) => buildFrame({ ...o, opcode: OP.PING, payload: p });
export const PONG = (p: Buffer | string = '', o: Opts = {}) => buildFrame({ ...o, opcode: OP.PONG, payload: p });
/** Close frame; code undefined = empty payload. */
export const C = (code?: number, reason: Buffer | string = '', o: Opts = {}) =>
  buildFrame({ ...o, opcode: OP.CLOSE, payload: closePayload(code, reason) });

export function closePayload(code?: number, reason: Buffer | string = ''): Buffer {
  if (code === undefined) return Buffer.alloc(0);
  const c = Buffer.alloc(2);
  c.writeUInt16BE(code);
  return Buffer.concat([c, typeof reason === 'string' ? Buffer.from(reason) : reason]);
}

export interface Frame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  maskKey: Buffer | null;
  /** Unmasked payload. */
  payload: Buffer;
  /** Bytes of extended length: 0 (7-bit), 2 (16-bit) or 8 (64-bit). */
  extLengthBytes: 0 | 2 | 8;
  /** For Close frames: the status code (null when the payload is empty). */
  closeCode: number | null;
}

/** Incremental frame parser; feed it any chunking. */
export class FrameParser {
  private buf: Buffer = Buffer.alloc(0);
  /** Set when a header declares a payload too large for this harness (> 64 MiB). */
  error: string | null = null;

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Frame[] = [];
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      const masked = (b[1]! & 0x80) !== 0;
      let len = BigInt(b[1]! & 0x7f);
      let off = 2;
      let ext: 0 | 2 | 8 = 0;
      if (len === 126n) {
        if (b.length < 4) break;
        len = BigInt(b.readUInt16BE(2));
        off = 4;
        ext = 2;
      } else if (len === 127n) {
        if (b.length < 10) break;
        len = b.readBigUInt64BE(2);
        off = 10;
        ext = 8;
      }
      if (len > 64n * 1024n * 1024n) {
        this.error = `frame declares ${len} bytes`;
        this.buf = Buffer.alloc(0);
        break;
      }
      const keyLen = masked ? 4 : 0;
      const total = off + keyLen + Number(len);
      if (b.length < total) break;
      const maskKey = masked ? Buffer.from(b.subarray(off, off + 4)) : null;
      const payload = Buffer.from(b.subarray(off + keyLen, total));
      if (maskKey) for (let i = 0; i < payload.length; i++) payload[i]! ^= maskKey[i & 3]!;
      const opcode = b[0]! & 0x0f;
      out.push({
        fin: (b[0]! & 0x80) !== 0,
        rsv: (b[0]! >> 4) & 7,
        opcode,
        masked,
        maskKey,
        payload,
        extLengthBytes: ext,
        closeCode: opcode === OP.CLOSE && payload.length >= 2 ? payload.readUInt16BE(0) : null,
      });
      this.buf = b.subarray(total);
    }
    return out;
  }
}

// ---- HTTP heads ---------------------------------------------------------------------------

export interface HttpHead {
  /** The first line ("HTTP/1.1 101 Switching Protocols" / "GET / HTTP/1.1"). */
  startLine: string;
  /** Response status (0 for requests). */
  status: number;
  headers: [string, string][];
  /** All values of a header (case-insensitive name), in order. */
  all(name: string): string[];
  /** The values of a header joined with ", " (undefined when absent). */
  get(name: string): string | undefined;
  /** Comma-separated tokens of all lines of a header, lower-cased. */
  tokens(name: string): string[];
  raw: string;
}

export function parseHead(raw: string): HttpHead {
  const lines = raw.split('\r\n');
  const startLine = lines[0] ?? '';
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    if (!line) continue;
    const i = line.indexOf(':');
    headers.push(i < 0 ? [line, ''] : [line.slice(0, i), line.slice(i + 1).trim()]);
  }
  const m = /^HTTP\/\d\.\d (\d{3})/.exec(startLine);
  const all = (name: string) => headers.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
  return {
    startLine,
    status: m ? Number(m[1]) : 0,
    headers,
    all,
    get: (name) => (all(name).length ? all(name).join(', ') : undefined),
    tokens: (name) =>
      all(name)
        .flatMap((v) => v.split(','))
        .map((t) => t.trim().toLowerCase())
        .filter(Boolean),
    raw,
  };
}

// ---- connection with an event queue ----------------------------------------------------------

export type WsEvent =
  | { type: 'frame'; frame: Frame; at: number }
  /** The peer sent FIN (it closed TCP, at least for writing). */
  | { type: 'end'; at: number }
  /** A socket error such as ECONNRESET. */
  | { type: 'error'; code: string; at: number };

const turn = () => new Promise<void>((r) => setImmediate(r));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class RawConn {
  readonly events: WsEvent[] = [];
  /** Protocol rules the testee broke while we parsed its frames (masking, RSV). */
  readonly violations: string[] = [];
  /** Every byte received after the HTTP head, for exact-bytes assertions. */
  readonly wsBytes: Buffer[] = [];
  /** Bytes after a non-101 response head (the HTTP body of a refusal). */
  readonly httpBody: Buffer[] = [];
  peerEnded = false;
  weEnded = false;
  /** Time the peer's FIN arrived, and time we ended (performance.now()). */
  peerEndAt = 0;
  weEndAt = 0;
  closed = false;
  private head: HttpHead | null = null;
  private httpBuf: Buffer = Buffer.alloc(0);
  private parser = new FrameParser();
  private wake: (() => void) | null = null;
  private readIndex = 0;

  /** role: who WE are. 'client' expects unmasked frames from the peer, 'server' masked ones. */
  constructor(
    readonly socket: Socket,
    readonly role: 'client' | 'server',
  ) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('end', () => {
      this.peerEnded = true;
      this.peerEndAt = performance.now();
      this.push({ type: 'end', at: this.peerEndAt });
    });
    socket.on('error', (e: NodeJS.ErrnoException) => this.push({ type: 'error', code: e.code ?? e.message, at: performance.now() }));
    socket.on('close', () => {
      this.closed = true;
      this.notify();
    });
  }

  private notify() {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private push(e: WsEvent) {
    this.events.push(e);
    this.notify();
  }

  private onData(d: Buffer) {
    if (this.head === null) {
      this.httpBuf = Buffer.concat([this.httpBuf, d]);
      const end = this.httpBuf.indexOf('\r\n\r\n');
      if (end < 0) return this.notify();
      this.head = parseHead(this.httpBuf.subarray(0, end).toString('latin1'));
      d = this.httpBuf.subarray(end + 4);
      this.httpBuf = Buffer.alloc(0);
      this.notify();
      if (d.length === 0) return;
    }
    if (this.role === 'client' && this.head.status !== 101) {
      // A refused handshake: the rest is an HTTP body, not frames.
      this.httpBody.push(Buffer.from(d));
      return this.notify();
    }
    this.wsBytes.push(Buffer.from(d));
    for (const frame of this.parser.push(d)) {
      if (this.role === 'client' && frame.masked) this.violations.push(`masked frame from server (opcode ${frame.opcode})`);
      if (this.role === 'server' && !frame.masked) this.violations.push(`unmasked frame from client (opcode ${frame.opcode})`);
      if (frame.rsv !== 0) this.violations.push(`RSV=${frame.rsv} on opcode ${frame.opcode}`);
      this.push({ type: 'frame', frame, at: performance.now() });
    }
    if (this.parser.error) this.violations.push(this.parser.error);
  }

  /** Waits until `ready()` holds or the socket closes or `timeoutMs` passes. */
  private async waitFor(ready: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (!ready()) {
      if (this.closed) return ready();
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return true;
  }

  /** Bytes received so far while in the HTTP phase (before a full head). */
  get pendingHttp(): Buffer {
    return this.httpBuf;
  }

  /** The HTTP head (response for a client, request for the fake server), or null if TCP ended or timed out first. */
  async readHead(timeoutMs = 2000): Promise<HttpHead | null> {
    await this.waitFor(() => this.head !== null || this.peerEnded, timeoutMs);
    return this.head;
  }

  /** The next event, or null after timeoutMs (or when the socket closed with nothing left). */
  async next(timeoutMs = 2000): Promise<WsEvent | null> {
    const ok = await this.waitFor(() => this.readIndex < this.events.length, timeoutMs);
    return ok ? this.events[this.readIndex++]! : null;
  }

  /** The next frame; throws (with what came instead) on end/error/timeout. */
  async nextFrame(timeoutMs = 2000): Promise<Frame> {
    const e = await this.next(timeoutMs);
    if (!e) throw new Error(`expected a frame, got nothing within ${timeoutMs} ms`);
    if (e.type !== 'frame') throw new Error(`expected a frame, got ${describeEvent(e)}`);
    return e.frame;
  }

  /** Asserts that no event arrives for `ms` (the only intended sleeps of the suite). */
  async expectQuiet(ms: number): Promise<WsEvent | null> {
    return this.next(ms);
  }

  /** Reads one complete data message (control frames in between are returned separately). */
  async nextMessage(timeoutMs = 2000): Promise<{ opcode: number; payload: Buffer; frames: Frame[]; controls: Frame[] }> {
    const frames: Frame[] = [];
    const controls: Frame[] = [];
    for (;;) {
      const f = await this.nextFrame(timeoutMs);
      if (f.opcode >= 8) {
        if (f.opcode === OP.CLOSE) throw new Error(`expected a message, got Close ${f.closeCode ?? '(empty)'} ${f.payload.subarray(2).toString()}`);
        controls.push(f);
        continue;
      }
      frames.push(f);
      if (f.fin) break;
    }
    return { opcode: frames[0]!.opcode, payload: Buffer.concat(frames.map((f) => f.payload)), frames, controls };
  }

  write(data: Buffer | string): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(data);
  }

  /** Writes `data` in chops of `size` bytes with an event-loop turn (or pauseMs) between chops. */
  async writeChopped(data: Buffer, size: number, pauseMs = 0): Promise<void> {
    for (let i = 0; i < data.length; i += size) {
      if (this.socket.destroyed || !this.socket.writable) return;
      const ok = this.socket.write(data.subarray(i, i + size));
      if (pauseMs > 0) await sleep(pauseMs);
      else if (!ok) await new Promise<void>((r) => this.socket.once('drain', () => r()));
      else await turn();
    }
  }

  /** Half-closes our side (TCP FIN). */
  end(): void {
    if (!this.weEnded) {
      this.weEnded = true;
      this.weEndAt = performance.now();
      this.socket.end();
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Waits for the peer's FIN (true) or gives up after timeoutMs (false). */
  async waitPeerEnd(timeoutMs = 2000): Promise<boolean> {
    return this.waitFor(() => this.peerEnded || this.events.some((e) => e.type === 'error'), timeoutMs);
  }
}

export function describeEvent(e: WsEvent | null): string {
  if (!e) return 'nothing';
  if (e.type !== 'frame') return e.type === 'error' ? `socket error ${e.code}` : 'TCP FIN';
  const f = e.frame;
  const name = { 0: 'CONT', 1: 'TEXT', 2: 'BINARY', 8: 'CLOSE', 9: 'PING', 10: 'PONG' }[f.opcode] ?? `opcode ${f.opcode}`;
  if (f.opcode === OP.CLOSE) return `Close ${f.closeCode ?? '(empty)'}${f.payload.length > 2 ? ` "${f.payload.subarray(2).toString()}"` : ''}`;
  const shown = f.payload.length > 40 ? `${f.payload.length} bytes` : `hex ${f.payload.toString('hex')}`;
  return `${name}${f.fin ? '' : ' (FIN=0)'} ${shown}`;
}

// ---- raw client --------------------------------------------------------------------------

export const RFC_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** Opens a TCP connection (loopback). Register the result with a Tracker so afterEach closes it. */
export async function connectRaw(port: number, host = '127.0.0.1'): Promise<RawConn> {
  const socket = connect({ port, host });
  const conn = new RawConn(socket, 'client');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return conn;
}

export interface RequestOptions {
  path?: string;
  host?: string;
  key?: string;
  /** Replace the default headers entirely (list of [name, value]; duplicates allowed). */
  headers?: [string, string][];
  /** Extra header lines appended after the defaults. */
  extra?: [string, string][];
  /** Default names to drop (case-insensitive). */
  omit?: string[];
  method?: string;
  version?: string;
}

export function buildRequest(port: number, o: RequestOptions = {}): string {
  const defaults: [string, string][] = [
    ['Host', o.host ?? `127.0.0.1:${port}`],
    ['Upgrade', 'websocket'],
    ['Connection', 'Upgrade'],
    ['Sec-WebSocket-Key', o.key ?? randomBytes(16).toString('base64')],
    ['Sec-WebSocket-Version', '13'],
  ];
  const omit = new Set((o.omit ?? []).map((s) => s.toLowerCase()));
  const headers = (o.headers ?? defaults).filter(([k]) => !omit.has(k.toLowerCase())).concat(o.extra ?? []);
  return `${o.method ?? 'GET'} ${o.path ?? '/'} ${o.version ?? 'HTTP/1.1'}\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

/** Connects and completes a valid handshake; throws unless the answer is 101. */
export async function openRaw(port: number, o: RequestOptions = {}): Promise<RawConn> {
  const conn = await connectRaw(port);
  conn.write(buildRequest(port, o));
  const head = await conn.readHead();
  if (!head || head.status !== 101) {
    conn.destroy();
    throw new Error(`handshake failed: ${head ? head.startLine : 'no response'}`);
  }
  return conn;
}

/** Closes every connection a test opened (afterEach). */
export class Tracker {
  private conns: RawConn[] = [];
  add<T extends RawConn>(c: T): T {
    this.conns.push(c);
    return c;
  }
  /** Protocol violations of the testee seen on any tracked connection. */
  violations(): string[] {
    return this.conns.flatMap((c) => c.violations);
  }
  closeAll(): void {
    for (const c of this.conns) c.destroy();
    this.conns = [];
  }
}
