import AggConfig
import AggIngress
import Foundation
import Testing

@testable import Proxy

#if canImport(Glibc)
    import Glibc
#endif

/// `proxy-user` values and `proxy-user-file` files: what is a user, file permissions, and that no error or
/// summary ever shows a password.
@Suite struct ProxyUserFileTests {
    @Test func usersAreUserColonPasswordWithinRFC1929Sizes() {
        #expect(ProxyUserFile.parseUser("alice:pw") == .init(username: "alice", password: "pw"))
        #expect(ProxyUserFile.parseUser("bob:a:b:c") == .init(username: "bob", password: "a:b:c"))
        #expect(ProxyUserFile.parseUser("élodie:mot de passe") == .init(username: "élodie", password: "mot de passe"))
        for bad in [
            "alice", ":pw", "alice:", "", String(repeating: "u", count: 256) + ":pw",
            "alice:" + String(repeating: "p", count: 256), "al\u{1}ce:pw", "alice:p\nw",
        ] {
            #expect(ProxyUserFile.parseUser(bad) == nil, "\(bad.prefix(20))")
        }
        #expect(
            ProxyUserFile.parseUser(String(repeating: "u", count: 255) + ":" + String(repeating: "p", count: 255))
                != nil)
    }

    @Test func filesHoldOneUserALineWithComments() throws {
        let users = try ProxyUserFile.parse("# users\nalice:one two\n\n  \r\nbob:x:y\r\n", path: "users")
        #expect(users == [.init(username: "alice", password: "one two"), .init(username: "bob", password: "x:y")])
        #expect(throws: ConfigError(path: "users", line: 2, "duplicate user \"alice\" (first on line 1)")) {
            try ProxyUserFile.parse("alice:a\nalice:b\n", path: "users")
        }
        do {
            _ = try ProxyUserFile.parse("alice:ok\nbob-without-password-secret\n", path: "users")
            Issue.record("a line without ':' was accepted")
        } catch {
            #expect(error.line == 2)
            #expect(!error.description.contains("secret"), "the line was quoted: \(error)")
        }
    }

    @Test func aFileOthersCanReadIsRefused() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/users"
        try "alice:pw\n".write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o644)
        #expect(throws: ConfigError.self) { try ProxyUserFile.load(path: path) }
        chmod(path, 0o600)
        #expect(try ProxyUserFile.load(path: path) == [.init(username: "alice", password: "pw")])
        try "# nobody\n".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(throws: ConfigError(path: path, "proxy user file holds no user")) {
            try ProxyUserFile.load(path: path)
        }
    }

    @Test func settingsGiveTheValuesThenTheFile() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/users"
        try ServiceSetup.writePrivateFile("bob:from file\n", path: path)
        var settings = ClientSettings()
        settings.proxyUsers = [.init(username: "alice", password: "inline")]
        settings.proxyUserFile = path
        #expect(try ProxyUserFile.users(of: settings).map(\.username) == ["alice", "bob"])
        settings.proxyUsers.append(.init(username: "bob", password: "again"))
        #expect(throws: ConfigError.self) { try ProxyUserFile.users(of: settings) }
    }

    @Test func aWrongValueIsNotRepeatedInTheError() {
        var overrides = ConfigOverrides()
        overrides.set("proxy-user", ["alice-with-secret-but-no-colon"])
        overrides.set("server", ["s.example:1"])
        let flagErrors = ConfigFileTests.clientErrors("", overrides: overrides)
        #expect(flagErrors.count == 1)
        #expect(!flagErrors.joined().contains("secret"), "\(flagErrors)")
        let fileErrors = ConfigFileTests.clientErrors(
            "server = \"s:1\"\nproxy-user = [\"ok:fine\", \"no-secret-here\"]")
        #expect(fileErrors.count == 1 && fileErrors[0].hasPrefix("client.toml:2: proxy-user: expected \"USER:PASS\""))
        #expect(!fileErrors.joined().contains("no-secret-here"))
    }
}
