import NIOCore
import SCTPEngine
import SCTPSimulation
import Testing

let clientIP = SCTPIPAddress(v4: 10, 0, 0, 2)
let serverIP = SCTPIPAddress(v4: 198, 51, 100, 1)
let client = SCTPSocketAddress(ip: clientIP, port: 5000)
let server = SCTPSocketAddress(ip: serverIP, port: 9899)

/// IPv4 + UDP header bytes around every payload.
let ipv4Overhead = 28

/// A sender on `clientIP` and a sink on `serverIP` joined by one link each way.
func pacedPair(
    seed: UInt64 = 1, name: String, _ configuration: LinkConfiguration, size: Int = 1000,
    interval: SCTPDuration, count: Int, keepsPayloads: Bool = true
)
    -> (SimulatedNetwork, PacedSender, SinkHost, SimulatedLink)
{
    let network = SimulatedNetwork(seed: seed, name: name)
    let sender = PacedSender(from: client, to: server, size: size, interval: interval, count: count)
    let sink = SinkHost(keepsPayloads: keepsPayloads)
    network.attach(sender, at: clientIP)
    network.attach(sink, at: serverIP)
    let (forward, _) = network.addBidirectionalLink(between: clientIP, and: serverIP, configuration)
    return (network, sender, sink, forward)
}

/// Binomial bounds: `count` must lie within `sigmas` standard deviations of n·p.
func isWithinBinomialBounds(_ count: Int, trials: Int, probability p: Double, sigmas: Double = 5) -> Bool {
    let mean = Double(trials) * p
    let deviation = (Double(trials) * p * (1 - p)).squareRoot()
    return abs(Double(count) - mean) <= sigmas * deviation
}

@Suite struct SimulationLinkTests {
    @Test func rateLimitedLinkDeliversAtConfiguredRate() throws {
        // Offer 1028-byte IP packets every 0.5 ms (16.4 Mbit/s) to a 10 Mbit/s link with a huge queue.
        let rate: Int64 = 10_000_000
        let (network, _, sink, link) = pacedPair(
            name: "rate", LinkConfiguration(rateBitsPerSecond: rate, queueLimitBytes: 100_000_000),
            interval: .microseconds(500), count: 4000)
        try network.run(for: .seconds(10))
        #expect(sink.arrivals.count == 4000)
        #expect(link.counters.droppedPackets == 0)
        let first = try #require(sink.arrivals.first).time
        let last = try #require(sink.arrivals.last).time
        let measured = Double(3999 * (1000 + ipv4Overhead) * 8) / (last - first).seconds
        #expect(abs(measured - Double(rate)) / Double(rate) < 0.01, "measured \(measured) bit/s")
        // The first packet took exactly its serialisation time: 1028 · 8 / 10^7 s = 822.4 µs, rounded up.
        #expect(first == SCTPTime(nanoseconds: 822_400))
    }

    @Test func fullQueueDropsTail() throws {
        // 100 packets at one instant into a queue of ten packets' worth: ten pass, ninety are dropped.
        let size = 1000
        let (network, _, sink, link) = pacedPair(
            name: "queue",
            LinkConfiguration(rateBitsPerSecond: 1_000_000, queueLimitBytes: 10 * (size + ipv4Overhead)),
            size: size, interval: .zero, count: 100)
        try network.run(for: .seconds(1))
        #expect(link.counters.droppedByQueue == 90)
        #expect(sink.arrivals.map(\.sequence) == Array(0..<10))
        #expect(link.counters.sentPackets == 100)
        #expect(link.counters.deliveredPackets == 10)
    }

    @Test func queueDrainsAtLineRate() throws {
        // Once the queue has drained, a new packet is admitted again.
        let network = SimulatedNetwork(name: "drain")
        let sink = SinkHost()
        network.attach(sink, at: serverIP)
        let link = network.addLink(
            from: clientIP, to: serverIP,
            LinkConfiguration(rateBitsPerSecond: 8_000_000, queueLimitBytes: 2056))
        let packet = SCTPDatagram(source: client, destination: server, payload: sequencedPayload(0, size: 1000))
        for _ in 0..<3 { network.send(packet) }
        #expect(link.counters.droppedByQueue == 1)
        #expect(link.queuedBytes(at: network.now) == 2056)
        try network.run(for: .microseconds(1028))  // exactly one serialisation time
        #expect(link.queuedBytes(at: network.now) == 1028)
        network.send(packet)
        #expect(link.counters.droppedByQueue == 1)
    }

    @Test func propagationDelayIsExact() throws {
        let network = SimulatedNetwork(name: "delay")
        let sink = SinkHost()
        network.attach(sink, at: serverIP)
        network.addLink(from: clientIP, to: serverIP, LinkConfiguration(delay: .milliseconds(25)))
        let slow = network.addLink(
            from: SCTPIPAddress(v4: 10, 0, 0, 3), to: serverIP,
            LinkConfiguration(rateBitsPerSecond: 1_000_000, delay: .milliseconds(5)))
        network.send(SCTPDatagram(source: client, destination: server, payload: sequencedPayload(0, size: 100)))
        network.schedule(at: SCTPTime(nanoseconds: 3_000_000)) {
            network.send(SCTPDatagram(source: client, destination: server, payload: sequencedPayload(1, size: 100)))
            network.send(
                SCTPDatagram(
                    source: SCTPSocketAddress(ip: SCTPIPAddress(v4: 10, 0, 0, 3), port: 1),
                    destination: server, payload: sequencedPayload(2, size: 97)))
        }
        try network.run(for: .seconds(1))
        // Sent at 3 ms: 125 bytes at 1 Mbit/s is 1 ms of serialisation, then 5 ms of propagation.
        #expect(sink.arrivals.map(\.time.nanoseconds) == [9_000_000, 25_000_000, 28_000_000])
        #expect(sink.arrivals.map(\.sequence) == [2, 0, 1])
        #expect(slow.counters.deliveredBytes == 125)
    }

    @Test func jitterStaysWithinBounds() throws {
        let configuration = LinkConfiguration(delay: .milliseconds(10), jitter: .milliseconds(5))
        let (network, sender, sink, _) = pacedPair(
            name: "jitter", configuration, size: 100, interval: .milliseconds(1), count: 2000)
        try network.run(for: .seconds(5))
        #expect(sink.arrivals.count == 2000)
        let latencies = sink.arrivals.map { $0.time - sender.sendTimes[Int($0.sequence)] }
        #expect(latencies.allSatisfy { $0 >= .milliseconds(10) && $0 <= .milliseconds(15) })
        #expect(latencies.max()! - latencies.min()! > .milliseconds(4))
        // Jitter alone keeps order by default.
        #expect(sink.arrivals.map(\.sequence) == (0..<2000).map(UInt64.init))
    }

    @Test func jitterMayReorderWhenAllowed() throws {
        var configuration = LinkConfiguration(delay: .milliseconds(10), jitter: .milliseconds(5))
        configuration.jitterPreservesOrder = false
        let (network, sender, sink, _) = pacedPair(
            name: "jitter-reorder", configuration, size: 100, interval: .milliseconds(1), count: 2000)
        try network.run(for: .seconds(5))
        let latencies = sink.arrivals.map { $0.time - sender.sendTimes[Int($0.sequence)] }
        #expect(latencies.allSatisfy { $0 >= .milliseconds(10) && $0 <= .milliseconds(15) })
        #expect(sink.arrivals.map(\.sequence) != (0..<2000).map(UInt64.init))
    }

    @Test func randomLossMatchesProbability() throws {
        let trials = 20_000
        let (network, _, sink, link) = pacedPair(
            seed: 7, name: "loss", LinkConfiguration(lossProbability: 0.1), size: 100,
            interval: .microseconds(100), count: trials)
        try network.run(for: .seconds(3))
        #expect(isWithinBinomialBounds(link.counters.droppedByLoss, trials: trials, probability: 0.1))
        #expect(sink.arrivals.count + link.counters.droppedByLoss == trials)
        #expect(link.counters.sentPackets == trials)
    }

    @Test func duplicationMatchesProbability() throws {
        let trials = 20_000
        let (network, _, sink, link) = pacedPair(
            seed: 8, name: "duplicate", LinkConfiguration(duplicateProbability: 0.05), size: 100,
            interval: .microseconds(100), count: trials)
        try network.run(for: .seconds(3))
        #expect(isWithinBinomialBounds(link.counters.duplicated, trials: trials, probability: 0.05))
        #expect(sink.arrivals.count == trials + link.counters.duplicated)
        let sequences = sink.arrivals.map(\.sequence)
        let repeats = zip(sequences, sequences.dropFirst()).filter { $0 == $1 }.count
        #expect(repeats == link.counters.duplicated)
    }

    @Test func reorderingMatchesProbability() throws {
        // Packets 100 µs apart, a reordered one held 1 ms: every reordered packet is overtaken.
        let trials = 20_000
        let (network, _, sink, link) = pacedPair(
            seed: 9, name: "reorder",
            LinkConfiguration(delay: .milliseconds(5), reorderProbability: 0.1, reorderDelay: .milliseconds(1)),
            size: 100, interval: .microseconds(100), count: trials)
        try network.run(for: .seconds(3))
        #expect(sink.arrivals.count == trials)
        var highest: UInt64 = 0
        var late = 0
        for arrival in sink.arrivals {
            if arrival.sequence < highest { late += 1 } else { highest = arrival.sequence }
        }
        #expect(link.counters.reordered == late)
        #expect(isWithinBinomialBounds(late, trials: trials, probability: 0.1))
    }

    @Test func oversizedPacketsAreDroppedByMTU() throws {
        let network = SimulatedNetwork(name: "mtu")
        let sink = SinkHost()
        let serverV6 = SCTPIPAddress("2001:db8::1")!
        let clientV6 = SCTPIPAddress("2001:db8::2")!
        network.attach(sink, at: serverIP, serverV6)
        let v4 = network.addLink(from: clientIP, to: serverIP, LinkConfiguration(mtu: 1200))
        let v6 = network.addLink(from: clientV6, to: serverV6, LinkConfiguration(mtu: 1280))
        for size in [1172, 1173, 500] {
            network.send(SCTPDatagram(source: client, destination: server, payload: sequencedPayload(0, size: size)))
        }
        for size in [1232, 1233] {
            network.send(
                SCTPDatagram(
                    source: SCTPSocketAddress(ip: clientV6, port: 1),
                    destination: SCTPSocketAddress(ip: serverV6, port: 9899),
                    payload: sequencedPayload(0, size: size)))
        }
        try network.run(for: .seconds(1))
        #expect(v4.counters.droppedByMTU == 1)
        #expect(v4.counters.deliveredPackets == 2)
        #expect(v6.counters.droppedByMTU == 1)
        #expect(sink.arrivals.map(\.payloadLength) == [1172, 500, 1232])
    }

    @Test func deadLinkDropsEverythingIncludingInFlight() throws {
        let (network, _, sink, link) = pacedPair(
            name: "down", LinkConfiguration(delay: .milliseconds(50)), size: 100, interval: .milliseconds(10),
            count: 300)
        // Down from 1 s to 2 s: packets sent in that second, and those in flight at 1 s, are lost.
        network.schedule(at: SCTPTime(nanoseconds: 1_000_000_000)) { link.isUp = false }
        network.schedule(at: SCTPTime(nanoseconds: 2_000_000_000)) { link.isUp = true }
        try network.run(for: .seconds(4))
        let received = Set(sink.arrivals.map(\.sequence))
        // Sent at 0.95 s..0.99 s were in flight at 1 s; 1.00 s..1.99 s were sent into a dead link.
        #expect(link.counters.droppedByLinkDown == 105)
        #expect(received.isDisjoint(with: 95..<200))
        #expect(received.count == 300 - 105)
        #expect(received.contains(94) && received.contains(200))
    }

    @Test func linkReturnsWithAnEmptyQueue() throws {
        // A slow link with a deep backlog goes down and up: the backlog is gone, not still being serialised.
        let network = SimulatedNetwork(name: "down-queue")
        let sink = SinkHost()
        network.attach(sink, at: serverIP)
        let link = network.addLink(from: clientIP, to: serverIP, LinkConfiguration(rateBitsPerSecond: 1_000_000))
        for sequence in 0..<100 {
            network.send(
                SCTPDatagram(source: client, destination: server, payload: sequencedPayload(UInt64(sequence), size: 97))
            )
        }
        try network.run(for: .milliseconds(10))
        #expect(sink.arrivals.count == 10)
        link.isUp = false
        link.isUp = true
        #expect(link.queuedBytes(at: network.now) == 0)
        network.send(SCTPDatagram(source: client, destination: server, payload: sequencedPayload(100, size: 97)))
        try network.run(for: .seconds(1))
        #expect(sink.arrivals.map(\.sequence) == Array(0..<10) + [100])
        #expect(sink.arrivals.last?.time == SCTPTime(nanoseconds: 11_000_000))
        #expect(link.counters.droppedByLinkDown == 90)
    }

    @Test func routelessDatagramsAreCounted() throws {
        let network = SimulatedNetwork(name: "noroute")
        var reasons: [DropReason] = []
        network.onDrop = { _, reason, _, _ in reasons.append(reason) }
        network.send(SCTPDatagram(source: client, destination: server, payload: sequencedPayload(0, size: 10)))
        let link = network.addLink(from: clientIP, to: serverIP)
        network.send(SCTPDatagram(source: client, destination: server, payload: sequencedPayload(0, size: 10)))
        try network.run(for: .seconds(1))
        #expect(network.counters.droppedNoRoute == 1)
        #expect(link.counters.droppedUndeliverable == 1)
        #expect(reasons == [.noRoute, .undeliverable])
    }
}
