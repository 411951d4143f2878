/**
 * Message integrity: the table of what `osprey abi-check` sends through every runtime function
 * that carries a message, in both directions, and what must come out the other end.
 *
 * Each message-carrying function gets one extra scenario (`integrity`) that pushes a sequence of
 * messages through it, one size after another, and compares what arrives with what was sent, byte
 * for byte:
 *   - send direction (the program sends, an independent peer receives): osp_ws_send (peer: the
 *     harness's Node `ws` server, which records the length and SHA-256 of every message and tells
 *     the probe's raw client, so the runtime's own receive path plays no part),
 *     osp_ws_server_send and osp_ws_server_broadcast (peer: the probe's raw RFC 6455 client);
 *   - receive direction (a peer sends, the registered handler receives): osp_ws_connect's handler
 *     (the Node server sends each message after announcing its length and SHA-256) and
 *     osp_ws_server_on_message's handler (the raw client sends; the probe knows the content).
 * A truncated, extended, altered, dropped or reordered message fails the `integrity` check with a
 * reason naming the function and the size.
 *
 * The harness configures the message limit itself (osp_ws_set_default_limit, "maxMessageBytes",
 * before the server or connection exists) to INTEGRITY_LIMIT, so "the largest message the limit
 * allows" is a known size, then checks that a message of exactly that size arrives intact and
 * that one byte more is refused (`message-limit`): an Error from a sending function, Close 1009
 * from a receiving side, never a truncated delivery.
 *
 * Each active case is its own scenario (`integrity` for UTF-8 text, `integrity-nul-bytes` for
 * text holding NUL bytes, which Strings carry since they have a length: runtime-bindings/abi.ts,
 * STRING_LAYOUT). The binary sends (osp_ws_send_binary, osp_ws_server_send_binary,
 * osp_ws_server_broadcast_binary) go through the same routes and cases as their text twins.
 * Binary messages of every byte value (not UTF-8) are in the table as *pending*: the report lists
 * them as pending, never as passing. Switching it on takes a generator of arbitrary bytes in the
 * probe (probe-gen.ts, probe_support.c) and dropping its `pending` reason here; the comparisons
 * work on lengths and bytes.
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
  | 'server-receive';

export interface IntegrityTarget {
  symbol: string;
  direction: IntegrityDirection;
  route: IntegrityRoute;
  /** Who sends and who receives, in words (docs/ABI.md). */
  doc: string;
}

export const INTEGRITY_TARGETS: IntegrityTarget[] = [
  { symbol: 'osp_ws_send', direction: 'send', route: 'client-send', doc: "the harness's Node `ws` server receives; it reports each message's length and SHA-256 to the probe's raw client" },
  { symbol: 'osp_ws_server_send', direction: 'send', route: 'server-send', doc: 'a raw RFC 6455 client connected to the server receives (fragmented messages are reassembled)' },
  { symbol: 'osp_ws_server_broadcast', direction: 'send', route: 'server-broadcast', doc: 'a raw RFC 6455 client connected to the server receives' },
  { symbol: 'osp_ws_send_binary', direction: 'send', route: 'client-send-binary', doc: "binary messages; the harness's Node `ws` server receives and reports each one's length and SHA-256" },
  { symbol: 'osp_ws_server_send_binary', direction: 'send', route: 'server-send-binary', doc: 'binary messages; a raw RFC 6455 client connected to the server receives' },
  { symbol: 'osp_ws_server_broadcast_binary', direction: 'send', route: 'server-broadcast-binary', doc: 'binary messages; a raw RFC 6455 client connected to the server receives' },
  { symbol: 'osp_ws_connect', direction: 'receive', route: 'client-receive', doc: "the harness's Node `ws` server sends; it announces each message's length and SHA-256 first" },
  { symbol: 'osp_ws_server_on_message', direction: 'receive', route: 'server-receive', doc: 'a raw RFC 6455 client sends single-frame text messages' },
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
  /** Why the case cannot run yet; the report lists it as pending (neither passed nor failed). */
  pending?: string;
}

export const INTEGRITY_CASES: IntegrityCase[] = [
  {
    name: 'utf8',
    content: 'utf8',
    doc: `text of ${INTEGRITY_SIZES.map((n) => n.toLocaleString('en-US')).join(', ')} bytes and of the configured limit (${INTEGRITY_LIMIT.toLocaleString('en-US')}), mixing 1-, 2-, 3- and 4-byte UTF-8 sequences, each message different`,
  },
  {
    name: 'nul-bytes',
    content: 'nul',
    doc: 'the same sizes with NUL bytes (U+0000) inside the message, about one character in eight',
  },
  {
    name: 'binary',
    content: 'binary',
    doc: 'binary messages (opcode 0x2) of the same sizes, every byte value',
    pending: 'the probe generates UTF-8 only: the …Binary sends are checked with the utf8 and nul-bytes cases, not yet with every byte value',
  },
];

/** The cases that run. */
export function activeIntegrityCases(): IntegrityCase[] {
  return INTEGRITY_CASES.filter((c) => c.pending === undefined);
}

/**
 * A message of exactly `bytes` bytes of valid UTF-8, different for every `index`: code points of
 * 1 to 4 bytes chosen by a small xorshift generator, ASCII where a wider one would not fit; with
 * `content` 'nul', a third of the 1-byte characters are NUL bytes. The
 * Node server sends these (the client-receive route); the C probe has its own generator for what
 * it sends, since every route compares against what its sender actually sent.
 */
export function integrityMessage(bytes: number, index: number, content: IntegrityContent = 'utf8'): Buffer {
  const out = Buffer.alloc(bytes);
  let state = (0x9e3779b9 ^ Math.imul(bytes, 2654435761) ^ Math.imul(index, 40503)) >>> 0 || 1;
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
