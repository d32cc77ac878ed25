import NIOCore
import Testing

@testable import SCTPEngine

@Suite struct MultihomingAuthTests {
    static let localRandom = Array(UInt8(0)..<32)
    static let peerRandom = Array(UInt8(32)..<64)
    /// CHUNKS (ASCONF, ASCONF-ACK) and HMAC-ALGO (SHA-256, SHA-1) without padding, as RFC 4895 §6.1 concatenates.
    static let tail: [UInt8] = [0x80, 0x03, 0x00, 0x06, 0xC1, 0x80, 0x80, 0x04, 0x00, 0x08, 0x00, 0x03, 0x00, 0x01]

    /// AUTH (key 0, HMAC 3, MAC zeroed) then an ASCONF with serial 1 adding the wildcard, correlation ID 7.
    static func coveredBytes(hmacID: UInt16, macLength: Int) -> [UInt8] {
        let authLength = UInt8(8 + macLength)
        return [0x0F, 0x00, 0x00, authLength, 0x00, 0x00, 0x00, UInt8(hmacID)] + Array(repeating: 0, count: macLength)
            + [0xC1, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x01, 0x00, 0x05, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00]
            + [0xC0, 0x01, 0x00, 0x10, 0x00, 0x00, 0x00, 0x07, 0x00, 0x05, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00]
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    @Test func keyVectorIsRandomChunksHmacAlgoWithoutPadding() {
        let local = AuthParameters(random: Self.localRandom, chunks: [0xC1, 0x80], hmacIdentifiers: [3, 1])
        #expect(local.keyVector == [0x80, 0x02, 0x00, 0x24] + Self.localRandom + Self.tail)
    }

    @Test func associationKeyPutsTheNumericallySmallerVectorFirst() {
        let local = [0x80, 0x02, 0x00, 0x24] + Self.localRandom + Self.tail
        let peer = [0x80, 0x02, 0x00, 0x24] + Self.peerRandom + Self.tail
        let shared: [UInt8] = [0xAA, 0xBB]
        // The local vector is smaller (byte 4: 0x00 < 0x20) whichever side computes.
        #expect(AuthParameters.associationKey(sharedKey: shared, local: local, peer: peer) == shared + local + peer)
        #expect(AuthParameters.associationKey(sharedKey: shared, local: peer, peer: local) == shared + local + peer)
        // Equal as numbers, different lengths: the shorter goes first.
        #expect(AuthParameters.associationKey(sharedKey: [], local: [0, 0, 1], peer: [1]) == [1, 0, 0, 1])
        #expect(AuthParameters.associationKey(sharedKey: [], local: [2], peer: [0, 1, 0xFF]) == [2, 0, 1, 0xFF])
    }

    /// The MAC computed by hand from the RFC 4895 construction (Python's hmac over the bytes below) matches the
    /// engine's, for SHA-256 and SHA-1, and the engine signs exactly these bytes.
    @Test func hmacMatchesAVectorComputedByHand() throws {
        let local = AuthParameters(random: Self.localRandom, chunks: [0xC1, 0x80], hmacIdentifiers: [3, 1])
        let peer = AuthParameters(random: Self.peerRandom, chunks: [0xC1, 0x80], hmacIdentifiers: [3, 1])
        let key = AuthParameters.associationKey(sharedKey: [], local: local.keyVector, peer: peer.keyVector)
        let sha256 = AuthHMACIdentifier.sha256.authenticationCode(
            for: Self.coveredBytes(hmacID: 3, macLength: 32), key: key)
        #expect(Self.hex(sha256) == "526de6105a7b2383726e8a0a9d9b77e7eee881e90c69fe326666f2f0d15df7bd")
        let sha1 = AuthHMACIdentifier.sha1.authenticationCode(for: Self.coveredBytes(hmacID: 1, macLength: 20), key: key)
        #expect(Self.hex(sha1) == "7d7805fc79867f88c5141ce90fa78128e19b4c6a")

        // The wire form the engine builds covers the same bytes, and verifies.
        var context = AuthContext()
        context.local = local
        context.peer = peer
        context.negotiate(configuration: SCTPConfiguration())
        #expect(context.sendHMAC == .sha256)
        var builder = PacketBuilder(
            header: CommonHeader(sourcePort: 5000, destinationPort: 5000, verificationTag: VerificationTag(1), checksum: 0))
        let offset = builder.add(.auth(context.makeUnsignedChunk()))
        builder.add(
            .asconf(
                ASCONFChunk(
                    serial: ASCONFSerial(1), addressParameter: .address(.anyV4),
                    parameters: [.addIPAddress(correlationID: 7, address: .anyV4)])))
        let covered = try #require(AuthChunk.authenticatedBytes(inBuilt: builder.buffer, offset: offset))
        #expect(Array(covered.readableBytesView) == Self.coveredBytes(hmacID: 3, macLength: 32))
        builder.patch(context.sign(covered), at: offset + AuthChunk.hmacOffset)
        let packet = try RawPacket.parse(builder.finish())
        #expect(throws: Never.self) { try context.verify(packet.chunks[0], in: packet).get() }
        // One flipped bit after the AUTH chunk and the MAC no longer verifies.
        var tampered = packet.buffer
        tampered.setInteger(UInt8(0x02), at: tampered.readerIndex + CommonHeader.size + 40 + 7)
        let bad = try RawPacket.parse(tampered, verifyChecksum: false)
        #expect(throws: AuthContext.Failure.badMAC) { try context.verify(bad.chunks[0], in: bad).get() }
    }

    @Test func handshakeNegotiatesAuthAndAsconfWithMatchingKeys() throws {
        let l = Lockstep()
        _ = l.connect()
        let initPacket = l.take(l.client)
        let initChunk = try #require(try SCTPPacket.decode(initPacket[0].payload).chunks.first)
        guard case .initiation(let chunk) = initChunk else { Issue.record("no INIT"); return }
        let random = chunk.parameters.compactMap { if case .random(let r) = $0 { r } else { nil } }
        #expect(random.first?.readableBytes == 32)
        #expect(chunk.parameters.contains(.chunkList([0xC1, 0x80])))
        #expect(chunk.parameters.contains(.hmacAlgorithm([3, 1])))
        // One Supported Extensions parameter: AUTH, ASCONF, ASCONF-ACK, and NR-SACK for CMT.
        #expect(chunk.parameters.contains(.supportedExtensions([0xC0, 0x0F, 0xC1, 0x80, 0x10])))
        l.deliver(initPacket, to: l.server)
        l.exchange()
        #expect(l.clientEstablished && l.serverEstablished)
        let c = try #require(l.client.associations.values.first)
        let s = try #require(l.server.associations.values.first)
        #expect(c.features.isSuperset(of: [.auth, .asconf]))
        #expect(s.features.isSuperset(of: [.auth, .asconf]))
        #expect(c.auth.keys[0] != nil && c.auth.keys[0] == s.auth.keys[0])
        #expect(c.auth.sendHMAC == .sha256 && s.auth.sendHMAC == .sha256)
    }

    @Test func sha1IsUsedWhenThePeerOffersOnlySha1() throws {
        let l = Lockstep()
        var serverConfiguration = SCTPConfiguration()
        serverConfiguration.authHMACIdentifiers = [1]
        let server = SCTPEndpoint(configuration: serverConfiguration, seed: 77)
        let id = l.client.connect(to: l.serverAddress, from: l.clientAddress, peerPort: 5000, now: l.now)
        for _ in 0..<4 {
            for d in l.take(l.client) { server.handle(d, now: l.now) }
            while let d = server.pollTransmit() { l.client.handle(d, now: l.now) }
        }
        let s = try #require(server.associations.values.first)
        #expect(l.client.associations[id]!.auth.sendHMAC == .sha1)
        #expect(s.auth.sendHMAC == .sha1)
        // An ASCONF signed with SHA-1 is accepted and answered with a SHA-1 AUTH.
        try l.client.addLocalAddress(
            SCTPSocketAddress(ip: .init(v4: 10, 0, 0, 2), port: 40001), toward: l.serverAddress, on: id, now: l.now)
        let asconf = l.take(l.client)
        let decoded = try SCTPPacket.decode(asconf[0].payload)
        guard case .auth(let auth) = decoded.chunks[0] else { Issue.record("no AUTH in front"); return }
        #expect(auth.hmacID == 1 && auth.hmac.readableBytes == 20)
        for d in asconf { server.handle(d, now: l.now) }
        var answers: [SCTPDatagram] = []
        while let d = server.pollTransmit() { answers.append(d) }
        #expect(answers.contains { Lockstep.chunkTypes($0) == [AuthChunk.type, ASCONFAckChunk.type] })
    }

    /// An ASCONF without AUTH, and one whose AUTH does not verify, are both discarded: no path, no ASCONF-ACK.
    @Test func forgedOrUnauthenticatedAsconfIsDiscarded() throws {
        let l = Lockstep()
        _ = l.connect()
        l.exchange()
        let s = try #require(l.server.associations.values.first)
        let attacker = SCTPSocketAddress(ip: .init(v4: 6, 6, 6, 6), port: 666)
        let asconf = Chunk.asconf(
            ASCONFChunk(
                serial: ASCONFSerial(s.asconf.peerSerial.next.rawValue), addressParameter: .address(.anyV4),
                parameters: [.addIPAddress(correlationID: 1, address: .anyV4)]))
        let header = CommonHeader(sourcePort: 5000, destinationPort: 5000, verificationTag: s.localTag, checksum: 0)

        let plain = SCTPPacket(header: header, chunks: [asconf]).encode()
        l.server.handle(SCTPDatagram(source: attacker, destination: l.serverAddress, payload: plain), now: l.now)
        #expect(l.server.droppedPackets[.unauthenticatedChunk] == 1)

        let forgedAuth = Chunk.auth(AuthChunk(sharedKeyID: 0, hmacID: 3, hmac: ByteBuffer(repeating: 0x42, count: 32)))
        let forged = SCTPPacket(header: header, chunks: [forgedAuth, asconf]).encode()
        l.server.handle(SCTPDatagram(source: attacker, destination: l.serverAddress, payload: forged), now: l.now)
        #expect(l.server.droppedPackets[.authFailed] == 1)

        #expect(l.take(l.server).isEmpty)
        #expect(s.paths.count == 1)
        #expect(!s.paths.contains { $0.remoteAddress == attacker })
    }
}
