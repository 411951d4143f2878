// Pipeline position: the conductor. Runs the passes in order — lex, parse, check, exhaustiveness,
// lower, emit, link — and stops after the first pass that reported errors, so later passes only
// ever see well-formed input. This is the programmatic API used by the CLI (main.ts) and the tests.

import { readFileSync, statSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { DiagnosticBag, type Diagnostic } from './diagnostics/diagnostic.ts';
import { renderDiagnostics } from './diagnostics/render.ts';
import { SourceFile, SourceMap } from './source.ts';
import { loadImports, parseFileAt, type FileReader } from './syntax/imports.ts';
import { lex } from './syntax/lexer.ts';
import { parseProgram } from './syntax/parser.ts';
import type { Program } from './syntax/ast.ts';
import type { Capability } from './semantics/builtins.ts';
import { checkProgram } from './semantics/infer.ts';
import { checkExhaustiveness } from './semantics/exhaustive.ts';
import { checkInitialisationOrder } from './semantics/order.ts';
import { lintProgram } from './semantics/lint.ts';
import type { TypedProgram } from './semantics/typed.ts';
import { lowerProgram, type LowerOptions } from './lower/lower.ts';
import type { CoreProgram } from './lower/core.ts';
import { emitModule } from './codegen/emit.ts';
import type { IrModule } from './codegen/llvm.ts';
import { linkExecutable, makeBuildDir, removeBuildDir, type OptLevel, type Sanitizer } from './backend/link.ts';

export type { Capability } from './semantics/builtins.ts';
export type { OptLevel } from './backend/link.ts';

export interface CompileOptions {
  /** Capabilities removed by --sandbox / --no-* flags. */
  disabled?: ReadonlySet<Capability>;
  /** Instrument and link a sanitizer runtime flavour: ASan + UBSan or ThreadSanitizer. */
  sanitize?: Sanitizer;
  /** The directory a relative source path is relative to, for finding its imports (default: the
   *  process's working directory). */
  cwd?: string;
}

export interface FrontEndResult {
  /** The main file. */
  file: SourceFile;
  /** Every file of the program (the main file and what it imports); spans index into it. */
  sources?: SourceMap;
  diagnostics: Diagnostic[];
  /** Present when parsing succeeded. */
  ast?: Program;
  /** Present only when the program checked without errors. */
  typed?: TypedProgram;
}

/** Reads a source file (throws the fs error when it cannot be read). */
export function loadSource(path: string): SourceFile {
  return new SourceFile(path, readFileSync(path, 'utf8'));
}

export function parseSource(file: SourceFile): { ast: Program | null; diagnostics: Diagnostic[] } {
  const diags = new DiagnosticBag();
  const tokens = lex(file.text, diags);
  const ast = parseProgram(tokens, diags, file.text);
  return { ast: diags.hasErrors ? null : ast, diagnostics: sorted(diags.items) };
}

/** Reads an imported file from disk. */
export const readSourceFile: FileReader = (absolutePath) => {
  try {
    if (statSync(absolutePath).isDirectory()) return { kind: 'directory' };
    return { kind: 'file', text: readFileSync(absolutePath, 'utf8') };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
    return { kind: 'error', message: code === 'EACCES' ? 'permission denied' : (e as Error).message };
  }
};

/** Lex, parse, load imports, check and exhaustiveness: everything that can report a user error.
 *  Imports are read relative to `file.path` through `read` (the file system by default). */
export function checkSource(file: SourceFile, options: CompileOptions = {}, read: FileReader = readSourceFile): FrontEndResult {
  const { checked: _checked, ...result } = analyzeProgram(file, options, read);
  return result;
}

export interface AnalysisResult extends FrontEndResult {
  /** The checker's tree even when it reported errors (erroneous parts have the error type): what
   *  an editor needs for hover and navigation while the program is being written. Present when
   *  parsing succeeded. Never hand it to code generation; `typed` is the checked program. */
  checked?: TypedProgram;
}

/** checkSource for editor tools (the language server): the same passes and diagnostics, plus the
 *  typed tree of a program with errors. Every diagnostic is in `file`: errors inside an imported
 *  file are reported once at the `import` statement that (directly or not) loads it, since an
 *  editor shows a document's diagnostics at positions of that document. */
export function analyzeSource(file: SourceFile, options: CompileOptions = {}, read: FileReader = readSourceFile): AnalysisResult {
  const r = analyzeProgram(file, options, read);
  return r.sources ? { ...r, diagnostics: foldImportedDiagnostics(r.diagnostics, r.sources) } : r;
}

function analyzeProgram(file: SourceFile, options: CompileOptions, read: FileReader): AnalysisResult {
  const diags = new DiagnosticBag();
  const sources = new SourceMap(file);
  const ast = parseFileAt(file.text, 0, diags);
  const loaded = loadImports(ast, sources, diags, read, options.cwd);
  if (diags.hasErrors) return { file, sources, diagnostics: sorted(diags.items), ast };
  const checked = checkProgram(ast, diags, { disabled: options.disabled ?? new Set() }, loaded);
  checkExhaustiveness(checked, diags);
  if (!diags.hasErrors) checkInitialisationOrder(checked, diags);
  // Warnings only for a program that is otherwise correct: next to errors they are noise.
  if (!diags.hasErrors) lintProgram(checked, diags);
  if (diags.hasErrors) return { file, sources, diagnostics: sorted(diags.items), ast, checked };
  return { file, sources, diagnostics: sorted(diags.items), ast, typed: checked, checked };
}

/** Errors in imported files become one per import statement of the main file. */
function foldImportedDiagnostics(ds: Diagnostic[], sources: SourceMap): Diagnostic[] {
  const main = sources.files[0]!;
  const out: Diagnostic[] = [];
  const byImport = new Map<number, Diagnostic>();
  for (const d of ds) {
    let entry = sources.entryAt(d.span.start);
    if (entry === main) {
      out.push(d);
      continue;
    }
    // A warning in an imported file is shown when that file itself is open, not at the import.
    if (d.severity === 'warning') continue;
    const where = sources.location(d.span.start);
    while (entry.importedAt !== null && sources.entryAt(entry.importedAt.start) !== main) entry = sources.entryAt(entry.importedAt.start);
    const at = entry.importedAt!;
    const seen = byImport.get(at.start);
    if (seen) {
      seen.notes.push(`note: also: ${d.message} (${where})`);
      continue;
    }
    const folded: Diagnostic = { ...d, span: at, labels: [], primaryLabel: undefined, message: `error in imported file ${entry.file.path}: ${d.message}`, notes: [`note: at ${where}`] };
    byImport.set(at.start, folded);
    out.push(folded);
  }
  return out;
}

/** `file` may be the program's SourceMap (a multi-file program) or its only file. */
export function lowerTyped(file: SourceFile | SourceMap, typed: TypedProgram, options: LowerOptions = {}): CoreProgram {
  return lowerProgram(typed, (offset) => file.location(offset), options);
}

/** The verified LLVM module of a checked program. */
export function emitTyped(file: SourceFile | SourceMap, typed: TypedProgram, options: LowerOptions = {}): IrModule {
  return emitModule(lowerTyped(file, typed, options), basename(file.path));
}

export interface CompileResult extends FrontEndResult {
  /** Textual LLVM IR (when emitted). */
  llvm?: string;
}

/** Front end + code generation; `llvm` holds the IR text when the program is valid. */
export function compileToLlvm(file: SourceFile, options: CompileOptions = {}): CompileResult {
  const r = checkSource(file, options);
  if (!r.typed) return r;
  return { ...r, llvm: emitTyped(r.sources ?? file, r.typed).print() };
}

export interface BuildResult extends FrontEndResult {
  /** The executable, when the build succeeded. */
  executable?: string;
}

/** Compiles and links `file` into `output`. Link failures throw LinkError. */
export async function buildExecutable(file: SourceFile, output: string, opt: OptLevel, options: CompileOptions = {}): Promise<BuildResult> {
  const r = checkSource(file, options);
  if (!r.typed) return r;
  const ir = emitTyped(r.sources ?? file, r.typed);
  const dir = makeBuildDir();
  try {
    await linkExecutable(ir, output, opt, dir, { sanitize: options.sanitize });
  } finally {
    removeBuildDir(dir);
  }
  return { ...r, executable: output };
}

export function renderErrors(r: FrontEndResult): string {
  return renderDiagnostics(r.diagnostics, r.sources ?? r.file);
}

/** Default output name of `--compile` / `build` without -o: the source's basename, in the cwd. */
export function defaultOutputName(sourcePath: string): string {
  const b = basename(sourcePath, extname(sourcePath));
  return b.length ? b : 'a.out';
}

function sorted(ds: Diagnostic[]): Diagnostic[] {
  return [...ds].sort((a, b) => a.span.start - b.span.start);
}
