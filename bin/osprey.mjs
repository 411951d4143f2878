#!/usr/bin/env node
// The `osprey` command. The compiler is TypeScript, which Node 20 cannot run directly. It runs
// from the bundle that `npm install` writes (build/compiler/osprey.mjs, scripts/bundle-compiler.ts)
// when that is newer than every compiler source, so start-up transpiles nothing; otherwise (a
// source edited since, or OSPREY_NO_BUNDLE=1) through tsx, so edits take effect immediately.
import { bundleIsFresh } from '../scripts/compiler-bundle.mjs';

const noBundle = process.env.OSPREY_NO_BUNDLE;
if ((noBundle === undefined || noBundle === '' || noBundle === '0') && bundleIsFresh()) {
  // Stack traces of internal compiler errors point into the .ts sources, as under tsx.
  process.setSourceMapsEnabled(true);
  await import('../build/compiler/osprey.mjs');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../compiler/src/main.ts');
}
