#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Loads a daemon's settings: the defaults, then the TOML config file, then the command-line flags over it.
/// Every problem names the file and line (or the flag) and the key, and says what was expected; unknown keys are
/// errors, so a typo never goes unnoticed.
public enum ConfigFile {
    /// Loads with the file at `path` (`--config`), or the schema's default path if it exists, or no file.
    public static func load<Settings>(
        _ schema: ConfigSchema<Settings>, path: String?, overrides: ConfigOverrides
    ) throws(ConfigErrorList) -> LoadedConfig<Settings> {
        guard let file = path ?? (access(schema.defaultPath, F_OK) == 0 ? schema.defaultPath : nil) else {
            return try load(schema, text: nil, path: nil, overrides: overrides)
        }
        let text: String
        do {
            text = try read(file)
        } catch {
            throw ConfigErrorList([error])
        }
        return try load(schema, text: text, path: file, overrides: overrides)
    }

    /// Loads from `text` (the file's contents, read from `path`), or from no file when `text` is nil.
    public static func load<Settings>(
        _ schema: ConfigSchema<Settings>, text: String?, path: String?, overrides: ConfigOverrides
    ) throws(ConfigErrorList) -> LoadedConfig<Settings> {
        var loaded = LoadedConfig(settings: schema.defaults, file: path, daemon: schema.daemon, origins: [:])
        var errors: [ConfigError] = []
        if let text, let path {
            do {
                let document = try TOMLDocument(parsing: text, path: path)
                errors += apply(document, schema, to: &loaded)
            } catch {
                throw ConfigErrorList([error])
            }
        }
        for (name, arguments) in overrides.values {
            guard let key = schema.key(name) else {
                errors.append(ConfigError(path: "command line", "--\(name) sets no \(schema.daemon) setting"))
                continue
            }
            do {
                try key.readFlag(&loaded.settings, arguments)
                loaded.origins[key.name] = .flag(key.flag)
            } catch {
                errors.append(ConfigError(path: "command line", "\(key.flag): \(error)"))
            }
        }
        guard errors.isEmpty else { throw ConfigErrorList(errors) }
        let problems = schema.validate(loaded.settings).map { problem in
            loaded.origin(of: problem.key) == .defaultValue
                ? ConfigError(path: path ?? schema.daemon, problem.message) : loaded.error(problem.key, problem.message)
        }
        guard problems.isEmpty else { throw ConfigErrorList(problems) }
        return loaded
    }

    /// Applies every entry of `document`; returns the problems (unknown keys and tables, wrong values).
    static func apply<Settings>(
        _ document: TOMLDocument, _ schema: ConfigSchema<Settings>, to loaded: inout LoadedConfig<Settings>
    ) -> [ConfigError] {
        var errors: [ConfigError] = []
        let tables = schema.tables
        for (table, line) in document.tables where !tables.contains(table) {
            let name = TOMLDocument.name(of: table)
            let known = tables.map { "[\(TOMLDocument.name(of: $0))]" }.sorted().joined(separator: ", ")
            errors.append(
                ConfigError(path: document.path, line: line, "unknown table [\(name)] (\(schema.daemon) has \(known))"))
        }
        for entry in document.entries {
            guard let key = schema.keys.first(where: { $0.path == entry.key }) else {
                // Keys inside an unknown table were reported with the table.
                if let header = document.tables.last(where: { entry.key.starts(with: $0.key) }),
                    !tables.contains(header.key)
                {
                    continue
                }
                errors.append(ConfigError(path: document.path, line: entry.line, unknownKey(entry, schema)))
                continue
            }
            do {
                try key.readTOML(&loaded.settings, entry.value)
                loaded.origins[key.name] = .file(line: entry.line)
            } catch let error as ConfigValueError {
                errors.append(
                    ConfigError(path: document.path, line: error.line ?? entry.line, "\(key.name): \(error.message)"))
            } catch {
                errors.append(ConfigError(path: document.path, line: entry.line, "\(key.name): \(error)"))
            }
        }
        return errors
    }

    /// Why `entry` is not a key, with the likely intended one.
    static func unknownKey<Settings>(_ entry: TOMLDocument.Entry, _ schema: ConfigSchema<Settings>) -> String {
        let name = entry.name
        if schema.tables.contains(entry.key) {
            return "\(name) is a table: write [\(name)] and the keys under it"
        }
        if schema.otherDaemon.keys.contains(name) {
            return "\(name) is an \(schema.otherDaemon.name) setting, not an \(schema.daemon) one"
        }
        var message = "unknown key \(name)"
        let closest = schema.keys.map { ($0.name, editDistance($0.name, name)) }.min { $0.1 < $1.1 }
        if let (suggestion, distance) = closest, distance <= max(2, name.count / 4) {
            message += " (did you mean \(suggestion)?)"
        } else {
            message += " (\(schema.daemon)'s keys: \(schema.keys.map(\.name).joined(separator: ", ")))"
        }
        return message
    }

    /// Levenshtein distance, for "did you mean".
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    /// The text of the file at `path`.
    public static func read(_ path: String) throws(ConfigError) -> String {
        guard let bytes = KeyFile.readBytes(path) else {
            throw ConfigError(path: path, "cannot read the config file: \(String(cString: strerror(errno)))")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError(path: path, "the config file is not valid UTF-8")
        }
        return text
    }
}
