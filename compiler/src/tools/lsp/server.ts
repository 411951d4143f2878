// Pipeline position: the `osprey lsp` command (main.ts loads it on demand). A Language Server
// Protocol server over stdin/stdout, built on the compiler's own passes: every open document is
// analysed by driver.analyzeSource — the same lexer, parser, checker and exhaustiveness pass as
// `osprey check`, so diagnostics have the CLI's codes, messages and spans — and questions about
// positions are answered from the checker's typed tree through program-index.ts. This module only
// translates between offsets and LSP positions and between compiler data and protocol data.

import lspNode from 'vscode-languageserver/node.js';
import type {
  CompletionItem, Connection, Diagnostic as LspDiagnostic, DocumentSymbol, Hover, Location, Range, SignatureHelp, TextEdit, WorkspaceEdit,
} from 'vscode-languageserver/node.js';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { analyzeSource } from '../../driver.ts';
import { InternalCompilerError, type Diagnostic } from '../../diagnostics/diagnostic.ts';
import { SourceFile, type Span } from '../../source.ts';
import { builtinTable, instantiateBuiltin } from '../../semantics/builtins.ts';
import { prune, showType, type Type } from '../../semantics/types.ts';
import type { Program, Stmt } from '../../syntax/ast.ts';
import type { TypedProgram } from '../../semantics/typed.ts';
import { isKeyword, KEYWORDS } from '../../syntax/token.ts';
import { formatText } from '../format/format.ts';
import {
  declarationSpan, describeAdt, describeCtor, describeSymbol, expressionAt, indexProgram, occurrenceAt, sameTarget, visibleAt,
  type ProgramIndex, type Target,
} from './program-index.ts';

const { createConnection, DiagnosticSeverity, CompletionItemKind, SymbolKind, MarkupKind, ResponseError, ErrorCodes, TextDocuments, TextDocumentSyncKind, InsertTextFormat } = lspNode;

/** What the server knows about one version of a document. */
interface Analysis {
  version: number;
  text: string;
  diagnostics: Diagnostic[];
  ast?: Program;
  /** Present when the program parsed (the checker ran, possibly reporting errors). */
  checked?: TypedProgram;
  /** Built from `checked` on the first request that needs it, not before diagnostics go out. */
  index?: ProgramIndex;
}

function indexOf(a: Analysis | undefined): ProgramIndex | undefined {
  if (!a?.checked || !a.ast) return undefined;
  a.index ??= indexProgram(a.text, a.checked, a.ast);
  return a.index;
}

/** Coalesces a burst of keystrokes into one analysis; small next to the 300 ms budget. */
const ANALYSIS_DELAY_MS = 15;

const BUILTINS = builtinTable(new Set());

function builtinSignature(name: string): string | null {
  const b = BUILTINS.get(name);
  if (!b) return null;
  const sig = instantiateBuiltin(b);
  const params = sig.params.map((p) => `${p.name}: ${p.type === 'display' ? 'Int | String | Bool' : showType(p.type)}`).join(', ');
  return `${name}(${params}) -> ${showType(sig.returns)}`;
}

export class OspreyLanguageServer {
  private readonly documents = new TextDocuments(TextDocument);
  private readonly analyses = new Map<string, Analysis>();
  /** The last analysis of each document that got as far as the checker: completion while the
   *  current text does not parse (`point.` being typed) answers from it. */
  private readonly lastChecked = new Map<string, Analysis>();
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly connection: Connection) {
    connection.onInitialize(() => ({
      capabilities: {
        textDocumentSync: TextDocumentSyncKind.Incremental,
        hoverProvider: true,
        definitionProvider: true,
        completionProvider: { triggerCharacters: ['.'] },
        signatureHelpProvider: { triggerCharacters: ['(', ','] },
        documentSymbolProvider: true,
        renameProvider: { prepareProvider: true },
        referencesProvider: true,
        documentFormattingProvider: true,
      },
      serverInfo: { name: 'osprey', version: '0.1.0' },
    }));
    this.documents.onDidOpen((e) => this.analyzeNow(e.document));
    this.documents.onDidChangeContent((e) => this.scheduleAnalysis(e.document));
    this.documents.onDidClose((e) => {
      const uri = e.document.uri;
      clearTimeout(this.timers.get(uri));
      this.timers.delete(uri);
      this.analyses.delete(uri);
      this.lastChecked.delete(uri);
      void connection.sendDiagnostics({ uri, diagnostics: [] });
    });
    connection.onHover((p) => this.hover(p.textDocument.uri, p.position));
    connection.onDefinition((p) => this.definition(p.textDocument.uri, p.position));
    connection.onReferences((p) => this.references(p.textDocument.uri, p.position, p.context.includeDeclaration));
    connection.onCompletion((p) => this.completion(p.textDocument.uri, p.position));
    connection.onSignatureHelp((p) => this.signatureHelp(p.textDocument.uri, p.position));
    connection.onDocumentSymbol((p) => this.documentSymbols(p.textDocument.uri));
    connection.onPrepareRename((p) => this.prepareRename(p.textDocument.uri, p.position));
    connection.onRenameRequest((p) => this.rename(p.textDocument.uri, p.position, p.newName));
    connection.onDocumentFormatting((p) => this.format(p.textDocument.uri));
    this.documents.listen(connection);
  }

  // ---- analysis ------------------------------------------------------------------------------

  private scheduleAnalysis(doc: TextDocument): void {
    clearTimeout(this.timers.get(doc.uri));
    this.timers.set(doc.uri, setTimeout(() => {
      this.timers.delete(doc.uri);
      const current = this.documents.get(doc.uri);
      if (current) this.analyzeNow(current);
    }, ANALYSIS_DELAY_MS));
  }

  private analyzeNow(doc: TextDocument): void {
    let analysis: Analysis;
    try {
      analysis = this.analyze(doc);
    } catch (e) {
      // A compiler bug must not take the editor's server down with it: report it and go on.
      this.reportInternalError(doc.uri, e);
      return;
    }
    void this.connection.sendDiagnostics({ uri: doc.uri, version: doc.version, diagnostics: analysis.diagnostics.map((d) => this.toLspDiagnostic(doc, d)) });
  }

  private reportInternalError(uri: string, e: unknown): void {
    const message = e instanceof Error ? (e instanceof InternalCompilerError ? e.message : e.stack ?? e.message) : String(e);
    this.connection.console.error(`internal compiler error while analysing ${uri}: ${message}\nthis is a bug in osprey, please report it`);
  }

  /** The analysis of the document's current version (computed now if a change is pending). */
  private analyze(doc: TextDocument): Analysis {
    const cached = this.analyses.get(doc.uri);
    if (cached && cached.version === doc.version) return cached;
    const text = doc.getText();
    const r = analyzeSource(new SourceFile(pathOf(doc.uri), text));
    const analysis: Analysis = { version: doc.version, text, diagnostics: r.diagnostics, ast: r.ast, checked: r.checked };
    if (r.checked && r.ast) this.lastChecked.set(doc.uri, analysis);
    this.analyses.set(doc.uri, analysis);
    return analysis;
  }

  private current(uri: string): { doc: TextDocument; analysis: Analysis } | null {
    const doc = this.documents.get(uri);
    if (!doc) return null;
    return { doc, analysis: this.analyze(doc) };
  }

  private toLspDiagnostic(doc: TextDocument, d: Diagnostic): LspDiagnostic {
    const location = (span: Span): Location => ({ uri: doc.uri, range: rangeOf(doc, span) });
    const related = [
      ...(d.primaryLabel ? [{ location: location(d.span), message: d.primaryLabel }] : []),
      ...d.labels.map((l) => ({ location: location(l.span), message: l.message })),
      ...d.notes.map((n) => ({ location: location(d.span), message: n })),
    ];
    return {
      range: rangeOf(doc, d.span),
      severity: d.severity === 'error' ? DiagnosticSeverity.Error : DiagnosticSeverity.Warning,
      code: d.code,
      source: 'osprey',
      message: d.message,
      ...(related.length ? { relatedInformation: related } : {}),
    };
  }

  // ---- requests ------------------------------------------------------------------------------

  private hover(uri: string, position: { line: number; character: number }): Hover | null {
    const c = this.current(uri);
    const index = indexOf(c?.analysis);
    if (!c || !index) return null;
    const { doc, analysis } = c;
    const offset = doc.offsetAt(position);
    const occ = occurrenceAt(index, offset);
    if (occ) {
      const lines = [codeBlock(describeTarget(occ.target))];
      const decl = declarationSpan(occ.target);
      if (decl) {
        const docs = index.docs.get(decl.start);
        if (docs) lines.push(docs.join('\n'));
        const at = doc.positionAt(decl.start);
        const declLine = analysis.text.split('\n')[at.line]?.trim() ?? '';
        lines.push(`declared at line ${at.line + 1}: \`${declLine}\``);
      } else if (occ.target.kind === 'builtin') {
        lines.push('built-in function');
      }
      return { contents: { kind: MarkupKind.Markdown, value: lines.join('\n\n') }, range: rangeOf(doc, occ.span) };
    }
    const e = expressionAt(index, offset);
    if (!e) return null;
    return { contents: { kind: MarkupKind.Markdown, value: codeBlock(showType(prune(e.type))) }, range: rangeOf(doc, e.span) };
  }

  private definition(uri: string, position: { line: number; character: number }): Location | null {
    const c = this.current(uri);
    const index = indexOf(c?.analysis);
    if (!c || !index) return null;
    const occ = occurrenceAt(index, c.doc.offsetAt(position));
    const decl = occ ? declarationSpan(occ.target) : null;
    return decl ? { uri, range: rangeOf(c.doc, decl) } : null;
  }

  private references(uri: string, position: { line: number; character: number }, includeDeclaration: boolean): Location[] {
    const c = this.current(uri);
    const index = indexOf(c?.analysis);
    if (!c || !index) return [];
    const occ = occurrenceAt(index, c.doc.offsetAt(position));
    if (!occ) return [];
    return index.occurrences
      .filter((o) => sameTarget(o.target, occ.target) && (includeDeclaration || !o.declaration))
      .map((o) => ({ uri, range: rangeOf(c.doc, o.span) }));
  }

  private completion(uri: string, position: { line: number; character: number }): CompletionItem[] {
    const doc = this.documents.get(uri);
    if (!doc) return [];
    const analysis = this.analyze(doc);
    // While the text does not parse, the last version that did stands in (offsets near the edit
    // barely move, and names rarely do).
    const index = indexOf(analysis) ?? indexOf(this.lastChecked.get(uri));
    const text = doc.getText();
    const offset = doc.offsetAt(position);
    let wordStart = offset;
    while (wordStart > 0 && /[A-Za-z0-9_]/.test(text[wordStart - 1]!)) wordStart--;

    // `name.` → the fields of its type, or the members of a module. `name.` alone does not parse;
    // without the dot and the partial member it usually does, with every offset before the
    // cursor unchanged, so that text answers exactly.
    if (text[wordStart - 1] === '.') {
      const objEnd = wordStart - 1;
      let objStart = objEnd;
      while (objStart > 0 && /[A-Za-z0-9_]/.test(text[objStart - 1]!)) objStart--;
      const objName = text.slice(objStart, objEnd);
      let memberIndex = index;
      if (!analysis.checked) {
        const repaired = analyzeSource(new SourceFile(pathOf(uri), text.slice(0, objEnd) + text.slice(offset)));
        if (repaired.checked && repaired.ast) memberIndex = indexProgram(repaired.file.text, repaired.checked, repaired.ast);
      }
      return memberIndex ? this.memberItems(memberIndex, objName, objStart) : [];
    }
    if (!index) return this.keywordAndBuiltinItems();

    // At the start of a line inside a match (where an arm's pattern goes), the constructors of
    // the scrutinee's type.
    const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
    // (Not where an arm's body continues on the next line, after `=>`.)
    const atLineStart = /^\s*$/.test(text.slice(lineStart, wordStart)) && !text.slice(0, lineStart).trimEnd().endsWith('=>');
    const enclosingMatch = index.matches
      .filter((m) => m.span.start < offset && offset <= m.span.end)
      .sort((a, b) => (a.span.end - a.span.start) - (b.span.end - b.span.start))[0];
    const items: CompletionItem[] = [];
    if (enclosingMatch && atLineStart) {
      items.push(...this.constructorPatternItems(prune(enclosingMatch.scrutinee)));
      if (items.length > 0) return items;
    }

    for (const s of visibleAt(index, offset)) {
      items.push({
        label: s.name,
        kind: s.kind === 'fn' || s.kind === 'extern' ? CompletionItemKind.Function : CompletionItemKind.Variable,
        detail: describeSymbol(s),
        sortText: `0${s.name}`,
      });
    }
    for (const adt of index.adts) {
      items.push({ label: adt.name, kind: CompletionItemKind.Class, detail: describeAdt(adt), sortText: `1${adt.name}` });
      for (const c of adt.ctors) {
        if (adt.record && c.name === adt.name) continue;
        items.push({ label: c.name, kind: CompletionItemKind.EnumMember, detail: describeCtor(c), sortText: `1${c.name}` });
      }
    }
    items.push(...this.keywordAndBuiltinItems());
    return items;
  }

  private keywordAndBuiltinItems(): CompletionItem[] {
    const items: CompletionItem[] = [];
    for (const name of BUILTINS.keys()) {
      items.push({ label: name, kind: CompletionItemKind.Function, detail: builtinSignature(name) ?? undefined, sortText: `2${name}` });
    }
    for (const k of KEYWORDS) items.push({ label: k, kind: CompletionItemKind.Keyword, sortText: `3${k}` });
    return items;
  }

  private memberItems(index: ProgramIndex, objName: string, objOffset: number): CompletionItem[] {
    const sym = visibleAt(index, objOffset).find((s) => s.name === objName);
    if (sym) {
      const t = prune(sym.type);
      if (t.kind !== 'con' || !t.adt) return [];
      // A record, or a union value whose constructor a pattern already established.
      const refined = index.refined.get(sym.id);
      const ctors = t.adt.ctors.length === 1 ? t.adt.ctors : refined ? [refined] : [];
      return ctors.flatMap((c) => c.fields.map((f) => ({
        label: f.name, kind: CompletionItemKind.Field, detail: `${f.name}: ${showType(f.type)}`,
      })));
    }
    // `Module.` → the module's functions and lets.
    return (index.members.get(objName) ?? []).map((m) => ({
      label: m.name, kind: m.kind === 'fn' ? CompletionItemKind.Function : CompletionItemKind.Variable, detail: describeSymbol(m),
    }));
  }

  private constructorPatternItems(scrutinee: Type): CompletionItem[] {
    const pattern = (c: { name: string; fields: { name: string }[]; unit: boolean }) =>
      c.unit || c.fields.length === 0 ? `${c.name} => ` : `${c.name} { ${c.fields.map((f) => f.name).join(', ')} } => `;
    if (scrutinee.kind === 'con' && scrutinee.adt) {
      return scrutinee.adt.ctors.map((c) => ({
        label: c.name, kind: CompletionItemKind.EnumMember, detail: describeCtor(c), insertText: pattern(c), sortText: `0${c.tag}`,
      }));
    }
    if (scrutinee.kind === 'con' && scrutinee.name === 'Result') {
      return [
        { label: 'Success', kind: CompletionItemKind.EnumMember, detail: `Success { value: ${showType(scrutinee.args[0]!)} }`, insertText: 'Success { value } => ', sortText: '00' },
        { label: 'Error', kind: CompletionItemKind.EnumMember, detail: `Error { message: ${showType(scrutinee.args[1]!)} }`, insertText: 'Error { message } => ', sortText: '01' },
      ];
    }
    return [];
  }

  /** The parameters of the call the cursor is in, the one being written highlighted. Works on
   *  the text (an unfinished call does not parse) and resolves the callee like completion does. */
  private signatureHelp(uri: string, position: { line: number; character: number }): SignatureHelp | null {
    const doc = this.documents.get(uri);
    if (!doc) return null;
    const text = doc.getText();
    const offset = doc.offsetAt(position);
    const call = enclosingCall(text, offset);
    if (!call) return null;
    const name = call.callee.includes('.') ? call.callee.slice(call.callee.lastIndexOf('.') + 1) : call.callee;
    let params: { name: string; type: string }[] | null = null;
    let returns = '';
    const builtin = BUILTINS.get(name);
    const index = indexOf(this.analyze(doc)) ?? indexOf(this.lastChecked.get(uri));
    const moduleName = call.callee.includes('.') ? call.callee.slice(0, call.callee.indexOf('.')) : null;
    const symbol = index && (moduleName
      ? index.members.get(moduleName)?.find((m) => m.name === name)
      : visibleAt(index, call.open).find((v) => v.name === name));
    if (symbol?.fn) {
      params = symbol.fn.params.map((p) => ({ name: p.name, type: showType(p.type) }));
      returns = showType(symbol.fn.returnType);
    } else if (symbol?.extern) {
      params = symbol.extern.params.map((p) => ({ name: p.name, type: showType(p.type) }));
      returns = showType(symbol.extern.ret);
    } else if (symbol) {
      const t = prune(symbol.type);
      if (t.kind !== 'fn') return null;
      params = t.params.map((p, i) => ({ name: `_${i + 1}`, type: showType(p) }));
      returns = showType(t.ret);
    } else if (builtin) {
      const sig = instantiateBuiltin(builtin);
      params = sig.params.map((p) => ({ name: p.name, type: p.type === 'display' ? 'Int | String | Bool' : showType(p.type) }));
      returns = showType(sig.returns);
    }
    if (!params) return null;
    let label = `${call.callee}(`;
    const parameters = params.map((p, i) => {
      const start = label.length;
      label += `${p.name}: ${p.type}`;
      const range: [number, number] = [start, label.length];
      if (i < params!.length - 1) label += ', ';
      return { label: range };
    });
    label += `) -> ${returns}`;
    // A named argument being written selects its parameter; otherwise the position does.
    const named = params.findIndex((p) => p.name === call.currentName);
    const active = named >= 0 ? named : Math.min(call.argument, Math.max(0, params.length - 1));
    return { signatures: [{ label, parameters }], activeSignature: 0, activeParameter: active };
  }

  private documentSymbols(uri: string): DocumentSymbol[] {
    const c = this.current(uri);
    if (!c?.analysis.ast) return [];
    const doc = c.doc;
    const convert = (s: Stmt): DocumentSymbol[] => {
      const sym = (name: string, kind: lspNode.SymbolKind, span: Span, nameSpan: Span, detail?: string, children?: DocumentSymbol[]): DocumentSymbol => ({
        name, kind, range: rangeOf(doc, span), selectionRange: rangeOf(doc, nameSpan), ...(detail ? { detail } : {}), ...(children ? { children } : {}),
      });
      switch (s.kind) {
        case 'fn': {
          const nested = s.body.kind === 'block' ? s.body.stmts.filter((x) => x.kind === 'fn').flatMap(convert) : [];
          return [sym(s.name.name, SymbolKind.Function, s.span, s.name.span, `(${s.params.map((p) => p.name.name).join(', ')})`, nested)];
        }
        case 'extern':
          return [sym(s.name.name, SymbolKind.Function, s.span, s.name.span, 'extern')];
        case 'type': {
          const members = s.record
            ? s.record.map((f) => sym(f.name.name, SymbolKind.Field, f.span, f.name.span))
            : s.variants.map((v) => sym(v.name.name, SymbolKind.EnumMember, v.span, v.name.span, undefined,
              (v.fields ?? []).map((f) => sym(f.name.name, SymbolKind.Field, f.span, f.name.span))));
          return [sym(s.name.name, s.record ? SymbolKind.Struct : SymbolKind.Enum, s.span, s.name.span, undefined, members)];
        }
        case 'let':
          return [sym(s.name.name, s.mutable ? SymbolKind.Variable : SymbolKind.Constant, s.span, s.name.span)];
        case 'module':
          return [sym(s.name.name, SymbolKind.Module, s.span, s.name.span, undefined, s.body.flatMap(convert))];
        default:
          return [];
      }
    };
    return c.analysis.ast.stmts.flatMap(convert);
  }

  private renameTarget(uri: string, position: { line: number; character: number }): { doc: TextDocument; analysis: Analysis; target: Target; span: Span } {
    const c = this.current(uri);
    if (!c) throw new ResponseError(ErrorCodes.InvalidParams, 'the document is not open');
    const index = indexOf(c.analysis);
    if (!index) throw new ResponseError(ErrorCodes.InvalidRequest, 'the program has syntax errors: fix them before renaming');
    const occ = occurrenceAt(index, c.doc.offsetAt(position));
    if (!occ) throw new ResponseError(ErrorCodes.InvalidRequest, 'there is no name here to rename');
    if (occ.target.kind === 'builtin' || occ.target.kind === 'field') {
      const what = occ.target.kind === 'builtin' ? 'a built-in function' : 'a field';
      throw new ResponseError(ErrorCodes.InvalidRequest, `cannot rename ${what}: functions, parameters, let bindings, types and constructors can be renamed`);
    }
    return { ...c, target: occ.target, span: occ.span };
  }

  private prepareRename(uri: string, position: { line: number; character: number }): { range: Range; placeholder: string } {
    const { doc, target, span } = this.renameTarget(uri, position);
    return { range: rangeOf(doc, span), placeholder: doc.getText(rangeOf(doc, span)) };
  }

  private rename(uri: string, position: { line: number; character: number }, newName: string): WorkspaceEdit {
    const { doc, analysis, target, span: at } = this.renameTarget(uri, position);
    const oldName = analysis.text.slice(at.start, at.end);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(newName) || newName === '_') {
      throw new ResponseError(ErrorCodes.InvalidParams, `'${newName}' is not a valid name: a letter or _ followed by letters, digits or _`);
    }
    if (isKeyword(newName)) throw new ResponseError(ErrorCodes.InvalidParams, `'${newName}' is a keyword`);
    if (BUILTINS.has(newName)) throw new ResponseError(ErrorCodes.InvalidParams, `'${newName}' is the name of a built-in function`);
    const index = indexOf(analysis)!;
    const spans = index.occurrences.filter((o) => sameTarget(o.target, target)).map((o) => o.span);
    // Apply the edit and check the result: the same number of errors, and the renamed occurrences
    // (and no others) refer to one declaration. Otherwise the new name would capture or be
    // captured by another binding and change what the program means.
    let renamed = '';
    let last = 0;
    const newStarts: number[] = [];
    for (const s of spans) {
      renamed += analysis.text.slice(last, s.start);
      newStarts.push(renamed.length);
      renamed += newName;
      last = s.end;
    }
    renamed += analysis.text.slice(last);
    const after = analyzeSource(new SourceFile(pathOf(uri), renamed));
    const errors = (ds: Diagnostic[]) => ds.filter((d) => d.severity === 'error').length;
    let preserved = after.checked !== undefined && after.ast !== undefined && errors(after.diagnostics) <= errors(analysis.diagnostics);
    if (preserved) {
      const afterIndex = indexProgram(renamed, after.checked!, after.ast!);
      const targets = newStarts.map((start) => afterIndex.occurrences.find((o) => o.span.start === start)?.target);
      const first = targets[0];
      preserved = first !== undefined && targets.every((t) => t !== undefined && sameTarget(t, first)) &&
        afterIndex.occurrences.filter((o) => sameTarget(o.target, first)).length === spans.length;
    }
    if (!preserved) {
      throw new ResponseError(ErrorCodes.InvalidRequest, `renaming '${oldName}' to '${newName}' would change the meaning of the program (the name is already used here)`);
    }
    const edits: TextEdit[] = spans.map((s) => ({ range: rangeOf(doc, s), newText: newName }));
    return { changes: { [uri]: edits } };
  }

  private format(uri: string): TextEdit[] {
    const doc = this.documents.get(uri);
    if (!doc) return [];
    const text = doc.getText();
    const r = formatText(text);
    if (!r.ok || !r.changed) return [];
    return [{ range: { start: doc.positionAt(0), end: doc.positionAt(text.length) }, newText: r.text }];
  }
}

/**
 * The call whose argument list contains `offset`: the callee as written (`f`, `Module.f`), the
 * offset of its `(`, the 0-based argument the cursor is in, and that argument's name if it is
 * written `name: …`. Brackets and string literals between are skipped.
 */
function enclosingCall(text: string, offset: number): { callee: string; open: number; argument: number; currentName: string | null } | null {
  // Forward over the text before the cursor, keeping the open brackets (strings skipped whole).
  const stack: { char: string; at: number; commas: number; lastComma: number }[] = [];
  for (let i = 0; i < offset; i++) {
    const c = text[i]!;
    if (c === '/' && text[i + 1] === '/') {
      while (i < offset && text[i] !== '\n') i++;
    } else if (c === '"') {
      i++;
      while (i < offset && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    } else if (c === '(' || c === '[' || c === '{') {
      stack.push({ char: c, at: i, commas: 0, lastComma: i });
    } else if (c === ')' || c === ']' || c === '}') {
      stack.pop();
    } else if (c === ',' && stack.length > 0) {
      const top = stack[stack.length - 1]!;
      top.commas++;
      top.lastComma = i;
    }
  }
  const top = stack[stack.length - 1];
  if (!top || top.char !== '(') return null;
  let j = top.at;
  while (j > 0 && /[A-Za-z0-9_.]/.test(text[j - 1]!)) j--;
  const callee = text.slice(j, top.at);
  if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/.test(callee) || isKeyword(callee)) return null;
  const current = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:/.exec(text.slice(top.lastComma + 1, offset));
  return { callee, open: top.at, argument: top.commas, currentName: current ? current[1]! : null };
}

function codeBlock(s: string): string {
  return '```osprey\n' + s + '\n```';
}

function describeTarget(t: Target): string {
  switch (t.kind) {
    case 'var':
      return describeSymbol(t.symbol);
    case 'ctor':
      return describeCtor(t.ctor);
    case 'type':
      return describeAdt(t.adt);
    case 'field': {
      const f = t.ctor.fields[t.index]!;
      return `${t.ctor.name}.${f.name}: ${showType(f.type)}`;
    }
    case 'builtin':
      return builtinSignature(t.name) ?? t.name;
  }
}

function rangeOf(doc: TextDocument, span: Span): Range {
  return { start: doc.positionAt(span.start), end: doc.positionAt(span.end) };
}

function pathOf(uri: string): string {
  if (!uri.startsWith('file://')) return uri;
  try {
    return decodeURIComponent(new URL(uri).pathname);
  } catch {
    return uri;
  }
}

/** `osprey lsp`: serves one client over stdin/stdout until it sends `exit`. */
export function lspMain(argv: string[]): Promise<number> {
  const unknown = argv.filter((a) => a !== '--stdio');
  if (unknown.length > 0) {
    process.stderr.write(`osprey lsp: unexpected argument: ${unknown[0]} (the server speaks LSP on stdin/stdout)\n`);
    return Promise.resolve(2);
  }
  return new Promise((resolveExit) => {
    const connection = createConnection(process.stdin, process.stdout);
    let shutdown = false;
    connection.onShutdown(() => {
      shutdown = true;
    });
    connection.onExit(() => resolveExit(shutdown ? 0 : 1));
    new OspreyLanguageServer(connection);
    connection.listen();
  });
}
