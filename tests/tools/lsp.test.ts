/**
 * `osprey lsp` driven over stdio by a JSON-RPC client (vscode-jsonrpc), as an editor drives it:
 * initialize → didOpen → diagnostics (compared with the CLI's: the same codes, messages and ranges)
 * → didChange → hover, definition, references, completion, document symbols, rename, formatting.
 * One server process for the file, stopped with shutdown/exit (and killed if it ever hangs).
 * The last case times diagnostics after a change to a 2,000-line program and logs the figure.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter, type MessageConnection } from 'vscode-jsonrpc/node.js';
import { analyzeSource, checkSource } from '../../compiler/src/driver.ts';
import { SourceFile } from '../../compiler/src/source.ts';
import { OSPREY_BIN, ROOT } from '../compiler/helpers.ts';

interface Position { line: number; character: number }
interface Range { start: Position; end: Position }
interface LspDiagnostic { range: Range; code: string; message: string; severity: number; relatedInformation?: { message: string }[] }
interface PublishedDiagnostics { uri: string; version?: number; diagnostics: LspDiagnostic[] }

let server: ChildProcessWithoutNullStreams;
let rpc: MessageConnection;
let stderr = '';
const published: PublishedDiagnostics[] = [];
const waiters: { uri: string; version: number; resolve: (d: PublishedDiagnostics) => void }[] = [];

function diagnosticsFor(uri: string, version: number, timeoutMs = 30_000): Promise<PublishedDiagnostics> {
  const found = published.find((p) => p.uri === uri && p.version === version);
  if (found) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no diagnostics for ${uri} v${version} within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    waiters.push({ uri, version, resolve: (d) => { clearTimeout(timer); resolve(d); } });
  });
}

const versions = new Map<string, number>();
async function open(uri: string, text: string): Promise<PublishedDiagnostics> {
  versions.set(uri, 1);
  await rpc.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'osprey', version: 1, text } });
  return diagnosticsFor(uri, 1);
}
async function change(uri: string, text: string): Promise<PublishedDiagnostics> {
  const version = (versions.get(uri) ?? 1) + 1;
  versions.set(uri, version);
  await rpc.sendNotification('textDocument/didChange', { textDocument: { uri, version }, contentChanges: [{ text }] });
  return diagnosticsFor(uri, version);
}

/** The position of the `n`th occurrence (0-based) of `needle` in `text`, plus `delta` characters. */
function positionOf(text: string, needle: string, n = 0, delta = 0): Position {
  let at = -1;
  for (let i = 0; i <= n; i++) {
    at = text.indexOf(needle, at + 1);
    if (at < 0) throw new Error(`'${needle}' #${n} not in text`);
  }
  at += delta;
  const before = text.slice(0, at);
  const line = before.split('\n').length - 1;
  return { line, character: at - (before.lastIndexOf('\n') + 1) };
}

beforeAll(async () => {
  server = spawn(process.execPath, [OSPREY_BIN, 'lsp'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  server.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
  rpc = createMessageConnection(new StreamMessageReader(server.stdout), new StreamMessageWriter(server.stdin));
  rpc.onNotification('textDocument/publishDiagnostics', (p: PublishedDiagnostics) => {
    published.push(p);
    for (const w of waiters.filter((x) => x.uri === p.uri && x.version === p.version)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(p);
    }
  });
  rpc.listen();
  const init = await rpc.sendRequest('initialize', { processId: process.pid, rootUri: null, capabilities: {} }) as { capabilities: Record<string, unknown> };
  expect(init.capabilities).toMatchObject({ hoverProvider: true, definitionProvider: true, documentSymbolProvider: true });
  await rpc.sendNotification('initialized', {});
});

afterAll(async () => {
  const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
  try {
    await rpc.sendRequest('shutdown');
    await rpc.sendNotification('exit');
  } catch {
    // The process may already be gone; the kill below makes sure of it.
  }
  const timer = setTimeout(() => server.kill('SIGKILL'), 5000);
  const code = await exited;
  clearTimeout(timer);
  rpc.dispose();
  expect(code).toBe(0);
});

const PROGRAM = `/// A point on the grid.
type Point = { x: Int, y: Int }
type Shape = Circle { radius: Int } | Square { side: Int }

/// Twice the sum of the coordinates.
fn weight(p: Point) -> Int = {
    let total = p.x + p.y
    total * 2
}

fn area(s: Shape) -> Int = match s {
    Circle { radius } => radius * radius * 3
    Square { side } => side * side
}

let origin = Point { x: 1, y: 2 }
let w = weight(origin)
print("weight \${w}")
print(area(Circle { radius: 2 }))
`;

describe('osprey lsp over stdio', () => {
  const uri = 'file:///work/program.osp';

  it('publishes the CLI diagnostics on open, and clears them after a fix', async () => {
    const broken = PROGRAM.replace('let w = weight(origin)', 'let w = weight(origin) + "one"').replace('total * 2', 'totl * 2');
    const d = await open(uri, broken);
    const cli = checkSource(new SourceFile('program.osp', broken));
    expect(cli.diagnostics.length).toBe(2);
    const file = new SourceFile('program.osp', broken);
    expect(d.diagnostics.map((x) => ({ code: x.code, message: x.message, range: x.range }))).toEqual(cli.diagnostics.map((c) => {
      const a = file.lineCol(c.span.start);
      const b = file.lineCol(c.span.end);
      return { code: c.code, message: c.message, range: { start: { line: a.line - 1, character: a.col - 1 }, end: { line: b.line - 1, character: b.col - 1 } } };
    }));
    expect(d.diagnostics.map((x) => x.code).sort()).toEqual(['E0200', 'E0308']);
    // Hints travel as related information (the did-you-mean of the unknown name).
    expect(d.diagnostics.flatMap((x) => x.relatedInformation ?? []).map((r) => r.message)).toContain("hint: did you mean 'total'?");

    const fixed = await change(uri, PROGRAM);
    expect(fixed.diagnostics).toEqual([]);
  });

  it('reports a computed list index like the CLI: at the index, with its hints', async () => {
    const text = 'let xs = [10, 20, 30]\nlet i = 1\nmatch xs[i + 1] {\n    Success v => print(v)\n    Error e => print(e)\n}\nprint(xs[i])\n';
    const indexUri = 'file:///work/index.osp';
    const d = await open(indexUri, text);
    const cli = checkSource(new SourceFile('index.osp', text));
    expect(cli.diagnostics.map((c) => c.code)).toEqual(['E0100', 'E0100']);
    const file = new SourceFile('index.osp', text);
    expect(d.diagnostics.map((x) => ({ code: x.code, message: x.message, range: x.range }))).toEqual(cli.diagnostics.map((c) => {
      const a = file.lineCol(c.span.start);
      const b = file.lineCol(c.span.end);
      return { code: c.code, message: c.message, range: { start: { line: a.line - 1, character: a.col - 1 }, end: { line: b.line - 1, character: b.col - 1 } } };
    }));
    expect(d.diagnostics[0]!.range).toEqual({ start: positionOf(text, 'i + 1'), end: positionOf(text, 'i + 1', 0, 5) });
    expect(d.diagnostics[1]!.range).toEqual({ start: positionOf(text, 'xs[i]', 0, 3), end: positionOf(text, 'xs[i]', 0, 4) });
    expect(d.diagnostics[0]!.message).toContain('a computed index like `xs[i + 1]` is not part of the language');
    expect(d.diagnostics[0]!.relatedInformation?.map((r) => r.message).join('\n')).toContain('`xs |> forEach(print)`');
    await rpc.sendNotification('textDocument/didClose', { textDocument: { uri: indexUri } });
  });

  it('hovers with the inferred type and the declaration', async () => {
    const onTotal = await rpc.sendRequest('textDocument/hover', { textDocument: { uri }, position: positionOf(PROGRAM, 'total * 2') }) as { contents: { value: string }; range: Range };
    expect(onTotal.contents.value).toContain('let total: Int');
    expect(onTotal.contents.value).toContain('declared at line 7');
    expect(onTotal.range).toEqual({ start: positionOf(PROGRAM, 'total * 2'), end: positionOf(PROGRAM, 'total * 2', 0, 5) });

    const onWeight = await rpc.sendRequest('textDocument/hover', { textDocument: { uri }, position: positionOf(PROGRAM, 'weight(origin)', 0, 2) }) as { contents: { value: string } };
    expect(onWeight.contents.value).toContain('fn weight(p: Point) -> Int');
    expect(onWeight.contents.value).toContain('Twice the sum of the coordinates.');

    const onField = await rpc.sendRequest('textDocument/hover', { textDocument: { uri }, position: positionOf(PROGRAM, 'p.y', 0, 2) }) as { contents: { value: string } };
    expect(onField.contents.value).toContain('Point.y: Int');

    const onBuiltin = await rpc.sendRequest('textDocument/hover', { textDocument: { uri }, position: positionOf(PROGRAM, 'print("weight') }) as { contents: { value: string } };
    expect(onBuiltin.contents.value).toContain('print(value: Int | String | Bool) -> Unit');

    const onWhitespace = await rpc.sendRequest('textDocument/hover', { textDocument: { uri }, position: { line: 3, character: 0 } });
    expect(onWhitespace).toBeNull();
  });

  it('goes to the definition of locals, functions, types, constructors and fields', async () => {
    const def = async (needle: string, n = 0, delta = 0) =>
      ((await rpc.sendRequest('textDocument/definition', { textDocument: { uri }, position: positionOf(PROGRAM, needle, n, delta) })) as { range: Range } | null)?.range.start;
    expect(await def('total * 2')).toEqual(positionOf(PROGRAM, 'total = p.x'));
    expect(await def('weight(origin)')).toEqual(positionOf(PROGRAM, 'weight(p: Point)'));
    expect(await def('origin)')).toEqual(positionOf(PROGRAM, 'origin = Point'));
    expect(await def('Point) -> Int', 0)).toEqual(positionOf(PROGRAM, 'Point = {'));
    expect(await def('Circle { radius: 2 }')).toEqual(positionOf(PROGRAM, 'Circle { radius: Int }'));
    expect(await def('p.y', 0, 2)).toEqual(positionOf(PROGRAM, 'y: Int }'));
    expect(await def('x: 1, y: 2 }')).toEqual(positionOf(PROGRAM, 'x: Int'));
    expect(await def('print("weight')).toBeUndefined();
  });

  it('lists every reference of a name', async () => {
    const refs = await rpc.sendRequest('textDocument/references', {
      textDocument: { uri }, position: positionOf(PROGRAM, 'origin = Point'), context: { includeDeclaration: true },
    }) as { range: Range }[];
    expect(refs.map((r) => r.range.start)).toEqual([positionOf(PROGRAM, 'origin = Point'), positionOf(PROGRAM, 'origin)')]);
  });

  it('completes names in scope, fields after a dot, constructors in patterns and built-ins', async () => {
    type Item = { label: string; detail?: string; insertText?: string };
    const complete = async (text: string, pos: Position) => {
      await change(uri, text);
      return (await rpc.sendRequest('textDocument/completion', { textDocument: { uri }, position: pos })) as Item[];
    };

    // Inside weight's body: its parameter and local are in scope; area's are not.
    const inBody = PROGRAM.replace('    total * 2', '    total * 2 + tot');
    const names = await complete(inBody, positionOf(inBody, '+ tot', 0, 5));
    const labels = names.map((i) => i.label);
    expect(labels).toEqual(expect.arrayContaining(['total', 'p', 'weight', 'area', 'Point', 'Circle', 'match']));
    expect(labels).not.toContain('radius');
    expect(names.find((i) => i.label === 'websocketSend')?.detail).toBe('websocketSend(wsID: Int, message: String) -> Result<Unit, String>');
    expect(names.find((i) => i.label === 'weight')?.detail).toBe('fn weight(p: Point) -> Int');

    // After `origin.` (the text does not parse while it is being typed).
    const dotted = PROGRAM + 'print(origin.)\n';
    const fields = await complete(dotted, positionOf(dotted, 'origin.)', 0, 7));
    expect(fields.map((i) => i.label).sort()).toEqual(['x', 'y']);
    expect(fields.find((i) => i.label === 'x')?.detail).toBe('x: Int');

    // After `Module.`: its members; outside the module they are not in scope unqualified.
    const mod = 'module Geometry {\n    let unit = 10\n    fn scaled(n: Int) -> Int = n * unit\n}\nprint(Geometry.)\n';
    const members = await complete(mod, positionOf(mod, 'Geometry.)', 0, 9));
    expect(members.map((i) => i.label).sort()).toEqual(['scaled', 'unit']);
    expect(members.find((i) => i.label === 'scaled')?.detail).toBe('fn Geometry.scaled(n: Int) -> Int');
    const outside = 'module Geometry {\n    fn scaled(n: Int) -> Int = n * 2\n}\nlet top = 1\nprint(top)\n';
    const topLabels = (await complete(outside, positionOf(outside, 'top)'))).map((i) => i.label);
    expect(topLabels).toContain('top');
    expect(topLabels).not.toContain('scaled');

    // At the start of a match arm: the constructors of the scrutinee's type, as patterns.
    const arm = PROGRAM.replace('    Square { side } => side * side\n', '    Square { side } => side * side\n    \n');
    const ctors = await complete(arm, positionOf(arm, 'side * side\n    \n', 0, 16));
    expect(ctors.map((i) => i.label)).toEqual(['Circle', 'Square']);
    expect(ctors[0]!.insertText).toBe('Circle { radius } => ');
    // An arm's body on the line after `=>` is an expression: names, with the arm's bindings.
    const body = PROGRAM.replace('    Square { side } => side * side\n', '    Square { side } =>\n        sid\n');
    const bodyLabels = (await complete(body, positionOf(body, '        sid', 0, 11))).map((i) => i.label);
    expect(bodyLabels).toContain('side');
    expect(bodyLabels).not.toContain('radius');
  });

  it('shows the signature of the call being written', async () => {
    type Help = { signatures: { label: string; parameters: { label: [number, number] }[] }[]; activeParameter: number } | null;
    const help = async (text: string) => {
      await change(uri, text);
      const lines = text.split('\n');
      const position = { line: lines.length - 1, character: lines[lines.length - 1]!.length };
      return (await rpc.sendRequest('textDocument/signatureHelp', { textDocument: { uri }, position })) as Help;
    };
    const send = await help(`${PROGRAM}print(websocketSend(wsID: 1, `);
    expect(send?.signatures[0]!.label).toBe('websocketSend(wsID: Int, message: String) -> Result<Unit, String>');
    expect(send?.activeParameter).toBe(1);
    const [from, to] = send!.signatures[0]!.parameters[1]!.label;
    expect(send!.signatures[0]!.label.slice(from, to)).toBe('message: String');
    // A named argument selects its parameter whatever its position.
    expect((await help(`${PROGRAM}websocketSend(message: "hi", wsID: `))?.activeParameter).toBe(0);
    const user = await help(`${PROGRAM}let z = weight(`);
    expect(user?.signatures[0]!.label).toBe('weight(p: Point) -> Int');
    expect(user?.activeParameter).toBe(0);
    // Commas inside strings and nested calls do not count; outside any call there is no help.
    expect((await help(`${PROGRAM}print(websocketSend(wsID: area(Circle { radius: 1 }), message: "a, b`))?.activeParameter).toBe(1);
    expect(await help(`${PROGRAM}let q = 1`)).toBeNull();
  });

  it('lists document symbols', async () => {
    await change(uri, PROGRAM);
    const symbols = await rpc.sendRequest('textDocument/documentSymbol', { textDocument: { uri } }) as { name: string; kind: number; children?: { name: string }[] }[];
    expect(symbols.map((s) => s.name)).toEqual(['Point', 'Shape', 'weight', 'area', 'origin', 'w']);
    expect(symbols.find((s) => s.name === 'Shape')?.children?.map((c) => c.name)).toEqual(['Circle', 'Square']);
    expect(symbols.find((s) => s.name === 'Point')?.children?.map((c) => c.name)).toEqual(['x', 'y']);
  });

  it('renames a local and a top-level name, and refuses a rename that would change the program', async () => {
    await change(uri, PROGRAM);
    type Edit = { changes: Record<string, { range: Range; newText: string }[]> };
    const prepared = await rpc.sendRequest('textDocument/prepareRename', { textDocument: { uri }, position: positionOf(PROGRAM, 'total * 2') }) as { placeholder: string };
    expect(prepared.placeholder).toBe('total');

    const local = await rpc.sendRequest('textDocument/rename', { textDocument: { uri }, position: positionOf(PROGRAM, 'total * 2'), newName: 'sum' }) as Edit;
    expect(local.changes[uri]!.map((e) => e.range.start)).toEqual([positionOf(PROGRAM, 'total = '), positionOf(PROGRAM, 'total * 2')]);
    expect(local.changes[uri]!.every((e) => e.newText === 'sum')).toBe(true);

    const top = await rpc.sendRequest('textDocument/rename', { textDocument: { uri }, position: positionOf(PROGRAM, 'weight(p'), newName: 'heft' }) as Edit;
    expect(top.changes[uri]!.map((e) => e.range.start)).toEqual([positionOf(PROGRAM, 'weight(p'), positionOf(PROGRAM, 'weight(origin)')]);

    // A type (a record: its constructions too) and a union's constructor.
    const typeEdit = await rpc.sendRequest('textDocument/rename', { textDocument: { uri }, position: positionOf(PROGRAM, 'Point = {'), newName: 'Spot' }) as Edit;
    expect(typeEdit.changes[uri]!.map((e) => e.range.start)).toEqual([
      positionOf(PROGRAM, 'Point = {'), positionOf(PROGRAM, 'Point) -> Int'), positionOf(PROGRAM, 'Point { x: 1'),
    ]);
    const ctorEdit = await rpc.sendRequest('textDocument/rename', { textDocument: { uri }, position: positionOf(PROGRAM, 'Circle { radius: 2 }'), newName: 'Round' }) as Edit;
    expect(ctorEdit.changes[uri]!.map((e) => e.range.start)).toEqual([
      positionOf(PROGRAM, 'Circle { radius: Int }'), positionOf(PROGRAM, 'Circle { radius }'), positionOf(PROGRAM, 'Circle { radius: 2 }'),
    ]);
    await expect(rpc.sendRequest('textDocument/rename', { textDocument: { uri }, position: positionOf(PROGRAM, 'Circle { radius: 2 }'), newName: 'Square' }))
      .rejects.toThrow(/would change the meaning/);
    await expect(rpc.sendRequest('textDocument/rename', { textDocument: { uri }, position: positionOf(PROGRAM, 'p.y', 0, 2), newName: 'z' }))
      .rejects.toThrow(/cannot rename a field/);

    // Renaming the global `scale` to `n` would make f's `scale` refer to f's parameter.
    const captureUri = 'file:///work/capture.osp';
    const capture = 'let scale = 3\nfn f(n: Int) -> Int = n * scale\nprint(f(2))\n';
    expect((await open(captureUri, capture)).diagnostics).toEqual([]);
    await expect(rpc.sendRequest('textDocument/rename', { textDocument: { uri: captureUri }, position: positionOf(capture, 'scale'), newName: 'n' }))
      .rejects.toThrow(/would change the meaning/);
    const fine = await rpc.sendRequest('textDocument/rename', { textDocument: { uri: captureUri }, position: positionOf(capture, 'scale'), newName: 'factor' }) as Edit;
    expect(fine.changes[captureUri]!.length).toBe(2);
    await expect(rpc.sendRequest('textDocument/rename', { textDocument: { uri }, position: positionOf(PROGRAM, 'print("weight'), newName: 'show' }))
      .rejects.toThrow(/cannot rename a built-in function/);
    await expect(rpc.sendRequest('textDocument/rename', { textDocument: { uri }, position: positionOf(PROGRAM, 'total * 2'), newName: 'match' }))
      .rejects.toThrow(/keyword/);
  });

  it('formats the document', async () => {
    await change(uri, 'let x=1\nprint( x )\n');
    const edits = await rpc.sendRequest('textDocument/formatting', { textDocument: { uri }, options: { tabSize: 4, insertSpaces: true } }) as { newText: string }[];
    expect(edits.map((e) => e.newText)).toEqual(['let x = 1\nprint(x)\n']);
  });

  it('publishes diagnostics for a 2,000-line program soon after a change', { timeout: 180_000 }, async () => {
    const block = (i: number) => [
      `type Point${i} = { x: Int, y: Int }`,
      `fn dist${i}(p: Point${i}) -> Int = {`,
      '    let dx = p.x * p.x',
      '    let dy = p.y * p.y',
      '    dx + dy',
      '}',
      `let v${i} = dist${i}(Point${i} { x: ${i}, y: 2 })`,
      `print("v \${v${i}}")`,
      `match v${i} > 10 { true => print("big") false => print("small") }`,
      '',
    ].join('\n');
    const big = Array.from({ length: 200 }, (_, i) => block(i)).join('\n');
    expect(big.split('\n').length).toBeGreaterThanOrEqual(2000);
    const bigUri = 'file:///work/big.osp';
    expect((await open(bigUri, big)).diagnostics).toEqual([]);
    const samples: number[] = [];
    for (let round = 0; round < 5; round++) {
      const edited = big.replace('let v150 = dist150(', round % 2 === 0 ? 'let v150 = "s" + dist150(' : 'let v150 = dist150(');
      const started = performance.now();
      const d = await change(bigUri, edited);
      samples.push(performance.now() - started);
      expect(d.diagnostics.length).toBe(round % 2 === 0 ? 1 : 0);
    }
    samples.sort((a, b) => a - b);
    const median = samples[Math.floor(samples.length / 2)]!;
    console.log(`lsp: diagnostics for a ${big.split('\n').length}-line program ${median.toFixed(0)} ms after a change (median of ${samples.length}; all: ${samples.map((s) => s.toFixed(0)).join(', ')} ms)`);
    // The same analysis in-process, as CPU time: the part of the figure that does not depend on
    // how many other processes share the machine.
    const cpuStart = process.cpuUsage();
    for (let k = 0; k < 3; k++) analyzeSource(new SourceFile('big.osp', big));
    const cpu = process.cpuUsage(cpuStart);
    const cpuMs = (cpu.user + cpu.system) / 3000;
    console.log(`lsp: one analysis of that program takes ${cpuMs.toFixed(0)} ms of CPU time`);
    // The target is 300 ms on an idle machine (README). The bounds are CI-safe on a shared 2-core
    // machine and still catch a pass turning quadratic: the CPU time barely depends on load.
    expect(cpuMs).toBeLessThan(1000);
    expect(median).toBeLessThan(5000);
  });
});

describe('osprey lsp as a process', () => {
  it('exits when its client goes away without shutdown, and rejects unknown arguments', async () => {
    const child = spawn(process.execPath, [OSPREY_BIN, 'lsp', '--stdio'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    expect(await exited).toBe(1);
    clearTimeout(timer);

    const bad = spawnSync(process.execPath, [OSPREY_BIN, 'lsp', '--port', '80'], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('unexpected argument: --port');
  });
});
