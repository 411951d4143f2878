// Pipeline position: a utility over the typed tree (typed.ts) for passes that visit every
// expression (exhaustive.ts, lower/closures.ts). Knows the children of each node kind, once.

import type { TExpr, TStmt, TypedFn, TypedProgram } from './typed.ts';

export function childrenOf(e: TExpr): TExpr[] {
  switch (e.kind) {
    case 'int':
    case 'string':
    case 'bool':
    case 'unit':
    case 'var':
      return [];
    case 'interp':
      return e.parts.filter((p): p is TExpr => typeof p !== 'string');
    case 'call':
      return [e.callee, ...e.args.map((a) => a.value)];
    case 'builtin':
    case 'runtime':
      return e.args.map((a) => a.value);
    case 'binary':
      return [e.left, e.right];
    case 'unary':
      return [e.operand];
    case 'lambda':
      return [e.fn.body];
    case 'block':
      return [...e.stmts.flatMap(stmtChildren), ...(e.result ? [e.result] : [])];
    case 'match':
      return [e.scrutinee, ...e.arms.map((a) => a.body)];
    case 'construct':
      return e.fields.map((f) => f.value);
    case 'update':
      return [e.base, ...e.fields.map((f) => f.value)];
    case 'field':
      return [e.object];
    case 'result':
      return e.payload ? [e.payload] : [];
    case 'list':
      return e.elements;
    case 'box':
      return [e.value];
    case 'index':
      return [e.list];
    case 'spawn':
      return [e.computation];
    case 'await':
      return [e.fiber];
    case 'yield':
      return e.value ? [e.value] : [];
    case 'channel':
      return [e.capacity];
    case 'send':
      return [e.channel, e.value];
    case 'recv':
      return [e.channel];
    case 'select':
      return e.arms.flatMap((a) => (a.kind === 'recv' ? [a.channel] : a.kind === 'send' ? [a.channel, a.value] : [a.body]));
  }
}

export function stmtChildren(s: TStmt): TExpr[] {
  switch (s.kind) {
    case 'let':
      return [s.value];
    case 'expr':
      return [s.expr];
    case 'fns':
      return s.fns.map((f) => f.body);
  }
}

/** Visits every expression of the program, parents before children. */
export function forEachExpr(program: TypedProgram, visit: (e: TExpr) => void): void {
  // An explicit stack (children pushed in reverse keep the parents-first, left-to-right order):
  // an operator chain thousands of operands long must not overflow the JS stack.
  const go = (root: TExpr): void => {
    const stack = [root];
    while (stack.length) {
      const e = stack.pop()!;
      visit(e);
      const children = childrenOf(e);
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
    }
  };
  for (const s of program.topLevel) stmtChildren(s).forEach(go);
  program.functions.forEach((f: TypedFn) => go(f.body));
}
