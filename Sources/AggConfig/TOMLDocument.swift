/// A parsed TOML file, flattened: every key with its full dotted path (the `[table]` it sits in plus its own
/// dotted name), its value and its line, in file order.
///
/// It reads the subset agg's config files need: comments, bare and quoted keys, dotted keys, `[table]` headers,
/// basic strings with escapes, literal strings, integers (decimal, hex, octal, binary, with `_`), floats,
/// booleans, arrays (nested, over several lines, with comments and a trailing comma) and top-level arrays of
/// tables (`[[path]]`, one entry whose value is an array of `.table`s). Anything else of TOML 1.0 (multi-line
/// strings, inline tables, dates and times) is refused with an error that names the line, as is malformed
/// input. Errors are `ConfigError`s with the file's path and the line.
public struct TOMLDocument: Sendable {
    /// One `key = value` line.
    public struct Entry: Equatable, Sendable {
        /// The full path: table header components, then the key's own (dotted) components.
        public var key: [String]
        public var value: TOMLValue
        /// The line of the key (the value of a multi-line array starts on it too).
        public var line: Int { value.line }

        /// The key as written in a file: components joined with dots, quoted where they are not bare.
        public var name: String { TOMLDocument.name(of: key) }
    }

    /// The file's path, only for messages.
    public let path: String
    /// Every key and value, in the order of the file.
    public let entries: [Entry]
    /// Every `[table]` header, with its line, in the order of the file.
    public let tables: [(key: [String], line: Int)]

    /// Parses `text`; `path` names the file in errors.
    public init(parsing text: String, path: String) throws(ConfigError) {
        var parser = TOMLParser(text: text, path: path)
        try parser.parseDocument()
        self.path = path
        entries = parser.entries
        tables = parser.tableHeaders
    }

    /// The entry at `key`, if the file sets it.
    public func entry(_ key: [String]) -> Entry? {
        entries.first { $0.key == key }
    }

    /// A key path as TOML writes it: `limits.stream-credit`, `"odd key".x`.
    public static func name(of key: [String]) -> String {
        key.map { component in
            let isBare =
                !component.isEmpty
                && component.unicodeScalars.allSatisfy { scalar in
                    ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                        || scalar == "_" || scalar == "-"
                }
            return isBare ? component : TOMLValue.quoted(component)
        }.joined(separator: ".")
    }
}
