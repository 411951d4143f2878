// Pipeline position: shared state of the lowering pass (lower.ts, match.ts): how each symbol is
// reached from the function being lowered, fresh temporaries, and Type → Repr.

import { ice } from '../diagnostics/diagnostic.ts';
import type { VarSymbol } from '../semantics/typed.ts';
import { prune, showType, zonk, type Type } from '../semantics/types.ts';
import type { CExpr, CoreFn, Repr } from './core.ts';

export function reprOf(t: Type): Repr {
  const p = prune(t);
  switch (p.kind) {
    case 'con':
      if (p.adt) return 'ptr';
      switch (p.name) {
        case 'Bool':
          return 'i1';
        case 'String':
          return 'ptr';
        case 'Result':
          return 'result';
        case 'List':
          return 'ptr';
        case 'Iterator':
          return 'closure';
        case 'any':
          return 'ptr';
        case 'Fiber':
        case 'Channel':
          return 'ptr';
        default:
          return 'i64'; // Int, Unit
      }
    case 'fn':
      return 'closure';
    default:
      return 'i64';
  }
}

/** Program-wide lowering state. */
export class LowerState {
  readonly fns: CoreFn[] = [];
  readonly globals = new Map<number, { name: string; repr: Repr }>();
  /** Top-level functions: symbol id → LLVM name. */
  readonly topFns = new Map<number, string>();
  private nextTemp = 1_000_000_000;
  /** Run-time type tags of `any` values, by type (docs/guide/03-values-and-types.md#any). */
  private readonly typeTags = new Map<string, number>([['Int', 1], ['String', 2], ['Bool', 3], ['Unit', 4]]);
  /** The type of each tag handed out by typeTag() beyond the built-in ones. */
  readonly tagTypes = new Map<number, Type>();
  /** Whether some `any` is displayed (then lowerProgram emits the display function). */
  anyDisplayUsed = false;
  private nextName = 1;
  constructor(
    /** `file` for run-time failure locations (`file:line:col`). */
    readonly location: (offset: number) => string,
  ) {}
  /** The run-time tag of a type when boxed as `any`. */
  typeTag(t: Type): number {
    const key = showType(zonk(t));
    let tag = this.typeTags.get(key);
    if (tag === undefined) {
      tag = 16 + this.typeTags.size;
      this.typeTags.set(key, tag);
      this.tagTypes.set(tag, zonk(t));
    }
    return tag;
  }
  temp(): number {
    return this.nextTemp++;
  }
  uniqueSuffix(): number {
    return this.nextName++;
  }
}

/** Per-function lowering context. */
export class FnContext {
  /** symbol id → how to read it here (a local or an environment slot). */
  readonly access = new Map<number, CExpr>();
  /** Members of the function group being lowered (incl. itself): symbol id → LLVM name. */
  readonly group = new Map<number, string>();
  loops = false;
  constructor(
    readonly state: LowerState,
    /** LLVM name of the function being lowered. */
    readonly name: string,
    readonly hasEnv: boolean,
  ) {}

  /** The value of a symbol as seen from this function. */
  read(sym: VarSymbol): CExpr {
    const member = this.group.get(sym.id);
    if (member !== undefined) return { k: 'mkclosure', fn: member, env: this.envExpr(), repr: 'closure' };
    const a = this.access.get(sym.id);
    if (a) return a;
    const g = this.state.globals.get(sym.id);
    if (g) return { k: 'global', name: g.name, repr: g.repr };
    const top = this.state.topFns.get(sym.id);
    if (top !== undefined) return { k: 'mkclosure', fn: top, env: null, repr: 'closure' };
    return ice(`lowering: symbol '${sym.name}' (#${sym.id}) is not reachable from ${this.name}`);
  }

  envExpr(): CExpr | null {
    return this.hasEnv ? { k: 'env', repr: 'ptr' } : null;
  }

  bindLocal(sym: VarSymbol): CExpr {
    const e: CExpr = { k: 'local', id: sym.id, repr: reprOf(sym.type) };
    this.access.set(sym.id, e);
    return e;
  }
}
