import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// Path failure and return (RFC 7829), NAT rebinding of port and address (RFC 6951 §5.4), and every reply going
/// to the UDP source port of what it answers.
@Suite struct MultihomingPathManagementTests {
    typealias S = TwoNATScenario

    /// Path 1 dies in the middle of a transfer: it becomes potentially failed within its RTO, the data goes on
    /// over path 2, every byte arrives, and path 1 comes back once its heartbeats are answered again.
    @Test func failoverDuringTransferLosesNothingAndThePathReturns() throws {
        // PFMR 0: potentially failed after the first timeout (RFC 7829 as CMT-PF uses it).
        let s = S(seed: 21, name: "failover") { $0.potentiallyFailedThreshold = 0 }
        var pf: SCTPTime?
        var backActive: SCTPTime?
        s.client.onEvent = { event, _ in
            if case .pathStateChanged(_, let remote, let state) = event, remote == S.s1 {
                if state == .potentiallyFailed, pf == nil { pf = s.network.now }
                if state == .active, pf != nil { backActive = s.network.now }
            }
        }
        try s.establish()
        try s.addSecondPath()
        let total = 3_000_000
        s.client.startTransfer(on: s.association, stream: StreamID(0), total: total, messageSize: 1200)
        try s.network.run(for: .milliseconds(300))
        let rto = try #require(s.clientPaths().first { $0.remote == S.s1 }?.rto)
        let association = try #require(s.client.endpoint.associations[s.association])
        let path1 = try #require(association.paths.first { $0.remoteAddress == S.s1 })
        // T3-rtx was armed (or restarted by the last SACK) with the RTO of that moment, before the link died.
        let t3 = try #require(association.timers.deadline(of: .t3rtx(path1.id)))
        let down = s.network.now
        s.up1.isUp = false
        s.down1.isUp = false
        try s.network.runUntil({ pf != nil }, timeout: .seconds(10))
        let failover = try #require(pf) - down
        print("failover after \(failover) (RTO now \(rto), T3-rtx due \(t3 - down) after the link died)")
        // RFC 9260 §6.3.2 R3 restarts T3 while SACKs (here over path 2) still acknowledge path-1 data that arrived
        // before the link died: the bound is the RTO plus the other path's round trip.
        #expect(t3 - down <= rto + .milliseconds(1))
        #expect(failover <= rto + S.delay2 * 2 + .milliseconds(10))
        try s.network.run(for: .seconds(2))
        s.up1.isUp = true
        s.down1.isUp = true
        try s.network.runUntil({ s.server.totalReceivedBytes == total && backActive != nil }, timeout: .seconds(120))
        #expect(s.server.corruption == nil)
        #expect(s.server.receivedBytes[0] == total)
        #expect(s.client.closed.isEmpty)
    }

    /// The NAT forgets its mapping mid-transfer: the client's next packets come from a new port, the server moves
    /// the path there and answers on it; nothing is lost.
    @Test func natRebindingMidTransferLosesNoByte() throws {
        let s = S(seed: 22, name: "rebinding", nat1: .portPreserving)
        try s.establish()
        let before = try #require(s.serverPaths().first?.remote)
        let total = 1_000_000
        s.client.startTransfer(on: s.association, stream: StreamID(2), total: total, messageSize: 1000)
        s.network.schedule(after: .milliseconds(150)) { s.nat1.rebind() }
        try s.network.runUntil({ s.server.totalReceivedBytes == total }, timeout: .seconds(60))
        let after = try #require(s.serverPaths().first?.remote)
        #expect(after.ip == before.ip && after.port != before.port)
        #expect(s.server.pathEvents.contains {
            if case .pathRemoteChanged(_, let from, let to) = $0 { from == before && to == after } else { false }
        })
        #expect(s.server.corruption == nil)
        #expect(s.server.receivedBytes[2] == total)
    }

    /// A packet with a valid tag from a new address arriving at the local address of exactly one path moves that
    /// path (address rebinding); the reply goes to the new address and port.
    @Test func addressRebindingMovesThePathItArrivedOn() throws {
        let l = Lockstep()
        _ = l.connect()
        l.exchange()
        let s = try #require(l.server.associations.values.first)
        let moved = SCTPSocketAddress(ip: .init(v4: 100, 64, 0, 9), port: 31000)
        let heartbeat = Chunk.heartbeat(HeartbeatChunk(info: ByteBuffer(string: "probe")))
        let packet = SCTPPacket(
            header: CommonHeader(sourcePort: 5000, destinationPort: 5000, verificationTag: s.localTag, checksum: 0),
            chunks: [heartbeat]
        ).encode()
        l.server.handle(SCTPDatagram(source: moved, destination: l.serverAddress, payload: packet), now: l.now)
        l.drainEvents()
        #expect(s.paths.map(\.remoteAddress) == [moved])
        #expect(l.serverEvents.contains { if case .pathRemoteChanged(_, _, let to) = $0 { to == moved } else { false } })
        let replies = l.take(l.server)
        #expect(replies.contains { $0.destination == moved && Lockstep.chunkTypes($0) == [HeartbeatAckChunk.type] })
    }

    /// An ASCONF from an unknown address is never taken for a rebinding: the old path stays, a new one is added.
    @Test func asconfFromANewAddressIsNotARebinding() throws {
        let l = Lockstep()
        let id = l.connect()
        l.exchange()
        let s = try #require(l.server.associations.values.first)
        let c2 = SCTPSocketAddress(ip: .init(v4: 10, 0, 0, 2), port: 40001)
        try l.client.addLocalAddress(c2, toward: l.serverAddress, on: id, now: l.now)
        l.exchange()
        #expect(s.paths.map(\.remoteAddress) == [l.clientAddress, c2])
        #expect(!l.serverEvents.contains { if case .pathRemoteChanged = $0 { true } else { false } })
        let client = try #require(l.client.associations[id])
        #expect(client.paths.filter { $0.remoteAddress == l.serverAddress }.compactMap(\.localAddress) == [
            l.clientAddress, c2,
        ])
        #expect(client.paths.allSatisfy { $0.state == .active })
    }

    /// COOKIE-ACK, HEARTBEAT-ACK, ASCONF-ACK and ABORT each go to the UDP port the packet they answer came from.
    @Test func everyReplyGoesToTheSourcePortOfWhatItAnswers() throws {
        let l = Lockstep()
        let id = l.connect()
        // INIT-ACK: covered by HandshakeEdgeCaseTests. COOKIE-ECHO from a port the NAT rewrote.
        l.deliver(l.take(l.client), to: l.server)
        l.deliver(l.take(l.server), to: l.client)
        let natted = SCTPSocketAddress(ip: l.clientAddress.ip, port: 51234)
        for var echo in l.take(l.client) {
            echo.source = natted
            l.server.handle(echo, now: l.now)
        }
        let cookieAck = l.take(l.server)
        #expect(cookieAck.first { Lockstep.chunkTypes($0).first == CookieAckChunk.type }?.destination == natted)
        l.deliver(cookieAck, to: l.client)
        l.drainEvents()

        // HEARTBEAT from yet another port.
        let s = try #require(l.server.associations.values.first)
        let other = SCTPSocketAddress(ip: l.clientAddress.ip, port: 52000)
        let header = CommonHeader(sourcePort: 5000, destinationPort: 5000, verificationTag: s.localTag, checksum: 0)
        let hb = SCTPPacket(header: header, chunks: [.heartbeat(HeartbeatChunk(info: ByteBuffer(string: "x")))])
        l.server.handle(SCTPDatagram(source: other, destination: l.serverAddress, payload: hb.encode()), now: l.now)
        #expect(l.take(l.server).first { Lockstep.chunkTypes($0) == [HeartbeatAckChunk.type] }?.destination == other)

        // ASCONF from the new address's port.
        let c2 = SCTPSocketAddress(ip: .init(v4: 10, 0, 0, 2), port: 53000)
        try l.client.addLocalAddress(c2, toward: l.serverAddress, on: id, now: l.now)
        l.deliver(l.take(l.client), to: l.server)
        let ack = l.take(l.server).first { Lockstep.chunkTypes($0).contains(ASCONFAckChunk.type) }
        #expect(ack?.destination == c2)
        #expect(ack?.source == l.serverAddress)

        // ABORT to an out-of-the-blue packet from port 54000.
        let stranger = SCTPSocketAddress(ip: .init(v4: 10, 9, 9, 9), port: 54000)
        let ootb = SCTPPacket(
            header: CommonHeader(sourcePort: 5000, destinationPort: 5000, verificationTag: VerificationTag(12345), checksum: 0),
            chunks: [.heartbeat(HeartbeatChunk(info: ByteBuffer(string: "?")))])
        l.server.handle(SCTPDatagram(source: stranger, destination: l.serverAddress, payload: ootb.encode()), now: l.now)
        #expect(l.take(l.server).first { Lockstep.chunkTypes($0) == [AbortChunk.type] }?.destination == stranger)
    }
}
