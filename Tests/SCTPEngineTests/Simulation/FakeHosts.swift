import NIOCore
import SCTPEngine
import SCTPSimulation

/// A payload of `size` bytes whose first 8 bytes carry `sequence`, so receivers can see order and loss.
func sequencedPayload(_ sequence: UInt64, size: Int) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.writeInteger(sequence)
    buffer.writeRepeatingByte(0xA5, count: max(0, size - 8))
    return buffer
}

/// The sequence number written by `sequencedPayload`.
func payloadSequence(_ payload: ByteBuffer) -> UInt64 {
    payload.getInteger(at: payload.readerIndex, as: UInt64.self) ?? .max
}

/// Records what it receives; with `echoes`, sends each datagram straight back to where it came from.
final class SinkHost: SimulatedHost {
    struct Arrival {
        var time: SCTPTime
        /// The datagram as received; its payload is emptied unless the host keeps payloads.
        var datagram: SCTPDatagram
        var sequence: UInt64
        var payloadLength: Int

        init(time: SCTPTime, datagram: SCTPDatagram, keepsPayload: Bool = true) {
            self.time = time
            self.datagram = datagram
            self.sequence = payloadSequence(datagram.payload)
            self.payloadLength = datagram.payload.readableBytes
            if !keepsPayload { self.datagram.payload = ByteBuffer() }
        }
    }

    let echoes: Bool
    /// Long runs drop payloads so that memory stays flat.
    let keepsPayloads: Bool
    private(set) var arrivals: [Arrival] = []
    private var outbox: [SCTPDatagram] = []

    init(echoes: Bool = false, keepsPayloads: Bool = true) {
        self.echoes = echoes
        self.keepsPayloads = keepsPayloads
    }

    /// Queues a datagram to send at the next drain.
    func enqueue(_ datagram: SCTPDatagram) { outbox.append(datagram) }

    func handle(_ datagram: SCTPDatagram, now: SCTPTime) {
        arrivals.append(Arrival(time: now, datagram: datagram, keepsPayload: keepsPayloads))
        if echoes {
            outbox.append(
                SCTPDatagram(
                    source: datagram.destination, destination: datagram.source,
                    payload: datagram.payload))
        }
    }

    func handleTimeout(now: SCTPTime) {}
    func pollTransmit() -> SCTPDatagram? { outbox.isEmpty ? nil : outbox.removeFirst() }
    func nextDeadline() -> SCTPTime? { nil }
}

/// Sends `count` sequenced datagrams of `size` payload bytes from `source` to `destination`, one every
/// `interval` from `start`, and records replies.
final class PacedSender: SimulatedHost {
    let source: SCTPSocketAddress
    let destination: SCTPSocketAddress
    let size: Int
    let interval: SCTPDuration
    let count: Int
    private(set) var sent = 0
    private(set) var sendTimes: [SCTPTime] = []
    private(set) var replies: [SinkHost.Arrival] = []
    private var next: SCTPTime
    private var pending: SCTPDatagram?

    init(
        from source: SCTPSocketAddress, to destination: SCTPSocketAddress, size: Int, interval: SCTPDuration,
        count: Int, start: SCTPTime = .zero
    ) {
        self.source = source
        self.destination = destination
        self.size = size
        self.interval = interval
        self.count = count
        self.next = start
    }

    func handle(_ datagram: SCTPDatagram, now: SCTPTime) {
        replies.append(SinkHost.Arrival(time: now, datagram: datagram))
    }

    func handleTimeout(now: SCTPTime) {
        guard sent < count, now >= next else { return }
        pending = SCTPDatagram(
            source: source, destination: destination,
            payload: sequencedPayload(UInt64(sent), size: size))
        sendTimes.append(now)
        sent += 1
        next = next + interval
    }

    func pollTransmit() -> SCTPDatagram? {
        defer { pending = nil }
        return pending
    }

    func nextDeadline() -> SCTPTime? { sent < count ? next : nil }
}

/// A broken host whose deadline never moves: handling the timeout does not re-arm it.
final class StuckTimerHost: SimulatedHost {
    private(set) var timeouts = 0
    func handle(_ datagram: SCTPDatagram, now: SCTPTime) {}
    func handleTimeout(now: SCTPTime) { timeouts += 1 }
    func pollTransmit() -> SCTPDatagram? { nil }
    func nextDeadline() -> SCTPTime? { .zero }
}

/// A broken host that re-arms its timer one nanosecond ahead forever: time creeps, so only a step budget stops it.
final class CreepingTimerHost: SimulatedHost {
    private var deadline = SCTPTime.zero
    func handle(_ datagram: SCTPDatagram, now: SCTPTime) {}
    func handleTimeout(now: SCTPTime) { deadline = now + .nanoseconds(1) }
    func pollTransmit() -> SCTPDatagram? { nil }
    func nextDeadline() -> SCTPTime? { deadline }
}
