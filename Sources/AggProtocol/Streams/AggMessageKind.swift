import SCTPEngine

/// The kind of an agg message, carried in the SCTP payload protocol identifier (PPID) of its user message.
///
/// agg's PPIDs are `0x6167_67xx` ("agg" followed by the kind byte). They are not registered with IANA; the range
/// is far above every assigned PPID, so a capture tool shows them as unknown rather than mis-decoding them.
public enum AggMessageKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    // MARK: - Per-stream messages (streams 1...)
    case open = 0x01
    case openResult = 0x02
    case data = 0x03
    case fin = 0x04
    case reset = 0x05
    case windowUpdate = 0x06
    case closed = 0x07

    // MARK: - Control messages (stream 0)
    case hello = 0x10
    case auth = 0x11
    case authOK = 0x12
    case ping = 0x13
    case pong = 0x14

    /// The PPID prefix shared by every agg message: ASCII "agg" in the top three bytes.
    public static let ppidBase: UInt32 = 0x6167_6700

    public var ppid: PPID { PPID(Self.ppidBase | UInt32(rawValue)) }

    /// The kind a PPID names, or nil for a PPID outside agg's range or an unassigned kind byte.
    public init?(ppid: PPID) {
        guard ppid.rawValue & 0xFFFF_FF00 == Self.ppidBase else { return nil }
        self.init(rawValue: UInt8(truncatingIfNeeded: ppid.rawValue))
    }

    /// True for the messages that travel only on stream 0.
    public var isControl: Bool {
        switch self {
        case .open, .openResult, .data, .fin, .reset, .windowUpdate, .closed: return false
        case .hello, .auth, .authOK, .ping, .pong: return true
        }
    }

    public var description: String {
        switch self {
        case .open: return "OPEN"
        case .openResult: return "OPEN-RESULT"
        case .data: return "DATA"
        case .fin: return "FIN"
        case .reset: return "RESET"
        case .windowUpdate: return "WINDOW-UPDATE"
        case .closed: return "CLOSED"
        case .hello: return "HELLO"
        case .auth: return "AUTH"
        case .authOK: return "AUTH-OK"
        case .ping: return "PING"
        case .pong: return "PONG"
        }
    }
}

/// Size limits of the stream protocol. They keep one bulk stream from hogging the association: the engine's
/// scheduler round-robins whole messages between streams, so a message is the unit of fairness.
public enum AggLimits {
    /// The largest DATA payload. Senders split larger reads; receivers reject larger messages.
    public static let maxDataPayload = 16 * 1024
    /// The longest domain name in OPEN (the DNS limit, and SOCKS5's length byte).
    public static let maxDomainLength = 255
    /// The longest diagnostic text in OPEN-RESULT and RESET.
    public static let maxTextLength = 512
    /// The longest key name in AUTH.
    public static let maxKeyNameLength = 64
    /// The largest credit a window may hold (HTTP/2's 2^31 - 1, RFC 9113 §6.9.1).
    public static let maxCredit: UInt32 = 0x7FFF_FFFF
    /// Size of the server challenge, the client nonce and every MAC in the auth exchange.
    public static let authFieldLength = 32
    /// The protocol version carried in HELLO and AUTH.
    public static let version: UInt8 = 1
    /// PONGs a side sends at once in answer to PINGs, and per second after that (`ControlReplyBudget`); PINGs
    /// beyond it go unanswered.
    public static let controlReplyBurst = 8
    public static let controlRepliesPerSecond = 4
}
