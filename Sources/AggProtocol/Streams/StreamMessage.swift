import NIOCore
import SCTPEngine

/// One message of a proxied connection's stream (streams 1 and up): its codec as a pure value type.
///
/// Wire forms (network byte order) are specified in docs/PROTOCOL.md; the kind travels in the PPID.
public enum StreamMessage: Equatable, Sendable {
    /// Client → server: connect to `target`; the server may send up to `initialCredit` DATA bytes before a
    /// WINDOW-UPDATE. The client may send DATA right after OPEN, within the HELLO's stream credit.
    case open(StreamTarget, initialCredit: UInt32)
    /// Server → client: the outcome of OPEN, always the server's first message for a connection.
    case openResult(OpenResultCode, text: String?)
    /// Bytes of the TCP connection, 1 ... `AggLimits.maxDataPayload`.
    case data(ByteBuffer)
    /// The sender's TCP side reached end of input; the other direction may go on.
    case fin
    /// Abortive close of both directions.
    case reset(ResetReason, text: String?)
    /// The receiver of DATA returns `credit` bytes of window to the sender.
    case windowUpdate(credit: UInt32)
    /// Server → client: the server has freed the stream after both FINs; nothing more follows for this
    /// connection and the client may reuse the stream id.
    case closed

    public var kind: AggMessageKind {
        switch self {
        case .open: return .open
        case .openResult: return .openResult
        case .data: return .data
        case .fin: return .fin
        case .reset: return .reset
        case .windowUpdate: return .windowUpdate
        case .closed: return .closed
        }
    }

    public var ppid: PPID { kind.ppid }

    // MARK: - Encoding

    /// The SCTP payload. DATA returns its buffer as is, without copying.
    public func encode(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        if case .data(let bytes) = self { return bytes }
        var buffer = allocator.buffer(capacity: 16)
        encode(into: &buffer)
        return buffer
    }

    /// Appends the payload to `buffer`.
    public func encode(into buffer: inout ByteBuffer) {
        switch self {
        case .open(let target, let credit):
            target.encode(into: &buffer)
            buffer.writeInteger(min(credit, AggLimits.maxCredit))
        case .openResult(let code, let text):
            buffer.writeInteger(code.rawValue)
            Self.writeText(text, into: &buffer)
        case .data(var bytes):
            buffer.writeBuffer(&bytes)
        case .fin, .closed:
            buffer.writeInteger(UInt8(0))  // SCTP carries no empty messages: one reserved byte.
        case .reset(let reason, let text):
            buffer.writeInteger(reason.rawValue)
            Self.writeText(text, into: &buffer)
        case .windowUpdate(let credit):
            buffer.writeInteger(credit)
        }
    }

    /// Writes text cut to `AggLimits.maxTextLength` bytes at a character boundary.
    static func writeText(_ text: String?, into buffer: inout ByteBuffer) {
        guard let text else { return }
        var length = 0
        for scalar in text.unicodeScalars {
            let size = String(scalar).utf8.count
            guard length + size <= AggLimits.maxTextLength else { break }
            length += size
        }
        buffer.writeBytes(text.utf8.prefix(length))
    }

    // MARK: - Decoding

    /// Decodes the payload of a stream message of the kind `ppid` names, received on `stream`.
    public static func decode(
        ppid: PPID, payload: ByteBuffer, stream: StreamID = StreamID(1)
    ) throws(StreamDecodingError) -> StreamMessage {
        guard let kind = AggMessageKind(ppid: ppid) else { throw .unknownPPID(ppid.rawValue) }
        guard !kind.isControl, stream.rawValue != 0 else { throw .wrongStream(kind, stream) }
        return try decode(kind: kind, payload: payload)
    }

    static func decode(kind: AggMessageKind, payload: ByteBuffer) throws(StreamDecodingError) -> StreamMessage {
        var buffer = payload
        switch kind {
        case .open:
            let target = try decodeTarget(&buffer)
            let credit = try buffer.readAgg(UInt32.self, kind)
            guard credit <= AggLimits.maxCredit else { throw .creditTooLarge(credit) }
            try buffer.requireEnd(kind)
            return .open(target, initialCredit: credit)
        case .openResult:
            let raw = try buffer.readAgg(UInt8.self, kind)
            guard let code = OpenResultCode(rawValue: raw) else { throw .unknownResultCode(raw) }
            return .openResult(code, text: try buffer.readAggText(kind))
        case .data:
            guard buffer.readableBytes > 0 else { throw .truncated(kind, needed: 1, available: 0) }
            guard buffer.readableBytes <= AggLimits.maxDataPayload else { throw .dataTooLarge(buffer.readableBytes) }
            return .data(buffer)
        case .fin, .closed:
            let reserved = try buffer.readAgg(UInt8.self, kind)
            guard reserved == 0 else { throw .nonZeroReserved(kind, reserved) }
            try buffer.requireEnd(kind)
            return kind == .fin ? .fin : .closed
        case .reset:
            let raw = try buffer.readAgg(UInt8.self, kind)
            guard let reason = ResetReason(rawValue: raw) else { throw .unknownResetReason(raw) }
            return .reset(reason, text: try buffer.readAggText(kind))
        case .windowUpdate:
            let credit = try buffer.readAgg(UInt32.self, kind)
            guard credit > 0 else { throw .zeroWindowUpdate }
            guard credit <= AggLimits.maxCredit else { throw .creditTooLarge(credit) }
            try buffer.requireEnd(kind)
            return .windowUpdate(credit: credit)
        case .hello, .auth, .authOK, .ping, .pong:
            throw .wrongStream(kind, StreamID(1))  // Unreachable through `decode(ppid:payload:stream:)`.
        }
    }

    private static func decodeTarget(_ buffer: inout ByteBuffer) throws(StreamDecodingError) -> StreamTarget {
        let type = try buffer.readAgg(UInt8.self, .open)
        let host: StreamTarget.Host
        switch type {
        case 1:
            host = .ip(.v4(try buffer.readAgg(UInt32.self, .open)))
        case 4:
            let bytes = try buffer.readAggBytes(16, .open)
            host = .ip(SCTPIPAddress(bytes: bytes) ?? .anyV6)
        case 3:
            let length = Int(try buffer.readAgg(UInt8.self, .open))
            guard length > 0 else { throw .emptyDomain }
            let bytes = try buffer.readAggBytes(length, .open)
            guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { throw .invalidDomain }
            host = .domain(String(decoding: bytes, as: UTF8.self))
        default:
            throw .unknownAddressType(type)
        }
        let port = try buffer.readAgg(UInt16.self, .open)
        guard port != 0 else { throw .zeroPort }
        return StreamTarget(host: host, port: port)
    }
}
