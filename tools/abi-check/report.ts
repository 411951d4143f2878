/**
 * Turns probe outcomes into the per-function report (one row per function and check) and renders
 * it as a terminal table or JSON. Checks a probe could not reach (crash, hang, failed set-up) are
 * failures that name the cause, so an absent row never reads as a pass.
 */
import type { RuntimeFunction } from '../../runtime-bindings/abi.ts';
import { CHECK_ORDER, type CheckName } from './checks.ts';
import { scenariosOf } from './probe-gen.ts';
import type { RuntimeLibrary } from './library.ts';
import { SANITIZER_EXIT, type ProbeOutcome, type ScenarioOutcome } from './runner.ts';

export interface CheckRow {
  function: string;
  osprey?: string;
  check: CheckName;
  pass: boolean;
  reason: string;
}

export interface FunctionSummary {
  function: string;
  osprey?: string;
  passed: number;
  failed: number;
  /** "check: reason" of the first failing check. */
  firstFailure?: string;
}

export interface AbiReport {
  library: string;
  kind: 'static' | 'shared';
  /** Check rows that passed and failed. */
  passed: number;
  failed: number;
  functions: FunctionSummary[];
  rows: CheckRow[];
}

/** A failure that only says a check could not run (its cause is reported elsewhere). */
function isSecondary(reason: string): boolean {
  return /^(\[[\w-]+\] )?not (reached|exercised)/.test(reason);
}

/** How a scenario process ended, in words, or undefined when it ended as it should. */
function processProblem(s: ScenarioOutcome, timeoutMs: number): string | undefined {
  const where = s.lastStep ? `, ${s.lastStep}` : '';
  if (s.timedOut) return `hung: no exit within ${timeoutMs / 1000} s${where}`;
  if (s.sanitizer) return `${s.sanitizer}${where}${s.blame ? ` - ${s.blame.note}` : ''}`;
  const exit = s.planned.scenario.exit;
  if (exit) return undefined; // judged by exit-status
  if (s.signal) return `killed by ${s.signal}${where}`;
  if (!s.done) {
    const last = s.stderr.trim().split('\n').pop()?.trim();
    return `process ended with status ${s.exitCode}${where} before the probe finished${last ? `; stderr: ${last.slice(0, 160)}` : ''}`;
  }
  const leakOnly = s.exitCode === SANITIZER_EXIT && s.stderr.includes('LeakSanitizer: detected memory leaks');
  if (s.exitCode !== 0 && !leakOnly) return `process exited with status ${s.exitCode} after the probe finished`;
  return undefined;
}

function exitStatus(s: ScenarioOutcome): { pass: boolean; reason: string } {
  const exit = s.planned.scenario.exit!;
  const reported = s.checks.find((c) => c.check === 'exit-status');
  if (reported) return { pass: reported.pass, reason: reported.reason };
  if (s.timedOut || s.signal || s.sanitizer) return { pass: false, reason: `expected exit status ${exit.code}; ${s.sanitizer ?? (s.signal ? `killed by ${s.signal}` : 'hung')}` };
  const codeOk = exit.code === 'nonzero' ? s.exitCode !== 0 : s.exitCode === exit.code;
  const textOk = s.stderr.includes(exit.stderrIncludes);
  if (codeOk && textOk) return { pass: true, reason: `exited with status ${s.exitCode} and printed "${exit.stderrIncludes}"` };
  const got = s.stderr.trim().split('\n')[0]?.slice(0, 120) ?? '';
  return {
    pass: false,
    reason: `expected exit status ${exit.code} and stderr containing "${exit.stderrIncludes}", got status ${s.exitCode}${got ? ` and stderr "${got}"` : ' and no stderr'}`,
  };
}

export function buildReport(lib: RuntimeLibrary, functions: RuntimeFunction[], outcomes: Map<string, ProbeOutcome>, timeoutMs: number): AbiReport {
  const rows: CheckRow[] = [];
  // A leak belongs to the ABI function whose call allocated it, whichever probe saw it (a server
  // created as set-up in five probes leaks in five processes but is one fault).
  const leaksOf = new Map<string, Map<string, Set<string>>>();
  const blamed = new Map<string, string[]>();
  for (const o of outcomes.values()) {
    for (const s of o.scenarios) {
      if (s.blame && s.blame.fn !== o.plan.fn.symbol) {
        const list = blamed.get(s.blame.fn) ?? [];
        list.push(`[seen probing ${o.plan.fn.symbol}] ${processProblem(s, timeoutMs)}`);
        blamed.set(s.blame.fn, list);
      }
      if (processProblem(s, timeoutMs)) continue;
      for (const l of s.leaks) {
        const owner = l.fn && functions.some((f) => f.symbol === l.fn) ? l.fn : o.plan.fn.symbol;
        const byText = leaksOf.get(owner) ?? new Map<string, Set<string>>();
        const probes = byText.get(l.text) ?? new Set<string>();
        probes.add(o.plan.fn.symbol);
        byText.set(l.text, probes);
        leaksOf.set(owner, byText);
      }
    }
  }
  for (const fn of functions) {
    const add = (check: CheckName, pass: boolean, reason: string): void => {
      rows.push({ function: fn.symbol, osprey: fn.osprey?.name, check, pass, reason });
    };
    if (!lib.defined.has(fn.symbol)) {
      add('symbol', false, `${fn.symbol} is not defined by ${lib.path} (nm${lib.kind === 'shared' ? ' -D' : ''})`);
      continue;
    }
    add('symbol', true, `defined${lib.kind === 'shared' ? ' in the dynamic symbol table' : ''}`);
    const o = outcomes.get(fn.symbol);
    if (!o || o.buildError) {
      add('link', false, o?.buildError ?? 'not probed');
      continue;
    }
    add('link', true, 'probe compiled against the generated header and linked with ASan + UBSan');

    // Probe-reported checks, merged over scenarios: a check fails when any scenario failed it.
    const merged = new Map<CheckName, { pass: boolean; reasons: string[] }>();
    const note = (check: CheckName, pass: boolean, reason: string, scenario: string): void => {
      const m = merged.get(check) ?? { pass: true, reasons: [] };
      const tagged = scenariosOf(fn).length > 1 ? `[${scenario}] ${reason}` : reason;
      if (!pass && m.pass) m.reasons = [];
      if (pass === m.pass || !pass) m.reasons.push(tagged);
      m.pass = m.pass && pass;
      merged.set(check, m);
    };
    const crashes: string[] = [...(blamed.get(fn.symbol) ?? [])].slice(0, 2);
    const leaks = [...(leaksOf.get(fn.symbol) ?? new Map<string, Set<string>>())]
      .slice(0, 3)
      .map(([text, probes]) => `${text} (in the probes of ${[...probes].sort().join(', ')})`);
    for (const s of o.scenarios) {
      const name = s.planned.scenario.name;
      const problem = processProblem(s, timeoutMs);
      if (problem) crashes.push(`[${name}] ${problem}`);
      for (const c of s.checks) note(c.check as CheckName, c.pass, c.reason, name);
      for (const exp of s.planned.expected) {
        if (s.checks.some((c) => c.check === exp)) continue;
        const cause = s.setupFailure
          ? `not exercised: ${s.setupFailure.replace(/^not exercised: /, '')}`
          : `not reached: ${problem ? 'the probe process failed first (see no-crash)' : 'the probe stopped before this check'}`;
        note(exp, false, cause, name);
      }
      if (s.planned.scenario.exit) {
        const e = exitStatus(s);
        note('exit-status', e.pass, e.reason, name);
      }
      const want = s.planned.scenario.stdoutIncludes;
      if (want !== undefined) {
        const ok = s.stdout.includes(want);
        note('output', ok, ok ? `standard output has ${JSON.stringify(want)}` : `standard output lacks ${JSON.stringify(want)}: got ${JSON.stringify(s.stdout.slice(0, 120))}`, name);
      }
    }
    for (const check of CHECK_ORDER) {
      const m = merged.get(check);
      // Causes first, then the scenarios that could not run because of one.
      if (m) add(check, m.pass, [...m.reasons.filter((r) => !isSecondary(r)), ...m.reasons.filter(isSecondary)].join('; '));
    }
    add('no-crash', crashes.length === 0, crashes.length ? crashes.join('; ') : `${o.scenarios.length} scenario process(es) ended cleanly`);
    add(
      'no-leak',
      leaks.length === 0,
      leaks.length ? leaks.join('; ') : crashes.length ? 'no leak attributed to the library in the processes that finished' : 'LeakSanitizer found no leak allocated by the library',
    );
  }
  const failed = rows.filter((r) => !r.pass).length;
  const summaries = functions.map((fn): FunctionSummary => {
    const mine = rows.filter((r) => r.function === fn.symbol);
    const bad = mine.filter((r) => !r.pass);
    // The summary names a cause, not a check that merely could not run because of it.
    const cause = bad.find((r) => !isSecondary(r.reason)) ?? bad[0];
    return {
      function: fn.symbol,
      osprey: fn.osprey?.name,
      passed: mine.length - bad.length,
      failed: bad.length,
      firstFailure: cause ? `${cause.check}: ${cause.reason}` : undefined,
    };
  });
  return { library: lib.path, kind: lib.kind, passed: rows.length - failed, failed, functions: summaries, rows };
}

export function renderJson(r: AbiReport): string {
  return JSON.stringify(r, null, 2) + '\n';
}

/** A plain table: function | check | pass/fail | reason (reasons wrap under their column). */
export function renderTable(r: AbiReport, width = process.stdout.columns ?? 160): string {
  const fnW = Math.max(8, ...r.rows.map((x) => x.function.length));
  const chW = Math.max(5, ...r.rows.map((x) => x.check.length));
  const stW = 4;
  const reasonW = Math.max(40, width - fnW - chW - stW - 9);
  const out: string[] = [];
  const line = (a: string, b: string, c: string, d: string): string => `${a.padEnd(fnW)} | ${b.padEnd(chW)} | ${c.padEnd(stW)} | ${d}`;
  out.push(`runtime library: ${r.library} (${r.kind})`);
  out.push(line('function', 'check', 'ok', 'reason'));
  out.push(`${'-'.repeat(fnW)}-+-${'-'.repeat(chW)}-+-${'-'.repeat(stW)}-+-${'-'.repeat(Math.min(reasonW, 60))}`);
  let prev = '';
  for (const row of r.rows) {
    const chunks = wrap(row.reason, reasonW);
    out.push(line(row.function === prev ? '' : row.function, row.check, row.pass ? 'pass' : 'FAIL', chunks[0] ?? ''));
    for (const c of chunks.slice(1)) out.push(line('', '', '', c));
    prev = row.function;
  }
  const failing = r.functions.filter((f) => f.failed > 0);
  if (failing.length > 0) {
    out.push('', 'Functions that fail:');
    for (const f of failing) {
      const head = `  ${f.function}${f.osprey ? ` (${f.osprey})` : ''}: ${f.failed} check(s) failed; `;
      const chunks = wrap(f.firstFailure ?? '', Math.max(40, width - head.length));
      out.push(head + chunks[0]);
      for (const c of chunks.slice(1)) out.push(' '.repeat(head.length) + c);
    }
  }
  out.push('');
  out.push(
    `${r.passed} checks passed, ${r.failed} failed; ${r.functions.length - failing.length} of ${r.functions.length} functions pass every check`,
  );
  return out.join('\n') + '\n';
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let rest = text;
  while (rest.length > width) {
    let cut = rest.lastIndexOf(' ', width);
    if (cut < width / 2) cut = width;
    out.push(rest.slice(0, cut));
    rest = rest.slice(cut).trimStart();
  }
  out.push(rest);
  return out;
}
