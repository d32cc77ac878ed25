import NIOCore
import SCTPEngine
import SCTPSimulation
import Testing

/// Runs a lossy, jittery, reordering, duplicating two-path transfer through a symmetric NAT and returns what was
/// delivered, in order.
func impairedTransferTrace(seed: UInt64) throws -> [SimulatedNetwork.TraceEntry] {
    let network = SimulatedNetwork(seed: seed, name: "determinism-\(seed)")
    network.recordsTrace = true
    let nat = SimulatedNAT(outsideAddress: natOutsideIP, configuration: .symmetric, seed: seed)
    let secondClientIP = SCTPIPAddress(v4: 10, 1, 0, 2)
    let first = PacedSender(from: client, to: server, size: 600, interval: .microseconds(700), count: 3000)
    let second = PacedSender(
        from: SCTPSocketAddress(ip: secondClientIP, port: 5000), to: server, size: 1100,
        interval: .microseconds(300), count: 3000)
    let server = SinkHost(echoes: true)
    network.attach(first, at: clientIP)
    network.attach(second, at: secondClientIP)
    network.attach(server, at: serverIP)
    let impaired = LinkConfiguration(
        rateBitsPerSecond: 20_000_000, queueLimitBytes: 30_000, delay: .milliseconds(20), jitter: .milliseconds(3),
        lossProbability: 0.02, reorderProbability: 0.02, duplicateProbability: 0.01)
    network.addBidirectionalLink(between: clientIP, and: serverIP, impaired, nat: nat)
    network.addBidirectionalLink(between: secondClientIP, and: serverIP, impaired)
    network.schedule(at: SCTPTime(nanoseconds: 700_000_000)) { nat.rebind() }
    try network.run(for: .seconds(3))
    return network.trace
}

@Suite struct SimulationLoopTests {
    @Test func sameSeedGivesAnIdenticalRun() throws {
        let first = try impairedTransferTrace(seed: 42)
        let second = try impairedTransferTrace(seed: 42)
        #expect(first.count > 5_000)
        #expect(first == second)
        #expect(try impairedTransferTrace(seed: 43) != first)
    }

    @Test func aTimerThatNeverMovesIsALivelock() throws {
        let network = SimulatedNetwork(name: "livelock-timer")
        network.maxEventsPerInstant = 1000
        let host = StuckTimerHost()
        network.attach(host, at: clientIP)
        let error = #expect(throws: SimulationError.self) { try network.run(for: .seconds(1)) }
        #expect(error == .livelock(at: .zero, events: 1001, limit: 1000))
        #expect(host.timeouts == 1000)
    }

    @Test func zeroDelayPingPongIsALivelock() throws {
        let network = SimulatedNetwork(name: "livelock-pingpong")
        let left = SinkHost(echoes: true)
        let right = SinkHost(echoes: true)
        network.attach(left, at: clientIP)
        network.attach(right, at: serverIP)
        network.addBidirectionalLink(between: clientIP, and: serverIP)
        left.enqueue(SCTPDatagram(source: client, destination: server, payload: sequencedPayload(0, size: 8)))
        let error = #expect(throws: SimulationError.self) { try network.run(for: .seconds(1)) }
        guard case .livelock(let at, _, let limit) = error else {
            Issue.record("expected a livelock, got \(String(describing: error))")
            return
        }
        #expect(at == .zero)
        #expect(limit == network.maxEventsPerInstant)
    }

    @Test func creepingTimerExhaustsTheStepBudget() throws {
        let network = SimulatedNetwork(name: "step-budget")
        network.maxStepsPerRun = 10_000
        network.attach(CreepingTimerHost(), at: clientIP)
        let error = #expect(throws: SimulationError.self) { try network.run(for: .seconds(1)) }
        #expect(error == .stepBudgetExceeded(at: SCTPTime(nanoseconds: 9_999), steps: 10_001, limit: 10_000))
    }

    @Test func runUntilStopsWhenTheConditionHoldsOrTimesOut() throws {
        let (network, _, sink, _) = pacedPair(
            name: "run-until", LinkConfiguration(delay: .milliseconds(7)), size: 100, interval: .milliseconds(10),
            count: 10)
        let reached = try network.runUntil({ sink.arrivals.count == 3 }, timeout: .seconds(1))
        #expect(reached == SCTPTime(nanoseconds: 27_000_000))
        #expect(network.now == reached)
        let error = #expect(throws: SimulationError.self) {
            try network.runUntil({ sink.arrivals.count == 11 }, timeout: .seconds(2))
        }
        #expect(error == .conditionTimedOut(at: SCTPTime(nanoseconds: 2_027_000_000)))
        #expect(sink.arrivals.count == 10)
    }

    @Test func idleClockJumpsToTheEndAndActionsRunOnTime() throws {
        let network = SimulatedNetwork(name: "idle", start: SCTPTime(nanoseconds: 1_000))
        var times: [SCTPTime] = []
        network.schedule(after: .milliseconds(30)) { times.append(network.now) }
        network.schedule(after: .milliseconds(10)) { times.append(network.now) }
        try network.run(until: SCTPTime(nanoseconds: 5_000_000_000))
        #expect(times == [SCTPTime(nanoseconds: 10_001_000), SCTPTime(nanoseconds: 30_001_000)])
        #expect(network.now == SCTPTime(nanoseconds: 5_000_000_000))
    }

    /// A long paced run loses nothing and keeps the link's rate within 1%. How fast the simulator runs is a
    /// benchmark's figure, not a unit test's: `agg-bench sim` (BENCHMARKS.md, "Simulator speed").
    @Test func aSimulatedMinuteAt50MbitDeliversEveryPacketAtTheLinkRate() throws {
        // 1200-byte payloads are 1228-byte IP packets: 9824 bits, one every 196.48 µs at 50 Mbit/s.
        let rate: Int64 = 50_000_000
        let interval = SCTPDuration.nanoseconds(9824 * 1_000_000_000 / rate)
        let count = Int(60_000_000_000 / interval.nanoseconds)
        let (network, _, sink, link) = pacedPair(
            name: "minute-50mbit", LinkConfiguration(rateBitsPerSecond: rate, delay: .milliseconds(20)), size: 1200,
            interval: interval, count: count, keepsPayloads: false)
        try network.run(for: .seconds(61))
        #expect(sink.arrivals.count == count)
        #expect(link.counters.droppedPackets == 0)
        let span = sink.arrivals.last!.time - sink.arrivals.first!.time
        let measured = Double(link.counters.deliveredBytes - 1228) * 8 / span.seconds
        #expect(abs(measured - Double(rate)) / Double(rate) < 0.01)
    }
}
