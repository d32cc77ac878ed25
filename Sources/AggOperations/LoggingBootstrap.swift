import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Sets up swift-log once per daemon: the journal with structured fields when systemd connected stderr to it, plain
/// lines on stderr otherwise.
public enum LoggingBootstrap {
    /// Where log records go.
    public enum Destination: Sendable, Equatable {
        /// The journal when stderr is the journal stream systemd set up (`JOURNAL_STREAM`), else stderr.
        case automatic
        /// Always the journal (its native protocol); lines go to stderr only if journald cannot be reached.
        case journal
        /// Always plain lines on stderr.
        case standardError
    }

    /// Bootstraps `LoggingSystem` (callable once per process). `identifier` names the program in the journal
    /// (`SYSLOG_IDENTIFIER`, e.g. "aggclient"); each logger's own label goes into `LOGGER`.
    public static func bootstrap(
        label identifier: String, destination: Destination = .automatic, logLevel: Logger.Level = .info,
        metadataProvider: Logger.MetadataProvider? = nil
    ) {
        let useJournal = usesJournal(destination)
        LoggingSystem.bootstrap(
            { label, provider in
                makeHandler(
                    label: label, identifier: identifier, journal: useJournal, logLevel: logLevel,
                    metadataProvider: provider)
            }, metadataProvider: metadataProvider)
    }

    /// The handler `bootstrap` installs for a logger labelled `label`.
    public static func makeHandler(
        label: String, identifier: String, journal: Bool, logLevel: Logger.Level,
        metadataProvider: Logger.MetadataProvider?
    ) -> any LogHandler {
        if journal {
            return JournalLogHandler(
                label: label, identifier: identifier, logLevel: logLevel, metadataProvider: metadataProvider
            )
        }
        var handler = StreamLogHandler.standardError(label: label, metadataProvider: metadataProvider)
        handler.logLevel = logLevel
        return handler
    }

    /// Whether `destination` means the journal in this process.
    public static func usesJournal(_ destination: Destination) -> Bool {
        switch destination {
        case .journal: return true
        case .standardError: return false
        case .automatic:
            guard let stream = getenv("JOURNAL_STREAM") else { return false }
            var info = stat()
            guard fstat(STDERR_FILENO, &info) == 0 else { return false }
            return isJournalStream(
                String(cString: stream), device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        }
    }

    /// True when `JOURNAL_STREAM` (`DEVICE:INODE`, both decimal) names the file stderr is (its `st_dev` and
    /// `st_ino`). systemd.exec(5): the variable alone does not prove stderr still goes to the journal, since a
    /// child may have redirected it; comparing the pair does.
    public static func isJournalStream(_ value: String, device: UInt64, inode: UInt64) -> Bool {
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let streamDevice = UInt64(parts[0]), let streamInode = UInt64(parts[1])
        else {
            return false
        }
        return streamDevice == device && streamInode == inode
    }
}
