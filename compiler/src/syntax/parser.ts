// Pipeline position: tokens → untyped AST (syntax/ast.ts). A hand-written recursive-descent parser
// for the grammar of docs/guide/21-grammar.md. Newlines are insignificant, so statement boundaries come from
// the grammar alone; the two places where ANTLR's adaptive prediction decided a boundary by looking
// ahead are emulated with speculative parsing (`speculate`):
//   * inside a match arm, a binary operator whose right operand is followed by `=>` starts the next
//     arm (`1 => y  -1 => z`), it does not continue the body (docs/guide/02-lexical-structure.md#newlines-and-statement-boundaries);
//   * `match NAME { i: Int => … }` — NAME followed by `{ x:` is a construction only if a `{` follows
//     the complete construction.
// Syntax errors are reported as diagnostics; the parser resynchronises at the next statement keyword
// so several independent errors are reported in one run.

import { Code, type DiagnosticBag, type Label } from '../diagnostics/diagnostic.ts';
import { joinSpans, span, type Span } from '../source.ts';
import type {
  Arg, Binder, BinaryOp, Expr, ExternDecl, FieldDecl, FieldInit, FnDecl, Ident, InterpPart, MatchArm,
  ModuleDecl, Param, Pattern, Program, Stmt, TypeDecl, TypeExpr, VariantDecl,
} from './ast.ts';
import { describeToken, type Punct, type Token } from './token.ts';

class ParseError extends Error {}

/**
 * Deeper than this the later passes (all recursive over the tree) could exhaust the stack, so
 * the parser stops with one diagnostic instead (a stack overflow would be an internal error).
 * Every nesting level counts — brackets, blocks, lambdas, matches, unary operators, types,
 * patterns — and so does every operator of a chain (`a + b + c` is a tree two levels deep).
 */
export const MAX_NESTING = 256;

/** Thrown once the limit is reached: fatal, never caught by error recovery or speculation. */
class NestingLimit extends Error {}

const INT64_MAX = (1n << 63n) - 1n;

/** Binary operator levels, loosest first (docs/guide/03-values-and-types.md#operators-and-precedence, with && and ||). */
const BINARY_LEVELS: readonly (readonly BinaryOp[])[] = [
  ['||'],
  ['&&'],
  ['==', '!=', '<', '>', '<=', '>='],
  ['+', '-'],
  ['*', '/', '%'],
];

/** Closing brackets and the opener each one closes. */
const CLOSERS: ReadonlyMap<string, Punct> = new Map<string, Punct>([[')', '('], ['}', '{'], [']', '[']]);

function describeOpener(t: Token): string {
  const text = (t as { text: string }).text;
  return text === '{' ? 'block or braces' : text === '(' ? 'parenthesised part' : 'list';
}

/** `source` (the text the tokens came from) lets the parser see line breaks, which only matter
 *  for the optional operand of `yield` (docs/guide/16-fibers-and-channels.md). `sourceBase` is the offset of its first character
 *  in the tokens' spans (an imported file's place in the program-wide offset space). */
export function parseProgram(tokens: Token[], diags: DiagnosticBag, source: string | null = null, sourceBase = 0): Program {
  const p = new Parser(dropStrayDocComments(tokens), diags, source, sourceBase);
  try {
    return { stmts: p.parseStatements('eof') };
  } catch (e) {
    if (!(e instanceof NestingLimit)) throw e;
    return { stmts: [] };
  }
}

/**
 * `///` belongs only directly before `fn`, `extern fn`, `type` or `module` (docs/guide/02-lexical-structure.md#comments); anywhere else it
 * is degraded to an ordinary comment (a harmless extension).
 */
function dropStrayDocComments(tokens: Token[]): Token[] {
  return tokens.filter((t, i) => {
    if (t.kind !== 'doc') return true;
    let j = i;
    while (tokens[j]?.kind === 'doc') j++;
    const next = tokens[j];
    return next !== undefined && next.kind === 'keyword' && ['fn', 'type', 'extern', 'module'].includes(next.text) &&
      !(next.text === 'fn' && tokens[j + 1]?.kind === 'punct' && (tokens[j + 1] as { text: string }).text === '(');
  });
}

class Parser {
  private pos = 0;
  /** True while parsing the body of a match arm (not inside nested brackets). */
  private inArm = false;
  /** Set while parsing a match scrutinee (see the header comment). */
  private inScrutinee = false;
  /** Current tree depth (see MAX_NESTING). */
  depth = 0;

  constructor(
    private readonly tokens: Token[],
    private readonly diags: DiagnosticBag,
    private readonly sourceText: string | null = null,
    private readonly sourceBase = 0,
  ) {}

  // ---- token helpers -------------------------------------------------------------------------

  private peek(k = 0): Token {
    return this.tokens[Math.min(this.pos + k, this.tokens.length - 1)]!;
  }
  private next(): Token {
    const t = this.peek();
    if (t.kind !== 'eof') this.pos++;
    return t;
  }
  private isPunct(t: Token, p: Punct): boolean {
    return t.kind === 'punct' && t.text === p;
  }
  private atPunct(p: Punct, k = 0): boolean {
    return this.isPunct(this.peek(k), p);
  }
  private atKeyword(kw: string, k = 0): boolean {
    const t = this.peek(k);
    return t.kind === 'keyword' && t.text === kw;
  }
  private eatPunct(p: Punct): boolean {
    if (this.atPunct(p)) {
      this.pos++;
      return true;
    }
    return false;
  }
  private expectPunct(p: Punct, what?: string): Token {
    if (this.atPunct(p)) return this.next();
    const message = `expected '${p}'${what ? ' ' + what : ''}, found ${describeToken(this.peek())}`;
    const opener = CLOSERS.get(p) !== undefined ? this.unclosedOpener(p) : undefined;
    if (!opener) this.fail(message);
    // Point at the bracket that is never closed: at the end of the file it is the only place
    // worth showing; elsewhere it goes with the token that was found instead.
    if (this.peek().kind === 'eof') {
      this.fail(`this '${(opener as { text: string }).text}' is never closed`, opener.span, [
        `note: the file ends before the '${p}' that would close it`,
        `hint: add '${p}' where the ${describeOpener(opener)} should end`,
      ]);
    }
    this.fail(message, this.peek().span, [], [{ span: opener.span, message: `unclosed '${(opener as { text: string }).text}' opened here` }]);
  }

  /** The innermost opening bracket before the cursor that the closer `p` would match. */
  private unclosedOpener(p: Punct): Token | undefined {
    const open = CLOSERS.get(p)!;
    let depth = 0;
    for (let i = this.pos - 1; i >= 0; i--) {
      const t = this.tokens[i]!;
      if (this.isPunct(t, p)) depth++;
      else if (this.isPunct(t, open)) {
        if (depth === 0) return t;
        depth--;
      }
    }
    return undefined;
  }
  private expectIdent(what: string): Ident {
    const t = this.peek();
    if (t.kind === 'ident') {
      this.pos++;
      return { name: t.text, span: t.span };
    }
    if (t.kind === 'keyword') this.fail(`expected ${what}, found ${describeToken(t)} (a reserved word)`);
    this.fail(`expected ${what}, found ${describeToken(t)}`);
  }
  /** A field name: any identifier, or a keyword (`type`), after `{`, `,` or `.`. */
  private expectFieldName(): Ident {
    const t = this.peek();
    if (t.kind === 'ident' || t.kind === 'keyword') {
      this.pos++;
      return { name: t.text, span: t.span };
    }
    this.fail(`expected a field name, found ${describeToken(t)}`);
  }
  private isFieldNameToken(t: Token): boolean {
    return t.kind === 'ident' || t.kind === 'keyword';
  }
  /** One level deeper; past MAX_NESTING, reports once and abandons the parse. */
  private enter(): void {
    if (++this.depth <= MAX_NESTING) return;
    this.diags.error(Code.Syntax, this.peek().span, `this program is nested too deeply: more than ${MAX_NESTING} levels`, {
      label: 'the limit is reached here',
      notes: ['note: each bracket, block, lambda, match and unary operator is one level (a flat chain of operators or pipes is not nested)',
        'hint: split the expression with `let` bindings or helper functions'],
    });
    throw new NestingLimit();
  }

  private fail(message: string, at: Span = this.peek().span, notes: string[] = [], labels: Label[] = []): never {
    // An unterminated string ran to the end of the file: "found end of file" would be its echo.
    const echo = this.peek().kind === 'eof' &&
      this.diags.items.some((d) => d.code === Code.UnterminatedString || d.code === Code.UnterminatedInterpolation);
    if (!echo) this.diags.error(Code.Syntax, at, message, { notes, labels });
    throw new ParseError(message);
  }
  private prevEnd(): number {
    return this.tokens[Math.max(0, this.pos - 1)]!.span.end;
  }
  private spanFrom(start: number): Span {
    return span(start, Math.max(start, this.prevEnd()));
  }

  /** Runs `f`; on a parse error restores the position and the diagnostics and returns null. */
  private speculate<T>(f: () => T): T | null {
    const save = this.pos;
    const mark = this.diags.mark();
    const arm = this.inArm;
    const scr = this.inScrutinee;
    const depth = this.depth;
    try {
      return f();
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      this.depth = depth;
      this.pos = save;
      this.diags.rollback(mark);
      this.inArm = arm;
      this.inScrutinee = scr;
      return null;
    }
  }

  /** Runs `f` outside match-arm/scrutinee context (inside brackets the special rules stop). */
  private nested<T>(f: () => T): T {
    const arm = this.inArm;
    const scr = this.inScrutinee;
    this.inArm = false;
    this.inScrutinee = false;
    try {
      return f();
    } finally {
      this.inArm = arm;
      this.inScrutinee = scr;
    }
  }

  // ---- statements ----------------------------------------------------------------------------

  /** Statements up to `}` or end of file (the terminator is not consumed). */
  parseStatements(until: 'eof' | '}'): Stmt[] {
    const stmts: Stmt[] = [];
    while (true) {
      const t = this.peek();
      if (t.kind === 'eof') break;
      if (until === '}' && this.isPunct(t, '}')) break;
      const start = this.pos;
      const depth = this.depth;
      try {
        const s = this.parseStatement();
        if (s) stmts.push(s);
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
        this.depth = depth;
        this.synchronize(start, until);
      }
    }
    return stmts;
  }

  /** Skips to the next token that can start a statement at this nesting level. */
  private synchronize(start: number, until: 'eof' | '}'): void {
    if (this.pos === start) this.next();
    let depth = 0;
    while (true) {
      const t = this.peek();
      if (t.kind === 'eof') return;
      if (this.isPunct(t, '{') || this.isPunct(t, '(')) depth++;
      if (this.isPunct(t, '}') || this.isPunct(t, ')')) {
        if (depth === 0) {
          if (until === '}' && this.isPunct(t, '}')) return;
          this.next();
          continue;
        }
        depth--;
      }
      if (depth === 0 && (t.kind === 'doc' || (t.kind === 'keyword' && ['let', 'mut', 'fn', 'type', 'import', 'extern', 'module'].includes(t.text)))) {
        if (!(t.kind === 'keyword' && t.text === 'fn' && this.isPunct(this.peek(1), '('))) return;
      }
      this.next();
    }
  }

  private parseStatement(): Stmt | null {
    const doc: string[] = [];
    while (this.peek().kind === 'doc') {
      const d = this.next();
      if (d.kind === 'doc') doc.push(d.text);
    }
    const t = this.peek();
    if (t.kind === 'punct' && t.text === ';') {
      this.next();
      this.diags.error(Code.Syntax, t.span, "unexpected ';'", {
        notes: ['hint: Osprey has no statement separator; put the next statement on its own line or after a space'],
      });
      return null;
    }
    if (t.kind === 'keyword') {
      switch (t.text) {
        case 'let':
        case 'mut':
          return this.parseLet();
        case 'fn':
          if (this.peek(1).kind === 'ident') return this.parseFn(doc);
          break;
        case 'type':
          return this.parseTypeDecl(doc);
        case 'import':
          return this.parseImport();
        case 'extern':
          return this.parseExtern(doc);
        case 'module':
          return this.parseModule();
      }
    }
    if (t.kind === 'eof') return null;
    if (t.kind === 'keyword' && t.text === 'if') return this.foreignIf(t);
    if (t.kind === 'ident') {
      const foreign = this.foreignStatement(t);
      if (foreign !== undefined) return foreign;
    }
    const expr = this.parseExpr();
    return { kind: 'expr', expr, span: expr.span };
  }

  /** `if cond { … } else { … }` as a statement: one error with the `match` to write, and the
   *  whole construct (else-if chains included) skipped by brackets, so later statements are
   *  still checked. */
  private foreignIf(t: Token): null {
    this.diags.error(Code.Syntax, t.span, 'Osprey has no `if`', {
      label: 'choose between values with `match`',
      notes: ['hint: write `match cond { true => … false => … }`; a `match` is an expression, so it also replaces `if` … `else` as a value',
        'note: see docs/guide/19-coming-from-other-languages.md#if-and-else'],
    });
    for (;;) {
      this.next(); // `if`
      while (this.peek().kind !== 'eof' && !this.atPunct('{')) this.skipBalanced();
      if (this.atPunct('{')) this.skipBalanced();
      const e = this.peek();
      if (!((e.kind === 'ident' || e.kind === 'keyword') && e.text === 'else')) return null;
      this.next();
      if (this.atKeyword('if')) continue;
      if (this.atPunct('{')) this.skipBalanced();
      return null;
    }
  }

  /** Skips one token, or a whole bracketed group when the token opens one. */
  private skipBalanced(): void {
    const open = this.peek();
    this.next();
    const openText = open.kind === 'punct' ? open.text : '';
    const close = ({ '(': ')', '{': '}', '[': ']' } as Record<string, string>)[openText];
    if (!close) return;
    let depth = 1;
    while (depth > 0 && this.peek().kind !== 'eof') {
      const t = this.next();
      if (t.kind !== 'punct') continue;
      if (t.text === openText) depth++;
      else if (t.text === close) depth--;
    }
  }

  /**
   * Statements from other languages that Osprey spells differently (`for x in …`, `while …`,
   * `return e`, `x = 2`): one error that says what to write instead, then the rest is parsed and
   * dropped so it adds no cascade. Undefined otherwise (an ordinary expression statement follows).
   */
  private foreignStatement(t: Token & { kind: 'ident' }): Stmt | null | undefined {
    const next = this.peek(1);
    const startsOperand = this.startsOperand(next);
    const skipRest = (): null => {
      this.parseExpr();
      if (this.atPunct('{')) this.parseExpr();
      return null;
    };
    if (t.text === 'for' && next.kind === 'ident' && this.peek(2).kind === 'ident' && (this.peek(2) as { text: string }).text === 'in') {
      const loopVar = next.text;
      this.diags.error(Code.Syntax, span(t.span.start, this.peek(2).span.end), 'Osprey has no `for` loop', {
        label: 'a loop is written with an iterator or recursion',
        notes: [`hint: iterate with a pipe: \`range(0, n) |> forEach(fn(${loopVar}) => …)\` (also \`map\`, \`filter\`, \`fold\`), or write a recursive function`,
          'note: see docs/guide/19-coming-from-other-languages.md#loops'],
      });
      this.pos += 3;
      return skipRest();
    }
    if ((t.text === 'while' || t.text === 'loop') && (startsOperand || this.isPunct(next, '{'))) {
      this.diags.error(Code.Syntax, t.span, `Osprey has no \`${t.text}\` loop`, {
        label: 'a loop is written with recursion or an iterator',
        notes: ['hint: write a recursive function (self tail calls run in constant stack space), or iterate with `range(a, b) |> forEach(fn(i) => …)`',
          'note: see docs/guide/19-coming-from-other-languages.md#loops'],
      });
      this.next();
      if (this.atPunct('{')) this.parseExpr();
      else skipRest();
      return null;
    }
    if (t.text === 'return' && startsOperand) {
      this.diags.error(Code.Syntax, t.span, 'Osprey has no `return`', {
        label: 'remove this word',
        notes: ['note: the last expression of a function body or block is its value',
          'hint: to choose between values early, use `match cond { true => … false => … }`',
          'note: see docs/guide/19-coming-from-other-languages.md#return'],
      });
      this.next();
      const expr = this.parseExpr();
      return { kind: 'expr', expr, span: expr.span };
    }
    if (this.isPunct(next, '=')) {
      this.diags.error(Code.Syntax, next.span, `Osprey has no assignment: '${t.text}' cannot be changed`, {
        label: 'assignment is not an expression or statement',
        notes: [`hint: bind a new value with \`let ${t.text} = …\`; a later \`let\` shadows the earlier binding for the code after it (\`mut\` bindings cannot be reassigned either)`,
          'note: see docs/guide/19-coming-from-other-languages.md#assignment-and-mutable-state'],
      });
      this.pos += 2;
      this.parseExpr();
      return null;
    }
    return undefined;
  }

  private parseLet(): Stmt {
    const kw = this.next();
    const mutable = kw.kind === 'keyword' && kw.text === 'mut';
    const name = this.expectIdent('a name after `let`');
    let type: TypeExpr | null = null;
    if (this.eatPunct(':')) type = this.parseType();
    this.expectPunct('=', 'in `let` declaration');
    const value = this.parseExpr();
    return { kind: 'let', mutable, name, type, value, span: this.spanFrom(kw.span.start) };
  }

  private parseParams(close: Punct): Param[] {
    const params: Param[] = [];
    if (this.atPunct(close)) return params;
    do {
      const name = this.expectIdent('a parameter name');
      let type: TypeExpr | null = null;
      if (this.eatPunct(':')) type = this.parseType();
      params.push({ name, type, span: this.spanFrom(name.span.start) });
    } while (this.eatPunct(','));
    return params;
  }

  private parseFn(doc: string[]): FnDecl {
    const kw = this.next();
    const name = this.expectIdent('a function name');
    this.expectPunct('(', 'after the function name');
    const params = this.nested(() => this.parseParams(')'));
    this.expectPunct(')', 'to close the parameter list');
    let returnType: TypeExpr | null = null;
    if (this.eatPunct('->')) returnType = this.parseType();
    let body: Expr;
    let blockBody = false;
    if (this.eatPunct('=')) {
      body = this.parseExpr();
    } else if (this.atPunct('{')) {
      body = this.parseBlock();
      blockBody = true;
    } else {
      this.fail(`expected '=' or '{' to start the body of '${name.name}', found ${describeToken(this.peek())}`);
    }
    return { kind: 'fn', name, params, returnType, body, blockBody, doc, span: this.spanFrom(kw.span.start) };
  }

  private parseExtern(doc: string[]): ExternDecl {
    const kw = this.next();
    if (!this.atKeyword('fn')) this.fail(`expected 'fn' after 'extern', found ${describeToken(this.peek())}`);
    this.next();
    const name = this.expectIdent('a function name');
    this.expectPunct('(');
    const params = this.parseParams(')');
    this.expectPunct(')');
    let returnType: TypeExpr | null = null;
    if (this.eatPunct('->')) returnType = this.parseType();
    return { kind: 'extern', name, params, returnType, doc, span: this.spanFrom(kw.span.start) };
  }

  private parseImport(): Stmt {
    const kw = this.next();
    const path: Ident[] = [this.expectIdent('a module name')];
    while (this.atPunct('.') && this.peek(1).kind === 'ident') {
      this.next();
      path.push(this.expectIdent('a module name'));
    }
    return { kind: 'import', path, span: this.spanFrom(kw.span.start) };
  }

  private parseModule(): ModuleDecl {
    const kw = this.next();
    const name = this.expectIdent('a module name');
    this.expectPunct('{');
    const body = this.parseStatements('}');
    this.expectPunct('}');
    return { kind: 'module', name, body, span: this.spanFrom(kw.span.start) };
  }

  private parseTypeDecl(doc: string[]): TypeDecl {
    const kw = this.next();
    const name = this.expectIdent('a type name');
    const typeParams: Ident[] = [];
    if (this.eatPunct('<')) {
      do typeParams.push(this.expectIdent('a type parameter')); while (this.eatPunct(','));
      this.expectPunct('>');
    }
    this.expectPunct('=', 'in type declaration');
    if (this.atPunct('{')) {
      this.next();
      const fields = this.parseFieldDecls();
      this.expectPunct('}', 'to close the record type');
      return { kind: 'type', name, typeParams, record: fields, variants: [], doc, span: this.spanFrom(kw.span.start) };
    }
    const variants: VariantDecl[] = [];
    this.eatPunct('|');
    do {
      const vname = this.expectIdent('a constructor name');
      let fields: FieldDecl[] | null = null;
      // `Ctor { f: T }` or `Ctor {}`; a `{` not followed by a field is the next statement's block.
      if (this.atPunct('{') && (this.atPunct('}', 1) || (this.isFieldNameToken(this.peek(1)) && this.atPunct(':', 2)))) {
        this.next();
        fields = this.parseFieldDecls();
        this.expectPunct('}', 'to close the constructor fields');
      }
      variants.push({ name: vname, fields, span: this.spanFrom(vname.span.start) });
    } while (this.eatPunct('|'));
    return { kind: 'type', name, typeParams, record: null, variants, doc, span: this.spanFrom(kw.span.start) };
  }

  private parseFieldDecls(): FieldDecl[] {
    const fields: FieldDecl[] = [];
    if (this.atPunct('}')) return fields;
    do {
      if (this.atPunct('}')) break; // trailing comma
      const name = this.expectFieldName();
      this.expectPunct(':', `after field name '${name.name}'`);
      const type = this.parseType();
      let constraint: Expr | null = null;
      if (this.atKeyword('where')) {
        this.next();
        constraint = this.nested(() => this.parsePostfix());
      }
      fields.push({ name, type, constraint, span: this.spanFrom(name.span.start) });
    } while (this.eatPunct(','));
    return fields;
  }

  // ---- types ---------------------------------------------------------------------------------

  parseType(): TypeExpr {
    this.enter();
    try {
      return this.parseTypeAt();
    } finally {
      this.depth--;
    }
  }

  private parseTypeAt(): TypeExpr {
    const t = this.peek();
    const start = t.span.start;
    // `(A, B) -> R` and the WebSocket chapter's `fn(A, B) -> R` are the same type (docs/guide/06-lambdas-and-closures.md#functions-are-values).
    if (this.isPunct(t, '(') || (t.kind === 'keyword' && t.text === 'fn' && this.atPunct('(', 1))) {
      if (t.kind === 'keyword') this.next();
      this.expectPunct('(');
      const params: TypeExpr[] = [];
      if (!this.atPunct(')')) {
        do params.push(this.parseType()); while (this.eatPunct(','));
      }
      this.expectPunct(')', 'to close the parameter types');
      this.expectPunct('->', 'in function type');
      const ret = this.parseType();
      return { kind: 'fn', params, ret, span: this.spanFrom(start) };
    }
    const name = this.expectIdent('a type');
    const args: TypeExpr[] = [];
    if (this.atPunct('<')) {
      this.next();
      do {
        // `List<T, N>` (docs/guide/03-values-and-types.md): the length argument is an integer literal, kept as a named type
        // whose name is its digits (resolve.ts accepts it only there).
        const n = this.peek();
        if (n.kind === 'int') {
          this.next();
          args.push({ kind: 'named', name: { name: n.text, span: n.span }, args: [], span: n.span });
        } else args.push(this.parseType());
      } while (this.eatPunct(','));
      this.expectPunct('>', 'to close the type arguments');
    }
    return { kind: 'named', name, args, span: this.spanFrom(start) };
  }

  // ---- expressions ---------------------------------------------------------------------------

  parseExpr(): Expr {
    if (this.atKeyword('match')) return this.parseMatch();
    if (this.atKeyword('select')) return this.parseSelect();
    return this.parseBinary(0);
  }

  private parseMatch(): Expr {
    this.enter();
    try {
      return this.parseMatchAt();
    } finally {
      this.depth--;
    }
  }

  /** `select { PATTERN => EXPR … }` (docs/guide/16-fibers-and-channels.md): arms parsed like a match's. */
  private parseSelect(): Expr {
    this.enter();
    try {
      const kw = this.next();
      this.expectPunct('{', 'to start the select arms');
      const arms = this.parseArms();
      const close = this.expectPunct('}', 'to close the select');
      if (arms.length === 0) {
        this.diags.error(Code.Syntax, span(kw.span.start, close.span.end), 'a select needs at least one arm');
      }
      return { kind: 'select', arms, span: span(kw.span.start, close.span.end) };
    } finally {
      this.depth--;
    }
  }

  private parseArms(): MatchArm[] {
    const arms: MatchArm[] = [];
    this.nested(() => {
      while (!this.atPunct('}') && this.peek().kind !== 'eof') {
        const pattern = this.parsePattern();
        this.expectPunct('=>', 'after the pattern');
        const body = this.nested(() => {
          this.inArm = true;
          return this.parseExpr();
        });
        arms.push({ pattern, body, span: joinSpans(pattern.span, body.span) });
        if (this.atPunct(',')) {
          this.fail("arms are not separated by ','", this.peek().span, ['hint: put each arm on its own line']);
        }
      }
    });
    return arms;
  }

  private parseMatchAt(): Expr {
    const kw = this.next();
    const scrutinee = this.nested(() => {
      this.inScrutinee = true;
      return this.parseBinary(0);
    });
    this.expectPunct('{', 'to start the match arms');
    const arms: MatchArm[] = [];
    this.nested(() => {
      while (!this.atPunct('}') && this.peek().kind !== 'eof') {
        const pattern = this.parsePattern();
        this.expectPunct('=>', 'after the pattern');
        const body = this.nested(() => {
          this.inArm = true;
          return this.parseExpr();
        });
        arms.push({ pattern, body, span: joinSpans(pattern.span, body.span) });
        if (this.atPunct(',')) {
          this.fail("match arms are not separated by ','", this.peek().span, ['hint: put each arm on its own line']);
        }
      }
    });
    const close = this.expectPunct('}', 'to close the match');
    if (arms.length === 0) {
      this.diags.error(Code.Syntax, span(kw.span.start, close.span.end), 'a match needs at least one arm');
    }
    return { kind: 'match', scrutinee, arms, span: span(kw.span.start, close.span.end) };
  }

  private parseBinary(level: number): Expr {
    if (level >= BINARY_LEVELS.length) return this.parseUnary();
    const ops = BINARY_LEVELS[level]!;
    let left = this.parseBinary(level + 1);
    const depth = this.depth;
    try {
      while (true) {
        const t = this.peek();
        const spelled = this.spelledOperator(t, ops);
        if (!spelled && (t.kind !== 'punct' || !(ops as readonly string[]).includes(t.text))) break;
        if (this.inArm && this.startsNextArm(level)) break;
        this.next();
        const right = this.parseBinary(level + 1);
        const op = spelled ?? ((t as { text: string }).text as BinaryOp);
        left = { kind: 'binary', op, opSpan: t.span, left, right, span: joinSpans(left.span, right.span) };
      }
    } finally {
      this.depth = depth;
    }
    return left;
  }

  /**
   * `a and b` / `a or b` written between two operands: reported with the Osprey spelling and then
   * parsed as `&&` / `||`, so the rest of the expression is still checked.
   */
  private spelledOperator(t: Token, ops: readonly BinaryOp[]): BinaryOp | null {
    if (t.kind !== 'ident' || (t.text !== 'and' && t.text !== 'or')) return null;
    const op: BinaryOp = t.text === 'and' ? '&&' : '||';
    if (!ops.includes(op) || !this.startsOperand(this.peek(1))) return null;
    this.diags.error(Code.Syntax, t.span, `'${t.text}' is not an operator in Osprey`, {
      label: `write \`${op}\``,
      notes: [`hint: logical ${t.text} is written \`${op}\`: \`a ${op} b\``],
    });
    return op;
  }

  /** A token that begins an operand (a call's `(` excluded: `and(x)` may be a function). */
  private startsOperand(t: Token): boolean {
    return t.kind === 'ident' || t.kind === 'int' || t.kind === 'string' || t.kind === 'underscore' ||
      (t.kind === 'keyword' && ['true', 'false', 'match', 'fn'].includes(t.text)) || this.isPunct(t, '!') || this.isPunct(t, '[');
  }

  /** Inside a match arm: does the operator at the cursor begin the next arm's pattern? */
  private startsNextArm(level: number): boolean {
    const save = this.pos;
    const result = this.speculate(() => {
      this.next();
      this.parseBinary(level + 1);
      return this.atPunct('=>');
    });
    this.pos = save;
    return result === true;
  }

  private parseUnary(): Expr {
    this.enter();
    try {
      return this.parseUnaryAt();
    } finally {
      this.depth--;
    }
  }

  private parseUnaryAt(): Expr {
    const t = this.peek();
    if (t.kind === 'ident' && t.text === 'not' && this.startsOperand(this.peek(1)) && this.peek(1).kind !== 'underscore') {
      this.diags.error(Code.Syntax, t.span, "'not' is not an operator in Osprey", {
        label: 'write `!`',
        notes: ['hint: negation is written `!`: `!a`'],
      });
      this.next();
      const operand = this.parsePipe();
      return { kind: 'unary', op: '!', operand, span: joinSpans(t.span, operand.span) };
    }
    if (t.kind === 'keyword' && t.text === 'await') {
      // `await f` / `await(f)`: a prefix operator over the whole pipe chain (docs/guide/03-values-and-types.md#operators-and-precedence).
      this.next();
      const fiber = this.parsePipe();
      return { kind: 'await', fiber, span: joinSpans(t.span, fiber.span) };
    }
    if (t.kind === 'punct' && (t.text === '-' || t.text === '+' || t.text === '!')) {
      this.next();
      const operand = this.parsePipe();
      // Fold `-LITERAL` so that -9223372036854775808 is expressible.
      if (t.text === '-' && operand.kind === 'int' && operand.span.start === t.span.end) {
        return { kind: 'int', value: -operand.value, span: joinSpans(t.span, operand.span) };
      }
      this.checkIntRange(operand);
      return { kind: 'unary', op: t.text, operand, span: joinSpans(t.span, operand.span) };
    }
    const e = this.parsePipe();
    this.checkIntRange(e);
    return e;
  }

  private checkIntRange(e: Expr): void {
    if (e.kind === 'int' && e.value > INT64_MAX) {
      this.diags.error(Code.BadNumber, e.span, `integer literal ${e.value} does not fit in a 64-bit Int`, { label: 'too large' });
    }
  }

  private parsePipe(): Expr {
    let value = this.parsePostfix();
    const depth = this.depth;
    try {
      while (this.atPunct('|>')) {
        this.next();
        const target = this.parsePostfix();
        value = { kind: 'pipe', value, target, span: joinSpans(value.span, target.span) };
      }
    } finally {
      this.depth = depth;
    }
    return value;
  }

  /** primary ('.' name)* ('(' args ')')? — at most one call directly on a primary (docs/guide/03-values-and-types.md#operators-and-precedence). */
  private parsePostfix(): Expr {
    let e = this.parsePrimary();
    let called = false;
    const depth = this.depth; // restored on return; error recovery restores it otherwise
    while (true) {
      if (this.atPunct('.') && this.isFieldNameToken(this.peek(1))) {
        this.enter();
        this.next();
        const name = this.expectFieldName();
        e = { kind: 'field', object: e, name, span: joinSpans(e.span, name.span) };
        called = false;
        continue;
      }
      if (!called && this.atPunct('(')) {
        const open = this.next();
        const args = this.nested(() => this.parseArgs());
        const close = this.expectPunct(')', 'to close the argument list');
        e = { kind: 'call', callee: e, args, argsSpan: span(open.span.start, close.span.end), span: span(e.span.start, close.span.end) };
        called = true;
        continue;
      }
      this.depth = depth;
      return e;
    }
  }

  private parseArgs(): Arg[] {
    const args: Arg[] = [];
    if (this.atPunct(')')) return args;
    let named: boolean | null = null;
    do {
      const t = this.peek();
      const isNamed = t.kind === 'ident' && this.atPunct(':', 1);
      if (named !== null && named !== isNamed) {
        this.fail('cannot mix named and positional arguments in one call', t.span, [
          'hint: name every argument (`f(a: 1, b: 2)`) or none',
        ]);
      }
      named = isNamed;
      if (isNamed && t.kind === 'ident') {
        this.next();
        this.next();
        const value = this.parseExpr();
        args.push({ name: { name: t.text, span: t.span }, value, span: joinSpans(t.span, value.span) });
      } else {
        const value = this.parseExpr();
        args.push({ name: null, value, span: value.span });
      }
    } while (this.eatPunct(','));
    return args;
  }

  private parsePrimary(): Expr {
    const t = this.peek();
    switch (t.kind) {
      case 'int':
        this.next();
        return { kind: 'int', value: t.value, span: t.span };
      case 'string':
        this.next();
        return this.stringExpr(t);
      case 'keyword':
        if (t.text === 'true' || t.text === 'false') {
          this.next();
          return { kind: 'bool', value: t.text === 'true', span: t.span };
        }
        if (t.text === 'fn' && this.atPunct('(', 1)) return this.parseLambda();
        if (t.text === 'match') return this.parseMatch();
        if (t.text === 'select') return this.parseSelect();
        if (t.text === 'spawn') {
          // `spawn` takes the whole following expression: `spawn f(1) + 2` is `spawn (f(1) + 2)`.
          this.next();
          const body = this.nested(() => this.parseExpr());
          return { kind: 'spawn', body, span: joinSpans(t.span, body.span) };
        }
        if (t.text === 'await') {
          this.next();
          const fiber = this.parsePipe();
          return { kind: 'await', fiber, span: joinSpans(t.span, fiber.span) };
        }
        if (t.text === 'yield') {
          this.next();
          // `yield e` when an expression follows on the same line; a bare `yield` otherwise.
          const n = this.peek();
          if (this.startsExpression(n) && !this.lineBreakBetween(t.span.end, n.span.start)) {
            const value = this.nested(() => this.parseExpr());
            return { kind: 'yield', value, span: joinSpans(t.span, value.span) };
          }
          return { kind: 'yield', value: null, span: t.span };
        }
        if (t.text === 'send' || t.text === 'recv') {
          this.next();
          this.expectPunct('(', `after '${t.text}' (it is written ${t.text === 'send' ? 'send(channel, value)' : 'recv(channel)'})`);
          const channel = this.nested(() => this.parseExpr());
          let value: Expr | null = null;
          if (t.text === 'send') {
            this.expectPunct(',', 'between the channel and the value of send(channel, value)');
            value = this.nested(() => this.parseExpr());
          }
          const close = this.expectPunct(')', `to close ${t.text}(…)`);
          const sp = span(t.span.start, close.span.end);
          return value ? { kind: 'send', channel, value, span: sp } : { kind: 'recv', channel, span: sp };
        }
        if (t.text === 'if') {
          this.fail('Osprey has no `if`', t.span, [
            'hint: write `match cond { true => … false => … }`; a `match` is an expression, so it also replaces `if` … `else` as a value',
            'note: see docs/guide/19-coming-from-other-languages.md#if-and-else',
          ]);
        }
        this.fail(`expected an expression, found ${describeToken(t)}`);
      // eslint-disable-next-line no-fallthrough
      case 'ident':
        return this.parseIdentPrimary();
      case 'punct':
        if (t.text === '(') {
          this.next();
          const e = this.nested(() => this.parseExpr());
          this.expectPunct(')', 'to close the parenthesis');
          return e;
        }
        if (t.text === '{') return this.parseBlock();
        if (t.text === '|' || t.text === '||') return this.parseLambda();
        if (t.text === '[') {
          this.next();
          const elements: Expr[] = [];
          this.nested(() => {
            if (!this.atPunct(']')) {
              do elements.push(this.parseExpr()); while (this.eatPunct(','));
            }
          });
          this.expectPunct(']', 'to close the list');
          return { kind: 'list', elements, span: this.spanFrom(t.span.start) };
        }
        break;
      default:
        break;
    }
    this.fail(`expected an expression, found ${describeToken(t)}`);
  }

  /** Can `t` begin an expression (for the optional operand of `yield`)? */
  private startsExpression(t: Token): boolean {
    switch (t.kind) {
      case 'int':
      case 'string':
      case 'ident':
        return true;
      case 'keyword':
        return ['true', 'false', 'fn', 'match', 'select', 'spawn', 'yield', 'await', 'send', 'recv'].includes(t.text);
      case 'punct':
        return ['(', '[', '{', '|', '-', '!'].includes(t.text);
      default:
        return false;
    }
  }

  /** Whether the source text between two offsets contains a line break. */
  private lineBreakBetween(from: number, to: number): boolean {
    return this.sourceText !== null && /[\n\r]/.test(this.sourceText.slice(from - this.sourceBase, to - this.sourceBase));
  }

  private stringExpr(t: Extract<Token, { kind: 'string' }>): Expr {
    if (!t.interpolated) {
      const text = t.parts.map((p) => (p.kind === 'text' ? p.value : '')).join('');
      return { kind: 'string', value: text, span: t.span };
    }
    const parts: InterpPart[] = [];
    for (const p of t.parts) {
      if (p.kind === 'text') {
        parts.push({ kind: 'text', value: p.value, span: p.span });
        continue;
      }
      const sub = new Parser(p.tokens, this.diags, this.sourceText, this.sourceBase);
      sub.depth = this.depth;
      try {
        if (sub.peek().kind === 'eof') sub.fail('empty `${}` in string literal', p.span);
        const expr = sub.parseExpr();
        if (sub.peek().kind !== 'eof') sub.fail(`unexpected ${describeToken(sub.peek())} in \`\${…}\``);
        parts.push({ kind: 'expr', expr, span: p.span });
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
        // The sub-parser's end of input is the `}` that closes `${…}`, not the end of the file.
        const last = this.diags.items[this.diags.items.length - 1];
        if (last) last.message = last.message.replace('found end of file', 'found the `}` that ends `${…}`');
        parts.push({ kind: 'text', value: '', span: p.span });
      }
    }
    return { kind: 'interp', parts, span: t.span };
  }

  private parseIdentPrimary(): Expr {
    const t = this.next() as Extract<Token, { kind: 'ident' }>;
    const ident: Ident = { name: t.text, span: t.span };
    // `xs[0]` (safe indexing: a literal index only).
    if (this.atPunct('[') && this.peek(1).kind === 'int' && this.atPunct(']', 2)) {
      this.next();
      const idx = this.next() as Extract<Token, { kind: 'int' }>;
      this.next();
      return { kind: 'index', name: ident, index: idx.value, span: this.spanFrom(t.span.start) };
    }
    // A name glued to `[` (no space or line break between) is meant as an index; any other index
    // than a literal would otherwise parse as `xs` followed by a separate list `[i]` and fail later
    // with an unrelated message. `xs [i]` and `xs` newline `[i]` stay a name and a list literal.
    if (this.atPunct('[') && this.peek().span.start === t.span.end) return this.parseComputedIndex(ident);
    // Construction / update: NAME ('<' types '>')? '{' field ':' …
    if (this.atPunct('<') || this.atPunct('{')) {
      const save = this.pos;
      const c = this.speculate(() => {
        const typeArgs: TypeExpr[] = [];
        if (this.eatPunct('<')) {
          do typeArgs.push(this.parseType()); while (this.eatPunct(','));
          this.expectPunct('>');
        }
        // `Name<T> { }` (no fields) is a construction too: no comparison ends in an empty block.
        const emptyWithTypeArgs = typeArgs.length > 0 && this.atPunct('{') && this.atPunct('}', 1);
        if (!emptyWithTypeArgs && !(this.atPunct('{') && this.isFieldNameToken(this.peek(1)) && this.atPunct(':', 2))) {
          throw new ParseError('not a construction');
        }
        return this.parseConstruction(ident, typeArgs);
      });
      if (c !== null) {
        if (!this.inScrutinee || this.atPunct('{')) return c;
        this.pos = save;
      }
    }
    return { kind: 'ident', name: t.text, span: t.span };
  }

  /**
   * `xs[i]`, `xs[n - 1]`, `xs[]`: reports that only a literal index exists and goes on parsing after
   * the `]`, so one mistake costs one diagnostic and the statements after it are still checked for
   * syntax. The node returned never reaches the checker: a syntax error ends the compilation there.
   */
  private parseComputedIndex(name: Ident): Expr {
    const open = this.next();
    const contents: Expr[] = [];
    this.nested(() => {
      if (!this.atPunct(']')) {
        do contents.push(this.parseExpr()); while (this.eatPunct(','));
      }
    });
    const close = this.expectPunct(']', 'to close the list index');
    const first = contents[0];
    const last = contents[contents.length - 1];
    const at = first && last ? joinSpans(first.span, last.span) : joinSpans(open.span, close.span);
    const text = this.sourceText === null || contents.length === 0 ? null : this.sourceText.slice(at.start - this.sourceBase, at.end - this.sourceBase);
    // Echo the user's index when it is short enough to read inside the message.
    const written = text !== null && text.length <= 40 && !/[\n\r]/.test(text) ? text : null;
    const negative = contents.length === 1 && first !== undefined &&
      ((first.kind === 'int' && first.value < 0n) || (first.kind === 'unary' && first.op === '-' && first.operand.kind === 'int'));
    const position = contents.length === 1 && !negative && written !== null ? written : 'i';
    const what = contents.length === 0 ? 'an empty index' : contents.length > 1 ? 'more than one index' : negative ? 'a negative index' : 'a computed index';
    this.diags.error(Code.Syntax, at, `a list index must be an integer literal (\`${name.name}[0]\`); ${what} like \`${name.name}[${written ?? (contents.length === 0 ? '' : '…')}]\` is not part of the language`, {
      label: contents.length === 0 ? 'no index' : contents.length > 1 ? 'one integer literal only' : negative ? 'indices count from 0' : 'not an integer literal',
      notes: [
        `hint: to visit every element, pass the list to an iteration function: \`${name.name} |> forEach(print)\`, \`map\`, \`filter\` or \`fold\``,
        `hint: to pick an element by a position computed at run time, match on the position: \`match ${position} { 0 => ${name.name}[0]  1 => ${name.name}[1]  _ => … }\``,
        'note: see docs/guide/11-lists-and-iteration.md#safe-indexing',
      ],
    });
    return { kind: 'index', name, index: 0n, span: this.spanFrom(name.span.start) };
  }

  private parseConstruction(name: Ident, typeArgs: TypeExpr[]): Expr {
    this.expectPunct('{');
    const fields: FieldInit[] = [];
    this.nested(() => {
      do {
        if (this.atPunct('}')) break;
        const fname = this.expectFieldName();
        this.expectPunct(':', `after field name '${fname.name}'`);
        const value = this.parseExpr();
        fields.push({ name: fname, value, span: joinSpans(fname.span, value.span) });
      } while (this.eatPunct(','));
    });
    this.expectPunct('}', 'to close the construction');
    return { kind: 'construct', name, typeArgs, fields, span: this.spanFrom(name.span.start) };
  }

  private parseLambda(): Expr {
    const t = this.next();
    let params: Param[] = [];
    let returnType: TypeExpr | null = null;
    if (t.kind === 'keyword') {
      this.expectPunct('(');
      params = this.nested(() => this.parseParams(')'));
      this.expectPunct(')');
      if (this.eatPunct('->')) returnType = this.parseType();
    } else if (this.isPunct(t, '|')) {
      params = this.nested(() => this.parseParams('|'));
      this.expectPunct('|', 'to close the lambda parameters');
    }
    this.expectPunct('=>', 'before the lambda body', );
    const body = this.parseExpr();
    return { kind: 'lambda', params, returnType, body, span: joinSpans(t.span, body.span) };
  }

  private parseBlock(): Expr {
    const open = this.expectPunct('{');
    const stmts = this.nested(() => this.parseStatements('}'));
    const close = this.expectPunct('}', 'to close the block');
    return { kind: 'block', stmts, span: span(open.span.start, close.span.end) };
  }

  // ---- patterns ------------------------------------------------------------------------------

  private parseBinder(): Binder {
    const t = this.peek();
    if (t.kind === 'underscore') {
      this.next();
      return { name: null, span: t.span };
    }
    const id = this.expectFieldName();
    return { name: id.name, span: id.span };
  }

  private parseBinderList(): Binder[] {
    this.expectPunct('{');
    const fields: Binder[] = [];
    if (!this.atPunct('}')) {
      do fields.push(this.parseBinder()); while (this.eatPunct(','));
    }
    this.expectPunct('}', 'to close the field pattern');
    return fields;
  }

  parsePattern(): Pattern {
    this.enter();
    try {
      return this.parsePatternAt();
    } finally {
      this.depth--;
    }
  }

  private parsePatternAt(): Pattern {
    const t = this.peek();
    const start = t.span.start;
    if (t.kind === 'underscore') {
      this.next();
      return { kind: 'wildcard', span: t.span };
    }
    if (t.kind === 'int') {
      this.next();
      return { kind: 'int', value: t.value, span: t.span };
    }
    if (this.isPunct(t, '-') && this.peek(1).kind === 'int') {
      this.next();
      const n = this.next() as Extract<Token, { kind: 'int' }>;
      return { kind: 'int', value: -n.value, span: this.spanFrom(start) };
    }
    if (t.kind === 'string') {
      this.next();
      if (t.interpolated) this.fail('an interpolated string cannot be a pattern', t.span);
      return { kind: 'string', value: t.parts.map((p) => (p.kind === 'text' ? p.value : '')).join(''), span: t.span };
    }
    if (t.kind === 'keyword' && (t.text === 'true' || t.text === 'false')) {
      this.next();
      return { kind: 'bool', value: t.text === 'true', span: t.span };
    }
    if (this.isPunct(t, '{')) {
      const fields = this.parseBinderList();
      return { kind: 'structural', name: null, fields, span: this.spanFrom(start) };
    }
    if (t.kind === 'ident') {
      this.next();
      const name: Ident = { name: t.text, span: t.span };
      if (this.atPunct(':')) {
        this.next();
        if (this.atPunct('{')) {
          const fields = this.parseBinderList();
          return { kind: 'structural', name, fields, span: this.spanFrom(start) };
        }
        const type = this.parseType();
        return { kind: 'typed', name, type, span: this.spanFrom(start) };
      }
      if (this.atPunct('{')) {
        const fields = this.parseBinderList();
        return { kind: 'ctorFields', ctor: name, fields, span: this.spanFrom(start) };
      }
      if (this.atPunct('(')) {
        this.next();
        const args: Pattern[] = [];
        if (!this.atPunct(')')) {
          do args.push(this.parsePattern()); while (this.eatPunct(','));
        }
        this.expectPunct(')', 'to close the constructor pattern');
        return { kind: 'ctorArgs', ctor: name, args, span: this.spanFrom(start) };
      }
      const b = this.peek();
      if (b.kind === 'ident' || b.kind === 'underscore') {
        this.next();
        return {
          kind: 'ctorBinder',
          ctor: name,
          binder: { name: b.kind === 'ident' ? b.text : null, span: b.span },
          span: this.spanFrom(start),
        };
      }
      return { kind: 'name', name, span: t.span };
    }
    this.fail(`expected a pattern, found ${describeToken(t)}`);
  }
}
