import Crypto
import NIOCore
import SCTPEngine
import Testing

@testable import AggProtocol

/// The version-3 and version-4 handshake (one layout; 4 makes sessions of the compact data layout): the ephemeral
/// X25519 exchange in HELLO and HELLO-ACK that gives forward secrecy, its
/// authentication by the pre-shared key's tags, the VERSION answer to other versions, the HELLO-ACK's word on
/// whether the server still knew the session, the refusal of unusable public keys, and the sizes that keep the
/// server from amplifying.
@Suite struct HandshakeSecurityTests {
    typealias Pair = SecurityPair
    typealias HelloOffset = SecureDatagram.HelloOffset
    typealias AckOffset = SecureDatagram.HelloAckOffset

    /// The first HELLO of `pair`'s client (its first packet waits for the handshake).
    static func firstHello(_ pair: Pair) throws -> SCTPDatagram {
        #expect(pair.clientSeal(Pair.packet(0)) == nil)
        return try #require(pair.clientPoll())
    }

    /// `datagram` with `bytes` written over its payload from `offset`.
    static func overwriting(_ datagram: SCTPDatagram, at offset: Int, with bytes: [UInt8]) -> SCTPDatagram {
        var payload = Array(datagram.payload.readableBytesView)
        payload.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
        return SCTPDatagram(
            source: datagram.source, destination: datagram.destination, payload: ByteBuffer(bytes: payload))
    }

    /// `body` followed by its handshake tag under the test key, as a key holder would make it.
    static func tagged(_ body: [UInt8], label: [UInt8], prefix: [UInt8] = []) -> [UInt8] {
        body
            + SecureDatagram.handshakeTag(
                key: SymmetricKey(data: Pair.key.key), label: label, [prefix[...], body[...]])
    }

    /// HKDF-SHA256 as docs/PROTOCOL.md spells it, computed here rather than through `SecureDatagram`: input key
    /// material, salt = client random ‖ server random, info = `label` ‖ session id.
    static func derive(
        material: [UInt8], clientRandom: ArraySlice<UInt8>, serverRandom: ArraySlice<UInt8>, label: String,
        sessionID: ArraySlice<UInt8>
    ) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: material), salt: Array(clientRandom + serverRandom),
            info: Array(label.utf8) + Array(sessionID), outputByteCount: 32)
    }

    /// Whether a server-side cipher holding `key` as its receive key opens `datagram` (sealed by the client).
    static func opens(_ datagram: SCTPDatagram, receiveKey key: SymmetricKey) -> Bool {
        let id = SessionCipher.sessionID(of: datagram.payload)!
        let layout = DataLayout(type: datagram.payload.getInteger(at: datagram.payload.readerIndex)!)!
        var cipher = SessionCipher(sessionID: id, layout: layout, sendKey: key, receiveKey: key)
        // A copy: opening writes over the datagram, and the caller tries it with other keys.
        if case .success = cipher.open(ByteBuffer(bytes: datagram.payload.readableBytesView)) { return true }
        return false
    }

    // MARK: - Forward secrecy

    @Test func equalKeyAndRandomsGiveDifferentSessionKeysWithDifferentEphemeralKeys() throws {
        let key = SymmetricKey(data: Pair.key.key)
        let clientRandom = [UInt8](repeating: 1, count: 32)
        let serverRandom = [UInt8](repeating: 2, count: 32)
        func handshakeKeys() throws -> [UInt8] {
            let client = Curve25519.KeyAgreement.PrivateKey()
            let server = Curve25519.KeyAgreement.PrivateKey()
            let secret = try #require(
                SecureDatagram.sharedSecret(client, peer: Array(server.publicKey.rawRepresentation)[...]))
            // Both ends reach the same secret.
            #expect(SecureDatagram.sharedSecret(server, peer: Array(client.publicKey.rawRepresentation)[...]) == secret)
            let keys = SecureDatagram.sessionKeys(
                key: key, sharedSecret: secret, clientRandom: clientRandom, serverRandom: serverRandom, sessionID: 7)
            let up: [UInt8] = keys.clientToServer.withUnsafeBytes { Array($0) }
            let down: [UInt8] = keys.serverToClient.withUnsafeBytes { Array($0) }
            return up + down
        }
        let first = try handshakeKeys()
        let second = try handshakeKeys()
        #expect(first != second)
        // Neither is the old derivation from the key and the randoms alone.
        let id = withUnsafeBytes(of: UInt64(7).bigEndian) { Array($0) }[...]
        let v1 = Self.derive(
            material: Pair.key.key, clientRandom: clientRandom[...], serverRandom: serverRandom[...],
            label: "agg client to server v1", sessionID: id
        ).withUnsafeBytes { Array($0) }
        #expect(Array(first.prefix(32)) != v1 && Array(second.prefix(32)) != v1)
    }

    @Test func recordedTrafficDoesNotOpenWithThePreSharedKeyAndRandomsAlone() throws {
        let pair = Pair()
        let hello = try Self.firstHello(pair)
        #expect(pair.serverOpen(hello, clock: pair.clock) == nil)
        let ack = try #require(pair.serverPoll())
        #expect(pair.clientOpen(ack, clock: pair.clock) == nil)
        #expect(!pair.client.isHandshaking)  // The pending HELLO, and its ephemeral private key, are gone.
        let sent = try #require(pair.drainClient().first)
        // What the attacker records is the bytes on the wire (the server opens its datagram in place).
        var sealed = sent
        sealed.payload = ByteBuffer(bytes: sent.payload.readableBytesView)
        #expect(pair.serverOpen(sent, clock: pair.clock)?.payload == Pair.packet(0))

        // What a passive attacker records, plus the pre-shared key stolen later.
        let helloBytes = Array(hello.payload.readableBytesView)
        let ackBytes = Array(ack.payload.readableBytesView)
        let clientRandom = helloBytes[HelloOffset.random..<HelloOffset.publicKey]
        let serverRandom = ackBytes[AckOffset.random..<AckOffset.publicKey]
        let sessionID = ackBytes[AckOffset.sessionID..<AckOffset.random]
        for (material, label) in [
            (Pair.key.key, "agg client to server v1"),  // Version 1's derivation.
            (Pair.key.key, "agg client to server v2"),  // Version 2's without the shared secret.
            (
                Pair.key.key + helloBytes[HelloOffset.publicKey..<HelloOffset.timestamp]
                    + ackBytes[AckOffset.publicKey..<AckOffset.tag], "agg client to server v2"
            ),  // The public keys in place of the secret.
        ] {
            let key = Self.derive(
                material: material, clientRandom: clientRandom, serverRandom: serverRandom, label: label,
                sessionID: sessionID)
            #expect(!Self.opens(sealed, receiveKey: key), "\(label)")
        }

        // Whoever held the client's ephemeral private key (rebuilt here from the seeded generator, drawn in the
        // client's order: random, then key) derives the keys as documented: secret ‖ pre-shared key.
        var generator: any RandomNumberGenerator = SCTPRandom(seed: 1)
        #expect(SecureDatagram.randomBytes(32, using: &generator)[...] == clientRandom)
        let ephemeral = SecureDatagram.ephemeralKey(using: &generator)
        #expect(
            Array(ephemeral.publicKey.rawRepresentation)[...]
                == helloBytes[HelloOffset.publicKey..<HelloOffset.timestamp])
        let secret = try #require(
            SecureDatagram.sharedSecret(ephemeral, peer: ackBytes[AckOffset.publicKey..<AckOffset.tag]))
        let key = Self.derive(
            material: secret + Pair.key.key, clientRandom: clientRandom, serverRandom: serverRandom,
            label: "agg client to server v2", sessionID: sessionID)
        #expect(Self.opens(sealed, receiveKey: key))
    }

    @Test func everyHandshakeUsesFreshEphemeralKeysButRetransmissionsRepeatThem() throws {
        let pair = Pair()
        let hello = try Self.firstHello(pair)
        // A retransmitted HELLO is the same datagram, so the server's answer to either copy fits.
        pair.clock.monotonic = try #require(pair.client.nextDeadline())
        pair.clientTimeout(clock: pair.clock)
        #expect(pair.drainClient().map(\.payload) == [hello.payload])
        _ = pair.serverOpen(hello, clock: pair.clock)
        let ack = try #require(pair.serverPoll())
        _ = pair.serverOpen(hello, clock: pair.clock)
        #expect(pair.serverPoll()?.payload == ack.payload)  // Same server random and ephemeral key.
        _ = pair.clientOpen(ack, clock: pair.clock)
        for datagram in pair.drainClient() { _ = pair.serverOpen(datagram, clock: pair.clock) }

        // A rekey names the previous session and carries new ephemeral keys both ways.
        pair.advance(.seconds(7200))
        pair.clientTimeout(clock: pair.clock)
        let rekey = try #require(pair.drainClient().first)
        _ = pair.serverOpen(rekey, clock: pair.clock)
        let rekeyAck = try #require(pair.serverPoll())
        _ = pair.clientOpen(rekeyAck, clock: pair.clock)
        #expect(pair.client.previous != nil && !pair.client.isHandshaking)
        func key(_ datagram: SCTPDatagram, _ offset: Int) -> [UInt8] {
            Array(datagram.payload.readableBytesView)[offset..<(offset + SecureDatagram.publicKeyLength)].map { $0 }
        }
        #expect(key(rekey, HelloOffset.publicKey) != key(hello, HelloOffset.publicKey))
        #expect(key(rekeyAck, AckOffset.publicKey) != key(ack, AckOffset.publicKey))
        let fresh = try #require(pair.clientSeal(Pair.packet(5)))
        #expect(pair.serverOpen(fresh, clock: pair.clock)?.payload == Pair.packet(5))
    }

    // MARK: - The exchange is authenticated

    @Test func aHelloWithATamperedEphemeralKeyIsDropped() throws {
        let pair = Pair()
        let hello = try Self.firstHello(pair)
        let substitute = Array(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation)
        let forged = Self.overwriting(hello, at: HelloOffset.publicKey, with: substitute)
        #expect(pair.serverOpen(forged, clock: pair.clock) == nil)
        #expect(pair.serverPoll() == nil)
        #expect(pair.server.sessions.isEmpty)
        #expect(pair.server.statistics.droppedBadTag == 1)
        // The genuine HELLO still gets its answer.
        #expect(pair.serverOpen(hello, clock: pair.clock) == nil)
        #expect(pair.serverPoll() != nil)
    }

    @Test func aHelloAckWithATamperedServerKeyIsRejected() throws {
        let pair = Pair()
        let hello = try Self.firstHello(pair)
        _ = pair.serverOpen(hello, clock: pair.clock)
        let ack = try #require(pair.serverPoll())
        let substitute = Array(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation)
        #expect(
            pair.clientOpen(Self.overwriting(ack, at: AckOffset.publicKey, with: substitute), clock: pair.clock) == nil)
        #expect(pair.client.isHandshaking && pair.client.current == nil)
        #expect(pair.client.statistics.droppedBadTag == 1)
        #expect(pair.drainClient().isEmpty)
        // The genuine HELLO-ACK completes the handshake.
        #expect(pair.clientOpen(ack, clock: pair.clock) == nil)
        let released = try #require(pair.drainClient().first)
        #expect(pair.serverOpen(released, clock: pair.clock)?.payload == Pair.packet(0))
    }

    @Test func lowOrderPublicKeysAreRefusedEvenWhenAuthenticated() throws {
        // u = 0 and u = 1 are points of small order: X25519 with them gives an all-zero secret.
        let lowOrder: [[UInt8]] = [[UInt8](repeating: 0, count: 32), [1] + [UInt8](repeating: 0, count: 31)]
        for point in lowOrder {
            let pair = Pair()
            let hello = Array(try Self.firstHello(pair).payload.readableBytesView)
            var body = Array(hello[..<HelloOffset.tag])
            body.replaceSubrange(HelloOffset.publicKey..<HelloOffset.timestamp, with: point)
            let forged = Self.tagged(body, label: SecureDatagram.helloLabel)
            #expect(pair.serverOpen(Pair.upward(ByteBuffer(bytes: forged)), clock: pair.clock) == nil)
            #expect(pair.serverPoll() == nil)
            #expect(pair.server.sessions.isEmpty)
            #expect(pair.server.statistics.droppedMalformed == 1 && pair.server.statistics.droppedBadTag == 0)

            // The client likewise refuses a HELLO-ACK that answers its HELLO with such a point.
            _ = pair.serverOpen(Pair.upward(ByteBuffer(bytes: hello)), clock: pair.clock)
            let ack = Array(try #require(pair.serverPoll()).payload.readableBytesView)
            var ackBody = Array(ack[..<AckOffset.tag])
            ackBody.replaceSubrange(AckOffset.publicKey..<AckOffset.tag, with: point)
            let forgedAck = Self.tagged(ackBody, label: SecureDatagram.helloAckLabel, prefix: hello)
            #expect(pair.clientOpen(Pair.downward(ByteBuffer(bytes: forgedAck)), clock: pair.clock) == nil)
            #expect(pair.client.isHandshaking && pair.client.current == nil)
            #expect(pair.client.statistics.droppedMalformed == 1 && pair.client.statistics.droppedBadTag == 0)
        }
        #expect(SecureDatagram.sharedSecret(Curve25519.KeyAgreement.PrivateKey(), peer: [1, 2, 3][...]) == nil)
    }

    // MARK: - Version and size

    @Test func hellosOfAnotherVersionGetAnAuthenticatedVersionAnswerAndNoSession() throws {
        let pair = Pair()
        let hello = Array(try Self.firstHello(pair).payload.readableBytesView)
        // Today's layout labelled version 2, correctly tagged (an older client), and version 1's own 74-byte HELLO.
        var body = Array(hello[..<HelloOffset.tag])
        body[1] = 2
        let older = Self.tagged(body, label: Array("agg hello v2".utf8))
        let oldest = Self.tagged(
            [0x41, 1] + hello[HelloOffset.keyID..<HelloOffset.publicKey]
                + hello[HelloOffset.timestamp..<HelloOffset.tag],
            label: Array("agg hello v1".utf8))
        #expect(oldest.count == 74)
        #expect(pair.serverOpen(Pair.upward(ByteBuffer(bytes: older)), clock: pair.clock) == nil)
        let answer = try #require(pair.serverPoll())
        // VERSION: the server's versions, under a tag of the key over the whole HELLO; smaller than any HELLO.
        let bytes = Array(answer.payload.readableBytesView)
        #expect(bytes.count == SecureDatagram.versionLength && bytes.count == 19)
        #expect(bytes[0] == 0x56 && bytes[1] == 3 && bytes[2] == 5)
        #expect(bytes == Self.tagged([0x56, 3, 5], label: SecureDatagram.versionLabel, prefix: older))
        #expect(answer.destination == Pair.clientPath1)
        // At most one answer a second per key; never a session.
        #expect(pair.serverOpen(Pair.upward(ByteBuffer(bytes: oldest)), clock: pair.clock) == nil)
        #expect(pair.serverPoll() == nil)
        pair.advance(.seconds(1))
        #expect(pair.serverOpen(Pair.upward(ByteBuffer(bytes: oldest)), clock: pair.clock) == nil)
        #expect(pair.serverPoll() != nil)
        #expect(pair.server.sessions.isEmpty)
        #expect(pair.server.statistics.versionMismatches == 3)
        #expect(pair.server.pollEvent() == .clientVersionMismatch(keyName: Pair.key.name, clientVersion: 2))
        #expect(pair.server.pollEvent() == .clientVersionMismatch(keyName: Pair.key.name, clientVersion: 1))
        // An unknown key id gets nothing, whatever the version.
        var stranger = older
        stranger[2] ^= 0xFF
        #expect(pair.serverOpen(Pair.upward(ByteBuffer(bytes: stranger)), clock: pair.clock) == nil)
        #expect(pair.serverPoll() == nil)
    }

    @Test func aClientTakesTheServersVersionAnswerOnlyWithItsTag() throws {
        let pair = Pair()
        let hello = Array(try Self.firstHello(pair).payload.readableBytesView)
        // A VERSION that does not answer this HELLO under this key, then the real one (as a newer server would
        // send it: versions 6 to 7, none of which this build speaks).
        let forged = Self.tagged([0x56, 6, 7], label: SecureDatagram.versionLabel, prefix: [0x41])
        #expect(pair.clientOpen(Pair.downward(ByteBuffer(bytes: forged)), clock: pair.clock) == nil)
        #expect(pair.client.pollEvent() == nil)
        #expect(pair.client.statistics.droppedBadTag == 1)
        let genuine = Self.tagged([0x56, 6, 7], label: SecureDatagram.versionLabel, prefix: hello)
        #expect(pair.clientOpen(Pair.downward(ByteBuffer(bytes: genuine)), clock: pair.clock) == nil)
        #expect(pair.client.pollEvent() == .versionMismatch(serverVersions: 6...7))
        #expect(pair.client.isHandshaking, "the client keeps trying: the server may be upgraded")
        #expect(pair.client.helloVersion == 5)
        #expect(pair.clientPoll() == nil, "no new HELLO: nothing both speak")
    }

    /// An aggclient of version 3 (before the compact layout) gets a version-3 session from today's server: a
    /// version-3 HELLO-ACK, then data in the full layout both ways.
    @Test func aVersion3ClientIsServedInVersion3() throws {
        let pair = Pair()
        pair.client.helloVersion = 3
        let hello = try Self.firstHello(pair)
        #expect(hello.payload.getInteger(at: hello.payload.readerIndex + 1, as: UInt8.self) == 3)
        #expect(pair.serverOpen(hello, clock: pair.clock) == nil)
        let ack = try #require(pair.serverPoll())
        #expect(ack.payload.getInteger(at: ack.payload.readerIndex + 1, as: UInt8.self) == 3)
        #expect(pair.clientOpen(ack, clock: pair.clock) == nil)
        let released = try #require(pair.drainClient().first)
        #expect(released.payload.getInteger(at: released.payload.readerIndex, as: UInt8.self) == 0x44)
        #expect(released.payload.readableBytes == 100 + 33)
        #expect(pair.serverOpen(released, clock: pair.clock)?.payload == Pair.packet(0))
        let down = try #require(pair.serverSeal(Pair.downward(Pair.packet(1))))
        #expect(down.payload.getInteger(at: down.payload.readerIndex, as: UInt8.self) == 0x44)
        #expect(down.payload.readableBytes == 100 + 33)
        #expect(pair.clientOpen(down, clock: pair.clock)?.payload == Pair.packet(1))
        #expect(pair.server.sessions.entries.map(\.value.cipher.layout) == [.full])
        #expect(pair.server.statistics.versionMismatches == 0)
    }

    /// Today's client and a server that speaks only version 3 (an older aggserver): the server answers the
    /// version-5 HELLO with VERSION 3...3, the client offers version 3 at once and keeps offering it (rekeys too),
    /// and the queued packet goes out in the full layout. No mismatch is reported.
    @Test func aClientFallsBackToVersion3WhenTheServerSpeaksOnlyThat() throws {
        var old = ServerDatagramSecurity.Configuration()
        old.versions = 3...3
        var configuration = ClientDatagramSecurity.Configuration()
        configuration.rekeyAfterPackets = 5
        let pair = Pair(client: configuration, server: old)
        let hello = try Self.firstHello(pair)
        #expect(hello.payload.getInteger(at: hello.payload.readerIndex + 1, as: UInt8.self) == 5)
        #expect(pair.serverOpen(hello, clock: pair.clock) == nil)
        let answer = try #require(pair.serverPoll())
        #expect(Array(answer.payload.readableBytesView.prefix(3)) == [0x56, 3, 3])
        #expect(pair.server.sessions.isEmpty)
        #expect(pair.clientOpen(answer, clock: pair.clock) == nil)
        #expect(pair.client.pollEvent() == nil)
        #expect(pair.client.statistics.versionMismatches == 1)
        #expect(pair.client.helloVersion == 3)
        let retry = try #require(pair.clientPoll())
        #expect(retry.payload.getInteger(at: retry.payload.readerIndex + 1, as: UInt8.self) == 3)
        #expect(pair.serverOpen(retry, clock: pair.clock) == nil)
        #expect(pair.clientOpen(try #require(pair.serverPoll()), clock: pair.clock) == nil)
        let released = try #require(pair.drainClient().first)
        #expect(released.payload.getInteger(at: released.payload.readerIndex, as: UInt8.self) == 0x44)
        #expect(pair.serverOpen(released, clock: pair.clock)?.payload == Pair.packet(0))
        let down = try #require(pair.serverSeal(Pair.downward(Pair.packet(1))))
        #expect(pair.clientOpen(down, clock: pair.clock)?.payload == Pair.packet(1))
        // The rekey's HELLO stays at version 3.
        for _ in 0..<5 { _ = pair.clientSeal(Pair.packet(2)) }
        let rekey = try #require(pair.drainClient().first)
        #expect(Array(rekey.payload.readableBytesView.prefix(2)) == [0x41, 3])
        #expect(pair.serverOpen(rekey, clock: pair.clock) == nil)
        #expect(pair.clientOpen(try #require(pair.serverPoll()), clock: pair.clock) == nil)
        #expect(pair.server.statistics.versionMismatches == 1)
        #expect(pair.client.current?.cipher.layout == .full)
    }

    @Test func helloAckIsSmallerThanHello() throws {
        #expect(SecureDatagram.version == 5)
        #expect(SecureDatagram.helloLength == 106)
        #expect(SecureDatagram.helloAckLength == 91)
        #expect(SecureDatagram.helloAckLength < SecureDatagram.helloLength)
        #expect(HelloOffset.tag + SecureDatagram.handshakeTagLength == SecureDatagram.helloLength)
        #expect(AckOffset.tag + SecureDatagram.handshakeTagLength == SecureDatagram.helloAckLength)
        let pair = Pair()
        let hello = try Self.firstHello(pair)
        _ = pair.serverOpen(hello, clock: pair.clock)
        let ack = try #require(pair.serverPoll())
        #expect(hello.payload.readableBytes == 106)
        #expect(ack.payload.readableBytes == 91)
        #expect(ack.payload.getInteger(at: ack.payload.readerIndex + 1, as: UInt8.self) == 5)
    }

    // MARK: - A server that restarted

    /// The server restarts: its sessions are gone and it drops the client's datagrams. After 1.5 s of datagrams
    /// without an answer the client probes with a HELLO naming its session; the new server answers it as a new
    /// session (flag clear) and the client learns that its association is gone too.
    @Test func aClientFindsWithinTwoSecondsThatTheServerLostItsSession() throws {
        let pair = Pair()
        for released in pair.handshake() { _ = pair.serverOpen(released, clock: pair.clock) }
        let restarted = ServerDatagramSecurity(keys: [Pair.key], random: SCTPRandom(seed: 4242))
        pair.server = restarted
        var sent = 0
        var hello: SCTPDatagram?
        for _ in 0..<40 {
            pair.advance(.milliseconds(100))
            if let datagram = pair.clientSeal(Pair.packet(1)) {
                sent += 1
                #expect(pair.serverOpen(datagram, clock: pair.clock) == nil)
            }
            pair.clientTimeout(clock: pair.clock)
            if let probe = pair.drainClient().first {
                hello = probe
                break
            }
        }
        let probe = try #require(hello)
        #expect(sent >= 14 && sent <= 16, "the probe follows 1.5 s of silence")
        #expect(pair.server.statistics.droppedUnknownSession == sent)
        #expect(pair.serverOpen(probe, clock: pair.clock) == nil)
        let ack = try #require(pair.serverPoll())
        #expect(ack.payload.getInteger(at: ack.payload.readerIndex + AckOffset.flags, as: UInt8.self) == 0)
        #expect(pair.clientOpen(ack, clock: pair.clock) == nil)
        #expect(pair.client.pollEvent() == .serverLostSession)
        // The new session works at once.
        let up = try #require(pair.clientSeal(Pair.packet(2)))
        #expect(pair.serverOpen(up, clock: pair.clock)?.payload == Pair.packet(2))
    }

    /// The same probe to a server that is alive (the answers were only late) is a rekey: the flag says the server
    /// continues the session, and nothing is reported.
    @Test func aProbeAnsweredByALiveServerIsARekey() throws {
        let pair = Pair()
        for released in pair.handshake() { _ = pair.serverOpen(released, clock: pair.clock) }
        var probe: SCTPDatagram?
        for _ in 0..<40 where probe == nil {
            pair.advance(.milliseconds(100))
            if let datagram = pair.clientSeal(Pair.packet(1)) { _ = pair.serverOpen(datagram, clock: pair.clock) }
            pair.clientTimeout(clock: pair.clock)
            probe = pair.drainClient().first
        }
        #expect(pair.serverOpen(try #require(probe), clock: pair.clock) == nil)
        let ack = try #require(pair.serverPoll())
        let flags = ack.payload.getInteger(at: ack.payload.readerIndex + AckOffset.flags, as: UInt8.self)
        #expect(flags == SecureDatagram.HelloAckFlags.continuesSession)
        #expect(pair.clientOpen(ack, clock: pair.clock) == nil)
        #expect(pair.client.pollEvent() == nil)
        #expect(pair.client.statistics.handshakesCompleted == 2)
    }

    @Test func aLastAcknowledgementThatRightlyGetsNoAnswerIsNoReasonToProbe() throws {
        let pair = Pair()
        for released in pair.handshake() { _ = pair.serverOpen(released, clock: pair.clock) }
        // The transfer's last datagram from the server, then the client's one acknowledgement, then silence.
        let down = try #require(pair.serverSeal(Pair.downward(Pair.packet(2))))
        _ = pair.clientOpen(down, clock: pair.clock)
        pair.advance(.milliseconds(200))
        _ = try #require(pair.clientSeal(Pair.packet(3)))
        for _ in 0..<50 {
            pair.advance(.milliseconds(100))
            pair.clientTimeout(clock: pair.clock)
        }
        #expect(pair.drainClient().isEmpty)
        #expect(pair.client.statistics.handshakesSent == 1)
    }

    @Test func answersKeepTheProbeQuiet() throws {
        // A server that answers keeps the client from probing, however long the session runs.
        let pair = Pair()
        for released in pair.handshake() { _ = pair.serverOpen(released, clock: pair.clock) }
        for _ in 0..<100 {
            pair.advance(.milliseconds(100))
            if let datagram = pair.clientSeal(Pair.packet(1)) { _ = pair.serverOpen(datagram, clock: pair.clock) }
            let down = try #require(pair.serverSeal(Pair.downward(Pair.packet(2))))
            _ = pair.clientOpen(down, clock: pair.clock)
            pair.clientTimeout(clock: pair.clock)
            #expect(pair.drainClient().isEmpty)
        }
        #expect(pair.client.statistics.handshakesSent == 1)
    }
}
