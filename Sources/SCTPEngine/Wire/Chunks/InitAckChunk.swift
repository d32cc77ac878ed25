import NIOCore

/// INIT ACK (RFC 9260 §3.3.3, type 2): answers an INIT, carrying the state cookie.
public struct InitAckChunk: ChunkBody {
    public static let type: UInt8 = 2

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
