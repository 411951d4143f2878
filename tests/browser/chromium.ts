/**
 * Headless Debian Chromium driven by playwright-core, for the browser tests and the interop
 * matrix's Chromium cell. Chromium is the Debian package (/usr/bin/chromium, installed by
 * scripts/system-deps.mjs); playwright-core never downloads a browser.
 *
 * Also: a loopback static file server for pages, and a view of a process's TCP sockets from
 * /proc (to see that a server released its connections).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Test artifacts (screenshots): gitignored. */
export const ARTIFACTS = join(PROJECT_ROOT, 'test-artifacts', 'browser');

/**
 * The flags that work on this machine (/work/.library/env/machines/node.md): without the
 * background-networking ones Chromium keeps trying to reach Google's hosts through a closed
 * network. --no-sandbox because tests run as root.
 */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** null when Chromium can run here, otherwise why not. */
export function chromiumUnavailable(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} missing (apt-get install -y chromium; scripts/system-deps.mjs installs it)`;
}

export interface Browser {
  context: BrowserContext;
  version: string;
  /** Closes the browser and removes its profile; safe to call twice. */
  close(): Promise<void>;
}

/** Launches headless Chromium with a fresh, empty --user-data-dir. */
export async function launchChromium(): Promise<Browser> {
  const why = chromiumUnavailable();
  if (why) throw new Error(why);
  const profile = mkdtempSync(join(tmpdir(), 'osprey-chromium-'));
  let context: BrowserContext;
  try {
    // launchPersistentContext is playwright's way to pass --user-data-dir (launch() refuses it).
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      timeout: 20_000,
    });
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw new Error(`cannot launch ${CHROMIUM}: ${(e as Error).message}`);
  }
  let closed = false;
  return {
    context,
    version: context.browser()?.version() ?? 'unknown',
    async close() {
      if (closed) return;
      closed = true;
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
};

export interface StaticServer {
  /** http://127.0.0.1:PORT (no trailing slash) */
  origin: string;
  close(): Promise<void>;
}

/** Serves the files of `dir` (no listing, nothing outside it) on 127.0.0.1, port chosen by the OS. */
export async function serveStatic(dir: string): Promise<StaticServer> {
  const root = normalize(dir.endsWith(sep) ? dir : dir + sep);
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = normalize(join(root, path === '/' ? 'index.html' : path));
    if (!file.startsWith(root) || !existsSync(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(readFileSync(file));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

// ---- TCP sockets of a process (Linux /proc) ----------------------------------------------------

const TCP_STATES: Record<string, string> = {
  '01': 'ESTABLISHED', '02': 'SYN_SENT', '03': 'SYN_RECV', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2', '06': 'TIME_WAIT',
  '07': 'CLOSE', '08': 'CLOSE_WAIT', '09': 'LAST_ACK', '0A': 'LISTEN', '0B': 'CLOSING',
};

export interface TcpSocket {
  localPort: number;
  remotePort: number;
  state: string;
  inode: number;
}

/** Every IPv4/IPv6 TCP socket in this network namespace (TIME_WAIT ones have inode 0). */
export function tcpSockets(): TcpSocket[] {
  const out: TcpSocket[] = [];
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(f)) continue;
    for (const line of readFileSync(f, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      out.push({
        localPort: parseInt(cols[1]!.split(':')[1]!, 16),
        remotePort: parseInt(cols[2]!.split(':')[1]!, 16),
        state: TCP_STATES[cols[3]!] ?? cols[3]!,
        inode: Number(cols[9]),
      });
    }
  }
  return out;
}

/** The TCP sockets process `pid` holds open whose local port is `port`. */
export function socketsOfProcess(pid: number, port: number): TcpSocket[] {
  const inodes = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(Number(m[1]));
    } catch {
      /* fd closed meanwhile */
    }
  }
  return tcpSockets().filter((s) => s.localPort === port && inodes.has(s.inode));
}
