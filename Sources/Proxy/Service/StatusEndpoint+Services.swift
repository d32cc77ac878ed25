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
}
