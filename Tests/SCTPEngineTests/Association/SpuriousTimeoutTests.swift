import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// Spurious T3-rtx expiries (RFC 5682's idea without timestamps): a SACK that acknowledges a chunk an expiry
/// marked and that was not retransmitted since shows the timeout spurious; the marked chunks go back in flight and
/// the window and RTO come back. Only such an acknowledgement is evidence, and a hole below it shows a real loss.
@Suite struct SpuriousTimeoutTests {
    let p1 = PathID(1)
    let p2 = PathID(2)

    func send(_ queue: inout OutstandingData, _ count: Int, to path: PathID) {
        for _ in 0..<count {
            _ = queue.insert(
                DataFragment(
                    streamID: StreamID(0), ssn: SSN(0), ppid: PPID(0), payload: ByteBuffer(repeating: 1, count: 100)),
                path: path, now: .zero)
        }
    }

    func sack(_ cum: UInt32, _ blocks: [(UInt16, UInt16)] = []) -> SackInfo {
        SackInfo(
            cumulativeTSNAck: TSN(cum), advertisedReceiverWindowCredit: 100_000,
            gapAckBlocks: blocks.map { GapBlock(start: $0.0, end: $0.1) })
    }

    func verdict(_ outcome: OutstandingData.SackOutcome, _ path: PathID) -> OutstandingData.TimeoutVerdict? {
        outcome.paths.first { $0.path == path }?.timeoutVerdict
    }

    // MARK: - The retransmission queue

    @Test func ackOfAChunkNeverRetransmittedAfterTheExpiryShowsItSpurious() {
        var queue = OutstandingData(initialTSN: TSN(1))
        send(&queue, 6, to: p1)
        let marked = queue.markAllForRetransmission(on: p1)
        #expect(marked.bytes == 600 && marked.startsEpisode)
        #expect(queue.pollRetransmission(to: p1, now: .zero)?.tsn == TSN(1))  // one packet's worth at cwnd 1 MTU
        // The late SACK for the originals of 1...3: TSNs 2 and 3 were never retransmitted.
        let outcome = queue.handleSack(sack(3), now: .zero)
        #expect(verdict(outcome, p1) == .spurious)
        // 4...6 are in flight again, not waiting for retransmission.
        #expect(!queue.hasChunksToRetransmit)
        #expect(queue.flightSize(on: p1) == 300)
        #expect(queue.totalFlightSize == 300)
        #expect(outcome.paths.first { $0.path == p1 }?.flightSize == 300)
        // And the rest is acknowledged as any chunk in flight.
        let rest = queue.handleSack(sack(6), now: .zero)
        #expect(queue.flightSize(on: p1) == 0)
        #expect(rest.paths.first { $0.path == p1 }?.allDataAcked == true)
    }

    @Test func ackOfOnlyTheRetransmittedChunkIsNoEvidence() {
        var queue = OutstandingData(initialTSN: TSN(1))
        send(&queue, 6, to: p1)
        queue.markAllForRetransmission(on: p1)
        _ = queue.pollRetransmission(to: p1, now: .zero)
        let outcome = queue.handleSack(sack(1), now: .zero)
        #expect(verdict(outcome, p1) == .undecided)
        #expect(queue.hasChunksToRetransmit)
        #expect(queue.flightSize(on: p1) == 0)
        // Nor is a SACK acknowledging nothing new.
        #expect(verdict(queue.handleSack(sack(1), now: .zero), p1) == .undecided)
        // The next SACK that acknowledges a chunk never retransmitted decides.
        #expect(verdict(queue.handleSack(sack(2), now: .zero), p1) == .spurious)
    }

    @Test func aHoleBelowTheEvidenceIsAGenuineLoss() {
        var queue = OutstandingData(initialTSN: TSN(1))
        send(&queue, 6, to: p1)
        queue.markAllForRetransmission(on: p1)
        _ = queue.pollRetransmission(to: p1, now: .zero)
        // TSN 1 was lost: the late SACK reports 2...4 above the hole.
        let outcome = queue.handleSack(sack(0, [(2, 4)]), now: .zero)
        #expect(verdict(outcome, p1) == .genuine)
        // 5 and 6 stay marked; the decided expiry gives no later verdict.
        #expect(queue.hasChunksToRetransmit)
        #expect(queue.flightSize(on: p1) == 100)  // TSN 1's retransmission
        #expect(verdict(queue.handleSack(sack(5), now: .zero), p1) == .undecided)
        #expect(queue.hasChunksToRetransmit)
    }

    /// CMT: TSNs 1...3 sent on p1, 4...6 on p2; p1's T3 expires and TSN 1's retransmission goes to p2
    /// (RTX-SSTHRESH).
    func cmtQueueAfterAnExpiryOnP1() -> OutstandingData {
        var queue = OutstandingData(initialTSN: TSN(1), policy: .init(splitFastRetransmit: true))
        send(&queue, 3, to: p1)
        send(&queue, 3, to: p2)
        queue.markAllForRetransmission(on: p1)
        #expect(queue.pollRetransmission(to: p2, now: .zero)?.tsn == TSN(1))
        return queue
    }

    @Test func withCMTARetransmissionStillMissingBelowIsAGenuineLoss() {
        var queue = cmtQueueAfterAnExpiryOnP1()
        #expect(queue.flightSize(on: p2) == 400)
        // P2's chunks are acknowledged: no evidence about P1's expiry.
        #expect(verdict(queue.handleSack(sack(0, [(4, 6)]), now: .zero), p1) == .undecided)
        // P1's original of TSN 2 arrives, but TSN 1 (retransmitted on P2) is still missing below it.
        let outcome = queue.handleSack(sack(0, [(2, 2), (4, 6)]), now: .zero)
        #expect(verdict(outcome, p1) == .genuine)  // TSN 1 is still missing below it
        #expect(queue.hasChunksToRetransmit)
    }

    @Test func withCMTAnAckOfTheExpiredPathsOriginalsUndoesIt() {
        var queue = cmtQueueAfterAnExpiryOnP1()
        let outcome = queue.handleSack(sack(2, [(2, 4)]), now: .zero)  // 1, 2, and 4...6
        #expect(verdict(outcome, p1) == .spurious)
        #expect(!queue.hasChunksToRetransmit)
        #expect(queue.flightSize(on: p1) == 100)  // TSN 3, back in flight where it was sent
        #expect(queue.flightSize(on: p2) == 0)
        #expect(queue.totalFlightSize == 100)
    }

    /// The probe is a packet on the wire: tiny chunks (a proxy's requests and stream closes) count their headers,
    /// or a one-MTU payload budget would let a thousand of them go, a dozen packets.
    @Test func theProbeIsOnePacketOfTinyChunks() {
        var queue = OutstandingData(initialTSN: TSN(1))
        for _ in 0..<200 {
            _ = queue.insert(
                DataFragment(
                    streamID: StreamID(0), ssn: SSN(0), ppid: PPID(0), payload: ByteBuffer(repeating: 1, count: 1)),
                path: p1, now: .zero)
        }
        queue.markAllForRetransmission(on: p1)
        queue.suspendTimeoutRetransmissions(on: p1, keeping: 1440)
        var sent = 0
        while queue.pollRetransmission(to: p1, now: .zero) != nil { sent += 1 }
        #expect(sent == 72)  // 1,440 bytes of 20-byte chunks (16 of header, 1 of data, 3 of padding)
    }

    @Test func anAbandonedChunkStaysAbandoned() {
        var queue = OutstandingData(initialTSN: TSN(1))
        send(&queue, 4, to: p1)
        queue.markAllForRetransmission(on: p1)
        _ = queue.pollRetransmission(to: p1, now: .zero)
        let abandoned = queue.abandon(TSN(4))
        #expect(abandoned)
        #expect(verdict(queue.handleSack(sack(2), now: .zero), p1) == .spurious)
        #expect(queue.item(for: TSN(4))?.state == .abandoned)
        #expect(queue.flightSize(on: p1) == 100)  // TSN 3 only
    }

    // MARK: - Window and RTO

    /// Karn's rule: TSN 2 went by p1, p1 timed out and resent it by p2; then p2 timed out with TSNs 1...4. A SACK
    /// for TSN 2 may be for p1's copy, so it says nothing of p2: p2's expiry is not spurious on its account.
    @Test func anAckOfAChunkSentTwiceIsNoEvidence() {
        var queue = OutstandingData(initialTSN: TSN(1), policy: .init(splitFastRetransmit: true))
        send(&queue, 1, to: p2)  // 1
        send(&queue, 1, to: p1)  // 2
        send(&queue, 2, to: p2)  // 3, 4
        queue.markAllForRetransmission(on: p1)
        queue.suspendTimeoutRetransmissions(on: p1, keeping: 1)
        #expect(queue.pollRetransmission(to: p2, now: .zero)?.tsn == TSN(2))
        #expect(queue.markAllForRetransmission(on: p2).startsEpisode)
        queue.suspendTimeoutRetransmissions(on: p2, keeping: 1)
        #expect(queue.pollRetransmission(to: p1, now: .zero)?.tsn == TSN(1))
        // TSN 1's retransmission and TSN 2 (either copy) arrive.
        let outcome = queue.handleSack(sack(2), now: .zero)
        #expect(verdict(outcome, p2) != .spurious)
        #expect(queue.flightSize(on: p2) == 0, "p2's chunks 3 and 4 stay out of flight")
    }

    /// A held chunk with two miss indications gets its third in the SACK that shows the expiry spurious: it is back
    /// in flight and marked for fast retransmission, not left waiting for the next expiry.
    @Test func aChunkReportedMissingInTheVerdictSackIsFastRetransmitted() {
        var queue = OutstandingData(initialTSN: TSN(1))
        send(&queue, 8, to: p1)  // 1...8
        _ = queue.handleSack(sack(0, [(4, 4)]), now: .zero)  // 4 arrived: 1, 2 and 3 one miss each
        _ = queue.handleSack(sack(0, [(4, 5)]), now: .zero)  // 5 arrived: two each
        queue.markAllForRetransmission(on: p1)
        queue.suspendTimeoutRetransmissions(on: p1, keeping: 100)
        #expect(queue.pollRetransmission(to: p1, now: .zero)?.tsn == TSN(1))
        send(&queue, 1, to: p1)  // 9
        // Late: 1, then 2's original (the evidence), 4, 5 and 9; 3 is lost.
        let outcome = queue.handleSack(sack(2, [(2, 3), (7, 7)]), now: .zero)
        #expect(verdict(outcome, p1) == .spurious)
        #expect(queue.item(for: TSN(3))?.isMarkedForRetransmission == true)
        #expect(queue.pollRetransmission(to: p1, now: .zero)?.tsn == TSN(3))
    }

    @Test func undoRestoresTheWindowAndTheRTO() {
        var configuration = Path.Configuration()
        configuration.rto = RTOEstimator.Configuration(
            initial: .seconds(1), min: .milliseconds(200), max: .seconds(60))
        var path = Path(
            id: p1, remoteAddress: SCTPSocketAddress(ip: .init(v4: 10, 0, 0, 1), port: 1), mtu: 1500,
            configuration: configuration, isConfirmed: true)
        path.measureRoundTrip(.milliseconds(1), now: .zero)
        let cwnd = path.cwnd
        let rto = path.rto.rto
        // Two expiries before any verdict (the second may start a new episode in the queue): the state saved is the
        // one before the first.
        _ = path.handleRetransmissionTimeout()
        _ = path.handleRetransmissionTimeout()
        #expect(path.cwnd == 1500)
        #expect(path.rto.rto == rto * 4)
        path.undoRetransmissionTimeout()
        #expect(path.cwnd == cwnd)
        #expect(path.rto.rto == rto)
        #expect(path.counters.spuriousTimeouts == 1)
    }

    // MARK: - Held SACKs in a simulated network

    /// What a run with the return path's SACKs held back for `hold` shows, per path.
    struct HeldAcksRun {
        var before: [SCTPPathInfo]
        var after: [SCTPPathInfo]
        var intact: Bool
    }

    /// A bulk transfer over `specs`; one second in, the return links hold every SACK for `hold` (all arrive, in
    /// order, at its end: a receiver, or a sender's event loop, too busy to pass them on), with no loss.
    func runWithHeldAcks(
        _ specs: [PathSpec], congestionControl: SCTPCongestionControl, holding held: [Int], hold: SCTPDuration
    ) throws -> HeldAcksRun {
        var configuration = SCTPConfiguration()
        configuration.congestionControl = congestionControl
        if specs.count == 1 { configuration.multipath = .singlePath }
        let scenario = MultipathScenario(seed: 3, paths: specs, configuration: configuration)
        let start = SCTPTime.zero + .seconds(1)
        var before: [SCTPPathInfo] = []
        var after: [SCTPPathInfo] = []
        func paths() -> [SCTPPathInfo] {
            scenario.client.endpoint.associationIDs.first.map { scenario.client.endpoint.paths(of: $0) } ?? []
        }
        scenario.network.schedule(at: start - .milliseconds(1)) { before = paths() }
        scenario.network.schedule(at: start) {
            for k in held { scenario.returnLinks[k].configuration.delay = specs[k].rtt / 2 + hold }
        }
        scenario.network.schedule(at: start + .milliseconds(1)) {
            // Later SACKs still queue behind the held ones: the link delivers in order.
            for k in held { scenario.returnLinks[k].configuration.delay = specs[k].rtt / 2 }
        }
        scenario.network.schedule(at: start + hold + .milliseconds(10)) { after = paths() }
        let result = try scenario.run(bytes: 30_000_000)
        return HeldAcksRun(before: before, after: after, intact: result.intact)
    }

    /// 100 Mbit/s, 2 ms: SRTT far below RTO.Min (200 ms), as on loopback. SACKs held 500 ms: T3 expires twice
    /// (200 ms, then 400 ms backed off). Before the undo every chunk of the window was marked and most of them
    /// retransmitted as the held SACKs let cwnd grow again from one MTU.
    @Test(arguments: [SCTPCongestionControl.reno, .bbr])
    func heldSacksCostAboutOnePacketOfRetransmissionsAndTheWindowComesBack(_ cc: SCTPCongestionControl) throws {
        let spec = PathSpec(rateBitsPerSecond: 100_000_000, rtt: .milliseconds(2))
        let run = try runWithHeldAcks([spec], congestionControl: cc, holding: [0], hold: .milliseconds(500))
        #expect(run.intact)
        let (before, after) = (try #require(run.before.first), try #require(run.after.first))
        let timeouts = after.timeouts - before.timeouts
        #expect(timeouts >= 1)
        #expect(after.spuriousTimeouts - before.spuriousTimeouts == 1)
        // One count per expiry, and a packet (one chunk here) retransmitted per expiry at cwnd 1 MTU.
        let retransmitted = after.retransmissions - before.retransmissions
        #expect(retransmitted <= 2 * timeouts + 2, "\(retransmitted) retransmissions after \(timeouts) timeouts")
        // BBR's window follows its model, which the late SACKs' samples move a little.
        #expect(10 * after.cwnd >= 9 * before.cwnd, "cwnd \(after.cwnd), \(before.cwnd) before the held SACKs")
        #expect(after.state == .active)
    }

    /// CMT over two paths, every SACK held (the sender's host is busy): each path that timed out finds its
    /// expiries spurious, and neither retransmits more than a packet per expiry nor is taken for failed.
    @Test func cmtTwoPathsEachPathsSpuriousTimeoutIsUndone() throws {
        let spec = PathSpec(rateBitsPerSecond: 50_000_000, rtt: .milliseconds(2))
        let run = try runWithHeldAcks(
            [spec, spec], congestionControl: .bbr, holding: [0, 1], hold: .milliseconds(500))
        #expect(run.intact)
        #expect(run.before.count == 2 && run.after.count == 2)
        var totalRetransmitted = 0
        var totalTimeouts = 0
        for (before, after) in zip(run.before, run.after) {
            totalRetransmitted += after.retransmissions - before.retransmissions
            totalTimeouts += after.timeouts - before.timeouts
            if after.timeouts > before.timeouts {
                #expect(after.spuriousTimeouts > before.spuriousTimeouts)
            }
            #expect(after.state == .active)
        }
        #expect(totalTimeouts >= 1)
        #expect(
            totalRetransmitted <= 2 * totalTimeouts + 4,
            "\(totalRetransmitted) retransmissions after \(totalTimeouts) timeouts")
    }
}
