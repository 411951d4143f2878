#!/usr/bin/env tsx
/**
 * Builds the libFuzzer targets of the protocol core and runs each one for a bounded time.
 *
 *   tsx scripts/fuzz.ts                       every target, 600 s each (the long run)
 *   tsx scripts/fuzz.ts --seconds 10          every target, 10 s each (what CI runs)
 *   tsx scripts/fuzz.ts --only frame,utf8     some targets (names: fuzz_NAME.c)
 *   tsx scripts/fuzz.ts --parallel            run the targets at the same time
 *
 * Targets are runtime-c/tests/fuzz_*.c: fuzz_frame (RFC 6455 §5 codec + message layer),
 * fuzz_handshake (HTTP head parser, handshake verdict and policy, response check, URL parser),
 * fuzz_session (the I/O-free session: received bytes and clock ticks, in both roles), and
 * fuzz_utf8 (incremental validator against a reference decoder). Each is built with clang-14 -fsanitize=fuzzer,address,undefined (UBSan
 * findings abort) into build/fuzz/NAME; the corpus grows in build/fuzz/corpus/NAME across runs
 * and a crashing input is written to build/fuzz/artifacts/NAME-crash-*. Exits 1 if any target
 * found a crash, a leak, a timeout or a sanitizer report, printing the artifact's path and the
 * command that reproduces it.
 */
import { $, fs, path } from 'zx';
import { PROJECT_ROOT, RUNTIME_INCLUDE_DIR, RUNTIME_SOURCE_DIR, RUNTIME_TEST_DIR } from '../runtime-bindings/toolchain.ts';

$.verbose = false;

/** The protocol core: every source a target may use (no I/O, no threads, no GC). */
const CORE = ['ws_frame', 'ws_message', 'ws_session', 'ws_utf8', 'ws_buf', 'ws_limits', 'http_parse', 'ws_handshake', 'ws_url'].map((f) =>
  path.join(RUNTIME_SOURCE_DIR, `${f}.c`),
);
const FUZZ_DIR = path.join(PROJECT_ROOT, 'build', 'fuzz');

/** Starting points for an empty corpus, so short runs reach past the first parse error. The
 * first byte of every input is the target's control byte (chunk size / split choice). */
const REQUEST =
  'GET /chat?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://app.example\r\n' +
  'Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Protocol: chat.v2\r\n\r\n';
const RESPONSE =
  'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n';
const maskedText = Buffer.from([0x81, 0x85, 1, 2, 3, 4, ...Buffer.from('Hello').map((b, i) => b ^ (i % 4) + 1)]);
const SEEDS: Record<string, Buffer[]> = {
  handshake: [
    Buffer.from('\x07' + REQUEST, 'latin1'),
    Buffer.from('\x03' + RESPONSE, 'latin1'),
    Buffer.from('\x00ws://[::1]:8080/a?b', 'latin1'),
    // A past finding (minimised): a malformed offer after a supported one used to leave the
    // subprotocol selected on the 400 verdict. Kept so every run starts from it.
    Buffer.from(
      '\x07GET /chat HTTP/1.1\r\nHost:1\r\nUpgrade:websocket\r\nConnection:Upgrade\r\nSec-WebSocket-Key:dGhlIHNhbXBsZSBub25jZQ==\r\n' +
        'Sec-WebSocket-Version:13\r\nOrigin:https://app.example\r\nSec-WebSocket-Protocol: chat.v2,)\r\n\r\n',
      'latin1',
    ),
  ],
  frame: [
    Buffer.concat([Buffer.from([3]), maskedText]),
    Buffer.from([5, 0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]), // fragmented, unmasked
    Buffer.from([1, 0x88, 0x02, 0x03, 0xe8, 0x89, 0x00]), // close 1000, ping
  ],
  utf8: [Buffer.from('\x02h\u00e9llo \u20ac \u{1F985}', 'utf8')],
  // control byte: bit 0 role (0 server), bits 1-3 chunk size - 1, bits 4-7 clock step
  session: [
    Buffer.concat([Buffer.from([0x36]), maskedText, Buffer.from([0x89, 0x80, 9, 9, 9, 9, 0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2])]),
    Buffer.from([0x95, 0x01, 0x02, 0x48, 0x65, 0x89, 0x01, 0x70, 0x80, 0x01, 0x69, 0x88, 0x00]), // client: fragments, ping
  ],
};

function option(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const seconds = Number(option('--seconds') ?? '600');
if (!Number.isInteger(seconds) || seconds < 1) {
  console.error('fuzz: --seconds expects a positive whole number');
  process.exit(2);
}
const all: string[] = fs
  .readdirSync(RUNTIME_TEST_DIR)
  .filter((f: string) => /^fuzz_.*\.c$/.test(f))
  .map((f: string) => f.slice('fuzz_'.length, -2))
  .sort();
const only = option('--only')?.split(',').map((s) => s.trim()).filter(Boolean);
const targets: string[] = only ?? all;
for (const t of targets) {
  if (!all.includes(t)) {
    console.error(`fuzz: no target "${t}" (have: ${all.join(', ')})`);
    process.exit(2);
  }
}

async function build(name: string): Promise<string> {
  const src = path.join(RUNTIME_TEST_DIR, `fuzz_${name}.c`);
  const bin = path.join(FUZZ_DIR, name);
  const newest = Math.max(...[src, ...CORE].map((f) => fs.statSync(f).mtimeMs), ...fs.readdirSync(RUNTIME_SOURCE_DIR).filter((f: string) => f.endsWith('.h')).map((f: string) => fs.statSync(path.join(RUNTIME_SOURCE_DIR, f)).mtimeMs));
  if (fs.existsSync(bin) && fs.statSync(bin).mtimeMs > newest) return bin;
  await $`clang-14 -std=gnu11 -g -O1 -Wall -Wextra -Werror -D_GNU_SOURCE -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I${RUNTIME_INCLUDE_DIR} -I${RUNTIME_SOURCE_DIR} ${src} ${CORE} -lcrypto -o ${bin}`;
  return bin;
}

interface Outcome {
  name: string;
  ok: boolean;
  runs: string;
  detail: string;
}

async function run(name: string, bin: string): Promise<Outcome> {
  const corpus = path.join(FUZZ_DIR, 'corpus', name);
  const artifacts = path.join(FUZZ_DIR, 'artifacts');
  fs.mkdirpSync(corpus);
  fs.mkdirpSync(artifacts);
  if (fs.readdirSync(corpus).length === 0) for (const [i, seed] of (SEEDS[name] ?? []).entries()) fs.writeFileSync(path.join(corpus, `seed-${i}`), seed);
  const r = await $({
    nothrow: true,
    quiet: true,
    timeout: (seconds + 60) * 1000,
    env: { ...process.env, ASAN_OPTIONS: 'abort_on_error=1:detect_leaks=1', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1' },
  })`${bin} -max_total_time=${seconds} -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 -artifact_prefix=${artifacts}/${name}- ${corpus}`;
  const log = r.stderr;
  const runs = /stat::number_of_executed_units:\s*(\d+)/.exec(log)?.[1] ?? '?';
  const ok = r.exitCode === 0 && !/ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: /.test(log);
  const artifact = /Test unit written to (\S+)/.exec(log)?.[1];
  const detail = ok
    ? `${runs} runs in ${seconds} s, corpus ${fs.readdirSync(corpus).length} inputs`
    : `exit ${r.exitCode}${artifact ? `; reproduce: ${bin} ${artifact}` : ''}\n${log.split('\n').filter((l: string) => /ERROR|SUMMARY|runtime error|#\d+ 0x/.test(l)).slice(0, 25).join('\n')}`;
  return { name, ok, runs, detail };
}

fs.mkdirpSync(FUZZ_DIR);
const bins = await Promise.all(targets.map(async (t) => [t, await build(t)] as const));
const outcomes: Outcome[] = [];
if (process.argv.includes('--parallel')) {
  outcomes.push(...(await Promise.all(bins.map(([t, b]) => run(t, b)))));
} else {
  for (const [t, b] of bins) outcomes.push(await run(t, b));
}
for (const o of outcomes) console.log(`fuzz ${o.name}: ${o.ok ? 'ok' : 'FAILED'} — ${o.detail}`);
process.exit(outcomes.every((o) => o.ok) ? 0 : 1);
