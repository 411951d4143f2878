// Pipeline position: part of lowering. The iteration built-ins of docs/guide/11-lists-and-iteration.md#iterators in core.
// An Iterator<T> is a closure that pushes its elements, in order, into a sink closure `(T) -> Unit`
// given to it: lazy (nothing runs until forEach/fold) and single-pass. range's loop is a self tail
// call, so iterating does not grow the stack. The helper functions are generated once per
// combination of element representations (monomorphic code, no boxing of elements).

import { ice } from '../diagnostics/diagnostic.ts';
import type { IteratorBuiltin, TExpr } from '../semantics/typed.ts';
import { prune, type Type } from '../semantics/types.ts';
import type { CExpr, CoreFn, Repr } from './core.ts';
import { reprOf, type LowerState } from './context.ts';

const NAMES: ReadonlySet<string> = new Set(['range', 'forEach', 'map', 'filter', 'fold']);

export function isIteratorBuiltin(name: string): name is IteratorBuiltin {
  return NAMES.has(name);
}

const helpers = new WeakMap<LowerState, Map<string, string>>();

/** The LLVM name of helper `key`, creating its function on first use. */
function helper(state: LowerState, key: string, make: (name: string) => CoreFn): string {
  let m = helpers.get(state);
  if (!m) helpers.set(state, (m = new Map()));
  const existing = m.get(key);
  if (existing) return existing;
  const name = `osp.iter.${key}`;
  m.set(key, name);
  state.fns.push(make(name));
  return name;
}

const UNIT: CExpr = { k: 'unit', repr: 'i64' };
const local = (id: number, repr: Repr): CExpr => ({ k: 'local', id, repr });
const env = (index: number, repr: Repr): CExpr => ({ k: 'envload', index, repr });
const call = (closure: CExpr, args: CExpr[], repr: Repr): CExpr => ({ k: 'callclosure', closure, args, repr });
const closure = (fn: string, words: CExpr[]): CExpr => ({ k: 'mkclosure', fn, env: { k: 'alloc', words, repr: 'ptr' }, repr: 'closure' });

function elementOf(t: Type): Type {
  const p = prune(t);
  return p.kind === 'con' && p.args[0] ? p.args[0] : ice('lowering: iterator without an element type');
}

/** An iterator over a list's elements: a List is accepted wherever an iterator is (§4.7 → REC). */
function listIterator(list: CExpr, elem: Repr, state: LowerState): CExpr {
  // loop(sink, list, i) = i < list[0] ? (sink(list[1 + i]); loop(sink, list, i + 1)) : ()
  const loop = helper(state, `list.loop.${elem}`, (name) => {
    const [sink, l, i] = [state.temp(), state.temp(), state.temp()];
    const next: CExpr = { k: 'prim', op: 'add', args: [local(i, 'i64'), { k: 'int', value: 1n, repr: 'i64' }], repr: 'i64' };
    const body: CExpr = {
      k: 'if', repr: 'i64',
      cond: { k: 'prim', op: 'lt', args: [local(i, 'i64'), { k: 'loadword', ptr: local(l, 'ptr'), index: 0, repr: 'i64' }], repr: 'i1' },
      then: {
        k: 'seq', repr: 'i64',
        effects: [call(local(sink, 'closure'), [{ k: 'loadwordat', ptr: local(l, 'ptr'), index: next, repr: elem }], 'i64')],
        result: { k: 'calldirect', fn: name, env: null, tail: true, repr: 'i64', args: [local(sink, 'closure'), local(l, 'ptr'), next] },
      },
      else: UNIT,
    };
    return { name, params: [{ id: sink, repr: 'closure' }, { id: l, repr: 'ptr' }, { id: i, repr: 'i64' }], ret: 'i64', body, loops: true };
  });
  const iter = helper(state, `list.${elem}`, (name) => {
    const sink = state.temp();
    const body: CExpr = { k: 'calldirect', fn: loop, env: null, tail: false, repr: 'i64', args: [local(sink, 'closure'), env(0, 'ptr'), { k: 'int', value: 0n, repr: 'i64' }] };
    return { name, params: [{ id: sink, repr: 'closure' }], ret: 'i64', body, loops: false };
  });
  return closure(iter, [list]);
}

function isList(t: Type): boolean {
  const p = prune(t);
  return p.kind === 'con' && p.name === 'List';
}

/** `args` are the built-in's arguments in parameter order, already lowered. */
export function lowerIteratorBuiltin(e: TExpr & { kind: 'builtin' }, lowered: CExpr[], state: LowerState): CExpr {
  const argType = (i: number): Type => e.args.find((a) => a.index === i)?.value.type ?? ice('lowering: missing argument');
  const args = e.name !== 'range' && isList(argType(0)) ? [listIterator(lowered[0]!, reprOf(elementOf(argType(0))), state), ...lowered.slice(1)] : lowered;
  if (e.name === 'fold' || e.name === 'forEach') {
    const fused = fusePipeline(e.name, args, e.name === 'fold' ? reprOf(e.type) : returnRepr(argType(1)), state);
    if (fused) return fused;
  }
  switch (e.name) {
    case 'range': {
      // loop(sink, i, end) = i < end ? (sink(i); loop(sink, i + 1, end)) : ()
      const loop = helper(state, 'range.loop', (name) => {
        const [sink, i, end] = [state.temp(), state.temp(), state.temp()];
        const body: CExpr = {
          k: 'if', repr: 'i64',
          cond: { k: 'prim', op: 'lt', args: [local(i, 'i64'), local(end, 'i64')], repr: 'i1' },
          then: {
            k: 'seq', repr: 'i64',
            effects: [call(local(sink, 'closure'), [local(i, 'i64')], 'i64')],
            result: {
              k: 'calldirect', fn: name, env: null, tail: true, repr: 'i64',
              args: [local(sink, 'closure'), { k: 'prim', op: 'add', args: [local(i, 'i64'), { k: 'int', value: 1n, repr: 'i64' }], repr: 'i64' }, local(end, 'i64')],
            },
          },
          else: UNIT,
        };
        return { name, params: [{ id: sink, repr: 'closure' }, { id: i, repr: 'i64' }, { id: end, repr: 'i64' }], ret: 'i64', body, loops: true };
      });
      const iter = helper(state, 'range', (name) => {
        const sink = state.temp();
        const body: CExpr = { k: 'calldirect', fn: loop, env: null, tail: false, repr: 'i64', args: [local(sink, 'closure'), env(0, 'i64'), env(1, 'i64')] };
        return { name, params: [{ id: sink, repr: 'closure' }], ret: 'i64', body, loops: false };
      });
      return closure(iter, [args[0]!, args[1]!]);
    }
    case 'map': {
      const t = reprOf(elementOf(argType(0)));
      const u = reprOf(elementOf(e.type));
      // sink'(x) = sink(f(x)), environment [f, sink]
      const mapSink = helper(state, `map.sink.${t}.${u}`, (name) => {
        const x = state.temp();
        return { name, params: [{ id: x, repr: t }], ret: 'i64', loops: false, body: call(env(1, 'closure'), [call(env(0, 'closure'), [local(x, t)], u)], 'i64') };
      });
      const iter = helper(state, `map.${t}.${u}`, (name) => {
        const sink = state.temp();
        return { name, params: [{ id: sink, repr: 'closure' }], ret: 'i64', loops: false, body: call(env(0, 'closure'), [closure(mapSink, [env(1, 'closure'), local(sink, 'closure')])], 'i64') };
      });
      return closure(iter, [args[0]!, args[1]!]);
    }
    case 'filter': {
      const t = reprOf(elementOf(argType(0)));
      // sink'(x) = p(x) ? sink(x) : (), environment [p, sink]
      const filterSink = helper(state, `filter.sink.${t}`, (name) => {
        const x = state.temp();
        const body: CExpr = {
          k: 'if', repr: 'i64',
          cond: call(env(0, 'closure'), [local(x, t)], 'i1'),
          then: call(env(1, 'closure'), [local(x, t)], 'i64'),
          else: UNIT,
        };
        return { name, params: [{ id: x, repr: t }], ret: 'i64', loops: false, body };
      });
      const iter = helper(state, `filter.${t}`, (name) => {
        const sink = state.temp();
        return { name, params: [{ id: sink, repr: 'closure' }], ret: 'i64', loops: false, body: call(env(0, 'closure'), [closure(filterSink, [env(1, 'closure'), local(sink, 'closure')])], 'i64') };
      });
      return closure(iter, [args[0]!, args[1]!]);
    }
    case 'forEach': {
      const t = reprOf(elementOf(argType(0)));
      const fnType = prune(argType(1));
      const u = fnType.kind === 'fn' ? reprOf(fnType.ret) : 'i64';
      // sink(x) = (f(x); ()), environment [f]: the function's own result is discarded.
      const sink = helper(state, `forEach.sink.${t}.${u}`, (name) => {
        const x = state.temp();
        return { name, params: [{ id: x, repr: t }], ret: 'i64', loops: false, body: { k: 'seq', effects: [call(env(0, 'closure'), [local(x, t)], u)], result: UNIT, repr: 'i64' } };
      });
      return call(args[0]!, [closure(sink, [args[1]!])], 'i64');
    }
    case 'fold': {
      const t = reprOf(elementOf(argType(0)));
      const u = reprOf(e.type);
      // The accumulator lives in a one-word GC cell: sink(x) = cell[0] = f(cell[0], x).
      const sink = helper(state, `fold.sink.${t}.${u}`, (name) => {
        const x = state.temp();
        const cell = env(0, 'ptr');
        const next = call(env(1, 'closure'), [{ k: 'loadword', ptr: cell, index: 0, repr: u }, local(x, t)], u);
        return { name, params: [{ id: x, repr: t }], ret: 'i64', loops: false, body: { k: 'storeword', ptr: cell, index: 0, value: next, repr: 'i64' } };
      });
      const cellId = state.temp();
      const cell = local(cellId, 'ptr');
      const run = call(args[0]!, [closure(sink, [cell, args[2]!])], 'i64');
      return {
        k: 'let', id: cellId, value: { k: 'alloc', words: [args[1]!], repr: 'ptr' }, repr: u,
        body: { k: 'seq', effects: [run], result: { k: 'loadword', ptr: cell, index: 0, repr: u }, repr: u },
      };
    }
    default:
      return ice(`lowering: '${e.name}' is not an iteration built-in`);
  }
}

// ---- fusion ----------------------------------------------------------------------------------
//
// The general protocol above costs, per element, an indirect call through every stage's sink
// closure, and fold keeps its accumulator in a GC cell. The common shape — `range(a, b)`, then any
// `map`/`filter` stages, then `fold` or `forEach` — is instead compiled into one self-tail-recursive
// loop function per call site (a loop in the IR): the element is a parameter, the accumulator is a
// parameter, and each stage's function is called directly when it is a known function (a lambda
// or a named function: its environment is passed, not a closure), else through its closure. The
// arguments are still evaluated once each, in written order, before the loop starts.

interface Stage {
  kind: 'map' | 'filter';
  fn: CExpr;
  /** Element representation going in and (for map) coming out. */
  input: Repr;
  output: Repr;
}

interface Pipeline {
  start: CExpr;
  end: CExpr;
  stages: Stage[];
}

const REPRS: ReadonlySet<string> = new Set(['i64', 'i1', 'ptr', 'result', 'closure']);

/** Recognises the lowered form of `range(a, b) |> map(f) |> filter(p) …` (see the cases above). */
function pipelineOf(c: CExpr): Pipeline | null {
  if (c.k !== 'mkclosure' || !c.env || c.env.k !== 'alloc' || c.env.words.length !== 2) return null;
  const [first, second] = c.env.words as [CExpr, CExpr];
  if (c.fn === 'osp.iter.range') return { start: first, end: second, stages: [] };
  const parts = c.fn.split('.');
  // osp.iter.map.T.U and osp.iter.filter.T (never the .sink. helpers).
  if (parts[0] !== 'osp' || parts[1] !== 'iter' || parts.includes('sink')) return null;
  const reprs = parts.slice(3);
  if (!reprs.every((r) => REPRS.has(r))) return null;
  const inner = pipelineOf(first);
  if (!inner) return null;
  if (parts[2] === 'map' && reprs.length === 2) inner.stages.push({ kind: 'map', fn: second, input: reprs[0] as Repr, output: reprs[1] as Repr });
  else if (parts[2] === 'filter' && reprs.length === 1) inner.stages.push({ kind: 'filter', fn: second, input: reprs[0] as Repr, output: reprs[0] as Repr });
  else return null;
  return inner;
}

function returnRepr(t: Type): Repr {
  const p = prune(t);
  return p.kind === 'fn' ? reprOf(p.ret) : 'i64';
}

/** How the loop function receives one function argument and calls it. */
interface Callee {
  /** The value passed to the loop (an environment, a closure, or nothing for a known function without one). */
  arg: CExpr | null;
  param: { id: number; repr: Repr } | null;
  call(args: CExpr[], repr: Repr): CExpr;
}

function callee(fn: CExpr, state: LowerState): Callee {
  if (fn.k === 'mkclosure') {
    const target = fn.fn;
    if (!fn.env) return { arg: null, param: null, call: (args, repr) => ({ k: 'calldirect', fn: target, env: null, args, tail: false, repr }) };
    const id = state.temp();
    return {
      arg: fn.env,
      param: { id, repr: 'ptr' },
      call: (args, repr) => ({ k: 'calldirect', fn: target, env: local(id, 'ptr'), args, tail: false, repr }),
    };
  }
  const id = state.temp();
  return { arg: fn, param: { id, repr: 'closure' }, call: (args, repr) => call(local(id, 'closure'), args, repr) };
}

function fusePipeline(kind: 'fold' | 'forEach', args: CExpr[], result: Repr, state: LowerState): CExpr | null {
  const pipeline = pipelineOf(args[0]!);
  if (!pipeline) return null;
  const name = `osp.iter.fused.${state.uniqueSuffix()}`;
  const i = state.temp();
  const end = state.temp();
  const acc = state.temp();
  const stages = pipeline.stages.map((s) => ({ stage: s, via: callee(s.fn, state) }));
  const sink = callee(kind === 'fold' ? args[2]! : args[1]!, state);
  const accRepr: Repr = kind === 'fold' ? result : 'i64';

  // One element `x` through stages j…: fold gives the next accumulator, forEach a Unit effect.
  const through = (j: number, x: CExpr): CExpr => {
    if (j === stages.length) {
      if (kind === 'fold') return sink.call([local(acc, accRepr), x], accRepr);
      return { k: 'seq', effects: [sink.call([x], result)], result: UNIT, repr: 'i64' };
    }
    const { stage, via } = stages[j]!;
    if (stage.kind === 'map') {
      const y = state.temp();
      const rest = through(j + 1, local(y, stage.output));
      return { k: 'let', id: y, value: via.call([x], stage.output), body: rest, repr: rest.repr };
    }
    return { k: 'if', cond: via.call([x], 'i1'), then: through(j + 1, x), else: kind === 'fold' ? local(acc, accRepr) : UNIT, repr: accRepr };
  };

  const passThrough = [...stages.map((s) => s.via), sink].flatMap((c) => (c.param ? [local(c.param.id, c.param.repr)] : []));
  const next: CExpr = { k: 'prim', op: 'add', args: [local(i, 'i64'), { k: 'int', value: 1n, repr: 'i64' }], repr: 'i64' };
  const step = through(0, local(i, 'i64'));
  const again = (accValue: CExpr): CExpr => ({
    k: 'calldirect', fn: name, env: null, tail: true, repr: accRepr,
    args: [next, local(end, 'i64'), ...passThrough.slice(0, passThrough.length - (sink.param ? 1 : 0)), accValue, ...(sink.param ? [local(sink.param.id, sink.param.repr)] : [])],
  });
  const body: CExpr = {
    k: 'if', repr: accRepr,
    cond: { k: 'prim', op: 'lt', args: [local(i, 'i64'), local(end, 'i64')], repr: 'i1' },
    then: kind === 'fold' ? again(step) : { k: 'seq', effects: [step], result: again(UNIT), repr: 'i64' },
    else: local(acc, accRepr),
  };
  const stageParams = stages.flatMap((s) => (s.via.param ? [s.via.param] : []));
  state.fns.push({
    name,
    params: [{ id: i, repr: 'i64' }, { id: end, repr: 'i64' }, ...stageParams, { id: acc, repr: accRepr }, ...(sink.param ? [sink.param] : [])],
    ret: accRepr,
    body,
    loops: true,
  });
  // Arguments in written order: the range bounds, each stage's function, then fold's initial value
  // and the function (forEach: the function).
  const stageArgs = stages.flatMap((s) => (s.via.arg ? [s.via.arg] : []));
  const initial = kind === 'fold' ? args[1]! : UNIT;
  const callArgs = [pipeline.start, pipeline.end, ...stageArgs, initial, ...(sink.arg ? [sink.arg] : [])];
  const loop: CExpr = { k: 'calldirect', fn: name, env: null, tail: false, args: callArgs, repr: accRepr };
  return kind === 'fold' ? loop : { k: 'seq', effects: [loop], result: UNIT, repr: 'i64' };
}
