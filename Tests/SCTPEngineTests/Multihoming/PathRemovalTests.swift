import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// Removing a path (ASCONF DELETE IP, RFC 5061 §5.2.2, or a local address that went away) must leave what the
/// association keeps per path with its own path: a SACK and a DELETE IP bundled in one packet mark a path for fast
/// retransmission and then remove a path before it, and the transmit that ends the packet's handling must send on
/// the marked path, not on the path that came to stand where it stood (or beyond the end of the paths). The same
/// holds for the primary and for the path SACKs go back on.
@Suite struct PathRemovalTests {
    static let path = PathSpec(rateBitsPerSecond: 20_000_000, rtt: .milliseconds(20))

    /// A finished transfer over four paths: the client's association, every path confirmed and nothing in flight.
    func fourPathAssociation(seed: UInt64) throws -> (MultipathScenario, Association) {
        let scenario = MultipathScenario(seed: seed, paths: [Self.path, Self.path, Self.path, Self.path])
        let result = try scenario.run(bytes: 2_000_000)
        #expect(result.intact)
        let association = try #require(scenario.client.endpoint.associations.values.first)
        try #require(association.paths.count == 4)
        try #require(association.paths.allSatisfy { $0.isActive })
        return (scenario, association)
    }

    /// With the mark kept by position and not moved, it would name the fourth path after the first is removed (the
    /// retransmission goes to 192.0.2.4 instead of 192.0.2.3; checked against main 11cd80f without its re-mapping).
    @Test func aFastRetransmissionGoesOnTheMarkedPathAfterAnEarlierPathIsRemoved() throws {
        let (scenario, association) = try fourPathAssociation(seed: 41)
        let now = scenario.network.now
        let (first, marked) = (association.paths[0].id, association.paths[2].id)
        // One message in flight, then marked for retransmission as a SACK's miss indications would, on the third
        // path; that path lost it and has its allowance in recovery.
        try association.sendMessage(
            ByteBuffer(repeating: 7, count: 1000), stream: StreamID(0), ppid: PPID(0), unordered: false,
            transmitting: false, now: now)
        association.transmit(now: now)
        let sentOn = try #require(association.paths.firstID { association.outstanding.flightSize(on: $0.id) > 0 })
        #expect(association.outstanding.markAllForRetransmission(on: sentOn).bytes > 0)
        association.output.datagrams.removeAll()
        association.fastRetransmitPaths = [marked]
        association.paths[marked].recoveryAllowance = 5000
        association.hasRecoveryAllowance = true

        association.removePath(first)

        #expect(association.fastRetransmitPaths == [marked])
        #expect(association.paths[marked].recoveryAllowance == 5000)
        association.transmit(now: now)
        let retransmission = try #require(association.output.datagrams.first)
        #expect(retransmission.destination == association.paths[marked].remoteAddress)
        #expect(association.outstanding.flightSize(on: marked) > 0, "the chunk is in flight on the marked path")
        #expect(association.fastRetransmitPaths.isEmpty)
        #expect(association.paths.allSatisfy { $0.recoveryAllowance == 0 }, "allowances last one transmit")
    }

    @Test func removingTheMarkedPathItselfDropsItsMark() throws {
        let (scenario, association) = try fourPathAssociation(seed: 42)
        let marked = association.paths[1].id
        association.fastRetransmitPaths = [marked]
        association.paths[marked].recoveryAllowance = 700
        association.hasRecoveryAllowance = true

        association.removePath(marked)

        #expect(!association.paths.contains(marked))
        association.transmit(now: scenario.network.now)
        #expect(association.fastRetransmitPaths.isEmpty)
        #expect(association.paths.allSatisfy { $0.recoveryAllowance == 0 })
    }

    @Test func thePrimaryAndTheSackPathStayOnTheirPathsWhenAnEarlierOneIsRemoved() throws {
        let (_, association) = try fourPathAssociation(seed: 43)
        let (first, second, third) = (association.paths[0].id, association.paths[1].id, association.paths[2].id)
        let thirdRemote = association.paths[third].remoteAddress
        #expect(association.setPrimary(remote: thirdRemote))
        association.lastDataPathID = second

        association.removePath(first)

        #expect(association.paths.primaryID == third)
        #expect(association.paths.primary.remoteAddress == thirdRemote)
        #expect(association.sendPathID == third)
        #expect(association.sackPathID == second)
        // Once the path DATA last came on is gone, SACKs go on the first path (the third of four now), and the
        // primary stays.
        association.removePath(second)
        #expect(association.paths.map(\.id).first == third)
        #expect(association.sackPathID == third)
        #expect(association.paths.primaryID == third)
    }

    /// A chunk answered on the path its packet came on, after an ASCONF earlier in the same packet removed that path,
    /// goes on the primary (a position kept across the removal named another path or none).
    @Test func aReplyOnAPathRemovedWhileItsPacketWasHandledGoesOnThePrimary() throws {
        let (scenario, association) = try fourPathAssociation(seed: 44)
        let removed = association.paths[1].id
        association.removePath(removed)
        association.output.datagrams.removeAll()

        association.send([.error(ErrorChunk(causes: []))], path: removed, now: scenario.network.now)

        let reply = try #require(association.output.datagrams.first)
        #expect(reply.destination == association.paths.primary.remoteAddress)
    }
}
