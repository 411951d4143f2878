#!/usr/bin/python3
"""A python3-websockets (10.4) peer that checks an echoing testee with text and binary messages.

  python_binary_peer.py --serve [--port P] --cases a,b,c
      listens on ws://127.0.0.1:P/ (prints `listening on ws://127.0.0.1:P/`); on the first
      connection sends every case in order, reads one echo per case and prints one JSON line per
      case, then closes with 1000 and exits (0: every echo matched).
  python_binary_peer.py --connect URL --cases a,b,c
      the same as a client of an echo server.

Cases (the same bytes as tests/interop/binary-cases.ts):
  text            "hello, wörld ✓ 𝄞" as a text message
  text-nul        "a\\0b\\0" as a text message (U+0000)
  binary-empty    a 0-byte binary message
  binary-small    bytes 1..255 once each
  binary-nul      bytes 0..255 once each
  binary-1mib     1 MiB, byte i = (i * 31 + 7) % 255 + 1 (no NUL)
  binary-1mib-nul 1 MiB, byte i = (i * 31 + 7) % 256
  binary-fragmented  bytes 1..255 repeated to 10,000 bytes, sent as 4 fragments
Each JSON line: {"case", "ok", "sent_type", "got_type", "sent_len", "got_len", "first_diff"}.
Must run under /usr/bin/python3 (the pyenv python3 does not see Debian's packages).
"""
import argparse
import asyncio
import json
import sys

import websockets

parser = argparse.ArgumentParser()
parser.add_argument("--serve", action="store_true")
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--connect", default=None)
parser.add_argument("--cases", required=True)
parser.add_argument("--timeout", type=float, default=10.0)
args = parser.parse_args()


def case_bytes(name):
    if name == "text":
        return "hello, wörld ✓ 𝄞"
    if name == "text-nul":
        return "a\0b\0"
    if name == "binary-empty":
        return b""
    if name == "binary-small":
        return bytes(range(1, 256))
    if name == "binary-nul":
        return bytes(range(0, 256))
    if name == "binary-1mib":
        return bytes((i * 31 + 7) % 255 + 1 for i in range(1 << 20))
    if name == "binary-1mib-nul":
        return bytes((i * 31 + 7) % 256 for i in range(1 << 20))
    if name == "binary-fragmented":
        return bytes((i % 255) + 1 for i in range(10000))
    raise SystemExit(f"unknown case {name}")


def emit(obj):
    print(json.dumps(obj), flush=True)


async def run_cases(ws):
    all_ok = True
    for name in args.cases.split(","):
        data = case_bytes(name)
        if name == "binary-fragmented":
            q = len(data) // 4
            await ws.send(iter([data[:q], data[q:2 * q], data[2 * q:3 * q], data[3 * q:]]))
        else:
            await ws.send(data)
        got = await asyncio.wait_for(ws.recv(), args.timeout)
        sent_b = data.encode() if isinstance(data, str) else data
        got_b = got.encode() if isinstance(got, str) else got
        diff = next((i for i, (x, y) in enumerate(zip(sent_b, got_b)) if x != y), None)
        if diff is None and len(sent_b) != len(got_b):
            diff = min(len(sent_b), len(got_b))
        ok = diff is None and isinstance(got, str) == isinstance(data, str)
        all_ok = all_ok and ok
        emit({"case": name, "ok": ok, "sent_type": "text" if isinstance(data, str) else "binary",
              "got_type": "text" if isinstance(got, str) else "binary", "sent_len": len(sent_b),
              "got_len": len(got_b), "first_diff": diff})
    await ws.close(1000)
    return all_ok


async def main():
    if args.connect:
        async with websockets.connect(args.connect, max_size=1 << 24, compression=None,
                                      ping_interval=None) as ws:
            return 0 if await run_cases(ws) else 1
    done = asyncio.get_running_loop().create_future()

    async def handler(ws, path=None):
        if done.done():
            return
        try:
            result = await run_cases(ws)
        except Exception as e:  # the testee failed: report it
            emit({"error": repr(e)})
            result = False
        if not done.done():
            done.set_result(result)

    async with websockets.serve(handler, "127.0.0.1", args.port, max_size=1 << 24, compression=None,
                                ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}/", flush=True)
        ok = await done
    return 0 if ok else 1


sys.exit(asyncio.run(main()))
