/**
 * Robustness: every ```osprey block of the language reference (LANGUAGE.md, when the shared
 * documents are present) and of the seed chapter goes through the whole front end — and, when it
 * checks, through lowering and LLVM emission — without an internal compiler error. Programs using
 * features this compiler does not support yet must fail with ordinary diagnostics, not crash.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSource, emitTyped } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';
import { ROOT } from './helpers.ts';

const candidates = [process.env.OSPREY_SHARED_DIR, join(ROOT, '..', 'shared'), '/work/shared'].filter((d): d is string => !!d);
const shared = candidates.find((d) => existsSync(join(d, 'LANGUAGE.md')));

function blocks(path: string): string[] {
  return [...readFileSync(path, 'utf8').matchAll(/```osprey\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

describe.skipIf(!shared)('reference examples never crash the compiler', () => {
  const docs = shared ? [join(shared, 'LANGUAGE.md'), join(shared, 'spec', '0016-websockets.md')] : [];
  for (const doc of docs.filter((d) => existsSync(d))) {
    blocks(doc).forEach((text, i) => {
      it(`${doc.slice(shared!.length + 1)} example ${i + 1}`, () => {
        const file = new SourceFile(`example${i + 1}.osp`, text);
        const r = checkSource(file);
        if (r.typed) expect(emitTyped(file, r.typed).print()).toContain('@main');
        else expect(r.diagnostics.length).toBeGreaterThan(0);
      });
    });
  }
});
