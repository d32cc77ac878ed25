import AggConfig
import AggObservability
import ArgumentParser

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// `aggclient status`: the running daemon's paths as a table refreshed every second (like `top`), read from its
/// `--metrics` endpoint; `--json` prints the snapshot once for scripts.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the running daemon's paths (state, RTT, throughput, loss, share), refreshed every second.")

    @Option(help: "The daemon's --metrics address, HOST:PORT.")
    var metrics = "127.0.0.1:9101"
    @Flag(help: "Print the JSON snapshot once and exit.")
    var json = false
    @Flag(help: "Print the table once and exit.")
    var once = false

    func run() throws {
        let address = try parseAddress(metrics, defaultPort: nil, option: "--metrics")
        try StatusFetcher.withFetcher(host: address.host, port: Int(address.port)) { fetcher in
            try show(fetcher, hint: "is the daemon running with --metrics \(address)?")
        }
    }

    /// The daemon could not be read: what went wrong and a hint.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private func show(_ fetcher: StatusFetcher, hint: String) throws {
        if json {
            let bytes: [UInt8]
            do {
                bytes = try fetcher.fetch("/status.json")
                _ = try StatusSnapshot(json: bytes)
            } catch {
                throw Failure(description: "\(error) (\(hint))")
            }
            print(String(decoding: bytes, as: UTF8.self))
            return
        }
        var hasShownTable = false
        while true {
            let screen: String
            do {
                let snapshot = try StatusSnapshot(json: try fetcher.fetch("/status.json?history=0"))
                screen = StatusTable.render(snapshot)
            } catch {
                // The first read must work; later a restarting daemon only shows as a line until it is back.
                if once || !hasShownTable { throw Failure(description: "\(error) (\(hint))") }
                screen = "cannot read the daemon's status: \(error)\nretrying every second…\n"
            }
            if once {
                print(screen, terminator: "")
                return
            }
            // Home and clear, then the table: a full redraw each second, as top does.
            print("\u{1B}[H\u{1B}[2J" + screen, terminator: "")
            fflush(nil)
            hasShownTable = true
            sleep(1)
        }
    }
}

/// `aggclient path NAME [backup|active] [--rate RATE|off] [--priority N]`: changes a path's policy in the running
/// daemon, through its `--metrics` endpoint (a request only accepted from this host), without dropping a
/// connection. Lasts until the daemon restarts; the config file keeps the policy it starts with.
struct PathCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "path",
        abstract: "Change a path of the running daemon: backup or active, its send-rate cap, its backup priority.")

    @Argument(help: "The path's name, as `aggclient status` shows it (NAME of --path NAME=IFACE, or the interface).")
    var name: String
    @Argument(help: "backup (data only while no active path works) or active; omit to keep the mode.")
    var mode: String?
    @Option(help: "Send-rate cap, like 20mbit, 500kbit or 1gbit, or off.")
    var rate: String?
    @Option(help: "Priority among backup paths, 0 (used first) to 255.")
    var priority: String?
    @Option(help: "The daemon's --metrics address, HOST:PORT (on this host).")
    var metrics = "127.0.0.1:9101"

    func validate() throws {
        guard PathSpec.isValidName(name) else { throw ValidationError("\"\(name)\" is not a path name") }
        do {
            _ = try PathPolicyChange.parse(mode: mode, priority: priority, rate: rate)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func run() throws {
        let address = try parseAddress(metrics, defaultPort: nil, option: "--metrics")
        var query = "name=\(name)"
        if let mode { query += "&mode=\(mode)" }
        if let rate { query += "&rate=\(rate)" }
        if let priority { query += "&priority=\(priority)" }
        let answer = try StatusFetcher.withFetcher(host: address.host, port: Int(address.port)) { fetcher in
            do {
                return try fetcher.control("/path?\(query)")
            } catch {
                throw Status.Failure(description: "\(error) (is the daemon running with --metrics \(address)?)")
            }
        }
        print(answer, terminator: answer.hasSuffix("\n") ? "" : "\n")
    }
}
