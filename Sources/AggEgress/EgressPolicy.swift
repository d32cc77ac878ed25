import AggProtocol
import SCTPEngine

/// Decides which addresses and ports the server may connect to on a client's behalf. By default it refuses every
/// address that is not globally routable unicast — so a client cannot reach the server's loopback, its LAN, or cloud
/// metadata and wire-server addresses —, every address of the server's own interfaces, and the destination ports on
/// the deny list (SMTP's 25 by default).
///
/// How `allowed` prefixes interact with the refusals (a careful VPN server's rules):
/// - A refused range is opened only by an allowed prefix that lies inside every refused range containing the
///   address: `10.20.0.0/16` opens that part of 10.0.0.0/8 and `127.0.0.0/8` opens loopback, but `0.0.0.0/0`,
///   `::/0` or `172.0.0.0/8` open nothing the default refuses.
/// - One of the server's own addresses (loopback aside, which is a range of its own) is opened only by an allowed
///   prefix naming exactly that address (a /32 or /128): allowing the LAN the server sits on does not open the
///   server itself.
/// - Denied ports are not opened by any prefix: the deny list itself is the setting (empty it to allow port 25).
///
/// IPv4-mapped addresses (::ffff:0:0/96) are refused whatever they map to: a client has the IPv4 form. NAT64
/// (64:ff9b::/96) and 6to4 (2002::/16) addresses get the verdict of the IPv4 address they deliver to.
/// IPv4-compatible addresses (::/96, deprecated) are refused.
public struct EgressPolicy: Sendable {
    /// A refused address range and why it is refused.
    public struct Rule: Sendable {
        public var prefix: CIDR
        public var name: String
    }

    /// Prefixes that open what a refused range refuses (see the type's rules).
    public var allowed: [CIDR]
    /// The server's own addresses (every interface's, read at start and on reload); refused unless named exactly.
    public var localAddresses: Set<SCTPIPAddress>
    /// Destination ports refused whatever the address.
    public var deniedPorts: Set<UInt16>

    /// Ports refused unless the operator says otherwise: SMTP (25), which providers expect a server not to relay.
    public static let defaultDeniedPorts: Set<UInt16> = [25]

    public init(
        allowed: [CIDR] = [], localAddresses: Set<SCTPIPAddress> = [], deniedPorts: Set<UInt16> = defaultDeniedPorts
    ) {
        self.allowed = allowed
        self.localAddresses = localAddresses.filter { !Self.isLoopback($0) }
        self.deniedPorts = deniedPorts
    }

    public mutating func allow(_ prefix: CIDR) { allowed.append(prefix) }

    /// The verdict for one address or port.
    public enum Verdict: Equatable, Sendable {
        case allowed
        /// Refused by a defence (the metric's reason); the text names the range or the port.
        case refused(Refusal, String)
    }

    public func check(_ address: SCTPIPAddress) -> Verdict {
        if localAddresses.contains(address) {
            let host = CIDR(address, prefixLength: address.isIPv4 ? 32 : 128)
            if !allowed.contains(where: { $0 == host }) {
                return .refused(.egressOwnAddress, "an address of this server (allow it only as \(host!))")
            }
        }
        let ranges = Self.refusedRanges.filter { $0.prefix.contains(address) }
        if let rule = ranges.first {
            let opened = allowed.contains { prefix in
                prefix.contains(address) && ranges.allSatisfy { $0.prefix.contains(prefix) }
            }
            return opened ? .allowed : .refused(.egressAddress, rule.name)
        }
        if let embedded = Self.embeddedIPv4(address) {
            // The verdict of the IPv4 address the packets would really reach (after translation or tunnelling).
            switch check(embedded.address) {
            case .allowed: return .allowed
            case .refused(let refusal, let why):
                return .refused(refusal, "\(embedded.form) \(embedded.address): \(why)")
            }
        }
        return .allowed
    }

    public func isAllowed(_ address: SCTPIPAddress) -> Bool { check(address) == .allowed }

    /// The verdict for a destination port.
    public func check(port: UInt16) -> Verdict {
        deniedPorts.contains(port) ? .refused(.egressPort, "port \(port) is on the egress deny list") : .allowed
    }

    /// Whether `address` is in 127.0.0.0/8 or is ::1.
    public static func isLoopback(_ address: SCTPIPAddress) -> Bool {
        Self.loopback.contains { $0.contains(address) }
    }

    private static let loopback = [CIDR("127.0.0.0/8")!, CIDR("::1/128")!]

    // MARK: - Ranges

    /// Ranges that are not globally routable unicast (RFC 6890 and the IANA special-purpose registries), plus
    /// addresses that reach the provider's infrastructure.
    public static let refusedRanges: [Rule] = [
        ("0.0.0.0/8", "this network (0/8, includes the unspecified address)"),
        ("127.0.0.0/8", "loopback"),
        ("10.0.0.0/8", "private (RFC 1918)"),
        ("172.16.0.0/12", "private (RFC 1918)"),
        ("192.168.0.0/16", "private (RFC 1918)"),
        ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
        ("169.254.0.0/16", "link-local (includes cloud metadata 169.254.169.254)"),
        ("168.63.129.16/32", "cloud wire server (Azure's host agent and DNS)"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation (TEST-NET-1)"),
        ("198.51.100.0/24", "documentation (TEST-NET-2)"),
        ("203.0.113.0/24", "documentation (TEST-NET-3)"),
        ("198.18.0.0/15", "benchmarking"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved (includes broadcast)"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible (deprecated, RFC 4291 §2.5.5.1)"),
        ("::ffff:0:0/96", "IPv4-mapped (RFC 4291 §2.5.5.2; give the IPv4 address itself)"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("2001::/23", "IETF protocol assignments"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    ].map { Rule(prefix: CIDR($0.0)!, name: $0.1) }

    /// The IPv4 address an IPv6 address delivers to, for the translated and tunnelled forms (IPv4-mapped is a
    /// refused range of its own).
    static func embeddedIPv4(_ address: SCTPIPAddress) -> (form: String, address: SCTPIPAddress)? {
        guard case .v6(let hi, let lo) = address else { return nil }
        let low32 = SCTPIPAddress.v4(UInt32(truncatingIfNeeded: lo))
        if hi == 0x0064_FF9B_0000_0000, lo >> 32 == 0 { return ("NAT64", low32) }
        if hi >> 48 == 0x2002 { return ("6to4", .v4(UInt32(truncatingIfNeeded: hi >> 16))) }
        return nil
    }
}

extension CIDR {
    /// Whether every address of `other` is in this prefix.
    package func contains(_ other: CIDR) -> Bool {
        other.prefixLength >= prefixLength && contains(other.network)
    }
}
