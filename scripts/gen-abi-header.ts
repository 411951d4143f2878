#!/usr/bin/env tsx
/** Writes runtime-c/include/osprey_abi.h from runtime-bindings/abi.ts (`npm run gen:abi`). */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderCHeader } from '../runtime-bindings/c-header.ts';

const target = fileURLToPath(new URL('../runtime-c/include/osprey_abi.h', import.meta.url));
writeFileSync(target, renderCHeader());
console.log(`wrote ${target}`);
