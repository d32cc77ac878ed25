import AggConfig
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The real binaries' `check-config` and `--config`: exit codes and messages for good and bad files, flags over
/// the file, and a daemon that starts from a config file alone.
@Suite("check-config and --config", .serialized, .timeLimit(.minutes(2)))
struct ConfigCommandTests {
    /// Runs `binary arguments...` to completion; its exit code, standard output and standard error.
    static func run(
        _ binary: String, _ arguments: [String], in directory: TemporaryDirectory
    ) throws -> (
        code: Int32?, output: String, errors: String
    ) {
        let runDirectory = directory.path + "/run-\(UUID().uuidString)"
        guard mkdir(runDirectory, 0o700) == 0 else { throw DaemonTestError("mkdir \(runDirectory)") }
        let process = try DaemonProcess(binary, arguments: arguments, environment: [:], directory: runDirectory)
        let code = process.waitForExit(within: 30)
        return (code, process.standardOutput, process.standardError)
    }

    static func write(_ text: String, to name: String, in directory: TemporaryDirectory) throws -> String {
        let path = directory.path + "/" + name
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    @Test func clientCheckConfigAcceptsAGoodFileAndPrintsTheEffectiveSettings() throws {
        let directory = try TemporaryDirectory()
        let key = try directory.makeKeyFile(name: "laptop")
        let config = try Self.write(
            """
            server = ["127.0.0.1:9899", "127.0.0.2"]
            path = ["127.0.0.1"]
            psk-file = "\(key)"
            [limits]
            stream-credit = "8MiB"
            """, to: "client.toml", in: directory)
        let result = try Self.run("aggclient", ["check-config", "--config", config, "--socks", "1081"], in: directory)
        #expect(result.code == 0, "\(result.errors)")
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(lines.first == "# aggclient check-config: OK")
        #expect(lines.contains("# config file: \(config)"))
        #expect(
            lines.contains {
                $0.hasPrefix("server = [\"127.0.0.1:9899\", \"127.0.0.2:9899\"]") && $0.hasSuffix("# line 1")
            })
        #expect(lines.contains { $0.hasPrefix("socks = \"127.0.0.1:1081\"") && $0.hasSuffix("# --socks") })
        #expect(lines.contains { $0.hasPrefix("http = \"127.0.0.1:8080\"") && $0.hasSuffix("# default") })
        #expect(lines.contains { $0.hasPrefix("stream-credit = \"8MiB\"") && $0.hasSuffix("# line 5") })
        #expect(lines.contains("# key \"laptop\" from \(key)"))
        #expect(lines.contains("# path 127.0.0.1 sends from 127.0.0.1"))
        #expect(result.errors.isEmpty)

        // The summary is itself a config file that yields the same settings.
        let summary = try Self.write(result.output, to: "summary.toml", in: directory)
        let reloaded = try ConfigFile.load(ClientSettings.configSchema, path: summary, overrides: ConfigOverrides())
        let original = try ConfigFile.load(
            ClientSettings.configSchema, path: config,
            overrides: {
                var overrides = ConfigOverrides()
                overrides.set("socks", "1081")
                return overrides
            }())
        #expect(reloaded.settings == original.settings)
    }

    @Test func clientCheckConfigReportsEveryProblemWithItsLineAndFails() throws {
        let directory = try TemporaryDirectory()
        let config = try Self.write(
            """
            server = ["127.0.0.1:9899"]
            sokcs = "127.0.0.1:1080"
            [limits]
            stream-idle-timeout = "forever"
            """, to: "bad.toml", in: directory)
        let result = try Self.run("aggclient", ["check-config", "--config", config], in: directory)
        #expect(result.code == 1)
        #expect(result.output.isEmpty)
        let lines = result.errors.split(separator: "\n").map(String.init)
        #expect(lines.contains("\(config):2: unknown key sokcs (did you mean socks?)"))
        #expect(
            lines.contains {
                $0.hasPrefix("\(config):4: limits.stream-idle-timeout: expected a positive duration")
                    && $0.hasSuffix("found \"forever\"")
            })
        #expect(lines.last == "aggclient check-config: 2 problems")
    }

    @Test func checkConfigChecksTheKeyFileAndThePaths() throws {
        let directory = try TemporaryDirectory()
        let key = try directory.makeKeyFile()
        chmod(key, 0o644)
        let config = try Self.write(
            "server = \"127.0.0.1\"\npsk-file = \"\(key)\"\npath = [\"127.0.0.1\", \"no-such-iface0\"]\n",
            to: "client.toml", in: directory)
        let result = try Self.run("aggclient", ["check-config", "--config", config], in: directory)
        #expect(result.code == 1)
        #expect(result.errors.contains("\(config):2: psk-file: \(key): key file is accessible by group or others"))
        #expect(
            result.errors.contains(
                "\(config):3: path: no-such-iface0: neither an IP address nor an interface"))

        let missing = try Self.run(
            "aggserver", ["check-config", "--config", config.replacingOccurrences(of: "client", with: "none")],
            in: directory)
        #expect(missing.code == 1)
        #expect(missing.errors.contains("none.toml: cannot read the config file: No such file or directory"))
    }

    /// check-config shows the port deny list and says which allow prefixes open nothing.
    @Test func serverCheckConfigShowsTheEgressPortsAndUselessAllowPrefixes() throws {
        let directory = try TemporaryDirectory()
        let key = try directory.makeKeyFile()
        let config = try Self.write("listen = \"127.0.0.1:0\"\n", to: "s.toml", in: directory)
        let defaults = try Self.run(
            "aggserver", ["check-config", "--config", config, "--psk-file", key], in: directory)
        #expect(defaults.code == 0, "\(defaults.errors)")
        #expect(defaults.output.contains("egress-deny-port = [25]"))
        #expect(defaults.output.contains("# egress refuses destination ports 25"))
        let opened = try Self.run(
            "aggserver",
            [
                "check-config", "--config", config, "--psk-file", key, "--egress-deny-port", "none",
                "--egress-allow", "0.0.0.0/0", "--egress-allow", "10.0.0.0/8",
            ],
            in: directory)
        #expect(opened.code == 0, "\(opened.errors)")
        #expect(opened.output.contains("egress-deny-port = []"))
        #expect(opened.output.contains("# egress allows every destination port"))
        #expect(opened.output.contains("# egress-allow 0.0.0.0/0 opens nothing"))
        #expect(!opened.output.contains("egress-allow 10.0.0.0/8 opens nothing"))
        let bad = try Self.run(
            "aggserver", ["check-config", "--config", config, "--psk-file", key, "--egress-deny-port", "smtp"],
            in: directory)
        #expect(bad.code == 1)
        #expect(bad.errors.contains("command line: --egress-deny-port: expected a port number from 1 to 65535"))
    }

    @Test func serverCheckConfigWithFlagsOnlyAndAMissingKeyFile() throws {
        let directory = try TemporaryDirectory()
        let key = try directory.makeKeyFile()
        let good = try Self.run(
            "aggserver",
            [
                "check-config", "--config", Self.write("", to: "empty.toml", in: directory), "--listen", "127.0.0.1:0",
                "--psk-file", key, "--egress-allow", "10.0.0.0/8",
            ],
            in: directory)
        #expect(good.code == 0, "\(good.errors)")
        #expect(good.output.contains("egress-allow = [\"10.0.0.0/8\"]"))
        #expect(good.output.contains("# 1 client key from \(key)"))

        let bad = try Self.run(
            "aggserver",
            [
                "check-config", "--config", Self.write("listen = \"127.0.0.1:0\"\n", to: "s.toml", in: directory),
                "--psk-file", directory.path + "/absent.keys", "--egress-allow", "10.0.0.0/33",
            ],
            in: directory)
        #expect(bad.code == 1)
        #expect(
            bad.errors.contains(
                "command line: --egress-allow: expected a CIDR prefix like \"10.0.0.0/8\", found \"10.0.0.0/33\""))
        let noKey = try Self.run(
            "aggserver",
            ["check-config", "--config", directory.path + "/s.toml", "--psk-file", directory.path + "/absent.keys"],
            in: directory)
        #expect(noKey.code == 1)
        #expect(
            noKey.errors.contains(
                "command line: --psk-file: \(directory.path)/absent.keys: cannot read key file: No such file or directory"
            ))
    }

    @Test func theDaemonsRefuseABadFileWithTheSameMessage() throws {
        let directory = try TemporaryDirectory()
        let config = try Self.write("listen = [\"127.0.0.1:0\"]\n\nlisten-twice = 1\n", to: "bad.toml", in: directory)
        let result = try Self.run("aggserver", ["--config", config], in: directory)
        #expect(result.code != 0)
        #expect(result.errors.contains("\(config):3: unknown key listen-twice"))
    }

    @Test func theServerRunsFromAConfigFileAlone() throws {
        let directory = try TemporaryDirectory()
        let key = try directory.makeKeyFile()
        let config = try Self.write(
            "listen = [\"127.0.0.1:0\"]\npsk-file = \"\(key)\"\nshutdown-timeout = \"1s\"\n", to: "server.toml",
            in: directory)
        let server = try DaemonProcess(
            "aggserver", arguments: ["--config", config], environment: [:],
            directory: try DaemonSystemdTests.makeSubdirectory(directory, "server"))
        defer { server.terminate() }
        #expect(
            server.waitForOutput(containing: "listening on UDP 127.0.0.1:", within: 10) != nil,
            "\(server.standardError)")
        server.send(SIGTERM)
        #expect(server.waitForExit(within: 10) == 0, "\(server.standardError)")
    }

    /// Every settings flag of `check-config` (and so of the daemon, which shares them) is a config key (a top-level
    /// one, or a `limits.` key under its last component), and every top-level key has its flag: a flag added to
    /// main.swift without a key fails here.
    @Test(arguments: [
        ("aggclient", ClientSettings.configKeys.map(\.name)), ("aggserver", ServerSettings.configKeys.map(\.name)),
    ])
    func everyFlagIsAConfigKeyAndBack(_ binary: String, _ keys: [String]) throws {
        // The limits that bound what one key holder can take have flags too.
        let limitFlags: Set<String> =
            binary == "aggserver"
            ? [
                "streams-per-association", "paths-per-association", "buffered-bytes-per-association",
                "associations-per-key",
            ]
            : ["streams-per-association", "stream-wait", "paths-per-association", "buffered-bytes-per-association"]
        for flag in limitFlags { #expect(keys.contains("limits.\(flag)")) }
        let directory = try TemporaryDirectory()
        let help = try Self.run(binary, ["check-config", "--help"], in: directory)
        #expect(help.code == 0)
        // Every option the help lists (ArgumentParser shortens a long USAGE line to "<options>").
        let flags = Set(
            help.output.split(separator: "\n").compactMap { line -> String? in
                var trimmed = Substring(line.trimmingCharacters(in: .whitespaces))
                if trimmed.count > 4, trimmed.hasPrefix("-"), !trimmed.hasPrefix("--"),
                    let comma = trimmed.firstIndex(of: ",")
                {
                    trimmed = trimmed[trimmed.index(after: comma)...].drop { $0 == " " }  // "-v, --verbose"
                }
                guard trimmed.hasPrefix("--") else { return nil }
                let name = trimmed.dropFirst(2).prefix { $0.isLetter || $0.isNumber || $0 == "-" }
                return name.isEmpty ? nil : String(name)
            }
        ).subtracting(["help", "version"])
        let topLevel = Set(keys.filter { !$0.contains(".") })
        #expect(flags.subtracting(["config"]) == topLevel.union(limitFlags))
    }
}
