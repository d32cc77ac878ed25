import AggObservability
import NIOCore

/// The status endpoint started for one of the services (which are the `StatusSource`s).
extension StatusEndpoint {
    /// Starts watching aggclient and serves its status on `host:port`.
    public static func start(host: String, port: Int, client: AggClientService) -> EventLoopFuture<StatusEndpoint> {
        start(host: host, port: port, source: client)
    }

    /// Starts watching aggserver and serves its status on `host:port`.
    public static func start(host: String, port: Int, server: AggServerService) -> EventLoopFuture<StatusEndpoint> {
        start(host: host, port: port, source: server)
    }

    /// Starts watching every shard of aggserver as one daemon and serves the sum on `host:port`, from the first
    /// shard's loop.
    public static func start(host: String, port: Int, shards: ServerShards) -> EventLoopFuture<StatusEndpoint> {
        start(host: host, port: port, sources: shards.shards)
    }
}
