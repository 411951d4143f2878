/**
 * Reads the examples of the language guide (docs/guide/*.md) and the headings links point at.
 *
 * The guide's conventions for fenced blocks, which tests/docs/guide.test.ts enforces:
 *
 *   ```osprey                      a whole program; the next fenced block must be ```output (its
 *                                  stdout, exactly), optionally preceded by ```stdin (its input)
 *   ```output exit=3               … and the exit status when it is not 0
 *   ```osprey check                a program that must compile (front end and LLVM emission) but is
 *                                  not run: it needs a network peer, waits for input, or runs forever
 *   ```osprey error E0301          a program that must be rejected with that diagnostic code
 *   ... flags=--sandbox,--no-fs    (after any of the above) the security flags to compile with
 *
 * Any other fence (```sh, ```text) is prose and is not checked.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../compiler/helpers.ts';

export const GUIDE_DIR = join(ROOT, 'docs', 'guide');

export interface Fence {
  /** The info string after the backticks, e.g. `osprey error E0301`. */
  info: string;
  body: string;
  /** 1-based line of the opening fence. */
  line: number;
}

export type ExampleMode = { kind: 'run'; stdout: string; stdin: string; exit: number } | { kind: 'check' } | { kind: 'error'; code: string };

export interface Example {
  file: string;
  line: number;
  source: string;
  mode: ExampleMode;
  flags: string[];
}

export function guideFiles(): string[] {
  return readdirSync(GUIDE_DIR)
    .filter((n) => n.endsWith('.md'))
    .sort()
    .map((n) => join(GUIDE_DIR, n));
}

/** Every fenced block of a Markdown text, in order. */
export function fences(text: string): Fence[] {
  const lines = text.split('\n');
  const out: Fence[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== '```'; i++) body.push(lines[i]!);
    if (i >= lines.length) throw new Error(`unterminated fence opened at line ${start + 1}`);
    out.push({ info: open[1]!.trim(), body: body.length ? body.join('\n') + '\n' : '', line: start + 1 });
  }
  return out;
}

/** The examples of one guide file; a malformed example is an Error naming its line. */
export function examples(file: string): Example[] {
  const fs = fences(readFileSync(file, 'utf8'));
  const out: Example[] = [];
  for (let i = 0; i < fs.length; i++) {
    const f = fs[i]!;
    const words = f.info.split(/\s+/);
    if (words[0] !== 'osprey') continue;
    const flagWord = words.find((w) => w.startsWith('flags='));
    const flags = flagWord ? flagWord.slice('flags='.length).split(',').filter(Boolean) : [];
    const rest = words.slice(1).filter((w) => !w.startsWith('flags='));
    const where = `${file}:${f.line}`;
    if (rest[0] === 'check' && rest.length === 1) {
      out.push({ file, line: f.line, source: f.body, mode: { kind: 'check' }, flags });
    } else if (rest[0] === 'error' && rest.length === 2 && /^E\d{4}$/.test(rest[1]!)) {
      out.push({ file, line: f.line, source: f.body, mode: { kind: 'error', code: rest[1]! }, flags });
    } else if (rest.length === 0) {
      let next = fs[i + 1];
      let stdin = '';
      if (next?.info === 'stdin') {
        stdin = next.body;
        i++;
        next = fs[i + 1];
      }
      const out_ = next && /^output(?:\s+exit=(\d+))?$/.exec(next.info);
      if (!out_) throw new Error(`${where}: an \`\`\`osprey block must be followed by \`\`\`output, or be marked check or error CODE`);
      i++;
      out.push({ file, line: f.line, source: f.body, mode: { kind: 'run', stdout: next!.body, stdin, exit: Number(out_[1] ?? '0') }, flags });
    } else {
      throw new Error(`${where}: unknown example annotation '${f.info}'`);
    }
  }
  return out;
}

/** The anchors GitHub gives the headings of a Markdown text (lower case, punctuation dropped,
 *  spaces to hyphens, repeats numbered -1, -2, …). Headings inside fences do not count. */
export function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let inFence = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) inFence = !inFence;
    const h = !inFence && /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const base = h[1]!
      .toLowerCase()
      .replace(/`/g, '')
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}
