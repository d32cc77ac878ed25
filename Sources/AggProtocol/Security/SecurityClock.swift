import SCTPEngine

/// The two clocks the datagram layer needs, read by the caller: monotonic time for its timers and Unix time in
/// seconds for the HELLO timestamp, which client and server compare.
package struct SecurityClock: Sendable {
    package var monotonic: SCTPTime
    package var unixSeconds: Int64

    package init(monotonic: SCTPTime, unixSeconds: Int64) {
        self.monotonic = monotonic
        self.unixSeconds = unixSeconds
    }
}
