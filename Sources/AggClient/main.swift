import AggConfig
import AggOperations
import ArgumentParser
import DaemonCommandLine
import Proxy

/// aggclient: a SOCKS5/HTTP proxy whose every connection becomes a stream of one multipath SCTP association.
struct AggClientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggclient",
        abstract: "SOCKS5/HTTP proxy that carries every connection over one multipath association to aggserver.",
        version: BuildInfo.version,
        subcommands: [Run.self, CheckConfigCommand<ClientOptions>.self, Demo.self, Status.self, PathCommand.self],
        defaultSubcommand: Run.self)
}

/// The settings flags of `run` and `check-config`; each overrides the config file key of the same name.
struct ClientOptions: DaemonSettingsFlags {
    typealias Settings = ClientSettings
    static let checkConfigAbstract =
        "Check the config file and flags (key file, addresses, interfaces, limits) without starting; print the "
        + "effective settings."

    @Option(help: "TOML config file (default: /etc/agg/aggclient.toml if it exists); flags override it.")
    var config: String?
    @Option(name: .customLong("server"), help: "aggserver's UDP address, HOST:PORT (repeat for each address).")
    var servers: [String] = []
    @Option(
        name: .customLong("server-group"),
        help: """
            One server's addresses, HOST:PORT,HOST:PORT, optionally ,psk-file=PATH for its own key; repeat in \
            order of preference (instead of --server): the client fails over to the next when one stops answering.
            """)
    var serverGroups: [String] = []
    @Option(
        name: .customLong("server-timeout"),
        help: "With several --server-group: silence after which the server in use is given up (default 1.5s).")
    var serverTimeout: String?
    @Option(
        name: .customLong("path"),
        help: """
            Local IP address or interface name to send from (one per path), optionally named (NAME=IFACE), with \
            options after commas: backup, priority=N, rate=20mbit (e.g. --path lte=wwan0,backup).
            """)
    var paths: [String] = []
    @Option(help: "SOCKS5/SOCKS4a listener, HOST:PORT or PORT (default 127.0.0.1:1080); 'off' disables it.")
    var socks: String?
    @Option(help: "HTTP proxy listener, HOST:PORT or PORT (default 127.0.0.1:8080); the same as --socks shares it.")
    var http: String?
    @Option(
        help: """
            Transparent listener for router mode, ADDR:PORT (e.g. 0.0.0.0:12345): TCP connections nftables \
            redirects or tproxies to it go to their original destination. Off by default.
            """)
    var transparent: String?
    @Option(
        name: .customLong("early-reply"),
        help: """
            When SOCKS and HTTP CONNECT clients hear their target is connected: 'known' (the default: at once for a \
            target reached in the last 5 minutes), 'never' (after the server's answer) or 'always' (at once).
            """)
    var earlyReply: String?
    @Option(name: .customLong("psk-file"), help: "This client's key file: one 'NAME HEX' line, mode 600.")
    var pskFile: String?
    @Option(
        name: .customLong("proxy-user"),
        help: "USER:PASS the SOCKS5 and HTTP listeners require (repeat for more users; SOCKS4 is then refused).")
    var proxyUser: [String] = []
    @Option(name: .customLong("proxy-user-file"), help: "File of USER:PASS lines (mode 600) the listeners accept.")
    var proxyUserFile: String?
    @Flag(help: "Send plain RFC 6951 datagrams, unencrypted (interop, tshark); the server needs --allow-plaintext.")
    var plaintext = false
    @Option(
        help: """
            Connections open at once on the association (default 16384, at most 65534; the server's limit applies \
            too). One beyond it waits for a connection to end (--stream-wait) before it is refused.
            """)
    var streamsPerAssociation: Int?
    @Option(help: "How long a connection waits for a free stream when all are in use ('5s', the default; 0 refuses).")
    var streamWait: String?
    @Option(help: "Paths the association may have, the server's listed addresses included (default 8, at most 64).")
    var pathsPerAssociation: Int?
    @OptionGroup var shared: SharedDaemonFlags

    /// The flags given, by config key.
    var overrides: ConfigOverrides {
        var overrides = ConfigOverrides()
        shared.add(to: &overrides)
        overrides.set("server", servers)
        overrides.set("server-group", serverGroups)
        overrides.set("server-timeout", serverTimeout)
        overrides.set("path", paths)
        overrides.set("socks", socks)
        overrides.set("http", http)
        overrides.set("transparent", transparent)
        overrides.set("early-reply", earlyReply)
        overrides.set("psk-file", pskFile)
        overrides.set("proxy-user", proxyUser)
        overrides.set("proxy-user-file", proxyUserFile)
        overrides.set("plaintext", plaintext)
        overrides.set("limits.streams-per-association", streamsPerAssociation)
        overrides.set("limits.stream-wait", streamWait)
        overrides.set("limits.paths-per-association", pathsPerAssociation)
        return overrides
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the client (the default).")

    @OptionGroup var options: ClientOptions

    func run() throws {
        let settings = try options.loadSettings()
        // Before any thread exists: reading the sockets unsets LISTEN_* (setenv/unsetenv are not thread-safe).
        let daemonOptions = settings.daemonOptions(listenFDs: try SocketActivation.listenFDs())
        try AggRuntime.runClient(settings, options: daemonOptions)
    }
}

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an aggserver and an aggclient in this process on loopback, with two paths; measure a download "
            + "through them, then serve until Ctrl-C.")

    @Option(help: "UDP port of the demo server on 127.0.0.1 and 127.0.0.2 (0: any free port).")
    var serverPort: UInt16 = 9899
    @Option(help: "SOCKS5 port on 127.0.0.1 (0: any free port).")
    var socksPort: UInt16 = 1080
    @Option(help: "HTTP proxy port on 127.0.0.1 (0: any free port).")
    var httpPort: UInt16 = 8080
    @Option(help: "Status page and metrics port on 127.0.0.1, where aggclient status looks (0: any free port).")
    var metricsPort: UInt16 = 9101
    @Option(help: "Seconds of the self-test download before serving (0 skips it).")
    var measure: UInt = 3
    @Flag(name: .shortAndLong, help: "Log every association and stream.")
    var verbose = false

    func run() throws {
        AggRuntime.bootstrapLogging(verbose: verbose, quiet: true)
        var options = AggRuntime.DemoOptions()
        options.serverPort = serverPort
        options.socksPort = socksPort
        options.httpPort = httpPort
        options.metricsPort = metricsPort
        options.measureFor = .seconds(min(measure, 3600))
        try AggRuntime.runDemo(options)
    }
}

func parseAddress(_ text: String, defaultPort: UInt16?, option: String) throws -> HostAndPort {
    guard let address = HostAndPort(text, defaultPort: defaultPort) else {
        throw ValidationError("\(option): expected HOST:PORT, found \(text)")
    }
    return address
}

AggClientCommand.main()
