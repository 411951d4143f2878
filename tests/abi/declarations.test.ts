/**
 * ABI oracle: clang-14 compiles the generated C prototypes to LLVM IR, which shows exactly how LLVM
 * must declare each runtime function on x86-64 System V. The compiler's own declarations (built from
 * the same table through llvm-bindings) must agree on every return and parameter type.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RUNTIME_FUNCTIONS } from '../../runtime-bindings/abi.ts';
import { LLVM_TOOLS, RUNTIME_INCLUDE_DIR } from '../../runtime-bindings/toolchain.ts';
import { renderRuntimeDeclarations } from '../../compiler/src/codegen/runtime.ts';

/** Splits a parameter list at top-level commas (function-pointer types contain commas). */
function splitTopLevel(list: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of list) {
    if (ch === '(' || ch === '{' || ch === '[' || ch === '<') depth++;
    if (ch === ')' || ch === '}' || ch === ']' || ch === '>') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) parts.push(cur);
  return parts.map((p) => p.trim());
}

/** `declare <ret> @sym(<params>)` → normalised "ret (params)" with attributes, names and named structs resolved. */
function parseDeclarations(ir: string, structs: Map<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  const attr = /\b(noundef|zeroext|signext|nonnull|noalias|nocapture|readonly|writeonly|dso_local|local_unnamed_addr|noreturn)\b/g;
  const normalise = (t: string) =>
    t
      .replace(/#\d+/g, '')
      .replace(attr, '')
      .replace(/%[\w.]+/g, (n) => structs.get(n) ?? n)
      .replace(/\s+/g, ' ')
      .replace(/\( /g, '(')
      .replace(/ \)/g, ')')
      .trim();
  for (const line of ir.split('\n')) {
    const m = /^(?:declare|define)\s+(.*?)\s*@([A-Za-z_][\w.]*)\((.*)\)/.exec(line);
    if (!m) continue;
    // In a `define`, parameters carry names (`i8* %0`); drop a trailing local name.
    const params = splitTopLevel(m[3]!).map((p) => normalise(p.replace(/\s+%[\w.]+$/, '')));
    out.set(m[2]!, `${normalise(m[1]!)} (${params.join(', ')})`);
  }
  return out;
}

function structTypes(ir: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const m of ir.matchAll(/^(%[\w.]+) = type (\{[^}]*\})/gm)) map.set(m[1]!, m[2]!.replace(/\s+/g, ' '));
  return map;
}

describe('runtime declarations agree with clang-14 on the generated C header', () => {
  const dir = mkdtempSync(join(tmpdir(), 'osprey-abi-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const src = join(dir, 'probe.c');
  // Referencing each function forces clang to emit its declaration.
  const refs = RUNTIME_FUNCTIONS.map((f) => `(void *)&${f.symbol}`).join(',\n  ');
  writeFileSync(src, `#include "osprey_abi.h"\nvoid *osp_abi_probe_refs[] = {\n  ${refs}\n};\n`);
  const clangIr = execFileSync(
    LLVM_TOOLS.clang,
    ['-S', '-emit-llvm', '-O0', '--target=x86_64-pc-linux-gnu', `-I${RUNTIME_INCLUDE_DIR}`, src, '-o', '-'],
    { encoding: 'utf8' },
  );
  const oracle = parseDeclarations(clangIr, structTypes(clangIr));
  const oursIr = renderRuntimeDeclarations();
  const ours = parseDeclarations(oursIr, structTypes(oursIr));

  for (const f of RUNTIME_FUNCTIONS) {
    it(`${f.symbol}`, () => {
      expect(oracle.get(f.symbol), `clang declared ${f.symbol}`).toBeDefined();
      expect(ours.get(f.symbol), `compiler declared ${f.symbol}`).toBe(oracle.get(f.symbol));
    });
  }
});
