// Pipeline position: the vocabulary of the checker (infer.ts) and everything after it. Types are
// data, never strings: constructors (`con`), function types, unification variables and the error
// type that suppresses cascades (it unifies with anything). Declared records and unions are
// described by AdtInfo/CtorInfo tables.

import type { Span } from '../source.ts';
import type { Expr } from '../syntax/ast.ts';
import type { TypedFn } from './typed.ts';

export type Type =
  | { kind: 'con'; name: string; args: Type[]; adt?: AdtInfo }
  | { kind: 'fn'; params: Type[]; ret: Type }
  | { kind: 'var'; id: number; ref: Type | null }
  /** A type parameter of a generic type declaration (only inside AdtInfo field types). */
  | { kind: 'param'; index: number; name: string }
  | { kind: 'error' };

export interface FieldInfo {
  name: string;
  /** May mention the ADT's type parameters as `param` types. */
  type: Type;
  span: Span;
  /** `where NAME(args)` (docs/guide/09-constraints.md), as written; checked by infer.ts into a validator. */
  constraint?: Expr;
}

/** A checked field constraint: a function of all the constructor's fields returning Bool. */
export interface Validator {
  field: string;
  /** The constraint function's name, for the failure message. */
  constraint: string;
  fn: TypedFn;
}

export interface CtorInfo {
  name: string;
  adt: AdtInfo;
  /** 0-based index among the ADT's constructors; stored as the tag word at run time. */
  tag: number;
  fields: FieldInfo[];
  /** Declared without braces (`Red`): a value by itself. */
  unit: boolean;
  span: Span;
  /** Field constraints in declaration order; construction then yields Result<T, String>. */
  validators: Validator[];
}

export interface AdtInfo {
  name: string;
  typeParams: string[];
  ctors: CtorInfo[];
  /** `type R = { … }`: one constructor named like the type. */
  record: boolean;
  span: Span;
  /** A type the language provides (ConstructionError, docs/guide/09-constraints.md): displayable as a record. */
  builtin?: boolean;
}

/** ConstructionError: its constructors and String fields, in tag order. Construction of a
 *  constrained type produces the first (tag 0) with the fields in this order. */
export const CONSTRUCTION_ERROR_CTORS: readonly { name: string; fields: readonly string[] }[] = [
  { name: 'ConstraintViolation', fields: ['field', 'value', 'constraint', 'message'] },
  { name: 'MissingField', fields: ['field'] },
  { name: 'TypeMismatch', fields: ['field', 'expected', 'actual'] },
  { name: 'ConstraintFunctionError', fields: ['field', 'function', 'error'] },
  { name: 'MultipleConstraintViolations', fields: ['violations'] },
];

export const Int: Type = { kind: 'con', name: 'Int', args: [] };
export const Str: Type = { kind: 'con', name: 'String', args: [] };
export const Bool: Type = { kind: 'con', name: 'Bool', args: [] };
export const Unit: Type = { kind: 'con', name: 'Unit', args: [] };
export const ErrorType: Type = { kind: 'error' };
/** `any` (docs/guide/03-values-and-types.md#any): an explicitly dynamic value; only written, never inferred. */
export const AnyType: Type = { kind: 'con', name: 'any', args: [] };

export function resultType(ok: Type, err: Type): Type {
  return { kind: 'con', name: 'Result', args: [ok, err] };
}
export function listType(elem: Type): Type {
  return { kind: 'con', name: 'List', args: [elem] };
}
/** Iterator<T> (docs/guide/11-lists-and-iteration.md#iterators): produced by range/map/filter, consumed by forEach/fold. */
export function iteratorType(elem: Type): Type {
  return { kind: 'con', name: 'Iterator', args: [elem] };
}
/** Fiber<T> and Channel<T> (docs/guide/16-fibers-and-channels.md): run-time handles, displayed as their number. */
export function fiberType(elem: Type): Type {
  return { kind: 'con', name: 'Fiber', args: [elem] };
}
export function channelType(elem: Type): Type {
  return { kind: 'con', name: 'Channel', args: [elem] };
}
export function fnType(params: Type[], ret: Type): Type {
  return { kind: 'fn', params, ret };
}
export function adtType(adt: AdtInfo, args: Type[]): Type {
  return { kind: 'con', name: adt.name, args, adt };
}

let nextVarId = 1;
export function freshVar(): Type {
  return { kind: 'var', id: nextVarId++, ref: null };
}

/** Follows bound variables to the representative type. */
export function prune(t: Type): Type {
  while (t.kind === 'var' && t.ref !== null) t = t.ref;
  return t;
}

/** Replaces every bound variable by its binding, recursively (a fully resolved copy). */
export function zonk(t: Type): Type {
  t = prune(t);
  switch (t.kind) {
    case 'con':
      return t.args.length === 0 ? t : { ...t, args: t.args.map(zonk) };
    case 'fn':
      return { kind: 'fn', params: t.params.map(zonk), ret: zonk(t.ret) };
    default:
      return t;
  }
}

export function isCon(t: Type, name: string): boolean {
  const p = prune(t);
  return p.kind === 'con' && p.name === name && p.adt === undefined;
}

export function containsError(t: Type): boolean {
  t = prune(t);
  if (t.kind === 'error') return true;
  if (t.kind === 'con') return t.args.some(containsError);
  if (t.kind === 'fn') return t.params.some(containsError) || containsError(t.ret);
  return false;
}

function occurs(v: Type & { kind: 'var' }, t: Type): boolean {
  t = prune(t);
  if (t === v) return true;
  if (t.kind === 'con') return t.args.some((a) => occurs(v, a));
  if (t.kind === 'fn') return t.params.some((a) => occurs(v, a)) || occurs(v, t.ret);
  return false;
}

/** Makes a and b equal by binding variables; false when they cannot be (nothing useful is bound). */
export function unify(a: Type, b: Type): boolean {
  a = prune(a);
  b = prune(b);
  if (a === b) return true;
  if (a.kind === 'error' || b.kind === 'error') return true;
  if (a.kind === 'var') {
    if (occurs(a, b)) return false;
    a.ref = b;
    return true;
  }
  if (b.kind === 'var') return unify(b, a);
  if (a.kind === 'con' && b.kind === 'con') {
    if (a.name !== b.name || a.adt !== b.adt || a.args.length !== b.args.length) return false;
    let ok = true;
    for (let i = 0; i < a.args.length; i++) ok = unify(a.args[i]!, b.args[i]!) && ok;
    return ok;
  }
  if (a.kind === 'fn' && b.kind === 'fn') {
    if (a.params.length !== b.params.length) return false;
    let ok = true;
    for (let i = 0; i < a.params.length; i++) ok = unify(a.params[i]!, b.params[i]!) && ok;
    return unify(a.ret, b.ret) && ok;
  }
  return false;
}

/** Substitutes type parameters (`param` types) by the given arguments. */
export function instantiate(t: Type, args: Type[]): Type {
  switch (t.kind) {
    case 'param':
      return args[t.index] ?? ErrorType;
    case 'con':
      return t.args.length === 0 ? t : { ...t, args: t.args.map((a) => instantiate(a, args)) };
    case 'fn':
      return { kind: 'fn', params: t.params.map((p) => instantiate(p, args)), ret: instantiate(t.ret, args) };
    default:
      return t;
  }
}

/** The type as a person writes it: `Int`, `Result<Int, String>`, `(String) -> Bool`. */
export function showType(t: Type): string {
  t = prune(t);
  switch (t.kind) {
    case 'con':
      return t.args.length === 0 ? t.name : `${t.name}<${t.args.map(showType).join(', ')}>`;
    case 'fn': {
      const ret = showType(t.ret);
      return `(${t.params.map(showType).join(', ')}) -> ${ret}`;
    }
    case 'var':
      return '_';
    case 'param':
      return t.name;
    case 'error':
      return '{error}';
  }
}
