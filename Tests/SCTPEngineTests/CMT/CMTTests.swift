import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// CMT in the simulator: two paths add up, a dead path costs no byte, every mechanism can be switched off.
/// Bands are loose enough for short debug-build runs; `agg-bench cmt` measures the real figures in release.
@Suite struct CMTTests {
    static let fifty = PathSpec(rateBitsPerSecond: 50_000_000, rtt: .milliseconds(20))

    @Test func twoPathsCarryNearlyTheSumOfTheirSinglePathGoodputs() throws {
        let bytes = 12_000_000
        let single = try MultipathScenario.singlePathGoodput(seed: 3, spec: Self.fifty, bytes: bytes / 2)
        let result = try MultipathScenario(seed: 3, paths: [Self.fifty, Self.fifty]).run(bytes: bytes)
        #expect(result.intact)
        #expect(result.goodput >= 0.85 * 2 * single, "CMT \(result.goodput / 1e6) vs single \(single / 1e6) Mbit/s")
        // Both paths carry a fair share.
        #expect(result.bytesPerPath.allSatisfy { Double($0) > 0.4 * Double(bytes) })
    }

    @Test func unequalPathsAreUsedInProportionToTheirRates() throws {
        let slow = PathSpec(rateBitsPerSecond: 10_000_000, rtt: .milliseconds(30))
        let fast = PathSpec(rateBitsPerSecond: 30_000_000, rtt: .milliseconds(30))
        let result = try MultipathScenario(seed: 4, paths: [slow, fast]).run(bytes: 8_000_000)
        #expect(result.intact)
        let share = Double(result.bytesPerPath[1]) / Double(result.bytesPerPath.reduce(0, +))
        #expect(share > 0.65 && share < 0.85, "fast path share \(share)")
    }

    @Test func neverWorseThanTheBestSinglePathWhenOnePathIsLossy() throws {
        let clean = PathSpec(rateBitsPerSecond: 30_000_000, rtt: .milliseconds(20))
        let lossy = PathSpec(rateBitsPerSecond: 30_000_000, rtt: .milliseconds(20), loss: 0.02)
        let best = try MultipathScenario.singlePathGoodput(seed: 5, spec: clean, bytes: 6_000_000)
        let result = try MultipathScenario(seed: 5, paths: [clean, lossy]).run(bytes: 8_000_000)
        #expect(result.intact)
        #expect(result.goodput >= best, "CMT \(result.goodput / 1e6) vs best single \(best / 1e6) Mbit/s")
    }

    /// Either path, the primary too: the server (multihomed, the client is not) must answer from the address the
    /// client's DATA now arrives at, or its SACKs leave by the dead network and the surviving path times out too.
    @Test(arguments: [(6, 1), (7, 1), (6, 0), (7, 0)] as [(UInt64, Int)])
    func aPathDyingMidTransferLosesNoByteAndTheOtherTakesOverWithinASecond(seed: UInt64, failing: Int) throws {
        let scenario = MultipathScenario(seed: seed, paths: [Self.fifty, Self.fifty])
        let result = try scenario.run(bytes: 20_000_000, failure: (index: failing, at: .seconds(1)))
        #expect(result.intact)
        // The failure costs the dead path's T3 timeout (RTO.Min, 200 ms) and no more: the half second after it
        // carries at least half the surviving path's rate. A server answering from the dead address until it
        // moves the path delivered nothing in that half second.
        let failureBin = Int(SCTPDuration.seconds(1).nanoseconds / result.binWidth.nanoseconds)
        let halfSecond = result.timeline[failureBin..<(failureBin + 5)]
        #expect(halfSecond.reduce(0, +) / 5 >= 0.5 * 48_000_000, "\(halfSecond.map { Int($0 / 1e6) })")
        // From one second after the failure on, every bin runs at most of the surviving path's rate.
        let firstBin = Int(SCTPDuration.seconds(2).nanoseconds / result.binWidth.nanoseconds)
        let later = result.timeline[firstBin..<(result.timeline.count - 1)]
        #expect(!later.isEmpty)
        #expect(later.allSatisfy { $0 >= 0.8 * 48_000_000 }, "\(later.map { Int($0 / 1e6) })")
        let events = scenario.client.pathEvents
        #expect(events.contains { if case .pathStateChanged(_, _, .potentiallyFailed) = $0 { true } else { false } })
    }

    /// Without CMT new data goes to the primary only; RFC 9260 §6.4.1 still sends retransmissions to an active
    /// alternate, so the second path carries a little.
    @Test func singlePathConfigurationSendsNewDataOnlyOnThePrimary() throws {
        var configuration = SCTPConfiguration()
        configuration.multipath = .singlePath
        let result = try MultipathScenario(seed: 8, paths: [Self.fifty, Self.fifty], configuration: configuration)
            .run(bytes: 3_000_000)
        #expect(result.intact)
        #expect(result.bytesPerPath[1] < result.bytesPerPath[0] / 20, "\(result.bytesPerPath)")
    }

    @Test func sackCarriesTheDelayedAckPacketCount() throws {
        let sack = SackChunk(cumulativeTSNAck: TSN(9), advertisedReceiverWindowCredit: 1000, delayedAckPacketCount: 2)
        let decoded = try Chunk(decoding: RawPacket.parse(SCTPPacket(header: CommonHeader(sourcePort: 1, destinationPort: 2, verificationTag: VerificationTag(3), checksum: 0), chunks: [.sack(sack)]).encode()).chunks[0])
        #expect(decoded == .sack(sack))
        #expect(sack.flags == 0x80 | 0x40)
    }
}

@Suite struct NRSackTests {
    @Test func nrSackIsNegotiatedAndUsedWhenBothSidesEnableIt() throws {
        let l = Lockstep()
        let id = l.connect()
        l.exchange()
        #expect(l.client.associations[id]!.features.contains(.nrSack))
        let server = l.server.associations.values.first!
        #expect(server.features.contains(.nrSack))
        try l.client.send(ByteBuffer(string: "x"), on: id, stream: StreamID(0), now: l.now)
        l.deliver(l.take(l.client), to: l.server)
        l.advanceToNextDeadline()  // the delayed SACK
        #expect(l.take(l.server).map(Lockstep.chunkTypes) == [[NRSackChunk.type]])
    }

    @Test func plainSackWhenThePeerDoesNotOfferNRSack() throws {
        var without = SCTPConfiguration()
        without.multipath.nrSack = false
        let l = Lockstep()
        l.client = SCTPEndpoint(configuration: without, seed: 9)
        let id = l.connect()
        l.exchange()
        #expect(!l.server.associations.values.first!.features.contains(.nrSack))
        try l.client.send(ByteBuffer(string: "x"), on: id, stream: StreamID(0), now: l.now)
        l.deliver(l.take(l.client), to: l.server)
        l.advanceToNextDeadline()
        #expect(l.take(l.server).map(Lockstep.chunkTypes) == [[SackChunk.type]])
    }

    @Test func outOfOrderDeliveredMessagesAreReportedNonRenegable() throws {
        let l = Lockstep()
        let id = l.connect()
        l.exchange()
        // Two unordered messages; the first is lost, the second is delivered at once and must be NR-acked.
        try l.client.send(ByteBuffer(string: "lost"), on: id, stream: StreamID(0), unordered: true, now: l.now)
        let first = l.take(l.client)
        try l.client.send(ByteBuffer(string: "kept"), on: id, stream: StreamID(0), unordered: true, now: l.now)
        l.deliver(l.take(l.client), to: l.server)
        _ = first
        // With CMT's DAC the gap does not force an immediate SACK: it goes when the delayed-ack timer fires.
        l.advanceToNextDeadline()
        let replies = l.take(l.server)
        let chunks = try replies.flatMap { try SCTPPacket.decode($0.payload).chunks }
        guard case .nrSack(let sack)? = chunks.first else {
            Issue.record("expected an NR-SACK, got \(chunks)")
            return
        }
        #expect(sack.nrGapAckBlocks == [GapAckBlock(start: 2, end: 2)])
    }
}
