import NIOCore
import SCTPEngine

/// One path of a multipath scenario: a link each way between the client and one of the server's addresses.
public struct PathSpec: Sendable {
    public var rateBitsPerSecond: Int64
    /// Round-trip propagation delay (half each way).
    public var rtt: SCTPDuration
    /// Random loss on the data direction.
    public var loss: Double
    /// Router queue in bytes; nil for one bandwidth-delay product (at least 64 KiB).
    public var queueBytes: Int?

    public init(rateBitsPerSecond: Int64, rtt: SCTPDuration, loss: Double = 0, queueBytes: Int? = nil) {
        self.rateBitsPerSecond = rateBitsPerSecond
        self.rtt = rtt
        self.loss = loss
        self.queueBytes = queueBytes
    }

    var linkConfiguration: LinkConfiguration {
        let bdp = Int(rateBitsPerSecond / 8 * rtt.nanoseconds / 1_000_000_000)
        return LinkConfiguration(
            rateBitsPerSecond: rateBitsPerSecond, queueLimitBytes: queueBytes ?? max(bdp, 64 * 1024),
            delay: rtt / 2, lossProbability: loss)
    }
}

/// A bulk transfer from a client to a server with one address per path: the server is multihomed (S1, S2, ...)
/// and each path is its own rate-limited, delayed, lossy link, so the client's association has one destination
/// per path. Measures goodput and how it evolves over time.
public final class MultipathScenario {
    public struct Result: Sendable {
        /// Goodput from the first byte delivered to the last, in bit/s.
        public var goodput: Double
        public var duration: SCTPDuration
        /// Payload bytes delivered per path's link (data direction).
        public var bytesPerPath: [Int]
        /// Goodput per `binWidth`, from the first delivered byte.
        public var timeline: [Double]
        public var binWidth: SCTPDuration
        public var intact: Bool
    }

    public let network: SimulatedNetwork
    public let client: EndpointHost
    public let server: EndpointHost
    public let paths: [PathSpec]
    public private(set) var dataLinks: [SimulatedLink] = []
    public private(set) var returnLinks: [SimulatedLink] = []
    let clientAddress = SCTPSocketAddress(ip: .init(v4: 10, 0, 0, 1), port: 40000)
    public let serverAddresses: [SCTPIPAddress]

    public init(seed: UInt64, paths: [PathSpec], configuration: SCTPConfiguration = SCTPConfiguration()) {
        self.paths = paths
        network = SimulatedNetwork(seed: seed, name: "multipath-\(seed)")
        serverAddresses = paths.indices.map { SCTPIPAddress(v4: 192, 0, 2, UInt8(1 + $0)) }
        client = EndpointHost(endpoint: SCTPEndpoint(configuration: configuration, seed: seed &* 7 &+ 1))
        server = EndpointHost(
            endpoint: SCTPEndpoint(
                configuration: configuration, seed: seed &* 11 &+ 2, advertisedAddresses: serverAddresses))
        network.attach(client, at: clientAddress.ip)
        network.attach(server, at: serverAddresses)
        for (i, spec) in paths.enumerated() {
            dataLinks.append(
                network.addLink(from: clientAddress.ip, to: serverAddresses[i], spec.linkConfiguration, name: "path\(i + 1)>"))
            returnLinks.append(
                network.addLink(
                    from: serverAddresses[i], to: clientAddress.ip,
                    LinkConfiguration(rateBitsPerSecond: spec.rateBitsPerSecond, queueLimitBytes: 1 << 20, delay: spec.rtt / 2),
                    name: "path\(i + 1)<"))
        }
    }

    /// Sends `bytes` and runs until they are delivered. `failure` takes path `index` down (both ways) at `at`
    /// after the first byte is delivered. `probe`, if given, runs every `interval` of virtual time from the start,
    /// to trace the state of the association (cwnd, queues) while the transfer runs. `onConnect` gets the client's
    /// association as soon as it exists, to configure it (path policies) before any data flows.
    public func run(
        bytes: Int, messageSize: Int = 64 * 1024, failure: (index: Int, at: SCTPDuration)? = nil,
        binWidth: SCTPDuration = .milliseconds(100), timeout: SCTPDuration = .seconds(600),
        probe: (interval: SCTPDuration, action: (SCTPTime) -> Void)? = nil,
        onConnect: ((SCTPEndpoint, SCTPAssociationID) -> Void)? = nil
    ) throws -> Result {
        if let probe {
            func tick() {
                probe.action(network.now)
                network.schedule(after: probe.interval, tick)
            }
            network.schedule(after: probe.interval, tick)
        }
        var id: SCTPAssociationID!
        client.perform(at: network.now) {
            id = $0.connect(
                to: SCTPSocketAddress(ip: serverAddresses[0], port: 9899), from: clientAddress, peerPort: 5000,
                now: network.now)
            onConnect?($0, id)
        }
        var firstByte: SCTPTime?
        var bins: [Int] = []
        server.onEvent = { [network] event, _ in
            guard case .message(_, let message) = event else { return }
            let now = network.now
            if firstByte == nil {
                firstByte = now
                if let failure {
                    network.schedule(after: failure.at) { [self] in
                        dataLinks[failure.index].isUp = false
                        returnLinks[failure.index].isUp = false
                    }
                }
            }
            let bin = Int((now - firstByte!).nanoseconds / binWidth.nanoseconds)
            while bins.count <= bin { bins.append(0) }
            bins[bin] += message.payload.readableBytes
        }
        client.startTransfer(on: id, stream: StreamID(0), total: bytes, messageSize: messageSize)
        let done = try network.runUntil({ [server] in server.totalReceivedBytes >= bytes }, timeout: timeout)
        let duration = done - (firstByte ?? .zero)
        return Result(
            goodput: Double(bytes * 8) / duration.seconds, duration: duration,
            bytesPerPath: dataLinks.map(\.counters.deliveredPayloadBytes),
            timeline: bins.map { Double($0 * 8) / binWidth.seconds }, binWidth: binWidth,
            intact: server.corruption == nil && server.totalReceivedBytes == bytes)
    }

    /// Goodput of one single-path association over `spec` alone, measured the same way: the baseline.
    public static func singlePathGoodput(
        seed: UInt64, spec: PathSpec, bytes: Int, configuration: SCTPConfiguration = SCTPConfiguration()
    ) throws -> Double {
        var single = configuration
        single.multipath = .singlePath
        return try MultipathScenario(seed: seed, paths: [spec], configuration: single).run(bytes: bytes).goodput
    }
}
