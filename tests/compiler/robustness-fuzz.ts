/**
 * Front-end fuzzing, shared by tests/compiler/robustness-fuzz.test.ts (seeded, bounded, in CI)
 * and scripts/fuzz-compiler.ts (the same generators for as long as you like).
 *
 * Every case is a source text fed in-process to the driver (`checkSource`, then IR emission when
 * the program checks: no linking). The contract for ANY input, however broken:
 *
 *   * no exception escapes (an InternalCompilerError, a TypeError, a stack overflow: all failures);
 *   * it finishes within a time budget (default 2 s; the CI round scales it with a yardstick);
 *   * the outcome has exit-status-1 semantics: either the program checks (and its IR is emitted),
 *     or there is at least one error, every diagnostic has a code of its kind (E… for errors,
 *     W… for warnings) and a span inside the file, and the renderer draws all of them.
 *
 * Seeds are explicit, so a failure prints a seed and a case number that reproduce it exactly.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkSource, emitTyped, renderErrors } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';
import { listFiles } from './helpers.ts';

const HERE = import.meta.dirname;

/** Every golden program and every diagnostics program: the seeds that mutations start from. */
export function corpus(): { name: string; text: string }[] {
  const files = [...listFiles(join(HERE, '..', 'programs'), '.osp'), ...listFiles(join(HERE, 'diagnostics'), '.osp')];
  return files.map((f) => ({ name: f.slice(join(HERE, '..', '..').length + 1), text: readFileSync(f, 'utf8') }));
}

let cachedTexts: string[] | undefined;
function corpusTexts(): string[] {
  return (cachedTexts ??= corpus().map((p) => p.text));
}

/** mulberry32: small, fast, good enough for choosing mutations. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (r: Rand, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

/** A rough Osprey tokenizer, good enough to cut a program into pieces that mutations move. */
export function roughTokens(text: string): string[] {
  return text.match(/"(?:[^"\\]|\\.)*"?|\/\/[^\n]*|[A-Za-z_][A-Za-z0-9_]*|[0-9]+|\|>|=>|->|==|!=|<=|>=|&&|\|\||\s+|./gs) ?? [];
}

/** Tokens random streams and insertions are drawn from: every keyword, operator and literal form. */
export const VOCABULARY: readonly string[] = [
  'fn', 'let', 'mut', 'type', 'match', 'extern', 'import', 'module', 'where', 'if', 'else', 'true', 'false',
  'spawn', 'yield', 'await', 'select', 'fiber', 'channel', 'send', 'recv',
  'print', 'toString', 'range', 'forEach', 'map', 'filter', 'fold', 'sleep', 'websocketConnect',
  'websocketSend', 'Success', 'Error', 'Ok', 'Err', 'Result', 'Int', 'String', 'Bool', 'Unit', 'any', 'List',
  'x', 'y', 'main', 'f', 'Point', 'Red', '_', '_tmp',
  '0', '1', '42', '9223372036854775807', '9223372036854775808', '"s"', '"a${x}b"', '"${"', '"\\q"', '"',
  '|>', '=>', '->', '==', '!=', '<=', '>=', '&&', '||', '=', '!', '%', '+', '-', '*', '/', '<', '>', ':', ',',
  '.', '|', '(', ')', '{', '}', '[', ']', ';', '&', '$', '#', '@', '\\', "'", '///', '// c', '\n', ' ',
];

const RANDOM_CHARS = '(){}[]<>=!|&+-*/%:;,."\'\\$_#@~`^?aZ09 \n\t\u00e9\u{1F600}\u0000';

export type Mutation = (text: string, r: Rand) => string;

const MUTATIONS: Record<string, Mutation> = {
  deleteToken(text, r) {
    const t = roughTokens(text);
    if (t.length) t.splice(int(r, 0, t.length - 1), int(r, 1, 3));
    return t.join('');
  },
  duplicateToken(text, r) {
    const t = roughTokens(text);
    if (t.length) {
      const i = int(r, 0, t.length - 1);
      t.splice(i, 0, ...t.slice(i, i + int(r, 1, 4)));
    }
    return t.join('');
  },
  swapTokens(text, r) {
    const t = roughTokens(text);
    if (t.length > 1) {
      const i = int(r, 0, t.length - 1);
      const j = int(r, 0, t.length - 1);
      [t[i], t[j]] = [t[j]!, t[i]!];
    }
    return t.join('');
  },
  insertToken(text, r) {
    const t = roughTokens(text);
    t.splice(int(r, 0, t.length), 0, pick(r, VOCABULARY));
    return t.join('');
  },
  insertChars(text, r) {
    const at = int(r, 0, text.length);
    let s = '';
    for (let n = int(r, 1, 6); n > 0; n--) s += pick(r, [...RANDOM_CHARS]);
    return text.slice(0, at) + s + text.slice(at);
  },
  splice(text, r) {
    // A run of tokens from another corpus program: plausible syntax in an implausible place.
    const others = corpusTexts();
    const t = roughTokens(pick(r, others));
    const i = int(r, 0, Math.max(0, t.length - 1));
    const piece = t.slice(i, i + int(r, 1, 40)).join('');
    const at = int(r, 0, text.length);
    return text.slice(0, at) + piece + text.slice(at);
  },
  replaceIdent(text, r) {
    // Keeps the syntax, changes the meaning: one name becomes another name of the program (or a
    // built-in), so the checker, lowering and emission see well-formed but ill-typed trees.
    const t = roughTokens(text);
    const idents = t.map((x, i) => (/^[A-Za-z_]\w*$/.test(x) ? i : -1)).filter((i) => i >= 0);
    if (idents.length) t[pick(r, idents)] = r() < 0.7 ? t[pick(r, idents)]! : pick(r, VOCABULARY.slice(0, 50));
    return t.join('');
  },
  replaceLiteral(text, r) {
    const t = roughTokens(text);
    const lits = t.map((x, i) => (/^([0-9]+|"(?:[^"\\]|\\.)*"|true|false)$/.test(x) ? i : -1)).filter((i) => i >= 0);
    if (lits.length) t[pick(r, lits)] = pick(r, ['0', '-1', '"text"', '""', 'true', 'false', '[]', '[1, "a"]', 'Success(1)', 'Error("e")', 'fn(x: Int) -> Int => x', '{ }', 'print']);
    return t.join('');
  },
  truncate(text, r) {
    return text.slice(0, int(r, 0, text.length));
  },
  nestDeeply(text, r) {
    const depth = pick(r, [50, 500, 3000]);
    const [open, close] = pick(r, [['(', ')'], ['{ ', ' }'], ['[', ']'], ['match 1 { _ => ', ' }'], ['fn() => ', ''], ['-', ''], ['!', '']]);
    const inner = `${open.repeat(depth)}1${close.repeat(depth)}`;
    const t = roughTokens(text);
    const nums = t.map((x, i) => (/^[0-9]+$/.test(x) ? i : -1)).filter((i) => i >= 0);
    if (nums.length) t[pick(r, nums)] = inner;
    else t.push(`\nlet deep = ${inner}\n`);
    return t.join('');
  },
  hugeLiteral(text, r) {
    const t = roughTokens(text);
    const big = pick(r, ['9'.repeat(int(r, 19, 5000)), '0'.repeat(int(r, 1, 5000)), '9223372036854775808', '18446744073709551616']);
    const nums = t.map((x, i) => (/^[0-9]+$/.test(x) ? i : -1)).filter((i) => i >= 0);
    if (nums.length) t[pick(r, nums)] = big;
    else t.push(`\nprint(${big})\n`);
    return t.join('');
  },
  longLine(text, r) {
    const n = int(r, 2_000, 30_000);
    const line = pick(r, [
      `let s = "${'x'.repeat(n)}"`,
      `print(${Array.from({ length: n / 10 }, () => '1').join(' + ')})`,
      `// ${'c'.repeat(n)}`,
      `let xs = [${Array.from({ length: n / 10 }, (_, i) => String(i)).join(', ')}]`,
      `print("${'${x}'.repeat(n / 50)}")`,
    ]);
    const lines = text.split('\n');
    lines.splice(int(r, 0, lines.length), 0, line);
    return lines.join('\n');
  },
};

export const MUTATION_NAMES = Object.keys(MUTATIONS);

/** One to three mutations of `text`; returns the new text and what was done. */
export function mutate(text: string, r: Rand): { text: string; applied: string[] } {
  const applied: string[] = [];
  for (let n = int(r, 1, 3); n > 0; n--) {
    const name = pick(r, MUTATION_NAMES);
    text = MUTATIONS[name]!(text, r);
    applied.push(name);
  }
  return { text, applied };
}

/** A purely random token stream. */
export function randomTokens(r: Rand): string {
  const out: string[] = [];
  for (let n = int(r, 1, 200); n > 0; n--) {
    out.push(pick(r, VOCABULARY));
    if (r() < 0.6) out.push(r() < 0.8 ? ' ' : '\n');
  }
  return out.join('');
}

/** Hand-written extremes that must give a diagnostic (or compile), never crash or hang. */
export function extremes(): { name: string; text: string }[] {
  const N = 10_000;
  return [
    { name: `${N} nested parentheses`, text: `let x = ${'('.repeat(N)}1${')'.repeat(N)}\nprint(x)\n` },
    { name: `${N} unclosed parentheses`, text: `let x = ${'('.repeat(N)}1\n` },
    { name: `${N} nested blocks`, text: `let x = ${'{ '.repeat(N)}1${' }'.repeat(N)}\n` },
    { name: `${N} nested lists`, text: `let x = ${'['.repeat(N)}1${']'.repeat(N)}\n` },
    { name: `${N} nested lambdas`, text: `let f = ${'fn() => '.repeat(N)}1\n` },
    { name: `${N} nested matches`, text: `let x = ${'match 1 { _ => '.repeat(N)}1${' }'.repeat(N)}\n` },
    { name: `${N} unary minus`, text: `let x = ${'-'.repeat(N)}1\n` },
    { name: `${N} negations`, text: `let x = ${'!'.repeat(N)}true\n` },
    { name: `${N} nested calls`, text: `fn f(n: Int) -> Int = n\nprint(${'f('.repeat(N)}1${')'.repeat(N)})\n` },
    { name: `${N} nested type arguments`, text: `let x: ${'List<'.repeat(N)}Int${'>'.repeat(N)} = 1\n` },
    { name: `${N} nested function types`, text: `fn f(g: ${'('.repeat(N)}Int${')'.repeat(N)}) -> Int = 1\n` },
    { name: `${N} nested patterns`, text: `let x = match Success(1) {\n  ${'Success('.repeat(N)}_${')'.repeat(N)} => 1\n  _ => 2\n}\n` },
    { name: `${N} nested interpolations`, text: `let x = ${'"${'.repeat(200)}1${'}"'.repeat(200)}\n` },
    { name: '100,000-term sum', text: `print(${Array.from({ length: 100_000 }, () => '1').join(' + ')})\n` },
    { name: '100,000-term pipe', text: `print(1 ${'|> toString '.repeat(20_000)})\n` },
    // Long but flat: a match with many arms, a union with many constructors and long operator
    // chains are not nested, so they must compile (code generation walks them iteratively).
    { name: '1,500-arm match', text: `fn f(x: Int) -> Int = match x {\n${Array.from({ length: 1500 }, (_, i) => `    ${i} => ${i * 2}`).join('\n')}\n    _ => 0\n}\nprint(f(1499))\n` },
    {
      name: '3,000-constructor union',
      text: `type Big = ${Array.from({ length: 3000 }, (_, i) => `C${i}`).join(' | ')}\nfn g(b: Big) -> Int = match b {\n${Array.from({ length: 3000 }, (_, i) => `    C${i} => ${i}`).join('\n')}\n}\nprint(g(C2999))\n`,
    },
    { name: '1,000-operand + chain', text: `let s = "a"\nprint(${Array.from({ length: 1000 }, (_, i) => (i % 2 ? 's' : '"b"')).join(' + ')})\nprint(${Array.from({ length: 1000 }, (_, i) => String(i)).join(' + ')})\n` },
    { name: '1,000-operand |> chain', text: `fn inc(x: Int) -> Int = x + 1\nlet add = fn(x: Int) -> Int => x + 2\nprint(0 ${'|> inc '.repeat(1000)})\nprint(0 ${'|> add '.repeat(1000)})\n` },
    { name: '1,000-operand && chain', text: `fn t(x: Int) -> Bool = x > 0\nprint(${Array.from({ length: 1000 }, (_, i) => `t(${i})`).join(' && ')})\n` },
    {
      name: 'type patterns in lambdas',
      text: 'let x: any = 5\nlet f = fn() -> Int => match x { n: Int => n + 1 _ => 0 }\nlet g = fn(v: any) -> String => match v { s: String => s n: Int => toString(n) _ => "?" }\nfn h(k: Int) -> Int = {\n    fn inner(v: any) -> Int = match v { n: Int => n + k _ => k }\n    inner(x)\n}\nprint(f())\nprint(g(x))\nprint(h(1))\n',
    },
    { name: '20,000-element list', text: `let xs = [${Array.from({ length: 20_000 }, (_, i) => String(i)).join(', ')}]\n` },
    { name: '20,000 statements', text: Array.from({ length: 20_000 }, (_, i) => `let v${i} = ${i}`).join('\n') + '\n' },
    { name: '10,000 local lets in one function', text: `fn main() -> Int {\n${Array.from({ length: N }, (_, i) => `    let v${i} = ${i}`).join('\n')}\n    v9999\n}\n` },
    { name: '5,000 lets alternating with prints in a block', text: `let x = {\n${Array.from({ length: 5000 }, (_, i) => `    let v${i} = ${i}\n    print(v${i})`).join('\n')}\n    1\n}\n` },
    { name: '1 MB line', text: `let s = "${'x'.repeat(1_000_000)}"\nprint(s)\n` },
    { name: 'huge integer literal', text: `print(${'9'.repeat(100_000)})\n` },
    { name: 'only a quote', text: '"' },
    { name: 'empty file', text: '' },
    { name: 'NUL bytes', text: 'let x = 1\u0000\u0000print(x)\n' },
    { name: 'lone surrogate', text: 'print("\uD800")\n' },
    { name: 'CRLF and tabs', text: 'let x = 1\r\n\tprint(x)\r\n' },
  ];
}

/** Small programs aimed at the checker's corners: cyclic and recursive types, generics, `any`,
 *  Result constructors, shadowed built-in names, odd patterns, unsupported syntax. */
export const SEMANTIC_EDGES: readonly string[] = [
  'type A = B\ntype B = A\nlet x: A = 1',
  'type A = A\nlet x: A = 1',
  'type L = Nil | Cons { head: Int, tail: L }\nlet l = Cons { head: 1, tail: Cons { head: 2, tail: Nil } }\nprint(match l { Nil => 0 Cons { head, tail } => head })',
  'type Box<T> = { item: T }\nlet b = Box { item: Box { item: 1 } }\nprint(b.item.item)',
  'type Box<T> = { item: T }\nlet b: Box = Box { item: 1 }',
  'type Box<T> = { item: T }\nlet b: Box<Int, Int> = Box { item: 1 }',
  'let f = fn(x) => x\nprint(f(1))\nprint(f("a"))',
  'let f = fn(x) => x(x)',
  'fn f(g: (Int) -> Int) -> Int = g(g)',
  'let xs = []\nprint(xs)',
  'let xs = [[], [1]]\nlet y = xs[0]',
  'fn main() -> Int = main()',
  'fn main() = 1\nfn main() = 2',
  'module M { fn f() -> Int = 1 }\nmodule M { fn g() -> Int = 2 }\nprint(M.f())',
  'module M { let x = M.x }',
  'let x = x',
  'let x = y\nlet y = x',
  'fn f() -> Int = g()\nfn g() -> Int = f()\nprint(f())',
  'print(Success(1) == Success(1))',
  'let r = match Success(1) { Success(Success(x)) => x _ => 0 }',
  'type T = { a: Int where positive(a) }\nfn positive(n: Int) -> Bool = n > 0\nlet t = T { a: 1 }\nprint(t.a)',
  'type T = { a: Int where nope(a) }',
  'type T = { a: Int where 1 }',
  'extern fn f(a: Int, b: (Int) -> Int) -> Int',
  'extern fn f(a) -> Int\nprint(f(1))',
  'let f: (Int) -> Int = print',
  'print(print)',
  'print(toString)',
  'let s = toString\nprint(s(1))',
  'let m = map\nprint(1)',
  'range(0, 3) |> forEach(fn(x) => x)',
  'range(0, 3) |> fold(0)',
  'print(1 |> 2)',
  'let x = 1 |> fn(a: Int) -> Int => a',
  'let p = Point { x: 1 }',
  'type P = { x: Int }\nlet p = P { x: 1 }\nlet q = p { y: 2 }\nlet r = p { x: "s" }',
  'type C = R | G\nlet c = R\nlet d = c { x: 1 }',
  'let d = any',
  'fn f(x: any) -> Int = match x { n: Int => n s: String => 0 b: Bool => 1 f: (Int) -> Int => 2 _ => 3 }',
  'fn f(x: any) -> Int = match x { n: Nope => 1 _ => 0 }',
  'fn f(x: Int) -> Int = match x { n: String => 1 _ => 0 }',
  'let x = match 1 { }',
  'fn f() -> Unit = print(1)\nlet u = f()\nprint(u)',
  'let x: Unit = 1',
  'let x: Result<Int> = Success(1)',
  'let x: Result<Int, String, Bool> = Success(1)',
  'let x: List<Int, 3> = [1, 2, 3]\nprint(x[5])',
  'let x: List<Int, -1> = [1]',
  'let x: Int<Int> = 1',
  'let x: 5 = 1',
  'fn f() -> Iterator<Int> = range(0, 1)\nprint(fold(f(), 0, fn(a: Int, b: Int) -> Int => a + b))',
  'websocketConnect(url: "x", messageHandler: print)',
  'let w = websocketConnect("ws://x", fn(m: String) -> Result<Unit, String> => Success())\nprint(match w { Success { value } => value Error { message } => 0 })',
  'print(-9223372036854775808)',
  'print(- 9223372036854775808)',
  'print(--9223372036854775808)',
  'print(9223372036854775807 + 1)',
  'print(1 / 0)',
  'print(1 % 0)',
  'print("${}")',
  'print("${"${1}"}")',
  '/// doc\nlet x = 1',
  '/// doc',
  'fn f() -> Int { }',
  'fn f() -> Int { let x = 1 }',
  'fn f() -> Int { fn g() -> Int = 1 }',
  'let f = fn() => { fn g() -> Int = h() fn h() -> Int = g() g() }\nprint(f())',
  'fn a() -> Int = { fn b() -> Int = a() b() }',
  'select { }',
  'spawn 1',
  'import foo\nimport foo.bar',
  'let mut x = 1\nx = 2',
  'mut x = 1',
  'let x = if true { 1 } else { 2 }',
  'print(true && 1)',
  'print(!"s")',
  'print(-"s")',
  'print(+1)',
  'let x = (fn(a: Int) -> Int => a)(1)',
  'let x = print(1)(2)',
  'let s = "a".b.c.d',
  'print(Success)',
  'print(Error)',
  'print(Error())',
  'print(Success(1, 2))',
  'print(Ok { value: 1, message: 2 })',
  'type Ok = Ok\nlet x = Ok',
  'type Result = A | B\nlet x = A',
  'type Int = I\nlet x: Int = I',
  'type print = P',
  'fn f(a: Int, a: Int) -> Int = a',
  'let f = fn(a: Int, a: Int) -> Int => a',
  'fn f(x: Int) -> Int = match x { x => x y => y }',
  'let x = match [1] { [a] => a _ => 0 }',
  'let x = match "a" { "a" => 1 "a" => 2 _ => 3 }',
  'let x = match 1 { -1 => 1 _ => 0 }',
  'let x = match 1 { 1 | 2 => 1 _ => 0 }',
  'type T = A { x: Int } | B\nlet x = match A { x: 1 } { A { y } => y B => 0 }',
  'type T = A { x: Int } | B\nlet x = match A { x: 1 } { A(q, r) => 1 _ => 0 }',
  'type T = A { x: Int } | B\nlet x = match A { x: 1 } { A { x: 5 } => 1 _ => 0 }',
  'type T = { x: Int }\nlet x = match T { x: 1 } { { x } => x }',
  'type T = { x: Int }\nlet x = match T { x: 1 } { T { x } => x T { x } => 0 }',
  // program order, foreign syntax, duplicate parameters, lengths, ConstructionError
  'fn g() -> Int = y\nprint(g())\nlet y = 1',
  'fn g() -> Int = y\nlet h = g\nlet y = 1\nprint(h())',
  'let y = 1\nfn g() -> Int = y\nlet y = "s"\nprint(g())\nfn k() -> String = y',
  'fn a() -> Int = b()\nfn b() -> Int = a() + z\nprint(a())\nlet z = 1',
  'for i in range(0, 3) { print(i) }\nwhile true { }\nreturn 1',
  "let c = 'x'\nlet d = 'unterminated\nlet e = ''",
  'print(1 < 2 < 3)\nprint(true and false or not true)\nlet x = 1\nx = 2',
  'fn f(a: Int, a: Int) -> Int = a\nlet g = fn(x, x) => 1\nextern fn h(p: Int, p: Int) -> Int',
  'let xs: List<Int, 2> = [1, 2, 3]\nfn f(ys: List<Int, 1>) -> Int = 0\nprint(f(ys: xs))',
  'type T = { a: Int where p(a) }\nfn p(n: Int) -> Bool = n > 0\nmatch T { a: 1 } { Success { value } => print(value.a) Error { message } => match message { ConstraintViolation { field } => print(field) _ => print(message) } }',
  'type ConstructionError = Oops\ntype T = { a: Int where p(a) }\nfn p(n: Int) -> Bool = n > 0\nlet t = T { a: 1 }',
  'let x: any = 1\nlet f = fn() => match x { n: Int => n s: String => 0 _ => 1 }\nprint(f())',
  'fn f(x: Int) = match x { 1 => "a" _ => "b" }',
  'let r: Result<Int, MathError> = Success(1)\nlet s: Result<String, IndexError> = Error("no")',
];

export interface Outcome {
  ok: boolean;
  /** Why the case failed (empty when ok). */
  failure: string;
  ms: number;
  compiled: boolean;
}

/** Runs one input through the front end and IR emission and checks the contract above. */
export function runCase(text: string, budgetMs = 2000): Outcome {
  const start = performance.now();
  let failure = '';
  let compiled = false;
  try {
    const file = new SourceFile('fuzz.osp', text);
    const r = checkSource(file);
    if (r.typed) {
      compiled = true;
      const ir = emitTyped(file, r.typed).print();
      if (!ir.includes('define')) failure = 'a checked program produced no function definitions';
    } else if (r.diagnostics.length === 0) {
      failure = 'the program failed to check without any diagnostic';
    } else {
      if (!r.diagnostics.some((d) => d.severity === 'error')) failure ||= 'a failed check reported no error';
      for (const d of r.diagnostics) {
        if (!(d.severity === 'error' ? /^E\d{4}$/ : /^W\d{4}$/).test(d.code)) failure ||= `${d.severity} without a code of its kind: ${d.code} ${d.message}`;
        if (!(d.span.start >= 0 && d.span.end >= d.span.start && d.span.start <= text.length && d.span.end <= text.length)) {
          failure ||= `diagnostic span [${d.span.start}, ${d.span.end}) is outside the file (${text.length} chars): ${d.message}`;
        }
      }
      if (!failure && !renderErrors(r).includes('error: could not compile')) failure = 'rendering lost the summary line';
    }
  } catch (e) {
    failure = e instanceof Error ? `${e.name}: ${e.message}\n${(e.stack ?? '').split('\n').slice(1, 6).join('\n')}` : String(e);
  }
  const ms = performance.now() - start;
  if (!failure && ms > budgetMs) failure = `took ${ms.toFixed(0)} ms (budget ${budgetMs} ms)`;
  return { ok: !failure, failure, ms, compiled };
}

/** The yardstick the fuzz round's time budget is measured against: how long the front end takes,
 *  right now on this machine, over every corpus program unmutated (about 0.9 s on an idle core,
 *  the same kind of work as the mutated cases). */
export function corpusYardstickMs(): number {
  const start = performance.now();
  for (const p of corpus()) runCase(p.text, Infinity);
  return performance.now() - start;
}

export interface FuzzCase {
  name: string;
  text: string;
}

/** The cases of one seeded round: every corpus program mutated `perProgram` times, plus `streams`
 *  random token streams. Deterministic for a given seed. */
export function* fuzzCases(seed: number, perProgram: number, streams: number): Generator<FuzzCase> {
  const r = rng(seed);
  for (const p of corpus()) {
    for (let k = 0; k < perProgram; k++) {
      const m = mutate(p.text, r);
      yield { name: `${p.name} #${k} [${m.applied.join(', ')}]`, text: m.text };
    }
  }
  for (let k = 0; k < streams; k++) yield { name: `random token stream #${k}`, text: randomTokens(r) };
}
