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
