import DequeModule
import NIOCore

/// A DATA chunk as the receiver hands it to reassembly, after the data tracker accepted its TSN as new. The
/// association maps Wire's `DataChunk` onto it.
struct ReceivedData: Sendable {
    var tsn: TSN
    var streamID: StreamID
    var ssn: SSN
    var ppid: PPID
    var isUnordered: Bool
    var isBeginning: Bool
    var isEnding: Bool
    var payload: ByteBuffer

    init(
        tsn: TSN, streamID: StreamID, ssn: SSN, ppid: PPID, isUnordered: Bool = false, isBeginning: Bool = true,
        isEnding: Bool = true, payload: ByteBuffer
    ) {
        self.tsn = tsn
        self.streamID = streamID
        self.ssn = ssn
        self.ppid = ppid
        self.isUnordered = isUnordered
        self.isBeginning = isBeginning
        self.isEnding = isEnding
        self.payload = payload
    }
}

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
/// TSN contiguity ties together, are found by walking neighbouring TSNs. `bufferedBytes` counts every payload byte
/// held, released messages included until polled, so the association can advertise a_rwnd = capacity − buffered.
struct ReassemblyQueue: Sendable {
    /// An ordered message still missing fragments.
    private struct Partial: Sendable {
        var fragments: [(tsn: UInt64, payload: ByteBuffer)] = []
        var ppid = PPID(0)
        var beginning: UInt64?
        var ending: UInt64?
        var highest: UInt64 = 0

        var isComplete: Bool {
            guard let b = beginning, let e = ending, e >= b else { return false }
            return UInt64(fragments.count) == e - b + 1
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
        var data: ReceivedData
    }

    /// The receive buffer size, the a_rwnd advertised when empty.
    let capacity: Int
    private(set) var bufferedBytes = 0
    private var streams: [StreamID: Stream] = [:]
    private var unordered: [UInt64: Fragment] = [:]
    private var output = Deque<ReassembledMessage>()
    private var unwrapper = SerialUnwrapper<TSN>()

    init(capacity: Int) {
        self.capacity = capacity
    }

    // MARK: - Input

    /// Free buffer space, what the association advertises as a_rwnd (RFC 9260 §6.2).
    var availableBytes: Int { max(0, capacity - bufferedBytes) }

    /// Whether `bytes` more fit the receive buffer. RFC 9260 §6.2 lets the receiver drop new DATA when it has no
    /// room (it is then not acknowledged); the association decides.
    func hasRoom(for bytes: Int) -> Bool { bufferedBytes + bytes <= capacity }

    /// Adds a chunk whose TSN the data tracker reported new; completed messages become available to
    /// `pollMessage`.
    mutating func add(_ data: ReceivedData) {
        bufferedBytes += data.payload.readableBytes
        if data.isBeginning && data.isEnding {
            let message = ReassembledMessage(
                streamID: data.streamID, ppid: data.ppid, isUnordered: data.isUnordered, payload: data.payload,
                firstTSN: data.tsn, lastTSN: data.tsn)
            if data.isUnordered {
                output.append(message)
            } else {
                deliverOrdered(message, ssn: data.ssn)
            }
            return
        }
        let tsn = unwrapper.unwrap(data.tsn)
        if data.isUnordered {
            unordered[tsn] = Fragment(data: data)
            assembleUnordered(around: tsn)
        } else {
            addOrderedFragment(data, tsn: tsn)
        }
    }

    // MARK: - Output

    /// The next complete message, in delivery order.
    mutating func pollMessage() -> ReassembledMessage? {
        guard let message = output.popFirst() else { return nil }
        bufferedBytes -= message.payload.readableBytes
        return message
    }

    var hasMessages: Bool { !output.isEmpty }

    // MARK: - Skipping and resets

    /// RFC 3758 §3.6: after a FORWARD-TSN to `newCumulativeTSN`, drops fragments at or below it, and for each
    /// listed (stream, SSN) treats every ordered message up to that SSN as delivered, releasing any that follow.
    mutating func handleForwardTSN(newCumulativeTSN: TSN, skipped: some Sequence<(StreamID, SSN)>) {
        let limit = unwrapper.peek(newCumulativeTSN)
        for (key, fragment) in unordered where key <= limit {
            bufferedBytes -= fragment.data.payload.readableBytes
            unordered[key] = nil
        }
        for id in streams.keys {
            for (ssn, partial) in streams[id]!.partials where partial.highest <= limit {
                bufferedBytes -= partial.fragments.reduce(0) { $0 + $1.payload.readableBytes }
                streams[id]!.partials[ssn] = nil
            }
        }
        for (id, ssn) in skipped {
            var stream = streams[id] ?? Stream()
            if ssn.isAfter(stream.nextSSN) || ssn == stream.nextSSN {
                stream.nextSSN = ssn.next
                for (key, message) in stream.ready where SSN(key).isBefore(stream.nextSSN) {
                    bufferedBytes -= message.payload.readableBytes
                    stream.ready[key] = nil
                }
            }
            streams[id] = stream
            drain(id)
        }
    }

    /// RFC 6525 §5.2.2: an incoming stream reset restarts the expected SSN at 0 and discards partial messages.
    mutating func resetStreams(_ ids: some Sequence<StreamID>) {
        for id in ids {
            guard let stream = streams.removeValue(forKey: id) else { continue }
            for partial in stream.partials.values {
                bufferedBytes -= partial.fragments.reduce(0) { $0 + $1.payload.readableBytes }
            }
            for message in stream.ready.values { bufferedBytes -= message.payload.readableBytes }
        }
    }

    // MARK: - Internals

    private mutating func deliverOrdered(_ message: ReassembledMessage, ssn: SSN) {
        let id = message.streamID
        let nextSSN = streams[id]?.nextSSN ?? SSN(0)
        if ssn == nextSSN {
            output.append(message)
            streams[id, default: Stream()].nextSSN = ssn.next
            drain(id)
        } else if ssn.isAfter(nextSSN) {
            streams[id, default: Stream()].ready[ssn.rawValue] = message
        } else {
            // Older than the next expected SSN: already delivered or skipped by FORWARD-TSN.
            bufferedBytes -= message.payload.readableBytes
        }
    }

    private mutating func drain(_ id: StreamID) {
        guard streams[id] != nil else { return }
        while !streams[id]!.ready.isEmpty {
            let ssn = streams[id]!.nextSSN
            guard let message = streams[id]!.ready.removeValue(forKey: ssn.rawValue) else { return }
            output.append(message)
            streams[id]!.nextSSN = ssn.next
        }
    }

    private mutating func addOrderedFragment(_ data: ReceivedData, tsn: UInt64) {
        let key = data.ssn.rawValue
        var partial = streams[data.streamID, default: Stream()].partials.removeValue(forKey: key) ?? Partial()
        partial.fragments.append((tsn, data.payload))
        partial.highest = max(partial.highest, tsn)
        if data.isBeginning {
            partial.beginning = tsn
            partial.ppid = data.ppid
        }
        if data.isEnding { partial.ending = tsn }
        guard partial.isComplete else {
            streams[data.streamID]!.partials[key] = partial
            return
        }
        partial.fragments.sort { $0.tsn < $1.tsn }
        let payload = Self.concatenate(partial.fragments.lazy.map(\.payload))
        let message = ReassembledMessage(
            streamID: data.streamID, ppid: partial.ppid, isUnordered: false, payload: payload,
            firstTSN: TSN(UInt32(truncatingIfNeeded: partial.beginning!)),
            lastTSN: TSN(UInt32(truncatingIfNeeded: partial.ending!)))
        deliverOrdered(message, ssn: data.ssn)
    }

    /// Finds the run of unordered fragments with consecutive TSNs around `tsn`; if it spans B to E, releases it.
    private mutating func assembleUnordered(around tsn: UInt64) {
        var first = tsn
        while !unordered[first]!.data.isBeginning {
            guard first > 0, let previous = unordered[first - 1], !previous.data.isEnding else { return }
            first -= 1
        }
        var last = tsn
        while !unordered[last]!.data.isEnding {
            guard let next = unordered[last + 1], !next.data.isBeginning else { return }
            last += 1
        }
        let head = unordered[first]!.data
        var payloads: [ByteBuffer] = []
        payloads.reserveCapacity(Int(last - first + 1))
        for key in first...last { payloads.append(unordered.removeValue(forKey: key)!.data.payload) }
        output.append(
            ReassembledMessage(
                streamID: head.streamID, ppid: head.ppid, isUnordered: true, payload: Self.concatenate(payloads),
                firstTSN: head.tsn, lastTSN: TSN(UInt32(truncatingIfNeeded: last))))
    }

    private static func concatenate(_ parts: some Collection<ByteBuffer>) -> ByteBuffer {
        let total = parts.reduce(0) { $0 + $1.readableBytes }
        var buffer = ByteBufferAllocator().buffer(capacity: total)
        for var part in parts { buffer.writeBuffer(&part) }
        return buffer
    }
}
