import DequeModule
import NIOCore

/// The retransmission queue: every DATA chunk sent and not yet cumulatively acknowledged, with what each SACK
/// means for it — acknowledgement, RTT sample, miss indication, fast retransmit — and per-destination flight
/// sizes.
///
/// Chunks sit in a deque ordered by TSN, and TSNs are consecutive, so the chunk with TSN t is at index
/// t − (cumulativeTSNAck + 1): every lookup is index arithmetic. This type assigns TSNs (`insert`), so the
/// invariant holds by construction. Sizes are payload bytes, for the flight size, cwnd and the peer's rwnd alike.
///
/// Fast retransmit (RFC 9260 §7.2.4) runs in one of two modes: classic, or Split Fast Retransmit for CMT
/// (Iyengar et al., 2006), where a chunk sent to path P gains a miss indication only when a later chunk sent to
/// P was newly acknowledged. Optionally the DAC rule adds the receiver's packet count instead of one. For CMT's
/// CUC, each path's pseudo-cumulative ack (its lowest unacknowledged TSN) is tracked, so the caller can grow a
/// path's cwnd and restart its T3-rtx timer when it advances.
struct OutstandingData: Sendable {
    /// How miss indications are counted.
    struct FastRetransmitPolicy: Sendable {
        /// CMT Split Fast Retransmit: count miss indications per destination.
        var splitFastRetransmit = false
        /// CMT DAC: increment by the receiver's reported packet count when every newly acknowledged TSN (on the
        /// destination, with SFR) lies above the missing one.
        var delayedAckForCMT = false
        /// Miss indications that trigger fast retransmit: 3 (RFC 9260 §7.2.4).
        var threshold = 3
        /// Treat chunks gap-acked earlier but missing from a later SACK's blocks as reneged (RFC 9260 §6.2 lets a
        /// receiver renege) and count them unacknowledged again. Off by default: with several paths SACKs arrive
        /// reordered, and an older SACK would look like reneging, undo acknowledgements and inflate the next
        /// SACK's newly acknowledged bytes. agg's own receiver never reneges (it could always send NR-SACKs).
        var detectsReneging = false

        init(
            splitFastRetransmit: Bool = false, delayedAckForCMT: Bool = false, threshold: Int = 3,
            detectsReneging: Bool = false
        ) {
            self.splitFastRetransmit = splitFastRetransmit
            self.delayedAckForCMT = delayedAckForCMT
            self.threshold = threshold
            self.detectsReneging = detectsReneging
        }
    }

    /// Where a chunk stands.
    enum ChunkState: UInt8, Sendable {
        /// Sent, not acknowledged (possibly marked for retransmission).
        case outstanding
        /// Acknowledged by a gap block: renegable, so kept until the cumulative ack passes it.
        case gapAcked
        /// Acknowledged by an NR gap block (NR-SACK): will not be reneged; payload already released.
        case nrAcked
        /// Given up on (PR-SCTP); to be skipped with FORWARD-TSN.
        case abandoned
    }

    /// One chunk in the queue, without its payload (in `payloads` at the same index): no reference-counted field,
    /// so reading or copying an item costs no retain and release.
    struct Item: Sendable {
        /// The chunk's DATA header fields.
        var chunk: Header
        /// PR-SCTP: when its message is given up on (RFC 7496).
        var abandonment: AbandonmentRule
        var size: Int
        /// The destination of its latest transmission.
        var path: PathID
        var sentAt: SCTPTime
        var transmissions: Int
        var missIndications = 0
        var state = ChunkState.outstanding
        var isInFlight = true
        var isMarkedForRetransmission = false
        var wasFastRetransmitted = false
        /// The T3-rtx expiry (an id from `lastTimeoutEpisode`) that took this chunk out of flight, 0 for none:
        /// kept through its retransmission, so spurious-timeout detection can tell originals from retransmissions.
        var timeoutEpisode: UInt32 = 0
        /// Marked by a T3-rtx expiry but held back until a SACK shows whether it was spurious
        /// (`suspendTimeoutRetransmissions`): out of flight, not marked, not to be sent.
        var isSuspended = false

        /// The destination's delivery state when this chunk was last sent, for its delivery-rate sample.
        var delivery: DeliverySnapshot

        var isAcked: Bool { state == .gapAcked || state == .nrAcked }
    }

    /// A DATA chunk's header fields, as `DataChunk` has them but for the user data.
    struct Header: Sendable {
        var tsn: TSN
        var streamID: StreamID
        var ssn: SSN
        var ppid: PPID
        var isUnordered: Bool
        var isBeginning: Bool
        var isEnding: Bool
        var isImmediate: Bool

        init(_ chunk: DataChunk) {
            (tsn, streamID, ssn, ppid) = (chunk.tsn, chunk.streamID, chunk.ssn, chunk.ppid)
            (isUnordered, isBeginning, isEnding, isImmediate) =
                (chunk.isUnordered, chunk.isBeginning, chunk.isEnding, chunk.isImmediate)
        }

        func chunk(userData: ByteBuffer) -> DataChunk {
            DataChunk(
                tsn: tsn, streamID: streamID, ssn: ssn, ppid: ppid, isUnordered: isUnordered,
                isBeginning: isBeginning, isEnding: isEnding, isImmediate: isImmediate, userData: userData)
        }
    }

    /// What a destination had delivered when a chunk was sent (draft-cheng-iccrg-delivery-rate-estimation §3.2):
    /// the acknowledgement of that chunk measures the delivery rate over the interval since.
    struct DeliverySnapshot: Sendable {
        /// Bytes the destination had delivered (acknowledged) in total.
        var delivered: Int
        /// When the last of those bytes was acknowledged.
        var deliveredTime: SCTPTime
        /// The send time of the chunk whose acknowledgement was the latest one then: the start of the send
        /// interval, so an ack-compressed burst cannot show a rate faster than the data was sent.
        var firstSentTime: SCTPTime
        /// The sender had less data than its window allowed: a sample from this chunk may understate the path.
        var isAppLimited: Bool
    }

    /// One delivery-rate sample: the bytes a destination delivered over an interval, measured by the SACK that
    /// newly acknowledged the chunk sent there most recently (Karn: never a retransmitted one).
    struct RateSample: Sendable, Equatable {
        /// Bytes delivered on the destination between the chunk's sending and its acknowledgement.
        var deliveredBytes: Int
        /// The longer of the send and the ack interval (§3.3), so neither compression shows a false rate.
        var interval: SCTPDuration
        /// The destination's delivered total when the chunk was sent: round trips are counted against it.
        var priorDelivered: Int
        /// The chunk went out while the sender was application-limited.
        var isAppLimited: Bool
        /// The chunk's round trip.
        var rtt: SCTPDuration

        /// Bytes per second; 0 for an empty interval.
        var bytesPerSecond: Double {
            interval > .zero ? Double(deliveredBytes) / interval.seconds : 0
        }
    }

    /// What one SACK meant for one destination.
    struct PathAck: Sendable {
        var path: PathID
        /// Bytes newly acknowledged here, by the cumulative ack and by (NR) gap blocks.
        var bytesAcked = 0
        /// RTT from the highest newly acknowledged chunk sent here only once (Karn's rule, RFC 9260 §6.3.1 C5).
        var rttSample: SCTPDuration?
        var flightSizeBeforeSack = 0
        var flightSize = 0
        /// The lowest unacknowledged TSN sent here advanced (or all became acknowledged): CMT's CUC lets cwnd
        /// grow, and RFC 9260 §6.3.2 R3 restarts this destination's T3-rtx timer.
        var pseudoCumulativeAckAdvanced = false
        /// Every TSN below this destination's lowest unacknowledged one, as the controller's ack point.
        var ackPoint = TSN(0)
        var highestNewlyAckedTSN: TSN?
        /// The lowest TSN sent here newly acknowledged by the SACK (for DAC).
        var lowestNewlyAckedTSN: TSN?
        /// The latest send time among chunks sent here and newly acknowledged: a retransmission sent before it
        /// and still missing was lost again.
        var latestNewlyAckedSendTime: SCTPTime?
        /// Some chunk last sent here reached the miss-indication threshold in this SACK: enter fast recovery.
        var hasNewFastRetransmits = false
        /// Nothing sent here remains unacknowledged.
        var allDataAcked = false
        /// The delivery-rate sample of this SACK, if it newly acknowledged a chunk sent here only once.
        var rateSample: RateSample?
        /// Bytes ever delivered on this destination, this SACK's included.
        var delivered = 0
        /// What this SACK said about the T3-rtx expiry still undecided on this destination, if any.
        var timeoutVerdict = TimeoutVerdict.undecided
    }

    /// Whether a T3-rtx expiry was spurious (RFC 5682's idea, without timestamps): after the expiry the path's cwnd
    /// is one MTU, so only the first packet of the chunks it marked is retransmitted before the next SACK. A SACK
    /// that acknowledges a chunk the expiry marked and that was not retransmitted since proves the original got
    /// through: the SACKs were late, not the data lost.
    enum TimeoutVerdict: Sendable, Equatable {
        /// No SACK yet acknowledged a chunk the expiry marked that was not retransmitted (acknowledging only the
        /// retransmitted ones is no evidence: the retransmission may be what arrived).
        case undecided
        /// Such a chunk was acknowledged and every chunk of the expiry below it too: the chunks still marked were
        /// put back in flight, the caller restores what the expiry cut.
        case spurious
        /// Such a chunk was acknowledged while a chunk of the expiry below it is still missing, or a second SACK
        /// acknowledged only what was sent after the expiry (or the first did, with no new data to probe with):
        /// a genuine loss. The chunks held back are marked for retransmission.
        case genuine
    }

    /// The result of one SACK.
    struct SackOutcome: Sendable {
        enum Disposition: Sendable, Equatable {
            case accepted
            /// The cumulative TSN ack lies behind ours: an old, reordered SACK, ignored (RFC 9260 §6.2.1 D i).
            case stale
            /// It acknowledges a TSN never sent: a protocol violation for the association to handle.
            case acknowledgesUnsentTSN
        }
        var disposition: Disposition
        var cumulativeTSNAckAdvanced = false
        var highestNewlyAckedTSN: TSN?
        var lowestNewlyAckedTSN: TSN?
        /// One entry per destination with data outstanding before or after the SACK.
        var paths: [PathAck] = []
        /// Bytes newly marked for fast retransmission.
        var fastRetransmitBytes = 0
        /// The peer's rwnd: a_rwnd minus the bytes still in flight (RFC 9260 §6.2.1 D iv).
        var peerReceiverWindow = 0
    }

    /// Per-destination accounting.
    private struct PathAccount: Sendable {
        var id: PathID
        var flightSize = 0
        /// Unwrapped TSNs last sent here, ascending, lazily purged: its first valid entry is the pseudo-cum-ack.
        var sentTSNs = Deque<UnwrappedTSN>()
        var ack = PathAck(path: PathID(0))
        /// The unwrapped TSN of the highest chunk ever acknowledged whose latest transmission went here: with SFR,
        /// an unacknowledged chunk sent here is "reported missing" only below it.
        var highestAcked = UnwrappedTSN.min
        // Delivery-rate state (draft-cheng-iccrg-delivery-rate-estimation §3.1: C.delivered, C.delivered_time,
        // C.first_sent_time, C.app_limited), per destination.
        var delivered = 0
        var deliveredTime = SCTPTime.zero
        var firstSentTime = SCTPTime.zero
        /// Nonzero while application-limited: the delivered total at which that ends.
        var appLimitedUntil = 0
        /// The chunk of this SACK that gives the rate sample: the latest sent, newly acknowledged, sent once.
        var sample: (snapshot: DeliverySnapshot, sentAt: SCTPTime)?
        /// The undecided T3-rtx expiry here (`Item.timeoutEpisode`), 0 for none.
        var timeoutEpisode: UInt32 = 0
        /// The highest index newly acknowledged by this SACK among chunks `timeoutEpisode` marked and that were not
        /// retransmitted since: the evidence of a spurious timeout.
        var timeoutEvidence: UnwrappedTSN?
        /// SACKs since the expiry that newly acknowledged something but gave no such evidence.
        var timeoutAmbiguousAcks = 0
    }

    let policy: FastRetransmitPolicy
    private var items = Deque<Item>()
    /// Each item's payload, released (emptied) once it is acknowledged by an NR gap block or abandoned.
    private var payloads = Deque<ByteBuffer>()
    /// The unwrapped TSN of `items[0]` (cumulativeTSNAck + 1).
    private var firstUnwrapped: UnwrappedTSN
    /// The highest TSN the peer acknowledged cumulatively.
    var cumulativeTSNAck: TSN { firstUnwrapped.previous.tsn }
    /// The TSN the next new chunk gets.
    private(set) var nextTSN: TSN
    private var paths: [PathAccount] = []
    /// Unwrapped TSNs marked for retransmission, ascending; entries no longer marked are skipped lazily.
    private var retransmissions = Deque<UnwrappedTSN>()
    private(set) var totalFlightSize = 0
    /// Bytes sent and neither acknowledged nor abandoned, in flight or waiting for retransmission.
    private(set) var unackedBytes = 0
    private var gapAckedCount = 0
    /// The unwrapped TSN of the highest gap-acked chunk, bounding the renege scan.
    private var highestGapAcked = UnwrappedTSN.min
    private var scratch: [PathAck] = []
    /// The valid (NR) gap blocks of the SACK being handled, as item index ranges, for walking the holes between them.
    private var reportedBlocks: [Range<Int>] = []
    /// The last `Item.timeoutEpisode` handed out.
    private var lastTimeoutEpisode: UInt32 = 0
    /// Some destination has an undecided T3-rtx expiry: acknowledgements are looked at for `TimeoutVerdict`.
    private var hasTimeoutEpisodes = false
    /// How `countMissIndications` finds the chunks a SACK reports missing; tests compare the two.
    var missIndicationWalk = MissIndicationWalk.holes

    /// Which chunks `countMissIndications` visits. Both visit the same outstanding chunks in the same order.
    enum MissIndicationWalk: Sendable {
        /// Only the holes between the SACK's blocks: O(chunks reported missing) per SACK.
        case holes
        /// Every chunk below the highest reported one: O(window) per SACK; kept as the reference for tests.
        case everyChunk
    }

    /// `initialTSN` is the first TSN we send (RFC 9260 §5.1: the Initial TSN of our INIT or INIT ACK).
    init(initialTSN: TSN, policy: FastRetransmitPolicy = FastRetransmitPolicy()) {
        self.policy = policy
        self.nextTSN = initialTSN
        self.firstUnwrapped = UnwrappedTSN(first: initialTSN)
    }

    // MARK: - Queries

    var isEmpty: Bool { items.isEmpty }
    /// Chunks sent and not yet cumulatively acknowledged (including gap-acked ones).
    var count: Int { items.count }
    var highestOutstandingTSN: TSN { nextTSN.previous }
    /// Asked on every transmit: the empty list is answered inline, without a copy of the whole structure.
    @inline(__always) var hasChunksToRetransmit: Bool {
        !retransmissions.isEmpty && firstRetransmissionIndex() != nil
    }

    func flightSize(on path: PathID) -> Int { paths.first(where: { $0.id == path })?.flightSize ?? 0 }

    /// The lowest unacknowledged TSN last sent to `path` (CMT's pseudo-cumulative ack), or nil if none.
    mutating func pseudoCumulativeAck(on path: PathID) -> TSN? {
        guard let p = paths.firstIndex(where: { $0.id == path }) else { return nil }
        return lowestUnacked(p).map { $0.tsn }
    }

    /// True while anything sent to `path` is unacknowledged: its T3-rtx timer should run (RFC 9260 §6.3.2).
    mutating func hasUnackedData(on path: PathID) -> Bool { pseudoCumulativeAck(on: path) != nil }

    func item(for tsn: TSN) -> Item? { index(of: tsn).map { items[$0] } }

    /// The payload still held for `tsn`: empty once an NR gap block acknowledged it or it was abandoned.
    func payload(for tsn: TSN) -> ByteBuffer? { index(of: tsn).map { payloads[$0] } }

    // MARK: - Sending

    /// Numbers `fragment` with the next TSN, records it as sent to `path` at `now`, and returns the chunk to send.
    mutating func insert(_ fragment: consuming DataFragment, path: PathID, now: SCTPTime) -> DataChunk {
        let (streamID, ssn, ppid, abandonment) = (fragment.streamID, fragment.ssn, fragment.ppid, fragment.abandonment)
        let flags = (fragment.isUnordered, fragment.isBeginning, fragment.isEnding, fragment.isImmediate)
        // The payload moves out of the fragment into the list: the chunk returned holds the only other reference.
        let payload = (consume fragment).payload
        let chunk = DataChunk(
            tsn: nextTSN, streamID: streamID, ssn: ssn, ppid: ppid, isUnordered: flags.0, isBeginning: flags.1,
            isEnding: flags.2, isImmediate: flags.3, userData: payload)
        let size = payload.readableBytes
        let unwrapped = firstUnwrapped + items.count
        let p = accountIndex(for: path)
        let delivery = deliverySnapshot(p, now: now)
        payloads.append(payload)
        items.append(
            Item(
                chunk: Header(chunk), abandonment: abandonment, size: size, path: path, sentAt: now,
                transmissions: 1, delivery: delivery))
        nextTSN = nextTSN.next
        unackedBytes += size
        totalFlightSize += size
        paths[p].flightSize += size
        paths[p].sentTSNs.append(unwrapped)
        return chunk
    }

    /// The payload size of the chunk `pollRetransmission` would return next, to check it fits a packet.
    /// Mutating so the association's hot loop modifies its stored struct in place: a read would copy the whole
    /// struct (every field retained and released) per packet. It drops the stale entries `pollRetransmission` would.
    mutating func peekRetransmissionSize() -> Int? {
        guard !retransmissions.isEmpty, let i = firstRetransmissionIndexPurging() else { return nil }
        return items[i].size
    }

    /// Takes the lowest-TSN chunk marked for retransmission, records its retransmission to `path` at `now`, and
    /// returns it. Its RTT can no longer be sampled (Karn's rule).
    mutating func pollRetransmission(to path: PathID, now: SCTPTime) -> DataChunk? {
        guard let i = firstRetransmissionIndexPurging() else { return nil }
        retransmissions.removeFirst()
        items[i].isMarkedForRetransmission = false
        items[i].isInFlight = true
        items[i].transmissions += 1
        items[i].sentAt = now
        items[i].missIndications = 0
        let size = items[i].size
        let oldPath = items[i].path
        items[i].path = path
        let p = accountIndex(for: path)
        items[i].delivery = deliverySnapshot(p, now: now)
        totalFlightSize += size
        paths[p].flightSize += size
        let unwrapped = firstUnwrapped + i
        if oldPath != path {
            insertSorted(unwrapped, into: &paths[p].sentTSNs)
        }
        return items[i].chunk.chunk(userData: payloads[i])
    }

    // MARK: - SACK processing

    /// Applies a SACK: the cumulative ack, gap blocks and NR gap blocks, renege detection, then miss indications.
    /// `isInFastRecovery` tells whether a destination's controller is in fast recovery (classic mode: ask the
    /// association-wide state).
    /// `hasNewData` tells whether new data waits to be sent: without it an ambiguous SACK after a T3-rtx expiry
    /// cannot be followed by a probe and decides the expiry genuine (RFC 5682 §2.1, step 2).
    mutating func handleSack(
        _ sack: SackInfo, now: SCTPTime, hasNewData: Bool = true, isInFastRecovery: (PathID) -> Bool = { _ in false }
    ) -> SackOutcome {
        let advance = firstUnwrapped.distance(to: unwrap(sack.cumulativeTSNAck).next)
        guard advance >= 0 else { return SackOutcome(disposition: .stale) }
        guard advance <= items.count else { return SackOutcome(disposition: .acknowledgesUnsentTSN) }
        var outcome = SackOutcome(disposition: .accepted)

        for p in paths.indices {
            paths[p].ack = PathAck(path: paths[p].id)
            paths[p].sample = nil
            paths[p].timeoutEvidence = nil
            paths[p].ack.flightSizeBeforeSack = paths[p].flightSize
            paths[p].ack.ackPoint =
                lowestUnacked(p).map { $0.previous.tsn }
                ?? cumulativeTSNAck
        }

        // The cumulative ack: newly acknowledge, then drop, every chunk up to it.
        for i in 0..<advance where items[i].state == .outstanding {
            acknowledge(at: i, as: .nrAcked, now: now, outcome: &outcome)
        }
        for i in 0..<advance where items[i].state == .gapAcked { gapAckedCount -= 1 }
        items.removeFirst(advance)
        payloads.removeFirst(advance)
        firstUnwrapped = firstUnwrapped + advance
        outcome.cumulativeTSNAckAdvanced = advance > 0

        // NR gap blocks first, so a chunk moving from a gap block to an NR gap block is not taken for reneged; then
        // gap blocks. Offsets count from the cumulative ack, so offset k is items[k - 1].
        var highestReported = 0
        reportedBlocks.removeAll(keepingCapacity: true)
        for block in sack.nrGapAckBlocks {
            let start = Int(block.start)
            let end = min(Int(block.end), items.count)
            guard start >= 1, start <= end else { continue }
            reportedBlocks.append((start - 1)..<end)
            for i in (start - 1)..<end {
                switch items[i].state {
                case .outstanding:
                    acknowledge(at: i, as: .nrAcked, now: now, outcome: &outcome)
                    payloads[i] = ByteBuffer()
                case .gapAcked:
                    gapAckedCount -= 1
                    items[i].state = .nrAcked
                    payloads[i] = ByteBuffer()
                case .nrAcked, .abandoned:
                    break
                }
            }
            highestReported = max(highestReported, end)
        }
        var covered = 0  // items below this index lie in or between blocks already walked, for renege detection
        for block in sack.gapAckBlocks {
            let start = Int(block.start)
            let end = min(Int(block.end), items.count)
            guard start >= 1, start <= end else { continue }
            reportedBlocks.append((start - 1)..<end)
            if policy.detectsReneging && gapAckedCount > 0 && start - 1 > covered {
                revertReneged(in: covered..<(start - 1))
            }
            for i in (start - 1)..<end where items[i].state == .outstanding {
                acknowledge(at: i, as: .gapAcked, now: now, outcome: &outcome)
            }
            covered = max(covered, end)
            highestReported = max(highestReported, end)
        }
        if policy.detectsReneging && gapAckedCount > 0 && highestGapAcked >= firstUnwrapped {
            let limit = min(items.count, firstUnwrapped.distance(to: highestGapAcked) + 1)
            if covered < limit { revertReneged(in: covered..<limit) }
        }

        // The verdict first: a spurious one puts the held chunks back in flight, where this SACK's miss indications
        // then count for them (counted first, a chunk fast retransmit marked would be unmarked by the verdict and,
        // having had its fast retransmission, wait for the next expiry).
        for p in paths.indices where hasTimeoutEpisodes && paths[p].timeoutEpisode != 0 {
            // A cumulative ack over abandoned chunks only (after a FORWARD-TSN) moves things on too.
            let acknowledgedAny = outcome.highestNewlyAckedTSN != nil || advance > 0
            judgeTimeout(p, acknowledgedAny: acknowledgedAny, hasNewData: hasNewData)
        }
        countMissIndications(
            upTo: highestReported, sack: sack, cumulativeAdvanced: advance > 0, isInFastRecovery: isInFastRecovery,
            outcome: &outcome)

        // Per-destination summary.
        scratch.removeAll(keepingCapacity: true)
        for p in paths.indices {
            let lowest = lowestUnacked(p)
            var ack = paths[p].ack
            ack.flightSize = paths[p].flightSize
            if let lowest {
                let point = lowest.previous.tsn
                ack.pseudoCumulativeAckAdvanced = point.isAfter(ack.ackPoint)
                ack.ackPoint = point
            } else {
                ack.pseudoCumulativeAckAdvanced = ack.flightSizeBeforeSack > 0 || ack.bytesAcked > 0
                ack.ackPoint = cumulativeTSNAck
                ack.allDataAcked = true
            }
            ack.rateSample = takeRateSample(p)
            ack.delivered = paths[p].delivered
            if ack.flightSizeBeforeSack > 0 || ack.bytesAcked > 0 || lowest != nil { scratch.append(ack) }
        }
        outcome.paths = scratch
        _ = firstRetransmissionIndexPurging()
        outcome.peerReceiverWindow = max(0, Int(sack.advertisedReceiverWindowCredit) - totalFlightSize)
        return outcome
    }

    // MARK: - Timeouts and abandonment

    /// RFC 9260 §6.3.3 E3: on T3-rtx expiry for `path`, every chunk last sent there and not acknowledged is marked
    /// for retransmission and taken out of the flight. Returns the bytes returned from flight.
    ///
    /// The chunks it takes out of flight are tagged with the destination's undecided expiry, so a later SACK can
    /// show it spurious (`TimeoutVerdict`). A new expiry while one is undecided and some chunk it marked is still
    /// unsent joins it (the timer backed off and fired again before any SACK came); otherwise it starts a new
    /// one. `startsEpisode` tells the caller whether to save the state the expiry is about to cut.
    @discardableResult
    mutating func markAllForRetransmission(on path: PathID) -> (bytes: Int, startsEpisode: Bool) {
        let p = accountIndex(for: path)
        var episode = paths[p].timeoutEpisode
        if episode == 0 || !hasUnsentChunk(of: episode) {
            lastTimeoutEpisode = lastTimeoutEpisode == .max ? 1 : lastTimeoutEpisode + 1
            episode = lastTimeoutEpisode
        }
        let startsEpisode = episode != paths[p].timeoutEpisode
        if startsEpisode { paths[p].timeoutAmbiguousAcks = 0 }
        paths[p].timeoutEpisode = episode
        hasTimeoutEpisodes = true
        var bytes = 0
        for i in items.indices where items[i].path == path && items[i].state == .outstanding {
            if items[i].isInFlight {
                bytes += items[i].size
                // Only chunks in flight: one already marked for fast retransmission was reported missing.
                items[i].timeoutEpisode = episode
            }
            markForRetransmission(at: i)
        }
        if bytes > 0 || !retransmissions.isEmpty { sortRetransmissions() }
        return (bytes, startsEpisode)
    }

    /// Forgets the undecided expiry on `path`, if any, its held-back chunks marked for retransmission: the caller
    /// found nothing to retransmit after all, or the path is going away.
    mutating func forgetTimeout(on path: PathID) {
        guard let p = paths.firstIndex(where: { $0.id == path }), paths[p].timeoutEpisode != 0 else { return }
        releaseSuspended(episode: paths[p].timeoutEpisode)
        endEpisode(p)
    }

    /// F-RTO's probe (RFC 5682 §2.1): after a T3-rtx expiry on `path` only the first `keeping` bytes on the wire (a
    /// packet; at least one chunk) of what it marked are retransmitted before a SACK shows whether it was spurious;
    /// the rest is held back (`Item.isSuspended`). Without this, each late SACK lets slow start retransmit the
    /// chunks the next late SACK acknowledges, and no SACK ever acknowledges a chunk that was not retransmitted.
    /// Wire bytes, not payload: a cwnd of tiny chunks (a proxy's requests and closes) is a thousand chunks and a
    /// dozen packets. A dead path loses nothing by it (its cwnd allows one packet per RTO anyway); with another
    /// path, two SACKs without evidence release the rest (`judgeTimeout`).
    mutating func suspendTimeoutRetransmissions(on path: PathID, keeping: Int) {
        guard let p = paths.firstIndex(where: { $0.id == path }), paths[p].timeoutEpisode != 0 else { return }
        let episode = paths[p].timeoutEpisode
        var kept = 0
        for i in items.indices
        where items[i].timeoutEpisode == episode && items[i].isMarkedForRetransmission
            && items[i].state == .outstanding && items[i].path == path
        {
            // The chunk's header and padding (RFC 9260 §3.2) count as what fills the packet.
            let wire = (16 + items[i].size + 3) & ~3
            if kept == 0 || kept + wire <= keeping {
                kept += wire
                continue
            }
            items[i].isMarkedForRetransmission = false
            items[i].isSuspended = true
        }
        _ = firstRetransmissionIndexPurging()
    }

    /// Whether a chunk `episode` marked is still waiting for its retransmission.
    private func hasUnsentChunk(of episode: UInt32) -> Bool {
        items.contains {
            $0.timeoutEpisode == episode && ($0.isMarkedForRetransmission || $0.isSuspended)
                && $0.state == .outstanding
        }
    }

    /// The chunks `episode` held back are marked for retransmission after all.
    private mutating func releaseSuspended(episode: UInt32) {
        var released = false
        for i in items.indices where items[i].isSuspended && items[i].timeoutEpisode == episode {
            items[i].isSuspended = false
            if items[i].state == .outstanding {
                markForRetransmission(at: i)
                released = true
            }
        }
        if released { sortRetransmissions() }
    }

    private mutating func endEpisode(_ p: Int) {
        paths[p].timeoutEpisode = 0
        paths[p].timeoutAmbiguousAcks = 0
        hasTimeoutEpisodes = paths.contains { $0.timeoutEpisode != 0 }
    }

    /// Decides the undecided expiry on `paths[p]` from this SACK's evidence (`TimeoutVerdict`). Spurious: every
    /// chunk it marked that is still unsent goes back in flight on this destination, where it was last sent, as
    /// if the timer had not fired. Either way the expiry is decided and forgotten.
    private mutating func judgeTimeout(_ p: Int, acknowledgedAny: Bool, hasNewData: Bool) {
        let episode = paths[p].timeoutEpisode
        guard let evidence = paths[p].timeoutEvidence else {
            guard acknowledgedAny else { return }
            // Only what was sent since the expiry (or on another path) was acknowledged. RFC 5682 §2.1 step 2: the
            // first such ack lets new data go as a probe; a second, or no new data to send, ends the wait. With
            // several paths the acks of another path count too: a dead path's held-back chunks wait for no more
            // than two of them before they are retransmitted there.
            paths[p].timeoutAmbiguousAcks += 1
            if paths[p].timeoutAmbiguousAcks >= 2 || !hasNewData { decideGenuine(p) }
            return
        }
        // Chunks below the evidence that were acknowledged cumulatively are gone; any still here and outstanding
        // is missing (a retransmitted chunk whose original was lost, say).
        let limit = evidence < firstUnwrapped ? 0 : min(items.count, firstUnwrapped.distance(to: evidence))
        for i in 0..<limit where items[i].timeoutEpisode == episode && items[i].state == .outstanding {
            decideGenuine(p)
            return
        }
        endEpisode(p)
        let id = paths[p].id
        for i in items.indices
        where items[i].timeoutEpisode == episode && (items[i].isMarkedForRetransmission || items[i].isSuspended)
            && items[i].state == .outstanding && items[i].path == id
        {
            items[i].isMarkedForRetransmission = false
            items[i].isSuspended = false
            items[i].isInFlight = true
            totalFlightSize += items[i].size
            paths[p].flightSize += items[i].size
        }
        paths[p].ack.timeoutVerdict = .spurious
    }

    private mutating func decideGenuine(_ p: Int) {
        releaseSuspended(episode: paths[p].timeoutEpisode)
        endEpisode(p)
        paths[p].ack.timeoutVerdict = .genuine
    }

    /// PR-SCTP hook (RFC 3758): gives up on `tsn`; it leaves the flight and will be skipped by FORWARD-TSN.
    /// Returns false if it is not outstanding.
    @discardableResult
    mutating func abandon(_ tsn: TSN) -> Bool {
        guard let i = index(of: tsn), items[i].state == .outstanding else { return false }
        if items[i].isInFlight { removeFromFlight(at: i) }
        items[i].isMarkedForRetransmission = false
        items[i].isSuspended = false
        items[i].state = .abandoned
        unackedBytes -= items[i].size
        payloads[i] = ByteBuffer()
        _ = firstRetransmissionIndexPurging()
        return true
    }

    /// RFC 3758 §3.5 C1: the Advanced.Peer.Ack.Point — the highest TSN up to which every chunk is acknowledged or
    /// abandoned. A FORWARD-TSN is due when it lies beyond `cumulativeTSNAck`.
    ///
    /// It never ends inside a message that is not abandoned: the receiver takes every partial message up to the new
    /// cumulative TSN for skipped and discards it (RFC 3758 §3.6), so a point at a reliable message's acknowledged
    /// first fragment, with its last still outstanding, would lose that message for good.
    var advancedPeerAckPoint: TSN {
        var point = cumulativeTSNAck
        for item in items {
            guard item.state == .abandoned || item.isAcked else { break }
            if item.state == .abandoned || item.chunk.isEnding { point = item.chunk.tsn }
        }
        return point
    }

    /// RFC 3758 §3.5 C2/C3: the chunk right after the cumulative TSN ack is abandoned, so the Advanced.Peer.Ack.Point
    /// lies beyond it and the peer needs a FORWARD-TSN. (A chunk the peer acknowledged there would have moved the
    /// cumulative ack, so checking the first chunk is enough.)
    var needsForwardTSN: Bool { items.first?.state == .abandoned }

    /// What abandoning chunks marked for retransmission did.
    struct Abandonment: Sendable {
        /// Messages newly abandoned.
        var messages = 0
        /// Streams whose abandoned message was only partly sent: the send queue drops the rest.
        var unfinishedStreams: [StreamID] = []
    }

    /// RFC 3758 §4.1 TR4 and RFC 7496 §4.2: every chunk marked for retransmission whose rule says it must not go
    /// again (a retransmission sent now would arrive at `arrival`) is abandoned, with the rest of its message
    /// (§3.5 A3). Such chunks were marked by T3-rtx or fast retransmit, so congestion control has already reacted
    /// to their loss (§3.5 F5).
    mutating func abandonMarkedChunks(arrival: SCTPTime) -> Abandonment {
        var result = Abandonment()
        var index = 0
        while index < retransmissions.count {
            let value = retransmissions[index]
            index += 1
            guard value >= firstUnwrapped else { continue }
            let i = firstUnwrapped.distance(to: value)
            guard items[i].isMarkedForRetransmission, items[i].state == .outstanding,
                items[i].abandonment.abandonsRetransmission(
                    transmissions: items[i].transmissions, arrival: arrival)
            else { continue }
            abandonMessage(containing: i, into: &result)
        }
        if result.messages > 0 { _ = firstRetransmissionIndexPurging() }
        return result
    }

    /// RFC 3758 §3.5 C4: the FORWARD-TSN for the Advanced.Peer.Ack.Point, with the highest abandoned SSN of each
    /// ordered stream skipped ("Each stream SHOULD only be reported once"). Unordered chunks get no entry (§3.2:
    /// "This field MUST NOT report TSN's corresponding to DATA chunks that are marked as unordered"). "If the total
    /// size of the FORWARD TSN does NOT fit in a single MTU, then the sender ... SHOULD lower the
    /// Advanced.Peer.Ack.Point to the last TSN that will fit": at most `maxStreams` entries. Nil when none is due.
    func makeForwardTSN(maxStreams: Int) -> ForwardTSNChunk? {
        guard needsForwardTSN else { return nil }
        var point = cumulativeTSNAck
        var skipped: [StreamID: SSN] = [:]
        for item in items {
            guard item.state == .abandoned || item.isAcked else { break }
            if item.state == .abandoned, !item.chunk.isUnordered {
                let id = item.chunk.streamID
                if let ssn = skipped[id] {
                    if item.chunk.ssn.isAfter(ssn) { skipped[id] = item.chunk.ssn }
                } else {
                    guard skipped.count < maxStreams else { break }
                    skipped[id] = item.chunk.ssn
                }
            }
            // As for `advancedPeerAckPoint`: never inside a message that is not abandoned.
            if item.state == .abandoned || item.chunk.isEnding { point = item.chunk.tsn }
        }
        let streams = skipped.map { ForwardTSNChunk.Stream(streamID: $0.key, ssn: $0.value) }
            .sorted { $0.streamID.rawValue < $1.streamID.rawValue }
        return ForwardTSNChunk(newCumulativeTSN: point, streams: streams)
    }

    /// Abandons the message chunk `i` belongs to: the fragments from its B to its E fragment that are still here and
    /// not acknowledged (RFC 3758 §3.5 A2: each is then "treated as being finally acked and no longer outstanding").
    private mutating func abandonMessage(containing i: Int, into result: inout Abandonment) {
        var first = i
        while first > 0, !items[first].chunk.isBeginning { first -= 1 }
        var last = i
        while !items[last].chunk.isEnding, last + 1 < items.count { last += 1 }
        for j in first...last where items[j].state == .outstanding {
            if items[j].isInFlight { removeFromFlight(at: j) }
            items[j].isMarkedForRetransmission = false
            items[j].isSuspended = false
            items[j].state = .abandoned
            unackedBytes -= items[j].size
            payloads[j] = ByteBuffer()
        }
        result.messages += 1
        if !items[last].chunk.isEnding { result.unfinishedStreams.append(items[last].chunk.streamID) }
    }

    // MARK: - Internals

    private func index(of tsn: TSN) -> Int? {
        let offset = firstUnwrapped.distance(to: unwrap(tsn))
        return offset >= 0 && offset < items.count ? offset : nil
    }

    /// `tsn` unwrapped near the cumulative TSN ack: within 2^31 of it.
    private func unwrap(_ tsn: TSN) -> UnwrappedTSN { UnwrappedTSN(tsn, near: firstUnwrapped.previous) }

    private mutating func accountIndex(for path: PathID) -> Int {
        if let p = paths.firstIndex(where: { $0.id == path }) { return p }
        paths.append(PathAccount(id: path))
        return paths.count - 1
    }

    /// The unwrapped lowest unacknowledged TSN last sent to `paths[p]`, purging stale entries.
    private mutating func lowestUnacked(_ p: Int) -> UnwrappedTSN? {
        let id = paths[p].id
        while let first = paths[p].sentTSNs.first {
            if first >= firstUnwrapped {
                let item = items[firstUnwrapped.distance(to: first)]
                if item.state == .outstanding && item.path == id { return first }
            }
            paths[p].sentTSNs.removeFirst()
        }
        return nil
    }

    private mutating func acknowledge(at i: Int, as state: ChunkState, now: SCTPTime, outcome: inout SackOutcome) {
        // Sent once (Karn): an acknowledgement of a chunk sent twice may be for either copy, and the earlier one may
        // have gone by another path than the one that timed out.
        if hasTimeoutEpisodes, items[i].isMarkedForRetransmission || items[i].isSuspended,
            items[i].timeoutEpisode != 0, items[i].transmissions == 1
        {
            let p = accountIndex(for: items[i].path)
            if paths[p].timeoutEpisode == items[i].timeoutEpisode {
                // Never retransmitted since the expiry marked it: the original arrived.
                paths[p].timeoutEvidence = max(paths[p].timeoutEvidence ?? .min, firstUnwrapped + i)
            }
        }
        if items[i].isInFlight { removeFromFlight(at: i) }
        items[i].isMarkedForRetransmission = false
        items[i].isSuspended = false
        items[i].state = state
        if state == .gapAcked {
            gapAckedCount += 1
            highestGapAcked = max(highestGapAcked, firstUnwrapped + i)
        }
        unackedBytes -= items[i].size
        let tsn = items[i].chunk.tsn
        let p = accountIndex(for: items[i].path)
        paths[p].highestAcked = max(paths[p].highestAcked, firstUnwrapped + i)
        paths[p].ack.bytesAcked += items[i].size
        paths[p].ack.highestNewlyAckedTSN = Self.later(paths[p].ack.highestNewlyAckedTSN, tsn)
        paths[p].ack.lowestNewlyAckedTSN = Self.earlier(paths[p].ack.lowestNewlyAckedTSN, tsn)
        // RFC 9260 §6.3.1 C5 (Karn): "RTT measurements MUST NOT be made using packets that were retransmitted".
        // The same ambiguity rules out a retransmitted chunk as proof that later-sent data arrived: its ack may be
        // for the original still queued on the path, and taking it as sent at the retransmission's time would
        // declare every retransmission sent just before lost, again and again (a retransmission storm).
        paths[p].delivered += items[i].size
        paths[p].deliveredTime = now
        if items[i].transmissions == 1 {
            if let sample = paths[p].sample, sample.sentAt > items[i].sentAt {
                // An earlier-sent chunk: the later one measures the longer, more recent interval.
            } else {
                paths[p].sample = (items[i].delivery, items[i].sentAt)
            }
            paths[p].ack.rttSample = now - items[i].sentAt
            paths[p].ack.latestNewlyAckedSendTime = max(
                paths[p].ack.latestNewlyAckedSendTime ?? items[i].sentAt, items[i].sentAt)
        }
        outcome.highestNewlyAckedTSN = Self.later(outcome.highestNewlyAckedTSN, tsn)
        outcome.lowestNewlyAckedTSN = Self.earlier(outcome.lowestNewlyAckedTSN, tsn)
    }

    // MARK: - Delivery rate

    /// The destination has less to send than its window allows (the send queue ran dry): samples from chunks sent
    /// until what is in flight now is delivered are marked application-limited (§3.4).
    mutating func markAppLimited(on path: PathID) {
        let p = accountIndex(for: path)
        paths[p].appLimitedUntil = max(paths[p].delivered + paths[p].flightSize, 1)
    }

    /// Whether samples taken now on `path` would be application-limited.
    func isAppLimited(on path: PathID) -> Bool {
        paths.first(where: { $0.id == path }).map { $0.appLimitedUntil != 0 } ?? false
    }

    /// §3.2: the destination's state for a chunk sent now. With nothing in flight there the intervals start now,
    /// so an idle period never counts as delivery time.
    private mutating func deliverySnapshot(_ p: Int, now: SCTPTime) -> DeliverySnapshot {
        if paths[p].flightSize == 0 {
            paths[p].firstSentTime = now
            paths[p].deliveredTime = now
        }
        return DeliverySnapshot(
            delivered: paths[p].delivered, deliveredTime: paths[p].deliveredTime,
            firstSentTime: paths[p].firstSentTime, isAppLimited: paths[p].appLimitedUntil != 0)
    }

    /// §3.3: the rate sample of the SACK just processed on `paths[p]`, from its most recently sent newly
    /// acknowledged chunk; nil when it acknowledged none sent only once there.
    private mutating func takeRateSample(_ p: Int) -> RateSample? {
        if paths[p].appLimitedUntil != 0 && paths[p].delivered > paths[p].appLimitedUntil {
            paths[p].appLimitedUntil = 0
        }
        guard let (snapshot, sentAt) = paths[p].sample else { return nil }
        paths[p].sample = nil
        paths[p].firstSentTime = sentAt
        let sendElapsed = sentAt - snapshot.firstSentTime
        let ackElapsed = paths[p].deliveredTime - snapshot.deliveredTime
        return RateSample(
            deliveredBytes: paths[p].delivered - snapshot.delivered, interval: max(sendElapsed, ackElapsed),
            priorDelivered: snapshot.delivered, isAppLimited: snapshot.isAppLimited,
            rtt: paths[p].deliveredTime - sentAt)
    }

    private mutating func highestAcked(on path: PathID) -> UnwrappedTSN { paths[accountIndex(for: path)].highestAcked }

    private static func later(_ a: TSN?, _ b: TSN) -> TSN { a.map { $0.isAfter(b) ? $0 : b } ?? b }
    private static func earlier(_ a: TSN?, _ b: TSN) -> TSN { a.map { $0.isBefore(b) ? $0 : b } ?? b }

    private mutating func removeFromFlight(at i: Int) {
        items[i].isInFlight = false
        let size = items[i].size
        totalFlightSize -= size
        let p = accountIndex(for: items[i].path)
        paths[p].flightSize -= size
    }

    /// Chunks in `range` acknowledged by an earlier gap block but not by this SACK were reneged: they count as
    /// unacknowledged again, out of flight, and go again on T3-rtx expiry or after fresh miss indications.
    private mutating func revertReneged(in range: Range<Int>) {
        for i in range where items[i].state == .gapAcked {
            items[i].state = .outstanding
            items[i].isInFlight = false
            items[i].missIndications = 0
            gapAckedCount -= 1
            unackedBytes += items[i].size
            let p = accountIndex(for: items[i].path)
            insertSorted(firstUnwrapped + i, into: &paths[p].sentTSNs)
        }
    }

    /// RFC 9260 §7.2.4: "Miss indications SHOULD follow the HTNA (Highest TSN Newly Acknowledged) algorithm. For
    /// each incoming SACK, miss indications are incremented only for missing TSNs prior to the highest TSN newly
    /// acknowledged in the SACK. [...] If an endpoint is in Fast Recovery and a SACK arrives that advances the
    /// Cumulative TSN Ack Point, the miss indications are incremented for all TSNs reported missing in the SACK."
    /// With SFR, "highest newly acknowledged" is taken per destination. A chunk is fast-retransmitted at most once;
    /// later losses of it are left to T3-rtx, as in usrsctp and dcsctp.
    private mutating func countMissIndications(
        upTo highestReported: Int, sack: SackInfo, cumulativeAdvanced: Bool, isInFastRecovery: (PathID) -> Bool,
        outcome: inout SackOutcome
    ) {
        guard highestReported > 0 else { return }
        var marked = false
        switch missIndicationWalk {
        case .everyChunk:
            for i in 0..<highestReported {
                marked =
                    countMissIndication(
                        at: i, sack: sack, cumulativeAdvanced: cumulativeAdvanced, isInFastRecovery: isInFastRecovery,
                        outcome: &outcome) || marked
            }
        case .holes:
            // Every chunk inside a block was acknowledged above (or abandoned) and no renege revert reaches back
            // into a block, so only the holes between blocks can hold outstanding chunks. Blocks may come in any
            // order and overlap (a peer's SACK is input): sort them, then walk what no block covers.
            if zip(reportedBlocks, reportedBlocks.dropFirst()).contains(where: { $0.lowerBound > $1.lowerBound }) {
                reportedBlocks.sort { $0.lowerBound < $1.lowerBound }
            }
            var i = 0
            for block in reportedBlocks {
                while i < block.lowerBound {
                    marked =
                        countMissIndication(
                            at: i, sack: sack, cumulativeAdvanced: cumulativeAdvanced,
                            isInFastRecovery: isInFastRecovery, outcome: &outcome) || marked
                    i += 1
                }
                i = max(i, block.upperBound)
            }
            assert(i == highestReported, "the blocks end at the highest reported chunk")
        }
        if marked { sortRetransmissions() }
    }

    /// The miss-indication rule of `countMissIndications` for the chunk at `i`; true if it was marked for fast
    /// retransmission.
    private mutating func countMissIndication(
        at i: Int, sack: SackInfo, cumulativeAdvanced: Bool, isInFastRecovery: (PathID) -> Bool,
        outcome: inout SackOutcome
    ) -> Bool {
        guard items[i].state == .outstanding && !items[i].isMarkedForRetransmission else { return false }
        let tsn = items[i].chunk.tsn
        let path = items[i].path
        let highest: TSN?
        let lowestNew: TSN?
        if policy.splitFastRetransmit {
            let p = accountIndex(for: path)
            highest = paths[p].ack.highestNewlyAckedTSN
            lowestNew = paths[p].ack.lowestNewlyAckedTSN
        } else {
            highest = outcome.highestNewlyAckedTSN
            lowestNew = outcome.lowestNewlyAckedTSN
        }
        var increment = 0
        let isRetransmission = items[i].transmissions > 1
        if isRetransmission {
            // A retransmission can be lost too. RFC 9260 §7.2.4 fast-retransmits a TSN only once and leaves a
            // lost retransmission to T3-rtx, which stalls every stream for an RTO. Instead, as RACK does for
            // TCP (RFC 8985), a retransmission counts as missing when data sent after it on the same path is
            // acknowledged, whatever its TSN.
            guard let latest = paths[accountIndex(for: path)].ack.latestNewlyAckedSendTime,
                items[i].sentAt < latest
            else { return false }
            increment = 1
        } else if cumulativeAdvanced && isInFastRecovery(path)
            && (!policy.splitFastRetransmit || firstUnwrapped + i < highestAcked(on: path))
        {
            // With SFR the rule is taken per destination, like the rest: a chunk sent here counts as reported
            // missing only below a chunk sent here and acknowledged. Otherwise every chunk still in flight on a
            // long path lies below TSNs the short path got acknowledged, and each cumulative ack advance during
            // fast recovery would push the whole flight of the long path to fast retransmission.
            increment = 1
        } else if let highest, tsn.isBefore(highest) {
            increment = 1
        }
        guard increment > 0 else { return false }
        if policy.delayedAckForCMT, sack.packetsSinceLastSack > 1, let lowestNew, tsn.isBefore(lowestNew) {
            increment = sack.packetsSinceLastSack
        }
        items[i].missIndications += increment
        if items[i].missIndications >= policy.threshold && (!items[i].wasFastRetransmitted || isRetransmission) {
            items[i].wasFastRetransmitted = true
            if items[i].isInFlight { outcome.fastRetransmitBytes += items[i].size }
            markForRetransmission(at: i)
            paths[accountIndex(for: path)].ack.hasNewFastRetransmits = true
            return true
        }
        return false
    }

    private mutating func markForRetransmission(at i: Int) {
        if items[i].isInFlight { removeFromFlight(at: i) }
        items[i].isSuspended = false
        guard !items[i].isMarkedForRetransmission else { return }
        items[i].isMarkedForRetransmission = true
        retransmissions.append(firstUnwrapped + i)
    }

    /// Keeps the retransmission list ascending after appends that may be out of order; drops stale entries.
    private mutating func sortRetransmissions() {
        var list = Array(retransmissions.filter { $0 >= firstUnwrapped })
        list.sort()
        var deduplicated = Deque<UnwrappedTSN>()
        deduplicated.reserveCapacity(list.count)
        for value in list where deduplicated.last != value { deduplicated.append(value) }
        retransmissions = deduplicated
    }

    private mutating func firstRetransmissionIndexPurging() -> Int? {
        while let first = retransmissions.first {
            if first >= firstUnwrapped {
                let i = firstUnwrapped.distance(to: first)
                if items[i].isMarkedForRetransmission && items[i].state == .outstanding { return i }
            }
            retransmissions.removeFirst()
        }
        return nil
    }

    private func firstRetransmissionIndex() -> Int? {
        for value in retransmissions where value >= firstUnwrapped {
            let i = firstUnwrapped.distance(to: value)
            if items[i].isMarkedForRetransmission && items[i].state == .outstanding { return i }
        }
        return nil
    }

    private func insertSorted(_ value: UnwrappedTSN, into deque: inout Deque<UnwrappedTSN>) {
        var i = deque.count
        while i > 0 && deque[i - 1] > value { i -= 1 }
        deque.insert(value, at: i)
    }
}
