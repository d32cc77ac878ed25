import AggEgress
import AggProtocol
import SCTPEngine
import Testing

@testable import AggConfig
@testable import Proxy

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

@Suite struct KeyFileTests {
    static let hexA = String(repeating: "ab", count: 32)
    static let hexB = String(repeating: "0F", count: 32)

    @Test func parsesNamesKeysCommentsAndBlankLines() throws {
        let text = """
            # agg server keys
            laptop \(Self.hexA)

            \tphone.2   \(Self.hexB)  # the phone
            """
        let keys = try KeyFile.parse(text, path: "keys")
        #expect(keys.map(\.name) == ["laptop", "phone.2"])
        #expect(keys[0].key == [UInt8](repeating: 0xAB, count: 32))
        #expect(keys[1].key == [UInt8](repeating: 0x0F, count: 32))
        #expect(try KeyFile.parse("a \(Self.hexA)\r\n", path: "crlf").count == 1)
    }

    @Test(arguments: [
        ("laptop", "keys:1: expected \"NAME HEX\", found 1 fields"),
        ("laptop \(hexA) extra", "keys:1: expected \"NAME HEX\", found 3 fields"),
        ("# c\nlaptop abcd", "keys:2: key for \"laptop\" must be 64 hex digits (a 256-bit key)"),
        (
            "laptop \(String(repeating: "zz", count: 32))",
            "keys:1: key for \"laptop\" must be 64 hex digits (a 256-bit key)"
        ),
        ("laptop \(hexA)0", "keys:1: key for \"laptop\" must be 64 hex digits (a 256-bit key)"),
        ("lap/top \(hexA)", "keys:1: invalid key name \"lap/top\": use 1 to 64 letters, digits, '.', '_' or '-'"),
        ("a \(hexA)\n\na \(hexB)", "keys:3: duplicate key name \"a\" (first on line 1)"),
    ])
    func errorsNameFileAndLine(_ text: String, _ message: String) {
        do {
            _ = try KeyFile.parse(text, path: "keys")
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description == message)
        }
    }

    @Test func refusesKeyFilesOthersCanRead() throws {
        let path = try Self.writeTemporary("laptop \(Self.hexA)\n", mode: 0o644)
        defer { unlink(path) }
        do {
            _ = try KeyFile.load(path: path)
            Issue.record("loaded a world-readable key file")
        } catch {
            #expect(error.path == path)
            #expect(error.description.contains("group or others"))
            #expect(error.description.contains("chmod 600 \(path)"))
        }
        chmod(path, 0o600)
        #expect(try KeyFile.loadClientKey(path: path).name == "laptop")
        // Group read is allowed for the daemon's own group only (root:aggserver 640 for the service user).
        chmod(path, 0o640)
        #expect(try KeyFile.load(path: path).count == 1)
        chown(path, getuid(), 65534)  // nogroup: not ours.
        #expect(throws: ConfigError.self) { try KeyFile.load(path: path) }
        chown(path, getuid(), getegid())
        chmod(path, 0o400)
        #expect(try KeyFile.load(path: path).count == 1)
    }

    @Test func clientKeyFileHoldsExactlyOneKey() throws {
        let path = try Self.writeTemporary("a \(Self.hexA)\nb \(Self.hexB)\n", mode: 0o600)
        defer { unlink(path) }
        #expect(try KeyFile.load(path: path).count == 2)
        #expect(throws: ConfigError(path: path, "a client key file holds exactly one key, found 2")) {
            try KeyFile.loadClientKey(path: path)
        }
        let empty = try Self.writeTemporary("# nothing\n", mode: 0o600)
        defer { unlink(empty) }
        #expect(throws: ConfigError(path: empty, "key file holds no keys")) { try KeyFile.loadClientKey(path: empty) }
        // A server's file may hold no key yet (the package installs it so): every client is refused.
        #expect(try KeyFile.load(path: empty).isEmpty)
    }

    @Test func missingFileNamesThePath() {
        do {
            _ = try KeyFile.load(path: "/nonexistent/agg.keys")
            Issue.record("loaded a missing file")
        } catch {
            #expect(error.description.hasPrefix("/nonexistent/agg.keys: cannot read key file"))
        }
    }

    /// root:aggserver mode 640 is the shipped server's key file: root (not in that group) must accept it for
    /// keygen --append and check-config, so the group is also recognised by name.
    @Test func theServiceGroupIsFoundByName() {
        #expect(KeyFile.serviceGroup == "aggserver")
        #expect(KeyFile.isGroup(0, named: "root"))
        #expect(!KeyFile.isGroup(0, named: "aggserver"))
        #expect(!KeyFile.isGroup(4_000_000_000, named: "root"), "no such group")
    }

    @Test func permissionCheckLooksOnlyAtGroupAndOtherBits() throws {
        try KeyFile.checkPermissions(mode: 0o100600, path: "k")
        try KeyFile.checkPermissions(mode: 0o100400, path: "k")
        for mode: UInt32 in [0o604, 0o620, 0o601, 0o610, 0o666, 0o640] {
            #expect(throws: ConfigError.self) { try KeyFile.checkPermissions(mode: mode, path: "k") }
        }
        // Group read, and nothing else, when the group is the daemon's own (root:aggserver 640).
        try KeyFile.checkPermissions(mode: 0o100640, path: "k", groupIsOurs: true)
        for mode: UInt32 in [0o660, 0o650, 0o644, 0o641, 0o670] {
            #expect(throws: ConfigError.self) {
                try KeyFile.checkPermissions(mode: mode, path: "k", groupIsOurs: true)
            }
        }
        #expect(KeyFile.isOurGroup(getegid()))
    }

    @Test func hexDecoding() {
        #expect(KeyFile.decodeHex("00fF10") == [0, 255, 16])
        #expect(KeyFile.decodeHex("abc") == nil)
        #expect(KeyFile.decodeHex("0g") == nil)
    }

    static func writeTemporary(_ text: String, mode: mode_t) throws -> String {
        var template = Array("/tmp/agg-keys-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        #expect(fd >= 0)
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let bytes = Array(text.utf8)
        _ = write(fd, bytes, bytes.count)
        close(fd)
        chmod(path, mode)
        return path
    }
}

@Suite struct SettingsTests {
    @Test func defaults() throws {
        let server = ServerSettings()
        #expect(server.limits.streamsPerAssociation == 16_384)
        #expect(server.limits.streamCredit == 4 * 1024 * 1024)
        #expect(server.limits.connectTimeout == .seconds(10))
        #expect(server.listenAddresses.map(\.description) == ["0.0.0.0:9899", "[::]:9899"])
        try server.validate()
        #expect(!server.egressPolicy.isAllowed(.v4(0x7F00_0001)))

        var client = ClientSettings()
        #expect(throws: ConfigError.self) { try client.validate() }
        client.serverAddresses = [HostAndPort("agg.example.net:9899")!]
        try client.validate()
        client.socksAddress = nil
        client.httpAddress = nil
        #expect(throws: ConfigError.self) { try client.validate() }
    }

    @Test func limitsAreValidated() {
        var limits = StreamLimits()
        limits.streamsPerAssociation = 0
        #expect(throws: ConfigError.self) { try limits.validate(source: "test") }
        limits = StreamLimits()
        limits.streamCredit = 100
        #expect(throws: ConfigError.self) { try limits.validate(source: "test") }
        limits = StreamLimits()
        limits.bufferedBytesPerAssociation = 1
        #expect(throws: ConfigError.self) { try limits.validate(source: "test") }
        limits = StreamLimits()
        limits.streamIdleTimeout = .zero
        #expect(throws: ConfigError.self) { try limits.validate(source: "test") }
        for paths in [0, StreamLimits.maxPathsPerAssociation + 1] {
            limits = StreamLimits()
            limits.pathsPerAssociation = paths
            #expect(throws: ConfigError.self) { try limits.validate(source: "test") }
        }
    }

    @Test(arguments: [
        ("127.0.0.1:1080", "127.0.0.1", UInt16(1080)), ("[::1]:9899", "::1", 9899),
        ("host.example:80", "host.example", 80),
    ])
    func hostAndPortParsing(_ text: String, _ host: String, _ port: UInt16) throws {
        let parsed = try #require(HostAndPort(text))
        #expect(parsed.host == host && parsed.port == port)
        #expect(parsed.description == text)
    }

    @Test func hostAndPortRejectsAndDefaults() {
        #expect(HostAndPort("::1:80") == nil)
        #expect(HostAndPort("host:") == nil)
        #expect(HostAndPort("host:99999") == nil)
        #expect(HostAndPort(":80") == nil)
        #expect(HostAndPort("host") == nil)
        #expect(HostAndPort("host", defaultPort: 9899)?.port == 9899)
        #expect(HostAndPort("[::1]", defaultPort: 1)?.host == "::1")
    }
}

/// `--path` entries with and without a name.
@Suite struct PathSpecTests {
    @Test func aNameGoesBeforeAnEqualsSign() {
        #expect(PathSpec("wlan0") == PathSpec(target: "wlan0"))
        #expect(PathSpec("lte=wwan0") == PathSpec(name: "lte", target: "wwan0"))
        #expect(PathSpec("home.dsl_2=192.168.1.23") == PathSpec(name: "home.dsl_2", target: "192.168.1.23"))
        #expect(PathSpec("v6=2001:db8::1") == PathSpec(name: "v6", target: "2001:db8::1"))
        #expect(PathSpec("lte=wwan0")?.description == "lte=wwan0")
    }

    @Test(arguments: ["", "=wwan0", "lte=", "my lte=wwan0", "lté=wwan0", String(repeating: "n", count: 33) + "=x"])
    func malformedEntriesAreRefused(_ text: String) {
        #expect(PathSpec(text) == nil)
    }

    @Test func configFileAndFlagTakeNamedPathsAndRefuseBadNames() throws {
        let schema = ClientSettings.configSchema
        var overrides = ConfigOverrides()
        overrides.set("server", ["192.0.2.1:9899"])
        overrides.set("path", ["lte=wwan0", "192.168.1.23"])
        let loaded = try ConfigFile.load(schema, text: nil, path: nil, overrides: overrides)
        let specs = try loaded.settings.pathSpecs()
        #expect(specs == [PathSpec(name: "lte", target: "wwan0"), PathSpec(target: "192.168.1.23")])
        overrides.set("path", ["bad name=wwan0"])
        #expect(throws: ConfigErrorList.self) {
            try ConfigFile.load(schema, text: nil, path: nil, overrides: overrides)
        }
        let file = "path = [\"lte=wwan0\", \"=wwan0\"]\nserver = \"192.0.2.1\"\n"
        #expect(throws: ConfigErrorList.self) {
            try ConfigFile.load(schema, text: file, path: "c.toml", overrides: ConfigOverrides())
        }
    }

    @Test func theClientConfigurationCarriesEachPathsName() throws {
        let keyPath = try KeyFileTests.writeTemporary("laptop \(KeyFileTests.hexA)\n", mode: 0o600)
        defer { unlink(keyPath) }
        var settings = ClientSettings()
        settings.serverAddresses = [HostAndPort(host: "127.0.0.1", port: 9899)]
        settings.localAddresses = ["home=127.0.0.1", "lo", "127.0.0.2"]
        settings.pskFile = keyPath
        let configuration = try ServiceSetup.clientConfiguration(settings)
        #expect(configuration.paths.map(\.name) == ["home", "lo", nil])
        #expect(configuration.paths.map(\.interface) == [nil, "lo", nil])
        let loopback = [SCTPIPAddress("127.0.0.1"), SCTPIPAddress("127.0.0.1"), SCTPIPAddress("127.0.0.2")]
        #expect(configuration.paths.map(\.address) == loopback)
    }
}
