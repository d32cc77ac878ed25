import NIOCore

/// agg's private ASCONF request "Path Policy": the sender asks the peer to send to it, on the path this ASCONF
/// arrives on, under `policy` (backup or active, priority, rate cap). Like the wildcard Add IP and Set Primary of
/// RFC 5061 it names the path by the packet's source address as the peer sees it, so it works through NATs, and
/// it leaves from the path's own local address. Not an IETF parameter: the type's top bits are 11, so a peer that
/// does not know it skips it (RFC 9260 §3.2.1), and one that does not answer it leaves the request a success
/// (RFC 5061 §5.3), which is harmless: the peer simply keeps sending on every path.
///
///     type 0xC0A6 | length 16 | correlation ID (4) | mode (1: 0 active, 1 backup) | priority (1) | reserved (2)
///     | send-rate limit in bytes per second (4: 0 for none)
struct PathPolicyParameter: Sendable, Hashable {
    static let type: UInt16 = 0xC0A6
    /// The smallest cap a peer may ask for, 1000 bytes per second (8 kbit/s): below it the rate timer would wake
    /// the association for almost nothing.
    static let minimumRate = 1000

    var correlationID: UInt32
    var policy: SCTPPathPolicy

    var parameter: Parameter {
        var value = ByteBuffer()
        value.writeInteger(correlationID)
        value.writeInteger(UInt8(policy.mode == .backup ? 1 : 0))
        value.writeInteger(UInt8(clamping: policy.priority))
        value.writeInteger(UInt16(0))
        value.writeInteger(UInt32(clamping: policy.sendRateLimit ?? 0))
        return .unknown(type: Self.type, value: value)
    }

    /// Reads the value of a parameter of type `type`; nil when it is malformed (wrong length, unknown mode).
    init?(value: ByteBuffer) {
        var value = value
        guard value.readableBytes == 12, let id: UInt32 = value.readInteger(), let mode: UInt8 = value.readInteger(),
            mode <= 1, let priority: UInt8 = value.readInteger(), let _: UInt16 = value.readInteger(),
            let rate: UInt32 = value.readInteger()
        else { return nil }
        correlationID = id
        policy = SCTPPathPolicy(
            mode: mode == 1 ? .backup : .active, priority: Int(priority),
            sendRateLimit: rate == 0 ? nil : max(Int(rate), Self.minimumRate))
    }

    init(correlationID: UInt32, policy: SCTPPathPolicy) {
        self.correlationID = correlationID
        self.policy = policy
    }
}
