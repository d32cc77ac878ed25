import AggProtocol
import AggTransport
import Logging
import NIOCore
import NIOPosix
import Prometheus
import SCTPEngine
import Synchronization

/// aggserver on several event loops: one `AggServerService` per loop (a shard, with its own driver, endpoint,
/// datagram security and sessions), each bound to every listen address with SO_REUSEPORT, in shard order, so that
/// socket i of each address's reuseport group is shard i's; `ReusePortSteering`'s program, attached to each group,
/// sends every datagram of a session, a key's handshakes and a plaintext association's packets to the shard that
/// holds them. Nothing is shared on the per-datagram path: keys reloads reach every shard, the shards share the
/// Prometheus registry (atomic counters) and the egress resolver (`LookupScheduler`, locked per lookup), and status
/// figures are summed when read. With one thread, or when the kernel refuses the program, it is one shard.
///
/// Known limit: a socket that closes under its driver (its address left the host) and is bound again joins its
/// group at the end, and Linux moves the group's last socket into the hole it left, so the group's order no longer
/// matches the shards' until the server restarts.
public final class ServerShards: Sendable {
    /// The shards, in index order (the reuseport groups' socket order).
    public let shards: [AggServerService]
    /// Every shard's counters.
    public let registry: PrometheusCollectorRegistry
    /// Whether the kernel took the steering program (false with one shard).
    public let isSteered: Bool

    /// Totals of one shard for the systemd status line, refreshed on the shard's loop (`refreshTotals`).
    struct Totals: Sendable {
        var associations = 0
        var activePaths = 0
        var streams = 0
        var statistics = SCTPDriver.Statistics()
    }
    private let totals: Mutex<[Totals]>

    private init(shards: [AggServerService], registry: PrometheusCollectorRegistry, isSteered: Bool) {
        self.shards = shards
        self.registry = registry
        self.isSteered = isSteered
        self.totals = Mutex(Array(repeating: Totals(), count: shards.count))
    }

    /// The first shard: the status endpoint and the systemd reporter run on its loop.
    public var first: AggServerService { shards[0] }

    /// Starts `threads` shards on the loops of `group` (which must have at least that many): shard 0 binds first
    /// (an ephemeral port is chosen then), takes the steering program, and the others bind the addresses it got.
    /// `program` replaces `ReusePortSteering.program` (tests: one the kernel refuses).
    public static func start(
        configuration: AggServerService.Configuration, threads: Int, group: any EventLoopGroup,
        logger: Logger = Logger(label: "aggserver")
    ) -> EventLoopFuture<ServerShards> {
        start(configuration: configuration, threads: threads, group: group, logger: logger, program: nil)
    }

    static func start(
        configuration: AggServerService.Configuration, threads: Int, group: any EventLoopGroup, logger: Logger,
        program: [ReusePortSteering.Instruction]?
    ) -> EventLoopFuture<ServerShards> {
        let loops = Array(group.makeIterator())
        precondition(threads >= 1 && loops.count >= threads, "\(threads) shards need as many event loops")
        let registry = PrometheusCollectorRegistry()
        guard threads > 1 else {
            return AggServerService.start(
                configuration: configuration, on: loops[0], logger: logger, registry: registry
            )
            .map { ServerShards(shards: [$0], registry: registry, isSteered: false) }
        }
        /// Each shard's log lines say which shard wrote them.
        @Sendable func shardLogger(_ index: Int) -> Logger {
            var shardLogger = logger
            shardLogger[metadataKey: "shard"] = "\(index)"
            return shardLogger
        }
        var first = configuration
        first.shard = SCTPShard(count: UInt32(threads), index: 0)
        let program =
            program ?? ReusePortSteering.program(shards: threads, allowPlaintext: configuration.allowPlaintext)
        return AggServerService.start(configuration: first, on: loops[0], logger: shardLogger(0), registry: registry)
            .flatMap { shard0 in
                shard0.eventLoop.submit { () -> (AggServerService, [SCTPSocketAddress], Bool) in
                    let bound = shard0.driver.localAddresses
                    do {
                        try shard0.driver.attachSteering(program)
                        return (shard0, bound, true)
                    } catch {
                        logger.error(
                            """
                            the kernel refused the steering program (SO_ATTACH_REUSEPORT_CBPF): running one event \
                            loop instead of \(threads)
                            """, metadata: ["error": "\(error)"])
                        return (shard0, bound, false)
                    }
                }
            }
            .flatMap { shard0, bound, steered in
                guard steered else {
                    return loops[0].makeSucceededFuture(
                        ServerShards(shards: [shard0], registry: registry, isSteered: false))
                }
                var future = loops[0].makeSucceededFuture([shard0])
                for index in 1..<threads {
                    var shard = configuration
                    shard.listen = bound
                    shard.shard = SCTPShard(count: UInt32(threads), index: UInt32(index))
                    let next = shard
                    future = future.flatMap { started in
                        AggServerService.start(
                            configuration: next, on: loops[index], logger: shardLogger(index), registry: registry
                        )
                        .map { started + [$0] }
                        .flatMapError { error in
                            // The shards bound so far close again, so the failure leaves nothing behind.
                            let stops = started.map { $0.stop() }
                            return EventLoopFuture.andAllComplete(stops, on: loops[0]).flatMapThrowing {
                                throw error
                            }
                        }
                    }
                }
                return future.map { ServerShards(shards: $0, registry: registry, isSteered: true) }
            }
    }

    /// The bound UDP addresses (every shard has the same).
    public var localAddresses: EventLoopFuture<[SCTPSocketAddress]> { first.localAddresses }

    /// Runs `body` on every shard and succeeds when all have.
    private func everyShard(_ body: (AggServerService) -> EventLoopFuture<Void>) -> EventLoopFuture<Void> {
        let futures = shards.map(body)
        return EventLoopFuture.whenAllSucceed(futures, on: first.eventLoop).map { _ in }
    }

    /// Succeeds once every shard's loop has run a task: the loops are alive.
    public func everyLoopAnswers() -> EventLoopFuture<Void> {
        everyShard { $0.eventLoop.submit {} }
    }

    /// Replaces every shard's key table (SIGHUP).
    public func reloadKeys(_ keys: [PreSharedKey]) -> EventLoopFuture<Void> { everyShard { $0.reloadKeys(keys) } }

    /// Replaces the addresses egress refuses as the server's own, on every shard.
    public func refreshOwnAddresses(_ addresses: Set<SCTPIPAddress>) -> EventLoopFuture<Void> {
        everyShard { $0.refreshOwnAddresses(addresses) }
    }

    /// Graceful stop of every shard (`AggServerService.drainAndStop`); completes when the last one has stopped.
    public func drainAndStop(deadline: NIODeadline, closeTimeout: TimeAmount = .seconds(2)) -> EventLoopFuture<Void> {
        everyShard { $0.drainAndStop(deadline: deadline, closeTimeout: closeTimeout) }
    }

    /// Aborts every association and closes every shard's sockets.
    public func stop() -> EventLoopFuture<Void> { everyShard { $0.stop() } }

    // MARK: - Status

    /// Calls `body` on a shard's loop at most every `interval` while its associations come up or go down or their
    /// paths change, after that shard's totals are brought up to date: reading the totals walks the shard's
    /// associations, which a burst of events (a thousand clients reconnecting) must not do once per event.
    public func onStateChange(
        interval: TimeAmount = .milliseconds(250), _ body: @escaping @Sendable () -> Void
    ) -> EventLoopFuture<Void> {
        everyShard { shard in
            let index = Int(shard.configuration.shard.index)
            return shard.eventLoop.submit {
                let pending = PendingFlag()
                shard.onStateChange = { [self] in
                    guard !pending.isSet else { return }
                    pending.isSet = true
                    shard.eventLoop.assumeIsolated().scheduleTask(in: interval) {
                        pending.isSet = false
                        self.refreshTotals(of: shard, at: index)
                        body()
                    }
                }
            }
        }
    }

    /// Whether a refresh is scheduled; confined to one shard's loop.
    private final class PendingFlag {
        var isSet = false
    }

    /// Brings every shard's totals up to date (each on its own loop).
    public func refreshTotals() -> EventLoopFuture<Void> {
        everyShard { shard in
            shard.eventLoop.submit { self.refreshTotals(of: shard, at: Int(shard.configuration.shard.index)) }
        }
    }

    private func refreshTotals(of shard: AggServerService, at index: Int) {
        let summary = shard.summary()
        let statistics = shard.driver.statistics
        totals.withLock {
            $0[index] = Totals(
                associations: summary.associations, activePaths: summary.activePaths, streams: summary.streams,
                statistics: statistics)
        }
    }

    /// Every shard's figures as last refreshed, added up: for the systemd status line.
    public func summary() -> (associations: Int, activePaths: Int, streams: Int, statistics: SCTPDriver.Statistics) {
        totals.withLock { all in
            var sum = (associations: 0, activePaths: 0, streams: 0, statistics: SCTPDriver.Statistics())
            for shard in all {
                sum.associations += shard.associations
                sum.activePaths += shard.activePaths
                sum.streams += shard.streams
                sum.statistics.add(shard.statistics)
            }
            return sum
        }
    }
}

extension SCTPDriver.Statistics {
    /// Adds another driver's counters to these.
    mutating func add(_ other: Self) {
        datagramsReceived += other.datagramsReceived
        bytesReceived += other.bytesReceived
        datagramsSent += other.datagramsSent
        bytesSent += other.bytesSent
        sendFailures += other.sendFailures
        truncatedDatagrams += other.truncatedDatagrams
        timerExpiries += other.timerExpiries
        rebinds += other.rebinds
        segmentedWrites += other.segmentedWrites
    }
}
