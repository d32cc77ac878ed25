/// What the command lines of aggclient and aggserver need of either daemon's settings: how to load them, how to
/// check them, and the log level they ask for.
public protocol DaemonSettings: Sendable {
    /// The config file's keys, defaults and the checks that span keys.
    static var configSchema: ConfigSchema<Self> { get }
    /// `check-config`: the settings from the file at `path` (or the default file) and the flags, checked as the
    /// daemon would check them at start.
    static func check(path: String?, overrides: ConfigOverrides) -> ConfigCheck.Report
    /// Log every association and stream (debug level).
    var verbose: Bool { get }
}

extension ClientSettings: DaemonSettings {
    public static func check(path: String?, overrides: ConfigOverrides) -> ConfigCheck.Report {
        ConfigCheck.client(path: path, overrides: overrides)
    }
}

extension ServerSettings: DaemonSettings {
    public static func check(path: String?, overrides: ConfigOverrides) -> ConfigCheck.Report {
        ConfigCheck.server(path: path, overrides: overrides)
    }
}
