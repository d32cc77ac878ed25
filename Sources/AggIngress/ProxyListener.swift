import AggTransport
import NIOCore
import NIOPosix

/// Binds a TCP listener whose accepted connections speak SOCKS5, SOCKS4/4a and/or HTTP proxy and are handed to a
/// connector. Loopback by default: an open proxy on a public address is an abuse magnet.
public struct ProxyListener: Sendable {
    public var host: String
    public var port: Int
    public var protocols: ProxyProtocols
    public var configuration: ProxyIngressConfiguration
    public var connector: any ProxyConnector
    /// Connections the kernel queues before we accept them (capped by net.core.somaxconn). A page load or an app
    /// start opens hundreds at once; with a short queue the rest are dropped and their clients retry a second later.
    public var backlog: Int32 = 4096
    /// Connections accepted per wake-up of the event loop, so that a burst leaves the queue quickly.
    public var acceptsPerRead: UInt = 64

    public init(
        host: String = "127.0.0.1",
        port: Int = 1080,
        protocols: ProxyProtocols = .all,
        configuration: ProxyIngressConfiguration = .init(),
        connector: any ProxyConnector
    ) {
        self.host = host
        self.port = port
        self.protocols = protocols
        self.configuration = configuration
        self.connector = connector
    }

    /// Binds and starts accepting. The returned server channel's `localAddress` has the port the kernel chose when
    /// `port` was 0; close it to stop listening.
    public func bind(group: any EventLoopGroup) -> EventLoopFuture<any Channel> {
        makeBootstrap(group: group)
            .serverChannelOption(.backlog, value: self.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: self.host, port: self.port)
    }

    /// Starts accepting on `descriptor`, a TCP socket already bound and listening (one systemd passed through
    /// socket activation); `host`, `port` and `backlog` are not used. The channel owns the descriptor.
    public func bind(group: any EventLoopGroup, adopting descriptor: CInt) -> EventLoopFuture<any Channel> {
        makeBootstrap(group: group).withBoundSocket(descriptor)
    }

    private func makeBootstrap(group: any EventLoopGroup) -> ServerBootstrap {
        let protocols = self.protocols
        let configuration = self.configuration
        let connector = self.connector
        let deadlines = HandshakeDeadlineTable()
        let httpHandlers: @Sendable () -> [any ChannelHandler] = {
            ProxyIngress.httpHandlers(configuration: configuration, connector: connector)
        }
        // The accepted channels' options are set in the initializer, synchronously: given to the bootstrap as
        // child channel options, each would cost a future and an existential box per accepted connection. Their
        // TCP_NODELAY is the listener's: Linux copies it to every connection the listener accepts, so setting it
        // again would cost a system call per connection.
        return ServerBootstrap(group: group)
            .serverChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .serverChannelOption(.maxMessagesPerRead, value: acceptsPerRead)
            .childChannelInitializer { channel in
                // The loop's cached succeeded future on success: `makeCompletedFuture` would make a future and a
                // generic `Result` per connection.
                do {
                    try Self.setAcceptedChannelOptions(channel)
                    try ProxyIngress.configure(
                        channel: channel, protocols: protocols, configuration: configuration, connector: connector,
                        deadlines: deadlines.deadlines(for: channel.eventLoop), httpHandlers: httpHandlers)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
    }

    /// The read sizes of an accepted connection's handshake, set synchronously; call on the channel's event loop,
    /// from the child channel initializer. TCP_NODELAY comes from the listener, and 4 reads per wake-up are NIO's
    /// default (every option set costs several dynamic casts; ListenerSocketOptionTests reads both back). Once a
    /// relay joins the connection it reads by its association's room instead, once per wake-up
    /// (`StreamSessionHost.attach`).
    static func setAcceptedChannelOptions(_ channel: any Channel) throws {
        guard let options = channel.syncOptions else { throw ChannelError.operationUnsupported }
        try options.setOption(.recvAllocator, value: TCPReads.allocator)
    }
}
