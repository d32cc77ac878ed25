import DequeModule
import NIOCore

/// Holds user messages until they are sent, cutting them into fragments that fit a packet and choosing the next
/// stream so that a sparse stream's message leaves before the bulk streams' queued data.
///
/// Each call to `produce(maxPayload:)` gives one fragment. The stream scheduler is a deficit round robin with a
/// list of sparse streams in front (the new-flow boost of fq_codel, RFC 8290 §4.1, in the spirit of RFC 8260's
/// schedulers): a stream that becomes backlogged joins the sparse list with one `quantum` of credit and is served
/// before any bulk stream; once it has used its quantum it moves to the bulk list, where streams take turns of a
/// quantum of bytes each, so bulk streams share fairly by bytes. A sparse stream that runs dry is parked at the
/// tail of the bulk list and only leaves it when its turn comes, so a stream earns the boost at most once per
/// round of the bulk streams and none can starve. Choosing a stream costs amortised O(1): no scan of all streams.
///
/// With DATA chunks a stream keeps its turn until the message it started is finished, whatever its credit
/// (RFC 9260 §6.9: the fragments of a message carry consecutive TSNs); the overrun is paid back in later turns.
/// With I-DATA (`allowsInterleaving`, RFC 8260) a turn may end between fragments. SSNs are assigned per ordered
/// stream when a message's first fragment is produced. TSNs are not assigned here: the caller hands each fragment,
/// in the order produced, to `OutstandingData.insert`, which numbers it.
struct SendQueue: Sendable {
    /// A message waiting to be sent or partly sent.
    fileprivate struct Message: Sendable {
        var payload: ByteBuffer
        var ppid: PPID
        var isUnordered: Bool
        var isImmediate: Bool
        var abandonment = AbandonmentRule.never
        /// The lifetime a timed message was given (`SCTPReliability.timed`), if the caller said: see `arriveBy`.
        var lifetime: SCTPDuration?
        var hasStarted = false
        var ssn = SSN(0)

        /// When a timed message must arrive to be worth its first transmission (RFC 3758 §4.1 TR3 drops one whose
        /// lifetime has ended; one that would arrive after it is of no use either): by its deadline, unless even the
        /// fastest data path takes more than half the lifetime to deliver it (a satellite hop, an uplink whose queue
        /// is a second deep, or one RTT sample that left the RTT variance at half the RTT). Then the deadline would
        /// drop most messages or all, a blackout rather than a bound: a message may arrive up to half its lifetime
        /// after that path would deliver it, as a plain UDP relay's would, so one that waited in this queue less
        /// than half its lifetime still goes once. The bound moves smoothly with the delay. Retransmissions keep
        /// the deadline (TR4). Nil for a message without a deadline.
        func arriveBy(_ arrivals: TimedArrivals) -> SCTPTime? {
            guard case .deadline(let deadline) = abandonment else { return nil }
            guard let lifetime, arrivals.fastestDelay > lifetime / 2 else { return deadline }
            return deadline + arrivals.fastestDelay - lifetime / 2
        }
    }

    /// Which of the scheduler's lists a stream is on.
    fileprivate enum Membership: Sendable {
        case none, sparse, bulk
    }

    /// One outgoing stream's queue, sequence number and place in the scheduler.
    fileprivate struct Stream: Sendable {
        let id: StreamID
        var messages = Deque<Message>()
        var nextSSN = SSN(0)
        var membership = Membership.none
        /// Bytes the stream may still send in its turn; negative after a DATA message overran the turn.
        var deficit = 0
        /// User bytes of its messages not yet handed out as fragments.
        var queuedBytes = 0
    }

    /// Every stream that has queued a message, in slots that never move: the scheduler's lists name slots, so
    /// choosing and cutting a fragment hashes no stream id.
    private var streams: [Stream] = []
    /// Each stream's slot in `streams`.
    private var slots: [StreamID: Int] = [:]
    /// Streams that became backlogged and have not yet used their first quantum, in arrival order: served first.
    private var sparseStreams = Deque<Int>()
    /// The unsent bytes queued on the sparse list's streams, kept as they change (`holdsOnlySparseStreams`).
    private(set) var sparseQueuedBytes = 0
    /// Streams that have used a quantum, in round-robin order, and parked sparse streams that ran dry.
    private var bulkStreams = Deque<Int>()
    /// With DATA, the stream whose started message must be finished before another stream sends (RFC 9260 §6.9).
    private var streamInMessage: Int?
    /// Bytes a stream may send per turn, and the credit a newly backlogged stream gets ahead of the bulk streams.
    let quantum: Int
    /// Whether fragments of different messages may interleave (I-DATA) or not (DATA).
    let allowsInterleaving: Bool
    /// Buffered user bytes above which the queue reports itself not writable.
    private(set) var highWatermark: Int
    /// Buffered user bytes at or below which a not-writable queue becomes writable again.
    private(set) var lowWatermark: Int
    /// User bytes queued and not yet handed out as fragments.
    private(set) var bufferedBytes = 0
    private var wasFull = false
    private var writableEventPending = false
    /// Queued messages with a lifetime (`AbandonmentRule.deadline`): while there are none, `produce` checks none.
    private var timedMessages = 0
    /// Messages dropped unsent because their lifetime ended (RFC 3758 §4.1 TR3), since `pollAbandoned`.
    private var abandonedSinceLastPoll = 0

    /// `quantum` defaults to about one packet's payload, as fq_codel's one MTU: enough for an echo, a DNS reply or
    /// a request to go whole, small enough that bulk streams alternate packet by packet.
    init(
        highWatermark: Int = 1 << 20, lowWatermark: Int = 1 << 19, allowsInterleaving: Bool = false,
        quantum: Int = 1200
    ) {
        precondition(lowWatermark <= highWatermark, "low watermark above high watermark")
        precondition(quantum > 0, "quantum must be positive")
        self.quantum = quantum
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
        abandonment: AbandonmentRule = .never, lifetime: SCTPDuration? = nil
    ) -> Bool {
        guard payload.readableBytes > 0 else { return false }
        let message = Message(
            payload: payload, ppid: ppid, isUnordered: isUnordered, isImmediate: isImmediate, abandonment: abandonment,
            lifetime: lifetime)
        if case .deadline = abandonment { timedMessages += 1 }
        bufferedBytes += payload.readableBytes
        if bufferedBytes >= highWatermark { wasFull = true }
        let slot = slot(of: streamID)
        addQueued(payload.readableBytes, on: slot)
        let becameBacklogged = streams[slot].enqueue(message, quantum: quantum)
        if becameBacklogged {
            sparseStreams.append(slot)
            sparseQueuedBytes += streams[slot].queuedBytes
        }
        return true
    }

    /// The slot of stream `id`, given one if it has none.
    private mutating func slot(of id: StreamID) -> Int {
        if let slot = slots[id] { return slot }
        streams.append(Stream(id: id))
        slots[id] = streams.count - 1
        return streams.count - 1
    }

    /// RFC 6525: restarts the SSNs of `streamIDs` at 0 after an outgoing stream reset.
    mutating func resetSSNs(of streamIDs: some Sequence<StreamID>) {
        for id in streamIDs {
            if let slot = slots[id] { streams[slot].nextSSN = SSN(0) }
        }
    }

    // MARK: - Producing

    /// When a timed message sent now would arrive: `here` on the path being filled, `best` on the soonest other path
    /// that could take it now (or `here`), `earliest` the sooner of the two: a message that would arrive too late
    /// (`Message.arriveBy`) even then is dropped (RFC 3758 §4.1 TR3); one too late `here` but in time at `best` is
    /// left for that path. `fastestDelay`: the lowest one-way delay of any data path, whether it may send now or not.
    struct TimedArrivals: Sendable {
        var earliest: SCTPTime
        var here: SCTPTime
        var best: SCTPTime
        var fastestDelay: SCTPDuration

        init(earliest: SCTPTime, here: SCTPTime, best: SCTPTime, fastestDelay: SCTPDuration = .zero) {
            self.earliest = earliest
            self.here = here
            self.best = best
            self.fastestDelay = fastestDelay
        }

        /// One path, or every path alike: a message is sent or dropped, never left.
        init(_ arrival: SCTPTime, fastestDelay: SCTPDuration = .zero) {
            self.init(earliest: arrival, here: arrival, best: arrival, fastestDelay: fastestDelay)
        }
    }

    /// `produce(maxPayload:arrivals:keepsTimedMessagesWhole:)` with one arrival time for every path.
    mutating func produce(
        maxPayload: Int, arrival: SCTPTime?, keepsTimedMessagesWhole: Bool = false
    ) -> DataFragment? {
        produce(
            maxPayload: maxPayload, arrivals: arrival.map { TimedArrivals($0) },
            keepsTimedMessagesWhole: keepsTimedMessagesWhole)
    }

    /// Cuts the next fragment of at most `maxPayload` bytes from the stream whose turn it is, or nil when empty.
    /// With `arrivals` (when a packet sent now would arrive), a message that would arrive too late
    /// (`Message.arriveBy`) even at the earliest arrival is dropped before its first fragment is cut (RFC 3758 §4.1
    /// TR3), and one that only this path would deliver too late is left for a better one (nil); one already started
    /// is finished, so every fragment of it gets a TSN and the whole message can be abandoned and skipped together
    /// (RFC 3758 §3.5 A3). With `keepsTimedMessagesWhole` (the packet already carries data), a timed message that
    /// does not fit `maxPayload` is not started: nil ends the packet, and the message starts the next one. Its tail
    /// would otherwise wait for room in cwnd and could arrive after the lifetime the first fragment was checked
    /// against.
    ///
    /// With `leavesSparseStreams` (a path slower than the one sparse streams are kept to) a sparse stream's turn is
    /// left for that path: nil, and the stream keeps its place. Starting a bulk message instead would hold the
    /// sparse one back by that whole message under DATA (RFC 9260 §6.9), longer than the better path's next send.
    mutating func produce(
        maxPayload: Int, arrivals: TimedArrivals? = nil, keepsTimedMessagesWhole: Bool = false,
        leavesSparseStreams: Bool = false
    ) -> DataFragment? {
        precondition(maxPayload > 0, "maxPayload must be positive")
        guard let id = nextStream(arrivals: timedMessages > 0 ? arrivals : nil) else { return nil }
        if leavesSparseStreams, streamInMessage == nil, streams[id].membership == .sparse { return nil }
        if timedMessages > 0, let head = streams[id].messages.first, !head.hasStarted,
            case .deadline = head.abandonment
        {
            if keepsTimedMessagesWhole, head.payload.readableBytes > maxPayload { return nil }
            // Late on this path, in time on a better one: nothing more goes on this path until that one takes
            // it (or it expires there), so the stream keeps its place and order.
            if let arrivals, let arriveBy = head.arriveBy(arrivals), arriveBy <= arrivals.here,
                arriveBy > arrivals.best
            {
                return nil
            }
        }
        let (fragment, isMessageDone, hasMore) = streams[id].cut(maxPayload: maxPayload)
        streams[id].deficit -= fragment.payload.readableBytes
        if isMessageDone, case .deadline = fragment.abandonment { timedMessages -= 1 }
        bufferedBytes -= fragment.payload.readableBytes
        addQueued(-fragment.payload.readableBytes, on: id)
        noteDrained()
        streamInMessage = isMessageDone || allowsInterleaving ? nil : id
        if !hasMore { streamRanDry(id) }
        return fragment
    }

    /// Every queued message holds at least one unsent byte, so no bytes means no messages.
    var isEmpty: Bool { bufferedBytes == 0 }

    /// Whether `stream` is light: less than `lightStreamLimit` queued, and not on the bulk list (it has not used a
    /// quantum since it became backlogged; a sparse stream that ran dry is parked there too, behind the bulk
    /// streams). A stream that just queued a large read is not, though the scheduler has not served it yet.
    func isLight(_ stream: StreamID) -> Bool {
        guard let slot = slots[stream] else { return true }
        return streams[slot].membership != .bulk && streams[slot].queuedBytes < Self.lightStreamLimit
    }

    /// The most a light stream has queued.
    static let lightStreamLimit = 16 * 1024

    /// The unsent bytes queued on `stream`.
    func queuedBytes(on stream: StreamID) -> Int {
        slots[stream].map { streams[$0].queuedBytes } ?? 0
    }

    /// The most a stream of datagrams has queued past the high watermark: 10 ms at 50 Mbit/s.
    static let datagramStreamLimit = 64 * 1024

    /// A sparse stream waits to be served.
    var hasSparseStreams: Bool { !sparseStreams.isEmpty }

    /// Whether everything queued belongs to streams on the sparse list: a light flow alone, no bulk data waiting.
    /// O(1): the sparse streams' bytes are counted as they change. (Summed over the sparse list on each call, it was
    /// O(sparse streams), and a burst of connections puts thousands of streams on that list: 57k instructions per
    /// call, 70k per connection on aggserver in a burst of 1,200.)
    var holdsOnlySparseStreams: Bool {
        !sparseStreams.isEmpty && sparseQueuedBytes == bufferedBytes
    }

    /// The sparse list's unsent bytes summed over its streams' messages, as `sparseQueuedBytes` counts them (tests).
    var sparseQueuedBytesSummed: Int {
        sparseStreams.reduce(0) { sum, slot in
            streams[slot].messages.reduce(sum) { $0 + $1.payload.readableBytes }
        }
    }

    /// Adds `delta` (negative: taken) to the bytes queued on stream `slot`, and to the sparse list's when it is on it.
    private mutating func addQueued(_ delta: Int, on slot: Int) {
        streams[slot].queuedBytes += delta
        if streams[slot].membership == .sparse { sparseQueuedBytes += delta }
    }

    /// Moves stream `id` to list `membership` (its list entry is the caller's), its bytes with it.
    private mutating func setMembership(_ id: Int, _ membership: Membership) {
        if streams[id].membership == .sparse { sparseQueuedBytes -= streams[id].queuedBytes }
        streams[id].membership = membership
        if membership == .sparse { sparseQueuedBytes += streams[id].queuedBytes }
    }

    // MARK: - Scheduling

    /// The stream whose turn it is: the one finishing a DATA message, else the head of the sparse list, else the
    /// head of the bulk list with credit left. A head without credit gets a quantum and goes to the bulk list's
    /// tail; a head that is empty (parked, or emptied by abandonment) leaves the lists. Each pass of the loop either
    /// removes a stream or grants a quantum, so the cost per fragment is O(1) amortised. With `arrivals`, unstarted
    /// messages that would arrive too late are dropped from a head before it is chosen (RFC 3758 §4.1 TR3).
    private mutating func nextStream(arrivals: TimedArrivals?) -> Int? {
        if let id = streamInMessage { return id }
        while true {
            let id: Int
            if let first = sparseStreams.first {
                id = first
            } else if let first = bulkStreams.first {
                id = first
            } else {
                return nil
            }
            if let arrivals { dropExpiredHeads(of: id, arrivals: arrivals) }
            if streams[id].messages.isEmpty {
                removeHead(id)
                setMembership(id, .none)
            } else if streams[id].deficit <= 0 {
                removeHead(id)
                streams[id].deficit += quantum
                setMembership(id, .bulk)
                bulkStreams.append(id)
            } else {
                return id
            }
        }
    }

    /// Takes `id`, the head of the list it is on, off that list.
    private mutating func removeHead(_ id: Int) {
        switch streams[id].membership {
        case .sparse:
            assert(sparseStreams.first == id, "stream \(id) is not the sparse list's head")
            sparseStreams.removeFirst()
        case .bulk:
            assert(bulkStreams.first == id, "stream \(id) is not the bulk list's head")
            bulkStreams.removeFirst()
        case .none:
            assertionFailure("stream \(id) is on no list")
        }
    }

    /// The chosen stream `id` has sent its last queued byte. A sparse stream is parked at the bulk list's tail
    /// while bulk streams wait (RFC 8290 §4.2: "moved to the end of the list of old queues"), so that it cannot
    /// rejoin the sparse list before every bulk stream has had a turn; otherwise it leaves the lists.
    private mutating func streamRanDry(_ id: Int) {
        let wasSparse = streams[id].membership == .sparse
        removeHead(id)
        if wasSparse, !bulkStreams.isEmpty {
            setMembership(id, .bulk)
            bulkStreams.append(id)
        } else {
            setMembership(id, .none)
        }
    }

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
        guard let slot = slots[streamID], let head = streams[slot].messages.first, head.hasStarted else { return false }
        streams[slot].messages.removeFirst()
        if case .deadline = head.abandonment { timedMessages -= 1 }
        bufferedBytes -= head.payload.readableBytes
        addQueued(-head.payload.readableBytes, on: slot)
        noteDrained()
        if streamInMessage == slot { streamInMessage = nil }
        // A stream left empty stays on its list; `nextStream` takes it off when it reaches the head.
        return true
    }

    /// Drops the unstarted messages at the head of stream `id` that would arrive too late (`Message.arriveBy`).
    private mutating func dropExpiredHeads(of id: Int, arrivals: TimedArrivals) {
        while let head = streams[id].messages.first, !head.hasStarted,
            let arriveBy = head.arriveBy(arrivals), arriveBy <= arrivals.earliest
        {
            streams[id].messages.removeFirst()
            timedMessages -= 1
            abandonedSinceLastPoll += 1
            bufferedBytes -= head.payload.readableBytes
            addQueued(-head.payload.readableBytes, on: id)
            noteDrained()
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

    /// Moves the high watermark (the low one to half of it): a queue already above the new high one is full at once,
    /// a full one already at or below the new low one writable.
    mutating func setWatermarks(high: Int) {
        guard high != highWatermark else { return }
        highWatermark = high
        lowWatermark = high / 2
        if bufferedBytes >= highWatermark { wasFull = true } else { noteDrained() }
    }

    /// Returns true once each time the queue drains from its high to its low watermark.
    mutating func pollWritable() -> Bool {
        defer { writableEventPending = false }
        return writableEventPending
    }

    func nextSSN(of streamID: StreamID) -> SSN { slots[streamID].map { streams[$0].nextSSN } ?? SSN(0) }
}

extension SendQueue.Stream {
    /// Appends a message; returns true if the stream was on no list and must join the sparse list, with one
    /// quantum of credit.
    fileprivate mutating func enqueue(_ message: SendQueue.Message, quantum: Int) -> Bool {
        messages.append(message)
        guard membership == .none else { return false }
        membership = .sparse
        deficit = quantum
        return true
    }

    /// Takes the next fragment of the head message, cut from it where it lies in the queue.
    fileprivate mutating func cut(maxPayload: Int) -> (DataFragment, isMessageDone: Bool, hasMore: Bool) {
        // The head message is worked on through one inout access: read through Deque's subscript getter, each
        // field access would copy the whole message (retaining its payload) first.
        let fragment = Self.takeFragment(
            from: &messages[messages.startIndex], maxPayload: maxPayload, streamID: id, nextSSN: &nextSSN)
        if fragment.isEnding { messages.removeFirst() }
        return (fragment, fragment.isEnding, !messages.isEmpty)
    }

    private static func takeFragment(
        from message: inout SendQueue.Message, maxPayload: Int, streamID: StreamID, nextSSN: inout SSN
    ) -> DataFragment {
        let isBeginning = !message.hasStarted
        if isBeginning {
            message.hasStarted = true
            if !message.isUnordered {
                message.ssn = nextSSN
                nextSSN = nextSSN.next
            }
        }
        let slice = message.payload.readSlice(length: min(maxPayload, message.payload.readableBytes))!
        let isEnding = message.payload.readableBytes == 0
        return DataFragment(
            streamID: streamID, ssn: message.ssn, ppid: message.ppid, isUnordered: message.isUnordered,
            isBeginning: isBeginning, isEnding: isEnding, isImmediate: message.isImmediate && isEnding, payload: slice,
            abandonment: message.abandonment)
    }
}
