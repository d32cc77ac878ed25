import NIOCore
import SCTPEngine
import Testing

@testable import AggTransport

@Suite struct AddressConversionTests {
    @Test(arguments: [
        "127.0.0.1:9899", "10.1.2.3:0", "255.255.255.255:65535", "[::1]:9899", "[2001:db8::42]:1234",
        "[fe80::1:2:3:4]:5", "[::ffff:192.0.2.1]:80",
    ])
    func engineToNIOAndBack(_ text: String) throws {
        let address = try #require(SCTPSocketAddress(text))
        let nio = SocketAddress(address)
        #expect(nio.port == Int(address.port))
        #expect(SCTPSocketAddress(nio) == address)
    }

    @Test func nioAddressesFromTextAgree() throws {
        let v4 = try SocketAddress(ipAddress: "192.0.2.7", port: 4242)
        #expect(SCTPSocketAddress(v4) == SCTPSocketAddress(ip: SCTPIPAddress(v4: 192, 0, 2, 7), port: 4242))
        let v6 = try SocketAddress(ipAddress: "2001:db8::1", port: 9899)
        #expect(SCTPSocketAddress(v6) == SCTPSocketAddress("[2001:db8::1]:9899"))
        #expect(
            SocketAddress(SCTPSocketAddress(ip: SCTPIPAddress(v4: 192, 0, 2, 7), port: 4242)).ipAddress == "192.0.2.7")
        #expect(SocketAddress(try #require(SCTPSocketAddress("[2001:db8::1]:1"))).ipAddress == "2001:db8::1")
    }

    @Test func unixDomainSocketsHaveNoEngineForm() throws {
        let unix = try SocketAddress(unixDomainSocketPath: "/tmp/agg.sock")
        #expect(SCTPSocketAddress(unix) == nil)
    }

    @Test func driverClockIsNIOsUptimeClock() {
        let before = NIODeadline.now().uptimeNanoseconds
        let now = SCTPTime.now()
        let after = NIODeadline.now().uptimeNanoseconds
        #expect(UInt64(now.nanoseconds) >= before && UInt64(now.nanoseconds) <= after)
        #expect(now.nioDeadline.uptimeNanoseconds == UInt64(now.nanoseconds))
    }
}
