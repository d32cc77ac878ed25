import AggConfig
import AggEgress
import AggObservability
import AggProtocol
import AggTransport
import Logging
import NIOCore
import NIOPosix
import SCTPEngine

/// The UDP flows and waiting datagrams each client key holds on aggserver, over all its associations, against
/// `UDPRelaySettings.flowsPerKey` and `queuedDatagramsPerKey`. Confined to the server's event loop.
final class UDPKeyBudget {
    let settings: UDPRelaySettings
    private(set) var flows: [String: Int] = [:]
    private(set) var queued: [String: Int] = [:]

    init(settings: UDPRelaySettings) {
        self.settings = settings
    }

    /// Takes one flow for `key`; false at the limit.
    func takeFlow(_ key: String) -> Bool {
        guard flows[key, default: 0] < settings.flowsPerKey else { return false }
        flows[key, default: 0] += 1
        return true
    }

    func returnFlow(_ key: String) {
        flows[key, default: 1] -= 1
        if flows[key] == 0 { flows[key] = nil }
    }

    /// Takes one waiting datagram for `key`; false at the limit.
    func takeQueued(_ key: String) -> Bool {
        guard queued[key, default: 0] < settings.queuedDatagramsPerKey else { return false }
        queued[key, default: 0] += 1
        return true
    }

    func returnQueued(_ key: String, count: Int = 1) {
        guard count > 0 else { return }
        queued[key, default: count] -= count
        if queued[key] == 0 { queued[key] = nil }
    }
}

/// aggserver's UDP relay for one authenticated association: one UDP socket per client flow (a NAT-like mapping),
/// every destination checked against the egress policy (names resolved through the policy resolver), replies taken
/// only from the flow's destination and carried back as UDP-DATAGRAM, idle flows closed, the key's limits on flows
/// and waiting datagrams kept. Nothing it relays waits without bound: a datagram that finds the flow's socket or
/// the association's send queue full is dropped and counted, as a router drops what its queue cannot hold (the
/// engine's send queue never refuses a message, so the relay checks before it sends). Confined to the server's
/// event loop.
final class ServerUDPRelay: @unchecked Sendable {
    /// One client flow and its socket.
    final class Flow: @unchecked Sendable {
        let id: UInt32
        let target: StreamTarget
        var destination: SocketAddress?
        var channel: (any Channel)?
        /// Datagrams that arrived while the name resolved and the socket bound.
        var pending: [ByteBuffer] = []
        var lastActivity: NIODeadline
        var isClosed = false

        init(id: UInt32, target: StreamTarget, now: NIODeadline) {
            self.id = id
            self.target = target
            self.lastActivity = now
        }
    }

    /// SO_RCVBUF of a flow's socket (capped by `net.core.rmem_max`): a second of replies at 1,000 small datagrams
    /// a second, so a busy loop does not lose them in the kernel; memory is spent only while the loop is behind.
    static let receiveBufferSize: SocketOptionValue = 1 << 20

    let eventLoop: any EventLoop
    let association: SCTPAssociationID
    let keyName: String
    let budget: UDPKeyBudget
    let metrics: UDPRelayMetrics
    let logger: Logger
    /// The egress connector in force (its policy follows the server's own addresses).
    let egress: () -> EgressConnector
    /// Sends a UDP relay message to the client.
    let send: (UDPMessage) -> Void
    /// Whether the association's send queue is below its high watermark.
    let isWritable: () -> Bool
    private(set) var flows: [UInt32: Flow] = [:]
    private var sweep: Scheduled<Void>?
    private var isClosed = false

    init(
        eventLoop: any EventLoop, association: SCTPAssociationID, keyName: String, budget: UDPKeyBudget,
        metrics: UDPRelayMetrics, logger: Logger, egress: @escaping () -> EgressConnector,
        isWritable: @escaping () -> Bool, send: @escaping (UDPMessage) -> Void
    ) {
        self.eventLoop = eventLoop
        self.association = association
        self.keyName = keyName
        self.budget = budget
        self.metrics = metrics
        self.logger = logger
        self.egress = egress
        self.send = send
        self.isWritable = isWritable
        scheduleSweep()
    }

    var settings: UDPRelaySettings { budget.settings }

    // MARK: - From the client

    func receive(_ message: UDPMessage) {
        guard !isClosed else { return }
        switch message {
        case .close(let id, _):
            if let flow = flows[id] { close(flow, notify: nil) }
        case .datagram(let id, let peer, let payload):
            let now = NIODeadline.now()
            if let flow = flows[id] {
                guard flow.target == peer else {
                    // A flow is one destination: another one under the same id is the client's bug.
                    metrics.recordDrop(.malformed)
                    return
                }
                flow.lastActivity = now
                forward(payload, on: flow)
                return
            }
            guard budget.takeFlow(keyName) else {
                metrics.recordDrop(.limit)
                // One UDP-CLOSE per refused datagram: only while the association takes them, or a client that
                // sends and never acknowledges would grow our queue with them.
                if isWritable() { send(.close(flow: id, reason: .tooManyFlows)) }
                return
            }
            let flow = Flow(id: id, target: peer, now: now)
            flows[id] = flow
            metrics.recordFlowOpened()
            forward(payload, on: flow)
            open(flow)
        }
    }

    private func forward(_ payload: ByteBuffer, on flow: Flow) {
        guard let channel = flow.channel, let destination = flow.destination else {
            guard budget.takeQueued(keyName) else {
                metrics.recordDrop(.limit)
                return
            }
            flow.pending.append(payload)
            return
        }
        // NIO queues what the kernel does not take at once, without end: past the channel's write watermark (a
        // slow uplink, a full socket buffer) the datagram is dropped.
        guard channel.isWritable else {
            metrics.recordDrop(.congested)
            return
        }
        metrics.recordDatagram(payload.readableBytes, up: true)
        channel.writeAndFlush(AddressedEnvelope(remoteAddress: destination, data: payload), promise: nil)
    }

    /// Resolves the flow's destination under the egress policy, binds its socket, sends what waited.
    private func open(_ flow: Flow) {
        let connector = egress()
        connector.resolveDatagramDestination(flow.target, on: eventLoop, owner: association.rawValue)
            .flatMap { destination -> EventLoopFuture<(SocketAddress, any Channel)> in
                let any = destination.protocol == .inet6 ? "::" : "0.0.0.0"
                return DatagramBootstrap(group: self.eventLoop)
                    .channelOption(.socketOption(.so_rcvbuf), value: Self.receiveBufferSize)
                    .channelInitializer { [weak self, weak flow] channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(
                                ServerUDPFlowHandler { [weak self, weak flow] envelope in
                                    guard let self, let flow else { return }
                                    self.reply(envelope, on: flow)
                                })
                        }
                    }
                    .bind(host: any, port: 0)
                    .map { (destination, $0) }
            }
            .assumeIsolated()
            .whenComplete { [self] result in
                switch result {
                case .success(let (destination, channel)):
                    guard !flow.isClosed else {
                        channel.close(promise: nil)
                        return
                    }
                    flow.destination = destination
                    flow.channel = channel
                    let pending = flow.pending
                    flow.pending.removeAll()
                    budget.returnQueued(keyName, count: pending.count)
                    for payload in pending { forward(payload, on: flow) }
                case .failure(let error):
                    let failure = (error as? EgressError) ?? EgressError(.generalFailure, "\(error)")
                    logger.debug(
                        "UDP flow refused",
                        metadata: ["flow": "\(flow.id)", "target": "\(flow.target)", "error": "\(failure)"])
                    metrics.recordDrop(.refused)
                    let reason: UDPCloseReason
                    switch failure.code {
                    case .notAllowed: reason = .notAllowed
                    case .dnsFailure: reason = .dnsFailure
                    default: reason = .generalFailure
                    }
                    close(flow, notify: reason)
                }
            }
    }

    // MARK: - From the destination

    /// A datagram arrived on a flow's socket: only its destination may answer (address- and port-dependent
    /// filtering, like a strict NAT).
    private func reply(_ envelope: AddressedEnvelope<ByteBuffer>, on flow: Flow) {
        guard !flow.isClosed, let destination = flow.destination else { return }
        guard let source = SCTPSocketAddress(envelope.remoteAddress),
            SCTPSocketAddress(destination) == source
        else {
            metrics.recordDrop(.unexpectedSource)
            return
        }
        flow.lastActivity = .now()
        guard isWritable() else {
            metrics.recordDrop(.congested)
            return
        }
        metrics.recordDatagram(envelope.data.readableBytes, up: false)
        let peer = StreamTarget(host: .ip(source.ip), port: source.port)
        send(.datagram(flow: flow.id, peer: peer, payload: envelope.data))
    }

    // MARK: - Teardown

    /// Forgets `flow` and closes its socket; tells the client why when `notify` is set.
    private func close(_ flow: Flow, notify reason: UDPCloseReason?) {
        guard !flow.isClosed else { return }
        flow.isClosed = true
        flows[flow.id] = nil
        budget.returnFlow(keyName)
        budget.returnQueued(keyName, count: flow.pending.count)
        flow.pending.removeAll()
        flow.channel?.close(promise: nil)
        flow.channel = nil
        if let reason { send(.close(flow: flow.id, reason: reason)) }
    }

    /// The association is gone: every flow closes.
    func associationLost() {
        guard !isClosed else { return }
        isClosed = true
        sweep?.cancel()
        for flow in Array(flows.values) { close(flow, notify: nil) }
    }

    private func scheduleSweep() {
        let idle = TimeAmount(settings.idleTimeout)
        sweep = eventLoop.assumeIsolated().scheduleTask(in: min(idle, .seconds(10))) { [weak self] in
            guard let self, !self.isClosed else { return }
            let now = NIODeadline.now()
            for flow in Array(self.flows.values) where now - flow.lastActivity >= idle {
                self.close(flow, notify: .closed)
            }
            self.scheduleSweep()
        }
    }
}

/// Hands every datagram a server flow's socket receives to the relay.
final class ServerUDPFlowHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let onDatagram: (AddressedEnvelope<ByteBuffer>) -> Void

    init(onDatagram: @escaping (AddressedEnvelope<ByteBuffer>) -> Void) {
        self.onDatagram = onDatagram
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        onDatagram(unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP errors (port unreachable) surface here on a connected-less socket: the flow carries on.
    }
}

extension SCTPDriver {
    /// Sends a UDP relay message on stream 0: a datagram unordered with timed reliability (`lifetime`), a close
    /// ordered and reliably.
    func send(_ message: UDPMessage, on id: SCTPAssociationID, lifetime: Duration) throws(SCTPError) {
        switch message {
        case .datagram:
            let (seconds, attoseconds) = lifetime.components
            let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
            try send(
                message.encode(), on: id, stream: StreamID(0), ppid: message.ppid, unordered: true,
                reliability: .timed(lifetime: SCTPDuration(nanoseconds: nanoseconds)))
        case .close:
            try send(message.encode(), on: id, stream: StreamID(0), ppid: message.ppid)
        }
    }
}
