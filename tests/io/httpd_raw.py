#!/usr/bin/env python3
"""httpd_raw.py: bad input sent to examples/httpd over raw sockets.

    python3 tests/io/httpd_raw.py PORT HEADER_MS IDLE_MS

Each case checks the answer (400, 431, 413, a close) and that the server
still answers /hello afterwards. The server must run with -H HEADER_MS and
-i IDLE_MS. Every wait is bounded; a failure prints what went wrong and
exits 1.
"""
import socket
import struct
import sys
import time

PORT, HEADER_MS, IDLE_MS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
failures = 0


def conn():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    return s


def read_all(s, limit=10.0):
    """Everything until the server closes (or limit seconds)."""
    s.settimeout(limit)
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return data, True
            data += b
    except (socket.timeout, TimeoutError):
        return data, False
    except ConnectionResetError:
        return data, "reset"


def check(name, ok, detail=""):
    global failures
    print(("ok    " if ok else "FAIL  ") + name + (": " + detail if detail and not ok else ""))
    if not ok:
        failures += 1


def status_of(data):
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def hello_still_works(after):
    s = conn()
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data, closed = read_all(s)
    s.close()
    check("after " + after + ": /hello still answered", data.endswith(b"hello, world\n"), repr(data[:80]))


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def answered_then_closed(name, payload, want):
    s = conn()
    s.sendall(payload)
    data, closed = read_all(s)
    s.close()
    check(name + ": " + str(want), status_of(data) == want, repr(data[:80]))
    check(name + ": connection closed after", closed is True, str(closed))
    hello_still_works(name)


answered_then_closed("malformed request line", b"GARBAGE\r\n\r\n", 400)
answered_then_closed("no version", b"GET /hello\r\n\r\n", 400)
answered_then_closed("header without colon", b"GET /hello HTTP/1.1\r\nNoColonHere\r\n\r\n", 400)
answered_then_closed("bad Content-Length", b"POST /echo HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400)
answered_then_closed("bad grpc-timeout", b"GET /hello HTTP/1.1\r\ngrpc-timeout: 123456789S\r\n\r\n", 400)
answered_then_closed("headers over 8 KiB",
                     b"GET /hello HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 9000 + b"\r\n\r\n", 431)
answered_then_closed("body over 1 MiB",
                     b"POST /echo HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413)

# Pipelining: two requests in one segment, two answers in order.
s = conn()
s.sendall(b"GET /hello HTTP/1.1\r\n\r\nPOST /echo HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
data, closed = read_all(s)
s.close()
check("pipelined requests", data.count(b"HTTP/1.1 200") == 2 and data.endswith(b"abc"), repr(data))

# Slowloris: a request line, then one header byte every 100 ms. Cut at the
# header deadline, long before the request could complete.
s = conn()
t0 = time.monotonic()
s.sendall(b"GET /hello HTTP/1.1\r\n")
cut = False
s.settimeout(0.1)
for _ in range(int(HEADER_MS / 100) * 4 + 40):
    try:
        s.send(b"X")
        if s.recv(1) == b"":
            cut = True
            break
    except (socket.timeout, TimeoutError):
        continue
    except (BrokenPipeError, ConnectionResetError):
        cut = True
        break
took = time.monotonic() - t0
s.close()
check("slowloris cut at the header deadline", cut, "still open after %.1f s" % took)
print("      (cut after %.2f s; header deadline %.2f s)" % (took, HEADER_MS / 1000))
hello_still_works("slowloris")

# An idle keep-alive connection is closed at the idle timeout.
s = conn()
t0 = time.monotonic()
data, closed = read_all(s, limit=IDLE_MS / 1000 * 4 + 5)
s.close()
check("idle connection closed", closed is True and data == b"", repr((data, closed)))
print("      (closed after %.2f s; idle timeout %.2f s)" % (time.monotonic() - t0, IDLE_MS / 1000))

# A peer that resets mid-request (half a head), mid-body, and mid-response
# (a slow answer, and a large echo never read): only that connection goes.
s = conn()
s.sendall(b"GET /hel")
time.sleep(0.05)
rst_close(s)
hello_still_works("reset mid-request head")

s = conn()
s.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + b"b" * 1000)
time.sleep(0.05)
rst_close(s)
hello_still_works("reset mid-body")

s = conn()
s.sendall(b"GET /sleep?ms=200 HTTP/1.1\r\n\r\n")
time.sleep(0.05)
rst_close(s)
time.sleep(0.3)  # the answer is written to a reset connection
hello_still_works("reset before the answer")

s = conn()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
body = b"e" * 1000000
s.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
time.sleep(0.1)
rst_close(s)
hello_still_works("reset mid-answer")

sys.exit(1 if failures else 0)
