/// Credit a sender may still use on one stream: the peer's receive window as the sender sees it.
///
/// Like HTTP/2 (RFC 9113 §6.9): DATA consumes credit, WINDOW-UPDATE adds it, and the sum may never exceed
/// 2^31 - 1. A sender with no credit stops reading its TCP socket, so memory per stream stays bounded and one
/// stalled reader never blocks the association.
public struct FlowWindow: Equatable, Sendable {
    /// Bytes that may be sent before more credit arrives.
    public private(set) var available: Int

    public init(credit: UInt32) {
        available = Int(min(credit, AggLimits.maxCredit))
    }

    /// Whether `bytes` may be sent now.
    public func allows(_ bytes: Int) -> Bool { bytes <= available }

    /// Spends credit for DATA of `bytes`.
    public mutating func consume(_ bytes: Int) throws(FlowControlError) {
        guard bytes >= 0, bytes <= available else { throw .exceedsCredit(bytes: bytes, available: available) }
        available -= bytes
    }

    /// Adds the credit of a WINDOW-UPDATE.
    public mutating func grant(_ increment: UInt32) throws(FlowControlError) {
        let total = available + Int(increment)
        guard total <= Int(AggLimits.maxCredit) else { throw .overflow(total) }
        available = total
    }
}

/// The receiving half of a stream's flow control: how much the peer may still send, how much is buffered
/// waiting for the local TCP socket, and when to return credit with a WINDOW-UPDATE.
///
/// Invariant: `available + buffered + unannounced == capacity`. Credit is returned once a quarter of the capacity
/// or 128 KiB has drained, whichever is less: with the 4 MiB default a quarter is 1 MiB, and a reader slower than
/// the paths then got its data in 1 MiB bursts that filled the path queues (RTT spikes for every other stream)
/// between seconds of silence. An update costs one 20-byte DATA chunk per 128 KiB. Since the threshold is at most the
/// capacity, a fully drained buffer always ends in an update (no deadlock).
public struct ReceiveWindow: Equatable, Sendable {
    /// The credit granted in OPEN or HELLO: the most this stream ever buffers.
    public let capacity: Int
    /// Bytes the peer may still send.
    public private(set) var available: Int
    /// Bytes received and not yet accepted by the local TCP socket.
    public private(set) var buffered: Int = 0
    /// Bytes accepted by the socket whose credit has not been returned yet.
    public private(set) var unannounced: Int = 0

    public init(capacity: UInt32) {
        self.capacity = Int(min(capacity, AggLimits.maxCredit))
        available = self.capacity
    }

    /// The drained amount at which a WINDOW-UPDATE is sent.
    public var updateThreshold: Int { max(1, min(capacity / 4, 128 * 1024)) }

    /// Accounts for DATA of `bytes` from the peer.
    public mutating func receive(_ bytes: Int) throws(FlowControlError) {
        guard bytes <= available else { throw .exceedsCredit(bytes: bytes, available: available) }
        available -= bytes
        buffered += bytes
    }

    /// Accounts for `bytes` the local socket accepted; returns the increment to announce, if one is due.
    public mutating func consume(_ bytes: Int) -> UInt32? {
        let bytes = min(bytes, buffered)
        buffered -= bytes
        unannounced += bytes
        guard unannounced >= updateThreshold else { return nil }
        let increment = unannounced
        unannounced = 0
        available += increment
        return UInt32(increment)
    }
}

/// A flow-control rule was broken.
public enum FlowControlError: Error, Equatable, Sendable, CustomStringConvertible {
    /// DATA larger than the remaining credit.
    case exceedsCredit(bytes: Int, available: Int)
    /// A WINDOW-UPDATE that would push the credit above 2^31 - 1.
    case overflow(Int)

    public var description: String {
        switch self {
        case .exceedsCredit(let bytes, let available): return "\(bytes) bytes exceed the credit of \(available)"
        case .overflow(let total): return "window of \(total) exceeds \(AggLimits.maxCredit)"
        }
    }
}
