import NIOCore
import NIOPosix
import SCTPEngine
import Testing

@testable import AggTransport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// `DatagramReader`: the driver's own `recvmmsg` hands over each datagram with its source, splits nothing itself
/// (the segment size goes with the run), drops and counts what did not fit its slot, and reports an empty socket.
@Suite struct DatagramReaderTests {
    static let loopback = SCTPSocketAddress(ip: .init(v4: 127, 0, 0, 1), port: 0)

    /// A bound non-blocking socket and the address the kernel gave it.
    static func socket(_ address: SCTPSocketAddress = loopback) throws -> (UDPSocket, SCTPSocketAddress) {
        let socket = try UDPSocket.bound(to: address, interface: nil, reusePort: false)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket.descriptor, $0, &length) }
        }
        var bound = try #require(withUnsafePointer(to: &storage) { DatagramReader.address($0) })
        if bound.ip.isWildcard { bound.ip = loopback.ip }
        return (socket, bound)
    }

    static func setOption(_ socket: UDPSocket, level: CInt, name: CInt) {
        var on: CInt = 1
        _ = setsockopt(socket.descriptor, level, name, &on, socklen_t(MemoryLayout<CInt>.size))
    }

    /// Reads once; what was handed over.
    static func read(
        _ reader: DatagramReader, _ socket: UDPSocket
    ) -> (DatagramReader.Result, [DatagramReader.Datagram]) {
        var datagrams: [DatagramReader.Datagram] = []
        let result = reader.read(socket.descriptor) { datagrams.append($0) }
        return (result, datagrams)
    }

    @Test func aBatchIsReadWithItsSourceThenTheSocketIsEmpty() throws {
        let (receiver, address) = try Self.socket()
        let (sender, source) = try Self.socket()
        defer {
            close(receiver.descriptor)
            close(sender.descriptor)
        }
        for text in ["a", "bb", "ccc"] {
            #expect(sender.send(ByteBuffer(string: text), to: RawSocketAddress(address), segmentSize: 0) == .sent)
        }
        let reader = DatagramReader(slots: 8, slotSize: 2048)
        let (result, datagrams) = Self.read(reader, receiver)
        #expect(result == .read(count: 3))
        #expect(datagrams.map { String(buffer: $0.payload) } == ["a", "bb", "ccc"])
        #expect(datagrams.allSatisfy { $0.source == source && $0.segmentSize == 0 && $0.destination == nil })
        let (again, none) = Self.read(reader, receiver)
        #expect(again == .wouldBlock)
        #expect(none.isEmpty)
    }

    @Test func aDatagramLargerThanItsSlotIsDroppedAndCounted() throws {
        let (receiver, address) = try Self.socket()
        let (sender, _) = try Self.socket()
        defer {
            close(receiver.descriptor)
            close(sender.descriptor)
        }
        _ = sender.send(ByteBuffer(repeating: 1, count: 200), to: RawSocketAddress(address), segmentSize: 0)
        _ = sender.send(ByteBuffer(repeating: 2, count: 50), to: RawSocketAddress(address), segmentSize: 0)
        let reader = DatagramReader(slots: 4, slotSize: 100)
        let (result, datagrams) = Self.read(reader, receiver)
        #expect(result == .read(count: 2))
        #expect(datagrams.map(\.payload.readableBytes) == [50])
        #expect(reader.truncated == 1)
    }

    @Test func aRunOfOffloadedSegmentsComesWithItsSegmentSize() throws {
        guard System.supportsUDPReceiveOffload, System.supportsUDPSegmentationOffload else { return }
        let (receiver, address) = try Self.socket()
        let (sender, _) = try Self.socket()
        defer {
            close(receiver.descriptor)
            close(sender.descriptor)
        }
        Self.setOption(receiver, level: DatagramReader.solUDP, name: DatagramReader.udpGRO)
        // Three datagrams of 1,000 bytes and one of 300 in one send: the kernel keeps the run whole for a socket
        // with UDP_GRO on and reports the size.
        var run = ByteBuffer(repeating: 7, count: 3000)
        run.writeRepeatingByte(8, count: 300)
        #expect(sender.send(run, to: RawSocketAddress(address), segmentSize: 1000) == .sent)
        let reader = DatagramReader(slots: 2, slotSize: 65_536)
        let (result, datagrams) = Self.read(reader, receiver)
        #expect(result == .read(count: 1))
        #expect(datagrams.first?.segmentSize == 1000)
        #expect(datagrams.first?.payload == run)
    }

    @Test func aWildcardSocketLearnsEachDatagramsDestination() throws {
        let (receiver, address) = try Self.socket(SCTPSocketAddress(ip: .anyV4, port: 0))
        let (sender, _) = try Self.socket()
        defer {
            close(receiver.descriptor)
            close(sender.descriptor)
        }
        Self.setOption(receiver, level: CInt(IPPROTO_IP), name: CInt(IP_PKTINFO))
        _ = sender.send(ByteBuffer(string: "x"), to: RawSocketAddress(address), segmentSize: 0)
        let (_, datagrams) = Self.read(DatagramReader(slots: 2, slotSize: 2048), receiver)
        #expect(datagrams.map(\.destination) == [Self.loopback.ip])
    }

    @Test func aSliceStillHeldIsNeverWrittenOverAndAFreeBufferIsReused() throws {
        let (receiver, address) = try Self.socket()
        let (sender, _) = try Self.socket()
        defer {
            close(receiver.descriptor)
            close(sender.descriptor)
        }
        let reader = DatagramReader(slots: 2, slotSize: 2048)
        func storage(_ buffer: ByteBuffer) -> UInt? {
            buffer.withVeryUnsafeBytes { $0.baseAddress.map { UInt(bitPattern: $0) } }
        }
        _ = sender.send(ByteBuffer(string: "first"), to: RawSocketAddress(address), segmentSize: 0)
        var (_, datagrams) = Self.read(reader, receiver)
        let kept = try #require(datagrams.first?.payload)
        datagrams = []
        _ = sender.send(ByteBuffer(string: "second"), to: RawSocketAddress(address), segmentSize: 0)
        var second: [String] = []
        var secondStorage: UInt?
        _ = reader.read(receiver.descriptor) { datagram in
            second.append(String(buffer: datagram.payload))
            secondStorage = storage(datagram.payload)
        }
        #expect(String(buffer: kept) == "first")
        #expect(second == ["second"])
        #expect(secondStorage != storage(kept))
        // Once nothing holds the second read's buffer, the third reads into it again.
        _ = sender.send(ByteBuffer(string: "third"), to: RawSocketAddress(address), segmentSize: 0)
        var third: [UInt?] = []
        _ = reader.read(receiver.descriptor) { third.append(storage($0.payload)) }
        #expect(third == [secondStorage])
    }
}
