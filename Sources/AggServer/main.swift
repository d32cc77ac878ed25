import ArgumentParser
import Proxy

/// aggserver: terminates the clients' SCTP associations and relays each stream to the internet.
struct AggServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggserver",
        abstract: "Terminate aggclient associations (SCTP over UDP) and relay each stream to its target.",
        subcommands: [Serve.self, Keygen.self], defaultSubcommand: Serve.self)
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server (the default).")

    @Option(name: .customLong("listen"), help: "UDP address to listen on, HOST:PORT (repeat for each address).")
    var listen: [String] = []
    @Option(name: .customLong("psk-file"), help: "Key file: one 'NAME HEX' line per client, mode 600.")
    var pskFile: String
    @Option(name: .customLong("egress-allow"), help: "CIDR prefix egress may reach although it is private.")
    var egressAllow: [String] = []
    @Option(help: "Serve a plain-text status page on HOST:PORT.")
    var metrics: String?
    @Option(help: "Seconds SIGTERM lets running streams finish before the associations are shut down.")
    var shutdownTimeout: Int = 10
    @Flag(name: .shortAndLong, help: "Log every association and stream.")
    var verbose = false
    @Flag(help: "Also accept plain RFC 6951 datagrams from clients run with --plaintext (interop, tshark).")
    var allowPlaintext = false

    func run() throws {
        LoggingBootstrap.bootstrap(label: "aggserver", logLevel: verbose ? .debug : .info)
        var options = DaemonOptions()
        options.shutdownTimeout = .seconds(Int64(max(shutdownTimeout, 0)))
        var settings = ServerSettings()
        if !listen.isEmpty {
            settings.listenAddresses = try listen.map { try parseAddress($0, defaultPort: 9899, option: "--listen") }
        }
        settings.pskFile = pskFile
        settings.allowPlaintext = allowPlaintext
        settings.egressAllow = try egressAllow.map { text in
            guard let prefix = CIDR(text) else { throw ValidationError("--egress-allow: not a CIDR prefix: \(text)") }
            return prefix
        }
        settings.metricsAddress = try metrics.map { try parseAddress($0, defaultPort: nil, option: "--metrics") }
        try AggRuntime.runServer(settings, options: options)
    }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a key file line with a fresh random 256-bit key (or write it to a new mode-600 file).")

    @Argument(help: "The client's key name (letters, digits, '.', '_', '-').")
    var name: String
    @Option(name: .shortAndLong, help: "Write the line to this new file (mode 600) instead of printing it.")
    var output: String?

    func run() throws {
        guard ControlMessage.isValidKeyName(Array(name.utf8)) else {
            throw ValidationError("key names are 1 to 64 letters, digits, '.', '_' or '-'")
        }
        let line = ServiceSetup.makeKeyLine(name: name)
        if let output {
            try ServiceSetup.writePrivateFile(line, path: output)
        } else {
            print(line, terminator: "")
        }
    }
}

func parseAddress(_ text: String, defaultPort: UInt16?, option: String) throws -> HostAndPort {
    guard let address = HostAndPort(text, defaultPort: defaultPort) else {
        throw ValidationError("\(option): expected HOST:PORT, found \(text)")
    }
    return address
}

AggServerCommand.main()
