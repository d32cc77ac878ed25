import NIOCore

/// How the relayed TCP connections read, on both daemons: a bulk transfer's reads grow to 256 KiB (one system call
/// per 256 KiB instead of per 64 KiB, NIO's default ceiling), an idle or interactive connection's stay small (the
/// allocator starts at 2 KiB and shrinks back), so many idle connections cost no more than before.
package enum TCPReads {
    package static let allocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2_048, maximum: 256 * 1_024)

    /// An egress connection's reads (aggserver's, to the target): the first takes up to 16 KiB, so a small response
    /// (a web page's object, an API reply) arrives in one read and goes out as one message, sent whole in its
    /// stream's first turn, instead of three (2, 4 and 8 KiB) in three turns; a bulk transfer's grow to 256 KiB.
    /// A burst's first reads are not cut at the send buffer's high watermark: an 8 KiB cut there, kept until
    /// 2026-12-07, split every response of 8 to 16 KiB in a burst into two messages, two writes to the application
    /// and two buffers, and measured more memory at 10,000 connections, not less (BENCHMARKS.md, issue 21). A first
    /// read shrinks only when less than it is left under twice the send buffer (`RelayReadAllocator`).
    package static let egressAllocator = AdaptiveRecvByteBufferAllocator(
        minimum: 64, initial: 16 * 1_024, maximum: 256 * 1_024)

    /// The smallest read a relayed connection makes while its association's send queue has less room than its
    /// next read would take (`RelayReadAllocator`): a read granted while the queue had room may come after other
    /// connections filled it, and brings this much past it at most.
    package static let leastRead = 2 * 1_024

    /// Reads per readable event on a relayed connection (an egress one on aggserver, an application's once the relay
    /// joins it on aggclient): one. NIO reads again while a read fills its buffer, up to four times by default, and
    /// a read cut to `leastRead` fills it: four would bring four times that past a full send queue per connection
    /// (5.6 MB on a 4 MiB buffer with 300 uploads, `EgressReadBoundTests`). Later reads wait in `StreamSession` for
    /// the buffer to drain; a bulk transfer's reads of up to 256 KiB keep one system call per 256 KiB.
    package static let relayReadsPerEvent = 1
}

/// How much one association takes before its relayed connections' reads shrink (`readRoom`): twice `sendBuffer`
/// (`SCTPConfiguration.sendBufferSize`) less what its connections read and did not send yet (in the engine's send
/// queue, or in the stream session waiting for a stream's credit), asked at each read. Confined to the association's
/// event loop, where its connections read.
package final class SendRoom: @unchecked Sendable {
    /// The association's send buffer at its largest.
    package let sendBuffer: Int
    private let queued: () -> Int

    /// `queued` answers the bytes read and not yet sent.
    package init(sendBuffer: Int, queued: @escaping () -> Int) {
        self.sendBuffer = sendBuffer
        self.queued = queued
    }

    /// Bytes the association's connections may still read before their reads are cut: twice `sendBuffer` (a
    /// connection reads only while the queue is under its high watermark, or the stream is light and the queue
    /// under the buffer, so the cut matters only for reads allowed before other connections filled it) less what
    /// was read and not sent; zero past it. `RelayReadAllocator` cuts reads to it, `StreamSession` lets reads in by it.
    package var readRoom: Int { max(0, 2 * sendBuffer - queued()) }

    /// The bytes read and not sent yet.
    package var unsent: Int { queued() }
}

/// Whether a relayed connection's socket read is one its stream session allowed: the glue opens it as it passes the
/// session's read on to NIO, the read closes it. A read made while it is closed is NIO draining the socket at the
/// peer's FIN: on `EPOLLRDHUP` NIO reads everything the kernel holds, whether or not a read was asked for, and the
/// bytes come whatever the room. Shared by the connection's `RelayReadAllocator` and its relay handler; confined
/// to the connection's event loop.
package final class ReadPermit: @unchecked Sendable {
    /// Open until the first read: NIO asks for one as the channel comes up.
    package var isOpen = true
    /// Whether the last read was one the session allowed (made while the permit was open).
    package private(set) var lastReadWasAllowed = true

    /// A read was made: it closes the permit.
    package func recordRead() {
        lastReadWasAllowed = isOpen
        isOpen = false
    }

    package init() {}
}

/// A relayed connection's reads: the adaptive sizes of `TCPReads`, each cut to what its association has room for
/// under twice its send buffer (at least `TCPReads.leastRead`), so that what a read brings is bounded when it is
/// made, not only when it was allowed. A connection reads only while the queue is writable (`StreamSession`), but
/// that is decided when the read is asked for and the bytes come in a later turn of the loop: when a drained queue
/// becomes writable, every connection waiting for it is allowed one read at the same moment, and 300 such reads of
/// a grown size once queued 9 MB on a 256 KiB buffer (`EgressReadBoundTests`). Cut, they bring the room and 2 KiB
/// each past it.
///
/// Reads NIO makes while draining the socket at the peer's FIN (the `ReadPermit` closed) are not cut: the kernel's
/// bytes come in any case, and cut they came as 2 KiB slivers, each a read, a message and a write on the other side
/// (a burst of 10,000 responses of 10 KB, each followed by the server's FIN: 6.6 reads per response instead of 3).
///
/// Every read gets a buffer of its own size: NIO's pool would otherwise reuse a buffer the size of the largest read
/// so far (it reads into all of it), which a cut must not. A read brings its bytes into a new buffer anyway as soon
/// as the send queue holds the last one's, as it does in a transfer.
package struct RelayReadAllocator: RecvByteBufferAllocator {
    private var adaptive: AdaptiveRecvByteBufferAllocator
    private let room: SendRoom
    private let permit: ReadPermit

    /// An egress connection's (aggserver's, to a target): a first read of up to 16 KiB, so a small response arrives
    /// in one read and goes out as one message.
    package static func egress(_ room: SendRoom, permit: ReadPermit) -> RelayReadAllocator {
        RelayReadAllocator(adaptive: TCPReads.egressAllocator, room: room, permit: permit)
    }

    /// An accepted connection's (aggclient's, from the application) once the relay joins it.
    package static func ingress(_ room: SendRoom, permit: ReadPermit) -> RelayReadAllocator {
        RelayReadAllocator(adaptive: TCPReads.allocator, room: room, permit: permit)
    }

    private init(adaptive: AdaptiveRecvByteBufferAllocator, room: SendRoom, permit: ReadPermit) {
        self.adaptive = adaptive
        self.room = room
        self.permit = permit
    }

    /// The next read's size, and whether the room cut it.
    private var next: (size: Int, isCut: Bool) {
        let wanted = adaptive.nextBufferSize() ?? TCPReads.leastRead
        guard permit.isOpen else { return (wanted, false) }  // NIO drains the socket at its FIN.
        let room = room.readRoom
        guard room < wanted else { return (wanted, false) }
        // ByteBuffer rounds a capacity up to a power of two: round the room down to one.
        let size = max(TCPReads.leastRead, 1 << (Int.bitWidth - 1 - max(room, 1).leadingZeroBitCount))
        return (min(size, wanted), true)
    }

    package func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        allocator.buffer(capacity: next.size)
    }

    /// None: NIO then takes each read's buffer from `buffer(allocator:)` (given `record`'s true).
    package func nextBufferSize() -> Int? { nil }

    package mutating func record(actualReadBytes: Int) -> Bool {
        // A read cut short says nothing about the connection's rate: the adaptive sizes ignore it. The queue has
        // not moved since the read's buffer was sized (NIO records a read before it passes the bytes on).
        if !next.isCut { _ = adaptive.record(actualReadBytes: actualReadBytes) }
        permit.recordRead()
        return true
    }
}
