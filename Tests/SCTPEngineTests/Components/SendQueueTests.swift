import NIOCore
import Testing

@testable import SCTPEngine

extension Components {
    @Suite struct SendQueueTests {
        func drain(_ queue: inout SendQueue, maxPayload: Int = 1000, count: Int = .max) -> [DataFragment] {
            var result: [DataFragment] = []
            while result.count < count, let fragment = queue.produce(maxPayload: maxPayload) { result.append(fragment) }
            return result
        }

        /// `holdsOnlySparseStreams` reads a count of the sparse list's bytes kept as streams join and leave the list
        /// and as bytes are queued, cut, dropped at expiry or dropped with a started message: after every step of a
        /// seeded mix of them (many streams, as a burst of connections makes) the count equals the bytes summed over
        /// the list, and the answer is what that sum gives.
        @Test func sparseStreamsBytesAreCountedThroughEveryChange() {
            var random = SCTPRandom(seed: 21)
            for interleaving in [false, true] {
                var queue = SendQueue(
                    highWatermark: 1 << 30, lowWatermark: 1 << 29, allowsInterleaving: interleaving, quantum: 300)
                var sawOnlySparse = false
                var sawMixed = false
                for step in 0..<20_000 {
                    let now = SCTPTime(nanoseconds: Int64(step) * 1_000_000)
                    switch random.next() % 10 {
                    case 0..<4:
                        let stream = StreamID(UInt16(random.next() % 40))
                        let size = 1 + Int(random.next() % 2_000)
                        let timed = random.next() % 4 == 0
                        queue.enqueue(
                            streamID: stream, ppid: PPID(0), payload: testPayload(size),
                            abandonment: timed ? .deadline(now + .milliseconds(Int64(random.next() % 50))) : .never)
                    case 4..<9:
                        _ = queue.produce(maxPayload: 1 + Int(random.next() % 1_200), arrival: now)
                    default:
                        queue.dropStartedMessage(on: StreamID(UInt16(random.next() % 40)))
                    }
                    let summed = queue.sparseQueuedBytesSummed
                    #expect(queue.sparseQueuedBytes == summed, "step \(step)")
                    if queue.sparseQueuedBytes != summed { return }
                    let expected = summed == queue.bufferedBytes && queue.hasSparseStreams
                    #expect(queue.holdsOnlySparseStreams == expected, "step \(step)")
                    if expected { sawOnlySparse = true } else if queue.hasSparseStreams { sawMixed = true }
                }
                #expect(sawOnlySparse && sawMixed, "the mix did not reach both answers")
            }
        }

        /// Three streams arrive at once; each sends its quantum (one message here) in arrival order, then the two
        /// still backlogged alternate a quantum at a time.
        @Test func streamsTakeTurnsOfAQuantum() {
            var queue = SendQueue(quantum: 10)
            for _ in 0..<3 { queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(10)) }
            for _ in 0..<3 { queue.enqueue(streamID: StreamID(2), ppid: PPID(0), payload: testPayload(10)) }
            queue.enqueue(streamID: StreamID(3), ppid: PPID(0), payload: testPayload(10))
            #expect(drain(&queue).map(\.streamID.rawValue) == [1, 2, 3, 1, 2, 1, 2])
        }

        @Test func bulkStreamCannotStarveInteractiveStream() {
            var queue = SendQueue(highWatermark: 1 << 30, lowWatermark: 1 << 29)
            for _ in 0..<100 { queue.enqueue(streamID: StreamID(0), ppid: PPID(0), payload: testPayload(1000)) }
            _ = queue.produce(maxPayload: 1000)
            queue.enqueue(streamID: StreamID(9), ppid: PPID(0), payload: testPayload(20))
            let next = queue.produce(maxPayload: 1000)
            let after = queue.produce(maxPayload: 1000)
            #expect([next, after].map { $0?.streamID.rawValue } == [0, 9])
        }

        /// A stream is light until it has used a quantum: one never seen, a new one, and one that queued a small
        /// message are; the stream that used its quantum is not, and stays not while parked after running dry.
        @Test func aStreamIsLightUntilItUsesAQuantum() {
            var queue = SendQueue(quantum: 1000)
            #expect(queue.isLight(StreamID(5)))
            for _ in 0..<4 { queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(1000)) }
            #expect(queue.isLight(StreamID(1)))
            _ = queue.produce(maxPayload: 1000)
            _ = queue.produce(maxPayload: 1000)
            #expect(!queue.isLight(StreamID(1)))
            queue.enqueue(streamID: StreamID(2), ppid: PPID(0), payload: testPayload(64))
            #expect(queue.isLight(StreamID(2)))
            #expect(!queue.isLight(StreamID(1)))
            // A new stream that queued a large read at once is not light, though it has not been served yet.
            queue.enqueue(streamID: StreamID(3), ppid: PPID(0), payload: testPayload(SendQueue.lightStreamLimit))
            #expect(!queue.isLight(StreamID(3)))
            // Served down to under the limit (still within its first quantum): light again.
            var big = SendQueue(quantum: 100_000)
            big.enqueue(streamID: StreamID(4), ppid: PPID(0), payload: testPayload(SendQueue.lightStreamLimit + 500))
            #expect(!big.isLight(StreamID(4)))
            _ = big.produce(maxPayload: 1000)
            #expect(big.isLight(StreamID(4)))
        }

        // MARK: - Sparse streams first (fq_codel's new-flow boost, RFC 8290 §4.1)

        /// Bytes each stream sent among `fragments`.
        func bytesPerStream(_ fragments: [DataFragment]) -> [UInt16: Int] {
            fragments.reduce(into: [:]) { $0[$1.streamID.rawValue, default: 0] += $1.payload.readableBytes }
        }

        @Test func sparseMessageLeavesBeforeEveryBulkStreamsQueuedData() {
            var queue = SendQueue(highWatermark: 1 << 30, lowWatermark: 1 << 29)
            for stream in 0..<4 as Range<UInt16> {
                for _ in 0..<20 {
                    queue.enqueue(streamID: StreamID(stream), ppid: PPID(0), payload: testPayload(16_384))
                }
            }
            // Every bulk stream has had turns: all are on the bulk list, one in the middle of a message.
            let before = drain(&queue, count: 100)
            #expect(Set(before.map(\.streamID.rawValue)) == [0, 1, 2, 3])
            let current = before.last!.streamID
            queue.enqueue(streamID: StreamID(9), ppid: PPID(0), payload: testPayload(64))
            // RFC 9260 §6.9: the started DATA message is finished first; then the sparse one, before the others.
            var next = queue.produce(maxPayload: 1000)!
            while next.streamID == current && !next.isEnding { next = queue.produce(maxPayload: 1000)! }
            if next.streamID == current { next = queue.produce(maxPayload: 1000)! }
            #expect(next.streamID == StreamID(9))
            #expect(next.isBeginning && next.isEnding)
        }

        @Test func sparseMessageOvertakesWithInterleavingAtTheNextFragment() {
            var queue = SendQueue(allowsInterleaving: true)
            for _ in 0..<10 { queue.enqueue(streamID: StreamID(0), ppid: PPID(0), payload: testPayload(16_384)) }
            _ = drain(&queue, count: 10)
            queue.enqueue(streamID: StreamID(3), ppid: PPID(0), payload: testPayload(200))
            #expect(queue.produce(maxPayload: 1000)?.streamID == StreamID(3))
        }

        @Test func bulkStreamsShareByBytesWhateverTheirMessageSize() {
            var queue = SendQueue(highWatermark: 1 << 30, lowWatermark: 1 << 29)
            for _ in 0..<40 { queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(16_000)) }
            for _ in 0..<6_400 { queue.enqueue(streamID: StreamID(2), ppid: PPID(0), payload: testPayload(100)) }
            var sent = 0
            var fragments: [DataFragment] = []
            while sent < 400_000, let fragment = queue.produce(maxPayload: 1000) {
                fragments.append(fragment)
                sent += fragment.payload.readableBytes
            }
            let bytes = bytesPerStream(fragments)
            // Message-by-message turns would give stream 1 a 160:1 share; by bytes each gets half, give or take one
            // message (the DATA message that overran its turn).
            #expect(abs(bytes[1, default: 0] - bytes[2, default: 0]) <= 2 * 16_000, "\(bytes)")
        }

        /// A stream that refills as soon as it runs dry is sparse only once per round of the bulk streams: it is
        /// parked behind them (RFC 8290 §4.2), so the bulk stream keeps a steady share.
        @Test func aStreamThatAlwaysRefillsCannotStarveTheBulkStream() {
            var queue = SendQueue(highWatermark: 1 << 30, lowWatermark: 1 << 29)
            for _ in 0..<200 { queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(1000)) }
            queue.enqueue(streamID: StreamID(2), ppid: PPID(0), payload: testPayload(1000))
            var order: [UInt16] = []
            for _ in 0..<300 {
                guard let fragment = queue.produce(maxPayload: 1000) else { break }
                order.append(fragment.streamID.rawValue)
                if fragment.streamID == StreamID(2) {
                    queue.enqueue(streamID: StreamID(2), ppid: PPID(0), payload: testPayload(1000))
                }
            }
            let bulk = order.filter { $0 == 1 }.count
            #expect(bulk >= order.count / 3, "bulk stream sent \(bulk) of \(order.count)")
            // Never more than two of the refilling stream's messages in a row.
            let longestRun = order.split(separator: 1).map(\.count).max() ?? 0
            #expect(longestRun <= 2, "\(order.prefix(40))")
        }

        @Test func aStreamThatOverranItsTurnPaysItBack() {
            var queue = SendQueue(quantum: 1000)
            queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(5000))
            queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(1000))
            for _ in 0..<8 { queue.enqueue(streamID: StreamID(2), ppid: PPID(0), payload: testPayload(1000)) }
            // Stream 1's 5000-byte message goes whole (RFC 9260 §6.9), 4000 over its quantum: stream 2 then sends
            // its own quantum and four more before stream 1's next message.
            #expect(drain(&queue).map(\.streamID.rawValue) == [1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 1, 2, 2, 2])
        }

        @Test func largeMessageFragmentedToMaxPayload() {
            var queue = SendQueue()
            queue.enqueue(streamID: StreamID(4), ppid: PPID(53), payload: testPayload(2500))
            let fragments = drain(&queue)
            #expect(fragments.map(\.payload.readableBytes) == [1000, 1000, 500])
            #expect(fragments.map(\.isBeginning) == [true, false, false])
            #expect(fragments.map(\.isEnding) == [false, false, true])
            #expect(fragments.allSatisfy { $0.ssn == SSN(0) && $0.ppid == PPID(53) })
            #expect(queue.bufferedBytes == 0)
        }

        @Test func fragmentsOfOneMessageStayConsecutiveWithDATA() {
            // RFC 9260 §6.9: a message's fragments must get consecutive TSNs, so a stream keeps its turn.
            var queue = SendQueue()
            queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(3000))
            queue.enqueue(streamID: StreamID(2), ppid: PPID(0), payload: testPayload(10))
            #expect(drain(&queue).map(\.streamID.rawValue) == [1, 1, 1, 2])
        }

        @Test func interleavingGivesPerFragmentTurns() {
            var queue = SendQueue(allowsInterleaving: true, quantum: 1000)
            queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(3000))
            queue.enqueue(streamID: StreamID(2), ppid: PPID(0), payload: testPayload(2000))
            #expect(drain(&queue).map(\.streamID.rawValue) == [1, 2, 1, 2, 1])
        }

        @Test func ssnAssignedPerOrderedStreamAndWraps() {
            var queue = SendQueue(highWatermark: 1 << 30, lowWatermark: 0)
            for _ in 0...Int(UInt16.max) {
                queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(1))
                _ = queue.produce(maxPayload: 100)
            }
            queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(1))
            queue.enqueue(streamID: StreamID(2), ppid: PPID(0), payload: testPayload(1))
            let fragments = drain(&queue)
            #expect(fragments.map(\.ssn) == [SSN(0), SSN(0)])
            #expect(queue.nextSSN(of: StreamID(1)) == SSN(1))
        }

        @Test func unorderedMessagesTakeNoSSN() {
            var queue = SendQueue()
            queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(1), isUnordered: true)
            queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(1))
            let fragments = drain(&queue)
            #expect(fragments.map(\.isUnordered) == [true, false])
            #expect(fragments.map(\.ssn) == [SSN(0), SSN(0)])
            #expect(queue.nextSSN(of: StreamID(1)) == SSN(1))
        }

        @Test func immediateBitOnlyOnLastFragment() {
            var queue = SendQueue()
            queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(1500), isImmediate: true)
            #expect(drain(&queue).map(\.isImmediate) == [false, true])
        }

        @Test func watermarksDriveWritability() {
            var queue = SendQueue(highWatermark: 3000, lowWatermark: 1000)
            queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(2000))
            #expect(queue.isWritable)
            queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(1500))
            #expect(!queue.isWritable)
            _ = queue.produce(maxPayload: 1000)
            _ = queue.produce(maxPayload: 1000)
            #expect(!queue.isWritable)
            let r1 = queue.pollWritable()
            #expect(!r1)
            _ = queue.produce(maxPayload: 1000)
            #expect(queue.bufferedBytes == 500)
            #expect(queue.isWritable)
            let r2 = queue.pollWritable()
            #expect(r2)
            let r3 = queue.pollWritable()
            #expect(!r3)
        }

        /// The association moves the watermarks with its congestion windows: lowering the high one under what is
        /// queued makes the queue full at once; raising it over twice what is queued frees it, with one event.
        @Test func movedWatermarksTakeEffectAtOnce() {
            var queue = SendQueue(highWatermark: 10_000, lowWatermark: 5000)
            queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: testPayload(4000))
            #expect(queue.isWritable)
            queue.setWatermarks(high: 3000)
            #expect(!queue.isWritable)
            #expect(queue.lowWatermark == 1500)
            queue.setWatermarks(high: 6000)
            #expect(!queue.isWritable)  // 4000 is above the new low watermark (3000)
            queue.setWatermarks(high: 8000)
            #expect(queue.isWritable)
            let first = queue.pollWritable()
            let second = queue.pollWritable()
            #expect(first && !second)
        }

        @Test func emptyMessageRefused() {
            var queue = SendQueue()
            let r4 = queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: ByteBuffer())
            #expect(!r4)
            #expect(queue.isEmpty)
        }

        @Test func payloadSlicesShareTheMessageStorage() {
            var queue = SendQueue()
            var message = ByteBuffer()
            message.writeString("abcdefghij")
            queue.enqueue(streamID: StreamID(1), ppid: PPID(0), payload: message)
            #expect(drain(&queue, maxPayload: 4).map { String(buffer: $0.payload) } == ["abcd", "efgh", "ij"])
        }
    }
}
