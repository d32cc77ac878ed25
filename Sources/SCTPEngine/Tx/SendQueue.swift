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
        var abandonment = AbandonmentRule.never
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
    /// Queued messages with a lifetime (`AbandonmentRule.deadline`): while there are none, `produce` checks none.
    private var timedMessages = 0
    /// Messages dropped unsent because their lifetime ended (RFC 3758 §4.1 TR3), since `pollAbandoned`.
    private var abandonedSinceLastPoll = 0

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
        streamID: StreamID, ppid: PPID, payload: ByteBuffer, isUnordered: Bool = false, isImmediate: Bool = false,
        abandonment: AbandonmentRule = .never
    ) -> Bool {
        guard payload.readableBytes > 0 else { return false }
        let message = Message(
            payload: payload, ppid: ppid, isUnordered: isUnordered, isImmediate: isImmediate, abandonment: abandonment)
        if case .deadline = abandonment { timedMessages += 1 }
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
    /// With `arrival` (when a packet sent now would arrive), a message whose lifetime ends by then is dropped before
    /// its first fragment is cut (RFC 3758 §4.1 TR3); one already started is finished, so every fragment of it
    /// gets a TSN and the whole message can be abandoned and skipped together (RFC 3758 §3.5 A3). With
    /// `keepsTimedMessagesWhole` (the packet already carries data), a timed message that does not fit `maxPayload`
    /// is not started: nil ends the packet, and the message starts the next one. Its tail would otherwise wait for
    /// room in cwnd and could arrive after the lifetime the first fragment was checked against.
    mutating func produce(
        maxPayload: Int, arrival: SCTPTime? = nil, keepsTimedMessagesWhole: Bool = false
    ) -> DataFragment? {
        precondition(maxPayload > 0, "maxPayload must be positive")
        if timedMessages > 0, let arrival { dropExpiredHeads(arrival: arrival) }
        guard let id = schedule.first else { return nil }
        if keepsTimedMessagesWhole, timedMessages > 0, let head = streams[id]!.messages.first, !head.hasStarted,
            case .deadline = head.abandonment, head.payload.readableBytes > maxPayload
        {
            return nil
        }
        let (fragment, isMessageDone, hasMore) = streams[id]!.cut(maxPayload: maxPayload, streamID: id)
        if isMessageDone, case .deadline = fragment.abandonment { timedMessages -= 1 }
        bufferedBytes -= fragment.payload.readableBytes
        noteDrained()
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

    // MARK: - Abandoning (PR-SCTP)

    /// Messages dropped unsent since the last call, for the counters.
    mutating func pollAbandoned() -> Int {
        defer { abandonedSinceLastPoll = 0 }
        return abandonedSinceLastPoll
    }

    /// Drops the rest of the message `streamID` has started sending, whose sent fragments were abandoned (RFC 3758
    /// §3.5 A3: "all other TSN's within that fragmented message MUST be abandoned at the same time"). Returns false
    /// if the stream has no started message.
    @discardableResult
    mutating func dropStartedMessage(on streamID: StreamID) -> Bool {
        guard let head = streams[streamID]?.messages.first, head.hasStarted else { return false }
        streams[streamID]!.messages.removeFirst()
        if case .deadline = head.abandonment { timedMessages -= 1 }
        bufferedBytes -= head.payload.readableBytes
        noteDrained()
        if streams[streamID]!.messages.isEmpty {
            streams[streamID]!.isScheduled = false
            schedule.removeAll { $0 == streamID }
        }
        return true
    }

    /// Drops, from the stream whose turn it is, unstarted messages whose lifetime ends by `arrival`, moving on to the
    /// next stream when one runs empty.
    private mutating func dropExpiredHeads(arrival: SCTPTime) {
        while let id = schedule.first {
            while let head = streams[id]!.messages.first, !head.hasStarted,
                head.abandonment.abandonsFirstTransmission(arrival: arrival)
            {
                streams[id]!.messages.removeFirst()
                timedMessages -= 1
                abandonedSinceLastPoll += 1
                bufferedBytes -= head.payload.readableBytes
                noteDrained()
            }
            guard streams[id]!.messages.isEmpty else { return }
            streams[id]!.isScheduled = false
            schedule.removeFirst()
        }
    }

    private mutating func noteDrained() {
        if wasFull && bufferedBytes <= lowWatermark {
            wasFull = false
            writableEventPending = true
        }
    }

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
            payload: slice, abandonment: message.abandonment)
        if !isEnding { messages.prepend(message) }
        return (fragment, isEnding, !messages.isEmpty)
    }
}
