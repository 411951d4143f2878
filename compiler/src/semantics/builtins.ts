// Pipeline position: consulted by the checker (infer.ts). The built-in functions a program can call:
// print/toString/sleep (docs/guide/14-builtins.md) and every runtime-bindings/abi.ts entry with an
// `osprey` binding. Security flags remove built-ins by capability (docs/guide/18-security-flags.md), after which a call is
// simply an undefined function.

import { RUNTIME_FUNCTIONS, type OspreyType, type RuntimeFunction } from '../../../runtime-bindings/abi.ts';
import { adtType, Bool, fnType, freshVar, Int, iteratorType, listType, resultType, Str, Unit, type Type } from './types.ts';
import type { BuiltinName } from './typed.ts';
import { HTTP_METHOD, HTTP_RESPONSE, WEBSOCKET_MESSAGE } from './http-types.ts';

/** 'sandbox' is removed only by --sandbox (fileExists, docs/guide/18-security-flags.md). */
export type Capability = 'websocket' | 'http' | 'fs' | 'process' | 'ffi' | 'sandbox';

export interface BuiltinParam {
  name: string;
  type: Type | 'display';
}

/** A polymorphic built-in's signature, instantiated with fresh type variables at each use. */
export type Scheme = () => { params: Type[]; returns: Type };

export type Builtin =
  | { kind: 'core'; name: BuiltinName; params: BuiltinParam[]; returns: Type; scheme?: Scheme }
  | {
    kind: 'runtime'; name: string; fn: RuntimeFunction; params: { name: string; type: Type }[]; returns: Type;
    /** Further C entry points of the same Osprey name that differ only in the type of one handler
     *  parameter (websocketConnect, websocketServerOnMessage: docs/guide/15-websockets.md); the
     *  checker picks one by the handler argument's type. */
    overloads?: RuntimeBuiltin[];
  };

export type RuntimeBuiltin = Extract<Builtin, { kind: 'runtime' }>;

export function ospreyTypeToType(t: OspreyType): Type {
  switch (t.kind) {
    case 'Int':
      return Int;
    case 'String':
      return Str;
    case 'Bool':
      return Bool;
    case 'Unit':
      return Unit;
    case 'Result':
      return resultType(ospreyTypeToType(t.ok), ospreyTypeToType(t.err));
    case 'Fn':
      return fnType(t.params.map(ospreyTypeToType), ospreyTypeToType(t.ret));
    case 'Adt':
      return adtType(t.name === 'HttpResponse' ? HTTP_RESPONSE : t.name === 'WebSocketMessage' ? WEBSOCKET_MESSAGE : HTTP_METHOD, []);
  }
}

const CORE: Builtin[] = [
  { kind: 'core', name: 'print', params: [{ name: 'value', type: 'display' }], returns: Unit },
  { kind: 'core', name: 'toString', params: [{ name: 'value', type: 'display' }], returns: Str },
  { kind: 'core', name: 'sleep', params: [{ name: 'milliseconds', type: Int }], returns: Unit },
  // Project addition: the command-line arguments after the program name (`osprey run FILE -- ARGS`).
  { kind: 'core', name: 'args', params: [], returns: listType(Str) },
  // Iteration (docs/guide/11-lists-and-iteration.md#iterators): Iterator<T> is lazy and single-pass.
  {
    kind: 'core', name: 'range', params: [{ name: 'start', type: Int }, { name: 'end', type: Int }], returns: iteratorType(Int),
  },
  {
    kind: 'core', name: 'forEach', params: [{ name: 'iterator', type: Unit }, { name: 'function', type: Unit }], returns: Unit,
    scheme: () => {
      const t = freshVar();
      return { params: [iteratorType(t), fnType([t], freshVar())], returns: Unit };
    },
  },
  {
    kind: 'core', name: 'map', params: [{ name: 'iterator', type: Unit }, { name: 'function', type: Unit }], returns: Unit,
    scheme: () => {
      const t = freshVar();
      const u = freshVar();
      return { params: [iteratorType(t), fnType([t], u)], returns: iteratorType(u) };
    },
  },
  {
    kind: 'core', name: 'filter', params: [{ name: 'iterator', type: Unit }, { name: 'predicate', type: Unit }], returns: Unit,
    scheme: () => {
      const t = freshVar();
      return { params: [iteratorType(t), fnType([t], Bool)], returns: iteratorType(t) };
    },
  },
  {
    kind: 'core', name: 'fold', params: [{ name: 'iterator', type: Unit }, { name: 'initial', type: Unit }, { name: 'function', type: Unit }], returns: Unit,
    scheme: () => {
      const t = freshVar();
      const u = freshVar();
      return { params: [iteratorType(t), u, fnType([u, t], u)], returns: u };
    },
  },
];

/** Parameters and result of one use of a built-in (fresh type variables for a polymorphic one). */
export function instantiateBuiltin(b: Builtin): { params: { name: string; type: Type | 'display' }[]; returns: Type } {
  if (b.kind === 'core' && b.scheme) {
    const inst = b.scheme();
    return { params: b.params.map((p, i) => ({ name: p.name, type: inst.params[i]! })), returns: inst.returns };
  }
  return { params: b.params, returns: b.returns };
}

/**
 * Built-ins of the language (docs/guide/17-http.md) that this compiler does not provide yet. Their names are
 * reserved (they cannot be redefined) and a call reports that the function is not supported.
 */
export const UNSUPPORTED_BUILTINS: ReadonlyMap<string, Capability | null> = new Map<string, Capability | null>([]);

/** The built-ins available under the given disabled capabilities. */
export function builtinTable(disabled: ReadonlySet<Capability>): Map<string, Builtin> {
  const table = new Map<string, Builtin>();
  for (const b of CORE) table.set(b.name, b);
  for (const fn of RUNTIME_FUNCTIONS) {
    const o = fn.osprey;
    if (!o) continue;
    if (o.capability && disabled.has(o.capability)) continue;
    const entry: RuntimeBuiltin = {
      kind: 'runtime',
      name: o.name,
      fn,
      params: o.params.map((p) => ({ name: p.name, type: ospreyTypeToType(p.type) })),
      returns: ospreyTypeToType(o.returns),
    };
    const first = table.get(o.name);
    if (first && first.kind === 'runtime') {
      (first.overloads ??= []).push(entry);
      continue;
    }
    table.set(o.name, entry);
  }
  return table;
}

/** Every name a program may not redefine (independent of security flags). */
export function reservedNames(): Set<string> {
  const names = new Set<string>(CORE.map((b) => b.name));
  for (const fn of RUNTIME_FUNCTIONS) if (fn.osprey) names.add(fn.osprey.name);
  for (const n of UNSUPPORTED_BUILTINS.keys()) names.add(n);
  return names;
}

/** Parameter names of older Osprey programs, accepted for named calls of built-ins (docs/guide/14-builtins.md). */
const ARG_ALIASES: ReadonlyMap<string, Readonly<Record<string, string>>> = new Map<string, Record<string, string>>([
  ['contains', { s: 'haystack', sub: 'needle' }],
  ['writeFile', { filename: 'path' }],
  ['readFile', { filename: 'path' }],
  ['awaitProcess', { handle: 'processId' }],
  ['cleanupProcess', { handle: 'processId' }],
]);

/** The documented parameter name for a name written in a named call of built-in `fn`. */
export function canonicalBuiltinArg(fn: string, written: string): string {
  return ARG_ALIASES.get(fn)?.[written] ?? written;
}

/** The old compiler's arity texts for built-ins (docs/guide/14-builtins.md); the corpus checks some verbatim. */
const ARITY_TEXT: ReadonlyMap<string, { format: 'A' | 'B'; detail: string }> = new Map([
  ['print', { format: 'A', detail: '' }],
  ['toString', { format: 'A', detail: '' }],
  ['websocketConnect', { format: 'A', detail: ' (url, message_handler)' }],
  ['websocketSend', { format: 'A', detail: ' (ws_id, message)' }],
  ['websocketClose', { format: 'A', detail: ' (ws_id)' }],
  ['sleep', { format: 'B', detail: ' (milliseconds)' }],
  ['websocketCreateServer', { format: 'B', detail: ' (port, address, path)' }],
  ['websocketServerListen', { format: 'B', detail: ' (server_id)' }],
  ['websocketServerBroadcast', { format: 'B', detail: ' (server_id, message)' }],
  ['websocketStopServer', { format: 'B', detail: ' (server_id)' }],
  ['range', { format: 'B', detail: ' (start, end)' }],
  ['forEach', { format: 'B', detail: ' (iterator, function)' }],
  ['map', { format: 'B', detail: ' (iterator, function)' }],
  ['filter', { format: 'B', detail: ' (iterator, predicate)' }],
  ['fold', { format: 'B', detail: ' (iterator, initial, function)' }],
]);

export function builtinArityMessage(name: string, paramNames: string[], got: number): string {
  const n = paramNames.length;
  const exactly = `${name} expects exactly ${n} argument${n === 1 ? '' : 's'}`;
  const t: { format: 'A' | 'B'; detail: string } = ARITY_TEXT.get(name) ?? { format: 'B', detail: ` (${paramNames.join(', ')})` };
  if (t.format === 'B') return `${exactly}${t.detail}, got ${got}`;
  // websocketClose's first half omits the parenthesis; so do the others of format A (docs/guide/14-builtins.md).
  return `${exactly}, got ${got}: ${exactly}${t.detail}`;
}
