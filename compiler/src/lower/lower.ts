// Pipeline position: typed tree (semantics/typed.ts) → core (core.ts). Desugars operators, display
// and interpolation into runtime calls, reorders named arguments (evaluated in written order),
// converts closures (lambdas and nested fn groups get an explicit environment; see closures.ts),
// compiles matches (match.ts), and marks self tail calls so codegen can turn them into loops
// (docs/guide/05-functions.md#recursion: deep tail recursion must not grow the stack).

import { runtimeFunction, SELECT_ARM_KINDS } from '../../../runtime-bindings/abi.ts';
import { ice } from '../diagnostics/diagnostic.ts';
import type { TArg, TExpr, TStmt, TypedFn, TypedProgram } from '../semantics/typed.ts';
import { isCon, prune, type CtorInfo, type Type } from '../semantics/types.ts';
import { stmtChildren } from '../semantics/walk.ts';
import { accumulateTailSums } from './accumulate.ts';
import { capturesOf } from './closures.ts';
import { stackAllocateClosureEnvs } from './escape.ts';
import { inlineSmallFunctions } from './inline.ts';
import { FnContext, LowerState, reprOf } from './context.ts';
import { isPureRead, type CExpr, type CoreFn, type CoreProgram } from './core.ts';
import { lowerMatch } from './match.ts';
import { isIteratorBuiltin, lowerIteratorBuiltin } from './iterators.ts';

export interface LowerOptions {
  /** Turn Int sums with a self call into accumulator loops (accumulate.ts). Done for -O0 builds:
   *  at -O2 LLVM's tail recursion elimination does the same and our form measured slower (fib). */
  accumulateSums?: boolean;
}

export function lowerProgram(program: TypedProgram, location: (offset: number) => string, options: LowerOptions = {}): CoreProgram {
  const state = new LowerState(location);
  for (const f of program.functions) state.topFns.set(f.symbol!.id, `ospu.${f.name}`);
  for (const s of program.topLevel) collectGlobals(s, state);

  for (const f of program.functions) lowerFunction(f, state.topFns.get(f.symbol!.id)!, state, [], new Map());

  const entry = new FnContext(state, 'main', false);
  const init = lowerStmts(program.topLevel, 0, null, entry, false);
  if (state.anyDisplayUsed) state.fns.push(anyDisplayFn(state));
  if (options.accumulateSums) accumulateTailSums(state.fns, () => state.temp());
  const core: CoreProgram = {
    fns: state.fns,
    globals: [...state.globals.values()],
    init,
    main: program.main ? { fn: state.topFns.get(program.main.symbol!.id)!, returnsInt: isCon(program.main.returnType, 'Int') } : null,
  };
  // Small functions inlined, then closures that are only called keep their environment on the
  // stack (inline.ts, escape.ts): at every optimisation level, so -O0 runs the same code shapes.
  inlineSmallFunctions(core, () => state.temp());
  stackAllocateClosureEnvs(core);
  return core;
}

/** Registers every global (top-level and module lets, which sit in a block). */
function collectGlobals(s: TStmt, state: LowerState): void {
  if (s.kind === 'let' && s.symbol.kind === 'global') {
    state.globals.set(s.symbol.id, { name: `ospg.${s.symbol.name}.${s.symbol.id}`, repr: reprOf(s.symbol.type) });
  }
  for (const e of stmtChildren(s)) if (e.kind === 'block') e.stmts.forEach((x) => collectGlobals(x, state));
}

/**
 * Lowers one function of a group. `captures` are reached through the environment (slot order),
 * `group` maps every member of the group to its LLVM name.
 */
function lowerFunction(
  fn: TypedFn,
  name: string,
  state: LowerState,
  captures: { id: number; type: Type }[],
  group: Map<number, string>,
): void {
  const ctx = new FnContext(state, name, captures.length > 0);
  captures.forEach((c, i) => ctx.access.set(c.id, { k: 'envload', index: i, repr: reprOf(c.type) }));
  for (const [id, n] of group) ctx.group.set(id, n);
  const params = fn.params.map((p) => ({ id: p.id, repr: ctx.bindLocal(p).repr }));
  const body = lowerExpr(fn.body, ctx, true);
  const core: CoreFn = { name, params, ret: reprOf(fn.returnType), body, loops: ctx.loops };
  state.fns.push(core);
}

function unit(): CExpr {
  return { k: 'unit', repr: 'i64' };
}

function seq(effects: CExpr[], result: CExpr): CExpr {
  return effects.length ? { k: 'seq', effects, result, repr: result.repr } : result;
}

/** Statements `stmts[i..]` followed by `result` (or Unit). */
function lowerStmts(stmts: TStmt[], i: number, result: TExpr | null, ctx: FnContext, tail: boolean): CExpr {
  // A run of lets and expression statements is lowered in a loop, not one recursion per
  // statement, so a long block or script cannot exhaust the stack: effects in a row (expression
  // statements, top-level lets, which are globals) become one flat `seq`, local lets a `let` chain.
  const run: ({ effect: CExpr } | { id: number; value: CExpr })[] = [];
  for (; i < stmts.length; i++) {
    const s = stmts[i]!;
    const g = s.kind === 'let' ? ctx.state.globals.get(s.symbol.id) : undefined;
    if (s.kind === 'expr') run.push({ effect: lowerExpr(s.expr, ctx, false) });
    else if (s.kind === 'let' && g) run.push({ effect: { k: 'setglobal', name: g.name, value: lowerExpr(s.value, ctx, false), repr: 'i64' } });
    else if (s.kind === 'let') {
      const value = lowerExpr(s.value, ctx, false);
      ctx.bindLocal(s.symbol);
      run.push({ id: s.symbol.id, value });
    } else break;
  }
  if (run.length) {
    let body = lowerStmts(stmts, i, result, ctx, tail);
    let effects: CExpr[] = [];
    for (let k = run.length - 1; k >= 0; k--) {
      const r = run[k]!;
      if ('effect' in r) {
        effects.push(r.effect);
        continue;
      }
      body = seq(effects.reverse(), body);
      effects = [];
      body = { k: 'let', id: r.id, value: r.value, body, repr: body.repr };
    }
    return seq(effects.reverse(), body);
  }
  if (i === stmts.length) return result ? lowerExpr(result, ctx, tail) : unit();
  const s = stmts[i]!;
  switch (s.kind) {
    case 'let': {
      const value = lowerExpr(s.value, ctx, false);
      const g = ctx.state.globals.get(s.symbol.id);
      if (g) {
        const rest = lowerStmts(stmts, i + 1, result, ctx, tail);
        return seq([{ k: 'setglobal', name: g.name, value, repr: 'i64' }], rest);
      }
      ctx.bindLocal(s.symbol);
      const body = lowerStmts(stmts, i + 1, result, ctx, tail);
      return { k: 'let', id: s.symbol.id, value, body, repr: body.repr };
    }
    case 'expr': {
      const e = lowerExpr(s.expr, ctx, false);
      return seq([e], lowerStmts(stmts, i + 1, result, ctx, tail));
    }
    case 'fns': {
      // One environment shared by the whole group, so members can call each other.
      const captures = capturesOf(s.fns);
      const group = new Map<number, string>();
      for (const f of s.fns) group.set(f.symbol!.id, `${ctx.name}.${f.name}.${ctx.state.uniqueSuffix()}`);
      const capInfo = captures.map((c) => ({ id: c.id, type: c.type }));
      for (const f of s.fns) lowerFunction(f, group.get(f.symbol!.id)!, ctx.state, capInfo, group);
      const envId = ctx.state.temp();
      const envValue: CExpr = captures.length
        ? { k: 'alloc', words: captures.map((c) => ctx.read(c)), repr: 'ptr' }
        : { k: 'unit', repr: 'i64' };
      const envRef: CExpr | null = captures.length ? { k: 'local', id: envId, repr: 'ptr' } : null;
      const bindMembers = (j: number): CExpr => {
        if (j === s.fns.length) return lowerStmts(stmts, i + 1, result, ctx, tail);
        const f = s.fns[j]!;
        ctx.bindLocal(f.symbol!);
        const rest = bindMembers(j + 1);
        return { k: 'let', id: f.symbol!.id, value: { k: 'mkclosure', fn: group.get(f.symbol!.id)!, env: envRef, repr: 'closure' }, body: rest, repr: rest.repr };
      };
      const body = bindMembers(0);
      return { k: 'let', id: envId, value: envValue, body, repr: body.repr };
    }
  }
}

/** Evaluates arguments in written order and returns them in parameter order. */
function lowerArgs(args: TArg[], ctx: FnContext, wrap: (ordered: CExpr[]) => CExpr): CExpr {
  const inOrder = args.every((a, i) => a.index === i);
  if (inOrder) return wrap(args.map((a) => lowerExpr(a.value, ctx, false)));
  const temps: { id: number; value: CExpr; index: number }[] = args.map((a) => {
    const value = lowerExpr(a.value, ctx, false);
    return { id: ctx.state.temp(), value, index: a.index };
  });
  const ordered: CExpr[] = [];
  for (const t of temps) ordered[t.index] = { k: 'local', id: t.id, repr: t.value.repr };
  let out = wrap(ordered);
  for (let i = temps.length - 1; i >= 0; i--) {
    const t = temps[i]!;
    out = { k: 'let', id: t.id, value: t.value, body: out, repr: out.repr };
  }
  return out;
}

function callRuntime(symbol: string, args: CExpr[]): CExpr {
  const fn = runtimeFunction(symbol);
  const repr = fn.returns === 'result' ? 'result' : fn.returns === 'cstring' || fn.returns === 'ptr' ? 'ptr' : 'i64';
  return { k: 'callruntime', fn, args, repr };
}

/** Display text of a value (docs/guide/12-strings-and-display.md#display); an `any` shows its dynamic value. */
function display(v: CExpr, t: Type, state?: LowerState): CExpr {
  if (isCon(t, 'any') && state) {
    const id = state.temp();
    const box: CExpr = { k: 'local', id, repr: 'ptr' };
    const tagIs = (n: number): CExpr => ({ k: 'prim', op: 'eq', repr: 'i1', args: [{ k: 'loadword', ptr: box, index: 0, repr: 'i64' }, { k: 'int', value: BigInt(n), repr: 'i64' }] });
    const word = (repr: CExpr['repr']): CExpr => ({ k: 'loadword', ptr: box, index: 1, repr });
    const chain: CExpr = {
      k: 'if', repr: 'ptr', cond: tagIs(1), then: callRuntime('osp_int_to_string', [word('i64')]),
      else: {
        k: 'if', repr: 'ptr', cond: tagIs(2), then: word('ptr'),
        else: {
          k: 'if', repr: 'ptr', cond: tagIs(3), then: callRuntime('osp_bool_to_string', [word('i64')]),
          // Records and unions: the program's display function (anyDisplayFn), built once every
          // boxed type is known.
          else: { k: 'calldirect', fn: ANY_DISPLAY_FN, env: null, args: [box], tail: false, repr: 'ptr' },
        },
      },
    };
    state.anyDisplayUsed = true;
    return { k: 'let', id, value: v, body: chain, repr: 'ptr' };
  }
  if (isCon(t, 'String')) return v;
  if (isCon(t, 'Int')) return callRuntime('osp_int_to_string', [v]);
  // docs/guide/12-strings-and-display.md#display: a fiber or channel shows its handle number, the first word of the runtime object.
  if (isCon(t, 'Fiber') || isCon(t, 'Channel')) return callRuntime('osp_int_to_string', [{ k: 'loadword', ptr: v, index: 0, repr: 'i64' }]);
  if (isCon(t, 'Bool')) return callRuntime('osp_bool_to_string', [v]);
  const p = prune(t);
  if (p.kind === 'con' && p.adt?.builtin && state) return displayAdt(v, p, state, 0);
  return ice(`lowering: display of a non-displayable type reached lowering`);
}

const ANY_DISPLAY_FN = 'osp.any_display';

/**
 * `osp.any_display(box)`: the text of an `any` holding a record or union value (the other boxed
 * types are handled inline by display()): `Red`, `Circle { radius: 2 }`; nested records and unions
 * are shown the same way up to a small depth; other values as `<value>`.
 */
function anyDisplayFn(state: LowerState): CoreFn {
  const boxId = state.temp();
  const box: CExpr = { k: 'local', id: boxId, repr: 'ptr' };
  let body: CExpr = str('<value>');
  for (const [tag, t] of [...state.tagTypes].reverse()) {
    const p = prune(t);
    if (p.kind !== 'con' || !p.adt) continue;
    body = {
      k: 'if', repr: 'ptr',
      cond: { k: 'prim', op: 'eq', repr: 'i1', args: [{ k: 'loadword', ptr: box, index: 0, repr: 'i64' }, { k: 'int', value: BigInt(tag), repr: 'i64' }] },
      then: displayAdt({ k: 'loadword', ptr: box, index: 1, repr: 'ptr' }, p, state, 0),
      else: body,
    };
  }
  return { name: ANY_DISPLAY_FN, params: [{ id: boxId, repr: 'ptr' }], ret: 'ptr', body, loops: false };
}

function displayAdt(v: CExpr, t: Type & { kind: 'con' }, state: LowerState, depth: number): CExpr {
  const adt = t.adt!;
  const id = state.temp();
  const val: CExpr = { k: 'local', id, repr: 'ptr' };
  const concat = (a: CExpr, b: CExpr): CExpr => callRuntime('osp_string_concat', [a, b]);
  let chain: CExpr = str('<value>');
  for (const ctor of [...adt.ctors].reverse()) {
    let text: CExpr = str(ctor.name);
    if (ctor.fields.length > 0) {
      ctor.fields.forEach((f, i) => {
        const ft = prune(f.type.kind === 'param' ? (t.args[f.type.index] ?? f.type) : f.type);
        const word: CExpr = { k: 'loadword', ptr: val, index: 1 + i, repr: reprOf(ft) };
        let shown: CExpr;
        if (ft.kind === 'con' && !ft.adt && ['Int', 'String', 'Bool'].includes(ft.name)) shown = display(word, ft);
        else if (ft.kind === 'con' && ft.name === 'any') shown = display(word, ft, state);
        else if (ft.kind === 'con' && ft.adt && depth < 3) shown = displayAdt(word, ft, state, depth + 1);
        else shown = str('<value>');
        text = concat(concat(text, str(`${i === 0 ? ' { ' : ', '}${f.name}: `)), shown);
      });
      text = concat(text, str(' }'));
    }
    chain = adt.ctors.length === 1 ? text : {
      k: 'if', repr: 'ptr',
      cond: { k: 'prim', op: 'eq', repr: 'i1', args: [{ k: 'loadword', ptr: val, index: 0, repr: 'i64' }, { k: 'int', value: BigInt(ctor.tag), repr: 'i64' }] },
      then: text,
      else: chain,
    };
  }
  return { k: 'let', id, value: v, body: chain, repr: 'ptr' };
}

function str(value: string): CExpr {
  return { k: 'str', value, repr: 'ptr' };
}

/** Links of an operator or pipe chain already lowered by lowerExpr, consumed by their parent. */
const loweredLinks = new WeakMap<TExpr, CExpr>();

/** The operand a chain continues through, lowered first and never in tail position. */
function chainLink(e: TExpr): TExpr | undefined {
  if (e.kind === 'binary') return e.left;
  if (e.kind === 'call' || e.kind === 'runtime' || e.kind === 'builtin') return e.args[0]?.index === 0 ? e.args[0].value : undefined;
  return undefined;
}

function lowerExpr(e: TExpr, ctx: FnContext, tail: boolean): CExpr {
  const done = loweredLinks.get(e);
  if (done) {
    loweredLinks.delete(e);
    return done;
  }
  // A chain of 1,000 `+` or `|>` is a tree 1,000 deep: lower its links innermost first, in a
  // loop, so the recursion stays one link deep.
  const links: TExpr[] = [];
  for (let x = chainLink(e); x && chainLink(x); x = chainLink(x)) links.push(x);
  for (let i = links.length - 1; i >= 0; i--) loweredLinks.set(links[i]!, lowerExprAt(links[i]!, ctx, false));
  return lowerExprAt(e, ctx, tail);
}

function lowerExprAt(e: TExpr, ctx: FnContext, tail: boolean): CExpr {
  switch (e.kind) {
    case 'int':
      return { k: 'int', value: e.value, repr: 'i64' };
    case 'string':
      return str(e.value);
    case 'bool':
      return { k: 'bool', value: e.value, repr: 'i1' };
    case 'unit':
      return unit();
    case 'interp':
      return lowerStringChain(e, ctx);
    case 'var':
      return ctx.read(e.symbol);
    case 'call': {
      const repr = reprOf(e.type);
      if (e.callee.kind === 'var' && e.callee.symbol.kind === 'extern' && e.callee.symbol.extern) {
        const ext = e.callee.symbol.extern;
        const symbol = e.callee.symbol.name;
        return lowerArgs(e.args, ctx, (args) => {
          const call: CExpr = {
            k: 'callextern', symbol, params: ext.params.map((p) => reprOf(p.type)), returnsUnit: isCon(ext.ret, 'Unit'), args, repr,
          };
          // A C function returns a NUL-terminated char*, not a String with its length: copy it.
          return isCon(ext.ret, 'String') ? callRuntime('osp_string_from_c', [call]) : call;
        });
      }
      if (e.callee.kind === 'var' && e.callee.symbol.kind === 'fn') {
        const sym = e.callee.symbol;
        const top = ctx.state.topFns.get(sym.id);
        const member = ctx.group.get(sym.id);
        const direct = top ?? member;
        if (direct !== undefined) {
          const env = top !== undefined ? null : ctx.envExpr();
          const isTail = tail && direct === ctx.name;
          if (isTail) ctx.loops = true;
          return lowerArgs(e.args, ctx, (args) => ({ k: 'calldirect', fn: direct, env, args, tail: isTail, repr }));
        }
      }
      const closure = lowerExpr(e.callee, ctx, false);
      // A callee that is only read (a variable) needs no temporary to run before the arguments,
      // and without one a long pipe chain through a closure stays a flat chain of calls.
      if (isPureRead(closure)) return lowerArgs(e.args, ctx, (args) => ({ k: 'callclosure', closure, args, repr }));
      const cid = ctx.state.temp();
      const body = lowerArgs(e.args, ctx, (args) => ({ k: 'callclosure', closure: { k: 'local', id: cid, repr: 'closure' }, args, repr }));
      return { k: 'let', id: cid, value: closure, body, repr };
    }
    case 'builtin': {
      if (isIteratorBuiltin(e.name)) return lowerArgs(e.args, ctx, (args) => lowerIteratorBuiltin(e, args, ctx.state));
      if (e.name === 'args') return callRuntime('osp_args', []);
      const arg = lowerExpr(e.args[0]!.value, ctx, false);
      const at = e.args[0]!.value.type;
      switch (e.name) {
        case 'print':
          return seq([callRuntime('osp_print', [display(arg, at, ctx.state)])], unit());
        case 'toString':
          return display(arg, at, ctx.state);
        case 'sleep':
          return seq([callRuntime('osp_sleep', [arg])], unit());
      }
      break;
    }
    case 'runtime':
      return lowerArgs(e.args, ctx, (args) => ({ k: 'callruntime', fn: e.fn, args, repr: reprOf(e.type) }));
    case 'binary':
      if (e.op === '+' && isCon(prune(e.left.type), 'String')) return lowerStringChain(e, ctx);
      return lowerBinary(e, ctx);
    case 'unary': {
      const v = lowerExpr(e.operand, ctx, false);
      if (e.op === '+') return v;
      return { k: 'prim', op: e.op === '-' ? 'neg' : 'not', args: [v], repr: v.repr };
    }
    case 'lambda': {
      const captures = capturesOf([e.fn]);
      const name = `${ctx.name}.lambda.${ctx.state.uniqueSuffix()}`;
      lowerFunction(e.fn, name, ctx.state, captures.map((c) => ({ id: c.id, type: c.type })), new Map());
      const env: CExpr | null = captures.length ? { k: 'alloc', words: captures.map((c) => ctx.read(c)), repr: 'ptr' } : null;
      return { k: 'mkclosure', fn: name, env, repr: 'closure' };
    }
    case 'block':
      return lowerStmts(e.stmts, 0, e.result, ctx, tail);
    case 'match':
      return lowerMatch(e, ctx, tail, lowerExpr);
    case 'construct':
      return lowerArgs(e.fields, ctx, (fields) => construct(e.ctor, e.ctor.fields.map((_, i) => fields[i] ?? ice('lowering: missing field')), ctx));
    case 'update': {
      const base = lowerExpr(e.base, ctx, false);
      const bid = ctx.state.temp();
      const b: CExpr = { k: 'local', id: bid, repr: 'ptr' };
      const given = new Map(e.fields.map((f) => [f.index, f.value] as const));
      const values: CExpr[] = [];
      e.ctor.fields.forEach((f, i) => {
        const v = given.get(i);
        values.push(v ? lowerExpr(v, ctx, false) : { k: 'loadword', ptr: b, index: 1 + i, repr: reprOfField(e, i) });
      });
      const body = construct(e.ctor, values, ctx);
      return { k: 'let', id: bid, value: base, body, repr: body.repr };
    }
    case 'field':
      return { k: 'loadword', ptr: lowerExpr(e.object, ctx, false), index: 1 + e.index, repr: reprOf(e.type) };
    case 'result':
      return { k: 'mkresult', tag: e.tag, payload: e.payload ? lowerExpr(e.payload, ctx, false) : unit(), repr: 'result' };
    case 'box':
      // `any`: a GC block [run-time type tag, payload word].
      return { k: 'alloc', words: [{ k: 'int', value: BigInt(ctx.state.typeTag(e.value.type)), repr: 'i64' }, lowerExpr(e.value, ctx, false)], repr: 'ptr' };
    case 'list':
      // A GC block of words: [length, e0, e1, …].
      return {
        k: 'alloc',
        words: [{ k: 'int', value: BigInt(e.elements.length), repr: 'i64' }, ...e.elements.map((x) => lowerExpr(x, ctx, false))],
        repr: 'ptr',
      };
    case 'index': {
      // Safe indexing (docs/guide/11-lists-and-iteration.md#lists): Success(element) when 0 <= i < length, else Error("index out of bounds").
      const lid = ctx.state.temp();
      const l: CExpr = { k: 'local', id: lid, repr: 'ptr' };
      const t = prune(e.type);
      const elemRepr = t.kind === 'con' ? reprOf(t.args[0]!) : 'i64';
      const inBounds: CExpr = {
        k: 'prim', op: 'lt', repr: 'i1',
        args: [{ k: 'int', value: e.index, repr: 'i64' }, { k: 'loadword', ptr: l, index: 0, repr: 'i64' }],
      };
      const ok: CExpr = e.index < 2n ** 31n
        ? { k: 'mkresult', tag: 0, payload: { k: 'loadword', ptr: l, index: 1 + Number(e.index), repr: elemRepr }, repr: 'result' }
        : { k: 'unreachable', message: 'list index too large', repr: 'result' };
      const fail: CExpr = { k: 'mkresult', tag: 1, payload: str('index out of bounds'), repr: 'result' };
      return { k: 'let', id: lid, value: lowerExpr(e.list, ctx, false), body: { k: 'if', cond: inBounds, then: ok, else: fail, repr: 'result' }, repr: 'result' };
    }
    case 'spawn':
      return lowerSpawn(e.computation, ctx);
    case 'await':
      return { k: 'unword', value: callRuntime('osp_fiber_await', [lowerExpr(e.fiber, ctx, false)]), repr: reprOf(e.type) };
    case 'yield': {
      const pause = callRuntime('osp_fiber_yield', []);
      if (!e.value) return seq([pause], unit());
      // `yield e` evaluates e, yields, then gives e's value (docs/guide/16-fibers-and-channels.md).
      const v = lowerExpr(e.value, ctx, false);
      const id = ctx.state.temp();
      return { k: 'let', id, value: v, body: seq([pause], { k: 'local', id, repr: v.repr }), repr: v.repr };
    }
    case 'channel':
      return callRuntime('osp_channel_new', [lowerExpr(e.capacity, ctx, false), str(ctx.state.location(e.span.start))]);
    case 'send': {
      const ch = lowerExpr(e.channel, ctx, false);
      const v = lowerExpr(e.value, ctx, false);
      return callRuntime('osp_channel_send', [ch, { k: 'word', value: v, repr: 'i64' }]);
    }
    case 'recv':
      return callRuntime('osp_channel_recv', [lowerExpr(e.channel, ctx, false)]);
    case 'select':
      return lowerSelect(e, ctx, tail);
  }
  return ice(`lowering: unexpected expression '${(e as TExpr).kind}'`);
}

type StringPart = { value: CExpr; isInt: boolean };

/**
 * A String `+` chain or an interpolation as one `strbuild` over all its pieces (Int pieces —
 * `${n}`, `toString(n)` — are formatted straight into the result), instead of one allocation and
 * copy per `+`. The left spine of `a + b + c + …` is walked in a loop (long chains must not
 * recurse); pieces are evaluated left to right, as written.
 */
function lowerStringChain(e: TExpr, ctx: FnContext): CExpr {
  const parts: StringPart[] = [];
  const piece = (x: TExpr): void => {
    if (x.kind === 'interp' || (x.kind === 'binary' && x.op === '+' && isCon(prune(x.left.type), 'String'))) {
      const rights: TExpr[] = [];
      let left: TExpr = x;
      while (left.kind === 'binary' && left.op === '+' && isCon(prune(left.left.type), 'String')) {
        rights.push(left.right);
        left = left.left;
      }
      if (left.kind === 'interp') {
        for (const p of left.parts) {
          if (typeof p === 'string') {
            if (p !== '') parts.push({ value: str(p), isInt: false });
          } else if (isCon(prune(p.type), 'Int')) parts.push({ value: lowerExpr(p, ctx, false), isInt: true });
          else parts.push({ value: display(lowerExpr(p, ctx, false), p.type, ctx.state), isInt: false });
        }
      } else piece(left);
      for (let i = rights.length - 1; i >= 0; i--) piece(rights[i]!);
      return;
    }
    if (x.kind === 'builtin' && x.name === 'toString' && x.args.length === 1 && isCon(prune(x.args[0]!.value.type), 'Int')) {
      parts.push({ value: lowerExpr(x.args[0]!.value, ctx, false), isInt: true });
      return;
    }
    if (x.kind === 'string') {
      if (x.value !== '') parts.push({ value: str(x.value), isInt: false });
      return;
    }
    parts.push({ value: lowerExpr(x, ctx, false), isInt: false });
  };
  piece(e);
  if (parts.length === 0) return str('');
  if (parts.length === 1 && !parts[0]!.isInt) return parts[0]!.value;
  return { k: 'strbuild', parts, repr: 'ptr' };
}

/**
 * `spawn e` / `Fiber { computation: c }`: the runtime calls a fiber body `fn(env) -> word`. A
 * computation whose value already is one word (Int, Unit, String, handles, records) is passed as
 * it is; any other (Bool, Result, functions) gets a wrapper that converts its value to a word.
 */
function lowerSpawn(computation: TExpr, ctx: FnContext): CExpr {
  const c = lowerExpr(computation, ctx, false);
  const t = prune(computation.type);
  const ret = t.kind === 'fn' ? reprOf(t.ret) : 'i64';
  if (ret === 'i64' || ret === 'ptr') return callRuntime('osp_fiber_spawn', [c]);
  const name = `${ctx.name}.fiber.${ctx.state.uniqueSuffix()}`;
  const inner: CExpr = { k: 'callclosure', closure: { k: 'envload', index: 0, repr: 'closure' }, args: [], repr: ret };
  ctx.state.fns.push({ name, params: [], ret: 'i64', body: { k: 'word', value: inner, repr: 'i64' }, loops: false });
  return callRuntime('osp_fiber_spawn', [{ k: 'mkclosure', fn: name, env: { k: 'alloc', words: [c], repr: 'ptr' }, repr: 'closure' }]);
}

/**
 * `select` (docs/guide/16-fibers-and-channels.md): the channel arms' operands are evaluated in source order into a
 * block of word triples [kind, channel, value] for osp_select, which picks the first ready arm
 * (or -1: the default arm) and returns its index as the Result tag, a received value as payload.
 */
function lowerSelect(e: TExpr & { kind: 'select' }, ctx: FnContext, tail: boolean): CExpr {
  const repr = reprOf(e.type);
  const candidates = e.arms.filter((a) => a.kind !== 'default');
  const fallback = e.arms.find((a) => a.kind === 'default');
  const kindWord = (k: number): CExpr => ({ k: 'int', value: BigInt(k), repr: 'i64' });
  const zero: CExpr = { k: 'int', value: 0n, repr: 'i64' };
  const words: CExpr[] = [];
  for (const a of candidates) {
    if (a.kind === 'recv') words.push(kindWord(SELECT_ARM_KINDS.Recv), lowerExpr(a.channel, ctx, false), zero);
    else if (a.kind === 'send') {
      words.push(kindWord(SELECT_ARM_KINDS.Send), lowerExpr(a.channel, ctx, false), { k: 'word', value: lowerExpr(a.value, ctx, false), repr: 'i64' });
    } else words.push(kindWord(SELECT_ARM_KINDS.Always), zero, zero);
  }
  const armsId = ctx.state.temp();
  const resultId = ctx.state.temp();
  const result: CExpr = { k: 'local', id: resultId, repr: 'result' };
  const armsBlock: CExpr = words.length ? { k: 'alloc', words, repr: 'ptr' } : { k: 'alloc', words: [zero], repr: 'ptr' };
  const call = callRuntime('osp_select', [
    { k: 'local', id: armsId, repr: 'ptr' },
    { k: 'int', value: BigInt(candidates.length), repr: 'i64' },
    { k: 'int', value: fallback ? 1n : 0n, repr: 'i64' },
  ]);
  let chain: CExpr = fallback && fallback.kind === 'default'
    ? lowerExpr(fallback.body, ctx, tail)
    : { k: 'unreachable', message: 'select returned no arm', repr };
  for (let i = candidates.length - 1; i >= 0; i--) {
    const a = candidates[i]!;
    const value: CExpr =
      a.kind === 'recv' ? { k: 'resultpayload', value: result, repr }
      : a.kind === 'send' ? unit()
      : a.kind === 'always' ? lowerExpr(a.body, ctx, tail)
      : ice('lowering: default arm among the candidates');
    chain = {
      k: 'if', repr,
      cond: { k: 'prim', op: 'eq', repr: 'i1', args: [{ k: 'resulttag', value: result, repr: 'i64' }, { k: 'int', value: BigInt(i), repr: 'i64' }] },
      then: value,
      else: chain,
    };
  }
  return { k: 'let', id: armsId, value: armsBlock, body: { k: 'let', id: resultId, value: call, body: chain, repr }, repr };
}

/**
 * A constructor value: a GC block [tag, fields…]. With field constraints (docs/guide/09-constraints.md) the fields are
 * bound once, each validator runs in declaration order, and the first failure is an Error.
 */
function construct(ctor: CtorInfo, fields: CExpr[], ctx: FnContext): CExpr {
  const tag: CExpr = { k: 'int', value: BigInt(ctor.tag), repr: 'i64' };
  if (ctor.validators.length === 0) return { k: 'alloc', words: [tag, ...fields], repr: 'ptr', immutable: true };
  const temps = fields.map((f) => ({ id: ctx.state.temp(), value: f }));
  const locals: CExpr[] = temps.map((t) => ({ k: 'local', id: t.id, repr: t.value.repr }));
  let out: CExpr = { k: 'mkresult', tag: 0, payload: { k: 'alloc', words: [tag, ...locals], repr: 'ptr' }, repr: 'result' };
  for (let i = ctor.validators.length - 1; i >= 0; i--) {
    const v = ctor.validators[i]!;
    const fn = ctx.state.topFns.get(v.fn.symbol!.id) ?? ice(`lowering: validator ${v.fn.name} was not lowered`);
    // The failure is ConstructionError's ConstraintViolation { field, value, constraint, message } (tag 0).
    const index = ctor.fields.findIndex((f) => f.name === v.field);
    const fieldType = prune(ctor.fields[index]!.type);
    const shownValue = ['Int', 'String', 'Bool'].some((n) => isCon(fieldType, n)) ? display(locals[index]!, fieldType) : str('<value>');
    const violation: CExpr = {
      k: 'alloc', repr: 'ptr',
      words: [{ k: 'int', value: 0n, repr: 'i64' }, str(v.field), shownValue, str(v.constraint), str(`constraint '${v.constraint}' failed for field '${v.field}'`)],
    };
    const failed: CExpr = { k: 'mkresult', tag: 1, payload: violation, repr: 'result' };
    out = { k: 'if', cond: { k: 'calldirect', fn, env: null, args: locals, tail: false, repr: 'i1' }, then: out, else: failed, repr: 'result' };
  }
  for (let i = temps.length - 1; i >= 0; i--) out = { k: 'let', id: temps[i]!.id, value: temps[i]!.value, body: out, repr: 'result' };
  return out;
}

function reprOfField(e: TExpr & { kind: 'update' }, i: number): CExpr['repr'] {
  const t = prune(e.type);
  const args = t.kind === 'con' ? t.args : [];
  const ft = e.ctor.fields[i]!.type;
  // Field types may mention type parameters: substitute the instance's arguments.
  return reprOf(ft.kind === 'param' ? (args[ft.index] ?? ft) : ft);
}

function lowerBinary(e: TExpr & { kind: 'binary' }, ctx: FnContext): CExpr {
  const t = prune(e.left.type);
  const l = lowerExpr(e.left, ctx, false);
  const r = lowerExpr(e.right, ctx, false);
  const bool = (op: 'eq' | 'ne' | 'lt' | 'gt' | 'le' | 'ge' | 'streq' | 'strne', a: CExpr, b: CExpr): CExpr => ({ k: 'prim', op, args: [a, b], repr: 'i1' });
  switch (e.op) {
    case '&&':
      return { k: 'if', cond: l, then: r, else: { k: 'bool', value: false, repr: 'i1' }, repr: 'i1' };
    case '||':
      return { k: 'if', cond: l, then: { k: 'bool', value: true, repr: 'i1' }, else: r, repr: 'i1' };
    case '+':
      if (isCon(t, 'String')) return callRuntime('osp_string_concat', [l, r]);
      return { k: 'prim', op: 'add', args: [l, r], repr: 'i64' };
    case '-':
      return { k: 'prim', op: 'sub', args: [l, r], repr: 'i64' };
    case '*':
      return { k: 'prim', op: 'mul', args: [l, r], repr: 'i64' };
    case '/':
    case '%':
      return { k: 'prim', op: e.op === '/' ? 'div' : 'rem', args: [l, r], repr: 'i64', loc: ctx.state.location(e.span.start) };
    case '<':
      return bool('lt', l, r);
    case '>':
      return bool('gt', l, r);
    case '<=':
      return bool('le', l, r);
    case '>=':
      return bool('ge', l, r);
    case '==':
    case '!=': {
      const eq = e.op === '==';
      if (isCon(t, 'String')) return bool(eq ? 'streq' : 'strne', l, r);
      if (t.kind === 'con' && t.adt) {
        // Unit constructors of one union: compare tags.
        const tag = (x: CExpr): CExpr => ({ k: 'loadword', ptr: x, index: 0, repr: 'i64' });
        return bool(eq ? 'eq' : 'ne', tag(l), tag(r));
      }
      return bool(eq ? 'eq' : 'ne', l, r);
    }
  }
}
