#!/usr/bin/env python3
"""socks-load.py: many SOCKS5 connections at once, for scripts/bench-connections.sh (standard library only).

  socks-load.py burst --proxy HOST:PORT --target IP:PORT --path /small.bin --size BYTES -n N [--daemon NAME=PID]...
  socks-load.py idle  --proxy HOST:PORT --target IP:PORT --path /small.bin --size BYTES -n N --hold SECONDS
                      [--daemon NAME=PID]...

burst: opens N connections to the proxy in the same event-loop turn; each does the SOCKS5 exchange (no
authentication, CONNECT to an IPv4 address), sends one HTTP/1.1 GET with "Connection: close" and reads to EOF. A
connection succeeds when the reply is 200 with a body of --size bytes. Its time runs from the start of connect() to
the last byte. Meanwhile the daemons' VmRSS is sampled every 50 ms (the peak is reported) and their CPU time is read
before and after.

idle: opens N connections and does the SOCKS5 exchange on each (all at once, as in burst), then holds them without
a byte for --hold seconds while measuring the daemons' CPU time (as % of one core) and VmRSS, then sends one GET
on each held connection (all at once) and counts the complete replies.

Prints one JSON object on stdout. Failures are counted by cause: "reply N" is a SOCKS5 reply code other than 0
(1 general failure, 2 not allowed, 3 network unreachable, 4 host unreachable, 5 connection refused, ...), "timeout"
a connection that did not finish within --timeout, otherwise the exception's name or what was wrong with the reply.
"""

import argparse
import asyncio
import collections
import ipaddress
import json
import math
import os
import sys
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Failure(Exception):
    """One connection's failure, with the cause it is counted under."""


# MARK: - daemons in /proc


def cpu_seconds(pid):
    """User + system seconds of every thread of PID so far (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


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


def connect_request(target):
    host, _, port = target.rpartition(":")
    return b"\x05\x01\x00\x01" + ipaddress.IPv4Address(host).packed + int(port).to_bytes(2, "big")


async def socks_connect(proxy_host, proxy_port, request):
    """TCP connection to the proxy and the SOCKS5 exchange (RFC 1928); returns the stream pair."""
    reader, writer = await asyncio.open_connection(proxy_host, proxy_port)
    try:
        writer.write(b"\x05\x01\x00")
        if await reader.readexactly(2) != b"\x05\x00":
            raise Failure("method refused")
        writer.write(request)
        version, reply, _, address_type = await reader.readexactly(4)
        if version != 5:
            raise Failure("not SOCKS5")
        if reply != 0:
            raise Failure(f"reply {reply}")
        if address_type == 1:
            await reader.readexactly(4 + 2)
        elif address_type == 4:
            await reader.readexactly(16 + 2)
        elif address_type == 3:
            (length,) = await reader.readexactly(1)
            await reader.readexactly(length + 2)
        else:
            raise Failure("bad address type")
    except BaseException:
        writer.transport.abort()
        raise
    return reader, writer


async def http_get(reader, writer, path, size):
    """One GET on an open tunnel, read to EOF; checks the status line and the body's length."""
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        response = await reader.read(-1)
    finally:
        writer.transport.abort()
    head, _, body = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise Failure("HTTP status" if head else "closed before reply")
    if len(body) != size:
        raise Failure("short body")


def cause(error):
    if isinstance(error, Failure):
        return str(error)
    if isinstance(error, asyncio.TimeoutError):
        return "timeout"
    if isinstance(error, asyncio.IncompleteReadError):
        return "closed early"
    return type(error).__name__


def percentile(sorted_values, fraction):
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]  # nearest rank


# MARK: - the two tests


async def burst(args, daemons):
    proxy_host, _, proxy_port = args.proxy.rpartition(":")
    request = connect_request(args.target)
    durations = []
    failures = collections.Counter()

    async def one():
        started = time.monotonic()
        try:
            async with asyncio.timeout(args.timeout):
                reader, writer = await socks_connect(proxy_host, int(proxy_port), request)
                await http_get(reader, writer, args.path, args.size)
            durations.append(time.monotonic() - started)
        except Exception as error:  # every failure is counted by cause, none ends the run
            failures[cause(error)] += 1

    done = asyncio.Event()
    sampler = asyncio.create_task(daemons.sample_until(done))
    cpu_before = daemons.cpu()
    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(args.n)))
    wall = time.monotonic() - started
    cpu_after = daemons.cpu()
    done.set()
    await sampler
    durations.sort()
    return {
        "test": "burst",
        "n": args.n,
        "ok": len(durations),
        "failed": sum(failures.values()),
        "causes": dict(failures),
        "wall_s": wall,
        "p50_s": percentile(durations, 0.50),
        "p99_s": percentile(durations, 0.99),
        "cpu_s": {name: cpu_after[name] - cpu_before[name] for name in cpu_before},
        "rss_peak_kib": daemons.peak,
    }


async def idle(args, daemons):
    proxy_host, _, proxy_port = args.proxy.rpartition(":")
    request = connect_request(args.target)
    open_failures = collections.Counter()
    use_failures = collections.Counter()

    async def open_one():
        try:
            async with asyncio.timeout(args.timeout):
                return await socks_connect(proxy_host, int(proxy_port), request)
        except Exception as error:
            open_failures[cause(error)] += 1
            return None

    async def use_one(streams):
        try:
            async with asyncio.timeout(args.timeout):
                await http_get(*streams, args.path, args.size)
            return True
        except Exception as error:
            use_failures[cause(error)] += 1
            return False

    started = time.monotonic()
    held = [streams for streams in await asyncio.gather(*(open_one() for _ in range(args.n))) if streams]
    open_wall = time.monotonic() - started
    await asyncio.sleep(1)  # let the daemons finish whatever the opening left behind
    rss_held = daemons.rss()
    cpu_before = daemons.cpu()
    idle_started = time.monotonic()
    await asyncio.sleep(args.hold)
    idle_seconds = time.monotonic() - idle_started
    cpu_after = daemons.cpu()
    started = time.monotonic()
    used = await asyncio.gather(*(use_one(streams) for streams in held))
    use_wall = time.monotonic() - started
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
        "used_ok": sum(used),
        "use_failed": sum(use_failures.values()),
        "use_causes": dict(use_failures),
        "use_wall_s": use_wall,
    }


def main():
    parser = argparse.ArgumentParser(description="many SOCKS5 connections at once (see the file's docstring)")
    parser.add_argument("test", choices=["burst", "idle"])
    parser.add_argument("--proxy", required=True, help="SOCKS5 proxy, HOST:PORT")
    parser.add_argument("--target", required=True, help="HTTP server, IPv4:PORT")
    parser.add_argument("--path", required=True, help="path of the file to GET")
    parser.add_argument("--size", type=int, required=True, help="the file's size in bytes")
    parser.add_argument("-n", type=int, required=True, help="connections at once")
    parser.add_argument("--hold", type=float, default=60, help="idle: seconds to hold the connections (60)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds one connection may take (120)")
    parser.add_argument("--daemon", action="append", default=[], help="NAME=PID of a proxy process to measure")
    args = parser.parse_args()
    daemons = Daemons(args.daemon)
    test = burst if args.test == "burst" else idle
    result = asyncio.run(test(args, daemons))
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
