#!/usr/bin/env python3
"""A SOCKS5 UDP client for agg's tests and the README, built on PySocks (UDP ASSOCIATE) and dnspython.

  socks5-udp-client.py dns   PROXY_PORT DNS_HOST DNS_PORT NAME    resolve NAME (A) through the proxy; prints the answer
  socks5-udp-client.py misbehave PROXY_PORT HOST PORT           foreign source, FRAG 1, good, after close
  socks5-udp-client.py echo  PROXY_PORT HOST PORT COUNT [MS]      COUNT numbered datagrams to a UDP echo (one every
                                                                  MS milliseconds if given); prints
                                                                  "sent N received M late L"
  socks5-udp-client.py load  PROXY_PORT HOST PORT COUNT RATE [SIZE]  COUNT numbered datagrams of SIZE bytes (200) to
                                                                  a UDP echo at RATE a second, whatever comes back;
                                                                  prints a JSON summary (received, round trips, the
                                                                  send times of the lost ones, the longest silence)
  socks5-udp-client.py blast PROXY_PORT HOST PORT SECONDS MBIT [SIZE]  datagrams of SIZE bytes (1200) at MBIT Mbit/s
                                                                  of payload for SECONDS; prints "sent N bytes B"
  socks5-udp-client.py sink  BIND_HOST PORT                       no proxy: counts what arrives until 3 s of
                                                                  silence; prints "received N bytes B seconds S
                                                                  mbit M" (first to last datagram)
  socks5-udp-client.py echo-server BIND_HOST PORT               no proxy: sends every datagram back (for the lab)
Options after the arguments: --user U --password P (proxy credentials); --direct (load: no proxy, PROXY_PORT is
ignored; the baseline of scripts/bench-udp-latency.sh).
"""
import json
import select
import socket
import sys
import time


def proxied_socket(proxy_port, user=None, password=None):
    if proxy_port is None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        return s
    import socks  # PySocks; imported here so that the modes without a proxy run on any Python

    s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
    s.set_proxy(socks.SOCKS5, "127.0.0.1", proxy_port, rdns=True, username=user, password=password)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    return s


def dns(proxy_port, host, port, name, user, password):
    import dns.message
    import dns.query
    import dns.rdatatype

    s = proxied_socket(proxy_port, user, password)
    s.setblocking(False)  # dnspython wants a non-blocking socket; PySocks wraps its sendto and recvfrom
    query = dns.message.make_query(name, dns.rdatatype.A)
    answer = dns.query.udp(query, host, port=port, sock=s, timeout=5)
    for rrset in answer.answer:
        for item in rrset:
            print(item.to_text())


def echo(proxy_port, host, port, count, user, password, interval=0.0):
    """Sends COUNT numbered datagrams, at most 64 unanswered at once (one at a time every INTERVAL seconds when
    given); one unanswered for 1 s counts as lost."""
    s = proxied_socket(proxy_port, user, password)
    if proxy_port is None:
        # Connected: only replies from HOST:PORT itself count (router mode must answer from the destination).
        s.connect((host, port))
    s.settimeout(5)
    s.sendto(b"warm-up", (host, port))  # UDP ASSOCIATE happens on the first sendto
    s.recvfrom(65535)
    s.setblocking(False)
    outstanding = {}
    received = set()
    late = 0
    sent = 0
    deadline = time.monotonic() + 120
    while (sent < count or outstanding) and time.monotonic() < deadline:
        now = time.monotonic()
        for number in [n for n, at in outstanding.items() if now - at > 1.0]:
            del outstanding[number]
        while sent < count and len(outstanding) < (1 if interval else 64):
            if interval:
                time.sleep(interval)
            s.sendto(b"%08d" % sent + b"x" * 200, (host, port))
            outstanding[sent] = time.monotonic()
            sent += 1
        ready, _, _ = select.select([s], [], [], 0.2)
        while ready:
            try:
                data, _ = s.recvfrom(65535)
            except (BlockingIOError, socket.timeout):
                break
            number = int(data[:8])
            if number in received or number not in outstanding:
                late += 1
            outstanding.pop(number, None)
            received.add(number)
    print("sent %d received %d late %d" % (sent, len(received), late))


def load(proxy_port, host, port, count, rate, size, user, password):
    """Paced, not windowed: datagram N leaves at N / RATE seconds whatever happened to the others, so a dead path
    shows as lost datagrams at the time it died rather than as a slower sender."""
    s = proxied_socket(proxy_port, user, password)
    s.settimeout(5)
    s.sendto(b"warm-up", (host, port))
    s.recvfrom(65535)
    s.setblocking(False)
    wall = time.time() - time.monotonic()
    sent_at = []
    received = {}
    duplicates = 0

    def drain():
        nonlocal duplicates
        while True:
            try:
                data, _ = s.recvfrom(65535)
            except (BlockingIOError, socket.timeout):
                return
            number = int(data[:8])
            if number in received:
                duplicates += 1
            else:
                received[number] = time.monotonic()

    start = time.monotonic()
    while len(sent_at) < count:
        due = start + len(sent_at) / rate
        now = time.monotonic()
        if now < due:
            select.select([s], [], [], due - now)
            drain()
            continue
        s.sendto(b"%08d" % len(sent_at) + b"x" * (size - 8), (host, port))
        sent_at.append(now)
        drain()
    end = time.monotonic() + 2
    while time.monotonic() < end:
        select.select([s], [], [], 0.1)
        drain()
    lost = [n for n in range(count) if n not in received]
    rtts = sorted(received[n] - sent_at[n] for n in received)
    arrivals = sorted(received.values())
    silence = max((b - a for a, b in zip(arrivals, arrivals[1:])), default=0.0)

    def quantile(q):
        return round(rtts[min(len(rtts) - 1, int(q * len(rtts)))] * 1000, 2) if rtts else None

    print(json.dumps({
        "sent": count, "received": len(received), "duplicates": duplicates,
        "rtt_ms": {"p50": quantile(0.5), "p90": quantile(0.9), "p99": quantile(0.99), "max": quantile(1.0)},
        "longest_silence_ms": round(silence * 1000, 1),
        "first_sent": sent_at[0] + wall, "last_sent": sent_at[-1] + wall,
        "lost_sent_at": [round(sent_at[n] + wall, 4) for n in lost],
    }))


def blast(proxy_port, host, port, seconds, mbit, size, user, password):
    """Datagrams of SIZE bytes at MBIT Mbit/s of payload, paced in 1 ms steps, for SECONDS."""
    s = proxied_socket(proxy_port, user, password)
    s.sendto(b"warm-up", (host, port))
    s.setblocking(False)
    per_second = mbit * 1e6 / 8 / size
    payload = b"b" * size
    start = time.monotonic()
    sent = 0
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        due = int((now - start) * per_second)
        while sent < due:
            try:
                s.sendto(payload, (host, port))
            except BlockingIOError:
                break
            sent += 1
        time.sleep(0.001)
    print("sent %d bytes %d" % (sent, sent * size))


def sink(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((host, port))
    print("listening", flush=True)
    count = 0
    total = 0
    first = last = None
    s.settimeout(60)
    while True:
        try:
            data = s.recv(65535)
        except socket.timeout:
            break
        if data == b"warm-up":
            continue
        last = time.monotonic()
        if first is None:
            first = last
            s.settimeout(3)
        count += 1
        total += len(data)
    seconds = (last - first) if first is not None and last > first else 0.0
    mbit = total * 8 / seconds / 1e6 if seconds else 0.0
    print("received %d bytes %d seconds %.3f mbit %.2f" % (count, total, seconds, mbit), flush=True)


def echo_server(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((host, port))
    print("listening", flush=True)
    while True:
        data, source = s.recvfrom(65535)
        s.sendto(data, source)


def misbehave(proxy_port, host, port):
    """Plain sockets, no PySocks: a datagram from another address and a fragment (both must be dropped), a good
    one (echoed), then one after the TCP control connection closed (the relay is gone). Prints what came back."""
    import struct

    control = socket.create_connection(("127.0.0.1", proxy_port))
    control.sendall(b"\x05\x01\x00")
    assert control.recv(2) == b"\x05\x00"
    control.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
    reply = control.recv(10)
    assert reply[:4] == b"\x05\x00\x00\x01", reply
    relay = (socket.inet_ntoa(reply[4:8]), struct.unpack("!H", reply[8:10])[0])
    header = b"\x00\x00\x00\x01" + socket.inet_aton(host) + struct.pack("!H", port)
    fragment = b"\x00\x00\x01\x01" + socket.inet_aton(host) + struct.pack("!H", port)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(2)
    foreign = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    foreign.bind(("127.0.0.2", 0))
    foreign.settimeout(1)
    foreign.sendto(header + b"foreign", relay)
    client.sendto(fragment + b"fragment", relay)
    client.sendto(header + b"good", relay)
    replies = []
    try:
        while True:
            data, source = client.recvfrom(65535)
            replies.append(data[10:].decode())
    except socket.timeout:
        pass
    try:
        foreign.recvfrom(65535)
        replies.append("to-foreign")
    except socket.timeout:
        pass
    control.close()
    time.sleep(0.5)
    client.sendto(header + b"after-close", relay)
    try:
        data, _ = client.recvfrom(65535)
        replies.append(data[10:].decode())
    except (socket.timeout, ConnectionRefusedError):
        pass
    print("replies " + ",".join(replies))


def main():
    args = sys.argv[1:]
    user = password = None
    if "--user" in args:
        i = args.index("--user")
        user = args[i + 1]
        del args[i:i + 2]
    if "--password" in args:
        i = args.index("--password")
        password = args[i + 1]
        del args[i:i + 2]
    direct = "--direct" in args
    if direct:
        args.remove("--direct")
    mode = args[0]
    if mode == "dns":
        dns(int(args[1]), args[2], int(args[3]), args[4], user, password)
    elif mode == "misbehave":
        misbehave(int(args[1]), args[2], int(args[3]))
    elif mode == "echo":
        interval = float(args[5]) / 1000 if len(args) > 5 else 0.0
        echo(int(args[1]), args[2], int(args[3]), int(args[4]), user, password, interval)
    elif mode == "load":
        size = int(args[6]) if len(args) > 6 else 200
        proxy_port = None if direct else int(args[1])
        load(proxy_port, args[2], int(args[3]), int(args[4]), float(args[5]), size, user, password)
    elif mode == "blast":
        size = int(args[6]) if len(args) > 6 else 1200
        blast(int(args[1]), args[2], int(args[3]), float(args[4]), float(args[5]), size, user, password)
    elif mode == "echo-server":
        echo_server(args[1], int(args[2]))
    elif mode == "sink":
        sink(args[1], int(args[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
