/// The standard SCTP congestion controller of RFC 9260 §7.2: one MTU per cwnd of acknowledged bytes in
/// congestion avoidance.
struct NewRenoController: CongestionController {
    var window: CongestionWindow

    init(mtu: Int, initialSSThresh: Int = Int(UInt32.max)) {
        window = CongestionWindow(mtu: mtu, initialSSThresh: initialSSThresh)
    }

    /// §7.2.2: "cwnd is increased by MTU".
    func congestionAvoidanceIncrease(_ ack: CongestionAck) -> Int { window.mtu }
}
