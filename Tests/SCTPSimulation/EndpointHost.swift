import NIOCore
import SCTPEngine

/// Puts an `SCTPEndpoint` on the simulated network and plays a small application on top of it: it records every
/// event, can stream a deterministic byte pattern on any number of streams, and checks what arrives byte for byte.
public final class EndpointHost: SimulatedHost {
    public let endpoint: SCTPEndpoint
    public private(set) var now = SCTPTime.zero

    // MARK: What happened
    public private(set) var established: [SCTPAssociationID] = []
    public private(set) var closed: [(SCTPAssociationID, SCTPCloseReason)] = []
    public private(set) var pathEvents: [SCTPEvent] = []
    public private(set) var shutdownsReceived = 0
    /// Bytes received per stream, checked against the pattern in order.
    public private(set) var receivedBytes: [UInt16: Int] = [:]
    public private(set) var receivedMessages = 0
    /// Set when a received byte differs from the pattern (wrong order, corruption, duplication).
    public private(set) var corruption: String?
    /// Every event, for tests that look at the order.
    public var onEvent: ((SCTPEvent, EndpointHost) -> Void)?

    // MARK: Bulk sending
    public struct Transfer {
        public var association: SCTPAssociationID
        public var stream: StreamID
        public var total: Int
        public var messageSize: Int
        public var sent = 0
        public var unordered = false
    }
    public private(set) var transfers: [Transfer] = []
    /// Shut down each association once its transfers are all queued.
    public var shutdownWhenDone = false

    public init(endpoint: SCTPEndpoint) {
        self.endpoint = endpoint
    }

    public var totalReceivedBytes: Int { receivedBytes.values.reduce(0, +) }

    /// The pattern byte at `offset` of stream `stream`: detects reordering, loss and duplication.
    public static func patternByte(stream: UInt16, offset: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: offset &* 31 &+ offset >> 8 &+ Int(stream) &* 7)
    }

    /// Starts sending `total` bytes on `stream` in messages of `messageSize`.
    public func startTransfer(
        on association: SCTPAssociationID, stream: StreamID, total: Int, messageSize: Int, unordered: Bool = false
    ) {
        transfers.append(
            Transfer(association: association, stream: stream, total: total, messageSize: messageSize, unordered: unordered))
        pump()
    }

    public var transfersQueued: Bool { transfers.allSatisfy { $0.sent == $0.total } }

    /// Queues as much of every transfer as the endpoint accepts.
    public func pump() {
        for i in transfers.indices {
            while transfers[i].sent < transfers[i].total, endpoint.isWritable(transfers[i].association) {
                let t = transfers[i]
                let size = min(t.messageSize, t.total - t.sent)
                var buffer = ByteBuffer()
                buffer.reserveCapacity(size)
                for k in 0..<size {
                    buffer.writeInteger(Self.patternByte(stream: t.stream.rawValue, offset: t.sent + k))
                }
                do {
                    try endpoint.send(buffer, on: t.association, stream: t.stream, unordered: t.unordered, now: now)
                } catch {
                    break
                }
                transfers[i].sent += size
            }
        }
        if shutdownWhenDone {
            for id in Set(transfers.map(\.association))
            where transfers.filter({ $0.association == id }).allSatisfy({ $0.sent == $0.total }) {
                endpoint.shutdown(id, now: now)
            }
        }
    }

    // MARK: - SimulatedHost

    public func handle(_ datagram: SCTPDatagram, now: SCTPTime) {
        self.now = now
        endpoint.handle(datagram, now: now)
        drainEvents()
    }

    public func handleTimeout(now: SCTPTime) {
        self.now = now
        endpoint.handleTimeout(now: now)
        drainEvents()
    }

    public func pollTransmit() -> SCTPDatagram? { endpoint.pollTransmit() }
    public func nextDeadline() -> SCTPTime? { endpoint.nextDeadline() }

    /// Runs a command on the endpoint at the host's current time, then handles its events.
    public func perform(at time: SCTPTime, _ command: (SCTPEndpoint) -> Void) {
        now = max(now, time)
        command(endpoint)
        drainEvents()
    }

    private func drainEvents() {
        var wantsPump = false
        while let event = endpoint.pollEvent() {
            onEvent?(event, self)
            switch event {
            case .established(let id, _, _):
                established.append(id)
                wantsPump = true
            case .message(_, let message):
                receive(message)
            case .writable:
                wantsPump = true
            case .pathStateChanged, .pathRemoteChanged:
                pathEvents.append(event)
            case .shutdownReceived:
                shutdownsReceived += 1
            case .closed(let id, let reason):
                closed.append((id, reason))
            }
        }
        if wantsPump && !transfers.isEmpty { pump() }
    }

    private func receive(_ message: SCTPMessage) {
        receivedMessages += 1
        let stream = message.stream.rawValue
        var offset = receivedBytes[stream, default: 0]
        guard corruption == nil else { return }
        message.payload.withUnsafeReadableBytes { bytes in
            for byte in bytes {
                if !message.isUnordered && byte != Self.patternByte(stream: stream, offset: offset) {
                    corruption = "stream \(stream) byte \(offset): got \(byte)"
                    return
                }
                offset += 1
            }
        }
        receivedBytes[stream] = offset
    }
}
