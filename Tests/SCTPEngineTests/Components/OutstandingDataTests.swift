import NIOCore
import Testing

@testable import SCTPEngine

extension Components {
    @Suite struct OutstandingDataTests {
        let p1 = PathID(1)
        let p2 = PathID(2)
        var clock = FakeClock()

        func fragment(_ size: Int = 100) -> DataFragment {
            DataFragment(streamID: StreamID(0), ssn: SSN(0), ppid: PPID(0), payload: testPayload(size))
        }

        /// Sends `count` 100-byte chunks to `path`; returns their TSNs.
        @discardableResult
        func send(_ queue: inout OutstandingData, _ count: Int, to path: PathID, now: SCTPTime) -> [TSN] {
            (0..<count).map { _ in queue.insert(fragment(), path: path, now: now).tsn }
        }

        func sack(
            _ cum: UInt32, _ gaps: [(UInt16, UInt16)] = [], nr: [(UInt16, UInt16)] = [], rwnd: UInt32 = 100_000,
            packets: Int = 1
        ) -> SackInfo {
            SackInfo(
                cumulativeTSNAck: TSN(cum), advertisedReceiverWindowCredit: rwnd,
                gapAckBlocks: gaps.map { GapBlock(start: $0.0, end: $0.1) },
                nrGapAckBlocks: nr.map { GapBlock(start: $0.0, end: $0.1) }, packetsSinceLastSack: packets)
        }

        func pathAck(_ outcome: OutstandingData.SackOutcome, _ path: PathID) -> OutstandingData.PathAck? {
            outcome.paths.first { $0.path == path }
        }

        @Test mutating func cumulativeAckFreesChunksAndReportsBytesAndRTT() {
            var queue = OutstandingData(initialTSN: TSN(1000))
            send(&queue, 4, to: p1, now: clock.now)
            #expect(queue.totalFlightSize == 400)
            clock.advance(.milliseconds(40))
            let outcome = queue.handleSack(sack(1001), now: clock.now)
            #expect(outcome.disposition == .accepted)
            #expect(outcome.cumulativeTSNAckAdvanced)
            #expect(outcome.highestNewlyAckedTSN == TSN(1001))
            #expect(pathAck(outcome, p1)?.bytesAcked == 200)
            #expect(pathAck(outcome, p1)?.rttSample == .milliseconds(40))
            #expect(pathAck(outcome, p1)?.flightSizeBeforeSack == 400)
            #expect(queue.totalFlightSize == 200)
            #expect(queue.count == 2)
            #expect(outcome.peerReceiverWindow == 100_000 - 200)
        }

        @Test func staleAndImpossibleSacksAreRejected() {
            var queue = OutstandingData(initialTSN: TSN(10))
            send(&queue, 3, to: p1, now: clock.now)
            _ = queue.handleSack(sack(11), now: clock.now)
            #expect(queue.handleSack(sack(10), now: clock.now).disposition == .stale)
            #expect(queue.handleSack(sack(13), now: clock.now).disposition == .acknowledgesUnsentTSN)
            #expect(queue.handleSack(sack(11), now: clock.now).disposition == .accepted)
        }

        @Test mutating func karnsRuleNoSampleFromRetransmission() {
            var queue = OutstandingData(initialTSN: TSN(1))
            send(&queue, 1, to: p1, now: clock.now)
            queue.markAllForRetransmission(on: p1)
            clock.advance(.seconds(1))
            #expect(queue.pollRetransmission(to: p1, now: clock.now)?.tsn == TSN(1))
            clock.advance(.milliseconds(10))
            let outcome = queue.handleSack(sack(1), now: clock.now)
            #expect(pathAck(outcome, p1)?.bytesAcked == 100)
            #expect(pathAck(outcome, p1)?.rttSample == nil)
        }

        @Test func fastRetransmitAfterThreeMissIndications() {
            var queue = OutstandingData(initialTSN: TSN(1))
            send(&queue, 6, to: p1, now: clock.now)
            // TSN 1 lost; 2, 3, 4 arrive, each SACK newly acknowledging a higher TSN.
            var outcome = queue.handleSack(sack(0, [(2, 2)]), now: clock.now)
            #expect(queue.item(for: TSN(1))?.missIndications == 1)
            outcome = queue.handleSack(sack(0, [(2, 3)]), now: clock.now)
            #expect(!queue.hasChunksToRetransmit)
            outcome = queue.handleSack(sack(0, [(2, 4)]), now: clock.now)
            #expect(pathAck(outcome, p1)?.hasNewFastRetransmits == true)
            #expect(outcome.fastRetransmitBytes == 100)
            #expect(queue.hasChunksToRetransmit)
            #expect(queue.flightSize(on: p1) == 200)
            #expect(queue.pollRetransmission(to: p1, now: clock.now)?.tsn == TSN(1))
            #expect(queue.item(for: TSN(1))?.transmissions == 2)
            #expect(queue.flightSize(on: p1) == 300)
        }

        @Test func missIndicationsFollowHTNA() {
            var queue = OutstandingData(initialTSN: TSN(1))
            send(&queue, 5, to: p1, now: clock.now)
            _ = queue.handleSack(sack(0, [(3, 3)]), now: clock.now)
            #expect(queue.item(for: TSN(1))?.missIndications == 1)
            #expect(queue.item(for: TSN(2))?.missIndications == 1)
            // The same SACK again newly acknowledges nothing: no miss indications.
            _ = queue.handleSack(sack(0, [(3, 3)]), now: clock.now)
            #expect(queue.item(for: TSN(1))?.missIndications == 1)
            // TSN 5 newly acknowledged: TSN 4, below it, is missing too.
            _ = queue.handleSack(sack(0, [(3, 3), (5, 5)]), now: clock.now)
            #expect(queue.item(for: TSN(1))?.missIndications == 2)
            #expect(queue.item(for: TSN(4))?.missIndications == 1)
        }

        @Test func inFastRecoveryCumulativeAdvanceCountsAllReportedMissing() {
            var queue = OutstandingData(initialTSN: TSN(1))
            send(&queue, 6, to: p1, now: clock.now)
            _ = queue.handleSack(sack(0, [(5, 5)]), now: clock.now)
            #expect(queue.item(for: TSN(4))?.missIndications == 1)
            // Cum ack advances to 1 but nothing above TSN 5 is new; in fast recovery TSNs 2-4 still count a miss.
            _ = queue.handleSack(sack(1, [(4, 4)]), now: clock.now, isInFastRecovery: { _ in true })
            #expect(queue.item(for: TSN(4))?.missIndications == 2)
        }

        @Test func fastRetransmitOnlyOncePerChunk() {
            var queue = OutstandingData(initialTSN: TSN(1))
            send(&queue, 10, to: p1, now: clock.now)
            for end in UInt16(2)...4 { _ = queue.handleSack(sack(0, [(2, end)]), now: clock.now) }
            _ = queue.pollRetransmission(to: p1, now: clock.now)
            for end in UInt16(5)...9 { _ = queue.handleSack(sack(0, [(2, end)]), now: clock.now) }
            #expect(!queue.hasChunksToRetransmit)
        }

        @Test func splitFastRetransmitIgnoresOtherPathsAcks() {
            var queue = OutstandingData(initialTSN: TSN(1), policy: .init(splitFastRetransmit: true))
            send(&queue, 1, to: p1, now: clock.now)  // TSN 1 on P1: lost
            send(&queue, 4, to: p2, now: clock.now)  // TSNs 2-5 on P2
            send(&queue, 1, to: p1, now: clock.now)  // TSN 6 on P1
            for end in UInt16(2)...4 { _ = queue.handleSack(sack(0, [(2, end)]), now: clock.now) }
            // Acks of TSNs sent to P2 say nothing about P1's TSN 1.
            #expect(queue.item(for: TSN(1))?.missIndications == 0)
            #expect(!queue.hasChunksToRetransmit)
            _ = queue.handleSack(sack(0, [(2, 4), (6, 6)]), now: clock.now)
            #expect(queue.item(for: TSN(1))?.missIndications == 1)
        }

        @Test func classicModeCountsOtherPathsAcks() {
            var queue = OutstandingData(initialTSN: TSN(1))
            send(&queue, 1, to: p1, now: clock.now)
            send(&queue, 4, to: p2, now: clock.now)
            for end in UInt16(2)...4 { _ = queue.handleSack(sack(0, [(2, end)]), now: clock.now) }
            #expect(queue.hasChunksToRetransmit)
        }

        @Test func dacIncrementsByReportedPacketCount() {
            var queue = OutstandingData(initialTSN: TSN(1), policy: .init(delayedAckForCMT: true))
            send(&queue, 5, to: p1, now: clock.now)
            _ = queue.handleSack(sack(0, [(2, 3)], packets: 2), now: clock.now)
            #expect(queue.item(for: TSN(1))?.missIndications == 2)
            _ = queue.handleSack(sack(0, [(2, 4)], packets: 2), now: clock.now)
            #expect(queue.hasChunksToRetransmit)
        }

        @Test func t3MarksAllOutstandingOnPathForRetransmission() {
            var queue = OutstandingData(initialTSN: TSN(1))
            send(&queue, 3, to: p1, now: clock.now)
            send(&queue, 2, to: p2, now: clock.now)
            _ = queue.handleSack(sack(0, [(2, 2)]), now: clock.now)  // TSN 2 gap-acked
            #expect(queue.markAllForRetransmission(on: p1).bytes == 200)
            #expect(queue.flightSize(on: p1) == 0)
            #expect(queue.flightSize(on: p2) == 200)
            #expect(queue.pollRetransmission(to: p2, now: clock.now)?.tsn == TSN(1))
            #expect(queue.pollRetransmission(to: p2, now: clock.now)?.tsn == TSN(3))
            #expect(queue.pollRetransmission(to: p2, now: clock.now) == nil)
            #expect(queue.flightSize(on: p2) == 400)
            let r1 = queue.hasUnackedData(on: p1)
            #expect(!r1)
        }

        @Test func nrGapBlocksFreeChunksAtOnce() {
            var queue = OutstandingData(initialTSN: TSN(1))
            send(&queue, 4, to: p1, now: clock.now)
            let outcome = queue.handleSack(sack(0, [(2, 3)], nr: [(2, 3)]), now: clock.now)
            #expect(pathAck(outcome, p1)?.bytesAcked == 200)
            #expect(queue.item(for: TSN(2))?.state == .nrAcked)
            #expect(queue.payload(for: TSN(2))?.readableBytes == 0)
            // A later plain SACK without the blocks cannot renege them.
            _ = queue.handleSack(sack(0), now: clock.now)
            #expect(queue.item(for: TSN(3))?.state == .nrAcked)
            #expect(queue.unackedBytes == 200)
        }

        @Test func reorderedOlderSackDoesNotUndoGapAcks() {
            var queue = OutstandingData(initialTSN: TSN(1))
            send(&queue, 6, to: p1, now: clock.now)
            _ = queue.handleSack(sack(0, [(2, 3), (5, 5)]), now: clock.now)
            let older = queue.handleSack(sack(0, [(2, 2)]), now: clock.now)
            #expect(older.highestNewlyAckedTSN == nil)
            #expect(queue.item(for: TSN(3))?.state == .gapAcked)
            #expect(queue.item(for: TSN(5))?.state == .gapAcked)
            #expect(queue.item(for: TSN(1))?.missIndications == 1)
        }

        @Test func renegedChunksBecomeUnacknowledgedAgain() {
            var queue = OutstandingData(initialTSN: TSN(1), policy: .init(detectsReneging: true))
            send(&queue, 4, to: p1, now: clock.now)
            _ = queue.handleSack(sack(0, [(2, 3)]), now: clock.now)
            #expect(queue.unackedBytes == 200)
            _ = queue.handleSack(sack(0, [(3, 3)]), now: clock.now)
            #expect(queue.item(for: TSN(2))?.state == .outstanding)
            #expect(queue.item(for: TSN(3))?.state == .gapAcked)
            #expect(queue.unackedBytes == 300)
            #expect(queue.markAllForRetransmission(on: p1).bytes == 200)  // TSN 2 is no longer in flight
        }

        @Test func pseudoCumulativeAckAdvancesPerPath() {
            var queue = OutstandingData(initialTSN: TSN(1))
            send(&queue, 1, to: p1, now: clock.now)  // 1
            send(&queue, 1, to: p2, now: clock.now)  // 2
            send(&queue, 1, to: p1, now: clock.now)  // 3
            send(&queue, 1, to: p2, now: clock.now)  // 4
            // TSN 1 is missing, so the cumulative ack stays; P2's lowest outstanding TSN (2) is acked.
            let outcome = queue.handleSack(sack(0, [(2, 2)]), now: clock.now)
            #expect(!outcome.cumulativeTSNAckAdvanced)
            #expect(pathAck(outcome, p2)?.pseudoCumulativeAckAdvanced == true)
            #expect(pathAck(outcome, p2)?.ackPoint == TSN(3))
            #expect(pathAck(outcome, p1)?.pseudoCumulativeAckAdvanced == false)
            #expect(queue.pseudoCumulativeAck(on: p2) == TSN(4))
            let next = queue.handleSack(sack(0, [(2, 4)]), now: clock.now)
            #expect(pathAck(next, p2)?.allDataAcked == true)
            #expect(pathAck(next, p2)?.pseudoCumulativeAckAdvanced == true)
            #expect(pathAck(next, p1)?.pseudoCumulativeAckAdvanced == false)
        }

        @Test func tsnWrapAroundInOutstandingData() {
            var queue = OutstandingData(initialTSN: TSN(UInt32.max - 1))
            let tsns = send(&queue, 4, to: p1, now: clock.now)
            #expect(tsns == [TSN(UInt32.max - 1), TSN(UInt32.max), TSN(0), TSN(1)])
            let outcome = queue.handleSack(sack(UInt32.max, [(2, 2)]), now: clock.now)
            #expect(pathAck(outcome, p1)?.bytesAcked == 300)
            #expect(queue.item(for: TSN(1))?.state == .gapAcked)
            #expect(queue.item(for: TSN(0))?.state == .outstanding)
            _ = queue.handleSack(sack(1), now: clock.now)
            #expect(queue.isEmpty)
            #expect(queue.totalFlightSize == 0)
        }

        @Test func abandonedChunksAdvancePeerAckPoint() {
            var queue = OutstandingData(initialTSN: TSN(1))
            send(&queue, 3, to: p1, now: clock.now)
            let r2 = queue.abandon(TSN(1))
            #expect(r2)
            #expect(queue.advancedPeerAckPoint == TSN(1))
            _ = queue.handleSack(sack(0, [(2, 2)]), now: clock.now)
            #expect(queue.advancedPeerAckPoint == TSN(2))
            #expect(queue.flightSize(on: p1) == 100)
            let r3 = queue.abandon(TSN(2))
            #expect(!r3)
        }
    }
}
