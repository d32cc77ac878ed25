import AggProtocol
import Logging
import NIOCore
import NIOPosix
import SCTPEngine

/// Runs one `SCTPEndpoint` over real UDP sockets on one event loop: it feeds the engine datagrams and the time, and
/// performs what the engine asks for (datagrams to write, one timer, events for the application). It holds no
/// protocol logic.
///
/// NIO cannot choose a source address per datagram, so the driver binds one UDP channel per local address and writes
/// each datagram on the channel bound to its `source` (the first channel of the right family when the source is a
/// wildcard). Everything about the driver, the endpoint included, is confined to `eventLoop`: call commands from the
/// `onEvent` callback or through `execute(_:)`.
public final class SCTPDriver: @unchecked Sendable {
    /// Socket tuning of the driver's UDP channels.
    public struct Options: Sendable {
        /// SO_RCVBUF and SO_SNDBUF in bytes; forced past `net.core.[rw]mem_max` where the process may.
        public var socketBufferSize: Int = 8 << 20
        /// Datagrams read with one `recvmmsg`.
        public var vectorReadMessageCount: Int = 64
        /// Receive slot per datagram: larger datagrams are truncated (and then fail their CRC).
        public var maxDatagramSize: Int = 2048
        /// Interfaces to bind local addresses' channels to (SO_BINDTODEVICE), so that each leaves by its own
        /// interface whatever the routing table says. Addresses not listed are bound to the address only.
        public var interfaces: [SCTPIPAddress: String] = [:]
        /// UDP segmentation offload both ways where the kernel has it (Linux 4.18 for sending, 5.10 for
        /// receiving): consecutive datagrams of one size to one destination leave in one `sendmsg` (UDP_SEGMENT),
        /// and the kernel hands up runs of them in one read (UDP_GRO), so the UDP stack is crossed once per up to
        /// 64 datagrams instead of once per datagram. A socket whose device refuses it falls back to plain sends.
        public var segmentationOffload = true
        /// Datagrams read with one `recvmmsg` when receive offload is on; each slot then holds up to 64 KiB.
        public var offloadVectorReadMessageCount = 8
        /// SO_REUSEPORT on every socket, so that the shards of a server (one driver per event loop) bind the same
        /// addresses and the kernel spreads datagrams between them (`attachSteering`).
        public var reusePort = false
        /// The driver's one timer fires on a grid of this step (its deadline rounded up to the next multiple, 0:
        /// exactly at the deadline), so that the deadlines of many associations that fall within one step fire
        /// together: one wake-up, one timer setting and one flush instead of one each. A server with hundreds of
        /// paced associations wakes for each one's pacer otherwise (`agg-bench scale`, 256 clients: a 1 ms step
        /// halved the timer settings and cut context switches by a fifth). Every timer is then up to one step late,
        /// which a pacer's burst allowance (2 ms at its rate) absorbs.
        public var timerStep: SCTPDuration = .zero

        public init() {}
    }

    /// Counters for status displays and tests.
    public struct Statistics: Sendable, Equatable {
        public init() {}

        public var datagramsReceived = 0
        public var bytesReceived = 0
        public var datagramsSent = 0
        public var bytesSent = 0
        /// Datagrams the kernel refused (or that no channel could carry).
        public var sendFailures = 0
        public var timerExpiries = 0
        /// Channels that closed under us and were bound again.
        public var rebinds = 0
        /// Writes of several datagrams at once (UDP segmentation offload).
        public var segmentedWrites = 0
        /// Writes the socket could not take at once (its send buffer full), handed to the channel to wait.
        public var deferredWrites = 0
        /// Datagrams dropped on receipt because they were larger than a read slot (`maxDatagramSize`, or 64 KiB
        /// with receive offload).
        public var truncatedDatagrams = 0
    }

    /// One bound UDP channel.
    struct Socket {
        var channel: any Channel
        /// The channel's socket, which the driver writes to itself (`UDPSocket`).
        var udp: UDPSocket
        /// Writes handed to the channel (the socket's send buffer was full) and not yet completed: while there are
        /// any, later writes queue behind them in the channel, so that datagrams leave in order.
        var channelWrites = 0
        /// The address the channel is bound to, with the port the kernel chose.
        var bound: SCTPSocketAddress
        /// The address asked for (port 0 kept, so a rebind may take another ephemeral port).
        var requested: SCTPSocketAddress
        var hasUnflushedWrites = false
        var isOpen = true
        /// Closed for good by `retireSocket` (its address left the host): never bound again.
        var isRetired = false
        /// The interface the channel is bound to (SO_BINDTODEVICE), if any.
        var interface: String?
        /// Segmentation offload may be used on sends (it is on, and no send with it has failed).
        var sendsSegmented = false
    }

    /// Datagrams written since the last one that could not join them: all to one destination through one socket,
    /// all of `segmentSize` bytes but the last, which may be shorter. They leave as one write that the kernel
    /// splits (UDP_SEGMENT), or as a plain datagram when there is only one.
    struct OutgoingBatch {
        var index: Int
        var destination: SCTPSocketAddress
        var remote: RawSocketAddress
        /// The first datagram alone, until a second joins (unless `isRun`); then every datagram, end to end.
        var buffer: ByteBuffer
        var segmentSize: Int
        var count = 1
        /// A short datagram ended the batch.
        var isClosed: Bool
        /// `buffer` is a run buffer of the driver's, which datagrams are sealed or copied onto the end of.
        var isRun = false

        /// Linux sends at most 64 segments per write (UDP_MAX_SEGMENTS before 6.x), each write at most a UDP
        /// payload of 65,507 bytes.
        static let maxSegments = 64
        static let maxBytes = 65_507

        /// An empty batch on a run buffer, for datagrams sealed straight into it.
        init(index: Int, destination: SCTPSocketAddress, remote: RawSocketAddress, run: ByteBuffer) {
            self.index = index
            self.destination = destination
            self.remote = remote
            buffer = run
            segmentSize = 0
            count = 0
            isClosed = false
            isRun = true
        }

        /// A batch of one datagram, held as it is.
        init(index: Int, destination: SCTPSocketAddress, remote: RawSocketAddress, datagram: ByteBuffer) {
            self.index = index
            self.destination = destination
            self.remote = remote
            buffer = datagram
            segmentSize = datagram.readableBytes
            isClosed = false
        }

        /// Whether a datagram of `size` bytes may follow the batch's datagrams in the same write; a second one only
        /// on a socket that sends `segmented` runs.
        func accepts(_ size: Int, index: Int, destination: SCTPSocketAddress, segmented: Bool = true) -> Bool {
            guard index == self.index, destination == self.destination else { return false }
            if count == 0 { return size <= Self.maxBytes }
            return segmented && !isClosed && size <= segmentSize && count < Self.maxSegments
                && buffer.readableBytes + size <= Self.maxBytes
        }

        /// Counts a datagram of `size` bytes written onto the end of `buffer`.
        mutating func appended(_ size: Int) {
            if count == 0 { segmentSize = size } else { isClosed = size < segmentSize }
            count += 1
        }

        /// Adds `datagram` when it may follow the batch's datagrams in the same write; `run` gives a run buffer
        /// when the batch holds its first datagram as it is.
        mutating func append(
            _ datagram: ByteBuffer, index: Int, destination: SCTPSocketAddress, run: () -> ByteBuffer
        ) -> Bool {
            let size = datagram.readableBytes
            guard accepts(size, index: index, destination: destination) else { return false }
            if !isRun {
                var joined = run()
                joined.writeImmutableBuffer(buffer)
                buffer = joined
                isRun = true
            }
            buffer.writeImmutableBuffer(datagram)
            appended(size)
            return true
        }
    }

    public let eventLoop: any EventLoop
    /// The engine. Only touch it on `eventLoop`.
    public let endpoint: SCTPEndpoint
    /// Receives every event of the endpoint, on `eventLoop`. It may call the driver's commands.
    public var onEvent: (SCTPEvent) -> Void
    /// Receives the datagram layer's events (a server that lost the session, a version mismatch), on `eventLoop`.
    public var onSecurityEvent: ((DatagramSecurityEvent) -> Void)?
    public private(set) var statistics = Statistics()

    let options: Options
    var logger: Logger
    var sockets: [Socket] = []
    private var timer: NIOScheduledCallback?
    /// When the armed timer fires (a deadline rounded up to `options.timerStep`).
    private var timerFiring: SCTPTime?
    private var isReadingBatch = false
    /// The datagram layer's clock, read at the first datagram of the read batch under way and again after every
    /// `datagramsPerFlush` datagrams (its deadlines are seconds long; reading it per datagram cost about 1 % of the
    /// daemons' CPU). Nil between batches.
    private var batchSecurityClock: SecurityClock?
    /// The clock each datagram read is stamped with for the engine (tests count its reads).
    var readClock: () -> SCTPTime = SCTPTime.now
    /// The clock sealing read outside a read batch, kept until the next flush (a client seals with it per datagram).
    private var flushClock: SecurityClock?
    /// Datagrams handled since the read batch began or last flushed.
    private var receivedInBatch = 0
    /// A task will transmit what `send` deferred.
    private var transmissionScheduled = false
    private var isDraining = false
    private var isClosing = false
    /// The channel `socketIndex` last found bound to the very source asked for (checked again before each use).
    private var lastSourceSocket: Int?
    /// One-entry cache of the last destination's kernel address: bulk traffic goes to one peer.
    private var lastDestination: (SCTPSocketAddress, RawSocketAddress)?
    /// Datagrams written but not yet handed to their channel (see `OutgoingBatch`).
    private var batch: OutgoingBatch?
    /// Run buffers sent (or handed to a channel), oldest first, to be reused once written (`takeRunBuffer`).
    private var spareRuns: [ByteBuffer] = []
    static let spareRunLimit = 4
    /// For tests: the outcome of a send, decided instead of the kernel (nil: send for real), for what loopback
    /// never does (a full send buffer, a device refusing segmented sends).
    var simulatedSend: ((_ segmented: Bool) -> UDPSocket.SendResult?)?
    /// Datagram encryption (nil: plain RFC 6951); see `SCTPDriver+Security.swift`.
    var security: DatagramSecurityLayer?
    /// The largest UDP payload sent: the configuration's packet size before the datagram layer's overhead was
    /// taken off it (`sizePackets(of:)` gives each association what its session's layout leaves).
    var datagramSizeLimit = SCTPConfiguration().maxPacketSize

    init(
        endpoint: SCTPEndpoint, eventLoop: any EventLoop, options: Options, logger: Logger,
        onEvent: @escaping (SCTPEvent) -> Void
    ) {
        self.endpoint = endpoint
        self.eventLoop = eventLoop
        self.options = options
        self.logger = logger
        self.onEvent = onEvent
    }

    // MARK: - Life cycle

    /// Binds one UDP channel per local address (port 0: an ephemeral port) and returns the running driver. With
    /// none, it sends and receives nothing until `openLocalAddress` binds one.
    public static func bind(
        localAddresses: [SCTPSocketAddress], configuration: SCTPConfiguration, seed: UInt64,
        advertisedAddresses: [SCTPIPAddress] = [], options: Options = Options(),
        protection: DatagramProtection = .plaintext, on eventLoop: any EventLoop,
        logger: Logger = Logger(label: "agg.driver", factory: { _ in SwiftLogNoOpLogHandler() }),
        onEvent: @escaping @Sendable (SCTPEvent) -> Void = { _ in }
    ) -> EventLoopFuture<SCTPDriver> {
        return eventLoop.flatSubmit {
            var configuration = configuration
            let datagramSizeLimit = configuration.maxPacketSize
            // Sealed datagrams stay as large as plain ones; the engine pads chunks to 4 bytes, so a multiple of 4.
            // Room for the largest overhead of any session layout, until an association's session is known.
            configuration.maxPacketSize = (configuration.maxPacketSize - protection.overhead) & ~3
            let endpoint = SCTPEndpoint(
                configuration: configuration, seed: seed, advertisedAddresses: advertisedAddresses, logger: logger)
            let driver = SCTPDriver(
                endpoint: endpoint, eventLoop: eventLoop, options: options, logger: logger, onEvent: onEvent)
            driver.datagramSizeLimit = datagramSizeLimit
            driver.security = DatagramSecurityLayer(
                protection, shard: configuration.shard, random: SystemRandomNumberGenerator())
            var future = eventLoop.makeSucceededVoidFuture()
            for address in localAddresses {
                future = future.flatMap { driver.openSocket(address).map { driver.sockets.append($0) } }
            }
            return future.map { driver }.flatMapError { error in
                driver.close().flatMapThrowing { throw error }
            }
        }
    }

    /// The bound local addresses, in the order they were given (ephemeral ports resolved).
    public var localAddresses: [SCTPSocketAddress] {
        eventLoop.preconditionInEventLoop()
        return sockets.map(\.bound)
    }

    /// Closes every channel and cancels the timer. Associations are not shut down: do that first.
    public func close() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            self.isClosing = true
            self.timer?.cancel()
            self.timer = nil
            let closes = self.sockets.map { socket in
                socket.channel.close().recover { _ in }
            }
            return EventLoopFuture.andAllComplete(closes, on: self.eventLoop)
        }
    }

    /// Runs `body` on the event loop with the driver.
    public func execute(_ body: @escaping @Sendable (SCTPDriver) -> Void) {
        if eventLoop.inEventLoop {
            body(self)
        } else {
            eventLoop.execute { body(self) }
        }
    }

    // MARK: - Commands

    /// Starts an association to `remote` (address and UDP port) whose SCTP port is `peerPort`.
    public func connect(
        to remote: SCTPSocketAddress, peerPort: UInt16, from local: SCTPSocketAddress? = nil
    ) -> SCTPAssociationID {
        eventLoop.preconditionInEventLoop()
        restartSecurity()
        let id = endpoint.connect(to: remote, from: local, peerPort: peerPort, now: .now())
        drain()
        return id
    }

    /// Queues a message; it leaves as congestion control allows, at the end of this turn of the event loop (or
    /// of the read batch under way) together with every other message sent in it: a burst of small messages (the
    /// OPEN-RESULTs of many connections, a socket read's tail and the next one's head) shares packets instead of
    /// taking one sealed datagram each. `reliability` makes the message partially reliable (PR-SCTP, see
    /// `SCTPEndpoint.send`).
    public func send(
        _ payload: ByteBuffer, on id: SCTPAssociationID, stream: StreamID, ppid: PPID = PPID(0),
        unordered: Bool = false, reliability: SCTPReliability = .reliable
    ) throws(SCTPError) {
        eventLoop.preconditionInEventLoop()
        try endpoint.send(
            payload, on: id, stream: stream, ppid: ppid, unordered: unordered, reliability: reliability,
            deferringTransmission: true, now: .now())
        guard !isReadingBatch, !transmissionScheduled else { return }  // A read batch transmits when it ends.
        transmissionScheduled = true
        eventLoop.execute { [self] in
            transmissionScheduled = false
            transmitDeferred()
        }
    }

    /// Sends what `send` queued this turn, then what follows from it.
    private func transmitDeferred() {
        guard endpoint.hasDeferredTransmissions else { return }
        endpoint.transmitDeferred(now: .now())
        drain()
    }

    public func isWritable(_ id: SCTPAssociationID) -> Bool {
        eventLoop.preconditionInEventLoop()
        return endpoint.isWritable(id)
    }

    /// Hands back a delivered message's payload once the application is done with it (a relay's TCP write the
    /// socket has taken), for the engine to build the next messages in (`SCTPEndpoint.recycleMessageBuffer`).
    public func recycleMessageBuffer(_ buffer: ByteBuffer) {
        eventLoop.preconditionInEventLoop()
        endpoint.recycleMessageBuffer(buffer)
    }

    /// Whether the association takes more on `stream` (`SCTPEndpoint.isWritable(_:stream:)`).
    public func isWritable(_ id: SCTPAssociationID, stream: StreamID) -> Bool {
        eventLoop.preconditionInEventLoop()
        return endpoint.isWritable(id, stream: stream)
    }

    /// Whether the association takes a datagram on `stream` (`SCTPEndpoint.takesDatagram`).
    public func takesDatagram(_ id: SCTPAssociationID, on stream: StreamID) -> Bool {
        eventLoop.preconditionInEventLoop()
        return endpoint.takesDatagram(id, on: stream)
    }

    /// Bytes queued and not yet sent (`SCTPEndpoint.queuedAmount`).
    public func queuedAmount(_ id: SCTPAssociationID) -> Int {
        eventLoop.preconditionInEventLoop()
        return endpoint.queuedAmount(id)
    }

    public func bufferedAmount(_ id: SCTPAssociationID) -> Int {
        eventLoop.preconditionInEventLoop()
        return endpoint.bufferedAmount(id)
    }

    /// Graceful shutdown once queued data is delivered.
    public func shutdown(_ id: SCTPAssociationID) {
        eventLoop.preconditionInEventLoop()
        endpoint.shutdown(id, now: .now())
        drain()
    }

    public func abort(_ id: SCTPAssociationID, reason: String = "") {
        eventLoop.preconditionInEventLoop()
        endpoint.abort(id, reason: reason, now: .now())
        drain()
    }

    // MARK: - Input from the channels

    func receive(_ envelope: AddressedEnvelope<ByteBuffer>, on index: Int) {
        guard let source = SCTPSocketAddress(envelope.remoteAddress) else { return }
        receive(
            envelope.data, from: source,
            packetDestination: envelope.metadata?.packetInfo.flatMap { SCTPIPAddress($0.destinationAddress) },
            segmentSize: envelope.metadata?.segmentSize ?? 0, on: index)
    }

    /// After NIO's one read of a wake-up: the rest of what the socket holds, read by `reader` (at most
    /// `drainReads` `recvmmsg` calls, as NIO read at most four times per wake-up: past them the loop serves its other
    /// channels and the socket, still readable, wakes it again).
    ///
    /// The socket is checked before each read: what a read hands up may retire it (an event the engine raises closes
    /// it, `retireSocket`), and its descriptor's number then goes to the next socket the process opens.
    func receiveRest(from reader: DatagramReader, descriptor: CInt, on index: Int) {
        guard sockets.indices.contains(index) else { return }
        for _ in 0..<Self.drainReads {
            guard sockets[index].isOpen, !isClosing else { return }
            let truncatedBefore = reader.truncated
            let result = reader.read(descriptor) { datagram in
                receive(
                    datagram.payload, from: datagram.source, packetDestination: datagram.destination,
                    segmentSize: datagram.segmentSize, on: index)
            }
            statistics.truncatedDatagrams += reader.truncated - truncatedBefore
            switch result {
            case .read(let count) where count == reader.slots:
                continue
            case .read, .wouldBlock:
                return
            case .failed(let code):
                // Such as ECONNREFUSED after an ICMP: not fatal for UDP.
                logger.debug("UDP read failed", metadata: ["errno": "\(code)"])
                return
            }
        }
    }

    /// `recvmmsg` calls per wake-up after NIO's read.
    static let drainReads = 4

    /// One read slot's bytes: a datagram, or with `segmentSize` above zero a run of datagrams of that size (the last
    /// may be shorter) that receive offload handed up together.
    private func receive(
        _ data: ByteBuffer, from source: SCTPSocketAddress, packetDestination: SCTPIPAddress?, segmentSize: Int,
        on index: Int
    ) {
        var destination = sockets[index].bound
        if destination.ip.isWildcard, let packetDestination {
            destination.ip = packetDestination
        }
        isReadingBatch = true
        // The engine's clock is read for each datagram NIO hands up (a run of offloaded segments arrived together and
        // shares it), never once for the batch: one read event runs several `recvmmsg` calls, and a datagram read by
        // a later one may have arrived well after the batch began (more so on a busy host, where the loop can be
        // preempted mid-batch). Stamped with the batch's first clock, the SACK in it gave round trips shorter than
        // the path's propagation delay (6-11 ms on a 20 ms path, seen in the lab), and bbr took that for its minimum
        // RTT: every later round trip then looked like a standing queue, and the path competed with no one, its
        // window filling the bottleneck's buffer.
        let now = readClock()
        var data = data
        // With receive offload the kernel hands up a run of datagrams of one size (the last may be shorter), end
        // to end.
        if segmentSize > 0, data.readableBytes > segmentSize {
            while let segment = data.readSlice(length: min(segmentSize, data.readableBytes)) {
                receive(segment, from: source, to: destination, now: now)
                if data.readableBytes == 0 { break }
            }
        } else {
            receive(data, from: source, to: destination, now: now)
        }
    }

    private func receive(
        _ payload: consuming ByteBuffer, from source: SCTPSocketAddress, to destination: SCTPSocketAddress,
        now: SCTPTime
    ) {
        statistics.datagramsReceived += 1
        statistics.bytesReceived += payload.readableBytes
        let securityClock = batchSecurityClock ?? Self.securityClock()
        if isReadingBatch { batchSecurityClock = securityClock }
        if let datagram = openReceived(
            SCTPDatagram(source: source, destination: destination, payload: payload), clock: securityClock)
        {
            // Within a read batch the answers (SACKs, the DATA they release) leave once, when the batch ends or
            // every `datagramsPerFlush` datagrams, for all the batch's packets.
            endpoint.handle(datagram, now: now, deferringTransmission: isReadingBatch)
            drain()
        }
        // One read event may hand up thousands of datagrams (runs of 44 in each of several slots, several reads):
        // what they called for (SACKs above all) leaves every so often, not only when the whole batch is done, or
        // the peer's retransmission timer would outrun the acknowledgements.
        receivedInBatch += 1
        if receivedInBatch >= Self.datagramsPerFlush {
            receivedInBatch = 0
            batchSecurityClock = nil
            transmitDeferred()
            flush()
        }
    }

    /// Datagrams handled between two flushes within one read batch.
    static let datagramsPerFlush = 64

    /// The end of a read batch: everything written while reading leaves now.
    func receiveComplete() {
        isReadingBatch = false
        receivedInBatch = 0
        batchSecurityClock = nil
        transmitDeferred()
        flush()
    }

    func socketClosed(_ index: Int) {
        guard sockets.indices.contains(index), sockets[index].isOpen, !sockets[index].isRetired else { return }
        sockets[index].isOpen = false
        guard !isClosing else { return }
        let requested = sockets[index].bound
        logger.warning("UDP channel closed under the driver; binding again", metadata: ["local": "\(requested)"])
        eventLoop.scheduleTask(in: .milliseconds(100)) { self.rebind(index) }
    }

    private func rebind(_ index: Int) {
        guard !isClosing, !sockets[index].isRetired else { return }
        openSocket(sockets[index].bound, index: index, interface: sockets[index].interface).whenComplete { result in
            switch result {
            case .success(let socket):
                if self.isClosing {
                    socket.channel.close(promise: nil)
                } else {
                    self.sockets[index] = socket
                    self.statistics.rebinds += 1
                }
            case .failure(let error):
                self.logger.warning("rebind failed", metadata: ["error": "\(error)"])
                self.eventLoop.scheduleTask(in: .seconds(1)) { self.rebind(index) }
            }
        }
    }

    /// The driver's one timer: fires `handleTimer` on the driver's event loop.
    private struct TimerFiring: NIOScheduledCallbackHandler, Sendable {
        let driver: SCTPDriver
        func handleScheduledCallback(eventLoop: some EventLoop) { driver.handleTimer() }
    }

    private func handleTimer() {
        timer = nil
        timerFiring = nil
        statistics.timerExpiries += 1
        handleSecurityTimeout()
        endpoint.handleTimeout(now: .now())
        drain()
    }

    // MARK: - Output

    /// Drains the engine after an input: datagrams, then the deadline, then events (which may issue commands, so
    /// it loops until the engine has nothing more). Flushes unless a read batch is under way.
    func drain() {
        if isDraining { return }  // a command issued from `onEvent`: the outer loop picks its output up
        isDraining = true
        defer { isDraining = false }
        while true {
            var progressed = false
            endpoint.drainTransmits { datagram in
                write(datagram)
                progressed = true
            }
            armTimer()
            endpoint.drainEvents { event in
                if case .established(let id, _, _) = event { sizePackets(of: id) }
                onEvent(event)
                progressed = true
            }
            if !progressed { break }
        }
        if !isReadingBatch { flush() }
    }

    /// Keeps the driver's one scheduled task at or before the engine's and the datagram layer's deadlines, read
    /// together: armed one after the other, whenever no task was armed (each time it fired) the layer's far
    /// deadline was scheduled first and then cancelled for the engine's near one, two more schedulings and a
    /// cancellation per firing (callgrind, aggserver with pacing, 32 MiB: 2,533 firings, 6,974 schedulings and
    /// 4,440 cancellations, 19.5 M instructions).
    private func armTimer() {
        var deadline = endpoint.nextDeadline()
        if let layer = security?.nextDeadline(), deadline.map({ layer < $0 }) ?? true { deadline = layer }
        guard let deadline else { return }
        armTimer(at: deadline)
    }

    /// Keeps the driver's one scheduled task at or before `deadline` (rounded up to `options.timerStep`), the
    /// engine's or the datagram security's: one timer serves both. A later deadline leaves the armed task alone: it fires early, finds nothing due, and arms
    /// again, which costs less than rescheduling on every packet.
    func armTimer(at deadline: SCTPTime) {
        guard !isClosing else { return }
        let firing = Self.firing(deadline, step: options.timerStep)
        if let armed = timerFiring, armed <= firing { return }
        timer?.cancel()
        timerFiring = firing
        // A scheduled callback, not a task: no promise, future and closure per arming (with pacing the timer is
        // armed thousands of times a second). It throws only once the event loop is shutting down.
        timer = try? eventLoop.scheduleCallback(at: firing.nioDeadline, handler: TimerFiring(driver: self))
    }

    /// When the timer for `deadline` fires: the deadline rounded up to a multiple of `step` (a positive step).
    static func firing(_ deadline: SCTPTime, step: SCTPDuration) -> SCTPTime {
        let step = step.nanoseconds
        guard step > 0, deadline.nanoseconds >= 0, deadline.nanoseconds <= Int64.max - step else { return deadline }
        let remainder = deadline.nanoseconds % step
        return remainder == 0 ? deadline : SCTPTime(nanoseconds: deadline.nanoseconds - remainder + step)
    }

    /// Writes one of the engine's datagrams: sealed straight onto the end of the batch under way (or a new one)
    /// when the datagram layer is on, so no sealed copy is allocated and copied again into the batch.
    private func write(_ datagram: SCTPDatagram) {
        guard let security else { return writeDatagram(datagram) }
        guard let index = socketIndex(for: datagram.source, family: datagram.destination.ip.isIPv4) else {
            statistics.sendFailures += 1
            logger.debug("no channel for datagram", metadata: ["datagram": "\(datagram)"])
            return
        }
        let size = security.sealedLength(of: datagram)
        // Optional chaining reads the batch in place (`batch.map` copied it, retaining its buffer, per datagram).
        let joins =
            batch?.accepts(
                size, index: index, destination: datagram.destination, segmented: sockets[index].sendsSegmented)
            ?? false
        if !joins {
            writeBatch()
            // A socket that sends datagram by datagram gets a buffer of the datagram's size, not a run.
            let segmented = sockets[index].sendsSegmented
            batch = OutgoingBatch(
                index: index, destination: datagram.destination, remote: remote(for: datagram.destination),
                run: segmented ? takeRunBuffer() : ByteBufferAllocator().buffer(capacity: size))
            batch!.isRun = segmented
        } else if !batch!.isRun {
            // A datagram written as it is holds the batch: it moves into a run buffer first.
            var run = takeRunBuffer()
            run.writeImmutableBuffer(batch!.buffer)
            batch!.buffer = run
            batch!.isRun = true
        }
        let sealed = security.seal(datagram, clock: sealClock, appendingTo: &batch!.buffer)
        if let sealed {
            batch!.appended(sealed)
            statistics.datagramsSent += 1
            statistics.bytesSent += sealed
            // The plaintext packet is spent: the engine builds its next packets in that buffer.
            endpoint.recycle(datagram.payload)
        }
        // `drain` arms the timer after the engine's datagrams, for the layer's deadline too.
        drainSecurityOutput()
    }

    /// The kernel's form of `destination` (a one-entry cache: bulk traffic goes to one peer).
    private func remote(for destination: SCTPSocketAddress) -> RawSocketAddress {
        if let (cached, address) = lastDestination, cached == destination { return address }
        let address = RawSocketAddress(destination)
        lastDestination = (destination, address)
        return address
    }

    /// An empty run buffer: the oldest one handed to a channel, whose storage is reused once the channel has
    /// written it (a run still queued in the channel makes `clear` allocate fresh storage, as a new one would).
    private func takeRunBuffer() -> ByteBuffer {
        guard !spareRuns.isEmpty else { return ByteBufferAllocator().buffer(capacity: OutgoingBatch.maxBytes) }
        var run = spareRuns.removeFirst()
        run.clear()
        return run
    }

    /// Writes a datagram as it is (sealed already, or plaintext): it joins the batch under way when it can, else
    /// the batch leaves and a new one starts with it.
    func writeDatagram(_ datagram: SCTPDatagram) {
        guard let index = socketIndex(for: datagram.source, family: datagram.destination.ip.isIPv4) else {
            statistics.sendFailures += 1
            logger.debug("no channel for datagram", metadata: ["datagram": "\(datagram)"])
            return
        }
        statistics.datagramsSent += 1
        statistics.bytesSent += datagram.payload.readableBytes
        if batch != nil, batch!.count == 0 || sockets[index].sendsSegmented,
            batch!.append(datagram.payload, index: index, destination: datagram.destination, run: takeRunBuffer)
        {
            return
        }
        writeBatch()
        batch = OutgoingBatch(
            index: index, destination: datagram.destination, remote: remote(for: datagram.destination),
            datagram: datagram.payload)
    }

    /// Sends the batch under way: one datagram as it is, several as one segmented write. It goes straight to the
    /// socket; through the channel only when the socket's send buffer is full or the channel still holds writes.
    private func writeBatch() {
        guard let batch = batch.take() else { return }
        if batch.isRun && spareRuns.count < Self.spareRunLimit { spareRuns.append(batch.buffer) }
        let index = batch.index
        guard batch.count > 0, sockets.indices.contains(index) else { return }
        let segmented = batch.count > 1
        if segmented { statistics.segmentedWrites += 1 }
        // A closed socket's descriptor may already be another file's: only an open one is written to directly.
        if sockets[index].isOpen, !isClosing, sockets[index].channelWrites == 0 {
            let result =
                simulatedSend?(segmented)
                ?? sockets[index].udp.send(
                    batch.buffer, to: batch.remote, segmentSize: segmented ? batch.segmentSize : 0)
            switch result {
            case .sent:
                return
            case .failed(let code):
                writeFailed(
                    IOError(errnoCode: code, reason: "sendmsg"), count: batch.count, index: index, segmented: segmented)
                return
            case .wouldBlock:
                statistics.deferredWrites += 1
            }
        }
        writeThroughChannel(batch, segmented: segmented)
    }

    /// Hands a batch to its channel, which writes it when the socket can take it.
    private func writeThroughChannel(_ batch: OutgoingBatch, segmented: Bool) {
        let index = batch.index
        var envelope = AddressedEnvelope(remoteAddress: SocketAddress(batch.destination), data: batch.buffer)
        if segmented {
            envelope.metadata = .init(ecnState: .transportNotCapable, packetInfo: nil, segmentSize: batch.segmentSize)
        }
        // The completion handler captures the channel and three integers, not the batch (whose buffer it would
        // retain).
        let channel = sockets[index].channel
        let promise = eventLoop.makePromise(of: Void.self)
        let count = batch.count
        promise.futureResult.whenComplete { result in
            if self.sockets.indices.contains(index), self.sockets[index].channel === channel {
                self.sockets[index].channelWrites -= 1
            }
            if case .failure(let error) = result {
                self.writeFailed(error, count: count, index: index, segmented: segmented)
            }
        }
        sockets[index].channelWrites += 1
        channel.write(envelope, promise: promise)
        sockets[index].hasUnflushedWrites = true
    }

    private func writeFailed(_ error: any Error, count: Int, index: Int, segmented: Bool) {
        statistics.sendFailures += count
        guard segmented, sockets.indices.contains(index), sockets[index].sendsSegmented else {
            logger.debug("send refused", metadata: ["error": "\(error)"])
            return
        }
        // A device without checksum offload (PPP, some modems) or a smaller MTU refuses segmented sends
        // (EIO, EINVAL): this socket sends datagram by datagram from now on, and SCTP retransmits the batch.
        sockets[index].sendsSegmented = false
        logger.notice(
            "segmentation offload refused; sending datagram by datagram",
            metadata: ["local": "\(sockets[index].bound)", "error": "\(error)"])
    }

    /// The clock a client seals with: the read batch's, else one read per flush.
    private func sealClock() -> SecurityClock {
        if let batchSecurityClock { return batchSecurityClock }
        if let flushClock { return flushClock }
        let clock = Self.securityClock()
        flushClock = clock
        return clock
    }

    func flush() {
        flushClock = nil
        writeBatch()
        for index in sockets.indices where sockets[index].hasUnflushedWrites {
            sockets[index].hasUnflushedWrites = false
            sockets[index].channel.flush()
        }
    }

    /// The channel for a datagram's source: the exact address, else one bound to the same IP, else a wildcard
    /// channel, else the first channel of the destination's family.
    func socketIndex(for source: SCTPSocketAddress, family isIPv4: Bool) -> Int? {
        // Bulk traffic leaves from one address: the channel last found as a source's own is checked first (the
        // search below cost about 110 instructions per datagram).
        if let index = lastSourceSocket, index < sockets.count, sockets[index].isOpen, sockets[index].bound == source,
            source.ip.isIPv4 == isIPv4
        {
            return index
        }
        // The channel of that very address is closed (its address left the host): another channel would send the
        // datagram through another uplink and NAT, and a wildcard ASCONF from there would teach the peer the wrong
        // address. It fails instead, as the path should.
        if !source.ip.isWildcard, sockets.contains(where: { $0.bound == source && !$0.isOpen }),
            !sockets.contains(where: { $0.bound == source && $0.isOpen })
        {
            return nil
        }
        var sameIP: Int?
        var wildcard: Int?
        var sameFamily: Int?
        for (index, socket) in sockets.enumerated() where socket.isOpen && socket.bound.ip.isIPv4 == isIPv4 {
            if socket.bound == source {
                lastSourceSocket = index
                return index
            }
            if sameIP == nil, socket.bound.ip == source.ip, source.port == 0 { sameIP = index }
            if wildcard == nil, socket.bound.ip.isWildcard,
                source.port == 0 || source.port == socket.bound.port || source.ip.isWildcard
            {
                wildcard = index
            }
            if sameFamily == nil { sameFamily = index }
        }
        if source.ip.isWildcard { return wildcard ?? sameFamily }
        return sameIP ?? wildcard ?? sameFamily
    }

    // MARK: - Binding

    /// Binds one UDP channel to `address`, and first to `interface` (by default the one `options.interfaces`
    /// names for the address) when there is one.
    func openSocket(
        _ address: SCTPSocketAddress, index: Int? = nil, interface: String? = nil
    )
        -> EventLoopFuture<Socket>
    {
        let index = index ?? sockets.count
        let options = self.options
        let interface = interface ?? options.interfaces[address.ip]
        let receiveOffload = options.segmentationOffload && System.supportsUDPReceiveOffload
        let sendOffload = options.segmentationOffload && System.supportsUDPSegmentationOffload
        // With receive offload one slot takes a run of datagrams, up to 64 KiB.
        let slots = receiveOffload ? options.offloadVectorReadMessageCount : options.vectorReadMessageCount
        let slotSize = receiveOffload ? 65_536 : options.maxDatagramSize
        let udp: UDPSocket
        do {
            udp = try UDPSocket.bound(to: address, interface: interface, reusePort: options.reusePort)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        // NIO reads one slot per wake-up (it tells the driver the socket is readable); the driver reads the rest.
        let reader = DatagramReader(slots: slots, slotSize: slotSize)
        let descriptor = udp.descriptor
        let bootstrap = DatagramBootstrap(group: eventLoop)
            .channelOption(.maxMessagesPerRead, value: 1)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: slotSize))
            .channelOption(.receivePacketInfo, value: address.ip.isWildcard)
            .channelInitializer { channel in
                SCTPDriver.enableReceiveOffload(channel, receiveOffload).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(
                        SCTPDriverHandler(driver: self, index: index, reader: reader, descriptor: descriptor))
                }
            }
        // NIO owns the descriptor from here on, and closes it with the channel.
        return bootstrap.withBoundSocket(udp.descriptor).flatMap { channel in
            self.setBufferSizes(channel).flatMapThrowing {
                guard let local = channel.localAddress.flatMap(SCTPSocketAddress.init) else {
                    throw ChannelError.unknownLocalAddress
                }
                self.logger.debug(
                    "bound UDP channel", metadata: ["local": "\(local)", "interface": "\(interface ?? "-")"])
                return Socket(
                    channel: channel, udp: udp, bound: local, requested: address, interface: interface,
                    sendsSegmented: sendOffload)
            }
        }
    }

    /// Turns on UDP_GRO and the report of each run's segment size; without the report a run could not be split.
    static func enableReceiveOffload(_ channel: any Channel, _ enable: Bool) -> EventLoopFuture<Void> {
        guard enable else { return channel.eventLoop.makeSucceededVoidFuture() }
        return channel.setOption(.datagramReceiveOffload, value: true).flatMap {
            channel.setOption(ChannelOptions.Types.DatagramReceiveSegmentSize(), value: true)
        }
    }

    /// Sets SO_RCVBUF/SO_SNDBUF, then tries the FORCE variants (root may exceed the sysctl caps); failures of the
    /// latter are ignored.
    private func setBufferSizes(_ channel: any Channel) -> EventLoopFuture<Void> {
        let size = options.socketBufferSize
        let plain = channel.setOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(size))
            .flatMap { channel.setOption(.socketOption(.so_sndbuf), value: SocketOptionValue(size)) }
        return plain.flatMap {
            channel.setOption(.socketOption(.init(rawValue: SCTPDriver.soRcvBufForce)), value: SocketOptionValue(size))
                .flatMap {
                    channel.setOption(
                        .socketOption(.init(rawValue: SCTPDriver.soSndBufForce)), value: SocketOptionValue(size))
                }
                .recover { _ in }
        }
    }

    /// SO_RCVBUFFORCE and SO_SNDBUFFORCE (Linux).
    static let soRcvBufForce: CInt = 33
    static let soSndBufForce: CInt = 32
}

/// Passes one UDP channel's reads to the driver and tells it when the channel goes away.
final class SCTPDriverHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let driver: SCTPDriver
    let index: Int
    /// Reads what the socket holds after NIO's one read per wake-up.
    let reader: DatagramReader
    let descriptor: CInt

    init(driver: SCTPDriver, index: Int, reader: DatagramReader, descriptor: CInt) {
        self.driver = driver
        self.index = index
        self.reader = reader
        self.descriptor = descriptor
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        driver.receive(unwrapInboundIn(data), on: index)
        guard context.channel.isActive else { return }
        driver.receiveRest(from: reader, descriptor: descriptor, on: index)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        driver.receiveComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        driver.socketClosed(index)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Read errors such as ECONNREFUSED after an ICMP are not fatal for UDP.
        driver.logger.debug("UDP channel error", metadata: ["error": "\(error)"])
    }
}
