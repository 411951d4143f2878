#!/usr/bin/python3
"""Client on the Debian python3-websockets package (10.4): an interop client and, with --echo,
the client-direction oracle of tests/conformance (same role as build/tools/ws-echo-client).

  python_client.py --url ws://127.0.0.1:P/ --send hello --send-hex 00ff --expect 2
      connects, sends each message in order (--send = text, --send-hex = binary), prints the
      first --expect replies (default: one per sent message) as JSON lines
      {"type": "text"|"binary", "data": str, "hex": str}, then closes with 1000.
  python_client.py --url ws://127.0.0.1:P/ --echo
      echoes every received message until the server closes the connection.

Prints {"type": "open"} once the handshake succeeded and {"type": "close", "code": N,
"reason": str} at the end. Exit status: 0 after a clean close, 1 when the connection was closed
with an error (protocol violation, no close frame), 2 when the handshake failed.
Must run under /usr/bin/python3 (the pyenv python3 does not see Debian's packages).
"""
import argparse
import asyncio
import json
import sys

import websockets

parser = argparse.ArgumentParser()
parser.add_argument("--url", required=True)
parser.add_argument("--send", action="append", default=[])
parser.add_argument("--send-hex", action="append", default=[])
parser.add_argument("--expect", type=int, default=None)
parser.add_argument("--echo", action="store_true")
parser.add_argument("--subprotocol", action="append", default=None)
parser.add_argument("--max-size", type=int, default=16 * 1024 * 1024)
parser.add_argument("--open-timeout", type=float, default=10.0)
parser.add_argument("--close-timeout", type=float, default=2.0)
args = parser.parse_args()


def emit(obj):
    print(json.dumps(obj), flush=True)


def show(message):
    if isinstance(message, str):
        emit({"type": "text", "data": message, "hex": message.encode("utf-8").hex()})
    else:
        emit({"type": "binary", "data": message.decode("latin-1"), "hex": message.hex()})


async def main():
    try:
        ws = await websockets.connect(
            args.url,
            max_size=args.max_size,
            max_queue=None,
            compression=None,
            subprotocols=args.subprotocol,
            open_timeout=args.open_timeout,
            close_timeout=args.close_timeout,
            ping_interval=None,
        )
    except Exception as e:  # InvalidStatusCode, InvalidHandshake, OSError, TimeoutError
        print(f"handshake failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 2
    emit({"type": "open", "subprotocol": ws.subprotocol})
    try:
        if args.echo:
            async for message in ws:
                await ws.send(message)
        else:
            for text in args.send:
                await ws.send(text)
            for hexdata in args.send_hex:
                await ws.send(bytes.fromhex(hexdata))
            expect = args.expect if args.expect is not None else len(args.send) + len(args.send_hex)
            for _ in range(expect):
                show(await ws.recv())
            await ws.close(1000)
    except websockets.ConnectionClosed:
        pass
    await ws.wait_closed()
    emit({"type": "close", "code": ws.close_code, "reason": ws.close_reason})
    return 0 if ws.close_code in (1000, 1001) else 1


sys.exit(asyncio.run(main()))
