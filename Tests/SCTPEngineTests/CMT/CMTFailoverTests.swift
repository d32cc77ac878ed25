import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// Failover under CMT: when one of two paths dies mid-transfer, whichever it is and whatever the receive buffer
/// and buffer splitting, NewReno or BBR, every byte still arrives and the transfer ends at about the surviving
/// path's rate.
@Suite struct CMTFailoverTests {
    static let fast = PathSpec(rateBitsPerSecond: 30_000_000, rtt: .milliseconds(10))
    static let slow = PathSpec(rateBitsPerSecond: 10_000_000, rtt: .milliseconds(60))

    struct Variant: CustomTestStringConvertible, Sendable {
        /// The path that fails: 0 is the primary (fast) one.
        var failing: Int
        var at: SCTPDuration
        var receiveBuffer: Int
        var senderSplitting = true
        var receiverSplitting = false

        var testDescription: String {
            "path \(failing + 1) fails at \(at.milliseconds) ms, \(receiveBuffer / 1024) KiB buffer, sender splitting "
                + "\(senderSplitting ? "on" : "off"), receiver splitting \(receiverSplitting ? "on" : "off")"
        }
    }

    static let variants: [Variant] = [
        Variant(failing: 0, at: .seconds(1), receiveBuffer: 512 * 1024),
        Variant(failing: 0, at: .seconds(1), receiveBuffer: 512 * 1024, senderSplitting: false),
        Variant(
            failing: 0, at: .seconds(1), receiveBuffer: 512 * 1024, senderSplitting: false, receiverSplitting: true),
        Variant(failing: 0, at: .milliseconds(200), receiveBuffer: 512 * 1024),
        Variant(failing: 0, at: .seconds(3), receiveBuffer: 512 * 1024),
        Variant(failing: 0, at: .seconds(1), receiveBuffer: 128 * 1024),
        Variant(failing: 0, at: .seconds(1), receiveBuffer: 128 * 1024, senderSplitting: false),
        Variant(failing: 1, at: .seconds(1), receiveBuffer: 512 * 1024),
        Variant(failing: 1, at: .milliseconds(200), receiveBuffer: 128 * 1024),
        Variant(failing: 1, at: .seconds(3), receiveBuffer: 512 * 1024, senderSplitting: false),
    ]

    /// The bound: twice what the surviving path alone needs for the whole transfer, plus 5 s for detecting the
    /// failure (T3 and heartbeat timeouts) and getting back up to speed.
    @Test(arguments: variants, [SCTPCongestionControl.reno, .bbr])
    func everyByteArrivesAtAboutTheSurvivingPathsRate(
        _ variant: Variant, congestionControl: SCTPCongestionControl
    ) throws {
        var configuration = SCTPConfiguration()
        configuration.congestionControl = congestionControl
        configuration.receiveBufferSize = variant.receiveBuffer
        configuration.multipath.senderBufferSplitting = variant.senderSplitting
        configuration.multipath.receiverBufferSplitting = variant.receiverSplitting
        let paths = [Self.fast, Self.slow]
        // Enough that about two seconds of work remain at the failure even with both paths running flat out.
        let bytes = Int(Double(paths.map(\.rateBitsPerSecond).reduce(0, +)) / 8 * (variant.at.seconds + 2))
        let survivor = paths[1 - variant.failing]
        let alone = Double(bytes * 8) / Double(survivor.rateBitsPerSecond)
        let bound = SCTPDuration.milliseconds(Int64((2 * alone + 5) * 1000))
        let scenario = MultipathScenario(seed: 21, paths: paths, configuration: configuration)
        let result = try scenario.run(
            bytes: bytes, failure: (index: variant.failing, at: variant.at), timeout: bound + .seconds(10))
        #expect(result.intact)
        #expect(result.duration > variant.at, "the transfer ended before the failure")
        #expect(result.duration <= bound, "took \(result.duration), bound \(bound)")
    }
}
