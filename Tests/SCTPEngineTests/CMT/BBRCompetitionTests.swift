import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// bbr beside one loss-based flow in the same bottleneck queue (the lab's "compete" case of issue 20 in the
/// simulator): a reno association from another host shares one 20 Mbit/s link with a bbr association, both bulk,
/// and the bbr association's share of what the link delivered must land between 35 % and 65 %: neither yielding
/// the queue to the loss-based flow nor taking the link from it.
@Suite struct BBRCompetitionTests {
    /// What one run delivered: payload bytes per sender in the measured interval, and the bbr path's state.
    struct Outcome {
        var bbrBytes: Int
        var renoBytes: Int
        var bbrShare: Double { Double(bbrBytes) / Double(max(1, bbrBytes + renoBytes)) }
    }

    /// Two senders (bbr at 10.0.0.1, reno at 10.0.0.2) to two receivers over one shared data link of `mbit`
    /// Mbit/s, 10 ms one way, with a drop-tail queue `queueMilliseconds` long; acks return on their own links. The
    /// reno sender starts `renoDelay` after the bbr one; bytes are counted from `from` to `until`.
    static func compete(
        seed: UInt64, mbit: Int64 = 20, queueMilliseconds: Int64 = 50, renoDelay: SCTPDuration = .zero,
        from: SCTPDuration = .seconds(5), until: SCTPDuration = .seconds(30)
    ) throws -> Outcome {
        let network = SimulatedNetwork(seed: seed, name: "bbr-compete-\(seed)-\(queueMilliseconds)")
        var bbr = SCTPConfiguration()
        bbr.congestionControl = .bbr
        bbr.multipath = .singlePath
        var reno = SCTPConfiguration()
        reno.congestionControl = .reno
        reno.multipath = .singlePath
        let senders = [
            EndpointHost(endpoint: SCTPEndpoint(configuration: bbr, seed: seed &* 7 &+ 1)),
            EndpointHost(endpoint: SCTPEndpoint(configuration: reno, seed: seed &* 7 &+ 2)),
        ]
        let senderAddresses = [SCTPIPAddress(v4: 10, 0, 0, 1), SCTPIPAddress(v4: 10, 0, 0, 2)]
        let receiverAddresses = [SCTPIPAddress(v4: 192, 0, 2, 1), SCTPIPAddress(v4: 192, 0, 2, 2)]
        let receivers = [bbr, reno].enumerated().map { i, configuration in
            EndpointHost(
                endpoint: SCTPEndpoint(
                    configuration: configuration, seed: seed &* 11 &+ UInt64(i),
                    advertisedAddresses: [receiverAddresses[i]]))
        }
        let rate = mbit * 1_000_000
        network.addLink(
            from: senderAddresses, to: receiverAddresses,
            LinkConfiguration(
                rateBitsPerSecond: rate, queueLimitBytes: Int(rate / 8 * queueMilliseconds / 1000),
                delay: .milliseconds(10)),
            name: "bottleneck>")
        for i in 0..<2 {
            network.attach(senders[i], at: senderAddresses[i])
            network.attach(receivers[i], at: receiverAddresses[i])
            network.addLink(
                from: receiverAddresses[i], to: senderAddresses[i],
                LinkConfiguration(rateBitsPerSecond: rate, queueLimitBytes: 1 << 20, delay: .milliseconds(10)),
                name: "return\(i + 1)<")
        }
        func start(_ i: Int) {
            var id: SCTPAssociationID!
            senders[i].perform(at: network.now) {
                id = $0.connect(
                    to: SCTPSocketAddress(ip: receiverAddresses[i], port: 9899),
                    from: SCTPSocketAddress(ip: senderAddresses[i], port: 40000), peerPort: 5000, now: network.now)
            }
            senders[i].startTransfer(on: id, stream: StreamID(0), total: 1 << 30, messageSize: 64 * 1024)
        }
        start(0)
        network.schedule(after: renoDelay) { start(1) }
        var atStart = [0, 0]
        network.schedule(at: SCTPTime.zero + from) { atStart = receivers.map(\.totalReceivedBytes) }
        try network.run(until: SCTPTime.zero + until)
        #expect(receivers.allSatisfy { $0.corruption == nil })
        return Outcome(
            bbrBytes: receivers[0].totalReceivedBytes - atStart[0],
            renoBytes: receivers[1].totalReceivedBytes - atStart[1])
    }

    /// The lab's case: a 50 ms queue (tbf), the loss-based flow starting with bbr, in its startup, or once bbr has
    /// the link. Measured (25 s from the fifth second): bbr's share 47 %, 53 % and 48 %; 74 % with the loss-based
    /// flow starting beside it before bbr competed on a foreign queue (the standing-queue check took the queued RTT
    /// as the minimum, and two BDP of it kept the queue full).
    @Test(arguments: [0, 500, 3000] as [Int64])
    func aLossBasedFlowGetsAFairShare(renoDelayMilliseconds: Int64) throws {
        let outcome = try Self.compete(seed: 41, renoDelay: .milliseconds(renoDelayMilliseconds))
        #expect(
            (0.35...0.65).contains(outcome.bbrShare),
            "bbr \(outcome.bbrBytes * 8 / 25_000_000) Mbit/s, reno \(outcome.renoBytes * 8 / 25_000_000) Mbit/s")
    }

    /// The simulator's other queue: 100 ms, five bandwidth-delay products. Measured: 45 %; before, 34 % (drain never
    /// ended: pacing at a third of a shrinking estimate beside a full queue).
    @Test func aLossBasedFlowGetsAFairShareOfADeepQueue() throws {
        let outcome = try Self.compete(seed: 44, queueMilliseconds: 100)
        #expect(
            (0.35...0.65).contains(outcome.bbrShare),
            "bbr \(outcome.bbrBytes * 8 / 25_000_000) Mbit/s, reno \(outcome.renoBytes * 8 / 25_000_000) Mbit/s")
    }
}

