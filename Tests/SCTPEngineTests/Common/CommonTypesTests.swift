import Testing

@testable import SCTPEngine

@Suite struct SerialNumberTests {
    @Test func tsnComparisonFollowsRFC1982AcrossWrap() {
        #expect(TSN(0xFFFF_FFFF).isBefore(TSN(0)))
        #expect(TSN(0).isAfter(TSN(0xFFFF_FFFF)))
        #expect(TSN(5).isBefore(TSN(6)))
        #expect(!TSN(5).isBefore(TSN(5)))
        #expect(TSN(0x7FFF_FFFF).isAfter(TSN(0)))
        #expect(TSN(0x8000_0001).isBefore(TSN(0)))
        #expect(TSN(0xFFFF_FFFF).next == TSN(0))
    }

    @Test func ssnComparisonWrapsAt16Bits() {
        #expect(SSN(0xFFFF).isBefore(SSN(0)))
        #expect(SSN(0xFFFF).next == SSN(0))
        #expect(SSN(1).isAfter(SSN(0xFFF0)))
    }
}

@Suite struct AddressTests {
    @Test func parsesAndPrintsIPv4() {
        let a = SCTPIPAddress("192.0.2.17")
        #expect(a == .init(v4: 192, 0, 2, 17))
        #expect(a?.description == "192.0.2.17")
        #expect(SCTPIPAddress("256.0.0.1") == nil)
        #expect(SCTPIPAddress("1.2.3") == nil)
        #expect(SCTPIPAddress("1.2.3.4.5") == nil)
    }

    @Test func parsesAndPrintsIPv6() {
        #expect(SCTPIPAddress("::1") == .v6(0, 1))
        #expect(SCTPIPAddress("::")?.isWildcard == true)
        #expect(SCTPIPAddress("2001:db8::8:800:200c:417a")?.description == "2001:db8::8:800:200c:417a")
        #expect(SCTPIPAddress("::ffff:192.0.2.1") == .v6(0, 0x0000_FFFF_C000_0201))
        #expect(SCTPIPAddress("1::2::3") == nil)
        #expect(SCTPIPAddress("1:2:3:4:5:6:7:8:9") == nil)
    }

    @Test func bytesRoundTrip() {
        for text in ["10.1.2.3", "fe80::1", "2001:db8:1:2:3:4:5:6"] {
            let a = SCTPIPAddress(text)!
            #expect(SCTPIPAddress(bytes: a.bytes) == a)
        }
        #expect(SCTPIPAddress(bytes: [1, 2, 3]) == nil)
    }

    @Test func socketAddressParsing() {
        #expect(SCTPSocketAddress("127.0.0.2:9899") == SCTPSocketAddress(ip: .init(v4: 127, 0, 0, 2), port: 9899))
        #expect(SCTPSocketAddress("[::1]:80")?.description == "[::1]:80")
        #expect(SCTPSocketAddress("::1:80") == nil)
        #expect(SCTPSocketAddress("1.2.3.4") == nil)
    }
}

@Suite struct RandomTests {
    @Test func sameSeedSameSequence() {
        var a = SCTPRandom(seed: 42)
        var b = SCTPRandom(seed: 42)
        var c = SCTPRandom(seed: 43)
        let sa = (0..<8).map { _ in a.next() }
        #expect(sa == (0..<8).map { _ in b.next() })
        #expect(sa != (0..<8).map { _ in c.next() })
        #expect(a.nonZero32() != 0)
    }
}
