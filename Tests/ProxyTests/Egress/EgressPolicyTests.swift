import SCTPEngine
import Testing

@testable import Proxy

@Suite struct CIDRTests {
    @Test(arguments: ["10.0.0.0/8", "fd00::/8", "0.0.0.0/0", "::/0", "192.0.2.1/32", "2001:db8::1/128"])
    func parsesAndPrints(_ text: String) throws {
        #expect(try #require(CIDR(text)).description == text)
    }

    @Test func clearsHostBitsAndDefaultsToAHostPrefix() throws {
        #expect(CIDR("10.1.2.3/8")?.description == "10.0.0.0/8")
        #expect(CIDR("fe80::1234/10")?.description == "fe80::/10")
        #expect(CIDR("192.0.2.7")?.prefixLength == 32)
        #expect(CIDR("::1")?.prefixLength == 128)
        #expect(CIDR("2001:db8:ffff:ffff:ffff::/72")?.description == "2001:db8:ffff:ffff:ff00::/72")
    }

    @Test(arguments: [
        "10.0.0.0/33", "fd00::/129", "example/8", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8/8", "/8", "10.0.0.0/+8",
    ])
    func rejectsMalformed(_ text: String) {
        #expect(CIDR(text) == nil)
    }

    @Test func containment() throws {
        let v4 = try #require(CIDR("172.16.0.0/12"))
        #expect(v4.contains(SCTPIPAddress(v4: 172, 31, 255, 255)))
        #expect(!v4.contains(SCTPIPAddress(v4: 172, 32, 0, 0)))
        #expect(!v4.contains(SCTPIPAddress("::ffff:172.16.0.1")!))  // Families never match.
        let v6 = try #require(CIDR("fc00::/7"))
        #expect(v6.contains(SCTPIPAddress("fdff::1")!) && !v6.contains(SCTPIPAddress("fe00::1")!))
        #expect(try #require(CIDR("::/0")).contains(SCTPIPAddress("2001:db8::1")!))
    }
}

@Suite struct IPLiteralTests {
    @Test(arguments: [
        ("127.0.0.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"), ("0x7F000001", "127.0.0.1"), ("127.0.1", "127.0.0.1"), ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"), ("0x0a.0x00.0x00.0x01", "10.0.0.1"), ("012.1", "10.0.0.1"), ("3232235521", "192.168.0.1"),
        ("[::1]", "::1"), ("::ffff:127.0.0.1", "::ffff:127.0.0.1"), ("fe80::1%eth0", "fe80::1"),
    ])
    func recognisesOddSpellings(_ text: String, _ expected: String) {
        #expect(IPLiteral.parse(text) == SCTPIPAddress(expected))
    }

    @Test(arguments: [
        "example.com", "1.2.3.4.5", "256.1.1.1", "08.1.1.1", "1.2.3.256", "1.2.65536", "4294967296", "0x100000000",
        "1..2", "", ".", "1.2.3.4..", "localhost", "0xg",
    ])
    func leavesNamesAndInvalidNumbersAlone(_ text: String) {
        #expect(IPLiteral.parse(text) == nil)
    }
}

@Suite struct EgressPolicyTests {
    static let policy = EgressPolicy()

    @Test(arguments: [
        "127.0.0.1", "127.255.255.254", "::1", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "169.254.169.254", "fe80::1", "100.64.0.1", "100.127.255.255", "fc00::1", "fd12:3456::1", "0.0.0.0", "::",
        "0.1.2.3", "224.0.0.1", "239.255.255.250", "ff02::1", "255.255.255.255", "240.0.0.1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "::8.8.8.8",
        "64:ff9b::127.0.0.1", "64:ff9b::a00:1", "2002:7f00:1::", "2002:c0a8:101::1",
        "192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1", "3fff::1", "198.18.0.1", "fec0::1", "100::1",
        "64:ff9b:1::1", "192.0.0.8",
    ])
    func refusesNonPublicAddresses(_ text: String) throws {
        let address = try #require(SCTPIPAddress(text))
        #expect(!Self.policy.isAllowed(address), "\(text) should be refused")
    }

    @Test(arguments: [
        "8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450::1", "::ffff:8.8.8.8",
        "64:ff9b::808:808", "2002:808:808::1", "100.128.0.1", "172.32.0.1", "192.169.0.1",
    ])
    func allowsPublicAddresses(_ text: String) throws {
        let address = try #require(SCTPIPAddress(text))
        #expect(Self.policy.isAllowed(address), "\(text) should be allowed")
    }

    @Test func refusalsNameTheRange() throws {
        #expect(Self.policy.check(SCTPIPAddress(v4: 127, 0, 0, 1)) == .refused("loopback"))
        guard case .refused(let why) = Self.policy.check(SCTPIPAddress("::ffff:10.1.1.1")!) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(why.contains("IPv4-mapped") && why.contains("private"))
    }

    @Test func allowListOverridesIncludingEmbeddedForms() throws {
        var policy = EgressPolicy()
        policy.allow(try #require(CIDR("127.0.0.0/8")))
        policy.allow(try #require(CIDR("fd00::/8")))
        #expect(policy.isAllowed(SCTPIPAddress(v4: 127, 0, 0, 1)))
        #expect(policy.isAllowed(SCTPIPAddress("::ffff:127.0.0.1")!))
        #expect(policy.isAllowed(SCTPIPAddress("fd00::5")!))
        #expect(!policy.isAllowed(SCTPIPAddress("fc00::5")!))
        #expect(!policy.isAllowed(SCTPIPAddress("::1")!))
        #expect(!policy.isAllowed(SCTPIPAddress(v4: 10, 0, 0, 1)))
    }
}
