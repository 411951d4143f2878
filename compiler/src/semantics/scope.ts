// Pipeline position: shared by the checker's modules (infer.ts, patterns.ts). Lexical scopes of
// resolved names, and small helpers for wording diagnostics.

import type { CtorInfo } from './types.ts';
import type { VarSymbol } from './typed.ts';

export class Scope {
  readonly vars = new Map<string, VarSymbol>();
  constructor(
    readonly parent: Scope | null,
    /** True for the program's top-level scope: its lets are globals. */
    readonly topLevel = false,
  ) {}
  lookup(name: string): VarSymbol | undefined {
    return this.vars.get(name) ?? this.parent?.lookup(name);
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
