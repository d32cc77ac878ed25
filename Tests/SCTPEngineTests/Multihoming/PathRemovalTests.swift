import SCTPSimulation
import Testing

@testable import SCTPEngine

/// Removing a path (ASCONF DELETE IP, RFC 5061 §5.2.2, or a local address that went away) shifts the indices of
/// the paths after it. State the association keeps per path index must follow its path, not its old index: a SACK
/// and a DELETE IP bundled in one packet mark a path for fast retransmission and then remove a path before it,
/// and the transmit that ends the packet's handling must send on the marked path, not on the path that took its
/// index (or beyond the end of the paths).
@Suite struct PathRemovalTests {
    static let path = PathSpec(rateBitsPerSecond: 20_000_000, rtt: .milliseconds(20))

    @Test func fastRetransmitMarksAndRecoveryAllowancesFollowTheirPath() throws {
        let scenario = MultipathScenario(seed: 41, paths: [Self.path, Self.path, Self.path])
        let result = try scenario.run(bytes: 2_000_000)
        #expect(result.intact)
        let association = try #require(scenario.client.endpoint.associations.values.first)
        try #require(association.paths.count == 3)
        let marked = association.paths[2].id
        let other = association.paths[1].id
        association.fastRetransmitPaths = [2]
        association.recoveryAllowance = [0, 700, 5000]

        association.removePath(at: 0)

        let markedIndex = try #require(association.pathIndex(of: marked))
        let otherIndex = try #require(association.pathIndex(of: other))
        try #require(association.fastRetransmitPaths == [markedIndex], "\(association.fastRetransmitPaths)")
        try #require(association.recoveryAllowance.count <= association.paths.count)
        #expect(association.recoveryAllowance[markedIndex] == 5000)
        #expect(association.recoveryAllowance[otherIndex] == 700)
        // Removing the marked path itself forgets its mark and its allowance.
        association.removePath(at: markedIndex)
        #expect(association.fastRetransmitPaths.isEmpty)
        #expect(association.recoveryAllowance.count <= association.paths.count)
        association.transmit(now: scenario.network.now)
    }
}
