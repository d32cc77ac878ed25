import AggConfig
import AggEgress
import AggObservability
import AggOperations
import AggTransport
import Logging
import NIOCore
import NIOPosix
import SCTPEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// `aggclient demo`: an aggserver and an aggclient in one process on loopback, measured before it waits for the user.
extension AggRuntime {
    /// The demo's ports; 0 lets the kernel choose (the tests do), and the banner prints what was bound.
    public struct DemoOptions: Sendable {
        /// The server's UDP port on 127.0.0.1 and 127.0.0.2.
        public var serverPort: UInt16 = 9899
        public var socksPort: UInt16 = 1080
        public var httpPort: UInt16 = 8080
        /// The client's status page and metrics, where `aggclient status` looks by default.
        public var metricsPort: UInt16 = 9101
        /// How long the self-test download runs; zero skips it.
        public var measureFor: Duration = .seconds(3)

        public init() {}
    }

    /// Runs the demo until SIGINT or SIGTERM: two paths (path1 from 127.0.0.1 and path2 from 127.0.0.2, to the
    /// server's 127.0.0.1 and 127.0.0.2), a fresh key in a mode-600 file, egress allowed to 127.0.0.0/8 so local
    /// test servers are reachable, the client's status page and metrics on 127.0.0.1. Before it waits it measures
    /// itself: a download from a local source through its own proxy, with the goodput and each path's share of the
    /// bytes.
    public static func runDemo(_ options: DemoOptions, logger: Logger = Logger(label: "agg-demo")) throws {
        let directory = try makeTemporaryDirectory()
        let keyPath = directory + "/demo.keys"
        try ServiceSetup.writePrivateFile(ServiceSetup.makeKeyLine(name: "demo"), path: keyPath)
        defer {
            unlink(keyPath)
            rmdir(directory)
        }

        var serverSettings = ServerSettings()
        serverSettings.listenAddresses = [
            HostAndPort(host: "127.0.0.1", port: options.serverPort),
            HostAndPort(host: "127.0.0.2", port: options.serverPort),
        ]
        serverSettings.pskFile = keyPath
        serverSettings.egressAllow = [CIDR("127.0.0.0/8")!]

        blockTerminationSignals()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { try? group.syncShutdownGracefully() }
        var serverLogger = logger
        serverLogger[metadataKey: "side"] = "server"
        var clientLogger = logger
        clientLogger[metadataKey: "side"] = "client"
        let server = try AggServerService.start(
            configuration: try ServiceSetup.serverConfiguration(serverSettings), on: group.next(),
            logger: serverLogger
        ).wait()
        // With port 0 each address gets its own port: the client goes to what was bound.
        let bound = try server.localAddresses.wait()

        var clientSettings = ClientSettings()
        clientSettings.serverAddresses = bound.map { HostAndPort(host: $0.ip.description, port: $0.port) }
        clientSettings.localAddresses = ["path1=127.0.0.1", "path2=127.0.0.2"]
        clientSettings.socksAddress = HostAndPort(host: "127.0.0.1", port: options.socksPort)
        clientSettings.httpAddress = HostAndPort(host: "127.0.0.1", port: options.httpPort)
        clientSettings.metricsAddress = HostAndPort(host: "127.0.0.1", port: options.metricsPort)
        clientSettings.pskFile = keyPath
        let (client, ports) = try startClient(
            try ServiceSetup.clientConfiguration(clientSettings), settings: clientSettings, on: group.next(),
            logger: clientLogger)
        say(
            "aggclient demo \(BuildInfo.version): aggserver on UDP \(bound.map(\.description).joined(separator: " and ")), "
                + "key in \(keyPath)")
        #if DEBUG
            say("aggclient demo: this is a debug build, many times slower than `swift run -c release aggclient demo`")
        #endif
        do {
            try client.whenReady().wait()
            say("aggclient demo: association up, path1 from 127.0.0.1 and path2 from 127.0.0.2")
        } catch {
            say("aggclient demo: the association did not come up: \(error)")
        }

        if options.measureFor > .zero, let socks = ports.socks {
            measure(client, socksPort: socks, duration: TimeAmount(options.measureFor))
        }
        let socks = ports.socks.map(String.init) ?? "?"
        let http = ports.http.map(String.init) ?? "?"
        let metrics = ports.metrics.map(String.init) ?? "?"
        say(
            """

            Try:
              curl -x socks5h://127.0.0.1:\(socks) https://example.com
              curl -x http://127.0.0.1:\(http) http://example.com
              curl -x http://127.0.0.1:\(http) https://example.com   # HTTP CONNECT
              aggclient status --metrics 127.0.0.1:\(metrics)        # the paths, like top
              http://127.0.0.1:\(metrics)/ in a browser: the status page with graphs per path

            Press Ctrl-C to stop.
            """)
        waitForTerminationSignal()
        say("\naggclient demo: stopping")
        try? client.stop().wait()
        try? server.stop().wait()
    }

    /// The self-test: a download through the client's SOCKS5 listener, then the goodput and what each path carried
    /// toward the client while it ran. A failure is reported and the demo goes on.
    static func measure(_ client: AggClientService, socksPort: Int, duration: TimeAmount) {
        let seconds = Double(duration.nanoseconds) / 1e9
        say(
            "aggclient demo: measuring: a \(StatusFormat.decimal(seconds, digits: 0)) s download from a local source "
                + "through the proxy and both paths…")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        do {
            let before = try client.eventLoop.submit { client.pathTraffic() }.wait()
            let result = try DemoMeasurement.download(socksPort: socksPort, duration: duration, on: group)
            let after = try client.eventLoop.submit { client.pathTraffic() }.wait()
            var received: [(name: String, bytes: Int)] = []
            for path in after {
                let earlier = before.first { $0.id == path.id }?.bytesReceived ?? 0
                received.append((path.name, max(path.bytesReceived - earlier, 0)))
            }
            let total = received.reduce(0) { $0 + $1.bytes }
            let shares = received.map { path in
                "\(path.name) \(StatusFormat.percent(total > 0 ? Double(path.bytes) / Double(total) : 0))"
            }
            say(
                "aggclient demo: \(StatusFormat.rate(bytesPerSecond: result.goodput / 8)) goodput "
                    + "(\(StatusFormat.bytes(result.bytes)) in \(StatusFormat.decimal(result.seconds, digits: 1)) s); "
                    + "share of the bytes: \(shares.joined(separator: ", "))")
        } catch {
            say("aggclient demo: the measurement failed: \(error)")
        }
    }
}

extension AggClientService {
    /// Bytes each path of the association carried so far, by path, with the path's name (its configured name,
    /// else its local IP). Call on the event loop.
    func pathTraffic() -> [(id: String, name: String, bytesSent: Int, bytesReceived: Int)] {
        guard let (group, id) = currentAssociation else { return [] }
        return group.driver.endpoint.paths(of: id).map { path in
            let local = path.local.map { $0.ip.description } ?? "*"
            let name = path.local.flatMap { configuredPathName(local: $0.ip) } ?? local
            return ("\(local)/\(path.remote)", name, path.bytesSent, path.bytesReceived)
        }
    }
}
