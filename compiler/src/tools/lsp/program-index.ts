// Pipeline position: after the checker, for editor tools only. Turns the compiler's typed tree
// (semantics/typed.ts, the checker's own name resolution and inferred types) and untyped AST into
// position-indexed facts: which name occurrence refers to which declaration, where each name is
// visible, and the type of every expression. The language server (server.ts) answers hover,
// definition, rename and completion from this index; it never resolves a name itself.

import { showType, prune, type AdtInfo, type CtorInfo, type Type } from '../../semantics/types.ts';
import type { TExpr, TPattern, TStmt, TypedFn, TypedProgram, VarSymbol } from '../../semantics/typed.ts';
import type { Ident, Program } from '../../syntax/ast.ts';
import type { Span } from '../../source.ts';
import { refinedCtor } from '../../semantics/scope.ts';

/** What a name occurrence refers to. */
export type Target =
  | { kind: 'var'; symbol: VarSymbol }
  | { kind: 'ctor'; ctor: CtorInfo }
  | { kind: 'type'; adt: AdtInfo }
  | { kind: 'field'; ctor: CtorInfo; index: number }
  | { kind: 'builtin'; name: string };

export interface Occurrence {
  /** The name's own characters (for `r.field`, only `field`). */
  span: Span;
  target: Target;
  /** True at the declaration itself. */
  declaration: boolean;
}

/** A name and the part of the file where it can be used. */
export interface VisibleSymbol {
  symbol: VarSymbol;
  region: Span;
}

export interface ProgramIndex {
  occurrences: Occurrence[];
  visible: VisibleSymbol[];
  /** Every expression with its final type, for hover outside names. */
  expressions: { span: Span; type: Type }[];
  /** Match expressions, to offer the constructors of the scrutinee's type in patterns. */
  matches: { span: Span; scrutinee: Type }[];
  adts: AdtInfo[];
  /** Documentation comments of declarations, by the offset of the declared name. */
  docs: Map<number, string[]>;
  /** Binders of `Ctor v` patterns, by symbol id: the constructor, whose fields `v.` can use. */
  refined: Map<number, CtorInfo>;
  /** Functions and lets of each module, which outside it are written `Module.name`. */
  members: Map<string, VarSymbol[]>;
}

/** Builds the index of one checked (possibly erroneous) program. */
export function indexProgram(text: string, typed: TypedProgram, ast: Program): ProgramIndex {
  const index: ProgramIndex = { occurrences: [], visible: [], expressions: [], matches: [], adts: typed.adts, docs: new Map(), refined: new Map(), members: new Map() };
  // Open-ended, so that an index of an earlier version still answers at the end of a text that
  // has grown since (the server falls back to it while the current text does not parse).
  const whole: Span = { start: 0, end: Number.MAX_SAFE_INTEGER };
  const seenDecl = new Set<VarSymbol>();

  /** Records `span` when the source there spells `name` (filters synthesized nodes). */
  const occurrence = (span: Span, name: string, target: Target, declaration: boolean) => {
    if (span.end - span.start !== name.length || text.slice(span.start, span.end) !== name) return;
    // A use of something an imported file declares (its function, constructor, field) has its
    // declaration outside this document: not an occurrence the editor can navigate here.
    const declared = declaration ? null : declarationSpan(target);
    if (declared && declared.start > text.length) return;
    index.occurrences.push({ span, target, declaration });
  };
  const declare = (symbol: VarSymbol, region: Span) => {
    if (seenDecl.has(symbol)) return;
    seenDecl.add(symbol);
    // The parameters the checker invents for a built-in used as a value are not in the source.
    if (text.slice(symbol.span.start, symbol.span.end) !== symbol.name && !symbol.name.includes('.')) return;
    const ctor = refinedCtor.get(symbol);
    if (ctor) index.refined.set(symbol.id, ctor);
    occurrence(symbol.span, symbol.name, { kind: 'var', symbol }, true);
    index.visible.push({ symbol, region });
  };

  const fn = (f: TypedFn, region: Span) => {
    if (f.symbol) declare(f.symbol, region);
    for (const p of f.params) declare(p, f.span);
    expr(f.body, f.span);
  };

  const stmts = (list: TStmt[], block: Span) => {
    for (const s of list) {
      switch (s.kind) {
        case 'let':
          expr(s.value, block);
          // A local is visible after its statement, to the end of its block.
          declare(s.symbol, { start: s.span.end, end: block.end });
          break;
        case 'expr':
          expr(s.expr, block);
          break;
        case 'fns':
          // Nested functions are hoisted within their block.
          for (const f of s.fns) if (f.symbol) declare(f.symbol, block);
          for (const f of s.fns) fn(f, block);
          break;
      }
    }
  };

  const pattern = (p: TPattern, arm: Span) => {
    switch (p.kind) {
      case 'bind':
        declare(p.symbol, arm);
        break;
      case 'typed':
        declare(p.bind, arm);
        break;
      case 'ctor':
        occurrence({ start: p.span.start, end: p.span.start + p.ctor.name.length }, p.ctor.name, { kind: 'ctor', ctor: p.ctor }, false);
        for (const a of p.args) pattern(a, arm);
        if (p.bind) declare(p.bind, arm);
        break;
      case 'result':
        pattern(p.payload, arm);
        break;
      default:
        break;
    }
  };

  const expr = (e: TExpr, region: Span): void => {
    index.expressions.push({ span: e.span, type: e.type });
    switch (e.kind) {
      case 'var': {
        const s = e.symbol;
        // `Module.fn` spans the whole path; the member name is its tail.
        const name = s.name.includes('.') ? s.name.slice(s.name.lastIndexOf('.') + 1) : s.name;
        const span = { start: e.span.end - name.length, end: e.span.end };
        if (span.start !== s.span.start) occurrence(span, name, { kind: 'var', symbol: s }, false);
        return;
      }
      case 'builtin':
      case 'runtime': {
        const name = e.kind === 'builtin' ? e.name : (e.fn.osprey?.name ?? '');
        occurrence({ start: e.span.start, end: e.span.start + name.length }, name, { kind: 'builtin', name }, false);
        break;
      }
      case 'construct':
        occurrence({ start: e.span.start, end: e.span.start + e.ctor.name.length }, e.ctor.name, { kind: 'ctor', ctor: e.ctor }, false);
        break;
      case 'field': {
        const f = e.ctor.fields[e.index];
        if (f) occurrence({ start: e.span.end - f.name.length, end: e.span.end }, f.name, { kind: 'field', ctor: e.ctor, index: e.index }, false);
        break;
      }
      case 'lambda':
        fn(e.fn, e.span);
        return;
      case 'block':
        stmts(e.stmts, e.span);
        if (e.result) expr(e.result, e.span);
        return;
      case 'match':
        index.matches.push({ span: e.span, scrutinee: e.scrutinee.type });
        expr(e.scrutinee, region);
        for (const arm of e.arms) {
          pattern(arm.pattern, arm.span);
          expr(arm.body, arm.span);
        }
        return;
      default:
        break;
    }
    for (const c of children(e)) expr(c, region);
  };

  // Top-level functions and externs are visible everywhere, a module's members (unqualified)
  // inside the module; top-level lets after their statement, to the end of the file or module.
  const modules = ast.stmts.filter((s) => s.kind === 'module');
  const moduleAt = (offset: number) => modules.find((m) => m.span.start <= offset && offset < m.span.end);
  const member = (module: string, symbol: VarSymbol) => {
    const list = index.members.get(module) ?? [];
    list.push(symbol);
    index.members.set(module, list);
  };
  // Functions, lets and types of imported files have spans past this document's text (one
  // offset space for the whole program, source.ts SourceMap): they are not occurrences here.
  const inText = (sp: Span) => sp.start <= text.length;
  for (const f of typed.functions) {
    if (!f.symbol || !inText(f.span)) continue;
    const m = moduleAt(f.symbol.span.start);
    if (m) member(m.name.name, f.symbol);
    declare(f.symbol, m ? m.span : whole);
  }
  for (const x of typed.externs) declare(x, whole);
  for (const s of typed.topLevel) {
    if (!inText(s.span)) continue;
    // The checker hands a module's lets on as one block statement spanning the module.
    const m = moduleAt(s.span.start);
    if (m && s.kind === 'expr' && s.expr.kind === 'block') {
      for (const x of s.expr.stmts) if (x.kind === 'let') member(m.name.name, x.symbol);
    }
    stmts([s], whole);
  }
  for (const f of typed.functions) if (inText(f.span)) fn(f, whole);

  for (const adt of typed.adts) {
    if (!inText(adt.span)) continue;
    occurrence(adt.span, adt.name, { kind: 'type', adt }, true);
    for (const c of adt.ctors) {
      if (!(adt.record && c.span === adt.span)) occurrence(c.span, c.name, { kind: 'ctor', ctor: c }, true);
      c.fields.forEach((f, i) => occurrence(f.span, f.name, { kind: 'field', ctor: c, index: i }, true));
    }
  }
  const adtsByName = new Map(typed.adts.map((a) => [a.name, a]));
  const ctorsByName = new Map(typed.adts.flatMap((a) => a.ctors.map((c) => [c.name, c] as const)));
  forEachAstNode(ast, (node) => {
    if (node.kind === 'named' && isIdent(node.name) && Array.isArray(node.args)) {
      // A type written in the source (annotation, field type, type argument).
      const adt = adtsByName.get(node.name.name);
      if (adt) occurrence(node.name.span, adt.name, { kind: 'type', adt }, false);
    } else if (node.kind === 'construct' && isIdent(node.name) && Array.isArray(node.fields)) {
      // Field names of a construction `Point { x: 1 }` (the typed tree keeps only their order).
      const ctor = ctorsByName.get(node.name.name);
      if (!ctor) return;
      for (const f of node.fields as { name: Ident }[]) {
        const i = ctor.fields.findIndex((d) => d.name === f.name.name);
        if (i >= 0) occurrence(f.name.span, f.name.name, { kind: 'field', ctor, index: i }, false);
      }
    }
  });
  docComments(ast, index.docs);
  index.occurrences.sort((a, b) => a.span.start - b.span.start);
  return index;
}

function children(e: TExpr): TExpr[] {
  switch (e.kind) {
    case 'interp':
      return e.parts.filter((p): p is TExpr => typeof p !== 'string');
    case 'call':
      return [e.callee, ...e.args.map((a) => a.value)];
    case 'builtin':
    case 'runtime':
      return e.args.map((a) => a.value);
    case 'binary':
      return [e.left, e.right];
    case 'unary':
      return [e.operand];
    case 'construct':
      return e.fields.map((f) => f.value);
    case 'update':
      return [e.base, ...e.fields.map((f) => f.value)];
    case 'field':
      return [e.object];
    case 'result':
      return e.payload ? [e.payload] : [];
    case 'list':
      return e.elements;
    case 'box':
      return [e.value];
    case 'index':
      return [e.list];
    default:
      return [];
  }
}

/** Visits every object node of the untyped tree (nodes are plain data: a generic walk suffices). */
function forEachAstNode(node: unknown, visit: (n: Record<string, unknown>) => void): void {
  if (Array.isArray(node)) {
    for (const n of node) forEachAstNode(n, visit);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const o = node as Record<string, unknown>;
  if (typeof o.kind === 'string') visit(o);
  for (const v of Object.values(o)) if (typeof v === 'object') forEachAstNode(v, visit);
}

function isIdent(x: unknown): x is Ident {
  return typeof x === 'object' && x !== null && typeof (x as Ident).name === 'string' && typeof (x as Ident).span === 'object';
}

function docComments(ast: Program, out: Map<number, string[]>): void {
  const walk = (stmts: Program['stmts']) => {
    for (const s of stmts) {
      if ((s.kind === 'fn' || s.kind === 'extern' || s.kind === 'type') && s.doc.length > 0) out.set(s.name.span.start, s.doc);
      if (s.kind === 'module') walk(s.body);
    }
  };
  walk(ast.stmts);
}

/** The occurrence under an offset (a cursor just after a name counts as on it). */
export function occurrenceAt(index: ProgramIndex, offset: number): Occurrence | undefined {
  let best: Occurrence | undefined;
  for (const o of index.occurrences) {
    if (o.span.start <= offset && offset <= o.span.end) {
      if (!best || o.span.start <= offset && offset < o.span.end) best = o;
    }
  }
  return best;
}

/** Whether two targets are the same declaration. */
export function sameTarget(a: Target, b: Target): boolean {
  // A record type and its one constructor share their name and declaration: one target.
  const recordOf = (t: Target) => (t.kind === 'type' && t.adt.record ? t.adt : t.kind === 'ctor' && t.ctor.adt.record && t.ctor.name === t.ctor.adt.name ? t.ctor.adt : null);
  const ra = recordOf(a);
  if (ra !== null) return ra === recordOf(b);
  if (a.kind !== b.kind) return false;
  switch (a.kind) {
    case 'var':
      return a.symbol === (b as typeof a).symbol;
    case 'ctor':
      return a.ctor === (b as typeof a).ctor;
    case 'type':
      return a.adt === (b as typeof a).adt;
    case 'field': {
      const f = b as typeof a;
      return a.ctor.fields[a.index] === f.ctor.fields[f.index];
    }
    case 'builtin':
      return a.name === (b as typeof a).name;
  }
}

/** The declaration span of a target (none for a built-in). */
export function declarationSpan(t: Target): Span | null {
  switch (t.kind) {
    case 'var':
      return t.symbol.span;
    case 'ctor':
      return t.ctor.span;
    case 'type':
      return t.adt.span;
    case 'field':
      return t.ctor.fields[t.index]?.span ?? null;
    case 'builtin':
      return null;
  }
}

/** Names visible at an offset, innermost declaration first for each name. */
export function visibleAt(index: ProgramIndex, offset: number): VarSymbol[] {
  const byName = new Map<string, VisibleSymbol>();
  for (const v of index.visible) {
    if (v.region.start > offset || offset > v.region.end) continue;
    if (v.symbol.name.includes('.')) continue;
    const prev = byName.get(v.symbol.name);
    const size = (s: Span) => s.end - s.start;
    if (!prev || size(v.region) < size(prev.region)) byName.set(v.symbol.name, v);
  }
  return [...byName.values()].map((v) => v.symbol);
}

/** The smallest expression containing an offset. */
export function expressionAt(index: ProgramIndex, offset: number): { span: Span; type: Type } | undefined {
  let best: { span: Span; type: Type } | undefined;
  for (const e of index.expressions) {
    if (e.span.start <= offset && offset < e.span.end && (!best || e.span.end - e.span.start < best.span.end - best.span.start)) best = e;
  }
  return best;
}

/** A declaration as a person writes it: `fn add(a: Int, b: Int) -> Int`, `let x: Int`. */
export function describeSymbol(s: VarSymbol): string {
  const t = prune(s.type);
  if (s.kind === 'fn' && s.fn) {
    const params = s.fn.params.map((p) => `${p.name}: ${showType(p.type)}`).join(', ');
    return `fn ${s.fn.name}(${params}) -> ${showType(s.fn.returnType)}`;
  }
  if (s.kind === 'extern' && s.extern) {
    const params = s.extern.params.map((p) => `${p.name}: ${showType(p.type)}`).join(', ');
    return `extern fn ${s.name}(${params}) -> ${showType(s.extern.ret)}`;
  }
  return `${s.kind === 'param' ? '(parameter) ' : 'let '}${s.name}: ${showType(t)}`;
}

export function describeCtor(c: CtorInfo): string {
  const params = c.adt.typeParams.length ? `<${c.adt.typeParams.join(', ')}>` : '';
  if (c.unit) return `${c.name}  (constructor of ${c.adt.name}${params})`;
  return `${c.name} { ${c.fields.map((f) => `${f.name}: ${showType(f.type)}`).join(', ')} }  (constructor of ${c.adt.name}${params})`;
}

export function describeAdt(adt: AdtInfo): string {
  const params = adt.typeParams.length ? `<${adt.typeParams.join(', ')}>` : '';
  if (adt.record) {
    const c = adt.ctors[0];
    return `type ${adt.name}${params} = { ${(c?.fields ?? []).map((f) => `${f.name}: ${showType(f.type)}`).join(', ')} }`;
  }
  return `type ${adt.name}${params} = ${adt.ctors.map((c) => (c.unit ? c.name : `${c.name} { ${c.fields.map((f) => `${f.name}: ${showType(f.type)}`).join(', ')} }`)).join(' | ')}`;
}
