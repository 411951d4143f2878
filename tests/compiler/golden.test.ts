/**
 * Golden programs: every tests/programs/**\/*.osp is compiled, linked and run; its stdout must equal
 * the `// expect: LINE` comments in order, and its exit status the `// exit: N` comment (default 0).
 * `// stderr: TEXT` lines must appear in stderr. A program with `// check-only` (it needs the
 * network or a WebSocket peer) is only checked and compiled to LLVM IR. `// stdin: LINE` lines are
 * the program's standard input; `// flags: --sandbox --no-fs …` compiles with those security flags;
 * `// compile-error: TEXT` means the program must be rejected with TEXT among the diagnostics.
 * A file whose first line is `// library: …` is only imported by other programs (multi-file
 * programs, `import`) and is not compiled on its own.
 * Programs run in a fresh scratch directory.
 */
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileToLlvm, type Capability, type OptLevel } from '../../compiler/src/driver.ts';
import { renderErrors } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';
import { compileAndRun, listFiles, ROOT } from './helpers.ts';

const PROGRAMS = join(ROOT, 'tests', 'programs');

function directives(text: string, name: string): string[] {
  const re = new RegExp(`^\\s*//\\s*${name}:(?: (.*))?$`, 'gm');
  return [...text.matchAll(re)].map((m) => m[1] ?? '');
}

describe.concurrent('golden programs', () => {
  for (const file of listFiles(PROGRAMS, '.osp')) {
    const rel = relative(PROGRAMS, file);
    const text = readFileSync(file, 'utf8');
    if (/^\/\/ library:/.test(text)) continue;
    if (/^\s*\/\/\s*check-only\b/m.test(text)) {
      it(`${rel} (check + LLVM only)`, () => {
        const r = compileToLlvm(new SourceFile(rel, text), { cwd: PROGRAMS });
        expect(r.diagnostics.length ? renderErrors(r) : '').toBe('');
        expect(r.llvm).toContain('define i32 @main()');
      });
      continue;
    }
    // Every optimisation must keep the corpus green at both levels: -O0 (what `osprey run` uses)
    // and -O2 (`osprey build`) for the language and benchmark programs.
    const levels: OptLevel[] = /^(language|bench)\//.test(rel) ? ['fast', 'release'] : ['fast'];
    for (const opt of levels) it(opt === 'fast' ? rel : `${rel} (-O2)`, async () => {
      const expected = directives(text, 'expect');
      const exit = Number(directives(text, 'exit')[0] ?? '0');
      const stdin = directives(text, 'stdin').map((l) => l + '\n').join('');
      const disabled = new Set<Capability>();
      for (const flag of directives(text, 'flags').join(' ').split(/\s+/).filter(Boolean)) {
        if (flag === '--sandbox') for (const c of ['http', 'websocket', 'fs', 'ffi', 'process', 'sandbox'] as const) disabled.add(c);
        else if (flag.startsWith('--no-')) disabled.add(flag.slice('--no-'.length) as Capability);
        else throw new Error(`unknown flag ${flag} in ${rel}`);
      }
      const r = await compileAndRun(rel, text, stdin, { disabled, cwd: PROGRAMS }, opt);
      const compileErrors = directives(text, 'compile-error');
      if (compileErrors.length > 0) {
        // A program that must not compile: each listed text appears in the rendered diagnostics.
        expect(r.compileErrors ?? '', 'the program must fail to compile').not.toBe('');
        for (const m of compileErrors) expect(r.compileErrors).toContain(m);
        return;
      }
      expect(r.compileErrors ?? '').toBe('');
      expect(r.stdout).toBe(expected.map((l) => l + '\n').join(''));
      for (const s of directives(text, 'stderr')) expect(r.stderr).toContain(s);
      expect(r.status).toBe(exit);
    });
  }
});
