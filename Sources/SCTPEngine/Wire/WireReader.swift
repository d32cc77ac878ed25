import NIOCore

/// Bounds-checked reads over a chunk, parameter or error cause value: every read that would run past the bytes
/// present throws the error the value was opened with, so decoders never trap and never trust a length.
struct WireReader {
    /// What a read past the end reports: an error given up front, or a chunk value's, whose text is only built when
    /// it is thrown (building it for every chunk decoded cost two allocations per DATA chunk).
    enum Truncation {
        case error(WireError)
        case chunkValue(type: UInt8, length: Int)
    }

    var buffer: ByteBuffer
    let truncation: Truncation

    init(_ buffer: ByteBuffer, truncated: WireError) {
        self.buffer = buffer
        truncation = .error(truncated)
    }

    /// A reader over a chunk's value of type `chunkType`.
    init(chunkValue buffer: ByteBuffer, chunkType: UInt8) {
        self.buffer = buffer
        truncation = .chunkValue(type: chunkType, length: buffer.readableBytes)
    }

    var truncated: WireError {
        switch truncation {
        case .error(let error): error
        case .chunkValue(let type, let length): .malformed(chunk: type, reason: "value of \(length) bytes is too short")
        }
    }

    var remaining: Int { buffer.readableBytes }

    mutating func u8() throws(WireError) -> UInt8 {
        guard let value = buffer.readInteger(as: UInt8.self) else { throw truncated }
        return value
    }

    mutating func u16() throws(WireError) -> UInt16 {
        guard let value = buffer.readInteger(as: UInt16.self) else { throw truncated }
        return value
    }

    mutating func u32() throws(WireError) -> UInt32 {
        guard let value = buffer.readInteger(as: UInt32.self) else { throw truncated }
        return value
    }

    mutating func slice(_ length: Int) throws(WireError) -> ByteBuffer {
        guard length >= 0, let value = buffer.readSlice(length: length) else { throw truncated }
        return value
    }

    /// Everything not read yet.
    mutating func rest() -> ByteBuffer {
        buffer.readSlice(length: buffer.readableBytes) ?? ByteBuffer()
    }

    /// Throws `error` unless every byte has been read.
    func expectEnd(_ error: WireError) throws(WireError) {
        guard buffer.readableBytes == 0 else { throw error }
    }
}

/// The length rounded up to a multiple of 4: chunks, parameters and error causes are padded to 4 bytes
/// (RFC 9260 §3.2, §3.2.1).
@inlinable func paddedLength(_ length: Int) -> Int { (length + 3) & ~3 }

extension ByteBuffer {
    /// Writes the zero bytes that bring an item of `length` bytes to a 4-byte boundary (RFC 9260 §3.2: "The sender
    /// MUST pad the chunk with all zero bytes").
    mutating func writePadding(after length: Int) {
        let padding = paddedLength(length) - length
        if padding > 0 { writeRepeatingByte(0, count: padding) }
    }
}

/// The two families of type-length-value items inside chunks.
enum TLVKind {
    case parameter
    case errorCause
}

/// Splits a value into type-length-value items (parameters or error causes), checking every length against the
/// bytes present. The padding after the last item may be missing: RFC 9260 §3.2 says the chunk length "does not
/// count any chunk padding. However, it does include any padding of variable-length parameters other than the last
/// parameter in the chunk."
func splitTLVs(_ value: ByteBuffer, kind: TLVKind) throws(WireError) -> [(type: UInt16, value: ByteBuffer)] {
    var buffer = value
    var items: [(type: UInt16, value: ByteBuffer)] = []
    while buffer.readableBytes > 0 {
        let available = buffer.readableBytes
        guard available >= 4, let type = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self),
            let length16 = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt16.self)
        else {
            switch kind {
            case .parameter: throw .parameterHeaderTruncated(remaining: available)
            case .errorCause: throw .errorCauseHeaderTruncated(remaining: available)
            }
        }
        let length = Int(length16)
        guard length >= 4 else {
            switch kind {
            case .parameter: throw .parameterLengthTooSmall(type: type, length: length)
            case .errorCause: throw .errorCauseLengthTooSmall(code: type, length: length)
            }
        }
        guard length <= available else {
            switch kind {
            case .parameter: throw .parameterExceedsChunk(type: type, length: length, available: available)
            case .errorCause: throw .errorCauseExceedsChunk(code: type, length: length, available: available)
            }
        }
        buffer.moveReaderIndex(forwardBy: 4)
        guard let item = buffer.readSlice(length: length - 4) else { break }
        items.append((type, item))
        // Skip the padding; after the last item it may be absent or cut short.
        buffer.moveReaderIndex(forwardBy: min(paddedLength(length) - length, buffer.readableBytes))
    }
    return items
}
