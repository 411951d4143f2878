/**
 * The language server's position index (compiler/src/tools/lsp/program-index.ts) over every
 * program of tests/programs and every diagnostics snapshot program (which have errors): building it
 * never throws, each occurrence spells its name, each use of a variable has its declaration in the
 * index, and the position queries the server makes answer at every offset.
 */
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeSource } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';
import { declarationSpan, expressionAt, indexProgram, occurrenceAt, sameTarget, visibleAt } from '../../compiler/src/tools/lsp/program-index.ts';
import { listFiles, ROOT } from '../compiler/helpers.ts';
import { fuzzCases } from '../compiler/robustness-fuzz.ts';
import { formatText } from '../../compiler/src/tools/format/format.ts';

const FILES = [...listFiles(join(ROOT, 'tests', 'programs'), '.osp'), ...listFiles(join(ROOT, 'tests', 'compiler', 'diagnostics'), '.osp')];

describe(`the position index over ${FILES.length} programs`, () => {
  it('is consistent with the source and answers every position', { timeout: 120_000 }, () => {
    const problems: string[] = [];
    let indexed = 0;
    let occurrences = 0;
    for (const path of FILES) {
      const rel = relative(ROOT, path);
      const text = readFileSync(path, 'utf8');
      const r = analyzeSource(new SourceFile(rel, text));
      if (!r.checked || !r.ast) continue;
      const index = indexProgram(text, r.checked, r.ast);
      indexed++;
      for (const o of index.occurrences) {
        occurrences++;
        const spelled = text.slice(o.span.start, o.span.end);
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(spelled)) problems.push(`${rel}: occurrence '${spelled}' at ${o.span.start} is not a name`);
        const decl = declarationSpan(o.target);
        if (decl && (decl.start < 0 || decl.end > text.length)) problems.push(`${rel}: declaration of '${spelled}' outside the file`);
        if (o.target.kind === 'var' && !o.declaration && !index.occurrences.some((d) => d.declaration && sameTarget(d.target, o.target))) {
          problems.push(`${rel}: '${spelled}' at ${o.span.start} has no declaration in the index`);
        }
      }
      for (let offset = 0; offset <= text.length; offset++) {
        occurrenceAt(index, offset);
        expressionAt(index, offset);
        if (offset % 16 === 0) visibleAt(index, offset);
      }
    }
    expect(problems).toEqual([]);
    expect(indexed).toBeGreaterThan(150);
    expect(occurrences).toBeGreaterThan(2000);
  });
});

describe('mutated programs (the robustness fuzzer\'s seeded generator)', () => {
  it('never make the index, its queries or the formatter throw; formatting stays idempotent', { timeout: 120_000 }, () => {
    const problems: string[] = [];
    let n = 0;
    for (const c of fuzzCases(20261202, 1, 50)) {
      n++;
      try {
        const r = analyzeSource(new SourceFile('fuzz.osp', c.text));
        if (r.checked && r.ast) {
          const index = indexProgram(c.text, r.checked, r.ast);
          for (let offset = 0; offset <= c.text.length; offset += 7) {
            occurrenceAt(index, offset);
            expressionAt(index, offset);
            visibleAt(index, offset);
          }
        }
        const once = formatText(c.text);
        if (once.ok) {
          const twice = formatText(once.text);
          if (!twice.ok || twice.changed) problems.push(`${c.name}: formatting is not idempotent`);
        }
      } catch (e) {
        problems.push(`${c.name}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    expect(n).toBeGreaterThan(150);
    expect(problems).toEqual([]);
  });
});
