/**
 * The language guide is checked like code: every example in docs/guide/*.md is compiled with this
 * compiler and, when it has an ```output block, run, with its stdout and exit status compared
 * exactly (conventions: tests/docs/guide-examples.ts). Every link into the guide — from the guide
 * itself, the READMEs, docs, compiler error messages and comments — must name an existing file and
 * heading, and the repository must not point readers at documents it does not contain.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileToLlvm, renderErrors, type Capability } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';
import { compileAndRun, ROOT } from '../compiler/helpers.ts';
import { anchors, examples, GUIDE_DIR, guideFiles } from './guide-examples.ts';

function disabledBy(flags: string[]): Set<Capability> {
  const disabled = new Set<Capability>();
  for (const flag of flags) {
    if (flag === '--sandbox') for (const c of ['http', 'websocket', 'fs', 'ffi', 'process', 'sandbox'] as const) disabled.add(c);
    else if (flag.startsWith('--no-')) disabled.add(flag.slice('--no-'.length) as Capability);
    else throw new Error(`unknown flag ${flag}`);
  }
  return disabled;
}

describe('the guide has chapters and examples', () => {
  it('every chapter is listed in the index and has runnable examples', () => {
    const index = readFileSync(join(GUIDE_DIR, 'README.md'), 'utf8');
    const chapters = guideFiles().filter((f) => basename(f) !== 'README.md');
    expect(chapters.length).toBeGreaterThanOrEqual(18);
    for (const c of chapters) expect(index, `${basename(c)} is missing from docs/guide/README.md`).toContain(`(${basename(c)})`);
    const all = guideFiles().flatMap((f) => examples(f));
    expect(all.filter((e) => e.mode.kind === 'run').length).toBeGreaterThanOrEqual(80);
  });
});

// One concurrent suite for every chapter, so compilations overlap across chapter boundaries.
describe.concurrent('docs/guide examples', () => {
  for (const file of guideFiles()) {
    for (const ex of examples(file)) {
      const title = `${basename(file)}:${ex.line} (${ex.mode.kind}${ex.flags.length ? ' ' + ex.flags.join(' ') : ''})`;
      const source = new SourceFile(`${basename(file, '.md')}-line${ex.line}.osp`, ex.source);
      const options = { disabled: disabledBy(ex.flags) };
      const mode = ex.mode;
      if (mode.kind === 'check') {
        it(title, () => {
          const r = compileToLlvm(source, options);
          expect(r.diagnostics.length ? renderErrors(r) : '').toBe('');
          expect(r.llvm).toContain('define i32 @main()');
        });
      } else if (mode.kind === 'error') {
        it(title, () => {
          const r = compileToLlvm(source, options);
          const codes = r.diagnostics.map((d) => d.code);
          expect(codes, `expected ${mode.code}; got:\n${renderErrors(r)}`).toContain(mode.code);
        });
      } else {
        it(title, async () => {
          const r = await compileAndRun(source.path, ex.source, mode.stdin, options);
          expect(r.compileErrors ?? '').toBe('');
          expect(r.stdout).toBe(mode.stdout);
          expect(r.status, `stderr: ${r.stderr}`).toBe(mode.exit);
        });
      }
    }
  }
});

/** Text files of the repository (tracked or new, not ignored). */
function repositoryFiles(): string[] {
  const p = spawnSync('git', ['ls-files', '-co', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (p.status !== 0) throw new Error(`git ls-files failed: ${p.stderr}`);
  return p.stdout
    .split('\n')
    .filter((f) => f && /\.(ts|mjs|js|c|h|md|osp|py|json|diff|stderr|txt|sh)$/.test(f) && !f.startsWith('node_modules/'))
    .filter((f) => existsSync(join(ROOT, f)));
}

describe('links into the guide', () => {
  const anchorCache = new Map<string, Set<string>>();
  const anchorsOf = (path: string) => {
    let a = anchorCache.get(path);
    if (!a) anchorCache.set(path, (a = anchors(readFileSync(path, 'utf8'))));
    return a;
  };

  it('every docs/guide link in the repository names an existing chapter and heading', () => {
    const broken: string[] = [];
    let count = 0;
    for (const f of repositoryFiles()) {
      const text = readFileSync(join(ROOT, f), 'utf8');
      const inGuide = f.startsWith('docs/guide/');
      // Repository-relative references (comments, error messages, READMEs) …
      const refs = [...text.matchAll(/docs\/guide\/([\w.-]+\.md)(?:#([\w-]+))?/g)].map((m) => ({ target: join(GUIDE_DIR, m[1]!), anchor: m[2], raw: m[0] }));
      // … and Markdown links relative to the file (the guide's own cross-references).
      if (f.endsWith('.md')) {
        for (const m of text.matchAll(/\]\(([\w./-]*?\.md)?(?:#([\w-]+))?\)/g)) {
          if (!m[1] && !m[2]) continue;
          if (m[1]?.includes('docs/guide/')) continue; // already counted above
          if (m[1] && /^[a-z]+:/.test(m[1])) continue;
          const target = m[1] ? resolve(dirname(join(ROOT, f)), m[1]) : join(ROOT, f);
          if (!inGuide && !target.startsWith(GUIDE_DIR)) continue;
          refs.push({ target, anchor: m[2], raw: m[0] });
        }
      }
      for (const r of refs) {
        count++;
        if (!existsSync(r.target)) broken.push(`${f}: ${r.raw} (no such file)`);
        else if (r.anchor && !anchorsOf(r.target).has(r.anchor)) broken.push(`${f}: ${r.raw} (no heading with that anchor)`);
      }
    }
    expect(broken).toEqual([]);
    expect(count).toBeGreaterThan(50);
  });

  it('nothing points at documents the repository does not contain', () => {
    // Built from pieces so that this file does not match itself (nor a `git grep` for the names).
    const names = [['LANG', 'UAGE'], ['WEB', 'SOCKET'], ['TOOL', 'CHAIN'], ['STY', 'LE']].map((parts) => parts.join('') + '\\.md');
    const pattern = new RegExp(`((?<![\\w-])(${names.join('|')})|\\.\\./${'shared'}\\b|/${'shared'}/)`);
    const offenders: string[] = [];
    for (const f of repositoryFiles()) {
      const lines = readFileSync(join(ROOT, f), 'utf8').split('\n');
      lines.forEach((l, i) => {
        if (pattern.test(l)) offenders.push(`${f}:${i + 1}: ${l.trim().slice(0, 120)}`);
      });
    }
    expect(offenders).toEqual([]);
  });
});
