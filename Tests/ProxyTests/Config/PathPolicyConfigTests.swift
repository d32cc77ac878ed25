import AggConfig
import Foundation
import SCTPEngine
import Testing

@testable import Proxy

/// Per-path policy in the configuration: `--path NAME=IFACE,backup,rate=20mbit`, `[[path]]` tables, and the clear
/// errors `check-config` gives for a wrong mode, rate or key.
@Suite struct PathPolicyConfigTests {
    @Test func optionsAfterCommasSetModePriorityAndRate() throws {
        let backup = try PathSpec.parse("lte=wwan0,backup")
        #expect(backup == PathSpec(name: "lte", target: "wwan0", mode: .backup))
        #expect(try PathSpec.parse("eth1,rate=20mbit").rateBitsPerSecond == 20_000_000)
        #expect(try PathSpec.parse("eth1,rate=2.5Mbit").rateBitsPerSecond == 2_500_000)
        let full = try PathSpec.parse("lte=wwan0,mode=backup,priority=2,rate=500kbit")
        #expect(full == PathSpec(name: "lte", target: "wwan0", mode: .backup, priority: 2, rateBitsPerSecond: 500_000))
        #expect(full.description == "lte=wwan0,backup,priority=2,rate=500kbit")
        #expect(try PathSpec.parse(full.description) == full)
        #expect(full.policy == SCTPPathPolicy(mode: .backup, priority: 2, sendRateLimit: 62_500))
        #expect(try PathSpec.parse("eth0,active") == PathSpec(target: "eth0"))
        #expect(PathSpec("wwan0,backup")?.description == "wwan0,backup")
    }

    @Test(arguments: [
        ("wwan0,standby", "unknown path option \"standby\": expected backup, active, mode=, priority= or rate="),
        ("wwan0,mode=spare", "unknown path mode \"spare\": a path is active or backup"),
        ("eth1,rate=20mbits", "bad path rate \"20mbits\""),
        ("eth1,rate=1kbit", "bad path rate \"1kbit\""),
        ("eth1,rate=", "bad path rate \"\""),
        ("eth1,priority=300", "bad path priority \"300\": expected a whole number from 0 to 255"),
        (",backup", "a path needs an interface name or an IP address"),
    ])
    func badOptionsSayWhatIsWrong(_ text: String, _ message: String) {
        #expect {
            try PathSpec.parse(text)
        } throws: { error in
            (error as? PathSpecError)?.message.hasPrefix(message) == true
        }
    }

    @Test func rateTextReadsAndWritesTcUnits() {
        #expect(RateText.parse("8kbit") == 8000)
        #expect(RateText.parse("1GBIT") == 1_000_000_000)
        #expect(RateText.parse("100") == nil)
        #expect(RateText.parse("mbit") == nil)
        #expect(RateText.parse("-5mbit") == nil)
        #expect(RateText.format(20_000_000) == "20mbit")
        #expect(RateText.format(1_500_000) == "1500kbit")
        #expect(RateText.format(8001) == "8001bit")
    }

    static var schema: ConfigSchema<ClientSettings> { ClientSettings.configSchema }

    @Test func pathTablesBecomeCompactEntries() throws {
        let file = """
            server = "192.0.2.1"

            [[path]]
            name = "dsl"
            interface = "eth0"

            [[path]]
            name = "lte"
            interface = "wwan0"
            mode = "backup"
            priority = 1
            rate = "5mbit"

            [[path]]
            address = "192.168.8.100"
            """
        let loaded = try ConfigFile.load(Self.schema, text: file, path: "c.toml", overrides: ConfigOverrides())
        #expect(
            loaded.settings.localAddresses == ["dsl=eth0", "lte=wwan0,backup,priority=1,rate=5mbit", "192.168.8.100"])
        let specs = try loaded.settings.pathSpecs()
        #expect(specs.map(\.mode) == [.active, .backup, .active])
        // A flag replaces the file's paths, as for every list key.
        var overrides = ConfigOverrides()
        overrides.set("path", ["wwan0,backup"])
        let flagged = try ConfigFile.load(Self.schema, text: file, path: "c.toml", overrides: overrides)
        #expect(flagged.settings.localAddresses == ["wwan0,backup"])
    }

    /// Each file starts with `server = ...` on line 1, so a table's header is on line 2.
    @Test(arguments: [
        (
            "[[path]]\ninterface = \"wwan0\"\nmode = \"spare\"",
            "c.toml:4: path: unknown path mode \"spare\": a path is active or backup"
        ),
        ("[[path]]\ninterface = \"eth1\"\nrate = \"fast\"", "c.toml:4: path: bad path rate \"fast\""),
        ("[[path]]\ninterface = \"eth1\"\nspeed = \"5mbit\"", "c.toml:4: path: unknown key speed in [[path]]"),
        (
            "[[path]]\ninterface = \"eth1\"\naddress = \"10.0.0.1\"",
            "c.toml:2: path: a [[path]] has either interface or address, not both"
        ),
        ("[[path]]\nmode = \"backup\"", "c.toml:2: path: a [[path]] needs interface = \"NAME\" or address = \"IP\""),
        ("[[path]]\naddress = \"wwan0\"", "c.toml:3: path: address \"wwan0\" is not an IP address"),
        (
            "[[path]]\ninterface = \"eth1\"\npriority = \"1\"",
            "c.toml:4: path: priority: expected a whole number from 0 to 255"
        ),
        ("path = [\"eth0\"]\n[[path]]\ninterface = \"eth1\"", "c.toml:3: duplicate key path (first on line 2)"),
        ("[[path]]\ninterface = \"eth1\"\ninterface = \"eth2\"", "c.toml:4: duplicate key interface (first on line 3)"),
    ])
    func badTablesAreReportedAtTheirLine(_ body: String, _ message: String) {
        let file = "server = \"192.0.2.1\"\n" + body
        #expect {
            try ConfigFile.load(Self.schema, text: file, path: "c.toml", overrides: ConfigOverrides())
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test func flagErrorsNameTheFlag() {
        var overrides = ConfigOverrides()
        overrides.set("server", ["192.0.2.1"])
        overrides.set("path", ["wwan0,rate=fast"])
        #expect {
            try ConfigFile.load(Self.schema, text: nil, path: nil, overrides: overrides)
        } throws: { error in
            "\(error)".contains("--path: bad path rate \"fast\"")
        }
    }

    @Test func checkConfigNotesEachPathsPolicy() throws {
        let directory = try TemporaryDirectory()
        let key = try directory.makeKeyFile()
        let config = directory.path + "/client.toml"
        try """
        server = "127.0.0.1"
        psk-file = "\(key)"

        [[path]]
        name = "home"
        address = "127.0.0.1"

        [[path]]
        name = "lte"
        interface = "lo"
        mode = "backup"
        rate = "20mbit"
        """.write(toFile: config, atomically: false, encoding: .utf8)
        let report = ConfigCheck.client(path: config, overrides: ConfigOverrides())
        #expect(report.isValid, "\(report.errors)")
        #expect(report.summary.contains("# path home (127.0.0.1) sends from 127.0.0.1"), "\(report.summary)")
        #expect(
            report.summary.contains(
                "# path lte (lo) sends from 127.0.0.1, backup (data only while no active path works), "
                    + "sends at most 20mbit/s"), "\(report.summary)")
    }

    @Test func theClientConfigurationCarriesEachPathsPolicy() throws {
        let keyPath = try KeyFileTests.writeTemporary("laptop \(KeyFileTests.hexA)\n", mode: 0o600)
        defer { unlink(keyPath) }
        var settings = ClientSettings()
        settings.serverAddresses = [HostAndPort(host: "127.0.0.1", port: 9899)]
        settings.localAddresses = ["home=127.0.0.1", "lte=127.0.0.2,backup,rate=8mbit"]
        settings.pskFile = keyPath
        let configuration = try ServiceSetup.clientConfiguration(settings)
        #expect(
            configuration.paths.map(\.policy) == [
                .default, SCTPPathPolicy(mode: .backup, sendRateLimit: 1_000_000),
            ])
    }
}

extension PathPolicyConfigTests {
    /// The client example's commented policy examples (the one-string form and the `[[path]]` tables) are valid.
    @Test func theClientExamplesPathPoliciesLoad() throws {
        let path = ConfigFileTests.configDirectory.appendingPathComponent("aggclient.toml.example").path
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        // The block from the commented one-string example to the end of the comment.
        let start = try #require(lines.firstIndex { $0.hasPrefix("#   path = ") })
        let block = lines[start...].prefix { $0.hasPrefix("#") }
        let examples = block.filter { $0.hasPrefix("#   ") }.map { String($0.dropFirst(4)) }
        let compact = try #require(examples.first { $0.hasPrefix("path = ") })
        let tables = examples.filter { !$0.hasPrefix("path = ") }.joined(separator: "\n")
        for body in [compact, tables] {
            let loaded = try ConfigFile.load(
                Self.schema, text: "server = \"192.0.2.1\"\n" + body, path: path, overrides: ConfigOverrides())
            #expect(loaded.settings.localAddresses == ["home=wlan0", "lte=wwan0,backup,rate=20mbit"])
        }
    }

    /// `aggclient path NAME [MODE] [--rate R|off] [--priority N]`: only what is given changes; a cap can be lifted.
    @Test func aRunTimeChangeTouchesOnlyWhatItNames() throws {
        let capped = SCTPPathPolicy(mode: .backup, priority: 3, sendRateLimit: 62_500)
        let rate = try PathPolicyChange.parse(mode: nil, priority: nil, rate: "8mbit")
        #expect(rate.applied(to: capped) == SCTPPathPolicy(mode: .backup, priority: 3, sendRateLimit: 1_000_000))
        let off = try PathPolicyChange.parse(mode: nil, priority: nil, rate: "off")
        #expect(off.applied(to: capped) == SCTPPathPolicy(mode: .backup, priority: 3))
        let mode = try PathPolicyChange.parse(mode: "active", priority: "7", rate: nil)
        #expect(mode.applied(to: capped) == SCTPPathPolicy(mode: .active, priority: 7, sendRateLimit: 62_500))
        #expect(throws: PathSpecError.self) { try PathPolicyChange.parse(mode: nil, priority: nil, rate: nil) }
        #expect(throws: PathSpecError.self) { try PathPolicyChange.parse(mode: "standby", priority: nil, rate: nil) }
        #expect(throws: PathSpecError.self) { try PathPolicyChange.parse(mode: nil, priority: "256", rate: nil) }
        #expect(throws: PathSpecError.self) { try PathPolicyChange.parse(mode: nil, priority: nil, rate: "fast") }
    }
}
