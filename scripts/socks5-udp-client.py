#!/usr/bin/env python3
"""A SOCKS5 UDP client for agg's tests and the README, built on PySocks (UDP ASSOCIATE) and dnspython.

  socks5-udp-client.py dns   PROXY_PORT DNS_HOST DNS_PORT NAME    resolve NAME (A) through the proxy; prints the answer
  socks5-udp-client.py misbehave PROXY_PORT HOST PORT           foreign source, FRAG 1, good, after close
  socks5-udp-client.py echo  PROXY_PORT HOST PORT COUNT [MS]      COUNT numbered datagrams to a UDP echo (one every
                                                                  MS milliseconds if given); prints
                                                                  "sent N received M late L"
Options after the arguments: --user U --password P (proxy credentials).
"""
import select
import socket
import sys
import time

import socks  # PySocks


def proxied_socket(proxy_port, user=None, password=None):
    s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
    s.set_proxy(socks.SOCKS5, "127.0.0.1", proxy_port, rdns=True, username=user, password=password)
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
    mode = args[0]
    if mode == "dns":
        dns(int(args[1]), args[2], int(args[3]), args[4], user, password)
    elif mode == "misbehave":
        misbehave(int(args[1]), args[2], int(args[3]))
    elif mode == "echo":
        interval = float(args[5]) / 1000 if len(args) > 5 else 0.0
        echo(int(args[1]), args[2], int(args[3]), int(args[4]), user, password, interval)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
