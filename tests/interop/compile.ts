/**
 * Compiles Osprey source text with the `osprey` command line, exactly as a user would, into a
 * temporary directory that the caller removes.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const OSPREY_BIN = fileURLToPath(new URL('../../bin/osprey.mjs', import.meta.url));

export interface Workspace {
  dir: string;
  /** Writes NAME.osp and builds it; resolves with the executable's path. */
  build(name: string, source: string): Promise<string>;
  dispose(): void;
}

export function workspace(): Workspace {
  const dir = mkdtempSync(join(tmpdir(), 'osprey-interop-'));
  return {
    dir,
    async build(name, source) {
      const src = join(dir, `${name}.osp`);
      const exe = join(dir, name);
      writeFileSync(src, source);
      try {
        await run(process.execPath, [OSPREY_BIN, 'build', src, '-o', exe], { timeout: 60_000 });
      } catch (e) {
        const err = e as { stderr?: string; stdout?: string; message: string };
        throw new Error(`osprey build ${name}.osp failed:\n${err.stderr ?? ''}${err.stdout ?? ''}${err.message}`);
      }
      return exe;
    },
    dispose() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
