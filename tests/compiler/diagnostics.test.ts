/**
 * Diagnostics snapshots: each tests/compiler/diagnostics/NAME.osp must fail to compile, and its
 * rendered diagnostics must equal NAME.stderr byte for byte. Review changes as diffs; regenerate
 * every snapshot with one command:
 *
 *   UPDATE_SNAPSHOTS=1 npx vitest run tests/compiler      (or: npm run test:update-snapshots)
 *
 * A first line `// flags: --sandbox --no-fs …` compiles the program with those security flags (docs/guide/18-security-flags.md).
 * A program named `warn_*.osp` must compile: its snapshot holds the warnings it gets.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSource, renderErrors, type Capability } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';
import { listFiles } from './helpers.ts';

const DIR = join(import.meta.dirname, 'diagnostics');
const UPDATE = process.env.UPDATE_SNAPSHOTS === '1';

const FLAGS: Record<string, Capability[]> = {
  '--sandbox': ['http', 'websocket', 'fs', 'ffi', 'process'],
  '--no-http': ['http'],
  '--no-websocket': ['websocket'],
  '--no-fs': ['fs'],
  '--no-ffi': ['ffi'],
};

function flagsOf(text: string): Set<Capability> {
  const m = /^\/\/ flags:(.*)$/m.exec(text.split('\n')[0] ?? '');
  const flags = m ? m[1]!.trim().split(/\s+/) : [];
  return new Set(flags.flatMap((f) => FLAGS[f] ?? []));
}

describe('diagnostics snapshots', () => {
  for (const file of listFiles(DIR, '.osp')) {
    const name = basename(file, '.osp');
    it(name, () => {
      const text = readFileSync(file, 'utf8');
      const r = checkSource(new SourceFile(`${name}.osp`, text), { disabled: flagsOf(text) });
      if (name.startsWith('warn_')) {
        expect(r.typed, 'a warnings-only program must compile').toBeDefined();
        expect(r.diagnostics.length, 'it must get at least one warning').toBeGreaterThan(0);
      } else expect(r.typed, 'the program must fail to compile').toBeUndefined();
      const rendered = renderErrors(r);
      const snap = join(DIR, `${name}.stderr`);
      if (UPDATE || !existsSync(snap)) writeFileSync(snap, rendered);
      expect(rendered).toBe(readFileSync(snap, 'utf8'));
    });
  }
});
