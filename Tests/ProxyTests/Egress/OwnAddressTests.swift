import AggConfig
import AggEgress
import AggProtocol
import AggTransport
import Logging
import NIOCore
import NIOPosix
import SCTPEngine
import Testing

@testable import Proxy

/// The server's own addresses reach the egress policy: read from the interfaces at start (`ServiceSetup`) and
/// replaced on reload (`AggServerService.refreshOwnAddresses`, which SIGHUP calls).
@Suite struct OwnAddressTests {
    @Test func ownAddressesAreEveryInterfaceAddressButLoopback() {
        let all = Set(InterfaceAddresses.current().byInterface.values.joined())
        let own = ServiceSetup.ownAddresses()
        #expect(own == all.filter { !EgressPolicy.isLoopback($0) })
        #expect(!own.contains(SCTPIPAddress(v4: 127, 0, 0, 1)) && !own.contains(SCTPIPAddress("::1")!))
    }

    @Test func theServerConfigurationRefusesTheOwnAddressesAndPort25() throws {
        let directory = try TemporaryDirectory()
        var settings = ServerSettings()
        settings.listenAddresses = [HostAndPort(host: "127.0.0.1", port: 0)]
        settings.pskFile = try directory.makeKeyFile()
        settings.egressAllow = [CIDR("0.0.0.0/0")!, CIDR("::/0")!]
        let policy = try ServiceSetup.serverConfiguration(settings).egress.policy
        #expect(policy.localAddresses == ServiceSetup.ownAddresses())
        #expect(policy.deniedPorts == [25])
        for address in policy.localAddresses {
            #expect(!policy.isAllowed(address), "own address \(address) allowed by a default route")
        }
    }

    @Test func reloadReplacesTheOwnAddresses() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let configuration = AggServerService.Configuration(
            listen: [SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: 0)], keys: [],
            egress: EgressConnector(policy: EgressPolicy(allowed: [CIDR("0.0.0.0/0")!])))
        let server = try AggServerService.start(
            configuration: configuration, on: group.next(), logger: Logger(label: "test")
        ).wait()
        defer { try? server.stop().wait() }
        let added = SCTPIPAddress(v4: 93, 184, 216, 34)
        #expect(try server.eventLoop.submit { server.egressPolicy.isAllowed(added) }.wait())
        try server.refreshOwnAddresses([added, SCTPIPAddress(v4: 127, 0, 0, 1)]).wait()
        let policy = try server.eventLoop.submit { server.egressPolicy }.wait()
        #expect(policy.localAddresses == [added], "loopback stays a range of its own")
        guard case .refused(let refusal, let why) = policy.check(added) else {
            Issue.record("an own address was allowed")
            return
        }
        #expect(refusal == .egressOwnAddress && why.contains("93.184.216.34/32"))
    }
}
