/**
 * The `osprey` command line: exit statuses (0 success, 1 compile errors, 2 usage errors, the
 * program's own status for `run`), the old spellings, security flags, and that no build files are
 * left beside the source; usage and did-you-mean, build outputs (never over the source, folders
 * created), multi-file programs, signals forwarded by `osprey run`, program arguments, and stdout
 * buffering into a pipe (flushed when the program blocks and when it is signalled).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OSPREY_BIN, runCli } from './helpers.ts';

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

  it('osprey with no arguments prints usage on stderr (exit 2); osprey help prints it on stdout', () => {
    const none = runCli([]);
    expect(none.status).toBe(2);
    expect(none.stderr).toContain('Usage:');
    expect(none.stderr).toContain('osprey build FILE');
    const help = runCli(['help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage:');
    expect(help.stdout).toContain('-- ARGS');
  });

  it('an unknown command gets a did-you-mean instead of being taken for a file name', () => {
    const typo = runCli(['buld', hello]);
    expect(typo.status).toBe(2);
    expect(typo.stderr).toBe("osprey: unknown command 'buld' — did you mean 'build'? (commands: run, build, check, fmt, lsp, help, abi-check; try osprey help)\n");
    const test = runCli(['test']);
    expect(test.status).toBe(2);
    expect(test.stderr).toContain("unknown command 'test'");
    expect(test.stderr).not.toContain('no such file');
    // An existing file is still accepted first (the old spellings: osprey FILE --run).
    expect(runCli([hello, '--run']).stdout).toBe('hello\n');
  });

  it('a directory is reported as one', () => {
    const r = runCli(['run', dir]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`osprey: '${dir}' is a directory; give the program's main .osp file (imports are found beside it)\n`);
  });

  it('build refuses to overwrite a source without an extension, and says what to do', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'osprey-cwd-'));
    try {
      const text = 'print("greetings")\n';
      writeFileSync(join(cwd, 'greet'), text);
      const r = runCli(['build', 'greet', '--fast'], cwd);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('refusing to overwrite the source file greet');
      expect(r.stderr).toContain('-o greet.out');
      expect(readFileSync(join(cwd, 'greet'), 'utf8')).toBe(text);
      const explicit = runCli(['build', 'greet', '-o', './greet', '--fast'], cwd);
      expect(explicit.status).toBe(2);
      expect(readFileSync(join(cwd, 'greet'), 'utf8')).toBe(text);
      expect(runCli(['build', 'greet', '-o', 'greet.out', '--fast'], cwd).status).toBe(0);
      expect(spawnSync(join(cwd, 'greet.out'), { encoding: 'utf8' }).stdout).toBe('greetings\n');
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('build -o creates a missing folder; a file in the way is a clean usage error', () => {
    const out = join(dir, 'made', 'for', 'you', 'hello');
    const r = runCli(['build', hello, '-o', out, '--fast']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(spawnSync(out, { encoding: 'utf8' }).stdout).toBe('hello\n');
    // -o naming a folder (trailing slash) writes <folder>/<basename>.
    expect(runCli(['build', hello, '-o', join(dir, 'into') + '/', '--fast']).status).toBe(0);
    expect(existsSync(join(dir, 'into', 'hello'))).toBe(true);
    const blocked = runCli(['build', hello, '-o', join(hello, 'x'), '--fast']);
    expect(blocked.status).toBe(2);
    expect(blocked.stderr).toBe(`osprey: cannot create the output folder ${hello}: a file is in the way\n`);
  });

  it('a three-file program builds from its main file, and errors name the imported file and the chain', () => {
    const app = join(dir, 'app');
    mkdirSync(join(app, 'text'), { recursive: true });
    writeFileSync(join(app, 'main.osp'), 'import greeting\nimport text.shout\nprint(shout.loud(greeting.hello(name: "osprey")))\n');
    writeFileSync(join(app, 'greeting.osp'), 'fn hello(name: String) -> String = "hello ${name}"\n');
    writeFileSync(join(app, 'text', 'shout.osp'), 'fn loud(s: String) -> String = "${s}!"\n');
    const exe = join(dir, 'app-bin');
    expect(runCli(['build', join(app, 'main.osp'), '-o', exe, '--fast']).status).toBe(0);
    expect(spawnSync(exe, { encoding: 'utf8' }).stdout).toBe('hello osprey!\n');
    writeFileSync(join(app, 'text', 'shout.osp'), 'fn loud(s: String) -> String = s + 1\n');
    const r = runCli(['check', 'main.osp'], app);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('┌─ text/shout.osp:1:34');
    expect(r.stderr).toContain('= note: imported from main.osp:2:1');
  });

  it('examples/inventory, a three-file program, runs from its main file with arguments', () => {
    const r = runCli(['run', join('examples', 'inventory', 'main.osp'), '--', 'pears', 'kiwis']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe([
      '== Corner shop ==', 'apples: 12 at 0.40', 'pears: 5 at 0.65', 'plums: 30 at 0.15', 'stock value: 12.55',
      'pears: 5 in stock', 'kiwis: not sold here', '',
    ].join('\n'));
  });

  it('run passes the arguments after -- to the program (args())', () => {
    const prog = source('args.osp', [
      'let a = args()',
      'match a[0] {',
      '    Success { value } => print("first: ${value}")',
      '    Error { message } => print("no first argument: ${message}")',
      '}',
      'match a[2] {',
      '    Success { value } => print("third: ${value}")',
      '    Error { message } => print("no third argument: ${message}")',
      '}',
      'print("count: ${a |> fold(0, |n, _s| => n + 1)}")',
      'forEach(a, |s| => print("[${s}]"))',
      '',
    ].join('\n'));
    const r = runCli(['run', prog, '--', 'two words', '--not-an-osprey-flag', '']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('first: two words\nthird: \ncount: 3\n[two words]\n[--not-an-osprey-flag]\n[]\n');
    expect(runCli(['run', prog]).stdout).toBe('no first argument: index out of bounds\nno third argument: index out of bounds\ncount: 0\n');
    const misplaced = runCli(['check', prog, '--', 'x']);
    expect(misplaced.status).toBe(2);
    expect(misplaced.stderr).toContain('only `osprey run` runs');
  });

});

// Not concurrent with the tests above: those block this worker's event loop in spawnSync, which
// would delay the child-process events and timers these tests measure.
describe('osprey run and signals', () => {
  it('stdout into a pipe is flushed when the program is signalled, even mid-computation', async () => {
    const prog = source('busy.osp', 'fn spin(n: Int) -> Int = match n == 0 {\n    true => 0\n    false => spin(n - 1)\n}\nprint("before the long computation")\nprint(spin(9000000000000))\n');
    const exe = join(dir, 'busy-bin');
    expect(runCli(['build', prog, '-o', exe, '--fast']).status).toBe(0);
    const child = spawn(exe, [], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    await new Promise((r) => setTimeout(r, 700));
    // Block-buffered: nothing has been written yet, because the program never blocked.
    expect(stdout).toBe('');
    child.kill('SIGTERM');
    const status = await new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    expect(status).toBe(143);
    expect(stdout).toBe('before the long computation\n');
  });

  it('run forwards SIGTERM to the program, waits for it, exits with its status and removes the build dir', async () => {
    const port = await freePort();
    const prog = source('serve.osp', [
      `match websocketCreateServer(port: ${port}, address: "127.0.0.1", path: "/") {`,
      '    Success id => match websocketServerListen(serverID: id) {',
      '        Success _ => {',
      '            print("listening")',
      '            sleep(60000)',
      '        }',
      '        Err message => print(message)',
      '    }',
      '    Err message => print(message)',
      '}',
      '',
    ].join('\n'));
    const cache = mkdtempSync(join(tmpdir(), 'osprey-cache-'));
    try {
      const child = spawn(process.execPath, [OSPREY_BIN, 'run', prog], {
        stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, XDG_CACHE_HOME: cache },
      });
      let stdout = '';
      const listening = new Promise<void>((res) => child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes('listening\n')) res();
      }));
      const closed = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
      // The line arrives through a pipe while the program sleeps: flushed when it blocks.
      await Promise.race([listening, new Promise((_, rej) => setTimeout(() => rej(new Error(`no 'listening' line; stdout so far: ${stdout}`)), 30_000))]);
      // `run` is the build cache (scripts/build-cache.mjs), which keeps the executable.
      expect(readdirSync(join(cache, 'osprey')).filter((n) => n !== 'run')).toHaveLength(1);
      expect(await canConnect(port)).toBe(true);
      child.kill('SIGTERM');
      const status = await Promise.race([closed, new Promise((r) => setTimeout(() => r('timed out'), 15_000))]);
      expect(status).toBe(143);
      // The program is gone (its port is free) and so is its build directory.
      expect(await canConnect(port)).toBe(false);
      expect(readdirSync(join(cache, 'osprey')).filter((n) => n !== 'run')).toEqual([]);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  }, 60_000);

  it('run forwards SIGINT and SIGHUP too (exit 130 and 129), printed lines arriving first', async () => {
    const prog = source('wait.osp', 'print("waiting")\nsleep(60000)\nprint("not reached")\n');
    const runOne = async (sig: 'SIGINT' | 'SIGHUP'): Promise<{ status: number | null; stdout: string }> => {
      const child = spawn(process.execPath, [OSPREY_BIN, 'run', prog], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      const ready = new Promise<void>((res) => child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes('waiting\n')) res();
      }));
      const closed = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
      await ready;
      child.kill(sig);
      return { status: await closed, stdout };
    };
    const [int, hup] = await Promise.all([runOne('SIGINT'), runOne('SIGHUP')]);
    expect(int).toEqual({ status: 130, stdout: 'waiting\n' });
    expect(hup).toEqual({ status: 129, stdout: 'waiting\n' });
  }, 60_000);
});

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((res) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.setTimeout(2000);
    socket.on('connect', () => {
      socket.destroy();
      res(true);
    });
    socket.on('error', () => res(false));
    socket.on('timeout', () => {
      socket.destroy();
      res(false);
    });
  });
}
