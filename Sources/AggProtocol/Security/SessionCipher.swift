import CAEAD
import Crypto
import NIOCore

/// One session's data protection: seals outgoing SCTP packets with the send key and a fresh counter, opens incoming
/// ones with the receive key behind a replay window. The header (type, session id, counter, in the session's
/// `layout`) is the AEAD's associated data; the nonce is always the full 64-bit counter.
struct SessionCipher {
    /// Why an incoming data datagram was dropped.
    enum OpenFailure: Error, Equatable {
        case tooShort
        case replayed
        case badTag
    }

    /// The largest counter a session seals with; past it the session refuses to seal (the client rekeys long
    /// before, after `ClientDatagramSecurity.Configuration.rekeyAfterPackets`).
    static let counterLimit: UInt64 = 1 << 62

    let sessionID: UInt64
    let layout: DataLayout
    private let sendKey: PacketKey
    private let receiveKey: PacketKey
    /// The counter of the next sealed datagram.
    private(set) var sendCounter: UInt64 = 0
    private(set) var window = ReplayWindow()
    /// Datagrams opened successfully.
    private(set) var packetsOpened: UInt64 = 0

    /// A compact session's id must fit in 32 bits.
    init(sessionID: UInt64, layout: DataLayout = .full, sendKey: SymmetricKey, receiveKey: SymmetricKey) {
        precondition(layout == .full || sessionID <= UInt32.max, "a compact session id has 32 bits")
        self.sessionID = sessionID
        self.layout = layout
        self.sendKey = PacketKey(sendKey)
        self.receiveKey = PacketKey(receiveKey)
    }

    /// A session in mid-life, for tests: it seals from `sendCounter` on, and opens as if `receivedHighest` had
    /// been the highest counter authenticated so far (for counters near the 2^32 wrap of the compact layout).
    init(
        sessionID: UInt64, layout: DataLayout, sendKey: SymmetricKey, receiveKey: SymmetricKey, sendCounter: UInt64,
        receivedHighest: UInt64?
    ) {
        self.init(sessionID: sessionID, layout: layout, sendKey: sendKey, receiveKey: receiveKey)
        self.sendCounter = sendCounter
        if let receivedHighest { window = ReplayWindow(highest: receivedHighest) }
    }

    /// The sealed datagram of `packet`, or nil once the counter is exhausted.
    mutating func seal(_ packet: ByteBuffer) -> ByteBuffer? {
        var output = ByteBufferAllocator().buffer(capacity: layout.sealedLength(of: packet))
        return seal(packet, appendingTo: &output) ? output : nil
    }

    /// Appends the sealed datagram of `packet` to `output`: the header, then the packet encrypted straight from
    /// its buffer into `output`'s memory, then the tag. A packed session's packet (`DataLayout.packedCut`) goes
    /// without its ports, its checksum and the zero bytes at its end: its verification tag is stored over its
    /// checksum field, which leaves the tag and the chunks contiguous, and those are sealed. The caller gives the
    /// packet up (the driver recycles its buffer): whatever shares its storage reads the tag in bytes 8..<12
    /// afterwards. False (and `output` unchanged) once the counter is exhausted.
    mutating func seal(_ packet: ByteBuffer, appendingTo output: inout ByteBuffer) -> Bool {
        guard sendCounter < Self.counterLimit else { return false }
        let counter = sendCounter
        sendCounter += 1
        let start = output.writerIndex
        let layout = layout
        let cut = layout.packedCut(of: packet)
        let kind: SecureDatagram.Kind = cut != nil ? .packedData : layout == .packed ? .compactData : layout.kind
        let length = packet.readableBytes - (cut ?? 0)
        let headerLength = layout.headerLength
        // One reservation for the whole datagram: the header is stored, then read as the associated data while the
        // body is written after it (the two ranges do not overlap), then the tag.
        let sealed = output.writeWithUnsafeMutableBytes(
            minimumWritableBytes: headerLength + length + SecureDatagram.aeadTagLength
        ) { out in
            let base = out.baseAddress!
            base.storeBytes(of: kind.rawValue, as: UInt8.self)
            switch layout {
            case .full:
                base.storeBytes(of: sessionID.bigEndian, toByteOffset: 1, as: UInt64.self)
                base.storeBytes(of: counter.bigEndian, toByteOffset: 9, as: UInt64.self)
            case .compact, .packed:
                base.storeBytes(of: UInt32(truncatingIfNeeded: sessionID).bigEndian, toByteOffset: 1, as: UInt32.self)
                base.storeBytes(of: UInt32(truncatingIfNeeded: counter).bigEndian, toByteOffset: 5, as: UInt32.self)
            }
            let header = base.assumingMemoryBound(to: UInt8.self)
            return packet.withUnsafeReadableBytes { plaintext in
                var source = plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self)
                if cut != nil, let packed = plaintext.baseAddress {
                    // The verification tag (bytes 4..<8) over the checksum field (8..<12): from byte 8 on, the
                    // packet is what the packed layout carries.
                    let writable = UnsafeMutableRawPointer(mutating: packed)
                    let tag = writable.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
                    writable.storeBytes(of: tag, toByteOffset: 8, as: UInt32.self)
                    source = source.map { $0 + 8 }
                }
                let ok = caead_seal(
                    sendKey.pointer, counter, header + headerLength, source, length, header, headerLength)
                return ok == 1 ? headerLength + length + SecureDatagram.aeadTagLength : 0
            }
        }
        guard sealed > 0 else {
            output.moveWriterIndex(to: start)
            return false
        }
        return true
    }

    /// Opens a data datagram of this session's layout whose session id is this session's, in place, and returns
    /// nil, with `datagram` narrowed to the SCTP packet inside it (header and tag left out of its readable bytes),
    /// or why it failed. A compact datagram's counter is restored against the
    /// highest counter authenticated so far, then checked by the replay window; a wrong restoration (a counter 2^31
    /// or more behind) fails the tag. A packed datagram's packet gets its common header back in the bytes before it
    /// (the datagram's own header, spent once opened) with zero ports and checksum, and its end padded to a
    /// multiple of 4 with zeros in the bytes after it (the spent AEAD tag): the caller marks it
    /// (`SCTPDatagram.portsElided`) so the engine routes it by its tag alone.
    ///
    /// The plaintext is written over the ciphertext in the datagram's own storage, so opening allocates nothing
    /// and takes no reference (a receive batch's datagrams are slices of one read buffer). The caller gives the
    /// datagram up: whatever else shares its storage reads plaintext there afterwards, or zeros where the tag failed
    /// (the receive path hands each datagram to one `open` and lets go of it). A replayed or malformed datagram is
    /// refused before anything is written, its bytes and indices untouched.
    mutating func open(inPlace datagram: inout ByteBuffer) -> OpenFailure? {
        let length = datagram.readableBytes
        let headerLength = layout.headerLength
        let tagLength = SecureDatagram.aeadTagLength
        let type = datagram.getInteger(at: datagram.readerIndex, as: UInt8.self)
        let packed = type == SecureDatagram.Kind.packedData.rawValue
        // Where the rebuilt packet starts: its 12-byte common header ends where the opened tag ends.
        let packetStart = headerLength + 4 - 12
        // A packed packet holds at least its verification tag; any other at least a byte.
        guard length >= headerLength + tagLength + (packed ? 4 : 1),
            let counter = layout.counter(of: datagram, highest: window.highest)
        else {
            return .tooShort
        }
        guard window.mayAccept(counter) else { return .replayed }
        // The rebuilt packet's length (a packed one padded to a multiple of 4) past the plaintext's.
        let padding = packed ? (4 - (length - headerLength - tagLength + DataLayout.elidedLength) % 4) % 4 : 0
        let opened = datagram.withUnsafeReadableBytes { bytes in
            // BoringSSL opens with `out` equal to `in` (exact aliasing is allowed).
            let base = UnsafeMutableRawPointer(mutating: bytes.baseAddress!).assumingMemoryBound(to: UInt8.self)
            let ok = caead_open(
                receiveKey.pointer, counter, base + headerLength, base + headerLength, length - headerLength,
                base, headerLength)
            if ok == 1, packed {
                // [header 9][tag 4][chunks][AEAD tag 16] becomes
                // [_][ports 0 (4)][tag 4][checksum 0 (4)][chunks][padding 0...3][rest of the spent AEAD tag].
                let raw = UnsafeMutableRawPointer(base)
                let tag = raw.loadUnaligned(fromByteOffset: headerLength, as: UInt32.self)
                raw.storeBytes(of: 0, toByteOffset: packetStart, as: UInt32.self)
                raw.storeBytes(of: tag, toByteOffset: packetStart + 4, as: UInt32.self)
                raw.storeBytes(of: 0, toByteOffset: packetStart + 8, as: UInt32.self)
                (base + length - tagLength).update(repeating: 0, count: padding)
            }
            return ok
        }
        guard opened == 1 else { return .badTag }
        window.accept(counter)
        packetsOpened += 1
        datagram.moveWriterIndex(to: datagram.readerIndex + length - tagLength + padding)
        datagram.moveReaderIndex(forwardBy: packed ? packetStart : headerLength)
        return nil
    }

    /// `open(inPlace:)` for a caller that wants the packet as a new value (the datagram is still given up).
    mutating func open(_ datagram: ByteBuffer) -> Result<ByteBuffer, OpenFailure> {
        var packet = datagram
        if let failure = open(inPlace: &packet) { return .failure(failure) }
        return .success(packet)
    }

    /// The session id field of a data datagram of either layout (told by its type).
    static func sessionID(of datagram: ByteBuffer) -> UInt64? {
        guard let type = datagram.getInteger(at: datagram.readerIndex, as: UInt8.self),
            let layout = DataLayout(type: type)
        else { return nil }
        return layout.sessionID(of: datagram)
    }

    /// The counter field of a data datagram of either layout (a compact one's: the counter's low 32 bits).
    static func counter(of datagram: ByteBuffer) -> UInt64? {
        guard let type = datagram.getInteger(at: datagram.readerIndex, as: UInt8.self),
            let layout = DataLayout(type: type)
        else { return nil }
        return layout.counter(of: datagram, highest: nil)
    }
}

/// One direction's ChaCha20-Poly1305 key, set up once for BoringSSL's sealing over caller-owned memory (see
/// Sources/CAEAD): no allocation or copy per datagram.
final class PacketKey: @unchecked Sendable {
    let pointer: OpaquePointer

    init(_ key: SymmetricKey) {
        // A 32-byte key is all the library checks; SymmetricKey's derivation always gives one.
        pointer = key.withUnsafeBytes { bytes in
            caead_new(bytes.bindMemory(to: UInt8.self).baseAddress, bytes.count)
        }!
    }

    deinit { caead_free(pointer) }
}
