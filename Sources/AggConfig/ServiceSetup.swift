import AggEgress
import AggProtocol
import AggTransport
import Logging
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

/// What turning settings into the services' configurations needs from this host: names resolved, interfaces read,
/// key files made. The configurations themselves are built in Service/ServiceSetup+Configuration.swift.
public enum ServiceSetup {
    /// An IP literal, or a host name resolved to its first IPv4 (else IPv6) address.
    public static func resolveHost(_ host: String) throws(ConfigError) -> SCTPIPAddress {
        var trimmed = Substring(host)
        if trimmed.hasPrefix("["), trimmed.hasSuffix("]") { trimmed = trimmed.dropFirst().dropLast() }
        if let ip = SCTPIPAddress(trimmed) { return ip }
        for family in [DNSLookup.Family.v4, .v6] {
            if let first = try? DNSLookup.system.lookup(host, family).first { return first }
        }
        throw ConfigError(path: host, "cannot resolve host name")
    }

    /// A `--path` value: an IP literal, or an interface name whose first IPv4 address (else its first global
    /// IPv6 address) is used; nil for an interface of this host that has no such address yet (an LTE modem still
    /// dialling at boot): the path joins when it gets one.
    ///
    /// A path named by an interface is also bound to it (SO_BINDTODEVICE), so it leaves by that interface
    /// whatever the routing table says, and follows the interface's address while the client runs.
    public static func resolvePath(_ text: String) throws(ConfigError) -> SCTPIPAddress? {
        if let ip = SCTPIPAddress(text) { return ip }
        if let ip = InterfaceAddresses.current().pathAddress(of: text) { return ip }
        if InterfaceAddresses.isValidName(text), if_nametoindex(text) != 0 { return nil }
        throw ConfigError(path: text, "neither an IP address nor an interface of this host")
    }

    /// Every address of this host's interfaces but loopback (a refused range of its own): the addresses egress
    /// refuses as the server's own (`EgressPolicy.localAddresses`), read at start and on reload.
    public static func ownAddresses() -> Set<SCTPIPAddress> {
        Set(InterfaceAddresses.current().byInterface.values.joined()).filter { !EgressPolicy.isLoopback($0) }
    }

    /// A fresh random 256-bit key as a key file line, `NAME HEX`.
    public static func makeKeyLine(name: String) -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<PreSharedKey.keyLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let hex = bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        return "\(name) \(hex)\n"
    }

    /// Writes `text` to a new file readable by the owner only (mode 600), as key files must be.
    public static func writePrivateFile(_ text: String, path: String) throws(ConfigError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw ConfigError(path: path, "cannot create: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            throw ConfigError(path: path, "cannot write: \(String(cString: strerror(errno)))")
        }
    }
}
