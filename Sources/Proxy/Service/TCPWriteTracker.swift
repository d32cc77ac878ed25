import NIOCore

/// Which of the relay's writes to one TCP socket are done, learnt without a promise per write: a promise, its
/// future and the closures NIO chains onto them were four allocations per write, about 45 % of aggclient's.
///
/// A stream channel writes in order, so after a flush the bytes it still holds are the newest ones handed to it,
/// and every write older than them is done: the glue hands `flushed` the channel's `bufferedWritableBytes`. While
/// the socket holds some back, one marker (an empty write with a promise, written after them) says when everything
/// handed before it is done; the marker is the only promise, one per backlog rather than one per write. Bytes the
/// channel holds for somebody else (a proxy handler's response head) only make the tracker wait longer: a write is
/// never reported before it left. No I/O: the glue writes the marker and feeds the results back.
///
/// Each write's buffer is kept until it is reported, and reported with it: a buffer the channel has written is let
/// go of by NIO, so the glue can hand it back to the engine for the next message (`SCTPDriver.recycleMessageBuffer`)
/// instead of letting it be freed.
struct TCPWriteTracker {
    /// Each write handed to the channel and not reported yet, oldest first.
    private var writes = CircularBuffer<ByteBuffer>(initialCapacity: 4)
    /// Their bytes.
    private(set) var pendingBytes = 0
    /// Writes handed to the channel so far, and how many of them were reported.
    private var handedCount: UInt64 = 0
    private var reportedCount: UInt64 = 0
    /// The marker written and not completed yet: `handedCount` when it was written (the writes it covers).
    private var marker: UInt64?

    /// Whether every write handed to the channel was reported.
    var isEmpty: Bool { writes.isEmpty }
    /// Whether a marker is written and not completed.
    var hasMarker: Bool { marker != nil }

    /// A write of `buffer`'s readable bytes went to the channel (without a promise).
    mutating func handed(_ buffer: ByteBuffer) {
        writes.append(buffer)
        pendingBytes += buffer.readableBytes
        handedCount &+= 1
    }

    /// After a flush, the channel still holds `buffered` bytes: each write older than those is done, reported to
    /// `done` with its buffer, oldest first. Returns whether a marker must be written now (writes are left and no
    /// marker is out).
    mutating func flushed(channelHolds buffered: Int, _ done: (ByteBuffer) -> Void) -> Bool {
        var left = pendingBytes - buffered
        while let first = writes.first?.readableBytes, first <= left {
            left -= first
            report(done)
        }
        return !writes.isEmpty && marker == nil
    }

    /// The marker was handed to the channel after every write so far.
    mutating func markerWritten() {
        marker = handedCount
    }

    /// The marker completed: every write it covers is done, reported to `done` oldest first (the ones a flush
    /// reported already are not again).
    mutating func markerCompleted(_ done: (ByteBuffer) -> Void) {
        guard let covered = marker else { return }
        marker = nil
        while reportedCount < covered, !writes.isEmpty { report(done) }
    }

    /// The channel failed (or closed) with writes pending: every write not reported failed, reported to `failed`
    /// oldest first. A marker still out completes with the same failure and reports nothing more.
    mutating func failAll(_ failed: (ByteBuffer) -> Void) {
        while !writes.isEmpty { report(failed) }
        marker = nil
    }

    private mutating func report(_ body: (ByteBuffer) -> Void) {
        let write = writes.removeFirst()
        pendingBytes -= write.readableBytes
        reportedCount &+= 1
        body(write)
    }
}
