/**
 * The `osprey` command line: exit statuses (0 success, 1 compile errors, 2 usage errors, the
 * program's own status for `run`), the old spellings, security flags, and that no build files are
 * left beside the source.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'osprey-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function source(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const hello = source('hello.osp', 'print("hello")\n');
const status = source('status.osp', 'fn main() -> Int = {\n    print("bye")\n    42\n}\n');
const broken = source('broken.osp', 'print(nope)\n');
const ws = source('ws.osp', 'let r = websocketClose(wsID: 1)\n');
const exists = source('exists.osp', 'print(fileExists("nothing-here"))\n');
const proc = source('proc.osp', 'print(awaitProcess(1))\n');
const warns = source('warns.osp', 'fn main() -> Int = {\n    let unused = 1\n    let _quiet = 2\n    print("ran")\n    3\n}\n');

describe.concurrent('osprey CLI', () => {
  it('run passes stdout and exit status 0 through', () => {
    const r = runCli(['run', hello]);
    expect(r.stdout).toBe('hello\n');
    expect(r.status).toBe(0);
  });

  it("run returns the program's own exit status", () => {
    const r = runCli(['run', status]);
    expect(r.stdout).toBe('bye\n');
    expect(r.status).toBe(42);
  });

  it('compile errors are rendered on stderr with exit 1', () => {
    const r = runCli(['check', broken]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("error[E0200]: undefined variable 'nope'");
    expect(r.stderr).toContain('broken.osp:1:7');
  });

  it('warnings go to stderr and change neither the exit status nor the output', () => {
    const r = runCli(['run', warns]);
    expect(r.stdout).toBe('ran\n');
    expect(r.status).toBe(3);
    expect(r.stderr).toContain("warning[W0001]: unused variable 'unused'");
    expect(r.stderr).toContain('warns.osp:2:9');
    expect(r.stderr).not.toContain('_quiet');
    expect(r.stderr).toContain('warning: 1 warning emitted');
    const c = runCli(['check', warns]);
    expect(c.status).toBe(0);
    expect(c.stderr).toBe(r.stderr);
  });

  it('an unknown flag is a one-line error with exit 2', () => {
    const r = runCli(['run', hello, '--frobnicate']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('--frobnicate');
  });

  it('a missing file is a one-line error with exit 2', () => {
    const r = runCli(['run', join(dir, 'nope.osp')]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('--help and --version exit 0', () => {
    expect(runCli(['--help']).stdout).toContain('osprey run FILE');
    expect(runCli(['--version']).status).toBe(0);
  });

  it('old spellings: --llvm prints IR, --ast prints the tree, --run runs', () => {
    const llvm = runCli([hello, '--llvm']);
    expect(llvm.status).toBe(0);
    expect(llvm.stdout).toContain('define i32 @main()');
    expect(runCli([hello, '--emit=llvm']).stdout).toContain('@osp_print');
    const ast = runCli([hello, '--ast']);
    expect(ast.status).toBe(0);
    expect(JSON.parse(ast.stdout).stmts).toHaveLength(1);
    expect(runCli([hello, '--run']).stdout).toBe('hello\n');
  });

  it('--compile without -o writes ./<basename> in the cwd, nothing beside the source', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'osprey-cwd-'));
    try {
      const before = readdirSync(dir).sort();
      const r = runCli([status, '--compile', '--fast'], cwd);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(existsSync(join(cwd, 'status'))).toBe(true);
      expect(readdirSync(cwd)).toEqual(['status']);
      expect(readdirSync(dir).sort()).toEqual(before);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('build -o writes the executable; run leaves no files beside the source', () => {
    const out = join(dir, 'out-bin');
    const before = readdirSync(dir).filter((f) => f !== 'out-bin').sort();
    expect(runCli(['build', hello, '-o', out, '--fast']).status).toBe(0);
    expect(existsSync(out)).toBe(true);
    runCli(['run', hello]);
    expect(readdirSync(dir).filter((f) => f !== 'out-bin').sort()).toEqual(before);
  });

  it('--sanitize links an ASan + UBSan build that runs', () => {
    const r = runCli(['run', hello, '--sanitize']);
    expect(r.stdout).toBe('hello\n');
    expect(r.status).toBe(0);
  });

  it('--sandbox removes the process functions and fileExists; --no-fs keeps fileExists', () => {
    for (const [file, name] of [[exists, 'fileExists'], [proc, 'awaitProcess']] as const) {
      expect(runCli(['check', file]).status).toBe(0);
      const r = runCli(['check', file, '--sandbox']);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`undefined function '${name}'`);
    }
    expect(runCli(['check', exists, '--no-fs']).status).toBe(0);
  });

  it('--no-websocket and --sandbox remove the WebSocket built-ins', () => {
    expect(runCli(['check', ws]).status).toBe(0);
    for (const flag of ['--no-websocket', '--sandbox']) {
      const r = runCli(['check', ws, flag]);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("undefined function 'websocketClose'");
    }
  });
});
