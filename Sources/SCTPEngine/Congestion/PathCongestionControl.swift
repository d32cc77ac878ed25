/// Chooses a destination's controller without existential boxing: NewReno by default, LIA when coupling is on.
enum PathCongestionControl: Sendable {
    case newReno(NewRenoController)
    case lia(LIAController)

    /// Which controller new paths get.
    enum Algorithm: Sendable {
        case newReno
        case lia
    }

    init(_ algorithm: Algorithm = .newReno, mtu: Int, initialSSThresh: Int = Int(UInt32.max)) {
        switch algorithm {
        case .newReno: self = .newReno(NewRenoController(mtu: mtu, initialSSThresh: initialSSThresh))
        case .lia: self = .lia(LIAController(mtu: mtu, initialSSThresh: initialSSThresh))
        }
    }

    var window: CongestionWindow {
        switch self {
        case .newReno(let c): return c.window
        case .lia(let c): return c.window
        }
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
        }
    }

    @discardableResult
    mutating func handleFastRetransmit(highestOutstandingTSN: TSN) -> Bool {
        switch self {
        case .newReno(var c):
            defer { self = .newReno(c) }
            return c.handleFastRetransmit(highestOutstandingTSN: highestOutstandingTSN)
        case .lia(var c):
            defer { self = .lia(c) }
            return c.handleFastRetransmit(highestOutstandingTSN: highestOutstandingTSN)
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
        }
    }

    func mayTransmit(flightSize: Int) -> Bool {
        switch self {
        case .newReno(let c): return c.mayTransmit(flightSize: flightSize)
        case .lia(let c): return c.mayTransmit(flightSize: flightSize)
        }
    }

    func sendAllowance(flightSize: Int, maxBurst: Int = 4) -> Int {
        switch self {
        case .newReno(let c): return c.sendAllowance(flightSize: flightSize, maxBurst: maxBurst)
        case .lia(let c): return c.sendAllowance(flightSize: flightSize, maxBurst: maxBurst)
        }
    }
}
