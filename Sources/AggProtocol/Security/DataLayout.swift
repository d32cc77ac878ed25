import NIOCore

/// The header layout of one session's data datagrams, fixed by the handshake version that made the session: where
/// the session id and the counter sit, how long they are, and how the receiver gets the full 64-bit counter back
/// from what the datagram carries.
enum DataLayout: Equatable, Sendable {
    /// Version 3: type (0x44), the 8-byte session id, the 64-bit counter; 17 bytes.
    case full
    /// Version 4: type (0x64), a 4-byte session id, the counter's low 32 bits; 9 bytes. The receiver restores
    /// the counter's high bits from the highest counter it authenticated (`expandCounter`).
    case compact
    /// Version 5 on: the compact header, and inside it the SCTP packet without its ports and checksum (type 0x65,
    /// `SecureDatagram.Kind.packedData`): the tag routes it, the AEAD tag covers it, so those 8 bytes say nothing the
    /// receiver needs. Packets the tag alone does not route (INIT, INIT-ACK, COOKIE-ECHO, and ABORT or
    /// SHUTDOWN-COMPLETE with the T bit) go whole, as version 4's 0x64. A packed packet also leaves out up to 3 zero
    /// bytes at its end (the last chunk's padding): the receiver pads it back to a multiple of 4 with zeros, which
    /// is what an SCTP packet's length always is (`trailingZeros`).
    case packed

    /// The layout a handshake of `version` sets up.
    init(version: UInt8) {
        switch version {
        case ...3: self = .full
        case 4: self = .compact
        default: self = .packed
        }
    }

    /// The layout of a data datagram whose first byte is `type`; nil for any other message. A 0x64 datagram is
    /// `.compact`, whether its session is version 4's or a packed one's (which sends whole packets in it).
    init?(type: UInt8) {
        switch SecureDatagram.Kind(rawValue: type) {
        case .data: self = .full
        case .compactData: self = .compact
        case .packedData: self = .packed
        case .hello, .helloAck, .version, nil: return nil
        }
    }

    /// Whether a session of this layout opens data datagrams whose type says `datagram`: its own, and a packed
    /// session the whole packets it sends as 0x64 too.
    func opens(_ datagram: DataLayout) -> Bool {
        datagram == self || (self == .packed && datagram == .compact)
    }

    var kind: SecureDatagram.Kind {
        switch self {
        case .full: .data
        case .compact: .compactData
        case .packed: .packedData
        }
    }

    /// Type, session id, counter.
    var headerLength: Int {
        switch self {
        case .full: 1 + 8 + 8
        case .compact, .packed: 1 + 4 + 4
        }
    }

    /// Bytes a sealed datagram of this layout carries beyond the SCTP packet inside: header and AEAD tag, less the
    /// ports and checksum a packed one leaves out (of every packet but the few that go whole: see `packed`).
    var overhead: Int {
        headerLength + SecureDatagram.aeadTagLength - (self == .packed ? Self.elidedLength : 0)
    }

    /// The SCTP common header's ports (4 bytes) and checksum (4) that a packed datagram leaves out.
    static let elidedLength = 8

    /// Whether a session of this layout sends `packet` (an SCTP packet, common header onward) packed: never in the
    /// older layouts, and in the packed one every packet the peer routes by its verification tag alone.
    func packs(_ packet: ByteBuffer) -> Bool { packedCut(of: packet) != nil }

    /// The bytes a session of this layout leaves out of `packet` (`packedCut(of:)`); nil when it seals it whole.
    func packedCut(of packet: ByteBuffer) -> Int? {
        self == .packed ? packet.withUnsafeReadableBytes { Self.packedCut(of: $0) } : nil
    }

    /// The bytes a session of this layout seals `packet` into.
    func sealedLength(of packet: ByteBuffer) -> Int {
        packet.readableBytes + headerLength + SecureDatagram.aeadTagLength - (packedCut(of: packet) ?? 0)
    }

    /// For a packet (an SCTP packet, common header onward) the packed layout sends packed, the bytes it leaves
    /// out: the ports and checksum, and the zero bytes at its end (`trailingZeros`); nil for a packet that goes
    /// whole. The first chunk decides: INIT (1), INIT-ACK (2) and COOKIE-ECHO (10) are matched by ports and
    /// addresses, ABORT (6) and SHUTDOWN-COMPLETE (14) with the T bit carry the sender's own tag; anything else the
    /// peer routes by its verification tag alone. One pass over raw bytes: it runs twice per datagram.
    static func packedCut(of packet: UnsafeRawBufferPointer) -> Int? {
        guard packet.count >= 14 else { return nil }
        switch packet[12] {
        case 1, 2, 10: return nil
        case 6, 14: return packet[13] & 1 != 0 ? nil : elidedLength + trailingZeros(of: packet)
        default: return elidedLength + trailingZeros(of: packet)
        }
    }

    /// The zero bytes at the end of `packet` that a packed datagram leaves out: at most 3, and none unless its
    /// length is a multiple of 4, so that padding back to a multiple of 4 with zeros restores exactly these (the
    /// last chunk's padding, and any zero bytes of data just before it).
    static func trailingZeros(of packet: UnsafeRawBufferPointer) -> Int {
        let length = packet.count
        guard length % 4 == 0, length > 16 else { return 0 }
        var count = 0
        while count < 3, packet[length - 1 - count] == 0 { count += 1 }
        return count
    }

    /// The session id field of a data datagram of this layout (a compact one's 32 bits as a UInt64).
    func sessionID(of datagram: ByteBuffer) -> UInt64? {
        switch self {
        case .full: datagram.getInteger(at: datagram.readerIndex + 1, as: UInt64.self)
        case .compact, .packed: datagram.getInteger(at: datagram.readerIndex + 1, as: UInt32.self).map(UInt64.init)
        }
    }

    /// The 64-bit counter of a data datagram of this layout, given the highest counter authenticated so far in its
    /// session and direction (nil before the first).
    func counter(of datagram: ByteBuffer, highest: UInt64?) -> UInt64? {
        switch self {
        case .full:
            return datagram.getInteger(at: datagram.readerIndex + 9, as: UInt64.self)
        case .compact, .packed:
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

/// What a session's sealing takes from a packet's room in its datagram: the bytes it adds (to all but a packed
/// session's few whole packets), and whether the last chunk's padding is left out too, so that the engine may fill
/// a packet until its unpadded length fits.
package struct SealingOverhead: Equatable, Sendable {
    package var bytes: Int
    package var dropsLastPadding: Bool

    package init(bytes: Int, dropsLastPadding: Bool) {
        self.bytes = bytes
        self.dropsLastPadding = dropsLastPadding
    }
}

extension DataLayout {
    var sealingOverhead: SealingOverhead { SealingOverhead(bytes: overhead, dropsLastPadding: self == .packed) }
}
