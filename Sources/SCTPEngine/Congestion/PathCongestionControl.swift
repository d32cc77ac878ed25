/// Chooses a destination's controller without existential boxing: NewReno, LIA when coupling is on, or the
/// model-based BBR.
enum PathCongestionControl: Sendable {
    case newReno(NewRenoController)
    case lia(LIAController)
    case bbr(BBRController)

    /// Which controller new paths get.
    enum Algorithm: Sendable {
        case newReno
        case lia
        case bbr
    }

    init(_ algorithm: Algorithm = .newReno, mtu: Int, initialSSThresh: Int = Int(UInt32.max)) {
        switch algorithm {
        case .newReno: self = .newReno(NewRenoController(mtu: mtu, initialSSThresh: initialSSThresh))
        case .lia: self = .lia(LIAController(mtu: mtu, initialSSThresh: initialSSThresh))
        case .bbr: self = .bbr(BBRController(mtu: mtu))
        }
    }

    var window: CongestionWindow {
        switch self {
        case .newReno(let c): return c.window
        case .lia(let c): return c.window
        case .bbr(let c): return c.window
        }
    }

    /// The window and the pacing rate in one switch (one copy of the payload), for `Path`'s copies of them.
    var figures: (window: CongestionWindow, pacingRate: Double?) {
        switch self {
        case .newReno(let c): return (c.window, nil)
        case .lia(let c): return (c.window, nil)
        case .bbr(let c): return (c.window, c.pacingRate)
        }
    }

    /// The model-based controller's estimates (bottleneck bandwidth in bytes per second, propagation round
    /// trip), for status displays; nil for a window-based controller or before the first sample.
    var modelEstimates: (bandwidth: Double, minRTT: SCTPDuration)? {
        guard case .bbr(let c) = self, c.bandwidth > 0, let minRTT = c.minRTT else { return nil }
        return (c.bandwidth, minRTT)
    }

    /// The model-based controller's phase; nil for a window-based controller.
    var modelPhase: SCTPCongestionPhase? {
        guard case .bbr(let c) = self else { return nil }
        return c.phase
    }

    var isModelBased: Bool {
        if case .bbr = self { return true }
        return false
    }

    var cwnd: Int { window.cwnd }
    var ssthresh: Int { window.ssthresh }
    var isInFastRecovery: Bool { window.isInFastRecovery }

    var mtu: Int {
        get { window.mtu }
        set {
            switch self {
            case .newReno(var c):
                c.mtu = newValue
                self = .newReno(c)
            case .lia(var c):
                c.mtu = newValue
                self = .lia(c)
            case .bbr(var c):
                c.mtu = newValue
                self = .bbr(c)
            }
        }
    }

    // MARK: - Forwarding (a switch per call keeps the controllers unboxed)

    mutating func handleAck(_ ack: CongestionAck) {
        switch self {
        case .newReno(var c):
            c.handleAck(ack)
            self = .newReno(c)
        case .lia(var c):
            c.handleAck(ack)
            self = .lia(c)
        case .bbr(var c):
            c.handleAck(ack)
            self = .bbr(c)
        }
    }

    /// `flightSize` is the destination's flight after the SACK that found the loss (BBR bounds the window by it).
    @discardableResult
    mutating func handleFastRetransmit(highestOutstandingTSN: TSN, flightSize: Int = 0) -> Bool {
        switch self {
        case .newReno(var c):
            defer { self = .newReno(c) }
            return c.handleFastRetransmit(highestOutstandingTSN: highestOutstandingTSN)
        case .lia(var c):
            defer { self = .lia(c) }
            return c.handleFastRetransmit(highestOutstandingTSN: highestOutstandingTSN)
        case .bbr(var c):
            defer { self = .bbr(c) }
            return c.handleFastRetransmit(highestOutstandingTSN: highestOutstandingTSN, flightSize: flightSize)
        }
    }

    mutating func handleRetransmissionTimeout() {
        switch self {
        case .newReno(var c):
            c.handleRetransmissionTimeout()
            self = .newReno(c)
        case .lia(var c):
            c.handleRetransmissionTimeout()
            self = .lia(c)
        case .bbr(var c):
            c.handleRetransmissionTimeout()
            self = .bbr(c)
        }
    }

    /// A T3-rtx expiry was spurious: the window comes back to what it was before it, `saved`.
    mutating func undoRetransmissionTimeout(to saved: CongestionWindow) {
        switch self {
        case .newReno(var c):
            c.undoRetransmissionTimeout(to: saved)
            self = .newReno(c)
        case .lia(var c):
            c.undoRetransmissionTimeout(to: saved)
            self = .lia(c)
        case .bbr(var c):
            c.undoRetransmissionTimeout(to: saved)
            self = .bbr(c)
        }
    }

    mutating func handleIdle(idleFor: SCTPDuration, rto: SCTPDuration) {
        switch self {
        case .newReno(var c):
            c.handleIdle(idleFor: idleFor, rto: rto)
            self = .newReno(c)
        case .lia(var c):
            c.handleIdle(idleFor: idleFor, rto: rto)
            self = .lia(c)
        case .bbr:
            break  // Paced: a path back from idle sends at the model's rate, not in a burst (BBRController).
        }
    }

    mutating func reset() {
        switch self {
        case .newReno(var c):
            c.reset()
            self = .newReno(c)
        case .lia(var c):
            c.reset()
            self = .lia(c)
        case .bbr(var c):
            c.reset()
            self = .bbr(c)
        }
    }

    func mayTransmit(flightSize: Int) -> Bool {
        switch self {
        case .newReno(let c): return c.mayTransmit(flightSize: flightSize)
        case .lia(let c): return c.mayTransmit(flightSize: flightSize)
        case .bbr(let c): return c.mayTransmit(flightSize: flightSize)
        }
    }

    func sendAllowance(flightSize: Int, maxBurst: Int = 4) -> Int {
        switch self {
        case .newReno(let c): return c.sendAllowance(flightSize: flightSize, maxBurst: maxBurst)
        case .lia(let c): return c.sendAllowance(flightSize: flightSize, maxBurst: maxBurst)
        case .bbr: return max(0, window.cwnd + window.mtu - 1 - flightSize)  // the pacer bounds bursts
        }
    }
}
