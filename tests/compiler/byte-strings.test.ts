/**
 * Strings carry their length (runtime-bindings/abi.ts, STRING_LAYOUT): NUL bytes and bytes that
 * are not UTF-8 survive every operation and reach the output whole. These programs check the
 * exact bytes a program writes, which the golden programs (compared as text) cannot.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildExecutable, renderErrors, type OptLevel } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';

interface ByteRun {
  stdout: Buffer;
  stderr: string;
  status: number | null;
  /** The program's working directory, still present while `inspect` runs. */
  files: (name: string) => Buffer;
}

async function runBytes(text: string, opt: OptLevel, inspect?: (r: ByteRun) => void): Promise<ByteRun> {
  const dir = mkdtempSync(join(tmpdir(), 'osprey-bytes-'));
  try {
    const exe = join(dir, 'prog');
    const built = await buildExecutable(new SourceFile('bytes.osp', text), exe, opt, {});
    if (!built.executable) throw new Error(renderErrors(built));
    const cwd = join(dir, 'cwd');
    mkdirSync(cwd);
    const p = spawnSync(exe, [], { cwd, timeout: 20_000 });
    const r: ByteRun = { stdout: p.stdout, stderr: p.stderr.toString('utf8'), status: p.status, files: (name) => readFileSync(join(cwd, name)) };
    inspect?.(r);
    return r;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const bytes = (...parts: (string | number[])[]): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

describe.concurrent('Strings hold any bytes', () => {
  for (const opt of ['fast', 'release'] as const) {
    it(`print writes every byte, NULs included, through literals, +, interpolation and substring (${opt})`, async () => {
      const r = await runBytes(
        [
          'let s = "a\\u0000b"',
          'print(s)',
          'print(s + "\\u0000" + s)',
          'let n = 7',
          'print("[${s}|${n}]")',
          'match substring("xy\\u0000z", 1, 3) {',
          '    Success { value } => print(value)',
          '    Error { message } => print(message)',
          '}',
          'print(toString(s))',
        ].join('\n'),
        opt,
      );
      expect(r.status).toBe(0);
      expect(r.stdout).toEqual(bytes('a', [0], 'b\n', 'a', [0], 'b', [0], 'a', [0], 'b\n', '[a', [0], 'b|7]\n', 'y', [0], '\n', 'a', [0], 'b\n'));
    });
  }

  it('writeFile and readFile round-trip NUL bytes and bytes that are not UTF-8', async () => {
    // substring cuts "é" (C3 A9) in the middle: a lone C3 byte, invalid UTF-8.
    const program = [
      'let cut = match substring("\\u00e9", 0, 1) {',
      '    Success { value } => value',
      '    Error { message } => message',
      '}',
      'let content = "x\\u0000y" + cut + "\\u0000"',
      'match writeFile("data.bin", content) {',
      '    Success _ => print("written")',
      '    Error { message } => print(message)',
      '}',
      'match readFile("data.bin") {',
      '    Success { value } => {',
      '        print(value == content)',
      '        match length(value) {',
      '            Success { value } => print(value)',
      '            Error { message } => print(message)',
      '        }',
      '        print(value)',
      '    }',
      '    Error { message } => print(message)',
      '}',
    ].join('\n');
    let onDisk: Buffer = Buffer.alloc(0);
    const r = await runBytes(program, 'fast', (run) => {
      onDisk = run.files('data.bin');
    });
    expect(r.status).toBe(0);
    expect(onDisk).toEqual(bytes('x', [0], 'y', [0xc3, 0]));
    expect(r.stdout).toEqual(bytes('written\ntrue\n5\n', 'x', [0], 'y', [0xc3, 0], '\n'));
  });

  it('a path holding a NUL byte is an Err naming the problem, never a call on a shorter path', async () => {
    const r = await runBytes(
      [
        'match writeFile("safe\\u0000.txt", "data") {',
        '    Success _ => print("written")',
        '    Error { message } => print(message)',
        '}',
        'match readFile("x\\u0000y") {',
        '    Success _ => print("read")',
        '    Error { message } => print(message)',
        '}',
        'print(fileExists("safe\\u0000.txt"))',
        'fn onEvent(id: Int, kind: Int, data: String) -> Unit = print(data)',
        'match spawnProcess("echo hi\\u0000; echo injected", onEvent) {',
        '    Success _ => print("spawned")',
        '    Error { message } => print(message)',
        '}',
      ].join('\n'),
      'fast',
      (run) => expect(() => run.files('safe')).toThrow(),
    );
    expect(r.stdout.toString('utf8')).toBe(
      [
        'writeFile: the path contains a NUL byte (at byte 4), which is not allowed in a path',
        'readFile: the path contains a NUL byte (at byte 1), which is not allowed in a path',
        'false',
        'spawnProcess: the command contains a NUL byte (at byte 7), which is not allowed in a command',
        '',
      ].join('\n'),
    );
  });

  it('WebSocket addresses, paths, URLs, file paths, origins and names holding a NUL byte are an Err naming the argument', async () => {
    // Each would otherwise reach C cut at the NUL: "127.0.0.1\0junk" would bind 127.0.0.1, a
    // certificate path would open a shorter file, an origin would allow a different site.
    const call = (expr: string): string[] => [
      `match ${expr} {`,
      '    Success _ => print("accepted")',
      '    Error { message } => print(message)',
      '}',
    ];
    const r = await runBytes(
      [
        'fn onText(message: String) -> Result<Success, String> = Success()',
        ...call('websocketCreateServer(port: 23491, address: "127.0.0.1\u0000junk", path: "/chat")'),
        ...call('websocketCreateServer(port: 23491, address: "127.0.0.1", path: "/ch\u0000at")'),
        ...call('websocketCreateSecureServer(port: 23491, address: "127.0.0.1", path: "/chat", certFile: "c\u0000.pem", keyFile: "k.pem")'),
        ...call('websocketCreateSecureServer(port: 23491, address: "127.0.0.1", path: "/chat", certFile: "c.pem", keyFile: "key\u0000.pem")'),
        ...call('websocketConnect(url: "ws://127.0.0.1:1/\u0000x", messageHandler: onText)'),
        ...call('websocketSetTrustedCA("ca\u0000.pem")'),
        ...call('websocketServerAllowOrigin(serverID: 1, origin: "https://a.example\u0000.evil")'),
        ...call('websocketServerAddSubprotocol(serverID: 1, protocol: "chat\u0000")'),
        ...call('websocketServerSetLimit(serverID: 1, name: "max\u0000Connections", value: 2)'),
        ...call('websocketSetDefaultLimit(name: "maxConnections\u0000", value: 2)'),
        ...call('websocketServerUseCluster(serverID: 1, redisUrl: "redis://127.0.0.1:1\u0000", channelName: "room")'),
      ].join('\n'),
      'fast',
    );
    expect(r.stdout.toString('utf8')).toBe(
      [
        'websocketCreateServer: the address contains a NUL byte (at byte 9), which is not allowed in an address',
        'websocketCreateServer: the path contains a NUL byte (at byte 3), which is not allowed in a path',
        'websocketCreateSecureServer: the certificate file path contains a NUL byte (at byte 1), which is not allowed in a certificate file path',
        'websocketCreateSecureServer: the key file path contains a NUL byte (at byte 3), which is not allowed in a key file path',
        'websocketConnect: the URL contains a NUL byte (at byte 17), which is not allowed in a URL',
        'websocketSetTrustedCA: the path contains a NUL byte (at byte 2), which is not allowed in a path',
        'websocketServerAllowOrigin: the origin contains a NUL byte (at byte 17), which is not allowed in an origin',
        'websocketServerAddSubprotocol: the subprotocol name contains a NUL byte (at byte 4), which is not allowed in a subprotocol name',
        'websocketServerSetLimit: the limit name contains a NUL byte (at byte 3), which is not allowed in a limit name',
        'websocketSetDefaultLimit: the limit name contains a NUL byte (at byte 14), which is not allowed in a limit name',
        'websocketServerUseCluster: the Redis URL contains a NUL byte (at byte 19), which is not allowed in a Redis URL',
        '',
      ].join('\n'),
    );
    expect(r.status).toBe(0);
  });

  it("a process's output reaches the handler with its NUL bytes", async () => {
    const r = await runBytes(
      [
        'fn onEvent(id: Int, kind: Int, data: String) -> Unit = match kind {',
        '    1 => {',
        '        match length(data) {',
        '            Success { value } => print("chunk of ${value} bytes")',
        '            Error { message } => print(message)',
        '        }',
        '        print(data)',
        '    }',
        '    _ => print("event ${kind}: ${data}")',
        '}',
        "match spawnProcess(\"printf 'a\\\\000b\\\\000'\", onEvent) {",
        '    Success { value } => {',
        '        let code = awaitProcess(value)',
        '        cleanupProcess(value)',
        '    }',
        '    Error { message } => print(message)',
        '}',
      ].join('\n'),
      'fast',
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toEqual(bytes('chunk of 4 bytes\n', 'a', [0], 'b', [0], '\n', 'event 3: 0\n'));
  });
});
