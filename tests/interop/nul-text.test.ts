/**
 * A text message holding U+0000 goes through our server and our client whole: the Osprey server
 * handler receives every byte, echoes it with websocketServerSend, and the Osprey client handler
 * receives the same bytes (Strings carry their length; runtime-bindings/abi.ts, STRING_LAYOUT).
 * Before, the message reached both handlers cut at its first NUL.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../peers/process.ts';
import { workspace, type Workspace } from './compile.ts';

let ws: Workspace;
beforeAll(() => {
  ws = workspace();
});
afterAll(() => ws?.dispose());

function echoProgram(port: number): string {
  return `fn lengthOf(s: String) -> Int = match length(s) {
    Success { value } => value
    Error { message } => -1
}
let sent = "a\\u0000b\\u0000\\u03ba"
fn onMessage(message: String) -> Result<Success, String> = {
    let same = message == sent
    print("client got \${lengthOf(message)} bytes, same: \${same}")
    print(message)
    Success()
}
match websocketCreateServer(port: ${port}, address: "127.0.0.1", path: "/nul") {
    Success { value } => {
        let serverId = value
        fn echo(connectionId: Int, message: String) -> Result<Success, String> = {
            let same = message == sent
            print("server got \${lengthOf(message)} bytes, same: \${same}")
            websocketServerSend(serverID: serverId, connectionID: connectionId, message: message)
        }
        let _registered = websocketServerOnMessage(serverID: serverId, handler: echo)
        let _listening = websocketServerListen(serverID: serverId)
        match websocketConnect(url: "ws://127.0.0.1:${port}/nul", messageHandler: onMessage) {
            Success { value } => {
                let _sent = websocketSend(wsID: value, message: sent)
                sleep(500)
                let _closed = websocketClose(wsID: value)
                print("done")
            }
            Error { message } => print("connect failed: \${message}")
        }
        let _stopped = websocketStopServer(serverID: serverId)
    }
    Error { message } => print("create failed: \${message}")
}
`;
}

describe('a text message holding U+0000', () => {
  it('is echoed whole through an Osprey server handler and an Osprey client handler', async () => {
    const exe = await ws.build('nul_echo', echoProgram(await freePort()));
    const p = spawnSync(exe, [], { timeout: 20_000 });
    expect(p.status, p.stderr.toString()).toBe(0);
    const kappa = Buffer.from('\u03ba', 'utf8');
    expect(p.stdout).toEqual(
      Buffer.concat([
        Buffer.from('server got 6 bytes, same: true\nclient got 6 bytes, same: true\n'),
        Buffer.from([0x61, 0, 0x62, 0]),
        kappa,
        Buffer.from('\ndone\n'),
      ]),
    );
  });
});
