/**
 * docs/ABI.md is generated from runtime-bindings/abi.ts (scripts/gen-abi-doc.ts): this test fails
 * when the committed file differs from what the generator writes now, e.g. after a change to the
 * ABI table, the harness's scenarios or its checks. Fix: `npm run gen:abi-doc`, review the diff.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ABI_DOC_PATH, renderAbiDoc } from '../../scripts/gen-abi-doc.ts';
import { RUNTIME_FUNCTIONS } from '../../runtime-bindings/abi.ts';

describe('docs/ABI.md', () => {
  const committed = readFileSync(ABI_DOC_PATH, 'utf8');

  it('is up to date with runtime-bindings/abi.ts (else run `npm run gen:abi-doc`)', () => {
    // Compared line by line so a failure shows the first stale line, not two 40 KB strings.
    const fresh = renderAbiDoc().split('\n');
    const old = committed.split('\n');
    const first = fresh.findIndex((line, i) => line !== old[i]);
    const where = first < 0 && old.length !== fresh.length ? Math.min(old.length, fresh.length) : first;
    expect(where < 0 ? null : { line: where + 1, committed: old[where], generated: fresh[where] }).toBeNull();
  });

  it('documents every runtime function with its C prototype', () => {
    for (const f of RUNTIME_FUNCTIONS) {
      expect(committed).toContain(`### ${f.symbol}`);
      expect(committed).toMatch(new RegExp(`\\b${f.symbol}\\(`));
      if (f.osprey) expect(committed).toContain(`Osprey: \`${f.osprey.name}(`);
    }
  });
});
