/**
 * The messages the binary/event interop tests exchange with independent peers, byte for byte the
 * same as tests/peers/python_binary_peer.py builds them.
 */
export interface BinaryCase {
  name: string;
  data: Buffer;
  binary: boolean;
  /** Sent by the `ws` driver as this many fragments (continuation frames). */
  fragments?: number;
  /** Holds NUL bytes (a String carries its length, so they pass whole). */
  nul?: boolean;
}

function bytes(n: number, f: (i: number) => number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = f(i);
  return b;
}

export const BINARY_CASES: BinaryCase[] = [
  { name: 'text', data: Buffer.from('hello, wörld ✓ 𝄞'), binary: false },
  { name: 'text-nul', data: Buffer.from('a\0b\0'), binary: false, nul: true },
  { name: 'binary-empty', data: Buffer.alloc(0), binary: true },
  { name: 'binary-small', data: bytes(255, (i) => i + 1), binary: true },
  { name: 'binary-nul', data: bytes(256, (i) => i), binary: true, nul: true },
  { name: 'binary-1mib', data: bytes(1 << 20, (i) => ((i * 31 + 7) % 255) + 1), binary: true },
  { name: 'binary-1mib-nul', data: bytes(1 << 20, (i) => (i * 31 + 7) % 256), binary: true, nul: true },
  { name: 'binary-fragmented', data: bytes(10_000, (i) => (i % 255) + 1), binary: true, fragments: 4 },
];

/** Where two buffers first differ (or the shorter length), -1 when equal. */
export function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}
