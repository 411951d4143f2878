// Pipeline position: after infer.ts, on the typed tree (checks only). Top-level lets are globals
// initialised in program order, and top-level functions are hoisted, so a function may name a
// global declared after it. This pass rejects every top-level statement that could read such a
// global before its initialiser has run — directly, or through any chain of calls — instead of
// letting the program read an uninitialised slot (a crash or a silent 0).
//
// The analysis is conservative where it cannot know: a function or lambda that is mentioned (called
// or passed as a value) counts as run at that point, with every function its body mentions.

import { Code, type DiagnosticBag } from '../diagnostics/diagnostic.ts';
import type { Span } from '../source.ts';
import type { TExpr, TStmt, TypedFn, TypedProgram, VarSymbol } from './typed.ts';
import { childrenOf, stmtChildren } from './walk.ts';

/** What one function body mentions directly: global reads and top-level functions. */
interface Mentions {
  reads: { symbol: VarSymbol; span: Span }[];
  fns: TypedFn[];
}

/** A global reachable from a call: where it is read, and the functions that lead there. */
interface Reach {
  span: Span;
  /** Function names from the called function to the one that reads (inclusive). */
  path: string[];
}

export function checkInitialisationOrder(program: TypedProgram, diags: DiagnosticBag): void {
  const direct = new Map<TypedFn, Mentions>();
  const reachMemo = new Map<TypedFn, Map<VarSymbol, Reach>>();

  const mentionsOf = (roots: TExpr[]): Mentions => {
    const out: Mentions = { reads: [], fns: [] };
    // An explicit stack: long operator chains and big matches must not overflow the JS stack.
    const stack = [...roots];
    while (stack.length) {
      const e = stack.pop()!;
      if (e.kind === 'var') {
        const sym = e.symbol;
        if (sym.kind === 'global') out.reads.push({ symbol: sym, span: e.span });
        else if (sym.kind === 'fn' && sym.fn && !sym.fn.nested) out.fns.push(sym.fn);
      }
      stack.push(...childrenOf(e));
    }
    return out;
  };
  const directOf = (fn: TypedFn): Mentions => {
    let m = direct.get(fn);
    if (!m) {
      m = mentionsOf([fn.body]);
      direct.set(fn, m);
    }
    return m;
  };
  /** Every global a call of `fn` may read, with the shortest chain of calls to the read. */
  const reachOf = (fn: TypedFn): Map<VarSymbol, Reach> => {
    const memo = reachMemo.get(fn);
    if (memo) return memo;
    const result = new Map<VarSymbol, Reach>();
    const seen = new Set<TypedFn>([fn]);
    let frontier: { fn: TypedFn; path: string[] }[] = [{ fn, path: [fn.name] }];
    while (frontier.length) {
      const next: typeof frontier = [];
      for (const { fn: f, path } of frontier) {
        const m = directOf(f);
        for (const r of m.reads) if (!result.has(r.symbol)) result.set(r.symbol, { span: r.span, path });
        for (const callee of m.fns) {
          if (seen.has(callee)) continue;
          seen.add(callee);
          next.push({ fn: callee, path: [...path, callee.name] });
        }
      }
      frontier = next;
    }
    reachMemo.set(fn, result);
    return result;
  };

  const initialised = new Set<VarSymbol>();
  const reported = new Set<VarSymbol>();
  const checkRoots = (roots: TExpr[]): void => {
    // The first mention of each function in source order is the one to point at.
    const calls = new Map<TypedFn, Span>();
    const walk = [...roots];
    while (walk.length) {
      const e = walk.pop()!;
      if (e.kind === 'var' && e.symbol.kind === 'global') initialisedOrReport(e.symbol, e.span, null);
      if (e.kind === 'var' && e.symbol.kind === 'fn' && e.symbol.fn && !e.symbol.fn.nested) {
        const prev = calls.get(e.symbol.fn);
        if (!prev || e.span.start < prev.start) calls.set(e.symbol.fn, e.span);
      }
      walk.push(...childrenOf(e));
    }
    for (const [fn, callSpan] of calls) {
      for (const [symbol, reach] of reachOf(fn)) initialisedOrReport(symbol, reach.span, { callSpan, path: reach.path });
    }
  };
  const initialisedOrReport = (symbol: VarSymbol, readSpan: Span, via: { callSpan: Span; path: string[] } | null): void => {
    if (initialised.has(symbol) || reported.has(symbol)) return;
    reported.add(symbol);
    const name = symbol.name;
    const labels = [{ span: symbol.span, message: `'${name}' is declared here, and initialised only when this line runs` }];
    if (via) {
      const chain = via.path.map((n) => `'${n}'`).join(' → ');
      labels.unshift({ span: via.callSpan, message: `this calls ${chain} before '${name}' is initialised` });
    }
    diags.error(Code.UseBeforeDeclaration, readSpan, `the global '${name}' is read before its initialiser has run`, {
      label: via ? `'${via.path[via.path.length - 1]}' reads '${name}' here` : `'${name}' is read here`,
      labels,
      notes: [
        'note: top-level lets are initialised in program order; a function can be called before a global it reads exists',
        `hint: move \`let ${name} = …\` above the first statement that runs '${via ? via.path[0] : name}', or pass the value as an argument`,
      ],
    });
  };

  const visitStmt = (s: TStmt): void => {
    if (s.kind === 'let') {
      checkRoots([s.value]);
      if (s.symbol.kind === 'global') initialised.add(s.symbol);
      return;
    }
    // A module's lets sit in a block at the module's position: they initialise one by one.
    if (s.kind === 'expr' && s.expr.kind === 'block' && s.expr.stmts.some((x) => x.kind === 'let' && x.symbol.kind === 'global')) {
      for (const inner of s.expr.stmts) visitStmt(inner);
      if (s.expr.result) checkRoots([s.expr.result]);
      return;
    }
    checkRoots(stmtChildren(s));
  };
  for (const s of program.topLevel) visitStmt(s);
}
