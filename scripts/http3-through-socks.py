#!/usr/bin/env python3
"""HTTP/3 through a SOCKS5 UDP relay, for agg's tests: an aioquic server and an aioquic client whose datagrams a
small local shim carries through the proxy's UDP ASSOCIATE (PySocks). Nothing of aioquic's own examples is used.

  http3-through-socks.py server HOST PORT                 serves GET /N with N bytes (byte i = i % 251) over
                                                          HTTP/3 with a fresh self-signed certificate; runs until
                                                          killed; prints "listening" once ready
  http3-through-socks.py get PROXY_PORT HOST PORT N [N...]  one QUIC connection through the proxy, one request per
                                                          N; prints one JSON line per request: status, bytes,
                                                          whether the body is the expected one, seconds
Options after the arguments: --user U --password P (proxy credentials), --direct (get without the proxy).
"""
import asyncio
import datetime
import hashlib
import json
import select
import socket
import ssl
import sys
import tempfile
import threading
import time

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated


def body(size):
    return bytes(i % 251 for i in range(size))


def self_signed_certificate(directory):
    """A throwaway EC certificate for `agg.test`, written to DIRECTORY; returns (certificate path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agg.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("agg.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = f"{directory}/cert.pem"
    key_path = f"{directory}/key.pem"
    with open(cert_path, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return cert_path, key_path


class ServerProtocol(QuicConnectionProtocol):
    """Answers every complete GET /N with N bytes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = None

    def quic_event_received(self, event):
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self.h3 = H3Connection(self._quic)
        if self.h3 is None:
            return
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived) and h3_event.stream_ended:
                path = dict(h3_event.headers).get(b":path", b"/0")
                try:
                    size = int(path.strip(b"/") or b"0")
                except ValueError:
                    size = -1
                if size < 0 or size > 64 << 20:
                    self.h3.send_headers(h3_event.stream_id, [(b":status", b"404")], end_stream=True)
                else:
                    payload = body(size)
                    headers = [(b":status", b"200"), (b"content-length", str(size).encode())]
                    self.h3.send_headers(h3_event.stream_id, headers)
                    self.h3.send_data(h3_event.stream_id, payload, end_stream=True)
                self.transmit()


async def run_server(host, port):
    with tempfile.TemporaryDirectory() as directory:
        configuration = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
        configuration.load_cert_chain(*self_signed_certificate(directory))
        await serve(host, port, configuration=configuration, create_protocol=ServerProtocol)
        print("listening", flush=True)
        await asyncio.Event().wait()


class ClientProtocol(QuicConnectionProtocol):
    """Sends GETs and collects each response's status and body."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.responses = {}

    def quic_event_received(self, event):
        for h3_event in self.h3.handle_event(event):
            response = self.responses.get(getattr(h3_event, "stream_id", None))
            if response is None:
                continue
            if isinstance(h3_event, HeadersReceived):
                response["status"] = int(dict(h3_event.headers).get(b":status", b"0"))
            elif isinstance(h3_event, DataReceived):
                response["body"] += h3_event.data
            if getattr(h3_event, "stream_ended", False) and not response["done"].done():
                response["done"].set_result(None)

    async def get(self, authority, path):
        stream_id = self._quic.get_next_available_stream_id()
        response = {"status": 0, "body": b"", "done": asyncio.get_running_loop().create_future()}
        self.responses[stream_id] = response
        headers = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", authority), (b":path", path)]
        self.h3.send_headers(stream_id, headers, end_stream=True)
        self.transmit()
        await response["done"]
        return response


class SocksShim:
    """A local UDP port whose datagrams leave through the proxy's UDP relay toward one target, and whose replies
    come back to whoever sent the last datagram: the QUIC client talks to it as if it were the server."""

    def __init__(self, proxy_port, target, user, password):
        import socks  # PySocks

        self.local = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.local.bind(("127.0.0.1", 0))
        self.proxied = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
        self.proxied.set_proxy(socks.SOCKS5, "127.0.0.1", proxy_port, rdns=True, username=user, password=password)
        self.proxied.bind(("127.0.0.1", 0))  # PySocks sends UDP ASSOCIATE here
        self.target = target
        self.client = None
        self.stopped = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.local.getsockname()[1]

    def run(self):
        while not self.stopped:
            ready, _, _ = select.select([self.local, self.proxied], [], [], 0.2)
            for sock in ready:
                if sock is self.local:
                    data, self.client = self.local.recvfrom(65535)
                    self.proxied.sendto(data, self.target)
                else:
                    data, _ = self.proxied.recvfrom(65535)
                    if self.client is not None:
                        self.local.sendto(data, self.client)


async def run_get(proxy_port, host, port, sizes, user, password, direct):
    shim = None
    if direct:
        address = (host, port)
    else:
        shim = SocksShim(proxy_port, (host, port), user, password)
        address = ("127.0.0.1", shim.port)
    configuration = QuicConfiguration(
        is_client=True, alpn_protocols=H3_ALPN, verify_mode=ssl.CERT_NONE, server_name="agg.test"
    )
    try:
        async with connect(*address, configuration=configuration, create_protocol=ClientProtocol) as client:
            for size in sizes:
                start = time.monotonic()
                response = await asyncio.wait_for(client.get(b"agg.test", f"/{size}".encode()), 60)
                data = response["body"]
                print(
                    json.dumps(
                        {
                            "status": response["status"],
                            "bytes": len(data),
                            "intact": hashlib.sha256(data).digest() == hashlib.sha256(body(size)).digest(),
                            "seconds": round(time.monotonic() - start, 3),
                        }
                    ),
                    flush=True,
                )
    finally:
        if shim is not None:
            shim.stopped = True


def main():
    args = sys.argv[1:]
    options = {}
    for flag in ("--user", "--password"):
        if flag in args:
            i = args.index(flag)
            options[flag] = args[i + 1]
            del args[i : i + 2]
    direct = "--direct" in args
    if direct:
        args.remove("--direct")
    if len(args) >= 3 and args[0] == "server":
        asyncio.run(run_server(args[1], int(args[2])))
    elif len(args) >= 5 and args[0] == "get":
        sizes = [int(n) for n in args[4:]]
        asyncio.run(
            run_get(int(args[1]), args[2], int(args[3]), sizes, options.get("--user"), options.get("--password"), direct)
        )
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
