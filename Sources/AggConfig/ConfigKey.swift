/// One setting of a daemon's config file: its key, the field of the settings it fills and how its value is read.
/// The command-line flag that overrides it is `--` and the key's last component (`--psk-file` for `psk-file`).
public struct ConfigKey<Settings> {
    /// The key as a file writes it, dotted for tables: `server`, `limits.stream-credit`.
    public let name: String
    /// What a value must look like, for errors and the example files.
    public let expected: String
    let readTOML: (inout Settings, TOMLValue) throws -> Void
    let readFlag: (inout Settings, [String]) throws -> Void
    let format: (Settings) -> String

    public init<Value>(_ name: String, _ field: WritableKeyPath<Settings, Value>, _ type: ConfigType<Value>) {
        self.name = name
        expected = type.expected
        readTOML = { settings, value in settings[keyPath: field] = try type.fromTOML(value) }
        readFlag = { settings, arguments in settings[keyPath: field] = try type.fromFlag(arguments) }
        format = { settings in type.format(settings[keyPath: field]) }
    }

    /// The key's components: `["limits", "stream-credit"]`.
    public var path: [String] { name.split(separator: ".").map(String.init) }

    /// The flag that overrides the key.
    public var flag: String { "--" + (path.last ?? name) }
}
