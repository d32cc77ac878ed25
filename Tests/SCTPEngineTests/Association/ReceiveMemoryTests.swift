import NIOCore
import Testing

@testable import SCTPEngine

/// What a peer can make the receiver hold. A DATA chunk's payload is a slice of the datagram it came in, and a slice
/// keeps the whole storage alive: NIO's vector reads put 64 datagrams of 2 KiB in one 128 KiB buffer, so a one-byte
/// fragment held for reassembly would pin 128 KiB while the receive window counts one byte.
@Suite struct ReceiveMemoryTests {
    static let receiveBuffer = 64 * 1024
    /// Storage of the datagram each fragment arrives in, as NIO's vector reads give it.
    static let datagramStorage = 128 * 1024

    /// A DATA packet from the client to the server's association, written into a buffer of `storage` bytes.
    static func dataPacket(_ chunk: DataChunk, to association: Association, storage: Int) -> ByteBuffer {
        var builder = PacketBuilder(
            header: CommonHeader(
                sourcePort: association.peerPort, destinationPort: association.localPort,
                verificationTag: association.localTag, checksum: 0),
            capacity: storage)
        builder.add(.data(chunk))
        return builder.finish()
    }

    /// 3,000 one-byte fragments that never complete (ordered B fragments of distinct SSNs and unordered middle
    /// fragments, all above a hole), each in its own 128 KiB datagram buffer: the receiver holds no more than three
    /// times its receive buffer, counting the storage every held payload keeps alive and 512 bytes of bookkeeping
    /// per held fragment. Without copying small slices and charging the bookkeeping against the window, it held
    /// every fragment, each pinning its 128 KiB.
    @Test func tinyFragmentsCannotPinMoreThanABoundedMultipleOfTheReceiveBuffer() throws {
        let l = Lockstep { $0.receiveBufferSize = Self.receiveBuffer }
        _ = l.connect()
        l.exchange()
        let server = try #require(l.server.associations.values.first)
        let next = server.dataTracker.cumulativeTSN.next
        for i in 0..<3000 {
            let unordered = i % 2 == 1
            let chunk = DataChunk(
                tsn: next.advanced(by: UInt32(2 + i)), streamID: StreamID(0), ssn: SSN(UInt16(1 + i)),
                ppid: PPID(0), isUnordered: unordered, isBeginning: !unordered, isEnding: false,
                userData: ByteBuffer(bytes: [UInt8(truncatingIfNeeded: i)]))
            let packet = Self.dataPacket(chunk, to: server, storage: Self.datagramStorage)
            #expect(packet.storageCapacity == Self.datagramStorage)
            l.deliver(
                [SCTPDatagram(source: l.clientAddress, destination: l.serverAddress, payload: packet)], to: l.server)
            _ = l.take(l.server)
        }
        let held = server.reassembly.heldPayloadStorage
        let fragments = server.reassembly.heldFragmentCount
        #expect(fragments > 0)
        #expect(
            held.storage + fragments * 512 <= 3 * Self.receiveBuffer,
            "\(fragments) fragments pin \(held.storage) bytes of storage for \(held.payload) bytes of payload")
        // The association goes on: the chunk that fills the hole below is still taken.
        #expect(server.dataTracker.hasReceived(next.advanced(by: 2)))
    }

    /// Unordered one-chunk messages are delivered at once and take no buffer, but each one above a hole leaves a
    /// range in the data tracker: past 16,384 ranges the next isolated TSN is dropped unacknowledged and counted.
    @Test func isolatedTSNsBeyondTheGapLimitAreRefusedAndCounted() throws {
        let l = Lockstep()
        _ = l.connect()
        l.exchange()
        let server = try #require(l.server.associations.values.first)
        let next = server.dataTracker.cumulativeTSN.next
        let limit = DataTracker.Configuration().maxGapRanges
        for i in 0..<(limit + 10) {
            let chunk = DataChunk(
                tsn: next.advanced(by: UInt32(2 + 2 * i)), streamID: StreamID(0), ssn: SSN(0), ppid: PPID(0),
                isUnordered: true, userData: ByteBuffer(bytes: [1]))
            let packet = Self.dataPacket(chunk, to: server, storage: 64)
            let datagram = SCTPDatagram(source: l.clientAddress, destination: l.serverAddress, payload: packet)
            l.server.handle(datagram, now: l.now)
            _ = l.take(l.server)
        }
        #expect(server.dataTracker.gapRangeCount == limit)
        #expect(l.server.limitRefusals.tsnGaps == 10)
        #expect(l.server.droppedPackets[.tooManyGaps] == 10)
    }

    /// A small message delivered at once does not pin its datagram either: the application (the proxy's relays)
    /// may hold it as long as a slow socket takes.
    @Test func deliveredSmallMessagesOwnTheirStorage() throws {
        let l = Lockstep { $0.receiveBufferSize = Self.receiveBuffer }
        _ = l.connect()
        l.exchange()
        let server = try #require(l.server.associations.values.first)
        let chunk = DataChunk(
            tsn: server.dataTracker.cumulativeTSN.next, streamID: StreamID(0), ssn: SSN(0), ppid: PPID(0),
            userData: ByteBuffer(string: "ping"))
        let packet = Self.dataPacket(chunk, to: server, storage: Self.datagramStorage)
        l.deliver([SCTPDatagram(source: l.clientAddress, destination: l.serverAddress, payload: packet)], to: l.server)
        let messages = l.serverEvents.compactMap { if case .message(_, let m) = $0 { m } else { nil } }
        #expect(messages.map { String(buffer: $0.payload) } == ["ping"])
        #expect(messages.allSatisfy { $0.payload.storageCapacity <= 2 * $0.payload.readableBytes })
    }
}
