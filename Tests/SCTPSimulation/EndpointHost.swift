#if canImport(Glibc)
import Glibc
#endif
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

    /// The pattern repeats every `patternPeriod` bytes, a prime, so no message size lines up with it and a
    /// reordered, lost or duplicated message shows up as a mismatch.
    public static let patternPeriod = 65_521
    /// Two periods back to back, so any run of up to one period starts at some offset and needs no wrap.
    static let pattern: [UInt8] = {
        var x: UInt32 = 0x1234_5678
        let period = (0..<patternPeriod).map { _ -> UInt8 in
            x = x &* 1_664_525 &+ 1_013_904_223
            return UInt8(truncatingIfNeeded: x >> 24)
        }
        return period + period
    }()

    /// The pattern byte at `offset` of stream `stream`.
    public static func patternByte(stream: UInt16, offset: Int) -> UInt8 {
        pattern[(offset + Int(stream) &* 7919) % patternPeriod]
    }

    /// Appends `count` pattern bytes of `stream` starting at `offset`.
    static func writePattern(stream: UInt16, offset: Int, count: Int, into buffer: inout ByteBuffer) {
        var offset = offset
        var remaining = count
        while remaining > 0 {
            let start = (offset + Int(stream) &* 7919) % patternPeriod
            let n = min(remaining, patternPeriod)
            pattern.withUnsafeBytes { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: $0[start..<(start + n)])) }
            offset += n
            remaining -= n
        }
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
                Self.writePattern(stream: t.stream.rawValue, offset: t.sent, count: size, into: &buffer)
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

    /// New associations the endpoint refused (`SCTPEvent.associationRefused`).
    var refusals = 0

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
            case .associationRefused:
                refusals += 1
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
            guard !message.isUnordered else {
                offset += bytes.count
                return
            }
            var checked = 0
            while checked < bytes.count {
                let start = (offset + Int(stream) &* 7919) % Self.patternPeriod
                let n = min(bytes.count - checked, Self.patternPeriod)
                let same = Self.pattern.withUnsafeBytes { expected in
                    memcmp(expected.baseAddress! + start, bytes.baseAddress! + checked, n) == 0
                }
                if !same {
                    corruption = "stream \(stream) bytes \(offset)..<\(offset + n) differ from the pattern"
                    return
                }
                checked += n
                offset += n
            }
        }
        receivedBytes[stream] = offset
    }
}

extension SimulatedNetwork {
    /// Sends `total` pattern bytes from `sender` on `association` (stream 1, 16 KiB messages) and runs until
    /// `receiver` has them all; returns the goodput from the first byte delivered to the last, in bit/s. Replaces
    /// `receiver.onEvent`.
    public func transferGoodput(
        _ total: Int, from sender: EndpointHost, on association: SCTPAssociationID, to receiver: EndpointHost,
        timeout: SCTPDuration = .seconds(60)
    ) throws -> Double {
        var firstByte: SCTPTime?
        receiver.onEvent = { event, host in
            if case .message = event, firstByte == nil { firstByte = host.now }
        }
        let already = receiver.totalReceivedBytes
        sender.startTransfer(on: association, stream: StreamID(1), total: total, messageSize: 16 * 1024)
        let done = try runUntil({ receiver.totalReceivedBytes == already + total }, timeout: timeout)
        return Double(total * 8) / (done - (firstByte ?? done)).seconds
    }
}
