#!/usr/bin/env python3
"""udpprobe: shows which source address and port a UDP datagram arrives from, to check the lab's NATs.

    udpprobe.py recv ADDR:PORT [ADDR:PORT...]   prints "<local addr:port> <peer addr:port> <payload>" per datagram
    udpprobe.py send FROM_ADDR:PORT TO_ADDR:PORT PAYLOAD
    udpprobe.py ask FROM_ADDR:PORT TO_ADDR:PORT PAYLOAD SECONDS   sends, then prints what comes back for SECONDS
"""

import select
import socket
import sys
import time


def endpoint(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def recv(binds):
    sockets = {}
    for text in binds:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(endpoint(text))
        sockets[sock.fileno()] = (sock, text)
    print("ready", flush=True)
    poller = select.poll()
    for fd in sockets:
        poller.register(fd, select.POLLIN)
    while True:
        for fd, _ in poller.poll():
            sock, local = sockets[fd]
            data, (host, port) = sock.recvfrom(2048)
            print("%s %s:%d %s" % (local, host, port, data.decode(errors="replace")), flush=True)


def send(source, destination, payload):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(endpoint(source))
    sock.sendto(payload.encode(), endpoint(destination))


def ask(source, destination, payload, seconds):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(endpoint(source))
    sock.sendto(payload.encode(), endpoint(destination))
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            return
        data, (host, port) = sock.recvfrom(2048)
        print("%s %s:%d %s" % (source, host, port, data.decode(errors="replace")), flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "recv":
        recv(sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "send":
        send(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 6 and sys.argv[1] == "ask":
        ask(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
    else:
        sys.exit(__doc__)
