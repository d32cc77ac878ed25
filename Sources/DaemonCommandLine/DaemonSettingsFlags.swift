import AggConfig
import AggOperations
import ArgumentParser

/// A daemon's settings flags, which its `run` (`serve`) and `check-config` both take: the config file and the flags
/// over it, each named after the config key it overrides.
public protocol DaemonSettingsFlags: ParsableArguments {
    associatedtype Settings: DaemonSettings
    /// What `check-config --help` says it checks.
    static var checkConfigAbstract: String { get }
    /// `--config`: the TOML file (nil: the daemon's default file, if it exists).
    var config: String? { get }
    /// The flags given, by config key.
    var overrides: ConfigOverrides { get }
}

extension DaemonSettingsFlags {
    /// `run`'s first step in both daemons: the settings from the config file under the flags, and logging set up at
    /// the level they ask for.
    public func loadSettings() throws -> Settings {
        let schema = Settings.configSchema
        let settings = try ConfigFile.load(schema, path: config, overrides: overrides).settings
        LoggingBootstrap.bootstrap(label: schema.daemon, logLevel: settings.verbose ? .debug : .info)
        return settings
    }
}

/// `check-config` of either daemon: prints the effective settings, or every problem found and exits non-zero.
public struct CheckConfigCommand<Flags: DaemonSettingsFlags>: ParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "check-config", abstract: Flags.checkConfigAbstract)
    }

    @OptionGroup public var options: Flags

    public init() {}

    public func run() throws {
        let report = Flags.Settings.check(path: options.config, overrides: options.overrides)
        let code = ConfigCheck.print(report, daemon: Flags.Settings.configSchema.daemon)
        if code != 0 { throw ExitCode(code) }
    }
}
