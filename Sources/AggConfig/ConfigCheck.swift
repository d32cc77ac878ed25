import AggEgress
import AggIngress
import SCTPEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// `aggclient check-config` and `aggserver check-config`: load the settings as the daemon would, then check what
/// it would check at start (the key file exists, is private and well formed; names resolve; interfaces have an
/// address) without binding a socket, and print the effective settings as TOML, each with where it came from.
public enum ConfigCheck {
    /// The outcome: the effective settings as TOML lines, or every problem found.
    public struct Report: Sendable {
        public var summary: [String]
        public var errors: [ConfigError]

        public var isValid: Bool { errors.isEmpty }
    }

    /// Checks aggclient's configuration from the file at `path` (or the default file) and the flags.
    public static func client(path: String?, overrides: ConfigOverrides) -> Report {
        run(ClientSettings.configSchema, path: path, overrides: overrides) { settings, check in
            clientNotes(settings, check: check)
        }
    }

    /// What `client` notes about `settings`, each check that throws recorded as an error of its key.
    private static func clientNotes(_ settings: ClientSettings, check: Check) -> [String] {
        var notes: [String] = []
        check("psk-file") {
            let key = try KeyFile.loadClientKey(path: settings.pskFile)
            notes.append("key \"\(key.name)\" from \(settings.pskFile)")
        }
        for server in settings.serverAddresses {
            check("server") { notes.append("server \(server) is \(try ServiceSetup.resolveHost(server.host))") }
        }
        for (index, group) in settings.serverGroups.enumerated() {
            check("server-group") {
                var resolved: [String] = []
                for server in group.addresses {
                    resolved.append("\(server) is \(try ServiceSetup.resolveHost(server.host))")
                }
                let key = try group.pskFile.map { path in
                    let key = try KeyFile.loadClientKey(path: path)
                    return ", key \"\(key.name)\" from \(path)"
                }
                let order = index == 0 ? "preferred" : "fallback \(index)"
                notes.append("server group \(index) (\(order)): " + resolved.joined(separator: ", ") + (key ?? ""))
            }
        }
        if settings.serverGroups.count > 1 {
            notes.append(
                "failover: a server silent for \(settings.serverTimeout) is given up for the next group; "
                    + "each association is kept alive by a PING after a third of that without traffic")
        }
        for path in settings.localAddresses {
            check("path") {
                // The loader checked the syntax already.
                let spec = PathSpec(path) ?? PathSpec(target: path)
                let name = spec.name.map { "\($0) (\(spec.target))" } ?? spec.target
                var policy = spec.mode == .backup ? ", backup (data only while no active path works)" : ""
                if spec.mode == .backup, spec.priority != 0 { policy += ", priority \(spec.priority)" }
                if let rate = spec.rateBitsPerSecond { policy += ", sends at most \(RateText.format(rate))/s" }
                if let ip = try ServiceSetup.resolvePath(spec.target) {
                    notes.append("path \(name) sends from \(ip)\(policy)")
                } else {
                    notes.append("path \(name) has no address yet; it joins once the interface gets one\(policy)")
                }
            }
        }
        if settings.localAddresses.isEmpty { notes.append("one path from the wildcard address (no path given)") }
        var users: [ProxyIngressConfiguration.Credentials] = []
        check(settings.proxyUserFile == nil ? "proxy-user" : "proxy-user-file") {
            users = try ProxyUserFile.users(of: settings)
            notes.append(
                users.isEmpty
                    ? "no proxy users: the listeners ask for no credentials"
                    : "proxy users (SOCKS4 refused): " + users.map(\.username).joined(separator: ", "))
        }
        for (key, address) in [
            ("socks", settings.socksAddress), ("http", settings.httpAddress),
            ("metrics", settings.metricsAddress),
        ] {
            guard let address else { continue }
            check(key) {
                let ip = try ServiceSetup.resolveHost(address.host)
                if key != "metrics", users.isEmpty, !EgressPolicy.isLoopback(ip) {
                    notes.append(
                        "warning: \(key) listens on \(address) without credentials: anyone who can reach it uses "
                            + "the server; set proxy-user or proxy-user-file")
                }
            }
        }
        if let address = settings.transparentAddress {
            if let ip = SCTPIPAddress(address.host), EgressPolicy.isLoopback(ip) {
                notes.append(
                    "warning: transparent listens on loopback (\(address)): nftables redirect sends the LAN's "
                        + "connections to the LAN interface's address, so they will not reach it; use 0.0.0.0")
            }
            notes.append(
                "transparent listener on \(address) (router mode): takes connections nftables redirects (no "
                    + "privilege needed) or tproxies (needs CAP_NET_ADMIN); it asks for no credentials, so keep its "
                    + "port closed to the uplinks (deploy/nftables/agg-router.nft does)")
        }
        return notes
    }

    /// Checks aggserver's configuration from the file at `path` (or the default file) and the flags.
    public static func server(path: String?, overrides: ConfigOverrides) -> Report {
        run(ServerSettings.configSchema, path: path, overrides: overrides) { settings, check in
            serverNotes(settings, check: check)
        }
    }

    /// What `server` notes about `settings`, each check that throws recorded as an error of its key.
    private static func serverNotes(_ settings: ServerSettings, check: Check) -> [String] {
        var notes: [String] = []
        check("psk-file") {
            let keys = try KeyFile.load(path: settings.pskFile)
            notes.append("\(keys.count) client key\(keys.count == 1 ? "" : "s") from \(settings.pskFile)")
            if keys.isEmpty {
                notes.append(
                    "no client can connect until one is added: aggserver keygen NAME --append \(settings.pskFile)")
            }
        }
        for address in settings.listenAddresses {
            check("listen") { notes.append("listen \(address) is \(try ServiceSetup.resolveHost(address.host))") }
        }
        if let metrics = settings.metricsAddress { check("metrics") { _ = try ServiceSetup.resolveHost(metrics.host) } }
        notes += egressNotes(settings, ownAddresses: ServiceSetup.ownAddresses())
        return notes
    }

    /// Runs one check for a key: an error it throws is recorded against where the key was set.
    typealias Check = (_ key: String, _ body: () throws -> Void) -> Void

    /// Loads the settings as the daemon would, runs `notes` (the daemon's checks) over them, and reports.
    private static func run<Settings>(
        _ schema: ConfigSchema<Settings>, path: String?, overrides: ConfigOverrides,
        notes: (Settings, Check) -> [String]
    ) -> Report {
        let loaded: LoadedConfig<Settings>
        do {
            loaded = try ConfigFile.load(schema, path: path, overrides: overrides)
        } catch {
            return Report(summary: [], errors: error.errors)
        }
        var errors: [ConfigError] = []
        let found = notes(loaded.settings) { key, body in
            do { try body() } catch { errors.append(loaded.error(key, "\(error)")) }
        }
        return report(loaded, schema, notes: found, errors: errors)
    }

    /// What the egress policy will refuse besides its ranges, and the allow prefixes that open nothing (a prefix
    /// opens a refused range only from inside it; see `EgressPolicy`).
    static func egressNotes(_ settings: ServerSettings, ownAddresses: Set<SCTPIPAddress>) -> [String] {
        var notes: [String] = []
        let own = ownAddresses.map(\.description).sorted()
        if !own.isEmpty {
            notes.append(
                "egress refuses this server's own addresses (allow one only as its /32 or /128): "
                    + own.joined(separator: ", "))
        }
        let ports = settings.egressDenyPorts.map(String.init).joined(separator: ", ")
        notes.append(
            ports.isEmpty ? "egress allows every destination port" : "egress refuses destination ports \(ports)")
        for prefix in settings.egressAllow {
            let opens = EgressPolicy.refusedRanges.contains { $0.prefix.contains(prefix) }
            let namesOwn = ownAddresses.contains { CIDR($0, prefixLength: $0.isIPv4 ? 32 : 128) == prefix }
            if !opens && !namesOwn {
                notes.append(
                    "egress-allow \(prefix) opens nothing: it lies inside no refused range (public addresses are "
                        + "allowed anyway; a refused range is opened only by a prefix inside it)")
            }
        }
        return notes
    }

    /// Prints the report (the summary on standard output, errors on standard error) and returns the exit code.
    public static func print(_ report: Report, daemon: String) -> Int32 {
        if report.isValid {
            for line in report.summary { Swift.print(line) }
            return 0
        }
        var text = report.errors.map { $0.description + "\n" }.joined()
        text += "\(daemon) check-config: \(report.errors.count) problem\(report.errors.count == 1 ? "" : "s")\n"
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        return 1
    }

    /// The effective settings as TOML, every key with its origin as a comment, then the notes as comments.
    static func report<Settings>(
        _ loaded: LoadedConfig<Settings>, _ schema: ConfigSchema<Settings>, notes: [String], errors: [ConfigError]
    ) -> Report {
        guard errors.isEmpty else { return Report(summary: [], errors: errors) }
        var lines = ["# \(schema.daemon) check-config: OK"]
        if let file = loaded.file {
            lines.append("# config file: \(file)")
        } else {
            lines.append("# config file: none (\(schema.defaultPath) does not exist): defaults and flags only")
        }
        var table: [String] = []
        let sorted = schema.keys.filter { $0.path.count == 1 } + schema.keys.filter { $0.path.count > 1 }
        let width = schema.keys.map { $0.name.count }.max() ?? 0
        for key in sorted {
            let parent = Array(key.path.dropLast())
            if parent != table {
                lines.append("")
                lines.append("[\(TOMLDocument.name(of: parent))]")
                table = parent
            }
            let origin: String
            switch loaded.origin(of: key.name) {
            case .file(let line): origin = "line \(line)"
            case .flag(let flag): origin = flag
            case .defaultValue: origin = "default"
            }
            let assignment = "\(key.path.last ?? key.name) = \(key.format(loaded.settings))"
            let padding = String(repeating: " ", count: max(1, width + 24 - assignment.count))
            lines.append(assignment + padding + "# " + origin)
        }
        lines.append("")
        lines += notes.map { "# " + $0 }
        return Report(summary: lines, errors: [])
    }
}
