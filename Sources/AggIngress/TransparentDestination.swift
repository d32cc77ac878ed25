import AggEgress
import AggTransport
import NIOCore
import SCTPEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Where a connection the kernel redirected to aggclient was going: read from the accepted socket (the NAT's record
/// for nftables `redirect`, the socket's own local address for `tproxy`), and checked against aggclient's own
/// listeners so that a connection aimed at aggclient itself is not proxied back into it.
public enum TransparentDestination {
    /// Why a redirected connection is not proxied.
    public enum Problem: Error, Equatable, Sendable {
        /// Neither the NAT's record nor the socket's local address gave an IPv4 or IPv6 address with a port.
        case unreadable
        /// The destination is one of aggclient's own listeners: proxying it would feed the connection back in.
        case loop(SCTPSocketAddress)
    }

    // MARK: - Socket options

    /// `SO_ORIGINAL_DST` (linux/netfilter_ipv4.h), at level `SOL_IP`: the destination before `redirect`/DNAT.
    static let originalDestinationV4: CInt = 80
    /// `IP6T_SO_ORIGINAL_DST` (linux/netfilter_ipv6/ip6_tables.h), at level `SOL_IPV6`: the same for IPv6.
    static let originalDestinationV6: CInt = 80
    /// `IP_TRANSPARENT` (linux/in.h), at level `SOL_IP`: a socket may accept connections to addresses not its own
    /// (TPROXY). Needs CAP_NET_ADMIN.
    package static let ipTransparent: CInt = 19
    /// `IPV6_TRANSPARENT` (linux/in6.h), at level `SOL_IPV6`.
    package static let ipv6Transparent: CInt = 75
    package static let solIP: SocketOptionLevel = 0
    package static let solIPv6: SocketOptionLevel = 41

    // MARK: - Parsing

    /// The address in a `sockaddr_in` or `sockaddr_in6` as the kernel fills it (family in host order, port and
    /// address in network order); an IPv4-mapped IPv6 address becomes the IPv4 one. nil for another family, a
    /// buffer too short for its family, or port 0.
    public static func parse(sockaddr raw: UnsafeRawBufferPointer) -> SCTPSocketAddress? {
        guard raw.count >= 2 else { return nil }
        let family = CInt(raw.loadUnaligned(fromByteOffset: 0, as: UInt16.self))
        let address: SCTPSocketAddress
        switch family {
        case AF_INET:
            guard raw.count >= 8 else { return nil }
            guard let ip = SCTPIPAddress(bytes: raw[4..<8]) else { return nil }
            address = SCTPSocketAddress(ip: ip, port: UInt16(raw[2]) << 8 | UInt16(raw[3]))
        case AF_INET6:
            // sin6_family, sin6_port, sin6_flowinfo (4 bytes), sin6_addr (16 bytes), sin6_scope_id.
            guard raw.count >= 24 else { return nil }
            guard let ip = SCTPIPAddress(bytes: raw[8..<24]) else { return nil }
            address = SCTPSocketAddress(ip: unmapped(ip), port: UInt16(raw[2]) << 8 | UInt16(raw[3]))
        default:
            return nil
        }
        return address.port == 0 ? nil : address
    }

    /// `::ffff:a.b.c.d` as `a.b.c.d` (RFC 4291 §2.5.5.2); any other address as it is.
    static func unmapped(_ ip: SCTPIPAddress) -> SCTPIPAddress {
        if case .v6(0, let lo) = ip, lo >> 32 == 0xffff { return .v4(UInt32(truncatingIfNeeded: lo)) }
        return ip
    }

    /// Where a redirected connection was going: the NAT's original destination when the kernel has one for the
    /// socket (nftables `redirect`; a connection conntrack saw but did not translate gives its own local address
    /// back), else the socket's local address (`tproxy`, or no conntrack at all). `originalDestination` is the raw
    /// `getsockopt` result, nil when the call failed.
    public static func resolve(
        originalDestination: [UInt8]?, localAddress: SCTPSocketAddress?
    ) -> SCTPSocketAddress? {
        if let raw = originalDestination, let parsed = raw.withUnsafeBytes({ parse(sockaddr: $0) }) { return parsed }
        guard let local = localAddress, local.port != 0 else { return nil }
        return SCTPSocketAddress(ip: unmapped(local.ip), port: local.port)
    }

    // MARK: - The loop check

    /// Whether `destination` is one of `listeners` (aggclient's own TCP listeners, as bound): the same address and
    /// port, or the port of a listener bound to a wildcard and an address of this host (`isLocal`, consulted only
    /// when a port matches; loopback always counts as local). A wildcard `::` listener takes IPv4 too.
    public static func isLoop(
        _ destination: SCTPSocketAddress, listeners: [SCTPSocketAddress], isLocal: (SCTPIPAddress) -> Bool
    ) -> Bool {
        let ip = unmapped(destination.ip)
        var local: Bool?
        for listener in listeners where listener.port == destination.port {
            let bound = unmapped(listener.ip)
            if bound == ip { return true }
            guard bound.isWildcard, bound == .anyV6 || ip.isIPv4 == bound.isIPv4 else { continue }
            if local == nil { local = EgressPolicy.isLoopback(ip) || isLocal(ip) }
            if local == true { return true }
        }
        return false
    }

    /// Whether `ip` is an address of one of this host's interfaces now.
    static func isAddressOfThisHost(_ ip: SCTPIPAddress) -> Bool {
        InterfaceAddresses.current().byInterface.values.contains { $0.contains(ip) }
    }

    // MARK: - Reading the socket

    /// Reads the original destination of `channel`, an accepted TCP connection, and refuses one aimed at
    /// `listeners` or at the listener that accepted it. Call on the channel's event loop.
    static func read(
        from channel: any Channel, listeners: [SCTPSocketAddress]
    ) -> EventLoopFuture<SCTPSocketAddress> {
        let eventLoop = channel.eventLoop
        let local = channel.localAddress.flatMap(SCTPSocketAddress.init)
        var own = listeners
        if let listener = channel.parent?.localAddress.flatMap(SCTPSocketAddress.init) { own.append(listener) }
        let decide: @Sendable ([UInt8]?) throws -> SCTPSocketAddress = { [own] raw in
            guard let destination = resolve(originalDestination: raw, localAddress: local) else {
                throw Problem.unreadable
            }
            if isLoop(destination, listeners: own, isLocal: isAddressOfThisHost) { throw Problem.loop(destination) }
            return destination
        }
        guard channel is any SocketOptionProvider, let local else {
            return eventLoop.makeCompletedFuture { try decide(nil) }
        }
        // An IPv4 connection, or one mapped into an IPv6 socket, has an IPv4 NAT record; try IPv6's after it.
        let levels: [(SocketOptionLevel, SocketOptionName)] =
            unmapped(local.ip).isIPv4
            ? [(solIP, originalDestinationV4), (solIPv6, originalDestinationV6)]
            : [(solIPv6, originalDestinationV6)]
        return firstOriginalDestination(channel, levels: levels[...]).flatMapThrowing(decide)
    }

    /// The first of `levels` whose `getsockopt` succeeds, as raw sockaddr bytes; nil when none does.
    private static func firstOriginalDestination(
        _ channel: any Channel, levels: ArraySlice<(SocketOptionLevel, SocketOptionName)>
    ) -> EventLoopFuture<[UInt8]?> {
        guard let (level, name) = levels.first, let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeSucceededFuture(nil)
        }
        let rest = Array(levels.dropFirst())
        let future: EventLoopFuture<sockaddr_storage> = provider.unsafeGetSocketOption(level: level, name: name)
        return future.map { storage -> [UInt8]? in
            withUnsafeBytes(of: storage) { Array($0) }
        }.flatMapError { _ in
            firstOriginalDestination(channel, levels: rest[...])
        }
    }
}
