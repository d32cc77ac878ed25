import Testing

@testable import SCTPEngine

extension Components {
    @Suite struct DataTrackerTests {
        var clock = FakeClock()

        /// Feeds one packet carrying `tsns`.
        func receive(_ tracker: inout DataTracker, _ tsns: [UInt32], immediate: Bool = false, now: SCTPTime)
            -> [DataTracker.Disposition]
        {
            let result = tsns.map { tracker.handleData(tsn: TSN($0), isImmediate: immediate) }
            tracker.handlePacketEnd(now: now)
            return result
        }

        func blocks(_ sack: SackInfo) -> [[UInt16]] { sack.gapAckBlocks.map { [$0.start, $0.end] } }
        func nrBlocks(_ sack: SackInfo) -> [[UInt16]] { sack.nrGapAckBlocks.map { [$0.start, $0.end] } }

        /// A peer that sends one-byte chunks and opens a new gap with each gets no SACK per two packets once it holds
        /// `sparseGapRanges` ranges (each would carry hundreds of gap blocks): only the delayed-SACK deadline, or
        /// packets that carry two full packets' worth of data, bring one.
        @Test func tinyChunksThatOpenManyGapsAreAcknowledgedByTheTimerOnly() {
            for immediateOnGaps in [false, true] {
                var configuration = DataTracker.Configuration()
                configuration.sackImmediatelyOnGaps = immediateOnGaps
                var tracker = DataTracker(peerInitialTSN: TSN(1), configuration: configuration)
                var tsn: UInt32 = 3
                var sacks = 0
                for _ in 0..<2000 {
                    _ = tracker.handleData(tsn: TSN(tsn), bytes: 1)
                    tracker.handlePacketEnd(now: clock.now)
                    tsn += 2
                    if tracker.isSackDue(now: clock.now) {
                        _ = tracker.makeSack(advertisedReceiverWindowCredit: 1000)
                        sacks += 1
                    }
                }
                // Before the threshold each packet (or each second one) is acknowledged; after it, none.
                #expect(sacks <= configuration.sparseGapRanges, "immediate on gaps: \(immediateOnGaps), \(sacks)")
                #expect(tracker.sackDeadline != nil, "the delayed-SACK timer still runs")
                // Full-size packets with gaps are acknowledged every second packet again.
                _ = tracker.handleData(tsn: TSN(tsn), bytes: 1400)
                tracker.handlePacketEnd(now: clock.now)
                _ = tracker.handleData(tsn: TSN(tsn + 2), bytes: 1400)
                tracker.handlePacketEnd(now: clock.now)
                #expect(tracker.isSackDue(now: clock.now))
            }
        }

        @Test func sackEverySecondPacket() {
            var tracker = DataTracker(peerInitialTSN: TSN(100))
            _ = receive(&tracker, [100], now: clock.now)
            #expect(!tracker.isSackDue(now: clock.now))
            _ = receive(&tracker, [101, 102], now: clock.now)
            #expect(tracker.isSackDue(now: clock.now))
            let sack = tracker.makeSack(advertisedReceiverWindowCredit: 1000)
            #expect(sack.cumulativeTSNAck == TSN(102))
            #expect(sack.gapAckBlocks.isEmpty)
            #expect(!tracker.hasPendingSack)
        }

        @Test mutating func delayedSackDeadlineIsAtMost200ms() {
            var tracker = DataTracker(peerInitialTSN: TSN(1))
            _ = receive(&tracker, [1], now: clock.now)
            #expect(tracker.sackDeadline == clock.now + .milliseconds(200))
            clock.advance(.milliseconds(199))
            #expect(!tracker.isSackDue(now: clock.now))
            clock.advance(.milliseconds(1))
            #expect(tracker.isSackDue(now: clock.now))
        }

        @Test func gapTriggersImmediateSackWithGapBlocks() {
            var tracker = DataTracker(peerInitialTSN: TSN(10))
            _ = receive(&tracker, [10, 12, 13], now: clock.now)
            #expect(tracker.isSackDue(now: clock.now))
            _ = receive(&tracker, [16], now: clock.now)
            let sack = tracker.makeSack(advertisedReceiverWindowCredit: 1000)
            #expect(sack.cumulativeTSNAck == TSN(10))
            #expect(blocks(sack) == [[2, 3], [6, 6]])
        }

        @Test func fillingAGapAcknowledgesImmediately() {
            var tracker = DataTracker(peerInitialTSN: TSN(10))
            _ = receive(&tracker, [10, 12], now: clock.now)
            _ = tracker.makeSack(advertisedReceiverWindowCredit: 1000)
            _ = receive(&tracker, [11], now: clock.now)
            #expect(tracker.isSackDue(now: clock.now))
            #expect(tracker.makeSack(advertisedReceiverWindowCredit: 0).cumulativeTSNAck == TSN(12))
        }

        @Test func duplicateTSNReportedOnce() {
            var tracker = DataTracker(peerInitialTSN: TSN(5))
            _ = receive(&tracker, [5, 6], now: clock.now)
            _ = tracker.makeSack(advertisedReceiverWindowCredit: 1000)
            #expect(receive(&tracker, [6], now: clock.now) == [.duplicate])
            #expect(tracker.isSackDue(now: clock.now))
            let first = tracker.makeSack(advertisedReceiverWindowCredit: 1000)
            #expect(first.duplicateTSNs == [TSN(6)])
            _ = receive(&tracker, [7], now: clock.now)
            let second = tracker.makeSack(advertisedReceiverWindowCredit: 1000)
            #expect(second.duplicateTSNs.isEmpty)
        }

        @Test func duplicateOfOutOfOrderTSNIsDetected() {
            var tracker = DataTracker(peerInitialTSN: TSN(5))
            #expect(receive(&tracker, [7, 7], now: clock.now) == [.new, .duplicate])
        }

        @Test func duplicateListIsBounded() {
            var configuration = DataTracker.Configuration()
            configuration.maxDuplicates = 4
            var tracker = DataTracker(peerInitialTSN: TSN(1), configuration: configuration)
            _ = receive(&tracker, [1], now: clock.now)
            _ = receive(&tracker, Array(repeating: 1, count: 10), now: clock.now)
            #expect(tracker.makeSack(advertisedReceiverWindowCredit: 0).duplicateTSNs.count == 4)
        }

        @Test func immediateBitForcesSack() {
            var tracker = DataTracker(peerInitialTSN: TSN(1))
            _ = receive(&tracker, [1], immediate: true, now: clock.now)
            #expect(tracker.isSackDue(now: clock.now))
        }

        @Test func cumulativeTSNAdvancesAcrossWrap() {
            var tracker = DataTracker(peerInitialTSN: TSN(UInt32.max - 1))
            #expect(tracker.cumulativeTSN == TSN(UInt32.max - 2))
            _ = receive(&tracker, [UInt32.max - 1, UInt32.max, 0, 1], now: clock.now)
            #expect(tracker.cumulativeTSN == TSN(1))
            #expect(receive(&tracker, [UInt32.max], now: clock.now) == [.duplicate])
        }

        @Test func gapBlocksAcrossTSNWrap() {
            var tracker = DataTracker(peerInitialTSN: TSN(UInt32.max - 1))
            _ = receive(&tracker, [UInt32.max - 1, 1, 2, 4], now: clock.now)
            let sack = tracker.makeSack(advertisedReceiverWindowCredit: 0)
            #expect(sack.cumulativeTSNAck == TSN(UInt32.max - 1))
            #expect(blocks(sack) == [[3, 4], [6, 6]])
            _ = receive(&tracker, [UInt32.max, 0], now: clock.now)
            #expect(tracker.cumulativeTSN == TSN(2))
        }

        @Test func gapBlockCountIsBounded() {
            var tracker = DataTracker(peerInitialTSN: TSN(0))
            _ = receive(&tracker, stride(from: 2, through: 40, by: 2).map { UInt32($0) }, now: clock.now)
            let sack = tracker.makeSack(advertisedReceiverWindowCredit: 0, maxGapBlocks: 5)
            #expect(blocks(sack) == [[3, 3], [5, 5], [7, 7], [9, 9], [11, 11]])
        }

        @Test func mergingOutOfOrderArrivalsKeepsBlocksMinimal() {
            var tracker = DataTracker(peerInitialTSN: TSN(0))
            _ = receive(&tracker, [9, 5, 7, 6, 8, 3], now: clock.now)
            #expect(blocks(tracker.makeSack(advertisedReceiverWindowCredit: 0)) == [[4, 4], [6, 10]])
        }

        @Test func outOfWindowTSNIsRefused() {
            var configuration = DataTracker.Configuration()
            configuration.maxTSNsAhead = 100
            var tracker = DataTracker(peerInitialTSN: TSN(0), configuration: configuration)
            #expect(receive(&tracker, [99, 100], now: clock.now) == [.new, .outOfWindow])
        }

        @Test func forwardTSNAdvancesCumulativeTSN() {
            var tracker = DataTracker(peerInitialTSN: TSN(10))
            _ = receive(&tracker, [10, 14, 15, 18], now: clock.now)
            _ = tracker.makeSack(advertisedReceiverWindowCredit: 0)
            let r1 = tracker.handleForwardTSN(newCumulativeTSN: TSN(13), now: clock.now)
            #expect(r1)
            #expect(tracker.cumulativeTSN == TSN(15))
            #expect(tracker.isSackDue(now: clock.now))
            #expect(blocks(tracker.makeSack(advertisedReceiverWindowCredit: 0)) == [[3, 3]])
            let r2 = tracker.handleForwardTSN(newCumulativeTSN: TSN(12), now: clock.now)
            #expect(!r2)
            let r3 = tracker.handleForwardTSN(newCumulativeTSN: TSN(20), now: clock.now)
            #expect(r3)
            #expect(!tracker.hasGaps)
        }

        @Test func nrGapBlocksReportDeliveredTSNs() {
            var tracker = DataTracker(peerInitialTSN: TSN(1))
            _ = receive(&tracker, [1, 3, 4, 5, 7], now: clock.now)
            tracker.markDelivered(from: TSN(4), through: TSN(5))
            tracker.markDelivered(from: TSN(6), through: TSN(6))  // not received: ignored
            let sack = tracker.makeSack(advertisedReceiverWindowCredit: 0, includeNonRenegable: true)
            #expect(blocks(sack) == [[2, 4], [6, 6]])
            #expect(nrBlocks(sack) == [[3, 4]])
            _ = receive(&tracker, [2], now: clock.now)
            #expect(nrBlocks(tracker.makeSack(advertisedReceiverWindowCredit: 0, includeNonRenegable: true)).isEmpty)
        }

        /// `packetsPerSack` 4: the fourth packet brings the SACK; from the second on it is due within the delay the
        /// association gives, not 200 ms; the I bit and duplicates still bring one at once.
        @Test mutating func everyFourthPacketWithTheSecondsSackHeldBriefly() {
            var configuration = DataTracker.Configuration()
            configuration.packetsPerSack = 4
            var tracker = DataTracker(peerInitialTSN: TSN(1), configuration: configuration)
            func packet(_ tsn: UInt32, immediate: Bool = false) {
                _ = tracker.handleData(tsn: TSN(tsn), isImmediate: immediate)
                tracker.handlePacketEnd(now: clock.now, thinnedDelay: .milliseconds(5))
            }
            packet(1)
            #expect(tracker.sackDeadline == clock.now + .milliseconds(200))
            clock.advance(.milliseconds(1))
            packet(2)
            #expect(!tracker.isSackDue(now: clock.now))
            #expect(tracker.sackDeadline == clock.now + .milliseconds(5))
            let deadline = tracker.sackDeadline
            clock.advance(.milliseconds(1))
            packet(3)
            #expect(tracker.sackDeadline == deadline, "a later packet does not push the deadline back")
            packet(4)
            #expect(tracker.isSackDue(now: clock.now))
            #expect(tracker.makeSack(advertisedReceiverWindowCredit: 0).cumulativeTSNAck == TSN(4))

            packet(5)
            packet(6, immediate: true)
            #expect(tracker.isSackDue(now: clock.now), "the I bit")
            _ = tracker.makeSack(advertisedReceiverWindowCredit: 0)
            packet(6)
            #expect(tracker.isSackDue(now: clock.now), "a duplicate")
            _ = tracker.makeSack(advertisedReceiverWindowCredit: 0)

            // Alone, the thinned deadline comes due.
            packet(7)
            packet(8)
            #expect(!tracker.isSackDue(now: clock.now))
            clock.advance(.milliseconds(5))
            #expect(tracker.isSackDue(now: clock.now))
        }

        /// Thinned and with several paths (DAC: no SACK for a gap), a packet that fills a hole waits like any other
        /// (the sender marks retransmissions with the I bit); with the RFC's 2 it is acknowledged at once.
        @Test func aFilledHoleWaitsWhenThinned() {
            for packetsPerSack in [2, 4] {
                var configuration = DataTracker.Configuration()
                configuration.packetsPerSack = packetsPerSack
                configuration.sackImmediatelyOnGaps = false
                var tracker = DataTracker(peerInitialTSN: TSN(10), configuration: configuration)
                _ = receive(&tracker, [10, 12], now: clock.now)
                _ = tracker.makeSack(advertisedReceiverWindowCredit: 1000)
                _ = receive(&tracker, [11], now: clock.now)
                #expect(tracker.isSackDue(now: clock.now) == (packetsPerSack == 2), "\(packetsPerSack) per SACK")
            }
        }

        @Test func dacCountsPacketsSinceLastSack() {
            var tracker = DataTracker(peerInitialTSN: TSN(1))
            _ = receive(&tracker, [2], now: clock.now)
            _ = receive(&tracker, [3], now: clock.now)
            _ = receive(&tracker, [4], now: clock.now)
            #expect(tracker.packetsSinceLastSack == 3)
            #expect(tracker.makeSack(advertisedReceiverWindowCredit: 0).packetsSinceLastSack == 3)
            #expect(tracker.packetsSinceLastSack == 0)
        }
    }
}
