// Pipeline position: core (lower/core.ts) → LLVM module, through llvm.ts only. Maps each Repr to
// one LLVM type, emits every core function with the calling convention the runtime relies on
// (first parameter `i8* env`, then the parameters; a function value is { fn, env }), and the C
// `int main(void)` that runs osp_rt_init, the top-level statements, the user's main and
// osp_rt_shutdown.

import { ABI_VERSION, RESULT_TAGS, runtimeFunction } from '../../../runtime-bindings/abi.ts';
import { ice } from '../diagnostics/diagnostic.ts';
import { isPureRead, type CExpr, type CoreFn, type CoreProgram, type Repr } from '../lower/core.ts';
import { IrModule, type Block, type Fn, type FnType, type Type, type Value } from './llvm.ts';
import { cTypeToLlvm, declareRuntime } from './runtime.ts';

export function emitModule(program: CoreProgram, moduleName: string): IrModule {
  const ir = new IrModule(moduleName);
  new Emitter(ir, program).emit();
  ir.verify();
  return ir;
}

/** Blocks of at least this many words are built from a constant image (emitLargeAlloc). */
const CONSTANT_BLOCK_MIN_WORDS = 16;

type Local = { kind: 'value'; value: Value } | { kind: 'slot'; ptr: Value; type: Type };

class Emitter {
  private readonly rt: Map<string, Fn>;
  private readonly fns = new Map<string, { fn: Fn; type: FnType; core: CoreFn }>();
  private readonly globals = new Map<string, { ptr: Value; repr: Repr }>();
  // Per-function state.
  private fn: Fn | null = null;
  private core: CoreFn | null = null;
  private locals = new Map<number, Local>();
  private loopHeader: Block | null = null;
  /** The `loop` nodes being emitted, by id: where their `continue`s store and jump. */
  private readonly innerLoops = new Map<number, { header: Block; slots: Value[] }>();
  /** Read-only blocks of constant words shared by immutable allocations (sharedBlock). */
  private readonly sharedBlocks = new Map<string, Value>();
  /** Chain links already emitted by expr(), consumed by their parent (null: control ended). */
  private readonly emittedLinks = new Map<CExpr, Value | null>();

  constructor(
    private readonly ir: IrModule,
    private readonly program: CoreProgram,
  ) {
    this.rt = declareRuntime(ir);
  }

  private ty(r: Repr): Type {
    switch (r) {
      case 'i64':
        return this.ir.i64();
      case 'i1':
        return this.ir.i1();
      case 'ptr':
        return this.ir.i8ptr();
      case 'result':
        return this.ir.result();
      case 'closure':
        return this.ir.closure();
    }
  }

  private fnTypeOf(params: Repr[], ret: Repr): FnType {
    return this.ir.fnType(this.ty(ret), [this.ir.i8ptr(), ...params.map((p) => this.ty(p))]);
  }

  emit(): void {
    for (const f of this.program.fns) {
      const type = this.fnTypeOf(f.params.map((p) => p.repr), f.ret);
      this.fns.set(f.name, { fn: this.ir.defineFunction(f.name, type, false), type, core: f });
    }
    for (const g of this.program.globals) this.globals.set(g.name, { ptr: this.ir.global(g.name, this.ty(g.repr)), repr: g.repr });
    for (const f of this.program.fns) this.emitFunction(f);
    this.emitMain();
  }

  private emitFunction(f: CoreFn): void {
    const { fn } = this.fns.get(f.name)!;
    this.fn = fn;
    this.core = f;
    this.locals = new Map();
    this.innerLoops.clear();
    const entry = this.ir.block(fn, 'entry');
    this.ir.setInsertPoint(entry);
    if (f.loops) {
      // Self tail calls become jumps back to `loop` with new parameter values (docs/guide/05-functions.md#recursion).
      f.params.forEach((p, i) => {
        const type = this.ty(p.repr);
        const ptr = this.ir.alloca(type);
        this.ir.store(this.ir.arg(fn, i + 1), ptr);
        this.locals.set(p.id, { kind: 'slot', ptr, type });
      });
      this.loopHeader = this.ir.block(fn, 'loop');
      this.ir.br(this.loopHeader);
      this.ir.setInsertPoint(this.loopHeader);
    } else {
      this.loopHeader = null;
      f.params.forEach((p, i) => this.locals.set(p.id, { kind: 'value', value: this.ir.arg(fn, i + 1) }));
    }
    const v = this.expr(f.body);
    if (v) this.ir.ret(v);
  }

  private emitMain(): void {
    // The program body (top-level statements, then the user's main) is the main fiber: C main
    // starts the scheduler, which runs `osp.program` on its own 1 GiB stack (docs/guide/16-fibers-and-channels.md).
    const program = this.ir.defineFunction('osp.program', this.fnTypeOf([], 'i64'), false);
    this.fn = program;
    this.core = null;
    this.locals = new Map();
    this.innerLoops.clear();
    this.loopHeader = null;
    this.ir.setInsertPoint(this.ir.block(program, 'entry'));
    if (this.expr(this.program.init) !== null) {
      let status = this.ir.constI64(0n);
      if (this.program.main) {
        const target = this.fns.get(this.program.main.fn) ?? ice(`codegen: no function ${this.program.main.fn}`);
        const v = this.ir.call(target.fn, [this.ir.nullPtr()]);
        if (this.program.main.returnsInt) status = v;
      }
      this.ir.ret(status);
    }

    const main = this.ir.defineFunction('main', this.ir.fnType(this.ir.i32(), []), true);
    this.fn = main;
    this.ir.setInsertPoint(this.ir.block(main, 'entry'));
    this.ir.call(this.rtFn('osp_rt_init'), [this.ir.constI64(BigInt(ABI_VERSION))]);
    const runMain = runtimeFunction('osp_rt_run_main');
    const body = this.ir.bitcast(this.ir.fnAsI8Ptr(program), cTypeToLlvm(this.ir, runMain.params[0]!.type));
    const status = this.ir.call(this.rtFn('osp_rt_run_main'), [body, this.ir.nullPtr()]);
    this.ir.ret(this.ir.call(this.rtFn('osp_rt_shutdown'), [status]));
  }

  private rtFn(symbol: string): Fn {
    return this.rt.get(symbol) ?? ice(`codegen: runtime function ${symbol} is not declared`);
  }

  // ---- words: the uniform 64-bit slot of records, environments and Result payloads -----------

  private alloc(bytes: number): Value {
    return this.ir.call(this.rtFn('osp_alloc'), [this.ir.constI64(BigInt(bytes))]);
  }

  private toWord(v: Value, r: Repr): Value {
    switch (r) {
      case 'i64':
        return v;
      case 'i1':
        return this.ir.zext(v, this.ir.i64());
      case 'ptr':
        return this.ir.ptrToInt(v);
      case 'result':
      case 'closure': {
        // Two-word values are boxed in a GC cell.
        const cell = this.alloc(16);
        this.ir.store(v, this.ir.bitcast(cell, this.ir.ptrTo(this.ty(r))));
        return this.ir.ptrToInt(cell);
      }
    }
  }

  private fromWord(w: Value, r: Repr): Value {
    switch (r) {
      case 'i64':
        return w;
      case 'i1':
        return this.ir.trunc(w, this.ir.i1());
      case 'ptr':
        return this.ir.intToPtr(w, this.ir.i8ptr());
      case 'result':
      case 'closure':
        return this.ir.load(this.ty(r), this.ir.intToPtr(w, this.ir.ptrTo(this.ty(r))));
    }
  }

  // ---- expressions ---------------------------------------------------------------------------

  /** Emits `e`; null when control does not continue (a tail jump or a failure). */
  private expr(e: CExpr): Value | null {
    if (this.emittedLinks.has(e)) {
      const v = this.emittedLinks.get(e)!;
      this.emittedLinks.delete(e);
      return v;
    }
    // A long operator or call chain nests through the operand evaluated first: emit those links
    // innermost first, in a loop (the order recursion would take), so recursion stays one deep.
    const links: CExpr[] = [];
    for (let x = firstEvaluated(e); x && firstEvaluated(x); x = firstEvaluated(x)) links.push(x);
    for (let i = links.length - 1; i >= 0; i--) this.emittedLinks.set(links[i]!, this.exprAt(links[i]!));
    return this.exprAt(e);
  }

  private exprAt(e: CExpr): Value | null {
    const ir = this.ir;
    switch (e.k) {
      case 'int':
        return ir.constI64(e.value);
      case 'bool':
        return ir.constBool(e.value);
      case 'str':
        return ir.ostring(e.value);
      case 'unit':
        return ir.constI64(0n);
      case 'local': {
        const l = this.locals.get(e.id) ?? ice(`codegen: unbound local #${e.id}`);
        return l.kind === 'value' ? l.value : ir.load(l.type, l.ptr);
      }
      case 'global': {
        const g = this.globals.get(e.name) ?? ice(`codegen: unknown global ${e.name}`);
        return ir.load(this.ty(g.repr), g.ptr);
      }
      case 'env':
        return ir.arg(this.fn!, 0);
      case 'envload': {
        const words = ir.bitcast(ir.arg(this.fn!, 0), ir.ptrTo(ir.i64()));
        return this.fromWord(ir.load(ir.i64(), ir.elementPtr(ir.i64(), words, e.index)), e.repr);
      }
      case 'let': {
        // A long block is a chain of lets and seqs: walk it in a loop, not one recursion per link.
        let x: CExpr = e;
        for (;;) {
          if (x.k === 'let') {
            const v = this.expr(x.value);
            if (!v) return null;
            this.locals.set(x.id, { kind: 'value', value: v });
            x = x.body;
          } else if (x.k === 'seq') {
            for (const y of x.effects) if (this.expr(y) === null) return null;
            x = x.result;
          } else return this.expr(x);
        }
      }
      case 'setglobal': {
        const g = this.globals.get(e.name) ?? ice(`codegen: unknown global ${e.name}`);
        const v = this.expr(e.value);
        if (!v) return null;
        ir.store(v, g.ptr);
        return ir.constI64(0n);
      }
      case 'seq': {
        for (const x of e.effects) if (this.expr(x) === null) return null;
        return this.expr(e.result);
      }
      case 'if':
        return this.emitIf(e);
      case 'prim':
        return this.emitPrim(e);
      case 'calldirect': {
        const target = this.fns.get(e.fn) ?? ice(`codegen: unknown function ${e.fn}`);
        const env = e.env ? this.expr(e.env) : ir.nullPtr();
        if (!env) return null;
        const args: Value[] = [];
        for (const a of e.args) {
          const v = this.expr(a);
          if (!v) return null;
          args.push(v);
        }
        if (e.tail && this.loopHeader && this.core && target.core === this.core) {
          this.core.params.forEach((p, i) => {
            const slot = this.locals.get(p.id);
            if (slot?.kind !== 'slot') ice('codegen: tail call without parameter slots');
            ir.store(args[i]!, slot.ptr);
          });
          ir.br(this.loopHeader);
          return null;
        }
        return ir.call(target.fn, [env, ...args]);
      }
      case 'loop': {
        // The vars live in entry-block slots (promoted to registers by LLVM, like a function's
        // own loop parameters); `continue` stores into them and jumps back to the header.
        const inits: Value[] = [];
        for (const v of e.vars) {
          const init = this.expr(v.init);
          if (!init) return null;
          inits.push(init);
        }
        const slots = e.vars.map((v, i) => {
          const type = this.ty(v.init.repr);
          const ptr = ir.entryAlloca(this.fn!, type);
          ir.store(inits[i]!, ptr);
          this.locals.set(v.id, { kind: 'slot', ptr, type });
          return ptr;
        });
        const header = ir.block(this.fn!, 'inner');
        ir.br(header);
        ir.setInsertPoint(header);
        this.innerLoops.set(e.id, { header, slots });
        const v = this.expr(e.body);
        this.innerLoops.delete(e.id);
        return v;
      }
      case 'continue': {
        const loop = this.innerLoops.get(e.loop) ?? ice(`codegen: continue outside its loop #${e.loop}`);
        const args: Value[] = [];
        for (const a of e.args) {
          const v = this.expr(a);
          if (!v) return null;
          args.push(v);
        }
        args.forEach((v, i) => ir.store(v, loop.slots[i]!));
        ir.br(loop.header);
        return null;
      }
      case 'callclosure': {
        const c = this.expr(e.closure);
        if (!c) return null;
        const args: Value[] = [];
        for (const a of e.args) {
          const v = this.expr(a);
          if (!v) return null;
          args.push(v);
        }
        const type = this.fnTypeOf(e.args.map((a) => a.repr), e.repr);
        const callee = ir.bitcast(ir.extract(c, 0), ir.ptrTo(type));
        return ir.callIndirect(type, callee, [ir.extract(c, 1), ...args]);
      }
      case 'callruntime':
        return this.emitRuntimeCall(e);
      case 'callextern': {
        // C ABI of docs/guide/05-functions.md#calling-c-extern-fn: Int and Bool cross as int64_t (the old compiler's choice, like the runtime ABI).
        const args: Value[] = [];
        for (const a of e.args) {
          const v = this.expr(a);
          if (!v) return null;
          args.push(a.repr === 'i1' ? ir.zext(v, ir.i64()) : v);
        }
        const cParam = (r: Repr): Type => (r === 'ptr' ? ir.i8ptr() : ir.i64());
        const ret = e.returnsUnit ? ir.void() : cParam(e.repr);
        const fn = ir.declareExternal(e.symbol, ir.fnType(ret, e.params.map(cParam)));
        const r = ir.call(fn, args);
        if (e.returnsUnit) return ir.constI64(0n);
        return e.repr === 'i1' ? ir.icmp('ne', r, ir.constI64(0n)) : r;
      }
      case 'mkclosure': {
        const target = this.fns.get(e.fn) ?? ice(`codegen: unknown function ${e.fn}`);
        const env = e.env ? this.expr(e.env) : ir.nullPtr();
        if (!env) return null;
        const withFn = ir.insert(ir.undef(ir.closure()), ir.fnAsI8Ptr(target.fn), 0);
        return ir.insert(withFn, env, 1);
      }
      case 'alloc': {
        if (e.immutable && !e.stack) {
          const image = e.words.map(constantWord);
          if (image.every((w) => w !== null)) return this.sharedBlock(image as number[]);
        }
        if (e.words.length >= CONSTANT_BLOCK_MIN_WORDS && !e.stack) return this.emitLargeAlloc(e.words);
        const values: Value[] = [];
        for (const w of e.words) {
          const v = this.expr(w);
          if (!v) return null;
          values.push(this.toWord(v, w.repr));
        }
        // A block that does not outlive this call (lower/escape.ts) is a slot of this function's
        // frame, allocated once in the entry block (so a loop reuses it rather than growing the stack).
        const p = e.stack
          ? ir.bitcast(ir.entryAlloca(this.fn!, ir.arrayOf(ir.i64(), Math.max(1, values.length))), ir.i8ptr())
          : this.alloc(8 * Math.max(1, values.length));
        const words = ir.bitcast(p, ir.ptrTo(ir.i64()));
        values.forEach((v, i) => ir.store(v, ir.elementPtr(ir.i64(), words, i)));
        return p;
      }
      case 'storeword': {
        const p = this.expr(e.ptr);
        if (!p) return null;
        const v = this.expr(e.value);
        if (!v) return null;
        const words = ir.bitcast(p, ir.ptrTo(ir.i64()));
        ir.store(this.toWord(v, e.value.repr), ir.elementPtr(ir.i64(), words, e.index));
        return ir.constI64(0n);
      }
      case 'loadword': {
        const p = this.expr(e.ptr);
        if (!p) return null;
        const words = ir.bitcast(p, ir.ptrTo(ir.i64()));
        return this.fromWord(ir.load(ir.i64(), ir.elementPtr(ir.i64(), words, e.index)), e.repr);
      }
      case 'loadwordat': {
        const p = this.expr(e.ptr);
        if (!p) return null;
        const index = this.expr(e.index);
        if (!index) return null;
        const words = ir.bitcast(p, ir.ptrTo(ir.i64()));
        return this.fromWord(ir.load(ir.i64(), ir.elementPtrAt(ir.i64(), words, index)), e.repr);
      }
      case 'mkresult': {
        const v = this.expr(e.payload);
        if (!v) return null;
        const tag = e.tag === 0 ? RESULT_TAGS.Success : RESULT_TAGS.Error;
        const withTag = ir.insert(ir.undef(ir.result()), ir.constI64(BigInt(tag)), 0);
        return ir.insert(withTag, this.toWord(v, e.payload.repr), 1);
      }
      case 'word': {
        const v = this.expr(e.value);
        return v ? this.toWord(v, e.value.repr) : null;
      }
      case 'unword': {
        const v = this.expr(e.value);
        return v ? this.fromWord(v, e.repr) : null;
      }
      case 'resulttag': {
        const v = this.expr(e.value);
        return v ? ir.extract(v, 0) : null;
      }
      case 'resultpayload': {
        const v = this.expr(e.value);
        return v ? this.fromWord(ir.extract(v, 1), e.repr) : null;
      }
      case 'strbuild':
        return this.emitStringBuild(e);
      case 'unreachable':
        ir.call(this.rtFn('osp_rt_fail'), [ir.ctext(`internal error: ${e.message}`), ir.ctext('(compiled code)')]);
        ir.unreachable();
        return null;
    }
  }

  private emitIf(first: CExpr & { k: 'if' }): Value | null {
    // An else-if chain (a long match compiles to one) is walked in a loop and shares one join
    // block: no recursion per arm, so thousands of arms cannot overflow the stack.
    const ir = this.ir;
    const fn = this.fn!;
    const incoming: [Value, Block][] = [];
    let e: CExpr = first;
    for (;;) {
      if (e.k !== 'if') {
        const v = this.expr(e);
        if (v) incoming.push([v, ir.currentBlock()]);
        break;
      }
      const c = this.expr(e.cond);
      if (!c) break;
      const thenB = ir.block(fn, 'then');
      const elseB = ir.block(fn, 'else');
      ir.condBr(c, thenB, elseB);
      ir.setInsertPoint(thenB);
      const tv = this.expr(e.then);
      if (tv) incoming.push([tv, ir.currentBlock()]);
      ir.setInsertPoint(elseB);
      e = e.else;
    }
    if (incoming.length === 0) return null;
    const join = ir.block(fn, 'join');
    for (const [, block] of incoming) {
      ir.setInsertPoint(block);
      ir.br(join);
    }
    ir.setInsertPoint(join);
    return incoming.length === 1 ? incoming[0]![0] : ir.phi(this.ty(first.repr), incoming);
  }

  private emitPrim(e: CExpr & { k: 'prim' }): Value | null {
    const ir = this.ir;
    const args: Value[] = [];
    for (const a of e.args) {
      const v = this.expr(a);
      if (!v) return null;
      args.push(v);
    }
    const [a, b] = args as [Value, Value];
    switch (e.op) {
      case 'add':
        return ir.add(a, b);
      case 'sub':
        return ir.sub(a, b);
      case 'mul':
        return ir.mul(a, b);
      case 'neg':
        return ir.sub(ir.constI64(0n), a);
      case 'not':
        return ir.not(a);
      case 'lt':
        return ir.icmp('slt', a, b);
      case 'gt':
        return ir.icmp('sgt', a, b);
      case 'le':
        return ir.icmp('sle', a, b);
      case 'ge':
        return ir.icmp('sge', a, b);
      case 'eq':
        return ir.icmp('eq', a, b);
      case 'ne':
        return ir.icmp('ne', a, b);
      case 'streq':
      case 'strne': {
        const r = ir.call(this.rtFn('osp_string_equals'), [a, b]);
        return ir.icmp(e.op === 'streq' ? 'ne' : 'eq', r, ir.constI64(0n));
      }
      case 'div':
      case 'rem': {
        // Division by zero is a run-time failure (docs/guide/10-results-and-errors.md#run-time-errors); INT64_MIN / -1 must not trap (docs/guide/03-values-and-types.md#int):
        // divide by 1 instead and fix the result up.
        const fn = this.fn!;
        const fail = ir.block(fn, 'divzero');
        const ok = ir.block(fn, 'divok');
        ir.condBr(ir.icmp('eq', b, ir.constI64(0n)), fail, ok);
        ir.setInsertPoint(fail);
        ir.call(this.rtFn('osp_rt_fail'), [ir.ctext('division by zero'), ir.ctext(e.loc ?? '(unknown)')]);
        ir.unreachable();
        ir.setInsertPoint(ok);
        const minusOne = ir.icmp('eq', b, ir.constI64(-1n));
        const divisor = ir.select(minusOne, ir.constI64(1n), b);
        if (e.op === 'div') return ir.select(minusOne, ir.sub(ir.constI64(0n), a), ir.sdiv(a, divisor));
        return ir.select(minusOne, ir.constI64(0n), ir.srem(a, divisor));
      }
    }
  }

  /**
   * A large block (a long list literal): its constant words come from one read-only array copied
   * with memcpy, and only the others are stored one by one. A 100,000-element literal is then a
   * few instructions instead of 100,000 stores, which both this emitter and clang pay for.
   */
  private emitLargeAlloc(words: CExpr[]): Value | null {
    const ir = this.ir;
    const image = words.map(constantWord);
    const rest: { index: number; value: Value; repr: Repr }[] = [];
    for (let i = 0; i < words.length; i++) {
      if (image[i] !== null) continue;
      const v = this.expr(words[i]!);
      if (!v) return null;
      rest.push({ index: i, value: v, repr: words[i]!.repr });
    }
    const bytes = BigInt(8 * words.length);
    const p = this.alloc(8 * words.length);
    const memcpy = ir.declareExternal('memcpy', ir.fnType(ir.i8ptr(), [ir.i8ptr(), ir.i8ptr(), ir.i64()]));
    ir.call(memcpy, [p, ir.constWords(image.map((x) => x ?? 0)), ir.constI64(bytes)]);
    const slots = ir.bitcast(p, ir.ptrTo(ir.i64()));
    for (const r of rest) ir.store(this.toWord(r.value, r.repr), ir.elementPtr(ir.i64(), slots, r.index));
    return p;
  }

  /** One read-only block per distinct image of constant words, for immutable allocations whose
   *  words are all constants: a unit constructor (`Leaf`, `Nil`) made a million times is one
   *  static block instead of a million collected ones, which the collector also never marks. */
  private sharedBlock(image: number[]): Value {
    const key = image.join(',');
    let block = this.sharedBlocks.get(key);
    if (!block) {
      block = this.ir.constWords(image);
      this.sharedBlocks.set(key, block);
    }
    return block;
  }

  /** osp_string_build over the parts, four at a time: the first call takes parts 0-3, each
   *  further call the string so far and the next three. */
  private emitStringBuild(e: CExpr & { k: 'strbuild' }): Value | null {
    const ir = this.ir;
    const values: { word: Value; isInt: boolean }[] = [];
    for (const p of e.parts) {
      const v = this.expr(p.value);
      if (!v) return null;
      values.push({ word: p.isInt ? v : ir.ptrToInt(v), isInt: p.isInt });
    }
    let built: Value | null = null;
    for (let i = 0; i < values.length; ) {
      const group = built ? [{ word: ir.ptrToInt(built), isInt: false }, ...values.slice(i, i + 3)] : values.slice(i, i + 4);
      i += built ? 3 : 4;
      let mask = 0;
      group.forEach((g, k) => {
        if (g.isInt) mask |= 1 << k;
      });
      const words = [0, 1, 2, 3].map((k) => group[k]?.word ?? ir.constI64(0n));
      built = ir.call(this.rtFn('osp_string_build'), [ir.constI64(BigInt(group.length)), ir.constI64(BigInt(mask)), ...words]);
    }
    return built;
  }

  /** Converts Osprey-level arguments to the C parameters (a closure becomes fn pointer + env). */
  private emitRuntimeCall(e: CExpr & { k: 'callruntime' }): Value | null {
    const ir = this.ir;
    const f = e.fn;
    const values: { v: Value; repr: Repr }[] = [];
    for (const a of e.args) {
      const v = this.expr(a);
      if (!v) return null;
      values.push({ v, repr: a.repr });
    }
    const cargs: Value[] = [];
    let j = 0;
    for (const { v, repr } of values) {
      const p = f.params[j] ?? ice(`codegen: too many arguments for ${f.symbol}`);
      if (repr === 'closure') {
        cargs.push(ir.bitcast(ir.extract(v, 0), cTypeToLlvm(ir, p.type)));
        cargs.push(ir.extract(v, 1));
        j += 2;
        continue;
      }
      if (p.type === 'int64' && repr === 'i1') cargs.push(ir.zext(v, ir.i64()));
      else cargs.push(v);
      j++;
    }
    const r = ir.call(this.rtFn(f.symbol), cargs);
    if (f.noreturn) {
      ir.unreachable();
      return null;
    }
    if (f.returns === 'void') return ir.constI64(0n);
    // A Bool crosses the C ABI as int64_t 0/1 (fileExists).
    if (f.returns === 'int64' && e.repr === 'i1') return ir.icmp('ne', r, ir.constI64(0n));
    return r;
  }
}

// Keep a reference so a renamed runtime symbol fails at module load, not at first use.
void runtimeFunction('osp_rt_init');

/** A constant word's value (exact in a JavaScript number), or null when it is computed. */
function constantWord(w: CExpr): number | null {
  if (w.k === 'int' && w.value >= -(2n ** 53n) && w.value <= 2n ** 53n) return Number(w.value);
  if (w.k === 'bool') return w.value ? 1 : 0;
  if (w.k === 'unit') return 0;
  return null;
}

/** The child a node evaluates before anything else (with no side effect before it), if any. */
function firstEvaluated(e: CExpr): CExpr | undefined {
  switch (e.k) {
    case 'prim':
    case 'callruntime':
    case 'callextern':
      return e.args[0];
    case 'calldirect':
      // The environment evaluated before the arguments is the current one or none: no effect.
      return e.env === null || e.env.k === 'env' ? e.args[0] : undefined;
    case 'callclosure':
      return isPureRead(e.closure) ? e.args[0] : undefined;
    case 'if':
      return e.cond;
    default:
      return undefined;
  }
}
