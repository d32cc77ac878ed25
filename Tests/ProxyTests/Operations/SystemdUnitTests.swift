import AggConfig
import Foundation
import Testing

extension OperationsTests {
    /// `systemd-analyze verify` over deploy/systemd. It fails, never skips, when systemd-analyze is missing: CI
    /// installs the `systemd` package for it.
    ///
    /// verify also checks that every ExecStart= binary exists and is executable, and /usr/local/bin/aggclient is not
    /// installed where tests run. Rather than filter its messages (whose wording changes between systemd releases),
    /// the test verifies copies of the units in which only the `/usr/local/bin/` prefix points at stub executables in a
    /// temporary directory; every other line is checked as written, and verify must exit 0 with nothing to say.
    @Suite struct SystemdUnitTests {
        static let deployDirectory = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // Operations
            .deletingLastPathComponent()  // ProxyTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // repository
            .appendingPathComponent("deploy/systemd")
        static let units = [
            "aggserver.service", "aggclient.service", "aggclient.socket", "aggclient-http.socket",
            "aggclient-transparent.socket",
        ]

        @Test func unitsPassSystemdAnalyzeVerify() throws {
            let result = try Self.verifyCopies()
            #expect(result.status == 0, "systemd-analyze verify failed:\n\(result.output)")
            #expect(result.output.isEmpty, "systemd-analyze verify complained:\n\(result.output)")
        }

        @Test func verifyCatchesABrokenUnit() throws {
            // The check above only means something if verify looks at what we give it.
            let result = try Self.verifyCopies { name, text in
                name == "aggclient.service"
                    ? text.replacingOccurrences(of: "WatchdogSec=30", with: "WatchdogSec=soon")
                        + "\n[Service]\nExecStart=relative/path\n" : text
            }
            #expect(result.status != 0)
            #expect(result.output.contains("aggclient.service"))
        }

        @Test func clientListenersAreNamedForAdoption() throws {
            let socks = try String(
                contentsOf: Self.deployDirectory.appendingPathComponent("aggclient.socket"), encoding: .utf8
            )
            let http = try String(
                contentsOf: Self.deployDirectory.appendingPathComponent("aggclient-http.socket"),
                encoding: .utf8)
            #expect(
                socks.contains("ListenStream=127.0.0.1:1080\n")
                    && socks.contains("FileDescriptorName=socks\n"))
            #expect(
                http.contains("ListenStream=127.0.0.1:8080\n") && http.contains("FileDescriptorName=http\n")
            )
            // Router mode's listener: adopted by name, IP_TRANSPARENT set by systemd, and never started with every
            // client (aggclient.service's Sockets= would start it).
            let transparent = try String(
                contentsOf: Self.deployDirectory.appendingPathComponent("aggclient-transparent.socket"),
                encoding: .utf8)
            for line in ["FileDescriptorName=transparent", "Transparent=yes", "Service=aggclient.service"] {
                #expect(transparent.contains("\n\(line)\n"), "aggclient-transparent.socket lacks \(line)")
            }
            let client = try String(
                contentsOf: Self.deployDirectory.appendingPathComponent("aggclient.service"), encoding: .utf8)
            #expect(!client.contains("Sockets=aggclient.socket aggclient-http.socket aggclient-transparent"))
            for unit in ["aggserver.service", "aggclient.service"] {
                let text = try String(
                    contentsOf: Self.deployDirectory.appendingPathComponent(unit), encoding: .utf8)
                for line in [
                    "Type=notify", "NotifyAccess=main", "WatchdogSec=30",
                    "ExecReload=/bin/kill -HUP $MAINPID",
                    "CapabilityBoundingSet=", "NoNewPrivileges=yes", "ProtectSystem=strict",
                ] {
                    #expect(text.contains("\n\(line)\n"), "\(unit) lacks \(line)")
                }
            }
        }

        /// `systemctl reload aggserver` must re-read the key file an operator edits: a unit that hands the daemon a
        /// copy (`LoadCredential=`, copied once at start) leaves a deleted key valid after the reload. The server runs
        /// as a static user that reads /etc/agg/server.keys through its group; the client keeps its dynamic user.
        @Test func theServerReadsTheKeyFileItselfSoAReloadRevokes() throws {
            let server = try String(
                contentsOf: Self.deployDirectory.appendingPathComponent("aggserver.service"), encoding: .utf8)
            let lines = server.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#") }
            #expect(!lines.contains { $0.hasPrefix("LoadCredential") || $0.hasPrefix("DynamicUser=yes") })
            #expect(lines.contains("User=aggserver") && lines.contains("Group=aggserver"))
            let start = try #require(lines.first { $0.hasPrefix("ExecStart=") })
            #expect(!start.contains("--psk-file") && !start.contains("CREDENTIALS_DIRECTORY"))
            #expect(ServerSettings().pskFile == "/etc/agg/server.keys")
            let client = try String(
                contentsOf: Self.deployDirectory.appendingPathComponent("aggclient.service"), encoding: .utf8)
            #expect(client.contains("\nDynamicUser=yes\n"))
        }

        // MARK: - Helpers

        /// Runs verify on copies of the units, each first passed through `edit(name, text)`.
        static func verifyCopies(
            edit: (String, String) -> String = { _, text in text }
        ) throws -> (
            status: Int32, output: String
        ) {
            let analyze = try #require(
                ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first {
                    FileManager.default.isExecutableFile(atPath: $0)
                },
                "systemd-analyze is missing: install the Debian package `systemd`")
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
                "agg-units-\(UUID().uuidString)")
            let bin = scratch.appendingPathComponent("bin")
            try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: scratch) }
            for binary in ["aggserver", "aggclient"] {
                let stub = bin.appendingPathComponent(binary)
                try "#!/bin/sh\nexit 0\n".write(to: stub, atomically: true, encoding: .utf8)
                try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: stub.path)
            }
            var paths: [String] = []
            for unit in units {
                let original = try String(
                    contentsOf: deployDirectory.appendingPathComponent(unit), encoding: .utf8)
                let copy = scratch.appendingPathComponent(unit)
                try edit(unit, original.replacingOccurrences(of: "/usr/local/bin/", with: bin.path + "/"))
                    .write(to: copy, atomically: true, encoding: .utf8)
                paths.append(copy.path)
            }

            let process = Process()
            process.executableURL = URL(fileURLWithPath: analyze)
            process.arguments = ["verify", "--man=no"] + paths
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: output, as: UTF8.self))
        }
    }
}
