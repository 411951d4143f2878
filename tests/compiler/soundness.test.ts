/**
 * Programs that exposed unsound or crashing compilation (globals read through a function after a
 * redeclaration, type patterns in lambdas, very long matches and operator chains) must behave the
 * same at -O0 and -O2: the optimiser turns an uninitialised read or an undefined value into a
 * different wrong answer, so both levels are run. The programs are golden programs; their
 * `// expect:` lines are the expected output.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildExecutable, renderErrors, type OptLevel } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';
import { ROOT } from './helpers.ts';

const PROGRAMS = [
  'language/s2_6_global_redeclared.osp',
  'language/s2_6_global_declared_later.osp',
  'language/s5_patterns_in_lambdas.osp',
];

/** Long but flat programs that used to overflow the compiler's stack (generated, with expectations). */
const GENERATED: { name: string; text: string }[] = [
  {
    name: '1,500-arm match',
    text: `fn f(x: Int) -> Int = match x {\n${Array.from({ length: 1500 }, (_, i) => `    ${i} => ${i * 2}`).join('\n')}\n    _ => 0 - 1\n}\n` +
      'print(f(1499))\nprint(f(7))\nprint(f(5000))\n// expect: 2998\n// expect: 14\n// expect: -1\n',
  },
  {
    name: '3,000-constructor union',
    text: `type Big = ${Array.from({ length: 3000 }, (_, i) => `C${i}`).join(' | ')}\nfn g(b: Big) -> Int = match b {\n` +
      `${Array.from({ length: 3000 }, (_, i) => `    C${i} => ${i}`).join('\n')}\n}\nprint(g(C2999))\nprint(g(C0))\nprint(g(C1234))\n// expect: 2999\n// expect: 0\n// expect: 1234\n`,
  },
  {
    name: '1,000-operand + and |> chains',
    text: `fn inc(x: Int) -> Int = x + 1\nlet add = fn(x: Int) -> Int => x + 2\nlet s = "ab"\n` +
      `print(${Array.from({ length: 1000 }, (_, i) => String(i)).join(' + ')})\n` +
      `print(0 ${'|> inc '.repeat(1000)})\nprint(0 ${'|> add '.repeat(1000)})\n` +
      `match length(${Array.from({ length: 1000 }, () => 's').join(' + ')}) {\n    Success { value } => print(value)\n    Error { message } => print(message)\n}\n` +
      '// expect: 499500\n// expect: 1000\n// expect: 2000\n// expect: 2000\n',
  },
];

describe.concurrent('soundness at -O0 and -O2', () => {
  const cases = [
    ...PROGRAMS.map((rel) => ({ name: rel, text: readFileSync(join(ROOT, 'tests', 'programs', rel), 'utf8') })),
    ...GENERATED,
  ];
  for (const { name: rel, text } of cases) {
    for (const opt of ['fast', 'release'] as OptLevel[]) {
      it(`${rel} (${opt === 'fast' ? '-O0' : '-O2'})`, { timeout: 120_000 }, async () => {
        const expected = [...text.matchAll(/^\s*\/\/\s*expect: (.*)$/gm)].map((m) => m[1] + '\n').join('');
        const dir = mkdtempSync(join(tmpdir(), 'osprey-soundness-'));
        try {
          const exe = join(dir, 'prog');
          const r = await buildExecutable(new SourceFile(rel, text), exe, opt);
          expect(r.executable, renderErrors(r)).toBeDefined();
          const p = spawnSync(exe, [], { encoding: 'utf8', timeout: 20_000 });
          expect(p.stdout).toBe(expected);
          expect(p.status).toBe(0);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }
  }
});
