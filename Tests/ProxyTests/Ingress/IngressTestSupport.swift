import AggIngress
import AggProtocol
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import Proxy

/// A connector that records what it was asked and succeeds or fails as told, adding a `FakeRelay` on success.
final class FakeConnector: ProxyConnector {
    enum Outcome: Sendable {
        case succeed
        case fail(ProxyFailure)
        /// Leave the future pending; the test completes it with `complete`.
        case hold
    }

    struct Call: Sendable {
        var target: ProxyTarget
        var initialData: ByteBuffer?
    }

    private struct State {
        var outcome: Outcome
        var calls: [Call] = []
        var held: [(EventLoopPromise<Void>, any Channel)] = []
    }

    private let state: Mutex<State>

    init(_ outcome: Outcome = .succeed) {
        self.state = Mutex(State(outcome: outcome))
    }

    var calls: [Call] { self.state.withLock { $0.calls } }

    func set(_ outcome: Outcome) { self.state.withLock { $0.outcome = outcome } }

    func connect(to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel) -> EventLoopFuture<Void> {
        let promise = inbound.eventLoop.makePromise(of: Void.self)
        let outcome = self.state.withLock { state in
            state.calls.append(Call(target: target, initialData: initialData))
            if case .hold = state.outcome { state.held.append((promise, inbound)) }
            return state.outcome
        }
        switch outcome {
        case .succeed:
            Self.install(on: inbound, promise: promise)
        case .fail(let failure):
            promise.fail(failure)
        case .hold:
            break
        }
        return promise.futureResult
    }

    /// Completes the oldest held connect.
    func complete(_ failure: ProxyFailure? = nil) {
        let (promise, channel) = self.state.withLock { $0.held.removeFirst() }
        if let failure {
            promise.fail(failure)
        } else {
            Self.install(on: channel, promise: promise)
        }
    }

    private static func install(on channel: any Channel, promise: EventLoopPromise<Void>) {
        do {
            try channel.pipeline.syncOperations.addHandler(FakeRelay())
            promise.succeed()
        } catch {
            promise.fail(error)
        }
    }
}

/// Stands in for the connector's relay: records what it reads, and lets the test play the upstream.
final class FakeRelay: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    var received = ByteBuffer()
    var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        self.received.writeBuffer(&bytes)
    }

    /// The upstream sends bytes.
    func upstreamSends(_ text: String) {
        self.context!.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: text)), promise: nil)
    }

    /// The upstream ends: the contract's half-close, then leave.
    func upstreamEnds() {
        let context = self.context!
        context.close(mode: .output, promise: nil)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    var receivedText: String { String(buffer: self.received) }
}

extension EmbeddedChannel {
    /// A channel with the ingress handshake handler installed and active.
    static func ingress(
        protocols: ProxyProtocols = .all,
        configuration: ProxyIngressConfiguration = .init(),
        connector: FakeConnector
    ) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try ProxyIngress.configure(
            channel: channel,
            protocols: protocols,
            configuration: configuration,
            connector: connector
        )
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    /// Feeds bytes to the channel.
    func send(_ bytes: [UInt8]) throws {
        try self.writeInbound(ByteBuffer(bytes: bytes))
    }

    func send(_ text: String) throws {
        try self.writeInbound(ByteBuffer(string: text))
    }

    /// Everything written to the client so far.
    func written() throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let buffer = try self.readOutbound(as: ByteBuffer.self) {
            bytes += buffer.readableBytesView
        }
        return bytes
    }

    func writtenText() throws -> String {
        String(decoding: try self.written(), as: UTF8.self)
    }

    var relay: FakeRelay? {
        try? self.pipeline.syncOperations.handler(type: FakeRelay.self)
    }
}
