import AggTransport
import NIOCore
import Testing

/// The relayed connections' read sizes: the adaptive sizes while the association has room for them under twice its
/// send buffer, cut to the room (at least 2 KiB) when it has not, decided at each read; an egress connection's first
/// read whole up to 16 KiB; the reads NIO makes on its own at the peer's FIN never cut.
@Suite struct RelayReadAllocatorTests {
    let allocator = ByteBufferAllocator()
    /// The connection's permit, which the glue opens for each read the session allows.
    let permit = ReadPermit()

    /// The bytes an association holds unsent, as a test sets them.
    final class Queue: @unchecked Sendable {
        var queued = 0
        func room(sendBuffer: Int = 256 * 1_024) -> SendRoom { SendRoom(sendBuffer: sendBuffer) { self.queued } }
    }

    /// Reads through `reads` as NIO does: a buffer, then the record; the capacity the read had. `allowed`: the session
    /// allowed the read (the glue opens the permit before it asks NIO to read); otherwise NIO drains at the FIN.
    func read(_ reads: inout RelayReadAllocator, filling: Bool = true, allowed: Bool = true) -> Int {
        if allowed { permit.isOpen = true }
        #expect(reads.nextBufferSize() == nil, "NIO's pool would reuse a larger buffer")
        let capacity = reads.buffer(allocator: allocator).capacity
        let mayGrow = reads.record(actualReadBytes: filling ? capacity : 1)
        #expect(mayGrow, "NIO's pool would reuse its buffer")
        return capacity
    }

    @Test func theFirstEgressReadTakesSixteenKiBWithinTwiceTheSendBuffer() {
        let queue = Queue()
        queue.queued = 300 * 1_024  // past the send buffer, within twice it
        var reads = RelayReadAllocator.egress(queue.room(), permit: permit)
        #expect(reads.buffer(allocator: allocator).capacity == 16 * 1_024)
        queue.queued = 2 * 256 * 1_024 - 5_000  // 5,000 bytes of room under twice the buffer: a 4 KiB read
        #expect(reads.buffer(allocator: allocator).capacity == 4 * 1_024)
        queue.queued = 2 * 256 * 1_024 + 1  // past twice the buffer: the least read
        #expect(read(&reads) == 2 * 1_024)
    }

    @Test func laterReadsTakeWhatTheyHaveRoomForUnderTwiceTheSendBuffer() {
        let queue = Queue()
        var reads = RelayReadAllocator.egress(queue.room(), permit: permit)
        // Each filled read doubles the next, within the room.
        #expect(read(&reads) == 16 * 1_024)
        #expect(read(&reads) == 32 * 1_024)
        #expect(read(&reads) == 64 * 1_024)
        queue.queued = 456 * 1_024  // 56 KiB of room under 512 KiB for a 128 KiB read: a 32 KiB read
        #expect(read(&reads) == 32 * 1_024)
        queue.queued = 512 * 1_024  // none: the least read, however many connections read now
        #expect(read(&reads) == 2 * 1_024)
        #expect(read(&reads) == 2 * 1_024)
        // The cut reads said nothing about the connection: with room again it reads what it would have.
        queue.queued = 0
        #expect(read(&reads) == 128 * 1_024)
        #expect(read(&reads) == 256 * 1_024)
        #expect(read(&reads) == 256 * 1_024)
    }

    @Test func anIngressConnectionStartsSmallAndGrowsWithinTheRoom() {
        let queue = Queue()
        var reads = RelayReadAllocator.ingress(queue.room(sendBuffer: 4 << 20), permit: permit)
        var size = read(&reads)
        #expect(size == 2 * 1_024)
        for _ in 0..<7 { size = read(&reads) }
        #expect(size == 256 * 1_024)
        queue.queued = (8 << 20) - 1  // one byte of room under twice the buffer: the least read
        #expect(read(&reads) == 2 * 1_024)
    }

    @Test func anInteractiveConnectionsReadsShrinkBack() {
        let queue = Queue()
        var reads = RelayReadAllocator.egress(queue.room(), permit: permit)
        var size = read(&reads)
        for _ in 0..<12 { size = read(&reads, filling: false) }
        #expect(size == 1_024)
    }

    /// At a FIN, NIO reads everything the socket holds whether a read was allowed or not (its `readEOF`): those
    /// bytes come in any case, and cut to the room they came as 2 KiB slivers, a message each.
    @Test func readsNIOMakesWithoutAnAllowedReadAreNotCut() {
        let queue = Queue()
        var reads = RelayReadAllocator.egress(queue.room(), permit: permit)
        queue.queued = 2 * 256 * 1_024  // no room under twice the buffer
        #expect(read(&reads) == 2 * 1_024, "the allowed read is cut")
        #expect(!permit.isOpen, "the read used the permit")
        // A 10 KB response and the FIN: NIO drains it without a read asked for.
        #expect(read(&reads, allowed: false) == 16 * 1_024)
        #expect(read(&reads, allowed: false) == 32 * 1_024, "a drain's reads grow as a transfer's do")
        // The session allows the next read: cut again.
        #expect(read(&reads) == 2 * 1_024)
    }

    /// The permit tells the relay handler which reads the session allowed (`StreamSession.handleRead`'s `allowed`,
    /// which decides whether a read may take the association past its unsent limit): the first read, which NIO
    /// makes as the connection comes up, is; a read made with the permit closed (NIO draining at the FIN) is not,
    /// and the next one the session allows is again.
    @Test func thePermitTellsWhichReadsTheSessionAllowed() {
        let queue = Queue()
        let permit = ReadPermit()
        var reads = RelayReadAllocator.egress(queue.room(), permit: permit)
        _ = reads.buffer(allocator: allocator)
        _ = reads.record(actualReadBytes: 100)
        #expect(permit.lastReadWasAllowed)
        _ = reads.buffer(allocator: allocator)
        _ = reads.record(actualReadBytes: 100)
        #expect(!permit.lastReadWasAllowed)
        permit.isOpen = true
        _ = reads.buffer(allocator: allocator)
        _ = reads.record(actualReadBytes: 100)
        #expect(permit.lastReadWasAllowed)
    }
}
