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

describe.concurrent('soundness at -O0 and -O2', () => {
  for (const rel of PROGRAMS) {
    for (const opt of ['fast', 'release'] as OptLevel[]) {
      it(`${rel} (${opt === 'fast' ? '-O0' : '-O2'})`, async () => {
        const text = readFileSync(join(ROOT, 'tests', 'programs', rel), 'utf8');
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
