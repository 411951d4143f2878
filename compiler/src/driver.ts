// Pipeline position: the conductor. Runs the passes in order — lex, parse, check, exhaustiveness,
// lower, emit, link — and stops after the first pass that reported errors, so later passes only
// ever see well-formed input. This is the programmatic API used by the CLI (main.ts) and the tests.

import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { DiagnosticBag, type Diagnostic } from './diagnostics/diagnostic.ts';
import { renderDiagnostics } from './diagnostics/render.ts';
import { SourceFile } from './source.ts';
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
import { linkExecutable, makeBuildDir, removeBuildDir, type OptLevel } from './backend/link.ts';

export type { Capability } from './semantics/builtins.ts';
export type { OptLevel } from './backend/link.ts';

export interface CompileOptions {
  /** Capabilities removed by --sandbox / --no-* flags. */
  disabled?: ReadonlySet<Capability>;
  /** Link with ASan + UBSan (the runtime's asan flavour). */
  sanitize?: boolean;
}

export interface FrontEndResult {
  file: SourceFile;
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

/** Lex, parse, check and exhaustiveness: everything that can report a user error. */
export function checkSource(file: SourceFile, options: CompileOptions = {}): FrontEndResult {
  const { checked: _checked, ...result } = analyzeSource(file, options);
  return result;
}

export interface AnalysisResult extends FrontEndResult {
  /** The checker's tree even when it reported errors (erroneous parts have the error type): what
   *  an editor needs for hover and navigation while the program is being written. Present when
   *  parsing succeeded. Never hand it to code generation; `typed` is the checked program. */
  checked?: TypedProgram;
}

/** checkSource for editor tools (the language server): the same passes and diagnostics, plus the
 *  typed tree of a program with errors. */
export function analyzeSource(file: SourceFile, options: CompileOptions = {}): AnalysisResult {
  const diags = new DiagnosticBag();
  const tokens = lex(file.text, diags);
  const ast = parseProgram(tokens, diags, file.text);
  if (diags.hasErrors) return { file, diagnostics: sorted(diags.items), ast };
  const checked = checkProgram(ast, diags, { disabled: options.disabled ?? new Set() });
  checkExhaustiveness(checked, diags);
  if (!diags.hasErrors) checkInitialisationOrder(checked, diags);
  // Warnings only for a program that is otherwise correct: next to errors they are noise.
  if (!diags.hasErrors) lintProgram(checked, diags);
  if (diags.hasErrors) return { file, diagnostics: sorted(diags.items), ast, checked };
  return { file, diagnostics: sorted(diags.items), ast, typed: checked, checked };
}

export function lowerTyped(file: SourceFile, typed: TypedProgram, options: LowerOptions = {}): CoreProgram {
  return lowerProgram(typed, (offset) => file.location(offset), options);
}

/** The verified LLVM module of a checked program. */
export function emitTyped(file: SourceFile, typed: TypedProgram, options: LowerOptions = {}): IrModule {
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
  return { ...r, llvm: emitTyped(file, r.typed).print() };
}

export interface BuildResult extends FrontEndResult {
  /** The executable, when the build succeeded. */
  executable?: string;
}

/** Compiles and links `file` into `output`. Link failures throw LinkError. */
export async function buildExecutable(file: SourceFile, output: string, opt: OptLevel, options: CompileOptions = {}): Promise<BuildResult> {
  const r = checkSource(file, options);
  if (!r.typed) return r;
  const ir = emitTyped(file, r.typed);
  const dir = makeBuildDir();
  try {
    await linkExecutable(ir, output, opt, dir, { sanitize: options.sanitize });
  } finally {
    removeBuildDir(dir);
  }
  return { ...r, executable: output };
}

export function renderErrors(r: FrontEndResult): string {
  return renderDiagnostics(r.diagnostics, r.file);
}

/** Default output name of `--compile` / `build` without -o: the source's basename, in the cwd. */
export function defaultOutputName(sourcePath: string): string {
  const b = basename(sourcePath, extname(sourcePath));
  return b.length ? b : 'a.out';
}

function sorted(ds: Diagnostic[]): Diagnostic[] {
  return [...ds].sort((a, b) => a.span.start - b.span.start);
}
