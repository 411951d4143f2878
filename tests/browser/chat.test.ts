/**
 * A real browser in the chat room: headless Debian Chromium (playwright-core) loads the page of
 * examples/chat/ twice from the compiled examples/chat_room.osp server itself (HTTP on the same
 * port as its WebSocket room, /ws); both pages talk through that room.
 *
 * Checks what only a browser shows: Chromium offers permessage-deflate and our server must decline
 * it (docs/WEBSOCKET-RUNTIME.md S-H11: no Sec-WebSocket-Extensions in the 101, ws.extensions === ''); messages
 * with multi-byte UTF-8 reach both pages through the relay; the page's close is clean with code
 * 1000; and the server released both connections (no ESTABLISHED socket left in its process, its
 * side in TIME_WAIT because it closed TCP first, RFC 6455 §7.1.1) and reports code 1000 for each
 * in its closing roll call. The room announces joins and leaves (websocketServerOnOpen/OnClose) and
 * relays binary messages: a page sends an ArrayBuffer and both pages get the bytes back.
 * A screenshot of each page is kept under test-artifacts/browser/.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnPeer, withTimeout, type PeerProcess } from '../peers/index.ts';
import { workspace, type Workspace } from '../interop/compile.ts';
import { artifactPath, launchChromium, socketsOfProcess, tcpSockets, type Browser } from './chromium.ts';

const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));
/** Long enough for two page loads (with the keep-alive connections of the page loads closing after
 *  the room's 1 s idle limit) and the exchange on a loaded 2-core machine; the test waits it out. */
const SERVE_SECONDS = 14;

let ws: Workspace | undefined;
let browser: Browser | undefined;
let server: PeerProcess | undefined;
let exe: string;
let port: number;

beforeAll(async () => {
  ws = workspace();
  port = await freePort();
  const source = readFileSync(`${EXAMPLES}chat_room.osp`, 'utf8')
    .replaceAll('8080', String(port))
    .replace('let serveSeconds = 30', `let serveSeconds = ${SERVE_SECONDS}`)
    .replace('let siteDir = "examples/chat"', `let siteDir = "${EXAMPLES}chat"`);
  expect(source).toContain(`let serveSeconds = ${SERVE_SECONDS}`);
  expect(source).toContain(`let siteDir = "${EXAMPLES}chat"`);
  [exe, browser] = await Promise.all([ws.build('chat_room', source), launchChromium()]);
}, 45_000);

afterAll(async () => {
  await Promise.allSettled([browser?.close(), server?.stop()]);
  ws?.dispose();
});

interface Handshake {
  request: Record<string, string>;
  response: Record<string, string>;
  status: number;
}
const lower = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));

/** Opens the chat page, recording the WebSocket handshake headers through the DevTools protocol. */
async function openChat(origin: string): Promise<{ page: Page; handshake: Promise<Handshake> }> {
  const page = await browser!.context.newPage();
  const cdp = await browser!.context.newCDPSession(page);
  await cdp.send('Network.enable');
  let request: Record<string, string> = {};
  const handshake = new Promise<Handshake>((resolve) => {
    cdp.on('Network.webSocketWillSendHandshakeRequest', (e) => {
      request = lower(e.request.headers);
    });
    cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
      resolve({ request, response: lower(e.response.headers), status: e.response.status });
    });
  });
  // No ?ws=: the page connects to /ws on the server that served it.
  const response = await page.goto(`${origin}/`);
  expect(response?.status()).toBe(200);
  expect(response?.headers()['content-type']).toBe('text/html; charset=utf-8');
  return { page, handshake };
}

/** Relayed chat lines (not the page's own notes, the room's announcements or binary messages). */
const CHAT = '#messages li:not(.system):not(.event):not(.binary)';
const lines = (page: Page) => page.locator(CHAT).allTextContents();
const announcements = (page: Page) => page.locator('#messages li.event').allTextContents();

async function waitForLines(page: Page, n: number) {
  await page.waitForFunction(([sel, k]) => document.querySelectorAll(sel as string).length >= (k as number), [CHAT, n], { timeout: 5000 });
}

async function waitForAnnouncement(page: Page, text: string) {
  await page.waitForFunction((t) => [...document.querySelectorAll('#messages li.event')].some((li) => li.textContent === t), text, { timeout: 5000 });
}

async function send(page: Page, text: string, how: 'click' | 'enter') {
  await page.getByRole('textbox', { name: 'Message', exact: true }).fill(text);
  if (how === 'click') await page.getByRole('button', { name: 'Send' }).click();
  else await page.getByRole('textbox', { name: 'Message', exact: true }).press('Enter');
}

describe('examples/chat_room.osp with examples/chat/ in headless Chromium', () => {
  it('two pages chat through the room, decline permessage-deflate, and close cleanly with 1000', async ({ annotate }) => {
    server = await spawnPeer({ name: 'chat_room', command: exe, args: [] });
    const origin = `http://127.0.0.1:${port}`;
    const url = `ws://127.0.0.1:${port}/ws`;

    const a = await openChat(origin);
    const b = await openChat(origin);
    for (const { page } of [a, b]) {
      await page.waitForSelector('#status[data-state="open"]', { timeout: 5000 });
      await expect(page.locator('#status').textContent()).resolves.toBe(`Connected to ${url} (extensions: none)`);
    }

    // S-H11: Chromium offers permessage-deflate; our server does not implement it and must not echo it.
    for (const { page, handshake } of [a, b]) {
      const h = await withTimeout(handshake, 5000, 'handshake headers from DevTools');
      expect(h.status).toBe(101);
      expect(h.request['sec-websocket-extensions']).toMatch(/permessage-deflate/);
      expect(h.request['origin']).toBe(origin);
      expect(h.response['sec-websocket-extensions']).toBeUndefined();
      expect(await page.evaluate(() => (window as unknown as { chat: { socket: WebSocket } }).chat.socket.extensions)).toBe('');
      expect(await page.evaluate(() => (window as unknown as { chat: { socket: WebSocket } }).chat.socket.protocol)).toBe('');
    }
    // Both WebSocket connections are open in the server process (the page loads' keep-alive HTTP
    // connections close after the room's 1 s idle limit).
    const settle = Date.now() + 4000;
    while (socketsOfProcess(server.pid, port).filter((s) => s.state === 'ESTABLISHED').length !== 2 && Date.now() < settle) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(socketsOfProcess(server.pid, port).filter((s) => s.state === 'ESTABLISHED')).toHaveLength(2);

    const fromA = 'Hello from A — κόσμε 🦅';
    const fromB = 'Hi from B ✓ <b>not bold</b>';
    await send(a.page, fromA, 'click');
    await waitForLines(a.page, 1);
    await waitForLines(b.page, 1);
    await send(b.page, fromB, 'enter');
    await waitForLines(a.page, 2);
    await waitForLines(b.page, 2);

    const seenA = await lines(a.page);
    const seenB = await lines(b.page);
    // The relay prefixes the sender's connection id; both pages see the same two lines, in order.
    expect(seenA).toEqual(seenB);
    expect(seenA).toHaveLength(2);
    const [, idA] = /^#(\d+): (.*)$/s.exec(seenA[0]!) ?? [];
    const [, idB] = /^#(\d+): (.*)$/s.exec(seenA[1]!) ?? [];
    expect(seenA).toEqual([`#${idA}: ${fromA}`, `#${idB}: ${fromB}`]);
    expect(idA).not.toBe(idB);
    // Text, not markup: the page never interprets a message as HTML.
    expect(await b.page.locator('#messages b').count()).toBe(0);
    expect(server.output).toContain(`from #${idA}: ${fromA}`);
    expect(server.output).toContain(`from #${idB}: ${fromB}`);

    // Joins: each page saw its own arrival and B's; the server logged both.
    for (const { page } of [a, b]) await waitForAnnouncement(page, `* #${idB} joined the room`);
    // (A's own announcement normally reaches A before B connects; on a loaded machine B may see it too.)
    expect((await announcements(a.page)).sort()).toEqual([`* #${idA} joined the room`, `* #${idB} joined the room`].sort());
    expect(await announcements(b.page)).toContain(`* #${idB} joined the room`);
    expect((await announcements(b.page)).filter((l) => l.includes(' left '))).toEqual([]);
    expect(server.output).toContain(`#${idA} joined`);
    expect(server.output).toContain(`#${idB} joined`);

    // Binary: A sends an ArrayBuffer with every byte value but 0; both pages get it back whole, as binary.
    const sent = Array.from({ length: 255 }, (_, i) => i + 1);
    await a.page.evaluate((bytes) => (window as unknown as { chat: { socket: WebSocket } }).chat.socket.send(new Uint8Array(bytes).buffer), sent);
    for (const { page } of [a, b]) {
      await page.waitForFunction(() => (window as unknown as { chat: { binary: number[][] } }).chat.binary.length >= 1, null, { timeout: 5000 });
      expect(await page.evaluate(() => (window as unknown as { chat: { binary: number[][] } }).chat.binary)).toEqual([sent]);
    }
    expect(server.output).toContain(`binary message from #${idA}`);

    // Close both pages with the page's own button: B hears that A left (its close code 1000).
    let first = true;
    for (const { page } of [a, b]) {
      if (!first) await waitForAnnouncement(page, `* #${idA} left the room (code 1000)`);
      first = false;
      await page.getByRole('button', { name: 'Close connection' }).click();
      await page.waitForSelector('#status[data-state="closed"], #status[data-state="error"]', { timeout: 5000 });
      const close = await page.evaluate(() => (window as unknown as { chat: { close: unknown } }).chat.close);
      // The page closed with 1000 "bye"; the event carries the server's reply: 1000 echoed, no reason.
      expect(close).toEqual({ code: 1000, reason: '', wasClean: true });
      await expect(page.locator('#status').textContent()).resolves.toBe('Closed (code 1000, clean)');
      expect(await page.getByRole('button', { name: 'Send' }).isDisabled()).toBe(true);
    }

    const shots = [artifactPath('chat-page-a.png'), artifactPath('chat-page-b.png')];
    await a.page.screenshot({ path: shots[0], fullPage: true });
    await b.page.screenshot({ path: shots[1], fullPage: true });
    for (const p of shots) {
      console.log(`screenshot: ${p}`);
      await annotate(`screenshot: ${p}`, 'artifact');
    }

    // The server released both connections: none left in its process, and it closed TCP first
    // (its side of each connection waits in TIME_WAIT).
    const deadline = Date.now() + 3000;
    while (socketsOfProcess(server.pid, port).some((s) => s.state !== 'LISTEN') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(socketsOfProcess(server.pid, port).map((s) => s.state)).toEqual(['LISTEN']);
    expect(tcpSockets().filter((s) => s.localPort === port && s.state === 'TIME_WAIT').length).toBeGreaterThanOrEqual(2);

    // At the end of its serving time the room's roll call reports the close code each participant sent.
    const exit = await withTimeout(server.exited, (SERVE_SECONDS + 5) * 1000, 'chat_room to finish serving');
    expect(exit.code, server.output.join('\n')).toBe(0);
    for (const id of [idA, idB]) {
      expect(server.output.find((l) => l.startsWith(`roll call #${id}: `))).toMatch(/already closed \(code 1000\)$/);
      // Exactly one join and one leave per participant, the leave after the join.
      const events = server.output.filter((l) => l === `#${id} joined` || l.startsWith(`#${id} left`));
      expect(events).toEqual([`#${id} joined`, `#${id} left (code 1000)`]);
    }
    expect(server.output.filter((l) => / still here$/.test(l))).toEqual([]);
    expect(server.output).toContain(`Serving for ${SERVE_SECONDS} seconds`);
    expect(server.output[server.output.length - 1]).toBe('Chat room closed');
  }, 45_000);
});
