import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// agg's UDP datagrams (unordered, timed reliability, on stream 0 beside a bulk stream) over the lab's two simulated
/// paths (20 and 30 Mbit/s, 20 ms RTT), issue 15 item 4: a datagram never waits behind the bulk data queued in the
/// association, and once a path is potentially failed the datagrams go on the other one.
@Suite struct DatagramPathSimulationTests {
    static let paths = [
        PathSpec(rateBitsPerSecond: 20_000_000, rtt: .milliseconds(20)),
        PathSpec(rateBitsPerSecond: 30_000_000, rtt: .milliseconds(20)),
    ]
    static let clientAddress = SCTPSocketAddress(ip: .init(v4: 10, 0, 0, 1), port: 40000)
    static let lifetime = SCTPDuration.milliseconds(300)
    static let datagramSize = 200
    static let datagramPPID = PPID(0x6167_6720)

    /// What happened to each datagram: when it was sent, and when it arrived.
    final class Datagrams {
        var sentAt: [SCTPTime] = []
        var arrivedAt: [Int: SCTPTime] = [:]
        /// The client's queued and in-flight bytes when each datagram was sent.
        var queuedBehind: [Int] = []

        func delay(_ i: Int) -> SCTPDuration? { arrivedAt[i].map { $0 - sentAt[i] } }
    }

    /// Runs a bulk transfer of `bulkBytes` on stream 1 and sends a datagram every 10 ms on stream 0 from 500 ms to
    /// `until`, as aggclient sends UDP-DATAGRAM; `failAt` takes path 1 down both ways. Returns the datagrams and the
    /// time path 1 was reported potentially failed, if it was.
    static func run(
        seed: UInt64, paths: [PathSpec] = paths, bulkBytes: Int, bulkStreams: Int = 1, until: SCTPDuration,
        failAt: SCTPDuration? = nil, interval: SCTPDuration = .milliseconds(10), size: Int = datagramSize,
        start: SCTPDuration = .milliseconds(500), scenario given: MultipathScenario? = nil
    ) throws -> (datagrams: Datagrams, potentiallyFailedAt: SCTPTime?, scenario: MultipathScenario) {
        let scenario = given ?? MultipathScenario(seed: seed, paths: paths)
        let network = scenario.network
        let datagrams = Datagrams()
        var id: SCTPAssociationID!
        var potentiallyFailedAt: SCTPTime?
        scenario.client.perform(at: network.now) {
            id = $0.connect(
                to: SCTPSocketAddress(ip: scenario.serverAddresses[0], port: 9899), from: clientAddress,
                peerPort: 5000, now: network.now)
        }
        scenario.client.onEvent = { event, _ in
            if case .pathStateChanged(_, let remote, .potentiallyFailed) = event,
                remote.ip == scenario.serverAddresses[0], potentiallyFailedAt == nil
            {
                potentiallyFailedAt = network.now
            }
        }
        scenario.server.onEvent = { event, _ in
            guard case .message(_, let message) = event, message.ppid == datagramPPID,
                let index = message.payload.getInteger(at: message.payload.readerIndex, as: UInt32.self)
            else { return }
            datagrams.arrivedAt[Int(index)] = network.now
        }
        for stream in 1..<(bulkStreams + 1) {
            scenario.client.startTransfer(
                on: id, stream: StreamID(UInt16(stream)), total: bulkBytes / bulkStreams, messageSize: 16 * 1024)
        }
        func sendDatagram() {
            let now = network.now
            guard now - .zero < until else { return }
            let index = datagrams.sentAt.count
            var payload = ByteBuffer()
            payload.writeInteger(UInt32(index))
            payload.writeRepeatingByte(0x55, count: size - 4)
            let association = scenario.client.endpoint.associations[id]!
            datagrams.queuedBehind.append(association.sendQueue.bufferedBytes)
            datagrams.sentAt.append(now)
            scenario.client.perform(at: now) {
                try? $0.send(
                    payload, on: id, stream: StreamID(0), ppid: datagramPPID, unordered: true,
                    reliability: .timed(lifetime: lifetime), now: now)
            }
            network.schedule(after: interval, sendDatagram)
        }
        network.schedule(after: start, sendDatagram)
        if let failAt {
            network.schedule(after: failAt) {
                scenario.dataLinks[0].isUp = false
                scenario.returnLinks[0].isUp = false
            }
        }
        try network.run(until: .zero + until + .milliseconds(500))
        return (datagrams, potentiallyFailedAt, scenario)
    }

    /// 40 MB of bulk data on sixteen streams keep both paths' cwnds full and the send queue near a 4 MiB high
    /// watermark (two thirds of a second of both paths; `minimumSendBufferSize` raised to the ceiling, as a deployment
    /// that wants a deep queue could, since by default the queue follows the windows) for the whole run; every
    /// datagram still arrives within the
    /// one-way delay, what the routers' queues already held (a bandwidth-delay product each) and the one 16 KiB
    /// message a bulk stream may have started (RFC 9260 §6.9): it joins the send queue's sparse list and goes before
    /// the bulk streams' queued data. Measured: worst 41 ms, median 26 ms; 72 ms worst with the sparse list
    /// switched off (a turn of each bulk stream first, 256 KiB).
    @Test func aDatagramDoesNotWaitBehindTheQueuedBulkData() throws {
        var configuration = SCTPConfiguration()
        configuration.minimumSendBufferSize = configuration.sendBufferSize
        let (datagrams, _, scenario) = try Self.run(
            seed: 71, bulkBytes: 40_000_000, bulkStreams: 16, until: .seconds(3),
            scenario: MultipathScenario(seed: 71, paths: Self.paths, configuration: configuration))
        #expect(scenario.server.corruption == nil)
        let count = datagrams.sentAt.count
        #expect(count == 250)
        #expect(datagrams.arrivedAt.count == count, "\(count - datagrams.arrivedAt.count) datagrams lost")
        let behind = datagrams.queuedBehind.sorted()[count / 2]
        #expect(behind >= 2_000_000, "the send queue held only \(behind) bytes (median)")
        let delays = (0..<count).compactMap(datagrams.delay).sorted()
        let worst = try #require(delays.last)
        // 10 ms one way, up to 20 ms in a router queue of one BDP (50 KB at 20 Mbit/s), a started 16 KiB message
        // and the packets around it: 50 ms. Draining the send queue ahead of it would take 670 ms.
        #expect(worst <= .milliseconds(50), "worst \(worst), median \(delays[count / 2])")
    }

    /// Path 1 dies 1.5 s in, under the same bulk load. The datagrams sent after it is reported potentially failed
    /// all arrive, over path 2, within the path's delay and queue; of those sent before, at most the ones in flight
    /// on path 1 (an RTO's worth) are lost, and none arrives after its lifetime.
    @Test func datagramsAvoidAPotentiallyFailedPath() throws {
        let failAt = SCTPDuration.milliseconds(1500)
        let (datagrams, pfAt, _) = try Self.run(
            seed: 73, bulkBytes: 40_000_000, until: .seconds(4), failAt: failAt)
        let potentiallyFailedAt = try #require(pfAt, "path 1 was never reported potentially failed")
        let failedAt = SCTPTime.zero + failAt
        #expect(potentiallyFailedAt - failedAt <= .seconds(1), "path 1 reported at \(potentiallyFailedAt)")
        let after = datagrams.sentAt.indices.filter { datagrams.sentAt[$0] >= potentiallyFailedAt }
        #expect(after.count >= 150)
        let lostAfter = after.filter { datagrams.arrivedAt[$0] == nil }
        #expect(lostAfter.isEmpty, "\(lostAfter.count) of \(after.count) datagrams lost after path 1 was PF")
        let slowAfter = after.compactMap(datagrams.delay).filter { $0 > .milliseconds(50) }
        #expect(slowAfter.isEmpty, "\(slowAfter.count) slow after PF, worst \(slowAfter.max() ?? .zero)")
        // Before: what path 1 had in flight when it died, and what went to it until the RTO fired.
        let before = datagrams.sentAt.indices.filter {
            datagrams.sentAt[$0] >= failedAt && datagrams.sentAt[$0] < potentiallyFailedAt
        }
        // Only path 1's share of them can be lost (measured: none, the RTO fired within their lifetime and they
        // went again on path 2).
        let lostBefore = before.filter { datagrams.arrivedAt[$0] == nil }.count
        #expect(lostBefore <= before.count / 2, "lost \(lostBefore) of \(before.count) sent while path 1 was dying")
        let late = datagrams.sentAt.indices.compactMap(datagrams.delay).filter { $0 > Self.lifetime }
        #expect(late.isEmpty, "\(late.count) datagrams arrived after their lifetime")
    }

    /// A datagram flow alone, from a thousand a second (the UDP lab's echo) to fifty, no bulk data: path 1 dies 1.5 s
    /// in. Datagrams lost on it may be rescued on path 2 by fast retransmission (the later ones there report the
    /// gap), which must not keep path 1's retransmission timer from expiring: path 1 is found potentially failed
    /// within a second, as under bulk load, and no datagram sent after that is lost. (Measured: 190-260 ms, none
    /// lost.)
    @Test(arguments: [(79, 1), (80, 1), (81, 2), (82, 2), (83, 5), (84, 5), (85, 10), (86, 20)])
    func aPathDyingUnderADatagramFlowAloneIsFoundWithinASecond(seed: Int, ms: Int) throws {
        let failAt = SCTPDuration.milliseconds(1500)
        let (datagrams, pfAt, _) = try Self.run(
            seed: UInt64(seed), bulkBytes: 0, bulkStreams: 0, until: .seconds(5), failAt: failAt,
            interval: .milliseconds(Int64(ms)))
        let potentiallyFailedAt = try #require(pfAt, "path 1 was never reported potentially failed")
        let failedAt = SCTPTime.zero + failAt
        #expect(potentiallyFailedAt - failedAt <= .seconds(1), "path 1 reported at \(potentiallyFailedAt)")
        let after = datagrams.sentAt.indices.filter { datagrams.sentAt[$0] >= potentiallyFailedAt }
        let lostAfter = after.filter { datagrams.arrivedAt[$0] == nil }
        #expect(lostAfter.isEmpty, "\(lostAfter.count) of \(after.count) datagrams lost after path 1 was PF")
        let lost = datagrams.sentAt.indices.filter { datagrams.arrivedAt[$0] == nil }
        #expect(lost.count <= 500, "\(lost.count) datagrams lost in all")
    }

    /// A light flow keeps to the faster path (10 ms against 30 ms of RTT), so path 1 carries nothing but the heartbeat
    /// `refreshRoundTrips` sends it every second to keep its RTT current. Path 1 dies 3 s in; 3 s later path 2 slows
    /// to 50 ms, past path 1's last sample, which would send the flow back to path 1. That heartbeat, unanswered,
    /// must count against path 1 within one RTO (RFC 9260 §8.3), so path 1 is potentially failed well before, and
    /// the flow stays on path 2: nothing is lost and path 1 is offered no datagram. Before, an unanswered heartbeat
    /// counted only when the next one was due (RTO + HB.interval, 15 s): path 1 was found 3.3 s after it died, by
    /// the T3-rtx of the datagrams sent to it once path 2 slowed (the UDP lab's blackhole check saw the same: path 1
    /// potentially failed 3.1 s after the blackhole, and the datagrams sent to it just before lost).
    @Test func anIdlePathThatDiesIsFoundByItsHeartbeatBeforeTheFlowReturnsToIt() throws {
        let paths = [
            PathSpec(rateBitsPerSecond: 20_000_000, rtt: .milliseconds(30)),
            PathSpec(rateBitsPerSecond: 30_000_000, rtt: .milliseconds(10)),
        ]
        let scenario = MultipathScenario(seed: 97, paths: paths)
        var offeredBeforeFailure = 0
        scenario.network.schedule(after: .milliseconds(2_900)) {
            offeredBeforeFailure = scenario.dataLinks[0].counters.sentPackets
        }
        scenario.network.schedule(after: .seconds(6)) {
            for link in [scenario.dataLinks[1], scenario.returnLinks[1]] {
                link.configuration.delay = .milliseconds(25)
            }
        }
        let failAt = SCTPDuration.seconds(3)
        let (datagrams, pfAt, _) = try Self.run(
            seed: 97, bulkBytes: 0, bulkStreams: 0, until: .seconds(8), failAt: failAt, interval: .milliseconds(1),
            scenario: scenario)
        #expect(datagrams.sentAt.count == 7_500)
        // The flow kept to path 2 before the failure: path 1 was offered a heartbeat a second and its answers' SACKs.
        #expect(offeredBeforeFailure < 20, "path 1 was offered \(offeredBeforeFailure) packets before it died")
        let potentiallyFailedAt = try #require(pfAt, "path 1 was never reported potentially failed")
        // The next refresh within 1 s, its RTO (200 ms) after it.
        #expect(potentiallyFailedAt - (SCTPTime.zero + failAt) <= .milliseconds(1_500), "PF at \(potentiallyFailedAt)")
        // After it died path 1 was offered that heartbeat and the probes of a failed path (one per backed-off RTO).
        let offeredAfter = scenario.dataLinks[0].counters.droppedByLinkDown
        #expect(offeredAfter <= 8, "path 1 was offered \(offeredAfter) packets after it died")
        let lost = datagrams.sentAt.indices.filter { datagrams.arrivedAt[$0] == nil }
        #expect(lost.isEmpty, "\(lost.count) datagrams lost")
    }

    /// Paths whose delay alone is about the datagrams' lifetime or longer (a satellite hop, an uplink with a deep
    /// queue): 400 ms of RTT, whose first sample leaves the RTT variance at half of it, so the one-way estimate
    /// (SRTT / 2 + RTTVAR) is the whole 400 ms for a while, and 700 ms, 350 ms one way for good. A datagram that no
    /// path could deliver within its 300 ms may arrive up to half of it after the fastest path would deliver it, so
    /// it still goes once, as a plain UDP relay's would. Before, every one was dropped unsent as "would arrive late"
    /// (600 of 600 at both delays): UDP through such paths was a blackout. Measured now: 13 of 600 dropped at 400
    /// ms and 10 at 700 ms, all in the flow's first half second (they waited in the queue while the windows opened).
    /// (Also tried: 8 dropped at 320 ms, 0 at 560 and 600 ms, 44 at 900 ms, all in the first 1.7 s.)
    @Test(arguments: [400, 700])
    func datagramsGoOnPathsSlowerThanTheirLifetime(rttMilliseconds: Int) throws {
        let rtt = SCTPDuration.milliseconds(Int64(rttMilliseconds))
        let paths = [
            PathSpec(rateBitsPerSecond: 20_000_000, rtt: rtt), PathSpec(rateBitsPerSecond: 30_000_000, rtt: rtt),
        ]
        let (datagrams, _, scenario) = try Self.run(
            seed: 5, paths: paths, bulkBytes: 0, bulkStreams: 0, until: .seconds(10), start: .seconds(4))
        let count = datagrams.sentAt.count
        #expect(count == 600)
        let arrived = datagrams.arrivedAt.count
        #expect(arrived * 100 >= count * 95, "\(count - arrived) of \(count) lost")
        let client = try #require(scenario.client.endpoint.associations.values.first)
        #expect(client.output.partialReliability.messagesAbandonedUnsent == count - arrived)
    }

    /// A heavier flow, 8 Mbit/s of 1,000-byte datagrams (a video call), beside sixteen bulk streams: stream 0 runs
    /// dry between datagrams, so each one comes back as a sparse stream and goes before the bulk data; all arrive,
    /// 99 % within 50 ms (measured: median 26 ms, p99 40 ms, worst 73 ms).
    @Test func aHeavyUDPFlowBesideSixteenBulkStreams() throws {
        let (datagrams, _, _) = try Self.run(
            seed: 79, bulkBytes: 40_000_000, bulkStreams: 16, until: .seconds(3), interval: .milliseconds(1),
            size: 1000)
        let count = datagrams.sentAt.count
        let delays = (0..<count).compactMap(datagrams.delay).sorted()
        #expect(count == 2500)
        #expect(delays.count == count, "\(count - delays.count) datagrams lost")
        let p99 = delays[delays.count * 99 / 100]
        #expect(p99 <= .milliseconds(50), "p99 \(p99), median \(delays[delays.count / 2])")
        #expect(delays.allSatisfy { $0 <= Self.lifetime })
    }

    /// A light flow on two equal paths takes turns on them, even when path 2 measured slow once: its delay is
    /// tripled while the association comes up and a 2 MB transfer measures both paths (path 2's SRTT near 60 ms,
    /// path 1's 20), and is back to normal before the datagrams start. Sparse data keeps to the lowest-RTT path
    /// while another measures slower, and what measures a path left out is only a heartbeat every 15 s: without
    /// the heartbeats `refreshRoundTrips` sends to such a path, every datagram stayed on path 1 (the UDP lab saw
    /// it once on its equal paths). With them, and `Path.recentRoundTrip` counting the first normal sample, path
    /// 2 carries its share at once; on alike paths a light flow alone alternates (by the round-robin cursor,
    /// which moves per transmit, a message and its SACK make two and path 1 took nearly all).
    @Test func aPathThatMeasuredSlowOnceGetsLightTrafficBackOnceItIsNot() throws {
        let paths = [
            PathSpec(rateBitsPerSecond: 20_000_000, rtt: .milliseconds(20)),
            PathSpec(rateBitsPerSecond: 20_000_000, rtt: .milliseconds(60)),
        ]
        var carried: (early: [Int], late: [Int]) = ([], [])
        let scenario = MultipathScenario(seed: 91, paths: paths)
        scenario.network.schedule(after: .milliseconds(2_500)) {
            for link in [scenario.dataLinks[1], scenario.returnLinks[1]] {
                link.configuration.delay = .milliseconds(10)
            }
        }
        scenario.network.schedule(after: .seconds(6)) {
            carried.early = scenario.dataLinks.map(\.counters.deliveredPayloadBytes)
        }
        scenario.network.schedule(after: .seconds(12)) {
            carried.late = scenario.dataLinks.map(\.counters.deliveredPayloadBytes)
        }
        let (datagrams, _, _) = try Self.run(
            seed: 91, bulkBytes: 2_000_000, until: .seconds(12), start: .seconds(3), scenario: scenario)
        #expect(datagrams.arrivedAt.count == datagrams.sentAt.count)
        let share = (0..<2).map { carried.late[$0] - carried.early[$0] }
        let total = share.reduce(0, +)
        #expect(total > 500 * Self.datagramSize)
        #expect(share[1] * 5 > total * 2, "path 2 carried \(share[1]) of \(total) bytes from 6 s to 12 s")
    }

    /// A path whose delay alone outlasts a datagram's lifetime (a bufferbloated LTE uplink: 700 ms RTT) beside a
    /// 20 ms one, no bulk data: a datagram the slow path cannot deliver in time is left for the fast path, never
    /// dropped because the slow path's turn came first (RFC 3758 §4.1 TR3 drops a message only when it cannot
    /// arrive in time). Every datagram arrives, within its lifetime.
    @Test func aDatagramTooLateForOnePathGoesOnTheOther() throws {
        let paths = [
            PathSpec(rateBitsPerSecond: 20_000_000, rtt: .milliseconds(700)),
            PathSpec(rateBitsPerSecond: 30_000_000, rtt: .milliseconds(20)),
        ]
        // The handshake crosses the slow path (1.4 s): the datagrams start once both paths are up and measured.
        let (datagrams, _, _) = try Self.run(
            seed: 83, paths: paths, bulkBytes: 0, until: .seconds(7), start: .seconds(4))
        let count = datagrams.sentAt.count
        #expect(count == 300)
        #expect(datagrams.arrivedAt.count == count, "\(count - datagrams.arrivedAt.count) of \(count) dropped")
        let delays = (0..<count).compactMap(datagrams.delay)
        #expect(delays.allSatisfy { $0 <= Self.lifetime }, "late: \(delays.filter { $0 > Self.lifetime }.count)")
    }
}
