// Pipeline position: analysis for lowering (lower.ts). Closure conversion needs, for every lambda
// and every group of nested `fn` declarations, the variables it captures: symbols of enclosing
// functions (parameters, locals, pattern bindings, nested functions) used inside it. Top-level
// functions and top-level lets are never captured (they are code and globals).

import { assertNever } from '../diagnostics/diagnostic.ts';
import type { TExpr, TPattern, TStmt, TypedFn, VarSymbol } from '../semantics/typed.ts';
import { childrenOf } from '../semantics/walk.ts';

function patternSymbols(p: TPattern, out: Set<number>): void {
  switch (p.kind) {
    case 'wild':
    case 'int':
    case 'string':
    case 'bool':
      return;
    case 'bind':
      out.add(p.symbol.id);
      return;
    case 'typed':
      out.add(p.bind.id);
      return;
    case 'ctor':
      if (p.bind) out.add(p.bind.id);
      p.args.forEach((a) => patternSymbols(a, out));
      return;
    case 'result':
      patternSymbols(p.payload, out);
      return;
    default:
      return assertNever(p, 'pattern');
  }
}

function stmtDefines(s: TStmt, out: Set<number>): void {
  if (s.kind === 'let') out.add(s.symbol.id);
  if (s.kind === 'fns') for (const f of s.fns) out.add(f.symbol!.id);
}

/** Symbols used and symbols defined anywhere inside an expression (deeply). */
function scan(e: TExpr, used: Map<number, VarSymbol>, defined: Set<number>): void {
  if (e.kind === 'var') {
    const s = e.symbol;
    const capturable = s.kind === 'param' || s.kind === 'local' || (s.kind === 'fn' && s.fn?.nested === true);
    if (capturable) used.set(s.id, s);
  }
  if (e.kind === 'lambda') e.fn.params.forEach((p) => defined.add(p.id));
  if (e.kind === 'block') e.stmts.forEach((s) => stmtDefines(s, defined));
  if (e.kind === 'block') for (const s of e.stmts) if (s.kind === 'fns') for (const f of s.fns) f.params.forEach((p) => defined.add(p.id));
  if (e.kind === 'match') e.arms.forEach((a) => patternSymbols(a.pattern, defined));
  for (const c of childrenOf(e)) scan(c, used, defined);
}

/** The captured symbols of a function group (a lambda is a group of one), sorted by id. */
export function capturesOf(group: TypedFn[]): VarSymbol[] {
  const used = new Map<number, VarSymbol>();
  const defined = new Set<number>();
  for (const f of group) {
    f.params.forEach((p) => defined.add(p.id));
    if (f.symbol) defined.add(f.symbol.id);
    scan(f.body, used, defined);
  }
  return [...used.values()].filter((s) => !defined.has(s.id)).sort((a, b) => a.id - b.id);
}
