import NIOCore
import Testing

@testable import SCTPEngine

extension Components {
    /// Delivery-rate samples of `OutstandingData` (draft-cheng-iccrg-delivery-rate-estimation): bytes delivered
    /// per destination over the longer of the send and ack intervals, from the latest-sent chunk a SACK newly
    /// acknowledges, never from a retransmission.
    @Suite struct DeliveryRateTests {
        let p1 = PathID(1)
        let p2 = PathID(2)
        var clock = FakeClock()

        func fragment(_ size: Int = 1000) -> DataFragment {
            DataFragment(streamID: StreamID(0), ssn: SSN(0), ppid: PPID(0), payload: testPayload(size))
        }

        func sack(_ cum: UInt32, _ gaps: [(UInt16, UInt16)] = []) -> SackInfo {
            SackInfo(
                cumulativeTSNAck: TSN(cum), advertisedReceiverWindowCredit: 1_000_000,
                gapAckBlocks: gaps.map { GapBlock(start: $0.0, end: $0.1) })
        }

        func pathAck(_ outcome: OutstandingData.SackOutcome, _ path: PathID) -> OutstandingData.PathAck? {
            outcome.paths.first { $0.path == path }
        }

        /// Ten 1000-byte chunks sent 1 ms apart, acknowledged one by one 20 ms after each was sent: the steady
        /// rate is 1000 bytes per ms, and the first sample (nothing delivered before it) measures one chunk over
        /// its own round trip.
        @Test mutating func evenlySpacedAcksMeasureTheSendRate() {
            var queue = OutstandingData(initialTSN: TSN(1))
            var sendTimes: [SCTPTime] = []
            for _ in 0..<10 {
                _ = queue.insert(fragment(), path: p1, now: clock.now)
                sendTimes.append(clock.now)
                clock.advance(.milliseconds(1))
            }
            var samples: [OutstandingData.RateSample] = []
            for k in 0..<10 {
                let outcome = queue.handleSack(sack(UInt32(k + 1)), now: sendTimes[k] + .milliseconds(20))
                samples.append(pathAck(outcome, p1)!.rateSample!)
                #expect(pathAck(outcome, p1)!.delivered == 1000 * (k + 1))
            }
            #expect(samples[0].deliveredBytes == 1000)
            #expect(samples[0].interval == .milliseconds(20))
            #expect(samples[0].rtt == .milliseconds(20))
            // From the second on, the sample spans the chunks delivered since it was sent.
            for k in 1..<10 {
                #expect(samples[k].priorDelivered == 0)
                #expect(samples[k].deliveredBytes == 1000 * (k + 1))
                #expect(samples[k].interval == .milliseconds(20 + Int64(k)))
            }
            // Once the round trip has passed, the chunks sent after the first ack measure 1000 bytes per ms.
            for _ in 0..<20 {
                _ = queue.insert(fragment(), path: p1, now: clock.now)
                clock.advance(.milliseconds(1))
            }
            let outcome = queue.handleSack(sack(30), now: clock.now)
            let late = pathAck(outcome, p1)!.rateSample!
            #expect(late.priorDelivered == 10_000)
            #expect(abs(late.bytesPerSecond - 1_000_000) < 60_000, "\(late.bytesPerSecond)")
        }

        /// An ack-compressed burst (ten chunks sent over 20 ms acknowledged within 1 ms) cannot show more than the
        /// send rate: the interval is the longer of the send and ack intervals.
        @Test mutating func compressedAcksDoNotInflateTheRate() {
            var queue = OutstandingData(initialTSN: TSN(1))
            let start = clock.now
            for _ in 0..<10 {
                _ = queue.insert(fragment(), path: p1, now: clock.now)
                clock.advance(.milliseconds(1))
            }
            _ = queue.handleSack(sack(1), now: start + .milliseconds(20))
            _ = queue.insert(fragment(), path: p1, now: start + .milliseconds(20))  // TSN 11
            let outcome = queue.handleSack(sack(11), now: start + .milliseconds(21))
            let sample = pathAck(outcome, p1)!.rateSample!
            #expect(sample.deliveredBytes == 10_000)
            // Sent from t=0 (the first chunk, whose ack was the latest when TSN 11 went) to t=20 ms.
            #expect(sample.interval == .milliseconds(20))
            #expect(sample.bytesPerSecond == 500_000)
        }

        /// Karn's rule: a SACK that newly acknowledges only a retransmitted chunk gives no sample, but its bytes
        /// still count as delivered.
        @Test mutating func retransmittedChunksGiveNoSample() {
            var queue = OutstandingData(initialTSN: TSN(1))
            _ = queue.insert(fragment(), path: p1, now: clock.now)
            _ = queue.insert(fragment(), path: p1, now: clock.now)
            clock.advance(.milliseconds(300))
            queue.markAllForRetransmission(on: p1)
            _ = queue.pollRetransmission(to: p1, now: clock.now)
            clock.advance(.milliseconds(20))
            let outcome = queue.handleSack(sack(1), now: clock.now)
            #expect(pathAck(outcome, p1)!.rateSample == nil)
            #expect(pathAck(outcome, p1)!.delivered == 1000)
            #expect(pathAck(outcome, p1)!.rttSample == nil)
        }

        /// Each destination has its own delivered count: a SACK acknowledging chunks on two paths gives each its
        /// own sample.
        @Test mutating func eachPathSamplesItsOwnDeliveries() {
            var queue = OutstandingData(initialTSN: TSN(1))
            _ = queue.insert(fragment(), path: p1, now: clock.now)  // TSN 1
            _ = queue.insert(fragment(500), path: p2, now: clock.now)  // TSN 2
            _ = queue.insert(fragment(), path: p1, now: clock.now)  // TSN 3
            clock.advance(.milliseconds(10))
            // TSN 1 and 3 acknowledged (a gap at 2).
            let outcome = queue.handleSack(sack(1, [(2, 2)]), now: clock.now)
            #expect(pathAck(outcome, p1)!.rateSample?.deliveredBytes == 2000)
            #expect(pathAck(outcome, p1)!.delivered == 2000)
            #expect(pathAck(outcome, p2)?.rateSample == nil)
            clock.advance(.milliseconds(30))
            let later = queue.handleSack(sack(3), now: clock.now)
            #expect(pathAck(later, p2)!.rateSample?.deliveredBytes == 500)
            #expect(pathAck(later, p2)!.rateSample?.rtt == .milliseconds(40))
        }

        /// Chunks sent while the sender is application-limited give samples marked so, until the data in flight
        /// when it was marked has been delivered.
        @Test mutating func appLimitedMarkLastsUntilTheFlightThenIsDelivered() {
            var queue = OutstandingData(initialTSN: TSN(1))
            _ = queue.insert(fragment(), path: p1, now: clock.now)  // 1
            queue.markAppLimited(on: p1)
            #expect(queue.isAppLimited(on: p1))
            _ = queue.insert(fragment(), path: p1, now: clock.now)  // 2, app-limited
            clock.advance(.milliseconds(20))
            let first = queue.handleSack(sack(1), now: clock.now)
            #expect(pathAck(first, p1)!.rateSample?.isAppLimited == false)
            // Delivered 1000 = the mark (delivered 0 + flight 1000): not yet past it.
            #expect(queue.isAppLimited(on: p1))
            _ = queue.insert(fragment(), path: p1, now: clock.now)  // 3, app-limited
            let second = queue.handleSack(sack(2), now: clock.now)
            #expect(pathAck(second, p1)!.rateSample?.isAppLimited == true)
            #expect(!queue.isAppLimited(on: p1))
            _ = queue.insert(fragment(), path: p1, now: clock.now)  // 4, not app-limited
            clock.advance(.milliseconds(20))
            let third = queue.handleSack(sack(4), now: clock.now)
            #expect(pathAck(third, p1)!.rateSample?.isAppLimited == false)
        }

        /// After an idle period (nothing in flight) the interval starts at the next send, not at the last ack.
        @Test mutating func idleTimeIsNotCountedAsDeliveryTime() {
            var queue = OutstandingData(initialTSN: TSN(1))
            _ = queue.insert(fragment(), path: p1, now: clock.now)
            clock.advance(.milliseconds(20))
            _ = queue.handleSack(sack(1), now: clock.now)
            clock.advance(.seconds(5))
            _ = queue.insert(fragment(), path: p1, now: clock.now)
            _ = queue.insert(fragment(), path: p1, now: clock.now)
            clock.advance(.milliseconds(20))
            let sample = pathAck(queue.handleSack(sack(3), now: clock.now), p1)!.rateSample!
            #expect(sample.interval == .milliseconds(20))
            #expect(sample.deliveredBytes == 2000)
        }
    }
}
