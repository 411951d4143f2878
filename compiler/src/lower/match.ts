// Pipeline position: part of lowering. Match compilation: a match becomes a chain of tests over the
// scrutinee (bound once to a temporary), tried top to bottom; each test is a short-circuit
// conjunction of tag/literal checks along the pattern's access paths, and a passing arm binds its
// variables by loading the same paths. Exhaustiveness was proven by semantics/exhaustive.ts, so the
// fall-through is unreachable.

import { assertNever, ice } from '../diagnostics/diagnostic.ts';
import type { TExpr, TPattern } from '../semantics/typed.ts';
import { instantiate, prune, type Type } from '../semantics/types.ts';
import type { CExpr } from './core.ts';
import { reprOf, type FnContext } from './context.ts';

type LowerFn = (e: TExpr, ctx: FnContext, tail: boolean) => CExpr;

const FALSE: CExpr = { k: 'bool', value: false, repr: 'i1' };

function and(a: CExpr | null, b: CExpr | null): CExpr | null {
  if (!a) return b;
  if (!b) return a;
  return { k: 'if', cond: a, then: b, else: FALSE, repr: 'i1' };
}

/** Where the fields of a constructor pattern are: word 0 is the tag, fields follow. */
function fieldValue(v: CExpr, t: Type, p: TPattern & { kind: 'ctor' }, i: number): { value: CExpr; type: Type } {
  const rt = prune(t);
  const args = rt.kind === 'con' ? rt.args : [];
  const type = instantiate(p.ctor.fields[i]!.type, args);
  return { value: { k: 'loadword', ptr: v, index: 1 + i, repr: reprOf(type) }, type };
}

function payloadValue(v: CExpr, t: Type, tag: 0 | 1): { value: CExpr; type: Type } {
  const rt = prune(t);
  if (rt.kind !== 'con' || rt.name !== 'Result') return ice('match: Result pattern on a non-Result value');
  const type = rt.args[tag]!;
  return { value: { k: 'resultpayload', value: v, repr: reprOf(type) }, type };
}

/** The condition under which `p` matches `v` (null: always). */
function test(p: TPattern, v: CExpr, t: Type, ctx: FnContext): CExpr | null {
  switch (p.kind) {
    case 'wild':
    case 'bind':
      return null;
    case 'int':
      return { k: 'prim', op: 'eq', args: [v, { k: 'int', value: p.value, repr: 'i64' }], repr: 'i1' };
    case 'string':
      return { k: 'prim', op: 'streq', args: [v, { k: 'str', value: p.value, repr: 'ptr' }], repr: 'i1' };
    case 'bool':
      return p.value ? v : { k: 'prim', op: 'not', args: [v], repr: 'i1' };
    case 'ctor': {
      let cond: CExpr | null = p.ctor.adt.ctors.length > 1
        ? { k: 'prim', op: 'eq', args: [{ k: 'loadword', ptr: v, index: 0, repr: 'i64' }, { k: 'int', value: BigInt(p.ctor.tag), repr: 'i64' }], repr: 'i1' }
        : null;
      p.args.forEach((sub, i) => {
        const f = fieldValue(v, t, p, i);
        cond = and(cond, test(sub, f.value, f.type, ctx));
      });
      return cond;
    }
    case 'typed':
      return {
        k: 'prim', op: 'eq', repr: 'i1',
        args: [{ k: 'loadword', ptr: v, index: 0, repr: 'i64' }, { k: 'int', value: BigInt(ctx.state.typeTag(p.target)), repr: 'i64' }],
      };
    case 'result': {
      const tagTest: CExpr = {
        k: 'prim', op: 'eq', repr: 'i1',
        args: [{ k: 'resulttag', value: v, repr: 'i64' }, { k: 'int', value: BigInt(p.tag), repr: 'i64' }],
      };
      const f = payloadValue(v, t, p.tag);
      return and(tagTest, test(p.payload, f.value, f.type, ctx));
    }
  }
}

/** Wraps `body()` in the bindings of `p` (set in the context before the body is lowered). */
function bindings(p: TPattern, v: CExpr, t: Type, ctx: FnContext, body: () => CExpr): CExpr {
  switch (p.kind) {
    case 'bind': {
      ctx.bindLocal(p.symbol);
      const rest = body();
      return { k: 'let', id: p.symbol.id, value: v, body: rest, repr: rest.repr };
    }
    case 'ctor': {
      const inner = (i: number): CExpr => {
        if (i === p.args.length) return body();
        const f = fieldValue(v, t, p, i);
        return bindings(p.args[i]!, f.value, f.type, ctx, () => inner(i + 1));
      };
      if (p.bind) {
        ctx.bindLocal(p.bind);
        const rest = inner(0);
        return { k: 'let', id: p.bind.id, value: v, body: rest, repr: rest.repr };
      }
      return inner(0);
    }
    case 'result': {
      const f = payloadValue(v, t, p.tag);
      return bindings(p.payload, f.value, f.type, ctx, body);
    }
    case 'typed': {
      // An `any` value is a GC block [type tag, payload word].
      ctx.bindLocal(p.bind);
      const rest = body();
      return { k: 'let', id: p.bind.id, value: { k: 'loadword', ptr: v, index: 1, repr: reprOf(p.target) }, body: rest, repr: rest.repr };
    }
    case 'wild':
    case 'int':
    case 'string':
    case 'bool':
      return body();
    default:
      return assertNever(p, 'pattern');
  }
}

export function lowerMatch(e: TExpr & { kind: 'match' }, ctx: FnContext, tail: boolean, lower: LowerFn): CExpr {
  const scrutinee = lower(e.scrutinee, ctx, false);
  const id = ctx.state.temp();
  const v: CExpr = { k: 'local', id, repr: scrutinee.repr };
  const t = e.scrutinee.type;
  const repr = reprOf(e.type);
  // Arms are lowered in order (a loop, not one recursion per arm), then folded into an else-if
  // chain from the last arm up; an arm without a test ends the chain.
  const tests: { cond: CExpr | null; body: CExpr }[] = [];
  for (const arm of e.arms) {
    const cond = test(arm.pattern, v, t, ctx);
    tests.push({ cond, body: bindings(arm.pattern, v, t, ctx, () => lower(arm.body, ctx, tail)) });
    if (!cond) break;
  }
  // Exhaustiveness was proven (exhaustive.ts), so a value that fails every other arm matches the
  // last one: its test is implied, as with C's `default:`. Without it the chain would end in a
  // call of the runtime's failure path that LLVM cannot prove dead (it does not know a union's
  // tag is one of its constructors'), and a function that only reads a tree (an evaluator) would
  // then neither be `readonly` nor have its repeated calls merged or hoisted.
  tests[tests.length - 1]!.cond = null;
  let chain: CExpr = { k: 'unreachable', message: 'no match arm matched', repr };
  for (let i = tests.length - 1; i >= 0; i--) {
    const { cond, body } = tests[i]!;
    chain = cond ? { k: 'if', cond, then: body, else: chain, repr } : body;
  }
  return { k: 'let', id, value: scrutinee, body: chain, repr };
}
