import AggProtocol
import NIOCore
import NIOPosix

/// A `ProxyConnector` that opens a plain TCP connection to the target from this host: the reference implementation
/// of the connector contract, and the "direct" mode for tests and debugging (no aggregation).
public struct DirectProxyConnector: ProxyConnector {
    public var connectTimeout: TimeAmount

    public init(connectTimeout: TimeAmount = .seconds(10)) {
        self.connectTimeout = connectTimeout
    }

    public func connect(to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel) -> EventLoopFuture<Void>
    {
        let eventLoop = inbound.eventLoop
        let host: String
        switch target {
        case .address(let address, _): host = address.description
        case .domain(let name, _): host = name
        }
        // The upstream shares the inbound channel's event loop, so the two relay halves may touch each other.
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(self.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: Int(target.port))
            .flatMapError { error in eventLoop.makeFailedFuture(Self.failure(for: error)) }
            .flatMapThrowing { upstream in
                let relay = ChannelRelay(peer: upstream)
                let upstreamHalf = UpstreamRelay(peer: relay)
                try upstream.pipeline.syncOperations.addHandler(upstreamHalf)
                try inbound.pipeline.syncOperations.addHandler(relay)
                if let initialData {
                    upstream.writeAndFlush(initialData, promise: nil)
                }
            }
    }

    /// Maps socket errors to the proxy vocabulary.
    static func failure(for error: any Error) -> ProxyFailure {
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: return .refused
            case ENETUNREACH: return .unreachable
            case EHOSTUNREACH: return .hostUnreachable
            case ETIMEDOUT: return .timeout
            default: return .generalFailure
            }
        }
        if let error = error as? NIOConnectionError {
            if error.dnsAAAAError != nil || error.dnsAError != nil, error.connectionErrors.isEmpty {
                return .dnsFailure
            }
            if let first = error.connectionErrors.first { return Self.failure(for: first.error) }
            return .dnsFailure
        }
        if case ChannelError.connectTimeout = error { return .timeout }
        return .generalFailure
    }
}

/// The inbound half of a direct relay: the local application's bytes go to the upstream channel.
final class ChannelRelay: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let peer: any Channel
    private(set) var context: ChannelHandlerContext?

    init(peer: any Channel) {
        self.peer = peer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.peer.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.peer.write(self.unwrapInboundIn(data), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.peer.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.peer.close(promise: nil)
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.peer.setOption(.autoRead, value: context.channel.isWritable).whenFailure { _ in }
        context.fireChannelWritabilityChanged()
    }

    // MARK: - From the upstream

    func upstreamRead(_ bytes: ByteBuffer) {
        self.context?.write(self.wrapOutboundOut(bytes), promise: nil)
    }

    func upstreamReadComplete() {
        self.context?.flush()
    }

    /// The contract's end of upstream: half-close towards the application, then leave.
    func upstreamEnded() {
        guard let context = self.context else { return }
        context.flush()
        context.close(mode: .output, promise: nil)
        if self.context != nil {
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }
}

/// The upstream half of a direct relay: the origin's bytes go to the inbound channel through `ChannelRelay`.
final class UpstreamRelay: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let peer: ChannelRelay

    init(peer: ChannelRelay) {
        self.peer = peer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.peer.upstreamRead(self.unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.peer.upstreamReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.peer.upstreamEnded()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if let inbound = self.peer.context?.channel {
            inbound.setOption(.autoRead, value: context.channel.isWritable).whenFailure { _ in }
        }
        context.fireChannelWritabilityChanged()
    }
}
