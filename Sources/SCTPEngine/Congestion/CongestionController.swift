/// The congestion controller contract: one instance per destination, fed acks, losses and idle periods, asked
/// whether new data may be sent. `CongestionWindow` holds the RFC 9260 §7.2 state all controllers share; a
/// controller only decides how congestion avoidance grows the window.
protocol CongestionController: Sendable {
    /// The shared window state; the default implementations below read and write it.
    var window: CongestionWindow { get set }

    /// The bytes by which cwnd grows in congestion avoidance for this ack, after `partialBytesAcked` has been
    /// credited; called only when growth is allowed (window fully used, ack point advanced, not in fast recovery).
    mutating func congestionAvoidanceIncrease(_ ack: CongestionAck) -> Int
}

/// What one SACK means to one destination's controller.
struct CongestionAck: Sendable {
    /// Bytes newly acknowledged on this destination, by the cumulative ack and by gap blocks.
    var bytesAcked: Int
    /// Whether the window may grow: the cumulative TSN ack advanced (RFC 9260 §7.2.1, §7.2.2) or, with CMT's
    /// CUC, this destination's pseudo-cumulative ack advanced.
    var ackPointAdvanced: Bool
    /// The destination's flight size just before the SACK was processed.
    var flightSizeBeforeAck: Int
    /// Every TSN up to this one is acknowledged as far as this destination is concerned: the cumulative TSN ack,
    /// or with CMT the destination's pseudo-cumulative ack minus one. Ends fast recovery at its exit point.
    var ackPoint: TSN
    /// True when nothing remains outstanding on this destination after the SACK (RFC 9260 §7.2.2 resets
    /// partial_bytes_acked then).
    var allDataAcked: Bool
    /// For a coupled controller: the sum of all destinations' cwnd and the LIA alpha. Ignored by NewReno.
    var coupling: Coupling?
    // For a model-based controller (BBR); ignored by the window-based ones.
    var now = SCTPTime.zero
    /// The SACK's delivery-rate sample on this destination.
    var rateSample: OutstandingData.RateSample?
    /// Bytes ever delivered on this destination, this SACK's included.
    var delivered = 0
    /// The destination's flight size after the SACK.
    var flightSize = 0
    /// The SACK's RTT measurement on this destination (Karn's rule applied).
    var rttSample: SCTPDuration?

    init(
        bytesAcked: Int, ackPointAdvanced: Bool, flightSizeBeforeAck: Int, ackPoint: TSN, allDataAcked: Bool,
        coupling: Coupling? = nil
    ) {
        self.bytesAcked = bytesAcked
        self.ackPointAdvanced = ackPointAdvanced
        self.flightSizeBeforeAck = flightSizeBeforeAck
        self.ackPoint = ackPoint
        self.allDataAcked = allDataAcked
        self.coupling = coupling
    }
}

/// The association-wide figures a coupled (RFC 6356) controller needs.
struct Coupling: Sendable {
    var totalCwnd: Int
    var alpha: Double
}

/// The per-destination window state of RFC 9260 §7.2: cwnd, ssthresh, partial_bytes_acked and fast recovery.
struct CongestionWindow: Sendable {
    /// The path MTU the window is measured against (the RFC's "MTU").
    var mtu: Int
    var cwnd: Int
    var ssthresh: Int
    var partialBytesAcked = 0
    /// Set while in fast recovery: the highest TSN outstanding when it began (RFC 9260 §7.2.4 step 2).
    var fastRecoveryExitPoint: TSN?
    /// The slow-start limit L of RFC 9260 §7.2.1 (bytes per ack = L * MTU); 1 as recommended.
    var slowStartMTUsPerAck = 1

    /// RFC 9260 §7.2.1: "The initial cwnd before data transmission MUST be set to min(4*MTU, max (2*MTU, 4404))
    /// bytes". The initial ssthresh is arbitrarily high, e.g. the peer's receiver window.
    init(mtu: Int, initialSSThresh: Int = Int(UInt32.max)) {
        self.mtu = mtu
        self.cwnd = Self.initialCwnd(mtu: mtu)
        self.ssthresh = initialSSThresh
    }

    static func initialCwnd(mtu: Int) -> Int { min(4 * mtu, max(2 * mtu, 4404)) }

    var isInFastRecovery: Bool { fastRecoveryExitPoint != nil }
    var isInSlowStart: Bool { cwnd <= ssthresh }
    /// max(cwnd/2, 4*MTU): the reduced ssthresh of §7.2.3 and §7.2.4.
    var halvedWindow: Int { max(cwnd / 2, 4 * mtu) }
}

extension CongestionController {
    var cwnd: Int { window.cwnd }
    var ssthresh: Int { window.ssthresh }
    var partialBytesAcked: Int { window.partialBytesAcked }
    var isInFastRecovery: Bool { window.isInFastRecovery }
    var mtu: Int {
        get { window.mtu }
        set { window.mtu = newValue }
    }

    // MARK: - Acks

    /// Applies one SACK's acknowledgements: leaves fast recovery at its exit point, then slow start (§7.2.1) or
    /// congestion avoidance (§7.2.2).
    mutating func handleAck(_ ack: CongestionAck) {
        if let exit = window.fastRecoveryExitPoint, ack.ackPoint.isAtOrAfter(exit) {
            // RFC 9260 §7.2.4: fast recovery ends when a SACK acknowledges all TSNs up to the exit point.
            window.fastRecoveryExitPoint = nil
        }
        let mayGrow = ack.ackPointAdvanced && !window.isInFastRecovery
        if window.isInSlowStart {
            // §7.2.1: grow only if the window is fully utilized, the SACK advances the cumulative TSN ack point
            // and the sender is not in fast recovery; then by at most min(bytes acked, L * MTU).
            if mayGrow && isFullyUtilized(flightSize: ack.flightSizeBeforeAck) {
                window.cwnd += min(ack.bytesAcked, window.slowStartMTUsPerAck * window.mtu)
            }
        } else {
            // §7.2.2: partial_bytes_acked counts every newly acknowledged byte while cwnd > ssthresh.
            window.partialBytesAcked += ack.bytesAcked
            if window.partialBytesAcked >= window.cwnd {
                if ack.flightSizeBeforeAck < window.cwnd {
                    window.partialBytesAcked = window.cwnd
                } else if mayGrow {
                    window.partialBytesAcked -= window.cwnd
                    window.cwnd += congestionAvoidanceIncrease(ack)
                }
            }
        }
        if ack.allDataAcked {
            // §7.2.2: "When all of the data transmitted by the sender has been acknowledged by the receiver,
            // partial_bytes_acked is initialized to 0."
            window.partialBytesAcked = 0
        }
    }

    /// "Fully utilized" of §7.2.1: less than one MTU of the window was unused before the SACK.
    func isFullyUtilized(flightSize: Int) -> Bool { flightSize + window.mtu > window.cwnd }

    // MARK: - Losses

    /// RFC 9260 §7.2.4 step 2: on fast retransmit outside fast recovery, ssthresh = max(cwnd/2, 4*MTU),
    /// cwnd = ssthresh, partial_bytes_acked = 0, and the highest outstanding TSN becomes the exit point.
    /// Returns false (and changes nothing) if already in fast recovery.
    @discardableResult
    mutating func handleFastRetransmit(highestOutstandingTSN: TSN) -> Bool {
        guard !window.isInFastRecovery else { return false }
        window.ssthresh = window.halvedWindow
        window.cwnd = window.ssthresh
        window.partialBytesAcked = 0
        window.fastRecoveryExitPoint = highestOutstandingTSN
        return true
    }

    /// RFC 9260 §7.2.3: on T3-rtx expiry, ssthresh = max(cwnd/2, 4*MTU) and cwnd = 1*MTU. Fast recovery ends.
    mutating func handleRetransmissionTimeout() {
        window.ssthresh = window.halvedWindow
        window.cwnd = window.mtu
        window.partialBytesAcked = 0
        window.fastRecoveryExitPoint = nil
    }

    /// The T3-rtx expiry that cut the window was spurious (the SACKs were late, nothing was lost): cwnd, ssthresh
    /// and fast recovery as they were before it, `saved` (RFC 4015 §3: restore the congestion state), or the
    /// window grown since if larger. RFC 9260 §7.2.3's cut is for a loss, and there was none.
    mutating func undoRetransmissionTimeout(to saved: CongestionWindow) {
        let mtu = window.mtu
        let cwnd = max(window.cwnd, saved.cwnd)
        window = saved
        window.mtu = mtu
        window.cwnd = cwnd
    }

    /// RFC 9260 §7.2.1: when no data was sent to the destination, cwnd "SHOULD be adjusted to max(cwnd/2, 4*MTU)
    /// per RTO". `idleFor` is the time since data was last sent there; never grows a window already smaller.
    mutating func handleIdle(idleFor: SCTPDuration, rto: SCTPDuration) {
        guard rto > .zero else { return }
        var periods = idleFor.nanoseconds / rto.nanoseconds
        while periods > 0 && window.cwnd > 4 * window.mtu {
            window.cwnd = max(window.cwnd / 2, 4 * window.mtu)
            periods -= 1
        }
    }

    /// Restores the initial window, for a path that comes back from inactive.
    mutating func reset() {
        window.cwnd = CongestionWindow.initialCwnd(mtu: window.mtu)
        window.partialBytesAcked = 0
        window.fastRecoveryExitPoint = nil
    }

    // MARK: - Sending

    /// RFC 9260 §6.1 B: new data may go to the destination while fewer than cwnd + PMTU − 1 bytes are outstanding
    /// there, so a partly filled window still admits one more full packet.
    func mayTransmit(flightSize: Int) -> Bool { flightSize < window.cwnd + window.mtu - 1 }

    /// RFC 9260 §6.1: the bytes of new data that may be sent now, the window further limited to Max.Burst packets
    /// beyond the current flight so a burst of acks cannot release a line-rate burst.
    func sendAllowance(flightSize: Int, maxBurst: Int = 4) -> Int {
        let limit = min(window.cwnd + window.mtu - 1, flightSize + maxBurst * window.mtu)
        return max(0, limit - flightSize)
    }
}
