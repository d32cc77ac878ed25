import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// PR-SCTP over a simulated lossy link: unordered datagrams with a lifetime (RFC 7496 timed reliability), alone
/// and beside a reliable bulk transfer. None may arrive after its lifetime, the reliable stream must not stall, and
/// the receiver must never hold on to what the sender abandoned.
@Suite struct PartialReliabilitySimulationTests {
    static let lifetime = SCTPDuration.milliseconds(200)
    static let datagramStream = StreamID(1)

    /// What the receiving application saw of the datagrams, and the receiver's state over the run.
    final class Observer {
        var delivered = 0
        var late = 0
        var oldest = SCTPDuration.zero
        var maxBufferedBytes = 0
        var maxHeldFragments = 0
        var maxGapRanges = 0
        /// Messages of the reliable stream delivered, and whether each came in sequence.
        var reliableDelivered = 0
        var reliableOutOfSequence = 0
        /// The longest wait between two deliveries on the reliable stream, and when it last delivered.
        var longestReliableGap = SCTPDuration.zero
        var lastReliableDelivery: SCTPTime?
    }

    /// Sends `count` ordered, reliable messages of `size` bytes every `interval` on stream 0, each carrying its
    /// sequence number.
    static func sendReliable(
        _ s: OnePathScenario, on id: SCTPAssociationID, count: Int, size: Int, interval: SCTPDuration
    ) -> () -> Int {
        var sent = 0
        func sendOne() {
            s.client.perform(at: s.network.now) { endpoint in
                var payload = ByteBuffer()
                payload.writeInteger(Int64(sent))
                payload.writeRepeatingByte(0x5A, count: size - 8)
                try? endpoint.send(payload, on: id, stream: StreamID(0), now: s.network.now)
            }
            sent += 1
            if sent < count { s.network.schedule(after: interval, sendOne) }
        }
        s.network.schedule(after: .zero, sendOne)
        return { sent }
    }

    /// Sends `count` datagrams of `size` bytes every `interval` from `s.client`, each stamped with its send time.
    static func sendDatagrams(
        _ s: OnePathScenario, on id: SCTPAssociationID, count: Int, size: Int, interval: SCTPDuration
    ) -> () -> Int {
        var sent = 0
        func sendOne() {
            s.client.perform(at: s.network.now) { endpoint in
                var payload = ByteBuffer()
                payload.writeInteger(s.network.now.nanoseconds)
                payload.writeRepeatingByte(0xD6, count: size - 8)
                try? endpoint.send(
                    payload, on: id, stream: datagramStream, unordered: true,
                    reliability: .timed(lifetime: lifetime), now: s.network.now)
            }
            sent += 1
            if sent < count { s.network.schedule(after: interval, sendOne) }
        }
        s.network.schedule(after: .zero, sendOne)
        return { sent }
    }

    /// Watches the server: datagram ages on delivery, reliable-stream gaps, and every 50 ms its receive state.
    static func observe(_ s: OnePathScenario, until end: SCTPTime) -> Observer {
        let observer = Observer()
        s.server.onEvent = { event, host in
            guard case .message(_, let message) = event else { return }
            if message.stream == datagramStream {
                let stamp = message.payload.getInteger(at: message.payload.readerIndex, as: Int64.self)!
                let age = host.now - SCTPTime(nanoseconds: stamp)
                observer.delivered += 1
                observer.oldest = max(observer.oldest, age)
                if age > lifetime { observer.late += 1 }
            } else {
                let sequence = message.payload.getInteger(at: message.payload.readerIndex, as: Int64.self)!
                if sequence != Int64(observer.reliableDelivered) { observer.reliableOutOfSequence += 1 }
                observer.reliableDelivered += 1
                if let last = observer.lastReliableDelivery {
                    observer.longestReliableGap = max(observer.longestReliableGap, host.now - last)
                }
                observer.lastReliableDelivery = host.now
            }
        }
        func sample() {
            if let association = s.server.endpoint.associations.values.first {
                observer.maxBufferedBytes = max(observer.maxBufferedBytes, association.reassembly.bufferedBytes)
                observer.maxHeldFragments = max(observer.maxHeldFragments, association.reassembly.heldFragmentCount)
                observer.maxGapRanges = max(observer.maxGapRanges, association.dataTracker.gapRangeCount)
            }
            if s.network.now < end { s.network.schedule(after: .milliseconds(50), sample) }
        }
        s.network.schedule(after: .zero, sample)
        return observer
    }

    /// Checks the receiver holds nothing once the sender is quiet: every abandoned TSN was skipped.
    static func expectReceiverDrained(_ s: OnePathScenario, _ id: SCTPAssociationID) {
        let server = s.server.endpoint.associations.values.first!
        let client = s.client.endpoint.associations[id]!
        #expect(server.reassembly.bufferedBytes == 0)
        #expect(server.reassembly.heldFragmentCount == 0)
        #expect(server.dataTracker.gapRangeCount == 0)
        #expect(server.dataTracker.cumulativeTSN == client.outstanding.highestOutstandingTSN)
        #expect(client.outstanding.isEmpty)
    }

    /// Timed datagrams beside a paced reliable stream over a link losing 3% each way: no datagram arrives after its
    /// 200 ms lifetime, lost ones are abandoned and skipped, and the reliable stream delivers every message in order
    /// without stalling behind them.
    @Test(arguments: [21, 22, 23] as [UInt64])
    func timedDatagramsBesideAReliableStream(seed: UInt64) throws {
        let link = LinkConfiguration(rateBitsPerSecond: 20_000_000, delay: .milliseconds(40), lossProbability: 0.03)
        let s = OnePathScenario(seed: seed, link: link)
        let id = s.connect()
        try s.network.runUntil({ !s.client.established.isEmpty && !s.server.established.isEmpty }, timeout: .seconds(5))
        let count = 2_000
        let reliableCount = 2_000
        let observer = Self.observe(s, until: s.network.now + .seconds(30))
        let sent = Self.sendDatagrams(s, on: id, count: count, size: 300, interval: .milliseconds(10))
        let reliableSent = Self.sendReliable(s, on: id, count: reliableCount, size: 1_000, interval: .milliseconds(10))
        try s.network.runUntil(
            { observer.reliableDelivered == reliableCount && sent() == count && reliableSent() == reliableCount },
            timeout: .seconds(40))
        try s.network.run(for: .seconds(3))

        #expect(observer.late == 0, "oldest datagram delivered at \(observer.oldest)")
        #expect(observer.delivered <= count)
        // Congestion control paces both streams (each send leaves in a small packet of its own here, and every loss
        // halves cwnd): datagrams that would wait in the send queue past their lifetime are dropped unsent (RFC 3758
        // §4.1 TR3), so fewer arrive than the 3% loss alone would allow.
        #expect(observer.delivered >= count * 75 / 100, "\(observer.delivered) of \(count) delivered")
        #expect(observer.reliableOutOfSequence == 0)
        #expect(observer.longestReliableGap < .seconds(1), "reliable stream stalled \(observer.longestReliableGap)")
        let sender = s.client.endpoint.partialReliabilityCounters
        let receiver = s.server.endpoint.partialReliabilityCounters
        #expect(sender.messagesAbandoned > 0)
        #expect(sender.forwardTSNsSent > 0)
        #expect(receiver.forwardTSNsReceived > 0)
        // A datagram that arrived but whose acknowledgement was lost can be abandoned as well.
        #expect(observer.delivered + sender.messagesAbandoned >= count)
        Self.expectReceiverDrained(s, id)
    }

    /// A long run of timed datagrams alone over a link losing 5% each way: the receiver's buffer and gap state stay
    /// small throughout, since every lost datagram is skipped within about a lifetime, and none arrives late.
    @Test func receiverNeverAccumulatesAbandonedDatagrams() throws {
        let link = LinkConfiguration(rateBitsPerSecond: 10_000_000, delay: .milliseconds(50), lossProbability: 0.05)
        let s = OnePathScenario(seed: 31, link: link)
        let id = s.connect()
        try s.network.runUntil({ !s.client.established.isEmpty && !s.server.established.isEmpty }, timeout: .seconds(5))
        let count = 6_000
        let observer = Self.observe(s, until: s.network.now + .seconds(70))
        let sent = Self.sendDatagrams(s, on: id, count: count, size: 300, interval: .milliseconds(10))
        try s.network.runUntil({ sent() == count }, timeout: .seconds(70))
        try s.network.run(for: .seconds(3))

        #expect(observer.late == 0, "oldest datagram delivered at \(observer.oldest)")
        #expect(observer.delivered >= count * 85 / 100, "\(observer.delivered) of \(count) delivered")
        let sender = s.client.endpoint.partialReliabilityCounters
        #expect(sender.messagesAbandonedSent > 0)
        #expect(sender.forwardTSNsSent > 0)
        #expect(observer.delivered + sender.messagesAbandoned >= count)
        // Unordered datagrams are handed over on arrival; only an in-flight message's fragments could wait.
        #expect(observer.maxBufferedBytes <= 64 * 1024, "receive buffer held \(observer.maxBufferedBytes) bytes")
        #expect(observer.maxHeldFragments <= 16)
        #expect(observer.maxGapRanges <= 64, "\(observer.maxGapRanges) gap ranges held")
        Self.expectReceiverDrained(s, id)
    }
}
