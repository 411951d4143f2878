// Pipeline position: the checker's output (infer.ts), the input of exhaustive.ts and lower/. The
// typed tree: every name is resolved to a Symbol, every expression carries its Type, calls list
// their arguments with the parameter each one fills, and constructor uses point at CtorInfo.
// Only a program that checked without errors is handed on, so later passes may assume it is
// well-typed (a violated assumption is an internal compiler error, never a user error).

import type { RuntimeFunction } from '../../../runtime-bindings/abi.ts';
import type { Span } from '../source.ts';
import type { BinaryOp, UnaryOp } from '../syntax/ast.ts';
import type { AdtInfo, CtorInfo, Type } from './types.ts';

export type SymbolKind =
  /** A parameter of a function or lambda. */
  | 'param'
  /** A `let` inside a function, lambda or block of one. */
  | 'local'
  /** A top-level `let` (a global, initialised in program order before `main`). */
  | 'global'
  /** A `fn` declaration (top-level when `fn.nested` is false). */
  | 'fn'
  /** An `extern fn` declaration: a C function resolved at link time (docs/guide/05-functions.md#calling-c-extern-fn). */
  | 'extern';

export interface VarSymbol {
  /** Unique in the program. */
  id: number;
  name: string;
  kind: SymbolKind;
  type: Type;
  span: Span;
  /** For kind 'fn'. */
  fn?: TypedFn;
  /** For kind 'extern': parameter names (for named arguments) and types. */
  extern?: { params: { name: string; type: Type }[]; ret: Type };
}

export interface TypedFn {
  symbol: VarSymbol | null; // null for a lambda
  name: string;
  params: VarSymbol[];
  returnType: Type;
  body: TExpr;
  /** Declared inside a block (captures like a lambda), or a lambda. */
  nested: boolean;
  span: Span;
}

/** An argument as written: `index` is the parameter it fills. Arrays keep the written order,
 *  which is the evaluation order (docs/guide/05-functions.md#named-arguments). */
export interface TArg {
  index: number;
  value: TExpr;
}

export type BuiltinName = 'print' | 'toString' | 'sleep' | 'args' | IteratorBuiltin;
/** The iteration built-ins of docs/guide/11-lists-and-iteration.md#iterators. */
export type IteratorBuiltin = 'range' | 'forEach' | 'map' | 'filter' | 'fold';

interface Node {
  type: Type;
  span: Span;
}

export type TExpr = Node &
  (
    | { kind: 'int'; value: bigint }
    | { kind: 'string'; value: string }
    | { kind: 'bool'; value: boolean }
    | { kind: 'unit' }
    /** Text parts are strings; expression parts are displayed (docs/guide/12-strings-and-display.md#display). */
    | { kind: 'interp'; parts: (string | TExpr)[] }
    | { kind: 'var'; symbol: VarSymbol }
    /** Call of a function value or declared function (positional after reordering by TArg.index). */
    | { kind: 'call'; callee: TExpr; args: TArg[] }
    | { kind: 'builtin'; name: BuiltinName; args: TArg[] }
    | { kind: 'runtime'; fn: RuntimeFunction; args: TArg[] }
    | { kind: 'binary'; op: BinaryOp; left: TExpr; right: TExpr }
    | { kind: 'unary'; op: UnaryOp; operand: TExpr }
    | { kind: 'lambda'; fn: TypedFn }
    | { kind: 'block'; stmts: TStmt[]; result: TExpr | null }
    | { kind: 'match'; scrutinee: TExpr; arms: TArm[] }
    /** `Ctor { … }` or a unit constructor; fields in written order, TArg.index = field index. */
    | { kind: 'construct'; ctor: CtorInfo; fields: TArg[] }
    /** `value { f: e }`: a copy of `base` with the listed fields replaced. */
    | { kind: 'update'; base: TExpr; ctor: CtorInfo; fields: TArg[] }
    | { kind: 'field'; object: TExpr; ctor: CtorInfo; index: number }
    /** Success (tag 0) / Error (tag 1) construction; a null payload is Unit. */
    | { kind: 'result'; tag: 0 | 1; payload: TExpr | null }
    /** A list literal (docs/guide/11-lists-and-iteration.md#lists): immutable, fixed length. */
    | { kind: 'list'; elements: TExpr[] }
    /** A value of a static type made `any` (boxed with its run-time type). */
    | { kind: 'box'; value: TExpr }
    /** `xs[i]` with a literal index: Result<T, String>. */
    | { kind: 'index'; list: TExpr; index: bigint }
    /** `spawn e` / `Fiber<T> { computation }`: `computation` is a `() -> T` closure (docs/guide/16-fibers-and-channels.md). */
    | { kind: 'spawn'; computation: TExpr }
    | { kind: 'await'; fiber: TExpr }
    /** `yield` (value null, Unit) / `yield e` (the value of e). */
    | { kind: 'yield'; value: TExpr | null }
    /** `Channel<T> { capacity: n }`. */
    | { kind: 'channel'; capacity: TExpr }
    /** Result<Unit, String>. */
    | { kind: 'send'; channel: TExpr; value: TExpr }
    /** Result<T, String>. */
    | { kind: 'recv'; channel: TExpr }
    | { kind: 'select'; arms: TSelectArm[] }
  );

/**
 * A select arm (docs/guide/16-fibers-and-channels.md): `recv` is ready when its channel holds a value (the arm's value
 * is the received T), `send` when its channel has room (Unit), `always` is always ready (its body
 * is the value), `default` (`_ => e`) is taken only when no other arm is ready.
 */
export type TSelectArm = { span: Span } & (
  | { kind: 'recv'; channel: TExpr }
  | { kind: 'send'; channel: TExpr; value: TExpr }
  | { kind: 'always'; body: TExpr }
  | { kind: 'default'; body: TExpr }
);

export type TStmt =
  | { kind: 'let'; symbol: VarSymbol; value: TExpr; span: Span }
  | { kind: 'expr'; expr: TExpr; span: Span }
  /** A group of `fn` declarations written one after another in a block: they may call each other
   *  and share one closure environment (see lower/closures.ts). */
  | { kind: 'fns'; fns: TypedFn[]; span: Span };

export type TPattern = { span: Span } & (
  | { kind: 'wild' }
  | { kind: 'bind'; symbol: VarSymbol }
  | { kind: 'int'; value: bigint }
  | { kind: 'string'; value: string }
  | { kind: 'bool'; value: boolean }
  /** A user constructor; `args` has one sub-pattern per declared field; `bind` names the whole value. */
  | { kind: 'ctor'; ctor: CtorInfo; args: TPattern[]; bind: VarSymbol | null }
  /** `n: Int` on an `any` value: matches when the run-time type is `target`; binds it as that type. */
  | { kind: 'typed'; target: Type; bind: VarSymbol }
  /** Success (0) / Error (1) with a payload pattern. */
  | { kind: 'result'; tag: 0 | 1; payload: TPattern }
);

export interface TArm {
  pattern: TPattern;
  body: TExpr;
  span: Span;
}

export interface TypedProgram {
  /** Every top-level function. Nested functions and lambdas are reachable through their bodies. */
  functions: TypedFn[];
  /** Top-level statements in program order (fn declarations excluded). */
  topLevel: TStmt[];
  /** `extern fn` declarations. */
  externs: VarSymbol[];
  /** The user's `main`, if declared. */
  main: TypedFn | null;
  adts: AdtInfo[];
}
