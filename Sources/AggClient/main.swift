import ArgumentParser
import Proxy

/// aggclient: a SOCKS5/HTTP proxy whose every connection becomes a stream of one multipath SCTP association.
struct AggClientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggclient",
        abstract: "SOCKS5/HTTP proxy that carries every connection over one multipath association to aggserver.",
        subcommands: [Run.self, Demo.self, Status.self], defaultSubcommand: Run.self)
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the client (the default).")

    @Option(name: .customLong("server"), help: "aggserver's UDP address, HOST:PORT (repeat for each address).")
    var servers: [String] = []
    @Option(name: .customLong("path"), help: "Local IP address or interface name to send from (one per path).")
    var paths: [String] = []
    @Option(help: "SOCKS5/SOCKS4a listener, HOST:PORT or PORT (127.0.0.1 by default); 'off' disables it.")
    var socks = "127.0.0.1:1080"
    @Option(help: "HTTP proxy listener, HOST:PORT or PORT; the same address as --socks shares one port.")
    var http = "127.0.0.1:8080"
    @Option(name: .customLong("psk-file"), help: "This client's key file: one 'NAME HEX' line, mode 600.")
    var pskFile: String
    @Option(help: "Serve a plain-text status page on HOST:PORT.")
    var metrics: String?
    @Option(help: "Seconds SIGTERM lets running connections finish before the association is shut down.")
    var shutdownTimeout: Int = 10
    @Flag(name: .shortAndLong, help: "Log every association and stream.")
    var verbose = false
    @Flag(help: "Send plain RFC 6951 datagrams, unencrypted (interop, tshark); the server needs --allow-plaintext.")
    var plaintext = false

    func run() throws {
        LoggingBootstrap.bootstrap(label: "aggclient", logLevel: verbose ? .debug : .info)
        // Before any thread exists: reading the sockets unsets LISTEN_* (setenv/unsetenv are not thread-safe).
        var options = DaemonOptions()
        options.listenFDs = try SocketActivation.listenFDs()
        options.shutdownTimeout = .seconds(Int64(max(shutdownTimeout, 0)))
        var settings = ClientSettings()
        settings.serverAddresses = try servers.map { try parseAddress($0, defaultPort: 9899, option: "--server") }
        guard !settings.serverAddresses.isEmpty else { throw ValidationError("give at least one --server") }
        settings.localAddresses = paths
        settings.socksAddress = try parseListener(socks, option: "--socks")
        settings.httpAddress = try parseListener(http, option: "--http")
        settings.pskFile = pskFile
        settings.plaintext = plaintext
        settings.metricsAddress = try metrics.map { try parseAddress($0, defaultPort: nil, option: "--metrics") }
        try AggRuntime.runClient(settings, options: options)
    }
}

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an aggserver and an aggclient in this process on loopback, with two paths.")

    @Option(help: "UDP port of the demo server on 127.0.0.1 and 127.0.0.2.")
    var serverPort: UInt16 = 9899
    @Option(help: "SOCKS5 port on 127.0.0.1.")
    var socksPort: UInt16 = 1080
    @Option(help: "HTTP proxy port on 127.0.0.1.")
    var httpPort: UInt16 = 8080
    @Flag(name: .shortAndLong, help: "Log every association and stream.")
    var verbose = false

    func run() throws {
        AggRuntime.bootstrapLogging(verbose: verbose, quiet: true)
        try AggRuntime.runDemo(serverPort: serverPort, socksPort: socksPort, httpPort: httpPort)
    }
}

func parseAddress(_ text: String, defaultPort: UInt16?, option: String) throws -> HostAndPort {
    guard let address = HostAndPort(text, defaultPort: defaultPort) else {
        throw ValidationError("\(option): expected HOST:PORT, found \(text)")
    }
    return address
}

/// A listener address: HOST:PORT, a bare PORT on 127.0.0.1, or "off".
func parseListener(_ text: String, option: String) throws -> HostAndPort? {
    if text == "off" { return nil }
    if let port = UInt16(text) { return HostAndPort(host: "127.0.0.1", port: port) }
    return try parseAddress(text, defaultPort: nil, option: option)
}

AggClientCommand.main()
