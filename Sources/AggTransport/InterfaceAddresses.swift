import SCTPEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The IP addresses of the host's network interfaces at one moment, read with getifaddrs(3): what `--path IFACE`
/// resolves to, and what the client compares from one second to the next to follow an address that changes.
public struct InterfaceAddresses: Sendable, Equatable {
    /// Each interface that has an address, with its addresses in the order the kernel lists them.
    public var byInterface: [String: [SCTPIPAddress]]

    public init(byInterface: [String: [SCTPIPAddress]] = [:]) {
        self.byInterface = byInterface
    }

    /// The addresses now; empty if getifaddrs fails.
    public static func current() -> InterfaceAddresses {
        var result = InterfaceAddresses()
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return result }
        defer { freeifaddrs(list) }
        var cursor = list
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr else { continue }
            let ip: SCTPIPAddress?
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                let raw = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                ip = .v4(UInt32(bigEndian: raw))
            case AF_INET6:
                ip = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                    var raw = pointer.pointee.sin6_addr
                    return withUnsafeBytes(of: &raw) { SCTPIPAddress(bytes: $0) }
                }
            default:
                ip = nil
            }
            guard let ip else { continue }
            result.byInterface[String(cString: entry.pointee.ifa_name), default: []].append(ip)
        }
        return result
    }

    /// The address a path on `interface` sends from: its first IPv4 address, else its first global IPv6 address
    /// (2000::/3: link-local, unique-local and other scopes cannot reach a server on the internet); nil if it
    /// has neither, or does not exist.
    public func pathAddress(of interface: String) -> SCTPIPAddress? {
        let addresses = byInterface[interface] ?? []
        return addresses.first(where: \.isIPv4) ?? addresses.first(where: Self.isGlobalIPv6)
    }

    static func isGlobalIPv6(_ ip: SCTPIPAddress) -> Bool {
        guard !ip.isIPv4 else { return false }
        return ip.bytes[0] & 0xE0 == 0x20
    }

    /// Whether `name` is a possible interface name (IFNAMSIZ is 16 with the terminating NUL, no '/' or space).
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return !bytes.isEmpty && bytes.count < 16 && !bytes.contains(where: { $0 == 0x2F || $0 <= 0x20 })
    }
}
