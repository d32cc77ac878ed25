import AggConfig
import AggEgress
import AggIngress
import AggObservability
import AggProtocol
import AggTransport
import Logging
import NIOCore
import NIOPosix
import SCTPEngine

/// aggclient's UDP side: one UDP relay socket per SOCKS5 UDP ASSOCIATE (RFC 1928 §7), bound on the address the
/// client reached the proxy at, taking datagrams only from that client; each flow (relay, client port,
/// destination) gets a flow id of the association, its datagrams go out as UDP-DATAGRAM and the replies come back
/// to the right client with the RFC 1928 header. A relay ends with its TCP control connection. A datagram that
/// finds the association's send queue or the relay socket's write buffer full is dropped and counted (a sender
/// faster than the paths must not grow either without bound). Router mode's UDP (nftables `tproxy`) comes in through
/// `startTransparent`: each LAN device is a relay of its own, and each of its flows answers from a socket bound to the
/// flow's original destination. Confined to the service's event loop.
final class ClientUDPRelays: @unchecked Sendable {
    /// One UDP ASSOCIATE, or one LAN device in router mode.
    final class Relay: @unchecked Sendable {
        let id: Int
        /// The relay socket of a UDP ASSOCIATE; nil for a LAN device (its flows answer from sockets of their own).
        let channel: (any Channel)?
        /// The only address datagrams are taken from: the control connection's client.
        let clientIP: SCTPIPAddress
        /// The client's source port: from the request, else learnt from its first datagram.
        var clientPort: UInt16?

        init(id: Int, channel: (any Channel)?, clientIP: SCTPIPAddress, clientPort: UInt16?) {
            self.id = id
            self.channel = channel
            self.clientIP = clientIP
            self.clientPort = clientPort
        }
    }

    /// SO_RCVBUF of a relay socket (capped by `net.core.rmem_max`): the kernel's default, about 200 KiB, holds a
    /// quarter of a second of small datagrams at 1,000 a second, and a busy host drops the rest before we read them
    /// (seen in Tests/Lab/agg-udp.sh on a loaded machine).
    static let receiveBufferSize: SocketOptionValue = 4 << 20

    let eventLoop: any EventLoop
    let settings: UDPRelaySettings
    let metrics: UDPRelayMetrics
    let logger: Logger
    /// Sends a UDP relay message over the association; false when there is none.
    let send: (UDPMessage) -> Bool
    /// Whether the association's send queue is below its high watermark (true while there is no association:
    /// `send` then says so).
    let isWritable: () -> Bool
    private(set) var relays: [Int: Relay] = [:]
    private(set) var table: UDPFlowTable
    private var nextRelay = 0
    private var sweep: Scheduled<Void>?
    /// Router mode: the tproxy socket, the relay of each LAN device, and each of their flows' reply socket.
    private var transparentSocket: TransparentDatagramSocket?
    private var transparentRelays: [SCTPIPAddress: Int] = [:]
    private var replySockets: [UInt32: ReplySocket] = [:]
    /// The host's own addresses, for the loop check of a tproxy socket bound to the wildcard address: read with
    /// getifaddrs at most every 10 s, and only for datagrams to the socket's own port.
    private var ownAddresses: (addresses: Set<SCTPIPAddress>, readAt: NIODeadline)?

    /// A flow's socket bound to its original destination and connected to the LAN device: replies leave from the
    /// address the device sent to, and the device's later datagrams to that destination arrive on it (the
    /// kernel's tproxy lookup prefers it to the listening socket).
    enum ReplySocket {
        /// Being bound; the replies that came meanwhile (a few at most).
        case binding([ByteBuffer])
        case ready(any Channel)
    }

    /// Replies kept for a reply socket being bound.
    static let maxRepliesWhileBinding = 16

    init(
        eventLoop: any EventLoop, settings: UDPRelaySettings, metrics: UDPRelayMetrics, logger: Logger,
        isWritable: @escaping () -> Bool = { true }, send: @escaping (UDPMessage) -> Bool
    ) {
        self.eventLoop = eventLoop
        self.isWritable = isWritable
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
        self.send = send
        self.table = UDPFlowTable(limit: settings.flowsPerKey)
    }

    /// Binds a relay for the client of `control` and returns its address; it closes with `control`.
    func associate(expectedSource: ProxyTarget, control: any Channel) -> EventLoopFuture<SocketAddress> {
        guard let local = control.localAddress.flatMap(SCTPSocketAddress.init),
            let remote = control.remoteAddress.flatMap(SCTPSocketAddress.init)
        else { return eventLoop.makeFailedFuture(ProxyFailure.generalFailure) }
        let id = nextRelay
        nextRelay += 1
        // RFC 1928 §7: the request's DST.PORT is the port the client sends from, 0 when it does not know it.
        let port: UInt16? = if case .address(_, let hinted) = expectedSource, hinted != 0 { hinted } else { nil }
        return DatagramBootstrap(group: eventLoop)
            .channelOption(.socketOption(.so_rcvbuf), value: Self.receiveBufferSize)
            .channelInitializer { [weak self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ServerUDPFlowHandler { [weak self] envelope in self?.receiveFromClient(envelope, relay: id) })
                }
            }
            .bind(to: SocketAddress(SCTPSocketAddress(ip: local.ip, port: 0)))
            .flatMapThrowing { [self] channel in
                let relay = Relay(id: id, channel: channel, clientIP: remote.ip, clientPort: port)
                relays[id] = relay
                startSweep()
                control.closeFuture.whenComplete { [weak self] _ in self?.end(relay) }
                channel.closeFuture.whenComplete { [weak self] _ in self?.end(relay) }
                guard let bound = channel.localAddress else { throw ProxyFailure.generalFailure }
                logger.debug("UDP ASSOCIATE", metadata: ["client": "\(remote)", "relay": "\(bound)"])
                return bound
            }
    }

    // MARK: - Up

    private func receiveFromClient(_ envelope: AddressedEnvelope<ByteBuffer>, relay id: Int) {
        guard let relay = relays[id] else { return }
        // RFC 1928 §7: "It MUST drop any datagrams arriving from any source IP address other than the one recorded
        // for the particular association."
        guard let source = SCTPSocketAddress(envelope.remoteAddress), source.ip == relay.clientIP,
            relay.clientPort == nil || relay.clientPort == source.port
        else {
            metrics.recordDrop(.foreignSource)
            return
        }
        var payload = envelope.data
        let header: SOCKS5UDPHeader
        do {
            header = try SOCKS5UDPHeader.read(from: &payload)
        } catch .fragmented {
            metrics.recordDrop(.fragmented)
            return
        } catch {
            metrics.recordDrop(.malformed)
            return
        }
        relay.clientPort = source.port
        forward(payload, relay: id, clientPort: source.port, target: header.target)
    }

    /// Sends one datagram of a client's flow over the association, opening the flow if it is new.
    private func forward(_ payload: ByteBuffer, relay id: Int, clientPort: UInt16, target: StreamTarget) {
        let key = UDPFlowTable.Key(relay: id, clientPort: clientPort, target: target)
        guard let (flow, isNew) = table.flow(for: key, now: NIODeadline.now().uptimeNanoseconds) else {
            metrics.recordDrop(.limit)
            return
        }
        guard isWritable() else {
            metrics.recordDrop(.congested)
            return
        }
        guard send(.datagram(flow: flow, peer: target, payload: payload)) else {
            metrics.recordDrop(.noAssociation)
            return
        }
        if isNew { metrics.recordFlowOpened() }
        metrics.recordDatagram(payload.readableBytes, up: true)
    }

    // MARK: - Down

    /// A UDP relay message from the server.
    func receive(_ message: UDPMessage) {
        switch message {
        case .close(let flow, let reason):
            closeReplySocket(flow)
            if table.remove(flow), reason != .closed {
                logger.debug("UDP flow ended by the server", metadata: ["flow": "\(flow)", "reason": "\(reason)"])
            }
        case .datagram(let flow, let peer, let payload):
            guard let entry = table.receive(on: flow, now: NIODeadline.now().uptimeNanoseconds),
                let relay = relays[entry.key.relay]
            else {
                metrics.recordDrop(.unknownFlow)
                return
            }
            guard let channel = relay.channel else {
                replyTransparent(payload, flow: flow, entry: entry, relay: relay)
                return
            }
            guard channel.isWritable else {
                metrics.recordDrop(.congested)
                return
            }
            let header = SOCKS5UDPHeader(target: peer)
            var buffer = channel.allocator.buffer(capacity: header.size + payload.readableBytes)
            header.write(into: &buffer)
            var body = payload
            buffer.writeBuffer(&body)
            let client = SocketAddress(SCTPSocketAddress(ip: relay.clientIP, port: entry.key.clientPort))
            metrics.recordDatagram(payload.readableBytes, up: false)
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: client, data: buffer), promise: nil)
        }
    }

    // MARK: - Teardown

    /// A relay's control connection (or socket) closed: its flows end on both sides.
    private func end(_ relay: Relay) {
        guard relays.removeValue(forKey: relay.id) != nil else { return }
        relay.channel?.close(promise: nil)
        for flow in table.removeAll(relay: relay.id) {
            closeReplySocket(flow)
            _ = send(.close(flow: flow, reason: .closed))
        }
        if relays.isEmpty {
            sweep?.cancel()
            sweep = nil
        }
    }

    /// The association went away: the server forgot every flow, so do we (relays stay; new flows start).
    func associationLost() {
        table.removeAll()
        for flow in Array(replySockets.keys) { closeReplySocket(flow) }
    }

    /// Closes every relay and router mode's socket (the service stops).
    func closeAll() {
        transparentSocket?.stop()
        transparentSocket = nil
        transparentRelays.removeAll()
        for relay in Array(relays.values) { end(relay) }
    }

    private func startSweep() {
        guard sweep == nil else { return }
        let idle = TimeAmount(settings.idleTimeout)
        sweep = eventLoop.assumeIsolated().scheduleTask(in: min(idle, .seconds(10))) { [weak self] in
            guard let self else { return }
            self.sweep = nil
            let expired = self.table.expire(
                now: NIODeadline.now().uptimeNanoseconds, idle: UInt64(idle.nanoseconds))
            for flow in expired {
                self.closeReplySocket(flow)
                _ = self.send(.close(flow: flow, reason: .closed))
            }
            if !self.relays.isEmpty { self.startSweep() }
        }
    }

    // MARK: - Router mode

    /// Binds router mode's UDP socket (IP_TRANSPARENT, for nftables `tproxy`) on `address` and starts taking its
    /// datagrams; returns the bound address. Throws without CAP_NET_RAW or CAP_NET_ADMIN (`isPermissionDenied`).
    func startTransparent(address: SCTPSocketAddress) throws(TransparentDatagramSocket.OpenError) -> SCTPSocketAddress {
        let socket = try TransparentDatagramSocket(address: address, receiveBufferSize: CInt(Self.receiveBufferSize))
        transparentSocket = socket
        socket.start(on: eventLoop) { [weak self] batch in
            guard let self else { return }
            for datagram in batch { self.receiveTransparent(datagram) }
        }
        startSweep()
        return socket.local
    }

    /// A LAN device's datagram, from the tproxy socket or a flow's reply socket: on to its original destination.
    /// One aimed at the tproxy socket itself would come straight back in: dropped as a loop.
    func receiveTransparent(_ datagram: TransparentDatagram) {
        if let local = transparentSocket?.local, datagram.destination.port == local.port,
            local.ip.isWildcard ? isOwnAddress(datagram.destination.ip) : datagram.destination.ip == local.ip
        {
            metrics.recordDrop(.loop)
            return
        }
        let id: Int
        if let known = transparentRelays[datagram.source.ip] {
            id = known
        } else {
            id = nextRelay
            nextRelay += 1
            transparentRelays[datagram.source.ip] = id
            relays[id] = Relay(id: id, channel: nil, clientIP: datagram.source.ip, clientPort: nil)
        }
        let target = StreamTarget(host: .ip(datagram.destination.ip), port: datagram.destination.port)
        forward(datagram.payload, relay: id, clientPort: datagram.source.port, target: target)
    }

    /// Whether `ip` is one of this host's addresses (a datagram to it on the tproxy port was sent to aggclient itself,
    /// not redirected: a flow to another host's port of the same number is not a loop).
    private func isOwnAddress(_ ip: SCTPIPAddress) -> Bool {
        let now = NIODeadline.now()
        if ownAddresses == nil || now - ownAddresses!.readAt > .seconds(10) {
            let addresses = InterfaceAddresses.current().byInterface.values.flatMap { $0 }
            ownAddresses = (Set(addresses), now)
        }
        return ownAddresses!.addresses.contains(ip) || EgressPolicy.isLoopback(ip)
    }

    /// A reply for a LAN device's flow: sent from the flow's original destination, through the flow's reply socket
    /// (bound on the first reply).
    private func replyTransparent(_ payload: ByteBuffer, flow: UInt32, entry: UDPFlowTable.Entry, relay: Relay) {
        guard case .ip(let ip) = entry.key.target.host else {
            metrics.recordDrop(.unknownFlow)
            return
        }
        let destination = SCTPSocketAddress(ip: ip, port: entry.key.target.port)
        let client = SCTPSocketAddress(ip: relay.clientIP, port: entry.key.clientPort)
        switch replySockets[flow] {
        case .ready(let channel):
            guard channel.isWritable else {
                metrics.recordDrop(.congested)
                return
            }
            metrics.recordDatagram(payload.readableBytes, up: false)
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: SocketAddress(client), data: payload), promise: nil)
        case .binding(var waiting):
            guard waiting.count < Self.maxRepliesWhileBinding else {
                metrics.recordDrop(.congested)
                return
            }
            waiting.append(payload)
            replySockets[flow] = .binding(waiting)
        case nil:
            replySockets[flow] = .binding([payload])
            bindReplySocket(flow: flow, from: destination, to: client)
        }
    }

    private func bindReplySocket(flow: UInt32, from destination: SCTPSocketAddress, to client: SCTPSocketAddress) {
        let isIPv6: Bool
        if case .v6 = destination.ip { isIPv6 = true } else { isIPv6 = false }
        let transparent = ChannelOptions.Types.SocketOption(
            level: isIPv6 ? TransparentDestination.solIPv6 : TransparentDestination.solIP,
            name: isIPv6 ? TransparentDestination.ipv6Transparent : TransparentDestination.ipTransparent)
        DatagramBootstrap(group: eventLoop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(transparent, value: 1)
            .channelOption(.socketOption(.so_rcvbuf), value: Self.receiveBufferSize)
            .channelInitializer { [weak self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ServerUDPFlowHandler { [weak self] envelope in
                            guard let self, let source = SCTPSocketAddress(envelope.remoteAddress) else { return }
                            self.receiveTransparent(
                                TransparentDatagram(source: source, destination: destination, payload: envelope.data))
                        })
                }
            }
            .bind(to: SocketAddress(destination))
            .flatMap { channel in channel.connect(to: SocketAddress(client)).map { channel } }
            .whenComplete { [weak self] result in
                guard let self else { return }
                guard case .binding(let waiting) = self.replySockets[flow] else {
                    // The flow ended while its socket was being bound.
                    if case .success(let channel) = result { channel.close(promise: nil) }
                    return
                }
                switch result {
                case .success(let channel):
                    self.replySockets[flow] = .ready(channel)
                    for payload in waiting {
                        self.metrics.recordDatagram(payload.readableBytes, up: false)
                        channel.write(
                            AddressedEnvelope(remoteAddress: SocketAddress(client), data: payload), promise: nil)
                    }
                    channel.flush()
                case .failure(let error):
                    self.replySockets[flow] = nil
                    for _ in waiting { self.metrics.recordDrop(.congested) }
                    self.logger.notice(
                        "router mode: cannot answer a LAN device's UDP from its destination",
                        metadata: ["from": "\(destination)", "to": "\(client)", "error": "\(error)"])
                }
            }
    }

    private func closeReplySocket(_ flow: UInt32) {
        if case .ready(let channel) = replySockets.removeValue(forKey: flow) { channel.close(promise: nil) }
    }
}
