// Pipeline position: after infer.ts, on the typed tree. Checks every match for exhaustiveness and
// unreachable arms (docs/guide/08-unions-and-pattern-matching.md#exhaustiveness) with the usefulness algorithm over pattern matrices
// (Maranget, "Warnings for pattern matching"), so nested constructor patterns are handled by the
// same general machinery as flat ones. Bool, Result and declared unions have finite constructor
// sets; Int and String need a catch-all.

import { Code, type DiagnosticBag } from '../diagnostics/diagnostic.ts';
import { forEachExpr } from './walk.ts';
import type { TPattern, TypedProgram } from './typed.ts';
import { instantiate, prune, showType, type Type } from './types.ts';

/** A pattern reduced to what matters for coverage. */
type SPat = { kind: 'wild' } | { kind: 'ctor'; key: string; args: SPat[] };

interface CtorSig {
  key: string;
  /** Field types, for specialising the column. */
  fields: Type[];
}

const WILD: SPat = { kind: 'wild' };

function simplify(p: TPattern): SPat {
  switch (p.kind) {
    case 'wild':
    case 'bind':
      return WILD;
    case 'int':
      return { kind: 'ctor', key: `int:${p.value}`, args: [] };
    case 'string':
      return { kind: 'ctor', key: `str:${JSON.stringify(p.value)}`, args: [] };
    case 'bool':
      return { kind: 'ctor', key: String(p.value), args: [] };
    case 'ctor':
      return { kind: 'ctor', key: p.ctor.name, args: p.args.map(simplify) };
    case 'result':
      return { kind: 'ctor', key: p.tag === 0 ? 'Success' : 'Error', args: [simplify(p.payload)] };
    case 'typed':
      // Run-time types of an `any` value: an open set, so a final catch-all is required.
      return { kind: 'ctor', key: `type:${showType(p.target)}`, args: [] };
  }
}

/** Signatures already built, per type object: a 3,000-constructor union is asked thousands of times. */
const signatures = new WeakMap<Type, { list: CtorSig[]; byKey: Map<string, CtorSig> } | null>();

/** The complete constructor set of a type, or null when it is infinite (Int, String, …). */
function signature(t: Type): CtorSig[] | null {
  return cachedSignature(t)?.list ?? null;
}

function cachedSignature(t: Type): { list: CtorSig[]; byKey: Map<string, CtorSig> } | null {
  const p = prune(t);
  if (signatures.has(p)) return signatures.get(p)!;
  const list = buildSignature(p);
  const entry = list ? { list, byKey: new Map(list.map((c) => [c.key, c])) } : null;
  signatures.set(p, entry);
  return entry;
}

function buildSignature(t: Type): CtorSig[] | null {
  t = prune(t);
  if (t.kind !== 'con') return null;
  if (t.adt) return t.adt.ctors.map((c) => ({ key: c.name, fields: c.fields.map((f) => instantiate(f.type, t.args)) }));
  if (t.name === 'Bool') return [{ key: 'true', fields: [] }, { key: 'false', fields: [] }];
  if (t.name === 'Result') return [{ key: 'Success', fields: [t.args[0]!] }, { key: 'Error', fields: [t.args[1]!] }];
  return null;
}

function arityOf(key: string, t: Type, rows: SPat[][]): Type[] {
  const sig = cachedSignature(t)?.byKey.get(key);
  if (sig) return sig.fields;
  for (const r of rows) {
    const h = r[0]!;
    if (h.kind === 'ctor' && h.key === key) return h.args.map(() => t);
  }
  return [];
}

function specialize(rows: SPat[][], key: string, arity: number): SPat[][] {
  const out: SPat[][] = [];
  for (const r of rows) {
    const h = r[0]!;
    if (h.kind === 'wild') out.push([...Array<SPat>(arity).fill(WILD), ...r.slice(1)]);
    else if (h.key === key) out.push([...h.args, ...r.slice(1)]);
  }
  return out;
}

function defaultRows(rows: SPat[][]): SPat[][] {
  return rows.filter((r) => r[0]!.kind === 'wild').map((r) => r.slice(1));
}

/** Is there a value matched by `v` and by no row of `rows`? */
function useful(rows: SPat[][], v: SPat[], types: Type[]): boolean {
  if (v.length === 0) return rows.length === 0;
  const h = v[0]!;
  const t = types[0]!;
  if (h.kind === 'ctor') {
    const fields = arityOf(h.key, t, rows);
    return useful(specialize(rows, h.key, h.args.length), [...h.args, ...v.slice(1)], [...fields, ...types.slice(1)]);
  }
  const sig = signature(t);
  const used = new Set(rows.map((r) => r[0]!).filter((p): p is SPat & { kind: 'ctor' } => p.kind === 'ctor').map((p) => p.key));
  if (sig && sig.every((c) => used.has(c.key))) {
    return sig.some((c) =>
      useful(specialize(rows, c.key, c.fields.length), [...c.fields.map(() => WILD), ...v.slice(1)], [...c.fields, ...types.slice(1)]));
  }
  return useful(defaultRows(rows), v.slice(1), types.slice(1));
}

/**
 * A value vector of `types` matched by no row (Maranget's witness construction), or null when
 * the rows cover every value: the pattern to name in "missing patterns".
 */
function witness(rows: SPat[][], types: Type[]): SPat[] | null {
  if (types.length === 0) return rows.length === 0 ? [] : null;
  const t = types[0]!;
  const sig = signature(t);
  const used = new Set(rows.map((r) => r[0]!).filter((p): p is SPat & { kind: 'ctor' } => p.kind === 'ctor').map((p) => p.key));
  if (sig && sig.every((c) => used.has(c.key))) {
    for (const c of sig) {
      const w = witness(specialize(rows, c.key, c.fields.length), [...c.fields, ...types.slice(1)]);
      if (w) return [{ kind: 'ctor', key: c.key, args: w.slice(0, c.fields.length) }, ...w.slice(c.fields.length)];
    }
    return null;
  }
  const rest = witness(defaultRows(rows), types.slice(1));
  if (!rest) return null;
  // Some constructor is never tested: name it (with `_` fields); none tested at all reads as `_`.
  const absent = sig && used.size > 0 ? sig.find((c) => !used.has(c.key)) : undefined;
  return [absent ? { kind: 'ctor', key: absent.key, args: absent.fields.map(() => WILD) } : WILD, ...rest];
}

/** A missing pattern as the user would write it: `W(None, _)`, `Success(false)`, `Red`, `_`. */
function showPattern(p: SPat): string {
  if (p.kind === 'wild' || p.key.startsWith('type:')) return '_';
  if (p.key.startsWith('int:')) return p.key.slice(4);
  if (p.key.startsWith('str:')) return p.key.slice(4);
  return p.args.length ? `${p.key}(${p.args.map(showPattern).join(', ')})` : p.key;
}

/** Top-level constructors (or `_`) that no arm covers; a constructor only partly covered is
 *  named with the missing sub-patterns (`W(None, _)`). */
function missingCases(rows: SPat[][], t: Type): string[] {
  const sig = signature(t);
  if (!sig) return useful(rows, [WILD], [t]) ? ['_'] : [];
  const missing: string[] = [];
  for (const c of sig) {
    const v = [{ kind: 'ctor', key: c.key, args: c.fields.map(() => WILD) } as SPat];
    if (!useful(rows, v, [t])) continue;
    const w = witness(specialize(rows, c.key, c.fields.length), c.fields);
    const partial = w !== null && w.some((x) => x.kind !== 'wild');
    missing.push(partial ? showPattern({ kind: 'ctor', key: c.key, args: w }) : c.key);
  }
  return missing;
}

export function checkExhaustiveness(program: TypedProgram, diags: DiagnosticBag): void {
  // A pattern the checker rejected became `_`: coverage of its match would only be follow-on noise.
  const earlier = diags.items.map((d) => d.span.start);
  const patternHadError = (p: TPattern) => earlier.some((at) => at >= p.span.start && at < p.span.end);
  forEachExpr(program, (e) => {
    if (e.kind !== 'match') return;
    const t = prune(e.scrutinee.type);
    if (t.kind === 'error') return;
    if (e.arms.some((a) => patternHadError(a.pattern))) return;
    const rows: SPat[][] = [];
    // A catch-all before other arms is reported once, at the catch-all (docs/guide/08-unions-and-pattern-matching.md#exhaustiveness;
    // the old compiler's text `wildcard pattern must be the last arm`); an exact repeat is a duplicate arm.
    let catchAll = -1;
    let catchAllReported = false;
    for (const [i, arm] of e.arms.entries()) {
      const row = [simplify(arm.pattern)];
      if (!useful(rows, row, [t])) {
        const catcher = catchAll >= 0 ? e.arms[catchAll]! : undefined;
        if (catcher) {
          if (!catchAllReported) {
            diags.error(Code.WildcardNotLast, catcher.pattern.span, 'wildcard pattern must be the last arm', {
              label: 'this arm matches every value',
              labels: [{ span: arm.pattern.span, message: 'so this arm can never be reached' }],
              notes: ['hint: move the catch-all arm to the end of the match'],
            });
          }
          catchAllReported = true;
          rows.push(row);
          continue;
        }
        const same = JSON.stringify(row);
        const dup = rows.findIndex((r) => JSON.stringify(r) === same);
        if (dup >= 0) {
          diags.error(Code.DuplicateArm, arm.pattern.span, 'duplicate match arm', {
            label: 'this pattern is already matched',
            labels: [{ span: e.arms[dup]!.pattern.span, message: 'first matched here' }],
            notes: ['hint: remove the repeated arm'],
          });
          rows.push(row);
          continue;
        }
        diags.error(Code.UnreachableArm, arm.pattern.span, 'unreachable match arm', {
          label: 'earlier arms already match every value this pattern matches',
          notes: ['hint: remove this arm, or move it before the arm that covers it'],
        });
      }
      if (catchAll < 0 && row[0]!.kind === 'wild') catchAll = i;
      rows.push(row);
    }
    const missing = missingCases(rows, t);
    if (missing.length === 0) return;
    const sorted = [...missing].sort();
    const infinite = missing.includes('_');
    diags.error(Code.NonExhaustive, e.scrutinee.span, `match expression not exhaustive: missing patterns: [${sorted.join(' ')}]`, {
      label: `this ${showType(t)} is not matched by every arm`,
      notes: infinite
        ? [`hint: ${/^[AEIOaeio]/.test(showType(t)) ? 'an' : 'a'} ${showType(t)} has too many values to list: add a catch-all arm \`_ => …\``]
        : [`hint: add ${sorted.length === 1 ? 'an arm' : 'arms'} for ${sorted.join(', ')}, or a catch-all arm \`_ => …\``],
    });
  });
}
