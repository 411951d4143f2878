#!/usr/bin/env python3
"""Hostile WebSocket clients for scripts/hostile/memory.ts (loopback only).

    memory_attack.py PORT CONNECTIONS SECONDS

Opens CONNECTIONS connections to ws://127.0.0.1:PORT/ from 127.0.0.2 and splits them into three
attacks (round robin):
  trickle  announces a 16 MiB binary frame, sends its payload as fast as the server takes it,
           then 1 byte per second
  noread   sends 16 MiB messages and never reads the echoes (SO_RCVBUF 4 KiB)
  idle     sends one 16 MiB message, reads the whole echo, then stays silent
Small socket buffers (SO_SNDBUF 64 KiB) keep the kernel's share small. Prints one JSON line
with counts when SECONDS are over, then closes everything.
"""
import json, os, selectors, socket, struct, sys, time

port, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
SIZE = 16 * 1024 * 1024
KEY = b"\x11\x22\x33\x44"
CHUNK = bytes(64 * 1024)  # masked zeros = the key repeated; content does not matter

def header(opcode, n):
    h = bytes([0x80 | opcode])
    if n < 126: h += bytes([0x80 | n])
    elif n < 65536: h += bytes([0x80 | 126]) + struct.pack(">H", n)
    else: h += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return h + KEY

REQUEST = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")

class Conn:
    def __init__(self, kind):
        self.kind, self.sent, self.got, self.state = kind, 0, 0, "handshake"
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        if kind == "noread": self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.s.bind(("127.0.0.2", 0))
        self.s.connect(("127.0.0.1", port))
        self.s.sendall(REQUEST)
        self.buf = b""
        self.pending = b""
        self.closed_code = None
        self.last_trickle = 0.0

sel = selectors.DefaultSelector()
kinds = ["trickle", "noread", "idle"]
conns = []
for i in range(count):
    try:
        c = Conn(kinds[i % 3])
    except OSError as e:
        print(json.dumps({"connect_error": str(e)}), flush=True)
        break
    c.s.setblocking(False)
    conns.append(c)
    sel.register(c.s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

def next_payload(c):
    if c.kind == "trickle":
        if c.sent == 0: return header(2, SIZE) + CHUNK
        if c.sent < SIZE - 1024 * 1024: return CHUNK  # most of it fast, the rest trickled
        return None
    if c.kind == "noread" or (c.kind == "idle" and c.sent == 0):
        off = c.sent % (SIZE + 14)
        if off == 0: return header(2, SIZE) + CHUNK
        return CHUNK if c.kind == "noread" or c.sent < SIZE else None
    return None

end = time.time() + seconds
while time.time() < end:
    for key, ev in sel.select(timeout=0.2):
        c = key.data
        if ev & selectors.EVENT_READ and (c.kind != "noread" or c.state == "handshake"):
            try:
                data = c.s.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                data = b""
            if data == b"":
                c.state = "closed"; sel.unregister(c.s); continue
            if data:
                if c.state == "handshake":
                    c.buf += data
                    if b"\r\n\r\n" in c.buf:
                        c.state = "open" if c.buf.startswith(b"HTTP/1.1 101") else "refused"
                        c.got += len(c.buf.split(b"\r\n\r\n", 1)[1])
                        c.buf = b""
                else:
                    c.got += len(data)
                    if data[:1] == b"\x88" and len(data) >= 4: c.closed_code = struct.unpack(">H", data[2:4])[0]
        if ev & selectors.EVENT_WRITE and c.state == "open":
            if not c.pending:
                c.pending = next_payload(c) or b""
            if c.pending:
                try:
                    n = c.s.send(c.pending)
                    c.sent += n; c.pending = c.pending[n:]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    c.state = "closed"; sel.unregister(c.s); continue
            else:
                sel.modify(c.s, selectors.EVENT_READ, c)
    now = time.time()
    for c in conns:
        if c.kind == "trickle" and c.state == "open" and c.sent >= SIZE - 1024 * 1024 and now - c.last_trickle >= 1:
            c.last_trickle = now
            try:
                c.s.send(b"\x00"); c.sent += 1
            except OSError:
                pass

summary = {k: {"open": 0, "closed": 0, "refused": 0, "sent_mib": 0} for k in kinds}
codes = {}
for c in conns:
    s = summary[c.kind]
    s["open" if c.state == "open" else "refused" if c.state == "refused" else "closed"] += 1
    s["sent_mib"] += c.sent / (1 << 20)
    if c.closed_code: codes[str(c.closed_code)] = codes.get(str(c.closed_code), 0) + 1
    c.s.close()
for s in summary.values(): s["sent_mib"] = round(s["sent_mib"])
print(json.dumps({"attacks": summary, "close_codes_seen": codes}), flush=True)
