import NIOCore
import SCTPEngine

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Addresses

/// Conversions between the engine's addresses (raw IP bytes and a UDP port) and NIO's `SocketAddress`.
extension SCTPSocketAddress {
    /// The engine's form of a NIO address; nil for Unix domain sockets.
    public init?(_ address: SocketAddress) {
        switch address {
        case .v4(let v4):
            let raw = v4.address
            self.init(
                ip: .v4(UInt32(bigEndian: raw.sin_addr.s_addr)), port: UInt16(bigEndian: raw.sin_port))
        case .v6(let v6):
            var raw = v6.address
            let ip = withUnsafeBytes(of: &raw.sin6_addr) { SCTPIPAddress(bytes: $0) }
            guard let ip else { return nil }
            self.init(ip: ip, port: UInt16(bigEndian: raw.sin6_port))
        case .unixDomainSocket:
            return nil
        }
    }
}

extension SocketAddress {
    /// NIO's form of an engine address. It builds the `sockaddr` directly: no text is parsed.
    public init(_ address: SCTPSocketAddress) {
        switch address.ip {
        case .v4(let ip):
            var raw = sockaddr_in()
            raw.sin_family = sa_family_t(AF_INET)
            raw.sin_port = address.port.bigEndian
            raw.sin_addr.s_addr = ip.bigEndian
            self.init(raw, host: "")
        case .v6:
            var raw = sockaddr_in6()
            raw.sin6_family = sa_family_t(AF_INET6)
            raw.sin6_port = address.port.bigEndian
            let bytes = address.ip.bytes
            withUnsafeMutableBytes(of: &raw.sin6_addr) { target in
                for (i, byte) in bytes.enumerated() { target[i] = byte }
            }
            self.init(raw, host: "")
        }
    }
}

extension SCTPIPAddress {
    /// The engine's form of the destination address of NIO's packet info (IP_PKTINFO / IPV6_PKTINFO).
    init?(_ address: SocketAddress) {
        guard let socketAddress = SCTPSocketAddress(address) else { return nil }
        self = socketAddress.ip
    }
}

// MARK: - Time

extension SCTPTime {
    /// The driver's clock: NIO's monotonic uptime clock, the one `scheduleTask(deadline:)` uses.
    public static func now() -> SCTPTime {
        SCTPTime(nanoseconds: Int64(clamping: NIODeadline.now().uptimeNanoseconds))
    }

    /// The NIO deadline of the same instant.
    var nioDeadline: NIODeadline {
        .uptimeNanoseconds(UInt64(clamping: max(0, nanoseconds)))
    }
}
