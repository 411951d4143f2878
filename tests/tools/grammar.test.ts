/**
 * The editor package (editors/vscode): the TextMate grammar tokenised by the engine VS Code uses
 * (vscode-textmate + vscode-oniguruma), checking the scopes of keywords, strings with escapes and
 * interpolation, comments, numbers, types and function names; the extension manifest; and the
 * command the extension runs to start `osprey lsp`.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import oniguruma from 'vscode-oniguruma';
import textmate from 'vscode-textmate';
import { ROOT } from '../compiler/helpers.ts';

const EDITOR = join(ROOT, 'editors', 'vscode');
let grammar: textmate.IGrammar;

beforeAll(async () => {
  const wasm = readFileSync(join(ROOT, 'node_modules', 'vscode-oniguruma', 'release', 'onig.wasm'));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns: string[]) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s: string) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async (scopeName: string) => {
      if (scopeName !== 'source.osprey') return null;
      const path = join(EDITOR, 'syntaxes', 'osprey.tmLanguage.json');
      return textmate.parseRawGrammar(readFileSync(path, 'utf8'), path);
    },
  });
  const g = await registry.loadGrammar('source.osprey');
  if (!g) throw new Error('the grammar did not load');
  grammar = g;
});

/** Every token of a text as [text, innermost scope, all scopes], line by line. */
function tokenize(text: string): { text: string; scope: string; scopes: string[] }[] {
  const out: { text: string; scope: string; scopes: string[] }[] = [];
  let state = textmate.INITIAL;
  for (const line of text.split('\n')) {
    const r = grammar.tokenizeLine(line, state);
    for (const t of r.tokens) {
      out.push({ text: line.slice(t.startIndex, t.endIndex), scope: t.scopes[t.scopes.length - 1]!, scopes: t.scopes });
    }
    state = r.ruleStack;
  }
  return out;
}

/** The innermost scope of the first token spelled `text` (after `skip` earlier ones). */
function scopeOf(tokens: ReturnType<typeof tokenize>, text: string, skip = 0): string {
  const found = tokens.filter((t) => t.text === text)[skip];
  if (!found) throw new Error(`no token '${text}' (#${skip}) in ${JSON.stringify(tokens.map((t) => t.text))}`);
  return found.scope;
}

describe('the TextMate grammar', () => {
  const sample = readFileSync(join(EDITOR, 'samples', 'highlight.osp'), 'utf8');

  it('scopes keywords, declarations and function names', () => {
    const t = tokenize(sample);
    expect(scopeOf(t, 'fn')).toBe('storage.type.function.osprey');
    expect(scopeOf(t, 'weight')).toBe('entity.name.function.osprey');
    expect(scopeOf(t, 'extern')).toBe('storage.modifier.extern.osprey');
    expect(scopeOf(t, 'abs')).toBe('entity.name.function.osprey');
    expect(scopeOf(t, 'let')).toBe('storage.type.let.osprey');
    expect(scopeOf(t, 'mut')).toBe('storage.modifier.mut.osprey');
    expect(scopeOf(t, 'count')).toBe('variable.other.definition.osprey');
    expect(scopeOf(t, 'match')).toBe('keyword.control.osprey');
    expect(scopeOf(t, 'true')).toBe('constant.language.boolean.osprey');
    expect(scopeOf(t, 'print')).toBe('entity.name.function.call.osprey');
    expect(scopeOf(t, 'range')).toBe('entity.name.function.call.osprey');
    expect(scopeOf(t, '|>')).toBe('keyword.operator.pipe.osprey');
    expect(scopeOf(t, '=>')).toBe('keyword.operator.arrow.osprey');
    expect(scopeOf(t, '&&')).toBe('keyword.operator.logical.osprey');
  });

  it('scopes types, constructors and numbers', () => {
    const t = tokenize(sample);
    expect(scopeOf(t, 'Point')).toBe('entity.name.type.osprey');
    expect(scopeOf(t, 'Circle')).toBe('entity.name.type.osprey');
    expect(scopeOf(t, 'Int')).toBe('support.type.primitive.osprey');
    expect(scopeOf(t, 'Result')).toBe('support.type.builtin.osprey');
    expect(scopeOf(t, 'Success')).toBe('support.constant.result.osprey');
    expect(scopeOf(t, '42')).toBe('constant.numeric.integer.decimal.osprey');
  });

  it('scopes comments, documentation comments and the text inside them', () => {
    const t = tokenize(sample);
    const doc = t.find((x) => x.text.includes('A point on the grid'))!;
    expect(doc.scopes).toContain('comment.line.documentation.osprey');
    const plain = t.find((x) => x.text.includes('Twice the sum'))!;
    expect(plain.scopes).toContain('comment.line.double-slash.osprey');
    // Keywords inside a comment are comment text.
    const inComment = tokenize('// let fn match 12 "x"');
    expect(inComment.every((x) => x.scopes.some((s) => s.startsWith('comment.line')))).toBe(true);
  });

  it('scopes strings with escapes and interpolations, whose inside is code', () => {
    const t = tokenize('print("hello ${name}, \\"q\\"\\tand ${toString(count + 1)} $x")');
    expect(scopeOf(t, 'hello ')).toBe('string.quoted.double.osprey');
    expect(scopeOf(t, '${')).toBe('punctuation.section.interpolation.begin.osprey');
    const name = t.find((x) => x.text === 'name')!;
    expect(name.scopes).toContain('meta.embedded.interpolation.osprey');
    expect(name.scope).toBe('variable.other.osprey');
    expect(scopeOf(t, '}')).toBe('punctuation.section.interpolation.end.osprey');
    expect(scopeOf(t, '\\"')).toBe('constant.character.escape.osprey');
    expect(scopeOf(t, '\\t')).toBe('constant.character.escape.osprey');
    expect(scopeOf(t, 'toString')).toBe('entity.name.function.call.osprey');
    expect(scopeOf(t, '1')).toBe('constant.numeric.integer.decimal.osprey');
    // A `$` without `{` is plain text, and the string ends at its closing quote.
    expect(t.find((x) => x.text.includes('$x'))!.scopes).toContain('string.quoted.double.osprey');
    expect(scopeOf(t, ')', 1)).toBe('punctuation.section.parens.osprey');
    expect(scopeOf(tokenize('"bad \\q escape"'), '\\q')).toBe('invalid.illegal.unknown-escape.osprey');
  });

  it('keeps state across lines: a string with a raw newline', () => {
    const t = tokenize('let s = "one\ntwo ${n}"\nlet after = 1');
    expect(t.find((x) => x.text === 'two ')!.scopes).toContain('string.quoted.double.osprey');
    expect(scopeOf(t, 'after')).toBe('variable.other.definition.osprey');
  });
});

describe('the VS Code extension', () => {
  const manifest = JSON.parse(readFileSync(join(EDITOR, 'package.json'), 'utf8')) as {
    main: string;
    contributes: { languages: { id: string; extensions: string[]; configuration: string }[]; grammars: { scopeName: string; path: string }[] };
  };

  it('declares the language, the grammar and its configuration', () => {
    expect(manifest.contributes.languages[0]).toMatchObject({ id: 'osprey', extensions: ['.osp'] });
    expect(manifest.contributes.grammars[0]).toMatchObject({ scopeName: 'source.osprey', path: './syntaxes/osprey.tmLanguage.json' });
    const config = JSON.parse(readFileSync(join(EDITOR, manifest.contributes.languages[0]!.configuration), 'utf8')) as { comments: { lineComment: string } };
    expect(config.comments.lineComment).toBe('//');
  });

  it('starts `osprey lsp` with the configured command', () => {
    const { serverCommand } = createRequire(import.meta.url)(join(EDITOR, manifest.main)) as {
      serverCommand: (s: { command?: string }, node: string) => { command: string; args: string[] };
    };
    expect(serverCommand({}, '/usr/bin/node')).toEqual({ command: 'osprey', args: ['lsp'] });
    expect(serverCommand({ command: '/opt/osprey/bin/osprey.mjs' }, '/usr/bin/node')).toEqual({ command: '/usr/bin/node', args: ['/opt/osprey/bin/osprey.mjs', 'lsp'] });
    expect(serverCommand({ command: ' /usr/local/bin/osprey ' }, 'node')).toEqual({ command: '/usr/local/bin/osprey', args: ['lsp'] });
  });
});
