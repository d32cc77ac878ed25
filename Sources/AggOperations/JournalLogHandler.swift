import CSystemd
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A swift-log handler that writes each record to the systemd journal with structured fields, as one datagram of
/// journald's native protocol: `MESSAGE`, `PRIORITY` from the level, and one field per metadata key (`association` →
/// `ASSOCIATION`).
public struct JournalLogHandler: LogHandler {
    /// journald's socket for native entries.
    public static let defaultSocketPath = "/run/systemd/journal/socket"

    /// The logger's label (`agg.transport`), written as `LOGGER`.
    public let label: String
    /// The program's name, written as `SYSLOG_IDENTIFIER` (`journalctl -t aggclient`).
    public let identifier: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    /// Where entries go (tests pass their own socket).
    let socketPath: String

    public init(
        label: String, identifier: String, logLevel: Logger.Level = .info,
        metadataProvider: Logger.MetadataProvider? = nil, socketPath: String = JournalLogHandler.defaultSocketPath
    ) {
        self.socketPath = socketPath
        self.label = label
        self.identifier = identifier
        self.logLevel = logLevel
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let fields = JournalFields.fields(
            event: event, metadata: mergedMetadata(event.metadata), label: label, identifier: identifier)
        let result = Self.send(fields, to: socketPath)
        if result < 0 {
            // No journald (or its socket is gone): keep the line rather than lose it.
            let reason = String(cString: strerror(-result))
            let line = "\(identifier)[\(label)] \(event.level): \(event.message) (journal: \(reason))\n"
            _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
        }
    }

    /// Handler metadata, then the provider's, then the record's; later ones win.
    func mergedMetadata(_ recordMetadata: Logger.Metadata?) -> Logger.Metadata {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let recordMetadata { merged.merge(recordMetadata) { $1 } }
        return merged
    }

    /// Hands `fields` to journald; 0, or a negative errno.
    static func send(_ fields: [(name: String, value: String)], to socketPath: String) -> CInt {
        let entry = JournalFields.encode(fields)
        return entry.withUnsafeBytes { csystemd_journal_send_to(socketPath, $0.baseAddress, $0.count) }
    }
}
