// Pipeline position: the `osprey fmt` command (main.ts loads it on demand). Reads files, runs the
// formatter (format.ts) and writes results back; returns the exit status for main.ts:
// 0 done (or, with --check, nothing to change), 1 a file would change (--check) or does not parse,
// 2 usage error (unknown flag, missing file).

import { readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderDiagnostics } from '../../diagnostics/render.ts';
import { SourceFile } from '../../source.ts';
import { formatText } from './format.ts';

export const FMT_USAGE = `Usage: osprey fmt [--check] FILE|DIR|- …
  Rewrites each file in the canonical layout (a directory: every .osp file below it).
  --check   change nothing; list the files that are not formatted and exit 1 if there are any
  -         read a program from stdin and write it formatted to stdout
`;

export async function fmtMain(argv: string[]): Promise<number> {
  let check = false;
  const inputs: string[] = [];
  for (const a of argv) {
    if (a === '--check') check = true;
    else if (a === '-h' || a === '--help') {
      process.stdout.write(FMT_USAGE);
      return 0;
    } else if (a.startsWith('-') && a !== '-') {
      process.stderr.write(`osprey fmt: unknown option: ${a}\n${FMT_USAGE}`);
      return 2;
    } else inputs.push(a);
  }
  if (inputs.length === 0) {
    process.stderr.write(`osprey fmt: no input (give files, directories or - for stdin)\n${FMT_USAGE}`);
    return 2;
  }

  let status = 0;
  for (const input of inputs) {
    if (input === '-') {
      const text = readFileSync(0, 'utf8');
      const r = formatText(text);
      if (!r.ok) {
        process.stderr.write(renderDiagnostics(r.diagnostics, new SourceFile('<stdin>', text)));
        status = 1;
      } else if (check) {
        if (r.changed) {
          process.stdout.write('<stdin>\n');
          status = 1;
        }
      } else process.stdout.write(r.text);
      continue;
    }
    let files: string[];
    try {
      files = statSync(input).isDirectory() ? ospFilesUnder(input) : [input];
    } catch {
      process.stderr.write(`osprey fmt: cannot read '${input}': no such file or directory\n`);
      return 2;
    }
    for (const path of files) {
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (e) {
        process.stderr.write(`osprey fmt: cannot read '${path}': ${systemMessage(e)}\n`);
        status = 1;
        continue;
      }
      const r = formatText(text);
      if (!r.ok) {
        process.stderr.write(renderDiagnostics(r.diagnostics, new SourceFile(path, text)));
        status = 1;
        continue;
      }
      if (!r.changed) continue;
      if (check) {
        process.stdout.write(`${path}\n`);
        status = 1;
        continue;
      }
      // Written beside the file and renamed over it, so an interrupted run never leaves half a file.
      const tmp = `${path}.osprey-fmt-${process.pid}.tmp`;
      try {
        writeFileSync(tmp, r.text, { mode: statSync(path).mode });
        renameSync(tmp, path);
      } catch (e) {
        rmSync(tmp, { force: true });
        process.stderr.write(`osprey fmt: cannot write '${path}': ${systemMessage(e)}\n`);
        status = 1;
      }
    }
  }
  return status;
}

function ospFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...ospFilesUnder(p));
    else if (entry.isFile() && entry.name.endsWith('.osp')) out.push(p);
  }
  return out;
}

/** `EACCES: permission denied, open '…'` → `permission denied`. */
function systemMessage(e: unknown): string {
  if (e instanceof Error) {
    const m = /^[A-Z]+: ([^,]+)/.exec(e.message);
    return m ? m[1]! : e.message;
  }
  return String(e);
}
