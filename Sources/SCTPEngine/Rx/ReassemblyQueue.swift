import DequeModule
import NIOCore

/// A complete user message, ready for the application.
struct ReassembledMessage: Sendable {
    var streamID: StreamID
    var ppid: PPID
    var isUnordered: Bool
    var payload: ByteBuffer
    /// The TSNs the message occupied, for NR-SACK (`DataTracker.markDelivered`).
    var firstTSN: TSN
    var lastTSN: TSN
}

/// Rebuilds user messages from DATA chunks and releases them in the order RFC 9260 §6.5/§6.6 demands: by SSN
/// within each ordered stream, at once when unordered.
///
/// A message is complete when its B and E fragments and every TSN between them are present (§6.9). Ordered
/// fragments are grouped by (stream, SSN), so completeness is an O(1) count check; unordered fragments, which only
/// TSN contiguity ties together, are kept with the runs of consecutive TSNs and the TSNs of B and E fragments in
/// range sets, so finding the message a fragment completes costs O(log n) whatever order they arrive in.
///
/// An ordered message's fragments are copied, as they arrive, into one buffer for the message, as far as their TSNs
/// run on from its B fragment without a gap (the common case: each path delivers in order); only a fragment after
/// a gap waits apart until the gap fills. So a fragment's datagram buffer is let go of once its packet is handled,
/// and a complete message needs no second copy.
///
/// `bufferedBytes` is what the association advertises a_rwnd against (capacity − buffered), and it counts what
/// holding data really costs, so a peer cannot make us hold more memory than the window says: every payload byte
/// held, released messages included until polled, and each fragment, message being assembled or waiting message
/// held charged at least `minimumCharge` bytes (its bookkeeping costs about that much however small its payload). A
/// payload that would keep alive a storage more than twice its size (a DATA chunk is a slice of its datagram's
/// buffer, and NIO reads 64 datagrams into one buffer) is copied into its own before it is held or handed out, and a
/// message's buffer grows by doubling, so held payloads never pin more than twice their bytes. Together: what the
/// queue holds stays below about three times `capacity`.
struct ReassemblyQueue: Sendable {
    /// An ordered message still missing fragments.
    private struct Partial: Sendable {
        /// The message's bytes from its B fragment through `assembledThrough`, every TSN between present; nil until
        /// the B fragment arrives.
        var assembled: ByteBuffer?
        var beginning = UnwrappedTSN.min
        var assembledThrough = UnwrappedTSN.min
        /// Fragments that do not continue `assembled` yet (after a gap, or ahead of the B fragment), ascending by
        /// TSN, each in storage of its own. Ones at or below `assembledThrough` can only come from a peer that
        /// broke the rules (two fragments of one message on either side of its B); they stay until the message
        /// is done with.
        var waiting: [(tsn: UnwrappedTSN, payload: ByteBuffer)] = []
        /// What `bufferedBytes` charges for this message beyond its payload: each waiting fragment `minimumCharge`
        /// less its payload when that is positive, and `assembled` the same plus its room beyond twice its bytes
        /// (`assembledCharge`).
        var charge = 0
        var ppid = PPID(0)
        var ending: UnwrappedTSN?
        var highest = UnwrappedTSN.min

        var isComplete: Bool { assembled != nil && ending == assembledThrough }

        /// Buffers held: the assembled one and each waiting fragment.
        var heldBuffers: Int { (assembled == nil ? 0 : 1) + waiting.count }

        /// Payload bytes held, assembled or waiting.
        var payloadBytes: Int {
            waiting.reduce(assembled?.readableBytes ?? 0) { $0 + $1.payload.readableBytes }
        }

        /// Takes one fragment: copied into `assembled` when it is the B fragment (into a buffer of at least
        /// `reserve` bytes, from `buffers` when one there fits) or the TSN after `assembledThrough` (then the waiting fragments that follow on), kept
        /// in `waiting` otherwise.
        mutating func add(
            _ data: DataChunk, tsn: UnwrappedTSN, reserve: Int, buffers: inout MessageBufferPool
        ) {
            highest = max(highest, tsn)
            if data.isEnding { ending = tsn }
            if data.isBeginning, assembled == nil {
                ppid = data.ppid
                beginning = tsn
                var buffer = buffers.take(capacity: max(reserve, data.userData.readableBytes))
                buffer.writeBytes(of: data.userData)
                charge += Self.assembledCharge(buffer)
                assembled = buffer
                assembledThrough = tsn
                takeWaiting()
            } else if assembled != nil, tsn == assembledThrough + 1 {
                append(data.userData)
                assembledThrough = tsn
                takeWaiting()
            } else {
                let payload = ReassemblyQueue.ownStorage(data.userData)
                charge += ReassemblyQueue.charge(for: payload.readableBytes)
                if let last = waiting.last, last.tsn > tsn {
                    let index = waiting.firstIndex { $0.tsn > tsn }!
                    waiting.insert((tsn, payload), at: index)
                } else {
                    waiting.append((tsn, payload))
                }
            }
        }

        /// Appends to `assembled` (in place; past its room it grows by doubling) and updates its charge.
        private mutating func append(_ payload: ByteBuffer) {
            let before = Self.assembledCharge(assembled!)
            assembled!.writeBytes(of: payload)
            charge += Self.assembledCharge(assembled!) - before
        }

        /// What the message's buffer costs beyond its bytes: the minimum charge, and the room reserved for the
        /// rest of the message beyond twice the bytes in it (doubling alone never leaves more).
        static func assembledCharge(_ buffer: ByteBuffer) -> Int {
            ReassemblyQueue.charge(for: buffer.readableBytes) + max(0, buffer.capacity - 2 * buffer.readableBytes)
        }

        /// Moves the waiting fragments that continue `assembled` into it.
        private mutating func takeWaiting() {
            var start = 0
            while start < waiting.count, waiting[start].tsn <= assembledThrough { start += 1 }
            var end = start
            while end < waiting.count, waiting[end].tsn == assembledThrough + 1 {
                charge -= ReassemblyQueue.charge(for: waiting[end].payload.readableBytes)
                append(waiting[end].payload)
                assembledThrough = assembledThrough.next
                end += 1
            }
            if end > start { waiting.removeSubrange(start..<end) }
        }
    }

    /// One inbound ordered stream.
    private struct Stream: Sendable {
        var nextSSN = SSN(0)
        var partials: [UInt16: Partial] = [:]
        /// Complete messages waiting for an earlier SSN.
        var ready: [UInt16: ReassembledMessage] = [:]
    }

    /// An unordered fragment waiting for its neighbours.
    private struct Fragment: Sendable {
        var data: DataChunk
    }

    /// What holding one fragment or waiting message costs at least, payload or not: its entry in the tables,
    /// the storage object of its copied payload, and its nodes in the range sets.
    static let minimumCharge = 512

    /// The receive buffer size, the a_rwnd advertised when empty.
    let capacity: Int
    /// Payload bytes held or released and not yet polled, plus what fragments held cost beyond their payload.
    var bufferedBytes: Int { payloadBytes + bookkeepingBytes }
    private var payloadBytes = 0
    /// For each fragment and waiting message held, `minimumCharge` minus its payload when that is less.
    private var bookkeepingBytes = 0
    private var streams: [StreamID: Stream] = [:]
    /// The ordered message the last fragment went to, outside `streams` while it gets more: fragments of one
    /// message mostly arrive one after another, and each would otherwise take it out of two tables and put it back.
    private var recent: (streamID: StreamID, ssn: UInt16, partial: Partial)?
    private var unordered: [UnwrappedTSN: Fragment] = [:]
    /// The TSNs in `unordered` as runs of consecutive TSNs, and the TSNs of its B and of its E fragments.
    private var unorderedRuns = TSNRangeSet()
    private var unorderedBeginnings = TSNRangeSet()
    private var unorderedEndings = TSNRangeSet()
    private var output = Deque<ReassembledMessage>()
    private var unwrapper = TSNUnwrapper()
    /// The size of the last ordered message assembled from fragments: the next one's buffer is reserved that
    /// large (within a quarter of the free window, before the allocator rounds it up), so a bulk transfer's
    /// messages (a relayed TCP read each, up to 256 KiB) are not copied again every time their buffer doubles.
    private var assembledSizeHint = 0

    init(capacity: Int) {
        self.capacity = capacity
    }

    // MARK: - Input

    /// Free buffer space, what the association advertises as a_rwnd (RFC 9260 §6.2).
    var availableBytes: Int { max(0, capacity - bufferedBytes) }

    /// Whether `bytes` more fit the receive buffer. RFC 9260 §6.2 lets the receiver drop new DATA when it has no
    /// room (it is then not acknowledged); the association decides.
    func hasRoom(for bytes: Int) -> Bool { bufferedBytes + bytes <= capacity }

    /// Adds a DATA chunk whose TSN the data tracker reported new; completed messages become available to
    /// `pollMessage`. An ordered message assembled from fragments is built in a buffer from `buffers` when one fits.
    mutating func add(_ data: DataChunk, buffers: inout MessageBufferPool) {
        payloadBytes += data.userData.readableBytes
        if data.isBeginning && data.isEnding {
            let message = ReassembledMessage(
                streamID: data.streamID, ppid: data.ppid, isUnordered: data.isUnordered,
                payload: Self.ownStorage(data.userData), firstTSN: data.tsn, lastTSN: data.tsn)
            if data.isUnordered {
                output.append(message)
            } else {
                deliverOrdered(message, ssn: data.ssn)
            }
            return
        }
        let tsn = unwrapper.unwrap(data.tsn)
        if data.isUnordered {
            var data = data
            data.userData = Self.ownStorage(data.userData)
            hold(data.userData)
            unordered[tsn] = Fragment(data: data)
            _ = unorderedRuns.insert(tsn)
            if data.isBeginning { _ = unorderedBeginnings.insert(tsn) }
            if data.isEnding { _ = unorderedEndings.insert(tsn) }
            assembleUnordered(around: tsn)
        } else {
            addOrderedFragment(data, tsn: tsn, buffers: &buffers)
        }
    }

    /// `add(_:buffers:)` with message buffers of its own.
    mutating func add(_ data: DataChunk) {
        var buffers = MessageBufferPool()
        add(data, buffers: &buffers)
    }

    // MARK: - Output

    /// The next complete message, in delivery order.
    mutating func pollMessage() -> ReassembledMessage? {
        guard let message = output.popFirst() else { return nil }
        payloadBytes -= message.payload.readableBytes
        return message
    }

    var hasMessages: Bool { !output.isEmpty }

    // MARK: - Skipping and resets

    /// RFC 3758 §3.6: after a FORWARD-TSN to `newCumulativeTSN`, drops fragments at or below it ("The receiver MUST
    /// remove any partially reassembled message, which is still missing one or more TSNs earlier than or equal to
    /// the new cumulative TSN point"), and for each listed (stream, SSN) "immediately make available for delivery
    /// stream sequence numbers earlier than or equal to the stream sequence number listed": complete messages up to
    /// that SSN that waited for a skipped one are released in SSN order, then any that follow in sequence.
    mutating func handleForwardTSN(newCumulativeTSN: TSN, skipped: some Sequence<(StreamID, SSN)>) {
        stashRecent()
        let limit = unwrapper.peek(newCumulativeTSN)
        for (key, fragment) in unordered where key <= limit {
            payloadBytes -= fragment.data.userData.readableBytes
            release(fragment.data.userData)
            unordered[key] = nil
        }
        unorderedRuns.removeAll(through: limit)
        unorderedBeginnings.removeAll(through: limit)
        unorderedEndings.removeAll(through: limit)
        for id in streams.keys {
            for (ssn, partial) in streams[id]!.partials where partial.highest <= limit {
                discard(partial)
                streams[id]!.partials[ssn] = nil
            }
        }
        for (id, ssn) in skipped {
            var stream = streams[id] ?? Stream()
            if ssn.isAfter(stream.nextSSN) || ssn == stream.nextSSN {
                let start = stream.nextSSN
                let waiting = stream.ready.keys.filter { !SSN($0).isBefore(start) && !SSN($0).isAfter(ssn) }
                    .sorted { $0 &- start.rawValue < $1 &- start.rawValue }
                for key in waiting {
                    let message = stream.ready.removeValue(forKey: key)!
                    release(message.payload)
                    output.append(message)
                }
                stream.nextSSN = ssn.next
            }
            bookkeepingBytes -= Self.drain(&stream, into: &output)
            streams[id] = stream
        }
    }

    /// RFC 6525 §5.2.2: an incoming stream reset restarts the expected SSN at 0 and discards partial messages.
    mutating func resetStreams(_ ids: some Sequence<StreamID>) {
        stashRecent()
        for id in ids {
            guard let stream = streams.removeValue(forKey: id) else { continue }
            for partial in stream.partials.values { discard(partial) }
            for message in stream.ready.values {
                payloadBytes -= message.payload.readableBytes
                release(message.payload)
            }
        }
    }

    // MARK: - Memory held

    /// Payload bytes held for reassembly (fragments of incomplete messages, complete messages waiting for an earlier
    /// SSN) and the storage those payloads keep alive, summed per payload: an upper bound when several share one.
    var heldPayloadStorage: (payload: Int, storage: Int) {
        var payload = 0
        var storage = 0
        func add(_ buffer: ByteBuffer) {
            payload += buffer.readableBytes
            storage += buffer.storageCapacity
        }
        func add(_ partial: Partial) {
            if let assembled = partial.assembled { add(assembled) }
            for fragment in partial.waiting { add(fragment.payload) }
        }
        for stream in streams.values {
            for partial in stream.partials.values { add(partial) }
            for message in stream.ready.values { add(message.payload) }
        }
        for fragment in unordered.values { add(fragment.data.userData) }
        if let recent { add(recent.partial) }
        return (payload, storage)
    }

    /// Buffers held: unordered and waiting fragments, ordered messages being assembled (one buffer each, however
    /// many fragments went into it) and complete messages waiting for an earlier SSN.
    var heldFragmentCount: Int {
        streams.values.reduce(unordered.count + (recent?.partial.heldBuffers ?? 0)) { total, stream in
            total + stream.ready.count + stream.partials.values.reduce(0) { $0 + $1.heldBuffers }
        }
    }

    // MARK: - Internals

    /// What became of a complete ordered message.
    private enum Delivery {
        /// Released, and after it the messages that waited for it, whose charges (`released`) are given back.
        case delivered(released: Int)
        /// Waits for an earlier SSN.
        case held
        /// Older than the next expected SSN: already delivered or skipped by FORWARD-TSN.
        case stale
    }

    /// Releases `message` in SSN order. Its stream is looked up once and changed in place (reading, updating and
    /// draining it looked it up four times, a hash of the id each); a stream never seen expects SSN 0.
    private mutating func deliverOrdered(_ message: ReassembledMessage, ssn: SSN) {
        switch Self.deliver(message, ssn: ssn, to: &streams[message.streamID, default: Stream()], output: &output) {
        case .delivered(let released): bookkeepingBytes -= released
        case .held: hold(message.payload)
        case .stale: payloadBytes -= message.payload.readableBytes
        }
    }

    private static func deliver(
        _ message: ReassembledMessage, ssn: SSN, to stream: inout Stream, output: inout Deque<ReassembledMessage>
    ) -> Delivery {
        if ssn == stream.nextSSN {
            output.append(message)
            stream.nextSSN = ssn.next
            return .delivered(released: drain(&stream, into: &output))
        } else if ssn.isAfter(stream.nextSSN) {
            stream.ready[ssn.rawValue] = message
            return .held
        }
        return .stale
    }

    /// Releases `stream`'s waiting messages that follow on from its next SSN; returns their charges.
    private static func drain(_ stream: inout Stream, into output: inout Deque<ReassembledMessage>) -> Int {
        var released = 0
        while !stream.ready.isEmpty {
            let ssn = stream.nextSSN
            guard let message = stream.ready.removeValue(forKey: ssn.rawValue) else { break }
            released += charge(for: message.payload.readableBytes)
            output.append(message)
            stream.nextSSN = ssn.next
        }
        return released
    }

    private mutating func addOrderedFragment(
        _ data: DataChunk, tsn: UnwrappedTSN, buffers: inout MessageBufferPool
    ) {
        let key = data.ssn.rawValue
        if recent == nil || recent!.streamID != data.streamID || recent!.ssn != key {
            stashRecent()
            let partial = streams[data.streamID, default: Stream()].partials.removeValue(forKey: key) ?? Partial()
            recent = (data.streamID, key, partial)
        }
        // Modified in place: taken out of the optional, the message's buffer would be copied on every append.
        let charged = recent!.partial.charge
        // The allocator rounds the reservation up to a power of two, so it may take up to half the free window;
        // the room beyond twice the bytes is charged, and filling it gives it back.
        let reserve = min(assembledSizeHint, data.userData.readableBytes + availableBytes / 4)
        recent!.partial.add(data, tsn: tsn, reserve: reserve, buffers: &buffers)
        bookkeepingBytes += recent!.partial.charge - charged
        guard recent!.partial.isComplete else { return }
        var partial = recent.take()!.partial
        let assembled = partial.assembled.take()!
        assembledSizeHint = assembled.readableBytes
        // A message smaller than the room reserved for it (the last one was larger) gets storage its own size:
        // charged for its bytes only once complete, it must not keep the room alive while it waits or is read.
        let payload = Self.ownStorage(assembled)
        // Copied: the room it was assembled in serves a later message.
        if payload.storageCapacity < assembled.storageCapacity { buffers.recycle(assembled) }
        // The message's bytes stay counted until polled; its charge goes (`deliverOrdered` charges a message that
        // must wait), and so does anything still waiting: at or below the assembled TSNs, a rule-breaking peer's.
        discard(partial)
        let message = ReassembledMessage(
            streamID: data.streamID, ppid: partial.ppid, isUnordered: false, payload: payload,
            firstTSN: partial.beginning.tsn, lastTSN: partial.assembledThrough.tsn)
        deliverOrdered(message, ssn: data.ssn)
    }

    /// Gives back what a partial message held: its payload bytes and its charge.
    private mutating func discard(_ partial: Partial) {
        payloadBytes -= partial.payloadBytes
        bookkeepingBytes -= partial.charge
    }

    /// Puts the message the last fragment went to back with its stream's other partial messages.
    private mutating func stashRecent() {
        guard let (id, key, partial) = recent.take() else { return }
        streams[id, default: Stream()].partials[key] = partial
    }

    /// Finds the unordered message `tsn` belongs to: its B fragment is the nearest at or before `tsn` with no E
    /// fragment in between, its E fragment the nearest at or after `tsn` with no B fragment in between, and every
    /// TSN from one to the other is held (one run). If there is one, it is released.
    private mutating func assembleUnordered(around tsn: UnwrappedTSN) {
        guard let run = unorderedRuns.range(containing: tsn),
            let first = Self.greatest(in: unorderedBeginnings, atMost: tsn), first >= run.lowerBound,
            let last = Self.least(in: unorderedEndings, atLeast: tsn), last <= run.upperBound
        else { return }
        if tsn > first, let ending = Self.greatest(in: unorderedEndings, atMost: tsn - 1), ending >= first { return }
        if let beginning = Self.least(in: unorderedBeginnings, atLeast: tsn + 1), beginning <= last { return }
        let head = unordered[first]!.data
        var payloads: [ByteBuffer] = []
        payloads.reserveCapacity(first.distance(to: last) + 1)
        for key in first...last {
            let payload = unordered.removeValue(forKey: key)!.data.userData
            release(payload)
            payloads.append(payload)
        }
        unorderedRuns.remove(first...last)
        unorderedBeginnings.remove(first...first)
        unorderedEndings.remove(last...last)
        output.append(
            ReassembledMessage(
                streamID: head.streamID, ppid: head.ppid, isUnordered: true, payload: Self.concatenate(payloads),
                firstTSN: head.tsn, lastTSN: last.tsn))
    }

    /// The greatest value of `set` at most `value`.
    private static func greatest(in set: TSNRangeSet, atMost value: UnwrappedTSN) -> UnwrappedTSN? {
        set.floor(value).map { min($0.upperBound, value) }
    }

    /// The least value of `set` at least `value`.
    private static func least(in set: TSNRangeSet, atLeast value: UnwrappedTSN) -> UnwrappedTSN? {
        if let range = set.floor(value), range.upperBound >= value { return value }
        return set.ceiling(value)?.lowerBound
    }

    // MARK: - Memory

    /// What holding a payload of `bytes` costs beyond its bytes.
    fileprivate static func charge(for bytes: Int) -> Int { max(0, minimumCharge - bytes) }

    /// Charges one held fragment or waiting message its bookkeeping beyond its payload.
    private mutating func hold(_ payload: ByteBuffer) {
        bookkeepingBytes += Self.charge(for: payload.readableBytes)
    }

    /// Takes back what `hold` charged for `payload`.
    private mutating func release(_ payload: ByteBuffer) {
        bookkeepingBytes -= Self.charge(for: payload.readableBytes)
    }

    /// `payload`, copied into storage of its own when the storage it is a slice of is more than twice its size, so
    /// it does not keep the rest of its datagram's receive buffer alive.
    static func ownStorage(_ payload: ByteBuffer) -> ByteBuffer {
        guard payload.storageCapacity > 2 * payload.readableBytes else { return payload }
        var copy = ByteBufferAllocator().buffer(capacity: payload.readableBytes)
        copy.writeBytes(of: payload)
        return copy
    }

    private static func concatenate(_ parts: some Collection<ByteBuffer>) -> ByteBuffer {
        let total = parts.reduce(0) { $0 + $1.readableBytes }
        var buffer = ByteBufferAllocator().buffer(capacity: total)
        for var part in parts { buffer.writeBuffer(&part) }
        return buffer
    }
}
