import NIOCore
import Testing

@testable import SCTPEngine

/// PR-SCTP between two endpoints in lockstep (RFC 3758, RFC 7496): negotiation, abandonment, FORWARD-TSN on both
/// sides, and what a peer that did not negotiate it sees.
@Suite struct PartialReliabilityTests {
    /// An established pair; `client` and `server` say whether each announces Forward-TSN-Supported.
    static func pair(client: Bool = true, server: Bool = true) -> (Lockstep, SCTPAssociationID) {
        let l = Lockstep { $0.partialReliability = server }
        var configuration = SCTPConfiguration()
        configuration.partialReliability = client
        l.client = SCTPEndpoint(configuration: configuration, seed: 1)
        let id = l.connect()
        l.exchange()
        return (l, id)
    }

    static func chunks(_ datagram: SCTPDatagram) -> [Chunk] {
        (try? SCTPPacket.decode(datagram.payload).chunks) ?? []
    }

    static func forwardTSNs(_ datagrams: [SCTPDatagram]) -> [ForwardTSNChunk] {
        datagrams.flatMap(chunks).compactMap { if case .forwardTSN(let f) = $0 { f } else { nil } }
    }

    static func dataTSNs(_ datagrams: [SCTPDatagram]) -> [TSN] {
        datagrams.flatMap(chunks).compactMap { if case .data(let d) = $0 { d.tsn } else { nil } }
    }

    static func messages(_ events: [SCTPEvent]) -> [String] {
        events.compactMap { if case .message(_, let m) = $0 { String(buffer: m.payload) } else { nil } }
    }

    // MARK: - Negotiation (RFC 3758 §3.3)

    @Test func initAndInitAckAnnounceForwardTSN() throws {
        let l = Lockstep()
        _ = l.connect()
        let initPacket = l.take(l.client)
        guard case .initiation(let initChunk)? = Self.chunks(initPacket[0]).first else {
            Issue.record("no INIT")
            return
        }
        #expect(initChunk.parameters.contains(.forwardTSNSupported))
        #expect(
            initChunk.parameters.contains {
                if case .supportedExtensions(let t) = $0 { t.contains(192) } else { false }
            })
        l.deliver(initPacket, to: l.server)
        let initAck = l.take(l.server)
        guard case .initiationAck(let ack)? = Self.chunks(initAck[0]).first else {
            Issue.record("no INIT-ACK")
            return
        }
        #expect(ack.parameters.contains(.forwardTSNSupported))
        l.deliver(initAck, to: l.client)
        l.exchange()
        let id = l.client.associationIDs[0]
        #expect(l.client.isPartialReliabilityNegotiated(id))
        #expect(l.server.isPartialReliabilityNegotiated(l.server.associationIDs[0]))
    }

    @Test func disabledEndpointAnnouncesNothing() throws {
        let l = Lockstep { $0.partialReliability = false }
        _ = l.connect()
        guard case .initiation(let initChunk)? = Self.chunks(l.take(l.client)[0]).first else {
            Issue.record("no INIT")
            return
        }
        #expect(!initChunk.parameters.contains(.forwardTSNSupported))
        #expect(
            !initChunk.parameters.contains {
                if case .supportedExtensions(let t) = $0 { t.contains(192) } else { false }
            })
    }

    /// A peer that does not list the parameter, as initiator or as responder, never gets a FORWARD-TSN: a timed
    /// message that was sent once is retransmitted and delivered like a reliable one.
    @Test(arguments: [(true, false), (false, true)])
    func peerWithoutTheParameterNeverGetsForwardTSN(clientSupports: Bool, serverSupports: Bool) throws {
        let (l, id) = Self.pair(client: clientSupports, server: serverSupports)
        #expect(!l.client.isPartialReliabilityNegotiated(id))
        try l.client.send(
            ByteBuffer(string: "late"), on: id, stream: StreamID(1), unordered: true,
            reliability: .timed(lifetime: .milliseconds(50)), now: l.now)
        #expect(Self.dataTSNs(l.take(l.client)).count == 1)  // lost
        var sent: [SCTPDatagram] = []
        for _ in 0..<3 {
            l.advanceToNextDeadline()
            let datagrams = l.take(l.client)
            sent += datagrams
            l.deliver(datagrams, to: l.server)
            l.exchange()
        }
        #expect(Self.forwardTSNs(sent).isEmpty)
        #expect(Self.dataTSNs(sent).count >= 1)
        #expect(Self.messages(l.serverEvents) == ["late"])
        #expect(l.client.partialReliabilityCounters.messagesAbandoned == 0)
    }

    // MARK: - Sender and receiver (RFC 3758 §3.5, §3.6)

    @Test func lostTimedMessageIsAbandonedAndSkippedWithForwardTSN() throws {
        let (l, id) = Self.pair()
        try l.client.send(
            ByteBuffer(string: "lost"), on: id, stream: StreamID(1), unordered: true,
            reliability: .timed(lifetime: .milliseconds(100)), now: l.now)
        let lost = Self.dataTSNs(l.take(l.client))
        #expect(lost.count == 1)
        // T3-rtx fires after the lifetime: the chunk is abandoned instead of retransmitted.
        l.advanceToNextDeadline()
        let afterT3 = l.take(l.client)
        #expect(Self.dataTSNs(afterT3).isEmpty)
        let forwards = Self.forwardTSNs(afterT3)
        #expect(forwards.map(\.newCumulativeTSN) == lost)
        #expect(forwards.first?.streams == [])  // unordered: no stream entry (RFC 3758 §3.2)
        l.deliver(afterT3, to: l.server)
        // The receiver acknowledges the new cumulative TSN at once.
        let sack = l.take(l.server)
        let acks = sack.flatMap(Self.chunks).compactMap { chunk -> TSN? in
            switch chunk {
            case .sack(let s): return s.cumulativeTSNAck
            case .nrSack(let s): return s.cumulativeTSNAck
            default: return nil
            }
        }
        #expect(acks == lost)
        l.deliver(sack, to: l.client)
        l.exchange()
        #expect(Self.messages(l.serverEvents).isEmpty)
        #expect(l.client.bufferedAmount(id) == 0)
        #expect(l.client.partialReliabilityCounters.messagesAbandonedSent == 1)
        #expect(l.client.partialReliabilityCounters.forwardTSNsSent == 1)
        #expect(l.server.partialReliabilityCounters.forwardTSNsReceived == 1)
        // The association carries on.
        try l.client.send(ByteBuffer(string: "next"), on: id, stream: StreamID(1), now: l.now)
        l.exchange()
        #expect(Self.messages(l.serverEvents) == ["next"])
    }

    /// An ordered message abandoned in front of others on its stream: the FORWARD-TSN names the stream and SSN, and
    /// the receiver delivers the message that waited behind it.
    @Test func abandonedOrderedMessageReleasesTheOneBehindIt() throws {
        let (l, id) = Self.pair()
        try l.client.send(
            ByteBuffer(string: "A"), on: id, stream: StreamID(2), reliability: .limitedRetransmissions(0), now: l.now)
        _ = l.take(l.client)  // lost
        try l.client.send(ByteBuffer(string: "B"), on: id, stream: StreamID(2), now: l.now)
        l.exchange()
        #expect(Self.messages(l.serverEvents).isEmpty)  // B waits for SSN 0
        l.advanceToNextDeadline()
        let afterT3 = l.take(l.client)
        let forwards = Self.forwardTSNs(afterT3)
        #expect(forwards.count == 1)
        #expect(forwards.first?.streams == [ForwardTSNChunk.Stream(streamID: StreamID(2), ssn: SSN(0))])
        l.deliver(afterT3, to: l.server)
        l.exchange()
        #expect(Self.messages(l.serverEvents) == ["B"])
        #expect(l.client.bufferedAmount(id) == 0)
    }

    /// A large message in fragments: losing one abandons every fragment (RFC 3758 §3.5 A3), and the receiver keeps
    /// none of them.
    @Test func everyFragmentOfAnAbandonedMessageIsSkipped() throws {
        let (l, id) = Self.pair()
        try l.client.send(
            ByteBuffer(repeating: 7, count: 4000), on: id, stream: StreamID(1), unordered: true,
            reliability: .limitedRetransmissions(0), now: l.now)
        var datagrams = l.take(l.client)
        #expect(Self.dataTSNs(datagrams).count == 3)
        let lost = datagrams.remove(at: 1)
        l.deliver(datagrams, to: l.server)
        #expect(l.server.associations.values.first!.reassembly.heldFragmentCount == 2)
        l.exchange()
        l.advanceToNextDeadline()
        let afterT3 = l.take(l.client)
        #expect(Self.forwardTSNs(afterT3).map(\.newCumulativeTSN) == [Self.dataTSNs(datagrams).last!])
        l.deliver(afterT3, to: l.server)
        l.exchange()
        _ = lost
        #expect(Self.messages(l.serverEvents).isEmpty)
        #expect(l.server.associations.values.first!.reassembly.heldFragmentCount == 0)
        #expect(l.server.associations.values.first!.reassembly.bufferedBytes == 0)
        #expect(l.client.bufferedAmount(id) == 0)
    }

    /// RFC 3758 §4.1 TR3: a message whose lifetime ends before it could be sent gets no TSN, so nothing needs
    /// skipping.
    @Test func messageExpiredBeforeItsFirstTransmissionIsDroppedUnsent() throws {
        let l = Lockstep()
        let id = l.connect()
        try l.client.send(
            ByteBuffer(string: "stale"), on: id, stream: StreamID(1), unordered: true,
            reliability: .timed(lifetime: .milliseconds(10)), now: l.now)
        try l.client.send(ByteBuffer(string: "fresh"), on: id, stream: StreamID(1), unordered: true, now: l.now)
        l.now = l.now + .milliseconds(20)
        var sent: [SCTPDatagram] = []
        for _ in 0..<10 {
            let fromClient = l.take(l.client)
            sent += fromClient
            l.deliver(fromClient, to: l.server)
            l.deliver(l.take(l.server), to: l.client)
        }
        #expect(Self.messages(l.serverEvents) == ["fresh"])
        #expect(Self.dataTSNs(sent).count == 1)
        #expect(Self.forwardTSNs(sent).isEmpty)
        #expect(l.client.partialReliabilityCounters.messagesAbandonedUnsent == 1)
        #expect(l.client.bufferedAmount(id) == 0)
    }

    /// RFC 3758 §3.5 C5 and A5: a lost FORWARD-TSN is sent again when T3-rtx expires.
    @Test func lostForwardTSNIsSentAgainOnT3Expiry() throws {
        let (l, id) = Self.pair()
        try l.client.send(
            ByteBuffer(string: "x"), on: id, stream: StreamID(1), unordered: true,
            reliability: .limitedRetransmissions(0), now: l.now)
        _ = l.take(l.client)  // DATA lost
        l.advanceToNextDeadline()
        #expect(Self.forwardTSNs(l.take(l.client)).count == 1)  // FORWARD-TSN lost too
        l.advanceToNextDeadline()
        let again = l.take(l.client)
        #expect(Self.forwardTSNs(again).count == 1)
        l.deliver(again, to: l.server)
        l.exchange()
        #expect(l.client.bufferedAmount(id) == 0)
        #expect(l.client.partialReliabilityCounters.forwardTSNsSent == 2)
        #expect(!l.client.associations[id]!.timers.isArmed(.t3rtx(PathID(0))))
    }

    /// A stale FORWARD-TSN moves nothing but is acknowledged (RFC 3758 §3.6: "The receiver SHOULD send a SACK").
    @Test func staleForwardTSNIsAnsweredWithSack() throws {
        let (l, id) = Self.pair()
        try l.client.send(ByteBuffer(string: "m"), on: id, stream: StreamID(1), now: l.now)
        let data = l.take(l.client)
        l.deliver(data, to: l.server)
        l.exchange()
        let stale = Self.forge(
            [.forwardTSN(ForwardTSNChunk(newCumulativeTSN: Self.dataTSNs(data)[0].previous))], like: data[0])
        l.deliver([stale], to: l.server)
        let reply = l.take(l.server).flatMap(Self.chunks)
        #expect(reply.contains { if case .sack = $0 { true } else if case .nrSack = $0 { true } else { false } })
        #expect(l.server.partialReliabilityCounters.forwardTSNsReceived == 1)
        #expect(Self.messages(l.serverEvents) == ["m"])
    }

    // MARK: - Bad input

    /// RFC 3758 §3.3.1: an endpoint that did not negotiate PR-SCTP answers FORWARD-TSN with an ERROR, as for a chunk
    /// type it does not know, and moves nothing.
    @Test func forwardTSNWithoutNegotiationIsReportedAndIgnored() throws {
        let (l, id) = Self.pair(client: true, server: false)
        try l.client.send(ByteBuffer(string: "m"), on: id, stream: StreamID(1), now: l.now)
        let data = l.take(l.client)
        let forged = Self.forge(
            [.forwardTSN(ForwardTSNChunk(newCumulativeTSN: Self.dataTSNs(data)[0].advanced(by: 5)))], like: data[0])
        l.deliver([forged], to: l.server)
        let reply = l.take(l.server).flatMap(Self.chunks)
        let causes = reply.flatMap { chunk -> [ErrorCause] in if case .error(let e) = chunk { e.causes } else { [] } }
        #expect(causes.contains { if case .unrecognizedChunkType = $0 { true } else { false } })
        #expect(l.server.droppedPackets[.forwardTSNNotNegotiated] == 1)
        #expect(l.server.associations.values.first!.dataTracker.cumulativeTSN == Self.dataTSNs(data)[0].previous)
        l.deliver(data, to: l.server)
        l.exchange()
        #expect(Self.messages(l.serverEvents) == ["m"])
    }

    /// A FORWARD-TSN too short for its New Cumulative TSN, or with half a stream entry, is dropped and counted; the
    /// association goes on.
    @Test(arguments: [[UInt8]([192, 0, 0, 6, 0, 0, 0, 0]), [192, 0, 0, 10, 0, 0, 0, 1, 0, 1, 0, 0]])
    func malformedForwardTSNIsDroppedAndCounted(chunk: [UInt8]) throws {
        let (l, id) = Self.pair()
        try l.client.send(ByteBuffer(string: "m"), on: id, stream: StreamID(1), now: l.now)
        let data = l.take(l.client)
        var packet = ByteBuffer()
        packet.writeImmutableBuffer(data[0].payload.getSlice(at: data[0].payload.readerIndex, length: 12)!)
        packet.writeBytes(chunk)
        packet.setInteger(UInt32(0), at: 8)
        packet.setInteger(CRC32c.packetChecksum(packet), at: 8, endianness: .little)
        var forged = data[0]
        forged.payload = packet
        let before = l.server.droppedPackets[.malformedChunk] ?? 0
        l.deliver([forged], to: l.server)
        #expect(l.server.droppedPackets[.malformedChunk] == before + 1)
        #expect(l.server.partialReliabilityCounters.forwardTSNsReceived == 0)
        l.deliver(data, to: l.server)
        l.exchange()
        #expect(Self.messages(l.serverEvents) == ["m"])
        #expect(l.closeReasons(l.serverEvents).isEmpty)
    }

    /// A FORWARD-TSN further ahead than any TSN the peer could have sent is dropped and counted.
    @Test func forwardTSNFarBeyondTheWindowIsDropped() throws {
        let (l, id) = Self.pair()
        try l.client.send(ByteBuffer(string: "m"), on: id, stream: StreamID(1), now: l.now)
        let data = l.take(l.client)
        let forged = Self.forge(
            [.forwardTSN(ForwardTSNChunk(newCumulativeTSN: Self.dataTSNs(data)[0].advanced(by: 1 << 24)))],
            like: data[0])
        l.deliver([forged], to: l.server)
        #expect(l.server.droppedPackets[.forwardTSNBeyondWindow] == 1)
        l.deliver(data, to: l.server)
        l.exchange()
        #expect(Self.messages(l.serverEvents) == ["m"])
    }

    /// A packet with the header of `template` (ports, tag) and `chunks`.
    static func forge(_ chunks: [Chunk], like template: SCTPDatagram) -> SCTPDatagram {
        var datagram = template
        let header = try! RawPacket.parse(template.payload).header
        datagram.payload = SCTPPacket(header: header, chunks: chunks).encode()
        return datagram
    }
}
