import AggConfig
import Foundation
import Testing

/// The `transparent` key (router mode): parsed from the file and `--transparent`, off by default, an IP literal
/// with its own port, and enough on its own when socks and http are off.
@Suite struct TransparentConfigTests {
    static func load(_ text: String, flag: String? = nil) throws(ConfigErrorList) -> ClientSettings {
        var overrides = ConfigOverrides()
        overrides.set("transparent", flag)
        return try ConfigFile.load(ClientSettings.configSchema, text: text, path: "client.toml", overrides: overrides)
            .settings
    }

    static func errors(_ text: String) -> [String] {
        do {
            _ = try load(text)
            return []
        } catch {
            return error.errors.map(\.description)
        }
    }

    @Test func offByDefaultAndReadFromTheFileOrTheFlag() throws {
        #expect(try Self.load("server = \"s:1\"").transparentAddress == nil)
        let file = try Self.load("server = \"s:1\"\ntransparent = \"0.0.0.0:12345\"")
        #expect(file.transparentAddress == HostAndPort(host: "0.0.0.0", port: 12345))
        let flag = try Self.load("server = \"s:1\"\ntransparent = \"0.0.0.0:12345\"", flag: "[::]:12346")
        #expect(flag.transparentAddress == HostAndPort(host: "::", port: 12346))
        #expect(try Self.load("server = \"s:1\"\ntransparent = \"off\"").transparentAddress == nil)
    }

    @Test func itIsEnoughWhenSocksAndHTTPAreOff() throws {
        let settings = try Self.load(
            "server = \"s:1\"\nsocks = \"off\"\nhttp = \"off\"\ntransparent = \"0.0.0.0:12345\"")
        #expect(settings.socksAddress == nil && settings.httpAddress == nil)
        try settings.validate()
    }

    @Test func aNameAPortZeroOrAnotherListenersPortIsRefused() {
        #expect(
            Self.errors("server = \"s:1\"\ntransparent = \"router.lan:12345\"") == [
                "client.toml:2: transparent: router.lan is not an IP address (use 0.0.0.0, [::] or this host's LAN "
                    + "address)"
            ])
        #expect(
            Self.errors("server = \"s:1\"\ntransparent = \"0.0.0.0:0\"") == [
                "client.toml:2: transparent: needs a port other than 0"
            ])
        #expect(
            Self.errors("server = \"s:1\"\ntransparent = \"0.0.0.0:1080\"") == [
                "client.toml:2: transparent: port 1080 is the socks listener's (127.0.0.1:1080): use its own port"
            ])
        #expect(
            Self.errors("server = \"s:1\"\nhttp = \"192.168.1.1:3128\"\ntransparent = \"192.168.1.1:3128\"") == [
                "client.toml:3: transparent: port 3128 is the http listener's (192.168.1.1:3128): use its own port"
            ])
        // The same port on two different specific addresses is two sockets.
        #expect(Self.errors("server = \"s:1\"\ntransparent = \"192.168.1.1:1080\"").isEmpty)
        #expect(
            Self.errors("server = \"s:1\"\ntransparent = \"12345\"").count == 1, "a bare port says nothing of where")
    }

    @Test func checkConfigNotesTheListenerAndWarnsAboutLoopback() throws {
        let directory = try TemporaryDirectory()
        let key = try directory.makeKeyFile()
        let config = directory.path + "/client.toml"
        try """
        server = "127.0.0.1"
        psk-file = "\(key)"
        socks = "off"
        http = "off"
        transparent = "0.0.0.0:12345"
        """.write(toFile: config, atomically: false, encoding: .utf8)
        let report = ConfigCheck.client(path: config, overrides: ConfigOverrides())
        #expect(report.isValid, "\(report.errors)")
        #expect(report.summary.contains { $0.contains("transparent listener on 0.0.0.0:12345 (router mode)") })
        #expect(!report.summary.contains { $0.contains("transparent listens on loopback") })

        var overrides = ConfigOverrides()
        overrides.set("transparent", "127.0.0.1:12345")
        let loopback = ConfigCheck.client(path: config, overrides: overrides)
        #expect(loopback.isValid, "\(loopback.errors)")
        #expect(loopback.summary.contains { $0.contains("warning: transparent listens on loopback") })

        overrides.set("transparent", "gateway:12345")
        let named = ConfigCheck.client(path: config, overrides: overrides)
        #expect(
            named.errors.map(\.description) == [
                "command line: --transparent: gateway is not an IP address (use 0.0.0.0, [::] or this host's LAN "
                    + "address)"
            ])
    }
}
