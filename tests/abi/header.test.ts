/**
 * The C header is generated from runtime-bindings/abi.ts; the committed copy must match it, so the
 * runtime can never be built against a stale ABI.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderCHeader } from '../../runtime-bindings/c-header.ts';
import { RUNTIME_FUNCTIONS } from '../../runtime-bindings/abi.ts';
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

  it('gives every function a unique C symbol and every Osprey built-in a unique name', () => {
    const symbols = RUNTIME_FUNCTIONS.map((f) => f.symbol);
    expect(new Set(symbols).size).toBe(symbols.length);
    const names = RUNTIME_FUNCTIONS.flatMap((f) => (f.osprey ? [f.osprey.name] : []));
    expect(new Set(names).size).toBe(names.length);
  });

  it('lowers each Osprey function parameter to C parameters in order (a function value is two)', () => {
    for (const f of RUNTIME_FUNCTIONS) {
      if (!f.osprey) continue;
      const expected = f.osprey.params.reduce((n, p) => n + (p.type.kind === 'Fn' ? 2 : 1), 0);
      expect(f.params.length, f.symbol).toBe(expected);
    }
  });
});
