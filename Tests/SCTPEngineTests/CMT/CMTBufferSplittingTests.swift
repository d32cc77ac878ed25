import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// Buffer splitting (Dreibholz et al.) on both sides: the receiver bounds what each path holds of its buffer out of
/// order; the sender keeps new data off a path whose delay would make the faster paths overrun the peer's buffer.
@Suite struct CMTBufferSplittingTests {
    let fast = PathID(1)
    let slow = PathID(2)

    // MARK: - Receiver side, the splitter alone

    @Test func sharesFollowRecentArrivalsWithAFloor() {
        var splitter = ReceiveBufferSplitter<PathID>(bufferSize: 100_000, minimumShare: 10_000)
        #expect(splitter.share(of: fast, pathCount: 1) == 100_000)
        #expect(splitter.share(of: fast, pathCount: 2) == 50_000)
        splitter.recordArrival(size: 30_000, on: fast)
        splitter.recordArrival(size: 10_000, on: slow)
        #expect(splitter.share(of: fast, pathCount: 2) == 75_000)
        #expect(splitter.share(of: slow, pathCount: 2) == 25_000)
        // Arrivals beyond the buffer halve the history, so old traffic fades.
        for _ in 0..<8 { splitter.recordArrival(size: 10_000, on: slow) }
        #expect(splitter.share(of: slow, pathCount: 2) > 50_000)
        // An idle path keeps the floor.
        for _ in 0..<40 { splitter.recordArrival(size: 10_000, on: slow) }
        #expect(splitter.share(of: fast, pathCount: 2) == 10_000)
    }

    @Test func aPathHoldsAtMostItsShareUntilTheCumulativeTSNPassesItsChunks() {
        var splitter = ReceiveBufferSplitter<PathID>(bufferSize: 10_000, minimumShare: 1_000)
        splitter.recordArrival(size: 7_500, on: fast)
        splitter.recordArrival(size: 2_500, on: slow)
        // The slow path's share is 2 500 bytes: two chunks of 1 000 fit, a third does not.
        for tsn in [11, 13] as [UInt32] {
            #expect(splitter.admits(size: 1_000, on: slow, pathCount: 2))
            splitter.hold(tsn: TSN(tsn), size: 1_000, on: slow)
        }
        #expect(!splitter.admits(size: 1_000, on: slow, pathCount: 2))
        #expect(splitter.admits(size: 1_000, on: fast, pathCount: 2))
        splitter.hold(tsn: TSN(12), size: 1_000, on: fast)
        #expect(splitter.heldBytes[slow] == 2_000)
        // The hole at 10 is filled and the cumulative TSN moves to 12: TSNs 11 and 12 are released, 13 stays.
        splitter.release(through: TSN(12))
        #expect(splitter.heldBytes[slow] == 1_000)
        #expect(splitter.heldBytes[fast] == 0)
        #expect(splitter.admits(size: 1_000, on: slow, pathCount: 2))
    }

    // MARK: - Sender side

    /// 50 + 10 Mbit/s, 10 and 200 ms RTT, a 256 KiB receive buffer: while a chunk crosses the slow path the fast
    /// one delivers over 1 MB above it, far more than the buffer holds. Sending new data there blocks the fast
    /// path (goodput falls well below the fast path alone); sender-side splitting keeps the slow path out.
    @Test func senderSplittingKeepsASlowPathFromBlockingASmallReceiveBuffer() throws {
        let fastSpec = PathSpec(rateBitsPerSecond: 50_000_000, rtt: .milliseconds(10))
        let slowSpec = PathSpec(rateBitsPerSecond: 10_000_000, rtt: .milliseconds(200))
        var configuration = SCTPConfiguration()
        configuration.receiveBufferSize = 256 * 1024
        let bytes = 10_000_000
        let best = try MultipathScenario.singlePathGoodput(
            seed: 12, spec: fastSpec, bytes: bytes, configuration: configuration)
        let split = try MultipathScenario(seed: 12, paths: [fastSpec, slowSpec], configuration: configuration)
            .run(bytes: bytes)
        configuration.multipath.senderBufferSplitting = false
        let unsplit = try MultipathScenario(seed: 12, paths: [fastSpec, slowSpec], configuration: configuration)
            .run(bytes: bytes)
        #expect(split.intact && unsplit.intact)
        #expect(unsplit.goodput < 0.6 * best, "without splitting \(unsplit.goodput / 1e6) Mbit/s")
        #expect(split.goodput >= 0.75 * best, "split \(split.goodput / 1e6) vs fast path alone \(best / 1e6) Mbit/s")
    }
}
