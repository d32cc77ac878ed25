import NIOCore
import NIOHTTP1
import NIOPosix

/// The daemon's HTTP status endpoint on `--metrics HOST:PORT`: `/metrics` (Prometheus text exposition),
/// `/status.json` (a snapshot with the per-second history; `?history=N` keeps the newest N samples), `/` (the live
/// status page for browsers; plain-text status lines for clients that do not ask for HTML, such as curl) and
/// `/status.txt` (the plain-text lines). It owns the monitor that samples the daemon once a second.
public final class StatusEndpoint: Sendable {
    public let channel: any Channel
    let monitor: StatusMonitor

    init(channel: any Channel, monitor: StatusMonitor) {
        self.channel = channel
        self.monitor = monitor
    }

    /// The bound address (the port the kernel chose for port 0).
    public var localAddress: SocketAddress? { channel.localAddress }

    /// Stops sampling and closes the listening socket.
    public func close() -> EventLoopFuture<Void> {
        monitor.stop()
        return channel.close()
    }

    package static func start(host: String, port: Int, source: any StatusSource) -> EventLoopFuture<StatusEndpoint> {
        start(host: host, port: port, sources: [source])
    }

    /// Watches several sources (a sharded server's) as one daemon, sampling every `sampleInterval`.
    package static func start(
        host: String, port: Int, sources: [any StatusSource], sampleInterval: TimeAmount = .seconds(1)
    ) -> EventLoopFuture<StatusEndpoint> {
        let monitor = StatusMonitor(sources: sources)
        let eventLoop = monitor.eventLoop
        return ServerBootstrap(group: eventLoop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try StatusRequestHandler.configure(channel, responder: monitor)
                }
            }
            .bind(host: host, port: port)
            .map { channel in
                monitor.start(interval: sampleInterval)
                return StatusEndpoint(channel: channel, monitor: monitor)
            }
    }
}
