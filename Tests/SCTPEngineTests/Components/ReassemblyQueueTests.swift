import NIOCore
import Testing

@testable import SCTPEngine

extension Components {
    @Suite struct ReassemblyQueueTests {
        func chunk(
            _ tsn: UInt32, stream: UInt16 = 0, ssn: UInt16 = 0, _ text: String, unordered: Bool = false,
            b: Bool = true, e: Bool = true
        ) -> DataChunk {
            DataChunk(
                tsn: TSN(tsn), streamID: StreamID(stream), ssn: SSN(ssn), ppid: PPID(51), isUnordered: unordered,
                isBeginning: b, isEnding: e, userData: ByteBuffer(string: text))
        }

        func drain(_ queue: inout ReassemblyQueue) -> [String] {
            var result: [String] = []
            while let message = queue.pollMessage() { result.append(String(buffer: message.payload)) }
            return result
        }

        @Test func orderedMessagesDeliveredBySSN() {
            var queue = ReassemblyQueue(capacity: 1 << 16)
            queue.add(chunk(12, ssn: 2, "c"))
            queue.add(chunk(11, ssn: 1, "b"))
            #expect(drain(&queue).isEmpty)
            queue.add(chunk(10, ssn: 0, "a"))
            #expect(drain(&queue) == ["a", "b", "c"])
        }

        @Test func headOfLineBlockingStaysWithinAStream() {
            var queue = ReassemblyQueue(capacity: 1 << 16)
            queue.add(chunk(11, stream: 1, ssn: 1, "s1-1"))
            queue.add(chunk(12, stream: 2, ssn: 0, "s2-0"))
            #expect(drain(&queue) == ["s2-0"])
        }

        @Test func unorderedDeliveredImmediately() {
            var queue = ReassemblyQueue(capacity: 1 << 16)
            queue.add(chunk(11, ssn: 1, "ordered"))
            queue.add(chunk(12, "unordered", unordered: true))
            let message = queue.pollMessage()
            #expect(message.map { String(buffer: $0.payload) } == "unordered")
            #expect(message?.isUnordered == true)
        }

        @Test func fragmentsReassembledInTSNOrder() {
            var queue = ReassemblyQueue(capacity: 1 << 16)
            queue.add(chunk(22, ssn: 0, "lo", b: false, e: true))
            queue.add(chunk(20, ssn: 0, "hel", b: true, e: false))
            #expect(drain(&queue).isEmpty)
            queue.add(chunk(21, ssn: 0, "lo, wor", b: false, e: false))
            let message = queue.pollMessage()
            #expect(message.map { String(buffer: $0.payload) } == "hello, worlo")
            #expect(message?.firstTSN == TSN(20))
            #expect(message?.lastTSN == TSN(22))
        }

        @Test func reassemblyAcrossTSNWrap() {
            var queue = ReassemblyQueue(capacity: 1 << 16)
            queue.add(chunk(1, ssn: 7, "C", b: false, e: true))
            queue.add(chunk(UInt32.max, ssn: 7, "A", b: true, e: false))
            queue.add(chunk(0, ssn: 7, "B", b: false, e: false))
            #expect(drain(&queue).isEmpty)  // SSN 7 waits for SSNs 0...6
            var queue2 = ReassemblyQueue(capacity: 1 << 16)
            queue2.add(chunk(0, "B", unordered: true, b: false, e: false))
            queue2.add(chunk(1, "C", unordered: true, b: false, e: true))
            queue2.add(chunk(UInt32.max, "A", unordered: true, b: true, e: false))
            #expect(drain(&queue2) == ["ABC"])
            var queue3 = ReassemblyQueue(capacity: 1 << 16)
            queue3.add(chunk(0, ssn: 1, "B", b: false, e: false))
            queue3.add(chunk(UInt32.max - 1, "x"))
            queue3.add(chunk(UInt32.max, ssn: 1, "A", b: true, e: false))
            queue3.add(chunk(1, ssn: 1, "C", b: false, e: true))
            #expect(drain(&queue3) == ["x", "ABC"])
        }

        @Test func ssnWrapAroundKeepsOrder() {
            var queue = ReassemblyQueue(capacity: 1 << 20)
            var tsn: UInt32 = 0
            for ssn in 0...UInt16.max {
                queue.add(chunk(tsn, ssn: ssn, "m"))
                tsn &+= 1
                _ = queue.pollMessage()
            }
            queue.add(chunk(tsn + 1, ssn: 1, "second"))
            queue.add(chunk(tsn, ssn: 0, "first"))
            #expect(drain(&queue) == ["first", "second"])
        }

        @Test func unorderedFragmentsOfDifferentMessagesStaySeparate() {
            var queue = ReassemblyQueue(capacity: 1 << 16)
            queue.add(chunk(5, "1b", unordered: true, b: true, e: false))
            queue.add(chunk(7, "2a", unordered: true, b: true, e: false))
            queue.add(chunk(8, "2b", unordered: true, b: false, e: true))
            #expect(drain(&queue) == ["2a2b"])
            queue.add(chunk(6, "1e", unordered: true, b: false, e: true))
            #expect(drain(&queue) == ["1b1e"])
        }

        /// Held fragments and waiting messages count at least `minimumCharge` each (their bookkeeping), released
        /// messages their payload until polled.
        @Test func bufferedBytesTracksHeldPayloadUntilPolled() {
            let charge = ReassemblyQueue.minimumCharge
            var queue = ReassemblyQueue(capacity: 4096)
            queue.add(chunk(1, ssn: 1, "12345"))
            queue.add(chunk(3, ssn: 2, "abc", b: true, e: false))
            #expect(queue.bufferedBytes == 2 * charge)
            #expect(queue.availableBytes == 4096 - 2 * charge)
            #expect(queue.hasRoom(for: 4096 - 2 * charge))
            #expect(!queue.hasRoom(for: 4096 - 2 * charge + 1))
            queue.add(chunk(0, ssn: 0, "xy"))
            #expect(queue.bufferedBytes == 7 + charge)
            _ = drain(&queue)
            #expect(queue.bufferedBytes == charge)
            queue.add(chunk(4, ssn: 2, "de", b: false, e: true))
            #expect(queue.bufferedBytes == 5)
            #expect(drain(&queue) == ["abcde"])
            #expect(queue.bufferedBytes == 0)
        }

        /// A payload larger than the minimum charge counts its bytes, and one that is most of its storage is kept
        /// as it is (no copy); one that is a small part of a large buffer is copied out of it.
        @Test func onlySmallSlicesOfLargeBuffersAreCopied() {
            var datagram = ByteBufferAllocator().buffer(capacity: 2048)
            datagram.writeRepeatingByte(7, count: 1400)
            let large = datagram.getSlice(at: 0, length: 1300)!
            let small = datagram.getSlice(at: 1300, length: 100)!
            #expect(ReassemblyQueue.ownStorage(large).storageCapacity == 2048)
            #expect(ReassemblyQueue.ownStorage(small).storageCapacity <= 200)
            #expect(ReassemblyQueue.ownStorage(small) == small)
            var queue = ReassemblyQueue(capacity: 1 << 16)
            queue.add(DataChunk(tsn: TSN(5), streamID: StreamID(0), ssn: SSN(1), ppid: PPID(0), userData: large))
            #expect(queue.bufferedBytes == 1300)
        }

        /// Unordered fragments in random order, many messages interleaved, some never complete: each complete
        /// message comes out exactly once and whole, and nothing of an incomplete one does.
        @Test(arguments: [1, 2, 3] as [UInt64])
        func unorderedFragmentsInRandomOrderAssembleExactly(seed: UInt64) {
            var random = SCTPRandom(seed: seed)
            var queue = ReassemblyQueue(capacity: 1 << 24)
            var chunks: [DataChunk] = []
            var expected: [String] = []
            var tsn = UInt32.max - 500
            for message in 0..<400 {
                let count = 2 + Int(random.next() % 6)
                let complete = message % 7 != 3
                var text = ""
                for i in 0..<count {
                    let part = "\(message).\(i);"
                    text += part
                    // An incomplete message loses one of its fragments.
                    if complete || i != count / 2 {
                        chunks.append(chunk(tsn, part, unordered: true, b: i == 0, e: i == count - 1))
                    }
                    tsn &+= 1
                }
                if complete { expected.append(text) }
            }
            chunks.shuffle(using: &random)
            var received: [String] = []
            for data in chunks {
                queue.add(data)
                received += drain(&queue)
            }
            #expect(received.sorted() == expected.sorted())
        }

        /// Ordered fragmented messages on several streams, their fragments interleaved across streams and
        /// reordered a little (as CMT over paths of unequal delay delivers them): every message comes out whole,
        /// each stream's in SSN order, and nothing is left held or charged afterwards.
        @Test(arguments: [1, 2, 3] as [UInt64])
        func orderedFragmentsInterleavedAndReorderedAssembleInOrder(seed: UInt64) {
            var random = SCTPRandom(seed: seed)
            var queue = ReassemblyQueue(capacity: 1 << 24)
            var chunks: [DataChunk] = []
            var expected: [UInt16: [String]] = [:]
            var nextSSN: [UInt16: UInt16] = [:]
            var tsn = UInt32.max - 300
            for message in 0..<300 {
                let stream = UInt16(random.next() % 4)
                let ssn = nextSSN[stream, default: 0]
                nextSSN[stream] = ssn &+ 1
                let count = 1 + Int(random.next() % 5)
                var text = ""
                for i in 0..<count {
                    let part = "\(message).\(i);"
                    text += part
                    chunks.append(chunk(tsn, stream: stream, ssn: ssn, part, b: i == 0, e: i == count - 1))
                    tsn &+= 1
                }
                expected[stream, default: []].append(text)
            }
            // Each chunk moves at most a few places: swaps of neighbours within a window of 8.
            for i in chunks.indices.dropLast() where random.next() % 3 == 0 {
                let j = min(chunks.count - 1, i + 1 + Int(random.next() % 7))
                chunks.swapAt(i, j)
            }
            var received: [UInt16: [String]] = [:]
            for data in chunks {
                queue.add(data)
                while let message = queue.pollMessage() {
                    received[message.streamID.rawValue, default: []].append(String(buffer: message.payload))
                }
            }
            #expect(received == expected)
            #expect(queue.bufferedBytes == 0)
            #expect(queue.heldFragmentCount == 0)
        }

        /// Fragments of an ordered message that arrive in TSN order are copied into one buffer for the message as
        /// they come, so none of them keeps its datagram's buffer alive, and the buffer grows by doubling: it never
        /// holds more than twice its bytes of storage. One after a gap waits in storage of its own until the gap
        /// fills.
        @Test func inOrderFragmentsAreAssembledIntoOneBufferAsTheyArrive() {
            var queue = ReassemblyQueue(capacity: 1 << 20)
            // Each fragment a 1,000-byte slice of its own 64 KiB "read buffer", as with receive offload.
            func fragment(_ tsn: UInt32, byte: UInt8, b: Bool = false, e: Bool = false) -> DataChunk {
                var read = ByteBufferAllocator().buffer(capacity: 65_536)
                read.writeRepeatingByte(0, count: 100)
                read.writeRepeatingByte(byte, count: 1000)
                read.moveReaderIndex(forwardBy: 100)
                return DataChunk(
                    tsn: TSN(tsn), streamID: StreamID(0), ssn: SSN(0), ppid: PPID(0), isBeginning: b, isEnding: e,
                    userData: read)
            }
            queue.add(fragment(1, byte: 1, b: true))
            for tsn in 2...20 { queue.add(fragment(UInt32(tsn), byte: UInt8(tsn))) }
            #expect(queue.heldFragmentCount == 1)
            var held = queue.heldPayloadStorage
            #expect(held.payload == 20_000 && held.storage < 2 * held.payload, "\(held)")
            // TSN 22 after a gap waits apart, in storage its own size; 21 fills the gap and takes 22 with it.
            queue.add(fragment(22, byte: 22))
            #expect(queue.heldFragmentCount == 2)
            held = queue.heldPayloadStorage
            #expect(held.payload == 21_000 && held.storage < 2 * 20_000 + 1_000 + 100, "\(held)")
            queue.add(fragment(21, byte: 21))
            #expect(queue.heldFragmentCount == 1)
            queue.add(fragment(23, byte: 23, e: true))
            let message = queue.pollMessage()
            #expect(message?.payload.readableBytes == 23_000)
            #expect(message.map { $0.payload.storageCapacity < 2 * 23_000 } == true)
            let expected = (1...23).flatMap { [UInt8](repeating: UInt8($0), count: 1000) }
            #expect(message.map { Array($0.payload.readableBytesView) } == expected)
            #expect(message?.firstTSN == TSN(1) && message?.lastTSN == TSN(23))
            #expect(queue.bufferedBytes == 0 && queue.heldFragmentCount == 0)
        }

        /// A message's buffer is reserved at the size of the last one assembled; a smaller message that follows gets
        /// storage its own size once complete, so messages waiting for an earlier SSN (charged for their bytes) do
        /// not keep that room alive: a peer cannot pin a window's worth of memory with a few bytes each.
        @Test func aSmallMessageAfterALargeOneDoesNotKeepItsRoom() {
            var queue = ReassemblyQueue(capacity: 1 << 22)
            let part = String(repeating: "x", count: 1000)
            queue.add(chunk(0, stream: 0, ssn: 0, part, b: true, e: false))
            for tsn in 1..<199 { queue.add(chunk(UInt32(tsn), stream: 0, ssn: 0, part, b: false, e: false)) }
            queue.add(chunk(199, stream: 0, ssn: 0, part, b: false, e: true))
            #expect(queue.pollMessage()?.payload.readableBytes == 200_000)
            // Ten two-fragment messages of 2 bytes on stream 1, held back by SSN 0, which never comes.
            for index in 0..<10 {
                let tsn = UInt32(200 + 2 * index)
                queue.add(chunk(tsn, stream: 1, ssn: UInt16(1 + index), "a", b: true, e: false))
                queue.add(chunk(tsn + 1, stream: 1, ssn: UInt16(1 + index), "b", b: false, e: true))
            }
            #expect(queue.heldFragmentCount == 10)
            let held = queue.heldPayloadStorage
            #expect(held.payload == 20 && held.storage <= 2 * 20, "\(held)")
        }

        /// A fragment that arrives before its message's B fragment waits; so does one a rule-breaking peer puts
        /// below B with the same SSN, which can never join the message: when the message completes it is dropped
        /// with it, and nothing stays charged.
        @Test func aFragmentBelowItsBeginningIsDroppedWhenTheMessageCompletes() {
            var queue = ReassemblyQueue(capacity: 1 << 16)
            queue.add(chunk(5, ssn: 0, "stray", b: false, e: false))
            queue.add(chunk(8, ssn: 0, "-mid", b: false, e: false))
            queue.add(chunk(7, ssn: 0, "start", b: true, e: false))
            #expect(queue.heldFragmentCount == 2)  // "start-mid" assembled, "stray" waiting
            // Two buffers held, each under the minimum charge: 2 × 512 in all, their 14 payload bytes included.
            #expect(queue.bufferedBytes == 2 * ReassemblyQueue.minimumCharge)
            queue.add(chunk(9, ssn: 0, "-end", b: false, e: true))
            #expect(drain(&queue) == ["start-mid-end"])
            #expect(queue.bufferedBytes == 0 && queue.heldFragmentCount == 0)
        }

        /// A stream reset drops the partial message fragments were last added to, like any other.
        @Test func streamResetDropsThePartialMessageBeingFilled() {
            var queue = ReassemblyQueue(capacity: 1 << 16)
            queue.add(chunk(1, stream: 2, ssn: 0, "fir", b: true, e: false))
            queue.add(chunk(2, stream: 2, ssn: 0, "st", b: false, e: false))
            #expect(queue.heldFragmentCount == 1)  // in order: one buffer being assembled
            #expect(queue.bufferedBytes > 0)
            queue.resetStreams([StreamID(2)])
            #expect(queue.heldFragmentCount == 0)
            #expect(queue.bufferedBytes == 0)
            queue.add(chunk(3, stream: 2, ssn: 0, "again"))
            #expect(drain(&queue) == ["again"])
        }

        @Test func forwardTSNSkipsAbandonedSSN() {
            var queue = ReassemblyQueue(capacity: 1 << 16)
            queue.add(chunk(10, stream: 3, ssn: 0, "part", b: true, e: false))
            queue.add(chunk(13, stream: 3, ssn: 1, "next"))
            #expect(drain(&queue).isEmpty)
            queue.handleForwardTSN(newCumulativeTSN: TSN(12), skipped: [(StreamID(3), SSN(0))])
            #expect(drain(&queue) == ["next"])
            #expect(queue.bufferedBytes == 0)
        }

        /// RFC 3758 §3.6: the receiver "MUST ... immediately make available for delivery stream sequence numbers
        /// earlier than or equal to the stream sequence number listed": complete messages that waited behind an
        /// abandoned one are delivered, in SSN order, not dropped.
        @Test func forwardTSNDeliversCompleteMessagesUpToTheListedSSN() {
            var queue = ReassemblyQueue(capacity: 1 << 16)
            queue.add(chunk(10, stream: 3, ssn: 0, "zero-", b: true, e: false))  // abandoned, never completed
            queue.add(chunk(12, stream: 3, ssn: 1, "one"))
            queue.add(chunk(13, stream: 3, ssn: 2, "two-", b: true, e: false))  // abandoned too
            queue.add(chunk(15, stream: 3, ssn: 3, "three"))
            queue.add(chunk(16, stream: 3, ssn: 5, "five"))  // still waits for SSN 4
            #expect(drain(&queue).isEmpty)
            queue.handleForwardTSN(newCumulativeTSN: TSN(14), skipped: [(StreamID(3), SSN(2))])
            #expect(drain(&queue) == ["one", "three"])
            queue.add(chunk(17, stream: 3, ssn: 4, "four"))
            #expect(drain(&queue) == ["four", "five"])
            #expect(queue.bufferedBytes == 0)
        }

        @Test func streamResetRestartsSSN() {
            var queue = ReassemblyQueue(capacity: 1 << 16)
            queue.add(chunk(1, stream: 1, ssn: 0, "a"))
            queue.add(chunk(2, stream: 1, ssn: 1, "b"))
            queue.resetStreams([StreamID(1)])
            queue.add(chunk(3, stream: 1, ssn: 0, "c"))
            #expect(drain(&queue) == ["a", "b", "c"])
        }
    }
}
