/**
 * Renders the C header of the runtime ABI from the table in abi.ts. The header is committed at
 * runtime-c/include/osprey_abi.h so the C runtime builds without Node; a test fails when the
 * committed copy differs from what this function produces.
 */
import {
  ABI_VERSION,
  HANDLERS,
  RESULT_STRUCT,
  RESULT_TAGS,
  RUNTIME_FUNCTIONS,
  SELECT_ARM_KINDS,
  STRING_LAYOUT,
  type CType,
  type HandlerName,
  type OspreyType,
} from './abi.ts';

/** C spelling of a C-level ABI type. */
export function cSpelling(type: CType): string {
  switch (type) {
    case 'void':
      return 'void';
    case 'int64':
      return 'int64_t';
    case 'int32':
      return 'int32_t';
    case 'cstring':
      return 'const char *';
    case 'ptr':
      return 'void *';
    case 'result':
      return RESULT_STRUCT.cName;
  }
  return HANDLERS[type.slice('handler:'.length) as HandlerName].cTypedef;
}

export function ospreyTypeText(t: OspreyType): string {
  switch (t.kind) {
    case 'Result':
      return `Result<${ospreyTypeText(t.ok)}, ${ospreyTypeText(t.err)}>`;
    case 'Fn':
      return `(${t.params.map(ospreyTypeText).join(', ')}) -> ${ospreyTypeText(t.ret)}`;
    case 'Adt':
      return t.name;
    default:
      return t.kind;
  }
}

function param(type: CType, name: string): string {
  const s = cSpelling(type);
  return s.endsWith('*') ? `${s}${name}` : `${s} ${name}`;
}

export function renderCHeader(): string {
  const out: string[] = [];
  out.push('/* GENERATED from runtime-bindings/abi.ts by `npm run gen:abi`. Do not edit. */');
  out.push('/* The Osprey runtime ABI: what compiled Osprey code and the C runtime agree on. */');
  out.push('#ifndef OSPREY_ABI_H');
  out.push('#define OSPREY_ABI_H');
  out.push('');
  out.push('#include <stdint.h>');
  out.push('');
  out.push('#ifdef __cplusplus');
  out.push('extern "C" {');
  out.push('#endif');
  out.push('');
  out.push(`#define OSP_ABI_VERSION ${ABI_VERSION}`);
  out.push('');
  for (const [name, tag] of Object.entries(RESULT_TAGS)) {
    out.push(`#define OSP_RESULT_${name.toUpperCase()} ${tag}`);
  }
  out.push('');
  for (const [name, kind] of Object.entries(SELECT_ARM_KINDS)) {
    out.push(`#define OSP_SELECT_${name.toUpperCase()} ${kind}`);
  }
  out.push('');
  out.push('/* A String (const char *) points at its first byte; its length is the int64_t stored in the');
  out.push(' * OSP_STRING_HEADER_BYTES bytes before it, and a NUL follows its last byte. It may hold NUL bytes. */');
  out.push(`#define OSP_STRING_HEADER_BYTES ${STRING_LAYOUT.headerBytes}`);
  out.push('');
  out.push('/* Returned by value in RAX:RDX (two INTEGER eightbytes, x86-64 System V). */');
  out.push('typedef struct {');
  for (const f of RESULT_STRUCT.fields) {
    out.push(`    int64_t ${f.name}; /* ${f.doc} */`);
  }
  out.push(`} ${RESULT_STRUCT.cName};`);
  out.push('');
  for (const h of Object.values(HANDLERS)) {
    out.push(`/* ${h.doc} Osprey type: ${ospreyTypeText(h.osprey)} */`);
    const ps = h.params.map((p) => param(p.type, p.name)).join(', ');
    out.push(`typedef ${cSpelling(h.returns)} (*${h.cTypedef})(${ps});`);
    out.push('');
  }
  for (const f of RUNTIME_FUNCTIONS) {
    const lines = [f.doc];
    if (f.osprey) {
      const ps = f.osprey.params.map((p) => `${p.name}: ${ospreyTypeText(p.type)}`).join(', ');
      lines.push(`Osprey: ${f.osprey.name}(${ps}) -> ${ospreyTypeText(f.osprey.returns)}`);
    }
    out.push(`/* ${lines.join('\n * ')} */`);
    const ps = f.params.length ? f.params.map((p) => param(p.type, p.name)).join(', ') : 'void';
    const noreturn = f.noreturn ? '_Noreturn ' : '';
    const ret = cSpelling(f.returns);
    out.push(`${noreturn}${ret}${ret.endsWith('*') ? '' : ' '}${f.symbol}(${ps});`);
    out.push('');
  }
  out.push('#ifdef __cplusplus');
  out.push('}');
  out.push('#endif');
  out.push('');
  out.push('#endif /* OSPREY_ABI_H */');
  out.push('');
  return out.join('\n');
}
