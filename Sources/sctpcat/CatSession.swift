import AggTransport
import Logging
import NIOCore
import NIOPosix
import SCTPEngine

/// One sctpcat run: an association opened or accepted, stdin sent as messages, messages received written to stdout
/// (or echoed), then a graceful shutdown. Confined to its event loop; the exit code arrives through `finished`.
final class CatSession: @unchecked Sendable {
    let settings: CatSettings
    let driver: SCTPDriver
    let finished: EventLoopPromise<Int32>
    let pool: NIOThreadPool
    private var association: SCTPAssociationID?
    private var output = StandardOutput()
    /// Chunks of stdin waiting for room in the send buffer, each with the promise the reader thread waits on.
    private var pending: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    private var sawEOF = false
    private var isShuttingDown = false
    private var isPumping = false
    private var isFinished = false
    private var lastReceived = SCTPTime.now()
    private var poller: RepeatedTask?
    /// Whether the association negotiated PR-SCTP, for `--pr-stats`.
    private var isPartialReliabilityNegotiated = false
    private var connectTimer: Scheduled<Void>?

    private init(settings: CatSettings, driver: SCTPDriver, pool: NIOThreadPool) {
        self.settings = settings
        self.driver = driver
        self.finished = driver.eventLoop.makePromise()
        self.pool = pool
    }

    /// Runs a whole session and returns the process exit code.
    static func run(_ settings: CatSettings) -> Int32 {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let loop = group.next()
        var logger = Logger(label: "sctpcat", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .warning

        var configuration = SCTPConfiguration()
        var generator = SystemRandomNumberGenerator()
        configuration.cookieSecret = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        switch settings.mode {
        case .connect: configuration.localPort = UInt16.random(in: 49152...65535, using: &generator)
        case .listen(_, let port, _): configuration.localPort = port
        }
        let advertised = settings.localAddresses.map(\.ip).filter { !$0.isWildcard }

        let code: Int32
        do {
            let driver = try SCTPDriver.bind(
                localAddresses: settings.localAddresses, configuration: configuration, seed: generator.next(),
                advertisedAddresses: advertised, on: loop, logger: logger
            ).wait()
            let session = CatSession(settings: settings, driver: driver, pool: pool)
            loop.execute { session.start() }
            code = (try? session.finished.futureResult.wait()) ?? 1
            try? driver.close().wait()
        } catch {
            let addresses = settings.localAddresses.map(\.description).joined(separator: ", ")
            printError("sctpcat: cannot bind \(addresses): \(error)")
            code = 1
        }
        // The stdin thread may be blocked in read(2): leave it to the process exit.
        try? group.syncShutdownGracefully()
        return code
    }

    // MARK: - Life cycle

    private func start() {
        driver.onEvent = { [unowned self] event in self.handle(event) }
        connectTimer = driver.eventLoop.scheduleTask(in: .nanoseconds(settings.connectTimeout.nanoseconds)) {
            self.fail("no association after \(self.settings.connectTimeout.seconds) s (no answer to INIT?)")
        }
        switch settings.mode {
        case .connect(let remote, let sctpPort):
            association = driver.connect(
                to: SCTPSocketAddress(ip: remote, port: settings.peerUDPPort), peerPort: sctpPort)
        case .listen:
            connectTimer?.cancel()  // a listener waits as long as it takes
            connectTimer = nil
        }
    }

    private func finish(_ code: Int32) {
        guard !isFinished else { return }
        isFinished = true
        if settings.printsPartialReliabilityStats {
            let counters = driver.endpoint.partialReliabilityCounters
            printError(
                "sctpcat: pr-sctp negotiated=\(isPartialReliabilityNegotiated ? "yes" : "no")"
                    + " abandoned-unsent=\(counters.messagesAbandonedUnsent)"
                    + " abandoned-sent=\(counters.messagesAbandonedSent)"
                    + " forward-tsn-sent=\(counters.forwardTSNsSent)"
                    + " forward-tsn-received=\(counters.forwardTSNsReceived)")
        }
        poller?.cancel()
        connectTimer?.cancel()
        finished.succeed(code)
    }

    private func fail(_ reason: String) {
        guard !isFinished else { return }
        printError("sctpcat: \(reason)")
        finish(1)
        if let association { driver.abort(association, reason: reason) }
    }

    // MARK: - Events

    private func handle(_ event: SCTPEvent) {
        guard !isFinished else { return }
        switch event {
        case .established(let id, _, _):
            if let association, association != id {
                driver.abort(id, reason: "sctpcat accepts one association")
                return
            }
            association = id
            isPartialReliabilityNegotiated = driver.endpoint.isPartialReliabilityNegotiated(id)
            connectTimer?.cancel()
            connectTimer = nil
            if case .connect = settings.mode { startSending() }
        case .message(let id, let message):
            guard id == association else { return }
            lastReceived = .now()
            if case .listen(_, _, true) = settings.mode {
                pending.append((message.payload, nil))
                pump()
            } else {
                output.write(message.payload)
                if output.failed { fail("cannot write to stdout") }
            }
        case .writable(let id):
            if id == association { pump() }
        case .closed(let id, let reason):
            guard id == association else { return }
            if reason == .shutdownComplete {
                finish(0)
            } else {
                fail("association closed: \(reason)")
            }
        case .shutdownReceived, .pathStateChanged, .pathRemoteChanged, .associationRefused:
            break
        }
    }

    // MARK: - Sending

    private func startSending() {
        let loop = driver.eventLoop
        StandardInputReader.start(chunkSize: settings.messageSize, on: loop, pool: pool) { chunk in
            loop.flatSubmit { self.offer(chunk) }
        }
        // Checks for the end of the transfer: every byte acknowledged and the peer silent for the linger time.
        poller = loop.scheduleRepeatedTask(initialDelay: .milliseconds(10), delay: .milliseconds(10)) { _ in
            self.checkDone()
        }
    }

    /// Takes one chunk of stdin (nil at EOF); the future completes once it is in the send buffer.
    private func offer(_ chunk: ByteBuffer?) -> EventLoopFuture<Void> {
        guard let chunk else {
            sawEOF = true
            return driver.eventLoop.makeSucceededVoidFuture()
        }
        let promise = driver.eventLoop.makePromise(of: Void.self)
        pending.append((chunk, promise))
        pump()
        return promise.futureResult
    }

    /// Moves queued messages into the engine while it accepts them.
    private func pump() {
        // `send` drains the engine, whose events may call back in here: the outer call finishes the job.
        guard let association, !isShuttingDown, !isPumping else { return }
        isPumping = true
        defer { isPumping = false }
        var sent = 0
        while sent < pending.count, driver.isWritable(association) {
            do {
                try driver.send(
                    pending[sent].0, on: association, stream: settings.stream, unordered: settings.unordered,
                    reliability: settings.reliability)
            } catch .sendBufferFull {
                break
            } catch {
                fail("send failed: \(error)")
                return
            }
            pending[sent].1?.succeed()
            sent += 1
        }
        pending.removeFirst(sent)
    }

    private func checkDone() {
        guard let association, sawEOF, !isShuttingDown, pending.isEmpty, driver.bufferedAmount(association) == 0,
            SCTPTime.now() - lastReceived >= settings.linger
        else { return }
        isShuttingDown = true
        driver.shutdown(association)
    }
}
