import Logging
import Testing

@testable import AggOperations

extension OperationsTests {
    /// The journal's field encoding and the choice between journal and stderr; nothing is sent to a real journald.
    @Suite struct JournalLogHandlerTests {
        static func event(
            _ level: Logger.Level, _ message: Logger.Message, metadata: Logger.Metadata? = nil
        ) -> LogEvent {
            LogEvent(
                level: level, message: message, metadata: metadata, source: "Proxy",
                file: "Proxy/Driver.swift",
                function: "run()", line: 42)
        }

        @Test func metadataKeysBecomeUppercaseJournalFieldNames() {
            #expect(JournalFields.fieldName(forMetadataKey: "association") == "ASSOCIATION")
            #expect(JournalFields.fieldName(forMetadataKey: "path") == "PATH")
            #expect(JournalFields.fieldName(forMetadataKey: "stream") == "STREAM")
            #expect(JournalFields.fieldName(forMetadataKey: "peer.address") == "PEER_ADDRESS")
            #expect(JournalFields.fieldName(forMetadataKey: "path-id2") == "PATH_ID2")
            #expect(JournalFields.fieldName(forMetadataKey: "clé") == "CL__")
        }

        @Test func keysThatWouldBeTrustedInvalidOrReservedGetAPrefix() {
            #expect(JournalFields.fieldName(forMetadataKey: "_pid") == "PID")  // journald owns _PID.
            #expect(JournalFields.fieldName(forMetadataKey: "__uid") == "UID")
            #expect(JournalFields.fieldName(forMetadataKey: "2nd") == "META_2ND")
            #expect(JournalFields.fieldName(forMetadataKey: "") == "META_")
            #expect(JournalFields.fieldName(forMetadataKey: "___") == "META_")
            #expect(JournalFields.fieldName(forMetadataKey: "message") == "META_MESSAGE")
            #expect(JournalFields.fieldName(forMetadataKey: "priority") == "META_PRIORITY")
            let long = String(repeating: "a", count: 100)
            #expect(JournalFields.fieldName(forMetadataKey: long) == String(repeating: "A", count: 64))
        }

        @Test func levelsMapToSyslogPriorities() {
            let levels: [Logger.Level] = [.trace, .debug, .info, .notice, .warning, .error, .critical]
            #expect(levels.map(JournalFields.priority) == [7, 7, 6, 5, 4, 3, 2])
        }

        @Test func aRecordBecomesMessagePriorityLocationAndOneFieldPerMetadataKey() {
            let fields = JournalFields.fields(
                event: Self.event(.warning, "path failed", metadata: ["path": "2", "association": "7"]),
                metadata: ["path": "2", "association": "7", "stream": .stringConvertible(5)],
                label: "agg.transport", identifier: "aggclient")
            #expect(
                fields.map(\.name) == [
                    "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "LOGGER", "SOURCE", "CODE_FILE", "CODE_LINE",
                    "CODE_FUNC",
                    "ASSOCIATION", "PATH", "STREAM",
                ])
            #expect(
                fields.map(\.value) == [
                    "path failed", "4", "aggclient", "agg.transport", "Proxy", "Proxy/Driver.swift", "42",
                    "run()", "7", "2",
                    "5",
                ])
        }

        @Test func fieldsAreEncodedInTheNativeProtocolWithBinarySafeMultilineValues() throws {
            let bytes = JournalFields.encode([
                ("MESSAGE", "two\nlines"), ("PRIORITY", "6"), ("EMPTY", ""),
            ])
            var expected = Array("MESSAGE\n".utf8)
            expected += [9, 0, 0, 0, 0, 0, 0, 0]
            expected += Array("two\nlines\nPRIORITY=6\nEMPTY=\n".utf8)
            #expect(bytes == expected)
            #expect(try Self.decodeNative(bytes) == ["MESSAGE": "two\nlines", "PRIORITY": "6", "EMPTY": ""])
        }

        @Test func aRecordReachesAJournalSocketAsOneNativeDatagram() throws {
            let socket = try FakeNotifySocket()
            let handler = JournalLogHandler(label: "agg.test", identifier: "aggclient", socketPath: socket.address)
            Logger(label: "agg.test", factory: { _ in handler }).warning(
                "path failed", metadata: ["path": "2", "reason": "one\ntwo"])
            let datagram = try #require(socket.receiveBytes())
            let fields = try Self.decodeNative(datagram)
            #expect(fields["MESSAGE"] == "path failed")
            #expect(fields["PRIORITY"] == "4")
            #expect(fields["SYSLOG_IDENTIFIER"] == "aggclient")
            #expect(fields["PATH"] == "2")
            #expect(fields["REASON"] == "one\ntwo")
        }

        /// Parses journald's native protocol the way journald does, so the encoder is checked against the format,
        /// not against itself.
        static func decodeNative(_ bytes: [UInt8]) throws -> [String: String] {
            struct Malformed: Error {}
            var fields: [String: String] = [:]
            var index = 0
            while index < bytes.count {
                guard let end = bytes[index...].firstIndex(where: { $0 == UInt8(ascii: "=") || $0 == 10 }) else {
                    throw Malformed()
                }
                let name = String(decoding: bytes[index..<end], as: UTF8.self)
                if bytes[end] == UInt8(ascii: "=") {
                    guard let newline = bytes[(end + 1)...].firstIndex(of: 10) else { throw Malformed() }
                    fields[name] = String(decoding: bytes[(end + 1)..<newline], as: UTF8.self)
                    index = newline + 1
                } else {
                    guard end + 9 <= bytes.count else { throw Malformed() }
                    let length = bytes[(end + 1)..<(end + 9)].reversed().reduce(0) { $0 << 8 | Int($1) }
                    let start = end + 9
                    guard start + length < bytes.count, bytes[start + length] == 10 else { throw Malformed() }
                    fields[name] = String(decoding: bytes[start..<(start + length)], as: UTF8.self)
                    index = start + length + 1
                }
            }
            return fields
        }

        @Test func recordMetadataOverridesProviderAndHandlerMetadata() {
            var handler = JournalLogHandler(
                label: "agg", identifier: "aggserver",
                metadataProvider: Logger.MetadataProvider { ["path": "provider", "stream": "provider"] })
            handler[metadataKey: "path"] = "handler"
            handler[metadataKey: "association"] = "handler"
            let merged = handler.mergedMetadata(["stream": "record"])
            #expect(merged == ["path": "provider", "association": "handler", "stream": "record"])
        }

        @Test func journalStreamMustNameTheFileStderrIs() {
            #expect(LoggingBootstrap.isJournalStream("8:12345", device: 8, inode: 12345))
            #expect(!LoggingBootstrap.isJournalStream("8:12345", device: 8, inode: 12346))
            #expect(!LoggingBootstrap.isJournalStream("9:12345", device: 8, inode: 12345))
            #expect(!LoggingBootstrap.isJournalStream("8", device: 8, inode: 0))
            #expect(!LoggingBootstrap.isJournalStream("", device: 0, inode: 0))
            #expect(!LoggingBootstrap.isJournalStream("a:b", device: 0, inode: 0))
        }

        @Test func explicitDestinationsPickTheirHandler() {
            #expect(LoggingBootstrap.usesJournal(.journal))
            #expect(!LoggingBootstrap.usesJournal(.standardError))
            let journal = LoggingBootstrap.makeHandler(
                label: "agg", identifier: "aggclient", journal: true, logLevel: .debug,
                metadataProvider: nil)
            #expect(journal is JournalLogHandler)
            #expect(journal.logLevel == .debug)
            let plain = LoggingBootstrap.makeHandler(
                label: "agg", identifier: "aggclient", journal: false, logLevel: .notice,
                metadataProvider: nil)
            #expect(plain is StreamLogHandler)
            #expect(plain.logLevel == .notice)
        }
    }
}
