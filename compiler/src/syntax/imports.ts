// Pipeline position: between parsing and checking. Starting from the main file, follows every
// top-level `import a.b` to the file `a/b.osp` beside the importing file, lexes and parses each file
// once (in the program-wide offset space of a SourceMap, so every later span names its file), and
// hands the checker the imported files in dependency order with the names each file imports them
// under. Missing files, directories, unreadable files and cycles are diagnostics on the `import`
// statement; the renderer adds the chain of imports that led there.
//
// `import std` and `import std.…` name the built-in standard library, which is always in scope:
// no file is read for them (the language's classic examples start with `import std.io`).

import { dirname, join, resolve } from 'node:path';
import { Code, DiagnosticBag, type Diagnostic } from '../diagnostics/diagnostic.ts';
import { SourceFile, type SourceMap, type Span } from '../source.ts';
import type { ImportStmt, Program } from './ast.ts';
import { lex } from './lexer.ts';
import { parseProgram } from './parser.ts';
import type { StringPart, Token } from './token.ts';

/** How an imported file is read: its text, or why it cannot be. */
export type ReadResult = { kind: 'file'; text: string } | { kind: 'missing' } | { kind: 'directory' } | { kind: 'error'; message: string };
export type FileReader = (absolutePath: string) => ReadResult;

export interface ImportBinding {
  /** The imported file's namespace key (ImportedFile.key). */
  key: string;
  /** The `import` statement, for duplicate and collision diagnostics. */
  span: Span;
}

export interface ImportedFile {
  /** Unique namespace key: the name it was first imported under, made unique across the program.
   *  Its functions are compiled as `KEY.fn`. */
  key: string;
  /** The path shown in diagnostics (joined to the importing file's path as written). */
  path: string;
  program: Program;
  /** Names this file imports, and what they refer to. */
  imports: Map<string, ImportBinding>;
}

export interface LoadedProgram {
  main: Program;
  /** Names the main file imports. */
  mainImports: Map<string, ImportBinding>;
  /** Every imported file, each after the files it imports (dependency order). */
  imported: ImportedFile[];
}

/** Lexes and parses one file whose text starts at `base` in the program-wide offset space. */
export function parseFileAt(text: string, base: number, diags: DiagnosticBag): Program {
  if (base === 0) return parseProgram(lex(text, diags), diags, text);
  const local = new DiagnosticBag();
  const tokens = lex(text, local).map((t) => shiftToken(t, base));
  for (const d of local.items) diags.add(shiftDiagnostic(d, base));
  return parseProgram(tokens, diags, text, base);
}

function shiftSpan(s: Span, by: number): Span {
  return { start: s.start + by, end: s.end + by };
}

function shiftToken(t: Token, by: number): Token {
  if (t.kind === 'string') {
    const parts: StringPart[] = t.parts.map((p) =>
      p.kind === 'text' ? { ...p, span: shiftSpan(p.span, by) } : { kind: 'expr', tokens: p.tokens.map((x) => shiftToken(x, by)), span: shiftSpan(p.span, by) });
    return { ...t, parts, span: shiftSpan(t.span, by) };
  }
  return { ...t, span: shiftSpan(t.span, by) };
}

function shiftDiagnostic(d: Diagnostic, by: number): Diagnostic {
  return { ...d, span: shiftSpan(d.span, by), labels: d.labels.map((l) => ({ ...l, span: shiftSpan(l.span, by) })) };
}

/** True for `import std…`, the built-in standard library. */
function isStandardLibrary(s: ImportStmt): boolean {
  return s.path[0]!.name === 'std';
}

/**
 * Loads every file the main program imports, transitively. `main` is the already parsed main file
 * (offset base 0 in `sources`); diagnostics go to `diags`. Relative paths are relative to `cwd`.
 */
export function loadImports(main: Program, sources: SourceMap, diags: DiagnosticBag, read: FileReader, cwd = process.cwd()): LoadedProgram {
  const byPath = new Map<string, ImportedFile>();
  const usedKeys = new Set<string>();
  const imported: ImportedFile[] = [];
  /** Absolute paths of the files being loaded, outermost first, with how each was reached. */
  const stack: { absolute: string; shown: string }[] = [{ absolute: resolve(cwd, sources.main.path), shown: sources.main.path }];

  const importsOf = (program: Program, fromPath: string): Map<string, ImportBinding> => {
    const bindings = new Map<string, ImportBinding>();
    for (const s of program.stmts) {
      if (s.kind !== 'import' || isStandardLibrary(s)) continue;
      const key = loadOne(s, fromPath);
      if (key === null) continue;
      const local = s.path[s.path.length - 1]!.name;
      const prev = bindings.get(local);
      if (prev) {
        diags.error(Code.DuplicateDefinition, s.span, prev.key === key ? `'${local}' is imported twice` : `two imports are both named '${local}'`, {
          labels: [{ span: prev.span, message: 'first imported here' }],
          notes: prev.key === key ? ['hint: remove one of the two imports'] : ['note: a file is imported under its last name; rename one of the files'],
        });
        continue;
      }
      bindings.set(local, { key, span: s.span });
    }
    return bindings;
  };

  const loadOne = (s: ImportStmt, fromPath: string): string | null => {
    const dotted = s.path.map((p) => p.name).join('.');
    const shown = join(dirname(fromPath), ...s.path.map((p) => p.name)) + '.osp';
    const absolute = resolve(cwd, shown);
    const cycleAt = stack.findIndex((f) => f.absolute === absolute);
    if (cycleAt >= 0) {
      const cycle = [...stack.slice(cycleAt).map((f) => f.shown), shown].join(' → ');
      diags.error(Code.ImportCycle, s.span, `import cycle: ${cycle}`, {
        label: `'${dotted}' is still being loaded`,
        notes: ['hint: move what both files need into a third file that neither of them imports'],
      });
      return null;
    }
    const done = byPath.get(absolute);
    if (done) return done.key;
    const r = read(absolute);
    if (r.kind !== 'file') {
      const why = r.kind === 'missing' ? `there is no file ${shown}` : r.kind === 'directory' ? `${shown} is a directory` : `${shown} cannot be read: ${r.message}`;
      const folder = shown.slice(0, -'.osp'.length);
      const folderHint = r.kind === 'missing' && read(resolve(cwd, folder)).kind === 'directory'
        ? [`hint: ${folder} is a directory; import a file in it: \`import ${dotted}.NAME\``]
        : [];
      diags.error(Code.ImportNotFound, s.span, `cannot import '${dotted}': ${why}`, {
        label: 'imported here',
        notes: [`note: \`import ${dotted}\` loads ${s.path.map((p) => p.name).join('/')}.osp from the directory of the importing file`, ...folderHint],
      });
      return null;
    }
    const file = new SourceFile(shown, r.text);
    const base = sources.add(file, s.span);
    const program = parseFileAt(r.text, base, diags);
    const name = s.path[s.path.length - 1]!.name;
    let key = name;
    for (let n = 2; usedKeys.has(key); n++) key = `${name}#${n}`;
    usedKeys.add(key);
    stack.push({ absolute, shown });
    const entry: ImportedFile = { key, path: shown, program, imports: new Map() };
    entry.imports = importsOf(program, shown);
    stack.pop();
    byPath.set(absolute, entry);
    imported.push(entry);
    return key;
  };

  const mainImports = importsOf(main, sources.main.path);
  return { main, mainImports, imported };
}
