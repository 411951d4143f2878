#!/usr/bin/env node
// The `osprey` command. The compiler is TypeScript run through tsx (Node 20 cannot strip types).
import { register } from 'tsx/esm/api';

register();
await import('../compiler/src/main.ts');
