/**
 * Unit tests of individual passes through their typed hand-offs: lexer tokens, parser trees, the
 * checker's typed tree, exhaustiveness on nested patterns, and the runtime declarations.
 */
import { describe, expect, it } from 'vitest';
import { DiagnosticBag, InternalCompilerError } from '../../compiler/src/diagnostics/diagnostic.ts';
import { emitModule } from '../../compiler/src/codegen/emit.ts';
import type { CoreProgram } from '../../compiler/src/lower/core.ts';
import { checkSource, compileToLlvm, parseSource } from '../../compiler/src/driver.ts';
import { renderRuntimeDeclarations } from '../../compiler/src/codegen/runtime.ts';
import { SourceFile } from '../../compiler/src/source.ts';
import { lex } from '../../compiler/src/syntax/lexer.ts';
import type { Expr } from '../../compiler/src/syntax/ast.ts';
import { showType } from '../../compiler/src/semantics/types.ts';

const src = (text: string) => new SourceFile('t.osp', text);

function firstExpr(text: string): Expr {
  const r = parseSource(src(text));
  expect(r.diagnostics).toEqual([]);
  const s = r.ast!.stmts[0]!;
  if (s.kind !== 'expr') throw new Error('not an expression statement');
  return s.expr;
}

describe('lexer', () => {
  it('decodes escapes in one left-to-right pass', () => {
    const d = new DiagnosticBag();
    const [t] = lex(String.raw`"a\\nb\"c\$d\t"`, d);
    expect(d.items).toEqual([]);
    expect(t!.kind === 'string' && t.parts[0]!.kind === 'text' && t.parts[0]!.value).toBe('a\\nb"c$d\t');
  });

  it('splits interpolations and tokenises the embedded expression', () => {
    const d = new DiagnosticBag();
    const [t] = lex('"x ${f("y")} z"', d);
    expect(t!.kind).toBe('string');
    if (t!.kind !== 'string') return;
    expect(t.interpolated).toBe(true);
    expect(t.parts.map((p) => p.kind)).toEqual(['text', 'expr', 'text']);
  });

  it('reports invalid number literals and bad escapes', () => {
    const d = new DiagnosticBag();
    lex('0x10 "\\q"', d);
    expect(d.items.map((x) => x.code)).toEqual(['E0004', 'E0003']);
  });
});

describe('parser', () => {
  it('pipe binds tighter than binary operators; unary applies to the pipe chain', () => {
    const e = firstExpr('2 + 3 |> double');
    expect(e.kind === 'binary' && e.right.kind).toBe('pipe');
    const u = firstExpr('-x |> inc');
    expect(u.kind === 'unary' && u.operand.kind).toBe('pipe');
  });

  it('a newline does not end an expression', () => {
    const r = parseSource(src('let b = a\n-3'));
    expect(r.ast!.stmts).toHaveLength(1);
  });

  it('splits match arms at a binary operator that starts the next pattern', () => {
    const e = firstExpr('match n {\n 1 => y\n -1 => z\n _ => 0\n}');
    expect(e.kind === 'match' && e.arms.length).toBe(3);
  });

  it('accepts keywords as field names in declarations, construction, access and patterns', () => {
    const r = parseSource(src('type M = { type: String }\nlet m = M { type: "t" }\nprint(m.type)\nmatch m { M { type } => 1 }'));
    expect(r.diagnostics).toEqual([]);
  });

  it('a computed index glued to its name is one syntax error at the index, and parsing goes on after it', () => {
    const text = 'let a = xs[i]\nmatch ys[n - 1] {\n _ => 0\n}\nprint(zs[k])';
    const r = parseSource(src(text));
    expect(r.ast).toBeNull();
    expect(r.diagnostics.map((d) => [d.code, text.slice(d.span.start, d.span.end)])).toEqual([
      ['E0100', 'i'], ['E0100', 'n - 1'], ['E0100', 'k'],
    ]);
    expect(r.diagnostics[1]!.message).toContain('a computed index like `ys[n - 1]` is not part of the language');
  });

  it('a literal index may follow a space or a line break; a computed one there is a separate list', () => {
    for (const text of ['xs [0]', 'xs\n[0]', 'xs[0]']) {
      const e = firstExpr(text);
      expect(e.kind === 'index' && e.index).toBe(0n);
    }
    for (const text of ['xs [i]', 'xs\n[i]']) {
      const r = parseSource(src(text));
      expect(r.diagnostics).toEqual([]);
      expect(r.ast!.stmts.map((s) => s.kind === 'expr' && s.expr.kind)).toEqual(['ident', 'list']);
    }
  });

  it('a single named argument and both function type spellings parse', () => {
    const r = parseSource(src('f(wsID: 1)\nfn g(h: fn(String) -> Int, k: (String) -> Int) -> Int = 0'));
    expect(r.diagnostics).toEqual([]);
  });
});

describe('checker', () => {
  it('infers lambda parameters from the expected function type', () => {
    const r = checkSource(src('fn apply(f: (Int) -> Int, v: Int) -> Int = f(v)\nprint(apply(f: |n| => n + 1, v: 2))'));
    expect(r.diagnostics).toEqual([]);
  });

  it('fn(String) -> Result<Success, String> is the same type as (String) -> Result<Unit, String>', () => {
    const r = checkSource(src('fn h(_m: String) -> Result<Success, String> = Success()\nlet _x: (String) -> Result<Unit, String> = h'));
    expect(r.diagnostics).toEqual([]);
    const let0 = r.typed!.topLevel[0]!;
    expect(let0.kind === 'let' && showType(let0.symbol.type)).toBe('(String) -> Result<Unit, String>');
  });

  it('reports several independent errors without cascades', () => {
    const r = checkSource(src('let a = nope\nlet b = a + 1\nlet c: Int = "s"\nprint(b + c)'));
    expect(r.diagnostics.map((d) => d.code)).toEqual(['E0200', 'E0300']);
  });
});

describe('exhaustiveness', () => {
  it('handles nested constructor patterns', () => {
    const ok = checkSource(src(
      'let r: Result<Result<Int, String>, String> = Success(Success(1))\n' +
      'match r {\n Success(Success(x)) => 1\n Success(Error(e)) => 2\n Error e => 3\n}'));
    expect(ok.diagnostics).toEqual([]);
    const missing = checkSource(src(
      'let r: Result<Result<Int, String>, String> = Success(Success(1))\n' +
      'match r {\n Success(Success(x)) => 1\n Error e => 3\n}'));
    // The partly covered constructor is named with the sub-pattern no arm matches.
    expect(missing.diagnostics.map((d) => d.message)).toEqual(['match expression not exhaustive: missing patterns: [Success(Error(_))]']);
  });
});

describe('codegen', () => {
  it('a module that fails LLVM verification is an internal compiler error, not a user error', () => {
    // A function declared to return i1 whose body yields i64: only a compiler bug can produce it.
    const broken: CoreProgram = {
      fns: [{ name: 'bad', params: [], ret: 'i1', body: { k: 'int', value: 1n, repr: 'i64' }, loops: false }],
      globals: [],
      init: { k: 'unit', repr: 'i64' },
      main: null,
    };
    expect(() => emitModule(broken, 'broken')).toThrow(InternalCompilerError);
  });

  it('declares every runtime function once, with the named OspResult struct', () => {
    const ir = renderRuntimeDeclarations();
    expect(ir).toContain('%OspResult = type { i64, i64 }');
    expect(ir).toContain('declare %OspResult @osp_ws_connect(i8*, %OspResult (i8*, i8*)*, i8*)');
  });

  it('compiles a handler to the runtime handler ABI: env first, then the message', () => {
    const r = compileToLlvm(src('fn h(message: String) -> Result<Success, String> = Success()\nlet c = websocketConnect(url: "ws://x", messageHandler: h)'));
    expect(r.llvm).toMatch(/define internal %OspResult @ospu\.h\(i8\* %0, i8\* %1\)/);
    expect(r.llvm).toMatch(/call %OspResult @osp_ws_connect\(i8\* [^\n]*, %OspResult \(i8\*, i8\*\)\* @ospu\.h, i8\* null\)/);
  });
});

describe('inlining and closure environments (lower/inline.ts, lower/escape.ts)', () => {
  /** The text of one function of the IR, from its `define` to its closing brace. */
  const fnText = (ir: string, name: string): string => {
    const start = ir.indexOf(`@${name}(`);
    expect(start).toBeGreaterThan(-1);
    return ir.slice(ir.lastIndexOf('define', start), ir.indexOf('\n}\n', start));
  };
  const header = 'fn makeAdder(k: Int) -> (Int) -> Int = fn(x: Int) -> Int => x + k\nfn apply(f: (Int) -> Int, v: Int) -> Int = f(v)\n';

  it('a closure that is only called keeps its environment in the caller\'s frame, not the heap', () => {
    const r = compileToLlvm(src(`${header}fn step(acc: Int, i: Int) -> Int = apply(f: makeAdder(i % 10), v: acc)\nprint(step(acc: 1, i: 2))`));
    expect(r.diagnostics).toEqual([]);
    const step = fnText(r.llvm!, 'ospu.step');
    // makeAdder and apply are inlined: no call of either, no allocation, one frame slot.
    expect(step).not.toMatch(/@ospu\.(makeAdder|apply)\(/);
    expect(step).not.toContain('@osp_alloc');
    expect(step).toMatch(/alloca \[1 x i64\]/);
  });

  it('a closure that escapes (returned, aliased, captured, stored) is allocated on the heap', () => {
    const escaping = [
      'fn g(k: Int) -> (Int) -> Int = {\n  let f = makeAdder(k)\n  f\n}',
      'fn g(k: Int) -> (Int) -> Int = {\n  let f = makeAdder(k)\n  let h = f\n  h\n}',
      'fn g(k: Int) -> (Int) -> Int = {\n  let f = makeAdder(k)\n  fn(x: Int) -> Int => f(x) * 2\n}',
      'fn g(k: Int) -> List<(Int) -> Int> = [makeAdder(k)]',
      'fn g(k: Int) -> Int = {\n  let f = makeAdder(k)\n  apply(f: f, v: f(1))\n}',
    ];
    for (const g of escaping) {
      const r = compileToLlvm(src(`${header}${g}\nprint(1)`));
      expect(r.diagnostics).toEqual([]);
      const text = fnText(r.llvm!, 'ospu.g');
      expect(text, g).toContain('@osp_alloc(i64 8)');
      expect(text, g).not.toMatch(/alloca \[/);
    }
  });

  it('a small recursive function is unrolled into itself once, and called (not inlined) by others', () => {
    const r = compileToLlvm(src('fn f(n: Int) -> Int = match n < 2 {\n  true => n\n  false => f(n - 1) + f(n - 2)\n}\nfn g(n: Int) -> Int = f(n) + 1\nprint(g(10))'));
    expect(r.diagnostics).toEqual([]);
    expect(fnText(r.llvm!, 'ospu.g').match(/call i64 @ospu\.f\(/g)).toHaveLength(1);
    // Each of the two self calls became a copy of the body, which makes two calls: four in all.
    expect(fnText(r.llvm!, 'ospu.f').match(/call i64 @ospu\.f\(/g)).toHaveLength(4);
  });

  it('a self tail call stays a jump when the function is unrolled (deep recursion stays flat)', () => {
    const r = compileToLlvm(src('fn ack(m: Int, n: Int) -> Int = match m == 0 {\n  true => n + 1\n  false => match n == 0 {\n    true => ack(m: m - 1, n: 1)\n    false => ack(m: m - 1, n: ack(m: m, n: n - 1))\n  }\n}\nprint(ack(m: 2, n: 3))'));
    expect(r.diagnostics).toEqual([]);
    const ack = fnText(r.llvm!, 'ospu.ack');
    expect(ack).toContain('br label %loop');
    // One non-tail self call per body: three nested copies (four bodies), each copy a loop of
    // its own whose tail calls jump to its header; only the innermost copy still calls ack.
    expect(ack.match(/^inner\d*:/gm)).toHaveLength(3);
    expect(ack.match(/br label %inner\d*/g)!.length).toBeGreaterThanOrEqual(6);
    expect(ack.match(/call i64 @ospu\.ack\(/g)).toHaveLength(1);
  });

  it('an unrolled copy without self tail calls is plain bindings, and levels stop at four bodies', () => {
    const r = compileToLlvm(src('fn count(n: Int) -> Int = match n == 0 {\n  true => 0\n  false => 1 + count(n - 1)\n}\nprint(count(10))'));
    expect(r.diagnostics).toEqual([]);
    const count = fnText(r.llvm!, 'ospu.count');
    expect(count).not.toMatch(/^inner/m);
    // Four bodies: the function and three nested copies, the last of which calls count.
    expect(count.match(/call i64 @ospu\.count\(/g)).toHaveLength(1);
    expect(count.match(/icmp eq i64 %\d+, 0/g)).toHaveLength(4);
  });

  it('a constructor whose words are all constants is one shared read-only block; others allocate', () => {
    const r = compileToLlvm(src('type Tree = Leaf | Node { left: Tree, right: Tree } | Size { n: Int }\nfn make(d: Int) -> Tree = match d == 0 {\n  true => Leaf\n  false => Node { left: make(d - 1), right: Size { n: 7 } }\n}\nfn leaves(t: Tree) -> Int = match t {\n  Leaf => 1\n  Node { left, right } => leaves(left) + leaves(right)\n  Size { n } => n\n}\nprint(leaves(make(3)))'));
    expect(r.diagnostics).toEqual([]);
    const make = fnText(r.llvm!, 'ospu.make');
    // Node has computed fields: allocated (3 words); Leaf and Size { n: 7 } are constant images.
    expect(make).toContain('@osp_alloc(i64 24)');
    expect(make).not.toContain('@osp_alloc(i64 8)');
    expect(make).not.toContain('@osp_alloc(i64 16)');
    expect(r.llvm!).toMatch(/@words(\.\d+)? = internal constant \[1 x i64\] zeroinitializer/);
    expect(r.llvm!).toMatch(/@words(\.\d+)? = internal constant \[2 x i64\] \[i64 2, i64 7\]/);
  });

  it('an exhaustive match does not test its last arm, so it has no failure path', () => {
    const r = compileToLlvm(src('type Shape = Dot | Line { n: Int } | Box { w: Int, h: Int }\nfn area(s: Shape) -> Int = match s {\n  Dot => 0\n  Line { n } => n\n  Box { w, h } => w * h\n}\nprint(area(Box { w: 2, h: 3 }))'));
    expect(r.diagnostics).toEqual([]);
    const area = fnText(r.llvm!, 'ospu.area');
    expect(area).not.toContain('osp_rt_fail');
    // Two tag tests (Dot, Line); Box is what remains.
    expect(area.match(/icmp eq i64 %\d+, [0-9]+/g)).toHaveLength(2);
  });
});
