import NIOCore

/// The header layout of one session's data datagrams, fixed by the handshake version that made the session: where
/// the session id and the counter sit, how long they are, and how the receiver gets the full 64-bit counter back
/// from what the datagram carries.
enum DataLayout: Equatable, Sendable {
    /// Version 3: type (0x44), the 8-byte session id, the 64-bit counter; 17 bytes.
    case full
    /// Version 4 on: type (0x64), a 4-byte session id, the counter's low 32 bits; 9 bytes. The receiver restores
    /// the counter's high bits from the highest counter it authenticated (`expandCounter`).
    case compact

    /// The layout a handshake of `version` sets up.
    init(version: UInt8) {
        self = version >= 4 ? .compact : .full
    }

    /// The layout of a data datagram whose first byte is `type`; nil for any other message.
    init?(type: UInt8) {
        switch SecureDatagram.Kind(rawValue: type) {
        case .data: self = .full
        case .compactData: self = .compact
        case .hello, .helloAck, .version, nil: return nil
        }
    }

    var kind: SecureDatagram.Kind {
        switch self {
        case .full: .data
        case .compact: .compactData
        }
    }

    /// Type, session id, counter.
    var headerLength: Int {
        switch self {
        case .full: 1 + 8 + 8
        case .compact: 1 + 4 + 4
        }
    }

    /// Bytes a sealed datagram of this layout carries beyond the SCTP packet inside: header and AEAD tag.
    var overhead: Int { headerLength + SecureDatagram.aeadTagLength }

    /// The session id field of a data datagram of this layout (a compact one's 32 bits as a UInt64).
    func sessionID(of datagram: ByteBuffer) -> UInt64? {
        switch self {
        case .full: datagram.getInteger(at: datagram.readerIndex + 1, as: UInt64.self)
        case .compact: datagram.getInteger(at: datagram.readerIndex + 1, as: UInt32.self).map(UInt64.init)
        }
    }

    /// The 64-bit counter of a data datagram of this layout, given the highest counter authenticated so far in its
    /// session and direction (nil before the first).
    func counter(of datagram: ByteBuffer, highest: UInt64?) -> UInt64? {
        switch self {
        case .full:
            return datagram.getInteger(at: datagram.readerIndex + 9, as: UInt64.self)
        case .compact:
            return datagram.getInteger(at: datagram.readerIndex + 5, as: UInt32.self).map {
                Self.expandCounter($0, highest: highest)
            }
        }
    }

    /// The 64-bit counter whose low 32 bits are `truncated` and which lies closest to the next one expected after
    /// `highest` (RFC 9000 appendix A.3, with a 32-bit window): right for any datagram sent less than 2^31 counters
    /// away from it. A counter farther behind comes out 2^32 too high, its nonce is wrong and it fails to open,
    /// as a forgery does; one the replay window still covers is exact.
    static func expandCounter(_ truncated: UInt32, highest: UInt64?) -> UInt64 {
        let expected = highest.map { $0 + 1 } ?? 0  // Counters stay below 2^62: no overflow.
        let window: UInt64 = 1 << 32
        let half = window / 2
        let candidate = expected & ~(window - 1) | UInt64(truncated)
        if expected >= half, candidate <= expected - half, candidate < SessionCipher.counterLimit - window {
            return candidate + window
        }
        if candidate > expected + half, candidate >= window {
            return candidate - window
        }
        return candidate
    }
}
