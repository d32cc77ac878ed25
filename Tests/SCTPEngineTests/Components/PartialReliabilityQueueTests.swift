import NIOCore
import Testing

@testable import SCTPEngine

extension Components {
    /// The send and retransmission queues' part of PR-SCTP: lifetimes checked before a TSN is assigned (RFC 3758
    /// §4.1 TR3) and before a retransmission (TR4, RFC 7496 §4.2), whole messages abandoned (§3.5 A3), and the
    /// FORWARD-TSN built from what was abandoned (§3.5 C2, C4).
    @Suite struct PartialReliabilityQueueTests {
        let path = PathID(0)
        let t0 = SCTPTime(nanoseconds: 1_000_000_000)

        func fragment(
            stream: UInt16 = 1, ssn: UInt16 = 0, unordered: Bool = false, b: Bool = true, e: Bool = true,
            rule: AbandonmentRule = .never
        ) -> DataFragment {
            DataFragment(
                streamID: StreamID(stream), ssn: SSN(ssn), ppid: PPID(0), isUnordered: unordered, isBeginning: b,
                isEnding: e, payload: testPayload(100), abandonment: rule)
        }

        // MARK: - Send queue (TR3)

        @Test func expiredMessageIsDroppedBeforeItGetsATSN() {
            var queue = SendQueue()
            queue.enqueue(
                streamID: StreamID(1), ppid: PPID(0), payload: testPayload(10), isUnordered: true,
                abandonment: .deadline(t0 + .milliseconds(100)))
            queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(20), isUnordered: true)
            let first = queue.produce(maxPayload: 1000, arrival: t0 + .milliseconds(100))
            #expect(first?.payload.readableBytes == 20)
            let dropped = queue.pollAbandoned()
            #expect(dropped == 1)
            let droppedAgain = queue.pollAbandoned()
            #expect(droppedAgain == 0)
            #expect(queue.bufferedBytes == 0)
            #expect(queue.isEmpty)
        }

        @Test func messageThatCanStillArriveIsSent() {
            var queue = SendQueue()
            queue.enqueue(
                streamID: StreamID(1), ppid: PPID(0), payload: testPayload(10),
                abandonment: .deadline(t0 + .milliseconds(100)))
            let sent = queue.produce(maxPayload: 1000, arrival: t0 + .milliseconds(99))
            #expect(sent != nil)
            let dropped = queue.pollAbandoned()
            #expect(dropped == 0)
        }

        /// When even the fastest path takes more than half the lifetime (350 ms of a 300 ms lifetime here), a message
        /// may arrive up to half its lifetime after that path would deliver it: one that waited in the queue less
        /// than half its lifetime still goes once, one that waited longer is dropped. A message queued without its
        /// lifetime is judged by its deadline as before.
        @Test func aMessageNoPathCouldDeliverInTimeGoesUnlessItWaitedHalfItsLifetime() {
            var queue = SendQueue()
            for stream in [1, 2, 3] as [UInt16] {
                queue.enqueue(
                    streamID: StreamID(stream), ppid: PPID(0), payload: testPayload(10), isUnordered: true,
                    abandonment: .deadline(t0 + .milliseconds(300)), lifetime: stream == 3 ? nil : .milliseconds(300))
            }
            let delay = SCTPDuration.milliseconds(350)
            func arrivals(_ now: SCTPTime) -> SendQueue.TimedArrivals { .init(now + delay, fastestDelay: delay) }
            #expect(queue.produce(maxPayload: 1000, arrivals: arrivals(t0))?.streamID == StreamID(1))
            let later = arrivals(t0 + .milliseconds(149))
            #expect(queue.produce(maxPayload: 1000, arrivals: later)?.streamID == StreamID(2))
            #expect(queue.produce(maxPayload: 1000, arrivals: later) == nil)
            #expect(queue.pollAbandoned() == 1)
            queue.enqueue(
                streamID: StreamID(1), ppid: PPID(0), payload: testPayload(10), isUnordered: true,
                abandonment: .deadline(t0 + .milliseconds(300)), lifetime: .milliseconds(300))
            #expect(queue.produce(maxPayload: 1000, arrivals: arrivals(t0 + .milliseconds(150))) == nil)
            #expect(queue.pollAbandoned() == 1)
            #expect(queue.isEmpty)
        }

        /// With the fastest path's delay under half the lifetime, the deadline holds as it is: a fast path that is
        /// full for the moment does not let a slow one carry the message late.
        @Test func aFastPathKeepsTheDeadlineStrict() {
            var queue = SendQueue()
            queue.enqueue(
                streamID: StreamID(1), ppid: PPID(0), payload: testPayload(10), isUnordered: true,
                abandonment: .deadline(t0 + .milliseconds(300)), lifetime: .milliseconds(300))
            let slow = SendQueue.TimedArrivals(t0 + .milliseconds(350), fastestDelay: .milliseconds(10))
            #expect(queue.produce(maxPayload: 1000, arrivals: slow) == nil)
            #expect(queue.pollAbandoned() == 1)
        }

        @Test func startedMessageIsFinishedEvenAfterItsLifetime() {
            var queue = SendQueue()
            queue.enqueue(
                streamID: StreamID(1), ppid: PPID(0), payload: testPayload(300),
                abandonment: .deadline(t0 + .milliseconds(100)))
            let head = queue.produce(maxPayload: 200, arrival: t0)
            #expect(head?.isBeginning == true)
            let tail = queue.produce(maxPayload: 200, arrival: t0 + .seconds(1))
            #expect(tail?.isEnding == true)
            #expect(tail?.payload.readableBytes == 100)
        }

        @Test func timedMessageIsNotStartedInAPacketItDoesNotFit() {
            var queue = SendQueue()
            queue.enqueue(
                streamID: StreamID(1), ppid: PPID(0), payload: testPayload(300),
                abandonment: .deadline(t0 + .seconds(1)))
            let inFullPacket = queue.produce(maxPayload: 200, arrival: t0, keepsTimedMessagesWhole: true)
            #expect(inFullPacket == nil)
            let inNextPacket = queue.produce(maxPayload: 300, arrival: t0, keepsTimedMessagesWhole: true)
            #expect(inNextPacket?.isEnding == true)
        }

        @Test func restOfAnAbandonedMessageLeavesTheQueue() {
            var queue = SendQueue()
            queue.enqueue(
                streamID: StreamID(1), ppid: PPID(0), payload: testPayload(300),
                abandonment: .afterRetransmissions(0))
            queue.enqueue(streamID: StreamID(2), ppid: PPID(0), payload: testPayload(50))
            _ = queue.produce(maxPayload: 100)
            let droppedRest = queue.dropStartedMessage(on: StreamID(1))
            #expect(droppedRest)
            let droppedAgain = queue.dropStartedMessage(on: StreamID(1))
            #expect(!droppedAgain)
            let next = queue.produce(maxPayload: 100)
            #expect(next?.streamID == StreamID(2))
            #expect(queue.isEmpty)
            #expect(queue.bufferedBytes == 0)
        }

        // MARK: - Retransmission queue (TR4, A3, C2, C4)

        /// Four chunks: an ordered message of two fragments (stream 1, SSN 4), one unordered, one reliable.
        func sentQueue(rule: AbandonmentRule) -> (OutstandingData, [TSN]) {
            var queue = OutstandingData(initialTSN: TSN(100))
            let tsns = [
                queue.insert(fragment(stream: 1, ssn: 4, e: false, rule: rule), path: path, now: t0).tsn,
                queue.insert(fragment(stream: 1, ssn: 4, b: false, rule: rule), path: path, now: t0).tsn,
                queue.insert(fragment(stream: 2, unordered: true, rule: rule), path: path, now: t0).tsn,
                queue.insert(fragment(stream: 3, ssn: 9), path: path, now: t0).tsn,
            ]
            return (queue, tsns)
        }

        @Test func markedChunkPastItsLifetimeTakesItsWholeMessage() {
            var (queue, tsns) = sentQueue(rule: .deadline(t0 + .milliseconds(100)))
            queue.markAllForRetransmission(on: path)
            let tooEarly = queue.abandonMarkedChunks(arrival: t0 + .milliseconds(50))
            #expect(tooEarly.messages == 0)
            let abandoned = queue.abandonMarkedChunks(arrival: t0 + .milliseconds(100))
            #expect(abandoned.messages == 2)
            #expect(abandoned.unfinishedStreams.isEmpty)
            #expect(queue.item(for: tsns[0])?.state == .abandoned)
            #expect(queue.item(for: tsns[1])?.state == .abandoned)
            #expect(queue.item(for: tsns[3])?.state == .outstanding)
            #expect(queue.totalFlightSize == 0)
            #expect(queue.unackedBytes == 100)  // only the reliable chunk is still owed
            // The reliable chunk is still retransmitted; the abandoned ones never.
            let retransmitted = queue.pollRetransmission(to: path, now: t0)
            #expect(retransmitted?.tsn == tsns[3])
            let more = queue.pollRetransmission(to: path, now: t0)
            #expect(more == nil)
        }

        @Test func limitedRetransmissionsAbandonOnlyBeyondTheLimit() {
            var (queue, _) = sentQueue(rule: .afterRetransmissions(1))
            queue.markAllForRetransmission(on: path)
            let afterFirst = queue.abandonMarkedChunks(arrival: t0)
            #expect(afterFirst.messages == 0)
            while queue.pollRetransmission(to: path, now: t0) != nil {}
            queue.markAllForRetransmission(on: path)
            let afterSecond = queue.abandonMarkedChunks(arrival: t0)
            #expect(afterSecond.messages == 2)
        }

        @Test func forwardTSNNamesTheHighestSkippedSSNOfEachOrderedStream() {
            var queue = OutstandingData(initialTSN: TSN(100))
            let rule = AbandonmentRule.afterRetransmissions(0)
            for (stream, ssn, unordered) in [(1, 4, false), (1, 5, false), (2, 0, true), (5, 7, false)] {
                _ = queue.insert(
                    fragment(stream: UInt16(stream), ssn: UInt16(ssn), unordered: unordered, rule: rule), path: path,
                    now: t0)
            }
            _ = queue.insert(fragment(stream: 3, ssn: 1), path: path, now: t0)  // reliable, last
            #expect(queue.makeForwardTSN(maxStreams: 10) == nil)
            queue.markAllForRetransmission(on: path)
            let abandoned = queue.abandonMarkedChunks(arrival: t0)
            #expect(abandoned.messages == 4)
            let forward = queue.makeForwardTSN(maxStreams: 10)
            #expect(forward?.newCumulativeTSN == TSN(103))  // stops before the reliable chunk
            #expect(
                forward?.streams == [
                    .init(streamID: StreamID(1), ssn: SSN(5)), .init(streamID: StreamID(5), ssn: SSN(7)),
                ])
            // C4: when the entries do not fit, the ack point is lowered to the last TSN that fits.
            let short = queue.makeForwardTSN(maxStreams: 1)
            #expect(short?.newCumulativeTSN == TSN(102))
            #expect(short?.streams == [.init(streamID: StreamID(1), ssn: SSN(5))])
        }

        /// The receiver discards every partial message up to a FORWARD-TSN's new cumulative TSN (RFC 3758 §3.6): a
        /// reliable message whose first fragment was acknowledged and whose last is still owed must stay above it,
        /// or it is lost for good (seen with a reliable stream beside timed datagrams after a T3-rtx expiry).
        @Test func forwardTSNNeverEndsInsideAMessageThatIsNotAbandoned() {
            var queue = OutstandingData(initialTSN: TSN(100))
            let timed = AbandonmentRule.afterRetransmissions(0)
            _ = queue.insert(fragment(stream: 2, unordered: true, rule: timed), path: path, now: t0)  // 100
            _ = queue.insert(fragment(stream: 1, ssn: 0, e: false), path: path, now: t0)  // 101, first fragment
            _ = queue.insert(fragment(stream: 1, ssn: 0, b: false), path: path, now: t0)  // 102, last fragment
            func sack(_ blocks: [GapBlock]) -> SackInfo {
                SackInfo(cumulativeTSNAck: TSN(99), advertisedReceiverWindowCredit: 100_000, gapAckBlocks: blocks)
            }
            _ = queue.handleSack(sack([GapBlock(start: 2, end: 2)]), now: t0)  // 101 arrived, 100 and 102 lost
            queue.markAllForRetransmission(on: path)
            _ = queue.abandonMarkedChunks(arrival: t0)
            #expect(queue.item(for: TSN(100))?.state == .abandoned)
            #expect(queue.advancedPeerAckPoint == TSN(100))
            #expect(queue.makeForwardTSN(maxStreams: 10)?.newCumulativeTSN == TSN(100))
            // With its last fragment acknowledged the whole message lies below the point.
            _ = queue.handleSack(sack([GapBlock(start: 2, end: 3)]), now: t0)
            #expect(queue.advancedPeerAckPoint == TSN(102))
            #expect(queue.makeForwardTSN(maxStreams: 10)?.newCumulativeTSN == TSN(102))
        }

        @Test func forwardTSNIsDueOnlyWhenTheChunkAfterTheCumulativeAckIsAbandoned() {
            var (queue, tsns) = sentQueue(rule: .afterRetransmissions(0))
            #expect(!queue.needsForwardTSN)
            // The first fragment arrives; the second is lost and abandoned with its message.
            _ = queue.handleSack(
                SackInfo(cumulativeTSNAck: tsns[0], advertisedReceiverWindowCredit: 100_000), now: t0)
            queue.markAllForRetransmission(on: path)
            _ = queue.abandonMarkedChunks(arrival: t0)
            #expect(queue.needsForwardTSN)
            #expect(queue.advancedPeerAckPoint == tsns[2])
            _ = queue.handleSack(
                SackInfo(cumulativeTSNAck: tsns[2], advertisedReceiverWindowCredit: 100_000), now: t0)
            #expect(!queue.needsForwardTSN)
        }
    }
}
