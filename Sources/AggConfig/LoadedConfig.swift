/// A daemon's effective settings after the config file and the flags, with where each key's value came from, so
/// later checks (a key file that cannot be read, a name that does not resolve) can point at the right line.
public struct LoadedConfig<Settings> {
    /// Where one key's value came from.
    public enum Origin: Equatable, Sendable {
        case file(line: Int)
        case flag(String)
        case defaultValue
    }

    public var settings: Settings
    /// The config file read, if any.
    public var file: String?
    /// The daemon's name, to place errors that belong to no file.
    public var daemon: String
    /// Origin by key name; a key missing here has its default value.
    public var origins: [String: Origin]

    /// Where `key`'s value came from.
    public func origin(of key: String) -> Origin { origins[key] ?? .defaultValue }

    /// An error about `key`'s value, placed at its line, its flag, or (for a default) the file or the daemon.
    public func error(_ key: String, _ message: String) -> ConfigError {
        switch origin(of: key) {
        case .file(let line): return ConfigError(path: file ?? daemon, line: line, "\(key): \(message)")
        case .flag(let flag): return ConfigError(path: "command line", "\(flag): \(message)")
        case .defaultValue: return ConfigError(path: file ?? daemon, "\(key) (default): \(message)")
        }
    }
}

/// Several configuration problems, reported together so one run of `check-config` shows them all.
public struct ConfigErrorList: Error, Equatable, Sendable, CustomStringConvertible {
    public var errors: [ConfigError]

    public init(_ errors: [ConfigError]) { self.errors = errors }

    /// One problem per line.
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
