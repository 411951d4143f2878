// Pipeline position: part of checking (called by infer.ts for every match arm). Checks a pattern
// against the type of the value it matches (docs/guide/08-unions-and-pattern-matching.md#pattern-forms): resolves constructor names (user
// constructors first, then the Result constructors and their aliases), unifies the scrutinee type,
// binds pattern variables in the arm's scope, and produces the typed pattern (typed.ts).
// Exhaustiveness is not decided here but in exhaustive.ts.

import { closestName, Code, type DiagnosticBag } from '../diagnostics/diagnostic.ts';
import type { Span } from '../source.ts';
import type { Ident, Pattern } from '../syntax/ast.ts';
import { RESULT_CTORS, type TypeEnv } from './resolve.ts';
import { article, refinedCtor, withArticle, type Scope } from './scope.ts';
import type { SymbolKind, TPattern, VarSymbol } from './typed.ts';
import {
  adtType, ErrorType, freshVar, instantiate, Int, isCon, prune, resultType, showType, Str, unify, zonk, Bool,
  type CtorInfo, type Type,
} from './types.ts';

export class PatternChecker {
  constructor(
    private readonly diags: DiagnosticBag,
    private readonly types: TypeEnv,
    private readonly symbol: (name: string, kind: SymbolKind, type: Type, span: Span) => VarSymbol,
  ) {}

  private instantiateAdt(adt: CtorInfo['adt']): { type: Type; args: Type[] } {
    const args = adt.typeParams.map(() => freshVar());
    return { type: adtType(adt, args), args };
  }

  private patternMismatch(p: Pattern, what: string, t: Type): TPattern {
    this.diags.error(Code.InvalidPattern, p.span, `this pattern is ${what}, but the value matched is ${article(showType(zonk(t)))} ${showType(zonk(t))}`);
    return { kind: 'wild', span: p.span };
  }

  bind(binder: { name: string | null; span: Span }, type: Type, scope: Scope): TPattern {
    if (binder.name === null) return { kind: 'wild', span: binder.span };
    const symbol = this.symbol(binder.name, 'local', type, binder.span);
    scope.vars.set(binder.name, symbol);
    return { kind: 'bind', symbol, span: binder.span };
  }

  checkPattern(p: Pattern, t: Type, scope: Scope): TPattern {
    switch (p.kind) {
      case 'wildcard':
        return { kind: 'wild', span: p.span };
      case 'int':
        return unify(t, Int) ? { kind: 'int', value: p.value, span: p.span } : this.patternMismatch(p, 'an Int', t);
      case 'string':
        return unify(t, Str) ? { kind: 'string', value: p.value, span: p.span } : this.patternMismatch(p, 'a String', t);
      case 'bool':
        return unify(t, Bool) ? { kind: 'bool', value: p.value, span: p.span } : this.patternMismatch(p, 'a Bool', t);
      case 'name': {
        const ctor = this.userCtor(p.name.name);
        if (ctor) return this.ctorPattern(p, ctor, t, [], null, scope);
        const rtag = this.resultCtor(p.name.name);
        if (rtag !== undefined) return this.resultPattern(p, rtag, t, null, scope);
        // An upper-case name against a union is a misspelt or foreign variant, not a binder (docs/guide/08-unions-and-pattern-matching.md#exhaustiveness).
        const rt = prune(t);
        if (/^[A-Z]/.test(p.name.name) && rt.kind === 'con' && rt.adt && rt.adt.ctors.length > 1) {
          const guess = closestName(p.name.name, rt.adt.ctors.map((c) => c.name));
          this.diags.error(Code.InvalidPattern, p.span, `unknown variant '${p.name.name}' in match expression for type '${rt.adt.name}': unknown variant in match expression`, {
            notes: [guess ? `hint: did you mean '${guess}'?` : `note: ${rt.adt.name} has ${rt.adt.ctors.map((c) => c.name).join(', ')}`],
          });
          return { kind: 'wild', span: p.span };
        }
        return this.bind({ name: p.name.name, span: p.name.span }, t, scope);
      }
      case 'ctorBinder': {
        const rtag = this.resultCtor(p.ctor.name);
        if (rtag !== undefined) return this.resultPattern(p, rtag, t, p.binder, scope);
        const ctor = this.ctorOrError(p.ctor);
        if (!ctor) return { kind: 'wild', span: p.span };
        return this.ctorPattern(p, ctor, t, [], p.binder, scope);
      }
      case 'ctorFields': {
        const rtag = this.resultCtor(p.ctor.name);
        if (rtag !== undefined) {
          // A single name binds the payload whatever it is called (docs/guide/10-results-and-errors.md#consuming-a-result).
          if (p.fields.length > 1) {
            this.diags.error(Code.InvalidPattern, p.span, `${p.ctor.name} { … } has a single payload; write one name, e.g. ${p.ctor.name} { ${rtag === 0 ? 'value' : 'message'} }`);
          }
          return this.resultPattern(p, rtag, t, p.fields[0] ?? null, scope);
        }
        const ctor = this.ctorOrError(p.ctor);
        if (!ctor) return { kind: 'wild', span: p.span };
        return this.ctorPattern(p, ctor, t, p.fields, null, scope);
      }
      case 'ctorArgs': {
        const rtag = this.resultCtor(p.ctor.name);
        if (rtag !== undefined) {
          if (p.args.length > 1) this.diags.error(Code.InvalidPattern, p.span, `${p.ctor.name}(…) has a single payload`);
          const { ok, err } = this.resultParts(p, t);
          if (!ok || !err) return { kind: 'wild', span: p.span };
          const payload = p.args[0] ? this.checkPattern(p.args[0], rtag === 0 ? ok : err, scope) : { kind: 'wild' as const, span: p.span };
          return { kind: 'result', tag: rtag, payload, span: p.span };
        }
        const ctor = this.ctorOrError(p.ctor);
        if (!ctor) return { kind: 'wild', span: p.span };
        const inst = this.unifyCtor(p, ctor, t);
        if (!inst) return { kind: 'wild', span: p.span };
        if (p.args.length !== ctor.fields.length) {
          this.diags.error(Code.InvalidPattern, p.span, `${ctor.name} has ${ctor.fields.length} field${ctor.fields.length === 1 ? '' : 's'}, but this pattern has ${p.args.length}`);
          return { kind: 'wild', span: p.span };
        }
        const args = p.args.map((sub, i) => this.checkPattern(sub, instantiate(ctor.fields[i]!.type, inst), scope));
        return { kind: 'ctor', ctor, args, bind: null, span: p.span };
      }
      case 'structural': {
        const rt = prune(t);
        if (rt.kind === 'error') return { kind: 'wild', span: p.span };
        if (rt.kind !== 'con' || !rt.adt || rt.adt.ctors.length !== 1) {
          this.diags.error(Code.InvalidPattern, p.span, `a structural pattern needs a record value, but this is ${article(showType(zonk(rt)))} ${showType(zonk(rt))}`);
          return { kind: 'wild', span: p.span };
        }
        return this.ctorPattern(p, rt.adt.ctors[0]!, t, p.fields, p.name ? { name: p.name.name, span: p.name.span } : null, scope);
      }
      case 'typed':
      {
        // `n: Int` (docs/guide/08-unions-and-pattern-matching.md#pattern-forms): on an `any` value, a run-time type test; on a value of that very type,
        // a plain binding.
        const target = this.types.resolve(p.type);
        const st = prune(t);
        if (isCon(st, 'any') && !isCon(target, 'any') && prune(target).kind !== 'error') {
          const symbol = this.symbol(p.name.name, 'local', target, p.name.span);
          scope.vars.set(p.name.name, symbol);
          return { kind: 'typed', target, bind: symbol, span: p.span };
        }
        if (!unify(t, target)) return this.patternMismatch(p, withArticle(showType(target)), t);
        // The whole `n: T` is the pattern's span, so a rejected type silences coverage checks of
        // its match (exhaustive.ts) instead of making the arm look like a catch-all.
        return { ...this.bind({ name: p.name.name, span: p.name.span }, target, scope), span: p.span };
      }
    }
  }

  private userCtor(name: string): CtorInfo | undefined {
    return this.types.ctors.get(name);
  }
  /** A Result constructor name, unless a user type declares a constructor of that name. */
  resultCtor(name: string): 0 | 1 | undefined {
    return this.types.ctors.has(name) ? undefined : RESULT_CTORS.get(name);
  }
  private ctorOrError(name: Ident): CtorInfo | undefined {
    const c = this.types.ctors.get(name.name);
    if (!c) {
      const guess = closestName(name.name, [...this.types.ctors.keys(), ...RESULT_CTORS.keys()]);
      this.diags.error(Code.UnknownConstructor, name.span, `unknown constructor '${name.name}' in pattern`, {
        notes: guess ? [`hint: did you mean '${guess}'?`] : [],
      });
    }
    return c;
  }

  private resultParts(p: Pattern, t: Type): { ok?: Type; err?: Type } {
    if (prune(t).kind === 'error') return { ok: ErrorType, err: ErrorType };
    const ok = freshVar();
    const err = freshVar();
    if (!unify(t, resultType(ok, err))) {
      this.patternMismatch(p, 'a Result', t);
      return {};
    }
    return { ok, err };
  }

  private resultPattern(p: Pattern, tag: 0 | 1, t: Type, binder: { name: string | null; span: Span } | null, scope: Scope): TPattern {
    const { ok, err } = this.resultParts(p, t);
    if (!ok || !err) return { kind: 'wild', span: p.span };
    const payload: TPattern = binder ? this.bind(binder, tag === 0 ? ok : err, scope) : { kind: 'wild', span: p.span };
    return { kind: 'result', tag, payload, span: p.span };
  }

  private unifyCtor(p: Pattern, ctor: CtorInfo, t: Type): Type[] | null {
    if (prune(t).kind === 'error') return ctor.adt.typeParams.map(() => ErrorType);
    const { type, args } = this.instantiateAdt(ctor.adt);
    if (!unify(t, type)) {
      const rt = prune(t);
      if (rt.kind === 'con' && rt.adt) {
        this.diags.error(Code.InvalidPattern, p.span, `unknown variant '${ctor.name}' in match expression for type '${rt.adt.name}': unknown variant in match expression`, {
          notes: [`note: ${rt.adt.name} has ${rt.adt.ctors.map((c) => c.name).join(', ')}`],
        });
      } else this.patternMismatch(p, `a ${ctor.adt.name}`, t);
      return null;
    }
    return args;
  }

  private ctorPattern(
    p: Pattern,
    ctor: CtorInfo,
    t: Type,
    fields: { name: string | null; span: Span }[],
    whole: { name: string | null; span: Span } | null,
    scope: Scope,
  ): TPattern {
    const inst = this.unifyCtor(p, ctor, t);
    if (!inst) return { kind: 'wild', span: p.span };
    const args: TPattern[] = ctor.fields.map(() => ({ kind: 'wild', span: p.span }));
    for (const f of fields) {
      if (f.name === null) continue;
      const idx = ctor.fields.findIndex((x) => x.name === f.name);
      if (idx < 0) {
        this.diags.error(Code.UnknownField, f.span, `${ctor.name} has no field '${f.name}'`, {
          notes: [`note: its fields are ${ctor.fields.map((x) => x.name).join(', ') || '(none)'}`],
        });
        continue;
      }
      args[idx] = this.bind(f, instantiate(ctor.fields[idx]!.type, inst), scope);
    }
    let bind: VarSymbol | null = null;
    if (whole && whole.name !== null) {
      const b = this.bind(whole, t, scope);
      if (b.kind === 'bind') {
        bind = b.symbol;
        refinedCtor.set(bind, ctor);
      }
    }
    return { kind: 'ctor', ctor, args, bind, span: p.span };
  }
}
