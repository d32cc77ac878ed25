import NIOCore
import Synchronization

/// One accepted connection's entry in `HandshakeDeadlines`: `cancel()` once its handshake is done. Confined to the
/// connection's event loop.
final class HandshakeDeadline {
    let deadline: NIODeadline
    /// Nil once cancelled or fired: a cancelled entry waiting in the queue holds no channel.
    fileprivate var channel: (any Channel)?

    fileprivate init(deadline: NIODeadline, channel: any Channel) {
        self.deadline = deadline
        self.channel = channel
    }

    var isCancelled: Bool { channel == nil }
}

/// Closes the accepted connections of one listener on one event loop whose proxy handshake is not done by their
/// deadline, with one event-loop timer for all of them instead of one per connection.
///
/// A NIO timer per connection costs a scheduled task (allocations and the loop's task lock) and, to cancel it, a
/// linear scan of the loop's scheduled tasks, which a burst of connections fills with thousands. Here every
/// deadline is the accept time plus the same timeout, so deadlines arrive in order and a FIFO keeps them sorted;
/// cancelling only drops the entry's channel (a cancelled entry leaves when it reaches the head); and the one timer
/// is armed at the first live deadline and never cancelled (firing early, it finds nothing due and re-arms).
/// Confined to its event loop.
final class HandshakeDeadlines: @unchecked Sendable {
    let eventLoop: any EventLoop
    private var queue = CircularBuffer<HandshakeDeadline>()
    /// When the armed timer fires; nil when none is armed.
    private var armedAt: NIODeadline?

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Entries not yet fired or dropped (cancelled entries behind a live one stay until they reach the head).
    var count: Int { queue.count }

    /// Closes `channel` at `deadline` unless the returned entry is cancelled first.
    func add(_ channel: any Channel, deadline: NIODeadline) -> HandshakeDeadline {
        eventLoop.preconditionInEventLoop()
        let entry = HandshakeDeadline(deadline: deadline, channel: channel)
        // Deadlines of one timeout come in order; one earlier than the last (another timeout) is put in its place.
        var index = queue.endIndex
        while index > queue.startIndex, queue[queue.index(before: index)].deadline > deadline {
            index = queue.index(before: index)
        }
        if index == queue.endIndex {
            queue.append(entry)
        } else {
            queue.insert(entry, at: index)
        }
        arm()
        return entry
    }

    /// The handshake of `entry`'s connection is done: it is not closed.
    func cancel(_ entry: HandshakeDeadline) {
        eventLoop.preconditionInEventLoop()
        entry.channel = nil
        dropCancelledHead()
    }

    private func dropCancelledHead() {
        while let first = queue.first, first.isCancelled { queue.removeFirst() }
    }

    /// Keeps the timer armed no later than the first live deadline.
    private func arm() {
        dropCancelledHead()
        guard let first = queue.first else { return }
        if let armedAt, armedAt <= first.deadline { return }
        let deadline = first.deadline
        armedAt = deadline
        eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in fire(armedAt: deadline) }
    }

    /// The timer armed for `deadline` fired (an earlier deadline added later may have armed another meanwhile).
    private func fire(armedAt deadline: NIODeadline) {
        if armedAt == deadline { armedAt = nil }
        let now = eventLoop.now
        while let first = queue.first, first.deadline <= now {
            queue.removeFirst()
            let channel = first.channel
            first.channel = nil
            channel?.close(promise: nil)
        }
        arm()
    }
}

/// The `HandshakeDeadlines` of one listener, one per event loop its accepted connections run on.
final class HandshakeDeadlineTable: Sendable {
    private let queues = Mutex([ObjectIdentifier: HandshakeDeadlines]())

    init() {}

    /// The queue for `eventLoop`, made on first use.
    func deadlines(for eventLoop: any EventLoop) -> HandshakeDeadlines {
        queues.withLock { queues in
            if let queue = queues[ObjectIdentifier(eventLoop)] { return queue }
            let queue = HandshakeDeadlines(eventLoop: eventLoop)
            queues[ObjectIdentifier(eventLoop)] = queue
            return queue
        }
    }
}
