import NIOCore
import Testing

@testable import Proxy

/// `TCPWriteTracker`: the relay's writes to a TCP socket are reported done, in order, once the channel no longer
/// holds their bytes, and never before.
@Suite struct TCPWriteTrackerTests {
    /// Hands writes of `sizes` to a new tracker.
    static func tracker(_ sizes: [Int]) -> TCPWriteTracker {
        var tracker = TCPWriteTracker()
        for size in sizes { tracker.handed(write(size)) }
        return tracker
    }

    /// A write of `size` bytes.
    static func write(_ size: Int) -> ByteBuffer { ByteBuffer(repeating: 0, count: size) }

    @Test func everyWriteIsDoneWhenTheChannelHoldsNothingAfterTheFlush() {
        var tracker = Self.tracker([100, 200, 300])
        var done: [Int] = []
        let needsMarker = tracker.flushed(channelHolds: 0) { done.append($0.readableBytes) }
        #expect(done == [100, 200, 300])
        #expect(!needsMarker)
        #expect(tracker.isEmpty)
        #expect(tracker.pendingBytes == 0)
    }

    @Test func onlyWritesOlderThanTheBytesHeldAreDone() {
        var tracker = Self.tracker([100, 200, 300])
        var done: [Int] = []
        // 350 bytes held: the last write (300) and 50 of the second.
        let needsMarker = tracker.flushed(channelHolds: 350) { done.append($0.readableBytes) }
        #expect(done == [100])
        #expect(needsMarker)
        #expect(tracker.pendingBytes == 500)
    }

    @Test func bytesHeldForSomebodyElseOnlyDelayTheReport() {
        // The channel holds 50 bytes another handler wrote after ours: ours are taken to be held.
        var tracker = Self.tracker([100])
        var done: [Int] = []
        #expect(tracker.flushed(channelHolds: 150) { done.append($0.readableBytes) })
        #expect(done.isEmpty)
        // They are reported once the channel has let go of everything.
        #expect(!tracker.flushed(channelHolds: 0) { done.append($0.readableBytes) })
        #expect(done == [100])
    }

    @Test func aMarkerCompletesTheWritesBeforeItAndNotTheOnesAfter() {
        var tracker = Self.tracker([100, 200])
        var done: [Int] = []
        #expect(tracker.flushed(channelHolds: 300) { done.append($0.readableBytes) })
        tracker.markerWritten()
        #expect(tracker.hasMarker)
        tracker.handed(Self.write(400))
        // A flush while the marker is out reports nothing new and asks for no second marker.
        #expect(!tracker.flushed(channelHolds: 700) { done.append($0.readableBytes) })
        tracker.markerCompleted { done.append($0.readableBytes) }
        #expect(done == [100, 200])
        #expect(!tracker.hasMarker)
        #expect(tracker.pendingBytes == 400)
        // The write after the marker needs one of its own if the socket still holds it.
        #expect(tracker.flushed(channelHolds: 400) { done.append($0.readableBytes) })
    }

    @Test func aMarkerDoesNotReportAgainWhatAFlushReported() {
        var tracker = Self.tracker([100, 200])
        var done: [Int] = []
        #expect(tracker.flushed(channelHolds: 250) { done.append($0.readableBytes) })
        tracker.markerWritten()
        tracker.handed(Self.write(50))
        // The socket took the first two writes; the third is still held.
        #expect(!tracker.flushed(channelHolds: 50) { done.append($0.readableBytes) })
        #expect(done == [100, 200])
        tracker.markerCompleted { done.append($0.readableBytes) }
        #expect(done == [100, 200])
        #expect(tracker.pendingBytes == 50)
    }

    @Test func aFailedChannelFailsEveryWriteNotReported() {
        var tracker = Self.tracker([100, 200, 300])
        var done: [Int] = []
        var failed: [Int] = []
        #expect(tracker.flushed(channelHolds: 400) { done.append($0.readableBytes) })
        tracker.markerWritten()
        tracker.failAll { failed.append($0.readableBytes) }
        #expect(done == [100])
        #expect(failed == [200, 300])
        #expect(tracker.isEmpty && !tracker.hasMarker)
        // The failed marker's own completion reports nothing more.
        tracker.markerCompleted { done.append($0.readableBytes) }
        #expect(done == [100])
    }

    @Test func eachWriteIsReportedWithItsOwnBuffer() {
        // The glue hands the reported buffers back to the engine: they must be the ones written, in order.
        var tracker = TCPWriteTracker()
        tracker.handed(ByteBuffer(string: "first"))
        tracker.handed(ByteBuffer(string: "second"))
        var done: [String] = []
        #expect(!tracker.flushed(channelHolds: 0) { done.append(String(buffer: $0)) })
        #expect(done == ["first", "second"])
    }
}
