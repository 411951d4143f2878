/**
 * websocketServerUseCluster against a real redis-server: three compiled Osprey server processes on
 * one channel, WebSocket clients on each. Broadcasts from every node reach every client exactly
 * once and in order per node; websocketServerSend reaches a connection of another node; Redis
 * killed and restarted mid-run; a node killed with SIGKILL; a TLS Redis with a password and a
 * throwaway CA. Everything on loopback; every process is stopped in afterAll.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { workspace, type Workspace } from '../interop/compile.js';
import { freePort, spawnClient, spawnPeer, type PeerProcess } from '../peers/process.js';
import { makeTestCertificates, type TestCertificates } from '../peers/certs.js';
import { NODE_PROGRAM } from './node-program.js';
import { connect, sleep, startRedis, waitFor, type Client, type RedisServer } from './support.js';

const NODE_SHIFT = 40n;

let ws: Workspace;
let exe: string;
const nodes: PeerProcess[] = [];
const clients: Client[] = [];
const redises: RedisServer[] = [];

async function startNode(port: number, redisUrl: string, channel: string, opts: { ca?: string; env?: Record<string, string> } = {}) {
  const p = await spawnPeer({
    name: `cluster-node-${port}`,
    command: exe,
    args: [String(port), redisUrl, channel, ...(opts.ca ? [opts.ca] : [])],
    env: opts.env,
    readyTimeoutMs: 15_000,
  });
  nodes.push(p);
  return p;
}

async function client(port: number): Promise<Client> {
  const c = await connect(port);
  clients.push(c);
  return c;
}

/** The "bc:…" messages a client got, in order. */
const broadcasts = (c: Client) => c.got.filter((m) => m.startsWith('bc:'));

/** Checks that `got` holds exactly the messages of `expected` (per origin, in order), nothing twice. */
function expectExactlyOnceInOrder(got: string[], expected: Map<string, string[]>) {
  const byOrigin = new Map<string, string[]>();
  for (const m of got) {
    const origin = m.split(':')[1]!;
    byOrigin.set(origin, [...(byOrigin.get(origin) ?? []), m]);
  }
  for (const [origin, msgs] of expected) expect(byOrigin.get(origin) ?? [], `messages from ${origin}`).toEqual(msgs);
  expect(got.length).toBe([...expected.values()].reduce((n, l) => n + l.length, 0));
}

beforeAll(async () => {
  ws = workspace();
  exe = await ws.build('cluster_node', NODE_PROGRAM);
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(nodes.map((n) => n.stop({ graceMs: 3000 })));
  await Promise.all(redises.map((r) => r.stop()));
  ws?.dispose();
});

describe('three nodes on one Redis', () => {
  let redis: RedisServer;
  const ports: number[] = [];
  const perNode: Client[][] = [[], [], []];
  const all = () => perNode.flat().filter((c) => !c.closed);

  beforeAll(async () => {
    redis = await startRedis();
    redises.push(redis);
    const url = `redis://127.0.0.1:${redis.port}/0`;
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      ports.push(port);
      // The third node's backlog is small, to see the bound refuse a broadcast during an outage.
      await startNode(port, url, 'room', i === 2 ? { env: { OSPREY_CLUSTER_BACKLOG_BYTES: '4096' } } : {});
    }
    for (let i = 0; i < 3; i++) for (let k = 0; k < 2; k++) perNode[i]!.push(await client(ports[i]!));
  }, 90_000);

  it('gives connection ids that are unique across the cluster and name their node', () => {
    const ids = perNode.flat().map((c) => c.id);
    expect(new Set(ids).size).toBe(ids.length);
    const nodeOf = perNode.map((cs) => new Set(cs.map((c) => c.id >> NODE_SHIFT)));
    for (const s of nodeOf) expect(s.size).toBe(1); // one node id per process
    const nodeIds = nodeOf.map((s) => [...s][0]!);
    expect(new Set(nodeIds).size).toBe(3);
    for (const n of nodeIds) expect(n).toBeGreaterThan(0n);
  });

  it('reports its state: up, sharded pub/sub on Redis 7, three subscribers', async () => {
    let status = '';
    // The subscriber count comes from the once-a-second heartbeat.
    for (let tries = 0; tries < 40 && !status.includes('3 subscribers'); tries++) {
      status = await perNode[0]![0]!.ask('status', ['status:', 'err:']);
      if (!status.includes('3 subscribers')) await sleep(150);
    }
    expect(status).toMatch(new RegExp(`^status:up: node \\d+, Redis 127\\.0\\.0\\.1:${redis.port}, sharded pub/sub, 3 subscribers; `));
    expect(status).toContain('backlog 0 messages');
  });

  it('delivers every broadcast from every node to every client exactly once, in order per node', async () => {
    const count = 40;
    const expected = new Map<string, string[]>();
    for (let i = 0; i < 3; i++) {
      const origin = `n${i}`;
      expected.set(origin, Array.from({ length: count }, (_, k) => `bc:${origin}:${k}`));
    }
    for (const c of all()) c.got.length = 0;
    // Interleaved: all three nodes publish at once.
    for (let k = 0; k < count; k++) for (let i = 0; i < 3; i++) perNode[i]![0]!.send(`bc:n${i}:${k}`);
    await waitFor(
      () => all().every((c) => broadcasts(c).length >= 3 * count),
      20_000,
      () => all().map((c) => broadcasts(c).length).join(' '),
    );
    await sleep(300); // nothing more may arrive: no duplicates
    for (const c of all()) expectExactlyOnceInOrder(broadcasts(c), expected);
    for (const c of all()) expect(c.got.filter((m) => m.startsWith('err:'))).toEqual([]);
  });

  it('carries large messages and any UTF-8 text', async () => {
    for (const c of all()) c.got.length = 0;
    const big = `bc:big:${'x'.repeat(200_000)}`;
    const odd = 'bc:odd:\ttab, ünïcödé, \u{1F426}';
    perNode[1]![0]!.send(big);
    perNode[1]![0]!.send(odd);
    await waitFor(() => all().every((c) => broadcasts(c).length >= 2), 10_000, () => all().map((c) => broadcasts(c).length).join(' '));
    // Compared as a summary: a 200 KB string in a failure message helps nobody.
    for (const c of all()) expect(broadcasts(c).map((m) => (m === big ? 'big' : m))).toEqual(['big', odd]);
  });

  it('sends to a connection on another node with websocketServerSend, and to it only', async () => {
    for (const c of all()) c.got.length = 0;
    const target = perNode[2]![1]!;
    const text = `to:${target.id}:hello from node 0`;
    perNode[0]![0]!.send(text);
    await waitFor(() => target.got.includes(text), 5000, () => JSON.stringify(target.got));
    await sleep(200);
    for (const c of all()) expect(c.got.filter((m) => m.startsWith('to:'))).toEqual(c === target ? [text] : []);
    expect(perNode[0]![0]!.got.filter((m) => m.startsWith('err:'))).toEqual([]);
  });

  it('carries binary broadcasts and binary sends across nodes as binary frames, NUL bytes included', async () => {
    for (const c of all()) {
      c.got.length = 0;
      c.gotBinary.length = 0;
    }
    const text = 'bb:from node 1';
    perNode[1]![0]!.send(text);
    const expected = Buffer.concat([Buffer.from(text), Buffer.from([0])]);
    await waitFor(() => all().every((c) => c.gotBinary.length >= 1), 10_000, () => all().map((c) => c.gotBinary.length).join(' '));
    for (const c of all()) expect(c.gotBinary).toEqual([expected]);
    const target = perNode[0]![1]!;
    const direct = `tb:${target.id}:to node 0`;
    perNode[2]![0]!.send(direct);
    await waitFor(() => target.gotBinary.length >= 2, 5000, () => String(target.gotBinary.length));
    await sleep(200);
    expect(target.gotBinary[1]).toEqual(Buffer.concat([Buffer.from(direct), Buffer.from([0])]));
    for (const c of all()) if (c !== target) expect(c.gotBinary).toHaveLength(1);
    for (const c of all()) expect(c.got.filter((m) => m.startsWith('err:'))).toEqual([]);
  });

  it('keeps working through a Redis restart: local delivery at once, the bus catches up exactly once, in order', async () => {
    for (const c of all()) c.got.length = 0;
    await redis.kill();
    await sleep(200);
    const during = new Map<string, string[]>();
    for (let i = 0; i < 3; i++) {
      const origin = `r${i}`;
      const msgs = Array.from({ length: 5 }, (_, k) => `bc:${origin}:${k}`);
      during.set(origin, msgs);
      for (const m of msgs) perNode[i]![0]!.send(m);
    }
    // Local clients get their own node's broadcasts at once, while Redis is down.
    for (let i = 0; i < 3; i++)
      await waitFor(
        () => perNode[i]!.every((c) => broadcasts(c).length >= 5),
        5000,
        () => perNode[i]!.map((c) => JSON.stringify(c.got)).join(' | '),
      );
    for (let i = 0; i < 3; i++) for (const c of perNode[i]!) expect(broadcasts(c)).toEqual(during.get(`r${i}`));
    const down = await perNode[0]![0]!.ask('status', ['status:', 'err:']);
    expect(down).toMatch(/^status:reconnecting: node \d+, Redis 127\.0\.0\.1:\d+ unreachable for [\d.]+ s/);
    expect(down).toContain('backlog 5 messages');
    // Past its bound the backlog refuses: an Err, and nothing delivered anywhere.
    const refused = await perNode[2]![0]!.ask(`bc:huge:${'y'.repeat(8000)}`, ['err:']);
    expect(refused).toMatch(/^err:websocketServerBroadcast: the cluster bus \(Redis at 127\.0\.0\.1:\d+\) has been unreachable for [\d.]+ s and 5 messages .*limit \(OSPREY_CLUSTER_BACKLOG_BYTES\) is 4096 bytes; nothing was sent$/);

    const restarted = await startRedis({ port: redis.port });
    redises.push(restarted);
    redis = restarted;
    await waitFor(
      () => all().every((c) => broadcasts(c).length >= 15),
      15_000,
      () => all().map((c) => broadcasts(c).length).join(' '),
    );
    await sleep(300);
    for (const c of all()) expectExactlyOnceInOrder(broadcasts(c), during);
    const up = await perNode[0]![0]!.ask('status', ['status:', 'err:']);
    expect(up).toMatch(/^status:up: /);
    expect(up).toMatch(/reconnects [1-9]/);
    expect(up).toContain('lost 0');
    expect(up).toContain('backlog 0 messages');
  }, 60_000);

  it('loses only the connections of a node killed with SIGKILL', async () => {
    const victim = nodes[1]!;
    await victim.stop({ signal: 'SIGKILL' });
    await waitFor(() => perNode[1]!.every((c) => c.closed), 5000, () => 'the killed node\'s clients to see the close');
    for (const c of all()) c.got.length = 0;
    perNode[0]![0]!.send('bc:after:1');
    perNode[2]![0]!.send('bc:after:2');
    const alive = [...perNode[0]!, ...perNode[2]!];
    await waitFor(() => alive.every((c) => broadcasts(c).length >= 2), 5000, () => alive.map((c) => JSON.stringify(c.got)).join(' | '));
    for (const c of alive) expect([...broadcasts(c)].sort()).toEqual(['bc:after:1', 'bc:after:2']);
    // A send to a connection of the dead node is accepted for the bus and reaches nobody.
    perNode[0]![0]!.send(`to:${perNode[1]![0]!.id}:anyone?`);
    await sleep(300);
    for (const c of alive) expect(c.got.filter((m) => m.startsWith('to:'))).toEqual([]);
  });
});

describe('joining', () => {
  it('answers Err naming the address when Redis is unreachable', async () => {
    const closedPort = await freePort();
    const p = spawnClient({ name: 'cluster-node-unreachable', command: exe, args: [String(await freePort()), `redis://127.0.0.1:${closedPort}/0`, 'room'] });
    const exit = await p.exited;
    expect(exit.code).toBe(1);
    expect(p.stdoutLines.join('\n')).toContain(
      `cluster failed: websocketServerUseCluster: cannot join the cluster: cannot connect to Redis at 127.0.0.1:${closedPort}: Connection refused`,
    );
  });

  it('answers Err for a URL that is not a Redis URL', async () => {
    const p = spawnClient({ name: 'cluster-node-bad-url', command: exe, args: [String(await freePort()), 'http://127.0.0.1:1/', 'room'] });
    expect((await p.exited).code).toBe(1);
    expect(p.stdoutLines.join('\n')).toContain('cluster failed: websocketServerUseCluster: "http://127.0.0.1:1/" is not a Redis URL');
  });
});

describe('misuse', () => {
  it('answers Err for a server already listening, a status without a cluster, and unknown ids', async () => {
    const redis = await startRedis();
    redises.push(redis);
    const port = await freePort();
    const program = `
fn show(what: String, r: Result<Success, String>) -> Unit = match r {
    Success _ => print("\${what}: ok")
    Err e => print("\${what}: \${e}")
}
fn main() -> Int = {
    match websocketCreateServer(port: ${port}, address: "127.0.0.1", path: "/room") {
        Success sid => {
            match websocketServerClusterStatus(serverID: sid) {
                Success s => print("status: \${s}")
                Err e => print("status: \${e}")
            }
            show(what: "listen", r: websocketServerListen(serverID: sid))
            show(what: "join after listen", r: websocketServerUseCluster(serverID: sid, redisUrl: "redis://127.0.0.1:${redis.port}/0", channelName: "x"))
            show(what: "unknown server", r: websocketServerUseCluster(serverID: 9999, redisUrl: "redis://127.0.0.1:${redis.port}/0", channelName: "x"))
            show(what: "empty channel", r: websocketServerUseCluster(serverID: sid, redisUrl: "redis://127.0.0.1:${redis.port}/0", channelName: ""))
            show(what: "bad port", r: websocketServerUseCluster(serverID: sid, redisUrl: "redis://127.0.0.1:99999/0", channelName: "x"))
            0
        }
        Err e => {
            print(e)
            1
        }
    }
}
`;
    const exe = await ws.build('cluster_misuse', program);
    const p = spawnClient({ name: 'cluster-misuse', command: exe, args: [] });
    expect((await p.exited).code).toBe(0);
    expect(p.stdoutLines).toEqual([
      'status: websocketServerClusterStatus: server 1 has not joined a cluster (websocketServerUseCluster)',
      'listen: ok',
      'join after listen: websocketServerUseCluster: server 1 is already listening; join the cluster before websocketServerListen (connection ids carry the node id)',
      'unknown server: websocketServerUseCluster: unknown server id 9999',
      'empty channel: websocketServerUseCluster: the channel name must be 1 to 1024 bytes (got 0)',
      'bad port: websocketServerUseCluster: the port of the Redis URL must be 1…65535',
    ]);
  });
});

describe('rediss:// with a password and a private CA', () => {
  let dir: string;
  let certs: TestCertificates;
  let redis: RedisServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'osprey-cluster-tls-'));
    certs = makeTestCertificates(dir);
    redis = await startRedis({ password: 's3cret', tls: { cert: certs.cert, key: certs.key, ca: certs.ca } });
    redises.push(redis);
  }, 60_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('joins over TLS with AUTH and shares broadcasts between two nodes (plain pub/sub)', async () => {
    const url = `rediss://:s3cret@localhost:${redis.port}/0`;
    const [pa, pb] = [await freePort(), await freePort()];
    // Plain pub/sub here (the fallback for Redis before 7), sharded in the tests above.
    const env = { OSPREY_CLUSTER_PUBSUB: 'plain' };
    await startNode(pa, url, 'secure-room', { ca: certs.ca, env });
    await startNode(pb, url, 'secure-room', { ca: certs.ca, env });
    const a = await client(pa);
    const b = await client(pb);
    a.send('bc:tls:1');
    b.send('bc:tls:2');
    await waitFor(() => [a, b].every((c) => broadcasts(c).length >= 2), 10_000, () => JSON.stringify([a.got, b.got]));
    for (const c of [a, b]) expect([...broadcasts(c)].sort()).toEqual(['bc:tls:1', 'bc:tls:2']);
    expect(await a.ask('status', ['status:'])).toMatch(new RegExp(`^status:up: node \\d+, Redis localhost:${redis.port}, plain pub/sub, `));
  });

  it('refuses a wrong password and an untrusted certificate with a clear Err', async () => {
    const wrong = spawnClient({
      name: 'cluster-node-wrong-password',
      command: exe,
      args: [String(await freePort()), `rediss://:wrong@localhost:${redis.port}/0`, 'secure-room', certs.ca],
    });
    expect((await wrong.exited).code).toBe(1);
    expect(wrong.stdoutLines.join('\n')).toMatch(
      new RegExp(`cluster failed: websocketServerUseCluster: cannot join the cluster: Redis at localhost:${redis.port} refused AUTH/SELECT: WRONGPASS`),
    );
    const untrusted = spawnClient({
      name: 'cluster-node-untrusted',
      command: exe,
      args: [String(await freePort()), `rediss://:s3cret@localhost:${redis.port}/0`, 'secure-room'],
    });
    expect((await untrusted.exited).code).toBe(1);
    expect(untrusted.stdoutLines.join('\n')).toContain(`TLS to Redis at localhost:${redis.port}: certificate verify failed`);
  });
});

describe('examples/chat_cluster.osp', () => {
  it('runs as two processes on two ports sharing one room', async () => {
    const redis = await startRedis();
    redises.push(redis);
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const example = await ws.build('chat_cluster', readFileSync(join(root, 'examples/chat_cluster.osp'), 'utf8'));
    const url = `redis://127.0.0.1:${redis.port}/0`;
    const ports = [await freePort(), await freePort()];
    for (const port of ports) {
      const p = await spawnPeer({ name: `chat-cluster-${port}`, command: example, args: [String(port), url], cwd: root, readyTimeoutMs: 15_000 });
      nodes.push(p);
      expect(p.output.join('\n')).toContain(`sharing the room through ${url}`);
    }
    // A participant in each process; the page (served by either) loads too.
    const page = await fetch(`http://127.0.0.1:${ports[1]}/chat.js`);
    expect(page.status).toBe(200);
    const seats = await Promise.all(
      ports.map(
        (port) =>
          new Promise<{ ws: WebSocket; got: string[] }>((resolve, reject) => {
            const w = new WebSocket(`ws://127.0.0.1:${port}/ws`);
            const seat = { ws: w, got: [] as string[] };
            w.on('message', (d) => seat.got.push(d.toString()));
            w.once('open', () => resolve(seat));
            w.once('error', reject);
          }),
      ),
    );
    seats[0]!.ws.send('hello from the first process');
    seats[1]!.ws.send('hello from the second process');
    await waitFor(() => seats.every((s) => s.got.length >= 2), 10_000, () => JSON.stringify(seats.map((s) => s.got)));
    for (const seat of seats) {
      expect(seat.got.map((m) => m.replace(/^#\d+: /, '')).sort()).toEqual(['hello from the first process', 'hello from the second process']);
      seat.ws.close();
    }
  }, 90_000);
});
