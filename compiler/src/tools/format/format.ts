// Pipeline position: a tool beside the compiler, not a compiler pass. Source text → canonical
// source text, for `osprey fmt` and the language server's formatting request.
//
// The formatter works on the compiler's own token stream (syntax/lexer.ts, with comments kept as
// trivia) and refuses a file the parser rejects, so it never guesses at broken code. Because
// newlines are insignificant in Osprey (the parser takes statement boundaries from the grammar
// alone), the formatter only ever changes whitespace: the token sequence of its output is checked
// to be identical to the input's, so a formatted program means exactly what it meant before.
//
// The layout, in one place:
//   * line breaks are the author's: a token that started a line still starts one, and no line is
//     joined or split; runs of blank lines become one, and none is kept at the start or end of the
//     file, directly after an opening bracket or directly before a closing one;
//   * indentation is 4 spaces per open bracket — only the last bracket opened on a line indents the
//     lines after it, so `f(fn(x) => {` indents its body once — plus one level for a continuation
//     line: a line that starts with a binary operator, `|>`, `|`, `.`, `=`, `=>` or `->`, or whose
//     previous line ended with one of them (or with `:`);
//   * spacing inside a line is fixed by the pair of neighbouring tokens (`f(a, b)`, `xs[0]`,
//     `a + b`, `-x`, `x: Int`, `Point { x: 1 }`, `Result<Int, String>`, `fn(x) => x`, `r.field`);
//   * string literals (interpolations included) and comments are copied byte for byte (a golden
//     program's `// expect: ` line may end in a meaningful space); a comment after code keeps its
//     line, one space after the code;
//   * the file ends with exactly one newline.

import { DiagnosticBag, ice, type Diagnostic } from '../../diagnostics/diagnostic.ts';
import type { Span } from '../../source.ts';
import { lex } from '../../syntax/lexer.ts';
import { parseProgram } from '../../syntax/parser.ts';
import type { Token } from '../../syntax/token.ts';

export type FormatResult =
  | { ok: true; text: string; changed: boolean }
  /** The source does not lex or parse: these are the compiler's own diagnostics for it. */
  | { ok: false; diagnostics: Diagnostic[] };

const INDENT = '    ';

/** A token or a comment, with its source text and how many line breaks precede it. */
interface Piece {
  kind: 'token' | 'comment';
  /** The token's kind (for spacing) or 'comment'. */
  tokenKind: Token['kind'] | 'comment';
  text: string;
  start: number;
  end: number;
  breaksBefore: number;
  /** `<` / `>` that bracket type arguments (`Result<Int, String>`), not comparisons. */
  typeBracket: boolean;
  /** `-`, `+` or `!` as a prefix operator. */
  unary: boolean;
  /** The `|` that opens or closes a lambda's parameters (`|a, b| => …`). */
  lambdaBar: 'open' | 'close' | null;
}

interface OpenBracket {
  close: string;
  /** Index of the output line the bracket was opened on. */
  line: number;
  /** Indentation level of that line. */
  base: number;
  /** True when the bracket was the last one left open on its line: it indents what follows. */
  indents: boolean;
}

const OPENERS: Readonly<Record<string, string>> = { '(': ')', '[': ']', '{': '}' };
const CLOSERS = new Set([')', ']', '}']);
const BINARY = new Set(['+', '-', '*', '/', '%', '==', '!=', '<', '>', '<=', '>=', '&&', '||']);
/** A line starting with one of these continues the previous line's expression or declaration. */
const CONTINUES_FROM_START = new Set([...BINARY, '|>', '|', '.', '=', '=>', '->']);
/** A line ending with one of these continues on the next line. */
const CONTINUES_AT_END = new Set([...BINARY, '|>', '|', '.', '=', '=>', '->', ':']);

/** Formats one file's text. Throws an internal compiler error if formatting would change tokens. */
export function formatText(text: string): FormatResult {
  const diags = new DiagnosticBag();
  const comments: Span[] = [];
  const tokens = lex(text, diags, 0, text.length, comments);
  parseProgram(tokens, diags);
  if (diags.hasErrors) return { ok: false, diagnostics: [...diags.items].sort((a, b) => a.span.start - b.span.start) };
  const formatted = layout(piecesOf(text, tokens, comments));
  assertSameTokens(text, formatted);
  return { ok: true, text: formatted, changed: formatted !== text };
}

function piecesOf(text: string, tokens: Token[], comments: Span[]): Piece[] {
  const raw: { kind: 'token' | 'comment'; tokenKind: Piece['tokenKind']; start: number; end: number; text: string }[] = [];
  for (const t of tokens) {
    // Documentation comments are tokens for the parser and comments for the layout.
    if (t.kind === 'eof' || t.kind === 'doc') continue;
    raw.push({ kind: 'token', tokenKind: t.kind, start: t.span.start, end: t.span.end, text: text.slice(t.span.start, t.span.end) });
  }
  for (const c of comments) {
    raw.push({ kind: 'comment', tokenKind: 'comment', start: c.start, end: c.end, text: text.slice(c.start, c.end).replace(/\r$/, '') });
  }
  raw.sort((a, b) => a.start - b.start);
  const pieces: Piece[] = [];
  let prevEnd = 0;
  for (const r of raw) {
    let breaks = 0;
    for (let i = prevEnd; i < r.start; i++) if (text.charCodeAt(i) === 10) breaks++;
    pieces.push({ ...r, breaksBefore: pieces.length === 0 ? 0 : breaks, typeBracket: false, unary: false, lambdaBar: null });
    prevEnd = r.end;
  }
  markTypeBrackets(pieces);
  markUnary(pieces);
  markLambdaBars(pieces);
  return pieces;
}

/**
 * `<` right after a capitalised name opens type arguments when a matching `>` follows with only
 * type syntax in between (`List<Int, 3>`, `Result<fn(Int) -> Int, String>`); a comparison between
 * capitalised names never has that shape, since constructors are compared with == only.
 */
function markTypeBrackets(pieces: Piece[]): void {
  const code = pieces.filter((p) => p.kind === 'token');
  for (let i = 1; i < code.length; i++) {
    const lt = code[i]!;
    const before = code[i - 1]!;
    if (lt.text !== '<' || before.tokenKind !== 'ident' || !/^[A-Z]/.test(before.text)) continue;
    let depth = 0;
    for (let j = i; j < code.length; j++) {
      const t = code[j]!;
      if (t.text === '<') depth++;
      else if (t.text === '>') {
        depth--;
        if (depth === 0) {
          for (let k = i; k <= j; k++) if (code[k]!.text === '<' || code[k]!.text === '>') code[k]!.typeBracket = true;
          break;
        }
      } else if (!(t.tokenKind === 'ident' || t.tokenKind === 'int' || [',', '(', ')', '->', 'fn'].includes(t.text))) {
        break;
      }
    }
  }
}

/** Whether the token before ends an operand, which makes a following `-`/`+` binary. */
function endsOperand(p: Piece | undefined): boolean {
  if (!p) return false;
  if (p.tokenKind === 'ident' || p.tokenKind === 'int' || p.tokenKind === 'string' || p.tokenKind === 'underscore') return true;
  if (p.tokenKind === 'keyword') return p.text === 'true' || p.text === 'false';
  return p.text === ')' || p.text === ']' || p.text === '}' || (p.text === '>' && p.typeBracket);
}

/**
 * A sign is a prefix operator when no operand precedes it, and also before a number followed by
 * `=>`: the parser starts the next match arm there (`1 => a` / `-1 => b`), as its comment explains.
 */
function markUnary(pieces: Piece[]): void {
  const code = pieces.filter((p) => p.kind === 'token');
  code.forEach((p, i) => {
    if (p.text === '!') p.unary = true;
    else if (p.text === '-' || p.text === '+') {
      const armPattern = code[i + 1]?.tokenKind === 'int' && code[i + 2]?.text === '=>';
      p.unary = armPattern || !endsOperand(code[i - 1]);
    }
  });
}

/**
 * `|` in operand position followed by parameters, `|` and `=>` delimits a lambda's parameters;
 * every other `|` separates the variants of a type declaration.
 */
function markLambdaBars(pieces: Piece[]): void {
  const code = pieces.filter((p) => p.kind === 'token');
  for (let i = 0; i < code.length; i++) {
    if (code[i]!.text !== '|' || endsOperand(code[i - 1])) continue;
    let j = i + 1;
    while (j < code.length && (code[j]!.tokenKind === 'ident' || code[j]!.tokenKind === 'underscore' || [',', ':', '<', '>', '(', ')', '->', 'fn'].includes(code[j]!.text))) j++;
    if (code[j]?.text === '|' && code[j + 1]?.text === '=>') {
      code[i]!.lambdaBar = 'open';
      code[j]!.lambdaBar = 'close';
      i = j;
    }
  }
}

function isOpener(p: Piece): boolean {
  return p.tokenKind === 'punct' && OPENERS[p.text] !== undefined;
}
function isCloser(p: Piece): boolean {
  return p.tokenKind === 'punct' && CLOSERS.has(p.text);
}

const CALL_LIKE_KEYWORDS: ReadonlySet<string> = new Set(['send', 'recv', 'await', 'yield']);

/** Whether a space separates two neighbouring pieces on one line. */
function spaced(prev: Piece, cur: Piece): boolean {
  if (cur.kind === 'comment' || prev.kind === 'comment') return true;
  const p = prev.text;
  const c = cur.text;
  if (prev.tokenKind === 'punct') {
    if (p === '(' || p === '[' || (p === '<' && prev.typeBracket)) return false;
    if (p === '{') return c !== '}';
    if (p === '.') return false;
    if (prev.unary || prev.lambdaBar === 'open') return false;
  }
  if (cur.tokenKind === 'punct') {
    if (c === ')' || c === ']' || c === ',' || c === ':' || c === '.') return false;
    if (c === '}') return p !== '{';
    if (cur.lambdaBar === 'close') return false;
    if (cur.lambdaBar === 'open') return !(p === '(' || p === '[');
    if ((c === '<' || c === '>') && cur.typeBracket) return false;
    // `send(c, v)`, `recv(c)`, `await(f)`, `yield(e)` are written like calls (docs/guide/16-fibers-and-channels.md).
    if (c === '(') return !(prev.tokenKind === 'ident' || p === ')' || p === ']' || p === 'fn' || (p === '>' && prev.typeBracket) || (prev.tokenKind === 'keyword' && CALL_LIKE_KEYWORDS.has(p)));
    if (c === '[') return !(prev.tokenKind === 'ident' || p === ')' || p === ']');
  }
  return true;
}

function layout(pieces: Piece[]): string {
  const lines: { indent: number; text: string; blankBefore: boolean }[] = [];
  const open: OpenBracket[] = [];
  /** The last token (not comment) placed, and the last token of the previous line that had one. */
  let lastToken: Piece | undefined;
  let lastOnLine: Piece | undefined;
  let prevPiece: Piece | undefined;
  let lineIndex = -1;

  const endLine = () => {
    // Only the innermost bracket opened on the line and still open indents what follows.
    const top = open[open.length - 1];
    if (top && top.line === lineIndex) top.indents = true;
  };

  for (let i = 0; i < pieces.length; i++) {
    const piece = pieces[i]!;
    if (lineIndex < 0 || piece.breaksBefore > 0) {
      if (lineIndex >= 0) endLine();
      // Closing brackets at the start of the line take the indentation of the line that opened
      // the bracket they close.
      let closers = 0;
      for (let j = i; j < pieces.length && (j === i || pieces[j]!.breaksBefore === 0) && isCloser(pieces[j]!); j++) closers++;
      const remaining = open.slice(0, Math.max(0, open.length - closers));
      const closedIndenting = open.slice(remaining.length).find((b) => b.indents);
      let indent: number;
      if (closedIndenting) {
        indent = closedIndenting.base;
      } else {
        const inner = [...remaining].reverse().find((b) => b.indents);
        indent = inner ? inner.base + 1 : 0;
        const continues =
          (piece.kind === 'token' && piece.tokenKind === 'punct' && CONTINUES_FROM_START.has(piece.text) && !piece.unary && !piece.typeBracket && piece.lambdaBar === null) ||
          (lastToken !== undefined && lastToken.tokenKind === 'punct' && CONTINUES_AT_END.has(lastToken.text) && !lastToken.unary && !lastToken.typeBracket && lastToken.lambdaBar === null);
        if (continues && lastToken !== undefined) indent++;
      }
      const previousLineEndsOpen = lastOnLine !== undefined && isOpener(lastOnLine);
      const blankBefore = lines.length > 0 && piece.breaksBefore > 1 && !previousLineEndsOpen && !(piece.kind === 'token' && isCloser(piece));
      lines.push({ indent, text: piece.text, blankBefore });
      lineIndex = lines.length - 1;
      lastOnLine = undefined;
    } else {
      const line = lines[lineIndex]!;
      line.text += (spaced(prevPiece!, piece) ? ' ' : '') + piece.text;
    }
    if (piece.kind === 'token') {
      const line = lines[lineIndex]!;
      if (isOpener(piece)) open.push({ close: OPENERS[piece.text]!, line: lineIndex, base: line.indent, indents: false });
      else if (isCloser(piece)) {
        const b = open.pop();
        if (!b || b.close !== piece.text) ice(`formatter: unbalanced '${piece.text}' in a file the parser accepted`);
      }
      lastToken = piece;
      lastOnLine = piece;
    }
    prevPiece = piece;
  }
  const out: string[] = [];
  for (const l of lines) {
    if (l.blankBefore) out.push('');
    out.push(INDENT.repeat(l.indent) + l.text);
  }
  return out.length === 0 ? '' : out.join('\n') + '\n';
}

/** The formatter may only move whitespace: same tokens, same comments, in the same order. */
function assertSameTokens(before: string, after: string): void {
  const sig = (text: string): string[] => {
    const diags = new DiagnosticBag();
    const comments: Span[] = [];
    const tokens = lex(text, diags, 0, text.length, comments);
    const out = tokens.filter((t) => t.kind !== 'doc').map((t) => text.slice(t.span.start, t.span.end));
    for (const c of comments) out.push(`//${text.slice(c.start, c.end).replace(/\r$/, '')}`);
    return out;
  };
  const a = sig(before);
  const b = sig(after);
  if (a.length !== b.length || a.some((x, i) => x !== b[i])) ice('formatter: the formatted text does not have the same tokens as the source');
}
