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

    /// Appends `length` bytes of fields, then `payload`'s readable bytes, then zeros up to a multiple of 4 bytes
    /// (RFC 9260 §3.2), all in one reservation: a chunk carrying user data at the cost of one capacity and
    /// uniqueness check instead of one per part.
    @inline(__always)
    mutating func writeFields(length: Int, _ store: (inout FieldWriter) -> Void, payload: ByteBuffer) {
        let payloadLength = payload.readableBytes
        let end = length + payloadLength
        let total = paddedLength(end)
        writeWithUnsafeMutableBytes(minimumWritableBytes: total) { bytes in
            var writer = FieldWriter(UnsafeMutableRawBufferPointer(rebasing: bytes[0..<length]))
            store(&writer)
            precondition(writer.offset == length, "fields of \(writer.offset) bytes written into \(length)")
            payload.withUnsafeReadableBytes { source in
                if let from = source.baseAddress {
                    (bytes.baseAddress! + length).copyMemory(from: from, byteCount: end - length)
                }
            }
            for i in end..<total { bytes[i] = 0 }
            return total
        }
    }

    /// Appends `other`'s readable bytes without taking a reference to its storage. `writeImmutableBuffer` copies the
    /// buffer value to move its reader index, a retain and a release per call, which on the datapath is per chunk.
    @inline(__always)
    mutating func writeBytes(of other: ByteBuffer) {
        other.withUnsafeReadableBytes { writeBytes($0) }
    }
}

/// Loads fixed-size big-endian fields from bytes whose length was checked once (`ByteBuffer.readFields`): a header
/// of several fields then costs one bounds check instead of one per field, as `getInteger` pays.
struct FieldReader {
    private let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    fileprivate init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// Loads a value in network byte order after the fields loaded so far.
    @inline(__always)
    mutating func get<T: FixedWidthInteger>(_: T.Type = T.self) -> T {
        let value = T(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset &+= MemoryLayout<T>.size
        return value
    }

    /// Loads a value stored least significant byte first (the CRC32c field) after the fields loaded so far.
    @inline(__always)
    mutating func getLittleEndian<T: FixedWidthInteger>(_: T.Type = T.self) -> T {
        let value = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset &+= MemoryLayout<T>.size
        return value
    }
}

extension ByteBuffer {
    /// Reads fields from the `length` readable bytes that start `skipping` bytes after the reader index, leaving the
    /// reader index where it is; nil, without calling `load`, when fewer bytes are readable. Loading past `length`
    /// is a programming error and traps.
    @inline(__always)
    func readFields<Result>(skipping: Int = 0, length: Int, _ load: (inout FieldReader) -> Result) -> Result? {
        guard skipping >= 0, length >= 0, readableBytes - skipping >= length else { return nil }
        return withUnsafeReadableBytes { bytes in
            var reader = FieldReader(UnsafeRawBufferPointer(rebasing: bytes[skipping..<(skipping + length)]))
            let result = load(&reader)
            precondition(reader.offset <= length, "fields of \(reader.offset) bytes read from \(length)")
            return result
        }
    }
}
