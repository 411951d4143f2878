// Pipeline position: the lexer's output and the parser's input. A flat list of tokens; an
// interpolated string carries its embedded expressions already tokenised (docs/guide/12-strings-and-display.md#interpolation).

import type { Span } from '../source.ts';

/** Reserved words (docs/guide/02-lexical-structure.md#keywords: exactly the lexer's set). */
export const KEYWORDS = [
  'match', 'fn', 'extern', 'import', 'type', 'module', 'let', 'mut', 'if', 'else', 'spawn',
  'yield', 'await', 'fiber', 'channel', 'send', 'recv', 'select', 'true', 'false', 'where',
] as const;
export type Keyword = (typeof KEYWORDS)[number];
const KEYWORD_SET: ReadonlySet<string> = new Set(KEYWORDS);
export function isKeyword(s: string): s is Keyword {
  return KEYWORD_SET.has(s);
}

/** Operators and punctuation, longest first (docs/guide/02-lexical-structure.md#operators-and-punctuation with && and ||). */
export const PUNCTUATION = [
  '|>', '=>', '->', '==', '!=', '<=', '>=', '&&', '||',
  '=', '!', '%', '+', '-', '*', '/', '<', '>', ':', ',', '.', '|', '(', ')', '{', '}', '[', ']', ';',
] as const;
export type Punct = (typeof PUNCTUATION)[number];

/** One piece of a string literal: decoded text, or an embedded `${…}` expression. */
export type StringPart =
  | { kind: 'text'; value: string; span: Span }
  | { kind: 'expr'; tokens: Token[]; span: Span };

export type Token =
  | { kind: 'ident'; text: string; span: Span }
  | { kind: 'keyword'; text: Keyword; span: Span }
  | { kind: 'int'; value: bigint; text: string; span: Span }
  | { kind: 'string'; parts: StringPart[]; interpolated: boolean; span: Span }
  | { kind: 'punct'; text: Punct; span: Span }
  | { kind: 'underscore'; text: '_'; span: Span }
  | { kind: 'doc'; text: string; span: Span }
  | { kind: 'eof'; span: Span };

export function describeToken(t: Token): string {
  switch (t.kind) {
    case 'ident':
      return `identifier '${t.text}'`;
    case 'keyword':
      return `keyword '${t.text}'`;
    case 'int':
      return `number ${t.text}`;
    case 'string':
      return 'a string literal';
    case 'punct':
      return `'${t.text}'`;
    case 'underscore':
      return `'_'`;
    case 'doc':
      return 'a documentation comment';
    case 'eof':
      return 'end of file';
  }
}
