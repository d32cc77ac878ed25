import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// ASCONF through two NATs, the three NAT failures (a reply to a fixed 9899, a wildcard Add IP from the wrong
/// address, no immediate HEARTBEAT on a new path), and the timing of a new path.
@Suite struct MultihomingAsconfNATTests {
    typealias S = TwoNATScenario

    @Test func wildcardAddIPFromTheNewAddressTeachesTheServerTheSecondNAT() throws {
        let s = S(seed: 1, name: "asconf-two-nats")
        try s.establish()
        // The INIT listed no client address; the server knows only N1 (port rewritten by the symmetric NAT).
        #expect(s.serverPaths().map(\.remote.ip) == [S.n1])
        #expect(s.serverPaths()[0].remote.port != S.c1.port)
        try s.addSecondPath()
        let server2 = try #require(s.serverPath2)
        #expect(server2.remote.ip == S.n2)
        #expect(server2.local == S.s2)
        #expect(s.nat2.bindings(at: s.network.now).map(\.outside) == [server2.remote])
        #expect(s.serverPaths().filter { $0.remote.ip == S.n1 }.count == 1)
        #expect(s.clientPath2?.local == S.c2)
    }

    /// The wrong behaviour: the same ASCONF leaving from C1 through N1 makes the server learn N1 again, a second
    /// path through the same access link. Ours leaves from C2.
    @Test func wildcardAddIPFromTheWrongAddressWouldAddN1Again() throws {
        let s = S(seed: 2, name: "asconf-wrong-source")
        s.network.addBidirectionalLink(between: S.c1.ip, and: S.s2.ip, name: "c1-s2", nat: s.nat1)
        try s.establish()
        let id = try #require(s.association)
        try s.client.endpoint.addLocalAddress(S.c2, toward: S.s2, on: id, now: s.network.now)
        var asconf = try #require(s.client.endpoint.pollTransmit())
        #expect(asconf.source == S.c2)
        #expect(S.chunkTypes(asconf) == [AuthChunk.type, ASCONFChunk.type])
        asconf.source = S.c1
        s.network.send(asconf)
        // What the server learnt from that one ASCONF (later packets from C2 would look like a rebinding of it).
        try s.network.runUntil({ s.serverPaths().contains { $0.local?.ip == S.s2.ip } }, timeout: .seconds(1))
        let learnt = try #require(s.serverPaths().first { $0.local?.ip == S.s2.ip })
        #expect(learnt.remote.ip == S.n1)
        #expect(!s.serverPaths().contains { $0.remote.ip == S.n2 })
    }

    /// Time from ASCONF-ACK to the new path being confirmed (and to DATA on it, once the scheduler sends on
    /// every active path): at most one round trip of that path plus 10 ms, on both sides.
    @Test func newPathIsConfirmedWithinOneRoundTripOfTheAsconfAck() throws {
        let s = S(seed: 3, name: "asconf-timing")
        var asconfArrived: SCTPTime?
        var ackArrived: SCTPTime?
        var firstDataOnPath2: SCTPTime?
        s.network.onDelivery = { datagram, link, time in
            let types = S.chunkTypes(datagram)
            if types.contains(ASCONFChunk.type), asconfArrived == nil { asconfArrived = time }
            if types.contains(ASCONFAckChunk.type), ackArrived == nil { ackArrived = time }
            if link === s.up2, types.contains(DataChunk.type), firstDataOnPath2 == nil { firstDataOnPath2 = time }
        }
        try s.establish()
        s.client.startTransfer(on: s.association, stream: StreamID(0), total: 400_000, messageSize: 1000)
        try s.addSecondPath()
        let clientConfirmed = s.network.now
        let rtt2 = S.delay2 * 2
        let bound = rtt2 + .milliseconds(10)
        let ack = try #require(ackArrived)
        let asconf = try #require(asconfArrived)
        #expect(clientConfirmed - ack <= bound)
        #expect(try #require(s.serverPath2?.srtt) <= bound)
        // The server probed at once too: its path was active before the client's.
        #expect(s.serverPath2?.state == .active)
        print(
            "new path: ASCONF at \(asconf), ASCONF-ACK at \(ack), confirmed at \(clientConfirmed) (\(clientConfirmed - ack) after the ACK, RTT \(rtt2))"
        )
        try s.network.runUntil({ s.server.totalReceivedBytes == 400_000 }, timeout: .seconds(30))
        if let first = firstDataOnPath2 {
            // Once the scheduler sends on every active path (CMT): DATA left on path 2 within the bound (it
            // arrives one path delay after it leaves). A single-path scheduler sends nothing there.
            print("first DATA on the new path sent \(first - S.delay2 - ack) after the ASCONF-ACK")
            #expect(first - S.delay2 - ack <= bound)
        }
        #expect(s.server.corruption == nil)
    }

    /// The wrong behaviour: without the immediate HEARTBEAT the path waits for HB.interval and misses the bound.
    @Test func withoutAnImmediateHeartbeatTheNewPathWaitsForHBInterval() throws {
        let s = S(seed: 4, name: "asconf-no-immediate-hb", immediateHeartbeats: false)
        var ackArrived: SCTPTime?
        s.network.onDelivery = { datagram, _, time in
            if S.chunkTypes(datagram).contains(ASCONFAckChunk.type), ackArrived == nil { ackArrived = time }
        }
        try s.establish()
        try s.addSecondPath(timeout: .seconds(60))
        let ack = try #require(ackArrived)
        #expect(s.network.now - ack > S.delay2 * 2 + .milliseconds(10))
        #expect(s.network.now - ack >= SCTPConfiguration().heartbeatInterval)
    }

    /// The wrong behaviour: a reply sent to N1:9899 instead of the NAT's port is dropped as unsolicited. Our
    /// replies reach the client through a port-randomising NAT.
    @Test func replyToAFixed9899IsDroppedByTheNAT() throws {
        let s = S(seed: 5, name: "reply-port")
        var initAck: SCTPDatagram?
        s.network.onDelivery = { datagram, _, _ in
            if S.chunkTypes(datagram) == [InitAckChunk.type] { initAck = datagram }
        }
        try s.establish()
        let outside = try #require(s.nat1.bindings(at: s.network.now).first?.outside)
        #expect(outside.port != SCTPConfiguration.defaultUDPPort)
        var wrong = try #require(initAck)
        wrong.source = S.s1
        wrong.destination = SCTPSocketAddress(ip: S.n1, port: SCTPConfiguration.defaultUDPPort)
        let before = s.nat1.counters.droppedUnsolicited
        s.network.send(wrong)
        try s.network.run(for: .milliseconds(50))
        #expect(s.nat1.counters.droppedUnsolicited == before + 1)
    }

    @Test func duplicateAsconfGetsTheCachedAckAndTheQueueIsSerial() throws {
        let s = S(seed: 6, name: "asconf-serials")
        var asconfs: [SCTPDatagram] = []
        var acks: [ASCONFSerial] = []
        s.network.onDelivery = { datagram, _, _ in
            guard let packet = try? SCTPPacket.decode(datagram.payload) else { return }
            for chunk in packet.chunks {
                if case .asconf = chunk { asconfs.append(datagram) }
                if case .asconfAck(let ack) = chunk { acks.append(ack.serial) }
            }
        }
        try s.establish()
        let id = try #require(s.association)
        // Two requests at once: the second waits for the first's ASCONF-ACK.
        s.client.perform(at: s.network.now) {
            try! $0.addLocalAddress(S.c2, toward: S.s2, on: id, now: s.network.now)
            try! $0.requestPeerPrimary(from: S.c2, toward: S.s2, on: id, now: s.network.now)
        }
        let association = try #require(s.client.endpoint.associations[id])
        #expect(association.asconf.outstanding != nil && association.asconf.queue.count == 1)
        try s.network.run(for: .seconds(1))
        #expect(acks.count == 2 && acks[1] == acks[0].next)
        // The server made C2's NAT address its primary.
        let server = try #require(s.server.endpoint.associations[s.serverAssociation])
        #expect(server.paths.primary.remoteAddress.ip == S.n2)
        // A replayed ASCONF (as if our ACK were lost) gets the cached ASCONF-ACK, and changes nothing.
        let pathsBefore = server.paths.count
        let replay = try #require(asconfs.last)
        let reverse = SCTPDatagram(source: replay.source, destination: replay.destination, payload: replay.payload)
        s.server.handle(reverse, now: s.network.now)
        var answers: [SCTPDatagram] = []
        while let d = s.server.endpoint.pollTransmit() { answers.append(d) }
        #expect(answers.contains { S.chunkTypes($0).contains(ASCONFAckChunk.type) && $0.destination == replay.source })
        #expect(server.paths.count == pathsBefore)
    }

    @Test func lostAsconfIsRetransmittedOnT4AndCountsAsAnError() throws {
        let s = S(seed: 7, name: "asconf-t4")
        try s.establish()
        s.up2.isUp = false
        let id = try #require(s.association)
        s.client.perform(at: s.network.now) {
            try! $0.addLocalAddress(S.c2, toward: S.s2, on: id, now: s.network.now)
        }
        let association = try #require(s.client.endpoint.associations[id])
        let serial = try #require(association.asconf.outstanding?.chunk.serial)
        let errorsBefore = association.errorCount
        try s.network.runUntil({ association.asconf.outstanding?.retransmissions == 1 }, timeout: .seconds(3))
        #expect(association.errorCount == errorsBefore + 1)
        try s.network.run(for: .seconds(3))
        let outstanding = try #require(association.asconf.outstanding)
        #expect(outstanding.retransmissions >= 2)
        #expect(outstanding.chunk.serial == serial)
        s.up2.isUp = true
        try s.network.runUntil(
            { s.clientPath2?.state == .active && s.serverPath2?.state == .active }, timeout: .seconds(30))
        #expect(association.asconf.outstanding == nil)
    }
}
