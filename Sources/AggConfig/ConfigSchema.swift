/// Everything the loader knows about one daemon's config file: its keys, where the file is by default, and the
/// checks that span several keys (a required setting, two limits that must agree).
public struct ConfigSchema<Settings> {
    /// `aggclient` or `aggserver`, for messages.
    public let daemon: String
    /// Read when no `--config` is given, and only if it exists.
    public let defaultPath: String
    public let defaults: Settings
    public let keys: [ConfigKey<Settings>]
    /// The other daemon's keys, so a server key in a client file gets a precise error.
    public let otherDaemon: (name: String, keys: [String])
    /// Problems of the settings as a whole: the key to blame and the message.
    let validate: (Settings) -> [(key: String, message: String)]

    public init(
        daemon: String, defaultPath: String, defaults: Settings, keys: [ConfigKey<Settings>],
        otherDaemon: (name: String, keys: [String]), validate: @escaping (Settings) -> [(key: String, message: String)]
    ) {
        self.daemon = daemon
        self.defaultPath = defaultPath
        self.defaults = defaults
        self.keys = keys
        self.otherDaemon = otherDaemon
        self.validate = validate
    }

    /// The key named `name`.
    public func key(_ name: String) -> ConfigKey<Settings>? {
        keys.first { $0.name == name }
    }

    /// The tables keys live in (`limits`).
    public var tables: Set<[String]> {
        Set(keys.flatMap { key in (1..<max(key.path.count, 1)).map { Array(key.path.prefix($0)) } })
    }
}
