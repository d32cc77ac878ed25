import NIOCore

/// ERROR (RFC 9260 §3.3.10, type 9): reports error conditions that do not end the association.
public struct ErrorChunk: ChunkBody {
    public static let type: UInt8 = 9

    public var causes: [ErrorCause]

    public init(causes: [ErrorCause]) { self.causes = causes }

    public var flags: UInt8 { 0 }
    public var valueLength: Int { ErrorCause.listLength(causes) }
    public func encodeValue(into buffer: inout ByteBuffer) { ErrorCause.encodeList(causes, into: &buffer) }
    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        causes = try ErrorCause.decodeList(value)
    }
}
