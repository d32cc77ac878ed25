import NIOCore

/// INIT (RFC 9260 §3.3.2, type 1): opens an association.
public struct InitChunk: ChunkBody {
    public static let type: UInt8 = 1

    public var initiateTag: VerificationTag
    public var advertisedReceiverWindowCredit: UInt32
    public var outboundStreams: UInt16
    public var inboundStreams: UInt16
    public var initialTSN: TSN
    public var parameters: [Parameter]

    public init(
        initiateTag: VerificationTag, advertisedReceiverWindowCredit: UInt32, outboundStreams: UInt16,
        inboundStreams: UInt16, initialTSN: TSN, parameters: [Parameter] = []
    ) {
        self.initiateTag = initiateTag
        self.advertisedReceiverWindowCredit = advertisedReceiverWindowCredit
        self.outboundStreams = outboundStreams
        self.inboundStreams = inboundStreams
        self.initialTSN = initialTSN
        self.parameters = parameters
    }

    public var flags: UInt8 { 0 }
    public var valueLength: Int { 16 + Parameter.listLength(parameters) }

    public func encodeValue(into buffer: inout ByteBuffer) {
        InitFields.encode(
            initiateTag, advertisedReceiverWindowCredit, outboundStreams, inboundStreams, initialTSN,
            parameters, into: &buffer)
    }

    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        (initiateTag, advertisedReceiverWindowCredit, outboundStreams, inboundStreams, initialTSN, parameters) =
            try InitFields.decode(value, type: Self.type)
    }
}

/// The fixed fields and parameters INIT and INIT ACK share (RFC 9260 §3.3.2, §3.3.3).
enum InitFields {
    static func encode(
        _ tag: VerificationTag, _ rwnd: UInt32, _ outbound: UInt16, _ inbound: UInt16, _ tsn: TSN,
        _ parameters: [Parameter], into buffer: inout ByteBuffer
    ) {
        buffer.writeInteger(tag.rawValue)
        buffer.writeInteger(rwnd)
        buffer.writeInteger(outbound)
        buffer.writeInteger(inbound)
        buffer.writeInteger(tsn.rawValue)
        Parameter.encodeList(parameters, into: &buffer)
    }

    static func decode(_ value: ByteBuffer, type: UInt8) throws(WireError)
        -> (VerificationTag, UInt32, UInt16, UInt16, TSN, [Parameter])
    {
        var reader = WireReader(value, truncated: .malformed(chunk: type, reason: "shorter than 16 fixed bytes"))
        let tag = VerificationTag(try reader.u32())
        let rwnd = try reader.u32()
        let outbound = try reader.u16()
        let inbound = try reader.u16()
        let tsn = TSN(try reader.u32())
        // The MUSTs about zero tags and stream counts (RFC 9260 §3.3.2) are the association's to enforce: it
        // answers them with an ABORT, which needs the decoded chunk.
        return (tag, rwnd, outbound, inbound, tsn, try Parameter.decodeList(reader.rest()))
    }
}
