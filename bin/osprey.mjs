#!/usr/bin/env node
// The `osprey` command. The compiler is TypeScript, which Node 20 cannot run directly. It runs
// from the bundle that `npm install` writes (build/compiler/osprey.mjs, scripts/bundle-compiler.ts)
// when that is newer than every compiler source, so start-up transpiles nothing; otherwise (a
// source edited since, or OSPREY_NO_BUNDLE=1) through tsx, so edits take effect immediately.
//
// `osprey run` of a program built before with the same compiler, runtime and flags starts the
// cached executable straight away (scripts/build-cache.mjs), without loading the compiler. The
// native launcher (bin/osprey, built from bin/launcher/osprey.c at `npm install`) does the same
// without starting Node, and sends other builds to a resident compile server.
import { bundleIsFresh } from '../scripts/compiler-bundle.mjs';

const noBundle = process.env.OSPREY_NO_BUNDLE;
const useBundle = (noBundle === undefined || noBundle === '' || noBundle === '0') && bundleIsFresh();

const argv = process.argv.slice(2);
if (useBundle && (argv[0] === 'build' || argv[0] === 'check')) {
  // Refreshes build/identity when the bundle or the runtime changed, so the native launcher can
  // vouch for the compiler again (it sends builds to the compile server only then).
  (await import('../scripts/build-cache.mjs')).identity(true);
}
if (argv.includes('run') || argv.includes('--run')) {
  const cache = await import('../scripts/build-cache.mjs');
  const request = cache.cacheEnabled() ? cache.parseRunCommand(argv) : null;
  if (request) {
    // The compiler (main.ts) stores under the same identity after a miss.
    globalThis.ospreyIdentity = cache.identity(useBundle);
    const { readFileSync } = await import('node:fs');
    let source = null;
    try {
      source = readFileSync(request.file);
    } catch {
      // Unreadable: the compiler reports it.
    }
    const exe = source === null ? null : cache.lookup(cache.cacheKey({ sourcePath: request.file, source, flags: request.flags, identity: globalThis.ospreyIdentity }));
    if (exe) {
      if (request.verbose) process.stderr.write(`osprey: cache hit, running ${exe}\n`);
      try {
        process.exit(await cache.runExecutable(exe, request.programArgs));
      } catch {
        // Evicted between the lookup and the start: compile it again below.
      }
    }
  }
}

if (useBundle) {
  // OSPREY_SOURCE_MAPS=1: stack traces of a compiler crash point into the .ts sources, as under
  // tsx. Not by default: Node then reads and parses every chunk's map at load, about 15 ms of a
  // hello-world build's 0.2 s of CPU.
  if (process.env.OSPREY_SOURCE_MAPS === '1') process.setSourceMapsEnabled(true);
  await import('../build/compiler/osprey.mjs');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../compiler/src/cli/osprey.ts');
}
