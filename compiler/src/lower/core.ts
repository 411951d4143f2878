// Pipeline position: the output of lower/ and the only input of codegen/. A small first-order core:
// closures are explicit (function name + environment), matches are nested `if`s over explicit tag
// and field loads, named arguments are gone, display is explicit runtime calls. Every node carries
// its machine representation (Repr); codegen maps Reprs to LLVM types and nothing else.

import type { RuntimeFunction } from '../../../runtime-bindings/abi.ts';

/**
 * Machine representations:
 *  - i64: Int, and Unit (always 0)
 *  - i1: Bool
 *  - ptr: String (i8* to its bytes; int64 length before them, NUL after: abi.ts STRING_LAYOUT) and records/unions (GC block of 64-bit words: tag, fields…)
 *  - result: %OspResult { i64 tag, i64 value }
 *  - closure: { i8* fn, i8* env }
 */
export type Repr = 'i64' | 'i1' | 'ptr' | 'result' | 'closure';

export type PrimOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'rem' | 'neg'
  | 'lt' | 'gt' | 'le' | 'ge' | 'eq' | 'ne'
  | 'not' | 'streq' | 'strne';

export type CExpr = { repr: Repr } & (
  | { k: 'int'; value: bigint }
  | { k: 'bool'; value: boolean }
  | { k: 'str'; value: string }
  | { k: 'unit' }
  | { k: 'local'; id: number }
  | { k: 'global'; name: string }
  /** Captured variable `index` of the current function's environment. */
  | { k: 'envload'; index: number }
  /** The current function's environment pointer. */
  | { k: 'env' }
  | { k: 'let'; id: number; value: CExpr; body: CExpr }
  | { k: 'setglobal'; name: string; value: CExpr }
  | { k: 'seq'; effects: CExpr[]; result: CExpr }
  | { k: 'if'; cond: CExpr; then: CExpr; else: CExpr }
  /** `loc` (file:line:col) is reported by div/rem on a zero divisor. */
  | { k: 'prim'; op: PrimOp; args: CExpr[]; loc?: string }
  /** Direct call of a compiled function; `tail` marks a self call in tail position (becomes a jump). */
  | { k: 'calldirect'; fn: string; env: CExpr | null; args: CExpr[]; tail: boolean }
  | { k: 'callclosure'; closure: CExpr; args: CExpr[] }
  /** A loop inside an expression: each of `vars` is bound to its `init` (in order), then `body`
   *  is evaluated; a `continue` of this loop (only in tail position of `body`) binds the vars to
   *  its arguments and evaluates `body` again. The loop's value is `body`'s value. inline.ts
   *  makes these when it unrolls a recursive function into itself: a copy's self tail calls. */
  | { k: 'loop'; id: number; vars: { id: number; init: CExpr }[]; body: CExpr }
  | { k: 'continue'; loop: number; args: CExpr[] }
  /** Call of an `extern fn` (C ABI: Int and Bool as int64_t, String as char*, Unit as void). */
  | { k: 'callextern'; symbol: string; params: Repr[]; returnsUnit: boolean; args: CExpr[] }
  /** Call of a runtime function; closure arguments are split into (fn, env) by codegen. */
  | { k: 'callruntime'; fn: RuntimeFunction; args: CExpr[] }
  | { k: 'mkclosure'; fn: string; env: CExpr | null }
  /** A new string from `parts` in order (an Int part is its decimal text): a whole `+` chain or
   *  interpolation, evaluated left to right, built with one allocation per four parts. */
  | { k: 'strbuild'; parts: { value: CExpr; isInt: boolean }[] }
  /** GC-allocates one 64-bit word per element (each converted to a word), giving a ptr.
   *  `stack`: the block never outlives the call of the function that allocates it (escape.ts
   *  proved it), so it lives in that function's stack frame instead of the collected heap.
   *  `immutable`: nothing ever writes the block after it is built and nothing compares it by
   *  address (a constructor value: `==` on unions compares tags), so when every word is a
   *  constant codegen shares one read-only block (a `Leaf` or `Nil` then costs no allocation). */
  | { k: 'alloc'; words: CExpr[]; stack?: boolean; immutable?: boolean }
  /** Stores `value` (as a word) into word `index` of a GC block; Unit. */
  | { k: 'storeword'; ptr: CExpr; index: number; value: CExpr }
  /** Word `index` of a GC block, converted back to `repr`. */
  | { k: 'loadword'; ptr: CExpr; index: number }
  /** Word `index` (computed at run time, in range by construction) of a GC block. */
  | { k: 'loadwordat'; ptr: CExpr; index: CExpr }
  | { k: 'mkresult'; tag: 0 | 1; payload: CExpr }
  /** The value as one 64-bit word (repr i64): what channels and fibers carry (a two-word value
   *  is boxed in a GC cell, a Bool zero-extended, a pointer converted). */
  | { k: 'word'; value: CExpr }
  /** A word back to `repr` (the inverse of `word`). */
  | { k: 'unword'; value: CExpr }
  | { k: 'resulttag'; value: CExpr }
  | { k: 'resultpayload'; value: CExpr }
  | { k: 'unreachable'; message: string }
);

/** A value read without effects: evaluating it before or after other code gives the same. */
export function isPureRead(e: CExpr): boolean {
  return e.k === 'local' || e.k === 'global' || e.k === 'envload' || (e.k === 'mkclosure' && (e.env === null || e.env.k === 'env'));
}

/**
 * Calls `visit` on each direct sub-expression of `e` in evaluation order, with a function that
 * replaces that sub-expression in place. The passes over core walk with this and an explicit stack
 * (a long operator chain nests as deep as it is long, so they must not recurse per level).
 */
export function forEachChild(e: CExpr, visit: (child: CExpr, replace: (c: CExpr) => void) => void): void {
  const list = (xs: CExpr[]): void => xs.forEach((x, i) => visit(x, (c) => (xs[i] = c)));
  switch (e.k) {
    case 'int':
    case 'bool':
    case 'str':
    case 'unit':
    case 'local':
    case 'global':
    case 'envload':
    case 'env':
    case 'unreachable':
      return;
    case 'let':
      visit(e.value, (c) => (e.value = c));
      visit(e.body, (c) => (e.body = c));
      return;
    case 'setglobal':
    case 'word':
    case 'unword':
    case 'resulttag':
    case 'resultpayload':
      visit(e.value, (c) => (e.value = c));
      return;
    case 'seq':
      list(e.effects);
      visit(e.result, (c) => (e.result = c));
      return;
    case 'if':
      visit(e.cond, (c) => (e.cond = c));
      visit(e.then, (c) => (e.then = c));
      visit(e.else, (c) => (e.else = c));
      return;
    case 'prim':
    case 'callextern':
    case 'callruntime':
      list(e.args);
      return;
    case 'calldirect':
      if (e.env) visit(e.env, (c) => (e.env = c));
      list(e.args);
      return;
    case 'callclosure':
      visit(e.closure, (c) => (e.closure = c));
      list(e.args);
      return;
    case 'loop':
      e.vars.forEach((v) => visit(v.init, (c) => (v.init = c)));
      visit(e.body, (c) => (e.body = c));
      return;
    case 'continue':
      list(e.args);
      return;
    case 'mkclosure':
      if (e.env) visit(e.env, (c) => (e.env = c));
      return;
    case 'strbuild':
      e.parts.forEach((p) => visit(p.value, (c) => (p.value = c)));
      return;
    case 'alloc':
      list(e.words);
      return;
    case 'storeword':
      visit(e.ptr, (c) => (e.ptr = c));
      visit(e.value, (c) => (e.value = c));
      return;
    case 'loadword':
      visit(e.ptr, (c) => (e.ptr = c));
      return;
    case 'loadwordat':
      visit(e.ptr, (c) => (e.ptr = c));
      visit(e.index, (c) => (e.index = c));
      return;
    case 'mkresult':
      visit(e.payload, (c) => (e.payload = c));
      return;
  }
}

export interface CoreFn {
  /** LLVM symbol. */
  name: string;
  params: { id: number; repr: Repr }[];
  ret: Repr;
  body: CExpr;
  /** Contains a self tail call (codegen keeps parameters in stack slots and loops). */
  loops: boolean;
}

export interface CoreProgram {
  fns: CoreFn[];
  globals: { name: string; repr: Repr }[];
  /** Top-level statements in order (run by the generated C main before the user's main). */
  init: CExpr;
  /** The user's main, if any, and whether its value is the exit status. */
  main: { fn: string; returnsInt: boolean } | null;
}
