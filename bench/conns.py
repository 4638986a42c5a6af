#!/usr/bin/env python3
"""Connection clients for bench/memory.sh and bench/profile.sh (standard library only; talks
only to 127.0.0.1).

  conns.py requests --port P --body FILE --action OP --count N
      N requests, one after the other, on one keep-alive connection; each must answer 200.
  conns.py idle --port P --body FILE --action OP --count N [--hold S]
      opens N connections, sends one request on each and reads its answer (so the server has
      set up everything a used keep-alive connection keeps), then holds them all open and idle;
      prints "ready N" when they are, and closes them after S seconds (default 30) or when
      standard input closes.
  conns.py slow --port P --count N --length L --send B [--hold S]
      opens N connections, each sending the headers of a POST that declares a Content-Length of
      L bytes and then B < L bytes of body (an in-flight upload the server must buffer), and
      holds them; prints "ready N" once every byte is sent, closes after S seconds or at EOF.
"""
import argparse
import select
import socket
import sys
import time

PATH = "/soap/partner/v1"


def request_bytes(body: bytes, action: str) -> bytes:
    head = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
            f"SOAPAction: \"urn:partnergate:partner:v1/{action}\"\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def read_response(sock: socket.socket, buf: bytearray) -> int:
    """Reads one response (Content-Length framed); returns its status."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response headers")
        buf += chunk
    end = buf.index(b"\r\n\r\n")
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    total = end + 4 + length
    while len(buf) < total:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed inside the response body")
        buf += chunk
    del buf[:total]
    return status


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def hold(seconds: float) -> None:
    """Waits until `seconds` have passed or standard input reaches EOF."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sys.stdin], [], [], left)
        if ready and not sys.stdin.buffer.read1(4096):
            return


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["requests", "idle", "slow"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--body")
    p.add_argument("--action", default="CreateAccount")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--length", type=int, default=0)
    p.add_argument("--send", type=int, default=0)
    p.add_argument("--hold", type=float, default=30.0)
    a = p.parse_args()

    if a.mode in ("requests", "idle"):
        with open(a.body, "rb") as f:
            req = request_bytes(f.read(), a.action)
    if a.mode == "requests":
        s, buf = connect(a.port), bytearray()
        for i in range(a.count):
            s.sendall(req)
            status = read_response(s, buf)
            if status != 200:
                print(f"request {i}: HTTP {status}", file=sys.stderr)
                return 1
        s.close()
        print(f"done {a.count}")
        return 0

    socks = []
    if a.mode == "idle":
        for i in range(a.count):
            s = connect(a.port)
            s.sendall(req)
            status = read_response(s, bytearray())
            if status != 200:
                print(f"connection {i}: HTTP {status}", file=sys.stderr)
                return 1
            socks.append(s)
    else:
        if not 0 < a.send < a.length:
            print("slow: need 0 < --send < --length", file=sys.stderr)
            return 2
        head = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
                f"SOAPAction: \"urn:partnergate:partner:v1/{a.action}\"\r\nContent-Length: {a.length}\r\n\r\n").encode()
        chunk = b"<!-- " + b"x" * (a.send - 5)
        for _ in range(a.count):
            s = connect(a.port)
            s.sendall(head + chunk)
            socks.append(s)
    # Everything sent and (for idle) answered: the server holds what it holds now.
    time.sleep(0.5)
    print(f"ready {len(socks)}", flush=True)
    hold(a.hold)
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
