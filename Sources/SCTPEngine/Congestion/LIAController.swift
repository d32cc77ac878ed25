/// A coupled controller in the style of RFC 6356 (Linked Increases): in congestion avoidance each destination
/// grows by min(alpha * acked * MTU / total_cwnd, acked * MTU / cwnd_i), so the association as a whole takes no
/// more than one flow's share at a shared bottleneck. Slow start and loss reactions are those of RFC 9260.
struct LIAController: CongestionController {
    var window: CongestionWindow
    /// The fraction of a byte carried between acks so small increases are not lost to rounding.
    private var carry: Double = 0

    init(mtu: Int, initialSSThresh: Int = Int(UInt32.max)) {
        window = CongestionWindow(mtu: mtu, initialSSThresh: initialSSThresh)
    }

    /// Called once per cwnd of acknowledged bytes (partial_bytes_acked) — that is, with about cwnd_i bytes acked —
    /// so the per-byte RFC 6356 rule summed over those bytes gives min(alpha * cwnd_i * MTU / total, MTU).
    mutating func congestionAvoidanceIncrease(_ ack: CongestionAck) -> Int {
        guard let coupling = ack.coupling, coupling.totalCwnd > 0 else { return window.mtu }
        let acked = Double(window.cwnd)
        let mtu = Double(window.mtu)
        let coupled = coupling.alpha * acked * mtu / Double(coupling.totalCwnd)
        let uncoupled = acked * mtu / Double(window.cwnd)
        let increase = min(coupled, uncoupled) + carry
        let whole = increase.rounded(.down)
        carry = increase - whole
        return Int(whole)
    }

    /// RFC 6356 §3: alpha = cwnd_total * max_i(cwnd_i / rtt_i^2) / (sum_i(cwnd_i / rtt_i))^2, over the
    /// destinations currently carrying data. Returns 1 when there is nothing to couple.
    static func alpha(_ paths: some Sequence<(cwnd: Int, srtt: SCTPDuration)>) -> Double {
        var total = 0.0
        var best = 0.0
        var sum = 0.0
        for path in paths {
            let rtt = max(path.srtt.seconds, 1e-6)
            let cwnd = Double(path.cwnd)
            total += cwnd
            best = max(best, cwnd / (rtt * rtt))
            sum += cwnd / rtt
        }
        guard sum > 0 else { return 1 }
        return total * best / (sum * sum)
    }
}
