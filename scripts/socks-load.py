#!/usr/bin/env python3
"""socks-load.py: many SOCKS5 connections at once, for scripts/bench-connections.sh (standard library only).

  socks-load.py burst --proxy HOST:PORT --target IP:PORT --path /small.bin --size BYTES -n N [--daemon NAME=PID]...
  socks-load.py idle  --proxy HOST:PORT --target IP:PORT --path /small.bin --size BYTES -n N --hold SECONDS
                      [--daemon NAME=PID]...

burst: starts N connections to the proxy at once; each does the SOCKS5 exchange (RFC 1928: no authentication,
CONNECT to an IPv4 address), sends one HTTP/1.1 GET with "Connection: close" and reads to EOF. A connection succeeds
when the reply is 200 with a body of --size bytes. With --keep-alive the GET leaves the connection open (the HTTP
server sends no FIN after its response, as to a browser), the reply ends at its --size body bytes, and the client
closes. Its time runs from the start of its connect() to its last byte.
Meanwhile the daemons' VmRSS is sampled every 50 ms (the peak is reported) and their CPU time is read before and
after. With --proxy none the connections go straight to the HTTP server: the floor this client and the server set on
their own. The client's own CPU seconds are reported too: at 10,000 connections it is a large part of the wall time.

idle: opens N connections and does the SOCKS5 exchange on each (all at once, as in burst), then holds them without
a byte for --hold seconds while measuring the daemons' CPU time (as % of one core) and VmRSS, then sends one GET
on each held connection (all at once) and counts the complete replies.

Each connection is a small state machine driven by asyncio's protocol callbacks (no stream objects, no task per
read), so the client spends as little CPU per connection as plain asyncio allows. Connections that have not finished
--timeout seconds after the start count as "timeout". Prints one JSON object on stdout. Failures are counted by
cause: "reply N" is a SOCKS5 reply code other than 0 (1 general failure, 2 not allowed, 3 network unreachable,
4 host unreachable, 5 connection refused, ...), otherwise the exception's name or what was wrong with the reply.
"""

import argparse
import asyncio
import collections
import ipaddress
import json
import math
import os
import resource
import sys
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# MARK: - processes in /proc


def cpu_seconds(pid):
    """User + system seconds of every thread of PID so far (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def client_cpu_seconds():
    """User + system seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_kib(pid):
    """VmRSS of PID in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Daemons:
    """The proxy processes being measured: CPU snapshots and a VmRSS peak sampler."""

    def __init__(self, specs):
        self.pids = {}
        for spec in specs:
            name, _, pid = spec.partition("=")
            self.pids[name] = int(pid)
        self.peak = {name: 0 for name in self.pids}

    def cpu(self):
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def rss(self):
        return {name: rss_kib(pid) for name, pid in self.pids.items()}

    def sample(self):
        for name, kib in self.rss().items():
            self.peak[name] = max(self.peak[name], kib)

    async def sample_until(self, done):
        while not done.is_set():
            self.sample()
            try:
                await asyncio.wait_for(done.wait(), 0.05)
            except asyncio.TimeoutError:
                pass
        self.sample()


# MARK: - one connection


class Connection(asyncio.Protocol):
    """One client connection as a state machine: SOCKS5 method and CONNECT (skipped without a proxy), then, at
    once or when `use` is called, one GET read to EOF. `opened` resolves when the tunnel is up, `finished` when the
    connection is over; each holds None on success or the cause of the failure."""

    def __init__(self, request, get, size, hold, keep_alive=False):
        self.request = request
        self.get = get
        self.size = size
        self.hold = hold
        self.keep_alive = keep_alive
        self.state = "connecting"
        self.buffer = bytearray()
        self.transport = None
        loop = asyncio.get_running_loop()
        self.opened = loop.create_future()
        self.finished = loop.create_future()
        self.started = self.ended = self.task = None

    async def connect(self, host, port):
        self.started = time.monotonic()
        try:
            await asyncio.get_running_loop().create_connection(lambda: self, host, port)
        except OSError as error:
            self.end(type(error).__name__)

    def connection_made(self, transport):
        self.transport = transport
        if self.request is None:
            self.tunnel_up()
        else:
            self.state = "method"
            transport.write(b"\x05\x01\x00")

    def data_received(self, data):
        self.buffer += data
        if self.state == "method":
            if len(self.buffer) < 2:
                return
            if self.buffer[:2] != b"\x05\x00":
                return self.end("method refused")
            del self.buffer[:2]
            self.state = "reply"
            self.transport.write(self.request)
        if self.state == "reply":
            if len(self.buffer) < 2:
                return
            if self.buffer[0] != 5:
                return self.end("not SOCKS5")
            if self.buffer[1] != 0:
                return self.end(f"reply {self.buffer[1]}")
            if len(self.buffer) < 5:
                return
            address_type, first = self.buffer[3], self.buffer[4]
            bound = {1: 4 + 2, 4: 16 + 2, 3: 1 + first + 2}.get(address_type)
            if bound is None:
                return self.end("bad address type")
            if len(self.buffer) < 4 + bound:
                return
            del self.buffer[: 4 + bound]
            self.tunnel_up()
        elif self.state == "http" and self.keep_alive:
            head, separator, body = bytes(self.buffer).partition(b"\r\n\r\n")
            if separator and len(body) >= self.size:
                self.reply_complete(head, body)

    def reply_complete(self, head, body):
        if not head.startswith(b"HTTP/1.1 200"):
            self.end("HTTP status" if head else "closed before reply")
        else:
            self.end(None if len(body) == self.size else "short body")

    def connection_lost(self, error):
        if self.state == "http":
            head, _, body = bytes(self.buffer).partition(b"\r\n\r\n")
            self.reply_complete(head, body)
        elif self.state == "open":
            self.end("closed while held")
        else:
            self.end(type(error).__name__ if error else "closed early")

    def tunnel_up(self):
        self.state = "open"
        self.opened.set_result(None)
        if not self.hold:
            self.use()

    def use(self):
        self.state = "http"
        self.transport.write(self.get)

    def end(self, cause):
        """The connection is over: cause None on success. Later calls change nothing."""
        if self.finished.done():
            return
        self.ended = time.monotonic()
        self.state = "done"
        if not self.opened.done():
            self.opened.set_result(cause)
        self.finished.set_result(cause)
        if self.transport is not None:
            self.transport.abort()


def connect_request(target):
    host, _, port = target.rpartition(":")
    return b"\x05\x01\x00\x01" + ipaddress.IPv4Address(host).packed + int(port).to_bytes(2, "big")


def percentile(sorted_values, fraction):
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]  # nearest rank


def start(args, hold):
    """N connections, each started as its own task; returns them."""
    if args.proxy == "none":
        host, _, port = args.target.rpartition(":")
        request = None
    else:
        host, _, port = args.proxy.rpartition(":")
        request = connect_request(args.target)
    close = "" if args.keep_alive else "Connection: close\r\n"
    get = f"GET {args.path} HTTP/1.1\r\nHost: bench\r\n{close}\r\n".encode()
    connections = [Connection(request, get, args.size, hold, args.keep_alive) for _ in range(args.n)]
    for connection in connections:
        connection.task = asyncio.ensure_future(connection.connect(host, int(port)))  # held: tasks are weak
    return connections


# MARK: - the two tests


async def burst(args, daemons):
    done = asyncio.Event()
    sampler = asyncio.create_task(daemons.sample_until(done))
    cpu_before = daemons.cpu()
    client_before = client_cpu_seconds()
    started = time.monotonic()
    connections = start(args, hold=False)
    await asyncio.wait([connection.finished for connection in connections], timeout=args.timeout)
    for connection in connections:
        connection.end("timeout")
    client_cpu = client_cpu_seconds() - client_before
    cpu_after = daemons.cpu()
    done.set()
    await sampler
    failures = collections.Counter(c.finished.result() for c in connections if c.finished.result() is not None)
    durations = sorted(c.ended - c.started for c in connections if c.finished.result() is None)
    return {
        "test": "burst",
        "n": args.n,
        "ok": len(durations),
        "failed": sum(failures.values()),
        "causes": dict(failures),
        "wall_s": max(c.ended for c in connections) - started if connections else 0,
        "p50_s": percentile(durations, 0.50),
        "p99_s": percentile(durations, 0.99),
        "cpu_s": {name: cpu_after[name] - cpu_before[name] for name in cpu_before},
        "client_cpu_s": client_cpu,
        "rss_peak_kib": daemons.peak,
    }


async def idle(args, daemons):
    started = time.monotonic()
    connections = start(args, hold=True)
    await asyncio.wait([connection.opened for connection in connections], timeout=args.timeout)
    for connection in connections:
        if not connection.opened.done():
            connection.end("timeout")
    open_failures = collections.Counter(c.opened.result() for c in connections if c.opened.result() is not None)
    held = [connection for connection in connections if connection.opened.result() is None]
    open_wall = time.monotonic() - started
    await asyncio.sleep(1)  # let the daemons finish whatever the opening left behind
    rss_held = daemons.rss()
    cpu_before = daemons.cpu()
    idle_started = time.monotonic()
    await asyncio.sleep(args.hold)
    idle_seconds = time.monotonic() - idle_started
    cpu_after = daemons.cpu()
    started = time.monotonic()
    for connection in held:
        if not connection.finished.done():
            connection.use()
    if held:
        await asyncio.wait([connection.finished for connection in held], timeout=args.timeout)
    for connection in held:
        connection.end("timeout")
    use_wall = time.monotonic() - started
    use_failures = collections.Counter(c.finished.result() for c in held if c.finished.result() is not None)
    return {
        "test": "idle",
        "n": args.n,
        "held": len(held),
        "open_failed": sum(open_failures.values()),
        "open_causes": dict(open_failures),
        "open_wall_s": open_wall,
        "idle_s": idle_seconds,
        "idle_cpu_percent": {
            name: 100 * (cpu_after[name] - cpu_before[name]) / idle_seconds for name in cpu_before
        },
        "rss_held_kib": rss_held,
        "used_ok": len(held) - sum(use_failures.values()),
        "use_failed": sum(use_failures.values()),
        "use_causes": dict(use_failures),
        "use_wall_s": use_wall,
    }


def main():
    parser = argparse.ArgumentParser(description="many SOCKS5 connections at once (see the file's docstring)")
    parser.add_argument("test", choices=["burst", "idle"])
    parser.add_argument("--proxy", required=True, help="SOCKS5 proxy HOST:PORT, or none")
    parser.add_argument("--target", required=True, help="HTTP server, IPv4:PORT")
    parser.add_argument("--path", required=True, help="path of the file to GET")
    parser.add_argument("--size", type=int, required=True, help="the file's size in bytes")
    parser.add_argument("-n", type=int, required=True, help="connections at once")
    parser.add_argument("--hold", type=float, default=60, help="idle: seconds to hold the connections (60)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds the connections may take (120)")
    parser.add_argument("--daemon", action="append", default=[], help="NAME=PID of a proxy process to measure")
    parser.add_argument("--keep-alive", action="store_true", help="HTTP keep-alive: the server sends no FIN")
    args = parser.parse_args()
    daemons = Daemons(args.daemon)
    test = burst if args.test == "burst" else idle
    result = asyncio.run(test(args, daemons))
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
