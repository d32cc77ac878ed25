import Crypto
import Foundation
import NIOCore

/// The wire layout and key schedule of agg's datagram encryption, a layer around RFC 6951's UDP payload (see
/// docs/PROTOCOL.md, "Datagram encryption"): constants, key ids, handshake tags and session keys. Pure functions.
package enum SecureDatagram {
    /// The first byte of every protected datagram.
    enum Kind: UInt8 {
        case hello = 0x41
        case helloAck = 0x42
        case data = 0x44
        /// A data datagram of the compact layout (version 4 on): 4-byte session id, 32-bit truncated counter.
        case compactData = 0x64
        /// A data datagram of the packed layout (version 5 on): the compact header, the SCTP packet inside without
        /// its ports and checksum.
        case packedData = 0x65
        /// The server's answer to a HELLO of a version it does not speak (for a key it holds).
        case version = 0x56
    }

    /// The handshake version. 2 added the ephemeral X25519 exchange; 3 the HELLO-ACK's flags (whether the server
    /// still knew the session the HELLO names) and the VERSION answer; 4 the compact data layout (`DataLayout`):
    /// 4-byte session ids and 32-bit truncated counters; 5 the packed one, SCTP packets without their ports and
    /// checksum. Other versions are answered with VERSION.
    package static let version: UInt8 = 5
    /// The versions this build speaks, lowest first (announced in VERSION). A server serves each client in the
    /// version of its HELLO; a client offers `version` and falls back to the highest one a VERSION answer shares.
    package static let supportedVersions: ClosedRange<UInt8> = 3...5
    static let keyIDLength = 8
    static let randomLength = 32
    /// An X25519 public key.
    static let publicKeyLength = 32
    static let handshakeTagLength = 16
    /// Type, session id, counter: the longest data header of any layout (version 3's, `DataLayout.full`).
    static let dataHeaderLength = DataLayout.full.headerLength
    static let aeadTagLength = 16
    /// The most bytes a sealed datagram carries beyond the SCTP packet inside (version 3's layout: 33; version 4's
    /// carries 25, version 5's 17 for all but a few packets). The engines' packet size leaves room for it until an
    /// association's session is known (the driver then sizes that association's packets for its session's layout).
    package static let overhead = dataHeaderLength + aeadTagLength
    /// The Error Detection Method Identifier (RFC 9653) both daemons announce for packets inside sealed datagrams:
    /// the AEAD tag covers every byte of the packet, so the CRC32c adds nothing. Not registered with IANA; only agg
    /// announces it, and only to a peer whose INIT arrived sealed ("agg" and 1).
    package static let errorDetectionMethod: UInt32 = 0x6167_6701
    /// Type, version, key id, client random, client ephemeral public key, timestamp, previous session id, tag.
    static let helloLength = 1 + 1 + keyIDLength + randomLength + publicKeyLength + 8 + 8 + handshakeTagLength
    /// Type, version, flags, session id, server random, server ephemeral public key, tag: smaller than the HELLO it
    /// answers, so a spoofed HELLO cannot make the server an amplifier.
    static let helloAckLength = 1 + 1 + 1 + 8 + randomLength + publicKeyLength + handshakeTagLength
    /// Type, lowest and highest version the server speaks, tag.
    static let versionLength = 1 + 1 + 1 + handshakeTagLength
    /// The shortest HELLO of any version the server answers with VERSION: type, version, key id and a tag; so the
    /// answer is never larger than what caused it.
    static let shortestForeignHello = 1 + 1 + keyIDLength + handshakeTagLength

    /// HELLO-ACK flags.
    enum HelloAckFlags {
        /// The server knew the previous session the HELLO named: this handshake continues it (a rekey). Clear in
        /// answer to a HELLO that named one, the server has lost it (it restarted, or the session expired), and
        /// with it the association: the client starts a new one.
        static let continuesSession: UInt8 = 0x01
    }

    /// Where the fields of a HELLO start (type and version take bytes 0 and 1).
    enum HelloOffset {
        static let keyID = 2
        static let random = keyID + keyIDLength
        static let publicKey = random + randomLength
        static let timestamp = publicKey + publicKeyLength
        static let previousSession = timestamp + 8
        static let tag = previousSession + 8
    }

    /// Where the fields of a HELLO-ACK start (type and version take bytes 0 and 1).
    enum HelloAckOffset {
        static let flags = 2
        static let sessionID = 3
        static let random = sessionID + 8
        static let publicKey = random + randomLength
        static let tag = publicKey + publicKeyLength
    }

    static let keyIDLabel = Array("agg key id".utf8)
    static let helloLabel = Array("agg hello v3".utf8)
    static let helloAckLabel = Array("agg hello-ack v3".utf8)
    static let versionLabel = Array("agg version".utf8)
    static let clientToServerLabel = Array("agg client to server v2".utf8)
    static let serverToClientLabel = Array("agg server to client v2".utf8)

    /// The public 8-byte id of a pre-shared key: HMAC-SHA256(key, "agg key id"), first 8 bytes, big-endian.
    package static func keyID(for key: [UInt8]) -> UInt64 {
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

    /// The two directions' ChaCha20-Poly1305 keys of a session: HKDF-SHA256 over the X25519 shared secret ‖ the
    /// client key, salt = client random ‖ server random, info = direction label ‖ session id.
    ///
    /// The shared secret comes from ephemeral keys both sides forget, so whoever later obtains the client key still
    /// cannot derive the keys of a recorded session (forward secrecy); the client key stays in the input so the
    /// session keys are bound to it as well, whatever becomes of X25519.
    static func sessionKeys(
        key: SymmetricKey, sharedSecret: [UInt8], clientRandom: [UInt8], serverRandom: [UInt8], sessionID: UInt64
    ) -> (clientToServer: SymmetricKey, serverToClient: SymmetricKey) {
        let salt = clientRandom + serverRandom
        let id = withUnsafeBytes(of: sessionID.bigEndian) { Array($0) }
        let material = SymmetricKey(data: sharedSecret + key.withUnsafeBytes { Array($0) })
        func derive(_ label: [UInt8]) -> SymmetricKey {
            HKDF<SHA256>.deriveKey(inputKeyMaterial: material, salt: salt, info: label + id, outputByteCount: 32)
        }
        return (derive(clientToServerLabel), derive(serverToClientLabel))
    }

    /// A fresh ephemeral X25519 private key made of 32 bytes from `generator` (the caller's randomness, as for the
    /// randoms: the daemons pass the system's cryptographic generator, tests a seeded one). X25519 clamps any 32
    /// bytes into a valid scalar.
    static func ephemeralKey(using generator: inout any RandomNumberGenerator) -> Curve25519.KeyAgreement.PrivateKey {
        // 32 bytes is X25519's private key size, so the initializer cannot fail.
        try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: randomBytes(32, using: &generator))
    }

    /// The X25519 shared secret of `privateKey` and the peer's public key, or nil when the peer's key is unusable:
    /// not 32 bytes, or a low-order point that makes the secret all zeros (swift-crypto may throw for it or return
    /// the zeros; either way the handshake message is refused, as RFC 7748 section 6.1 allows).
    static func sharedSecret(
        _ privateKey: Curve25519.KeyAgreement.PrivateKey, peer: ArraySlice<UInt8>
    ) -> [UInt8]? {
        guard let peerKey = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: peer),
            let secret = try? privateKey.sharedSecretFromKeyAgreement(with: peerKey)
        else { return nil }
        let bytes = secret.withUnsafeBytes { Array($0) }
        // Constant time: the secret is not compared byte by byte with an early exit.
        guard bytes.count == 32, bytes.reduce(UInt8(0), { $0 | $1 }) != 0 else { return nil }
        return bytes
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
