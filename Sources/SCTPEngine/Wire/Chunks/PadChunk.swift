import NIOCore

/// PAD (RFC 4820 §3, type 132): fills a packet, for path MTU probing.
public struct PadChunk: ChunkBody {
    public static let type: UInt8 = 132

    /// Bytes of padding data after the chunk header.
    public var paddingLength: Int

    public init(paddingLength: Int) { self.paddingLength = max(0, paddingLength) }

    public var flags: UInt8 { 0 }
    public var valueLength: Int { paddingLength }
    public func encodeValue(into buffer: inout ByteBuffer) {
        if paddingLength > 0 { buffer.writeRepeatingByte(0, count: paddingLength) }
    }
    /// RFC 4820 §3: "The receiver of the PAD chunk MUST discard this chunk", so its content is not read.
    public init(flags: UInt8, value: ByteBuffer) throws(WireError) { paddingLength = value.readableBytes }
}
