import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// The stream scheduler over the simulated two-path network of the lab (20 and 30 Mbit/s, 20 ms RTT): a small
/// message queued behind a megabyte of several bulk streams' data leaves before that data.
@Suite struct StreamSchedulingSimulationTests {
    static let paths = [
        PathSpec(rateBitsPerSecond: 20_000_000, rtt: .milliseconds(20)),
        PathSpec(rateBitsPerSecond: 30_000_000, rtt: .milliseconds(20)),
    ]
    static let echoStream = StreamID(9)
    static let messageSize = 16 * 1024

    /// What the probe saw of the small message: when it was queued and arrived, and around it.
    final class Observation {
        var bulkStartedAt: SCTPTime?
        var queuedAt: SCTPTime?
        var arrivedAt: SCTPTime?
        /// The client's send-queue bytes and in-flight bytes when the small message was queued.
        var queuedBehind = 0
        var inFlight = 0
        /// Bulk bytes the server had received when the message was queued and when it arrived.
        var bulkReceivedAtQueue = 0
        var bulkReceivedAtArrival = 0
    }

    /// `count` bytes of the simulator's test pattern for `stream` from `offset`, as its receiver checks them.
    static func pattern(stream: UInt16, offset: Int, count: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(count)
        for i in offset..<(offset + count) { buffer.writeInteger(EndpointHost.patternByte(stream: stream, offset: i)) }
        return buffer
    }

    /// Stream 0 and seven more bulk streams of 16 KiB messages fill the send queue (the others queued all at once,
    /// message by message in turn); half a second later a 64-byte message goes on a ninth stream. Round robin by
    /// message would send a message of every bulk stream first (128 KiB, 21 ms of both paths); the sparse stream
    /// goes right after the one message already started (RFC 9260 §6.9). Measured: 112 KiB of bulk data delivered
    /// while it travelled (188 KiB were in flight) and 20 ms from queue to delivery; 224 KiB and 39 ms with message
    /// round robin.
    @Test func smallMessageLeavesBeforeTheBulkStreamsQueuedData() throws {
        let scenario = MultipathScenario(seed: 41, paths: Self.paths)
        let observation = Observation()
        let otherStreams: [UInt16] = Array(1...7)
        let messagesPerStream = 40
        let echo = Self.echoStream.rawValue
        let probe: (SCTPTime) -> Void = { now in
            guard let id = scenario.client.established.first else { return }
            let received = scenario.server.totalReceivedBytes - scenario.server.receivedBytes[echo, default: 0]
            if observation.bulkStartedAt == nil {
                observation.bulkStartedAt = now
                let messages = otherStreams.map { stream in
                    (0..<messagesPerStream).map {
                        Self.pattern(stream: stream, offset: $0 * Self.messageSize, count: Self.messageSize)
                    }
                }
                scenario.client.perform(at: now) { endpoint in
                    for index in 0..<messagesPerStream {
                        for (i, stream) in otherStreams.enumerated() {
                            try? endpoint.send(messages[i][index], on: id, stream: StreamID(stream), now: now)
                        }
                    }
                }
            } else if observation.queuedAt == nil, now >= observation.bulkStartedAt! + .milliseconds(500) {
                let association = scenario.client.endpoint.associations[id]!
                observation.queuedAt = now
                observation.queuedBehind = association.sendQueue.bufferedBytes
                observation.inFlight = association.outstanding.totalFlightSize
                observation.bulkReceivedAtQueue = received
                scenario.client.perform(at: now) { endpoint in
                    try? endpoint.send(
                        Self.pattern(stream: echo, offset: 0, count: 64), on: id, stream: Self.echoStream, now: now)
                }
            } else if observation.queuedAt != nil, observation.arrivedAt == nil,
                scenario.server.receivedBytes[echo, default: 0] == 64
            {
                observation.arrivedAt = now
                observation.bulkReceivedAtArrival = received
            }
        }
        // Runs until 8 MB have arrived, of all streams together (about 1.5 s).
        _ = try scenario.run(bytes: 8_000_000, messageSize: Self.messageSize, probe: (.milliseconds(1), probe))
        #expect(scenario.server.corruption == nil)

        let queuedAt = try #require(observation.queuedAt)
        let arrivedAt = try #require(observation.arrivedAt, "the small message never arrived")
        #expect(observation.queuedBehind >= 1_000_000, "only \(observation.queuedBehind) bytes queued before it")
        // Bulk data delivered while it travelled: at most what was in flight when it was queued plus the message
        // already started; none of the other streams' queued messages.
        let overtaken = observation.bulkReceivedAtArrival - observation.bulkReceivedAtQueue
        #expect(
            overtaken <= observation.inFlight + Self.messageSize,
            "\(overtaken) bulk bytes delivered in between, \(observation.inFlight) were in flight")
        // The 10 ms one-way delay and at most 20 ms behind what was already in the routers' queues.
        #expect(arrivedAt - queuedAt <= .milliseconds(30), "took \(arrivedAt - queuedAt)")
    }

    /// A sparse stream's message goes on the path where it arrives first: CMT over 20 Mbit/s with 10 ms one way and
    /// 30 Mbit/s with 40 ms (BBR, as the daemons run), a bulk stream filling both, and a 64-byte message every
    /// 50 ms on another stream. Each arrives sooner than the slow path's 40 ms one way could carry it; when the path
    /// with room took it, about half of them travelled that path.
    @Test func sparseMessagesTakeTheFasterPath() throws {
        var configuration = SCTPConfiguration()
        configuration.congestionControl = .bbr
        let paths = [
            PathSpec(rateBitsPerSecond: 20_000_000, rtt: .milliseconds(20), queueBytes: 250_000),
            PathSpec(rateBitsPerSecond: 30_000_000, rtt: .milliseconds(80), queueBytes: 375_000),
        ]
        let scenario = MultipathScenario(seed: 42, paths: paths, configuration: configuration)
        let echo = Self.echoStream.rawValue
        let count = 20
        var firstSend: SCTPTime?
        var sentAt: [SCTPTime] = []
        var arrivals: [SCTPDuration] = []
        let probe: (SCTPTime) -> Void = { now in
            guard let id = scenario.client.established.first else { return }
            let received = scenario.server.receivedBytes[echo, default: 0]
            if received >= 64 * (arrivals.count + 1), arrivals.count < sentAt.count {
                arrivals.append(now - sentAt[arrivals.count])
            }
            // The bulk transfer runs a second before the first message, one every 50 ms after it.
            let start = firstSend ?? now + .seconds(1)
            firstSend = start
            guard sentAt.count < count, arrivals.count == sentAt.count,
                now >= start + .milliseconds(50) * Int64(sentAt.count)
            else { return }
            let offset = 64 * sentAt.count
            sentAt.append(now)
            scenario.client.perform(at: now) { endpoint in
                try? endpoint.send(
                    Self.pattern(stream: echo, offset: offset, count: 64), on: id, stream: Self.echoStream, now: now)
            }
        }
        _ = try scenario.run(bytes: 12_000_000, probe: (.milliseconds(1), probe))
        #expect(scenario.server.corruption == nil)
        #expect(arrivals.count == count, "\(arrivals.count) of \(count) arrived")
        // Measured: 13-23 ms, 31 ms for the first (startup's queue); 114 ms and 41-54 ms for half of them before.
        #expect(arrivals.allSatisfy { $0 < .milliseconds(40) }, "one way: \(arrivals)")
    }
}
