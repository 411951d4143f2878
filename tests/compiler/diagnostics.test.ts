/**
 * Diagnostics snapshots: each tests/compiler/diagnostics/NAME.osp must fail to compile, and its
 * rendered diagnostics must equal NAME.stderr byte for byte. Review changes as diffs; regenerate
 * every snapshot with one command:
 *
 *   UPDATE_SNAPSHOTS=1 npx vitest run tests/compiler
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSource, renderErrors } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';
import { listFiles } from './helpers.ts';

const DIR = join(import.meta.dirname, 'diagnostics');
const UPDATE = process.env.UPDATE_SNAPSHOTS === '1';

describe('diagnostics snapshots', () => {
  for (const file of listFiles(DIR, '.osp')) {
    const name = basename(file, '.osp');
    it(name, () => {
      const r = checkSource(new SourceFile(`${name}.osp`, readFileSync(file, 'utf8')));
      expect(r.typed, 'the program must fail to compile').toBeUndefined();
      const rendered = renderErrors(r);
      const snap = join(DIR, `${name}.stderr`);
      if (UPDATE || !existsSync(snap)) writeFileSync(snap, rendered);
      expect(rendered).toBe(readFileSync(snap, 'utf8'));
    });
  }
});
