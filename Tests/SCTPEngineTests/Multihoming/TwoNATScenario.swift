import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// The topology: a client with private addresses C1 and C2, each behind its own NAT (N1, N2), and a server
/// with global addresses S1 and S2. Path 1 is C1 → S1 (10 ms each way), path 2 is C2 → S2 (25 ms each way).
final class TwoNATScenario {
    static let c1 = SCTPSocketAddress(ip: .init(v4: 10, 0, 1, 2), port: 40000)
    static let c2 = SCTPSocketAddress(ip: .init(v4: 10, 0, 2, 2), port: 40001)
    static let n1 = SCTPIPAddress(v4: 198, 51, 100, 1)
    static let n2 = SCTPIPAddress(v4: 203, 0, 113, 1)
    static let s1 = SCTPSocketAddress(ip: .init(v4: 192, 0, 2, 1), port: 9899)
    static let s2 = SCTPSocketAddress(ip: .init(v4: 192, 0, 2, 2), port: 9899)
    static let delay1 = SCTPDuration.milliseconds(10)
    static let delay2 = SCTPDuration.milliseconds(25)

    let network: SimulatedNetwork
    let client: EndpointHost
    let server: EndpointHost
    let nat1: SimulatedNAT
    let nat2: SimulatedNAT
    let up1: SimulatedLink
    let down1: SimulatedLink
    let up2: SimulatedLink
    let down2: SimulatedLink
    var association: SCTPAssociationID!

    init(
        seed: UInt64, name: String, nat1 configuration1: NATConfiguration = .symmetric,
        nat2 configuration2: NATConfiguration = .symmetric, rate: Int64? = 20_000_000,
        immediateHeartbeats: Bool = true, configure: (inout SCTPConfiguration) -> Void = { _ in }
    ) {
        network = SimulatedNetwork(seed: seed, name: name)
        var configuration = SCTPConfiguration()
        configure(&configuration)
        let clientEndpoint = SCTPEndpoint(configuration: configuration, seed: seed &* 7 &+ 1)
        let serverEndpoint = SCTPEndpoint(
            configuration: configuration, seed: seed &* 11 &+ 2, advertisedAddresses: [Self.s1.ip, Self.s2.ip])
        clientEndpoint.confirmsNewPathsAtOnce = immediateHeartbeats
        serverEndpoint.confirmsNewPathsAtOnce = immediateHeartbeats
        client = EndpointHost(endpoint: clientEndpoint)
        server = EndpointHost(endpoint: serverEndpoint)
        nat1 = SimulatedNAT(name: "N1", outsideAddress: Self.n1, configuration: configuration1, seed: seed &+ 101)
        nat2 = SimulatedNAT(name: "N2", outsideAddress: Self.n2, configuration: configuration2, seed: seed &+ 202)
        network.attach(client, at: Self.c1.ip, Self.c2.ip)
        network.attach(server, at: Self.s1.ip, Self.s2.ip)
        (up1, down1) = network.addBidirectionalLink(
            between: Self.c1.ip, and: Self.s1.ip, LinkConfiguration(rateBitsPerSecond: rate, delay: Self.delay1),
            name: "path1", nat: nat1)
        (up2, down2) = network.addBidirectionalLink(
            between: Self.c2.ip, and: Self.s2.ip, LinkConfiguration(rateBitsPerSecond: rate, delay: Self.delay2),
            name: "path2", nat: nat2)
    }

    /// INIT from C1 to S1, run until both sides are established.
    func establish() throws {
        client.perform(at: network.now) {
            association = $0.connect(to: Self.s1, from: Self.c1, peerPort: 5000, now: network.now)
        }
        try network.runUntil({ !client.established.isEmpty && !server.established.isEmpty }, timeout: .seconds(10))
    }

    var serverAssociation: SCTPAssociationID { server.established[0] }

    func clientPaths() -> [SCTPPathInfo] { client.endpoint.paths(of: association) }
    func serverPaths() -> [SCTPPathInfo] { server.endpoint.paths(of: serverAssociation) }

    /// The client's path toward S2 leaving from C2, and the server's path leaving from S2.
    var clientPath2: SCTPPathInfo? { clientPaths().first { $0.remote == Self.s2 && $0.local == Self.c2 } }
    var serverPath2: SCTPPathInfo? { serverPaths().first { $0.local?.ip == Self.s2.ip } }

    /// Adds C2 with ASCONF toward S2 and runs until both sides have the new path active.
    func addSecondPath(timeout: SCTPDuration = .seconds(5)) throws {
        client.perform(at: network.now) {
            try! $0.addLocalAddress(Self.c2, toward: Self.s2, on: association, now: network.now)
        }
        try network.runUntil(
            { clientPath2?.state == .active && serverPath2?.state == .active }, timeout: timeout)
    }

    static func chunkTypes(_ datagram: SCTPDatagram) -> [UInt8] {
        (try? RawPacket.parse(datagram.payload).chunks.map(\.type)) ?? []
    }
}
