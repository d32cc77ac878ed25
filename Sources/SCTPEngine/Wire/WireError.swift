/// Why a packet, chunk, parameter or error cause could not be decoded. Every case names what was wrong and where.
public enum WireError: Error, Equatable, Hashable, Sendable {
    /// Fewer bytes than the 12-byte common header (RFC 9260 §3.1).
    case packetTooShort(Int)
    /// The CRC32c in the common header does not match the one computed over the packet (RFC 9260 §6.8).
    case badChecksum(expected: UInt32, actual: UInt32)
    /// A common header with no chunk after it.
    case noChunks
    /// 1 to 3 bytes left after the last chunk, too few for a chunk header.
    case chunkHeaderTruncated(offset: Int, remaining: Int)
    /// A chunk length below the 4-byte chunk header (RFC 9260 §3.2).
    case chunkLengthTooSmall(type: UInt8, length: Int)
    /// A chunk length that runs past the end of the packet.
    case chunkExceedsPacket(type: UInt8, offset: Int, length: Int, available: Int)
    /// A chunk body that does not follow the chunk's format.
    case malformed(chunk: UInt8, reason: String)
    /// `Chunk(decoding:)` was handed a chunk of another type than the one asked for.
    case unexpectedChunkType(expected: UInt8, actual: UInt8)
    /// A parameter header cut short: fewer than 4 bytes left where a parameter starts.
    case parameterHeaderTruncated(remaining: Int)
    /// A parameter length below the 4-byte parameter header (RFC 9260 §3.2.1).
    case parameterLengthTooSmall(type: UInt16, length: Int)
    /// A parameter length that runs past the end of the enclosing chunk or parameter.
    case parameterExceedsChunk(type: UInt16, length: Int, available: Int)
    /// A parameter value that does not follow the parameter's format.
    case malformedParameter(type: UInt16, reason: String)
    /// An error cause header cut short.
    case errorCauseHeaderTruncated(remaining: Int)
    /// An error cause length below the 4-byte cause header (RFC 9260 §3.3.10).
    case errorCauseLengthTooSmall(code: UInt16, length: Int)
    /// An error cause length that runs past the end of the enclosing chunk or parameter.
    case errorCauseExceedsChunk(code: UInt16, length: Int, available: Int)
    /// An error cause value that does not follow the cause's format.
    case malformedErrorCause(code: UInt16, reason: String)
}
