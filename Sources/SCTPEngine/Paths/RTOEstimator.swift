/// Computes one destination's retransmission timeout from RTT samples (RFC 9260 §6.3.1) and backs it off on
/// expiry (§6.3.3 E2).
///
/// Arithmetic is in integer nanoseconds with alpha = 1/8 and beta = 1/4 as shifts, so results are exact and
/// deterministic. A new measurement recomputes RTO from SRTT and RTTVAR, which undoes any backoff.
struct RTOEstimator: Sendable {
    /// The protocol parameters of RFC 9260 §16 that govern the RTO.
    struct Configuration: Sendable {
        /// RTO.Initial: 1 second by default.
        var initial: SCTPDuration = .seconds(1)
        /// RTO.Min: 1 second by default; agg lowers it for its own links.
        var min: SCTPDuration = .seconds(1)
        /// RTO.Max: 60 seconds by default.
        var max: SCTPDuration = .seconds(60)
        /// The clock granularity G of §6.3.1 C2/C3.
        var granularity: SCTPDuration = .milliseconds(1)

        init() {}
        init(initial: SCTPDuration, min: SCTPDuration, max: SCTPDuration, granularity: SCTPDuration = .milliseconds(1))
        {
            self.initial = initial
            self.min = min
            self.max = max
            self.granularity = granularity
        }
    }

    let configuration: Configuration
    /// The smoothed round-trip time; nil until the first measurement (C1).
    private(set) var srtt: SCTPDuration?
    /// The round-trip time variation.
    private(set) var rttvar: SCTPDuration = .zero
    /// The current retransmission timeout, backoff included.
    private(set) var rto: SCTPDuration
    /// The RTO is backed off: no measurement has recomputed it since the last `backOff`.
    private(set) var isBackedOff = false

    init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        // RFC 9260 §6.3.1 C1: "Until an RTT measurement has been made for a packet sent to the given destination
        // transport address, set RTO to the protocol parameter 'RTO.Initial'."
        self.rto = Self.clamp(configuration.initial, configuration)
    }

    var hasMeasurement: Bool { srtt != nil }

    // MARK: - Inputs

    /// Folds in one RTT measurement R (C2 for the first, C3 afterwards) and recomputes RTO, clearing backoff.
    mutating func handleMeasurement(_ rtt: SCTPDuration) {
        let r = Swift.max(rtt.nanoseconds, 0)
        if let srtt {
            // C3: RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|; SRTT <- (1 - alpha) * SRTT + alpha * R'.
            let deviation = abs(srtt.nanoseconds - r)
            let newRTTVar = rttvar.nanoseconds - rttvar.nanoseconds / 4 + deviation / 4
            let newSRTT = srtt.nanoseconds - srtt.nanoseconds / 8 + r / 8
            rttvar = .nanoseconds(newRTTVar)
            self.srtt = .nanoseconds(newSRTT)
        } else {
            // C2: SRTT <- R, RTTVAR <- R/2.
            srtt = .nanoseconds(r)
            rttvar = .nanoseconds(r / 2)
        }
        // C3 (end): "RTO <- SRTT + max(G, 4 * RTTVAR)"; C6/C7 clamp to RTO.Min and RTO.Max.
        let variance = Swift.max(configuration.granularity.nanoseconds, 4 * rttvar.nanoseconds)
        rto = Self.clamp(.nanoseconds(srtt!.nanoseconds + variance), configuration)
        isBackedOff = false
    }

    /// RFC 9260 §6.3.3 E2: "RTO <- RTO * 2 ('back off the timer')", limited by RTO.Max (C7).
    mutating func backOff() {
        rto = Swift.min(rto * 2, configuration.max)
        isBackedOff = true
    }

    /// Undoes the backoff of timeouts found spurious: the RTO goes back to `saved`, what it was before them. A
    /// measurement since has already recomputed it from the round trips as they are now, and that is kept.
    mutating func undoBackOff(to saved: SCTPDuration) {
        guard isBackedOff else { return }
        rto = Self.clamp(saved, configuration)
        isBackedOff = false
    }

    private static func clamp(_ value: SCTPDuration, _ configuration: Configuration) -> SCTPDuration {
        Swift.min(Swift.max(value, configuration.min), configuration.max)
    }
}
