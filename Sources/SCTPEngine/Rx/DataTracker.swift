/// Receiver-side TSN bookkeeping: the cumulative TSN, TSNs received out of order, duplicates, and when to send the
/// SACK that reports them (RFC 9260 §6.2, §6.7).
///
/// For each packet the association calls `handleData` once per DATA chunk (and keeps only chunks reported
/// `.new`), then `handlePacketEnd(now:)`. It then sends a SACK built by `makeSack` when `isSackDue(now:)`, and
/// otherwise arms the delayed-SACK timer at `sackDeadline`. Out-of-order TSNs are kept as disjoint ranges of 64-bit
/// unwrapped TSNs in a balanced tree (`TSNRangeSet`), so a burst of losses costs a handful of ranges, not one entry
/// per TSN, and a chunk costs O(log n) for n ranges held whatever order a peer sends in; the number of ranges is
/// capped as well, which bounds the memory a peer can make us spend on gaps.
struct DataTracker: Sendable {
    struct Configuration: Sendable {
        /// The longest a SACK may be delayed: 200 ms by default (RFC 9260 §6.2: it "MUST NOT" exceed 500 ms).
        var delayedAckTimeout: SCTPDuration = .milliseconds(200)
        /// A SACK goes at least every this many packets with DATA (RFC 9260 §6.2: every second packet). Above 2, the
        /// SACK of a second packet or later is held at most until the deadline `handlePacketEnd` is given.
        var packetsPerSack = 2
        /// Duplicate TSNs remembered for the next SACK; more are counted but not reported.
        var maxDuplicates = 32
        /// TSNs further than this beyond the cumulative TSN are refused, bounding the out-of-order state.
        var maxTSNsAhead: UInt32 = 1 << 20
        /// Ranges of TSNs held above the cumulative TSN, at most: a TSN that would open one more (touching no range
        /// held) is refused (`.tooManyGaps`) like one out of window, unless it is the next in sequence. Legitimate reordering, even
        /// across paths of very different delay, opens a few thousand; 16,384 ranges take about 512 KiB.
        var maxGapRanges = 16_384
        /// With at least this many ranges held above the cumulative TSN, "every second packet" counts full packets
        /// only: a SACK is due after `packetsPerSack` packets that carried at least `packetsPerSack ×
        /// fullPacketBytes` of DATA together (or at the delayed-SACK deadline). A sender of one-byte chunks that opens
        /// a gap with each would otherwise get a SACK with hundreds of gap blocks (1.4 KB) for every 120 bytes it
        /// sends, and the CPU to build and seal them. Reordering across paths fills packets, and is unaffected.
        var sparseGapRanges = 256
        var fullPacketBytes = 1024
        /// RFC 9260 §6.7: SACK at once when data arrives out of order. CMT's DAC turns this off, because with
        /// several paths reordering is the normal case, and reports the packet count in the SACK instead.
        var sackImmediatelyOnGaps = true

        init() {}
    }

    /// What became of one DATA chunk's TSN.
    enum Disposition: Sendable, Equatable {
        /// First arrival: pass the chunk on to reassembly.
        case new
        /// Seen before: drop it; it is reported in the next SACK.
        case duplicate
        /// Too far ahead of the cumulative TSN to track: drop it unacknowledged.
        case outOfWindow
        /// It would open one range of TSNs more than `maxGapRanges` allows: drop it unacknowledged.
        case tooManyGaps
    }

    let configuration: Configuration
    /// The highest TSN received in sequence (the SACK's Cumulative TSN Ack), unwrapped: every TSN received is
    /// unwrapped near it.
    private var cumulative: UnwrappedTSN
    /// The highest TSN received in sequence (the SACK's Cumulative TSN Ack).
    var cumulativeTSN: TSN { cumulative.tsn }
    /// TSNs received above the cumulative TSN.
    private var received = TSNRangeSet()
    /// NR-SACK: the subset of `received` already delivered to the user, which will not be reneged.
    private var delivered = TSNRangeSet()
    private var duplicates: [TSN] = []
    /// Tree nodes visited while building SACKs (the range sets count their own changes); see `workSteps`.
    private var sackSteps = 0
    /// CMT DAC: DATA packets received since the last SACK.
    private(set) var packetsSinceLastSack = 0
    /// User data bytes of the DATA chunks received since the last SACK.
    private var bytesSinceLastSack = 0
    /// When the delayed-SACK timer should fire; nil when no SACK is pending or one is due at once.
    private(set) var sackDeadline: SCTPTime?
    private var isSackImmediate = false
    // Per-packet observations, folded in by `handlePacketEnd`.
    private var packetHadData = false
    private var packetWantsImmediateSack = false
    private var packetHadGapsBefore = false
    private var packetStartCumulativeTSN = TSN(0)
    private var packetStarted = false

    /// `peerInitialTSN` is the Initial TSN from the peer's INIT or INIT ACK: the first TSN we expect.
    init(peerInitialTSN: TSN, configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.cumulative = UnwrappedTSN(first: peerInitialTSN.previous)
    }

    // MARK: - Receiving

    /// Records one DATA chunk's TSN. `isImmediate` is its I bit (RFC 7053); `bytes` its user data length.
    mutating func handleData(tsn: TSN, isImmediate: Bool = false, bytes: Int = 1024) -> Disposition {
        startPacketIfNeeded()
        packetHadData = true
        bytesSinceLastSack += bytes
        if isImmediate { packetWantsImmediateSack = true }
        let value = UnwrappedTSN(tsn, near: cumulative)
        // Every TSN held lies within `maxTSNsAhead` of the cumulative TSN, so one beyond it is never a duplicate.
        if isBeyondWindow(value) { return .outOfWindow }
        if value == cumulative.next, received.isEmpty {
            // In order with nothing held above it, the common case: the cumulative TSN moves on without a trip
            // through the range set (an insert, then taking the same range out again). `delivered`, a subset of
            // `received`, is empty too.
            cumulative = value
            return .new
        }
        if value > cumulative.next, received.count >= configuration.maxGapRanges, !received.contains(value),
            !received.contains(value - 1), !received.contains(value + 1)
        {
            // It would open another range: refused, unacknowledged, like a TSN out of window.
            return .tooManyGaps
        }
        guard value > cumulative, received.insert(value) else {
            // RFC 9260 §6.2: "When a packet arrives with duplicate DATA chunk(s) and with no new DATA chunk(s), the
            // endpoint MUST immediately send a SACK with no delay."
            if duplicates.count < configuration.maxDuplicates { duplicates.append(tsn) }
            packetWantsImmediateSack = true
            return .duplicate
        }
        advanceCumulativeTSN()
        return .new
    }

    /// The RFC's count: a SACK for every second packet, unless `packetsPerSack` asks for fewer.
    static let rfcPacketsPerSack = 2

    /// Decides when to acknowledge the packet whose DATA chunks were just handled. `thinnedDelay` bounds how long the
    /// SACK of two or more packets may wait when `packetsPerSack` is above the RFC's 2.
    mutating func handlePacketEnd(now: SCTPTime, thinnedDelay: SCTPDuration = .milliseconds(1)) {
        defer { packetStarted = false }
        guard packetHadData else { return }
        packetsSinceLastSack += 1
        // RFC 9260 §6.7: "If the endpoint detects a gap in the received DATA chunk sequence, it SHOULD send a SACK
        // with Gap Ack Blocks immediately." The same goes for a packet that fills (part of) a gap, so the sender
        // learns of the recovery at once.
        // A packet that fills a hole (the cumulative TSN moved while gaps were open) is acknowledged at once even
        // with CMT's DAC: it usually is a retransmission, and the sender waits for exactly this SACK.
        // Thinned (`packetsPerSack` above 2, for a peer running this engine), a filled hole waits like any packet:
        // with several paths most are the slower path's data arriving after the faster's, and the peer marks its
        // retransmissions with the I bit.
        let filledHole =
            packetHadGapsBefore && cumulativeTSN != packetStartCumulativeTSN
            && configuration.packetsPerSack <= Self.rfcPacketsPerSack
        let fewGaps = received.count < configuration.sparseGapRanges
        let gapsForceSack =
            filledHole
            || (configuration.sackImmediatelyOnGaps && (!received.isEmpty || packetHadGapsBefore)
                && (fewGaps || bytesSinceLastSack >= configuration.fullPacketBytes))
        let everyOtherPacket =
            packetsSinceLastSack >= configuration.packetsPerSack
            && (fewGaps || bytesSinceLastSack >= configuration.packetsPerSack * configuration.fullPacketBytes)
        if packetWantsImmediateSack || gapsForceSack || everyOtherPacket {
            isSackImmediate = true
            sackDeadline = nil
        } else if !isSackImmediate, configuration.packetsPerSack > Self.rfcPacketsPerSack,
            packetsSinceLastSack >= Self.rfcPacketsPerSack
        {
            // Thinned: the RFC's second packet is acknowledged within `thinnedDelay`, or with a later packet.
            let deadline = now + thinnedDelay
            if sackDeadline.map({ deadline < $0 }) ?? true { sackDeadline = deadline }
        } else if !isSackImmediate && sackDeadline == nil {
            // RFC 9260 §6.2: an acknowledgement "SHOULD be generated within 200 ms of the arrival of any
            // unacknowledged DATA chunk".
            sackDeadline = now + configuration.delayedAckTimeout
        }
    }

    /// RFC 3758 §3.6: a FORWARD-TSN moves the cumulative TSN to `newCumulativeTSN`, forgetting what lies below,
    /// then on through any TSNs already received above it. A SACK is sent at once. Returns false if the FORWARD-TSN
    /// was stale (at or behind our cumulative TSN), which still warrants a SACK.
    @discardableResult
    mutating func handleForwardTSN(newCumulativeTSN: TSN, now: SCTPTime) -> Bool {
        isSackImmediate = true
        sackDeadline = nil
        let value = UnwrappedTSN(newCumulativeTSN, near: cumulative)
        guard value > cumulative else { return false }
        cumulative = value
        received.removeAll(through: cumulative)
        delivered.removeAll(through: cumulative)
        advanceCumulativeTSN()
        return true
    }

    /// NR-SACK: TSNs `first...last` were delivered to the user out of order and will not be reneged. TSNs at or
    /// below the cumulative TSN, or not received, are ignored.
    mutating func markDelivered(from first: TSN, through last: TSN) {
        let upper = UnwrappedTSN(last, near: cumulative)
        let lower = max(UnwrappedTSN(first, near: cumulative), cumulative.next)
        guard upper > cumulative, lower <= upper else { return }
        guard let range = received.range(containing: lower), range.contains(upper) else { return }
        delivered.insert(lower...upper)
    }

    // MARK: - SACK

    /// Whether a SACK should go now: one is due immediately, or the delayed-SACK deadline has passed.
    func isSackDue(now: SCTPTime) -> Bool {
        isSackImmediate || (sackDeadline.map { $0 <= now } ?? false)
    }

    /// Whether anything is waiting to be acknowledged.
    var hasPendingSack: Bool { isSackImmediate || sackDeadline != nil }

    /// True when TSNs are missing below the highest one received.
    var hasGaps: Bool { !received.isEmpty }

    /// Builds the SACK (or the content of an NR-SACK when `includeNonRenegable`) and clears what it reports:
    /// duplicates, the packet count and the pending-SACK state. At most `maxGapBlocks` gap blocks (and as many NR
    /// gap blocks) are included so the chunk fits the packet; blocks whose offsets exceed 16 bits cannot be
    /// expressed and are left out.
    ///
    /// When there are more blocks than fit, the lowest ones are reported, except that `newestGapBlocks` of the
    /// budget go to the highest blocks instead. With CMT, data from a short path lands far above the cumulative
    /// TSN while a long path's data is still in flight below it, and every switch between paths makes a gap: the
    /// lowest blocks alone would leave the short path's newest data unacknowledged until the long path catches
    /// up, so its acks would come at the long path's pace. The blocks in between were reported by earlier SACKs
    /// when they were the newest (the sender keeps gap-acknowledged chunks), and the lowest ones carry what loss
    /// detection above the lowest holes needs.
    mutating func makeSack(
        advertisedReceiverWindowCredit: UInt32, maxGapBlocks: Int = 64, newestGapBlocks: Int = 0,
        includeNonRenegable: Bool = false
    ) -> SackInfo {
        var steps = 0
        let gapBlocks = Self.blocks(
            received, above: cumulative, max: maxGapBlocks, newest: newestGapBlocks, steps: &steps)
        let nrGapBlocks =
            includeNonRenegable
            ? Self.blocks(
                delivered, above: cumulative, max: maxGapBlocks, newest: newestGapBlocks, steps: &steps)
            : []
        sackSteps += steps
        let sack = SackInfo(
            cumulativeTSNAck: cumulativeTSN, advertisedReceiverWindowCredit: advertisedReceiverWindowCredit,
            gapAckBlocks: gapBlocks, nrGapAckBlocks: nrGapBlocks, duplicateTSNs: duplicates,
            packetsSinceLastSack: max(packetsSinceLastSack, 1))
        duplicates = []
        packetsSinceLastSack = 0
        bytesSinceLastSack = 0
        isSackImmediate = false
        sackDeadline = nil
        return sack
    }

    /// Asks for a SACK at once (e.g. the association is shutting down, or a window update is due).
    mutating func requestImmediateSack() {
        isSackImmediate = true
        sackDeadline = nil
    }

    /// Whether `tsn` has been received.
    func hasReceived(_ tsn: TSN) -> Bool {
        let value = UnwrappedTSN(tsn, near: cumulative)
        return value <= cumulative || received.contains(value)
    }

    /// Whether `tsn` lies further than `maxTSNsAhead` beyond the cumulative TSN: no TSN the peer may send yet.
    func isBeyondWindow(_ tsn: TSN) -> Bool { isBeyondWindow(UnwrappedTSN(tsn, near: cumulative)) }

    private func isBeyondWindow(_ tsn: UnwrappedTSN) -> Bool {
        cumulative.distance(to: tsn) > Int(configuration.maxTSNsAhead)
    }

    /// Ranges of TSNs held above the cumulative TSN.
    var gapRangeCount: Int { received.count }

    /// Tree steps spent on out-of-order TSNs so far (changes to both range sets and SACK building), for tests that
    /// check the cost per chunk.
    var workSteps: Int { received.steps + delivered.steps + sackSteps }

    // MARK: - Internals

    private mutating func startPacketIfNeeded() {
        guard !packetStarted else { return }
        packetStarted = true
        packetHadData = false
        packetWantsImmediateSack = false
        packetHadGapsBefore = !received.isEmpty
        packetStartCumulativeTSN = cumulativeTSN
    }

    /// The gap blocks of `ranges` as offsets from `cumulative`: all of them if at most `count` can be expressed,
    /// otherwise the lowest `count - newest` and the highest `newest`, in ascending order. Ranges starting beyond a
    /// 16-bit offset cannot be expressed.
    private static func blocks(
        _ ranges: TSNRangeSet, above cumulative: UnwrappedTSN, max count: Int, newest: Int, steps: inout Int
    ) -> [GapBlock] {
        let bound = cumulative + Int(UInt16.max)
        var result: [GapBlock] = []
        result.reserveCapacity(min(count + 1, ranges.count))
        func append(_ range: ClosedRange<UnwrappedTSN>) {
            let start = cumulative.distance(to: range.lowerBound)
            let end = min(cumulative.distance(to: range.upperBound), Int(UInt16.max))
            result.append((UInt16(start), UInt16(end)))
        }
        // One more than fits tells whether the budget is exceeded.
        ranges.forEachAscending(through: bound, limit: count + 1, steps: &steps, append)
        guard result.count > count else { return result }
        let highest = min(max(newest, 0), count)
        result.removeLast(highest + 1)
        let lowest = result.count
        ranges.forEachDescending(through: bound, limit: highest, steps: &steps, append)
        result[lowest...].reverse()
        return result
    }

    private mutating func advanceCumulativeTSN() {
        guard let first = received.first, first.lowerBound == cumulative.next else { return }
        cumulative = first.upperBound
        received.removeFirst()
        delivered.removeAll(through: cumulative)
    }
}
