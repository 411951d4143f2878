// Pipeline position: shared by the checker's modules (infer.ts, patterns.ts). Lexical scopes of
// resolved names, and small helpers for wording diagnostics.

import type { CtorInfo } from './types.ts';
import type { VarSymbol } from './typed.ts';

export class Scope {
  readonly vars = new Map<string, VarSymbol>();
  /** Names a rejected pattern meant to bind: they resolve to nothing, and their uses are not
   *  reported again (the pattern's error already explains them). */
  readonly silenced = new Set<string>();
  constructor(
    readonly parent: Scope | null,
    /** True for the program's top-level scope: its lets are globals. */
    readonly topLevel = false,
  ) {}
  /** On a file's or module's scope: the modules declared in it (members `NAME.x` from outside too). */
  readonly modules = new Map<string, Scope>();
  /** On a file's scope: the files it imports, by the name they are used under (visible inside only). */
  readonly imports = new Map<string, Scope>();
  lookup(name: string): VarSymbol | undefined {
    if (this.silenced.has(name)) return undefined;
    return this.vars.get(name) ?? this.parent?.lookup(name);
  }
  /** The module or imported file a name refers to here, searching outwards. */
  findModule(name: string): Scope | undefined {
    return this.modules.get(name) ?? this.imports.get(name) ?? this.parent?.findModule(name);
  }
  isSilenced(name: string): boolean {
    if (this.silenced.has(name)) return true;
    return !this.vars.has(name) && (this.parent?.isSilenced(name) ?? false);
  }
  *names(): Iterable<string> {
    yield* this.vars.keys();
    if (this.parent) yield* this.parent.names();
  }
}

/** A binder introduced by `Ctor v` keeps the constructor it matched, so `v.field` works (docs/guide/08-unions-and-pattern-matching.md#pattern-forms). */
export const refinedCtor = new WeakMap<VarSymbol, CtorInfo>();

export function article(word: string): string {
  return /^[AEIOaeio]/.test(word) ? 'an' : 'a';
}

export function withArticle(word: string): string {
  return `${article(word)} ${word}`;
}
