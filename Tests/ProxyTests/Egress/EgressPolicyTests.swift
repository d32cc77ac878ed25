import AggEgress
import AggProtocol
import SCTPEngine
import Testing

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
        "64:ff9b:1::1", "192.0.0.8", "168.63.129.16", "64:ff9b::a83f:8110", "::ffff:8.8.8.8", "::ffff:93.184.216.34",
    ])
    func refusesNonPublicAddresses(_ text: String) throws {
        let address = try #require(SCTPIPAddress(text))
        #expect(!Self.policy.isAllowed(address), "\(text) should be refused")
    }

    @Test(arguments: [
        "8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450::1", "168.63.129.17",
        "64:ff9b::808:808", "2002:808:808::1", "100.128.0.1", "172.32.0.1", "192.169.0.1",
    ])
    func allowsPublicAddresses(_ text: String) throws {
        let address = try #require(SCTPIPAddress(text))
        #expect(Self.policy.isAllowed(address), "\(text) should be allowed")
    }

    @Test func refusalsNameTheRange() throws {
        #expect(Self.policy.check(SCTPIPAddress(v4: 127, 0, 0, 1)) == .refused(.egressAddress, "loopback"))
        guard case .refused(let refusal, let why) = Self.policy.check(SCTPIPAddress("64:ff9b::a01:101")!) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(refusal == .egressAddress && why.contains("NAT64") && why.contains("private"))
        guard case .refused(_, let mapped) = Self.policy.check(SCTPIPAddress("::ffff:10.1.1.1")!) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(mapped.contains("IPv4-mapped"))
        #expect(Self.policy.check(SCTPIPAddress(v4: 168, 63, 129, 16)) != .allowed)
    }

    @Test func allowListOverridesIncludingEmbeddedForms() throws {
        var policy = EgressPolicy()
        policy.allow(try #require(CIDR("127.0.0.0/8")))
        policy.allow(try #require(CIDR("fd00::/8")))
        #expect(policy.isAllowed(SCTPIPAddress(v4: 127, 0, 0, 1)))
        #expect(policy.isAllowed(SCTPIPAddress("64:ff9b::127.0.0.1")!))
        #expect(policy.isAllowed(SCTPIPAddress("fd00::5")!))
        #expect(!policy.isAllowed(SCTPIPAddress("fc00::5")!))
        #expect(!policy.isAllowed(SCTPIPAddress("::1")!))
        #expect(!policy.isAllowed(SCTPIPAddress(v4: 10, 0, 0, 1)))
    }

    // MARK: - Issue 12: own addresses, the wire server, IPv4-mapped, broad allow prefixes, ports

    /// Every IPv4-mapped address is refused, whatever it maps to and whatever IPv4 prefix is allowed; only an allow
    /// prefix inside ::ffff:0:0/96 opens one.
    @Test func ipv4MappedAddressesAreRefusedWhateverTheyMapTo() throws {
        var policy = EgressPolicy(allowed: [CIDR("127.0.0.0/8")!, CIDR("0.0.0.0/0")!])
        for text in ["::ffff:8.8.8.8", "::ffff:127.0.0.1", "::ffff:168.63.129.16", "::ffff:0.0.0.0"] {
            #expect(!policy.isAllowed(SCTPIPAddress(text)!), "\(text)")
        }
        policy.allow(CIDR("::ffff:8.8.8.0/120")!)
        #expect(policy.isAllowed(SCTPIPAddress("::ffff:8.8.8.8")!))
        #expect(!policy.isAllowed(SCTPIPAddress("::ffff:8.8.4.4")!))
    }

    /// The cloud wire server (168.63.129.16) is refused in every form, like the metadata address.
    @Test func theCloudWireServerIsRefused() {
        for text in ["168.63.129.16", "64:ff9b::a83f:8110", "2002:a83f:8110::1", "::ffff:168.63.129.16"] {
            guard case .refused(let refusal, let why) = Self.policy.check(SCTPIPAddress(text)!) else {
                Issue.record("\(text) should be refused")
                continue
            }
            #expect(refusal == .egressAddress)
            #expect(why.contains("wire server") || why.contains("IPv4-mapped"), "\(text): \(why)")
        }
        #expect(EgressPolicy(allowed: [CIDR("168.63.129.16/32")!]).isAllowed(SCTPIPAddress(v4: 168, 63, 129, 16)))
    }

    /// An allow prefix opens a refused range only from inside it: 0.0.0.0/0 and ::/0 open nothing, a prefix
    /// wider than the range (172.0.0.0/8 around 172.16.0.0/12) neither, and ::/96 does not open ::1.
    @Test func broadAllowPrefixesOpenNothingTheDefaultRefuses() {
        let broad = EgressPolicy(allowed: [CIDR("0.0.0.0/0")!, CIDR("::/0")!, CIDR("172.0.0.0/8")!, CIDR("::/96")!])
        for text in ["127.0.0.1", "10.0.0.1", "169.254.169.254", "168.63.129.16", "172.16.0.1", "fd00::1", "::1"] {
            #expect(!broad.isAllowed(SCTPIPAddress(text)!), "\(text) opened by a broad prefix")
        }
        #expect(broad.isAllowed(SCTPIPAddress("::10.0.0.1")!), "::/96 lies inside the IPv4-compatible range")
        let inside = EgressPolicy(allowed: [CIDR("172.16.0.0/12")!, CIDR("10.20.0.0/16")!])
        #expect(inside.isAllowed(SCTPIPAddress(v4: 172, 16, 0, 1)))
        #expect(inside.isAllowed(SCTPIPAddress(v4: 10, 20, 1, 1)))
        #expect(!inside.isAllowed(SCTPIPAddress(v4: 10, 21, 1, 1)))
    }

    /// The server's own addresses (public, LAN, IPv6) are refused even where an allow prefix covers them, until one
    /// names the address exactly; loopback stays a range of its own.
    @Test func ownAddressesAreRefusedUnlessNamedExactly() throws {
        let own: Set<SCTPIPAddress> = [
            SCTPIPAddress(v4: 93, 184, 216, 34), SCTPIPAddress(v4: 10, 0, 0, 5), SCTPIPAddress("2a00:1450::5")!,
            SCTPIPAddress(v4: 127, 0, 0, 1),
        ]
        let covering = EgressPolicy(
            allowed: ["0.0.0.0/0", "::/0", "93.184.216.0/24", "10.0.0.0/8", "2a00:1450::/32", "127.0.0.0/8"].map {
                CIDR($0)!
            },
            localAddresses: own)
        for text in ["93.184.216.34", "10.0.0.5", "2a00:1450::5", "64:ff9b::5db8:d822", "2002:5db8:d822::1"] {
            guard case .refused(let refusal, _) = covering.check(SCTPIPAddress(text)!) else {
                Issue.record("own address \(text) allowed")
                continue
            }
            #expect(refusal == .egressOwnAddress, "\(text)")
        }
        #expect(covering.isAllowed(SCTPIPAddress(v4: 93, 184, 216, 35)), "a neighbour is not the server")
        #expect(covering.isAllowed(SCTPIPAddress(v4: 10, 0, 0, 6)))
        #expect(covering.isAllowed(SCTPIPAddress(v4: 127, 0, 0, 1)), "loopback is opened by 127.0.0.0/8 as a range")
        let named = EgressPolicy(
            allowed: [CIDR("93.184.216.34/32")!, CIDR("10.0.0.5/32")!, CIDR("2a00:1450::5/128")!],
            localAddresses: own)
        for text in ["93.184.216.34", "10.0.0.5", "2a00:1450::5"] {
            #expect(named.isAllowed(SCTPIPAddress(text)!), "\(text) named exactly")
        }
    }

    @Test func portsOnTheDenyListAreRefused() {
        #expect(Self.policy.check(port: 25) == .refused(.egressPort, "port 25 is on the egress deny list"))
        #expect(Self.policy.check(port: 587) == .allowed)
        #expect(EgressPolicy(deniedPorts: []).check(port: 25) == .allowed)
        #expect(EgressPolicy(deniedPorts: [25, 465]).check(port: 465) != .allowed)
    }
}
