import AggConfig
import AggEgress
import AggIngress
import AggObservability
import AggOperations
import AggProtocol
import AggTransport
import Logging
import NIOCore
import NIOPosix
import SCTPEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs the daemons from their settings until SIGINT or SIGTERM: what `main` calls after parsing.
public enum AggRuntime {
    /// Sends log lines to standard error: debug and up when `verbose`, else info (warning when `quiet`) and up. Once per process.
    public static func bootstrapLogging(verbose: Bool, quiet: Bool = false) {
        let level: Logger.Level = verbose ? .debug : quiet ? .warning : .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// Runs aggserver until SIGINT or SIGTERM, telling systemd how it is doing (sd_notify: ready, status line,
    /// watchdog); SIGHUP reloads the key file.
    public static func runServer(
        _ settings: ServerSettings, options: DaemonOptions = DaemonOptions(),
        logger: Logger = Logger(label: "aggserver")
    ) throws {
        logger.info("aggserver starting", metadata: ["version": "\(BuildInfo.version)"])
        let configuration = try ServiceSetup.serverConfiguration(settings)
        warnIfNoKeys(configuration.keys, path: settings.pskFile, logger: logger)
        DaemonSignal.block()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: settings.threads)
        defer { try? group.syncShutdownGracefully() }
        let shards = try ServerShards.start(
            configuration: configuration, threads: settings.threads, group: group, logger: logger
        ).wait()
        let server = shards.first
        let bound = try shards.localAddresses.wait()
        // Scripts and tests read the port from the end of this line: the shard count goes to the log.
        let listening = "listening on UDP \(bound.map(\.description).joined(separator: ", "))"
        say("aggserver \(listening)")
        logger.info(
            "serving clients", metadata: ["event loops": "\(shards.shards.count)", "steered": "\(shards.isSteered)"])
        let metrics = try settings.metricsAddress.map { address in
            try StatusEndpoint.start(host: address.host, port: Int(address.port), shards: shards).wait()
        }

        let notifier = SystemdNotifier(logger: logger)
        let reporter = StatusReporter(
            notifier: notifier, eventLoop: server.eventLoop,
            describe: {
                let summary = shards.summary()
                return "\(summary.associations) clients, \(summary.activePaths) active paths, "
                    + "\(summary.streams) streams"
            },
            statistics: { shards.summary().statistics })
        try shards.onStateChange { server.eventLoop.execute { reporter.report() } }.wait()
        // The watchdog is pinged only while every shard's loop answers: one stuck loop strands its clients.
        let watchdog = notifier.watchdogPingPeriod.map { period in
            server.eventLoop.scheduleRepeatedAsyncTask(initialDelay: .zero, delay: period) { _ in
                shards.everyLoopAnswers().map { _ = notifier.watchdogPing() }
            }
        }
        notifier.ready(status: listening)
        let statusTask = server.eventLoop.scheduleRepeatedAsyncTask(
            initialDelay: .zero, delay: options.statusInterval
        ) { _ in
            shards.refreshTotals().hop(to: server.eventLoop).map {
                reporter.sample()
                reporter.report()
            }
        }

        while case .reload = DaemonSignal.wait() {
            notifier.reloading(status: "reloading keys")
            noteCredentialCopyOnReload(path: settings.pskFile, logger: logger)
            do {
                let keys = try KeyFile.load(path: settings.pskFile)
                warnIfNoKeys(keys, path: settings.pskFile, logger: logger)
                try shards.reloadKeys(keys).wait()
            } catch {
                logger.error("reload failed; the previous keys stay", metadata: ["error": "\(error)"])
            }
            // An address added since the start (DHCP, a new interface) is refused from now on.
            try? shards.refreshOwnAddresses(ServiceSetup.ownAddresses()).wait()
            try? shards.refreshTotals().wait()
            notifier.ready(status: try server.eventLoop.submit { reporter.line() }.wait())
        }

        notifier.stopping(status: "stopping")
        logger.info("stopping", metadata: ["timeout": "\(options.shutdownTimeout.nanoseconds / 1_000_000) ms"])
        watchdog?.cancel()
        statusTask.cancel()
        try? metrics?.close().wait()
        try shards.drainAndStop(deadline: .now() + options.shutdownTimeout).wait()
    }

    /// Says how to add a client when the server's key file holds none (as the package installs it).
    static func warnIfNoKeys(_ keys: [PreSharedKey], path: String, logger: Logger) {
        guard keys.isEmpty else { return }
        if isCredentialCopy(path) {
            logger.warning(
                """
                no client keys: every client is refused until one is added (aggserver keygen NAME --append FILE \
                -o NAME.key) to the file the unit loads with LoadCredential= and the service is restarted: a \
                reload re-reads systemd's copy from the start
                """, metadata: ["psk-file": "\(path)"])
        } else {
            logger.warning(
                """
                no client keys: every client is refused until one is added with `aggserver keygen NAME --append \
                \(path) -o NAME.key` and the keys are reloaded (SIGHUP)
                """, metadata: ["psk-file": "\(path)"])
        }
    }

    /// Whether `path` is in the credentials directory systemd made for the service (LoadCredential=): a copy of
    /// the key file taken when the service started, which systemd (252, Debian 12's) does not refresh on reload.
    static func isCredentialCopy(_ path: String) -> Bool {
        guard let directory = getenv("CREDENTIALS_DIRECTORY").map({ String(cString: $0) }), !directory.isEmpty else {
            return false
        }
        return path.hasPrefix(directory.hasSuffix("/") ? directory : directory + "/")
    }

    /// On SIGHUP: a key file that is systemd's copy from the start does not show later changes to its source.
    static func noteCredentialCopyOnReload(path: String, logger: Logger) {
        guard isCredentialCopy(path) else { return }
        logger.warning(
            """
            the key file is systemd's copy from the service's start (LoadCredential=), which a reload does not \
            refresh: after changing the key file the unit loads, restart the service
            """, metadata: ["psk-file": "\(path)"])
    }

    /// Runs aggclient until SIGINT or SIGTERM, adopting the listening sockets systemd passed (`socks`, `http`,
    /// `transparent`) and telling systemd how it is doing; SIGHUP reloads the key for the next association.
    public static func runClient(
        _ settings: ClientSettings, options: DaemonOptions = DaemonOptions(),
        logger: Logger = Logger(label: "aggclient")
    ) throws {
        logger.info("aggclient starting", metadata: ["version": "\(BuildInfo.version)"])
        let configuration = try ServiceSetup.clientConfiguration(settings)
        DaemonSignal.block()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let (client, _) = try startClient(
            configuration, settings: settings, listenFDs: options.listenFDs, on: group.next(), logger: logger)

        let notifier = SystemdNotifier(logger: logger)
        let reporter = StatusReporter(
            notifier: notifier, eventLoop: client.eventLoop,
            describe: {
                let summary = client.summary()
                guard summary.isReady else { return "association down, reconnecting" }
                return "association up, \(summary.activePaths) active paths, \(summary.streams) streams"
            },
            statistics: { client.driver.statistics })
        try client.eventLoop.submit { client.onStateChange = { reporter.report() } }.wait()
        // READY once the first association attempt succeeded or failed: a unit ordered after this one then finds
        // the proxy either working or known to be waiting for the server.
        try? client.whenFirstAttemptSettled().wait()
        let watchdog = notifier.startWatchdog(on: client.eventLoop)
        notifier.ready(status: try client.eventLoop.submit { reporter.line() }.wait())
        let statusTask = reporter.startPeriodic(interval: options.statusInterval)

        while case .reload = DaemonSignal.wait() {
            notifier.reloading(status: "reloading the key")
            noteCredentialCopyOnReload(path: settings.pskFile, logger: logger)
            do {
                let key = try KeyFile.loadClientKey(path: settings.pskFile)
                try client.reloadKey(key).wait()
            } catch {
                logger.error("reload failed; the previous key stays", metadata: ["error": "\(error)"])
            }
            notifier.ready(status: try client.eventLoop.submit { reporter.line() }.wait())
        }

        notifier.stopping(status: "stopping")
        logger.info("stopping", metadata: ["timeout": "\(options.shutdownTimeout.nanoseconds / 1_000_000) ms"])
        watchdog?.cancel()
        statusTask.cancel()
        try client.drainAndStop(deadline: .now() + options.shutdownTimeout).wait()
    }

    /// The ports a started client listens on (nil: no such listener).
    struct ClientPorts: Sendable {
        var socks: Int?
        var http: Int?
        var metrics: Int?
        var transparent: Int?
    }

    /// Starts the client service and its listeners (SOCKS and HTTP; one sniffing listener when they share a
    /// port; the transparent one) and the status endpoint, and returns the ports they got. A socket systemd passed
    /// named `socks`, `http` or `transparent` replaces that listener's address. The listeners require the settings'
    /// proxy users, if any, and count their refusals in the client's metrics; one on an address other than loopback
    /// without users is warned about.
    static func startClient(
        _ configuration: AggClientService.Configuration, settings: ClientSettings,
        listenFDs: [SocketActivation.ListenFD] = [], on eventLoop: any EventLoop, logger: Logger
    ) throws -> (AggClientService, ClientPorts) {
        var socksAddress = settings.socksAddress
        var httpAddress = settings.httpAddress
        var inherited: [(SocketActivation.ListenFD, ProxyProtocols)] = []
        var inheritedTransparent: SocketActivation.ListenFD?
        for fd in listenFDs {
            switch fd.name {
            case "transparent" where inheritedTransparent == nil:
                try fd.checkIsListeningStreamSocket()
                inheritedTransparent = fd
            case "socks" where !inherited.contains { $0.1 == .socks }:
                try fd.checkIsListeningStreamSocket()
                inherited.append((fd, .socks))
                socksAddress = nil
            case "http" where !inherited.contains { $0.1 == .http }:
                try fd.checkIsListeningStreamSocket()
                inherited.append((fd, .http))
                httpAddress = nil
            default:
                logger.warning(
                    "ignoring an inherited socket", metadata: ["name": "\(fd.name)", "descriptor": "\(fd.descriptor)"])
            }
        }

        var ingress = ProxyIngressConfiguration(users: try ProxyUserFile.users(of: settings))
        let client = try AggClientService.start(configuration: configuration, on: eventLoop, logger: logger).wait()
        ingress.onRefusal = { [metrics = client.metrics] refusal in metrics.recordRefusal(refusal) }
        var ports = ClientPorts()
        /// The listeners' bound addresses, which a transparent connection must not be sent back into.
        var own: [SCTPSocketAddress?] = []
        func record(_ channel: any Channel, _ protocols: ProxyProtocols) {
            own.append(channel.localAddress.flatMap(SCTPSocketAddress.init))
            let port = channel.localAddress?.port
            if protocols.contains(.socks) { ports.socks = port }
            if protocols.contains(.http) { ports.http = port }
        }
        for (fd, protocols) in inherited {
            let channel = try client.listen(adopting: fd.descriptor, protocols: protocols, ingress: ingress).wait()
            record(channel, protocols)
            let name = protocols == .http ? "HTTP" : ingress.requiresCredentials ? "SOCKS5" : "SOCKS5/SOCKS4a"
            let bound = channel.localAddress.flatMap(SCTPSocketAddress.init)
            say("aggclient: \(name) proxy on \(bound?.description ?? "?") (socket \"\(fd.name)\" from systemd)")
            warnIfOpen(bound, ingress: ingress, logger: logger)
        }
        var listeners: [(HostAndPort, ProxyProtocols)] = []
        if let socks = socksAddress { listeners.append((socks, .socks)) }
        if let http = httpAddress {
            if let index = listeners.firstIndex(where: { $0.0 == http }) {
                listeners[index].1 = .all
            } else {
                listeners.append((http, .http))
            }
        }
        for (address, protocols) in listeners {
            let channel = try client.listen(
                host: address.host, port: Int(address.port), protocols: protocols, ingress: ingress
            ).wait()
            record(channel, protocols)
            let socks = ingress.requiresCredentials ? "SOCKS5" : "SOCKS5/SOCKS4a"
            let name = protocols == .all ? socks + "/HTTP" : protocols == .http ? "HTTP" : socks
            let bound = channel.localAddress.flatMap(SCTPSocketAddress.init)
            say("aggclient: \(name) proxy on \(bound?.description ?? address.description)")
            warnIfOpen(bound, ingress: ingress, logger: logger)
        }
        if let address = settings.metricsAddress {
            let endpoint = try StatusEndpoint.start(host: address.host, port: Int(address.port), client: client).wait()
            ports.metrics = endpoint.localAddress?.port
            let bound = endpoint.localAddress.flatMap(SCTPSocketAddress.init)?.description ?? address.description
            say("aggclient: status on http://\(bound)/")
            own.append(endpoint.localAddress.flatMap(SCTPSocketAddress.init))
        }
        let transparent: EventLoopFuture<(any Channel, TransparentListener.Mode)>?
        if let fd = inheritedTransparent {
            transparent = client.listenTransparent(
                adopting: fd.descriptor, ingress: ingress, ownListeners: own.compactMap { $0 })
        } else if let address = settings.transparentAddress {
            transparent = client.listenTransparent(
                host: address.host, port: Int(address.port), ingress: ingress, ownListeners: own.compactMap { $0 })
        } else {
            transparent = nil
        }
        if let transparent {
            let (channel, mode) = try transparent.wait()
            ports.transparent = channel.localAddress?.port
            if let tcp = channel.localAddress.flatMap(SCTPSocketAddress.init) {
                try listenTransparentUDP(client, on: tcp, logger: logger)
            }
            let from = inheritedTransparent.map { " (socket \"\($0.name)\" from systemd)" } ?? ""
            let bound = (channel.localAddress.flatMap(SCTPSocketAddress.init)?.description ?? "?") + from
            switch mode {
            case .redirectAndTProxy:
                say("aggclient: transparent listener on \(bound) (nftables redirect or tproxy)")
            case .redirectOnly:
                say("aggclient: transparent listener on \(bound) (nftables redirect only)")
                let why =
                    inheritedTransparent == nil
                    ? "could not set IP_TRANSPARENT (no CAP_NET_ADMIN)"
                    : "came from systemd without IP_TRANSPARENT (its socket unit lacks Transparent=yes)"
                logger.notice(
                    "the transparent listener \(why): nftables tproxy rules will not reach it; redirect ones do")
            }
        }
        return (client, ports)
    }

    /// Warns when a listener that asks for no credentials is bound to an address other than loopback: anyone who
    /// reaches that address uses the server, as this client.
    /// Router mode's UDP: a UDP socket for nftables `tproxy` on the transparent listener's address and port.
    /// Without CAP_NET_RAW or CAP_NET_ADMIN (IP_TRANSPARENT) it is not there, and the log says so: TCP router mode
    /// works without it.
    static func listenTransparentUDP(_ client: AggClientService, on tcp: SCTPSocketAddress, logger: Logger) throws {
        do {
            let bound = try client.listenTransparentUDP(address: tcp).wait()
            say("aggclient: transparent UDP on \(bound) (nftables tproxy)")
        } catch let error as TransparentDatagramSocket.OpenError where error.isPermissionDenied {
            logger.notice(
                "no UDP in router mode: IP_TRANSPARENT needs CAP_NET_RAW or CAP_NET_ADMIN (\(error)); TCP is unaffected"
            )
        }
    }

    static func warnIfOpen(_ bound: SCTPSocketAddress?, ingress: ProxyIngressConfiguration, logger: Logger) {
        guard !ingress.requiresCredentials, let bound, !EgressPolicy.isLoopback(bound.ip) else { return }
        let text =
            "proxy on \(bound) requires no credentials: anyone who can reach it uses the server as this client; "
            + "set proxy-user or proxy-user-file, or listen on 127.0.0.1"
        logger.warning("\(text)", metadata: ["listener": "\(bound)"])
    }

    /// Creates a fresh directory under $TMPDIR (or /tmp) for the demo's key file.
    static func makeTemporaryDirectory() throws(ConfigError) -> String {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array((base + "/agg-demo-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard let made else { throw ConfigError(path: base, "cannot create a temporary directory") }
        return String(cString: made)
    }

    /// Prints a line and flushes at once, so the banner shows up in pipes and logs.
    static func say(_ text: String) {
        print(text)
        fflush(nil)
    }

    // MARK: - Signals

    /// Blocks SIGINT and SIGTERM in this thread and every thread started after it, so `waitForTerminationSignal`
    /// receives them.
    public static func blockTerminationSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits for SIGINT or SIGTERM.
    @discardableResult
    public static func waitForTerminationSignal() -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        var signal: Int32 = 0
        sigwait(&set, &signal)
        return signal
    }
}
