#!/usr/bin/env python3
"""Writes the hand-made seed corpora of the Stream, SOCKS, HTTP and Status fuzzers
(Fuzz/Corpus/{stream,socks,http,status}), and the Association fuzzer's hand-made FORWARD-TSN seed.

The Association and Decrypt fuzzers' seeds come from a real exchange instead (Decrypt's from a real version-2
handshake, HELLO and HELLO-ACK with their X25519 public keys, so regenerate them whenever that format changes):
    .build/release/AssociationFuzzer --write-seeds Corpus/association
    .build/release/DecryptFuzzer --write-seeds Corpus/decrypt
Each seed follows the input layout its fuzzer's source file documents.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(corpus, name, data):
    folder = os.path.join(HERE, "Corpus", corpus)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# Stream: records of stream (1), kind (1: low byte of agg's PPID), flags (1), length (2, little endian), payload.
OPEN, OPEN_RESULT, DATA, FIN, RESET, WINDOW_UPDATE, CLOSED = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
HELLO, AUTH, AUTH_OK, PING, PONG = 0x10, 0x11, 0x12, 0x13, 0x14


def record(stream, kind, payload, flags=0):
    return bytes([stream, kind, flags]) + struct.pack("<H", len(payload)) + payload


def stream_seeds():
    credit = struct.pack(">I", 4 * 1024 * 1024)
    v4 = bytes([1, 93, 184, 216, 34]) + struct.pack(">H", 443) + credit
    v6 = bytes([4]) + bytes(15) + bytes([1]) + struct.pack(">H", 80) + credit
    name = b"example.com"
    domain = bytes([3, len(name)]) + name + struct.pack(">H", 443) + credit
    hello = bytes([1]) + bytes(range(32)) + struct.pack(">H", 1024) + credit
    auth = bytes([1]) + bytes([9] * 32) + bytes([7] * 32) + bytes([4]) + b"fuzz"
    seeds = {
        "open-v4": record(1, OPEN, v4),
        "open-v6": record(2, OPEN, v6),
        "open-domain": record(3, OPEN, domain),
        "open-result-ok": record(1, OPEN_RESULT, bytes([0])),
        "open-result-refused-text": record(1, OPEN_RESULT, bytes([5]) + b"connection refused"),
        "data": record(1, DATA, b"GET / HTTP/1.1\r\n\r\n"),
        "fin": record(1, FIN, bytes([0])),
        "reset-text": record(1, RESET, bytes([3]) + b"idle"),
        "window-update": record(1, WINDOW_UPDATE, struct.pack(">I", 65536)),
        "closed": record(1, CLOSED, bytes([0])),
        "hello": record(0, HELLO, hello),
        "auth": record(0, AUTH, auth),
        "auth-ok": record(0, AUTH_OK, bytes([1] * 32)),
        "ping-unordered": record(0, PING, struct.pack(">Q", 42), flags=1),
        "pong": record(0, PONG, struct.pack(">Q", 42)),
        "raw-ppid": bytes([1, 0x80, 0]) + struct.pack("<H", 2) + struct.pack(">I", 51) + b"hi",
    }
    # Whole conversations: the server's view of a client, the client's view of a server.
    seeds["client-session"] = (seeds["auth"] + seeds["open-domain"] + seeds["data"] + seeds["window-update"]
                               + seeds["fin"] + seeds["ping-unordered"])
    seeds["server-session"] = (seeds["hello"] + seeds["auth-ok"] + seeds["open-result-ok"] + seeds["data"]
                               + seeds["fin"] + seeds["closed"])
    for name, data in seeds.items():
        write("stream", name, data)


# SOCKS and HTTP: flags (bit 0 credentials, bits 1-3 connector failure, bits 4-6 piece size), then the client's bytes
# (HTTP: then 0xFF and the origin's response).
def socks_seeds():
    port = struct.pack(">H", 80)
    seeds = {
        "socks5-v4": b"\x05\x01\x00" + b"\x05\x01\x00\x01\x7f\x00\x00\x01" + port + b"GET / HTTP/1.0\r\n\r\n",
        "socks5-v6": b"\x05\x01\x00" + b"\x05\x01\x00\x04" + bytes(15) + b"\x01" + port,
        "socks5-domain": b"\x05\x02\x00\x02" + b"\x05\x01\x00\x03\x0bexample.com" + port,
        "socks5-bind": b"\x05\x01\x00" + b"\x05\x02\x00\x01\x7f\x00\x00\x01" + port,
        "socks5-udp": b"\x05\x01\x00" + b"\x05\x03\x00\x01\x00\x00\x00\x00" + port,
        "socks4": b"\x04\x01" + port + b"\x7f\x00\x00\x01" + b"user\x00",
        "socks4a": b"\x04\x01" + port + b"\x00\x00\x00\x01" + b"user\x00" + b"example.com\x00",
        "socks4-bind": b"\x04\x02" + port + b"\x7f\x00\x00\x01" + b"\x00",
    }
    flagged = {
        "socks5-userpass": (0x01, b"\x05\x01\x02" + b"\x01\x04user\x04pass" + b"\x05\x01\x00\x01\x7f\x00\x00\x01"
                            + port),
        "socks5-userpass-wrong": (0x01, b"\x05\x01\x02" + b"\x01\x04user\x05wrong"),
        "socks5-refused-1byte": (0x1A, seeds["socks5-domain"]),
        "socks4-user-credentials-3bytes": (0x31, seeds["socks4"]),
        "socks4a-timeout-7bytes": (0x4C, seeds["socks4a"]),
    }
    for name, data in seeds.items():
        write("socks", name, bytes([0x00]) + data)
    for name, (flags, data) in flagged.items():
        write("socks", name, bytes([flags]) + data)


def http_seeds():
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    chunked_response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    seeds = {
        "connect": (0x00, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01", b""),
        "get": (0x00, b"GET http://example.com/a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n"
                b"Connection: keep-alive, x-drop\r\nX-Drop: 1\r\nProxy-Connection: keep-alive\r\n\r\n", ok),
        "get-close-response": (0x00, b"GET http://127.0.0.1:8080/ HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
                               b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody until close"),
        "head": (0x00, b"HEAD http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
                 b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
        "post-length": (0x00, b"POST http://example.com/up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\n\r\n"
                        b"hello world", ok),
        "post-chunked": (0x20, b"POST http://example.com/up HTTP/1.1\r\nHost: example.com\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
                         chunked_response),
        "smuggle-cl-te": (0x00, b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET http://evil/ HTTP/1.1\r\n\r\n", ok),
        "keep-alive-two": (0x10, b"GET http://example.com/1 HTTP/1.1\r\nHost: example.com\r\n\r\n"
                           b"GET http://example.com/2 HTTP/1.1\r\nHost: example.com\r\n\r\n", ok),
        "auth-basic": (0x01, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n"
                       b"Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n", ok),
        "auth-missing": (0x01, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n", b""),
        "ipv6-target": (0x00, b"GET http://[2001:db8::1]:8080/ HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n", ok),
        "refused": (0x0A, b"GET http://example.com/ HTTP/1.0\r\n\r\n", b""),
        "informational": (0x00, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
                          b"HTTP/1.1 100 Continue\r\n\r\n" + ok),
        "origin-form": (0x00, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", b""),
    }
    for name, (flags, request, response) in seeds.items():
        data = bytes([flags]) + request
        if response:
            data += b"\xff" + response
        write("http", name, data)


# Status: a flags byte (bits 0-2 the read size, bit 3 the clock stepping between reads), then a client's bytes to
# the status endpoint.
def status_seeds():
    seeds = {
        "root": (0x00, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        "root-html": (0x00, b"GET / HTTP/1.1\r\nHost: localhost\r\nAccept: text/html,*/*\r\n\r\n"),
        "metrics": (0x00, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        "status-json": (0x00, b"GET /status.json?history=5 HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        "status-txt-head": (0x00, b"HEAD /status.txt HTTP/1.0\r\n\r\n"),
        "empty-query-name": (0x00, b"GET /?= HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        "odd-queries": (0x00, b"GET /status.json?=&&history=&a=b=c&history=-9 HTTP/1.1\r\n\r\n"),
        "post": (0x00, b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"),
        "chunked-body": (0x00, b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        "pipelined": (0x00, b"GET /metrics HTTP/1.1\r\n\r\nGET /?= HTTP/1.1\r\n\r\n"),
        "slow": (0x09, b"GET /status.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        "garbage": (0x00, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"),
        "absolute-form": (0x02, b"GET http://localhost:9100/metrics?x HTTP/1.1\r\n\r\n"),
    }
    for name, (flags, data) in seeds.items():
        write("status", name, bytes([flags]) + data)


def association_seeds():
    """FORWARD-TSN (RFC 3758 §3.2) records: the real exchange of --write-seeds has no PR-SCTP message, so no
    FORWARD-TSN; both endpoints negotiate PR-SCTP, so these reach the server's FORWARD-TSN handling. Each record is
    flags, a little-endian length and chunks (AssociationFuzzer.swift). The TSNs lie around the client's first DATA
    TSN of the recorded exchange (0x47364cf1): one just ahead, one further with ordered stream entries, one stale,
    then one that lets the timers run."""

    def record(flags, chunks):
        return bytes([flags]) + struct.pack("<H", len(chunks)) + chunks

    def forward_tsn(tsn, streams=()):
        body = struct.pack(">I", tsn) + b"".join(struct.pack(">HH", s, n) for s, n in streams)
        return struct.pack(">BBH", 192, 0, 4 + len(body)) + body

    base = 0x47364CF1
    write("association", "forward-tsn", record(0x00, forward_tsn(base + 1))
          + record(0x00, forward_tsn(base + 3, [(1, 5), (2, 0)]))
          + record(0x00, forward_tsn(base - 1))
          + record(0x40, forward_tsn(base + 3)))


stream_seeds()
socks_seeds()
http_seeds()
status_seeds()
association_seeds()
