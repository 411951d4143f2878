/** Peer launchers for conformance, interop and benchmark code. See README.md in this folder. */
export * from './process.ts';
export * from './python.ts';
export * from './node-peers.ts';
export * from './osprey.ts';
export * from './certs.ts';
export * from './tls-replay.ts';
