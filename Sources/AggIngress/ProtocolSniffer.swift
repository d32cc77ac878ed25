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
    /// Adds the protocol sniffer to `channel`'s pipeline; call on the channel's event loop (e.g. from a
    /// `childChannelInitializer`).
    public static func configure(
        channel: any Channel,
        protocols: ProxyProtocols = .all,
        configuration: ProxyIngressConfiguration,
        connector: any ProxyConnector
    ) throws {
        try configure(
            channel: channel, protocols: protocols, configuration: configuration, connector: connector,
            deadlines: HandshakeDeadlines(eventLoop: channel.eventLoop))
    }

    /// `configure` with the listener's handshake deadline queue for the channel's loop (one timer for all its
    /// connections on that loop).
    static func configure(
        channel: any Channel, protocols: ProxyProtocols, configuration: ProxyIngressConfiguration,
        connector: any ProxyConnector, deadlines: HandshakeDeadlines
    ) throws {
        let sniffer = ProtocolSniffer(
            protocols: protocols, configuration: configuration, connector: connector, deadlines: deadlines)
        try channel.pipeline.syncOperations.addHandler(sniffer)
    }

    /// The handlers for one protocol, in pipeline order. A SOCKS handshake must be done by `handshakeDeadline`:
    /// `entry` is the channel's entry at that deadline in `deadlines`, which the SOCKS handler takes over (an HTTP
    /// request has its own header timeout, and the caller cancels the entry).
    static func handlers(
        for detected: ProxyProtocols,
        configuration: ProxyIngressConfiguration,
        connector: any ProxyConnector,
        handshakeDeadline: NIODeadline,
        deadlines: HandshakeDeadlines,
        entry: HandshakeDeadline?
    ) -> [any ChannelHandler] {
        switch detected {
        case .socks5:
            let handshake = SOCKS5Handshake(configuration: configuration)
            return [
                TunnelHandshakeHandler(
                    handshake: handshake, connector: connector, deadline: handshakeDeadline, deadlines: deadlines,
                    entry: entry, onRefusal: configuration.onRefusal)
            ]
        case .socks4:
            let handshake = SOCKS4Handshake(
                requiresCredentials: configuration.requiresCredentials,
                maxFieldLength: configuration.maxSOCKS4FieldLength)
            return [
                TunnelHandshakeHandler(
                    handshake: handshake, connector: connector, deadline: handshakeDeadline, deadlines: deadlines,
                    entry: entry, onRefusal: configuration.onRefusal)
            ]
        default:
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderListSize = configuration.maxHTTPHeadSize
            limits.maxHeaderFieldSize = configuration.maxHTTPHeadSize
            limits.maxHeaderFieldCount = 256
            let decoder = HTTPRequestDecoder(
                leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .drop, limitConfiguration: limits)
            return [
                ByteToMessageHandler(decoder),
                HTTPProxyHandler(configuration: configuration, connector: connector),
            ]
        }
    }
}

/// Looks at the first byte a client sends and installs the matching protocol's handlers: 0x05 SOCKS5, 0x04
/// SOCKS4/4a, an ASCII letter HTTP (every method token starts with one). Anything else, or a protocol the listener
/// does not speak, closes the connection; so does silence for `handshakeTimeout`.
final class ProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let protocols: ProxyProtocols
    private let configuration: ProxyIngressConfiguration
    private let connector: any ProxyConnector
    /// The listener's handshake deadline queue on this loop, and the channel's entry in it (nil once cancelled or
    /// handed to the SOCKS handler).
    private let deadlines: HandshakeDeadlines
    private var deadlineEntry: HandshakeDeadline?
    /// Accept time plus the handshake timeout: the sniffer's own limit, and the SOCKS handshake's after it.
    private var deadline = NIODeadline.distantFuture
    private var isDone = false

    init(
        protocols: ProxyProtocols, configuration: ProxyIngressConfiguration, connector: any ProxyConnector,
        deadlines: HandshakeDeadlines
    ) {
        self.protocols = protocols
        self.configuration = configuration
        self.connector = connector
        self.deadlines = deadlines
    }

    static func detect(firstByte: UInt8) -> ProxyProtocols {
        switch firstByte {
        case 0x05: return .socks5
        case 0x04: return .socks4
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"): return .http
        default: return []
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.deadline = context.eventLoop.now + self.configuration.handshakeTimeout
        self.deadlineEntry = self.deadlines.add(context.channel, deadline: self.deadline)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if let entry = self.deadlineEntry {
            self.deadlineEntry = nil
            self.deadlines.cancel(entry)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.isDone else { return }
        let bytes = self.unwrapInboundIn(data)
        guard let first = bytes.getInteger(at: bytes.readerIndex, as: UInt8.self) else { return }
        self.isDone = true
        let detected = Self.detect(firstByte: first)
        guard !detected.isEmpty, self.protocols.isSuperset(of: detected) else {
            context.close(promise: nil)
            return
        }
        // A SOCKS handshake's deadline is the sniffer's: its handler takes the entry over.
        let handover = detected == .http ? nil : self.deadlineEntry
        let handlers = ProxyIngress.handlers(
            for: detected, configuration: self.configuration, connector: self.connector,
            handshakeDeadline: self.deadline, deadlines: self.deadlines, entry: handover)
        if handover != nil { self.deadlineEntry = nil }
        do {
            try context.pipeline.syncOperations.addHandlers(handlers, position: .after(self))
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
