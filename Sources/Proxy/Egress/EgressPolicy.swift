import SCTPEngine

/// Decides which addresses the server may connect to on a client's behalf. By default it refuses every address
/// that is not globally routable unicast — so a client cannot reach the server's own loopback, its LAN, or cloud
/// metadata services — and `allowed` prefixes override the refusal.
///
/// IPv6 forms that deliver to an embedded IPv4 address (IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4
/// 2002::/16) get the embedded address's verdict, so an allowed IPv4 prefix also allows them. IPv4-compatible
/// addresses (::/96, deprecated) are always refused.
public struct EgressPolicy: Sendable {
    /// A refused address range and why it is refused.
    public struct Rule: Sendable {
        public var prefix: CIDR
        public var name: String
    }

    /// Prefixes that are allowed even though a rule refuses them.
    public var allowed: [CIDR]

    public init(allowed: [CIDR] = []) {
        self.allowed = allowed
    }

    public mutating func allow(_ prefix: CIDR) { allowed.append(prefix) }

    /// The verdict for one address.
    public enum Verdict: Equatable, Sendable {
        case allowed
        /// Refused; the text names the range.
        case refused(String)
    }

    public func check(_ address: SCTPIPAddress) -> Verdict {
        if allowed.contains(where: { $0.contains(address) }) { return .allowed }
        if let embedded = Self.embeddedIPv4(address) {
            // The verdict of the IPv4 address the packets would really reach (after translation or tunnelling).
            switch check(embedded.address) {
            case .allowed: return .allowed
            case .refused(let why): return .refused("\(embedded.form) \(embedded.address): \(why)")
            }
        }
        if let rule = Self.refusedRanges.first(where: { $0.prefix.contains(address) }) { return .refused(rule.name) }
        return .allowed
    }

    public func isAllowed(_ address: SCTPIPAddress) -> Bool { check(address) == .allowed }

    // MARK: - Ranges

    /// Ranges that are not globally routable unicast (RFC 6890 and the IANA special-purpose registries).
    public static let refusedRanges: [Rule] = [
        ("0.0.0.0/8", "this network (0/8, includes the unspecified address)"),
        ("127.0.0.0/8", "loopback"),
        ("10.0.0.0/8", "private (RFC 1918)"),
        ("172.16.0.0/12", "private (RFC 1918)"),
        ("192.168.0.0/16", "private (RFC 1918)"),
        ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
        ("169.254.0.0/16", "link-local"),
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

    /// The IPv4 address an IPv6 address carries, for the forms that deliver to it.
    static func embeddedIPv4(_ address: SCTPIPAddress) -> (form: String, address: SCTPIPAddress)? {
        guard case .v6(let hi, let lo) = address else { return nil }
        let low32 = SCTPIPAddress.v4(UInt32(truncatingIfNeeded: lo))
        if hi == 0, lo >> 32 == 0xFFFF { return ("IPv4-mapped", low32) }
        if hi == 0x0064_FF9B_0000_0000, lo >> 32 == 0 { return ("NAT64", low32) }
        if hi >> 48 == 0x2002 { return ("6to4", .v4(UInt32(truncatingIfNeeded: hi >> 16))) }
        return nil
    }
}
