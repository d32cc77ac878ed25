import AggOperations
import ArgumentParser
import SCTPEngine

/// The command line of sctpcat: netcat for SCTP over UDP (RFC 6951).
struct SCTPCat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sctpcat",
        abstract: "netcat for SCTP over UDP: stdin to an SCTP stream, messages received to stdout.",
        version: BuildInfo.version)

    @Option(help: "Connect to HOST:PORT (PORT is the SCTP port).")
    var connect: String?

    @Option(help: "Listen on HOST:PORT (PORT is the SCTP port) for one association.")
    var listen: String?

    @Option(help: "A local IP address to bind (repeat for several). Default: the wildcard address.")
    var local: [String] = []

    @Option(help: "Local UDP encapsulation port (default: any free port with --connect, 9899 with --listen).")
    var udpPort: UInt16?

    @Option(help: "The peer's UDP encapsulation port.")
    var peerUDPPort: UInt16 = SCTPConfiguration.defaultUDPPort

    @Option(help: "Stream to send on.")
    var stream: UInt16 = 0

    @Option(help: "Largest message made from stdin, in bytes (1...65536).")
    var messageSize: Int = 65536

    @Option(help: "After stdin's EOF and all data acknowledged, keep reading until the peer is silent this long.")
    var linger: Double = 0

    @Option(help: "Give up if the association is not up after this many seconds.")
    var connectTimeout: Double = 10

    @Flag(help: "With --listen: send every message back instead of writing it to stdout.")
    var echo = false

    @Flag(help: "Send messages unordered.")
    var unordered = false

    @Option(help: "Send messages partially reliable (PR-SCTP timed reliability): abandon each after this many ms.")
    var lifetimeMs: Int?

    @Flag(help: "At the end, print what PR-SCTP abandoned and the FORWARD-TSNs sent and received to stderr.")
    var prStats = false

    func validate() throws {
        switch (connect, listen) {
        case (nil, nil): throw ValidationError("one of --connect or --listen is required")
        case (.some, .some): throw ValidationError("--connect and --listen exclude each other")
        default: break
        }
        if echo && listen == nil { throw ValidationError("--echo needs --listen") }
        if !(1...65536).contains(messageSize) { throw ValidationError("--message-size must be 1...65536") }
        if let lifetimeMs, lifetimeMs <= 0 { throw ValidationError("--lifetime-ms must be positive") }
        if linger < 0 || connectTimeout <= 0 {
            throw ValidationError("--linger and --connect-timeout must be positive")
        }
    }

    func run() throws {
        let settings = try CatSettings(self)
        let code = CatSession.run(settings)
        if code != 0 { throw ExitCode(code) }
    }
}
