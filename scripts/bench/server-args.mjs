/**
 * Command-line parsing shared by the Node echo servers of the benchmark (plain JavaScript, run
 * with `node`, not tsx: a TypeScript loader inside the measured process would add start-up work
 * and resident memory that the other servers do not pay).
 *
 *   --host ADDR        listen address (default 127.0.0.1)
 *   --port PORT        listen port (default 0: any free port)
 *   --broadcast        relay every received message to every connected client (sender included)
 *                      instead of echoing it to its sender
 *
 * Both servers print `listening on ws://HOST:PORT/` once they accept connections (the same line
 * as build/tools/ws-echo-server) and exit on SIGTERM or SIGINT.
 */
export function parseServerArgs(argv) {
  const opts = { host: '127.0.0.1', port: 0, broadcast: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--host') opts.host = argv[++i];
    else if (a === '--port') opts.port = Number(argv[++i]);
    else if (a === '--broadcast') opts.broadcast = true;
    else {
      console.error(`unknown argument: ${a}`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    console.error('--port needs an integer 0..65535');
    process.exit(2);
  }
  return opts;
}

/** Large enough for every benchmark message; the servers must never drop or close for size. */
export const MAX_PAYLOAD = 64 * 1024 * 1024;
