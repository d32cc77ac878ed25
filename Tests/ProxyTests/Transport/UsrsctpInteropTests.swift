import Foundation
import Testing

/// Runs `scripts/interop-usrsctp.sh` against the sctpcat built next to this test bundle: sctpcat's connect side
/// against usrsctp's echo_server (10 MiB, SHA-256), usrsctp's client against sctpcat's listen side, and PR-SCTP both
/// ways under packet loss (our FORWARD-TSN to usrsctp's discard_server, usrsctp tsctp's FORWARD-TSN to sctpcat), all
/// in a fresh network namespace. It fails, never skips, when usrsctp or root is missing: CI installs both.
@Suite struct UsrsctpInteropTests {
    @Test(.timeLimit(.minutes(3)))
    func sctpcatInteroperatesWithUsrsctp() throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let script = repository.appendingPathComponent("scripts/interop-usrsctp.sh")
        let binaries = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let sctpcat = binaries.appendingPathComponent("sctpcat")
        #expect(FileManager.default.isExecutableFile(atPath: sctpcat.path), "build sctpcat first: \(sctpcat.path)")

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script.path, sctpcat.path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "interop-usrsctp.sh failed:\n\(text)")
        #expect(text.contains("(a) 10 MiB echoed byte-exact"))
        #expect(text.contains("arrived intact at sctpcat --listen"))
        #expect(text.contains("(c) usrsctp discard_server accepted our FORWARD-TSN"))
        #expect(text.contains("(d) sctpcat accepted"))
    }
}
