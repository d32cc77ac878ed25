import AggIngress
import NIOCore
import SCTPEngine
import Testing

@testable import AggProtocol
@testable import Proxy

@Suite struct SOCKS5UDPHeaderTests {
    static func parse(_ bytes: [UInt8]) throws(SOCKS5UDPHeader.DecodingError) -> (SOCKS5UDPHeader, [UInt8]) {
        var buffer = ByteBuffer(bytes: bytes)
        let header = try SOCKS5UDPHeader.read(from: &buffer)
        return (header, Array(buffer.readableBytesView))
    }

    @Test func ipv4TargetAndData() throws {
        let (header, data) = try Self.parse([0, 0, 0, 1, 192, 0, 2, 7, 0, 53] + Array("query".utf8))
        #expect(header.target == StreamTarget(host: .ip(SCTPIPAddress(v4: 192, 0, 2, 7)), port: 53))
        #expect(data == Array("query".utf8))
        #expect(header.size == 10)
    }

    @Test func ipv6Target() throws {
        let address: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]
        let (header, data) = try Self.parse([0, 0, 0, 4] + address + [0x01, 0xBB, 0xAA])
        #expect(header.target == StreamTarget(host: .ip(SCTPIPAddress("2001:db8::1")!), port: 443))
        #expect(data == [0xAA])
        #expect(header.size == 22)
    }

    @Test func domainTargetAndLiteralDomain() throws {
        let name = Array("dns.example".utf8)
        let (header, data) = try Self.parse([0, 0, 0, 3, UInt8(name.count)] + name + [0, 53])
        #expect(header.target == StreamTarget(host: .domain("dns.example"), port: 53))
        #expect(data.isEmpty)
        // An IP literal sent as a name is an address.
        let literal = Array("10.1.2.3".utf8)
        let (parsed, _) = try Self.parse([0, 0, 0, 3, UInt8(literal.count)] + literal + [0, 7])
        #expect(parsed.target == StreamTarget(host: .ip(SCTPIPAddress(v4: 10, 1, 2, 3)), port: 7))
    }

    @Test func fragmentsAreRefusedRFC1928Section7() {
        for frag: UInt8 in [1, 0x7F, 0x81] {
            #expect(throws: SOCKS5UDPHeader.DecodingError.fragmented(frag)) {
                try Self.parse([0, 0, frag, 1, 1, 2, 3, 4, 0, 53, 9])
            }
        }
    }

    @Test func malformedHeadersAreRefusedWithoutConsumingInput() {
        let cases: [([UInt8], SOCKS5UDPHeader.DecodingError)] = [
            ([], .truncated),
            ([0, 0, 0], .truncated),
            ([0, 0, 0, 1, 1, 2, 3], .truncated),
            ([0, 0, 0, 1, 1, 2, 3, 4, 0], .truncated),
            ([0, 0, 0, 4] + [UInt8](repeating: 0, count: 15), .truncated),
            ([0, 0, 0, 3, 5, 0x61, 0x62], .truncated),
            ([0, 0, 0, 3, 0, 0, 53], .invalidDomain),
            ([0, 0, 0, 3, 3, 0x61, 0x00, 0x62, 0, 53], .invalidDomain),
            ([0, 0, 0, 3, 3, 0x61, 0x20, 0x62, 0, 53], .invalidDomain),
            ([0, 1, 0, 1, 1, 2, 3, 4, 0, 53], .nonZeroReserved),
            ([0, 0, 0, 2, 1, 2, 3, 4, 0, 53], .unknownAddressType(2)),
            ([0, 0, 0, 1, 1, 2, 3, 4, 0, 0], .zeroPort),
        ]
        for (bytes, error) in cases {
            var buffer = ByteBuffer(bytes: bytes)
            #expect(throws: error) { try SOCKS5UDPHeader.read(from: &buffer) }
            #expect(buffer.readerIndex == 0)
        }
    }

    @Test func replyHeaderRoundTripsForEveryAddressType() throws {
        let targets = [
            StreamTarget(host: .ip(SCTPIPAddress(v4: 198, 51, 100, 9)), port: 5353),
            StreamTarget(host: .ip(SCTPIPAddress("2001:db8::53")!), port: 53),
            StreamTarget(host: .domain("a.example"), port: 443),
        ]
        for target in targets {
            var buffer = ByteBuffer()
            SOCKS5UDPHeader(target: target).write(into: &buffer)
            #expect(buffer.readableBytes == SOCKS5UDPHeader(target: target).size)
            buffer.writeBytes([1, 2, 3])
            let (header, data) = try Self.parse(Array(buffer.readableBytesView))
            #expect(header.target == target)
            #expect(data == [1, 2, 3])
        }
    }
}

@Suite struct UDPMessageTests {
    @Test func datagramRoundTripsForEveryAddressType() throws {
        let targets = [
            StreamTarget(host: .ip(SCTPIPAddress(v4: 192, 0, 2, 1)), port: 53),
            StreamTarget(host: .ip(SCTPIPAddress("2001:db8::1")!), port: 443),
            StreamTarget(host: .domain("dns.example"), port: 53),
        ]
        for target in targets {
            let message = UDPMessage.datagram(flow: 0xDEAD_BEEF, peer: target, payload: ByteBuffer(string: "x"))
            let decoded = try UDPMessage.decode(ppid: message.ppid, payload: message.encode(), unordered: true)
            #expect(decoded == message)
        }
        // An empty datagram is a datagram (UDP allows it; SCTP's message is never empty: the header is in it).
        let empty = UDPMessage.datagram(
            flow: 1, peer: StreamTarget(host: .ip(.v4(1)), port: 9), payload: ByteBuffer())
        #expect(try UDPMessage.decode(ppid: empty.ppid, payload: empty.encode(), unordered: true) == empty)
    }

    @Test func datagramLayoutIsFlowThenTargetThenPayload() {
        let message = UDPMessage.datagram(
            flow: 7, peer: StreamTarget(host: .ip(SCTPIPAddress(v4: 10, 0, 0, 1)), port: 53),
            payload: ByteBuffer(bytes: [0xAB]))
        #expect(Array(message.encode().readableBytesView) == [0, 0, 0, 7, 1, 10, 0, 0, 1, 0, 53, 0xAB])
        #expect(message.ppid == PPID(0x6167_6720))
        #expect(UDPMessage.close(flow: 7, reason: .closed).ppid == PPID(0x6167_6721))
    }

    @Test func closeRoundTrips() throws {
        for reason in [UDPCloseReason.closed, .notAllowed, .dnsFailure, .tooManyFlows, .generalFailure] {
            let message = UDPMessage.close(flow: 42, reason: reason)
            #expect(try UDPMessage.decode(ppid: message.ppid, payload: message.encode(), unordered: false) == message)
        }
    }

    /// A message as the association delivered it is checked with its stream and ordering, as the services read it.
    @Test func aDeliveredMessageDecodesWithItsStreamAndOrdering() throws {
        let message = UDPMessage.datagram(
            flow: 9, peer: StreamTarget(host: .domain("dns.example"), port: 53), payload: ByteBuffer(string: "q"))
        func delivered(stream: UInt16 = 0, unordered: Bool = true) -> SCTPMessage {
            SCTPMessage(stream: StreamID(stream), ppid: message.ppid, isUnordered: unordered, payload: message.encode())
        }
        #expect(try UDPMessage.decode(delivered()) == message)
        #expect(throws: UDPDecodingError.wrongStream(StreamID(3))) { try UDPMessage.decode(delivered(stream: 3)) }
        #expect(throws: UDPDecodingError.orderedDatagram) { try UDPMessage.decode(delivered(unordered: false)) }
    }

    @Test func malformedMessagesAreRejected() {
        let datagram = UDPMessage.datagramPPID
        let close = UDPMessage.closePPID
        let cases: [(PPID, [UInt8], Bool, UDPDecodingError)] = [
            (datagram, [0, 0, 1], true, .truncated),
            (datagram, [0, 0, 0, 1, 1, 10, 0], true, .truncated),
            (datagram, [0, 0, 0, 1, 9, 10, 0, 0, 1, 0, 53], true, .unknownAddressType(9)),
            (datagram, [0, 0, 0, 1, 3, 0, 0, 53], true, .invalidDomain),
            (datagram, [0, 0, 0, 1, 1, 10, 0, 0, 1, 0, 0], true, .zeroPort),
            (datagram, [0, 0, 0, 1, 1, 10, 0, 0, 1, 0, 53], false, .orderedDatagram),
            (close, [0, 0, 0, 1, 0], true, .unorderedClose),
            (close, [0, 0, 0, 1, 99], false, .unknownCloseReason(99)),
            (close, [0, 0, 0, 1, 0, 0], false, .trailingBytes(1)),
            (PPID(0x6167_6722), [0, 0, 0, 1], false, .unknownPPID(0x6167_6722)),
        ]
        for (ppid, bytes, unordered, error) in cases {
            #expect(throws: error) {
                try UDPMessage.decode(ppid: ppid, payload: ByteBuffer(bytes: bytes), unordered: unordered)
            }
        }
        #expect(throws: UDPDecodingError.wrongStream(StreamID(3))) {
            try UDPMessage.decode(
                ppid: close, payload: ByteBuffer(bytes: [0, 0, 0, 1, 0]), stream: StreamID(3), unordered: false)
        }
        var large = ByteBuffer(bytes: [0, 0, 0, 1, 1, 10, 0, 0, 1, 0, 53])
        large.writeRepeatingByte(0, count: UDPMessage.maxPayload + 1)
        #expect(throws: UDPDecodingError.payloadTooLarge(UDPMessage.maxPayload + 1)) {
            try UDPMessage.decode(ppid: datagram, payload: large, unordered: true)
        }
    }
}

@Suite struct UDPFlowTableTests {
    static let dns = StreamTarget(host: .ip(SCTPIPAddress(v4: 192, 0, 2, 53)), port: 53)
    static let web = StreamTarget(host: .domain("quic.example"), port: 443)

    /// The flow id for (relay, port, target) and whether it is new, as a string ("1 new", "1"), or "full".
    static func flow(
        _ table: inout UDPFlowTable, relay: Int = 0, port: UInt16, _ target: StreamTarget = dns, now: UInt64 = 0
    ) -> String {
        guard let (id, isNew) = table.flow(for: .init(relay: relay, clientPort: port, target: target), now: now) else {
            return "full"
        }
        return isNew ? "\(id) new" : "\(id)"
    }

    @Test func aFlowIsOneRelayPortAndTarget() {
        var table = UDPFlowTable(limit: 8)
        #expect(Self.flow(&table, port: 5000) == "1 new")
        #expect(Self.flow(&table, port: 5000, now: 5) == "1")
        #expect(Self.flow(&table, port: 5000, Self.web) == "2 new")
        #expect(Self.flow(&table, port: 5001) == "3 new")
        #expect(Self.flow(&table, relay: 1, port: 5000) == "4 new")
        let known = table.receive(on: 3, now: 9)
        #expect(known?.key == .init(relay: 0, clientPort: 5001, target: Self.dns))
        let unknown = table.receive(on: 99, now: 9)
        #expect(unknown == nil)
    }

    @Test func idsAreNeverReused() {
        var table = UDPFlowTable(limit: 8)
        #expect(Self.flow(&table, port: 5000) == "1 new")
        let removed = table.remove(1)
        let again = table.remove(1)
        #expect(removed && !again)
        #expect(Self.flow(&table, port: 5000) == "2 new")
        table.removeAll()
        #expect(Self.flow(&table, port: 5000) == "3 new")
    }

    @Test func theLimitRefusesNewFlowsOnly() {
        var table = UDPFlowTable(limit: 2)
        #expect(Self.flow(&table, port: 1) == "1 new")
        #expect(Self.flow(&table, port: 2) == "2 new")
        #expect(Self.flow(&table, port: 3) == "full")
        #expect(Self.flow(&table, port: 1) == "1")
        let removed = table.remove(2)
        #expect(removed)
        #expect(Self.flow(&table, port: 3) == "3 new")
    }

    @Test func idleFlowsExpireAndActivityEitherWayKeepsThem() {
        var table = UDPFlowTable(limit: 8)
        for port: UInt16 in [1, 2, 3] { _ = Self.flow(&table, port: port) }
        _ = Self.flow(&table, port: 2, now: 50)  // a datagram up
        _ = table.receive(on: 3, now: 60)  // one down
        let first = table.expire(now: 100, idle: 100)
        let none = table.expire(now: 149, idle: 100)
        let rest = table.expire(now: 160, idle: 100)
        #expect(first == [1] && none == [] && rest == [2, 3])
        #expect(table.count == 0)
    }

    @Test func endingARelayForgetsItsFlowsOnly() {
        var table = UDPFlowTable(limit: 8)
        _ = Self.flow(&table, relay: 0, port: 1)
        _ = Self.flow(&table, relay: 1, port: 1)
        _ = Self.flow(&table, relay: 0, port: 1, Self.web)
        let ended = table.removeAll(relay: 0)
        #expect(ended == [1, 3])
        #expect(table.count == 1)
        let left = table.receive(on: 2, now: 1)
        #expect(left != nil)
    }
}
