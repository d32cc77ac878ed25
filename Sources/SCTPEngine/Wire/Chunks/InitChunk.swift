import NIOCore

/// INIT (RFC 9260 §3.3.2, type 1): opens an association. Its layout is INIT ACK's, so both are one generic struct.
public typealias InitChunk = InitLayoutChunk<InitKind>

/// Makes an `InitLayoutChunk` an INIT.
public enum InitKind: InitLayoutKind {
    public static let type: UInt8 = 1
}

/// Which of INIT and INIT ACK an `InitLayoutChunk` is: its chunk type.
public protocol InitLayoutKind: Sendable {
    static var type: UInt8 { get }
}

/// The fixed fields and parameters INIT and INIT ACK share (RFC 9260 §3.3.2, §3.3.3); `Kind` sets the chunk type,
/// so the two stay distinct types (`InitChunk`, `InitAckChunk`) with one layout.
public struct InitLayoutChunk<Kind: InitLayoutKind>: ChunkBody {
    public static var type: UInt8 { Kind.type }

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
        buffer.writeInteger(initiateTag.rawValue)
        buffer.writeInteger(advertisedReceiverWindowCredit)
        buffer.writeInteger(outboundStreams)
        buffer.writeInteger(inboundStreams)
        buffer.writeInteger(initialTSN.rawValue)
        Parameter.encodeList(parameters, into: &buffer)
    }

    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        var reader = WireReader(value, truncated: .malformed(chunk: Self.type, reason: "shorter than 16 fixed bytes"))
        initiateTag = VerificationTag(try reader.u32())
        advertisedReceiverWindowCredit = try reader.u32()
        outboundStreams = try reader.u16()
        inboundStreams = try reader.u16()
        initialTSN = TSN(try reader.u32())
        // The MUSTs about zero tags and stream counts (RFC 9260 §3.3.2) are the association's to enforce: it
        // answers them with an ABORT, which needs the decoded chunk.
        parameters = try Parameter.decodeList(reader.rest())
    }
}
