import AggProtocol
import NIOCore
import NIOHTTP1

/// The proxy protocols a listener speaks.
public struct ProxyProtocols: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let socks5 = ProxyProtocols(rawValue: 1 << 0)
    /// SOCKS4 and SOCKS4a.
    public static let socks4 = ProxyProtocols(rawValue: 1 << 1)
    public static let http = ProxyProtocols(rawValue: 1 << 2)
    public static let socks: ProxyProtocols = [.socks5, .socks4]
    public static let all: ProxyProtocols = [.socks5, .socks4, .http]
}

/// Installs the ingress handlers on accepted channels.
public enum ProxyIngress {
    /// Adds the handshake handler to `channel`'s pipeline; call on the channel's event loop (e.g. from a
    /// `childChannelInitializer`).
    public static func configure(
        channel: any Channel,
        protocols: ProxyProtocols = .all,
        configuration: ProxyIngressConfiguration,
        connector: any ProxyConnector
    ) throws {
        try configure(
            channel: channel, protocols: protocols, configuration: configuration, connector: connector,
            deadlines: HandshakeDeadlines(eventLoop: channel.eventLoop),
            httpHandlers: { httpHandlers(configuration: configuration, connector: connector) })
    }

    /// `configure` with the listener's handshake deadline queue for the channel's loop (one timer for all its
    /// connections on that loop) and its maker of HTTP handlers (made once per listener, not per connection).
    static func configure(
        channel: any Channel, protocols: ProxyProtocols, configuration: ProxyIngressConfiguration,
        connector: any ProxyConnector, deadlines: HandshakeDeadlines,
        httpHandlers: @escaping @Sendable () -> [any ChannelHandler]
    ) throws {
        let handler = TunnelHandshakeHandler(
            handshake: ProxyHandshake.detecting(protocols, configuration), connector: connector,
            deadline: channel.eventLoop.now + configuration.handshakeTimeout, deadlines: deadlines,
            onRefusal: configuration.onRefusal, handOver: httpHandlers)
        try channel.pipeline.syncOperations.addHandler(handler)
    }

    /// The handlers of an HTTP proxy connection, in pipeline order. An HTTP request has its own header timeout.
    static func httpHandlers(
        configuration: ProxyIngressConfiguration, connector: any ProxyConnector
    ) -> [any ChannelHandler] {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = configuration.maxHTTPHeadSize
        limits.maxHeaderFieldSize = configuration.maxHTTPHeadSize
        limits.maxHeaderFieldCount = 256
        let decoder = HTTPRequestDecoder(
            leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .drop, limitConfiguration: limits)
        return [ByteToMessageHandler(decoder), HTTPProxyHandler(configuration: configuration, connector: connector)]
    }
}
