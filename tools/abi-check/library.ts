/**
 * The library under test: what kind it is, which symbols it defines (nm), and how a probe links
 * against it.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { promisify } from 'node:util';
import { RUNTIME_LINK_LIBS } from '../../runtime-bindings/toolchain.ts';

const run = promisify(execFile);

export interface RuntimeLibrary {
  path: string;
  kind: 'static' | 'shared';
  /** Every global symbol the library defines (code or data). */
  defined: Set<string>;
}

export async function inspectLibrary(path: string): Promise<RuntimeLibrary> {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new Error(`runtime library not found: ${abs}`);
  const kind = abs.endsWith('.a') ? 'static' : abs.endsWith('.so') || /\.so\.\d/.test(abs) ? 'shared' : undefined;
  if (kind === undefined) throw new Error(`not a static (.a) or shared (.so) library: ${abs}`);
  // -D reads the dynamic symbol table: what dlsym and the dynamic linker can see.
  const args = kind === 'shared' ? ['-D', '--defined-only', abs] : ['-g', '--defined-only', abs];
  let stdout: string;
  try {
    ({ stdout } = await run('nm', args, { maxBuffer: 64 << 20 }));
  } catch (e) {
    throw new Error(`nm cannot read ${abs}: ${(e as Error).message.split('\n')[0]}`);
  }
  const defined = new Set<string>();
  for (const line of stdout.split('\n')) {
    // "0000000000001139 T osp_print" (archives also print "member.o:" headers)
    const m = /^[0-9a-fA-F]*\s+([A-Za-z])\s+(\S+)$/.exec(line.trim());
    if (m && m[1] !== 'U' && m[1] !== 'w' && m[1] !== 'v') defined.add(m[2]);
  }
  return { path: abs, kind, defined };
}

/** Linker arguments that put the library (and the system libraries the runtime needs) in. */
export function linkArgs(lib: RuntimeLibrary): string[] {
  if (lib.kind === 'shared') return [lib.path, `-Wl,-rpath,${dirname(lib.path)}`, ...RUNTIME_LINK_LIBS];
  return [lib.path, ...RUNTIME_LINK_LIBS];
}
