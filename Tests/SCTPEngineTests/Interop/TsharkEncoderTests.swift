import Foundation
import NIOCore
import SCTPEngine
import SCTPSimulation
import Testing

/// Has tshark, an independent SCTP decoder, read every packet of `EncoderCatalog`: each must dissect as SCTP with a
/// correct CRC32c, show the chunk types we built, and raise no malformed-packet or error-level expert info.
///
/// tshark is required: without it the test fails rather than skips, so CI cannot pass by not having it
/// (Debian: `apt-get install tshark`).
extension Interop {
    @Suite("Interop: tshark reads our encoder")
    struct TsharkEncoderTests {
        /// Not 9899, so the test also checks that `-d udp.port==N,sctp` is honoured.
        static let udpPort: UInt16 = 19899

        @Test func tsharkDecodesEveryCatalogPacketCleanly() throws {
            let tshark = try Tshark.locate()
            let entries = EncoderCatalog.entries
            // AGG_ENCODER_CATALOG_PCAP keeps the capture at a chosen path (scripts/fuzz-corpus.sh seeds the fuzzer
            // from it); otherwise it goes to a temporary directory that is removed unless the test fails.
            let keepAt = ProcessInfo.processInfo.environment["AGG_ENCODER_CATALOG_PCAP"]
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "agg-interop-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let path = keepAt ?? directory.appendingPathComponent("encoder-catalog.pcap").path

            let writer = try PcapWriter(path: path)
            for (index, entry) in entries.enumerated() {
                let datagram = SCTPDatagram(
                    source: SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: 40000),
                    destination: SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 2), port: Self.udpPort),
                    payload: entry.bytes)
                writer.write(datagram, at: SCTPTime(nanoseconds: Int64(index) * 1_000_000))
            }
            try writer.close()
            #expect(writer.packetCount == entries.count)

            let arguments = ["-r", path, "-o", Tshark.crc32cPreference, "-d", "udp.port==\(Self.udpPort),sctp"]
            // Raw TSNs: tshark shows TSNs relative to the first it sees unless asked for the _raw field.
            let fieldNames = [
                "frame.number", "frame.protocols", "sctp.checksum.status", "sctp.chunk_type", "_ws.expert.severity",
                "_ws.expert.message", "_ws.malformed", "sctp.data_tsn_raw",
            ]
            let fields = try tshark.run(
                arguments + ["-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]
                    + fieldNames.flatMap { ["-e", $0] })
            let verbose = try tshark.run(arguments + ["-V"])

            var problems: [String] = []
            let rows = fields.split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false) }
            if rows.count != entries.count {
                problems.append("tshark listed \(rows.count) frames for \(entries.count) packets")
            }
            for (entry, row) in zip(entries, rows) {
                let context = "\(entry.name) (frame \(row.first ?? "?"))"
                guard row.count >= 8 else {
                    problems.append("\(context): unexpected tshark row \(row)")
                    continue
                }
                if !row[1].contains(":udp:sctp") {
                    problems.append("\(context): not dissected as SCTP over UDP: \(row[1])")
                }
                // sctp.checksum.status: 1 is good, 0 bad, 2 unverified.
                if row[2] != "1" { problems.append("\(context): checksum status \(row[2]), not good (1)") }
                let chunkTypes = row[3].split(separator: ",").compactMap { UInt8($0) }
                let builtTypes = Self.chunkTypesTsharkShows(entry.packet)
                if chunkTypes != builtTypes {
                    problems.append("\(context): tshark saw chunks \(chunkTypes), we built \(builtTypes)")
                }
                let tsns = row[7].split(separator: ",").compactMap { UInt32($0) }
                let builtTSNs = entry.packet.chunks.compactMap { chunk -> UInt32? in
                    // tshark puts the TSNs of DATA and I-DATA in the same field.
                    switch chunk {
                    case .data(let data): return data.tsn.rawValue
                    case .idata(let data): return data.tsn.rawValue
                    default: return nil
                    }
                }
                if tsns != builtTSNs {
                    problems.append("\(context): tshark read DATA TSNs \(tsns), we wrote \(builtTSNs)")
                }
                if !row[6].isEmpty { problems.append("\(context): tshark reports a malformed packet") }
                // Expert severities: 0x200000 chat, 0x400000 note, 0x600000 warning, 0x800000 error.
                let severities = row[4].split(separator: ",").compactMap { UInt32($0) }
                if severities.contains(where: { $0 >= 0x80_0000 }) {
                    problems.append("\(context): tshark reports errors: \(row[5])")
                }
            }
            if verbose.contains("Malformed") { problems.append("tshark -V mentions a malformed packet") }
            if verbose.contains("Expert Info (Error") { problems.append("tshark -V reports an expert error") }
            let good = verbose.components(separatedBy: "[Checksum Status: Good]").count - 1
            if good != entries.count {
                problems.append("tshark -V shows \(good) good checksums for \(entries.count) packets")
            }

            #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))\ncapture kept at \(path)")
            // Keep the capture on failure so it can be opened in Wireshark.
            if problems.isEmpty { try? FileManager.default.removeItem(at: directory) }
        }

        /// The chunk types tshark lists for a packet: each chunk's, followed by that of any chunk an Unrecognized Chunk
        /// Type cause quotes, which tshark dissects too.
        static func chunkTypesTsharkShows(_ packet: SCTPPacket) -> [UInt8] {
            packet.chunks.flatMap { chunk -> [UInt8] in
                let causes: [ErrorCause]
                switch chunk {
                case .abort(let abort): causes = abort.causes
                case .error(let error): causes = error.causes
                default: causes = []
                }
                let quoted = causes.compactMap { cause -> UInt8? in
                    guard case .unrecognizedChunkType(let bytes) = cause else { return nil }
                    return bytes.getInteger(at: bytes.readerIndex, as: UInt8.self)
                }
                return [chunk.type] + quoted
            }
        }

        /// The catalog must round-trip through our own decoder before tshark's opinion means anything.
        @Test func everyCatalogPacketRoundTripsThroughOurDecoder() throws {
            for entry in EncoderCatalog.entries {
                let bytes = entry.bytes
                let decoded = try SCTPPacket.decode(bytes)
                #expect(decoded.chunks == entry.packet.chunks, "\(entry.name) decodes to other chunks")
                #expect(decoded.header.verificationTag == entry.packet.header.verificationTag)
                #expect(decoded.encode() == bytes, "\(entry.name) re-encodes differently")
            }
        }
    }
}

/// Runs the tshark binary found on PATH.
struct Tshark {
    /// The preference that makes tshark verify CRC32c (tshark 4.0: `tshark -G defaultprefs | grep sctp.checksum`).
    static let crc32cPreference = "sctp.checksum:CRC 32c"

    let executable: URL

    /// Finds tshark on PATH or throws a message saying how to install it.
    static func locate() throws -> Tshark {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"] {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent("tshark")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return Tshark(executable: candidate) }
        }
        throw InteropError.toolMissing(
            "tshark is not installed, and this test needs it to check our encoder (Debian/Ubuntu: apt-get install tshark)"
        )
    }

    /// Runs tshark with `arguments` and returns its standard output; throws with stderr when it fails.
    func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        // No personal preferences or plugins: the result must not depend on who runs the test.
        var environment = ProcessInfo.processInfo.environment
        environment["WIRESHARK_CONFIG_DIR"] = FileManager.default.temporaryDirectory.path + "/agg-no-wireshark-config"
        process.environment = environment
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // Read before waiting, so a large output cannot fill the pipe and block tshark.
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        let errorData = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw InteropError.toolFailed(
                command: "tshark \(arguments.joined(separator: " "))", status: process.terminationStatus,
                output: String(decoding: errorData, as: UTF8.self))
        }
        return String(decoding: outputData, as: UTF8.self)
    }
}
