// The `osprey` command's entry (bin/osprey.mjs loads it, bundled as build/compiler/osprey.mjs):
// runs the command line in this process. The commands themselves are in ../main.ts, which the
// compile server (./server.ts) shares without running a command at import.
import { cliMain } from '../main.ts';

cliMain(process.argv.slice(2));
