import AggEgress
import AggProtocol
import AggTransport
import NIOCore
import NIOPosix
import SCTPEngine
import Testing

@testable import AggObservability
@testable import Proxy

/// Refusals of every resource limit reach `agg_refusals_total`, the engine's as well as the proxy's, and the
/// paths limit of the settings reaches the engine.
@Suite struct LimitRefusalMetricsTests {
    @Test func engineRefusalsAreAddedAsTheyGrow() {
        let metrics = ProxyMetrics()
        var engine = SCTPLimitRefusals()
        engine.paths = 3
        metrics.syncEngineRefusals(engine)
        metrics.syncEngineRefusals(engine)
        engine.paths = 5
        engine.tsnGaps = 7
        metrics.syncEngineRefusals(engine)
        metrics.recordRefusal(.controlReplies, count: 2)
        #expect(metrics.refusals[.pathsPerAssociation] == 5)
        let text = metrics.registry.emitToString()
        #expect(text.contains("agg_refusals_total{reason=\"paths_per_association\"} 5"))
        #expect(text.contains("agg_refusals_total{reason=\"control_replies\"} 2"))
        #expect(text.contains("agg_refusals_total{reason=\"tsn_gaps\"} 7"))
        #expect(text.contains("agg_refusals_total{reason=\"streams_per_association\"} 0"))
    }

    @Test func thePathsLimitReachesTheEngine() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        var limits = StreamLimits()
        limits.pathsPerAssociation = 3
        let listen = [SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: 0)]
        var configuration = AggServerService.Configuration(
            listen: listen, keys: [EndToEndHarness.key],
            egress: EgressConnector(policy: EgressPolicy(allowed: []), connectTimeout: .seconds(5)))
        configuration.limits = limits
        let server = try await AggServerService.start(configuration: configuration, on: loop).get()
        let configured = try await loop.submit { server.driver.endpoint.configuration.maxPathsPerAssociation }.get()
        #expect(configured == 3)
        try await server.stop().get()
        try await group.shutdownGracefully()
    }
}
