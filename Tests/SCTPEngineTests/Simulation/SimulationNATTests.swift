import NIOCore
import SCTPEngine
import SCTPSimulation
import Testing

let natOutsideIP = SCTPIPAddress(v4: 203, 0, 113, 1)
let secondServerIP = SCTPIPAddress(v4: 198, 51, 100, 2)

/// A client behind `nat` and echoing servers at `serverIP` and `secondServerIP`, 10 ms away each way.
struct NATScenario {
    let network: SimulatedNetwork
    let nat: SimulatedNAT
    let client = SinkHost()
    let server = SinkHost(echoes: true)
    let secondServer = SinkHost(echoes: true)
    let uplink: SimulatedLink
    let downlink: SimulatedLink

    init(_ configuration: NATConfiguration, name: String) {
        network = SimulatedNetwork(seed: 3, name: name)
        nat = SimulatedNAT(outsideAddress: natOutsideIP, configuration: configuration, seed: 11)
        network.attach(client, at: clientIP)
        network.attach(server, at: serverIP)
        network.attach(secondServer, at: secondServerIP)
        let link = LinkConfiguration(delay: .milliseconds(10))
        (uplink, downlink) = network.addBidirectionalLink(between: clientIP, and: serverIP, link, nat: nat)
        network.addBidirectionalLink(between: clientIP, and: secondServerIP, link, nat: nat)
    }

    /// Sends one datagram from the client (inside port `port`) to `destination` now.
    func clientSends(to destination: SCTPSocketAddress, from port: UInt16 = 5000, sequence: UInt64 = 0) throws {
        client.enqueue(
            SCTPDatagram(
                source: SCTPSocketAddress(ip: clientIP, port: port), destination: destination,
                payload: sequencedPayload(sequence, size: 100)))
        try network.drainTransmits()
    }

    /// Sends one datagram from a server address to `destination` now.
    func serverSends(from source: SCTPSocketAddress, to destination: SCTPSocketAddress) throws {
        let host = source.ip == serverIP ? server : secondServer
        host.enqueue(SCTPDatagram(source: source, destination: destination, payload: sequencedPayload(99, size: 100)))
        try network.drainTransmits()
    }
}

@Suite struct SimulationNATTests {
    @Test func portPreservingNATKeepsThePortAndRoutesRepliesBack() throws {
        let scenario = NATScenario(.portPreserving, name: "nat-preserving")
        try scenario.clientSends(to: server)
        try scenario.network.run(for: .seconds(1))
        let seen = try #require(scenario.server.arrivals.first).datagram
        #expect(seen.source == SCTPSocketAddress(ip: natOutsideIP, port: 5000))
        #expect(seen.destination == server)
        // The echo went to the NAT's outside address and was mapped back to the inside host.
        let reply = try #require(scenario.client.arrivals.first)
        #expect(reply.datagram.source == server)
        #expect(reply.datagram.destination == client)
        #expect(reply.time == SCTPTime(nanoseconds: 20_000_000))
        #expect(scenario.nat.counters.translatedOutbound == 1)
        #expect(scenario.nat.counters.translatedInbound == 1)
        #expect(scenario.nat.bindings(at: scenario.network.now).map(\.outside.port) == [5000])
    }

    @Test func symmetricNATUsesANewRandomPortPerDestination() throws {
        let scenario = NATScenario(.symmetric, name: "nat-symmetric")
        try scenario.clientSends(to: server)
        try scenario.clientSends(to: SCTPSocketAddress(ip: serverIP, port: 9900))
        try scenario.clientSends(to: SCTPSocketAddress(ip: secondServerIP, port: 9899))
        try scenario.clientSends(to: server, sequence: 1)
        try scenario.network.run(for: .seconds(1))
        let ports = (scenario.server.arrivals + scenario.secondServer.arrivals).map(\.datagram.source.port)
        #expect(ports.count == 4)
        #expect(!ports.contains(5000))
        // The same flow keeps its port; each new destination gets its own.
        #expect(Set(ports).count == 3)
        #expect(
            scenario.server.arrivals.filter { $0.datagram.destination == server }.map(\.datagram.source.port)
                .allSatisfy { $0 == ports[0] })
        #expect(scenario.client.arrivals.count == 4)
        #expect(scenario.client.arrivals.allSatisfy { $0.datagram.destination == client })
    }

    @Test func endpointIndependentMappingSharesOnePortAcrossDestinations() throws {
        let scenario = NATScenario(.fullCone, name: "nat-eim")
        try scenario.clientSends(to: server)
        try scenario.clientSends(to: SCTPSocketAddress(ip: secondServerIP, port: 9899))
        try scenario.network.run(for: .seconds(1))
        let first = try #require(scenario.server.arrivals.first).datagram.source
        let second = try #require(scenario.secondServer.arrivals.first).datagram.source
        #expect(first == second)
        #expect(first.port != 5000)
        #expect(scenario.nat.counters.mappingsCreated == 1)
    }

    @Test func idleBindingExpiresAndANewPacketGetsANewPort() throws {
        var configuration = NATConfiguration.fullCone
        configuration.bindingTimeout = .seconds(30)
        let scenario = NATScenario(configuration, name: "nat-timeout")
        try scenario.clientSends(to: server)
        try scenario.network.run(until: SCTPTime(nanoseconds: 40_000_000_000))
        let oldOutside = try #require(scenario.server.arrivals.first).datagram.source
        #expect(scenario.client.arrivals.count == 1)

        // 40 s of silence: a packet to the old mapping is dropped.
        try scenario.serverSends(from: server, to: oldOutside)
        try scenario.network.run(for: .seconds(1))
        #expect(scenario.client.arrivals.count == 1)
        #expect(scenario.nat.counters.droppedExpired == 1)
        #expect(scenario.downlink.counters.droppedByNAT == 1)

        // The client speaks again: a new port, and the reply comes through it.
        try scenario.clientSends(to: server, sequence: 1)
        try scenario.network.run(for: .seconds(1))
        let newOutside = try #require(scenario.server.arrivals.last).datagram.source
        #expect(newOutside.ip == natOutsideIP)
        #expect(newOutside.port != oldOutside.port)
        #expect(scenario.client.arrivals.count == 2)
    }

    @Test func outboundTrafficKeepsTheBindingAlive() throws {
        var configuration = NATConfiguration.symmetric
        configuration.bindingTimeout = .seconds(30)
        let scenario = NATScenario(configuration, name: "nat-keepalive")
        for second in stride(from: 0, through: 120, by: 20) {
            scenario.network.schedule(at: SCTPTime(nanoseconds: Int64(second) * 1_000_000_000)) {
                scenario.client.enqueue(
                    SCTPDatagram(
                        source: client, destination: server,
                        payload: sequencedPayload(UInt64(second), size: 50)))
            }
        }
        try scenario.network.run(for: .seconds(130))
        #expect(scenario.server.arrivals.count == 7)
        #expect(Set(scenario.server.arrivals.map(\.datagram.source.port)).count == 1)
        #expect(scenario.client.arrivals.count == 7)
    }

    @Test func rebindMidTransferChangesTheObservedSourcePort() throws {
        let network = SimulatedNetwork(seed: 5, name: "nat-rebind")
        let nat = SimulatedNAT(outsideAddress: natOutsideIP, configuration: .symmetric)
        let sender = PacedSender(from: client, to: server, size: 200, interval: .milliseconds(10), count: 200)
        let server = SinkHost(echoes: true)
        network.attach(sender, at: clientIP)
        network.attach(server, at: serverIP)
        let (_, downlink) = network.addBidirectionalLink(
            between: clientIP, and: serverIP, LinkConfiguration(delay: .milliseconds(15)), nat: nat)
        network.schedule(at: SCTPTime(nanoseconds: 1_000_000_000)) { nat.rebind() }
        try network.run(for: .seconds(3))

        #expect(server.arrivals.count == 200)
        let before = server.arrivals.filter { $0.sequence < 100 }.map(\.datagram.source.port)
        let after = server.arrivals.filter { $0.sequence >= 100 }.map(\.datagram.source.port)
        #expect(Set(before).count == 1)
        #expect(Set(after).count == 1)
        #expect(before.first != after.first)
        // Echoes still travelling to the old port when the NAT rebound are lost: those sent by the server in
        // the 15 ms before 1 s, i.e. for packets 97, 98 and 99.
        #expect(downlink.counters.droppedByNAT == 3)
        #expect(nat.counters.droppedExpired == 3)
        #expect(sender.replies.count == 197)
        #expect(sender.replies.allSatisfy { $0.datagram.destination == client })
    }

    @Test(arguments: [false, true])
    func rebindOfAPortPreservingNAT(reusesReleasedPorts: Bool) throws {
        var configuration = NATConfiguration.portPreserving
        configuration.reusesReleasedPorts = reusesReleasedPorts
        let scenario = NATScenario(configuration, name: "nat-rebind-preserving-\(reusesReleasedPorts)")
        try scenario.clientSends(to: server)
        try scenario.network.run(for: .seconds(1))
        scenario.nat.rebind()
        try scenario.clientSends(to: server, sequence: 1)
        try scenario.network.run(for: .seconds(1))
        let ports = scenario.server.arrivals.map(\.datagram.source.port)
        #expect(ports.first == 5000)
        // By default the lost mapping's port is held back, so the flow visibly moves; Linux-like NATs reuse it.
        #expect((ports.last == 5000) == reusesReleasedPorts)
        #expect(ports.count == 2)
        #expect(scenario.client.arrivals.count == 2)
    }

    @Test func unsolicitedInboundIsDropped() throws {
        let scenario = NATScenario(.portPreserving, name: "nat-unsolicited")
        try scenario.serverSends(from: server, to: SCTPSocketAddress(ip: natOutsideIP, port: 5000))
        try scenario.network.run(for: .seconds(1))
        #expect(scenario.client.arrivals.isEmpty)
        #expect(scenario.nat.counters.droppedUnsolicited == 1)
        #expect(scenario.downlink.counters.droppedByNAT == 1)
    }

    @Test(arguments: [
        (NATConfiguration.Filtering.addressAndPortDependent, [false, false]),
        (.addressDependent, [true, false]),
        (.endpointIndependent, [true, true]),
    ])
    func filteringAdmitsOnlyWhatTheInsideHostContacted(filtering: NATConfiguration.Filtering, admitted: [Bool])
        throws
    {
        var configuration = NATConfiguration.portPreserving
        configuration.filtering = filtering
        let scenario = NATScenario(configuration, name: "nat-filtering-\(filtering)")
        try scenario.clientSends(to: server)
        try scenario.network.run(for: .seconds(1))
        let mapped = SCTPSocketAddress(ip: natOutsideIP, port: 5000)
        // The same server from another port, then another server.
        try scenario.serverSends(from: SCTPSocketAddress(ip: serverIP, port: 9900), to: mapped)
        try scenario.network.run(for: .seconds(1))
        let afterOtherPort = scenario.client.arrivals.count
        try scenario.serverSends(from: SCTPSocketAddress(ip: secondServerIP, port: 9899), to: mapped)
        try scenario.network.run(for: .seconds(1))
        let afterOtherHost = scenario.client.arrivals.count
        #expect([afterOtherPort == 2, afterOtherHost == afterOtherPort + 1] == admitted)
        #expect(scenario.nat.counters.droppedFiltered == admitted.filter { !$0 }.count)
    }
}
