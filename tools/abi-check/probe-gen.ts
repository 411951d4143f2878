/**
 * Generates the C probe of one runtime function from runtime-bindings/abi.ts and the scenario
 * table. A probe is one C program per function; each scenario is a separate run of it (argv[1]),
 * so a crash or hang is attributed to one function and one scenario.
 *
 * The generator only emits calls to symbols the library defines (`present`), so a missing symbol
 * fails the checks that need it instead of breaking the link.
 */
import {
  HANDLERS,
  RESULT_TAGS,
  RUNTIME_FUNCTIONS,
  type CParam,
  type HandlerName,
  type OspreyType,
  type RuntimeFunction,
} from '../../runtime-bindings/abi.ts';
import { cSpelling } from '../../runtime-bindings/c-header.ts';
import { INTEGRITY_LIMIT, INTEGRITY_MAX_OUTPUT, INTEGRITY_SIZES, integrityKind, type IntegrityContent, type IntegrityKind, type IntegrityTarget } from './integrity.ts';
import {
  FIXTURES,
  HANDLER_DRIVERS,
  integrityScenarios,
  SCENARIOS,
  type ArgValue,
  type FixtureName,
  type Scenario,
} from './scenarios.ts';

export { CHECK_ORDER, type CheckName } from './checks.ts';
import type { CheckName } from './checks.ts';

export interface ProbePlan {
  fn: RuntimeFunction;
  source: string;
  scenarios: PlannedScenario[];
}

export interface PlannedScenario {
  scenario: Scenario;
  /** Checks the probe itself must report for this scenario (the harness adds process checks). */
  expected: CheckName[];
}

/** The string passed for a `const char *` parameter the scenario does not name. */
export const DEFAULT_STRING_ARG = 'abi-probe:arg';

/** The handler types a function takes, derived from its C parameters. */
export function handlerParams(fn: RuntimeFunction): { index: number; kind: HandlerName }[] {
  const out: { index: number; kind: HandlerName }[] = [];
  fn.params.forEach((p, index) => {
    if (p.type.startsWith('handler:')) out.push({ index, kind: p.type.slice('handler:'.length) as HandlerName });
  });
  return out;
}

export function scenariosOf(fn: RuntimeFunction): Scenario[] {
  const table = SCENARIOS[fn.symbol];
  if (table !== undefined) return [...table, ...integrityScenarios(fn.symbol)];
  // A function added to abi.ts without scenarios is still probed: default inputs, and for a Result
  // the harness can only insist on a valid tag.
  return [{ name: 'default', doc: 'default inputs for its parameter types', args: {}, returns: fn.returns === 'result' ? undefined : { kind: 'none' } }];
}

export function expectedChecks(fn: RuntimeFunction, s: Scenario): CheckName[] {
  if (s.exit) return [];
  if (s.integrity) return ['integrity', 'message-limit'];
  if (s.events) return ['events'];
  if (fn.returns !== 'result') return ['returns'];
  const out: CheckName[] = ['result-tag'];
  if (s.expect === 'success') {
    out.push('success-path');
    if (s.rawClientReceives !== undefined) out.push('delivery');
    const handlers = handlerParams(fn);
    if (handlers.length > 0 && HANDLER_DRIVERS[handlers[0].kind].delivery === 'caller') {
      out.push('handler-invoked', 'handler-env', 'handler-args', 'handler-after-close');
    } else if (handlers.length > 0) {
      out.push('handler-invoked', 'handler-env', 'handler-args', 'handler-order', 'handler-thread', 'handler-after-close');
    }
  } else if (s.expect === 'error') {
    out.push('error-path', 'error-message');
  }
  return out;
}

/** A C string literal with every byte outside printable ASCII escaped. */
export function cString(text: string): string {
  let out = '"';
  for (const b of Buffer.from(text, 'utf8')) {
    if (b === 0x22 || b === 0x5c) out += '\\' + String.fromCharCode(b);
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += '\\' + b.toString(8).padStart(3, '0');
  }
  return out + '"';
}

function cInt(v: bigint): string {
  if (v === -(2n ** 63n)) return '(-INT64_MAX - 1)';
  return `INT64_C(${v})`;
}

function ospreyPayloadIsUnit(t: OspreyType | undefined): boolean {
  return t !== undefined && t.kind === 'Result' && t.ok.kind === 'Unit';
}

/** Emits C for one handler typedef of HANDLERS: it forwards every argument to the recorder. */
function handlerDefinition(kind: HandlerName): string {
  const h = HANDLERS[kind];
  const rest = h.params.slice(1);
  const params = h.params.map((p) => {
    const s = cSpelling(p.type);
    return s.endsWith('*') ? `${s}${p.name}` : `${s} ${p.name}`;
  });
  let mask = 0;
  const words = rest.map((p, i) => {
    if (p.type === 'cstring' || p.type === 'ptr') {
      if (p.type === 'cstring') mask |= 1 << i;
      return `(int64_t)(intptr_t)${p.name}`;
    }
    return `(int64_t)${p.name}`;
  });
  const call = `probe_handler_called(${cString(kind)}, ${h.params[0].name}, ${words.length}, words, ${mask}u)`;
  // Handlers that return Unit (process events) return the word 0.
  const result = h.returns === 'result';
  return [
    `static ${result ? 'OspResult' : 'int64_t'} probe_handler_${kind}(${params.join(', ')}) {`,
    `    const int64_t words[${Math.max(words.length, 1)}] = {${words.length ? words.join(', ') : '0'}};`,
    result ? `    return ${call};` : `    (void)${call};\n    return 0;`,
    '}',
  ].join('\n');
}

class Emitter {
  lines: string[] = [];
  private depth = 1;
  private tmp = 0;
  line(s = ''): void {
    for (const l of s.split('\n')) this.lines.push(l ? '    '.repeat(this.depth) + l : '');
  }
  open(s: string): void {
    this.line(s);
    this.depth++;
  }
  close(s = '}'): void {
    this.depth--;
    this.line(s);
  }
  fresh(prefix: string): string {
    return `${prefix}${this.tmp++}`;
  }
}

interface CallText {
  /** Declarations before the call. */
  before: string[];
  /** The C expression of the call. */
  expr: string;
  /** Releases after the call. */
  after: string[];
  /** C expression of the first argument's address when it is a pointer, else "0". */
  arg0: string;
}

/** The arguments of a call: scenario values where given, defaults for the C type otherwise. */
function callText(e: Emitter, fn: RuntimeFunction, args: Record<string, ArgValue>): CallText {
  const before: string[] = [];
  const after: string[] = [];
  const actual: string[] = [];
  let envForHandler = false;
  fn.params.forEach((p: CParam) => {
    const given = args[p.name];
    if (p.type.startsWith('handler:')) {
      actual.push(`probe_handler_${p.type.slice('handler:'.length)}`);
      envForHandler = true;
      return;
    }
    if (envForHandler && p.type === 'ptr' && given === undefined) {
      actual.push('PROBE_ENV');
      envForHandler = false;
      return;
    }
    envForHandler = false;
    const value: ArgValue =
      given ??
      (p.type === 'cstring'
        ? { kind: 'string', value: DEFAULT_STRING_ARG }
        : p.type === 'int64' || p.type === 'int32'
          ? { kind: 'int', value: 0n }
          : { kind: 'handler' });
    switch (value.kind) {
      case 'int':
        actual.push(p.type === 'int32' ? `(int32_t)${cInt(value.value)}` : cInt(value.value));
        break;
      case 'string': {
        const v = e.fresh('text_');
        before.push(`char *${v} = probe_arg_string(${cString(fn.symbol)}, ${cString(value.value)}, ${Buffer.byteLength(value.value, 'utf8')});`);
        after.push(`probe_arg_release(${v});`);
        // A string given to an int64 parameter (osp_string_build's parts) crosses as its address.
        actual.push(p.type === 'int64' ? `(int64_t)(intptr_t)${v}` : v);
        break;
      }
      case 'fixture':
        actual.push(`fx_${value.name}`);
        break;
      case 'handler':
        actual.push(p.type === 'ptr' ? 'PROBE_ENV' : '0');
        break;
    }
  });
  const first = fn.params[0];
  const arg0 =
    first !== undefined && (first.type === 'cstring' || first.type === 'ptr') ? `(int64_t)(intptr_t)${actual[0]}` : '0';
  return { before, expr: `${fn.symbol}(${actual.join(', ')})`, after, arg0 };
}

/** Every fixture a scenario needs, dependencies first. */
function fixtureOrder(s: Scenario): FixtureName[] {
  const order: FixtureName[] = [];
  const visit = (n: FixtureName): void => {
    if (order.includes(n)) return;
    for (const d of FIXTURES[n].deps) visit(d);
    order.push(n);
  };
  for (const a of Object.values(s.args)) if (a.kind === 'fixture') visit(a.name);
  for (const n of s.extraFixtures ?? []) visit(n);
  return order;
}

function fixtureSymbols(names: FixtureName[]): string[] {
  const out: string[] = [];
  for (const n of names) for (const st of FIXTURES[n].steps) if (st.kind === 'call') out.push(st.symbol);
  return out;
}

function byName(symbol: string): RuntimeFunction {
  const f = RUNTIME_FUNCTIONS.find((x) => x.symbol === symbol);
  if (!f) throw new Error(`abi-check: the scenario table names '${symbol}', which abi.ts does not define`);
  return f;
}

function emitFixtures(e: Emitter, names: FixtureName[]): void {
  for (const n of names) {
    const f = FIXTURES[n];
    e.line(`/* fixture ${n}: ${f.doc} */`);
    e.line(`probe_step("%s", ${cString(`while setting up ${f.doc}`)});`);
    for (const st of f.steps) {
      if (st.kind === 'c') {
        e.line(st.code);
        if (st.failsWhen) {
          e.line(`if (${st.failsWhen}) { probe_check("setup", 0, "%s", ${cString(st.failure ?? 'set-up failed')}); return; }`);
        }
        continue;
      }
      const callee = byName(st.symbol);
      const c = callText(e, callee, st.args);
      const r = e.fresh('setup');
      if (st.bindPayload) e.line(`int64_t fx_${n} = 0;`);
      e.open('{');
      for (const b of c.before) e.line(b);
      e.line(`probe_enter_call(${cString(st.symbol)});`);
      e.line(`OspResult ${r} = ${c.expr};`);
      e.line('probe_leave_call();');
      for (const a of c.after) e.line(a);
      e.line(`if (${r}.tag != OSP_RESULT_SUCCESS) { probe_setup_failed(${cString(st.symbol)}, ${r}); return; }`);
      if (st.bindPayload) e.line(`fx_${n} = ${r}.value;`);
      e.close();
    }
    if (!(f.steps.some((st) => st.kind === 'call' && st.bindPayload) && f.value === `fx_${n}`)) {
      e.line(`${f.cType} fx_${n} = ${f.value};`);
    }
  }
}

function emitResultChecks(e: Emitter, fn: RuntimeFunction, s: Scenario, present: Set<string>): void {
  const sym = fn.symbol;
  const unit = ospreyPayloadIsUnit(fn.osprey?.returns);
  e.line(`int tag = probe_result_tag(${cString(sym)}, r, first_arg);`);
  const doc = cString(s.doc);
  if (s.expect === 'success') {
    e.open(`if (tag == ${RESULT_TAGS.Success}) {`);
    if (unit) {
      e.line(`if (r.value != 0) probe_check("success-path", 0, "Success for %s, but a Result<Unit, ...> payload must be 0, got 0x%" PRIx64, ${doc}, (uint64_t)r.value);`);
      e.line(`else probe_check("success-path", 1, "Success for %s", ${doc});`);
    } else if (s.payload?.kind === 'int') {
      const want = s.payload.equals;
      e.line(`if (r.value != ${cInt(want)}) probe_check("success-path", 0, "Success for %s, but the payload is %" PRId64 ", expected ${want}", ${doc}, r.value);`);
      e.line(`else probe_check("success-path", 1, "Success for %s (payload ${want})", ${doc});`);
    } else if (s.payload?.kind === 'string') {
      // Compared by length and bytes: the String may hold NUL bytes.
      const want = cString(s.payload.equals);
      e.line('char text[256]; size_t len = 0; const char *why = NULL;');
      e.line(`if (!probe_read_cstring(r.value, text, sizeof text, &len, &why)) probe_check("success-path", 0, "Success for %s, but the payload 0x%" PRIx64 " is %s", ${doc}, (uint64_t)r.value, why);`);
      e.line(`else if (len != sizeof(${want}) - 1 || memcmp(text, ${want}, len) != 0) probe_check("success-path", 0, "Success for %s, but the payload is %s, expected %s", ${doc}, probe_quote(text, len), ${cString(JSON.stringify(s.payload.equals))});`);
      e.line(`else probe_check("success-path", 1, "Success for %s (payload %s)", ${doc}, probe_quote(text, len));`);
    } else {
      e.line(`probe_check("success-path", 1, "Success for %s (payload %" PRId64 ")", ${doc}, r.value);`);
    }
    e.close();
    e.open(`else if (tag == ${RESULT_TAGS.Error}) {`);
    e.line('char msg[200]; size_t len = 0; const char *why = NULL;');
    e.line(`if (probe_read_cstring(r.value, msg, sizeof msg, &len, &why)) probe_check("success-path", 0, "expected Success for %s, got Error %s", ${doc}, probe_quote(msg, len));`);
    e.line(`else probe_check("success-path", 0, "expected Success for %s, got tag 1 (Error) whose payload 0x%" PRIx64 " is %s, not a message - a raw integer return (id 1?) rather than a Result", ${doc}, (uint64_t)r.value, why);`);
    e.close();
    e.line(`else probe_check("success-path", 0, "expected Success for %s, got no valid Result (tag %" PRId64 ")", ${doc}, r.tag);`);

    if (s.rawClientReceives !== undefined) {
      const want = cString(s.rawClientReceives);
      e.open('{');
      e.line('char got[256];');
      e.line('int n = tag == 0 ? probe_raw_recv_text(fx_rawFd, got, sizeof got, 2000) : -1;');
      e.line(`if (tag != 0) probe_check("delivery", 0, "not exercised: no Success returned");`);
      e.line(`else if (n < 0) probe_check("delivery", 0, "Success returned, but the connected client received no text frame within 2 s");`);
      e.line(`else if (strcmp(got, ${want}) != 0) probe_check("delivery", 0, "the client received %s instead of %s", probe_quote(got, (size_t)n), ${want});`);
      e.line(`else probe_check("delivery", 1, "the connected client received %s", ${want});`);
      e.close();
    }

    const handlers = handlerParams(fn);
    if (handlers.length > 0) {
      const driver = HANDLER_DRIVERS[handlers[0].kind];
      // Wait for the handler whatever the call returned: a library that ignores its handler
      // (the old ABI took a string) is then reported as such, not only as a bad Result.
      e.open('{');
      e.line('int64_t payload = r.value; (void)payload;');
      if (driver.trigger) e.line(driver.trigger);
      if (driver.delivery === 'caller') e.line(`probe_handler_report_caller(${cString(sym)}, ${cString(driver.deliverer ?? 'the delivering call')});`);
      else e.line(`probe_handler_report(${cString(sym)}, 2000, 3, tag == 0 ? "" : ${cString(` (and ${sym} did not return Success)`)});`);
      const closeSym = driver.close.symbol;
      if (!present.has(closeSym)) {
        if (driver.cleanup) e.line(driver.cleanup);
        e.line(`probe_check("handler-after-close", 0, "not exercised: the library does not define %s", ${cString(closeSym)});`);
      } else {
        const byPayload = driver.close.arg === 'payload';
        if (byPayload) e.open('if (tag == 0) {');
        e.line(`probe_enter_call(${cString(closeSym)});`);
        const closeCall = `${closeSym}(${byPayload ? 'payload' : `fx_${driver.close.arg}`})`;
        const closeReturns = RUNTIME_FUNCTIONS.find((x) => x.symbol === closeSym)?.returns;
        e.line(closeReturns === 'result' ? `OspResult closed = ${closeCall};` : `${closeCall};`);
        // Marked before anything else runs: a late call must not slip in ahead of the mark.
        e.line(`probe_handler_mark_closed(${cString(closeSym)});`);
        e.line('probe_leave_call();');
        if (closeReturns === 'result') e.line('(void)closed;');
        if (driver.cleanup) e.line(driver.cleanup);
        e.line('probe_handler_report_after_close(300);');
        if (byPayload) {
          e.close();
          e.open('else {');
          if (driver.cleanup) e.line(driver.cleanup);
          e.line(`probe_check("handler-after-close", 0, "%s", ${cString(`not exercised: ${sym} returned no Success payload to pass to ${closeSym}`)});`);
          e.close();
        }
      }
      e.close();
    }
  } else if (s.expect === 'error') {
    e.open(`if (tag == ${RESULT_TAGS.Error}) {`);
    e.line(`probe_check("error-path", 1, "Error for %s", ${doc});`);
    e.line('char msg[200];');
    e.line(`probe_error_message(${cString(sym)}, r, msg, sizeof msg);`);
    e.close();
    e.open(`else if (tag == ${RESULT_TAGS.Success}) {`);
    e.line(`probe_check("error-path", 0, "expected Error for %s, got Success (payload %" PRId64 ")", ${doc}, r.value);`);
    e.line(`probe_check("error-message", 0, "not exercised: no Error returned");`);
    e.close();
    e.open('else {');
    e.line(`probe_check("error-path", 0, "expected Error for %s, got no valid Result (tag %" PRId64 ")", ${doc}, r.tag);`);
    e.line(`probe_check("error-message", 0, "not exercised: no Error returned");`);
    e.close();
  }
}

function emitReturnChecks(e: Emitter, fn: RuntimeFunction, s: Scenario): void {
  const x = s.returns ?? { kind: 'none' as const };
  const sym = cString(fn.symbol);
  switch (x.kind) {
    case 'none':
      if (s.minDurationMs !== undefined) {
        e.line(`if (elapsed < ${s.minDurationMs}) probe_check("returns", 0, "%s returned after %" PRIu64 " ms, expected at least ${s.minDurationMs} ms", ${sym}, elapsed);`);
        e.line(`else probe_check("returns", 1, "returned after %" PRIu64 " ms", elapsed);`);
      } else {
        e.line(`probe_check("returns", 1, "%s returned", ${sym});`);
      }
      break;
    case 'int':
      e.line(`if ((int64_t)r != ${cInt(x.equals)}) probe_check("returns", 0, "%s returned %" PRId64 ", expected ${x.equals}", ${sym}, (int64_t)r);`);
      e.line(`else probe_check("returns", 1, "returned ${x.equals}");`);
      break;
    case 'string': {
      const want = cString(x.equals);
      e.line('char text[256]; size_t len = 0; const char *why = NULL;');
      e.line(`if (!probe_read_cstring((int64_t)(intptr_t)r, text, sizeof text, &len, &why)) probe_check("returns", 0, "%s returned 0x%" PRIx64 ", which is %s", ${sym}, (uint64_t)(uintptr_t)r, why);`);
      e.line(`else if (len != sizeof(${want}) - 1 || memcmp(text, ${want}, len) != 0) probe_check("returns", 0, "%s returned %s, expected %s", ${sym}, probe_quote(text, len), ${cString(JSON.stringify(x.equals))});`);
      e.line(`else if (probe_utf8_error(text, len) != NULL) probe_check("returns", 0, "%s returned invalid UTF-8", ${sym});`);
      e.line(`else probe_check("returns", 1, "returned %s", probe_quote(text, len));`);
      break;
    }
    case 'zeroed':
      e.line(`unsigned char bytes[${x.bytes}];`);
      e.line(`if (!probe_read_bytes((int64_t)(intptr_t)r, bytes, sizeof bytes)) probe_check("returns", 0, "%s returned %p, which is not ${x.bytes} readable bytes", ${sym}, (void *)r);`);
      e.open('else {');
      e.line('size_t nz = 0; while (nz < sizeof bytes && bytes[nz] == 0) nz++;');
      e.line(`if (nz < sizeof bytes) probe_check("returns", 0, "%s returned memory that is not zeroed (byte %zu is 0x%02X)", ${sym}, nz, bytes[nz]);`);
      e.line(`else { memset(r, 0xA5, sizeof bytes); probe_check("returns", 1, "${x.bytes} zeroed, writable bytes"); }`);
      e.close();
      break;
  }
}

function emitScenario(e: Emitter, fn: RuntimeFunction, s: Scenario, present: Set<string>): void {
  e.line(`/* scenario ${s.name}: ${s.doc.replace(/\*\//g, '* /')} */`);
  const fixtures = fixtureOrder(s);
  const missing = [...new Set(fixtureSymbols(fixtures))].filter((x) => !present.has(x));
  if (missing.length > 0) {
    e.line(`probe_check("setup", 0, "%s", ${cString(`not exercised: the set-up needs ${missing.join(', ')}, which the library does not define`)});`);
    return;
  }
  if (s.integrity) {
    emitIntegrity(e, fn, s, s.integrity, fixtures, present);
    return;
  }
  if (s.events === 'client-close') {
    emitClientEvents(e, fn, present);
    return;
  }
  if (s.events) {
    emitEvents(e, fn, s.events, fixtures, present);
    return;
  }
  emitFixtures(e, fixtures);
  const c = callText(e, fn, s.args);
  for (const b of c.before) e.line(b);
  e.line('uint64_t started = probe_now_ms();');
  e.line(`probe_enter_call(${cString(fn.symbol)});`);
  if (fn.returns === 'void') e.line(`${c.expr};`);
  else e.line(`${cSpelling(fn.returns)} r = ${c.expr};`);
  e.line('probe_leave_call();');
  e.line('uint64_t elapsed = probe_now_ms() - started; (void)elapsed;');
  if (fn.returns === 'result') e.line(`int64_t first_arg = ${c.arg0};`);
  for (const a of c.after) e.line(a);
  if (s.exit) {
    e.line(`probe_check("exit-status", 0, "%s returned instead of ending the process", ${cString(fn.symbol)});`);
    return;
  }
  if (fn.returns === 'result') emitResultChecks(e, fn, s, present);
  else emitReturnChecks(e, fn, s);
}

/** The C call that sends `m` through a send route, every other argument bound. */
function integritySendCall(t: IntegrityTarget): string {
  switch (t.route) {
    case 'client-send':
      return 'osp_ws_send(integrity_a, m)';
    case 'server-send':
      return 'osp_ws_server_send(integrity_a, integrity_b, m)';
    case 'server-broadcast':
      return 'osp_ws_server_broadcast(integrity_a, m)';
    case 'client-send-binary':
      return 'osp_ws_send_binary(integrity_a, m)';
    case 'server-send-binary':
      return 'osp_ws_server_send_binary(integrity_a, integrity_b, m)';
    case 'server-broadcast-binary':
      return 'osp_ws_server_broadcast_binary(integrity_a, m)';
    default:
      throw new Error(`abi-check: ${t.route} is not a send route`);
  }
}

/** The file-scope callback an integrity scenario hands to the send drivers of probe_support.c. */
function integrityCallback(t: IntegrityTarget): string[] {
  if (t.direction !== 'send') return [];
  return [
    t.route === 'server-send' || t.route === 'server-send-binary' ? 'static int64_t integrity_a, integrity_b;' : 'static int64_t integrity_a;',
    'static OspResult integrity_send(const char *m) {',
    `    probe_enter_call(${cString(t.symbol)});`,
    `    OspResult r = ${integritySendCall(t)};`,
    '    probe_leave_call();',
    '    return r;',
    '}',
    '',
  ];
}

/** The codes of probe_integrity_set_content (probe_support.h). */
const CONTENT_CODE: Record<IntegrityContent, string> = { utf8: 'INTEGRITY_UTF8', nul: 'INTEGRITY_NUL_BYTES', binary: 'INTEGRITY_BINARY' };
const KIND_CODE: Record<IntegrityKind, string> = { unchecked: 'MSG_UNKNOWN', text: 'MSG_TEXT', binary: 'MSG_BINARY' };

/**
 * An integrity scenario (integrity.ts): configure the message limit, set up the route, push every
 * size through the function with the support library's driver, then close what was opened.
 */
function emitIntegrity(e: Emitter, fn: RuntimeFunction, s: Scenario, t: IntegrityTarget, fixtures: FixtureName[], present: Set<string>): void {
  const sym = cString(fn.symbol);
  const content: IntegrityContent = s.integrityContent ?? 'utf8';
  const kind = integrityKind(t, content);
  e.line(`probe_integrity_set_content(${CONTENT_CODE[content]}, ${KIND_CODE[kind]});`);
  e.line('int64_t integrity_limit = 0;');
  if (present.has('osp_ws_set_default_limit')) {
    // Before any server or connection exists: both copy the process default when created.
    const limits: [string, number][] = [['maxOutputBytes', INTEGRITY_MAX_OUTPUT], ['maxMessageBytes', INTEGRITY_LIMIT]];
    for (const [name, value] of limits) {
      e.open('{');
      e.line(`char *limit_name = probe_arg_string("osp_ws_set_default_limit", ${cString(name)}, ${Buffer.byteLength(name, 'utf8')});`);
      e.line('probe_enter_call("osp_ws_set_default_limit");');
      e.line(`OspResult set = osp_ws_set_default_limit(limit_name, INT64_C(${value}));`);
      e.line('probe_leave_call();');
      e.line('probe_arg_release(limit_name);');
      e.line('if (set.tag != OSP_RESULT_SUCCESS) { probe_setup_failed("osp_ws_set_default_limit", set); return; }');
      e.close();
    }
    e.line(`integrity_limit = INT64_C(${INTEGRITY_LIMIT});`);
  }
  e.line('(void)integrity_limit;');
  // The handler records whole messages (up to twice the limit: room for a runtime that appends).
  if (t.direction === 'receive') e.line(`probe_capture_start(${INTEGRITY_LIMIT * 2});`);
  emitFixtures(e, fixtures);
  e.line(`int64_t sizes[${INTEGRITY_SIZES.length + 1}] = {${INTEGRITY_SIZES.join(', ')}, integrity_limit};`);
  e.line(`int count = ${INTEGRITY_SIZES.length} + (integrity_limit > 0);`);
  const closeClient = (id: string): void => {
    if (!present.has('osp_ws_close')) return;
    e.line('probe_enter_call("osp_ws_close");');
    e.line(`(void)osp_ws_close(${id});`);
    e.line('probe_leave_call();');
  };
  const stopServer = (id: string): void => {
    if (!present.has('osp_ws_stop_server')) return;
    e.line('probe_enter_call("osp_ws_stop_server");');
    e.line(`(void)osp_ws_stop_server(${id});`);
    e.line('probe_leave_call();');
  };
  if (t.direction === 'send') {
    if (t.route === 'client-send' || t.route === 'client-send-binary') {
      e.line('integrity_a = fx_digestClientId;');
      e.line(`probe_integrity_send_digest(${sym}, integrity_send, sizes, count, integrity_limit);`);
      closeClient('fx_digestClientId');
    } else {
      e.line('integrity_a = fx_listeningServerId;');
      if (t.route === 'server-send' || t.route === 'server-send-binary') e.line('integrity_b = fx_connectionId;');
      e.line(`probe_integrity_send_raw(${sym}, integrity_send, fx_rawFd, sizes, count, integrity_limit);`);
      stopServer('fx_listeningServerId');
    }
    return;
  }
  // Receive routes: the probed call registers the recording handler.
  const c = callText(e, fn, s.args);
  for (const b of c.before) e.line(b);
  e.line(`probe_enter_call(${sym});`);
  e.line(`OspResult r = ${c.expr};`);
  e.line('probe_leave_call();');
  for (const a of c.after) e.line(a);
  e.open('if (r.tag != OSP_RESULT_SUCCESS) {');
  e.line('char msg[200]; size_t len = 0; const char *why = NULL;');
  e.line(`const char *said = r.tag == OSP_RESULT_ERROR && probe_read_cstring(r.value, msg, sizeof msg, &len, &why) ? probe_quote(msg, len) : "no Success";`);
  e.line(`probe_check("integrity", 0, "not exercised: %s returned %s", ${sym}, said);`);
  e.line(`probe_check("message-limit", 0, "not exercised: %s returned %s", ${sym}, said);`);
  if (t.route === 'server-receive' || t.route === 'server-receive-record') stopServer('fx_listeningServerId');
  e.line('return;');
  e.close();
  if (t.route === 'client-receive' || t.route === 'client-receive-record') {
    e.line(`probe_integrity_receive_digest(${sym}, sizes, count, integrity_limit);`);
    closeClient('r.value');
  } else {
    e.line(`probe_integrity_receive_raw(${sym}, fx_freePort, sizes, count, integrity_limit);`);
    stopServer('fx_listeningServerId');
  }
}

/** The registrations of a connection-events scenario: every event, logged by probe_support.c. */
const EVENT_REGISTRATIONS: [string, string][] = [
  ['osp_ws_server_on_open', 'probe_event_on_open'],
  ['osp_ws_server_on_message', 'probe_event_on_message'],
  ['osp_ws_server_on_close', 'probe_event_on_close'],
  // Handlers are registered before the server listens (the runtime refuses them afterwards).
  ['osp_ws_server_listen', ''],
];

/**
 * A connection-events scenario: register the logging handlers on a server, make it listen
 * (whichever handler is probed, all three are needed to see the order), let probe_events_drive run two raw
 * clients through it and check the `events` of kind `which`, then stop the server.
 */
function emitEvents(e: Emitter, fn: RuntimeFunction, which: 'open' | 'close', fixtures: FixtureName[], present: Set<string>): void {
  const sym = cString(fn.symbol);
  const absent = EVENT_REGISTRATIONS.map(([r]) => r).filter((r) => !present.has(r));
  if (absent.length > 0) {
    e.line(`probe_check("events", 0, "%s", ${cString(`not exercised: the scenario needs ${absent.join(', ')}, which the library does not define`)});`);
    return;
  }
  emitFixtures(e, fixtures);
  for (const [registrar, handler] of EVENT_REGISTRATIONS) {
    e.open('{');
    e.line(`probe_enter_call(${cString(registrar)});`);
    e.line(`OspResult registered = ${registrar}(${handler ? `fx_serverId, ${handler}, PROBE_ENV` : 'fx_serverId'});`);
    e.line('probe_leave_call();');
    e.open('if (registered.tag != OSP_RESULT_SUCCESS) {');
    e.line('char msg[200]; size_t len = 0; const char *why = NULL;');
    e.line('const char *said = registered.tag == OSP_RESULT_ERROR && probe_read_cstring(registered.value, msg, sizeof msg, &len, &why) ? probe_quote(msg, len) : "no Success";');
    e.line(`probe_check("events", 0, "not exercised: %s returned %s", ${cString(registrar)}, said);`);
    e.line('return;');
    e.close();
    e.close();
  }
  e.line(`probe_events_drive(${sym}, ${which === 'open' ? 0 : 1}, fx_freePort);`);
  if (present.has('osp_ws_stop_server')) {
    e.line('probe_enter_call("osp_ws_stop_server");');
    e.line('(void)osp_ws_stop_server(fx_serverId);');
    e.line('probe_leave_call();');
  }
}

/** The calls a client close-event scenario makes besides the probed registration. */
const CLIENT_EVENT_CALLS = ['osp_ws_connect', 'osp_ws_send', 'osp_ws_close'];

/**
 * The client close-event scenario (osp_ws_on_close): two clients of the harness's Node server,
 * each with the logging message handler and the probed close registration, each bound to its own
 * env (probe_client_event_env) so the events tell the connections apart. "abi-probe:go" makes the
 * server send 3 messages and then close (connection 0: 1000 "bye") or vanish (connection 1).
 */
function emitClientEvents(e: Emitter, fn: RuntimeFunction, present: Set<string>): void {
  const sym = cString(fn.symbol);
  const absent = CLIENT_EVENT_CALLS.filter((r) => !present.has(r));
  if (absent.length > 0) {
    e.line(`probe_check("events", 0, "%s", ${cString(`not exercised: the scenario needs ${absent.join(', ')}, which the library does not define`)});`);
    return;
  }
  const failed = (call: string, result: string): void => {
    e.open(`if (${result}.tag != OSP_RESULT_SUCCESS) {`);
    e.line('char msg[200]; size_t len = 0; const char *why = NULL;');
    e.line(`const char *said = ${result}.tag == OSP_RESULT_ERROR && probe_read_cstring(${result}.value, msg, sizeof msg, &len, &why) ? probe_quote(msg, len) : "no Success";`);
    e.line(`probe_check("events", 0, "not exercised: %s returned %s", ${cString(call)}, said);`);
    e.line('return;');
    e.close();
  };
  e.line('int64_t client_ids[2] = {0, 0};');
  e.open('for (int which = 0; which < 2; which++) {');
  e.line('const char *url = probe_client_events_url(which);');
  e.line('char *url_arg = probe_arg_string("osp_ws_connect", url, strlen(url));');
  e.line('probe_enter_call("osp_ws_connect");');
  e.line('OspResult connected = osp_ws_connect(url_arg, probe_client_event_on_message, probe_client_event_env(which));');
  e.line('probe_leave_call();');
  e.line('probe_arg_release(url_arg);');
  failed('osp_ws_connect', 'connected');
  e.line('client_ids[which] = connected.value;');
  e.line('probe_client_event_bind(which, connected.value);');
  e.line(`probe_enter_call(${sym});`);
  e.line(`OspResult registered = ${fn.symbol}(connected.value, probe_client_event_on_close, probe_client_event_env(which));`);
  e.line('probe_leave_call();');
  failed(fn.symbol, 'registered');
  e.line('char *go = probe_arg_string("osp_ws_send", "abi-probe:go", 12);');
  e.line('probe_enter_call("osp_ws_send");');
  e.line('OspResult sent = osp_ws_send(connected.value, go);');
  e.line('probe_leave_call();');
  e.line('probe_arg_release(go);');
  failed('osp_ws_send', 'sent');
  e.close();
  e.line(`probe_client_events_check(${sym});`);
  e.open('for (int which = 0; which < 2; which++) {');
  e.line('probe_enter_call("osp_ws_close");');
  e.line('(void)osp_ws_close(client_ids[which]); /* both ended already: an Err is expected */');
  e.line('probe_leave_call();');
  e.close();
}

export function entryName(symbol: string): string {
  return `probe_entry_${symbol}`;
}

/**
 * The main() of a probe executable holding the probes of `symbols`: `probe SYMBOL SCENARIO`.
 * Linking every probe into one executable costs one link per library; the harness falls back to
 * one executable per function when that link fails, so a bad symbol fails only its function.
 */
export function generateDispatcher(symbols: string[]): string {
  const out = ['/* GENERATED by osprey abi-check: runs one scenario of one probe. */', '#include <stdlib.h>', '#include <string.h>', '', '#include "probe_support.h"', ''];
  for (const s of symbols) out.push(`int ${entryName(s)}(int which);`);
  out.push('', 'int main(int argc, char **argv) {', '    if (argc < 3) return 2;', '    probe_begin();', '    int which = (int)strtol(argv[2], NULL, 10);');
  for (const s of symbols) out.push(`    if (strcmp(argv[1], ${cString(s)}) == 0) return ${entryName(s)}(which);`);
  out.push('    probe_check("probe", 0, "no probe for %s", argv[1]);', '    return 2;', '}', '');
  return out.join('\n');
}

/** The probe of `fn` (an entry point, see generateDispatcher), against a library that defines the symbols in `present`. */
export function generateProbe(fn: RuntimeFunction, present: Set<string>): ProbePlan {
  const scenarios = scenariosOf(fn);
  const out: string[] = [];
  out.push(`/* GENERATED by osprey abi-check from runtime-bindings/abi.ts: the probe of ${fn.symbol}. */`);
  out.push('#include <inttypes.h>', '#include <stdint.h>', '#include <stdio.h>', '#include <string.h>', '#include <unistd.h>', '', '#include "osprey_abi.h"', '#include "probe_support.h"', '');
  for (const kind of Object.keys(HANDLERS) as HandlerName[]) {
    out.push(handlerDefinition(kind), '');
  }
  const integrity = scenarios.find((s) => s.integrity !== undefined)?.integrity;
  if (integrity) out.push(...integrityCallback(integrity));
  const initHere = present.has('osp_rt_init') && fn.symbol !== 'osp_rt_init';
  const shutdownHere = present.has('osp_rt_shutdown') && fn.symbol !== 'osp_rt_shutdown';
  scenarios.forEach((s, i) => {
    const e = new Emitter();
    emitScenario(e, fn, s, present);
    out.push(`static void scenario_${i}(void) {`, ...e.lines, '}', '');
  });
  out.push(`int ${entryName(fn.symbol)}(int which) {`);
  if (initHere) out.push('    probe_enter_call("osp_rt_init");', '    osp_rt_init(OSP_ABI_VERSION);', '    probe_leave_call();');
  out.push('    switch (which) {');
  scenarios.forEach((_s, i) => out.push(`    case ${i}: scenario_${i}(); break;`));
  out.push('    default: probe_check("probe", 0, "no scenario %d", which); break;', '    }');
  if (shutdownHere) out.push('    probe_enter_call("osp_rt_shutdown");', '    osp_rt_shutdown(0);', '    probe_leave_call();');
  out.push('    probe_done();', '    return 0;', '}', '');
  const source = out.join('\n').replace('#include <string.h>', '#include <stdlib.h>\n#include <string.h>');
  return { fn, source, scenarios: scenarios.map((scenario) => ({ scenario, expected: expectedChecks(fn, scenario) })) };
}
