import NIOCore

/// The 12-byte SCTP common header (RFC 9260 §3.1) that opens every packet.
public struct CommonHeader: Hashable, Sendable {
    public static let size = 12

    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var verificationTag: VerificationTag
    /// The CRC32c as `CRC32c` computes it. The wire stores it least significant byte first (RFC 9260 Appendix A),
    /// so this is the field read as a little-endian integer; a packet verifies when it equals
    /// `CRC32c.packetChecksum(packet)`.
    public var checksum: UInt32

    public init(sourcePort: UInt16, destinationPort: UInt16, verificationTag: VerificationTag, checksum: UInt32 = 0) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.verificationTag = verificationTag
        self.checksum = checksum
    }

    /// Reads the header at the reader index of `packet`.
    public init(at packet: ByteBuffer) throws(WireError) {
        guard
            let header = packet.readFields(
                length: Self.size,
                { fields in
                    CommonHeader(
                        sourcePort: fields.get(), destinationPort: fields.get(),
                        verificationTag: VerificationTag(fields.get()),
                        checksum: fields.getLittleEndian())
                })
        else { throw .packetTooShort(packet.readableBytes) }
        self = header
    }

    /// Writes the 12 header bytes, checksum included as it stands.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeFields(length: 12) { fields in
            fields.put(sourcePort)
            fields.put(destinationPort)
            fields.put(verificationTag.rawValue)
            // Little-endian (RFC 9260 appendix B): the byte-swapped value in network order.
            fields.put(checksum.byteSwapped)
        }
    }
}
