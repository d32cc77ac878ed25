/// The outcome of an OPEN, as the server reports it in OPEN-RESULT. Each code maps to a SOCKS5 reply and an HTTP
/// status so the client's ingress can answer its own client faithfully.
public enum OpenResultCode: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case ok = 0
    case generalFailure = 1
    case notAllowed = 2
    case networkUnreachable = 3
    case hostUnreachable = 4
    case refused = 5
    case timeout = 6
    case dnsFailure = 7
    case tooManyStreams = 8

    public var isSuccess: Bool { self == .ok }

    /// The SOCKS5 REP field (RFC 1928 §6). DNS failure is reported as host unreachable and "too many streams" as a
    /// general failure, the nearest codes SOCKS5 has.
    public var socksReply: UInt8 {
        switch self {
        case .ok: return 0x00
        case .generalFailure: return 0x01
        case .notAllowed: return 0x02
        case .networkUnreachable: return 0x03
        case .hostUnreachable: return 0x04
        case .refused: return 0x05
        case .timeout: return 0x06  // TTL expired: the closest SOCKS5 has to a connect timeout.
        case .dnsFailure: return 0x04
        case .tooManyStreams: return 0x01
        }
    }

    /// The HTTP status a CONNECT proxy answers with.
    public var httpStatus: Int {
        switch self {
        case .ok: return 200
        case .generalFailure: return 502
        case .notAllowed: return 403
        case .networkUnreachable, .hostUnreachable, .refused, .dnsFailure: return 502
        case .timeout: return 504
        case .tooManyStreams: return 503
        }
    }

    public var description: String {
        switch self {
        case .ok: return "ok"
        case .generalFailure: return "general failure"
        case .notAllowed: return "not allowed by egress policy"
        case .networkUnreachable: return "network unreachable"
        case .hostUnreachable: return "host unreachable"
        case .refused: return "connection refused"
        case .timeout: return "connect timed out"
        case .dnsFailure: return "DNS resolution failed"
        case .tooManyStreams: return "too many streams"
        }
    }
}

/// Why a stream was reset (abortively closed).
public enum ResetReason: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// The local TCP side closed abortively or with unread data (TCP RST).
    case connectionReset = 0
    /// The application gave up on the stream (for example the client disconnected while the server connected).
    case cancelled = 1
    /// The peer sent more DATA than its credit allowed.
    case flowControlError = 2
    /// The peer broke the stream protocol (a message not allowed in the stream's state).
    case protocolError = 3
    /// The stream was idle for longer than the idle timeout.
    case idleTimeout = 4
    /// A local failure unrelated to the peer.
    case internalError = 5

    public var description: String {
        switch self {
        case .connectionReset: return "connection reset"
        case .cancelled: return "cancelled"
        case .flowControlError: return "flow control error"
        case .protocolError: return "protocol error"
        case .idleTimeout: return "idle timeout"
        case .internalError: return "internal error"
        }
    }
}
