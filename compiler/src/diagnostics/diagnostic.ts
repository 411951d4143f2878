// Pipeline position: shared by every pass. Errors are data: a pass pushes Diagnostic values into a
// DiagnosticBag and never prints. diagnostics/render.ts is the one place that turns them into text.
// Error codes are listed once in `Code` so a grep for a code finds both its definition and its uses.

import type { Span } from '../source.ts';

export type Severity = 'error' | 'warning';

export interface Label {
  span: Span;
  message: string;
}

export interface Diagnostic {
  code: Code;
  severity: Severity;
  /** The primary location (carets are drawn under it). */
  span: Span;
  message: string;
  /** Text drawn under the carets of the primary span (may be empty). */
  primaryLabel?: string;
  /** Secondary locations. */
  labels: Label[];
  /** `= hint:` / `= note:` lines, already prefixed with their kind. */
  notes: string[];
}

/** Every error code the compiler emits. Ranges: E00xx lexical, E01xx syntax, E02xx names,
 *  E03xx types and calls, E04xx patterns and match, E05xx declarations, E06xx imports; W0xxx are warnings. */
export const Code = {
  // lexical
  UnexpectedChar: 'E0001',
  UnterminatedString: 'E0002',
  BadEscape: 'E0003',
  BadNumber: 'E0004',
  UnterminatedInterpolation: 'E0005',
  // syntax
  Syntax: 'E0100',
  // names
  UnknownName: 'E0200',
  UnknownFunction: 'E0201',
  UnknownType: 'E0202',
  UnknownConstructor: 'E0203',
  UnknownField: 'E0204',
  BuiltinRedefinition: 'E0205',
  DuplicateDefinition: 'E0206',
  UseBeforeDeclaration: 'E0207',
  // types and calls
  TypeMismatch: 'E0300',
  ArgumentStyle: 'E0301',
  ArgumentType: 'E0302',
  ArgumentCount: 'E0303',
  MissingArgument: 'E0304',
  UnknownArgument: 'E0305',
  NotCallable: 'E0306',
  NoDisplay: 'E0307',
  BadOperand: 'E0308',
  FieldAccess: 'E0309',
  MissingField: 'E0310',
  TypeArity: 'E0311',
  Unsupported: 'E0312',
  MainSignature: 'E0313',
  // patterns and match
  NonExhaustive: 'E0400',
  UnreachableArm: 'E0401',
  InvalidPattern: 'E0402',
  DuplicateArm: 'E0403',
  WildcardNotLast: 'E0404',
  // declarations
  MissingReturnType: 'E0500',
  MissingParamType: 'E0501',
  ImplicitAny: 'E0502',
  ImportNotFound: 'E0600',
  ImportCycle: 'E0601',
  ImportMisplaced: 'E0602',
  // warnings (never stop compilation)
  UnusedVariable: 'W0001',
  UnusedParameter: 'W0002',
  UnusedResult: 'W0003',
} as const;
export type Code = (typeof Code)[keyof typeof Code];

export function makeDiagnostic(
  code: Code,
  span: Span,
  message: string,
  extra: { label?: string; labels?: Label[]; notes?: string[] } = {},
): Diagnostic {
  return {
    code,
    severity: 'error',
    span,
    message,
    primaryLabel: extra.label,
    labels: extra.labels ?? [],
    notes: extra.notes ?? [],
  };
}

/** Collects the diagnostics of one compilation, in the order they were found. */
export class DiagnosticBag {
  readonly items: Diagnostic[] = [];

  add(d: Diagnostic): void {
    this.items.push(d);
  }

  error(code: Code, span: Span, message: string, extra: { label?: string; labels?: Label[]; notes?: string[] } = {}): void {
    this.add(makeDiagnostic(code, span, message, extra));
  }

  warning(code: Code, span: Span, message: string, extra: { label?: string; labels?: Label[]; notes?: string[] } = {}): void {
    this.add({ ...makeDiagnostic(code, span, message, extra), severity: 'warning' });
  }

  get hasErrors(): boolean {
    return this.items.some((d) => d.severity === 'error');
  }

  /** Number of entries; used to roll back diagnostics of a speculative parse. */
  mark(): number {
    return this.items.length;
  }

  rollback(mark: number): void {
    this.items.length = mark;
  }
}

/** Thrown for states that mean the compiler itself is wrong; main.ts reports it and exits 70. */
export class InternalCompilerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InternalCompilerError';
  }
}

export function ice(message: string): never {
  throw new InternalCompilerError(message);
}

/** The end of a switch over a closed union: a new member is a type error here, and a value the
 *  types say cannot exist is an internal compiler error rather than a silent fall-through. */
export function assertNever(value: never, what: string): never {
  throw new InternalCompilerError(`unhandled ${what}: ${JSON.stringify((value as { kind?: unknown }).kind ?? value)}`);
}

/** Edit distance for did-you-mean hints: insertions, deletions, substitutions and swaps of two
 *  adjacent characters (`rnage` → `range`) each cost 1 (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  let prev2: number[] = [];
  let prev: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur: number[] = [i];
    for (let j = 1; j <= b.length; j++) {
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2]! + 1);
      cur.push(d);
    }
    prev2 = prev;
    prev = cur;
  }
  return prev[b.length]!;
}

/** The closest candidate within a distance proportional to the name's length, if any. */
export function closestName(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  const limit = Math.max(1, Math.floor(name.length / 3));
  for (const c of candidates) {
    if (c === name) continue;
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d <= limit && d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  return best;
}
