#!/usr/bin/env tsx
/**
 * Bundles the compiler (compiler/src/cli/osprey.ts and everything it imports, runtime-bindings
 * included) into build/compiler/osprey.mjs, and the compile server (compiler/src/cli/server.ts)
 * into build/compiler/server.mjs sharing its chunks, so `osprey` starts without transpiling TypeScript
 * (bin/osprey.mjs runs the bundle when it is newer than every source, tsx otherwise).
 *
 *   tsx scripts/bundle-compiler.ts             always rebuild (npm install runs this)
 *   tsx scripts/bundle-compiler.ts --if-stale  rebuild only when a source is newer (npm test)
 *
 * ESM for Node 20; llvm-bindings (a native addon), ws, vscode-languageserver (CommonJS) and node:
 * built-ins stay external and resolve from node_modules. `osprey abi-check`, `osprey fmt` and
 * `osprey lsp` are separate chunks under build/compiler/chunks/, each loaded only by its command.
 * The linked source maps point stack traces into the .ts sources
 * (bin/osprey.mjs enables source maps when OSPREY_SOURCE_MAPS=1). Code that locates files uses PROJECT_ROOT
 * (runtime-bindings/toolchain.ts), which knows that import.meta.url is build/compiler/ or
 * build/compiler/chunks/ here: keep the output layout in step with it.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { BUNDLE, BUNDLE_DIR, ROOT, SERVER_BUNDLE, bundleIsFresh } from './compiler-bundle.mjs';

if (process.argv.includes('--if-stale') && bundleIsFresh()) process.exit(0);
const { build } = await import('esbuild');

// The bundle's mtime becomes this moment, so a source edited while bundling leaves it stale.
const started = new Date();
const result = await build({
  absWorkingDir: ROOT,
  entryPoints: [
    { in: 'compiler/src/cli/osprey.ts', out: 'osprey' },
    { in: 'compiler/src/cli/server.ts', out: 'server' },
  ],
  outdir: BUNDLE_DIR,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // vscode-languageserver is CommonJS that requires Node built-ins at run time: loaded from node_modules.
  external: ['llvm-bindings', 'ws', 'vscode-languageserver', 'vscode-languageserver-textdocument'],
  sourcemap: 'linked',
  sourcesContent: false,
  write: false,
  logLevel: 'warning',
});

// Chunks (content-hashed names) first, the entry last and by rename, so a concurrently starting
// `osprey` never loads a half-written bundle or one whose chunks are missing.
const entryFiles = new Set([BUNDLE, `${BUNDLE}.map`, SERVER_BUNDLE, `${SERVER_BUNDLE}.map`]);
const written = new Set<string>();
for (const f of [...result.outputFiles].sort((a, b) => Number(entryFiles.has(a.path)) - Number(entryFiles.has(b.path)))) {
  mkdirSync(dirname(f.path), { recursive: true });
  const tmp = `${f.path}.${process.pid}.tmp`;
  writeFileSync(tmp, f.contents);
  renameSync(tmp, f.path);
  written.add(f.path);
}
const chunks = join(BUNDLE_DIR, 'chunks');
if (existsSync(chunks)) {
  for (const name of readdirSync(chunks)) {
    const p = join(chunks, name);
    if (!written.has(p)) rmSync(p, { force: true });
  }
}
utimesSync(BUNDLE, started, started);
// The identity stamp the native launcher reads (compiler-bundle.mjs stampedIdentity), so the first
// `osprey` after a build does not have to start Node to write it.
(await import('./build-cache.mjs')).identity(true);

const bytes = result.outputFiles.filter((f) => f.path.endsWith('.mjs')).reduce((n, f) => n + f.contents.length, 0);
console.error(`bundled the compiler into ${relative(ROOT, BUNDLE)} (${written.size} files, ${(bytes / 1024).toFixed(0)} KiB of JavaScript)`);
