// Pipeline position: text → tokens. Decodes string escapes in one left-to-right pass
// (docs/guide/02-lexical-structure.md#string-literals), splits interpolated strings into text parts and tokenised `${…}` parts
// (docs/guide/12-strings-and-display.md#interpolation), and reports lexical errors as diagnostics while still producing a usable token stream.

import { Code, type DiagnosticBag } from '../diagnostics/diagnostic.ts';
import { span, type Span } from '../source.ts';
import { isKeyword, PUNCTUATION, type StringPart, type Token } from './token.ts';

const INT64_MAX = (1n << 63n) - 1n;

function isIdentStart(c: string): boolean {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_';
}
function isIdentPart(c: string): boolean {
  return isIdentStart(c) || (c >= '0' && c <= '9');
}
function isDigit(c: string): boolean {
  return c >= '0' && c <= '9';
}

/**
 * Tokenises `text[from, to)`; offsets in spans are absolute so embedded expressions of an
 * interpolated string point into the original file. Comments are trivia: the parser never sees
 * them, but tools that rewrite source (the formatter) pass `comments` to receive the span of every
 * `//` comment, documentation comments included, in source order.
 */
export function lex(text: string, diags: DiagnosticBag, from = 0, to = text.length, comments?: Span[]): Token[] {
  const tokens: Token[] = [];
  let i = from;
  while (i < to) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      i++;
      continue;
    }
    if (c === '/' && text[i + 1] === '/') {
      let j = i;
      while (j < to && text[j] !== '\n') j++;
      comments?.push(span(i, j));
      // `///` (but not `////…`) is a documentation comment token (docs/guide/02-lexical-structure.md#comments).
      if (text[i + 2] === '/' && text[i + 3] !== '/') {
        tokens.push({ kind: 'doc', text: text.slice(i + 3, j).trim(), span: span(i, j) });
      }
      i = j;
      continue;
    }
    if (isIdentStart(c)) {
      let j = i + 1;
      while (j < to && isIdentPart(text[j]!)) j++;
      const word = text.slice(i, j);
      if (word === '_') tokens.push({ kind: 'underscore', text: '_', span: span(i, j) });
      else if (isKeyword(word)) tokens.push({ kind: 'keyword', text: word, span: span(i, j) });
      else tokens.push({ kind: 'ident', text: word, span: span(i, j) });
      i = j;
      continue;
    }
    if (isDigit(c)) {
      let j = i + 1;
      while (j < to && isDigit(text[j]!)) j++;
      // `0x10`, `1_000`, `3.14`: report one invalid literal rather than silently splitting (docs/guide/02-lexical-structure.md#integer-literals).
      let k = j;
      if (k < to && (isIdentStart(text[k]!) || (text[k] === '.' && isDigit(text[k + 1] ?? '')))) {
        k++;
        while (k < to && (isIdentPart(text[k]!) || text[k] === '.')) k++;
        diags.error(Code.BadNumber, span(i, k), `invalid number literal '${text.slice(i, k)}'`, {
          notes: ['note: integer literals are decimal digits only; Osprey has no hexadecimal, separators or floats'],
        });
        tokens.push({ kind: 'int', value: 0n, text: text.slice(i, k), span: span(i, k) });
        i = k;
        continue;
      }
      const digits = text.slice(i, j);
      let value = BigInt(digits);
      if (value > INT64_MAX + 1n) {
        diags.error(Code.BadNumber, span(i, j), `integer literal ${digits} does not fit in a 64-bit Int`, {
          label: 'too large',
        });
        value = 0n;
      }
      tokens.push({ kind: 'int', value, text: digits, span: span(i, j) });
      i = j;
      continue;
    }
    if (c === '"') {
      i = lexString(text, i, to, diags, tokens);
      continue;
    }
    const p = PUNCTUATION.find((q) => text.startsWith(q, i));
    if (p !== undefined) {
      tokens.push({ kind: 'punct', text: p, span: span(i, i + p.length) });
      i += p.length;
      continue;
    }
    if (c === "'") {
      // `'x'` or `'text'`: one error for the whole literal, which then counts as the String it
      // was meant to be (no cascade from the text between the quotes).
      let k = i + 1;
      while (k < to && text[k] !== "'" && text[k] !== '\n') k++;
      if (k < to && text[k] === "'") {
        const content = text.slice(i + 1, k);
        const quoted = JSON.stringify(content);
        diags.error(Code.UnexpectedChar, span(i, k + 1), 'single quotes do not make a literal in Osprey', {
          label: `write ${quoted}`,
          notes: [`hint: strings use double quotes: ${quoted}; Osprey has no character type (a one-character String is the same thing)`],
        });
        tokens.push({ kind: 'string', parts: [{ kind: 'text', value: content, span: span(i + 1, k) }], interpolated: false, span: span(i, k + 1) });
        i = k + 1;
        continue;
      }
    }
    const ch = String.fromCodePoint(text.codePointAt(i)!);
    diags.error(Code.UnexpectedChar, span(i, i + ch.length), `unexpected character '${ch}'`);
    i += ch.length;
  }
  tokens.push({ kind: 'eof', span: span(to, to) });
  return tokens;
}

/** Lexes a string literal starting at the opening quote; returns the offset after it. */
function lexString(text: string, start: number, to: number, diags: DiagnosticBag, out: Token[]): number {
  const parts: StringPart[] = [];
  let buf = '';
  let bufStart = start + 1;
  let interpolated = false;
  let i = start + 1;
  const flush = (end: number) => {
    if (buf.length > 0 || parts.length === 0) parts.push({ kind: 'text', value: buf, span: span(bufStart, end) });
    buf = '';
  };
  while (true) {
    if (i >= to) {
      diags.error(Code.UnterminatedString, span(start, start + 1), 'unterminated string literal', {
        label: 'this string is never closed',
        notes: ['hint: add a closing `"`'],
      });
      flush(i);
      break;
    }
    const c = text[i]!;
    if (c === '"') {
      flush(i);
      i++;
      break;
    }
    if (c === '\\') {
      const e = text[i + 1];
      // One left-to-right pass: `\\n` is a backslash then the letter n (docs/guide/02-lexical-structure.md#string-literals).
      const decoded: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', $: '$' };
      if (e !== undefined && decoded[e] !== undefined) {
        buf += decoded[e];
        i += 2;
      } else if (e === 'u') {
        // A Unicode scalar value, stored as its UTF-8 bytes: `\u{1F600}` (1 to 6 hex digits) or
        // `\u00e9` (exactly 4). `\u{0}` / `\u0000` is a NUL byte: Strings carry their length.
        const escape = decodeUnicodeEscape(text, i, to);
        if (escape.ok) buf += String.fromCodePoint(escape.codePoint);
        else
          diags.error(Code.BadEscape, span(i, escape.end), `invalid unicode escape '${text.slice(i, escape.end)}'`, {
            label: escape.problem,
            notes: ['hint: write \\u{…} with 1 to 6 hex digits or \\uXXXX with exactly 4, naming a code point up to 10FFFF that is not a surrogate (D800–DFFF)'],
          });
        i = escape.end;
      } else {
        const shown = e === undefined ? '' : e === '\n' ? '\\n' : e;
        diags.error(Code.BadEscape, span(i, Math.min(i + 2, to)), `unknown escape sequence '\\${shown}'`, {
          label: 'not a valid escape',
          notes: ['hint: the escapes are \\n \\t \\r \\\\ \\" \\$ and \\u{…}; write \\\\ for a backslash'],
        });
        i += e === undefined ? 1 : 2;
      }
      continue;
    }
    if (c === '$' && text[i + 1] === '{') {
      // `${` always starts an interpolation; the expression runs to the next `}` (docs/guide/02-lexical-structure.md#string-literals).
      flush(i);
      interpolated = true;
      let j = i + 2;
      while (j < to && text[j] !== '}') j++;
      if (j >= to) {
        diags.error(Code.UnterminatedInterpolation, span(i, i + 2), 'unterminated `${` in string literal', {
          label: 'no closing `}`',
        });
        // The string cannot end either: one error for the one mistake.
        i = to;
        break;
      }
      const tokens = lex(text, diags, i + 2, j);
      parts.push({ kind: 'expr', tokens, span: span(i + 2, j) });
      i = j + 1;
      bufStart = i;
      continue;
    }
    buf += c;
    i++;
  }
  out.push({ kind: 'string', parts, interpolated, span: span(start, i) });
  return i;
}

type UnicodeEscape = { ok: true; codePoint: number; end: number } | { ok: false; problem: string; end: number };

const isHexDigit = (c: string | undefined): boolean => c !== undefined && /^[0-9a-fA-F]$/.test(c);

/** Decodes the `\u` escape whose backslash is at `at`; `end` is where lexing goes on. */
function decodeUnicodeEscape(text: string, at: number, to: number): UnicodeEscape {
  let j = at + 2;
  let digits = '';
  if (text[j] === '{') {
    j++;
    while (j < to && isHexDigit(text[j]) && digits.length < 7) digits += text[j++];
    if (text[j] !== '}') return { ok: false, problem: digits.length > 6 ? 'more than 6 hex digits' : 'expected hex digits and a closing `}`', end: j };
    j++;
    if (digits.length === 0) return { ok: false, problem: 'no hex digits between the braces', end: j };
  } else {
    while (j < to && isHexDigit(text[j]) && digits.length < 4) digits += text[j++];
    if (digits.length < 4) return { ok: false, problem: 'expected exactly 4 hex digits (or `{…}`)', end: j };
  }
  const codePoint = parseInt(digits, 16);
  if (codePoint > 0x10ffff) return { ok: false, problem: 'beyond the last code point 10FFFF', end: j };
  if (codePoint >= 0xd800 && codePoint <= 0xdfff) return { ok: false, problem: 'a surrogate is not a character', end: j };
  return { ok: true, codePoint, end: j };
}
