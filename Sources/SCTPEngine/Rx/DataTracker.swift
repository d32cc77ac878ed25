/// Receiver-side TSN bookkeeping: the cumulative TSN, TSNs received out of order, duplicates, and when to send the
/// SACK that reports them (RFC 9260 §6.2, §6.7).
///
/// For each packet the association calls `handleData` once per DATA chunk (and keeps only chunks reported
/// `.new`), then `handlePacketEnd(now:)`. It then sends a SACK built by `makeSack` when `isSackDue(now:)`, and
/// otherwise arms the delayed-SACK timer at `sackDeadline`. Out-of-order TSNs are kept as sorted, disjoint ranges
/// of 64-bit unwrapped TSNs, so a burst of losses costs a handful of ranges, not one entry per TSN.
struct DataTracker: Sendable {
    struct Configuration: Sendable {
        /// The longest a SACK may be delayed: 200 ms by default (RFC 9260 §6.2: it "MUST NOT" exceed 500 ms).
        var delayedAckTimeout: SCTPDuration = .milliseconds(200)
        /// A SACK goes at least every this many packets with DATA (RFC 9260 §6.2: every second packet).
        var packetsPerSack = 2
        /// Duplicate TSNs remembered for the next SACK; more are counted but not reported.
        var maxDuplicates = 32
        /// TSNs further than this beyond the cumulative TSN are refused, bounding the out-of-order state.
        var maxTSNsAhead: UInt32 = 1 << 20
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
    }

    let configuration: Configuration
    /// The highest TSN received in sequence (the SACK's Cumulative TSN Ack).
    private(set) var cumulativeTSN: TSN
    private var cumulativeUnwrapped: UInt64
    /// TSNs received above the cumulative TSN: ascending, disjoint, never adjacent.
    private var received: [ClosedRange<UInt64>] = []
    /// NR-SACK: the subset of `received` already delivered to the user, which will not be reneged.
    private var delivered: [ClosedRange<UInt64>] = []
    private var duplicates: [TSN] = []
    /// CMT DAC: DATA packets received since the last SACK.
    private(set) var packetsSinceLastSack = 0
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
        self.cumulativeTSN = peerInitialTSN.previous
        self.cumulativeUnwrapped = 1 << 32
    }

    // MARK: - Receiving

    /// Records one DATA chunk's TSN. `isImmediate` is its I bit (RFC 7053).
    mutating func handleData(tsn: TSN, isImmediate: Bool = false) -> Disposition {
        startPacketIfNeeded()
        packetHadData = true
        if isImmediate { packetWantsImmediateSack = true }
        let delta = Int32(bitPattern: tsn.rawValue &- cumulativeTSN.rawValue)
        if delta <= 0 || contains(cumulativeUnwrapped + UInt64(delta)) {
            // RFC 9260 §6.2: "When a packet arrives with duplicate DATA chunk(s) and with no new DATA chunk(s), the
            // endpoint MUST immediately send a SACK with no delay."
            if duplicates.count < configuration.maxDuplicates { duplicates.append(tsn) }
            packetWantsImmediateSack = true
            return .duplicate
        }
        guard UInt32(delta) <= configuration.maxTSNsAhead else { return .outOfWindow }
        insert(cumulativeUnwrapped + UInt64(delta))
        advanceCumulativeTSN()
        return .new
    }

    /// Decides when to acknowledge the packet whose DATA chunks were just handled.
    mutating func handlePacketEnd(now: SCTPTime) {
        defer { packetStarted = false }
        guard packetHadData else { return }
        packetsSinceLastSack += 1
        // RFC 9260 §6.7: "If the endpoint detects a gap in the received DATA chunk sequence, it SHOULD send a SACK
        // with Gap Ack Blocks immediately." The same goes for a packet that fills (part of) a gap, so the sender
        // learns of the recovery at once.
        // A packet that fills a hole (the cumulative TSN moved while gaps were open) is acknowledged at once even
        // with CMT's DAC: it usually is a retransmission, and the sender waits for exactly this SACK.
        let filledHole = packetHadGapsBefore && cumulativeTSN != packetStartCumulativeTSN
        let gapsForceSack =
            filledHole || (configuration.sackImmediatelyOnGaps && (!received.isEmpty || packetHadGapsBefore))
        if packetWantsImmediateSack || gapsForceSack
            || packetsSinceLastSack >= configuration.packetsPerSack
        {
            isSackImmediate = true
            sackDeadline = nil
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
        let delta = Int32(bitPattern: newCumulativeTSN.rawValue &- cumulativeTSN.rawValue)
        guard delta > 0 else { return false }
        cumulativeTSN = newCumulativeTSN
        cumulativeUnwrapped += UInt64(delta)
        dropRanges(through: cumulativeUnwrapped)
        advanceCumulativeTSN()
        return true
    }

    /// NR-SACK: TSNs `first...last` were delivered to the user out of order and will not be reneged. TSNs at or
    /// below the cumulative TSN, or not received, are ignored.
    mutating func markDelivered(from first: TSN, through last: TSN) {
        let lo = Int32(bitPattern: first.rawValue &- cumulativeTSN.rawValue)
        let hi = Int32(bitPattern: last.rawValue &- cumulativeTSN.rawValue)
        guard hi > 0, lo <= hi else { return }
        let lower = cumulativeUnwrapped + UInt64(max(lo, 1))
        let upper = cumulativeUnwrapped + UInt64(hi)
        guard let i = rangeIndex(containing: lower), received[i].contains(upper) else { return }
        Self.insert(lower...upper, into: &delivered)
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
        let sack = SackInfo(
            cumulativeTSNAck: cumulativeTSN, advertisedReceiverWindowCredit: advertisedReceiverWindowCredit,
            gapAckBlocks: blocks(received, max: maxGapBlocks, newest: newestGapBlocks),
            nrGapAckBlocks: includeNonRenegable ? blocks(delivered, max: maxGapBlocks, newest: newestGapBlocks) : [],
            duplicateTSNs: duplicates, packetsSinceLastSack: max(packetsSinceLastSack, 1))
        duplicates = []
        packetsSinceLastSack = 0
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
        let delta = Int32(bitPattern: tsn.rawValue &- cumulativeTSN.rawValue)
        return delta <= 0 || contains(cumulativeUnwrapped + UInt64(delta))
    }

    // MARK: - Internals

    private mutating func startPacketIfNeeded() {
        guard !packetStarted else { return }
        packetStarted = true
        packetHadData = false
        packetWantsImmediateSack = false
        packetHadGapsBefore = !received.isEmpty
        packetStartCumulativeTSN = cumulativeTSN
    }

    /// The gap blocks of `ranges` as offsets from the cumulative TSN: all of them if at most `count` can be
    /// expressed, otherwise the lowest `count - newest` and the highest `newest`, in ascending order.
    private func blocks(_ ranges: [ClosedRange<UInt64>], max count: Int, newest: Int = 0) -> [GapBlock] {
        // Ranges starting beyond a 16-bit offset cannot be expressed.
        var expressible = ranges.count
        while expressible > 0, ranges[expressible - 1].lowerBound - cumulativeUnwrapped > UInt64(UInt16.max) {
            expressible -= 1
        }
        let highest = expressible > count ? min(max(newest, 0), count) : 0
        let lowest = min(expressible, count) - highest
        var result: [GapBlock] = []
        result.reserveCapacity(lowest + highest)
        for range in ranges[0..<lowest] + ranges[(expressible - highest)..<expressible] {
            let start = range.lowerBound - cumulativeUnwrapped
            let end = min(range.upperBound - cumulativeUnwrapped, UInt64(UInt16.max))
            result.append((UInt16(start), UInt16(end)))
        }
        return result
    }

    private func rangeIndex(containing value: UInt64) -> Int? {
        var lo = 0
        var hi = received.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if received[mid].upperBound < value { lo = mid + 1 } else { hi = mid }
        }
        return lo < received.count && received[lo].contains(value) ? lo : nil
    }

    private func contains(_ value: UInt64) -> Bool { rangeIndex(containing: value) != nil }

    private mutating func insert(_ value: UInt64) { Self.insert(value...value, into: &received) }

    /// Inserts `new` into ascending, disjoint, non-adjacent `ranges`, merging neighbours.
    private static func insert(_ new: ClosedRange<UInt64>, into ranges: inout [ClosedRange<UInt64>]) {
        // Fast path: appending at the end, the common case with in-order arrival above a gap.
        if let last = ranges.last, new.lowerBound > last.upperBound {
            if new.lowerBound == last.upperBound + 1 {
                ranges[ranges.count - 1] = last.lowerBound...new.upperBound
            } else {
                ranges.append(new)
            }
            return
        }
        // First range whose upper bound reaches new.lowerBound - 1.
        var lo = 0
        var hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].upperBound + 1 < new.lowerBound { lo = mid + 1 } else { hi = mid }
        }
        var lower = new.lowerBound
        var upper = new.upperBound
        var end = lo
        while end < ranges.count && ranges[end].lowerBound <= upper + 1 {
            lower = min(lower, ranges[end].lowerBound)
            upper = max(upper, ranges[end].upperBound)
            end += 1
        }
        ranges.replaceSubrange(lo..<end, with: CollectionOfOne(lower...upper))
    }

    private mutating func advanceCumulativeTSN() {
        guard let first = received.first, first.lowerBound == cumulativeUnwrapped + 1 else { return }
        cumulativeTSN = cumulativeTSN.advanced(by: UInt32(truncatingIfNeeded: first.upperBound - cumulativeUnwrapped))
        cumulativeUnwrapped = first.upperBound
        received.removeFirst()
        dropDelivered(through: cumulativeUnwrapped)
    }

    private mutating func dropRanges(through value: UInt64) {
        while let first = received.first, first.lowerBound <= value {
            if first.upperBound <= value {
                received.removeFirst()
            } else {
                received[0] = (value + 1)...first.upperBound
            }
        }
        dropDelivered(through: value)
    }

    private mutating func dropDelivered(through value: UInt64) {
        while let first = delivered.first, first.lowerBound <= value {
            if first.upperBound <= value {
                delivered.removeFirst()
            } else {
                delivered[0] = (value + 1)...first.upperBound
            }
        }
    }
}
