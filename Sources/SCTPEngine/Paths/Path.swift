/// One destination of an association: where packets go and come from, whether it is reachable (RFC 9260 §8.2,
/// RFC 7829), its RTO, congestion window, heartbeat state and counters. Decisions that need every path (primary
/// choice, association failure) belong to the association.
struct Path: Sendable {
    /// Reachability of RFC 9260 §8.2 with RFC 7829's potentially-failed state between active and inactive.
    enum State: Sendable, Hashable {
        /// Not yet confirmed by a HEARTBEAT-ACK (RFC 9260 §5.4); no user data may be sent to it.
        case unconfirmed
        case active
        /// RFC 7829: the error count exceeded PFMR; use only if no active path remains, and probe it.
        case potentiallyFailed
        /// The error count exceeded Path.Max.Retrans.
        case inactive
    }

    /// The thresholds that govern state changes.
    struct Configuration: Sendable {
        /// Path.Max.Retrans (RFC 9260 §16: 5).
        var maxRetransmissions = 5
        /// PFMR of RFC 7829: the error count above which the path is potentially failed.
        var potentiallyFailedThreshold = 0
        var rto = RTOEstimator.Configuration()
        var congestionControl = PathCongestionControl.Algorithm.newReno
        /// HB.interval (RFC 9260 §16: 30 s).
        var heartbeatInterval: SCTPDuration = .seconds(30)

        init() {}
    }

    /// A state change for the association to act on (report it, pick another primary).
    enum StateChange: Sendable, Hashable {
        case becameActive
        case becamePotentiallyFailed
        case becameInactive
    }

    /// Bookkeeping of the HEARTBEAT in flight, if any.
    struct Heartbeat: Sendable {
        var lastSent: SCTPTime?
        /// The random nonce of the outstanding HEARTBEAT (RFC 9260 §8.3), checked against the HEARTBEAT-ACK.
        var nonce: UInt64?
        /// The nonce of the last one given up on unanswered (counted, or excused by acknowledged data), until the
        /// next one goes. Its answer, late, still proves the path and measures it: an answer that met a queue or a
        /// stalled peer must not leave the path potentially failed for another round trip. Older ones are not taken.
        var lateNonce: UInt64?
        /// Data sent here after the outstanding HEARTBEAT went was acknowledged, and no error was counted since:
        /// the path delivers, so the heartbeat's answer missing its RTO does not count against it.
        var dataAcknowledgedSinceSent = false
        var isOutstanding: Bool { nonce != nil }
    }

    /// Which of our addresses the peer's packets for this path arrive at: a peer with one address may reach a
    /// multihomed endpoint at any of them, and replies should leave from one it still reaches.
    struct ArrivalTracking: Sendable {
        /// A packet arrived at `localAddress` since the last stamp.
        var heardAtLocal = false
        /// When a packet last arrived at `localAddress` (stamped after input).
        var lastHeardAtLocal: SCTPTime?
        /// Another address of ours a packet arrived at since the last stamp.
        var elsewhere: SCTPSocketAddress?
        /// The address the path had before it followed the peer elsewhere; nil while it has not moved.
        var home: SCTPSocketAddress?
    }

    /// Traffic counters for metrics.
    struct Counters: Sendable {
        var bytesSent = 0
        var packetsSent = 0
        var bytesReceived = 0
        var packetsReceived = 0
        var retransmissions = 0
        var fastRetransmissions = 0
        var t3Expiries = 0
        /// T3-rtx expiries found spurious and undone (`Association.undoSpuriousTimeout`).
        var spuriousTimeouts = 0
        var heartbeatsSent = 0
    }

    let id: PathID
    var remoteAddress: SCTPSocketAddress
    /// The local address and port to send from; nil lets the driver pick.
    var localAddress: SCTPSocketAddress?
    let configuration: Configuration
    private(set) var state: State
    /// The destination's error counter of RFC 9260 §8.2.
    private(set) var errorCount = 0
    var rto: RTOEstimator
    var congestion: PathCongestionControl { didSet { refreshCongestionFigures() } }
    /// The controller's figures that are read for every packet, copied out after each change to it: read through
    /// the enum, each would copy the controller's whole payload (hundreds of bytes for BBR) every time.
    private(set) var cwnd = 0
    private(set) var ssthresh = 0
    private(set) var isInFastRecovery = false
    /// The controller's pacing rate in bytes per second; nil for a window-based controller.
    private(set) var pacingRate: Double?
    var heartbeat = Heartbeat()
    /// The window and RTO before the first T3-rtx expiry of the episode not yet decided spurious or genuine.
    private var stateBeforeTimeout: (window: CongestionWindow, rto: SCTPDuration)?
    /// The RTO estimator's last round-trip sample of this path (from a SACK or a HEARTBEAT-ACK), and when.
    private(set) var lastRoundTrip: (rtt: SCTPDuration, at: SCTPTime)?

    /// The smoothed RTT, or the last sample when that is lower: what placing sparse data compares. A path that
    /// measured slow once (a heartbeat that met a queue) and is measured again only by heartbeats would take a
    /// dozen samples to smooth the outlier away; its next normal sample counts at once.
    var recentRoundTrip: SCTPDuration? {
        guard let srtt = rto.srtt else { return nil }
        return lastRoundTrip.map { min($0.rtt, srtt) } ?? srtt
    }
    /// The path MTU: the largest SCTP packet (common header onward) we send here.
    private(set) var mtu: Int
    /// When DATA was last sent here, for the idle-cwnd rule of RFC 9260 §7.2.1.
    var lastDataSent: SCTPTime?
    /// Where the peer's packets for this path arrive, for `Association.followArrivalAddresses`.
    var arrival = ArrivalTracking()
    var counters = Counters()
    /// Backup or active, and the send-rate cap (`Association+PathPolicy.swift`).
    private(set) var policy = SCTPPathPolicy.default
    /// The cap's token bucket; nil for an uncapped path.
    private(set) var rateBucket: SendRateBucket?
    /// The congestion controller's pacing (BBR): a token bucket at its pacing rate, charged with the DATA sent;
    /// nil for a window-based controller or before the controller has a rate.
    private(set) var pacer: SendRateBucket?
    /// A backup path kept off data because a better path is reachable; set by `Association.refreshPathRoles`.
    var isStandby = false
    /// Bytes the last SACK newly acknowledged here while the path is in fast recovery. That many bytes of
    /// retransmissions may go beyond cwnd, so recovery keeps pace with delivery (packet conservation, as in PRR,
    /// RFC 6937) without flooding the path. Spent by `Association.sendDataPacket`, dropped at the end of `transmit`.
    var recoveryAllowance = 0

    init(
        id: PathID, remoteAddress: SCTPSocketAddress, localAddress: SCTPSocketAddress? = nil, mtu: Int,
        configuration: Configuration = Configuration(), isConfirmed: Bool = false
    ) {
        self.id = id
        self.remoteAddress = remoteAddress
        self.localAddress = localAddress
        self.configuration = configuration
        self.state = isConfirmed ? .active : .unconfirmed
        self.rto = RTOEstimator(configuration: configuration.rto)
        self.congestion = PathCongestionControl(configuration.congestionControl, mtu: mtu)
        self.mtu = mtu
        refreshCongestionFigures()  // didSet does not run in an initializer
    }

    private mutating func refreshCongestionFigures() {
        let figures = congestion.figures
        cwnd = figures.window.cwnd
        ssthresh = figures.window.ssthresh
        isInFastRecovery = figures.window.isInFastRecovery
        pacingRate = figures.pacingRate
    }

    // MARK: - Reachability

    /// True when user data may be sent here: active, or potentially failed as a last resort (the caller decides).
    var isActive: Bool { state == .active }
    var isConfirmed: Bool { state != .unconfirmed }
    /// Reachable and not a standby backup: the path may carry data.
    var carriesData: Bool { state == .active && !isStandby }
    /// False only while a capped path's bucket or a paced path's pacer is empty.
    var hasSendAllowance: Bool { (rateBucket?.hasTokens ?? true) && (pacer?.hasTokens ?? true) }

    /// Counts a T3-rtx expiry or an unanswered HEARTBEAT against the path (RFC 9260 §8.2) and moves it to
    /// potentially failed above PFMR (RFC 7829) or inactive above Path.Max.Retrans. Unconfirmed paths stay
    /// unconfirmed.
    mutating func recordError() -> StateChange? {
        errorCount += 1
        heartbeat.dataAcknowledgedSinceSent = false
        guard state != .unconfirmed else { return nil }
        if errorCount > configuration.maxRetransmissions {
            guard state != .inactive else { return nil }
            state = .inactive
            return .becameInactive
        }
        if errorCount > configuration.potentiallyFailedThreshold && state == .active {
            state = .potentiallyFailed
            return .becamePotentiallyFailed
        }
        return nil
    }

    /// RFC 9260 §8.2/§8.3: an acknowledgement of data sent here, or a HEARTBEAT-ACK, clears the error count and
    /// makes the path active again. A path leaving inactive starts over with the initial window.
    mutating func recordReachable() -> StateChange? {
        errorCount = 0
        switch state {
        case .active:
            return nil
        case .inactive:
            congestion.reset()
            pacer = nil
            state = .active
            return .becameActive
        case .unconfirmed, .potentiallyFailed:
            state = .active
            return .becameActive
        }
    }

    /// A HEARTBEAT-ACK with the right nonce confirmed the address (RFC 9260 §5.4).
    mutating func confirm() -> StateChange? {
        heartbeat.nonce = nil
        heartbeat.lateNonce = nil
        return recordReachable()
    }

    /// Feeds one round-trip sample to the RTO estimator.
    mutating func measureRoundTrip(_ rtt: SCTPDuration, now: SCTPTime) {
        rto.handleMeasurement(rtt)
        lastRoundTrip = (rtt, now)
    }

    // MARK: - Heartbeats

    /// RFC 9260 §8.3: heartbeats go every RTO + HB.interval (jitter is the caller's, from its seeded generator).
    func nextHeartbeatDeadline(after time: SCTPTime, jitter: SCTPDuration = .zero) -> SCTPTime {
        time + rto.rto + configuration.heartbeatInterval + jitter
    }

    mutating func recordHeartbeatSent(nonce: UInt64, now: SCTPTime) {
        giveUpOutstandingHeartbeat()
        heartbeat.lastSent = now
        heartbeat.nonce = nonce
        counters.heartbeatsSent += 1
    }

    /// Stops waiting for the outstanding HEARTBEAT's answer in time; a late one is still taken until the next goes.
    mutating func giveUpOutstandingHeartbeat() {
        heartbeat.lateNonce = heartbeat.nonce
        heartbeat.nonce = nil
        heartbeat.dataAcknowledgedSinceSent = false
    }

    /// A SACK newly acknowledged data sent here (once) at `sentAt`: data sent after the outstanding HEARTBEAT
    /// arrived, so that heartbeat's answer going missing says nothing against the path. Data sent before it proves
    /// nothing about the path since: a path that died just after its heartbeat went must still be found.
    mutating func noteDataAcknowledged(sentAt: SCTPTime) {
        guard heartbeat.isOutstanding, let heartbeatSent = heartbeat.lastSent, sentAt >= heartbeatSent else { return }
        heartbeat.dataAcknowledgedSinceSent = true
    }

    /// The path's remote address changed before it was confirmed: no earlier heartbeat's answer may confirm the
    /// new address (RFC 9260 §5.4); the next one goes there.
    mutating func forgetHeartbeatNonces() {
        giveUpOutstandingHeartbeat()
        heartbeat.lateNonce = nil
    }

    /// Matches a HEARTBEAT-ACK to the outstanding HEARTBEAT or the one given up before it; on success returns the
    /// RTT to feed the estimator (the caller then confirms the path, which forgets both).
    func handleHeartbeatAck(nonce: UInt64, sentAt: SCTPTime, now: SCTPTime) -> SCTPDuration? {
        guard heartbeat.nonce == nonce || heartbeat.lateNonce == nonce else { return nil }
        return now - sentAt
    }

    // MARK: - Policy

    /// Takes a new policy; a bucket is kept while the cap is unchanged, so setting the same policy again costs
    /// nothing and gives no fresh burst.
    mutating func setPolicy(_ newPolicy: SCTPPathPolicy) {
        if newPolicy.sendRateLimit != policy.sendRateLimit || (newPolicy.sendRateLimit != nil && rateBucket == nil) {
            rateBucket = newPolicy.sendRateLimit.map { SendRateBucket(bytesPerSecond: $0, mtu: mtu) }
        }
        policy = newPolicy
        if policy.mode == .active { isStandby = false }
    }

    mutating func refillRateBucket(now: SCTPTime) {
        if rateBucket != nil { rateBucket!.refill(now: now) }
    }

    // MARK: - Pacing

    mutating func refillPacer(now: SCTPTime) {
        if pacer != nil { pacer!.refill(now: now) }
    }

    /// Follows the controller's pacing rate after an ack.
    mutating func updatePacingRate(now: SCTPTime) {
        guard let rate = pacingRate else { return }
        let bytesPerSecond = Int(min(rate, 1e12))
        if pacer == nil {
            pacer = SendRateBucket(pacingBytesPerSecond: bytesPerSecond, mtu: mtu)
            pacer!.refill(now: now)
        } else {
            pacer!.setPacingRate(bytesPerSecond: bytesPerSecond, mtu: mtu, now: now)
        }
    }

    // MARK: - Sending

    mutating func setMTU(_ mtu: Int) {
        self.mtu = mtu
        congestion.mtu = mtu
    }

    /// Records a packet sent here; `dataBytes` is its DATA payload, for the idle rule.
    mutating func recordSent(bytes: Int, dataBytes: Int, now: SCTPTime) {
        counters.bytesSent += bytes
        counters.packetsSent += 1
        if rateBucket != nil { rateBucket!.consume(bytes) }
        if dataBytes > 0 {
            if pacer != nil { pacer!.consume(dataBytes) }
            applyIdleDecay(now: now)
            lastDataSent = now
        }
    }

    /// RFC 9260 §7.2.1: shrinks a window left without new data for at least one RTO, halving it per RTO (down to
    /// 4*MTU). `recordSent` applies it; call it also before deciding how much to send after a pause, so the
    /// burst already obeys the smaller window. Idempotent: the periods counted are consumed.
    mutating func applyIdleDecay(now: SCTPTime) {
        guard let last = lastDataSent, rto.rto > .zero else { return }
        let periods = (now - last).nanoseconds / rto.rto.nanoseconds
        guard periods > 0 else { return }
        congestion.handleIdle(idleFor: now - last, rto: rto.rto)
        lastDataSent = last + rto.rto * periods
    }

    mutating func recordReceived(bytes: Int) {
        counters.bytesReceived += bytes
        counters.packetsReceived += 1
    }

    /// RFC 9260 §6.3.3: on T3-rtx expiry back off the RTO (E2), collapse the window (§7.2.3) and count an error.
    /// The window and RTO are saved first, for `undoRetransmissionTimeout`, unless an expiry not yet decided
    /// spurious or genuine saved them: a further expiry keeps the state from before the first, not the cut one,
    /// even when it starts a new episode in `OutstandingData` (the last one's chunks were all retransmitted).
    mutating func handleRetransmissionTimeout() -> StateChange? {
        counters.t3Expiries += 1
        if stateBeforeTimeout == nil { stateBeforeTimeout = (congestion.window, rto.rto) }
        rto.backOff()
        congestion.handleRetransmissionTimeout()
        return recordError()
    }

    /// The T3-rtx expiries of the episode just decided were spurious (`OutstandingData.TimeoutVerdict`): the window
    /// comes back as it was before the first (RFC 4015's response: the controller's state before the timeout),
    /// and so does the RTO unless a round-trip measurement has recomputed it since (RFC 6298 §5.7's backoff was for
    /// a loss that did not happen).
    mutating func undoRetransmissionTimeout() {
        counters.spuriousTimeouts += 1
        guard let saved = stateBeforeTimeout else { return }
        stateBeforeTimeout = nil
        congestion.undoRetransmissionTimeout(to: saved.window)
        rto.undoBackOff(to: saved.rto)
    }

    /// The episode was a genuine loss: what its first expiry saved is of no more use.
    mutating func forgetRetransmissionTimeout() {
        stateBeforeTimeout = nil
    }
}
