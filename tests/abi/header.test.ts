/**
 * The C header is generated from runtime-bindings/abi.ts; the committed copy must match it, so the
 * runtime can never be built against a stale ABI.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderCHeader } from '../../runtime-bindings/c-header.ts';
import { RUNTIME_FUNCTIONS, type OspreyBinding } from '../../runtime-bindings/abi.ts';
import { RUNTIME_INCLUDE_DIR } from '../../runtime-bindings/toolchain.ts';

describe('generated ABI header', () => {
  const committed = readFileSync(join(RUNTIME_INCLUDE_DIR, 'osprey_abi.h'), 'utf8');

  it('is up to date with runtime-bindings/abi.ts (run `npm run gen:abi` after changing the table)', () => {
    expect(committed).toBe(renderCHeader());
  });

  it('declares every runtime function exactly once', () => {
    for (const f of RUNTIME_FUNCTIONS) {
      const matches = committed.match(new RegExp(`\\b${f.symbol}\\(`, 'g')) ?? [];
      expect(matches.length, f.symbol).toBe(1);
    }
  });

  it('gives every function a unique C symbol and every Osprey built-in a unique name (or a handler overload)', () => {
    const symbols = RUNTIME_FUNCTIONS.map((f) => f.symbol);
    expect(new Set(symbols).size).toBe(symbols.length);
    // Entries sharing an Osprey name are overloads on the handler's type
    // (docs/guide/15-websockets.md): the same parameter names, and types that differ only in the
    // one function-typed parameter, which differs between every two of them.
    const byName = new Map<string, OspreyBinding[]>();
    for (const f of RUNTIME_FUNCTIONS) if (f.osprey) byName.set(f.osprey.name, [...(byName.get(f.osprey.name) ?? []), f.osprey]);
    const overloaded = [...byName].filter(([, bs]) => bs.length > 1).map(([n]) => n).sort();
    expect(overloaded).toEqual(['websocketConnect', 'websocketServerOnMessage']);
    for (const name of overloaded) {
      const bs = byName.get(name)!;
      const text = (b: OspreyBinding, fnParam: boolean) =>
        JSON.stringify(b.params.map((p) => (p.type.kind === 'Fn') === fnParam ? p : p.name));
      expect(new Set(bs.map((b) => text(b, false))).size, name).toBe(1);
      expect(new Set(bs.map((b) => text(b, true))).size, name).toBe(bs.length);
      expect(bs.every((b) => b.params.filter((p) => p.type.kind === 'Fn').length === 1), name).toBe(true);
    }
  });

  it('lowers each Osprey function parameter to C parameters in order (a function value is two)', () => {
    for (const f of RUNTIME_FUNCTIONS) {
      if (!f.osprey) continue;
      const expected = f.osprey.params.reduce((n, p) => n + (p.type.kind === 'Fn' ? 2 : 1), 0);
      expect(f.params.length, f.symbol).toBe(expected);
    }
  });
});
