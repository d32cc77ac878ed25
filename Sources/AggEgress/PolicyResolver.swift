import AggProtocol
import AggTransport
import NIOCore
import NIOPosix
import SCTPEngine

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Looks up the addresses of one family for a host name. `system` calls `getaddrinfo`; tests inject fakes.
public struct DNSLookup: Sendable {
    public enum Family: Sendable { case v4, v6 }

    public let lookup: @Sendable (_ host: String, _ family: Family) throws -> [SCTPIPAddress]

    public init(_ lookup: @escaping @Sendable (_ host: String, _ family: Family) throws -> [SCTPIPAddress]) {
        self.lookup = lookup
    }

    /// Blocking `getaddrinfo` for one family (run it off the event loop).
    public static let system = DNSLookup { host, family in
        var hints = addrinfo()
        hints.ai_family = family == .v4 ? AF_INET : AF_INET6
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        hints.ai_protocol = Int32(IPPROTO_TCP)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0 else {
            let text = gai_strerror(status).map { String(cString: $0) } ?? "error \(status)"
            throw DNSLookupError(host: host, code: status, text: text)
        }
        defer { freeaddrinfo(list) }
        var addresses: [SCTPIPAddress] = []
        var entry = list
        while let info = entry?.pointee {
            defer { entry = info.ai_next }
            guard let raw = info.ai_addr else { continue }
            var address: SCTPIPAddress?
            switch info.ai_family {
            case AF_INET:
                address = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    .v4(UInt32(bigEndian: $0.pointee.sin_addr.s_addr))
                }
            case AF_INET6:
                address = raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    var bytes = $0.pointee.sin6_addr
                    return withUnsafeBytes(of: &bytes) { SCTPIPAddress(bytes: $0) }
                }
            default:
                break
            }
            if let address, !addresses.contains(address) { addresses.append(address) }
        }
        return addresses
    }
}

/// `getaddrinfo` failed (NXDOMAIN, no data, server failure, …).
public struct DNSLookupError: Error, Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var code: Int32
    public var text: String
    public var description: String { "cannot resolve \(host): \(text)" }
}

/// A NIO `Resolver` for one connection attempt that resolves A and AAAA in parallel through the server's
/// `LookupScheduler` (off the event loop, within its bounds) and drops every address the egress policy refuses,
/// before Happy Eyeballs sees it. That is the DNS-rebinding defence: a public name that resolves to 127.0.0.1
/// reaches nothing. The refused addresses are recorded so the connector can report "not allowed" rather than "DNS
/// failure" when nothing is left.
public final class PolicyResolver: Resolver, Sendable {
    /// An address the policy removed, with the defence that refused it and why.
    public struct RefusedAddress: Sendable {
        public var address: SCTPIPAddress
        public var refusal: Refusal
        public var reason: String
    }

    private let loop: EventLoop
    private let policy: EgressPolicy
    private let scheduler: LookupScheduler
    private let owner: LookupScheduler.Owner
    private let refusedBox: NIOLoopBoundBox<[RefusedAddress]>
    private let queriesBox: NIOLoopBoundBox<[Int]>

    /// `loop` must be the loop the connection is made on; every future completes there. The lookups count
    /// against `owner`'s limits.
    public init(
        loop: EventLoop, policy: EgressPolicy, scheduler: LookupScheduler,
        owner: LookupScheduler.Owner = LookupScheduler.noOwner
    ) {
        self.loop = loop
        self.policy = policy
        self.scheduler = scheduler
        self.owner = owner
        self.refusedBox = NIOLoopBoundBox.makeBoxSendingValue([], eventLoop: loop)
        self.queriesBox = NIOLoopBoundBox.makeBoxSendingValue([], eventLoop: loop)
    }

    /// The addresses the policy removed so far. Read on `loop`.
    public var refused: [RefusedAddress] { refusedBox.value }

    public func initiateAQuery(host: String, port: Int) -> EventLoopFuture<[SocketAddress]> {
        query(host: host, port: port, family: .v4)
    }

    public func initiateAAAAQuery(host: String, port: Int) -> EventLoopFuture<[SocketAddress]> {
        query(host: host, port: port, family: .v6)
    }

    /// Lookups still waiting leave the scheduler's queue; running ones cannot be stopped (getaddrinfo), and their
    /// late answers are not used.
    public func cancelQueries() {
        scheduler.cancel(queriesBox.value)
    }

    private func query(host: String, port: Int, family: DNSLookup.Family) -> EventLoopFuture<[SocketAddress]> {
        let (id, future) = scheduler.resolve(host: host, family: family, owner: owner, on: loop)
        queriesBox.value.append(id)
        return future.map { addresses in
            self.filter(addresses, port: port)
        }
    }

    /// Keeps the allowed addresses (runs on `loop`).
    private func filter(_ addresses: [SCTPIPAddress], port: Int) -> [SocketAddress] {
        var kept: [SocketAddress] = []
        for address in addresses {
            switch policy.check(address) {
            case .allowed:
                kept.append(SocketAddress(SCTPSocketAddress(ip: address, port: UInt16(truncatingIfNeeded: port))))
            case .refused(let refusal, let why):
                refusedBox.value.append(RefusedAddress(address: address, refusal: refusal, reason: why))
            }
        }
        return kept
    }
}
