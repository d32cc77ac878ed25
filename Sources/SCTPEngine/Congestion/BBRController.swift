/// A model-based controller in the style of BBR (Cardwell et al., "BBR: Congestion-Based Congestion Control",
/// ACM Queue 14(5), 2016; draft-cardwell-iccrg-bbr-congestion-control-00): it estimates the destination's
/// bottleneck bandwidth (the largest delivery rate of the last ten round trips) and its propagation round trip
/// (the smallest RTT of the last ten seconds), paces new data at a gain times that bandwidth and keeps about two
/// bandwidth-delay products in flight, so the bottleneck's queue stays short instead of full. Losses do not shrink
/// the model, only bound what is in flight while they are repaired (so random loss costs little). A queue that
/// stands through a minimum RTT does: cwnd is held to one BDP while it stands, and a path whose rate dropped is
/// followed within a few round trips instead of once the filter forgets the old rate (`checkStandingQueue`).
/// A queue that stands while this path keeps at most one BDP in flight is another flow's, and one that fills the
/// bottleneck until it drops packets (a loss-based flow, such as a cubic TCP download) does not yield to a model
/// that holds back: the path then competes as that flow does, its window growing by a packet per round trip and
/// halved on loss, until a probe-RTT finds the queue gone (`Competition`).
///
/// Modes: startup doubles the sending rate per round trip until the bandwidth stops growing by a quarter for three
/// rounds, drain empties the queue startup built, probe-bandwidth cycles its pacing gain through 1.25, 0.75 and six
/// rounds of 1 to find more bandwidth and then give back the queue it made, and probe-RTT drops to half a
/// bandwidth-delay product (BBRv2's figure; BBRv1's four packets idled the path) for 200 ms and a round trip when
/// the minimum RTT has not been refreshed for ten seconds.
///
/// RFC 9260 §7.2 does not apply here but for its bounds: at least 4 × MTU stays allowed (the minimum window of
/// §7.2.3 after fast retransmit), one MTU after a T3-rtx expiry (§7.2.3), and the window is never larger than the
/// model asks. The idle decay of §7.2.1 ("SHOULD") is replaced by pacing: a path back from idle sends at the
/// model's rate, not in one burst of cwnd.
struct BBRController: Sendable {
    enum Mode: Sendable, Equatable {
        case startup
        case drain
        case probeBandwidth
        case probeRTT
    }

    // MARK: - Parameters (draft-cardwell-iccrg-bbr-congestion-control-00 §4.2)

    /// 2/ln 2: the smallest gain that doubles the delivery rate each round trip in startup.
    static let highGain = 2.885
    static let cwndGain = 2.0
    static let pacingGainCycle: [Double] = [1.25, 0.75, 1, 1, 1, 1, 1, 1]
    /// The bandwidth filter's window, in round trips.
    static let bandwidthWindowRounds: UInt64 = 10
    static let minRTTWindow = SCTPDuration.seconds(10)
    static let probeRTTDuration = SCTPDuration.milliseconds(200)
    /// A round trip within this much of the minimum restarts the minimum's age (a sixteenth of it, at least 1 ms:
    /// delayed acknowledgements and packet spacing make an empty path's samples vary by about that much).
    static func nearMinimumSlack(_ minRTT: SCTPDuration) -> SCTPDuration {
        max(minRTT / 16, .milliseconds(1))
    }
    /// Pace 1 % below the estimate so a queue the estimate's noise builds drains by itself.
    static let pacingMargin = 0.99
    /// Round trips a standing queue is answered by cutting the estimate before it is taken as someone else's.
    static let queueReactionRounds: UInt64 = 4
    /// The least queueing delay the standing-queue check counts, and its shortest window.
    static let queueAllowanceFloor = SCTPDuration.milliseconds(5)
    /// Below this fraction of the estimate, what a window of standing queue delivered is the path's new rate.
    static let rateDropFraction = 0.8
    /// In the window after such a cut, with the queue still standing, below this fraction of the cut estimate what
    /// the window delivered replaces it once more.
    static let refinementFraction = 0.95
    /// While competing, new data is paced at this many windows per smoothed round trip (Linux paces its
    /// loss-based controllers at 1.2 in congestion avoidance), so the pacer never holds the window back.
    static let competingPacingGain = 1.2
    /// Drain ends after this many round trips even if the flight is still above a BDP: what is left of the queue
    /// is then another flow's, and draining on would only shrink the estimate (pacing at a third of it delivers a
    /// third of it) until the path carries nothing.
    static let drainMaxRounds: UInt64 = 3

    /// The path's answer to a loss-based flow in its bottleneck: a window driven by loss, as that flow's is.
    struct Competition: Sendable {
        /// The propagation round trip from before the foreign queue, which a probe-RTT must see again to end it.
        var minRTT: SCTPDuration
        /// Bytes acknowledged toward the next one-packet increase of the window (RFC 9260 §7.2.2's
        /// partial_bytes_acked).
        var partialBytesAcked = 0
    }

    var window: CongestionWindow
    private(set) var mode = Mode.startup
    private var bandwidthFilter = WindowedMaxFilter(window: BBRController.bandwidthWindowRounds)
    /// The propagation round-trip estimate and when it was last set.
    private(set) var minRTT: SCTPDuration?
    private var minRTTStamp = SCTPTime.zero
    private(set) var roundCount: UInt64 = 0
    private var nextRoundDelivered = 0
    private var isRoundStart = false
    // The standing-queue check's window: its start, smallest RTT and largest delivery rate, and whether it was all
    // in probe-bandwidth (startup builds a queue on purpose, drain and probe-RTT empty it).
    private var queueWindowStart: SCTPTime?
    private var queueWindowMinRTT: SCTPDuration?
    private var queueWindowMaxRate = 0.0
    private var queueWindowInProbeBandwidth = false
    private var queueWindowMaxFlight = 0
    /// The round a queue began to stand in, while it stands.
    private(set) var standingQueueSince: UInt64?
    /// The window when the queue began to stand, which competing starts from.
    private var cwndBeforeStandingQueue = 0
    /// Round trips since the queue began to stand in which a window of it had no more than a BDP of this path's in
    /// flight, and the last of them.
    private(set) var foreignQueueRounds = 0
    /// The last window of standing queue cut the estimate to its delivery: the next one may refine it.
    private var refinesCutEstimate = false
    private var lastForeignQueueRound: UInt64?
    /// Set while the path competes with a loss-based flow.
    private(set) var competition: Competition?
    /// The smallest RTT probe-RTT saw, which decides whether competing ends.
    private var probeRTTMinRTT: SCTPDuration?
    /// The RTT samples smoothed (RFC 6298's 1/8), for the pacing rate while competing.
    private var smoothedRTT: SCTPDuration?
    /// The destination's delivered total as of the last ack.
    private var delivered = 0
    // Startup's exit: the bandwidth stopped growing.
    private(set) var hasFilledPipe = false
    private var fullBandwidth = 0.0
    private var fullBandwidthRounds = 0
    // Probe-bandwidth's gain cycle.
    private var cycleIndex = 0
    private var cycleStamp = SCTPTime.zero
    /// The round drain began in.
    private var drainStartRound: UInt64 = 0
    // Probe-RTT.
    private var probeRTTDoneStamp: SCTPTime?
    private var probeRTTRoundDone = false
    /// The window before a loss, a T3-rtx expiry or probe-RTT cut it, restored afterwards.
    private var priorCwnd = 0
    /// The first round of fast recovery: the window only replaces what was delivered (packet conservation).
    private var isConservingPackets = false
    /// A T3-rtx expiry cut the window to one MTU; the next advance of the ack point restores it.
    private var isRecoveringFromTimeout = false
    private(set) var pacingGain = BBRController.highGain
    private var cwndGain = BBRController.highGain
    /// Bytes per second new data is paced at; nil before the first RTT sample (the initial window alone limits).
    private(set) var pacingRate: Double?

    init(mtu: Int) {
        window = CongestionWindow(mtu: mtu)
    }

    /// The bottleneck bandwidth estimate in bytes per second; 0 before the first sample.
    var bandwidth: Double { bandwidthFilter.value }
    var cwnd: Int { window.cwnd }
    /// The mode, or the answer to a standing queue that drives the window now.
    var phase: SCTPCongestionPhase {
        if competition != nil && mode != .probeRTT { return .competing }
        switch mode {
        case .startup: return .startup
        case .drain: return .drain
        case .probeBandwidth: return standingQueueSince != nil ? .queueHeld : .probeBandwidth
        case .probeRTT: return .probeRTT
        }
    }
    var isInFastRecovery: Bool { window.isInFastRecovery }
    var mtu: Int {
        get { window.mtu }
        set { window.mtu = newValue }
    }

    /// The bandwidth-delay product times `gain`, in bytes; nil while either estimate is missing.
    func bdp(gain: Double) -> Int? {
        guard let minRTT, bandwidth > 0 else { return nil }
        return Int(gain * bandwidth * minRTT.seconds)
    }

    private var minimumWindow: Int { 4 * window.mtu }
    /// Probe-RTT's window: half a BDP empties the bottleneck's queue and still keeps the path half busy.
    private var probeRTTWindow: Int { max(minimumWindow, bdp(gain: 0.5) ?? 0) }

    // MARK: - Acks

    /// One SACK's news for this destination: refresh the model, move between modes, then set the pacing rate and
    /// the window from the model.
    mutating func handleAck(_ ack: CongestionAck) {
        delivered = ack.delivered
        if let rtt = ack.rateSample?.rtt ?? ack.rttSample, rtt > .zero {
            smoothedRTT = smoothedRTT.map { $0 - $0 / 8 + rtt / 8 } ?? rtt
        }
        endRecovery(ack)
        updateRound(ack)
        updateBandwidth(ack)
        checkStandingQueue(ack)
        checkFullPipe(ack)
        let minRTTExpired = updateMinRTT(ack)
        if mode == .startup && hasFilledPipe { enterDrain() }
        if mode == .drain, let bdp = bdp(gain: 1),
            ack.flightSize <= bdp || roundCount - drainStartRound >= Self.drainMaxRounds
        {
            enterProbeBandwidth(now: ack.now)
        }
        if mode == .probeBandwidth { advanceCycle(ack) }
        if minRTTExpired && mode != .probeRTT { enterProbeRTT() }
        if mode == .probeRTT { handleProbeRTT(ack) }
        setPacingRate()
        setCwnd(ack)
    }

    /// RFC 9260 §7.2.4: fast recovery ends at its exit point; a window cut by the loss or by T3 comes back.
    private mutating func endRecovery(_ ack: CongestionAck) {
        if let exit = window.fastRecoveryExitPoint, ack.ackPoint.isAtOrAfter(exit) {
            window.fastRecoveryExitPoint = nil
            isConservingPackets = false
            window.cwnd = max(window.cwnd, priorCwnd)
        }
        if isRecoveringFromTimeout && ack.ackPointAdvanced && ack.bytesAcked > 0 {
            isRecoveringFromTimeout = false
            isConservingPackets = false
            window.cwnd = max(window.cwnd, priorCwnd)
        }
    }

    /// A round trip ends when a chunk sent after the previous round's end is acknowledged.
    private mutating func updateRound(_ ack: CongestionAck) {
        isRoundStart = false
        guard let sample = ack.rateSample, sample.priorDelivered >= nextRoundDelivered else { return }
        nextRoundDelivered = ack.delivered
        roundCount += 1
        isRoundStart = true
        isConservingPackets = false
    }

    /// Application-limited samples only raise the estimate: a sender with too little data proves no ceiling.
    private mutating func updateBandwidth(_ ack: CongestionAck) {
        guard let sample = ack.rateSample, sample.interval > .zero else { return }
        // A sample over less than the minimum RTT measures a burst (a token-bucket shaper lets one through at line
        // rate), not the path: draft-cheng-iccrg-delivery-rate-estimation §3.3 discards it.
        if let minRTT, sample.interval < minRTT { return }
        let rate = sample.bytesPerSecond
        queueWindowMaxRate = max(queueWindowMaxRate, rate)
        if !sample.isAppLimited || rate >= bandwidth { bandwidthFilter.update(rate, round: roundCount) }
    }

    /// A queue that stood through a whole minimum RTT (at least 5 ms: every RTT sample in it more than a quarter
    /// of the propagation round trip, at least 5 ms, above it) while the model was in probe-bandwidth is not the
    /// 1.25 phase's quarter BDP, which the 0.75 phase drains. Either the estimate runs a little above what the
    /// path delivers (the filter holding a burst's sample, acks compressed on the way back) and cwnd's 2 × BDP keeps
    /// up to a BDP standing: while the queue stands cwnd is held to one BDP (BBRv2's inflight_lo, taken on delay
    /// instead of loss), which drains it. Or the path's rate dropped (the window delivered less than 0.8 of the
    /// estimate) and the filter would hold the old rate for ten round trips: the estimate drops to what the window
    /// delivered. Neither feeds on itself (pacing stays at the estimate, so a host that delays acks costs a smaller
    /// window, not a smaller estimate each window). A queue that stays through `queueReactionRounds` round trips is
    /// not this path's doing (a loss-based flow keeps the bottleneck full): its round trip becomes the propagation
    /// estimate, as probe-RTT would take it after ten seconds, and the model competes from there instead of
    /// yielding the bottleneck.
    private mutating func checkStandingQueue(_ ack: CongestionAck) {
        if mode != .probeBandwidth { queueWindowInProbeBandwidth = false }
        if let rtt = ack.rateSample?.rtt ?? ack.rttSample, rtt > .zero {
            queueWindowMinRTT = min(queueWindowMinRTT ?? rtt, rtt)
        }
        queueWindowMaxFlight = max(queueWindowMaxFlight, ack.flightSizeBeforeAck)
        guard let minRTT, competition == nil else { return }
        guard let start = queueWindowStart, ack.now - start >= max(minRTT, Self.queueAllowanceFloor) else {
            if queueWindowStart == nil { startQueueWindow(now: ack.now) }
            return
        }
        // A window without an RTT sample (a path slowed to a few packets per round trip) says nothing: it goes on.
        guard queueWindowMinRTT != nil else { return }
        let (windowMin, windowRate, windowMaxFlight, inProbeBandwidth) =
            (queueWindowMinRTT, queueWindowMaxRate, queueWindowMaxFlight, queueWindowInProbeBandwidth)
        startQueueWindow(now: ack.now)
        guard inProbeBandwidth, let windowMin, windowMin > minRTT + queueAllowance(minRTT: minRTT) else {
            standingQueueSince = nil
            foreignQueueRounds = 0
            lastForeignQueueRound = nil
            refinesCutEstimate = false
            return
        }
        if standingQueueSince == nil {
            standingQueueSince = roundCount
            cwndBeforeStandingQueue = window.cwnd
        }
        // The windows after a cut: the cut took the largest rate of a window the drop fell inside, and each rate
        // sample spans a round trip, so the next window or two may still carry deliveries from before the drop.
        // While each window delivers clearly under the estimate and the queue stands, its rate is the path's and
        // replaces the estimate again; an estimate left between the old rate and the new one would keep cwnd's BDP
        // above what the path drains, and that queue would stand as a foreign one does (the path competing with
        // itself). The first window at the estimate ends it: a competing flow's slow growth is counted as before.
        if refinesCutEstimate {
            refinesCutEstimate = false
            if windowRate > 0 && windowRate < Self.refinementFraction * bandwidth {
                bandwidthFilter.reset()
                bandwidthFilter.update(windowRate, round: roundCount)
                refinesCutEstimate = true
                return
            }
        }
        // At most a BDP (and the quantization budget) of this path's own was in flight through the whole window, so
        // the queue is not this path's: it was held to one BDP and it stayed. (A window after the estimate was cut
        // may still hold more than the new BDP; it neither counts nor starts the count over.)
        if windowMaxFlight <= (bdp(gain: 1) ?? 0) + quantizationBudget + window.mtu,
            lastForeignQueueRound != roundCount
        {
            lastForeignQueueRound = roundCount
            foreignQueueRounds += 1
            if foreignQueueRounds >= Self.queueReactionRounds {
                enterCompetition(minRTT: minRTT)
                return
            }
        }
        if windowRate > 0 && windowRate < Self.rateDropFraction * bandwidth {
            bandwidthFilter.reset()
            bandwidthFilter.update(windowRate, round: roundCount)
            refinesCutEstimate = true
        }
    }

    /// The queueing delay the check ignores: a quarter of the propagation round trip, at least 5 ms, and at least
    /// what the quantization budget (and the packet beyond cwnd) queues at the estimated rate.
    private func queueAllowance(minRTT: SCTPDuration) -> SCTPDuration {
        var allowance = max(minRTT / 4, Self.queueAllowanceFloor)
        if bandwidth > 0 {
            let budget = Double(quantizationBudget + window.mtu) / bandwidth
            allowance = max(allowance, .nanoseconds(Int64(budget * 1e9)))
        }
        return allowance
    }

    private mutating func startQueueWindow(now: SCTPTime) {
        queueWindowStart = now
        queueWindowMinRTT = nil
        queueWindowMaxRate = 0
        queueWindowMaxFlight = 0
        queueWindowInProbeBandwidth = mode == .probeBandwidth
    }

    /// Startup's end: three round trips without 25 % more bandwidth.
    private mutating func checkFullPipe(_ ack: CongestionAck) {
        guard !hasFilledPipe, isRoundStart, let sample = ack.rateSample, !sample.isAppLimited else { return }
        if bandwidth >= fullBandwidth * 1.25 {
            fullBandwidth = bandwidth
            fullBandwidthRounds = 0
            return
        }
        fullBandwidthRounds += 1
        if fullBandwidthRounds >= 3 { hasFilledPipe = true }
    }

    /// Takes the ack's RTT into the minimum; returns true when the minimum is older than its window.
    private mutating func updateMinRTT(_ ack: CongestionAck) -> Bool {
        let rtt = ack.rateSample?.rtt ?? ack.rttSample
        let expired = minRTT != nil && ack.now > minRTTStamp + Self.minRTTWindow
        // While competing every sample carries the other flow's queue: the minimum stays the propagation round trip
        // and probe-RTT decides whether the queue is gone.
        if let rtt, rtt > .zero, minRTT.map({ rtt <= $0 }) ?? true || (expired && competition == nil) {
            minRTT = rtt
            minRTTStamp = ack.now
        } else if let rtt, let minRTT, competition == nil, rtt <= minRTT + Self.nearMinimumSlack(minRTT) {
            // The path's queue was (all but) empty on this round trip: what probe-RTT would drain to see is seen.
            // The minimum keeps its value and its age restarts, so a path that keeps its own queue short does
            // not halve its window for 200 ms every 10 s (about 1 % of its rate).
            minRTTStamp = ack.now
        }
        return expired
    }

    // MARK: - Modes

    private mutating func enterDrain() {
        mode = .drain
        drainStartRound = roundCount
        pacingGain = 1 / Self.highGain
        cwndGain = Self.highGain
    }

    private mutating func enterProbeBandwidth(now: SCTPTime) {
        mode = .probeBandwidth
        cwndGain = Self.cwndGain
        // Start past the probing phase: right after drain the queue is empty and the estimate fresh.
        cycleIndex = 2
        cycleStamp = now
        pacingGain = Self.pacingGainCycle[cycleIndex]
    }

    /// The gain cycle moves on after a minimum RTT; the 1.25 phase also waits until 1.25 BDP is in flight (or a
    /// loss shows the queue is full), the 0.75 phase ends early once the flight is down to one BDP.
    private mutating func advanceCycle(_ ack: CongestionAck) {
        guard let minRTT else { return }
        let isFullLength = ack.now - cycleStamp > minRTT
        let next: Bool
        if pacingGain > 1 {
            next = isFullLength && (ack.flightSizeBeforeAck >= (bdp(gain: pacingGain) ?? 0) || window.isInFastRecovery)
        } else if pacingGain < 1 {
            next = isFullLength || ack.flightSizeBeforeAck <= (bdp(gain: 1) ?? 0)
        } else {
            next = isFullLength
        }
        guard next else { return }
        cycleIndex = (cycleIndex + 1) % Self.pacingGainCycle.count
        cycleStamp = ack.now
        pacingGain = Self.pacingGainCycle[cycleIndex]
    }

    private mutating func enterProbeRTT() {
        saveCwnd()
        mode = .probeRTT
        pacingGain = 1
        cwndGain = 1
        probeRTTDoneStamp = nil
        probeRTTMinRTT = nil
    }

    /// A queue stood through `queueReactionRounds` round trips with no more than a BDP of this path's in flight:
    /// it is another flow's, one that keeps the bottleneck full whatever this path sends. Yielding would leave it
    /// the whole bottleneck; competing as it does (a window grown by a packet per round trip and halved on loss,
    /// RFC 9260 §7.2's rules) shares it. The window starts where it was before the queue stood.
    private mutating func enterCompetition(minRTT: SCTPDuration) {
        competition = Competition(minRTT: minRTT)
        standingQueueSince = nil
        foreignQueueRounds = 0
        lastForeignQueueRound = nil
        window.cwnd = max(window.cwnd, cwndBeforeStandingQueue)
    }

    /// Probe-RTT holds half a BDP in flight for 200 ms and a full round trip, then takes the RTT it saw as the new
    /// minimum and goes back to where it was.
    private mutating func handleProbeRTT(_ ack: CongestionAck) {
        if let rtt = ack.rateSample?.rtt ?? ack.rttSample, rtt > .zero {
            probeRTTMinRTT = min(probeRTTMinRTT ?? rtt, rtt)
        }
        if probeRTTDoneStamp == nil {
            guard ack.flightSize <= probeRTTWindow else { return }
            probeRTTDoneStamp = ack.now + Self.probeRTTDuration
            probeRTTRoundDone = false
            nextRoundDelivered = ack.delivered
            return
        }
        if isRoundStart { probeRTTRoundDone = true }
        guard probeRTTRoundDone, let done = probeRTTDoneStamp, ack.now > done else { return }
        minRTTStamp = ack.now
        window.cwnd = max(window.cwnd, priorCwnd)
        // The queue drained with this path at half a BDP: it was this path's own, the other flow is gone.
        if let competition, let seen = probeRTTMinRTT,
            seen <= competition.minRTT + queueAllowance(minRTT: competition.minRTT)
        {
            self.competition = nil
            window.cwnd = min(window.cwnd, (bdp(gain: 1) ?? 0) + quantizationBudget)
        }
        if hasFilledPipe {
            enterProbeBandwidth(now: ack.now)
        } else {
            mode = .startup
            pacingGain = Self.highGain
            cwndGain = Self.highGain
        }
    }

    // MARK: - Control outputs

    /// Pacing rate = gain × bandwidth; before the pipe is full it only rises, so a slow first sample does not
    /// throttle startup. Before any bandwidth sample: the initial window per minimum RTT, at startup's gain.
    private mutating func setPacingRate() {
        let rate: Double
        if bandwidth > 0 {
            rate = pacingGain * bandwidth * Self.pacingMargin
        } else if let minRTT, minRTT > .zero {
            rate = Self.highGain * Double(window.cwnd) / minRTT.seconds
        } else {
            return
        }
        // Never below one packet per 10 ms, so a collapsed estimate cannot stall a path behind its pacer.
        let floor = Double(window.mtu) * 100
        if competition != nil, mode != .probeRTT, let smoothedRTT, smoothedRTT > .zero {
            let windowRate = Self.competingPacingGain * Double(window.cwnd) / smoothedRTT.seconds
            pacingRate = max(floor, bandwidth * Self.pacingMargin, windowRate)
            return
        }
        if hasFilledPipe || rate > (pacingRate ?? 0) { pacingRate = max(rate, floor) }
    }

    /// The room above the model for delayed and aggregated acks and for sending in quanta: three packets, or three
    /// send quanta where the rate makes those larger. Without it a path whose round trip is mostly the receiver's
    /// processing (a fast link, a busy host) is held to 2 × a BDP measured at the fastest turnaround, a few dozen
    /// kilobytes, and moves in small bursts that cost a wake-up each (Linux's BBR adds the same budget).
    var quantizationBudget: Int {
        let quantum = pacingRate.map { SendRateBucket.sendQuantum(bytesPerSecond: $0, mtu: window.mtu) } ?? 0
        return 3 * (quantum > 2 * window.mtu ? quantum : window.mtu)
    }

    /// cwnd = cwnd gain × BDP (one BDP while a queue stands) plus the quantization budget; grown toward it by the
    /// bytes acknowledged, or only refilled to what was delivered in the first round of a recovery.
    private mutating func setCwnd(_ ack: CongestionAck) {
        if competition != nil, mode != .probeRTT {
            growCompetingWindow(ack)
            return
        }
        let gain = standingQueueSince != nil && mode == .probeBandwidth ? 1 : cwndGain
        let target = (bdp(gain: gain) ?? CongestionWindow.initialCwnd(mtu: window.mtu)) + quantizationBudget
        if isConservingPackets {
            window.cwnd = max(window.cwnd, ack.flightSize + ack.bytesAcked)
        } else if hasFilledPipe {
            window.cwnd = min(window.cwnd + ack.bytesAcked, target)
        } else if window.cwnd < target || delivered < CongestionWindow.initialCwnd(mtu: window.mtu) {
            window.cwnd += ack.bytesAcked
        }
        window.cwnd = max(window.cwnd, isRecoveringFromTimeout ? window.mtu : minimumWindow)
        if mode == .probeRTT { window.cwnd = min(window.cwnd, probeRTTWindow) }
        // Reported as ssthresh, so RTX-SSTHRESH sends retransmissions to the path with the largest pipe.
        if let bdp = bdp(gain: 1) { window.ssthresh = max(bdp, minimumWindow) }
    }

    /// RFC 9260 §7.2.2 while competing: one MTU more per window of bytes acknowledged, outside fast recovery.
    private mutating func growCompetingWindow(_ ack: CongestionAck) {
        guard var competition else { return }
        if !window.isInFastRecovery && !isRecoveringFromTimeout && ack.ackPointAdvanced {
            competition.partialBytesAcked += ack.bytesAcked
            if competition.partialBytesAcked >= window.cwnd {
                competition.partialBytesAcked -= window.cwnd
                window.cwnd += window.mtu
            }
        }
        self.competition = competition
        window.cwnd = max(window.cwnd, isRecoveringFromTimeout ? window.mtu : minimumWindow)
        if let bdp = bdp(gain: 1) { window.ssthresh = max(bdp, minimumWindow) }
    }

    private mutating func saveCwnd() {
        let inCut = window.isInFastRecovery || isRecoveringFromTimeout || mode == .probeRTT
        priorCwnd = inCut ? max(priorCwnd, window.cwnd) : window.cwnd
    }

    // MARK: - Losses

    /// A fast retransmit outside recovery: the window drops to what is still in flight plus one packet for the
    /// retransmission, and for a round trip grows only by what is delivered; the model is kept. Returns false if
    /// already in fast recovery (RFC 9260 §7.2.4: once per window).
    @discardableResult
    mutating func handleFastRetransmit(highestOutstandingTSN: TSN, flightSize: Int) -> Bool {
        guard !window.isInFastRecovery else { return false }
        if competition != nil && mode != .probeRTT {
            // RFC 9260 §7.2.3: ssthresh = max(cwnd/2, 4*MTU), cwnd = ssthresh; recovery ends at the exit point
            // with the window where the cut left it.
            window.fastRecoveryExitPoint = highestOutstandingTSN
            window.cwnd = max(window.cwnd / 2, minimumWindow)
            priorCwnd = window.cwnd
            competition?.partialBytesAcked = 0
            return true
        }
        saveCwnd()
        window.fastRecoveryExitPoint = highestOutstandingTSN
        isConservingPackets = true
        nextRoundDelivered = delivered
        window.cwnd = max(flightSize + window.mtu, minimumWindow)
        return true
    }

    /// RFC 9260 §7.2.3: cwnd = 1 MTU after a T3-rtx expiry; the window before it comes back with the next ack
    /// that advances the ack point.
    mutating func handleRetransmissionTimeout() {
        saveCwnd()
        if competition != nil && mode != .probeRTT { priorCwnd = max(priorCwnd / 2, minimumWindow) }
        window.fastRecoveryExitPoint = nil
        isRecoveringFromTimeout = true
        isConservingPackets = true
        window.cwnd = window.mtu
    }

    /// The T3-rtx expiry was spurious: the window as it was before it (`saved`), or as the next ack advancing the
    /// ack point would have restored it; fast recovery as it was. The model was never touched by the expiry.
    mutating func undoRetransmissionTimeout(to saved: CongestionWindow) {
        isRecoveringFromTimeout = false
        isConservingPackets = false
        window.fastRecoveryExitPoint = saved.fastRecoveryExitPoint
        window.cwnd = max(window.cwnd, saved.cwnd)
        // A competing window's saved value was halved for the recovery that is not needed.
        priorCwnd = max(priorCwnd, saved.cwnd)
    }

    /// Starts the model over, for a path back from inactive.
    mutating func reset() {
        self = BBRController(mtu: window.mtu)
    }

    /// RFC 9260 §6.1 B, as for the window-based controllers.
    func mayTransmit(flightSize: Int) -> Bool { flightSize < window.cwnd + window.mtu - 1 }
}
