import CSCTPChecksum
import NIOCore

/// The CRC32c (Castagnoli) checksum of SCTP packets (RFC 9260 §6.8 and Appendix A), computed by the C target.
///
/// The value returned is the CRC as RFC 9260 Appendix A computes it (initial 0xFFFFFFFF, reflected, final
/// complement). On the wire it is stored least significant byte first, which is what `CommonHeader` reads and writes;
/// for "123456789" the value is 0xE3069283 and the bytes on the wire are 83 92 06 E3.
public enum CRC32c {
    /// The running value before any byte.
    public static let initial: UInt32 = 0xFFFF_FFFF

    /// Continues a running CRC over `bytes`; finish with `~crc`.
    @inlinable
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return csctp_crc32c_update(crc, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    /// The CRC32c of `bytes`.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        ~update(initial, bytes)
    }

    /// The CRC32c of a byte array.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// The CRC32c of the readable bytes of `buffer`.
    public static func checksum(_ buffer: ByteBuffer) -> UInt32 {
        buffer.withUnsafeReadableBytes { checksum($0) }
    }

    /// The CRC32c of `length` bytes of `buffer` from `offset` (relative to the reader index); nil when the range
    /// is not readable.
    public static func checksum(_ buffer: ByteBuffer, offset: Int, length: Int) -> UInt32? {
        guard offset >= 0, length >= 0, offset <= buffer.readableBytes, length <= buffer.readableBytes - offset else {
            return nil
        }
        return buffer.withUnsafeReadableBytes {
            checksum(UnsafeRawBufferPointer(rebasing: $0[offset..<offset + length]))
        }
    }

    /// The CRC32c of an SCTP packet as RFC 9260 §6.8 defines it: over the whole packet with the checksum field
    /// (bytes 8 to 11) taken as zero, without modifying the buffer. Packets shorter than the header get the CRC of
    /// their bytes.
    public static func packetChecksum(_ packet: ByteBuffer) -> UInt32 {
        packet.withUnsafeReadableBytes { bytes in
            guard bytes.count >= CommonHeader.size else { return checksum(bytes) }
            var crc = update(initial, UnsafeRawBufferPointer(rebasing: bytes[0..<8]))
            crc = withUnsafeBytes(of: UInt32(0)) { update(crc, $0) }
            crc = update(crc, UnsafeRawBufferPointer(rebasing: bytes[12...]))
            return ~crc
        }
    }
}
