// Pipeline position: part of checking, run on every `fn` declaration before its body is checked.
// Implements the exact rules of docs/guide/05-functions.md#when-types-may-be-omitted for when a return type or a parameter type may be
// omitted, and what is inferred then. The rules are syntactic (the failscompilation corpus depends
// on them), so they look at the untyped AST only.

import type { Expr, FnDecl } from '../syntax/ast.ts';

const ARITH = new Set(['+', '-', '*', '/', '%']);
const COMPARE = new Set(['==', '!=', '<', '>', '<=', '>=', '&&', '||']);

export function isArithmetic(e: Expr): boolean {
  return e.kind === 'binary' && ARITH.has(e.op);
}
export function isComparison(e: Expr): boolean {
  return e.kind === 'binary' && COMPARE.has(e.op);
}

export type ReturnRule =
  | { kind: 'annotated' }
  | { kind: 'literal'; literal: 'Int' | 'String' | 'Bool' }
  | { kind: 'arithmetic' }
  | { kind: 'comparison' }
  /** Rule 1 violated: the body is not a literal, arithmetic or comparison. */
  | { kind: 'missing' }
  /** Rule 2 violated: an arithmetic operand is not a literal, parameter or arithmetic. */
  | { kind: 'implicitAny'; operand: Expr };

export function returnRule(fn: FnDecl): ReturnRule {
  if (fn.returnType) return { kind: 'annotated' };
  const b = fn.body;
  if (b.kind === 'int') return { kind: 'literal', literal: 'Int' };
  if (b.kind === 'string') return { kind: 'literal', literal: 'String' };
  if (b.kind === 'bool') return { kind: 'literal', literal: 'Bool' };
  if (isComparison(b)) return { kind: 'comparison' };
  if (!isArithmetic(b)) return { kind: 'missing' };
  const params = new Set(fn.params.map((p) => p.name.name));
  const bad = badOperand(b, params);
  return bad ? { kind: 'implicitAny', operand: bad } : { kind: 'arithmetic' };
}

function badOperand(e: Expr, params: ReadonlySet<string>): Expr | null {
  if (isArithmetic(e) && e.kind === 'binary') return badOperand(e.left, params) ?? badOperand(e.right, params);
  if (e.kind === 'int' || e.kind === 'string' || e.kind === 'bool') return null;
  if (e.kind === 'ident' && params.has(e.name)) return null;
  return e;
}

/** The leaves of an arithmetic body: true when any of them is a String (then `+` concatenates). */
export function arithmeticIsString(e: Expr, paramIsString: (name: string) => boolean): boolean {
  if (e.kind === 'binary' && ARITH.has(e.op)) return arithmeticIsString(e.left, paramIsString) || arithmeticIsString(e.right, paramIsString);
  if (e.kind === 'string') return true;
  if (e.kind === 'ident') return paramIsString(e.name);
  return false;
}

/**
 * Rule 3: may the unannotated parameter `name` be inferred? Returns 'Int' (used in an arithmetic
 * or comparison body), 'return' (the whole body of a function with `-> TYPE`), or null.
 */
export function paramRule(fn: FnDecl, name: string): 'Int' | 'return' | null {
  const b = fn.body;
  if (b.kind === 'ident' && b.name === name && fn.returnType) return 'return';
  if ((isArithmetic(b) || isComparison(b)) && occursInOperators(b, name)) return 'Int';
  return null;
}

/** Occurrences inside nested operators and positional call arguments count (docs/guide/05-functions.md#when-types-may-be-omitted). */
function occursInOperators(e: Expr, name: string): boolean {
  switch (e.kind) {
    case 'ident':
      return e.name === name;
    case 'binary':
      return occursInOperators(e.left, name) || occursInOperators(e.right, name);
    case 'unary':
      return occursInOperators(e.operand, name);
    case 'call':
      return e.args.some((a) => a.name === null && occursInOperators(a.value, name));
    default:
      return false;
  }
}
