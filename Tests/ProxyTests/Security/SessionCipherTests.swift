import CAEAD
import Crypto
import Foundation
import NIOCore
import Testing

@testable import AggProtocol

/// The datagram cipher seals in place through BoringSSL directly; what it puts on the wire must stay what
/// swift-crypto's ChaChaPoly produces and accepts (the format of every earlier release, docs/PROTOCOL.md).
@Suite struct SessionCipherTests {
    let sendKey = SymmetricKey(data: [UInt8](repeating: 7, count: 32))
    let receiveKey = SymmetricKey(data: [UInt8](repeating: 9, count: 32))

    func nonce(_ counter: UInt64) -> ChaChaPoly.Nonce {
        try! ChaChaPoly.Nonce(data: [0, 0, 0, 0] + withUnsafeBytes(of: counter.bigEndian) { Array($0) })
    }

    func packet(_ length: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        for index in 0..<length { buffer.writeInteger(UInt8(truncatingIfNeeded: index &* 31 &+ 5)) }
        return buffer
    }

    @Test func sealedDatagramsOpenWithSwiftCryptosChaChaPoly() throws {
        var cipher = SessionCipher(sessionID: 0x0102_0304_0506_0708, sendKey: sendKey, receiveKey: receiveKey)
        for (counter, length) in [(UInt64(0), 1), (1, 100), (2, 1_439)] {
            let plaintext = packet(length)
            let result = cipher.seal(plaintext)
            let sealed = try #require(result)
            let bytes = Array(sealed.readableBytesView)
            #expect(bytes.count == SecureDatagram.overhead + length)
            #expect(bytes[0] == SecureDatagram.Kind.data.rawValue)
            #expect(SessionCipher.sessionID(of: sealed) == 0x0102_0304_0506_0708)
            #expect(SessionCipher.counter(of: sealed) == counter)
            let header = bytes[0..<SecureDatagram.dataHeaderLength]
            let box = try ChaChaPoly.SealedBox(
                nonce: nonce(counter), ciphertext: bytes[SecureDatagram.dataHeaderLength..<(bytes.count - 16)],
                tag: bytes[(bytes.count - 16)...])
            let opened = try ChaChaPoly.open(box, using: sendKey, authenticating: header)
            #expect(Array(opened) == Array(plaintext.readableBytesView))
        }
    }

    @Test func datagramsSealedBySwiftCryptoOpen() throws {
        var cipher = SessionCipher(sessionID: 42, sendKey: sendKey, receiveKey: receiveKey)
        let plaintext = Array(packet(1_000).readableBytesView)
        var header = ByteBuffer()
        header.writeInteger(SecureDatagram.Kind.data.rawValue)
        header.writeInteger(UInt64(42))
        header.writeInteger(UInt64(5))
        let box = try ChaChaPoly.seal(
            plaintext, using: receiveKey, nonce: nonce(5), authenticating: Array(header.readableBytesView))
        var datagram = header
        datagram.writeBytes(box.ciphertext)
        datagram.writeBytes(box.tag)
        let opened = try cipher.open(datagram).get()
        #expect(Array(opened.readableBytesView) == plaintext)
        #expect(cipher.packetsOpened == 1)
    }

    @Test func aFlippedBitAnywhereFailsAndIsNotCountedAsOpened() throws {
        var sender = SessionCipher(sessionID: 1, sendKey: sendKey, receiveKey: receiveKey)
        var receiver = SessionCipher(sessionID: 1, sendKey: receiveKey, receiveKey: sendKey)
        let result = sender.seal(packet(200))
        let sealed = try #require(result)
        // The type, the session id (both authenticated as associated data), the ciphertext and the tag.
        for offset in [0, 1, 17, 100, sealed.readableBytes - 1] {
            var tampered = sealed
            let byte = tampered.getInteger(at: offset, as: UInt8.self)!
            tampered.setInteger(byte ^ 0x10, at: offset)
            let opened = receiver.open(tampered)
            #expect(opened == .failure(.badTag))
        }
        #expect(receiver.packetsOpened == 0)
        let opened = try receiver.open(sealed).get()
        #expect(opened == packet(200))
        let again = receiver.open(sealed)
        #expect(again == .failure(.replayed))
    }

    /// Datagrams of one receive batch are slices of one read buffer: each opens in place, inside its own bytes
    /// (its plaintext a slice of the same storage, no buffer of its own), and a forged one in between, whose tag
    /// fails, zeros only its own bytes; its neighbours and what precedes them are untouched.
    @Test func openingInPlaceStaysInsideTheDatagram() throws {
        var sender = SessionCipher(sessionID: 1, sendKey: sendKey, receiveKey: receiveKey)
        var receiver = SessionCipher(sessionID: 1, sendKey: receiveKey, receiveKey: sendKey)
        var read = ByteBufferAllocator().buffer(capacity: 4096)
        read.writeString("prefix")
        #expect(sender.seal(packet(300), appendingTo: &read))
        let forgedStart = read.writerIndex
        #expect(sender.seal(packet(100), appendingTo: &read))
        read.setInteger(read.getInteger(at: forgedStart + 40, as: UInt8.self)! ^ 1, at: forgedStart + 40)
        #expect(sender.seal(packet(50), appendingTo: &read))
        let length = { (plaintext: Int) in SecureDatagram.overhead + plaintext }
        let first = read.getSlice(at: 6, length: length(300))!
        let forged = read.getSlice(at: forgedStart, length: length(100))!
        let last = read.getSlice(at: forgedStart + length(100), length: length(50))!
        let opened = try receiver.open(first).get()
        #expect(opened == packet(300))
        #expect(opened.storageCapacity == read.storageCapacity, "a slice of the read buffer")
        #expect(receiver.open(forged) == .failure(.badTag))
        #expect(try receiver.open(last).get() == packet(50))
        #expect(read.getString(at: 0, length: 6) == "prefix")
        let forgedBody = read.getBytes(at: forgedStart + SecureDatagram.dataHeaderLength, length: 100)!
        #expect(forgedBody == [UInt8](repeating: 0, count: 100), "a failed open zeros its own plaintext room")
        #expect(opened == packet(300), "the first datagram's plaintext stays")
    }

    @Test func sealingAppendsAfterWhatTheBufferHolds() throws {
        var sender = SessionCipher(sessionID: 1, sendKey: sendKey, receiveKey: receiveKey)
        var receiver = SessionCipher(sessionID: 1, sendKey: receiveKey, receiveKey: sendKey)
        var output = ByteBuffer(string: "prefix")
        let first = sender.seal(packet(300), appendingTo: &output)
        let second = sender.seal(packet(50), appendingTo: &output)
        #expect(first && second)
        #expect(output.readString(length: 6) == "prefix")
        let sealedFirst = output.readSlice(length: SecureDatagram.overhead + 300)!
        #expect(try receiver.open(sealedFirst).get() == packet(300))
        #expect(try receiver.open(output).get() == packet(50))
    }

    // MARK: - The compact layout (version 4)

    /// A compact-layout pair of one session, each side's counters set as if `sent` datagrams had gone before (the
    /// receiver having authenticated up to `sent - 1`).
    func compactPair(
        id: UInt64 = 0x0A0B_0C0D, layout: DataLayout = .compact, sent: UInt64
    ) -> (sender: SessionCipher, receiver: SessionCipher) {
        let highest = sent == 0 ? nil : sent - 1
        return (
            SessionCipher(
                sessionID: id, layout: layout, sendKey: sendKey, receiveKey: receiveKey, sendCounter: sent,
                receivedHighest: nil),
            SessionCipher(
                sessionID: id, layout: layout, sendKey: receiveKey, receiveKey: sendKey, sendCounter: 0,
                receivedHighest: highest)
        )
    }

    /// Type 0x64, the 4-byte id, the counter's low 32 bits: 9 bytes of header, 25 with the tag; the nonce is still
    /// the whole 64-bit counter (checked here with swift-crypto across the 2^32 wrap).
    @Test func compactDatagramsCarryANineByteHeaderAndSealWithTheWholeCounter() throws {
        var (sender, _) = compactPair(sent: (1 << 32) - 1)
        for counter: UInt64 in [(1 << 32) - 1, 1 << 32, (1 << 32) + 1] {
            let plaintext = packet(1_000)
            let result = sender.seal(plaintext)
            let sealed = try #require(result)
            let bytes = Array(sealed.readableBytesView)
            #expect(bytes.count == 25 + 1_000)
            #expect(DataLayout.compact.overhead == 25 && DataLayout.full.overhead == SecureDatagram.overhead)
            #expect(Array(bytes[0..<5]) == [0x64, 0x0A, 0x0B, 0x0C, 0x0D])
            let low = UInt32(truncatingIfNeeded: counter)
            #expect(Array(bytes[5..<9]) == withUnsafeBytes(of: low.bigEndian) { Array($0) })
            let box = try ChaChaPoly.SealedBox(
                nonce: nonce(counter), ciphertext: bytes[9..<(bytes.count - 16)], tag: bytes[(bytes.count - 16)...])
            let opened = try ChaChaPoly.open(box, using: sendKey, authenticating: bytes[0..<9])
            #expect(Array(opened) == Array(plaintext.readableBytesView))
        }
    }

    @Test func compactDatagramsRoundTripInOrderAndReordered() throws {
        var (sender, receiver) = compactPair(sent: 0)
        let sealed = (0..<200).map { sender.seal(packet($0 + 1))! }
        for index in 0..<100 { #expect(try receiver.open(sealed[index]).get() == packet(index + 1)) }
        for index in (100..<200).reversed() { #expect(try receiver.open(sealed[index]).get() == packet(index + 1)) }
        #expect(receiver.packetsOpened == 200)
        #expect(receiver.window.highest == 199)
        #expect(receiver.open(sealed[150]) == .failure(.replayed))
    }

    /// The counter's high bits come back from the highest one authenticated: in order and reordered across the
    /// 2^32 wrap, with the replay window judging the restored counter.
    @Test func compactCountersAreRestoredAcrossTheWrap() throws {
        let start: UInt64 = (1 << 32) - 100
        var (sender, receiver) = compactPair(sent: start)
        let sealed = (0..<300).map { _ in sender.seal(packet(64))! }  // Counters 2^32 - 100 ..< 2^32 + 200.
        for index in 0..<50 { #expect(try receiver.open(sealed[index]).get() == packet(64)) }
        // Past the wrap first, then the stragglers from before it.
        for index in (50..<300).reversed() { #expect(try receiver.open(sealed[index]).get() == packet(64)) }
        #expect(receiver.window.highest == start + 299)
        #expect(receiver.packetsOpened == 300)
        for index in [0, 99, 100, 299] { #expect(receiver.open(sealed[index]) == .failure(.replayed)) }

        // Higher up too: the third wrap.
        var (far, farReceiver) = compactPair(sent: 3 << 32 - 2)
        let late = far.seal(packet(1))!
        let ahead = (0..<4).map { _ in far.seal(packet(2))! }
        for datagram in ahead { #expect(try farReceiver.open(datagram).get() == packet(2)) }
        #expect(try farReceiver.open(late).get() == packet(1))
        #expect(farReceiver.window.highest == 3 << 32 + 2)
    }

    /// A counter older than the replay window is restored exactly and refused as a replay; one 2^31 or more behind
    /// is restored 2^32 too high, fails its tag, and moves nothing.
    @Test func farStaleCompactCountersAreRefused() throws {
        var (sender, receiver) = compactPair(sent: 0)
        let old = sender.seal(packet(8))!
        let (aheadSender, _) = compactPair(sent: ReplayWindow.size + 10)
        var jumped = aheadSender
        #expect(try receiver.open(jumped.seal(packet(9))!).get() == packet(9))
        #expect(receiver.open(old) == .failure(.replayed))

        var (wayBehind, wayAheadReceiver) = compactPair(sent: 5)
        var ahead = compactPair(sent: 5 + (1 << 31)).sender
        #expect(try wayAheadReceiver.open(ahead.seal(packet(1))!).get() == packet(1))
        let stale = wayBehind.seal(packet(2))!  // 2^31 behind the highest.
        #expect(wayAheadReceiver.open(stale) == .failure(.badTag))
        #expect(wayAheadReceiver.window.highest == 5 + (1 << 31))
        #expect(wayAheadReceiver.packetsOpened == 1)
    }

    // MARK: - The packed layout (version 5)

    /// An SCTP packet from port 0x1234 to 0x26AB, tag 0xA1B2C3D4, checksum 0xCAFEF00D, then one chunk of `type`
    /// with `flags` and `body` bytes of value (none zero, unless `zeros` end it), padded to 4 bytes.
    func sctpPacket(chunk type: UInt8, flags: UInt8 = 0, body: Int = 40, zeros: Int = 0) -> ByteBuffer {
        var buffer = ByteBuffer(bytes: [0x12, 0x34, 0x26, 0xAB, 0xA1, 0xB2, 0xC3, 0xD4, 0xCA, 0xFE, 0xF0, 0x0D])
        buffer.writeBytes([type, flags])
        buffer.writeInteger(UInt16(4 + body))
        for index in 0..<(body - zeros) { buffer.writeInteger(UInt8(index % 255 + 1)) }
        buffer.writeRepeatingByte(0, count: zeros + (4 - body % 4) % 4)
        return buffer
    }

    /// Type 0x65: the compact header, then the packet's tag and chunks only (what swift-crypto opens), 8 bytes
    /// fewer than version 4; the receiver hands the packet on with zero ports and checksum, the tag and chunks
    /// intact.
    @Test func packedDatagramsLeaveOutThePortsAndChecksum() throws {
        var (sender, receiver) = compactPair(layout: .packed, sent: 7)
        let whole = sctpPacket(chunk: 0, flags: 3, body: 1_000)  // DATA
        let result = sender.seal(whole)
        let sealed = try #require(result)
        let bytes = Array(sealed.readableBytesView)
        #expect(bytes.count == whole.readableBytes + 25 - 8)
        #expect(DataLayout.packed.overhead == 17)
        #expect(DataLayout.packed.sealedLength(of: whole) == bytes.count)
        #expect(Array(bytes[0..<5]) == [0x65, 0x0A, 0x0B, 0x0C, 0x0D])
        let box = try ChaChaPoly.SealedBox(
            nonce: nonce(7), ciphertext: bytes[9..<(bytes.count - 16)], tag: bytes[(bytes.count - 16)...])
        let inside = try ChaChaPoly.open(box, using: sendKey, authenticating: bytes[0..<9])
        let original = Array(whole.readableBytesView)
        let tag = Array(original[4..<8])
        let chunks = Array(original[12...])
        let expectedInside: [UInt8] = tag + chunks
        #expect(Array(inside) == expectedInside)

        let opened = try receiver.open(sealed).get()
        let zeros: [UInt8] = [0, 0, 0, 0]
        let expectedPacket: [UInt8] = zeros + tag + zeros + chunks
        #expect(Array(opened.readableBytesView) == expectedPacket)
    }

    /// What the tag alone does not route goes whole in a packed session, as version 4's 0x64, and opens byte for
    /// byte: INIT, INIT-ACK, COOKIE-ECHO, and ABORT or SHUTDOWN-COMPLETE with the T bit. The same two without it,
    /// and SACK, HEARTBEAT, ASCONF, go packed.
    @Test(arguments: [
        (UInt8(1), UInt8(0), false), (2, 0, false), (10, 0, false), (6, 1, false), (14, 1, false),
        (6, 0, true), (14, 0, true), (3, 0, true), (4, 0, true), (0xC1, 0, true),
    ])
    func packetsTheTagDoesNotRouteGoWhole(type: UInt8, flags: UInt8, packs: Bool) throws {
        var (sender, receiver) = compactPair(layout: .packed, sent: 0)
        let whole = sctpPacket(chunk: type, flags: flags)
        #expect(DataLayout.packed.packs(whole) == packs)
        #expect(!DataLayout.compact.packs(whole) && !DataLayout.full.packs(whole))
        let result = sender.seal(whole)
        let sealed = try #require(result)
        #expect(sealed.getInteger(at: sealed.readerIndex, as: UInt8.self) == (packs ? 0x65 : 0x64))
        #expect(sealed.readableBytes == whole.readableBytes + (packs ? 17 : 25))
        #expect(sealed.readableBytes == DataLayout.packed.sealedLength(of: whole))
        let opened = try receiver.open(sealed).get()
        #expect((opened == whole) == !packs)
    }

    /// The last chunk's padding stays out of a packed datagram, and the receiver pads the packet back: 1 to 3 bytes
    /// fewer for a chunk of 1 to 3 bytes more than a multiple of 4. Zero bytes of data just before the padding may go
    /// with it (3 at most): padding back restores them.
    @Test(arguments: [(1_000, 0, 0), (1_001, 0, 3), (1_002, 0, 2), (1_003, 0, 1), (1_000, 2, 2), (1_001, 1, 3),
        (1_000, 5, 3)])
    func packedDatagramsLeaveOutTheLastChunksPadding(body: Int, zeros: Int, dropped: Int) throws {
        var (sender, receiver) = compactPair(layout: .packed, sent: 0)
        let whole = sctpPacket(chunk: 0, body: body, zeros: zeros)
        #expect(whole.readableBytes % 4 == 0)
        #expect(DataLayout.packed.packedCut(of: whole) == DataLayout.elidedLength + dropped)
        let result = sender.seal(whole)
        let sealed = try #require(result)
        #expect(sealed.readableBytes == whole.readableBytes + 17 - dropped)
        #expect(sealed.readableBytes == DataLayout.packed.sealedLength(of: whole))
        var expected = whole
        expected.setInteger(UInt32(0), at: expected.readerIndex)
        expected.setInteger(UInt32(0), at: expected.readerIndex + 8)
        #expect(try receiver.open(sealed).get() == expected)
    }

    /// A packed session opens its whole packets (0x64) and its packed ones; a version-4 session opens no packed one.
    @Test func onlyAPackedSessionOpensPackedDatagrams() {
        #expect(DataLayout.packed.opens(.packed) && DataLayout.packed.opens(.compact))
        #expect(!DataLayout.compact.opens(.packed) && !DataLayout.full.opens(.packed))
        #expect(!DataLayout.packed.opens(.full))
        #expect(DataLayout(type: 0x65) == .packed && DataLayout(version: 5) == .packed)
        #expect(DataLayout(version: 4) == .compact && DataLayout(version: 3) == .full)
    }

    /// A packed datagram must hold at least the packet's tag; a shorter one is refused before anything is written.
    @Test func aPackedDatagramTooShortForATagIsRefused() throws {
        var (_, receiver) = compactPair(layout: .packed, sent: 0)
        for plaintext in 0..<4 {
            let datagram = ByteBuffer(bytes: [0x65, 0x0A, 0x0B, 0x0C, 0x0D, 0, 0, 0, 0] + Array(repeating: 1, count: plaintext + 16))
            #expect(receiver.open(datagram) == .failure(.tooShort))
        }
        #expect(receiver.window.highest == nil)
    }

    @Test func expandCounterFollowsRFC9000AppendixA3() {
        let wrap: UInt64 = 1 << 32
        // Before anything arrived the expected counter is 0.
        #expect(DataLayout.expandCounter(0, highest: nil) == 0)
        #expect(DataLayout.expandCounter(7, highest: nil) == 7)
        #expect(DataLayout.expandCounter(UInt32.max, highest: nil) == wrap - 1)
        // In order and just ahead.
        #expect(DataLayout.expandCounter(11, highest: 10) == 11)
        #expect(DataLayout.expandCounter(0, highest: wrap - 1) == wrap)
        // Behind, across the wrap either way.
        #expect(DataLayout.expandCounter(UInt32.max - 5, highest: wrap + 3) == wrap - 6)
        #expect(DataLayout.expandCounter(4, highest: wrap - 3) == wrap + 4)
        // Half a window is the limit: just under it behind stays behind, at it comes out ahead.
        let highest: UInt64 = 5 * wrap + 100
        let behind = highest + 1 - (1 << 31) + 1
        #expect(DataLayout.expandCounter(UInt32(truncatingIfNeeded: behind), highest: highest) == behind)
        let tooFar = highest + 1 - (1 << 31)
        #expect(DataLayout.expandCounter(UInt32(truncatingIfNeeded: tooFar), highest: highest) == tooFar + wrap)
        // Never past the counter limit.
        let top = SessionCipher.counterLimit - 1
        #expect(DataLayout.expandCounter(UInt32(truncatingIfNeeded: top), highest: top - 1) == top)
    }

    @Test func aTruncatedOrGarbageCompactDatagramIsRefused() throws {
        var (sender, receiver) = compactPair(sent: 0)
        let sealed = sender.seal(packet(40))!
        for length in [0, 1, 5, 9, 25] {
            #expect(receiver.open(sealed.getSlice(at: sealed.readerIndex, length: length)!) == .failure(.tooShort))
        }
        // A copy: a failed open zeros what it was given, and the genuine datagram opens below.
        #expect(receiver.open(ByteBuffer(bytes: sealed.readableBytesView.prefix(60))) == .failure(.badTag))
        var garbage = ByteBuffer(bytes: [0x64, 0x0A, 0x0B, 0x0C, 0x0D])
        garbage.writeBytes((0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37) })
        #expect(receiver.open(garbage) == .failure(.badTag))
        #expect(receiver.window.highest == nil, "nothing moved the window")
        #expect(try receiver.open(sealed).get() == packet(40))
    }

    /// A datagram whose tag is wrong leaves every byte past the plaintext's room alone. BoringSSL clears the output
    /// room it is given on failure; given the ciphertext's length it cleared 16 bytes past the buffer, which the
    /// decryption fuzzer caught as heap corruption (Fuzz/Corpus/decrypt/regression-open-zeroes-past-buffer).
    @Test func aFailedOpenWritesNothingPastThePlaintext() {
        let key = [UInt8](repeating: 3, count: 32)
        let aead = caead_new(key, key.count)!
        defer { caead_free(aead) }
        let header = [UInt8](repeating: 1, count: SecureDatagram.dataHeaderLength)
        for length in [16, 17, 100, 1_439] {  // Ciphertext and tag: 0 to 1,423 bytes of plaintext.
            let sealed = [UInt8](repeating: 0x5C, count: length)  // No valid tag.
            var output = [UInt8](repeating: 0xAA, count: length - 16 + 32)  // The plaintext's room, then a guard.
            let opened = output.withUnsafeMutableBufferPointer { out in
                caead_open(aead, 7, out.baseAddress, sealed, length, header, header.count)
            }
            #expect(opened == 0)
            #expect(output[(length - 16)...].allSatisfy { $0 == 0xAA }, "bytes past the plaintext changed")
        }
    }
}
