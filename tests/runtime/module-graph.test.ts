/**
 * The C runtime's modules depend on each other without a cycle (runtime-c/README.md, "Module
 * layers"). Two graphs are checked, both over modules named after their files (ws_conn.c and
 * ws_conn.h are the module ws_conn):
 *  - the #include graph of runtime-c/src/*.c and *.h;
 *  - the link graph: module A depends on B when A's object file (build/runtime/release/obj)
 *    uses a symbol B's defines (nm). A shared header such as ws_internal.h hides calls from the
 *    include graph; the link graph sees every call.
 * A cycle fails with the modules on it and, for the link graph, the symbols each edge uses.
 * The one grouping: signals.c is the termination half of core.c (osp_rt_init installs the
 * handling, the handling runs osp_rt_shutdown), so the two are one module, core.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../peers/index.ts';

const SRC = join(PROJECT_ROOT, 'runtime-c/src');
const OBJ = join(PROJECT_ROOT, 'build/runtime/release/obj');
const GROUPS: Record<string, string> = { signals: 'core' };

const moduleOf = (file: string) => {
  const name = basename(file).replace(/\.[ch]$/, '');
  return GROUPS[name] ?? name;
};

type Graph = Map<string, Map<string, string[]>>; // from → to → why

function addEdge(g: Graph, from: string, to: string, why: string): void {
  if (from === to) return;
  if (!g.has(from)) g.set(from, new Map());
  const edges = g.get(from)!;
  edges.set(to, [...(edges.get(to) ?? []), why]);
}

/** Every cycle's modules, as strongly connected components of more than one module (Tarjan). */
function cycles(g: Graph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of g.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  const nodes = new Set([...g.keys(), ...[...g.values()].flatMap((e) => [...e.keys()])]);
  for (const v of [...nodes].sort()) if (!index.has(v)) visit(v);
  return found;
}

function describeCycles(g: Graph): string {
  return cycles(g)
    .map((component) => {
      const edges = component.flatMap((a) =>
        component.filter((b) => g.get(a)?.has(b)).map((b) => `  ${a} -> ${b}: ${[...new Set(g.get(a)!.get(b)!)].slice(0, 6).join(', ')}`),
      );
      return `cycle between ${component.join(', ')}:\n${edges.join('\n')}`;
    })
    .join('\n');
}

function includeGraph(): Graph {
  const g: Graph = new Map();
  for (const file of readdirSync(SRC).filter((f) => /\.[ch]$/.test(f))) {
    for (const m of readFileSync(join(SRC, file), 'utf8').matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)) {
      if (existsSync(join(SRC, m[1]))) addEdge(g, moduleOf(file), moduleOf(m[1]), `${file} includes ${m[1]}`);
    }
  }
  return g;
}

function linkGraph(): Graph {
  const defined = new Map<string, string>();
  const used = new Map<string, string[]>();
  for (const obj of readdirSync(OBJ).filter((f) => f.endsWith('.o'))) {
    const module = moduleOf(obj.replace(/\.o$/, '.c'));
    const out = execFileSync('nm', ['--defined-only', '-g', join(OBJ, obj)], { encoding: 'utf8' });
    for (const line of out.split('\n')) {
      const sym = line.trim().split(/\s+/)[2];
      if (sym) defined.set(sym, module);
    }
    const undef = execFileSync('nm', ['--undefined-only', join(OBJ, obj)], { encoding: 'utf8' });
    used.set(module, [...(used.get(module) ?? []), ...undef.split('\n').map((l) => l.trim().split(/\s+/).at(-1)!).filter(Boolean)]);
  }
  const g: Graph = new Map();
  for (const [module, syms] of used) for (const s of syms) if (defined.has(s)) addEdge(g, module, defined.get(s)!, s);
  return g;
}

describe('runtime module graph', () => {
  it('finds a cycle when there is one (the checker itself)', () => {
    const g: Graph = new Map();
    addEdge(g, 'ws_conn', 'ws_server', 'osp_ws_server_deliver');
    addEdge(g, 'ws_server', 'ws_conn', 'osp_ws_conn_new');
    addEdge(g, 'ws_server', 'ws_registry', 'osp_ws_registry_add');
    expect(cycles(g)).toEqual([['ws_conn', 'ws_server']]);
    expect(describeCycles(g)).toContain('ws_conn -> ws_server: osp_ws_server_deliver');
  });

  it('#include graph of runtime-c/src has no cycle', () => {
    const g = includeGraph();
    expect(g.get('ws_conn')?.has('ws_message'), 'the include graph was read').toBe(false); // through ws_internal.h
    expect(g.get('ws_internal')?.has('ws_session')).toBe(true);
    expect(g.get('ws_session')?.has('ws_message')).toBe(true);
    expect(describeCycles(g)).toBe('');
  });

  it.skipIf(!existsSync(OBJ))('link graph (which module calls which) has no cycle', () => {
    const g = linkGraph();
    expect(g.get('ws_server')?.has('ws_conn'), 'the objects were read').toBe(true);
    expect(describeCycles(g)).toBe('');
  });

  // Leaves (runtime-c/README.md): they call no other runtime module and include none but
  // header-only ones, so their users hand them what they need (ws_acceptor: a callback) instead
  // of being called back by name. ws_acceptor.c must not include runtime.h in particular: its
  // thread is created with the C library's pthread_create, unknown to the collector.
  const LEAVES = ['ws_peer_table', 'ws_acceptor', 'fiber_stack'];
  const HEADER_ONLY = ['sanitizer'];

  it('the leaf modules include no other runtime module', () => {
    const g = includeGraph();
    for (const leaf of LEAVES) {
      expect(existsSync(join(SRC, `${leaf}.c`)), `${leaf}.c exists`).toBe(true);
      expect([...(g.get(leaf)?.keys() ?? [])].filter((m) => !HEADER_ONLY.includes(m)), `${leaf} includes`).toEqual([]);
    }
  });

  it.skipIf(!existsSync(OBJ))('the leaf modules call no other runtime module', () => {
    const g = linkGraph();
    expect(g.get('ws_server')?.has('ws_acceptor'), 'the objects were read').toBe(true);
    for (const leaf of LEAVES) expect([...(g.get(leaf)?.keys() ?? [])], `${leaf} calls`).toEqual([]);
  });

  // The session is the protocol without I/O (runtime-c/README.md, "WebSockets"): it may use the
  // codecs below it, never the loop, sockets, TLS, the registry or the connection.
  const IO_FREE = ['ws_message', 'ws_frame', 'ws_utf8', 'ws_buf', 'ws_limits'];

  it('ws_session includes only the protocol core', () => {
    const g = includeGraph();
    expect([...(g.get('ws_session')?.keys() ?? [])].filter((m) => !IO_FREE.includes(m))).toEqual([]);
  });

  it.skipIf(!existsSync(OBJ))('ws_session calls only the protocol core (no I/O module)', () => {
    const g = linkGraph();
    expect(g.get('ws_conn')?.has('ws_session'), 'the objects were read').toBe(true);
    const reached = new Set<string>();
    const visit = (m: string) => {
      for (const next of g.get(m)?.keys() ?? []) if (!reached.has(next)) { reached.add(next); visit(next); }
    };
    visit('ws_session');
    expect([...reached].filter((m) => !IO_FREE.includes(m) && m !== 'core' && m !== 'runtime')).toEqual([]);
  });
});
