/**
 * Osprey programs the interop tests compile and run. Each is a function of the loopback port and
 * timings the test chose, so one source serves every run without fixed ports.
 */

/** The default-echo server: no handler registered, so every message comes back byte for byte. */
export function echoServer(port: number, path = '/echo', serveMs = 30_000): string {
  return `
fn main() -> Int = {
    match websocketCreateServer(port: ${port}, address: "127.0.0.1", path: "${path}") {
        Success serverId => {
            match websocketServerListen(serverID: serverId) {
                Success _ => {
                    print("listening on ws://127.0.0.1:${port}${path}")
                    sleep(${serveMs})
                    match websocketStopServer(serverID: serverId) {
                        Success _ => {
                            print("stopped")
                            0
                        }
                        Err message => {
                            print("stop failed: \${message}")
                            1
                        }
                    }
                }
                Err message => {
                    print("listen failed: \${message}")
                    1
                }
            }
        }
        Err message => {
            print("create failed: \${message}")
            1
        }
    }
}
`;
}

/**
 * A chat room: a handler registered with websocketServerOnMessage relays every message to all
 * participants with websocketServerBroadcast. The handler is a nested function that captures the
 * server id, so this also proves captured environments reach the runtime thread intact.
 */
export function relayServer(port: number, serveMs = 30_000): string {
  return `
fn main() -> Int = {
    match websocketCreateServer(port: ${port}, address: "127.0.0.1", path: "/room") {
        Success serverId => {
            fn relay(connectionId: Int, message: String) -> Result<Success, String> = {
                print("from \${connectionId}: \${message}")
                websocketServerBroadcast(serverID: serverId, message: "\${connectionId} says \${message}")
            }
            match websocketServerOnMessage(serverID: serverId, handler: relay) {
                Success _ => print("handler registered")
                Err message => print("register failed: \${message}")
            }
            match websocketServerListen(serverID: serverId) {
                Success _ => {
                    print("listening on ws://127.0.0.1:${port}/room")
                    sleep(${serveMs})
                    match websocketStopServer(serverID: serverId) {
                        Success _ => print("stopped")
                        Err message => print("stop failed: \${message}")
                    }
                }
                Err message => print("listen failed: \${message}")
            }
        }
        Err message => print("create failed: \${message}")
    }
    0
}
`;
}

/** A client that sends the given messages, prints every message its handler receives, then closes. */
export function sendingClient(url: string, messages: string[], waitMs: number): string {
  const sends = messages
    .map(
      (m, i) => `
            match websocketSend(wsID: wsId, message: "${m}") {
                Success _ => print("sent ${i + 1}")
                Err message => print("send ${i + 1} failed: \${message}")
            }`,
    )
    .join('');
  return `
fn main() -> Int = {
    let prefix = "got"
    fn onMessage(message: String) -> Result<Success, String> = {
        print("\${prefix}: \${message}")
        Success()
    }
    match websocketConnect(url: "${url}", messageHandler: onMessage) {
        Success wsId => {
            print("connected")${sends}
            sleep(${waitMs})
            match websocketClose(wsID: wsId) {
                Success _ => {
                    print("closed")
                    0
                }
                Err message => {
                    print("close failed: \${message}")
                    1
                }
            }
        }
        Err message => {
            print("connect failed: \${message}")
            2
        }
    }
}
`;
}

/**
 * Every Err path a user can reach, each printed as `label: message`. `busyPort` is held by the
 * test; `closedPort` has nothing listening; `ownPort` is free for this program's own server.
 */
export function errorPaths(busyPort: number, closedPort: number, ownPort: number): string {
  return `
fn report(label: String, r: Result<Int, String>) -> Int = match r {
    Success value => {
        print("\${label}: unexpected success \${value}")
        value
    }
    Err message => {
        print("\${label}: \${message}")
        0
    }
}

fn reportUnit(label: String, r: Result<Success, String>) -> Int = match r {
    Success _ => {
        print("\${label}: unexpected success")
        1
    }
    Err message => {
        print("\${label}: \${message}")
        0
    }
}

fn ignore(message: String) -> Result<Success, String> = Success()

fn main() -> Int = {
    let a = report(label: "port-range", r: websocketCreateServer(port: 70000, address: "127.0.0.1", path: "/"))
    let b = report(label: "port-zero", r: websocketCreateServer(port: 0, address: "127.0.0.1", path: "/"))
    let c = report(label: "bad-address", r: websocketCreateServer(port: ${ownPort}, address: "999.1.2.3", path: "/"))
    let d = reportUnit(label: "unknown-server", r: websocketServerListen(serverID: 4242))
    let e = reportUnit(label: "unknown-broadcast", r: websocketServerBroadcast(serverID: 4242, message: "x"))
    let f = reportUnit(label: "unknown-stop", r: websocketStopServer(serverID: 4242))
    let g = reportUnit(label: "unknown-send", r: websocketSend(wsID: 4242, message: "x"))
    let h = reportUnit(label: "unknown-close", r: websocketClose(wsID: 4242))
    let i = report(label: "refused", r: websocketConnect(url: "ws://127.0.0.1:${closedPort}/", messageHandler: ignore))
    let j = report(label: "bad-url", r: websocketConnect(url: "http://127.0.0.1:${closedPort}/", messageHandler: ignore))
    match websocketCreateServer(port: ${busyPort}, address: "127.0.0.1", path: "/") {
        Success busy => {
            let k = reportUnit(label: "in-use", r: websocketServerListen(serverID: busy))
            print("in-use created")
        }
        Err message => print("in-use create failed: \${message}")
    }
    match websocketCreateServer(port: ${ownPort}, address: "127.0.0.1", path: "/only") {
        Success sid => {
            match websocketServerListen(serverID: sid) {
                Success _ => {
                    let l = reportUnit(label: "listen-twice", r: websocketServerListen(serverID: sid))
                    let m = report(label: "wrong-path", r: websocketConnect(url: "ws://127.0.0.1:${ownPort}/elsewhere", messageHandler: ignore))
                    match websocketConnect(url: "ws://127.0.0.1:${ownPort}/only", messageHandler: ignore) {
                        Success ws => {
                            match websocketClose(wsID: ws) {
                                Success _ => print("first-close: ok")
                                Err message => print("first-close: \${message}")
                            }
                            let o = reportUnit(label: "send-after-close", r: websocketSend(wsID: ws, message: "late"))
                            let p = reportUnit(label: "close-twice", r: websocketClose(wsID: ws))
                            print("closed-checks done")
                        }
                        Err message => print("connect failed: \${message}")
                    }
                    match websocketStopServer(serverID: sid) {
                        Success _ => print("stopped")
                        Err message => print("stop failed: \${message}")
                    }
                    let q = reportUnit(label: "stop-twice", r: websocketStopServer(serverID: sid))
                }
                Err message => print("listen failed: \${message}")
            }
        }
        Err message => print("create failed: \${message}")
    }
    0
}
`;
}

/**
 * A server whose handler runs long: "sleep" sleeps 1 s before answering, "relay" opens a client
 * connection to a second (default-echo) server of the same program and forwards that server's
 * answer, "fail" returns Err (reported on stderr, the connection stays open), and anything else
 * yields to the scheduler once before answering. Every answer starts with a top-level `let`
 * declared before the handler is registered, read from the handler fibers under load.
 */
export function fiberHandlerServer(port: number, echoPort: number, serveMs = 60_000): string {
  return `
let prefix = "echo:"
let echoUrl = "ws://127.0.0.1:${echoPort}/plain"

fn main() -> Int = {
    let plain = websocketCreateServer(port: ${echoPort}, address: "127.0.0.1", path: "/plain")
    match plain {
        Success plainId => {
            let plainListening = websocketServerListen(serverID: plainId)
        }
        Err message => print("plain create failed: \${message}")
    }
    match websocketCreateServer(port: ${port}, address: "127.0.0.1", path: "/h") {
        Success serverId => {
            fn relay(connectionId: Int) -> Result<Success, String> = {
                let client = websocketConnect(url: echoUrl, messageHandler: |m| => {
                    websocketServerSend(serverID: serverId, connectionID: connectionId, message: "via echo: \${m}")
                })
                match client {
                    Success id => {
                        let sent = websocketSend(wsID: id, message: "relayed")
                        sleep(300)
                        websocketClose(id)
                    }
                    Err e => Err(e)
                }
            }
            fn onMessage(connectionId: Int, message: String) -> Result<Success, String> = match message {
                "sleep" => {
                    sleep(1000)
                    websocketServerSend(serverID: serverId, connectionID: connectionId, message: "\${prefix}slept")
                }
                "relay" => relay(connectionId)
                "fail" => Err("asked to fail")
                _ => {
                    let turn = yield 0
                    websocketServerSend(serverID: serverId, connectionID: connectionId, message: "\${prefix}\${message}")
                }
            }
            match websocketServerOnMessage(serverID: serverId, handler: onMessage) {
                Success _ => print("handler registered")
                Err message => print("register failed: \${message}")
            }
            match websocketServerListen(serverID: serverId) {
                Success _ => {
                    print("listening on ws://127.0.0.1:${port}/h")
                    sleep(${serveMs})
                    match websocketStopServer(serverID: serverId) {
                        Success _ => print("stopped")
                        Err message => print("stop failed: \${message}")
                    }
                }
                Err message => print("listen failed: \${message}")
            }
        }
        Err message => print("create failed: \${message}")
    }
    0
}
`;
}

/**
 * The echo client of docs/guide/15-websockets.md: a handler of type fn(Int, WebSocketMessage)
 * answers every message on its own connection id with the same kind (websocketSendBinary for
 * binary), and prints one line per message (`message ID TYPE BYTES`). The URL is the first
 * program argument. Exits 0 when the server closes (its websocketOnClose handler prints
 * `closed CODE`), 1 when it cannot connect.
 */
export function binaryEchoClient(): string {
  return `
fn size(s: String) -> Int = match length(s) {
    Success { value } => value
    Error { message } => -1
}

fn echo(connection: Int, msg: WebSocketMessage) -> Result<Success, String> = {
    print("message \${connection} \${msg.type} \${size(msg.data)}")
    match msg.type {
        "binary" => websocketSendBinary(wsID: connection, data: msg.data)
        _ => websocketSend(wsID: connection, message: msg.data)
    }
}

fn main() -> Int = {
    let arguments = args()
    let url = match arguments[0] {
        Success { value } => value
        Error { message } => "ws://127.0.0.1:1/"
    }
    let ended = Channel<Int> { capacity: 1 }
    match websocketConnect(url: url, messageHandler: echo) {
        Success wsId => {
            print("connected \${wsId}")
            let registered = websocketOnClose(wsID: wsId, handler: fn(code: Int, reason: String) => {
                print("closed \${code} \${reason}")
                send(ended, code)
            })
            match registered {
                Success _ => {
                    let _code = recv(ended)
                    0
                }
                Err message => {
                    print("websocketOnClose: \${message}")
                    0
                }
            }
        }
        Err message => {
            print("connect failed: \${message}")
            1
        }
    }
}
`;
}

/**
 * A server that reports connection events and echoes every message with its kind: OnOpen prints
 * `open ID`, OnMessage (fn(Int, WebSocketMessage)) prints `message ID TYPE BYTES TEXT` (TEXT only
 * for text) and answers with websocketServerSend or websocketServerSendBinary, OnClose prints
 * `close ID CODE REASON`.
 */
export function eventEchoServer(port: number, serveMs = 120_000): string {
  return `
fn size(s: String) -> Int = match length(s) {
    Success { value } => value
    Error { message } => -1
}

fn main() -> Int = match websocketCreateServer(port: ${port}, address: "127.0.0.1", path: "/events") {
    Success serverId => {
        fn opened(connection: Int) -> Result<Success, String> = {
            print("open \${connection}")
            Success()
        }
        fn closed(connection: Int, code: Int, reason: String) -> Result<Success, String> = {
            print("close \${connection} \${code} \${reason}")
            Success()
        }
        fn echo(connection: Int, msg: WebSocketMessage) -> Result<Success, String> = match msg.type {
            "binary" => {
                print("message \${connection} binary \${size(msg.data)}")
                websocketServerSendBinary(serverID: serverId, connectionID: connection, data: msg.data)
            }
            _ => {
                print("message \${connection} text \${size(msg.data)} \${msg.data}")
                websocketServerSend(serverID: serverId, connectionID: connection, message: msg.data)
            }
        }
        let _open = websocketServerOnOpen(serverID: serverId, handler: opened)
        let _close = websocketServerOnClose(serverID: serverId, handler: closed)
        let _message = websocketServerOnMessage(serverID: serverId, handler: echo)
        match websocketServerListen(serverID: serverId) {
            Success _ => {
                print("listening on ws://127.0.0.1:${port}/events")
                sleep(${serveMs})
                match websocketStopServer(serverID: serverId) {
                    Success _ => 0
                    Err message => 1
                }
            }
            Err message => {
                print("listen failed: \${message}")
                1
            }
        }
    }
    Err message => {
        print("create failed: \${message}")
        1
    }
}
`;
}
