import NIOCore
import NIOEmbedded
import Testing

@testable import AggIngress

/// The one-timer queue that closes accepted connections whose handshake is not done by their deadline, in
/// virtual time.
@Suite struct HandshakeDeadlinesTests {
    private static func channels(_ count: Int, on loop: EmbeddedEventLoop) throws -> [EmbeddedChannel] {
        try (0..<count).map { _ in
            let channel = EmbeddedChannel(loop: loop)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            return channel
        }
    }

    @Test func eachChannelClosesAtItsOwnDeadline() throws {
        let loop = EmbeddedEventLoop()
        let deadlines = HandshakeDeadlines(eventLoop: loop)
        let channels = try Self.channels(3, on: loop)
        for (i, channel) in channels.enumerated() {
            _ = deadlines.add(channel, deadline: .uptimeNanoseconds(0) + .seconds(30 + Int64(i)))
        }
        loop.advanceTime(to: .uptimeNanoseconds(0) + .seconds(30) - .nanoseconds(1))
        #expect(channels.map(\.isActive) == [true, true, true])
        loop.advanceTime(by: .nanoseconds(1))
        #expect(channels.map(\.isActive) == [false, true, true])
        loop.advanceTime(by: .seconds(1))
        #expect(channels.map(\.isActive) == [false, false, true])
        loop.advanceTime(by: .seconds(1))
        #expect(channels.map(\.isActive) == [false, false, false])
        #expect(deadlines.count == 0)
    }

    @Test func cancelledEntriesAreNotClosedAndLeaveTheQueue() throws {
        let loop = EmbeddedEventLoop()
        let deadlines = HandshakeDeadlines(eventLoop: loop)
        let channels = try Self.channels(4, on: loop)
        let entries = channels.map { deadlines.add($0, deadline: .uptimeNanoseconds(0) + .seconds(30)) }
        // A cancelled entry behind a live one waits in the queue; cancelling the head drops every cancelled head.
        deadlines.cancel(entries[1])
        #expect(deadlines.count == 4)
        deadlines.cancel(entries[0])
        #expect(deadlines.count == 2)
        loop.advanceTime(by: .seconds(30))
        #expect(channels.map(\.isActive) == [true, true, false, false])
        #expect(deadlines.count == 0)
    }

    /// A burst's entries cancelled in order (handshakes done) leave nothing behind, and the timer armed for the first
    /// of them finds nothing due when it fires, then re-arms for a later live entry.
    @Test func aBurstOfFinishedHandshakesLeavesNothing() throws {
        let loop = EmbeddedEventLoop()
        let deadlines = HandshakeDeadlines(eventLoop: loop)
        let channels = try Self.channels(1_000, on: loop)
        for channel in channels {
            deadlines.cancel(deadlines.add(channel, deadline: loop.now + .seconds(30)))
        }
        #expect(deadlines.count == 0)
        loop.advanceTime(by: .seconds(10))
        let late = try Self.channels(1, on: loop)[0]
        _ = deadlines.add(late, deadline: loop.now + .seconds(30))
        loop.advanceTime(by: .seconds(30) - .nanoseconds(1))
        #expect(late.isActive)
        let earlierStayOpen = channels.allSatisfy { $0.isActive }
        #expect(earlierStayOpen)
        loop.advanceTime(by: .nanoseconds(1))
        #expect(!late.isActive)
    }

    /// A deadline earlier than those already queued (another timeout) goes in its place and fires first.
    @Test func anEarlierDeadlineFiresFirst() throws {
        let loop = EmbeddedEventLoop()
        let deadlines = HandshakeDeadlines(eventLoop: loop)
        let channels = try Self.channels(2, on: loop)
        _ = deadlines.add(channels[0], deadline: .uptimeNanoseconds(0) + .seconds(30))
        _ = deadlines.add(channels[1], deadline: .uptimeNanoseconds(0) + .seconds(10))
        loop.advanceTime(by: .seconds(10))
        #expect(channels.map(\.isActive) == [true, false])
        loop.advanceTime(by: .seconds(20))
        #expect(channels.map(\.isActive) == [false, false])
    }
}
