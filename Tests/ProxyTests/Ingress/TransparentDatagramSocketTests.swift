import NIOCore
import SCTPEngine
import Testing

@testable import AggIngress

/// The control-message walk that finds a tproxied datagram's original destination (IP_ORIGDSTADDR and
/// IPV6_ORIGDSTADDR) in a `recvmsg` control buffer, on buffers laid out as Linux lays them out.
@Suite struct TransparentDatagramSocketTests {
    /// One control message: `size_t` length, `int` level, `int` type, then the data, padded to 8 bytes.
    static func message(level: Int32, type: Int32, data: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: 16 + data.count) { bytes += $0 }
        withUnsafeBytes(of: level) { bytes += $0 }
        withUnsafeBytes(of: type) { bytes += $0 }
        bytes += data
        while bytes.count % 8 != 0 { bytes.append(0) }
        return bytes
    }

    /// A `sockaddr_in` for 93.184.216.34:443 (family in host order, port and address in network order).
    static let sockaddrV4: [UInt8] = [2, 0, 0x01, 0xBB, 93, 184, 216, 34] + [UInt8](repeating: 0, count: 8)

    @Test func findsTheIPv4OriginalDestinationAfterAnotherMessage() {
        // IP_TTL (level 0, type 2) first, as when the socket also asked for it.
        let control =
            Self.message(level: 0, type: 2, data: [64, 0, 0, 0])
            + Self.message(level: 0, type: 20, data: Self.sockaddrV4)
        let found = control.withUnsafeBytes { TransparentDatagramSocket.originalDestination(control: $0) }
        #expect(found == SCTPSocketAddress(ip: SCTPIPAddress("93.184.216.34")!, port: 443))
    }

    @Test func findsTheIPv6OriginalDestination() {
        var sockaddr: [UInt8] = [10, 0, 0x00, 0x35, 0, 0, 0, 0]
        sockaddr += [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]
        sockaddr += [0, 0, 0, 0]
        let control = Self.message(level: 41, type: 74, data: sockaddr)
        let found = control.withUnsafeBytes { TransparentDatagramSocket.originalDestination(control: $0) }
        #expect(found == SCTPSocketAddress(ip: SCTPIPAddress("2001:db8::1")!, port: 53))
    }

    @Test func aBufferWithoutItOrCutShortGivesNothing() {
        let other = Self.message(level: 0, type: 2, data: [64, 0, 0, 0])
        #expect(other.withUnsafeBytes { TransparentDatagramSocket.originalDestination(control: $0) } == nil)
        let whole = Self.message(level: 0, type: 20, data: Self.sockaddrV4)
        let cut = Array(whole.prefix(20))
        #expect(cut.withUnsafeBytes { TransparentDatagramSocket.originalDestination(control: $0) } == nil)
        // A length below the header's size must not loop forever or read outside.
        var bogus = whole
        bogus.replaceSubrange(0..<8, with: [UInt8](repeating: 0, count: 8))
        #expect(bogus.withUnsafeBytes { TransparentDatagramSocket.originalDestination(control: $0) } == nil)
        #expect([UInt8]().withUnsafeBytes { TransparentDatagramSocket.originalDestination(control: $0) } == nil)
    }
}
