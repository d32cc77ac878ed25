import SCTPEngine

/// Why an incoming agg message was rejected. Decoding never traps: every malformed input ends in one of these.
public enum StreamDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The PPID is outside agg's range or names no known kind.
    case unknownPPID(UInt32)
    /// The payload ended before a field of `kind`.
    case truncated(AggMessageKind, needed: Int, available: Int)
    /// Bytes were left after the last field of `kind`.
    case trailingBytes(AggMessageKind, count: Int)
    /// A DATA message larger than `AggLimits.maxDataPayload`.
    case dataTooLarge(Int)
    /// An OPEN address type other than 1 (IPv4), 3 (domain) or 4 (IPv6).
    case unknownAddressType(UInt8)
    /// A domain name of length zero.
    case emptyDomain
    /// A domain name with a byte outside printable ASCII (a NUL would truncate it for getaddrinfo).
    case invalidDomain
    /// An OPEN for port 0.
    case zeroPort
    /// A credit or window increment above `AggLimits.maxCredit`.
    case creditTooLarge(UInt32)
    /// A WINDOW-UPDATE of zero bytes.
    case zeroWindowUpdate
    case unknownResultCode(UInt8)
    case unknownResetReason(UInt8)
    /// A text field longer than `AggLimits.maxTextLength`.
    case textTooLong(Int)
    /// A text field that is not valid UTF-8.
    case invalidUTF8
    /// A reserved byte that must be zero was not.
    case nonZeroReserved(AggMessageKind, UInt8)
    case unsupportedVersion(UInt8)
    /// A key name that is empty, too long, or holds a byte other than letters, digits, '.', '_' and '-'.
    case invalidKeyName
    /// A control message on a stream other than 0, or a stream message on stream 0.
    case wrongStream(AggMessageKind, StreamID)
    /// An unordered message of a kind that must be ordered (only PING and PONG may be unordered).
    case unorderedNotAllowed(AggMessageKind)

    public var description: String {
        switch self {
        case .unknownPPID(let ppid): return "unknown PPID 0x\(String(ppid, radix: 16))"
        case .truncated(let kind, let needed, let available):
            return "\(kind) truncated: needed \(needed) bytes, \(available) left"
        case .trailingBytes(let kind, let count): return "\(kind) has \(count) trailing bytes"
        case .dataTooLarge(let size): return "DATA of \(size) bytes exceeds \(AggLimits.maxDataPayload)"
        case .unknownAddressType(let type): return "unknown address type \(type)"
        case .emptyDomain: return "empty domain name"
        case .invalidDomain: return "domain name holds a byte outside printable ASCII"
        case .zeroPort: return "port 0"
        case .creditTooLarge(let credit): return "credit \(credit) exceeds \(AggLimits.maxCredit)"
        case .zeroWindowUpdate: return "WINDOW-UPDATE of zero bytes"
        case .unknownResultCode(let code): return "unknown OPEN-RESULT code \(code)"
        case .unknownResetReason(let reason): return "unknown RESET reason \(reason)"
        case .textTooLong(let length): return "text of \(length) bytes exceeds \(AggLimits.maxTextLength)"
        case .invalidUTF8: return "text is not valid UTF-8"
        case .nonZeroReserved(let kind, let value): return "\(kind) reserved byte is \(value), not 0"
        case .unsupportedVersion(let version): return "unsupported protocol version \(version)"
        case .invalidKeyName: return "invalid key name"
        case .wrongStream(let kind, let stream): return "\(kind) on stream \(stream)"
        case .unorderedNotAllowed(let kind): return "\(kind) sent unordered"
        }
    }
}

// MARK: - Reading helpers

/// Field readers that throw `StreamDecodingError` instead of returning nil.
extension ByteBuffer {
    mutating func readAgg<T: FixedWidthInteger>(_: T.Type, _ kind: AggMessageKind) throws(StreamDecodingError) -> T {
        guard let value = readInteger(as: T.self) else {
            throw .truncated(kind, needed: MemoryLayout<T>.size, available: readableBytes)
        }
        return value
    }

    mutating func readAggBytes(_ count: Int, _ kind: AggMessageKind) throws(StreamDecodingError) -> [UInt8] {
        guard let bytes = readBytes(length: count) else {
            throw .truncated(kind, needed: count, available: readableBytes)
        }
        return bytes
    }

    /// Reads the rest of the buffer as bounded UTF-8 text; nil when empty.
    mutating func readAggText(_ kind: AggMessageKind) throws(StreamDecodingError) -> String? {
        let length = readableBytes
        guard length > 0 else { return nil }
        guard length <= AggLimits.maxTextLength else { throw .textTooLong(length) }
        let bytes = readBytes(length: length) ?? []
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .invalidUTF8 }
        return text
    }

    func requireEnd(_ kind: AggMessageKind) throws(StreamDecodingError) {
        guard readableBytes == 0 else { throw .trailingBytes(kind, count: readableBytes) }
    }
}

import NIOCore
