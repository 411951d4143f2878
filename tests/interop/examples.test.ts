/**
 * Golden runs of the programs in examples/: the seed's chat server and chat client talking to each
 * other, and the echo client against an independent server. The example sources are used as
 * written; only the fixed port (and the server's serving time) are rewritten so parallel runs
 * cannot collide.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnClient, spawnPeer, startPythonEchoServer } from '../peers/index.ts';
import { workspace, type Workspace } from './compile.ts';

const example = (name: string) => readFileSync(fileURLToPath(new URL(`../../examples/${name}`, import.meta.url)), 'utf8');

let ws: Workspace;
beforeAll(() => {
  ws = workspace();
});
afterAll(() => ws?.dispose());

/** Lines of `all` that belong to `wanted`, in the order they appeared. */
const only = (all: string[], wanted: string[]) => all.filter((l) => wanted.includes(l));

describe('examples/chat_server.osp with examples/chat_client.osp', () => {
  it('shows the client three messages coming back through its handler', async () => {
    const port = await freePort();
    const serverSrc = example('chat_server.osp').replaceAll('8080', String(port)).replace('let serveSeconds = 30', 'let serveSeconds = 6');
    const clientSrc = example('chat_client.osp').replaceAll('8080', String(port));
    const [serverExe, clientExe] = await Promise.all([ws.build('chat_server', serverSrc), ws.build('chat_client', clientSrc)]);

    const server = await spawnPeer({ name: 'chat_server', command: serverExe, args: [] });
    try {
      const client = spawnClient({ name: 'chat_client', command: clientExe, args: [] });
      const exit = await client.exited;
      const out = client.stdoutLines;
      expect(exit.code, client.output.join('\n')).toBe(0);
      expect(out[0]).toMatch(/^Connected to chat server with ID: \d+$/);
      // The main thread's lines, in program order.
      expect(only(out, ['First message sent', 'Second message sent', 'Ping sent', 'Disconnected from chat'])).toEqual([
        'First message sent',
        'Second message sent',
        'Ping sent',
        'Disconnected from chat',
      ]);
      // The handler's lines (runtime thread), in message order: each echo arrives exactly once.
      const handlerLines = [
        'Chat: Hello from Osprey!',
        'Received message: Hello from Osprey!',
        'Chat: How is everyone?',
        'Received message: How is everyone?',
        'Chat: ping',
        'Received ping, responding with pong',
      ];
      expect(only(out, handlerLines)).toEqual(handlerLines);
      expect(out[out.length - 1]).toBe('Disconnected from chat');

      const serverExit = await server.exited;
      expect(serverExit.code).toBe(0);
      expect(server.output).toEqual([
        'Starting WebSocket chat server...',
        expect.stringMatching(/^WebSocket server created with ID: \d+$/),
        `Server listening on ws://127.0.0.1:${port}/chat`,
        'Welcome message broadcasted',
        'Serving for 6 seconds',
        'Server stopped successfully',
      ]);
    } finally {
      await server.stop();
    }
  });
});

describe('examples/echo_client.osp', () => {
  it('prints the echo from a python3-websockets server and closes', async () => {
    const server = await startPythonEchoServer();
    try {
      const exe = await ws.build('echo_client', example('echo_client.osp').replaceAll('8765', String(server.port)));
      const client = spawnClient({ name: 'echo_client', command: exe, args: [] });
      const exit = await client.exited;
      expect(exit.code, client.output.join('\n')).toBe(0);
      // "sent" (main thread) and the handler's line (runtime thread) may come in either order:
      // the echo can arrive before websocketSend's caller prints. "closed" is always last.
      expect([...client.stdoutLines].sort()).toEqual(['closed', 'echo: Hello, WebSocket!', 'sent']);
      expect(client.stdoutLines[2]).toBe('closed');
    } finally {
      await server.stop();
    }
  });
});
