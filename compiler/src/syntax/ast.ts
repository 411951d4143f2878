// Pipeline position: the parser's output, the checker's input. The untyped syntax tree: names are
// plain strings, nothing is resolved, and every node carries the Span it came from.

import type { Span } from '../source.ts';

export interface Ident {
  name: string;
  span: Span;
}

// ---- types written in source ---------------------------------------------------------------

export type TypeExpr =
  | { kind: 'named'; name: Ident; args: TypeExpr[]; span: Span }
  | { kind: 'fn'; params: TypeExpr[]; ret: TypeExpr; span: Span };

// ---- declarations ----------------------------------------------------------------------------

export interface Param {
  name: Ident;
  type: TypeExpr | null;
  span: Span;
}

export interface FnDecl {
  kind: 'fn';
  name: Ident;
  params: Param[];
  returnType: TypeExpr | null;
  /** `= expr` and `{ … }` bodies both end up here (a block body is a Block expression). */
  body: Expr;
  /** True for `fn f() -> T { … }` (block written without `=`). */
  blockBody: boolean;
  doc: string[];
  span: Span;
}

export interface ExternDecl {
  kind: 'extern';
  name: Ident;
  params: Param[];
  returnType: TypeExpr | null;
  doc: string[];
  span: Span;
}

export interface FieldDecl {
  name: Ident;
  type: TypeExpr;
  /** `where NAME(args)` constraint, parsed but not yet supported by the checker. */
  constraint: Expr | null;
  span: Span;
}

export interface VariantDecl {
  name: Ident;
  /** null for a unit constructor written without braces. */
  fields: FieldDecl[] | null;
  span: Span;
}

export interface TypeDecl {
  kind: 'type';
  name: Ident;
  typeParams: Ident[];
  /** `type R = { … }` (a record: one constructor named like the type). */
  record: FieldDecl[] | null;
  /** `type U = A | B { … }`; also the form an alias takes (`type Id = Int`, one bare variant). */
  variants: VariantDecl[];
  doc: string[];
  span: Span;
}

export interface LetStmt {
  kind: 'let';
  mutable: boolean;
  name: Ident;
  type: TypeExpr | null;
  value: Expr;
  span: Span;
}

export interface ExprStmt {
  kind: 'expr';
  expr: Expr;
  span: Span;
}

export interface ImportStmt {
  kind: 'import';
  path: Ident[];
  span: Span;
}

export interface ModuleDecl {
  kind: 'module';
  name: Ident;
  body: Stmt[];
  span: Span;
}

export type Stmt = FnDecl | ExternDecl | TypeDecl | LetStmt | ExprStmt | ImportStmt | ModuleDecl;

export interface Program {
  stmts: Stmt[];
}

// ---- expressions -----------------------------------------------------------------------------

export interface Arg {
  /** Present for a named argument `name: value`. */
  name: Ident | null;
  value: Expr;
  span: Span;
}

export type InterpPart = { kind: 'text'; value: string; span: Span } | { kind: 'expr'; expr: Expr; span: Span };

export type BinaryOp = '+' | '-' | '*' | '/' | '%' | '==' | '!=' | '<' | '>' | '<=' | '>=' | '&&' | '||';
export type UnaryOp = '-' | '+' | '!';

export interface FieldInit {
  name: Ident;
  value: Expr;
  span: Span;
}

export interface MatchArm {
  pattern: Pattern;
  body: Expr;
  span: Span;
}

export type Expr =
  | { kind: 'int'; value: bigint; span: Span }
  | { kind: 'string'; value: string; span: Span }
  | { kind: 'interp'; parts: InterpPart[]; span: Span }
  | { kind: 'bool'; value: boolean; span: Span }
  | { kind: 'ident'; name: string; span: Span }
  | { kind: 'call'; callee: Expr; args: Arg[]; argsSpan: Span; span: Span }
  | { kind: 'field'; object: Expr; name: Ident; span: Span }
  | { kind: 'binary'; op: BinaryOp; opSpan: Span; left: Expr; right: Expr; span: Span }
  | { kind: 'unary'; op: UnaryOp; operand: Expr; span: Span }
  | { kind: 'pipe'; value: Expr; target: Expr; span: Span }
  | { kind: 'lambda'; params: Param[]; returnType: TypeExpr | null; body: Expr; span: Span }
  | { kind: 'block'; stmts: Stmt[]; span: Span }
  | { kind: 'match'; scrutinee: Expr; arms: MatchArm[]; span: Span }
  /** `Name<T…> { f: e, … }`: construction, or a non-destructive update when Name is a value. */
  | { kind: 'construct'; name: Ident; typeArgs: TypeExpr[]; fields: FieldInit[]; span: Span }
  | { kind: 'list'; elements: Expr[]; span: Span }
  | { kind: 'index'; name: Ident; index: bigint; span: Span }
  // ---- fibers and channels (docs/guide/16-fibers-and-channels.md) ----
  /** `spawn e`: `e` is the whole following expression. */
  | { kind: 'spawn'; body: Expr; span: Span }
  /** `yield` / `yield e`. */
  | { kind: 'yield'; value: Expr | null; span: Span }
  /** `await(f)` / `await f`. */
  | { kind: 'await'; fiber: Expr; span: Span }
  | { kind: 'send'; channel: Expr; value: Expr; span: Span }
  | { kind: 'recv'; channel: Expr; span: Span }
  /** `select { PATTERN => EXPR … }` (arms as in a match). */
  | { kind: 'select'; arms: MatchArm[]; span: Span };

// ---- patterns --------------------------------------------------------------------------------

/** A name bound by a pattern, or `_` (name null). */
export interface Binder {
  name: string | null;
  span: Span;
}

export type Pattern =
  | { kind: 'wildcard'; span: Span }
  | { kind: 'int'; value: bigint; span: Span }
  | { kind: 'string'; value: string; span: Span }
  | { kind: 'bool'; value: boolean; span: Span }
  /** A bare name: a unit constructor when one is in scope, otherwise a catch-all binding. */
  | { kind: 'name'; name: Ident; span: Span }
  /** `Ctor x` / `Ctor _`. */
  | { kind: 'ctorBinder'; ctor: Ident; binder: Binder; span: Span }
  /** `Ctor { a, b, _ }`. */
  | { kind: 'ctorFields'; ctor: Ident; fields: Binder[]; span: Span }
  /** `Ctor(p, q)` (and `Success()`). */
  | { kind: 'ctorArgs'; ctor: Ident; args: Pattern[]; span: Span }
  /** `n: Int` (type-annotation pattern, for `any`). */
  | { kind: 'typed'; name: Ident; type: TypeExpr; span: Span }
  /** `{ a, b }` or `p: { a, b }`. */
  | { kind: 'structural'; name: Ident | null; fields: Binder[]; span: Span };
