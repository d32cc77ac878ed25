import AggConfig
import AggOperations
import AggProtocol
import ArgumentParser
import DaemonCommandLine
import Proxy

/// aggserver: terminates the clients' SCTP associations and relays each stream to the internet.
struct AggServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggserver",
        abstract: "Terminate aggclient associations (SCTP over UDP) and relay each stream to its target.",
        version: BuildInfo.version, subcommands: [Serve.self, CheckConfigCommand<ServerOptions>.self, Keygen.self],
        defaultSubcommand: Serve.self)
}

/// The settings flags of `serve` and `check-config`; each overrides the config file key of the same name.
struct ServerOptions: DaemonSettingsFlags {
    typealias Settings = ServerSettings
    static let checkConfigAbstract =
        "Check the config file and flags (key file, addresses, limits) without starting; print the effective "
        + "settings."

    @Option(help: "TOML config file (default: /etc/agg/aggserver.toml if it exists); flags override it.")
    var config: String?
    @Option(name: .customLong("listen"), help: "UDP address to listen on, HOST:PORT (repeat for each address).")
    var listen: [String] = []
    @Option(name: .customLong("psk-file"), help: "Key file: one 'NAME HEX' line per client, mode 600.")
    var pskFile: String?
    @Option(
        name: .customLong("egress-allow"),
        help: "CIDR prefix egress may reach although it is private (the server's own addresses only as /32, /128).")
    var egressAllow: [String] = []
    @Option(
        name: .customLong("egress-deny-port"),
        help: "Destination port egress refuses (repeat; default 25); 'none' allows every port.")
    var egressDenyPort: [String] = []
    @Flag(help: "Also accept plain RFC 6951 datagrams from clients run with --plaintext (interop, tshark).")
    var allowPlaintext = false
    @Option(help: "Associations one client key may hold at once (default 4).")
    var associationsPerKey: String?
    @Option(help: "Connections open at once on one association (default 16384, at most 65534); more OPENs are refused.")
    var streamsPerAssociation: Int?
    @Option(help: "Paths one association may have, ASCONF-added ones included (default 8, at most 64).")
    var pathsPerAssociation: Int?
    @Option(help: "Event loops serving clients, each its own share (default: one per core).")
    var threads: Int?
    @OptionGroup var shared: SharedDaemonFlags

    /// The flags given, by config key.
    var overrides: ConfigOverrides {
        var overrides = ConfigOverrides()
        shared.add(to: &overrides)
        overrides.set("listen", listen)
        overrides.set("psk-file", pskFile)
        overrides.set("egress-allow", egressAllow)
        overrides.set("egress-deny-port", egressDenyPort)
        overrides.set("allow-plaintext", allowPlaintext)
        overrides.set("limits.associations-per-key", associationsPerKey)
        overrides.set("limits.streams-per-association", streamsPerAssociation)
        overrides.set("limits.paths-per-association", pathsPerAssociation)
        overrides.set("threads", threads)
        return overrides
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server (the default).")

    @OptionGroup var options: ServerOptions

    func run() throws {
        let settings = try options.loadSettings()
        try AggRuntime.runServer(settings, options: settings.daemonOptions)
    }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a key file line with a fresh random 256-bit key (or write it to a new mode-600 file).")

    @Argument(help: "The client's key name (letters, digits, '.', '_', '-').")
    var name: String
    @Option(name: .shortAndLong, help: "Write the client's key file (mode 600) here instead of printing the line.")
    var output: String?
    @Option(help: "Also append the line to the server's key file (created mode 600 if missing; SIGHUP reloads it).")
    var append: String?

    func run() throws {
        guard ControlMessage.isValidKeyName(Array(name.utf8)) else {
            throw ValidationError("key names are 1 to 64 letters, digits, '.', '_' or '-'")
        }
        let line = ServiceSetup.makeKeyLine(name: name)
        let key = try KeyFile.parse(line, path: "generated key")[0]
        if let append { try KeyFile.append(key, to: append, line: line) }
        if let output {
            try ServiceSetup.writePrivateFile(line, path: output)
        } else {
            print(line, terminator: "")
        }
        ServiceSetup.printToStandardError(
            "key \(name): id \(key.keyIDText)\(append.map { ", appended to \($0)" } ?? "")")
    }
}

AggServerCommand.main()
