/**
 * Message integrity: the table of what `osprey abi-check` sends through every runtime function
 * that carries a message, in both directions, and what must come out the other end.
 *
 * Each message-carrying function gets extra scenarios (`integrity`, one per case that applies to
 * it) that push a sequence of messages through it, one size after another, and compare what
 * arrives with what was sent, byte for byte, and of the kind sent (text or binary):
 *   - send direction (the program sends, an independent peer receives): osp_ws_send and
 *     osp_ws_send_binary (peer: the harness's Node `ws` server, which records the length, SHA-256
 *     and opcode of every message and tells the probe's raw client, so the runtime's own receive
 *     path plays no part), osp_ws_server_send, osp_ws_server_broadcast and their binary twins
 *     (peer: the probe's raw RFC 6455 client);
 *   - receive direction (a peer sends, the registered handler receives): the handlers of
 *     osp_ws_connect and osp_ws_connect_messages (the Node server sends each message after
 *     announcing its length and SHA-256) and of osp_ws_server_on_message and
 *     osp_ws_server_on_messages (the raw client sends; the probe knows the content). The
 *     WebSocketMessage handlers (…_messages) receive a record whose `type` must say which kind
 *     the peer sent: "text" for a text frame, "binary" for a binary one.
 * A truncated, extended, altered, dropped or reordered message, or one delivered as the wrong
 * kind, fails the `integrity` check with a reason naming the function and the size.
 *
 * The harness configures the message limit itself (osp_ws_set_default_limit, "maxMessageBytes",
 * before the server or connection exists) to INTEGRITY_LIMIT, so "the largest message the limit
 * allows" is a known size, then checks that a message of exactly that size arrives intact and
 * that one byte more is refused (`message-limit`): an Error from a sending function, Close 1009
 * from a receiving side, never a truncated delivery.
 *
 * Each case is its own scenario (`integrity` for UTF-8 text, `integrity-nul-bytes` for text
 * holding NUL bytes, `integrity-binary` for binary messages of every byte value). The text cases
 * run through every function; the binary case through the functions that carry binary messages
 * (the …Binary sends and the WebSocketMessage handlers). The comparisons work on lengths and
 * bytes, never on NUL terminators.
 */

/** The byte sizes every message-carrying function is checked with, in the order sent: the edges
 *  of the RFC 6455 length encodings (125/126, 65,535/65,536), of a 4 KiB buffer, and a large one. */
export const INTEGRITY_SIZES = [0, 1, 125, 126, 4095, 4096, 4097, 65535, 65536, 1_000_000] as const;

/** The maxMessageBytes the harness configures before an integrity scenario: above every size of
 *  INTEGRITY_SIZES and not a power of two, so a runtime that rounds it is caught. */
export const INTEGRITY_LIMIT = 1_048_579;

/** The per-connection output cap configured with it (maxOutputBytes), so one message at the limit
 *  is never refused because the probe's peer has not read the previous one yet. */
export const INTEGRITY_MAX_OUTPUT = 8 * 1024 * 1024;

export type IntegrityDirection = 'send' | 'receive';

/** How the message reaches the other side, and who checks it. */
export type IntegrityRoute =
  /** osp_ws_send: the Node server records each message's length and SHA-256 for a raw client. */
  | 'client-send'
  /** osp_ws_server_send / osp_ws_server_broadcast: the probe's raw client reads every frame. */
  | 'server-send'
  | 'server-broadcast'
  /** The same three routes for the binary sends (osp_ws_send_binary, …server_send_binary,
   *  …server_broadcast_binary): the same peers, the same byte-for-byte comparison. */
  | 'client-send-binary'
  | 'server-send-binary'
  | 'server-broadcast-binary'
  /** osp_ws_connect's handler: the Node server sends "abi-probe:expect N LEN SHA256", then the message. */
  | 'client-receive'
  /** osp_ws_server_on_message's handler: the raw client sends messages the probe generated. */
  | 'server-receive'
  /** The same two routes for the WebSocketMessage handlers (osp_ws_connect_messages,
   *  osp_ws_server_on_messages): the peer sends text or binary frames, and the record's type
   *  must name the kind sent. */
  | 'client-receive-record'
  | 'server-receive-record';

/** What a function carries: text only (the text sends and the String handlers), binary only
 *  (the …Binary sends), or either kind, told apart by a WebSocketMessage record. */
export type IntegrityCarries = 'text' | 'binary' | 'record';

export interface IntegrityTarget {
  symbol: string;
  direction: IntegrityDirection;
  route: IntegrityRoute;
  carries: IntegrityCarries;
  /** Who sends and who receives, in words (docs/ABI.md). */
  doc: string;
}

export const INTEGRITY_TARGETS: IntegrityTarget[] = [
  { symbol: 'osp_ws_send', direction: 'send', route: 'client-send', carries: 'text', doc: "the harness's Node `ws` server receives; it reports each message's length, SHA-256 and opcode to the probe's raw client" },
  { symbol: 'osp_ws_server_send', direction: 'send', route: 'server-send', carries: 'text', doc: 'a raw RFC 6455 client connected to the server receives (fragmented messages are reassembled)' },
  { symbol: 'osp_ws_server_broadcast', direction: 'send', route: 'server-broadcast', carries: 'text', doc: 'a raw RFC 6455 client connected to the server receives' },
  { symbol: 'osp_ws_send_binary', direction: 'send', route: 'client-send-binary', carries: 'binary', doc: "binary messages; the harness's Node `ws` server receives and reports each one's length, SHA-256 and opcode" },
  { symbol: 'osp_ws_server_send_binary', direction: 'send', route: 'server-send-binary', carries: 'binary', doc: 'binary messages; a raw RFC 6455 client connected to the server receives' },
  { symbol: 'osp_ws_server_broadcast_binary', direction: 'send', route: 'server-broadcast-binary', carries: 'binary', doc: 'binary messages; a raw RFC 6455 client connected to the server receives' },
  { symbol: 'osp_ws_connect', direction: 'receive', route: 'client-receive', carries: 'text', doc: "the harness's Node `ws` server sends; it announces each message's length and SHA-256 first" },
  { symbol: 'osp_ws_server_on_message', direction: 'receive', route: 'server-receive', carries: 'text', doc: 'a raw RFC 6455 client sends single-frame text messages' },
  {
    symbol: 'osp_ws_connect_messages',
    direction: 'receive',
    route: 'client-receive-record',
    carries: 'record',
    doc: "the harness's Node `ws` server sends text or binary frames, announcing each message's length and SHA-256 first; the WebSocketMessage's type must name the kind sent",
  },
  {
    symbol: 'osp_ws_server_on_messages',
    direction: 'receive',
    route: 'server-receive-record',
    carries: 'record',
    doc: "a raw RFC 6455 client sends single-frame text or binary messages; the WebSocketMessage's type must name the kind sent",
  },
];

export function integrityTarget(symbol: string): IntegrityTarget | undefined {
  return INTEGRITY_TARGETS.find((t) => t.symbol === symbol);
}

/** What a message is made of. */
export type IntegrityContent = 'utf8' | 'nul' | 'binary';

export interface IntegrityCase {
  name: string;
  content: IntegrityContent;
  doc: string;
  /** Which functions the case runs through (by what they carry). */
  carries: IntegrityCarries[];
}

export const INTEGRITY_CASES: IntegrityCase[] = [
  {
    name: 'utf8',
    content: 'utf8',
    carries: ['text', 'binary', 'record'],
    doc: `text of ${INTEGRITY_SIZES.map((n) => n.toLocaleString('en-US')).join(', ')} bytes and of the configured limit (${INTEGRITY_LIMIT.toLocaleString('en-US')}), mixing 1-, 2-, 3- and 4-byte UTF-8 sequences, each message different`,
  },
  {
    name: 'nul-bytes',
    content: 'nul',
    carries: ['text', 'binary', 'record'],
    doc: 'the same sizes with NUL bytes (U+0000) inside the message, about one character in eight',
  },
  {
    name: 'binary',
    content: 'binary',
    carries: ['binary', 'record'],
    doc: 'binary messages (opcode 0x2) of the same sizes (the 0-byte one included) that are not UTF-8: every message of 256 bytes or more holds every byte value 0..255 in its first 256 bytes',
  },
];

/** The cases that run through `t`. */
export function integrityCasesFor(t: IntegrityTarget): IntegrityCase[] {
  return INTEGRITY_CASES.filter((c) => c.carries.includes(t.carries));
}

/** The kind of message that must arrive for case `content` through `t`: 'text' or 'binary' when
 *  the other end can tell (an opcode, a WebSocketMessage type), 'unchecked' when it cannot (a
 *  String handler receives text only and is not told). */
export type IntegrityKind = 'text' | 'binary' | 'unchecked';

export function integrityKind(t: IntegrityTarget, content: IntegrityContent): IntegrityKind {
  if (t.carries === 'binary') return 'binary';
  if (t.carries === 'record') return content === 'binary' ? 'binary' : 'text';
  return t.direction === 'send' ? 'text' : 'unchecked';
}

/**
 * A message of exactly `bytes` bytes of valid UTF-8, different for every `index`: code points of
 * 1 to 4 bytes chosen by a small xorshift generator, ASCII where a wider one would not fit; with
 * `content` 'nul', a third of the 1-byte characters are NUL bytes. With `content` 'binary', bytes
 * that are not UTF-8: the first 256 hold every byte value once (in an order that depends on the
 * size and index), the rest come from the generator. The
 * Node server sends these (the client-receive route); the C probe has its own generator for what
 * it sends, since every route compares against what its sender actually sent.
 */
export function integrityMessage(bytes: number, index: number, content: IntegrityContent = 'utf8'): Buffer {
  const out = Buffer.alloc(bytes);
  let state = (0x9e3779b9 ^ Math.imul(bytes, 2654435761) ^ Math.imul(index, 40503)) >>> 0 || 1;
  if (content === 'binary') {
    for (let at = 0; at < bytes; at++) {
      if (at < 256) {
        // i -> i * 167 + c (mod 256) is a bijection: the first 256 bytes hold every byte value once.
        out[at] = (Math.imul(at, 167) + Math.imul(index, 59) + bytes) & 0xff;
        continue;
      }
      state ^= state << 13;
      state >>>= 0;
      state ^= state >>> 17;
      state ^= state << 5;
      state >>>= 0;
      out[at] = state >>> 24;
    }
    return out;
  }
  let at = 0;
  while (at < bytes) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    const r = state;
    const width = Math.min(bytes - at, WIDTHS[r % 5]);
    const v = r >>> 8;
    if (width === 1) {
      // The nul case: one 1-byte character in three is U+0000 (the C probe does the same).
      out[at] = content === 'nul' && v % 3 === 0 ? 0 : 0x21 + (v % 94);
    } else if (width === 2) {
      const cp = 0x80 + (v % 0x780);
      out[at] = 0xc0 | (cp >> 6);
      out[at + 1] = 0x80 | (cp & 0x3f);
    } else if (width === 3) {
      let cp = 0x800 + (v % 0xf800);
      if (cp >= 0xd800 && cp <= 0xdfff) cp -= 0x800; // no surrogates
      out[at] = 0xe0 | (cp >> 12);
      out[at + 1] = 0x80 | ((cp >> 6) & 0x3f);
      out[at + 2] = 0x80 | (cp & 0x3f);
    } else {
      const cp = 0x10000 + (v % 0x100000);
      out[at] = 0xf0 | (cp >> 18);
      out[at + 1] = 0x80 | ((cp >> 12) & 0x3f);
      out[at + 2] = 0x80 | ((cp >> 6) & 0x3f);
      out[at + 3] = 0x80 | (cp & 0x3f);
    }
    at += width;
  }
  return out;
}

const WIDTHS = [1, 1, 2, 3, 4];
