// Pipeline position: the very beginning. A SourceFile holds the text of one `.osp` file and maps
// offsets to line/column for the diagnostics renderer. Every later pass refers to source text only
// through Span values.
//
// Offsets are indices into the JavaScript string (UTF-16 code units). Outside string literals and
// comments Osprey source is ASCII (docs/guide/02-lexical-structure.md#newlines-and-statement-boundaries), so for every token boundary the index equals
// the UTF-8 byte offset; columns are reported in characters (code points), as editors count them.

export interface Span {
  /** 0-based offset of the first character. */
  start: number;
  /** 0-based offset one past the last character (end >= start). */
  end: number;
}

export function span(start: number, end: number): Span {
  return { start, end };
}

/** The smallest span covering both. */
export function joinSpans(a: Span, b: Span): Span {
  return { start: Math.min(a.start, b.start), end: Math.max(a.end, b.end) };
}

export class SourceFile {
  /** Offsets at which each line starts; lineStarts[0] = 0. */
  private readonly lineStarts: number[];

  constructor(
    /** The path as the user wrote it (shown in diagnostics). */
    readonly path: string,
    readonly text: string,
  ) {
    this.lineStarts = [0];
    for (let i = 0; i < text.length; i++) {
      if (text.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
    }
  }

  /** 1-based line and column of an offset. */
  lineCol(offset: number): { line: number; col: number } {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    const lineStart = this.lineStarts[lo]!;
    const col = [...this.text.slice(lineStart, offset)].length + 1;
    return { line: lo + 1, col };
  }

  /** The text of a 1-based line without its line terminator. */
  lineText(line: number): string {
    const start = this.lineStarts[line - 1] ?? this.text.length;
    const next = this.lineStarts[line];
    let end = next === undefined ? this.text.length : next - 1;
    if (end > start && this.text.charCodeAt(end - 1) === 13) end--;
    return this.text.slice(start, end);
  }

  get lineCount(): number {
    return this.lineStarts.length;
  }

  /** `file:line:col` of an offset, the location format of diagnostics and run-time failures. */
  location(offset: number): string {
    const { line, col } = this.lineCol(offset);
    return `${this.path}:${line}:${col}`;
  }
}

/** One file of a multi-file program and the import that first loaded it. */
export interface SourceEntry {
  file: SourceFile;
  /** Offset of the file's first character in the program-wide offset space. */
  base: number;
  /** The `import` statement (program-wide span) that loaded the file; null for the main file. */
  importedAt: Span | null;
}

/**
 * Every file of a program in one offset space: file k's text occupies [base_k, base_k + length]
 * (the end offset included, for end-of-file spans), and the next file starts one past it. Spans
 * stay plain numbers through every pass; the renderer and run-time locations ask this map which
 * file an offset belongs to. A single-file program has base 0, so its spans are file offsets.
 */
export class SourceMap {
  private readonly entries: SourceEntry[] = [];

  constructor(main: SourceFile) {
    this.entries.push({ file: main, base: 0, importedAt: null });
  }

  get main(): SourceFile {
    return this.entries[0]!.file;
  }

  /** The path of the main file (what a single-file caller knows as `file.path`). */
  get path(): string {
    return this.main.path;
  }

  get files(): readonly SourceEntry[] {
    return this.entries;
  }

  /** Adds a file and returns its base offset. */
  add(file: SourceFile, importedAt: Span): number {
    const last = this.entries[this.entries.length - 1]!;
    const base = last.base + last.file.text.length + 1;
    this.entries.push({ file, base, importedAt });
    return base;
  }

  /** The entry holding a program-wide offset. */
  entryAt(offset: number): SourceEntry {
    let lo = 0;
    let hi = this.entries.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.entries[mid]!.base <= offset) lo = mid;
      else hi = mid - 1;
    }
    return this.entries[lo]!;
  }

  /** `file:line:col` of a program-wide offset. */
  location(offset: number): string {
    const e = this.entryAt(offset);
    return e.file.location(offset - e.base);
  }
}
