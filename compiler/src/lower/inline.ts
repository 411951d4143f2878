// Pipeline position: a core → core rewrite at the end of lowering (lower.ts), before escape.ts.
// Calls of small, non-recursive top-level functions that make or take a closure are replaced by
// the function's body, with the arguments bound to fresh locals in the order they were written;
// a small recursive function is unrolled into itself (unrollSelfCalls).
//
// Why in the compiler and not only in LLVM: a function that returns a closure (`fn makeAdder(k)
// = fn(x) => x + k`) allocates its environment on the collected heap, because the closure
// outlives the call. LLVM inlines such a function too, but it cannot delete the allocation
// afterwards (a call into the collector is not an allocation it knows how to remove). Once the
// body is inlined here, escape.ts sees where the closure goes and can put the environment in the
// caller's stack frame, which LLVM then dissolves into registers.

import { forEachChild, type CExpr, type CoreFn, type CoreProgram } from './core.ts';

/** Largest body (in core nodes) inlined at each call: a one-line function is 5-30 nodes. */
export const INLINE_MAX_NODES = 40;

/** Rewrites `program` in place; `temp` gives fresh local ids. */
export function inlineSmallFunctions(program: CoreProgram, temp: () => number): void {
  const byName = new Map(program.fns.map((f) => [f.name, f]));
  // Callees first, so what is inlined is the callee with its own calls already inlined; a
  // function reached again while its callees are being processed is on a cycle (recursive)
  // and is never inlined.
  const state = new Map<string, 'active' | 'done'>();
  const inlinable = new Set<string>();
  for (const root of program.fns) {
    if (state.has(root.name)) continue;
    // Iterative post-order over the call graph: long call chains must not recurse.
    const stack: Entry[] = [entry(root)];
    state.set(root.name, 'active');
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const next = top.callees.pop();
      if (next !== undefined) {
        const callee = byName.get(next);
        if (callee && !state.has(next)) {
          state.set(next, 'active');
          stack.push(entry(callee));
        }
        continue;
      }
      stack.pop();
      const f = top.fn;
      // Walked only when it calls something inlinable (most functions do not).
      if ([...top.calls].some((c) => inlinable.has(c))) f.body = inlineCalls(f.body, inlinable, byName, temp, f.name);
      state.set(f.name, 'done');
      if (top.calls.has(f.name)) unrollSelfCalls(f, temp);
      else if (isInlinable(f, state)) inlinable.add(f.name);
    }
  }
  program.init = inlineCalls(program.init, inlinable, byName, temp, null);
}

/** A function on the post-order walk: the callees still to visit, and what it calls at all. */
interface Entry {
  fn: CoreFn;
  callees: string[];
  calls: ReadonlySet<string>;
}

function entry(fn: CoreFn): Entry {
  const callees = directCallees(fn.body);
  return { fn, callees, calls: new Set(callees) };
}

/** Names of the functions `body` calls directly (with repeats). */
function directCallees(body: CExpr): string[] {
  const out: string[] = [];
  walk(body, (e) => {
    if (e.k === 'calldirect') out.push(e.fn);
  });
  return out;
}

/**
 * Whether calls of `f` may be replaced by its body: a function that makes or takes a closure
 * (the calls whose inlining lets escape.ts keep an environment off the heap; LLVM inlines the
 * others at -O2 by itself, and copying them here would only grow -O0 code), a top-level function
 * (no environment of its own to read), not a loop (its self tail calls are jumps to its own
 * entry), calling nothing that is still being processed (a cycle back to it), and small.
 */
function isInlinable(f: CoreFn, state: Map<string, 'active' | 'done'>): boolean {
  if (f.loops) return false;
  if (f.ret !== 'closure' && !f.params.some((p) => p.repr === 'closure')) return false;
  let nodes = 0;
  let ok = true;
  walk(f.body, (e) => {
    nodes++;
    if (nodes > INLINE_MAX_NODES) ok = false;
    if (e.k === 'env' || e.k === 'envload') ok = false;
    if (e.k === 'calldirect' && (e.fn === f.name || state.get(e.fn) === 'active')) ok = false;
    return ok;
  });
  return ok;
}

/** Most copies of its own body an unrolled recursive function holds (itself included). */
export const UNROLL_MAX_BODIES = 4;

/**
 * A small recursive function gets its own body inlined at its non-tail self calls, so one call
 * does the work of several levels: the calls that would only reach the base case (half of all
 * calls of `fib` or Towers of Hanoi) become a test inside the caller. gcc -O2 does this
 * (recursive inlining); LLVM 14 never inlines a recursive function. Self tail calls of the
 * function stay jumps to its start; a copy's own self tail calls become a `loop` around the copy
 * (`continue`), so an inlined level iterates in registers as the function itself does.
 *
 * Levels nest (a copy's non-tail self calls are copies in turn) while the function holds at most
 * UNROLL_MAX_BODIES bodies: one non-tail self call per body (Ackermann's `ack(m, n - 1)`) gives
 * three nested levels, each a loop, and one real call per four levels of recursion, which is
 * the shape gcc -O2 gives the C version; two (`fib`) give one level, as the copies double.
 */
function unrollSelfCalls(f: CoreFn, temp: () => number): void {
  if (f.name.startsWith('osp.')) return; // compiler-made helpers (iterator loops) are loops already
  let nodes = 0;
  let selfCalls = 0;
  let ok = true;
  walk(f.body, (e) => {
    nodes++;
    if (nodes > INLINE_MAX_NODES || e.k === 'env' || e.k === 'envload' || e.k === 'loop') ok = false;
    if (e.k === 'calldirect' && e.fn === f.name) {
      if (e.env !== null) ok = false;
      if (!e.tail) selfCalls++;
    }
    return ok;
  });
  if (!ok || selfCalls === 0) return;
  let levels = 0;
  for (let bodies = 1, width = 1; ; levels++) {
    width *= selfCalls;
    if (bodies + width > UNROLL_MAX_BODIES) break;
    bodies += width;
  }
  levels = Math.max(levels, 1);
  const original = f.body;
  const isSelf = (call: CExpr & { k: 'calldirect' }): boolean => call.fn === f.name && call.env === null;
  // A copy of the body for a self call with `args` at unrolling level `level` (1 = inside f).
  const level = (args: CExpr[], depth: number): CExpr => {
    const loopId = temp();
    const renamed = new Map<number, number>();
    const vars = f.params.map((p, i) => {
      const id = temp();
      renamed.set(p.id, id);
      return { id, init: args[i]! };
    });
    let continues = 0;
    const body = copy(original, renamed, temp, (call, wasTail) => {
      if (!isSelf(call)) return call;
      if (wasTail) {
        continues++;
        return { k: 'continue', loop: loopId, args: call.args, repr: call.repr };
      }
      return depth < levels ? level(call.args, depth + 1) : call;
    });
    if (continues > 0) return { k: 'loop', id: loopId, vars, body, repr: body.repr };
    // No self tail call in the body: plain bindings, as a non-recursive inlined call.
    let out = body;
    for (let i = vars.length - 1; i >= 0; i--) out = { k: 'let', id: vars[i]!.id, value: vars[i]!.init, body: out, repr: out.repr };
    return out;
  };
  f.body = copy(original, new Map(), temp, (call, wasTail) => {
    if (!isSelf(call)) return call;
    return wasTail ? { ...call, tail: true } : level(call.args, 1);
  });
}

/** Replaces, in `body`, each call of an inlinable function by a renamed copy of its body. */
function inlineCalls(body: CExpr, inlinable: Set<string>, byName: Map<string, CoreFn>, temp: () => number, self: string | null): CExpr {
  const expand = (e: CExpr): CExpr | null => {
    if (e.k !== 'calldirect' || e.env !== null || e.fn === self || !inlinable.has(e.fn)) return null;
    // Arguments first (their calls may be inlinable too; calls nest at most 256 deep).
    const args = e.args.map((a) => inlineCalls(a, inlinable, byName, temp, self));
    const callee = byName.get(e.fn)!;
    const renamed = new Map<number, number>();
    const ids = callee.params.map((p) => {
      const id = temp();
      renamed.set(p.id, id);
      return id;
    });
    let out = copy(callee.body, renamed, temp);
    for (let i = ids.length - 1; i >= 0; i--) out = { k: 'let', id: ids[i]!, value: args[i]!, body: out, repr: out.repr };
    return out;
  };
  // A holder, so that a body that is itself an inlinable call is replaced like any other child.
  const holder: CExpr = { k: 'seq', effects: [], result: body, repr: body.repr };
  const seen = new Set<CExpr>();
  const stack: CExpr[] = [holder];
  while (stack.length) {
    const e = stack.pop()!;
    if (seen.has(e)) continue;
    seen.add(e);
    forEachChild(e, (child, replace) => {
      const inlined = expand(child);
      if (inlined) {
        // Not walked again: the arguments were, and the copied body has nothing left to inline
        // (its calls were inlined when its function was processed; an unrolled body's copy
        // keeps its self calls as calls).
        replace(inlined);
      } else stack.push(child);
    });
  }
  return (holder as CExpr & { k: 'seq' }).result;
}

/** A deep copy of a (small) callee body: every local it binds gets a fresh id; no tail marks
 *  (a tail call is a jump within the function that made it, which the copy no longer is).
 *  `selfCall`, when given, replaces each copied direct call (its arguments already copied),
 *  told whether the call was a tail call. */
function copy(
  e: CExpr,
  renamed: Map<number, number>,
  temp: () => number,
  selfCall?: (call: CExpr & { k: 'calldirect' }, wasTail: boolean) => CExpr,
): CExpr {
  if (e.k === 'local') return renamed.has(e.id) ? { ...e, id: renamed.get(e.id)! } : e;
  if (e.k === 'continue') return { ...e, loop: renamed.get(e.loop) ?? e.loop, args: e.args.map((a) => copy(a, renamed, temp, selfCall)) };
  const c = { ...e } as CExpr & Record<string, unknown>;
  for (const key of Object.keys(c)) {
    const v = c[key];
    if (Array.isArray(v)) c[key] = v.map((x) => (typeof x === 'object' && x !== null && (('value' in x && 'isInt' in x) || ('id' in x && 'init' in x)) ? { ...x } : x));
  }
  if (c.k === 'let') {
    const id = temp();
    renamed.set(c.id, id);
    c.id = id;
  }
  if (c.k === 'loop') {
    const id = temp();
    renamed.set(c.id, id);
    c.id = id;
    for (const v of c.vars) {
      const fresh = temp();
      renamed.set(v.id, fresh);
      v.id = fresh;
    }
  }
  const wasTail = c.k === 'calldirect' && c.tail;
  if (c.k === 'calldirect') c.tail = false;
  forEachChild(c, (child, replace) => replace(copy(child, renamed, temp, selfCall)));
  return c.k === 'calldirect' && selfCall ? selfCall(c, wasTail) : c;
}

/** Visits every node of `e` once, without recursion; `visit` returning false stops the walk. */
export function walk(e: CExpr, visit: (e: CExpr) => boolean | void): void {
  const seen = new Set<CExpr>();
  const stack: CExpr[] = [e];
  while (stack.length) {
    const x = stack.pop()!;
    if (seen.has(x)) continue;
    seen.add(x);
    if (visit(x) === false) return;
    forEachChild(x, (child) => stack.push(child));
  }
}
