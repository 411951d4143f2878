/**
 * `osprey fmt` (compiler/src/tools/format): the canonical layout on hand-written inputs, and on every
 * program of tests/programs that formatting is idempotent, that the corpus is already formatted (the
 * check CI would run), and that the formatted program compiles to the same LLVM IR (run-time failure
 * locations `file:line:col` masked, since formatting may move code) or, for a program that must not
 * compile, to the same diagnostics. Everything runs in-process except a few CLI calls.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { compileToLlvm, type Capability } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';
import { formatText } from '../../compiler/src/tools/format/format.ts';
import { listFiles, OSPREY_BIN, ROOT, runCli } from '../compiler/helpers.ts';

function fmt(text: string): string {
  const r = formatText(text);
  if (!r.ok) throw new Error(`did not parse: ${r.diagnostics.map((d) => d.message).join('; ')}`);
  return r.text;
}

describe('the canonical layout', () => {
  it('indents by brackets and normalises spacing', () => {
    const src = [
      'fn   add( a:Int,b :Int )->Int=a+b',
      'type Shape=Circle{radius:Int}|Rect{w:Int,h:Int}',
      'fn area(s:Shape)->Int=match s{',
      'Circle{radius}=>radius*radius*3',
      '      Rect { w , h }   =>w*h',
      '}',
      'let xs=[1,2,-3]',
      'let r:Result<List<Int>,String> =Success(xs)',
      'print(toString(add(a:1,b:-2)))',
      'let f=|x,y|=>x+y',
      'let g=fn(n:Int)->Int=>n*2',
      'print(  f(1,2)|>g  )',
      'match xs[0]{Success v=>print(v) Error e=>print(e)}',
      'print(!true)',
      '',
    ].join('\n');
    expect(fmt(src)).toBe([
      'fn add(a: Int, b: Int) -> Int = a + b',
      'type Shape = Circle { radius: Int } | Rect { w: Int, h: Int }',
      'fn area(s: Shape) -> Int = match s {',
      '    Circle { radius } => radius * radius * 3',
      '    Rect { w, h } => w * h',
      '}',
      'let xs = [1, 2, -3]',
      'let r: Result<List<Int>, String> = Success(xs)',
      'print(toString(add(a: 1, b: -2)))',
      'let f = |x, y| => x + y',
      'let g = fn(n: Int) -> Int => n * 2',
      'print(f(1, 2) |> g)',
      'match xs[0] { Success v => print(v) Error e => print(e) }',
      'print(!true)',
      '',
    ].join('\n'));
  });

  it('keeps comments and line breaks, collapses blank lines, indents continuation lines', () => {
    const src = [
      '',
      '',
      '// expect: 3 ',
      '/// Doubles.',
      'fn double(n: Int) -> Int = {   // trailing',
      '',
      '',
      '  let m = n',
      '        + n   ',
      '',
      '  m',
      '',
      '}',
      'type Color =',
      '| Red',
      '| Green',
      'let total = double(1)',
      '|> double',
      'print(websocketSend(',
      'wsID: 1,',
      '        message: "a ${total}  b"',
      '))',
      'match total {',
      '1 => print("one")',
      '-1 => print("minus one")',
      '_ => print("other")',
      '}',
      '',
      '',
    ].join('\n');
    expect(fmt(src)).toBe([
      '// expect: 3 ',
      '/// Doubles.',
      'fn double(n: Int) -> Int = { // trailing',
      '    let m = n',
      '        + n',
      '',
      '    m',
      '}',
      'type Color =',
      '    | Red',
      '    | Green',
      'let total = double(1)',
      '    |> double',
      'print(websocketSend(',
      '    wsID: 1,',
      '    message: "a ${total}  b"',
      '))',
      'match total {',
      '    1 => print("one")',
      '    -1 => print("minus one")',
      '    _ => print("other")',
      '}',
      '',
    ].join('\n'));
  });

  it('indents once for several brackets opened on one line', () => {
    const src = 'range(0, 3) |> forEach(fn(n: Int) -> Unit => {\nprint(n)\n})\n';
    expect(fmt(src)).toBe('range(0, 3) |> forEach(fn(n: Int) -> Unit => {\n    print(n)\n})\n');
  });

  it('refuses a program that does not parse, with the compiler diagnostics', () => {
    const r = formatText('let x = (1 + \n');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.diagnostics[0]!.code).toBe('E0100');
  });

  it('formats an empty file and a comment-only file', () => {
    expect(fmt('')).toBe('');
    expect(fmt('\n\n// only a comment   \n\n')).toBe('// only a comment   \n');
  });
});

const CORPUS = listFiles(join(ROOT, 'tests', 'programs'), '.osp');

function disabledOf(text: string): Set<Capability> {
  const disabled = new Set<Capability>();
  for (const line of text.split('\n')) {
    const m = /^\/\/ flags:(.*)$/.exec(line);
    if (!m) continue;
    for (const flag of m[1]!.trim().split(/\s+/).filter(Boolean)) {
      if (flag === '--sandbox') for (const c of ['http', 'websocket', 'fs', 'ffi', 'process', 'sandbox'] as const) disabled.add(c);
      else if (flag.startsWith('--no-')) disabled.add(flag.slice('--no-'.length) as Capability);
    }
  }
  return disabled;
}

/** IR without `file:line:col` texts (run-time failure messages) and the module's source name. */
function comparableIr(ir: string): string {
  return ir.replace(/[\w./-]+\.osp:\d+:\d+/g, 'FILE:L:C');
}

describe(`every program of tests/programs (${CORPUS.length})`, () => {
  it('formats idempotently, is already formatted, and compiles to the same IR or diagnostics', { timeout: 300_000 }, () => {
    const problems: string[] = [];
    for (const path of CORPUS) {
      const rel = relative(ROOT, path);
      const text = readFileSync(path, 'utf8');
      const once = formatText(text);
      if (!once.ok) {
        problems.push(`${rel}: does not parse`);
        continue;
      }
      const twice = formatText(once.text);
      if (!twice.ok || twice.changed) problems.push(`${rel}: formatting is not idempotent`);
      if (once.changed) problems.push(`${rel}: not formatted (run: osprey fmt ${rel})`);
      const options = { disabled: disabledOf(text) };
      const before = compileToLlvm(new SourceFile(rel, text), options);
      const after = compileToLlvm(new SourceFile(rel, once.text), options);
      if (before.llvm !== undefined || after.llvm !== undefined) {
        if (before.llvm === undefined || after.llvm === undefined || comparableIr(before.llvm) !== comparableIr(after.llvm)) {
          problems.push(`${rel}: the formatted program compiles to different IR`);
        }
      } else {
        const show = (ds: typeof before.diagnostics) => ds.map((d) => `${d.code} ${d.message}`).join('\n');
        if (show(before.diagnostics) !== show(after.diagnostics)) problems.push(`${rel}: the formatted program reports different errors`);
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('osprey fmt on the command line', () => {
  it('rewrites in place, --check lists what would change, - filters stdin', { timeout: 240_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-fmt-'));
    try {
      const messy = join(dir, 'messy.osp');
      const tidy = join(dir, 'tidy.osp');
      writeFileSync(messy, 'let x=1\nprint( x )\n');
      writeFileSync(tidy, 'let y = 2\nprint(y)\n');

      const check = runCli(['fmt', '--check', messy, tidy]);
      expect(check.status).toBe(1);
      expect(check.stdout).toBe(`${messy}\n`);
      expect(readFileSync(messy, 'utf8')).toBe('let x=1\nprint( x )\n');

      const write = runCli(['fmt', dir]);
      expect(write.status).toBe(0);
      expect(readFileSync(messy, 'utf8')).toBe('let x = 1\nprint(x)\n');
      expect(runCli(['fmt', '--check', dir]).status).toBe(0);

      const piped = spawnSync(process.execPath, [OSPREY_BIN, 'fmt', '-'], { input: 'fn f()->Int=1\n', encoding: 'utf8', timeout: 60_000 });
      expect(piped.status).toBe(0);
      expect(piped.stdout).toBe('fn f() -> Int = 1\n');

      const broken = join(dir, 'broken.osp');
      writeFileSync(broken, 'let = 3\n');
      const bad = runCli(['fmt', broken]);
      expect(bad.status).toBe(1);
      expect(bad.stderr).toMatch(/error\[E0100\]/);
      expect(bad.stderr).toContain(`${broken}:1:5`);
      expect(readFileSync(broken, 'utf8')).toBe('let = 3\n');

      expect(runCli(['fmt', join(dir, 'missing.osp')]).status).toBe(2);
      expect(runCli(['fmt', '--bogus', messy]).status).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
