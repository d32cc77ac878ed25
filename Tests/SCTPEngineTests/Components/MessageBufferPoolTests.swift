import NIOCore
import Testing

@testable import SCTPEngine

extension Components {
    /// `MessageBufferPool`: the buffers of messages the application is done with build the next messages; the pool
    /// is bounded, emptied when idle, and never hands out a buffer somebody still holds.
    @Suite struct MessageBufferPoolTests {
        /// The first byte of `buffer`'s storage, whatever its indices.
        static func storage(_ buffer: ByteBuffer) -> UInt? {
            buffer.withVeryUnsafeBytes { $0.baseAddress.map { UInt(bitPattern: $0) } }
        }

        /// A buffer as a message reassembled in it: `size` bytes written into storage of `capacity`.
        static func message(_ size: Int, capacity: Int) -> ByteBuffer {
            var buffer = ByteBufferAllocator().buffer(capacity: capacity)
            buffer.writeRepeatingByte(1, count: size)
            return buffer
        }

        @Test func aRecycledBufferIsHandedOutAgainEmpty() {
            var pool = MessageBufferPool()
            var message: ByteBuffer? = Self.message(60_000, capacity: 65_536)
            let storage = Self.storage(message!)
            pool.recycle(message!)
            message = nil
            let buffer = pool.take(capacity: 40_000)
            #expect(Self.storage(buffer) == storage)
            #expect(buffer.readableBytes == 0)
            #expect(buffer.capacity == 65_536)
            #expect(pool.spares.isEmpty && pool.storedBytes == 0)
        }

        @Test func aBufferStillHeldElsewhereIsNeverHandedOut() {
            var pool = MessageBufferPool()
            // As NIO holds a write it has not finished yet.
            let held = Self.message(60_000, capacity: 65_536)
            pool.recycle(held)
            var buffer = pool.take(capacity: 40_000)
            #expect(Self.storage(buffer) != Self.storage(held))
            buffer.writeRepeatingByte(2, count: 100)
            #expect(held.readableBytesView.allSatisfy { $0 == 1 } && held.readableBytes == 60_000)
            // The held one is dropped, not kept for later.
            #expect(pool.spares.isEmpty && pool.storedBytes == 0)
        }

        @Test func onlyABufferOfTheSizeTheAllocatorWouldGiveIsHandedOut() {
            var pool = MessageBufferPool()
            pool.recycle(Self.message(10, capacity: 8192))
            pool.recycle(Self.message(10, capacity: 262_144))
            // 100 KiB: the 8 KiB buffer is too small, the 256 KiB one would charge the window for its room; both stay.
            let buffer = pool.take(capacity: 100_000)
            #expect(buffer.capacity >= 100_000)
            #expect(pool.spares.count == 2)
            // 200,000 bytes: the 256 KiB buffer fits.
            #expect(pool.take(capacity: 200_000).capacity == 262_144)
            #expect(pool.spares.map(\.capacity) == [8192])
        }

        @Test func slicesAndSmallBuffersAreNotKept() {
            var pool = MessageBufferPool()
            var whole = Self.message(60_000, capacity: 65_536)
            pool.recycle(whole.readSlice(length: 30_000)!)
            pool.recycle(Self.message(10, capacity: MessageBufferPool.minimumBytes / 2))
            #expect(pool.spares.isEmpty)
        }

        @Test func thePoolIsBoundedInBuffersAndBytes() {
            var pool = MessageBufferPool()
            for _ in 0..<(MessageBufferPool.maximumCount * 2) { pool.recycle(Self.message(10, capacity: 8192)) }
            #expect(pool.spares.count == MessageBufferPool.maximumCount)
            var large = MessageBufferPool()
            for _ in 0..<MessageBufferPool.maximumCount { large.recycle(Self.message(10, capacity: 1 << 19)) }
            #expect(large.storedBytes <= MessageBufferPool.maximumBytes)
            #expect(large.spares.count == MessageBufferPool.maximumBytes / (1 << 19))
        }

        /// A full pool makes room for the buffer handed back last. Spares of a size no message takes any more stay
        /// otherwise, keeping every later buffer out for as long as the endpoint is busy (the idle trim never comes):
        /// a peer's large message makes reassembly reserve a large room for its next, and a small one leaves that
        /// room to the pool, so one association could fill the pool all of them share with rooms nobody takes.
        @Test func aFullPoolMakesRoomForTheNewestBuffer() {
            var pool = MessageBufferPool()
            let large = MessageBufferPool.maximumBytes / (1 << 17)
            for _ in 0..<large { pool.recycle(Self.message(10, capacity: 1 << 17)) }
            #expect(pool.storedBytes == MessageBufferPool.maximumBytes)
            pool.recycle(Self.message(16_000, capacity: 32_768))
            // The oldest large spare made room; the 32 KiB one is the next message's.
            #expect(pool.spares.map(\.capacity) == Array(repeating: 1 << 17, count: large - 1) + [32_768])
            #expect(pool.storedBytes <= MessageBufferPool.maximumBytes)
            #expect(pool.take(capacity: 16_390).capacity == 32_768)
            #expect(pool.spares.count == large - 1)
        }

        @Test func anIdlePoolIsEmptiedAndABusyOneIsNot() {
            var pool = MessageBufferPool()
            let start = SCTPTime(nanoseconds: 5_000_000_000)
            pool.trimIfIdle(now: start)
            pool.recycle(Self.message(10, capacity: 8192))
            pool.recycle(Self.message(10, capacity: 8192))
            // Taken from within the interval: kept.
            _ = pool.take(capacity: 6000)
            pool.recycle(Self.message(10, capacity: 8192))
            pool.trimIfIdle(now: start + .milliseconds(1500))
            #expect(pool.spares.count == 2)
            // Less than the interval since the last timer that saw a buffer taken: kept.
            pool.trimIfIdle(now: start + .milliseconds(2000))
            #expect(pool.spares.count == 2)
            // None taken for the interval: emptied.
            pool.trimIfIdle(now: start + .milliseconds(2500))
            #expect(pool.spares.isEmpty && pool.storedBytes == 0)
        }

        @Test func aMessageIsAssembledInARecycledBuffer() {
            var queue = ReassemblyQueue(capacity: 1 << 20)
            var pool = MessageBufferPool()
            /// One ordered message of `fragments` × 1,000 bytes from TSN `first`, SSN `ssn`.
            func add(first: UInt32, ssn: UInt16, fragments: UInt32) {
                for i in 0..<fragments {
                    queue.add(
                        DataChunk(
                            tsn: TSN(first + i), streamID: StreamID(1), ssn: SSN(ssn), ppid: PPID(51),
                            isUnordered: false, isBeginning: i == 0, isEnding: i == fragments - 1,
                            userData: ByteBuffer(repeating: UInt8(ssn), count: 1000)),
                        buffers: &pool)
                }
            }
            add(first: 1, ssn: 0, fragments: 20)
            var first = queue.pollMessage()
            #expect(first?.payload.readableBytes == 20_000)
            let storage = Self.storage(first!.payload)
            pool.recycle(first!.payload)
            first = nil
            add(first: 21, ssn: 1, fragments: 20)
            let second = queue.pollMessage()
            #expect(second.map { Self.storage($0.payload) } == storage)
            #expect(second?.payload.readableBytesView.allSatisfy { $0 == 1 } == true)
            #expect(second?.payload.readableBytes == 20_000)
            // A shorter message after them is copied out of the room reserved for it, which goes to the pool.
            #expect(pool.spares.isEmpty)
            add(first: 41, ssn: 2, fragments: 5)
            let third = queue.pollMessage()
            #expect(third?.payload.readableBytes == 5000)
            #expect(third.map { $0.payload.storageCapacity < 10_000 } == true)
            #expect(pool.spares.map(\.capacity) == [32_768])
        }
    }
}

/// `SCTPEndpoint.recycleMessageBuffer`: a message the application is done with builds the peer's next one, and the
/// endpoint lets go of its spares at a timer once idle.
@Suite struct MessageBufferRecyclingTests {
    /// Exchanges packets and fires timers until the server has delivered a message; its payload.
    static func nextMessage(_ l: Lockstep) -> ByteBuffer? {
        for _ in 0..<50 {
            l.exchange()
            for (index, event) in l.serverEvents.enumerated() {
                guard case .message(_, let message) = event else { continue }
                l.serverEvents.remove(at: index)
                return message.payload
            }
            l.advanceToNextDeadline()
        }
        return nil
    }

    @Test func theNextMessageIsBuiltInTheBufferOfTheLastAndAnIdleEndpointLetsGo() throws {
        let l = Lockstep()
        let id = l.connect()
        l.exchange()
        try l.client.send(ByteBuffer(repeating: 1, count: 20_000), on: id, stream: StreamID(1), now: l.now)
        var first = Self.nextMessage(l)
        #expect(first?.readableBytes == 20_000)
        let storage = Components.MessageBufferPoolTests.storage(first!)
        l.server.recycleMessageBuffer(first!)
        first = nil
        try l.client.send(ByteBuffer(repeating: 2, count: 20_000), on: id, stream: StreamID(1), now: l.now)
        var second = Self.nextMessage(l)
        #expect(second.map(Components.MessageBufferPoolTests.storage) == storage)
        #expect(second?.readableBytesView.allSatisfy { $0 == 2 } == true)
        l.server.recycleMessageBuffer(second!)
        second = nil
        // Idle: the timers that follow (the heartbeats at the latest) empty the pool.
        l.advance(to: l.now + .seconds(40))
        l.advance(to: l.now + .seconds(40))
        #expect(l.server.output.messageBuffers.spares.isEmpty)
    }

    /// With no association left an endpoint runs no timer, so the idle trim would never come: the last
    /// association's close lets go of both pools (before, a server whose clients had all gone kept up to 2 MiB of
    /// message buffers and 2 MiB of packet buffers for good).
    @Test func anEndpointWhoseLastAssociationClosedKeepsNoSpares() throws {
        let l = Lockstep()
        let id = l.connect()
        l.exchange()
        try l.client.send(ByteBuffer(repeating: 1, count: 20_000), on: id, stream: StreamID(1), now: l.now)
        let message = try #require(Self.nextMessage(l))
        l.server.recycleMessageBuffer(message)
        l.server.recycle(ByteBufferAllocator().buffer(capacity: 1_500))
        #expect(!l.server.output.messageBuffers.spares.isEmpty)
        #expect(!l.server.output.spareBuffers.isEmpty)
        l.client.abort(id, reason: "bye", now: l.now)
        l.exchange()
        #expect(l.server.associationIDs.isEmpty)
        #expect(l.server.nextDeadline() == nil)
        #expect(l.server.output.messageBuffers.spares.isEmpty)
        #expect(l.server.output.spareBuffers.isEmpty)
        // Buffers handed back after the close (a relay's last write done, the last packet sealed) are not kept.
        l.server.recycleMessageBuffer(ByteBufferAllocator().buffer(capacity: 16_384))
        l.server.recycle(ByteBufferAllocator().buffer(capacity: 1_500))
        #expect(l.server.output.messageBuffers.spares.isEmpty)
        #expect(l.server.output.spareBuffers.isEmpty)
    }
}
