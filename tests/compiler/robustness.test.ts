/**
 * Robustness: every ```osprey block of the repository's documentation (the READMEs, docs/*.md and
 * the language guide, including its examples of rejected programs) goes through the whole front
 * end — and, when it checks, through lowering and LLVM emission — without an internal compiler
 * error. A block that is only an excerpt (README snippets, `...` placeholders) must fail with
 * ordinary diagnostics, not crash. The guide's examples are also run by tests/docs/guide.test.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSource, emitTyped } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';
import { fences, guideFiles } from '../docs/guide-examples.ts';
import { ROOT } from './helpers.ts';

const docs = [
  join(ROOT, 'README.md'),
  join(ROOT, 'compiler', 'README.md'),
  ...readdirSync(join(ROOT, 'docs'))
    .filter((n) => n.endsWith('.md'))
    .map((n) => join(ROOT, 'docs', n)),
  ...guideFiles(),
];

describe('documentation examples never crash the compiler', () => {
  for (const doc of docs) {
    const blocks = fences(readFileSync(doc, 'utf8')).filter((f) => f.info.split(/\s+/)[0] === 'osprey');
    for (const block of blocks) {
      it(`${relative(ROOT, doc)}:${block.line}`, () => {
        const file = new SourceFile(`example-line${block.line}.osp`, block.body);
        const r = checkSource(file);
        if (r.typed) expect(emitTyped(file, r.typed).print()).toContain('@main');
        else expect(r.diagnostics.length).toBeGreaterThan(0);
      });
    }
  }
});
