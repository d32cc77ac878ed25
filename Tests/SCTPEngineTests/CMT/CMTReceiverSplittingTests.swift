import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// Receiver-side buffer splitting inside an association: the client has one address, the server two, so the
/// server has a single path back to the client yet receives DATA over two routes, and must split its buffer
/// between those routes.
@Suite struct CMTReceiverSplittingTests {
    static let fastSpec = PathSpec(rateBitsPerSecond: 50_000_000, rtt: .milliseconds(10))
    static let slowSpec = PathSpec(rateBitsPerSecond: 5_000_000, rtt: .milliseconds(150), loss: 0.03)
    /// The server address the slow path (index 1) reaches, as `MultipathScenario` numbers them.
    static let slowServerIP = SCTPIPAddress(v4: 192, 0, 2, 2)

    /// What the probe saw of the server's splitter on the slow route.
    struct SlowRouteTrace {
        var samples = 0
        var peakHeld = 0
        var worstExcess = Int.min
    }

    static func run(splitting: Bool, bytes: Int, seed: UInt64) throws -> (MultipathScenario.Result, SlowRouteTrace) {
        var configuration = SCTPConfiguration()
        configuration.receiveBufferSize = 128 * 1024
        configuration.multipath.senderBufferSplitting = false
        configuration.multipath.receiverBufferSplitting = splitting
        let scenario = MultipathScenario(seed: seed, paths: [fastSpec, slowSpec], configuration: configuration)
        var trace = SlowRouteTrace()
        let result = try scenario.run(
            bytes: bytes,
            probe: (
                interval: .milliseconds(1),
                action: { _ in
                    guard let association = scenario.server.endpoint.associations.values.first else { return }
                    let splitter = association.receiveSplitter
                    guard let slow = splitter.heldBytes.keys.first(where: { $0.local.ip == slowServerIP }) else {
                        return
                    }
                    let held = splitter.heldBytes[slow] ?? 0
                    let share = splitter.share(of: slow, pathCount: splitter.routeCount(including: slow))
                    trace.samples += 1
                    trace.peakHeld = max(trace.peakHeld, held)
                    trace.worstExcess = max(trace.worstExcess, held - share)
                }
            ))
        return (result, trace)
    }

    /// Seeds vary the loss pattern on the slow path. Goodput is compared with the splitting off on the same seed:
    /// a 3%-loss path carries only a few percent of the bytes, so the splitter seldom drops anything here and the
    /// two runs land within a few percent of each other (a single early drop can cost a little either way).
    @Test(arguments: [21, 22, 23, 24] as [UInt64])
    func theSlowRouteNeverHoldsMoreThanItsShareAndGoodputDoesNotSuffer(seed: UInt64) throws {
        let bytes = 6_000_000
        let (split, trace) = try Self.run(splitting: true, bytes: bytes, seed: seed)
        let (unsplit, _) = try Self.run(splitting: false, bytes: bytes, seed: seed)
        #expect(split.intact && unsplit.intact)
        // The server keyed the slow path's DATA apart from the fast one's and saw it hold data out of order.
        #expect(trace.samples > 0 && trace.peakHeld > 0, "\(trace)")
        #expect(trace.worstExcess <= 0, "slow route held up to \(trace.worstExcess) bytes beyond its share")
        let figures = "split \(split.goodput / 1e6) vs unsplit \(unsplit.goodput / 1e6) Mbit/s; per path "
            + "\(split.bytesPerPath) vs \(unsplit.bytesPerPath); slow route peak held \(trace.peakHeld)"
        #expect(split.goodput >= 0.95 * unsplit.goodput, "\(figures)")
    }

    /// A route that falls quiet (its path died) stops taking a share: the survivor gets the whole buffer back at
    /// once instead of after megabytes of halving.
    @Test func aQuietRouteStopsTakingAShare() {
        var splitter = ReceiveBufferSplitter<String>(bufferSize: 100_000, minimumShare: 10_000)
        splitter.recordArrival(size: 75_000, on: "dead", at: SCTPTime.zero)
        splitter.recordArrival(size: 25_000, on: "alive", at: SCTPTime.zero)
        splitter.recordArrival(size: 1_000, on: "alive", at: .zero + .milliseconds(300))
        #expect(splitter.share(of: "alive", pathCount: splitter.routeCount(including: "alive")) < 50_000)
        // Nothing has been quiet since before 0 ms: both still count.
        splitter.forgetRoutes(quietSince: SCTPTime.zero)
        #expect(splitter.routeCount(including: "alive") == 2)
        splitter.forgetRoutes(quietSince: .zero + .milliseconds(100))
        #expect(splitter.routeCount(including: "alive") == 1)
        #expect(splitter.share(of: "alive", pathCount: splitter.routeCount(including: "alive")) == 100_000)
        // Back from the dead, it starts again from the floor.
        #expect(splitter.routeCount(including: "dead") == 2)
        #expect(splitter.share(of: "dead", pathCount: 2) == 10_000)
    }
}
