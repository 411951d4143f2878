// Pipeline position: the end of a failed compilation. The one renderer of Diagnostic data,
// rustc/Elm style:
//
//   error[E0302]: this argument is a String, but `websocketSend` needs an Int for `wsID`
//     ┌─ chat.osp:12:31
//   12│   let r = websocketSend(wsID: "7", message: "hi")
//     │                               ^^^ String
//     = hint: ...

import { SourceFile, type SourceMap, type Span } from '../source.ts';
import type { Diagnostic } from './diagnostic.ts';

/** Source lines longer than this many characters are shown as a window around the span. */
const MAX_LINE = 160;
/** Characters of context kept before (and at least after) the span in such a window. */
const CONTEXT = 40;

/**
 * Renders one diagnostic. With a multi-file program's SourceMap the diagnostic is drawn in the file
 * its primary span belongs to; labels in another file become notes with their location, and the
 * chain of imports that led to the file follows as `imported from FILE:LINE:COL` notes.
 */
export function renderDiagnostic(d: Diagnostic, sources: SourceFile | SourceMap): string {
  if (sources instanceof SourceFile) return renderInFile(d, sources);
  const entry = sources.entryAt(d.span.start);
  const local = (s: Span): Span => ({ start: s.start - entry.base, end: s.end - entry.base });
  const inThisFile = (s: Span): boolean => sources.entryAt(s.start) === entry;
  const labels = d.labels.filter((l) => inThisFile(l.span)).map((l) => ({ ...l, span: local(l.span) }));
  const elsewhere = d.labels.filter((l) => !inThisFile(l.span)).map((l) => `note: ${l.message}: ${sources.location(l.span.start)}`);
  const chain: string[] = [];
  for (let e = entry; e.importedAt !== null; e = sources.entryAt(e.importedAt.start)) {
    chain.push(`note: imported from ${sources.location(e.importedAt.start)}`);
  }
  return renderInFile({ ...d, span: local(d.span), labels, notes: [...d.notes, ...elsewhere, ...chain] }, entry.file);
}

function renderInFile(d: Diagnostic, file: SourceFile): string {
  const out: string[] = [];
  out.push(`${d.severity}[${d.code}]: ${d.message}`);
  const start = file.lineCol(d.span.start);
  const lines = [start.line, ...d.labels.map((l) => file.lineCol(l.span.start).line)];
  const gutter = String(Math.max(...lines)).length;
  const pad = ' '.repeat(gutter);
  out.push(`${pad} ┌─ ${file.path}:${start.line}:${start.col}`);
  // Source order, as a reader scans the file; spans on one line share the printed source line.
  const all = [{ span: d.span, text: d.primaryLabel }, ...d.labels.map((l) => ({ span: l.span, text: l.message as string | undefined }))];
  all.sort((a, b) => a.span.start - b.span.start);
  let lastLine = -1;
  let lastShown = '';
  for (const s of all) {
    const a = file.lineCol(s.span.start);
    const b = file.lineCol(Math.max(s.span.start, s.span.end));
    const chars = [...file.lineText(a.line)];
    // A span running past the end of its first line is underlined to the end of that line.
    const endCol = b.line === a.line ? b.col : chars.length + 1;
    let width = Math.max(1, endCol - a.col);
    // A very long line (generated code, a minified literal) is shown as a window around the span.
    let from = 0;
    let to = chars.length;
    if (chars.length > MAX_LINE) {
      from = Math.max(0, a.col - 1 - CONTEXT);
      to = Math.min(chars.length, Math.max(from + MAX_LINE, a.col - 1 + Math.min(width, MAX_LINE) + CONTEXT));
      width = Math.min(width, to - (a.col - 1) + 1);
    }
    const lead = from > 0 ? ['…'] : [];
    const shown = [...lead, ...chars.slice(from, to), ...(to < chars.length ? ['…'] : [])].join('');
    const prefix = [...lead, ...chars.slice(from, a.col - 1)].map((c) => (c === '\t' ? '\t' : ' ')).join('');
    if (a.line !== lastLine || shown !== lastShown) out.push(`${String(a.line).padStart(gutter)}│ ${shown}`.trimEnd());
    lastLine = a.line;
    lastShown = shown;
    out.push(`${pad}│ ${prefix}${'^'.repeat(width)}${s.text ? ' ' + s.text : ''}`);
  }
  for (const n of d.notes) out.push(`${pad} = ${n}`);
  return out.join('\n') + '\n';
}

export function renderDiagnostics(ds: readonly Diagnostic[], file: SourceFile | SourceMap): string {
  const body = ds.map((d) => renderDiagnostic(d, file)).join('\n');
  const errors = ds.filter((d) => d.severity === 'error').length;
  const warnings = ds.length - errors;
  if (errors === 0) return warnings === 0 ? body : `${body}\nwarning: ${warnings === 1 ? '1 warning' : `${warnings} warnings`} emitted\n`;
  return `${body}\n${errors === 1 ? 'error: could not compile due to 1 previous error' : `error: could not compile due to ${errors} previous errors`}\n`;
}
