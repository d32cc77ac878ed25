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

/// `SCTPDriver.receiveRest`: the driver's own reads of a socket after NIO's one read per wake-up.
@Suite struct DriverReadRestTests {
    static let loopback = SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: 0)

    /// The address the kernel gave `descriptor`.
    static func address(of descriptor: CInt) -> SCTPSocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return withUnsafePointer(to: &storage) { DatagramReader.address($0) }
    }

    /// A socket closed while its datagrams are being handed up (retired by an event the engine raised: its address
    /// left the host) is not read again: its descriptor is closed, and its number may already name another socket
    /// (the next `socket()` or `accept()` takes the lowest free one), whose datagrams a further `recvmmsg` would
    /// take and hand to the engine as the old socket's.
    @Test func aSocketRetiredWhileItsDatagramsAreHandedUpIsNotReadAgain() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        var options = SCTPDriver.Options()
        options.segmentationOffload = false
        let driver = try await SCTPDriver.bind(
            localAddresses: [Self.loopback], configuration: SCTPConfiguration(), seed: 6, options: options, on: loop
        ).get()
        let (received, othersDatagramLeft) = try await loop.submit { () throws -> (Int, Bool) in
            let bound = driver.localAddresses[0]
            let descriptor = driver.sockets[0].udp.descriptor
            let sender = try UDPSocket.bound(to: Self.loopback, interface: nil, reusePort: false)
            defer { close(sender.descriptor) }
            // Four datagrams: the reader's two slots fill, so it reads again after handing them up.
            for _ in 0..<4 {
                _ = sender.send(ByteBuffer(repeating: 0x5a, count: 100), to: RawSocketAddress(bound), segmentSize: 0)
            }
            var retired = false
            driver.readClock = {
                if !retired {
                    retired = true
                    driver.retireSocket(bound: bound)
                    // Another socket now has the descriptor's number (the lowest free one: at once, as a rule), and
                    // a datagram waiting.
                    let other = try! UDPSocket.bound(to: Self.loopback, interface: nil, reusePort: false)
                    if other.descriptor != descriptor {
                        dup2(other.descriptor, descriptor)
                        close(other.descriptor)
                    }
                    let otherAddress = Self.address(of: descriptor)!
                    _ = sender.send(
                        ByteBuffer(repeating: 0xa5, count: 50), to: RawSocketAddress(otherAddress), segmentSize: 0)
                }
                return .now()
            }
            driver.receiveRest(from: DatagramReader(slots: 2, slotSize: 2048), descriptor: descriptor, on: 0)
            driver.receiveComplete()
            var bytes = [UInt8](repeating: 0, count: 100)
            let length = recv(descriptor, &bytes, bytes.count, CInt(MSG_DONTWAIT))
            close(descriptor)
            return (driver.statistics.datagramsReceived, length == 50)
        }.get()
        #expect(received == 2)
        #expect(othersDatagramLeft)
        try await driver.close().get()
        try await group.shutdownGracefully()
    }
}
