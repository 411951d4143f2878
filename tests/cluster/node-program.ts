/**
 * The Osprey program every cluster test node runs (one build, many processes):
 *
 *   node PORT REDIS_URL CHANNEL [TRUSTED_CA]
 *
 * (REDIS_URL "" runs a single node without a cluster: the benchmark's baseline.)
 * It joins the cluster before listening on ws://127.0.0.1:PORT/room and prints "listening on ws://…" (or
 * "cluster failed: …" and exits 1). Its clients drive it with text messages:
 *   "whoami"            → the sender gets "id:<its connection id>"
 *   "bc:…"              → websocketServerBroadcast of the whole text (every node's clients get it)
 *   "to:<id>:…"         → websocketServerSend of the whole text to connection <id> (any node)
 *   "bb:…"              → websocketServerBroadcastBinary of the whole text followed by a NUL byte
 *   "tb:<id>:…"         → websocketServerSendBinary of the whole text followed by a NUL byte to <id>
 *   "status"            → the sender gets "status:<websocketServerClusterStatus>"
 * A call that fails answers the sender with "err:<message>".
 */
export const NODE_PROGRAM = `
fn digitOf(c: String) -> Int = match c {
    "1" => 1
    "2" => 2
    "3" => 3
    "4" => 4
    "5" => 5
    "6" => 6
    "7" => 7
    "8" => 8
    "9" => 9
    _ => 0
}

// The decimal number at s[i…], up to the first ':' or the end.
fn numberFrom(s: String, i: Int, n: Int, acc: Int) -> Int = match i >= n {
    true => acc
    false => match substring(s: s, start: i, end: i + 1) {
        Success c => match c {
            ":" => acc
            _ => numberFrom(s: s, i: i + 1, n: n, acc: acc * 10 + digitOf(c))
        }
        Err _ => acc
    }
}

fn parseNumber(s: String) -> Int = match length(s) {
    Success n => numberFrom(s: s, i: 0, n: n, acc: 0)
    Err _ => 0
}

fn orEmpty(r: Result<String, String>) -> String = match r {
    Success s => s
    Err _ => ""
}

// A command's argument: the text after its 3-byte head ("to:42" -> "42").
fn afterCommand(message: String) -> String = match length(message) {
    Success n => orEmpty(substring(s: message, start: 3, end: n))
    Err _ => ""
}

fn answer(serverId: Int, connectionId: Int, r: Result<Success, String>) -> Result<Success, String> = match r {
    Success _ => Success()
    Err message => websocketServerSend(serverID: serverId, connectionID: connectionId, message: "err:\${message}")
}

fn main() -> Int = {
    let words = args()
    let port = parseNumber(orEmpty(words[0]))
    let redisUrl = orEmpty(words[1])
    let room = orEmpty(words[2])
    let ca = orEmpty(words[3])
    let trusted = match ca {
        "" => Success()
        _ => websocketSetTrustedCA(path: ca)
    }
    match websocketCreateServer(port: port, address: "127.0.0.1", path: "/room") {
        Success serverId => {
            fn onMessage(connectionId: Int, message: String) -> Result<Success, String> = {
                let head = match substring(s: message, start: 0, end: 3) {
                    Success h => h
                    Err _ => message
                }
                match message {
                    "whoami" => websocketServerSend(serverID: serverId, connectionID: connectionId, message: "id:\${connectionId}")
                    "status" => match websocketServerClusterStatus(serverID: serverId) {
                        Success text => websocketServerSend(serverID: serverId, connectionID: connectionId, message: "status:\${text}")
                        Err e => websocketServerSend(serverID: serverId, connectionID: connectionId, message: "err:\${e}")
                    }
                    _ => match head {
                        "bc:" => answer(serverId: serverId, connectionId: connectionId,
                                        r: websocketServerBroadcast(serverID: serverId, message: message))
                        "to:" => {
                            answer(serverId: serverId, connectionId: connectionId,
                                   r: websocketServerSend(serverID: serverId, connectionID: parseNumber(afterCommand(message)), message: message))
                        }
                        "bb:" => answer(serverId: serverId, connectionId: connectionId,
                                        r: websocketServerBroadcastBinary(serverID: serverId, data: message + "\\u0000"))
                        "tb:" => {
                            answer(serverId: serverId, connectionId: connectionId,
                                   r: websocketServerSendBinary(serverID: serverId, connectionID: parseNumber(afterCommand(message)), data: message + "\\u0000"))
                        }
                        _ => websocketServerSend(serverID: serverId, connectionID: connectionId, message: "err:unknown command")
                    }
                }
            }
            match trusted {
                Success _ => 0
                Err e => {
                    print("trust failed: \${e}")
                    0
                }
            }
            // No Redis URL: a single node (npm run bench:cluster compares against it).
            let joined = match redisUrl {
                "" => Success()
                _ => websocketServerUseCluster(serverID: serverId, redisUrl: redisUrl, channelName: room)
            }
            match joined {
                Success _ => {
                    match websocketServerOnMessage(serverID: serverId, handler: onMessage) {
                        Success _ => 0
                        Err e => {
                            print("handler failed: \${e}")
                            0
                        }
                    }
                    match websocketServerListen(serverID: serverId) {
                        Success _ => {
                            print("listening on ws://127.0.0.1:\${port}/room")
                            sleep(600000)
                            0
                        }
                        Err e => {
                            print("listen failed: \${e}")
                            1
                        }
                    }
                }
                Err e => {
                    print("cluster failed: \${e}")
                    1
                }
            }
        }
        Err e => {
            print("create failed: \${e}")
            1
        }
    }
}
`;
