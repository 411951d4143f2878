#!/usr/bin/env tsx
/**
 * Writes docs/ABI.md from runtime-bindings/abi.ts (`npm run gen:abi-doc`), the same table the C
 * header and the compiler's declarations come from, plus the scenario and check tables of the
 * ABI harness (tools/abi-check/). tests/abi/doc.test.ts fails when the committed file is
 * stale; `--check` does the same from the command line.
 *
 *   tsx scripts/gen-abi-doc.ts           write docs/ABI.md
 *   tsx scripts/gen-abi-doc.ts --check   exit 1 when docs/ABI.md differs from what would be written
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ABI_VERSION,
  HANDLERS,
  RESULT_STRUCT,
  RESULT_TAGS,
  RUNTIME_FUNCTIONS,
  STRING_LAYOUT,
  type CType,
  type HandlerName,
  type OspreyType,
  type RuntimeFunction,
} from '../runtime-bindings/abi.ts';
import { cSpelling, ospreyTypeText, renderCHeader } from '../runtime-bindings/c-header.ts';
import { RUNTIME_LINK_LIBS } from '../runtime-bindings/toolchain.ts';
import { CHECK_DOCS, CHECK_ORDER } from '../tools/abi-check/checks.ts';
import { USAGE } from '../tools/abi-check/main.ts';
import { DEFAULT_STRING_ARG, expectedChecks, scenariosOf } from '../tools/abi-check/probe-gen.ts';
import { FIXTURES, type ArgValue } from '../tools/abi-check/scenarios.ts';
import { INTEGRITY_CASES, INTEGRITY_LIMIT, INTEGRITY_MAX_OUTPUT, INTEGRITY_SIZES, INTEGRITY_TARGETS } from '../tools/abi-check/integrity.ts';

export const ABI_DOC_PATH = fileURLToPath(new URL('../docs/ABI.md', import.meta.url));

/** The prototype line of `symbol` exactly as the generated header spells it. */
function headerPrototype(header: string[], symbol: string): string {
  const line = header.find((l) => l.includes(` ${symbol}(`) || l.includes(`*${symbol}(`));
  if (!line) throw new Error(`gen-abi-doc: ${symbol} is missing from the generated header`);
  return line;
}

function handlerTypedef(header: string[], name: string): string {
  const line = header.find((l) => l.startsWith('typedef') && l.includes(`(*${name})`));
  if (!line) throw new Error(`gen-abi-doc: ${name} is missing from the generated header`);
  return line;
}

/** How a value of this Osprey type travels in the 64-bit payload word. */
function payloadWord(t: OspreyType): string {
  switch (t.kind) {
    case 'Int':
      return 'the Int itself';
    case 'Bool':
      return '0 or 1';
    case 'Unit':
      return '0';
    case 'String':
      return 'a pointer to a NUL-terminated UTF-8 string owned by the garbage collector';
    default:
      return 'a pointer to a garbage-collected object';
  }
}

/** Who owns memory crossing the boundary, derived from the C types. */
function ownership(f: RuntimeFunction): string[] {
  const out: string[] = [];
  const strings = f.params.filter((p) => p.type === 'cstring').map((p) => `\`${p.name}\``);
  if (strings.length) {
    out.push(
      `${strings.join(', ')}: borrowed for the duration of the call only. The caller may free or reuse the memory as soon as the call returns, so the runtime copies whatever it keeps.`,
    );
  }
  const handlers = f.params.filter((p) => p.type.startsWith('handler:'));
  for (const h of handlers) {
    const env = f.params[f.params.indexOf(h) + 1];
    out.push(
      `\`${h.name}\`${env ? ` + \`${env.name}\`` : ''}: the runtime keeps both until the registration ends; the environment is the closure's, and stays reachable for the garbage collector through the caller's closure while it is registered.`,
    );
  }
  if (f.returns === 'result') {
    const ok = f.osprey?.returns.kind === 'Result' ? f.osprey.returns.ok : undefined;
    out.push(
      `Result: Success carries ${ok ? payloadWord(ok) : 'the payload word'}; the Error message is owned by the garbage collector (never free it; it lives while reachable).`,
    );
  } else if (f.returns === 'cstring') {
    out.push('Returned string: owned by the garbage collector or static; never free it.');
  } else if (f.returns === 'ptr') {
    out.push('Returned memory: owned by the garbage collector; never free it.');
  }
  return out;
}

function argText(v: ArgValue | undefined, type: CType): string {
  if (v === undefined) {
    if (type.startsWith('handler:')) return 'a recording handler';
    if (type === 'cstring') return JSON.stringify(DEFAULT_STRING_ARG);
    return type === 'ptr' ? 'the sentinel env' : '0';
  }
  switch (v.kind) {
    case 'int':
      return String(v.value);
    case 'string':
      return JSON.stringify(v.value);
    case 'fixture':
      return FIXTURES[v.name].doc;
    case 'handler':
      return 'a recording handler';
  }
}

function escapeCell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

export function renderAbiDoc(): string {
  const header = renderCHeader().split('\n');
  const o: string[] = [];
  const p = (...lines: string[]): void => {
    o.push(...lines);
  };

  p(
    '<!-- GENERATED from runtime-bindings/abi.ts by `npm run gen:abi-doc` (scripts/gen-abi-doc.ts). Do not edit: tests/abi/doc.test.ts fails when this file is stale. -->',
    '',
    '# The Osprey runtime ABI',
    '',
    `ABI version **${ABI_VERSION}** (\`OSP_ABI_VERSION\`). This is what compiled Osprey code and a runtime library agree on:`,
    'the Result layout, the handler calling convention, memory ownership across the boundary, and every',
    `runtime function. All of it is generated from \`runtime-bindings/abi.ts\`, as are the C header`,
    '`runtime-c/include/osprey_abi.h` and the compiler\'s LLVM declarations. Target: x86-64 System V (Linux).',
    '',
    'Contents: [Strings](#strings) · [Results](#results) · [Handlers](#handlers) · [Memory ownership](#memory-ownership) ·',
    '[Process lifetime](#process-lifetime) · [Functions](#functions) · [Checking a runtime library](#checking-a-runtime-library)',
    '',
  );

  // ---- Strings ------------------------------------------------------------------------------
  p(
    '## Strings',
    '',
    `A String (\`const char *\` in C, \`i8*\` in LLVM: every \`cstring\` parameter and return below, every string a`,
    'handler receives, every Error message) is **one pointer to its first byte**, inside a block laid out as',
    '',
    '```',
    `[int64_t length][length bytes][NUL]`,
    `          ^ the String points here; the length is the ${STRING_LAYOUT.headerBytes} bytes before it (OSP_STRING_HEADER_BYTES)`,
    '```',
    '',
    'A String may hold any bytes, NUL included: its length is the header, never `strlen`. The NUL after the',
    'last byte (not counted) lets a String that holds no NUL go to a C API that wants a terminated path.',
    'Blocks are garbage-collected (the runtime builds them with `osp_gc_strndup`) or constant (a compiled',
    'literal is a private global `{ i64 length, [length+1 x i8] }`; the runtime\'s own fixed texts use',
    '`OSP_STATIC_STRING`). The file, process and HTTP functions refuse a path, command, address, URL or',
    'header holding a NUL with an Error naming the byte (the WebSocket functions\' addresses, paths and',
    'URLs are not checked yet: they see the text up to the first NUL).',
    '',
    'Why a header before the pointer rather than a pointer + length pair: a String stays one word, so every',
    'signature keeps its shape (no struct by value across the C/LLVM boundary, where llvm-bindings cannot set',
    'the attributes a larger aggregate needs), it still fits a Result payload, a list cell or a closure slot,',
    'the length is O(1), and Boehm GC recognises the interior pointer. Why 8 bytes rather than 4: Boehm',
    'allocates in 16-byte granules, so 4 bytes would save memory only for strings of 4 to 7 bytes, and 8',
    'keeps the bytes 8-aligned (docs/BENCHMARKS-LANG.md has the before/after figures).',
    '',
  );

  // ---- Results ------------------------------------------------------------------------------
  p('## Results', '', '```c');
  const start = header.findIndex((l) => l.startsWith('typedef struct {'));
  const end = header.findIndex((l, i) => i > start && l.startsWith('}'));
  p(...header.slice(start, end + 1), '```', '');
  p(
    `A runtime function that can fail returns an \`${RESULT_STRUCT.cName}\` **by value**: 16 bytes, two INTEGER`,
    'eightbytes, so it comes back in **RAX (tag) : RDX (value)** in both directions (compiled code calling C,',
    'C calling a compiled handler) with no LLVM attribute. In LLVM 14 IR it is `{ i64, i64 }`.',
    '',
    '| tag | macro | value |',
    '|---|---|---|',
  );
  for (const [name, tag] of Object.entries(RESULT_TAGS)) {
    const field = RESULT_STRUCT.fields.find((f) => f.name === 'value')!;
    const which = field.doc.split(/(?<=\.) /).find((s) => s.startsWith(`${name}:`)) ?? '';
    p(`| ${tag} | \`OSP_RESULT_${name.toUpperCase()}\` | ${which.replace(`${name}: `, '')} |`);
  }
  p(
    '',
    'Any other tag is a broken library. Payload words by Osprey type:',
    '',
    '| Osprey type | payload word |',
    '|---|---|',
  );
  for (const t of [{ kind: 'Int' }, { kind: 'Bool' }, { kind: 'Unit' }, { kind: 'String' }] as OspreyType[]) {
    p(`| ${ospreyTypeText(t)} | ${payloadWord(t)} |`);
  }
  p(
    '',
    'Rules that keep the layout safe:',
    '',
    '- Never make a result larger than 16 bytes. Over 16 bytes the C ABI returns through a hidden pointer',
    '  in RDI (`sret`). LLVM does not do that without the `sret` attribute, which llvm-bindings cannot set,',
    '  so the two sides silently disagree: RAX:RDX hold garbage and every argument is shifted by one register.',
    '- Never use `{int32, int32, int64}`-like layouts: LLVM and gcc place them in different registers.',
    '- Never pass a Result by value as an argument. If a larger result is ever needed, make an explicit',
    '  out-pointer the first parameter on both sides.',
    '',
  );

  // ---- Handlers -----------------------------------------------------------------------------
  p(
    '## Handlers',
    '',
    'An Osprey function value is a closure `{ fn, env }`. A runtime function that takes a handler receives',
    'the two halves as **two parameters**, the function pointer and then the environment (never a struct by',
    'value), and calls `fn(env, args...)`, reading the returned `OspResult`. `env` may be NULL for a closure',
    'that captures nothing; the runtime passes it back unchanged and never dereferences it.',
    '',
    'Guarantees a runtime must give:',
    '',
    "- the handler runs on the runtime's thread, never synchronously inside the call that registered it or",
    '  inside any other call of the program;',
    '- every call passes the registered `env` as the first argument and the documented arguments in order;',
    '  message strings are NUL-terminated UTF-8;',
    '- calls for one connection arrive one at a time, in the order the messages were received;',
    '- no call starts after `websocketClose` (client) or `websocketStopServer` (server) has returned;',
    "- a handler's Error result is reported on standard error with the connection id and the message, and",
    '  the connection stays open (docs/guide/15-websockets.md).',
    '',
  );
  for (const name of Object.keys(HANDLERS) as HandlerName[]) {
    const h = HANDLERS[name];
    p(`### \`${h.cTypedef}\``, '', h.doc, '', '```c', handlerTypedef(header, h.cTypedef), '```', '', `Osprey type: \`${ospreyTypeText(h.osprey)}\``, '');
    p('| parameter | C type | meaning |', '|---|---|---|');
    h.params.forEach((prm, i) => {
      const osp = i > 0 && h.osprey.kind === 'Fn' ? h.osprey.params[i - 1] : undefined;
      const meaning =
        i === 0
          ? 'the environment the handler was registered with'
          : `Osprey argument ${i}${osp ? ` (${ospreyTypeText(osp)})` : ''}` +
            (prm.type === 'cstring' ? ': GC-owned NUL-terminated UTF-8 text; keep it only in memory the collector scans' : '');
      p(`| \`${prm.name}\` | \`${cSpelling(prm.type)}\` | ${meaning} |`);
    });
    p('');
  }

  // ---- Memory ownership ---------------------------------------------------------------------
  p(
    '## Memory ownership',
    '',
    '| what | owner | lifetime |',
    '|---|---|---|',
    '| strings passed **into** a runtime function (length header included) | the caller | borrowed for the call only: the runtime copies what it keeps |',
    '| Error messages (`value` of an Error) | the garbage collector (Boehm GC) | while reachable; never free |',
    '| message strings passed **to** a handler | the garbage collector | while reachable; a handler keeps one by storing it in collected memory |',
    `| strings returned by ${RUNTIME_FUNCTIONS.filter((f) => f.returns === 'cstring').map((f) => `\`${f.symbol}\``).join(', ')} | the garbage collector, or static | never free |`,
    `| memory returned by ${RUNTIME_FUNCTIONS.filter((f) => f.returns === 'ptr').map((f) => `\`${f.symbol}\``).join(', ')} | the garbage collector | zeroed; while reachable |`,
    '| handler environments | the compiled program (garbage collected) | the runtime keeps the pointer while registered |',
    '',
    'Threads the runtime creates that may touch the collected heap (scheduler workers and blocking-call helpers,',
    'I/O loops, the signal watcher) are registered with the collector (`GC_THREADS`), so GC-owned values held',
    'only by a runtime thread stay alive. The TLS handshake threads and the WebSocket acceptor threads never',
    'touch it and are not registered: a collection neither stops nor waits for them.',
    '',
  );

  // ---- Process lifetime ---------------------------------------------------------------------
  p(
    '## Process lifetime',
    '',
    'A generated `main()` calls `osp_rt_init(OSP_ABI_VERSION)` first and returns `osp_rt_shutdown(status)`',
    'last. A library built for another ABI version refuses to run (it exits with a message naming both',
    'versions) instead of misreading results.',
    '',
  );

  // ---- Functions ----------------------------------------------------------------------------
  p('## Functions', '', '| C symbol | Osprey | returns |', '|---|---|---|');
  for (const f of RUNTIME_FUNCTIONS) {
    const osp = f.osprey ? `\`${f.osprey.name}\`` : '—';
    const ret = f.osprey ? ospreyTypeText(f.osprey.returns) : cSpelling(f.returns);
    p(`| [\`${f.symbol}\`](#${f.symbol.replace(/_/g, '_')}) | ${osp} | \`${escapeCell(ret)}\` |`);
  }
  p('');
  for (const f of RUNTIME_FUNCTIONS) {
    p(`### ${f.symbol}`, '', f.doc, '', '```c', headerPrototype(header, f.symbol), '```', '');
    if (f.osprey) {
      const ps = f.osprey.params.map((x) => `${x.name}: ${ospreyTypeText(x.type)}`).join(', ');
      p(`Osprey: \`${f.osprey.name}(${ps}) -> ${ospreyTypeText(f.osprey.returns)}\``);
      if (f.osprey.capability) p(`(removed by \`--no-${f.osprey.capability}\`)`);
      p('');
    } else {
      p('Not callable by name from Osprey: generated code and the runtime use it.', '');
    }
    if (f.noreturn) p('Never returns (`_Noreturn`).', '');
    if (f.params.length && !f.osprey) {
      p('| C parameter | C type |', '|---|---|');
      for (const prm of f.params) p(`| \`${prm.name}\` | \`${cSpelling(prm.type)}\` |`);
      p('');
    } else if (f.params.length) {
      p('| C parameter | C type | Osprey parameter |', '|---|---|---|');
      let k = 0;
      for (const prm of f.params) {
        let osp = '';
        if (f.osprey) {
          if (prm.type === 'ptr' && f.params[f.params.indexOf(prm) - 1]?.type.startsWith('handler:')) osp = '(its environment)';
          else {
            const op = f.osprey.params[k++];
            osp = op ? `\`${op.name}: ${escapeCell(ospreyTypeText(op.type))}\`` : '';
          }
        }
        p(`| \`${prm.name}\` | \`${cSpelling(prm.type)}\` | ${osp} |`);
      }
      p('');
    }
    const own = ownership(f);
    if (own.length) {
      p('Ownership:', '');
      for (const line of own) p(`- ${line}`);
      p('');
    }
    const scenarios = scenariosOf(f);
    p('Harness scenarios:', '');
    for (const s of scenarios) {
      // The client close-event scenario makes its own calls (its doc says which), one per client.
      if (s.events === 'client-close') {
        p(`- *${s.name}* (${s.doc}): called once per client with its connection id and a logging close handler. Checks: ${expectedChecks(f, s).join(', ')}.`);
        continue;
      }
      const args = f.params
        .filter((prm) => !(prm.type === 'ptr' && s.args[prm.name] === undefined))
        .map((prm) => `${prm.name} = ${argText(s.args[prm.name], prm.type)}`)
        .join('; ');
      const what = s.expect ? `must return ${s.expect === 'success' ? 'Success' : 'Error'}` : s.exit ? `must exit (${s.exit.code}) printing "${s.exit.stderrIncludes}"` : 'must return the expected value';
      p(`- *${s.name}* (${s.doc}): ${args || 'no arguments'}; ${what}. Checks: ${expectedChecks(f, s).join(', ') || 'exit-status'}.`);
    }
    p('');
  }

  // ---- Harness ------------------------------------------------------------------------------
  p(
    '## Checking a runtime library',
    '',
    '`osprey abi-check` checks that a runtime library (static `.a` or shared `.so`) implements this ABI.',
    'It generates one C probe per function from `runtime-bindings/abi.ts` and the scenario table',
    '(`tools/abi-check/scenarios.ts`), compiles it with clang-14 against the generated header under',
    'AddressSanitizer and UndefinedBehaviorSanitizer, links it with the library, and runs each scenario in',
    'its own process with a timeout, so a crash, hang or sanitizer report fails only the function probed.',
    'Client probes talk to an independent Node `ws` server started by the harness; server probes use a raw',
    'RFC 6455 client inside the probe.',
    '',
    '```',
    USAGE.trimEnd(),
    '```',
    '',
    'To check another library:',
    '',
    '```sh',
    'osprey abi-check --runtime /path/to/libother_runtime.so          # table',
    'osprey abi-check --runtime /path/to/libother_runtime.a --json     # for machines',
    '```',
    '',
    `A static library is linked with \`${RUNTIME_LINK_LIBS.join(' ')}\`; a shared library should name its own`,
    'dependencies (`DT_NEEDED`). A function the library does not define fails only its own rows (`symbol`);',
    'a probe that needs it for set-up (a server id, say) reports its checks as not exercised.',
    'Requirements: clang-14 with its sanitizer runtimes (`libclang-rt-14-dev`), `nm`, Node with `ws`.',
    '',
    'The report has one row per function and check: `function | check | pass/fail | reason`, then a',
    'summary of the functions that fail. `--json` prints `{ library, kind, passed, failed, functions, rows }`.',
    'The exit status is 0 only when every check passes.',
    '',
    '| check | what it verifies |',
    '|---|---|',
  );
  for (const c of CHECK_ORDER) p(`| \`${c}\` | ${escapeCell(CHECK_DOCS[c])} |`);
  p(
    '',
    'Leak checking is targeted: Osprey values live in the Boehm collector\'s heap, which LeakSanitizer does',
    'not track, so only malloc memory is checked, and a leak counts only when its allocation stack enters the',
    'library (named after the outermost `osp_` function on that stack). Leaks of the sanitizer runtime, libgc',
    'or OpenSSL initialising themselves are not the library\'s.',
    '',
  );

  // ---- Message integrity (tools/abi-check/integrity.ts) ----------------------------------------
  const sizes = INTEGRITY_SIZES.map((n) => n.toLocaleString('en-US')).join(', ');
  p(
    '### Message integrity',
    '',
    'Every function that carries a message gets an `integrity` scenario in its direction. Before any server',
    `or connection exists the probe sets the process defaults \`maxMessageBytes\` = ${INTEGRITY_LIMIT.toLocaleString('en-US')} and`,
    `\`maxOutputBytes\` = ${INTEGRITY_MAX_OUTPUT.toLocaleString('en-US')} (\`osp_ws_set_default_limit\`), then pushes messages of ${sizes} bytes and`,
    `of the configured limit (${INTEGRITY_LIMIT.toLocaleString('en-US')}) through the function, one after another, each different and`,
    'mixing 1- to 4-byte UTF-8 sequences (or, in the binary case, bytes of every value), and compares what comes',
    'out with what went in, and of which kind: a text send must reach the peer as a text frame (opcode 0x1), a',
    'binary send as a binary frame (0x2), and a WebSocketMessage handler must receive the record `type` "text"',
    'for a text frame and "binary" for a binary one. A failure names the function and the size and says how the',
    'message differs: truncated (to how many bytes), extended, altered (first differing byte), dropped,',
    'reordered or delivered as the wrong kind; the other failing sizes follow. Then one message of',
    `${(INTEGRITY_LIMIT + 1).toLocaleString('en-US')} bytes (limit + 1) must be refused (\`message-limit\`): a sending function returns Error and`,
    'the next message reaches the peer whole and first; a receiving side closes the connection with 1009 and',
    'the handler never sees any of it.',
    '',
    '| function | direction | carries | the other end |',
    '|---|---|---|---|',
  );
  for (const t of INTEGRITY_TARGETS) p(`| \`${t.symbol}\` | ${t.direction} | ${t.carries === 'record' ? 'text and binary (WebSocketMessage)' : t.carries} | ${escapeCell(t.doc)} |`);
  p('', '| case | what | run through |', '|---|---|---|');
  for (const c of INTEGRITY_CASES) p(`| ${c.name} | ${escapeCell(c.doc)} | ${c.carries.map((k) => (k === 'record' ? 'WebSocketMessage handlers' : `${k} functions`)).join(', ')} |`);
  p(
    '',
    'Each case is its own scenario (`integrity`, `integrity-nul-bytes`, `integrity-binary`), so a report',
    'row names the case that failed. The comparisons work on lengths and bytes, never on NUL terminators.',
    '',
  );
  return o.join('\n');
}

function main(): void {
  const text = renderAbiDoc();
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(ABI_DOC_PATH, 'utf8');
    } catch {
      // missing counts as stale
    }
    if (current !== text) {
      console.error('docs/ABI.md is stale: run `npm run gen:abi-doc`');
      process.exit(1);
    }
    return;
  }
  mkdirSync(dirname(ABI_DOC_PATH), { recursive: true });
  writeFileSync(ABI_DOC_PATH, text);
  console.log(`wrote ${ABI_DOC_PATH}`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) main();
