import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// Three uplinks, each behind its own NAT, to a server with two addresses (the common case: a box with LTE, Wi-Fi
/// and DSL, a server with two): C1 → S1, C2 → S2, and C3 → S1 again. The server then has two paths to the same
/// local address, told apart by their NAT addresses, and the client two paths to S1, told apart by their local
/// addresses. A download uses all three at once, and losing the third path costs no byte.
@Suite struct ThreePathNATTests {
    static let c = [
        SCTPSocketAddress(ip: .init(v4: 10, 0, 1, 2), port: 40000),
        SCTPSocketAddress(ip: .init(v4: 10, 0, 2, 2), port: 40001),
        SCTPSocketAddress(ip: .init(v4: 10, 0, 3, 2), port: 40002),
    ]
    static let n = [SCTPIPAddress(v4: 198, 51, 100, 1), SCTPIPAddress(v4: 203, 0, 113, 1), SCTPIPAddress(v4: 100, 64, 0, 1)]
    static let s1 = SCTPSocketAddress(ip: .init(v4: 192, 0, 2, 1), port: 9899)
    static let s2 = SCTPSocketAddress(ip: .init(v4: 192, 0, 2, 2), port: 9899)
    /// Where each path goes, and its one-way delay.
    static let servers = [s1, s2, s1]
    static let delays: [SCTPDuration] = [.milliseconds(10), .milliseconds(25), .milliseconds(15)]
    static let rate: Int64 = 20_000_000

    final class Scenario {
        let network: SimulatedNetwork
        let client: EndpointHost
        let server: EndpointHost
        var up: [SimulatedLink] = []
        var down: [SimulatedLink] = []
        var association: SCTPAssociationID!

        init(seed: UInt64) {
            network = SimulatedNetwork(seed: seed, name: "three-paths-\(seed)")
            let configuration = SCTPConfiguration()
            client = EndpointHost(endpoint: SCTPEndpoint(configuration: configuration, seed: seed &* 7 &+ 1))
            server = EndpointHost(
                endpoint: SCTPEndpoint(
                    configuration: configuration, seed: seed &* 11 &+ 2, advertisedAddresses: [s1.ip, s2.ip]))
            network.attach(client, at: c.map(\.ip))
            network.attach(server, at: s1.ip, s2.ip)
            for i in 0..<3 {
                // Port-randomising NATs, as carrier-grade ones are.
                let nat = SimulatedNAT(
                    name: "N\(i + 1)", outsideAddress: n[i], configuration: .symmetric, seed: seed &+ UInt64(101 * (i + 1)))
                let (forward, reverse) = network.addBidirectionalLink(
                    between: c[i].ip, and: servers[i].ip, LinkConfiguration(rateBitsPerSecond: rate, delay: delays[i]),
                    name: "path\(i + 1)", nat: nat)
                up.append(forward)
                down.append(reverse)
            }
        }

        var serverAssociation: SCTPAssociationID { server.established[0] }

        /// Sets the association up from C1 and adds C2 and C3 with ASCONF, naming no destination: the engine
        /// sends each to the server address the fewest paths use (S2, then S1); runs until both sides have three
        /// active paths.
        func establishThreePaths() throws {
            client.perform(at: network.now) {
                association = $0.connect(to: s1, from: c[0], peerPort: 5000, now: network.now)
            }
            try network.runUntil({ !client.established.isEmpty && !server.established.isEmpty }, timeout: .seconds(10))
            for i in 1..<3 {
                client.perform(at: network.now) {
                    try! $0.addLocalAddress(c[i], on: association, now: network.now)
                }
                try network.runUntil(
                    {
                        client.endpoint.paths(of: association).filter { $0.state == .active }.count == i + 1
                            && server.endpoint.paths(of: serverAssociation).filter { $0.state == .active }.count
                                == i + 1
                    }, timeout: .seconds(5))
            }
        }
    }

    @Test func everyPathIsKnownOnBothSidesByItsOwnAddresses() throws {
        let s = Scenario(seed: 31)
        try s.establishThreePaths()
        let clientPairs = Set(s.client.endpoint.paths(of: s.association).map { "\($0.local!)>\($0.remote)" })
        #expect(clientPairs == Set((0..<3).map { "\(Self.c[$0])>\(Self.servers[$0])" }))
        // The server sees each path from its NAT's address, arriving at the address that path was sent to.
        let serverPaths = s.server.endpoint.paths(of: s.serverAssociation)
        for i in 0..<3 {
            #expect(
                serverPaths.contains { $0.remote.ip == Self.n[i] && $0.local?.ip == Self.servers[i].ip },
                "no server path from \(Self.n[i]) at \(Self.servers[i].ip): \(serverPaths.map { "\($0.local!)<\($0.remote)" })")
        }
    }

    @Test(arguments: [1, 2] as [UInt64])
    func aDownloadUsesAllThreePaths(seed: UInt64) throws {
        let s = Scenario(seed: seed)
        try s.establishThreePaths()
        let total = 12_000_000
        let goodput = try s.network.transferGoodput(total, from: s.server, on: s.serverAssociation, to: s.client)
        #expect(s.client.corruption == nil)
        // Three 20 Mbit/s paths: more than two of them could carry (at most 38.6 Mbit/s of payload).
        #expect(goodput > 45_000_000, "goodput \(goodput / 1e6) Mbit/s")
        let shares = s.down.map { Double($0.counters.deliveredPayloadBytes) / Double(total) }
        #expect(shares.allSatisfy { $0 > 0.2 }, "shares per path \(shares)")
    }

    @Test func anUploadUsesAllThreePathsAndSurvivesTheThirdDying() throws {
        let s = Scenario(seed: 5)
        try s.establishThreePaths()
        let total = 12_000_000
        s.client.startTransfer(on: s.association, stream: StreamID(1), total: total, messageSize: 16 * 1024)
        // The third path (the second one to S1) dies once a quarter has arrived.
        try s.network.runUntil({ s.server.totalReceivedBytes >= total / 4 }, timeout: .seconds(30))
        let third = s.up[2].counters.deliveredPayloadBytes
        #expect(Double(third) > 0.15 * Double(s.server.totalReceivedBytes), "path 3 carried \(third) bytes before")
        s.up[2].isUp = false
        s.down[2].isUp = false
        try s.network.runUntil({ s.server.totalReceivedBytes == total }, timeout: .seconds(60))
        #expect(s.server.corruption == nil)
        let paths = s.client.endpoint.paths(of: s.association)
        #expect(paths.first { $0.local == Self.c[2] }?.state != .active, "\(paths.map { "\($0.local!) \($0.state)" })")
        #expect(paths.filter { $0.state == .active }.count == 2)
    }
}
