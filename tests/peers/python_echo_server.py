#!/usr/bin/python3
"""Echo server on the Debian python3-websockets package (10.4, legacy `websockets.serve` API).

The strict conformance oracle of tests/conformance and an interop peer. Echoes text and binary
messages byte for byte. Prints `listening on ws://HOST:PORT/PATH` once bound (port 0 = the OS
chooses). Stops on SIGTERM/SIGINT: open connections get Close 1001, then TCP is dropped after
--close-timeout seconds if the client does not answer.

Must run under /usr/bin/python3: the pyenv python3 on PATH does not see Debian's packages.
Options the conformance suite needs beyond echo, all off by default:
  --path P              only P is a WebSocket endpoint; other paths get 404
  --origins A,B         Origin allowlist (403 otherwise); include "null-origin" to allow no Origin
  --subprotocols A,B    subprotocols the server supports, in preference order
  --max-connections N   at most N open connections; more get 503
  --open-timeout S      handshake deadline in seconds (default 10)
  --ping-interval S     keep-alive pings every S seconds (default: none)
"""
import argparse
import asyncio
import http
import signal
import sys

import websockets
from websockets.legacy.protocol import State

parser = argparse.ArgumentParser()
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--path", default=None)
parser.add_argument("--max-size", type=int, default=16 * 1024 * 1024)
parser.add_argument("--origins", default=None)
parser.add_argument("--subprotocols", default=None)
parser.add_argument("--max-connections", type=int, default=None)
parser.add_argument("--open-timeout", type=float, default=10.0)
parser.add_argument("--close-timeout", type=float, default=2.0)
parser.add_argument("--ping-interval", type=float, default=None)
args = parser.parse_args()

active = 0


async def echo(ws, path=None):
    global active
    active += 1
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass
    finally:
        active -= 1


async def process_request(path, headers):
    if args.path is not None and path.split("?", 1)[0] != args.path:
        return (http.HTTPStatus.NOT_FOUND, [], b"no WebSocket endpoint here\n")
    if args.max_connections is not None and active >= args.max_connections:
        return (http.HTTPStatus.SERVICE_UNAVAILABLE, [], b"too many connections\n")
    return None


class DeadlineProtocol(websockets.WebSocketServerProtocol):
    """The legacy server of websockets 10.4 has no handshake deadline (its `open_timeout` is
    client-only), so the oracle adds one: a connection still in CONNECTING after --open-timeout
    seconds is closed (slowloris defence, docs/WEBSOCKET-RUNTIME.md#limits)."""

    def connection_made(self, transport):
        super().connection_made(transport)
        asyncio.get_running_loop().call_later(args.open_timeout, self._handshake_deadline)

    def _handshake_deadline(self):
        if self.state is State.CONNECTING and not self.transport.is_closing():
            self.transport.close()


def listed(value):
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


async def main():
    origins = listed(args.origins)
    if origins is not None:
        origins = [None if o == "null-origin" else o for o in origins]
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with websockets.serve(
        echo,
        args.host,
        args.port,
        max_size=args.max_size,
        max_queue=None,
        compression=None,
        origins=origins,
        subprotocols=listed(args.subprotocols),
        process_request=process_request,
        create_protocol=DeadlineProtocol,
        close_timeout=args.close_timeout,
        ping_interval=args.ping_interval,
        ping_timeout=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on ws://{args.host}:{port}{args.path or '/'}", flush=True)
        await stop


asyncio.run(main())
