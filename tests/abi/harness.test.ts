/**
 * `osprey abi-check` against three kinds of runtime library:
 *   - our own runtime (build/runtime/release/libosprey_runtime.a) must pass every check;
 *   - fixtures/old_runtime.c, the old raw-integer ABI, must fail every function, each with a
 *     message that says what is wrong;
 *   - fixtures/subtle_runtime.c, a small correct runtime, must pass when built clean, and each
 *     fault compiled into it must fail the right check of the right function, with the right
 *     reason, and nothing else;
 *   - our runtime with the old runtime's 4 KiB truncation put back, on the send side
 *     (fixtures/truncate_send.c) or before the handler (fixtures/truncate_receive.c), must fail
 *     the integrity check of exactly the message-carrying functions of that side, naming the
 *     function and the size.
 * The fixtures are compiled into a temporary directory (the old one as a static archive, the
 * subtle ones as shared objects, so both kinds of library are exercised).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ABI_VERSION, RUNTIME_FUNCTIONS } from '../../runtime-bindings/abi.ts';
import { RUNTIME_INCLUDE_DIR, runtimeLibrary } from '../../runtime-bindings/toolchain.ts';
import { INTEGRITY_LIMIT, INTEGRITY_SIZES, INTEGRITY_TARGETS, integrityCasesFor, integrityMessage, integrityTarget } from '../../tools/abi-check/integrity.ts';
import { abiCheckMain, runAbiCheck } from '../../tools/abi-check/main.ts';
import type { AbiReport, CheckRow } from '../../tools/abi-check/report.ts';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const OUR_LIBRARY = runtimeLibrary('release');

/** ABI functions our runtime does not define yet (the WebSocket functions arrive separately). */
function missingFromOurRuntime(): string[] {
  if (!existsSync(OUR_LIBRARY)) return ['the library itself (run `npm run build:runtime`)'];
  const out = execFileSync('nm', ['-g', '--defined-only', OUR_LIBRARY], { encoding: 'utf8' });
  const defined = new Set(out.split('\n').map((l) => l.trim().split(/\s+/)[2]));
  return RUNTIME_FUNCTIONS.map((f) => f.symbol).filter((s) => !defined.has(s));
}
const missing = missingFromOurRuntime();

let dir: string;

function cc(args: string[]): void {
  execFileSync('gcc', ['-std=gnu11', '-O1', '-g', '-fPIC', '-Wall', '-Wextra', '-Werror', ...args], { stdio: 'pipe' });
}

function subtleLibrary(fault?: string): string {
  const lib = join(dir, `libsubtle_${fault ?? 'clean'}.so`);
  if (!existsSync(lib)) {
    cc(['-shared', `-DABI_VERSION=${ABI_VERSION}`, ...(fault ? [`-D${fault}`] : []), join(FIXTURES, 'subtle_runtime.c'), '-o', lib, '-lgc', '-lcrypto', '-lpthread']);
  }
  return lib;
}

const failures = (r: AbiReport): CheckRow[] => r.rows.filter((x) => !x.pass);
const show = (rows: CheckRow[]): string[] => rows.map((x) => `${x.function} ${x.check}: ${x.reason}`);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'osprey-abi-fixtures-'));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * Our release archive with `symbols` renamed to real_<symbol> (objcopy) and the fixture that
 * defines wrappers of them added: the real runtime with one fault put back.
 */
function wrappedRuntime(fixture: string, symbols: string[], flaw?: string): string {
  const name = flaw ? `${fixture}_${flaw}` : fixture;
  const lib = join(dir, `lib${name}.a`);
  const obj = join(dir, `${name}.o`);
  copyFileSync(OUR_LIBRARY, lib);
  execFileSync('objcopy', [...symbols.flatMap((s) => ['--redefine-sym', `${s}=real_${s}`]), lib], { stdio: 'pipe' });
  cc(['-c', `-I${RUNTIME_INCLUDE_DIR}`, ...(flaw ? [`-D${flaw}`] : []), join(FIXTURES, `${fixture}.c`), '-o', obj]);
  execFileSync('ar', ['rs', lib, obj], { stdio: 'pipe' });
  return lib;
}

const MESSAGE_FUNCTIONS = INTEGRITY_TARGETS.map((t) => t.symbol);

describe('our runtime', () => {
  const title =
    missing.length === 0
      ? 'passes every check of every ABI function, message integrity included'
      : `passes every check of every ABI function - SKIPPED until the runtime defines ${missing.join(', ')}`;
  it.skipIf(missing.length > 0)(title, async () => {
    const r = await runAbiCheck({ runtime: OUR_LIBRARY });
    expect(show(failures(r))).toEqual([]);
    expect(new Set(r.rows.map((x) => x.function))).toEqual(new Set(RUNTIME_FUNCTIONS.map((f) => f.symbol)));
    // Integrity and the limit were really exercised, up to the configured limit, for every
    // message-carrying function in its direction.
    for (const fn of MESSAGE_FUNCTIONS) {
      const integrity = r.rows.find((x) => x.function === fn && x.check === 'integrity');
      expect(integrity?.reason, fn).toMatch(/\[integrity\] 11 messages of 0 to 1,048,579 bytes \(the configured limit\) arrived byte for byte, in order/);
      // The same sizes with NUL bytes inside: Strings carry their length.
      expect(integrity?.reason, fn).toMatch(/\[integrity-nul-bytes\] 11 messages of 0 to 1,048,579 bytes \(the configured limit\) arrived byte for byte, in order/);
      // Binary messages of every byte value, through the functions that carry binary.
      const binary = integrityTarget(fn)!.carries !== 'text';
      expect(/\[integrity-binary\] 11 messages of 0 to 1,048,579 bytes \(the configured limit\) arrived byte for byte, in order/.test(integrity?.reason ?? ''), fn).toBe(binary);
      const limit = r.rows.find((x) => x.function === fn && x.check === 'message-limit');
      expect(limit?.reason, fn).toMatch(/1,048,580-byte message \(limit \+ 1\).* refused with (Error "websocket\w+: message too large|Close 1009)/);
    }
    // The WebSocketMessage handlers are among them, in both directions of the client and server.
    expect(MESSAGE_FUNCTIONS).toEqual(expect.arrayContaining(['osp_ws_connect_messages', 'osp_ws_server_on_messages']));
    // Connection events: one open first and one close last per connection, 1000 and 1006.
    for (const fn of ['osp_ws_server_on_open', 'osp_ws_server_on_close']) {
      const events = r.rows.find((x) => x.function === fn && x.check === 'events');
      expect(events?.pass, `${fn} ${events?.reason}`).toBe(true);
    }
    // And for a client: one close event after its messages, 1000 "bye" from its server, 1006 when the server vanished.
    const clientEvents = r.rows.find((x) => x.function === 'osp_ws_on_close' && x.check === 'events');
    expect(clientEvents?.reason).toBe('[events] one close event per client connection, after its messages: 1000 "bye" when the server closed, 1006 when it vanished');
    expect(clientEvents?.pass).toBe(true);
  });
});

describe('the integrity messages', () => {
  it('in the binary case are exactly the size asked for, hold every byte value from 256 bytes on, are not UTF-8, and differ by index', () => {
    for (const n of [...INTEGRITY_SIZES, INTEGRITY_LIMIT]) {
      const m = integrityMessage(n, 4, 'binary');
      expect(m.length).toBe(n);
      if (n >= 256) {
        expect(new Set(m.subarray(0, 256)).size).toBe(256);
        expect(Buffer.from(m.toString('utf8'), 'utf8').equals(m)).toBe(false);
      }
    }
    expect(integrityMessage(4096, 1, 'binary').equals(integrityMessage(4096, 2, 'binary'))).toBe(false);
  });

  it('are exactly the size asked for, valid UTF-8 with characters of every width, and differ by index', () => {
    for (const n of [...INTEGRITY_SIZES, INTEGRITY_LIMIT]) {
      const m = integrityMessage(n, 3);
      expect(m.length).toBe(n);
      expect(Buffer.from(m.toString('utf8'), 'utf8').equals(m)).toBe(true); // round-trips: valid UTF-8
    }
    const text = integrityMessage(65536, 0).toString('utf8');
    const widths = new Set([...text].map((ch) => Buffer.byteLength(ch)));
    expect([...widths].sort()).toEqual([1, 2, 3, 4]);
    expect(integrityMessage(4096, 1).equals(integrityMessage(4096, 2))).toBe(false);
  });
});

/** The integrity reason of a function every integrity scenario of which (UTF-8 text, text with NUL
 *  bytes, and binary for the functions that carry it) failed the same way. */
const everyCase = (fn: string, failure: string): RegExp =>
  new RegExp(`^${integrityCasesFor(integrityTarget(fn)!).map((c) => `\\[${c.content === 'utf8' ? 'integrity' : `integrity-${c.name}`}\\] ${failure}`).join('; ')}$`);
const bothCases = (failure: string): RegExp => new RegExp(`^\\[integrity\\] ${failure}; \\[integrity-nul-bytes\\] ${failure}$`);

/** The receiving functions fixtures/truncate_receive.c wraps. */
const RECEIVE_WRAPPED = ['osp_ws_connect', 'osp_ws_server_on_message', 'osp_ws_connect_messages', 'osp_ws_server_on_messages'];
const RECORD_HANDLERS = ['osp_ws_connect_messages', 'osp_ws_server_on_messages'];

describe.skipIf(missing.length > 0)('our runtime with 4 KiB truncation put back', () => {
  const sides = [
    {
      fixture: 'truncate_send',
      renamed: ['osp_ws_send', 'osp_ws_server_send', 'osp_ws_server_broadcast', 'osp_ws_send_binary', 'osp_ws_server_send_binary', 'osp_ws_server_broadcast_binary'],
      // What the peer got, in the words of each route.
      reason: (fn: string) => everyCase(fn, `${fn}: the 4,097-byte message arrived (as 4,09\\d bytes \\(truncated\\)|truncated to its first 4,09\\d bytes); 5 sizes failed: 4,097, 65,535, 65,536, 1,000,000, 1,048,579 bytes`),
      // Cut to 4 KiB, one over the limit is no longer refused either.
      limit: /returned Success for a 1,048,580-byte message, one byte over the configured limit of 1,048,579: it must return Error, not send it; the peer received 4,09\d bytes of it/,
    },
    {
      fixture: 'truncate_receive',
      renamed: RECEIVE_WRAPPED,
      reason: (fn: string) => everyCase(fn, `${fn}: the 4,097-byte message (reached the handler as 4,09\\d bytes \\(truncated\\)|arrived truncated to its first 4,09\\d bytes at the handler); 5 sizes failed: 4,097, 65,535, 65,536, 1,000,000, 1,048,579 bytes`),
      // The wire is intact: the runtime still refuses the oversized message with 1009.
      limit: undefined,
    },
  ];
  describe.each(sides)('$fixture', (side) => {
    let report: AbiReport;
    beforeAll(async () => {
      report = await runAbiCheck({ runtime: wrappedRuntime(side.fixture, side.renamed) });
    }, 120_000);

    it.each(side.renamed)('%s fails integrity, naming the function and the sizes cut', (fn) => {
      const row = report.rows.find((x) => x.function === fn && x.check === 'integrity');
      expect(row?.pass, row?.reason).toBe(false);
      expect(row!.reason).toMatch(side.reason(fn));
      const summary = report.functions.find((f) => f.function === fn);
      expect(summary?.firstFailure).toMatch(new RegExp(`^(integrity|message-limit): .*${fn}`));
    });

    it('fails nothing else', () => {
      const allowed = (x: CheckRow): boolean => side.renamed.includes(x.function) && (x.check === 'integrity' || (side.limit !== undefined && x.check === 'message-limit'));
      expect(show(failures(report).filter((x) => !allowed(x)))).toEqual([]);
      for (const fn of side.renamed) {
        const limit = report.rows.find((x) => x.function === fn && x.check === 'message-limit');
        if (side.limit) expect(limit?.reason, fn).toMatch(side.limit);
        else expect(limit?.pass, limit?.reason).toBe(true);
      }
    });
  });
});

describe.skipIf(missing.length > 0)('our runtime with WebSocketMessage handlers lied to (fixtures/truncate_receive.c)', () => {
  // Each flaw is caught by the case that exposes it, naming the function and the first size it
  // damages; the flaws apply to every wrapped handler, only the WebSocketMessage ones are probed.
  const flaws = [
    {
      flaw: 'CUT_AT_NUL',
      // UTF-8 text has no NUL: only the cases with NUL bytes fail, down to a few bytes.
      cases: ['integrity-nul-bytes', 'integrity-binary'],
      failure: (fn: string) => `${fn}: the \\d[\\d,]*-byte message (reached the handler as \\d+ bytes \\(truncated\\)|arrived truncated to its first \\d+ bytes at the handler); \\d+ sizes failed: [\\d, ]*1,000,000, 1,048,579 bytes`,
    },
    {
      flaw: 'DROP_LAST_BYTE',
      cases: ['integrity', 'integrity-nul-bytes', 'integrity-binary'],
      // The client's announcements lose a byte too, so the 0-byte message cannot be matched.
      failure: (fn: string) => `${fn}: the (0-byte message reached the handler altered \\(same length, different SHA-256\\); 11 sizes failed: 0, |1-byte message arrived truncated to its first 0 bytes at the handler; 10 sizes failed: )1, 125, 126, 4,095, 4,096, 4,097, 65,535, 65,536, 1,000,000, 1,048,579 bytes`,
    },
    {
      flaw: 'BINARY_AS_TEXT',
      cases: ['integrity-binary'],
      failure: (fn: string) => `${fn}: the 0-byte message reached the handler whole but with the WebSocketMessage type "text": the (peer|raw client) sent it as binary; 11 sizes failed: 0, 1, 125, 126, 4,095, 4,096, 4,097, 65,535, 65,536, 1,000,000, 1,048,579 bytes`,
    },
  ];
  describe.each(flaws)('$flaw', (f) => {
    let report: AbiReport;
    beforeAll(async () => {
      report = await runAbiCheck({ runtime: wrappedRuntime('truncate_receive', RECEIVE_WRAPPED, f.flaw), only: RECORD_HANDLERS });
    }, 120_000);

    it.each(RECORD_HANDLERS)('%s fails integrity in exactly the cases the flaw touches, naming the function and the sizes', (fn) => {
      const row = report.rows.find((x) => x.function === fn && x.check === 'integrity');
      expect(row?.pass, row?.reason).toBe(false);
      const failed = row!.reason.split('; [').map((part, i) => (i === 0 ? part : `[${part}`)).filter((part) => !/arrived byte for byte, in order$/.test(part));
      expect(failed.map((part) => /^\[([\w-]+)\]/.exec(part)?.[1])).toEqual(f.cases);
      for (const part of failed) expect(part).toMatch(new RegExp(`^\\[[\\w-]+\\] ${f.failure(fn)}$`));
    });

    it('fails nothing else (the limit is still enforced on the wire)', () => {
      expect(show(failures(report).filter((x) => x.check !== 'integrity'))).toEqual([]);
    });
  });
});

describe.skipIf(missing.length > 0)('our runtime with the close events of dropped connections lost (fixtures/drop_close_events.c)', () => {
  // Only the event registrations are probed: the rest of the library is ours, checked above.
  const EVENT_FUNCTIONS = ['osp_ws_server_on_open', 'osp_ws_server_on_close', 'osp_ws_server_on_message', 'osp_ws_on_close'];
  const FLAWED = ['osp_ws_server_on_close', 'osp_ws_on_close'];
  let report: AbiReport;
  beforeAll(async () => {
    report = await runAbiCheck({ runtime: wrappedRuntime('drop_close_events', FLAWED), only: EVENT_FUNCTIONS });
  }, 120_000);

  it('fails the events check of osp_ws_server_on_close, naming the function and the dropped connection', () => {
    const row = report.rows.find((x) => x.function === 'osp_ws_server_on_close' && x.check === 'events');
    expect(row?.pass, row?.reason).toBe(false);
    expect(row!.reason).toMatch(/^\[events\] osp_ws_server_on_close: the dropped \(TCP closed without a close frame\) connection \(id \d+\) got no close event within 3 s$/);
  });

  it('fails the events check of osp_ws_on_close, naming the function and the client whose server vanished', () => {
    const row = report.rows.find((x) => x.function === 'osp_ws_on_close' && x.check === 'events');
    expect(row?.pass, row?.reason).toBe(false);
    expect(row!.reason).toMatch(/^\[events\] osp_ws_on_close: the client whose server vanished \(TCP closed without a close frame\) connection \(id \d+\) got no close event within 3 s$/);
  });

  it("fails nothing else (the open events and the close frame's event are intact)", () => {
    expect(show(failures(report).filter((x) => !(FLAWED.includes(x.function) && x.check === 'events')))).toEqual([]);
    expect(report.rows.find((x) => x.function === 'osp_ws_server_on_open' && x.check === 'events')?.pass).toBe(true);
  });
});

describe('the old raw-integer runtime (fixtures/old_runtime.c)', () => {
  let report: AbiReport;
  let status: number;

  beforeAll(async () => {
    const obj = join(dir, 'old_runtime.o');
    const lib = join(dir, 'libold_runtime.a');
    cc(['-c', join(FIXTURES, 'old_runtime.c'), '-o', obj]);
    execFileSync('ar', ['rcs', lib, obj]);
    // Through the command-line entry, as a user would run it: --json on stdout.
    let stdout = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stdout += String(chunk);
      return true;
    });
    try {
      status = await abiCheckMain(['--runtime', lib, '--json']);
    } finally {
      spy.mockRestore();
    }
    report = JSON.parse(stdout) as AbiReport;
  });

  it('exits 1', () => {
    expect(status).toBe(1);
    expect(report.kind).toBe('static');
  });

  it('fails every function', () => {
    const passing = report.functions.filter((f) => f.failed === 0).map((f) => f.function);
    expect(passing).toEqual([]);
  });

  const row = (fn: string, check: string): CheckRow | undefined => report.rows.find((x) => x.function === fn && x.check === check);

  // One precise message per function.
  const expected: [string, string, RegExp][] = [
    ['osp_rt_init', 'symbol', /osp_rt_init is not defined by .*libold_runtime\.a/],
    ['osp_rt_shutdown', 'symbol', /not defined/],
    ['osp_rt_fail', 'symbol', /not defined/],
    ['osp_alloc', 'symbol', /not defined/],
    ['osp_string_concat', 'symbol', /not defined/],
    ['osp_string_build', 'symbol', /not defined/],
    ['osp_string_equals', 'symbol', /not defined/],
    ['osp_int_to_string', 'symbol', /not defined/],
    ['osp_bool_to_string', 'symbol', /not defined/],
    ['osp_print', 'symbol', /not defined/],
    ['osp_sleep', 'symbol', /not defined/],
    ['osp_ws_connect', 'result-tag', /\[error\] returned tag -6: not a tagged Result - raw integer return/],
    ['osp_ws_connect', 'success-path', /got tag 1 \(Error\) whose payload 0x0 is NULL, not a message - a raw integer return/],
    ['osp_ws_connect', 'handler-invoked', /handler registered with osp_ws_connect never invoked within 2\.0 s/],
    ['osp_ws_send', 'result-tag', /returned tag -2: not a tagged Result - raw integer return/],
    ['osp_ws_close', 'error-path', /expected Error for an unknown connection id, got Success/],
    ['osp_ws_create_server', 'result-tag', /\[error\] returned tag -1: not a tagged Result/],
    ['osp_ws_server_listen', 'success-path', /not exercised: set-up call osp_ws_create_server returned tag 1 \(Error\) with payload 0x0/],
    ['osp_ws_server_broadcast', 'result-tag', /returned tag -1: not a tagged Result/],
    ['osp_ws_stop_server', 'error-path', /expected Error for an unknown server id, got Success/],
    ['osp_ws_server_on_message', 'symbol', /osp_ws_server_on_message is not defined/],
    ['osp_ws_server_send', 'symbol', /osp_ws_server_send is not defined/],
  ];
  it.each(expected)('%s fails %s with a precise reason', (fn, check, reason) => {
    const r = row(fn, check);
    expect(r, `${fn} ${check}`).toBeDefined();
    expect(r!.pass).toBe(false);
    expect(r!.reason).toMatch(reason);
  });

  it('names every ABI function exactly once in the summary', () => {
    expect(report.functions.map((f) => f.function)).toEqual(RUNTIME_FUNCTIONS.map((f) => f.symbol));
  });
});

describe('the subtle runtime (fixtures/subtle_runtime.c)', () => {
  it('passes every check when built without faults (no false alarms)', async () => {
    const r = await runAbiCheck({ runtime: subtleLibrary() });
    expect(show(failures(r))).toEqual([]);
  });

  interface Fault {
    macro: string;
    /** The row that must fail, and its reason. */
    fn: string;
    check: string;
    reason: RegExp;
    /** Functions allowed to fail as a consequence (their probes use `fn` for set-up). */
    affected: string[];
    /** Hanging probes wait out their timeout: run them all at once. */
    timeoutMs?: number;
  }
  const faults: Fault[] = [
    {
      macro: 'FAULT_SRET',
      fn: 'osp_ws_connect',
      check: 'result-tag',
      reason: /returned tag 0x[0-9a-f]+, the address of its first argument: the function returns a struct larger than 16 bytes through a hidden sret pointer/,
      affected: ['osp_ws_connect', 'osp_ws_send', 'osp_ws_close', 'osp_ws_send_binary', 'osp_ws_on_close'],
    },
    {
      macro: 'FAULT_SWAP',
      fn: 'osp_ws_server_on_message',
      check: 'handler-env',
      reason: /handler called with env 0x[0-9a-f]+ instead of the registered 0x[0-9a-f]+ - it points at the received message: message and env swapped\?/,
      // The connection-events scenarios register a message handler too.
      affected: ['osp_ws_server_on_message', 'osp_ws_server_on_open', 'osp_ws_server_on_close'],
    },
    {
      macro: 'FAULT_SWAP',
      fn: 'osp_ws_server_on_message',
      check: 'handler-args',
      reason: /string argument 2 is the registered env 0x[0-9a-f]+: arguments swapped\?/,
      // The connection-events scenarios register a message handler too.
      affected: ['osp_ws_server_on_message', 'osp_ws_server_on_open', 'osp_ws_server_on_close'],
    },
    {
      macro: 'FAULT_LATE',
      fn: 'osp_ws_connect',
      check: 'handler-after-close',
      reason: /handler called \d+ ms after osp_ws_close returned/,
      affected: ['osp_ws_connect'],
    },
    {
      macro: 'FAULT_REORDER',
      fn: 'osp_ws_connect',
      check: 'handler-order',
      reason: /handler received message \d+ after message \d+: out of order or repeated/,
      affected: ['osp_ws_connect', 'osp_ws_on_close'],
    },
    {
      macro: 'FAULT_REORDER',
      fn: 'osp_ws_connect',
      check: 'integrity',
      reason: /osp_ws_connect: the 0-byte message could not be matched: the handler received 0 bytes where the peer's announcement of message #0 was due - messages reordered or delivered twice/,
      // The client close-event scenario counts its connections' messages.
      affected: ['osp_ws_connect', 'osp_ws_on_close'],
    },
    {
      macro: 'FAULT_DROP',
      fn: 'osp_ws_server_broadcast',
      check: 'integrity',
      reason: bothCases('osp_ws_server_broadcast: the 65,536-byte message never arrived: osp_ws_server_broadcast returned Success but the peer received nothing within 5 s \\(dropped\\); the sequence stopped there \\(2 of 11 sizes not checked\\)'),
      affected: ['osp_ws_server_broadcast'],
    },
    {
      macro: 'FAULT_SYNC',
      fn: 'osp_ws_connect',
      check: 'handler-thread',
      reason: /handler ran on the calling thread, synchronously inside osp_ws_connect/,
      affected: ['osp_ws_connect', 'osp_ws_on_close'],
    },
    {
      macro: 'FAULT_BAD_MESSAGE',
      fn: 'osp_ws_send',
      check: 'error-message',
      reason: /osp_ws_send returned an Error message that is not valid UTF-8: .* in "websocketSend: connexion 987654321 inconnue \\xE9"/,
      affected: ['osp_ws_send'],
    },
    {
      macro: 'FAULT_LEAK',
      fn: 'osp_ws_create_server',
      check: 'no-leak',
      reason: /direct leak of \d+ byte\(s\) in 1 object\(s\) allocated in osp_ws_create_server/,
      affected: ['osp_ws_create_server'],
    },
    {
      macro: 'FAULT_BORROW',
      fn: 'osp_ws_create_server',
      check: 'no-crash',
      reason: /heap-use-after-free .* string argument passed to osp_ws_create_server, freed after that call returned: the library kept a borrowed pointer/,
      affected: ['osp_ws_create_server', 'osp_ws_server_on_message', 'osp_ws_server_on_messages', 'osp_ws_server_broadcast', 'osp_ws_server_send', 'osp_ws_server_send_binary', 'osp_ws_server_broadcast_binary', 'osp_ws_server_on_open', 'osp_ws_server_on_close'],
    },
    {
      macro: 'FAULT_CLOSE_TWICE',
      fn: 'osp_ws_server_on_close',
      check: 'events',
      reason: /^\[events\] osp_ws_server_on_close: the closing \(close frame 1000\) connection \(id \d+\) got 2 close events, not one$/,
      affected: ['osp_ws_server_on_close', 'osp_ws_on_close'],
    },
    {
      macro: 'FAULT_CLOSE_TWICE',
      fn: 'osp_ws_on_close',
      check: 'events',
      reason: /^\[events\] osp_ws_on_close: the client whose server closed with 1000 "bye" connection \(id \d+\) got 2 close events, not one$/,
      affected: ['osp_ws_server_on_close', 'osp_ws_on_close'],
    },
    {
      macro: 'FAULT_SYNC',
      fn: 'osp_ws_on_close',
      check: 'events',
      reason: /^\[events\] osp_ws_on_close: the client whose server closed with 1000 "bye" connection \(id \d+\) delivered 4 of its 3 messages before its close event$/,
      affected: ['osp_ws_connect', 'osp_ws_on_close'],
    },
    {
      macro: 'FAULT_NUL_CUT',
      fn: 'osp_ws_create_server',
      check: 'error-path',
      reason: /^\[nul-address\] expected Error for a free port, address "127\.0\.0\.1\\0junk" \(a NUL byte\), got Success \(payload \d+\); \[nul-path\] expected Error for a free port, path "\/abi\\0junk" \(a NUL byte\), got Success/,
      affected: ['osp_ws_create_server', 'osp_ws_server_set_limit', 'osp_ws_set_default_limit', 'osp_ws_server_allow_origin', 'osp_ws_set_trusted_ca', 'osp_ws_server_add_subprotocol'],
    },
    {
      macro: 'FAULT_NUL_CUT',
      fn: 'osp_ws_server_allow_origin',
      check: 'error-path',
      reason: /^\[nul\] expected Error for the origin "http:\/\/localhost:8080\\0\.evil" \(a NUL byte after a valid origin\), got Success/,
      affected: ['osp_ws_create_server', 'osp_ws_server_set_limit', 'osp_ws_set_default_limit', 'osp_ws_server_allow_origin', 'osp_ws_set_trusted_ca', 'osp_ws_server_add_subprotocol'],
    },
    {
      macro: 'FAULT_HANG',
      fn: 'osp_ws_stop_server',
      check: 'no-crash',
      reason: /\[success\] hung: no exit within 15 s, during the call to osp_ws_stop_server/,
      // Every probe that leaves a listening server behind hangs in osp_rt_shutdown too (26 of
      // them). The probes that do not hang must still finish inside the timeout: with 4 s, the
      // integrity probes of the client sends (11 messages up to 1 MiB) outlasted it while the
      // whole suite loaded the machine, and showed up as false failures of unaffected functions.
      // The fault is a hang forever (a join that is never woken), so any finite timeout catches
      // it; 15 s is 1.5x the default every other fault run uses. The hung probes sleep in
      // pthread_join and cost no CPU, so they all run at once (`hangJobs`): the price of the
      // generous timeout is paid once, not once per batch.
      affected: ['osp_ws_stop_server', 'osp_ws_server_listen', 'osp_ws_server_broadcast', 'osp_ws_server_on_message', 'osp_ws_server_on_messages', 'osp_ws_server_send', 'osp_ws_server_send_binary', 'osp_ws_server_broadcast_binary', 'osp_ws_send', 'osp_ws_send_binary', 'osp_ws_server_on_open', 'osp_ws_server_on_close'],
      timeoutMs: 15_000,
    },
  ];
  /** Enough parallel probe processes that every probe of a hanging fault runs in one batch. */
  const hangJobs = 32;

  const reports = new Map<string, Promise<AbiReport>>();
  const reportFor = (macro: string, timeoutMs?: number): Promise<AbiReport> => {
    let p = reports.get(macro);
    if (!p) {
      p = runAbiCheck({ runtime: subtleLibrary(macro), timeoutMs, jobs: timeoutMs ? hangJobs : undefined });
      reports.set(macro, p);
    }
    return p;
  };

  it.each(faults.map((f) => [f.macro, f.fn, f.check, f] as const))('%s: %s fails %s', async (_m, _fn, _check, f) => {
    const r = await reportFor(f.macro, f.timeoutMs);
    const row = r.rows.find((x) => x.function === f.fn && x.check === f.check);
    expect(row, `${f.fn} ${f.check}`).toBeDefined();
    expect(row!.pass, row!.reason).toBe(false);
    expect(row!.reason).toMatch(f.reason);
    const elsewhere = failures(r).filter((x) => !f.affected.includes(x.function));
    expect(show(elsewhere)).toEqual([]);
  });
});
