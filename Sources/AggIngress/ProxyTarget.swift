import AggProtocol
import NIOCore
import SCTPEngine

/// Where a local application asked to be connected: an IP address or an unresolved domain name, plus a TCP port.
///
/// Domain names are passed on as the client sent them (socks5h semantics): the server resolves them, so DNS never
/// leaks from the client's network.
public enum ProxyTarget: Hashable, Sendable, CustomStringConvertible {
    case address(SCTPIPAddress, port: UInt16)
    case domain(String, port: UInt16)

    public var port: UInt16 {
        switch self {
        case .address(_, let port), .domain(_, let port): return port
        }
    }

    /// `host:port`, with IPv6 addresses in brackets (RFC 3986 §3.2.2), as in an HTTP `Host` header.
    public var description: String {
        switch self {
        case .address(let address, let port):
            return address.isIPv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
        case .domain(let name, let port):
            return "\(name):\(port)"
        }
    }

    /// Parses an authority: `host:port`, `[v6]:port`, or `host` with `defaultPort`. Hosts that are IP literals become
    /// `.address`; anything else must be a plausible DNS name (RFC 1035 length limits, no spaces or control bytes).
    public init?(authority: Substring, defaultPort: UInt16?) {
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let rest = authority[authority.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return nil }
                portText = rest.dropFirst()
            }
            guard host.contains(":"), let address = SCTPIPAddress(host), !address.isIPv4 else { return nil }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        let port: UInt16
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy(\.isASCII),
                let parsed = UInt16(portText), parsed != 0
            else { return nil }
            port = parsed
        } else {
            guard let defaultPort else { return nil }
            port = defaultPort
        }
        // RFC 3986 §3.2.2: an IPv6 literal in an authority must be in brackets.
        if !authority.hasPrefix("["), host.contains(":") { return nil }
        if let address = SCTPIPAddress(host) {
            self = .address(address, port: port)
        } else {
            guard Self.isPlausibleDomain(host) else { return nil }
            self = .domain(String(host), port: port)
        }
    }

    /// RFC 1035 §2.3.4: a name is at most 255 octets. Only printable ASCII without spaces, `/`, `@` or `:` is let
    /// through; the server's resolver has the last word.
    static func isPlausibleDomain<S: StringProtocol>(_ name: S) -> Bool {
        let bytes = name.utf8
        guard !bytes.isEmpty, bytes.count <= 255 else { return false }
        return bytes.allSatisfy { byte in
            byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "/") && byte != UInt8(ascii: "@")
                && byte != UInt8(ascii: ":") && byte != UInt8(ascii: "[") && byte != UInt8(ascii: "]")
        }
    }
}

/// How each ingress protocol reports a failure.
extension ProxyFailure {
    /// RFC 1928 §6 REP field.
    public var socks5Reply: UInt8 {
        switch self {
        case .generalFailure, .serverUnavailable, .tooManyStreams: return 0x01
        case .notAllowed: return 0x02
        case .unreachable: return 0x03
        case .hostUnreachable, .dnsFailure: return 0x04
        case .refused: return 0x05
        case .timeout: return 0x06  // "TTL expired", the closest RFC 1928 has to a connect timeout
        }
    }

    /// SOCKS4 CD field: every failure is 0x5B "request rejected or failed".
    public var socks4Reply: UInt8 { 0x5B }

    /// The status an HTTP proxy answers with (RFC 9110 §15.6).
    public var httpStatus: HTTPStatusLine {
        switch self {
        case .refused, .unreachable, .hostUnreachable, .dnsFailure, .generalFailure:
            return HTTPStatusLine(code: 502, reason: "Bad Gateway")
        case .timeout: return HTTPStatusLine(code: 504, reason: "Gateway Timeout")
        case .notAllowed: return HTTPStatusLine(code: 403, reason: "Forbidden")
        case .serverUnavailable: return HTTPStatusLine(code: 503, reason: "Service Unavailable")
        case .tooManyStreams: return HTTPStatusLine(code: 503, reason: "Service Unavailable (too many connections)")
        }
    }
}

/// A status code and its reason phrase.
public struct HTTPStatusLine: Hashable, Sendable {
    public var code: Int
    public var reason: String

    public init(code: Int, reason: String) {
        self.code = code
        self.reason = reason
    }
}

/// Opens upstreams for the ingress handlers: in aggclient, a stream of the SCTP association to aggserver.
///
/// The contract, all of it on `inbound.eventLoop`:
/// - `connect` is called once per upstream with the target, the bytes to send first (`initialData`, e.g. a rewritten
///   HTTP request; nil for tunnels) and the local application's channel.
/// - On success the connector has added exactly one relay handler at the end of `inbound`'s pipeline and then
///   succeeds the future. The relay handler sends every `ByteBuffer` it reads upstream, writes and flushes every byte
///   from upstream into the channel as `ByteBuffer`, and calls `close` on its context when the upstream has ended
///   (after the last byte). It closes the upstream when it is removed from the pipeline or the channel goes inactive.
/// - On failure it adds nothing and fails the future with a `ProxyFailure` (other errors count as `.generalFailure`).
///
/// Ingress handlers sit in front of the relay: tunnels (SOCKS, HTTP CONNECT) remove themselves once the reply is
/// written, so the relay sees the raw bytes; the HTTP forward proxy stays and catches the relay's `close` as the end of
/// one response. `DirectProxyConnector` is a reference implementation over plain TCP.
public protocol ProxyConnector: Sendable {
    func connect(to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel) -> EventLoopFuture<Void>
    /// `connect` with its outcome given to `completion` on `inbound.eventLoop` (at once if it is known at once)
    /// rather than through a future: what the tunnel handshakes call, once per connection, where a future, its hop
    /// and a `Sendable` callback cost more. The default implementation waits on `connect`'s future.
    func connect(
        to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel,
        completion: @escaping (Result<Void, any Error>) -> Void)
    /// `connect` for a forwarded HTTP request (not CONNECT): its failure must reach the client as an HTTP status,
    /// so success is reported only once the target answered, never early. The default implementation is `connect`.
    func connectWaitingForTarget(
        to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel
    )
        -> EventLoopFuture<Void>
    /// SOCKS5 UDP ASSOCIATE: binds a UDP relay for the client of `control` (which says it sends from
    /// `expectedSource`, zeros when unknown) and returns the relay's address; the relay ends when `control` closes.
    func associateUDP(expectedSource: ProxyTarget, control: any Channel) -> EventLoopFuture<SocketAddress>
    /// Whether `associateUDP` is offered; SOCKS5 answers UDP ASSOCIATE with "command not supported" otherwise.
    var supportsUDPAssociate: Bool { get }
}

extension ProxyConnector {
    public var supportsUDPAssociate: Bool { false }

    public func connect(
        to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel,
        completion: @escaping (Result<Void, any Error>) -> Void
    ) {
        connect(to: target, initialData: initialData, inbound: inbound).hop(to: inbound.eventLoop)
            .assumeIsolated().whenComplete(completion)
    }

    public func connectWaitingForTarget(
        to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel
    ) -> EventLoopFuture<Void> {
        connect(to: target, initialData: initialData, inbound: inbound)
    }

    /// Connectors without a UDP relay refuse UDP ASSOCIATE (SOCKS5 reply 1).
    public func associateUDP(expectedSource: ProxyTarget, control: any Channel) -> EventLoopFuture<SocketAddress> {
        control.eventLoop.makeFailedFuture(ProxyFailure.generalFailure)
    }
}

extension Error {
    /// The failure to report for an error from a connector.
    var asProxyFailure: ProxyFailure { (self as? ProxyFailure) ?? .generalFailure }
}
