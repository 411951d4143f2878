// Pipeline position: untyped AST (syntax/ast.ts) → typed tree (typed.ts). Resolves every name,
// infers and checks types by unification (types.ts), checks call argument rules (docs/guide/05-functions.md#named-arguments)
// and patterns, and reports errors as diagnostics. An expression with an error gets the error type,
// which unifies with anything, so one mistake is reported once. Exhaustiveness is a separate pass
// (exhaustive.ts) over this pass's output.

import { closestName, Code, ice, type Diagnostic, type DiagnosticBag, type Label } from '../diagnostics/diagnostic.ts';
import { joinSpans, type Span } from '../source.ts';
import type { Arg, Expr, ExternDecl, FieldInit, FnDecl, ModuleDecl, Ident, MatchArm, Program, Stmt } from '../syntax/ast.ts';
import { arithmeticIsString, paramRule, returnRule } from './annotations.ts';
import { builtinArityMessage, builtinTable, canonicalBuiltinArg, instantiateBuiltin, reservedNames, UNSUPPORTED_BUILTINS, type Builtin, type Capability, type RuntimeBuiltin } from './builtins.ts';
import { RESULT_CTORS, TypeEnv } from './resolve.ts';
import { PatternChecker } from './patterns.ts';
import type { ImportBinding, ImportedFile } from '../syntax/imports.ts';
import { article, refinedCtor, Scope, withArticle } from './scope.ts';
import type { TArg, TArm, TExpr, TSelectArm, TStmt, TypedFn, TypedProgram, VarSymbol, SymbolKind } from './typed.ts';
import {
  adtType, AnyType, Bool, channelType, ErrorType, fiberType, fnType, freshVar, instantiate, Int, isCon, listType, prune, resultType, showType, Str, unify, Unit, zonk,
  type AdtInfo, type CtorInfo, type Type, type Validator,
} from './types.ts';

/** Where a user reads when a type annotation may be omitted (the rules annotations.ts implements). */
const ANNOTATION_RULES = 'note: see docs/guide/05-functions.md#when-types-may-be-omitted';

/** Words of other languages that Osprey spells differently or does without: an undefined name
 *  with one of these gets a label, a hint saying what to write instead, and the guide section. */
interface ForeignWord { label: string; hint: string; see: string }
const LOOP_WORD: ForeignWord = {
  label: 'Osprey has no loops',
  hint: 'hint: iterate with `range(a, b) |> forEach(fn(i) => …)` (or `map`, `filter`, `fold`), or write a recursive function (self tail calls run in constant stack space)',
  see: 'note: see docs/guide/19-coming-from-other-languages.md#loops',
};
const NULL_WORD: ForeignWord = {
  label: 'Osprey has no null and no exceptions',
  hint: 'hint: a value that may be missing or a step that may fail is a Result (`Success(v)` / `Error("why")`) or a union with a unit constructor',
  see: 'note: see docs/guide/19-coming-from-other-languages.md#null-and-exceptions',
};
const FOREIGN_WORDS: ReadonlyMap<string, ForeignWord> = new Map([
  ...['for', 'while', 'loop', 'do', 'break', 'continue'].map((w): [string, ForeignWord] => [w, LOOP_WORD]),
  ...['null', 'nil', 'None', 'undefined', 'throw', 'try', 'catch'].map((w): [string, ForeignWord] => [w, NULL_WORD]),
  ['and', { label: 'not an operator in Osprey', hint: 'hint: logical and is written `&&`: `a && b`', see: 'note: see docs/guide/03-values-and-types.md#operators-and-precedence' }],
  ['or', { label: 'not an operator in Osprey', hint: 'hint: logical or is written `||`: `a || b`', see: 'note: see docs/guide/03-values-and-types.md#operators-and-precedence' }],
  ['not', { label: 'not an operator in Osprey', hint: 'hint: negation is written `!`: `!a`', see: 'note: see docs/guide/03-values-and-types.md#operators-and-precedence' }],
  ['return', { label: 'Osprey has no `return`', hint: 'hint: the last expression of a function body or block is its value; leave out `return`', see: 'note: see docs/guide/19-coming-from-other-languages.md#return' }],
  ['else', { label: 'Osprey has no `if`/`else`', hint: 'hint: choose with `match cond { true => … false => … }`', see: 'note: see docs/guide/19-coming-from-other-languages.md#if-and-else' }],
]);

export interface CheckOptions {
  /** Capabilities removed by security flags (docs/guide/18-security-flags.md). */
  disabled: ReadonlySet<Capability>;
}

/** The files a program imports (syntax/imports.ts), for a multi-file program. */
export interface ImportedFiles {
  mainImports: ReadonlyMap<string, ImportBinding>;
  /** Dependency order: each file after the files it imports. */
  imported: readonly ImportedFile[];
}

const NO_IMPORTS: ImportedFiles = { mainImports: new Map(), imported: [] };

export function checkProgram(program: Program, diags: DiagnosticBag, options: CheckOptions, files: ImportedFiles = NO_IMPORTS): TypedProgram {
  return new Checker(diags, options).checkProgram(program, files);
}

function isIteratorBuiltinName(name: string): boolean {
  return name === 'forEach' || name === 'map' || name === 'filter' || name === 'fold';
}

/** A List<T> given for an Iterator<U>: unifies T with U; false when it is not that case. */
function listAsIterator(given: Type, expected: Type): boolean {
  const g = prune(given);
  const e = prune(expected);
  if (!(g.kind === 'con' && g.name === 'List' && e.kind === 'con' && e.name === 'Iterator')) return false;
  return unify(g.args[0]!, e.args[0]!);
}

/** The written form of a module path expression (`geo`, `geo.Shapes`), for messages. */
function modulePath(e: Expr): string {
  if (e.kind === 'ident') return e.name;
  if (e.kind === 'field') return `${modulePath(e.object)}.${e.name.name}`;
  return '…';
}


/** A deferred check that needs the final types (after all unification). */
type Deferred =
  | { kind: 'display'; type: Type; span: Span }
  | { kind: 'equality'; type: Type; span: Span; op: string };


class Checker {
  private readonly types: TypeEnv;
  private readonly patterns: PatternChecker;
  private readonly builtins: Map<string, Builtin>;
  private readonly reserved: Set<string>;
  private nextSymbol = 1;
  private readonly nodes: TExpr[] = [];
  private readonly symbols: VarSymbol[] = [];
  private readonly deferred: Deferred[] = [];
  /** Modules (docs/guide/13-modules.md): each declaration → the scope holding its members. */
  private readonly moduleScopes = new Map<ModuleDecl, Scope>();
  /** Statically known lengths of list values: `List<T, N>` annotations and list literals. */
  private readonly listLengths = new WeakMap<VarSymbol, number>();

  /** The length of a list expression when it is known without running the program. */
  private listLength(e: TExpr): number | undefined {
    if (e.kind === 'list') return e.elements.length;
    if (e.kind === 'var') return this.listLengths.get(e.symbol);
    if (e.kind === 'block' && e.result) return this.listLength(e.result);
    return undefined;
  }

  /** `List<T, N>` (docs/guide/11-lists-and-iteration.md): a list whose length is known must have exactly N elements. */
  private checkListLength(value: TExpr, declared: number, origin: Label): void {
    const known = this.listLength(value);
    if (known === undefined || known === declared) return;
    this.diags.error(Code.TypeMismatch, value.span, `this list has ${known} element${known === 1 ? '' : 's'}, but a List of length ${declared} is expected`, {
      label: `${known} element${known === 1 ? '' : 's'}`,
      labels: [origin],
      notes: [`note: the length in \`List<T, ${declared}>\` is part of the declaration and is checked wherever the list's length is known`],
    });
  }

  /** E0500 reports whose example return type is refined from the body (checkFnBody). */
  private readonly missingReturn = new Map<FnDecl, Diagnostic>();
  /** Links of an operator chain already inferred by inferExpr, consumed by their parent. */
  private readonly chainLinks = new Map<Expr, TExpr>();

  constructor(
    private readonly diags: DiagnosticBag,
    private readonly options: CheckOptions,
  ) {
    this.types = new TypeEnv(diags);
    this.patterns = new PatternChecker(diags, this.types, (name, kind, type, span) => this.symbol(name, kind, type, span));
    this.builtins = builtinTable(options.disabled);
    this.reserved = reservedNames();
  }

  // ---- program -------------------------------------------------------------------------------

  checkProgram(program: Program, files: ImportedFiles = NO_IMPORTS): TypedProgram {
    const stmts = program.stmts;
    const moduleDeclsOf = (list: Stmt[]) => list.filter((s): s is ModuleDecl => s.kind === 'module');
    const moduleDecls = moduleDeclsOf(stmts);
    // Modules are namespaces (docs/guide/13-modules.md): their types join the program's, their functions are
    // top-level functions named `Module.fn`, their lets are globals. An imported file is a
    // namespace too (its scope has no parent: it sees its own names, its imports and the
    // built-ins); its types and constructors join the program's, like a module's.
    const allStmts = [program, ...files.imported.map((f) => f.program)].flatMap((p) => [...p.stmts, ...moduleDeclsOf(p.stmts).flatMap((m) => m.body)]);
    this.types.collect(allStmts.filter((s) => s.kind === 'type'));
    const global = new Scope(null, true);
    const fileScopes = new Map<string, Scope>(files.imported.map((f) => [f.key, new Scope(null, true)]));
    const declareModules = (decls: ModuleDecl[], owner: Scope) => {
      for (const m of decls) {
        if (owner.modules.has(m.name.name)) {
          this.diags.error(Code.DuplicateDefinition, m.name.span, `the module '${m.name.name}' is declared twice`);
          continue;
        }
        const scope = new Scope(owner, true);
        owner.modules.set(m.name.name, scope);
        this.moduleScopes.set(m, scope);
      }
    };
    const bindImports = (imports: ReadonlyMap<string, ImportBinding>, owner: Scope) => {
      for (const [name, binding] of imports) {
        const target = fileScopes.get(binding.key);
        if (!target) continue;
        if (owner.modules.has(name)) {
          this.diags.error(Code.DuplicateDefinition, binding.span, `the import '${name}' has the name of a module declared in this file`, {
            notes: ['note: inside this file, `' + name + '.x` would be ambiguous; rename the module or the imported file'],
          });
          continue;
        }
        owner.imports.set(name, target);
      }
    };
    declareModules(moduleDecls, global);
    bindImports(files.mainImports, global);
    for (const f of files.imported) {
      declareModules(moduleDeclsOf(f.program.stmts), fileScopes.get(f.key)!);
      bindImports(f.imports, fileScopes.get(f.key)!);
    }

    // Hoisted declarations: every top-level fn gets its signature first (docs/guide/01-getting-started.md#scripts-statements-run-top-to-bottom).
    const fnDecls: { decl: FnDecl; fn: TypedFn; scope: Scope }[] = [];
    const declareIn = (s: FnDecl, scope: Scope, prefix: string, fileTopLevel: boolean) => {
      const fn = this.declareFn(s, false);
      if (prefix) fn.name = `${prefix}.${fn.name}`;
      if (fileTopLevel && !this.checkRedefinition(s.name)) return;
      const prev = fnDecls.find((d) => d.scope === scope && d.decl.name.name === s.name.name);
      if (prev) {
        this.diags.error(Code.DuplicateDefinition, s.name.span, `the function '${s.name.name}' is defined twice`, {
          labels: [{ span: prev.decl.name.span, message: 'first defined here' }],
        });
        return;
      }
      scope.vars.set(s.name.name, fn.symbol!);
      fnDecls.push({ decl: s, fn, scope });
    };
    const declareFileFns = (list: Stmt[], fileScope: Scope, prefix: string) => {
      for (const s of list) if (s.kind === 'fn') declareIn(s, fileScope, prefix, true);
      for (const m of moduleDeclsOf(list)) {
        const scope = this.moduleScopes.get(m);
        if (!scope) continue;
        for (const s of m.body) if (s.kind === 'fn') declareIn(s, scope, prefix ? `${prefix}.${m.name.name}` : m.name.name, false);
      }
    };
    declareFileFns(stmts, global, '');
    for (const f of files.imported) declareFileFns(f.program.stmts, fileScopes.get(f.key)!, f.key);

    // Field constraints (docs/guide/09-constraints.md) become validator functions of the constructor's fields.
    const validators: TypedFn[] = [];
    for (const ctor of this.types.ctors.values()) {
      for (const f of ctor.fields) {
        if (!f.constraint) continue;
        const v = this.checkConstraint(ctor, f.name, f.constraint, global);
        if (v) {
          ctor.validators.push(v);
          validators.push(v.fn);
        }
      }
    }

    const externs: VarSymbol[] = [];
    for (const s of stmts) {
      if (s.kind !== 'extern') continue;
      const sym = this.declareExtern(s);
      if (!this.checkRedefinition(s.name)) continue;
      if (global.vars.has(s.name.name)) {
        this.diags.error(Code.DuplicateDefinition, s.name.span, `the function '${s.name.name}' is defined twice`);
        continue;
      }
      global.vars.set(s.name.name, sym);
      externs.push(sym);
    }

    // Top-level statements run in program order, and a top-level function sees the globals in
    // scope at its declaration: a later `let` of the same name shadows only for code after it.
    // A global declared only after the function is still visible to it (functions are hoisted);
    // initialisation-order check (order.ts) rejects a call that would read it too early.
    const topLevel: TStmt[] = [];
    // Imported files' lets are initialised first, each file after the files it imports.
    for (const f of files.imported) {
      for (const s of f.program.stmts) {
        if (s.kind === 'fn' || s.kind === 'type' || s.kind === 'import') continue;
        if (s.kind === 'extern') {
          this.diags.error(Code.ImportMisplaced, s.span, '`extern fn` declarations are only allowed in the main file', {
            notes: ['hint: declare the external function in the main file and pass it to this file\'s functions'],
          });
          continue;
        }
        if (s.kind === 'expr') {
          this.diags.error(Code.ImportMisplaced, s.span, 'an imported file can only declare things (let, fn, type, module, import)', {
            label: 'this statement would run when the file is imported',
            notes: ['hint: put it in a function, or in the main file'],
          });
          continue;
        }
        const t = this.checkStmt(s, fileScopes.get(f.key)!);
        if (t) topLevel.push(t);
      }
    }
    const visibleAtDecl = new Map<FnDecl, Map<string, VarSymbol>>();
    const firstGlobal = new Map<string, VarSymbol>();
    for (const s of stmts) {
      if (s.kind === 'fn') visibleAtDecl.set(s, new Map(global.vars));
      if (s.kind === 'fn' || s.kind === 'type' || s.kind === 'extern' || s.kind === 'import') continue;
      const t = this.checkStmt(s, global);
      if (t) topLevel.push(t);
      if (t?.kind === 'let' && !firstGlobal.has(t.symbol.name)) firstGlobal.set(t.symbol.name, t.symbol);
    }
    for (const { decl, fn, scope } of fnDecls) {
      const visible = visibleAtDecl.get(decl);
      if (scope !== global || !visible) {
        this.checkFnBody(decl, fn, scope);
        continue;
      }
      const view = new Scope(null, true);
      // The program's modules and imports are seen from every top-level function.
      for (const [name, m] of global.modules) view.modules.set(name, m);
      for (const [name, m] of global.imports) view.imports.set(name, m);
      for (const [name, sym] of firstGlobal) if (!visible.has(name)) view.vars.set(name, sym);
      for (const [name, sym] of visible) view.vars.set(name, sym);
      this.checkFnBody(decl, fn, view);
    }

    let main: TypedFn | null = null;
    const mainDecl = fnDecls.find((d) => d.scope === global && d.decl.name.name === 'main');
    if (mainDecl) {
      main = mainDecl.fn;
      const ret = prune(main.returnType);
      if (mainDecl.decl.params.length > 0) {
        this.diags.error(Code.MainSignature, mainDecl.decl.name.span, "'main' cannot take parameters", {
          notes: ['note: the entry point is `fn main() -> Int` (its value is the exit status) or `fn main() -> Unit`'],
        });
      } else if (!(ret.kind === 'error' || isCon(ret, 'Int') || isCon(ret, 'Unit'))) {
        this.diags.error(Code.MainSignature, mainDecl.decl.name.span, `'main' must return Int or Unit, not ${showType(ret)}`);
      }
    }

    this.runDeferred();
    this.finalize();
    return { functions: [...fnDecls.map((d) => d.fn), ...validators], topLevel, externs, main, adts: [...this.types.adts.values()] };
  }

  private checkRedefinition(name: Ident): boolean {
    if (!this.reserved.has(name.name)) return true;
    this.diags.error(Code.BuiltinRedefinition, name.span, `cannot redefine built-in function '${name.name}'`, {
      label: 'this name belongs to a built-in function',
      notes: ['note: built-in function names are reserved; choose another name'],
    });
    return false;
  }

  private runDeferred(): void {
    const earlierErrors = this.diags.hasErrors;
    for (const d of this.deferred) {
      const t = prune(d.type);
      if (t.kind === 'error') continue;
      if (t.kind === 'var') {
        // After other errors an unknown type is almost always their consequence: stay quiet.
        if (earlierErrors) continue;
        this.diags.error(Code.TypeMismatch, d.span, 'the type of this value cannot be inferred', {
          notes: ['hint: add a type annotation'],
        });
        continue;
      }
      if (d.kind === 'display') {
        if (isCon(t, 'Int') || isCon(t, 'String') || isCon(t, 'Bool') || isCon(t, 'any')) continue;
        if (t.kind === 'con' && t.adt?.builtin) continue; // ConstructionError displays as a record
        // A fiber or channel shows its handle number (docs/guide/12-strings-and-display.md#display).
        if (isCon(t, 'Fiber') || isCon(t, 'Channel')) continue;
        const notes = isCon(t, 'Result')
          ? ['hint: a Result must be matched first: `match r { Success { value } => … Error { message } => … }`']
          : ['note: Int, String and Bool values can be displayed'];
        this.diags.error(Code.NoDisplay, d.span, `no toString implementation for type: ${showType(t)}`, {
          label: `this is ${withArticle(showType(t))}`,
          notes,
        });
      } else {
        const ok = isCon(t, 'Int') || isCon(t, 'String') || isCon(t, 'Bool') ||
          (t.kind === 'con' && t.adt !== undefined && t.adt.ctors.every((c) => c.fields.length === 0));
        if (!ok) {
          this.diags.error(Code.BadOperand, d.span, `values of type ${showType(t)} cannot be compared with '${d.op}'`, {
            notes: ['note: == and != compare Int, Bool, String and unit constructors of one union'],
          });
        }
      }
    }
  }

  /** Replaces every type by its final form; variables nothing constrained become Unit. */
  private finalize(): void {
    const fin = (t: Type): Type => {
      const z = zonk(t);
      const fix = (x: Type): Type => {
        if (x.kind === 'var') {
          x.ref = Unit;
          return Unit;
        }
        if (x.kind === 'con') return x.args.length ? { ...x, args: x.args.map(fix) } : x;
        if (x.kind === 'fn') return { kind: 'fn', params: x.params.map(fix), ret: fix(x.ret) };
        return x;
      };
      return fix(z);
    };
    for (const n of this.nodes) n.type = fin(n.type);
    for (const s of this.symbols) {
      s.type = fin(s.type);
      if (s.fn) s.fn.returnType = fin(s.fn.returnType);
    }
  }

  // ---- helpers -------------------------------------------------------------------------------

  private node<T extends TExpr>(n: T): T {
    this.nodes.push(n);
    return n;
  }

  private errorExpr(span: Span): TExpr {
    return this.node({ kind: 'unit', type: ErrorType, span });
  }

  private symbol(name: string, kind: SymbolKind, type: Type, span: Span): VarSymbol {
    const s: VarSymbol = { id: this.nextSymbol++, name, kind, type, span };
    this.symbols.push(s);
    return s;
  }

  private mismatch(span: Span, expected: Type, found: Type, context?: string, origin?: Label): void {
    this.diags.error(Code.TypeMismatch, span, `type mismatch: expected ${showType(expected)}, found ${showType(found)}${context ? ' ' + context : ''}`, {
      label: `this is ${withArticle(showType(found))}`,
      labels: origin ? [origin] : [],
      notes: resultAsPayloadHint(found, expected),
    });
  }

  /**
   * A value of a known static type flowing into an `any` position is boxed with its run-time type
   * (docs/guide/03-values-and-types.md#any: `let x: any = 42`, returning from `-> any`, passing to an `any` parameter).
   */
  private coerce(e: TExpr, target: Type): TExpr {
    const t = prune(target);
    const s = prune(e.type);
    if (!isCon(t, 'any') || isCon(s, 'any') || s.kind === 'var' || s.kind === 'error') return e;
    return this.node({ kind: 'box', value: e, type: AnyType, span: e.span });
  }

  /** Unifies the expression's type with `expected`, reporting a mismatch at the expression. */
  private expect(e: TExpr, expected: Type, context?: string, origin?: Label): void {
    if (!unify(e.type, expected)) this.mismatch(e.span, zonk(expected), zonk(e.type), context, origin);
  }

  private instantiateAdt(adt: AdtInfo): { type: Type; args: Type[] } {
    const args = adt.typeParams.map(() => freshVar());
    return { type: adtType(adt, args), args };
  }

  // ---- functions -----------------------------------------------------------------------------

  /** Two parameters of one function with the same name: the second would silently win. */
  private checkDuplicateParams(params: readonly { name: Ident }[], what: string): void {
    const first = new Map<string, Ident>();
    for (const p of params) {
      const prev = first.get(p.name.name);
      if (!prev) {
        first.set(p.name.name, p.name);
        continue;
      }
      this.diags.error(Code.DuplicateDefinition, p.name.span, `the parameter '${p.name.name}' is declared twice in ${what}`, {
        label: 'declared again here',
        labels: [{ span: prev.span, message: 'first declared here' }],
        notes: ['hint: give each parameter its own name'],
      });
    }
  }

  /** Creates the symbol and signature of a `fn` declaration (annotation rules: docs/guide/05-functions.md#when-types-may-be-omitted). */
  private declareFn(decl: FnDecl, nested: boolean): TypedFn {
    const rule = returnRule(decl);
    const fname = decl.name.name;
    this.checkDuplicateParams(decl.params, `'${fname}'`);
    const params: VarSymbol[] = [];
    for (const p of decl.params) {
      let type: Type;
      if (p.type) type = this.types.resolve(p.type);
      else {
        const r = paramRule(decl, p.name.name);
        if (r === 'Int') type = Int;
        else if (r === 'return') type = this.types.resolve(decl.returnType!);
        else {
          this.diags.error(Code.MissingParamType, p.name.span,
            `Parameter '${p.name.name}' in function '${fname}' requires explicit type annotation - type cannot be inferred from usage`, {
              label: 'needs a type',
              notes: [`hint: write '${p.name.name}: TYPE', for example '${p.name.name}: Int'`, ANNOTATION_RULES],
            });
          type = ErrorType;
        }
      }
      const param = this.symbol(p.name.name, 'param', type, p.name.span);
      const length = p.type ? declaredListLength(p.type) : undefined;
      if (length !== undefined) this.listLengths.set(param, length);
      params.push(param);
    }
    let ret: Type;
    switch (rule.kind) {
      case 'annotated':
        ret = this.types.resolve(decl.returnType!);
        break;
      case 'literal':
        ret = rule.literal === 'Int' ? Int : rule.literal === 'String' ? Str : Bool;
        break;
      case 'comparison':
        ret = Bool;
        break;
      case 'arithmetic': {
        const byName = new Map(params.map((p) => [p.name, p]));
        ret = arithmeticIsString(decl.body, (n) => { const s = byName.get(n); return s !== undefined && isCon(s.type, 'String'); }) ? Str : Int;
        break;
      }
      case 'missing':
        this.diags.error(Code.MissingReturnType, decl.name.span,
          `Function '${fname}' requires explicit return type annotation - type cannot be inferred from body`, {
            label: 'needs `-> TYPE`',
            notes: ['note: only a literal, arithmetic or comparison body lets the return type be omitted',
              `hint: declare it, for example: fn ${fname}(…) -> Int = …`, ANNOTATION_RULES],
          });
        // The example type is replaced by the body's own type once the body is checked.
        this.missingReturn.set(decl, this.diags.items[this.diags.items.length - 1]!);
        ret = ErrorType;
        break;
      case 'implicitAny':
        this.diags.error(Code.ImplicitAny, rule.operand.span,
          `Function '${fname}' cannot implicitly return 'any' type - if 'any' return type is intended, declare it explicitly with '-> any'`, {
            label: 'the type of this operand is not known from the signature',
            notes: [`hint: declare the return type, for example: fn ${fname}(…) -> Int = …`, ANNOTATION_RULES],
          });
        ret = ErrorType;
        break;
    }
    const type = fnType(params.map((p) => p.type), ret);
    const sym = this.symbol(fname, 'fn', type, decl.name.span);
    const fn: TypedFn = { symbol: sym, name: fname, params, returnType: ret, body: this.errorExpr(decl.span), nested, span: decl.span };
    sym.fn = fn;
    return fn;
  }

  /**
   * `field: T where NAME(args)`: a single call returning Bool whose arguments may name any field of
   * the constructor. Checked once, as the function `(fields…) -> Bool`.
   */
  private checkConstraint(ctor: CtorInfo, field: string, constraint: Expr, global: Scope): Validator | null {
    if (constraint.kind !== 'call' || constraint.callee.kind !== 'ident') {
      this.diags.error(Code.Syntax, constraint.span, 'a field constraint is a single function call: `where NAME(args)`');
      return null;
    }
    if (ctor.adt.typeParams.length > 0) {
      this.diags.error(Code.Unsupported, constraint.span, 'field constraints on generic types are not supported yet');
      return null;
    }
    const scope = new Scope(global);
    const params = ctor.fields.map((f) => {
      const s = this.symbol(f.name, 'param', f.type, f.span);
      scope.vars.set(f.name, s);
      return s;
    });
    const body = this.inferExpr(constraint, scope, Bool);
    if (!unify(body.type, Bool)) {
      this.diags.error(Code.TypeMismatch, constraint.span, `a field constraint must return Bool, but this returns ${withArticle(showType(zonk(body.type)))}`);
    }
    const name = `${ctor.name}.where.${field}`;
    const sym = this.symbol(name, 'fn', fnType(params.map((p) => p.type), Bool), constraint.span);
    const fn: TypedFn = { symbol: sym, name, params, returnType: Bool, body, nested: false, span: constraint.span };
    sym.fn = fn;
    return { field, constraint: constraint.callee.name, fn };
  }

  /** `extern fn NAME(p: T, …) -> R` (docs/guide/05-functions.md#calling-c-extern-fn): every parameter annotated, return type Int by default. */
  private declareExtern(decl: ExternDecl): VarSymbol {
    if (this.options.disabled.has('ffi')) {
      this.diags.error(Code.Unsupported, decl.span, '`extern fn` declarations are disabled by --no-ffi/--sandbox', {
        notes: ['note: FFI lets a program call arbitrary native code'],
      });
      // Still declared, so its calls do not cascade into "undefined function" errors.
    }
    const cType = (t: Type, span: Span, what: string): Type => {
      if (isCon(t, 'Int') || isCon(t, 'Bool') || isCon(t, 'String') || isCon(t, 'Unit') || prune(t).kind === 'error') return t;
      this.diags.error(Code.Unsupported, span, `${what} of an extern function must be Int, Bool, String or Unit, not ${showType(t)}`);
      return ErrorType;
    };
    this.checkDuplicateParams(decl.params, `the extern function '${decl.name.name}'`);
    const params = decl.params.map((p) => {
      if (!p.type) {
        this.diags.error(Code.MissingParamType, p.name.span, `Parameter '${p.name.name}' in extern function '${decl.name.name}' requires explicit type annotation`, {
          label: 'needs a type',
        });
        return { name: p.name.name, type: ErrorType };
      }
      return { name: p.name.name, type: cType(this.types.resolve(p.type), p.type.span, 'a parameter') };
    });
    const ret = decl.returnType ? cType(this.types.resolve(decl.returnType), decl.returnType.span, 'the return type') : Int;
    const sym = this.symbol(decl.name.name, 'extern', fnType(params.map((p) => p.type), ret), decl.name.span);
    sym.extern = { params, ret };
    return sym;
  }

  private checkFnBody(decl: FnDecl, fn: TypedFn, outer: Scope): void {
    const scope = new Scope(outer);
    for (const p of fn.params) scope.vars.set(p.name, p);
    const body = this.coerce(this.inferExpr(decl.body, scope, fn.returnType), fn.returnType);
    const missing = this.missingReturn.get(decl);
    const bodyType = zonk(body.type);
    if (missing && !containsUnknown(bodyType)) {
      const shown = showType(bodyType);
      missing.notes = missing.notes.map((n) => n.startsWith('hint: declare it') ? `hint: the body is ${withArticle(shown)}: fn ${fn.name}(…) -> ${shown} = …` : n);
    }
    if (!unify(body.type, fn.returnType)) {
      this.diags.error(Code.TypeMismatch, bodyResultSpan(body),
        `type mismatch: '${fn.name}' is declared to return ${showType(zonk(fn.returnType))}, but its body is ${withArticle(showType(zonk(body.type)))}`, {
          label: `this is ${withArticle(showType(zonk(body.type)))}`,
          labels: decl.returnType ? [{ span: decl.returnType.span, message: 'declared here' }] : [],
        });
    }
    fn.body = body;
  }

  // ---- statements ----------------------------------------------------------------------------

  private checkStmt(s: Stmt, scope: Scope): TStmt | null {
    switch (s.kind) {
      case 'let': {
        const annotated = s.type ? this.types.resolve(s.type) : null;
        const raw = this.inferExpr(s.value, scope, annotated ?? undefined);
        const value = annotated ? this.coerce(raw, annotated) : raw;
        if (annotated && isCon(value.type, 'any') && !isCon(annotated, 'any') && prune(annotated).kind !== 'error') {
          this.diags.error(Code.TypeMismatch, value.span, `cannot assign 'any' to '${showType(annotated)}' without pattern matching`, {
            notes: ['hint: match it with type patterns: `match v { n: Int => … _ => … }`'],
          });
        } else if (annotated) this.expect(value, annotated, undefined, { span: s.type!.span, message: `expected ${showType(zonk(annotated))} because of this annotation` });
        const sym = this.symbol(s.name.name, scope.topLevel ? 'global' : 'local', annotated ?? value.type, s.name.span);
        const declared = s.type ? declaredListLength(s.type) : undefined;
        if (declared !== undefined) {
          this.checkListLength(value, declared, { span: s.type!.span, message: `'${s.name.name}' is declared ${typeText(s.type!)} here` });
          this.listLengths.set(sym, declared);
        } else {
          const known = this.listLength(value);
          if (known !== undefined) this.listLengths.set(sym, known);
        }
        if (value.kind === 'var') {
          const c = refinedCtor.get(value.symbol);
          if (c) refinedCtor.set(sym, c);
        }
        scope.vars.set(s.name.name, sym);
        return { kind: 'let', symbol: sym, value, span: s.span };
      }
      case 'expr':
        return { kind: 'expr', expr: this.inferExpr(s.expr, scope), span: s.span };
      case 'import':
        // Top-level imports were loaded before checking (syntax/imports.ts); this one is nested.
        this.diags.error(Code.ImportMisplaced, s.span, '`import` is only allowed at the top level of a file', {
          notes: ['hint: move the import to the top of the file'],
        });
        return null;
      case 'fn':
        return ice('checkStmt: fn statements are grouped by the caller');
      case 'type':
        this.diags.error(Code.Unsupported, s.span, 'type declarations are only supported at the top level');
        return null;
      case 'extern':
        this.diags.error(Code.Unsupported, s.span, '`extern fn` declarations are only allowed at the top level');
        return null;
      case 'module': {
        // Members' lets run in program order, at the module's position (globals in its scope).
        const mscope = this.moduleScopes.get(s);
        if (!scope.topLevel || !mscope) {
          this.diags.error(Code.Unsupported, s.span, 'modules can only be declared at the top level');
          return null;
        }
        const body: TStmt[] = [];
        for (const m of s.body) {
          if (m.kind === 'fn' || m.kind === 'type') continue;
          if (m.kind !== 'let') {
            this.diags.error(Code.Syntax, m.span, 'a module holds only let, fn and type declarations');
            continue;
          }
          const t = this.checkStmt(m, mscope);
          if (t) body.push(t);
        }
        const block = this.node({ kind: 'block', stmts: body, result: null, type: Unit, span: s.span });
        return { kind: 'expr', expr: block, span: s.span };
      }
    }
  }

  /** Statements of a block: consecutive `fn` declarations form one mutually recursive group.
   *  A nested `fn` used before its declaration is hoisted (docs/guide/01-getting-started.md#scripts-statements-run-top-to-bottom) to just before the first
   *  statement of the block that mentions it, joining any group there. */
  private checkBlockStmts(written: Stmt[], scope: Scope): TStmt[] {
    const stmts = hoistNestedFns(written);
    const out: TStmt[] = [];
    for (let i = 0; i < stmts.length; ) {
      const s = stmts[i]!;
      if (s.kind !== 'fn') {
        const t = this.checkStmt(s, scope);
        if (t) out.push(t);
        i++;
        continue;
      }
      const group: { decl: FnDecl; fn: TypedFn }[] = [];
      while (i < stmts.length && stmts[i]!.kind === 'fn') {
        const decl = stmts[i] as FnDecl;
        const fn = this.declareFn(decl, true);
        if (this.checkRedefinition(decl.name)) {
          scope.vars.set(decl.name.name, fn.symbol!);
          group.push({ decl, fn });
        }
        i++;
      }
      for (const { decl, fn } of group) this.checkFnBody(decl, fn, scope);
      if (group.length) {
        out.push({ kind: 'fns', fns: group.map((g) => g.fn), span: joinSpans(group[0]!.decl.span, group[group.length - 1]!.decl.span) });
      }
    }
    return out;
  }

  // ---- expressions ---------------------------------------------------------------------------

  /** Infers the type of `e`. `hint` is the type the context expects (used by lambdas); the caller
   *  still checks the result against it. */
  private inferExpr(e: Expr, scope: Scope, hint?: Type): TExpr {
    const done = this.chainLinks.get(e);
    if (done) {
      this.chainLinks.delete(e);
      return done;
    }
    // A long operator or pipe chain is a left-leaning tree as deep as the chain is long: infer
    // its links from the innermost out, in a loop, so the recursion below stays one link deep.
    if (e.kind === 'binary' || e.kind === 'pipe') {
      const links: Expr[] = [];
      for (let x = chainChild(e); x.kind === 'binary' || x.kind === 'pipe'; x = chainChild(x)) links.push(x);
      for (let i = links.length - 1; i >= 0; i--) this.chainLinks.set(links[i]!, this.inferExprAt(links[i]!, scope));
    }
    return this.inferExprAt(e, scope, hint);
  }

  private inferExprAt(e: Expr, scope: Scope, hint?: Type): TExpr {
    switch (e.kind) {
      case 'int':
        return this.node({ kind: 'int', value: e.value, type: Int, span: e.span });
      case 'string':
        return this.node({ kind: 'string', value: e.value, type: Str, span: e.span });
      case 'bool':
        return this.node({ kind: 'bool', value: e.value, type: Bool, span: e.span });
      case 'interp': {
        const parts: (string | TExpr)[] = [];
        for (const p of e.parts) {
          if (p.kind === 'text') parts.push(p.value);
          else {
            const x = this.inferExpr(p.expr, scope);
            this.deferred.push({ kind: 'display', type: x.type, span: x.span });
            parts.push(x);
          }
        }
        return this.node({ kind: 'interp', parts, type: Str, span: e.span });
      }
      case 'ident':
        return this.inferIdent(e.name, e.span, scope, hint);
      case 'call':
        return this.inferCall(e.callee, e.args, e.span, scope, null);
      case 'pipe': {
        // `x |> f` is `f(x)`; `x |> f(a)` is `f(x, a)` (docs/guide/11-lists-and-iteration.md#the-pipe).
        const piped: Arg = { name: null, value: e.value, span: e.value.span };
        if (e.target.kind === 'call') {
          return this.inferCall(e.target.callee, [piped, ...e.target.args], e.span, scope, piped);
        }
        return this.inferCall(e.target, [piped], e.span, scope, piped);
      }
      case 'field':
        return this.inferField(e.object, e.name, e.span, scope);
      case 'binary':
        return this.inferBinary(e, scope);
      case 'unary': {
        const operand = this.inferExpr(e.operand, scope);
        const t = e.op === '!' ? Bool : Int;
        if (!unify(operand.type, t)) {
          this.diags.error(Code.BadOperand, operand.span, `'${e.op}' needs ${e.op === '!' ? 'a Bool' : 'an Int'}, but this is ${withArticle(showType(zonk(operand.type)))}`, {
            label: `this is ${withArticle(showType(zonk(operand.type)))}`,
          });
        }
        return this.node({ kind: 'unary', op: e.op, operand, type: t, span: e.span });
      }
      case 'lambda':
        return this.inferLambda(e, scope, hint);
      case 'block': {
        const inner = new Scope(scope);
        const stmts = this.checkBlockStmts(e.stmts, inner);
        // A block's value is its last statement when that is an expression (docs/guide/04-let-and-mut.md#blocks).
        let result: TExpr | null = null;
        const last = stmts[stmts.length - 1];
        if (last && last.kind === 'expr' && e.stmts[e.stmts.length - 1]?.kind === 'expr') {
          stmts.pop();
          result = last.expr;
        }
        return this.node({ kind: 'block', stmts, result, type: result ? result.type : Unit, span: e.span });
      }
      case 'match':
        return this.inferMatch(e.scrutinee, e.arms, e.span, scope, hint);
      case 'construct':
        return this.inferConstruct(e.name, e.typeArgs.length ? e.typeArgs : null, e.fields, e.span, scope);
      case 'list': {
        // The element type comes from the context (`let xs: List<Int> = []`) or the elements.
        const h = hint ? prune(hint) : null;
        const elem = h && h.kind === 'con' && h.name === 'List' && !h.adt ? h.args[0]! : freshVar();
        const elements = e.elements.map((x) => {
          const v = this.inferExpr(x, scope, elem);
          if (!unify(v.type, elem)) {
            this.diags.error(Code.TypeMismatch, v.span, `list elements must all have one type: this is ${withArticle(showType(zonk(v.type)))}, but the list holds ${showType(zonk(elem))} values`, {
              label: showType(zonk(v.type)),
            });
          }
          return v;
        });
        return this.node({ kind: 'list', elements, type: listType(elem), span: e.span });
      }
      case 'index': {
        const list = this.inferIdent(e.name.name, e.name.span, scope);
        const elem = freshVar();
        if (!unify(list.type, listType(elem))) {
          this.diags.error(Code.TypeMismatch, e.name.span, `only a List can be indexed, but '${e.name.name}' is ${withArticle(showType(zonk(list.type)))}`);
          return this.errorExpr(e.span);
        }
        return this.node({ kind: 'index', list, index: e.index, type: resultType(elem, Str), span: e.span });
      }
      case 'spawn': {
        // `spawn e` is `Fiber { computation: fn() => e }`: the lambda captures by value (docs/guide/16-fibers-and-channels.md).
        const computation = this.inferExpr({ kind: 'lambda', params: [], returnType: null, body: e.body, span: e.body.span }, scope);
        const t = prune(computation.type);
        return this.node({ kind: 'spawn', computation, type: fiberType(t.kind === 'fn' ? t.ret : ErrorType), span: e.span });
      }
      case 'await': {
        const fiber = this.inferExpr(e.fiber, scope);
        const elem = freshVar();
        this.expectHandle(fiber, fiberType(elem), 'await', 'a fiber (from spawn or Fiber<T> { computation: … })');
        return this.node({ kind: 'await', fiber, type: elem, span: e.span });
      }
      case 'yield': {
        const value = e.value ? this.inferExpr(e.value, scope, hint) : null;
        return this.node({ kind: 'yield', value, type: value ? value.type : Unit, span: e.span });
      }
      case 'send': {
        const channel = this.inferExpr(e.channel, scope);
        const elem = freshVar();
        this.expectHandle(channel, channelType(elem), 'send', 'a channel (Channel<T> { capacity: n })');
        const value = this.coerce(this.inferExpr(e.value, scope, elem), elem);
        this.expect(value, elem, 'as the value sent on this channel');
        return this.node({ kind: 'send', channel, value, type: resultType(Unit, Str), span: e.span });
      }
      case 'recv': {
        const channel = this.inferExpr(e.channel, scope);
        const elem = freshVar();
        this.expectHandle(channel, channelType(elem), 'recv', 'a channel (Channel<T> { capacity: n })');
        return this.node({ kind: 'recv', channel, type: resultType(elem, Str), span: e.span });
      }
      case 'select':
        return this.inferSelect(e.arms, e.span, scope, hint);
    }
  }

  /** The operand of await/send/recv must be a fiber or a channel handle. */
  private expectHandle(e: TExpr, expected: Type, op: string, what: string): void {
    if (unify(e.type, expected)) return;
    const found = showType(zonk(e.type));
    this.diags.error(Code.TypeMismatch, e.span, `${op} needs ${what}, but this is ${withArticle(found)}`, {
      label: `this is ${withArticle(found)}`,
    });
  }

  /** `select` (docs/guide/16-fibers-and-channels.md): every arm's value has one type; see TSelectArm. */
  private inferSelect(arms: MatchArm[], span: Span, scope: Scope, hint?: Type): TExpr {
    const result = freshVar();
    if (hint && !isCon(hint, 'any')) unify(result, hint);
    const out: TSelectArm[] = [];
    let sawDefault: Span | null = null;
    for (const [index, arm] of arms.entries()) {
      const body = arm.body;
      let typed: TSelectArm;
      let valueType: Type;
      let valueSpan: Span;
      if (arm.pattern.kind === 'wildcard') {
        if (sawDefault) {
          this.diags.error(Code.DuplicateArm, arm.pattern.span, 'a select has at most one default arm `_ => …`', {
            labels: [{ span: sawDefault, message: 'the first default arm' }],
          });
        }
        sawDefault = arm.pattern.span;
        const b = this.inferExpr(body, scope, result);
        typed = { kind: 'default', body: b, span: arm.span };
        valueType = b.type;
        valueSpan = bodyResultSpan(b);
      } else if (body.kind === 'recv' || body.kind === 'send') {
        // The pattern receives the arm's value; it cannot fail (a refused value would be lost).
        if (arm.pattern.kind !== 'name') {
          this.diags.error(Code.InvalidPattern, arm.pattern.span, `the pattern of a ${body.kind} arm of select must be a name: it cannot refuse the value`, {
            notes: [`hint: write \`value => ${body.kind}(…)\` and match the select's result afterwards`],
          });
        }
        const channel = this.inferExpr(body.channel, scope);
        const elem = freshVar();
        this.expectHandle(channel, channelType(elem), body.kind, 'a channel (Channel<T> { capacity: n })');
        if (body.kind === 'send') {
          const value = this.coerce(this.inferExpr(body.value, scope, elem), elem);
          this.expect(value, elem, 'as the value sent on this channel');
          typed = { kind: 'send', channel, value, span: arm.span };
          valueType = Unit;
        } else {
          typed = { kind: 'recv', channel, span: arm.span };
          valueType = elem;
        }
        valueSpan = body.span;
      } else {
        const b = this.inferExpr(body, scope, result);
        typed = { kind: 'always', body: b, span: arm.span };
        valueType = b.type;
        valueSpan = bodyResultSpan(b);
      }
      if (!unify(valueType, result)) {
        const found = showType(zonk(valueType));
        const want = showType(zonk(result));
        this.diags.error(Code.TypeMismatch, valueSpan, `select arm ${index} gives ${withArticle(found)} but the earlier arms give ${withArticle(want)}`, {
          label: `this arm is ${withArticle(found)}`,
          notes: typed.kind === 'send' ? ['note: a send arm gives Unit; a recv arm gives the received value'] : [],
        });
      }
      out.push(typed);
    }
    return this.node({ kind: 'select', arms: out, type: result, span });
  }

  private inferIdent(name: string, span: Span, scope: Scope, hint?: Type): TExpr {
    const sym = scope.lookup(name);
    if (sym && sym.kind === 'extern') {
      this.diags.error(Code.Unsupported, span, `the extern function '${name}' can only be called, not used as a value`, {
        notes: [`hint: wrap it in a lambda: fn(…) => ${name}(…)`],
      });
      return this.errorExpr(span);
    }
    if (sym) return this.node({ kind: 'var', symbol: sym, type: sym.type, span });
    const ctor = this.types.ctors.get(name);
    if (ctor) {
      if (ctor.fields.length > 0) {
        this.diags.error(Code.MissingField, span, `the constructor '${name}' needs its fields: ${name} { ${ctor.fields.map((f) => `${f.name}: …`).join(', ')} }`);
        return this.errorExpr(span);
      }
      const { type } = this.instantiateAdt(ctor.adt);
      return this.node({ kind: 'construct', ctor, fields: [], type, span });
    }
    if (RESULT_CTORS.has(name)) {
      this.diags.error(Code.InvalidPattern, span, `'${name}' is a Result constructor; write ${name}(value), ${name}() or ${name} { … }`);
      return this.errorExpr(span);
    }
    const builtin = this.builtins.get(name);
    if (builtin) return this.builtinAsValue(builtin, span, hint);
    if (scope.isSilenced(name)) return this.errorExpr(span);
    const guess = closestName(name, [...scope.names(), ...this.types.ctors.keys(), ...this.builtins.keys()]);
    const foreign = FOREIGN_WORDS.get(name);
    this.diags.error(Code.UnknownName, span, `undefined variable '${name}'`, {
      label: foreign ? foreign.label : 'not found in this scope',
      notes: foreign ? [foreign.hint, foreign.see] : guess ? [`hint: did you mean '${guess}'?`] : [],
    });
    return this.errorExpr(span);
  }

  /**
   * A built-in used as a function value (`apply(f: print, …)`) becomes the lambda
   * `fn(p…) => builtin(p…)`; the parameter types of print/toString come from the context.
   */
  private builtinAsValue(b: Builtin, span: Span, hint?: Type): TExpr {
    const h = hint ? prune(hint) : null;
    const expected = h && h.kind === 'fn' && h.params.length === b.params.length ? h : null;
    const sig = instantiateBuiltin(b);
    const params = sig.params.map((p, i) => {
      const t = p.type !== 'display' ? p.type : expected ? expected.params[i]! : freshVar();
      return this.symbol(p.name, 'param', t, span);
    });
    const args: TArg[] = params.map((p, i) => ({ index: i, value: this.node({ kind: 'var', symbol: p, type: p.type, span }) }));
    sig.params.forEach((p, i) => {
      if (p.type === 'display') this.deferred.push({ kind: 'display', type: params[i]!.type, span });
    });
    const body: TExpr = b.kind === 'core'
      ? this.node({ kind: 'builtin', name: b.name, args, type: sig.returns, span })
      : this.node({ kind: 'runtime', fn: b.fn, args, type: sig.returns, span });
    const fn: TypedFn = { symbol: null, name: b.name, params, returnType: sig.returns, body, nested: true, span };
    return this.node({ kind: 'lambda', fn, type: fnType(params.map((p) => p.type), sig.returns), span });
  }

  /**
   * `M.name` where M is a module or an imported file (not shadowed by a value), or a path to one
   * (`file.Module.name`): the member's symbol, null after an error, undefined when `object` is not
   * a module.
   */
  private moduleMember(object: Expr, name: Ident, scope: Scope): VarSymbol | null | undefined {
    const m = this.moduleOf(object, scope);
    if (!m) return undefined;
    const sym = m.vars.get(name.name);
    if (!sym) {
      const guess = closestName(name.name, [...m.vars.keys(), ...m.modules.keys()]);
      const what = m.modules.has(name.name) ? ` that is a value ('${name.name}' is a module: use \`${modulePath(object)}.${name.name}.member\`)` : '';
      this.diags.error(Code.UnknownName, name.span, `the module '${modulePath(object)}' has no member '${name.name}'${what}`, {
        notes: guess ? [`hint: did you mean '${guess}'?`] : [],
      });
      return null;
    }
    return sym;
  }

  /** The module scope a name or path (`a`, `a.B`) refers to, if it names one. */
  private moduleOf(e: Expr, scope: Scope): Scope | undefined {
    if (e.kind === 'ident') return scope.lookup(e.name) ? undefined : scope.findModule(e.name);
    if (e.kind === 'field') return this.moduleOf(e.object, scope)?.modules.get(e.name.name);
    return undefined;
  }

  private inferLambda(e: Extract<Expr, { kind: 'lambda' }>, scope: Scope, hint?: Type): TExpr {
    const h = hint ? prune(hint) : null;
    const expectedFn = h && h.kind === 'fn' && h.params.length === e.params.length ? h : null;
    this.checkDuplicateParams(e.params, 'this lambda');
    const inner = new Scope(scope);
    const params = e.params.map((p, i) => {
      const t = p.type ? this.types.resolve(p.type) : expectedFn ? expectedFn.params[i]! : freshVar();
      const s = this.symbol(p.name.name, 'param', t, p.name.span);
      inner.vars.set(p.name.name, s);
      return s;
    });
    const ret = e.returnType ? this.types.resolve(e.returnType) : expectedFn ? expectedFn.ret : freshVar();
    const body = this.coerce(this.inferExpr(e.body, inner, ret), ret);
    if (!unify(body.type, ret)) this.mismatch(bodyResultSpan(body), zonk(ret), zonk(body.type), 'in the lambda body');
    const fn: TypedFn = { symbol: null, name: 'lambda', params, returnType: ret, body, nested: true, span: e.span };
    return this.node({ kind: 'lambda', fn, type: fnType(params.map((p) => p.type), ret), span: e.span });
  }

  private inferBinary(e: Extract<Expr, { kind: 'binary' }>, scope: Scope): TExpr {
    const left = this.inferExpr(e.left, scope);
    const right = this.inferExpr(e.right, scope);
    const mk = (type: Type): TExpr => this.node({ kind: 'binary', op: e.op, left, right, type, span: e.span });
    const need = (x: TExpr, t: Type, what: string) => {
      if (isCon(x.type, 'any')) {
        this.diags.error(Code.BadOperand, x.span, "cannot use 'any' type directly in arithmetic operation - pattern matching required: operation 'arithmetic'", {
          notes: ['hint: match it with type patterns first: `match v { n: Int => n + 1 _ => 0 }`'],
        });
        return false;
      }
      if (!unify(x.type, t)) {
        this.diags.error(Code.BadOperand, x.span, `'${e.op}' needs ${what}, but this is ${withArticle(showType(zonk(x.type)))}`, {
          label: `this is ${withArticle(showType(zonk(x.type)))}`,
          labels: [{ span: e.opSpan, message: 'operator' }],
          notes: resultAsPayloadHint(zonk(x.type), t),
        });
        return false;
      }
      return true;
    };
    switch (e.op) {
      case '&&':
      case '||':
        need(left, Bool, 'Bool operands');
        need(right, Bool, 'Bool operands');
        return mk(Bool);
      case '<':
      case '>':
      case '<=':
      case '>=':
        if (e.left.kind === 'binary' && COMPARISONS.has(e.left.op) && isCon(left.type, 'Bool')) {
          // `1 < 2 < 3` parses as `(1 < 2) < 3` (docs/guide/03-values-and-types.md#operators-and-precedence): say what was meant.
          const [a, b, c] = [e.left.left, e.left.right, e.right].map(sketch);
          this.diags.error(Code.BadOperand, e.opSpan, 'comparison operators cannot be chained', {
            label: `this compares the Bool result of \`${a} ${e.left.op} ${b}\` with ${c}`,
            labels: [{ span: e.left.opSpan, message: 'first comparison' }],
            notes: [`hint: compare each pair and join them with \`&&\`: \`(${a} ${e.left.op} ${b}) && (${b} ${e.op} ${c})\``],
          });
          return mk(Bool);
        }
        // One report per operator: `"a" < "b"` is one mistake, not two.
        if (need(left, Int, 'Int operands')) need(right, Int, 'Int operands');
        return mk(Bool);
      case '==':
      case '!=':
        if (!unify(left.type, right.type)) {
          this.diags.error(Code.TypeMismatch, e.opSpan, `cannot compare ${withArticle(showType(zonk(left.type)))} with ${withArticle(showType(zonk(right.type)))}`, {
            label: 'both sides must have the same type',
            labels: this.operandLabels(left, right),
          });
        } else this.deferred.push({ kind: 'equality', type: left.type, span: e.span, op: e.op });
        return mk(Bool);
      case '+': {
        // `+` adds Ints or concatenates Strings (docs/guide/03-values-and-types.md#int); no implicit conversions.
        const l = prune(left.type);
        const r = prune(right.type);
        const isStr = isCon(l, 'String') || isCon(r, 'String');
        const t = isStr ? Str : Int;
        if (l.kind === 'error' || r.kind === 'error') return mk(l.kind === 'error' ? r : l);
        if (!isCon(l, 'String') && !isCon(l, 'Int') && l.kind !== 'var' || isCon(r, 'any')) {
          if (isCon(r, 'any') && !isCon(l, 'any')) {
            need(right, Int, 'Int or String operands');
            return mk(ErrorType);
          }
          need(left, Int, 'Int or String operands');
          return mk(Int);
        }
        if (!unify(left.type, t) || !unify(right.type, t)) {
          this.diags.error(Code.BadOperand, e.opSpan, `cannot add ${withArticle(showType(zonk(left.type)))} and ${withArticle(showType(zonk(right.type)))}`, {
            label: "'+' needs two Ints or two Strings",
            labels: this.operandLabels(left, right),
            notes: isStr ? ['hint: convert with toString(…) or use interpolation "${…}"'] : [],
          });
          return mk(ErrorType);
        }
        return mk(t);
      }
      default:
        if (need(left, Int, 'Int operands')) need(right, Int, 'Int operands');
        return mk(Int);
    }
  }

  /** Where each operand's type comes from, for a binary operator whose operands disagree. */
  private operandLabels(left: TExpr, right: TExpr): Label[] {
    return [left, right].map((x) => ({ span: x.span, message: `this is ${withArticle(showType(zonk(x.type)))}` }));
  }

  private inferField(objectExpr: Expr, name: Ident, span: Span, scope: Scope): TExpr {
    const member = this.moduleMember(objectExpr, name, scope);
    if (member !== undefined) return member ? this.node({ kind: 'var', symbol: member, type: member.type, span }) : this.errorExpr(span);
    return this.fieldOf(this.inferExpr(objectExpr, scope), name, span);
  }

  /** `object.name` on an already checked object. */
  private fieldOf(object: TExpr, name: Ident, span: Span): TExpr {
    const t = prune(object.type);
    if (t.kind === 'error') return this.errorExpr(span);
    if (isCon(t, 'Result')) {
      this.diags.error(Code.FieldAccess, name.span, `cannot access field '${name.name}' on ${showType(zonk(t))} type - pattern matching required`, {
        notes: ['hint: match the Result first: `match r { Success { value } => … Error { message } => … }`'],
      });
      return this.errorExpr(span);
    }
    if (isCon(t, 'any')) {
      this.diags.error(Code.FieldAccess, name.span, `cannot access field on 'any' type without pattern matching: field '${name.name}'`);
      return this.errorExpr(span);
    }
    if (t.kind !== 'con' || !t.adt) {
      this.diags.error(Code.FieldAccess, name.span, t.kind === 'var'
        ? `the type of this value must be known to access '.${name.name}'`
        : `${withArticle(showType(t))} has no fields (no field '${name.name}')`, {
        notes: t.kind === 'var' ? ['hint: add a type annotation'] : [],
      });
      return this.errorExpr(span);
    }
    let ctor: CtorInfo | undefined = t.adt.ctors.length === 1 ? t.adt.ctors[0] : undefined;
    if (object.kind === 'var' && refinedCtor.has(object.symbol)) ctor = refinedCtor.get(object.symbol);
    if (!ctor) {
      this.diags.error(Code.FieldAccess, name.span, `cannot access field '${name.name}' on the union type ${showType(t)} - pattern matching required`);
      return this.errorExpr(span);
    }
    const index = ctor.fields.findIndex((f) => f.name === name.name);
    if (index < 0) {
      const guess = closestName(name.name, ctor.fields.map((f) => f.name));
      this.diags.error(Code.UnknownField, name.span, `${ctor.name} has no field '${name.name}'`, {
        notes: guess ? [`hint: did you mean '${guess}'?`] : [`note: its fields are ${ctor.fields.map((f) => f.name).join(', ') || '(none)'}`],
      });
      return this.errorExpr(span);
    }
    const ftype = instantiate(ctor.fields[index]!.type, t.args);
    return this.node({ kind: 'field', object, ctor, index, type: ftype, span });
  }

  // ---- calls (docs/guide/05-functions.md#named-arguments) ----------------------------------------------------------------------------

  /**
   * Matches written arguments to parameters. Returns each argument's parameter index (written
   * order), or null after reporting an error.
   */
  private matchArgs(
    style: 'user' | 'builtin' | 'value',
    fname: string,
    paramNames: string[],
    args: Arg[],
    span: Span,
    argsSpan: Span,
  ): number[] | null {
    const named = args.length > 0 && args.every((a) => a.name !== null);
    const n = paramNames.length;
    const plural = (k: number) => `${k} argument${k === 1 ? '' : 's'}`;
    if (!named) {
      if (style === 'user' && n >= 2 && args.length > 0) {
        this.diags.error(Code.ArgumentStyle, argsSpan,
          `function requires named arguments '${fname}' has ${n} parameters and requires named arguments. Use: ${fname}(${paramNames.map((p) => `${p}: value`).join(', ')})`, {
            label: 'positional arguments',
            notes: [`hint: call it as ${fname}(${paramNames.map((p) => `${p}: …`).join(', ')})`, 'note: see docs/guide/05-functions.md#named-arguments'],
          });
        return null;
      }
      if (args.length !== n) {
        const message = style === 'builtin' ? builtinArityMessage(fname, paramNames, args.length) : `'${fname}' expects ${plural(n)}, got ${args.length}`;
        this.diags.error(Code.ArgumentCount, argsSpan, message, {
          notes: n > 0 && style !== 'value' ? [`note: parameters: ${paramNames.join(', ')}`] : [],
        });
        return null;
      }
      return args.map((_, i) => i);
    }
    if (style === 'value') {
      this.diags.error(Code.ArgumentStyle, argsSpan, `'${fname}' is a function value and must be called with positional arguments`, {
        notes: ['note: function types carry no parameter names'],
      });
      return null;
    }
    const out: number[] = [];
    const seen = new Set<number>();
    for (const a of args) {
      const idx = paramNames.indexOf(style === 'builtin' ? canonicalBuiltinArg(fname, a.name!.name) : a.name!.name);
      if (idx >= 0 && seen.has(idx)) {
        this.diags.error(Code.ArgumentCount, a.name!.span, `the argument '${a.name!.name}' is given twice`, {
          label: 'given again here',
          labels: [{ span: args.find((b) => b.name!.name === a.name!.name)!.name!.span, message: 'first given here' }],
        });
        return null;
      }
      if (idx >= 0) seen.add(idx);
      out.push(idx);
    }
    const unknown = args.filter((_, i) => out[i]! < 0).map((a) => a.name!);
    const missing = paramNames.filter((_, i) => !seen.has(i));
    const listed = `note: the parameters of '${fname}' are ${paramNames.join(', ') || '(none)'}`;
    // The old compiler's texts (docs/guide/05-functions.md#named-arguments): the count first, then the first parameter not supplied, where an
    // unknown name counts as missing.
    if (args.length !== n) {
      this.diags.error(Code.ArgumentCount, argsSpan, `function expects different number of arguments ${fname} expects ${n} arguments, got ${args.length}`, {
        notes: [
          ...unknown.map((u) => `note: '${fname}' has no parameter named '${u.name}'`),
          missing.length ? `hint: add ${missing.map((m) => `${m}: …`).join(', ')}` : listed,
        ],
      });
      return null;
    }
    if (missing.length) {
      const u = unknown[0]!;
      const guess = closestName(u.name, missing);
      this.diags.error(Code.UnknownArgument, u.span, `missing argument for parameter ${missing[0]} in function ${fname}`, {
        label: `'${fname}' has no parameter named '${u.name}'`,
        notes: [guess ? `hint: did you mean '${guess}'?` : listed],
      });
      return null;
    }
    void span;
    return out;
  }

  /** Checks arguments against parameter types; on a failed match the arguments are still checked. */
  private checkArgs(
    fname: string,
    params: { name: string; type: Type | 'display'; span?: Span }[],
    args: Arg[],
    indices: number[] | null,
    scope: Scope,
  ): TArg[] {
    const out: TArg[] = [];
    args.forEach((a, i) => {
      const idx = indices ? indices[i]! : -1;
      const p = idx >= 0 ? params[idx] : undefined;
      const ptype = p && p.type !== 'display' ? p.type : undefined;
      const value = ptype ? this.coerce(this.inferExpr(a.value, scope, ptype), ptype) : this.inferExpr(a.value, scope);
      if (p && p.type === 'display') {
        if (fname === 'toString' && isCon(value.type, 'any')) {
          this.diags.error(Code.NoDisplay, value.span, "toString cannot take an 'any' value - pattern matching required", {
            notes: ['hint: match it first (`n: Int => toString(n)`), or interpolate it: "${v}"'],
          });
        } else this.deferred.push({ kind: 'display', type: value.type, span: value.span });
      } else if (ptype && isCon(value.type, 'any') && !isCon(ptype, 'any') && prune(ptype).kind !== 'error') {
        this.diags.error(Code.ArgumentType, value.span,
          `cannot pass 'any' type to function expecting specific type - pattern matching required: function '${fname}' expecting '${p!.name}'`, {
            label: 'any',
            notes: ['hint: match it with type patterns: `match v { n: Int => … _ => … }`'],
          });
      } else if (ptype && isIteratorBuiltinName(fname) && listAsIterator(value.type, ptype)) {
        // A List is accepted wherever an iteration built-in expects an iterator
        // (docs/guide/11-lists-and-iteration.md#iterators); lowering turns it into one.
      } else if (ptype && !unify(value.type, ptype)) {
        const found = showType(zonk(value.type));
        const want = showType(zonk(ptype));
        this.diags.error(Code.ArgumentType, value.span, `this argument is ${withArticle(found)}, but '${fname}' needs ${article(want)} ${want} for '${p!.name}'`, {
          label: found,
          labels: p!.span ? [{ span: p!.span, message: `'${p!.name}' is declared ${want} here` }] : [],
          notes: resultAsPayloadHint(zonk(value.type), zonk(ptype)),
        });
      }
      out.push({ index: idx, value });
    });
    return out;
  }

  private inferCall(calleeExpr: Expr, args: Arg[], span: Span, scope: Scope, piped: Arg | null): TExpr {
    const argsSpan = args.length ? joinSpans(args[0]!.span, args[args.length - 1]!.span) : span;
    const member = calleeExpr.kind === 'field' ? this.moduleMember(calleeExpr.object, calleeExpr.name, scope) : undefined;
    if (member === null) {
      args.forEach((a) => this.inferExpr(a.value, scope));
      return this.errorExpr(span);
    }
    if (calleeExpr.kind === 'ident' || member) {
      const name = calleeExpr.kind === 'ident' ? calleeExpr.name : `${modulePath((calleeExpr as { object: Expr }).object)}.${member!.name}`;
      const sym = member ?? scope.lookup(name);
      if (sym && sym.kind === 'fn' && sym.fn) {
        const fn = sym.fn;
        const names = fn.params.map((p) => p.name);
        const indices = this.matchArgs('user', name, names, this.namePiped(args, piped, names), span, argsSpan);
        const targs = this.checkArgs(name, fn.params.map((p) => ({ name: p.name, type: p.type, span: p.span })), args, indices, scope);
        for (const a of targs) {
          const param = fn.params[a.index];
          const declared = param ? this.listLengths.get(param) : undefined;
          if (param && declared !== undefined) this.checkListLength(a.value, declared, { span: param.span, message: `'${param.name}' is declared with length ${declared} here` });
        }
        const callee = this.node({ kind: 'var', symbol: sym, type: sym.type, span: calleeExpr.span });
        return this.node({ kind: 'call', callee, args: targs, type: indices ? fn.returnType : ErrorType, span });
      }
      if (sym && sym.kind === 'extern' && sym.extern) {
        const ext = sym.extern;
        const indices = this.matchArgs('user', name, ext.params.map((p) => p.name), args, span, argsSpan);
        const targs = this.checkArgs(name, ext.params, args, indices, scope);
        const callee = this.node({ kind: 'var', symbol: sym, type: sym.type, span: calleeExpr.span });
        return this.node({ kind: 'call', callee, args: targs, type: indices ? ext.ret : ErrorType, span });
      }
      if (!sym) {
        const rtag = this.patterns.resultCtor(name);
        if (rtag !== undefined) return this.inferResultCall(rtag, name, args, span, scope);
        const b = this.builtins.get(name);
        if (b) return this.inferBuiltinCall(b, args, span, argsSpan, scope, piped);
        if (UNSUPPORTED_BUILTINS.has(name) && !this.options.disabled.has(UNSUPPORTED_BUILTINS.get(name)!)) {
          this.diags.error(Code.Unsupported, calleeExpr.span, `the built-in function '${name}' is not supported by this compiler yet`, {
            notes: UNSUPPORTED_BUILTINS.get(name) === 'http' ? ['note: see docs/guide/17-http.md'] : [],
          });
          args.forEach((a) => this.inferExpr(a.value, scope));
          return this.errorExpr(span);
        }
        const ctor = this.types.ctors.get(name);
        if (ctor) {
          this.diags.error(Code.InvalidPattern, span, `'${name}' is a constructor, not a function`, {
            notes: [ctor.fields.length ? `hint: construct it with ${name} { ${ctor.fields.map((f) => `${f.name}: …`).join(', ')} }` : `hint: write ${name} without parentheses`],
          });
          args.forEach((a) => this.inferExpr(a.value, scope));
          return this.errorExpr(span);
        }
        const candidates = [...scope.names(), ...this.builtins.keys()];
        const guess = closestName(name, candidates);
        this.diags.error(Code.UnknownFunction, calleeExpr.span, `undefined function '${name}'`, {
          label: 'not found in this scope',
          notes: guess ? [`hint: did you mean '${guess}'?`] : [],
        });
        args.forEach((a) => this.inferExpr(a.value, scope));
        return this.errorExpr(span);
      }
    }
    // A call through a function value: positional arguments only. `value.m(args)` is a call of a
    // function-typed field; there is no method-call syntax otherwise (docs/guide/13-modules.md).
    let callee: TExpr;
    if (calleeExpr.kind === 'field') {
      const object = this.inferExpr(calleeExpr.object, scope);
      const ot = prune(object.type);
      const hasField = ot.kind === 'con' && ot.adt !== undefined && ot.adt.ctors.some((c) => c.fields.some((f) => f.name === calleeExpr.name.name));
      if (!hasField && ot.kind !== 'error' && !isCon(ot, 'Result') && !isCon(ot, 'any')) {
        this.diags.error(Code.NotCallable, calleeExpr.name.span, `method call not implemented for method '${calleeExpr.name.name}': method call not implemented`, {
          notes: ['note: Osprey has no methods; call the function with the value as an argument, or pipe it: value |> f'],
        });
        args.forEach((a) => this.inferExpr(a.value, scope));
        return this.errorExpr(span);
      }
      callee = this.fieldOf(object, calleeExpr.name, calleeExpr.span);
    } else callee = this.inferExpr(calleeExpr, scope);
    const ct = prune(callee.type);
    if (ct.kind === 'error') {
      args.forEach((a) => this.inferExpr(a.value, scope));
      return this.errorExpr(span);
    }
    let fty: Extract<Type, { kind: 'fn' }>;
    if (ct.kind === 'fn') fty = ct;
    else if (ct.kind === 'var') {
      fty = { kind: 'fn', params: args.map(() => freshVar()), ret: freshVar() };
      unify(ct, fty);
    } else {
      this.diags.error(Code.NotCallable, callee.span, `${withArticle(showType(ct))} is not a function and cannot be called`, { label: `this is ${withArticle(showType(ct))}` });
      args.forEach((a) => this.inferExpr(a.value, scope));
      return this.errorExpr(span);
    }
    const label = calleeExpr.kind === 'ident' ? calleeExpr.name : 'this function';
    const indices = this.matchArgs('value', label, fty.params.map((_, i) => `#${i + 1}`), args, span, argsSpan);
    const targs = this.checkArgs(label, fty.params.map((t, i) => ({ name: `argument ${i + 1}`, type: t })), args, indices, scope);
    return this.node({ kind: 'call', callee, args: targs, type: indices ? fty.ret : ErrorType, span });
  }

  /**
   * `x |> f(b: 2)` (docs/guide/11-lists-and-iteration.md#the-pipe): when every written argument is named, the piped value
   * fills the first parameter.
   */
  private namePiped(args: Arg[], piped: Arg | null, names: string[]): Arg[] {
    if (!piped || args[0] !== piped || args.length < 2 || !args.slice(1).every((a) => a.name !== null) || !names[0]) return args;
    return [{ ...piped, name: { name: names[0], span: piped.span } }, ...args.slice(1)];
  }

  private inferBuiltinCall(b: Builtin, args: Arg[], span: Span, argsSpan: Span, scope: Scope, piped: Arg | null = null): TExpr {
    if (b.kind === 'runtime' && b.overloads) return this.inferHandlerOverload(b, b.overloads, args, span, argsSpan, scope, piped);
    const names = b.params.map((p) => p.name);
    args = this.namePiped(args, piped, names);
    const sig = instantiateBuiltin(b);
    const indices = this.matchArgs('builtin', b.name, names, args, span, argsSpan);
    const targs = this.checkArgs(b.name, sig.params, args, indices, scope);
    const type = indices ? sig.returns : ErrorType;
    if (b.kind === 'core') return this.node({ kind: 'builtin', name: b.name, args: targs, type, span });
    return this.node({ kind: 'runtime', fn: b.fn, args: targs, type, span });
  }

  /**
   * A built-in with several C entry points that differ only in the type of their handler
   * parameter (websocketConnect, websocketServerOnMessage: docs/guide/15-websockets.md#message-handlers):
   * the handler argument's type picks the entry point. A lambda is checked against the shape its
   * parameters announce (how many; the second one's annotation), any other argument is inferred
   * and its function type compared with each shape. Anything else is an error listing the shapes.
   */
  private inferHandlerOverload(
    first: RuntimeBuiltin, rest: RuntimeBuiltin[], args: Arg[], span: Span, argsSpan: Span, scope: Scope, piped: Arg | null,
  ): TExpr {
    const candidates = [first, ...rest];
    const names = first.params.map((p) => p.name);
    args = this.namePiped(args, piped, names);
    const handlerIndex = first.fn.osprey!.params.findIndex((p) => p.type.kind === 'Fn');
    const indices = this.matchArgs('builtin', first.name, names, args, span, argsSpan);
    if (!indices) {
      this.checkArgs(first.name, first.params, args, null, scope);
      return this.errorExpr(span);
    }
    const shapeOf = (c: RuntimeBuiltin): Type => c.params[handlerIndex]!.type;
    let chosen: RuntimeBuiltin | null = null;
    let failed = false;
    const targs: TArg[] = [];
    args.forEach((a, i) => {
      const idx = indices[i]!;
      if (idx !== handlerIndex) {
        targs.push(...this.checkArgs(first.name, first.params, [a], [idx], scope));
        return;
      }
      const announced = announcedHandlerShape(a.value, candidates.map(shapeOf));
      const value = this.inferExpr(a.value, scope, announced >= 0 ? shapeOf(candidates[announced]!) : undefined);
      const t = prune(value.type);
      const fit = announced >= 0 ? announced : candidates.findIndex((c) => couldBeShape(t, shapeOf(c)));
      if (t.kind !== 'error' && (fit < 0 || !unify(value.type, shapeOf(candidates[fit]!)))) {
        failed = true;
        const found = showType(zonk(value.type));
        this.diags.error(Code.ArgumentType, value.span, `this argument is ${withArticle(found)}, but '${first.name}' needs a handler of one of these types: ${candidates.map((c) => showType(shapeOf(c))).join(', ')}`, {
          label: found,
          notes: [
            'note: fn(String) gets each text message; fn(Int, String) the connection id and each text message; fn(Int, WebSocketMessage) the connection id and every message, text or binary (msg.type, msg.data, msg.timestamp)',
            'note: see docs/guide/15-websockets.md#message-handlers',
          ],
        });
      } else if (fit >= 0) chosen = candidates[fit]!;
      targs.push({ index: idx, value });
    });
    const picked: RuntimeBuiltin = chosen ?? first;
    return this.node({ kind: 'runtime', fn: picked.fn, args: targs, type: failed ? ErrorType : picked.returns, span });
  }

  /** `Success()`, `Success(e)`, `Error(e)` and the Ok/Err aliases (docs/guide/10-results-and-errors.md). */
  private inferResultCall(tag: 0 | 1, name: string, args: Arg[], span: Span, scope: Scope): TExpr {
    if (args.length > 1 || args.some((a) => a.name !== null)) {
      this.diags.error(Code.ArgumentCount, span, `${name}(…) takes at most one positional argument`, {
        notes: [`hint: ${tag === 0 ? 'Success { value: … }' : 'Error { message: … }'} is the named form`],
      });
      args.forEach((a) => this.inferExpr(a.value, scope));
      return this.errorExpr(span);
    }
    const payload = args.length ? this.inferExpr(args[0]!.value, scope) : null;
    if (tag === 1 && payload === null) {
      this.diags.error(Code.ArgumentCount, span, `${name}() needs a message: ${name}("…")`);
      return this.errorExpr(span);
    }
    const ptype = payload ? payload.type : Unit;
    const type = tag === 0 ? resultType(ptype, freshVar()) : resultType(freshVar(), ptype);
    return this.node({ kind: 'result', tag, payload, type, span });
  }

  // ---- construction (docs/guide/07-records.md#non-destructive-update) --------------------------------------------------------------------

  private inferConstruct(name: Ident, typeArgs: Expr[] | import('../syntax/ast.ts').TypeExpr[] | null, fields: FieldInit[], span: Span, scope: Scope): TExpr {
    if ((name.name === 'Fiber' || name.name === 'Channel') && !this.types.ctors.has(name.name) && !scope.lookup(name.name)) {
      return this.inferHandleConstruct(name, (typeArgs ?? []) as import('../syntax/ast.ts').TypeExpr[], fields, span, scope);
    }
    const rtag = RESULT_CTORS.get(name.name);
    if (rtag !== undefined && !this.types.ctors.has(name.name) && !scope.lookup(name.name)) {
      const allowed = rtag === 0 ? ['value'] : ['message', 'error'];
      if (fields.length !== 1 || !allowed.includes(fields[0]!.name.name)) {
        this.diags.error(Code.UnknownField, fields[0]?.name.span ?? span,
          `${name.name} { … } takes exactly one field, ${allowed.map((a) => `'${a}'`).join(' or ')}`);
        fields.forEach((f) => this.inferExpr(f.value, scope));
        return this.errorExpr(span);
      }
      const payload = this.inferExpr(fields[0]!.value, scope);
      const type = rtag === 0 ? resultType(payload.type, freshVar()) : resultType(freshVar(), payload.type);
      return this.node({ kind: 'result', tag: rtag, payload, type, span });
    }
    const base = scope.lookup(name.name);
    if (base) {
      // Non-destructive update `value { f: e }` (docs/guide/07-records.md#non-destructive-update: a value binding means update).
      const baseExpr = this.node({ kind: 'var', symbol: base, type: base.type, span: name.span }) as TExpr;
      const t = prune(base.type);
      const ctor = t.kind === 'con' && t.adt ? (refinedCtor.get(base) ?? (t.adt.ctors.length === 1 ? t.adt.ctors[0] : undefined)) : undefined;
      if (!ctor || t.kind !== 'con') {
        this.diags.error(Code.FieldAccess, name.span, `'${name.name}' is ${withArticle(showType(t))}, which has no fields to update`);
        fields.forEach((f) => this.inferExpr(f.value, scope));
        return this.errorExpr(span);
      }
      const targs = this.checkFields(ctor, t.args, fields, scope, false);
      return this.node({ kind: 'update', base: baseExpr, ctor, fields: targs, type: ctor.validators.length ? resultType(base.type, this.types.constructionError()) : base.type, span });
    }
    const ctor = this.types.ctors.get(name.name);
    if (!ctor) {
      const guess = closestName(name.name, [...this.types.ctors.keys(), ...RESULT_CTORS.keys()]);
      this.diags.error(Code.UnknownConstructor, name.span, `unknown type or constructor '${name.name}'`, {
        notes: guess ? [`hint: did you mean '${guess}'?`] : [],
      });
      fields.forEach((f) => this.inferExpr(f.value, scope));
      return this.errorExpr(span);
    }
    const { type, args } = this.instantiateAdt(ctor.adt);
    if (typeArgs && typeArgs.length) {
      const written = (typeArgs as import('../syntax/ast.ts').TypeExpr[]).map((t) => this.types.resolve(t));
      if (written.length !== args.length) {
        this.diags.error(Code.TypeArity, name.span, `'${ctor.adt.name}' takes ${args.length} type arguments, but ${written.length} were given`);
      } else written.forEach((w, i) => unify(args[i]!, w));
    }
    const targs = this.checkFields(ctor, args, fields, scope, true);
    // A constrained type's construction may fail: Result<T, ConstructionError> (docs/guide/09-constraints.md).
    return this.node({ kind: 'construct', ctor, fields: targs, type: ctor.validators.length ? resultType(type, this.types.constructionError()) : type, span });
  }

  /** `Fiber<T> { computation: fn() => e }` and `Channel<T> { capacity: n }` (docs/guide/16-fibers-and-channels.md). */
  private inferHandleConstruct(name: Ident, typeArgs: import('../syntax/ast.ts').TypeExpr[], fields: FieldInit[], span: Span, scope: Scope): TExpr {
    const field = name.name === 'Fiber' ? 'computation' : 'capacity';
    const elem = freshVar();
    if (typeArgs.length > 1) {
      this.diags.error(Code.TypeArity, name.span, `'${name.name}' takes 1 type argument, but ${typeArgs.length} were given`);
    } else if (typeArgs.length === 1) unify(elem, this.types.resolve(typeArgs[0]!));
    let value: TExpr | null = null;
    for (const f of fields) {
      if (f.name.name !== field) {
        this.diags.error(Code.UnknownField, f.name.span, `${name.name} has no field '${f.name.name}'`, { notes: [`note: its only field is ${field}`] });
        this.inferExpr(f.value, scope);
        continue;
      }
      if (value) {
        this.diags.error(Code.DuplicateDefinition, f.name.span, `the field '${field}' is given twice`);
        continue;
      }
      const want = name.name === 'Fiber' ? fnType([], elem) : Int;
      value = this.inferExpr(f.value, scope, want);
      this.expect(value, want, `for the field '${field}' of ${name.name}`);
    }
    if (!value) {
      this.diags.error(Code.MissingField, span, `missing field in type constructor: '${field}'`, {
        notes: [`hint: ${name.name === 'Fiber' ? 'Fiber<T> { computation: fn() => … }' : 'Channel<T> { capacity: n }'}`],
      });
      return this.errorExpr(span);
    }
    if (name.name === 'Fiber') return this.node({ kind: 'spawn', computation: value, type: fiberType(elem), span });
    return this.node({ kind: 'channel', capacity: value, type: channelType(elem), span });
  }

  private checkFields(ctor: CtorInfo, typeArgs: Type[], fields: FieldInit[], scope: Scope, requireAll: boolean): TArg[] {
    const out: TArg[] = [];
    const seen = new Set<number>();
    for (const f of fields) {
      const idx = ctor.fields.findIndex((x) => x.name === f.name.name);
      if (idx < 0) {
        const guess = closestName(f.name.name, ctor.fields.map((x) => x.name));
        this.diags.error(Code.UnknownField, f.name.span, `${ctor.name} has no field '${f.name.name}'`, {
          notes: guess ? [`hint: did you mean '${guess}'?`] : [`note: its fields are ${ctor.fields.map((x) => x.name).join(', ') || '(none)'}`],
        });
        this.inferExpr(f.value, scope);
        continue;
      }
      if (seen.has(idx)) {
        this.diags.error(Code.DuplicateDefinition, f.name.span, `the field '${f.name.name}' is given twice`);
        continue;
      }
      seen.add(idx);
      const ft = instantiate(ctor.fields[idx]!.type, typeArgs);
      const value = this.coerce(this.inferExpr(f.value, scope, ft), ft);
      if (!unify(value.type, ft)) {
        this.diags.error(Code.TypeMismatch, value.span, `the field '${f.name.name}' of ${ctor.name} is ${article(showType(zonk(ft)))} ${showType(zonk(ft))}, but this is ${article(showType(zonk(value.type)))} ${showType(zonk(value.type))}`, {
          label: showType(zonk(value.type)),
        });
      }
      out.push({ index: idx, value });
    }
    if (requireAll) {
      const missing = ctor.fields.filter((_, i) => !seen.has(i));
      if (missing.length && fields.every((f) => ctor.fields.some((x) => x.name === f.name.name))) {
        const last = fields[fields.length - 1];
        this.diags.error(Code.MissingField, last ? last.span : ctor.span, `missing field in type constructor: '${missing[0]!.name}'`, {
          notes: [`hint: ${ctor.name} also needs ${missing.map((m) => `${m.name}: …`).join(', ')}`],
        });
      }
    }
    return out;
  }

  // ---- match and patterns (docs/guide/08-unions-and-pattern-matching.md) -----

  private inferMatch(scrutExpr: Expr, arms: MatchArm[], span: Span, scope: Scope, hint?: Type): TExpr {
    const scrutinee = this.inferExpr(scrutExpr, scope);
    const result = freshVar();
    // The context's type guides lambdas in the arms; an `any` context boxes the whole match instead.
    if (hint && !isCon(hint, 'any')) unify(result, hint);
    const tarms: TArm[] = [];
    let first: TExpr | null = null;
    for (const [index, arm] of arms.entries()) {
      const inner = new Scope(scope);
      const mark = this.diags.mark();
      const pattern = this.patterns.checkPattern(arm.pattern, scrutinee.type, inner);
      // A rejected pattern binds nothing; its names still stand for something in the arm, so
      // their uses get the error type instead of each being reported as an undefined variable.
      if (this.diags.items.length > mark) {
        for (const b of patternBinders(arm.pattern)) if (!inner.vars.has(b.name)) inner.silenced.add(b.name);
      }
      const body = this.inferExpr(arm.body, inner, result);
      if (!unify(body.type, result)) {
        const found = showType(zonk(body.type));
        const want = showType(zonk(result));
        // The old compiler's text (the failscompilation corpus checks it): 0-based arm, lower case.
        this.diags.error(Code.TypeMismatch, bodyResultSpan(body), `match expression type mismatch: arm ${index} returns '${found.toLowerCase()}' but expected '${want.toLowerCase()}'`, {
          label: `this arm is ${withArticle(found)}`,
          labels: first ? [{ span: bodyResultSpan(first), message: `this arm is ${article(want)} ${want}` }] : [],
        });
      }
      first ??= body;
      tarms.push({ pattern, body, span: arm.span });
    }
    return this.node({ kind: 'match', scrutinee, arms: tarms, type: result, span });
  }

}

/** N of a written `List<T, N>`, if the annotation has one. */
function declaredListLength(t: import('../syntax/ast.ts').TypeExpr): number | undefined {
  if (t.kind !== 'named' || t.name.name !== 'List' || t.args.length !== 2) return undefined;
  const n = t.args[1]!;
  return n.kind === 'named' && /^[0-9]+$/.test(n.name.name) ? Number(n.name.name) : undefined;
}

/** A written type as text, for messages. */
function typeText(t: import('../syntax/ast.ts').TypeExpr): string {
  if (t.kind === 'fn') return `(${t.params.map(typeText).join(', ')}) -> ${typeText(t.ret)}`;
  return t.args.length ? `${t.name.name}<${t.args.map(typeText).join(', ')}>` : t.name.name;
}

/** The names a pattern would bind as written (whether or not it checked). A bare name may be a
 *  unit constructor; binding it as well is harmless because only unbound names are filled in. */
function patternBinders(p: import('../syntax/ast.ts').Pattern): Ident[] {
  switch (p.kind) {
    case 'wildcard':
    case 'int':
    case 'string':
    case 'bool':
      return [];
    case 'name':
      return [p.name];
    case 'typed':
      return [p.name];
    case 'ctorBinder':
      return p.binder.name ? [{ name: p.binder.name, span: p.binder.span }] : [];
    case 'ctorFields':
      return p.fields.flatMap((f) => (f.name ? [{ name: f.name, span: f.span }] : []));
    case 'structural':
      return [...(p.name ? [p.name] : []), ...p.fields.flatMap((f) => (f.name ? [{ name: f.name, span: f.span }] : []))];
    case 'ctorArgs':
      return p.args.flatMap(patternBinders);
  }
}

/** Whether a type still has unknown parts (an inference variable or an error). */
function containsUnknown(t: Type): boolean {
  const p = prune(t);
  if (p.kind === 'var' || p.kind === 'error') return true;
  if (p.kind === 'con') return p.args.some(containsUnknown);
  if (p.kind === 'fn') return p.params.some(containsUnknown) || containsUnknown(p.ret);
  return false;
}

const COMPARISONS: ReadonlySet<string> = new Set(['<', '>', '<=', '>=', '==', '!=']);

/** A short rendering of an operand for a hint: a literal or a name, `…` otherwise. */
function sketch(e: Expr): string {
  if (e.kind === 'int') return String(e.value);
  if (e.kind === 'ident') return e.name;
  if (e.kind === 'string') return JSON.stringify(e.value);
  return '…';
}

/** docs/guide/10-results-and-errors.md: a Result is never its payload; when one is used as such, say how to get at the payload. */
function resultAsPayloadHint(found: Type, expected: Type): string[] {
  const f = prune(found);
  if (!isCon(f, 'Result') || isCon(expected, 'Result')) return [];
  return ['hint: a Result is not its value: match it first, `match r { Success { value } => … Error { message } => … }`'];
}

/** The operand that continues a left-leaning chain: `a + b` → `a`, `x |> f` → `x`. */
function chainChild(e: Expr & { kind: 'binary' | 'pipe' }): Expr {
  return e.kind === 'binary' ? e.left : e.value;
}

/** Where to point when a body has the wrong type: the value-producing expression. */
function bodyResultSpan(e: TExpr): Span {
  if (e.kind === 'block' && e.result) return bodyResultSpan(e.result);
  return e.span;
}

/** Whether an identifier expression named `name` occurs anywhere inside `node` (untyped AST). */
function mentions(node: unknown, name: string): boolean {
  if (node === null || typeof node !== 'object') return false;
  if (Array.isArray(node)) return node.some((n) => mentions(n, name));
  const o = node as { kind?: unknown; name?: unknown };
  if (o.kind === 'ident' && o.name === name) return true;
  for (const [k, v] of Object.entries(node)) if (k !== 'span' && typeof v === 'object' && mentions(v, name)) return true;
  return false;
}

/** docs/guide/01-getting-started.md#scripts-statements-run-top-to-bottom hoisting inside a block: each `fn` mentioned by an earlier statement moves up to just
 *  before the first such statement (so it joins a group of fns declared there). */
function hoistNestedFns(stmts: Stmt[]): Stmt[] {
  if (!stmts.some((s) => s.kind === 'fn')) return stmts;
  let out = [...stmts];
  for (const decl of stmts) {
    if (decl.kind !== 'fn') continue;
    const at = out.indexOf(decl);
    const first = out.findIndex((s, i) => i < at && s !== decl && mentions(s, decl.name.name));
    if (first < 0) continue;
    out = out.filter((s) => s !== decl);
    // Join the group of consecutive fns just before `first`, if any.
    let pos = first;
    while (pos > 0 && out[pos - 1]!.kind === 'fn') pos--;
    out.splice(pos, 0, decl);
  }
  return out;
}

/**
 * Which of the handler shapes (function types) a lambda argument announces: the one with as many
 * parameters, and among two-parameter shapes the one whose second parameter has the type the
 * lambda's second parameter is annotated with (String when it is not annotated). -1: not a
 * lambda, or no shape fits.
 */
function announcedHandlerShape(e: Expr, shapes: Type[]): number {
  if (e.kind !== 'lambda') return -1;
  const arity = e.params.length;
  const fits = shapes.map((s, i) => ({ s: prune(s), i })).filter(({ s }) => s.kind === 'fn' && s.params.length === arity);
  if (fits.length <= 1) return fits[0]?.i ?? -1;
  const last = e.params[arity - 1]!.type;
  const wanted = last && last.kind === 'named' ? last.name.name : 'String';
  const match = fits.find(({ s }) => {
    const p = s.kind === 'fn' ? prune(s.params[arity - 1]!) : null;
    return p !== null && p.kind === 'con' && p.name === wanted;
  });
  return match ? match.i : -1;
}

/** Whether a function type could be this handler shape (same arity, no parameter of another type). */
function couldBeShape(t: Type, shape: Type): boolean {
  const s = prune(shape);
  if (t.kind !== 'fn' || s.kind !== 'fn' || t.params.length !== s.params.length) return false;
  return t.params.every((p, i) => {
    const a = prune(p);
    const b = prune(s.params[i]!);
    return a.kind === 'var' || (a.kind === 'con' && b.kind === 'con' && a.name === b.name);
  });
}
