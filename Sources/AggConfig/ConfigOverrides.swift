/// The command-line flags a user gave, by config key, to be applied over the config file's values. A flag that was
/// not given is not recorded, so the file's value (or the default) stays.
public struct ConfigOverrides: Sendable {
    /// Each given flag: the config key it overrides and its arguments (several for a repeated flag).
    public private(set) var values: [(key: String, arguments: [String])] = []

    public init() {}

    /// An option with one argument; nil means it was not given.
    public mutating func set(_ key: String, _ argument: String?) {
        if let argument { values.append((key, [argument])) }
    }

    /// A repeatable option; an empty list means it was not given.
    public mutating func set(_ key: String, _ arguments: [String]) {
        if !arguments.isEmpty { values.append((key, arguments)) }
    }

    /// A flag without argument; false means it was not given.
    public mutating func set(_ key: String, _ flag: Bool) {
        if flag { values.append((key, [])) }
    }

    /// An integer option; nil means it was not given.
    public mutating func set(_ key: String, _ number: Int?) {
        if let number { values.append((key, [String(number)])) }
    }
}
