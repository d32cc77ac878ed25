import SCTPEngine

/// What the simulator drives: a sans-IO endpoint that takes datagrams and time in and hands datagrams and a
/// deadline out. The engine's endpoint conforms through a small adapter; tests use small fake hosts.
///
/// The network calls every method from one thread, in virtual time. After any input it drains `pollTransmit()`
/// until it returns nil and then re-reads `nextDeadline()`.
public protocol SimulatedHost: AnyObject {
    /// A datagram arrived; `datagram.destination` is one of the host's addresses (after any NAT translation).
    func handle(_ datagram: SCTPDatagram, now: SCTPTime)
    /// The deadline last returned by `nextDeadline()` has passed.
    func handleTimeout(now: SCTPTime)
    /// The next datagram to send; `source` is the local address and port it leaves from.
    func pollTransmit() -> SCTPDatagram?
    /// When `handleTimeout(now:)` should next be called, or nil for never. A deadline in the past is due at once.
    func nextDeadline() -> SCTPTime?
}
