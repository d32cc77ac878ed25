import NIOCore

/// What a receiver does with a chunk or parameter type it does not know, from the two high bits of the type
/// (RFC 9260 §3.2 for chunks, §3.2.1 for parameters).
public enum UnrecognizedAction: Hashable, Sendable {
    /// 00: stop processing this packet (chunk) or chunk (parameter), report nothing.
    case stop
    /// 01: stop, and report the type in an ERROR chunk (or an Unrecognized Parameter).
    case stopAndReport
    /// 10: skip it and go on.
    case skip
    /// 11: skip it, go on, and report it.
    case skipAndReport

    init(highBits: UInt8) {
        switch highBits & 0b11 {
        case 0b00: self = .stop
        case 0b01: self = .stopAndReport
        case 0b10: self = .skip
        default: self = .skipAndReport
        }
    }

    /// The action for chunk type `type` (RFC 9260 §3.2).
    public init(chunkType type: UInt8) { self.init(highBits: type >> 6) }

    /// The action for parameter type `type` (RFC 9260 §3.2.1).
    public init(parameterType type: UInt16) { self.init(highBits: UInt8(truncatingIfNeeded: type >> 14)) }

    public var shouldReport: Bool { self == .stopAndReport || self == .skipAndReport }
    public var shouldSkip: Bool { self == .skip || self == .skipAndReport }
}

extension Parameter {
    /// The parameter's whole TLV as it came in, for the Unrecognized Parameter reports of RFC 9260 §3.2.1 (an
    /// INIT-ACK's Unrecognized Parameter, an ERROR's Unrecognized Parameters cause).
    static func unrecognizedTLV(type: UInt16, value: ByteBuffer) -> ByteBuffer {
        var tlv = ByteBuffer()
        tlv.reserveCapacity(4 + value.readableBytes)
        tlv.writeInteger(type)
        tlv.writeInteger(UInt16(4 + value.readableBytes))
        tlv.writeImmutableBuffer(value)
        return tlv
    }
}
