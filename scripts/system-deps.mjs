#!/usr/bin/env node
// Runs as npm's preinstall hook, before any npm dependency exists, so it is plain Node.
// Ensures the Debian packages the toolchain, the runtime and the test peers need are present:
// installs the missing ones when run as root, otherwise prints the exact apt-get line and fails.
import { execFileSync, spawnSync } from 'node:child_process';

const REQUIRED = [
  ['clang-14', 'one-step compile, ABI oracle (clang-14 -S -emit-llvm), libFuzzer'],
  ['llvm-14', 'opt-14 and llc-14 for the bitcode pipeline'],
  ['llvm-14-dev', 'headers and libraries llvm-bindings builds against'],
  ['libclang-rt-14-dev', 'sanitizer and libFuzzer runtimes for clang-14'],
  ['libtsan2', "ThreadSanitizer runtime of gcc's -fsanitize=thread: the runtime's tsan build and its C tests (npm run test:tsan)"],
  ['cmake', 'builds the llvm-bindings native addon'],
  ['g++', 'builds the llvm-bindings native addon'],
  ['binutils', 'nm, ar and objcopy: abi-check reads a library\'s symbols; its tests rebuild runtime archives with faults; ld.gold links programs; the module-graph test reads the runtime\'s objects'],
  ['ccache', 'makes llvm-bindings rebuilds take seconds'],
  ['libssl-dev', 'OpenSSL: SHA-1 for the handshake, RAND_bytes for keys and masks, TLS'],
  ['libhiredis-dev', 'hiredis: the RESP protocol of the cluster bus to Redis (websocketServerUseCluster)'],
  ['redis-server', 'real Redis 7 for the multi-node cluster tests (tests/cluster) and npm run bench:cluster'],
  ['libgc-dev', 'Boehm garbage collector for Osprey heap values'],
  ['zlib1g-dev', 'llvm-bindings links zlib'],
  ['python3-websockets', 'strict RFC 6455 peer used by the tests'],
  ['openssl', 'openssl command line: throwaway test CA and certificates for the wss:// tests'],
  ['chromium', 'real browser client for tests/browser and the interop matrix (driven by playwright-core)'],
  ['curl', 'independent HTTP client for the HTTP server tests (tests/http)'],
  ['wrk', 'HTTP load generator for npm run bench:http'],
  ['golang-go', 'Go goroutines and channels: the peer of the fiber benchmarks (npm run bench:fibers)'],
];

function installed(pkg) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

const missing = REQUIRED.filter(([p]) => !installed(p)).map(([p]) => p);
if (missing.length === 0) process.exit(0);

const line = `apt-get install -y ${missing.join(' ')}`;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (!isRoot) {
  console.error(`osprey: missing system packages: ${missing.join(', ')}`);
  console.error(`osprey: run as root, then npm install again:\n  apt-get update && ${line}`);
  process.exit(1);
}
console.log(`osprey: installing system packages: ${missing.join(' ')}`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
try {
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'inherit', env });
} catch (e) {
  console.error(`osprey: '${line}' failed: ${e.message}`);
  process.exit(1);
}
