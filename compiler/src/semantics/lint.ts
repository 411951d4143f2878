// Pipeline position: after infer.ts, on the typed tree (checks only). Warnings: a `let` binding or
// a parameter that is never read, and a `Result` computed as a statement and then dropped (its
// failure would go unnoticed). A name starting with `_` is deliberately unused and never warned
// about. Warnings never stop compilation and never change the exit status.

import { Code, type DiagnosticBag } from '../diagnostics/diagnostic.ts';
import { isCon, prune } from './types.ts';
import type { TExpr, TStmt, TypedFn, TypedProgram, VarSymbol } from './typed.ts';
import { childrenOf, stmtChildren } from './walk.ts';

export function lintProgram(program: TypedProgram, diags: DiagnosticBag): void {
  const read = new Set<VarSymbol>();
  const bindings: VarSymbol[] = [];
  const params: { symbol: VarSymbol; fn: string }[] = [];
  const ignoredResults: TExpr[] = [];

  const visitFn = (fn: TypedFn): void => {
    // Synthesised functions (field-constraint validators, built-ins used as values) have no
    // parameters the user wrote; `main` has none.
    if (fn.name.includes('.where.') || (fn.symbol === null && fn.name !== 'lambda')) return;
    for (const p of fn.params) params.push({ symbol: p, fn: fn.name });
  };
  const visitStmt = (s: TStmt): void => {
    if (s.kind === 'let') bindings.push(s.symbol);
    else if (s.kind === 'fns') s.fns.forEach(visitFn);
    else if (s.kind === 'expr' && isResult(s.expr)) ignoredResults.push(s.expr);
  };

  // An explicit stack: long chains and big matches are deep trees.
  const stack: TExpr[] = [];
  for (const s of program.topLevel) {
    // A module's lets are its public members: only the program's own lets are checked.
    if (!(s.kind === 'expr' && s.expr.kind === 'block' && s.expr.stmts.some((x) => x.kind === 'let' && x.symbol.kind === 'global'))) visitStmt(s);
    stack.push(...stmtChildren(s));
  }
  for (const fn of program.functions) {
    visitFn(fn);
    stack.push(fn.body);
  }
  while (stack.length) {
    const e = stack.pop()!;
    if (e.kind === 'var') read.add(e.symbol);
    else if (e.kind === 'lambda') visitFn(e.fn);
    else if (e.kind === 'block') e.stmts.forEach(visitStmt);
    stack.push(...childrenOf(e));
  }

  for (const b of bindings) {
    if (read.has(b) || b.name.startsWith('_')) continue;
    diags.warning(Code.UnusedVariable, b.span, `unused variable '${b.name}'`, {
      label: 'bound here and never read',
      notes: [`hint: if this is intentional, start the name with an underscore: '_${b.name}'`],
    });
  }
  for (const { symbol, fn } of params) {
    if (read.has(symbol) || symbol.name.startsWith('_')) continue;
    diags.warning(Code.UnusedParameter, symbol.span, `unused parameter '${symbol.name}' of ${fn === 'lambda' ? 'a lambda' : `'${fn}'`}`, {
      label: 'never read in the body',
      notes: [`hint: if this is intentional, start the name with an underscore: '_${symbol.name}'`],
    });
  }
  for (const e of ignoredResults) {
    diags.warning(Code.UnusedResult, e.span, 'this Result is ignored: a failure here would go unnoticed', {
      label: `${showResult(e)} is computed and dropped`,
      notes: ['hint: handle it with `match … { Success { value } => … Error { message } => … }`, or bind it to a name starting with `_` to ignore it on purpose: `let _result = …`'],
    });
  }
}

function isResult(e: TExpr): boolean {
  return isCon(prune(e.type), 'Result');
}

function showResult(e: TExpr): string {
  if (e.kind === 'call' && e.callee.kind === 'var') return `the Result of '${e.callee.symbol.name}'`;
  if (e.kind === 'runtime') return 'the Result of this call';
  return 'the Result';
}
