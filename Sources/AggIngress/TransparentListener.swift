import AggProtocol
import AggTransport
import Logging
import NIOCore
import NIOPosix
import SCTPEngine
import Synchronization

/// The handshake of a transparent connection: there is none. The target is known from the socket before any byte
/// arrives, so the connection opens at once, like a SOCKS CONNECT whose request came with the accept, and nothing
/// is written back (a failure closes the connection).
struct TransparentHandshake: TunnelHandshake {
    let target: ProxyTarget

    var connectsAtOnce: Bool { true }

    mutating func receive(_ buffer: inout ByteBuffer) -> TunnelHandshakeAction { .connect(target) }
    func successReply() -> [UInt8] { [] }
    func failureReply(_ failure: ProxyFailure) -> [UInt8] { [] }
}

/// Binds the TCP listener that nftables sends a LAN's connections to (`redirect` or `tproxy`): each accepted
/// connection goes to the connector for the address it was really going to (`TransparentDestination`), through the
/// same path as a SOCKS CONNECT. A connection whose destination cannot be read, or is one of aggclient's own
/// listeners (a loop), is closed, counted as a `Refusal` and logged (rate-limited).
public struct TransparentListener: Sendable {
    public var host: String
    public var port: Int
    public var configuration: ProxyIngressConfiguration
    public var connector: any ProxyConnector
    /// aggclient's other TCP listeners as bound (SOCKS, HTTP, the status page): a connection redirected to one of
    /// them is a loop. The transparent listener's own address is always one.
    public var ownListeners: [SCTPSocketAddress] = []
    public var logger: Logger
    public var backlog: Int32 = 4096

    public init(
        host: String, port: Int, configuration: ProxyIngressConfiguration = .init(),
        connector: any ProxyConnector, logger: Logger
    ) {
        self.host = host
        self.port = port
        self.configuration = configuration
        self.connector = connector
        self.logger = logger
    }

    /// Whether the socket accepts connections to any address (IP_TRANSPARENT / IPV6_TRANSPARENT, so nftables
    /// `tproxy` works), or only redirected ones (no CAP_NET_ADMIN).
    public enum Mode: Sendable, Equatable {
        case redirectAndTProxy
        case redirectOnly
    }

    /// Binds and starts accepting, asking for IP_TRANSPARENT first; without the privilege for it, binds without it
    /// (nftables `redirect` still works) and says so in `Mode`.
    public func bind(group: any EventLoopGroup) -> EventLoopFuture<(any Channel, Mode)> {
        let isIPv6 = host.contains(":")
        let option = ChannelOptions.Types.SocketOption(
            level: isIPv6 ? TransparentDestination.solIPv6 : TransparentDestination.solIP,
            name: isIPv6 ? TransparentDestination.ipv6Transparent : TransparentDestination.ipTransparent)
        let eventLoop = group.next()
        return makeBootstrap(group: group)
            .serverChannelOption(option, value: 1)
            .bind(host: host, port: port)
            .map { ($0, Mode.redirectAndTProxy) }
            .flatMapError { error in
                guard let error = error as? IOError, error.errnoCode == EPERM else {
                    return eventLoop.makeFailedFuture(error)
                }
                return makeBootstrap(group: group).bind(host: host, port: port).map { ($0, Mode.redirectOnly) }
            }
    }

    /// Starts accepting on `descriptor`, a TCP socket already bound and listening (systemd's, from a socket unit
    /// with `Transparent=yes` when tproxy is wanted: systemd sets IP_TRANSPARENT, so aggclient needs no
    /// capability); `host`, `port` and `backlog` are not used. `Mode` says what the socket has.
    public func bind(group: any EventLoopGroup, adopting descriptor: CInt) -> EventLoopFuture<(any Channel, Mode)> {
        makeBootstrap(group: group).withBoundSocket(descriptor).flatMap { channel in
            let isIPv6: Bool
            if case .v6? = channel.localAddress { isIPv6 = true } else { isIPv6 = false }
            let option = ChannelOptions.Types.SocketOption(
                level: isIPv6 ? TransparentDestination.solIPv6 : TransparentDestination.solIP,
                name: isIPv6 ? TransparentDestination.ipv6Transparent : TransparentDestination.ipTransparent)
            return channel.getOption(option)
                .map { value in (channel, value != 0 ? Mode.redirectAndTProxy : Mode.redirectOnly) }
                .recover { _ in (channel, Mode.redirectOnly) }
        }
    }

    private func makeBootstrap(group: any EventLoopGroup) -> ServerBootstrap {
        let configuration = self.configuration
        let connector = self.connector
        let listeners = self.ownListeners
        let refusals = RefusalLog(logger: logger)
        let deadlines = HandshakeDeadlineTable()
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.tcpOption(.tcp_nodelay), value: 1)  // Inherited by the accepted connections.
            .serverChannelOption(.maxMessagesPerRead, value: 64)
            .childChannelInitializer { channel in
                do {
                    try ProxyListener.setAcceptedChannelOptions(channel)
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
                return Self.configure(
                    channel: channel, configuration: configuration, connector: connector, ownListeners: listeners,
                    refusals: refusals, deadlines: deadlines.deadlines(for: channel.eventLoop))
            }
    }

    /// Reads where `channel`, an accepted connection, was going and installs the handler that opens it there; or
    /// counts, logs and fails (the server then closes the connection). Call on the channel's event loop.
    static func configure(
        channel: any Channel, configuration: ProxyIngressConfiguration, connector: any ProxyConnector,
        ownListeners: [SCTPSocketAddress], refusals: RefusalLog, deadlines: HandshakeDeadlines? = nil
    ) -> EventLoopFuture<Void> {
        let deadlines = deadlines ?? HandshakeDeadlines(eventLoop: channel.eventLoop)
        return TransparentDestination.read(from: channel, listeners: ownListeners).flatMapThrowing { destination in
            let handshake = TransparentHandshake(target: .address(destination.ip, port: destination.port))
            try channel.pipeline.syncOperations.addHandler(
                TunnelHandshakeHandler(
                    handshake: handshake, connector: connector,
                    deadline: channel.eventLoop.now + configuration.handshakeTimeout, deadlines: deadlines,
                    onRefusal: configuration.onRefusal))
        }.flatMapError { error in
            let problem = error as? TransparentDestination.Problem ?? .unreadable
            refusals.record(problem, channel: channel, onRefusal: configuration.onRefusal)
            // A failed initializer makes the server close the accepted channel.
            return channel.eventLoop.makeFailedFuture(problem)
        }
    }
}

/// Counts and logs the transparent connections that are refused, at most 10 lines per reason per 10 s.
final class RefusalLog: Sendable {
    private let logger: Logger
    private let limiters = Mutex([Refusal: LogRateLimiter]())

    init(logger: Logger) {
        self.logger = logger
    }

    func record(
        _ problem: TransparentDestination.Problem, channel: any Channel,
        onRefusal: (@Sendable (Refusal) -> Void)?
    ) {
        let refusal: Refusal
        let text: String
        switch problem {
        case .unreadable:
            refusal = .transparentDestination
            text =
                "transparent connection closed: its original destination cannot be read (is it redirected by "
                + "nftables redirect or tproxy?)"
        case .loop(let destination):
            refusal = .transparentLoop
            text =
                "transparent connection closed: its destination \(destination) is aggclient's own listener (a "
                + "loop: exclude this host's addresses from the redirect, or connect to the proxy ports directly)"
        }
        onRefusal?(refusal)
        let heldBack = limiters.withLock { $0[refusal, default: LogRateLimiter()].admit(now: .now()) }
        guard let heldBack else { return }
        var metadata: Logger.Metadata = ["peer": "\(channel.remoteAddress?.description ?? "?")"]
        if heldBack > 0 { metadata["held_back"] = "\(heldBack)" }
        logger.warning("\(text)", metadata: metadata)
    }
}
