import SCTPEngine

/// An IPv4 or IPv6 prefix such as "10.0.0.0/8" or "fd00::/8".
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    /// The network address with every host bit cleared.
    public let network: SCTPIPAddress
    public let prefixLength: Int

    /// Builds a prefix, clearing host bits; nil when the length is out of range for the family.
    public init?(_ address: SCTPIPAddress, prefixLength: Int) {
        let bits = address.isIPv4 ? 32 : 128
        guard prefixLength >= 0, prefixLength <= bits else { return nil }
        self.prefixLength = prefixLength
        network = Self.masked(address, prefixLength)
    }

    /// Parses "address/length"; a bare address is a host prefix (/32 or /128).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let address = SCTPIPAddress(parts[0]) else { return nil }
        var length = address.isIPv4 ? 32 : 128
        if parts.count == 2 {
            guard (1...3).contains(parts[1].count), parts[1].allSatisfy(\.isWholeNumber), parts[1].allSatisfy(\.isASCII),
                let parsed = Int(parts[1])
            else { return nil }
            length = parsed
        }
        self.init(address, prefixLength: length)
    }

    public func contains(_ address: SCTPIPAddress) -> Bool {
        guard address.isIPv4 == network.isIPv4 else { return false }
        return Self.masked(address, prefixLength) == network
    }

    public var description: String { "\(network)/\(prefixLength)" }

    private static func masked(_ address: SCTPIPAddress, _ length: Int) -> SCTPIPAddress {
        switch address {
        case .v4(let value):
            return .v4(length == 0 ? 0 : value & ~UInt32(0) << UInt32(32 - length))
        case .v6(let hi, let lo):
            let hiMask: UInt64 = length >= 64 ? .max : (length == 0 ? 0 : ~UInt64(0) << UInt64(64 - length))
            let loMask: UInt64 = length <= 64 ? 0 : (length == 128 ? .max : ~UInt64(0) << UInt64(128 - length))
            return .v6(hi & hiMask, lo & loMask)
        }
    }
}
