import NIOCore
import SCTPEngine

/// Builds the IPv4 or IPv6 and UDP headers that wrap an SCTP packet on the wire (RFC 6951), with real checksums,
/// so a capture of simulated traffic decodes like a real one.
enum PacketHeaders {
    static let udpHeaderLength = 8

    /// The IP header length for the datagram's address family.
    static func ipHeaderLength(for address: SCTPIPAddress) -> Int {
        address.isIPv4 ? 20 : 40
    }

    /// The size of the whole IP packet carrying `datagram`.
    static func ipPacketLength(of datagram: SCTPDatagram) -> Int {
        ipHeaderLength(for: datagram.destination.ip) + udpHeaderLength + datagram.payload.readableBytes
    }

    /// Writes the IP and UDP headers of `datagram` into `buffer`; false if source and destination families differ
    /// or the packet is too large for its length fields.
    static func write(headersOf datagram: SCTPDatagram, identification: UInt16, into buffer: inout ByteBuffer) -> Bool {
        let payloadLength = datagram.payload.readableBytes
        let udpLength = udpHeaderLength + payloadLength
        guard udpLength <= 0xFFFF else { return false }
        var sum = datagram.payload.withUnsafeReadableBytes { onesComplementSum($0) }
        sum &+= UInt64(datagram.source.port) &+ UInt64(datagram.destination.port) &+ UInt64(udpLength) * 2
        sum &+= 17
        switch (datagram.source.ip, datagram.destination.ip) {
        case (.v4(let source), .v4(let destination)):
            guard udpLength + 20 <= 0xFFFF else { return false }
            sum &+=
                UInt64(source >> 16) &+ UInt64(source & 0xFFFF) &+ UInt64(destination >> 16)
                &+ UInt64(destination & 0xFFFF)
            var header: [UInt16] = [
                0x4500, UInt16(20 + udpLength), identification, 0x4000, 0x4011, 0,
                UInt16(source >> 16), UInt16(source & 0xFFFF), UInt16(destination >> 16), UInt16(destination & 0xFFFF),
            ]
            header[5] = ~fold(header.reduce(UInt64(0)) { $0 &+ UInt64($1) })
            for word in header { buffer.writeInteger(word) }
        case (.v6(let sourceHigh, let sourceLow), .v6(let destinationHigh, let destinationLow)):
            for word in [sourceHigh, sourceLow, destinationHigh, destinationLow] {
                for shift in stride(from: 48, through: 0, by: -16) { sum &+= (word >> UInt64(shift)) & 0xFFFF }
            }
            buffer.writeInteger(UInt32(0x6000_0000))
            buffer.writeInteger(UInt16(udpLength))
            buffer.writeInteger(UInt8(17))
            buffer.writeInteger(UInt8(64))
            for word in [sourceHigh, sourceLow, destinationHigh, destinationLow] { buffer.writeInteger(word) }
        default:
            return false
        }
        var checksum = ~fold(sum)
        // RFC 768: a computed checksum of zero is sent as all ones.
        if checksum == 0 { checksum = 0xFFFF }
        buffer.writeInteger(datagram.source.port)
        buffer.writeInteger(datagram.destination.port)
        buffer.writeInteger(UInt16(udpLength))
        buffer.writeInteger(checksum)
        return true
    }

    /// The one's-complement sum of big-endian 16-bit words (RFC 1071), not yet folded; an odd byte is padded.
    static func onesComplementSum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var sum: UInt64 = 0
        var index = 0
        let count = bytes.count
        while index + 1 < count {
            sum &+= UInt64(bytes[index]) << 8 | UInt64(bytes[index + 1])
            index += 2
        }
        if index < count { sum &+= UInt64(bytes[index]) << 8 }
        return sum
    }

    static func fold(_ value: UInt64) -> UInt16 {
        var sum = value
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return UInt16(sum)
    }
}
