import NIOCore

/// Stores fixed-size big-endian fields into bytes reserved at once (`ByteBuffer.writeFields`): a header of several
/// fields then costs one capacity and uniqueness check instead of one per field, as `writeInteger` pays.
struct FieldWriter {
    private let bytes: UnsafeMutableRawBufferPointer
    private(set) var offset = 0

    fileprivate init(_ bytes: UnsafeMutableRawBufferPointer) {
        self.bytes = bytes
    }

    /// Stores `value` in network byte order after the fields stored so far.
    @inline(__always)
    mutating func put<T: FixedWidthInteger>(_ value: T) {
        bytes.storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
        offset &+= MemoryLayout<T>.size
    }
}

extension ByteBuffer {
    /// Appends exactly `length` bytes, which `store` fills with fields; storing fewer or more is a programming error
    /// and traps.
    @inline(__always)
    mutating func writeFields(length: Int, _ store: (inout FieldWriter) -> Void) {
        writeWithUnsafeMutableBytes(minimumWritableBytes: length) { bytes in
            var writer = FieldWriter(UnsafeMutableRawBufferPointer(rebasing: bytes[0..<length]))
            store(&writer)
            precondition(writer.offset == length, "fields of \(writer.offset) bytes written into \(length)")
            return length
        }
    }
}
