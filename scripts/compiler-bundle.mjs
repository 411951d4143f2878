// Where the bundled compiler lives and whether it is up to date. Plain JavaScript because
// bin/osprey.mjs uses it before anything can load TypeScript; scripts/bundle-compiler.ts writes
// the bundle. Not itself bundled, so import.meta.url is this file's.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BUNDLE_DIR = join(ROOT, 'build', 'compiler');
export const BUNDLE = join(BUNDLE_DIR, 'osprey.mjs');

/** What the bundle is built from: every .ts file (and every directory, so a deleted or renamed
 *  file counts) under these directories, plus these single files. */
export const SOURCE_DIRS = [join(ROOT, 'compiler', 'src'), join(ROOT, 'runtime-bindings'), join(ROOT, 'tools', 'abi-check')];
export const SOURCE_FILES = [join(ROOT, 'scripts', 'bundle-compiler.ts'), join(ROOT, 'scripts', 'build-cache.mjs'), join(ROOT, 'tsconfig.json')];

/** True when some source was modified at or after `since` (ms since the epoch). */
function changedSince(dir, since) {
  if (statSync(dir).mtimeMs >= since) return true;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (changedSince(p, since)) return true;
    } else if (e.name.endsWith('.ts') && statSync(p).mtimeMs >= since) {
      return true;
    }
  }
  return false;
}

/**
 * Whether build/compiler/osprey.mjs exists and is newer than every source it is built from. The
 * bundle's mtime is set to the moment its build started, so an edit made during a build makes
 * it stale. A walk of about 50 entries: well under a millisecond when the directories are cached.
 */
export function bundleIsFresh() {
  let built;
  try {
    built = statSync(BUNDLE).mtimeMs;
  } catch {
    return false;
  }
  try {
    if (SOURCE_FILES.some((f) => statSync(f).mtimeMs >= built)) return false;
    return !SOURCE_DIRS.some((d) => changedSince(d, built));
  } catch {
    return false;
  }
}

function addTree(h, dir, keep) {
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) addTree(h, p, keep);
    else if (keep(e.name)) h.update(p).update('\0').update(readFileSync(p)).update('\0');
  }
}

/**
 * What identifies the compiler that runs, for the build cache (scripts/build-cache.mjs): the
 * bytes of the bundle when it is used, else of every source it would be built from.
 */
export function compilerIdentity(usesBundle) {
  const h = createHash('sha256');
  if (usesBundle) {
    h.update('bundle\0');
    addTree(h, BUNDLE_DIR, (name) => name.endsWith('.mjs'));
  } else {
    h.update('sources\0');
    for (const d of SOURCE_DIRS) addTree(h, d, (name) => name.endsWith('.ts'));
    for (const f of SOURCE_FILES) h.update(readFileSync(f));
  }
  return h.digest('hex');
}
