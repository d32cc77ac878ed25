import Crypto
import Foundation
import NIOCore

/// The wire layout and key schedule of agg's datagram encryption, a layer around RFC 6951's UDP payload (see
/// docs/PROTOCOL.md, "Datagram encryption"): constants, key ids, handshake tags and session keys. Pure functions.
enum SecureDatagram {
    /// The first byte of every protected datagram.
    enum Kind: UInt8 {
        case hello = 0x41
        case helloAck = 0x42
        case data = 0x44
    }

    static let version: UInt8 = 1
    static let keyIDLength = 8
    static let randomLength = 32
    static let handshakeTagLength = 16
    /// Type, session id, counter.
    static let dataHeaderLength = 1 + 8 + 8
    static let aeadTagLength = 16
    /// Bytes a sealed datagram carries beyond the SCTP packet inside.
    static let overhead = dataHeaderLength + aeadTagLength
    /// Type, version, key id, client random, timestamp, previous session id, tag.
    static let helloLength = 1 + 1 + keyIDLength + randomLength + 8 + 8 + handshakeTagLength
    /// Type, version, session id, server random, tag: never larger than the HELLO it answers (no amplification).
    static let helloAckLength = 1 + 1 + 8 + randomLength + handshakeTagLength

    static let keyIDLabel = Array("agg key id".utf8)
    static let helloLabel = Array("agg hello v1".utf8)
    static let helloAckLabel = Array("agg hello-ack v1".utf8)
    static let clientToServerLabel = Array("agg client to server v1".utf8)
    static let serverToClientLabel = Array("agg server to client v1".utf8)

    /// The public 8-byte id of a pre-shared key: HMAC-SHA256(key, "agg key id"), first 8 bytes, big-endian.
    static func keyID(for key: [UInt8]) -> UInt64 {
        let code = HMAC<SHA256>.authenticationCode(for: keyIDLabel, using: SymmetricKey(data: key))
        return code.withUnsafeBytes { bytes in bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
    }

    /// HMAC-SHA256 over `label` and `parts`, truncated to 16 bytes.
    static func handshakeTag(key: SymmetricKey, label: [UInt8], _ parts: [ArraySlice<UInt8>]) -> [UInt8] {
        var hmac = HMAC<SHA256>(key: key)
        hmac.update(data: label)
        for part in parts { hmac.update(data: part) }
        return Array(hmac.finalize()).prefix(handshakeTagLength).map { $0 }
    }

    /// Compares two tags in time that depends only on their length.
    static func tagsMatch(_ a: ArraySlice<UInt8>, _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }

    /// The two directions' ChaCha20-Poly1305 keys of a session: HKDF-SHA256 over the client key, salt = client
    /// random ‖ server random, info = direction label ‖ session id.
    static func sessionKeys(
        key: SymmetricKey, clientRandom: [UInt8], serverRandom: [UInt8], sessionID: UInt64
    ) -> (clientToServer: SymmetricKey, serverToClient: SymmetricKey) {
        let salt = clientRandom + serverRandom
        let id = withUnsafeBytes(of: sessionID.bigEndian) { Array($0) }
        func derive(_ label: [UInt8]) -> SymmetricKey {
            HKDF<SHA256>.deriveKey(inputKeyMaterial: key, salt: salt, info: label + id, outputByteCount: 32)
        }
        return (derive(clientToServerLabel), derive(serverToClientLabel))
    }

    /// The AEAD nonce of a data datagram: four zero bytes, then the 64-bit counter big-endian. Each direction of
    /// each session has its own key and the counter never repeats under one key, so no nonce is used twice.
    static func nonce(counter: UInt64) -> ChaChaPoly.Nonce {
        var bytes = [UInt8](repeating: 0, count: 12)
        for index in 0..<8 { bytes[4 + index] = UInt8(truncatingIfNeeded: counter >> (56 - 8 * UInt64(index))) }
        return try! ChaChaPoly.Nonce(data: bytes)  // 12 bytes is ChaCha20-Poly1305's nonce size.
    }

    /// `count` bytes from `generator`.
    static func randomBytes(_ count: Int, using generator: inout any RandomNumberGenerator) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            var word = generator.next()
            for _ in 0..<min(8, count - index) {
                bytes[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                index += 1
            }
        }
        return bytes
    }
}
