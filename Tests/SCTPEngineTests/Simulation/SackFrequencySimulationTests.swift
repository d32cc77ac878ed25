import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// `SCTPConfiguration.packetsPerSack` above the RFC's 2, with this engine as the sender (it sets the I bit whenever
/// its window, its share of the peer's buffer, the peer's window or its queue runs out): fewer SACKs on the return
/// links for the same goodput.
@Suite struct SackFrequencySimulationTests {
    static let labPaths = [
        PathSpec(rateBitsPerSecond: 20_000_000, rtt: .milliseconds(20), queueBytes: 125_000),
        PathSpec(rateBitsPerSecond: 30_000_000, rtt: .milliseconds(20), queueBytes: 187_500),
    ]

    struct Outcome {
        var goodput: Double
        var returnPackets: Int
        var dataPackets: Int
        var intact: Bool
    }

    static func run(
        packetsPerSack: Int, paths: [PathSpec] = labPaths, congestionControl: SCTPCongestionControl = .bbr,
        bytes: Int = 8_000_000, seed: UInt64 = 3
    ) throws -> Outcome {
        var configuration = SCTPConfiguration()
        configuration.packetsPerSack = packetsPerSack
        configuration.congestionControl = congestionControl
        if paths.count == 1 { configuration.multipath = .singlePath }
        let scenario = MultipathScenario(seed: seed, paths: paths, configuration: configuration)
        let result = try scenario.run(bytes: bytes)
        return Outcome(
            goodput: result.goodput, returnPackets: scenario.returnLinks.map(\.counters.sentPackets).reduce(0, +),
            dataPackets: scenario.dataLinks.map(\.counters.sentPackets).reduce(0, +), intact: result.intact)
    }

    @Test(arguments: [SCTPCongestionControl.bbr, .reno])
    func everyFourthPacketHalvesTheSacksAndKeepsTheGoodput(_ congestionControl: SCTPCongestionControl) throws {
        let rfc = try Self.run(packetsPerSack: 2, congestionControl: congestionControl)
        let thinned = try Self.run(packetsPerSack: 4, congestionControl: congestionControl)
        #expect(rfc.intact && thinned.intact)
        #expect(Double(thinned.returnPackets) <= 0.65 * Double(rfc.returnPackets), "\(rfc) \(thinned)")
        #expect(thinned.goodput >= 0.97 * rfc.goodput, "\(rfc) \(thinned)")
    }
}
