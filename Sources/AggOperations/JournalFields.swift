import Logging

/// Turns one log record into journald's native fields (systemd.journal-fields(7)): `MESSAGE`, `PRIORITY`, the code
/// location, the identifier, and every metadata key as a field of its own, so `journalctl ASSOCIATION=3` finds it.
enum JournalFields {
    /// Fields the handler writes itself; a metadata key that maps onto one of them gets the `META_` prefix instead of
    /// overriding it.
    static let reserved: Set<String> = [
        "MESSAGE", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "SYSLOG_IDENTIFIER", "LOGGER",
        "SOURCE",
    ]
    /// journald refuses longer field names.
    static let maxNameLength = 64

    /// syslog(3) priorities: 7 debug … 2 critical.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace: return 7
        case .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// The journal field for a metadata key: ASCII letters upper-cased, digits kept, anything else `_`; leading
    /// underscores dropped (journald keeps those names for the fields it adds itself, like `_PID`); `META_` in front
    /// of a name that would start with a digit, be empty or clash with a `reserved` field; at most 64 characters.
    static func fieldName(forMetadataKey key: String) -> String {
        var name = String(
            decoding: key.utf8.map { byte -> UInt8 in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"): return byte - 32
                case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                    return byte
                default: return UInt8(ascii: "_")
                }
            }, as: UTF8.self)
        while name.hasPrefix("_") { name.removeFirst() }
        if name.isEmpty || name.first!.isNumber || reserved.contains(name) { name = "META_" + name }
        return String(name.prefix(maxNameLength))
    }

    /// Every field of one record, in order: the handler's own, then the metadata sorted by field name (later keys
    /// win when two map to the same field).
    static func fields(
        event: LogEvent, metadata: Logger.Metadata, label: String, identifier: String
    ) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = [
            ("MESSAGE", event.message.description),
            ("PRIORITY", String(priority(event.level))),
            ("SYSLOG_IDENTIFIER", identifier),
            ("LOGGER", label),
            ("SOURCE", event.source),
            ("CODE_FILE", event.file),
            ("CODE_LINE", String(event.line)),
            ("CODE_FUNC", event.function),
        ]
        var byName: [String: String] = [:]
        for key in metadata.keys.sorted() {
            byName[fieldName(forMetadataKey: key)] = metadata[key]!.description
        }
        for name in byName.keys.sorted() {
            fields.append((name, byName[name]!))
        }
        return fields
    }

    /// One journal entry in journald's native protocol (systemd-journald.service(8)): `NAME=value\n` per field, or,
    /// for a value holding a newline, `NAME\n`, its length as 64-bit little-endian, the value and `\n`. Values may
    /// hold any byte.
    static func encode(_ fields: [(name: String, value: String)]) -> [UInt8] {
        var bytes: [UInt8] = []
        for field in fields {
            let value = Array(field.value.utf8)
            bytes.append(contentsOf: field.name.utf8)
            if value.contains(UInt8(ascii: "\n")) {
                bytes.append(UInt8(ascii: "\n"))
                withUnsafeBytes(of: UInt64(value.count).littleEndian) { bytes.append(contentsOf: $0) }
            } else {
                bytes.append(UInt8(ascii: "="))
            }
            bytes.append(contentsOf: value)
            bytes.append(UInt8(ascii: "\n"))
        }
        return bytes
    }
}
