import AggConfig
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// `ConfigCheck`: what the daemons check at start, placed at the line (or flag) of the key that caused it.
@Suite struct ConfigCheckTests {
    @Test func theDefaultKeyFileIsNamedWhenItIsMissing() throws {
        try #require(access("/etc/agg/client.key", F_OK) != 0, "this machine has a real /etc/agg/client.key")
        let directory = try TemporaryDirectory()
        let config = directory.path + "/client.toml"
        try "server = \"127.0.0.1\"\n".write(toFile: config, atomically: false, encoding: .utf8)
        let report = ConfigCheck.client(path: config, overrides: ConfigOverrides())
        #expect(!report.isValid)
        #expect(report.summary.isEmpty)
        #expect(
            report.errors.map(\.description) == [
                "\(config): psk-file (default): /etc/agg/client.key: cannot read key file: No such file or directory"
            ])
    }

    @Test func namedPathsAreCheckedByWhatTheySendFrom() throws {
        let directory = try TemporaryDirectory()
        let key = try directory.makeKeyFile()
        let config = directory.path + "/client.toml"
        try """
        server = "127.0.0.1"
        path = ["home=127.0.0.1", "lo", "typo=no-such-if0"]
        psk-file = "\(key)"
        """.write(toFile: config, atomically: false, encoding: .utf8)
        let report = ConfigCheck.client(path: config, overrides: ConfigOverrides())
        #expect(
            report.errors.map(\.description) == [
                "\(config):2: path: no-such-if0: neither an IP address nor an interface of this host"
            ])
        var overrides = ConfigOverrides()
        overrides.set("path", ["home=127.0.0.1", "lo"])
        let valid = ConfigCheck.client(path: config, overrides: overrides)
        #expect(valid.isValid, "\(valid.errors)")
        #expect(valid.summary.contains("# path home (127.0.0.1) sends from 127.0.0.1"), "\(valid.summary)")
        #expect(valid.summary.contains("# path lo sends from 127.0.0.1"), "\(valid.summary)")
        #expect(valid.summary.contains { $0.hasPrefix("path = [\"home=127.0.0.1\", \"lo\"]") }, "\(valid.summary)")
    }

    @Test func everyCheckFailureIsReportedAtItsKey() throws {
        let directory = try TemporaryDirectory()
        let key = try directory.makeKeyFile()
        let config = directory.path + "/server.toml"
        try """
        psk-file = "\(key)"
        listen = ["127.0.0.1:9899", "no-such-host.invalid:9899"]
        """.write(toFile: config, atomically: false, encoding: .utf8)
        var overrides = ConfigOverrides()
        overrides.set("metrics", "metrics-host.invalid:9100")
        let report = ConfigCheck.server(path: config, overrides: overrides)
        #expect(
            report.errors.map(\.description) == [
                "\(config):2: listen: no-such-host.invalid: cannot resolve host name",
                "command line: --metrics: metrics-host.invalid: cannot resolve host name",
            ])
    }

    @Test func aValidConfigurationSaysWhereEachValueCameFrom() throws {
        let directory = try TemporaryDirectory()
        let key = try directory.makeKeyFile(name: "edge")
        var overrides = ConfigOverrides()
        overrides.set("psk-file", key)
        overrides.set("listen", ["127.0.0.1:9899"])
        let report = ConfigCheck.server(path: directory.path + "/absent-is-an-error.toml", overrides: overrides)
        #expect(report.errors.count == 1)

        let config = directory.path + "/server.toml"
        try "[limits]\nconnect-timeout = \"3s\"\n".write(toFile: config, atomically: false, encoding: .utf8)
        let valid = ConfigCheck.server(path: config, overrides: overrides)
        #expect(valid.isValid, "\(valid.errors)")
        let lines = valid.summary
        #expect(lines.first == "# aggserver check-config: OK")
        #expect(lines.contains { $0.hasPrefix("listen = [\"127.0.0.1:9899\"]") && $0.hasSuffix("# --listen") })
        #expect(lines.contains { $0.hasPrefix("connect-timeout = \"3s\"") && $0.hasSuffix("# line 2") })
        #expect(lines.contains { $0.hasPrefix("metrics = \"off\"") && $0.hasSuffix("# default") })
        #expect(lines.contains("# 1 client key from \(key)"))
        #expect(lines.firstIndex(of: "[limits]")! > lines.firstIndex { $0.hasPrefix("verbose = ") }!)
    }
}
