import NIOCore
import Testing

@testable import SCTPEngine

extension Components {
    @Suite struct SendQueueTests {
        func drain(_ queue: inout SendQueue, maxPayload: Int = 1000) -> [DataFragment] {
            var result: [DataFragment] = []
            while let fragment = queue.produce(maxPayload: maxPayload) { result.append(fragment) }
            return result
        }

        @Test func roundRobinSchedulerInterleavesStreams() {
            var queue = SendQueue()
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
            var queue = SendQueue(allowsInterleaving: true)
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
