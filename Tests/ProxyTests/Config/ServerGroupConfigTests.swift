import AggConfig
import Testing

/// `server-group`: several servers in order of preference, in the compact form, as `[[server-group]]` tables and
/// as repeated flags; `server` keeps meaning one group, and the two cannot be mixed.
@Suite struct ServerGroupConfigTests {
    @Test func compactGroupsKeepTheirOrderAddressesAndKeyFile() throws {
        let settings = try ConfigFileTests.client(
            """
            server-group = ["a.example:9899,198.51.100.7", "b.example:9000,psk-file=/etc/agg/b.key"]
            server-timeout = "2s"
            """)
        #expect(settings.serverGroups.count == 2)
        #expect(settings.serverGroups[0].addresses.map(\.description) == ["a.example:9899", "198.51.100.7:9899"])
        #expect(settings.serverGroups[0].pskFile == nil)
        #expect(settings.serverGroups[1].addresses.map(\.description) == ["b.example:9000"])
        #expect(settings.serverGroups[1].pskFile == "/etc/agg/b.key")
        #expect(settings.serverTimeout == .seconds(2))
        #expect(settings.serverAddresses.isEmpty)
    }

    @Test func tablesAreTheSameGroups() throws {
        let settings = try ConfigFileTests.client(
            """
            [[server-group]]
            addresses = ["a.example:9899", "198.51.100.7:9899"]

            [[server-group]]
            addresses = ["b.example:9000"]
            psk-file = "/etc/agg/b.key"
            """)
        #expect(
            settings.serverGroups.map(\.description) == [
                "a.example:9899,198.51.100.7:9899", "b.example:9000,psk-file=/etc/agg/b.key",
            ])
    }

    @Test func repeatedFlagsListTheGroupsInOrder() throws {
        var overrides = ConfigOverrides()
        overrides.set("server-group", ["a.example", "b.example,psk-file=/k"])
        let settings = try ConfigFileTests.client(nil, overrides: overrides)
        #expect(settings.serverGroups.map(\.description) == ["a.example:9899", "b.example:9899,psk-file=/k"])
    }

    @Test func serverAloneIsOneGroupAndMixingTheTwoIsAnError() throws {
        let one = try ConfigFileTests.client("server = [\"a.example:9899\", \"198.51.100.7:9899\"]")
        #expect(one.serverAddresses.count == 2 && one.serverGroups.isEmpty)
        let errors = ConfigFileTests.clientErrors(
            """
            server = ["a.example:9899"]
            server-group = ["b.example:9899"]
            """)
        #expect(errors.contains { $0.contains("server-group") && $0.contains("both set") })
    }

    @Test func malformedGroupsAreRefusedWithWhatIsWrong() {
        let cases: [(String, String)] = [
            ("server-group = [\"\"]", "is not HOST:PORT"),
            ("server-group = [\"a.example:99999\"]", "is not HOST:PORT"),
            ("server-group = [\"a.example,psk-file=\"]", "psk-file= needs one path"),
            ("[[server-group]]\npsk-file = \"/k\"", "needs addresses"),
            ("[[server-group]]\naddresses = [\"a\"]\nkey = \"x\"", "unknown key key"),
        ]
        for (text, message) in cases {
            let errors = ConfigFileTests.clientErrors(text)
            #expect(errors.contains { $0.contains(message) }, "\(text): \(errors)")
        }
    }
}
