// Pipeline position: a core → core analysis at the end of lowering (lower.ts), after inline.ts.
// Marks closure environments that cannot outlive the function that builds them, so codegen puts
// them in that function's stack frame instead of the collected heap (`alloc.stack`).
//
// A closure `mkclosure(fn, alloc(captures))` does not escape when it is only ever called: it is
// the callee of a `callclosure` directly, or it is bound to a local whose every use is the callee
// of a `callclosure` (never an argument, a stored word, a captured variable, a returned or
// yielded value), and the function it runs reads its environment only through `envload` (it
// never hands the environment itself to another closure). A call returns before the function
// that made it, so the environment is dead by then. LLVM then sees a stack slot written and read
// in one function, and (after inlining the known callee) keeps the captured values in registers:
// `apply(makeAdder(k), v)` costs no allocation at all.

import { forEachChild, type CExpr, type CoreFn, type CoreProgram } from './core.ts';
import { walk } from './inline.ts';

/** Sets `stack` on every closure environment of `program` that provably does not escape. */
export function stackAllocateClosureEnvs(program: CoreProgram): void {
  const leaksEnv = new Map<string, boolean>();
  const byName = new Map(program.fns.map((f) => [f.name, f]));
  const envStaysLocal = (fn: string): boolean => {
    let leaks = leaksEnv.get(fn);
    if (leaks === undefined) {
      const f = byName.get(fn);
      leaks = f === undefined || usesEnvAsValue(f);
      leaksEnv.set(fn, leaks);
    }
    return !leaks;
  };
  for (const f of program.fns) markBody(f.body, envStaysLocal);
  markBody(program.init, envStaysLocal);
}

function usesEnvAsValue(f: CoreFn): boolean {
  let found = false;
  walk(f.body, (e) => {
    if (e.k === 'env') found = true;
    return !found;
  });
  return found;
}

/** A closure built with a fresh heap environment whose function keeps the environment local. */
function candidate(e: CExpr, envStaysLocal: (fn: string) => boolean): (CExpr & { k: 'alloc' }) | null {
  if (e.k !== 'mkclosure' || e.env === null || e.env.k !== 'alloc' || e.env.stack) return null;
  return envStaysLocal(e.fn) ? e.env : null;
}

function markBody(body: CExpr, envStaysLocal: (fn: string) => boolean): void {
  // Closures bound by a `let`, by local id; a local that escapes is removed.
  const bound = new Map<number, CExpr & { k: 'alloc' }>();
  const escaped = new Set<number>();
  const direct: (CExpr & { k: 'alloc' })[] = [];
  const useAsValue = (e: CExpr): void => {
    if (e.k === 'local') escaped.add(e.id);
  };
  walk(body, (e) => {
    if (e.k === 'let') {
      // The value may be a block ending in the closure (an inlined `makeAdder(k)` is one).
      let value = e.value;
      while (value.k === 'let' || value.k === 'seq') value = value.k === 'let' ? value.body : value.result;
      const env = candidate(value, envStaysLocal);
      if (env) bound.set(e.id, env);
    }
    if (e.k === 'callclosure') {
      // The callee position is the one use that does not let the closure escape.
      const env = candidate(e.closure, envStaysLocal);
      if (env) direct.push(env);
      e.args.forEach(useAsValue);
      return;
    }
    forEachChild(e, useAsValue);
  });
  for (const env of direct) env.stack = true;
  for (const [id, env] of bound) if (!escaped.has(id)) env.stack = true;
}
