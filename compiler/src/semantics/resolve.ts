// Pipeline position: the first half of checking. Collects the program's type declarations (records,
// unions, aliases — docs/guide/08-unions-and-pattern-matching.md#union-types) into AdtInfo tables and the constructor namespace, and resolves
// written types (syntax TypeExpr) to semantic Types. infer.ts uses it for every annotation.

import { closestName, Code, type DiagnosticBag } from '../diagnostics/diagnostic.ts';
import type { Stmt, TypeDecl, TypeExpr } from '../syntax/ast.ts';
import {
  adtType, AnyType, Bool, CONSTRUCTION_ERROR_CTORS, ErrorType, fnType, freshVar, Int, iteratorType, listType, resultType, Str, Unit,
  type AdtInfo, type CtorInfo, type Type,
  fiberType,
  channelType,
} from './types.ts';

/** Built-in type names, case-insensitive spellings included (docs/guide/03-values-and-types.md). */
const BUILTIN_TYPES: ReadonlyMap<string, Type> = new Map([
  ['Int', Int], ['int', Int],
  ['String', Str], ['string', Str],
  ['Bool', Bool], ['bool', Bool],
  ['Unit', Unit], ['unit', Unit],
  // The named error payloads (docs/guide/10-results-and-errors.md) are plain message strings, so
  // `Result<String, IndexError>` is `Result<String, String>`. A user type of the same name wins.
  ['MathError', Str], ['ParseError', Str], ['IndexError', Str], ['StringError', Str],
]);

/** The names `Result<T, E>` constructors go by (docs/guide/10-results-and-errors.md): tag 0 Success, 1 Error. */
export const RESULT_CTORS: ReadonlyMap<string, 0 | 1> = new Map([
  ['Success', 0], ['Ok', 0], ['Error', 1], ['Err', 1],
]);

export class TypeEnv {
  readonly adts = new Map<string, AdtInfo>();
  readonly ctors = new Map<string, CtorInfo>();
  private readonly aliases = new Map<string, { decl: TypeDecl; resolved: Type | null; resolving: boolean }>();

  constructor(private readonly diags: DiagnosticBag) {}

  /** Registers every `type` declaration among the statements (hoisted, docs/guide/01-getting-started.md#scripts-statements-run-top-to-bottom). */
  collect(stmts: Stmt[]): void {
    const decls = stmts.filter((s): s is TypeDecl => s.kind === 'type');
    const declared = new Set(decls.map((d) => d.name.name));
    // Pass 1: names. A single bare variant naming a known type is an alias (docs/guide/08-unions-and-pattern-matching.md#union-types).
    for (const d of decls) {
      if (this.adts.has(d.name.name) || this.aliases.has(d.name.name)) {
        this.diags.error(Code.DuplicateDefinition, d.name.span, `the type '${d.name.name}' is declared twice`);
        continue;
      }
      const only = d.variants.length === 1 ? d.variants[0]! : null;
      if (d.record === null && only && only.fields === null && d.typeParams.length === 0 &&
          (BUILTIN_TYPES.has(only.name.name) || only.name.name === 'Result' || (declared.has(only.name.name) && only.name.name !== d.name.name))) {
        this.aliases.set(d.name.name, { decl: d, resolved: null, resolving: false });
        continue;
      }
      const adt: AdtInfo = { name: d.name.name, typeParams: d.typeParams.map((p) => p.name), ctors: [], record: d.record !== null, span: d.name.span };
      this.adts.set(adt.name, adt);
    }
    // Pass 2: constructors and their fields.
    for (const d of decls) {
      const adt = this.adts.get(d.name.name);
      if (!adt || adt.span !== d.name.span) continue;
      const params = new Map(d.typeParams.map((p, i) => [p.name, { kind: 'param', index: i, name: p.name } as Type]));
      const variants = d.record !== null ? [{ name: d.name, fields: d.record, span: d.span }] : d.variants;
      for (const v of variants) {
        if (this.ctors.has(v.name.name)) {
          this.diags.error(Code.DuplicateDefinition, v.name.span, `the constructor '${v.name.name}' is declared twice`);
          continue;
        }
        const seen = new Set<string>();
        const ctor: CtorInfo = {
          name: v.name.name,
          adt,
          tag: adt.ctors.length,
          unit: v.fields === null,
          span: v.name.span,
          fields: [],
          validators: [],
        };
        for (const f of v.fields ?? []) {
          if (seen.has(f.name.name)) {
            this.diags.error(Code.DuplicateDefinition, f.name.span, `the field '${f.name.name}' is declared twice`);
            continue;
          }
          seen.add(f.name.name);
          ctor.fields.push({ name: f.name.name, type: this.resolve(f.type, params), span: f.name.span, constraint: f.constraint ?? undefined });
        }
        adt.ctors.push(ctor);
        this.ctors.set(ctor.name, ctor);
      }
    }
    for (const [name] of this.aliases) this.aliasTarget(name);
    this.declareConstructionError();
  }

  /**
   * the built-in union `ConstructionError`, the failure payload of constrained construction.
   * A program's own declarations win: a type of that name replaces it, and a constructor name the
   * program already uses stays the program's.
   */
  private declareConstructionError(): void {
    if (this.adts.has('ConstructionError') || this.aliases.has('ConstructionError')) return;
    const at = { start: 0, end: 0 };
    const adt: AdtInfo = { name: 'ConstructionError', typeParams: [], ctors: [], record: false, span: at, builtin: true };
    for (const c of CONSTRUCTION_ERROR_CTORS) {
      const ctor: CtorInfo = {
        name: c.name, adt, tag: adt.ctors.length, unit: false, span: at, validators: [],
        fields: c.fields.map((f) => ({ name: f, type: Str, span: at })),
      };
      adt.ctors.push(ctor);
      if (!this.ctors.has(c.name)) this.ctors.set(c.name, ctor);
    }
    this.adts.set(adt.name, adt);
  }

  /** The type of a failed constrained construction (docs/guide/09-constraints.md). */
  constructionError(): Type {
    const adt = this.adts.get('ConstructionError');
    return adt ? adtType(adt, []) : Str;
  }

  private aliasTarget(name: string): Type {
    const a = this.aliases.get(name)!;
    if (a.resolved) return a.resolved;
    if (a.resolving) {
      this.diags.error(Code.UnknownType, a.decl.name.span, `the type alias '${name}' refers to itself`);
      a.resolved = ErrorType;
      return ErrorType;
    }
    a.resolving = true;
    const v = a.decl.variants[0]!;
    a.resolved = this.resolve({ kind: 'named', name: v.name, args: [], span: v.span });
    a.resolving = false;
    return a.resolved;
  }

  /** Resolves a written type. `params` maps type-parameter names inside a generic declaration. */
  resolve(t: TypeExpr, params: ReadonlyMap<string, Type> = new Map()): Type {
    if (t.kind === 'fn') return fnType(t.params.map((p) => this.resolve(p, params)), this.resolve(t.ret, params));
    const name = t.name.name;
    // `List<T, N>`: N is an integer literal; the length is not part of the static type.
    if (name === 'List' && t.args.length === 2 && t.args[1]!.kind === 'named' && /^[0-9]+$/.test(t.args[1]!.name.name)) {
      return listType(this.resolve(t.args[0]!, params));
    }
    const args = t.args.map((a) => this.resolve(a, params));
    const arity = (n: number): boolean => {
      if (args.length === n) return true;
      this.diags.error(Code.TypeArity, t.span, `the type '${name}' takes ${n} type argument${n === 1 ? '' : 's'}, but ${args.length} ${args.length === 1 ? 'was' : 'were'} given`);
      return false;
    };
    const p = params.get(name);
    if (p) return arity(0) ? p : ErrorType;
    const adt = this.adts.get(name);
    if (adt) {
      if (args.length === 0 && adt.typeParams.length > 0) return adtType(adt, adt.typeParams.map(() => freshVar()));
      return arity(adt.typeParams.length) ? adtType(adt, args) : ErrorType;
    }
    if (this.aliases.has(name)) return arity(0) ? this.aliasTarget(name) : ErrorType;
    const b = BUILTIN_TYPES.get(name);
    if (b) return arity(0) ? b : ErrorType;
    if (name === 'Result') return arity(2) ? resultType(args[0]!, args[1]!) : ErrorType;
    if (name === 'List') return arity(1) ? listType(args[0]!) : ErrorType;
    if (name === 'Iterator') return arity(1) ? iteratorType(args[0]!) : ErrorType;
    // `Result<Success, String>` in the WebSocket chapter: `Success` as a type is Unit (docs/guide/10-results-and-errors.md).
    if (name === 'Success') return arity(0) ? Unit : ErrorType;
    if (name === 'any' || name === 'Any') return arity(0) ? AnyType : ErrorType;
    if (name === 'Fiber') return arity(1) ? fiberType(args[0]!) : ErrorType;
    if (name === 'Channel') return arity(1) ? channelType(args[0]!) : ErrorType;
    // docs/guide/16-fibers-and-channels.md: channel errors are plain messages like every built-in's (docs/guide/05-functions.md#recursion).
    if (name === 'ChannelError') return arity(0) ? Str : ErrorType;
    const candidates = [...this.adts.keys(), ...this.aliases.keys(), 'Int', 'String', 'Bool', 'Unit', 'Result', 'List', 'Iterator', 'Fiber', 'Channel', 'ChannelError', 'any'];
    const guess = closestName(name, candidates);
    this.diags.error(Code.UnknownType, t.name.span, `unknown type '${name}'`, {
      label: 'not a type in scope',
      notes: guess ? [`hint: did you mean '${guess}'?`] : [],
    });
    return ErrorType;
  }
}
