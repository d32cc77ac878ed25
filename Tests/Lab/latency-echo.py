#!/usr/bin/env python3
"""latency-echo: an interactive echo through a SOCKS5 proxy, alone or beside one bulk transfer (issue 20).

    latency-echo.py serve ADDR ECHO_PORT BULK_PORT
        echoes whatever arrives on ECHO_PORT; on BULK_PORT reads one byte: "D" sends bytes until the peer closes,
        "U" reads and discards until the peer closes. Prints "ready" once both listen.
    latency-echo.py measure SOCKS_ADDR:PORT TARGET_ADDR ECHO_PORT BULK_PORT MODE SAMPLES [WARMUP_S]
        MODE idle, download or upload. With a bulk transfer, starts it through the proxy, waits WARMUP_S (3) for it
        to fill the paths, then sends a 64-byte message every 50 ms on a second connection (TCP_NODELAY on both)
        and times each round trip until SAMPLES have come back. Prints one line:
        "samples=N p50=MS p95=MS p99=MS max=MS bulk_mbit=MBIT" (bulk_mbit: the bulk transfer's goodput while the
        samples ran, 0 when idle).
"""

import os
import socket
import struct
import sys
import threading
import time

MESSAGE = 64
INTERVAL = 0.05
CHUNK = 256 * 1024


def listener(addr, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((addr, port))
    sock.listen(16)
    return sock


def accept_loop(sock, handler):
    while True:
        conn, _ = sock.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


def echo_handler(conn):
    with conn:
        while True:
            data = conn.recv(4096)
            if not data:
                return
            conn.sendall(data)


def bulk_handler(conn):
    with conn:
        try:
            mode = conn.recv(1)
            if mode == b"D":
                block = os.urandom(CHUNK)
                while True:
                    conn.sendall(block)
            elif mode == b"U":
                while conn.recv(CHUNK):
                    pass
        except OSError:
            return


def serve(addr, echo_port, bulk_port):
    echo = listener(addr, int(echo_port))
    bulk = listener(addr, int(bulk_port))
    threading.Thread(target=accept_loop, args=(bulk, bulk_handler), daemon=True).start()
    print("ready", flush=True)
    accept_loop(echo, echo_handler)


def socks_connect(proxy, target, port):
    """Opens a TCP connection to target:port through a SOCKS5 proxy (no authentication, IPv4 address)."""
    host, proxy_port = proxy.rsplit(":", 1)
    sock = socket.create_connection((host, int(proxy_port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b"\x05\x01\x00")
    if recv_exactly(sock, 2) != b"\x05\x00":
        raise RuntimeError("SOCKS5 proxy refused the greeting")
    sock.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(target) + struct.pack("!H", int(port)))
    reply = recv_exactly(sock, 10)
    if reply[1] != 0:
        raise RuntimeError(f"SOCKS5 CONNECT failed with reply {reply[1]}")
    sock.settimeout(None)
    return sock


def recv_exactly(sock, count):
    data = b""
    while len(data) < count:
        part = sock.recv(count - len(data))
        if not part:
            raise RuntimeError("connection closed")
        data += part
    return data


class Bulk:
    """One download or upload through the proxy, counting the bytes it has moved."""

    def __init__(self, proxy, target, port, mode):
        self.sock = socks_connect(proxy, target, port)
        self.sock.sendall(b"D" if mode == "download" else b"U")
        self.mode = mode
        self.moved = 0
        self.error = None
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        block = os.urandom(CHUNK)
        try:
            while True:
                if self.mode == "download":
                    got = self.sock.recv(CHUNK)
                    if not got:
                        raise RuntimeError("download ended early")
                    self.moved += len(got)
                else:
                    self.moved += self.sock.send(block)
        except (OSError, RuntimeError) as error:
            self.error = error


def percentile(values, p):
    ordered = sorted(values)
    rank = p / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def measure(proxy, target, echo_port, bulk_port, mode, samples, warmup="3"):
    bulk = None
    if mode != "idle":
        bulk = Bulk(proxy, target, bulk_port, mode)
        time.sleep(float(warmup))
    echo = socks_connect(proxy, target, echo_port)
    payload = os.urandom(MESSAGE)
    rtts = []
    start_bytes = bulk.moved if bulk else 0
    start = time.monotonic()
    next_send = start
    while len(rtts) < int(samples):
        sent = time.monotonic()
        echo.sendall(payload)
        if recv_exactly(echo, MESSAGE) != payload:
            raise RuntimeError("echo came back changed")
        rtts.append((time.monotonic() - sent) * 1000)
        next_send += INTERVAL
        delay = next_send - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_send = time.monotonic()
    elapsed = time.monotonic() - start
    mbit = (bulk.moved - start_bytes) * 8 / elapsed / 1e6 if bulk else 0
    if bulk and bulk.error:
        raise RuntimeError(f"bulk {mode} failed: {bulk.error}")
    print(
        "samples=%d p50=%.1f p95=%.1f p99=%.1f max=%.1f bulk_mbit=%.2f"
        % (len(rtts), percentile(rtts, 50), percentile(rtts, 95), percentile(rtts, 99), max(rtts), mbit),
        flush=True,
    )


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "serve":
        serve(*sys.argv[2:5])
    elif len(sys.argv) in (8, 9) and sys.argv[1] == "measure":
        measure(*sys.argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
