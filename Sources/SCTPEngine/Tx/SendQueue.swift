import DequeModule
import NIOCore

/// Holds user messages until they are sent, cutting them into fragments that fit a packet and choosing the next
/// stream round-robin so a bulk stream cannot starve an interactive one.
///
/// Each call to `produce(maxPayload:)` gives one fragment. With DATA chunks a stream keeps its turn until the
/// message it started is finished, because RFC 9260 §6.9 requires the fragments of a message to carry
/// consecutive TSNs; with I-DATA (`allowsInterleaving`, RFC 8260) turns are per fragment. SSNs are assigned per
/// ordered stream when a message's first fragment is produced. TSNs are not assigned here: the caller hands each
/// fragment, in the order produced, to `OutstandingData.insert`, which numbers it.
struct SendQueue: Sendable {
    /// A message waiting to be sent or partly sent.
    fileprivate struct Message: Sendable {
        var payload: ByteBuffer
        var ppid: PPID
        var isUnordered: Bool
        var isImmediate: Bool
        var hasStarted = false
        var ssn = SSN(0)
    }

    /// One outgoing stream's queue and sequence number.
    fileprivate struct Stream: Sendable {
        var messages = Deque<Message>()
        var nextSSN = SSN(0)
        var isScheduled = false
    }

    private var streams: [StreamID: Stream] = [:]
    /// Streams with queued data, in round-robin order; the head has the turn.
    private var schedule = Deque<StreamID>()
    /// Whether fragments of different messages may interleave (I-DATA) or not (DATA).
    let allowsInterleaving: Bool
    /// Buffered user bytes above which the queue reports itself not writable.
    let highWatermark: Int
    /// Buffered user bytes at or below which a not-writable queue becomes writable again.
    let lowWatermark: Int
    /// User bytes queued and not yet handed out as fragments.
    private(set) var bufferedBytes = 0
    private var wasFull = false
    private var writableEventPending = false

    init(highWatermark: Int = 1 << 20, lowWatermark: Int = 1 << 19, allowsInterleaving: Bool = false) {
        precondition(lowWatermark <= highWatermark, "low watermark above high watermark")
        self.highWatermark = highWatermark
        self.lowWatermark = lowWatermark
        self.allowsInterleaving = allowsInterleaving
    }

    // MARK: - Commands

    /// Queues a message. Empty messages are refused (RFC 9260 §6.2: DATA chunks carry at least one byte).
    /// Returns false when refused. The caller checks `isWritable` for backpressure; the queue never drops.
    @discardableResult
    mutating func enqueue(
        streamID: StreamID, ppid: PPID, payload: ByteBuffer, isUnordered: Bool = false, isImmediate: Bool = false
    ) -> Bool {
        guard payload.readableBytes > 0 else { return false }
        let message = Message(payload: payload, ppid: ppid, isUnordered: isUnordered, isImmediate: isImmediate)
        bufferedBytes += payload.readableBytes
        if bufferedBytes >= highWatermark { wasFull = true }
        let scheduleNow = streams[streamID, default: Stream()].enqueue(message)
        if scheduleNow { schedule.append(streamID) }
        return true
    }

    /// RFC 6525: restarts the SSNs of `streamIDs` at 0 after an outgoing stream reset.
    mutating func resetSSNs(of streamIDs: some Sequence<StreamID>) {
        for id in streamIDs { streams[id]?.nextSSN = SSN(0) }
    }

    // MARK: - Producing

    /// Cuts the next fragment of at most `maxPayload` bytes from the stream whose turn it is, or nil when empty.
    mutating func produce(maxPayload: Int) -> DataFragment? {
        precondition(maxPayload > 0, "maxPayload must be positive")
        guard let id = schedule.first else { return nil }
        let (fragment, isMessageDone, hasMore) = streams[id]!.cut(maxPayload: maxPayload, streamID: id)
        bufferedBytes -= fragment.payload.readableBytes
        if wasFull && bufferedBytes <= lowWatermark {
            wasFull = false
            writableEventPending = true
        }
        schedule.removeFirst()
        if hasMore {
            if isMessageDone || allowsInterleaving {
                schedule.append(id)
            } else {
                schedule.prepend(id)
            }
        } else {
            streams[id]!.isScheduled = false
        }
        return fragment
    }

    var isEmpty: Bool { schedule.isEmpty }

    /// False while more than the high watermark is buffered, until it drains to the low watermark.
    var isWritable: Bool { !wasFull }

    /// Returns true once each time the queue drains from its high to its low watermark.
    mutating func pollWritable() -> Bool {
        defer { writableEventPending = false }
        return writableEventPending
    }

    func nextSSN(of streamID: StreamID) -> SSN { streams[streamID]?.nextSSN ?? SSN(0) }
}

extension SendQueue.Stream {
    /// Appends a message; returns true if the stream must be put on the schedule.
    fileprivate mutating func enqueue(_ message: SendQueue.Message) -> Bool {
        messages.append(message)
        if isScheduled { return false }
        isScheduled = true
        return true
    }

    /// Takes the next fragment of the head message.
    fileprivate mutating func cut(maxPayload: Int, streamID: StreamID) -> (
        DataFragment, isMessageDone: Bool, hasMore: Bool
    ) {
        var message = messages.removeFirst()
        let isBeginning = !message.hasStarted
        if isBeginning {
            message.hasStarted = true
            if !message.isUnordered {
                message.ssn = nextSSN
                nextSSN = nextSSN.next
            }
        }
        let length = min(maxPayload, message.payload.readableBytes)
        let slice = message.payload.readSlice(length: length)!
        let isEnding = message.payload.readableBytes == 0
        let fragment = DataFragment(
            streamID: streamID, ssn: message.ssn, ppid: message.ppid, isUnordered: message.isUnordered,
            isBeginning: isBeginning, isEnding: isEnding, isImmediate: message.isImmediate && isEnding,
            payload: slice)
        if !isEnding { messages.prepend(message) }
        return (fragment, isEnding, !messages.isEmpty)
    }
}
