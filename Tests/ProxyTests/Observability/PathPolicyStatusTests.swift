import Foundation
import NIOCore
import NIOHTTP1
import SCTPEngine
import Testing

@testable import AggObservability

/// What the status shows of per-path policy (mode, cap, bytes each way since start) and who may change a mode.
@Suite struct PathPolicyStatusTests {
    static func head(host: String?, control: Bool = true, origin: String? = nil) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        if let host { headers.add(name: "Host", value: host) }
        if control { headers.add(name: "X-Agg-Control", value: "1") }
        if let origin { headers.add(name: "Origin", value: origin) }
        return HTTPRequestHead(version: .http1_1, method: .POST, uri: "/path?name=lte&mode=backup", headers: headers)
    }

    @Test func pathControlIsAcceptedOnlyFromThisHostAndNeverFromAWebPage() throws {
        let loopback = try SocketAddress(ipAddress: "127.0.0.1", port: 40000)
        let loopback6 = try SocketAddress(ipAddress: "::1", port: 40000)
        let lan = try SocketAddress(ipAddress: "192.168.1.20", port: 40000)
        #expect(StatusRequestHandler.isLocalControl(Self.head(host: "127.0.0.1:9101"), from: loopback))
        #expect(StatusRequestHandler.isLocalControl(Self.head(host: "localhost:9101"), from: loopback))
        #expect(StatusRequestHandler.isLocalControl(Self.head(host: "[::1]:9101"), from: loopback6))
        // Another host, even with everything else right.
        #expect(!StatusRequestHandler.isLocalControl(Self.head(host: "127.0.0.1:9101"), from: lan))
        #expect(!StatusRequestHandler.isLocalControl(Self.head(host: "127.0.0.1:9101"), from: nil))
        // A page in a browser on this host: it sends an Origin, and a custom header needs a preflight.
        #expect(
            !StatusRequestHandler.isLocalControl(
                Self.head(host: "127.0.0.1:9101", origin: "http://evil.example"), from: loopback))
        #expect(!StatusRequestHandler.isLocalControl(Self.head(host: "127.0.0.1:9101", control: false), from: loopback))
        // DNS rebinding: the browser's Host is the attacker's name.
        #expect(!StatusRequestHandler.isLocalControl(Self.head(host: "evil.example:9101"), from: loopback))
        #expect(!StatusRequestHandler.isLocalControl(Self.head(host: nil), from: loopback))
    }

    @Test func theTableShowsEachPathsModeCapAndBytesEachWay() {
        var path = StatusSnapshot.Path(
            id: "1/10.0.0.2/192.0.2.1", association: 1, name: "lte", local: "10.0.0.2", remote: "192.0.2.1",
            remotePort: 9899, state: "active", bytesSent: 1000, bytesReceived: 2000)
        #expect(StatusTable.policyLine(path) == nil)
        path.mode = "backup"
        path.standby = true
        path.rateLimitBitsPerSecond = 20_000_000
        path.totalBytesSent = 1_258_291
        path.totalBytesReceived = 31_981_568
        #expect(
            StatusTable.policyLine(path)
                == "  lte: backup (standby), cap 20.0 Mbit/s, sent 1.2 MiB, received 30.5 MiB")
    }

    @Test func pathTotalsKeepEachDirectionAcrossReconnections() {
        func path(association: Int, sent: Int, received: Int) -> StatusSnapshot.Path {
            StatusSnapshot.Path(
                id: "\(association)/10.0.0.2/192.0.2.1", association: association, name: "lte", local: "10.0.0.2",
                remote: "192.0.2.1", remotePort: 9899, state: "active", bytesSent: sent, bytesReceived: received)
        }
        var totals = PathTotals()
        var first = [StatusSnapshot.Association(id: 1, state: "ready", client: "laptop", paths: [])]
        first[0].paths = [path(association: 1, sent: 100, received: 5000)]
        totals.update(&first)
        var none: [StatusSnapshot.Association] = []
        totals.update(&none)
        var next = [StatusSnapshot.Association(id: 2, state: "ready", client: "laptop", paths: [])]
        next[0].paths = [path(association: 2, sent: 10, received: 20)]
        totals.update(&next)
        #expect(next[0].paths[0].totalBytesSent == 110)
        #expect(next[0].paths[0].totalBytesReceived == 5020)
        #expect(next[0].paths[0].totalBytes == 5130)
    }

    @Test func enginePathsReportTheirPolicy() {
        var info = [SCTPPathInfo]()
        let endpoint = SCTPEndpoint(configuration: SCTPConfiguration(), seed: 1)
        let id = endpoint.connect(
            to: SCTPSocketAddress(ip: SCTPIPAddress(v4: 192, 0, 2, 1), port: 9899),
            from: SCTPSocketAddress(ip: SCTPIPAddress(v4: 10, 0, 0, 2), port: 40000), peerPort: 5000, now: .zero)
        _ = try? endpoint.setPathPolicy(
            SCTPPathPolicy(mode: .backup, sendRateLimit: 1000), for: .local(SCTPIPAddress(v4: 10, 0, 0, 2)), on: id,
            now: .zero)
        info = endpoint.paths(of: id)
        let paths = StatusMonitor.paths(info, association: id.rawValue)
        #expect(paths.map(\.mode) == ["backup"])
        #expect(paths.map(\.rateLimitBitsPerSecond) == [8000])
    }
}
