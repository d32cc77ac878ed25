import CFuzzerDriver
import Foundation
import NIOCore
import SCTPEngine

/// libFuzzer entry point for a live association: a client and a server `SCTPEndpoint` complete a real handshake
/// in virtual time, exchange a little data, and the server keeps three messages in flight; then the input is cut
/// into packets that are fed to the server as if the client had sent them.
///
/// Each record of the input is `flags` (1 byte), `length` (2 bytes, little endian) and that many bytes of chunks.
/// The harness prepends the common header: most of the time with the association's ports and verification tag and
/// a correct CRC32c, so the chunks reach the state machine; `flags` sometimes breaks the tag or the checksum,
/// advances the clock (timers fire), or lets the two endpoints talk until they fall quiet.
///
/// The findings: any trap, and memory that grows without bound. After every packet the harness checks that the
/// server holds at most two associations (the handshake's, and none per INIT: cookies are stateless), that its
/// queued and in-flight bytes stay within the send buffer, and that one input packet never makes it emit more than
/// a bounded number of datagrams (no amplification loop).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAssociation(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    let pair = AssociationPair()
    while let flags = input.readInteger(as: UInt8.self), let length = input.readInteger(endianness: .little, as: UInt16.self) {
        let chunks = input.readSlice(length: min(Int(length) % 2048, input.readableBytes)) ?? ByteBuffer()
        pair.inject(chunks, flags: flags)
    }
    return 0
}

/// Two endpoints joined by a lossless, instantaneous link that the harness pumps by hand.
final class AssociationPair {
    static let clientAddress = SCTPSocketAddress(ip: SCTPIPAddress(v4: 10, 0, 0, 1), port: 40000)
    static let serverAddress = SCTPSocketAddress(ip: SCTPIPAddress(v4: 10, 0, 0, 2), port: 9899)
    /// Datagrams one injected packet may cause, replies to replies included.
    static let maxDatagramsPerPacket = 2000

    let client: SCTPEndpoint
    let server: SCTPEndpoint
    var now = SCTPTime(nanoseconds: 1_000_000_000)
    /// The server's verification tag, learnt from the client's packets during the handshake.
    var serverTag: UInt32 = 0
    var clientPort: UInt16 = 0
    var serverPort: UInt16 = 0
    /// The client → server packets of the setup phase (chunks only), for `--write-seeds`.
    var recorded: [ByteBuffer] = []
    var recording = false

    init() {
        var configuration = SCTPConfiguration()
        configuration.localPort = 5000
        client = SCTPEndpoint(configuration: configuration, seed: 1)
        server = SCTPEndpoint(configuration: configuration, seed: 2)
        let id = client.connect(to: Self.serverAddress, from: Self.clientAddress, peerPort: 5000, now: now)
        pump()
        precondition(server.associationIDs.count == 1, "the handshake did not complete")
        // Client → server data (stream 1 and 2), then the server's messages that stay in flight: their datagrams
        // are dropped, so SACKs the fuzzer forges have something to acknowledge.
        for stream in 1...2 {
            try? client.send(
                ByteBuffer(repeating: UInt8(stream), count: 300), on: id, stream: StreamID(UInt16(stream)), now: now)
        }
        pump()
        let serverID = server.associationIDs[0]
        for stream in 1...3 {
            try? server.send(
                ByteBuffer(repeating: 0xEE, count: 1200), on: serverID, stream: StreamID(UInt16(stream)), now: now)
        }
        while server.pollTransmit() != nil {}
        while server.pollEvent() != nil {}
        while client.pollEvent() != nil {}
    }

    /// Delivers every queued datagram both ways until neither endpoint has anything to send.
    func pump(limit: Int = maxDatagramsPerPacket) {
        var delivered = 0
        while delivered < limit {
            var moved = false
            while let datagram = client.pollTransmit() {
                learn(from: datagram.payload)
                server.handle(datagram, now: now)
                delivered += 1
                moved = true
            }
            while let datagram = server.pollTransmit() {
                client.handle(datagram, now: now)
                delivered += 1
                moved = true
            }
            if !moved { return }
        }
        fatalError("the endpoints exchanged more than \(limit) datagrams after one packet")
    }

    func learn(from packet: ByteBuffer) {
        guard let header = packet.getBytes(at: packet.readerIndex, length: 12) else { return }
        clientPort = UInt16(header[0]) << 8 | UInt16(header[1])
        serverPort = UInt16(header[2]) << 8 | UInt16(header[3])
        let tag = UInt32(header[4]) << 24 | UInt32(header[5]) << 16 | UInt32(header[6]) << 8 | UInt32(header[7])
        if tag != 0 { serverTag = tag }
        if recording, let chunks = packet.getSlice(at: packet.readerIndex + 12, length: packet.readableBytes - 12) {
            recorded.append(chunks)
        }
    }

    /// Sends `chunks` to the server under a common header that `flags` may break, then checks the bounds.
    func inject(_ chunks: ByteBuffer, flags: UInt8) {
        var tag = serverTag
        switch (flags >> 3) & 7 {
        case 6: tag = 0  // INIT's tag.
        case 7: tag = serverTag ^ 0x0101_0101  // Wrong tag: must be dropped or answered out of the blue.
        default: break
        }
        var packet = ByteBuffer()
        packet.writeInteger(clientPort)
        packet.writeInteger(serverPort)
        packet.writeInteger(tag)
        packet.writeInteger(UInt32(0))
        packet.writeImmutableBuffer(chunks)
        if flags & 7 != 7 {
            packet.setInteger(CRC32c.packetChecksum(packet), at: 8, endianness: .little)
        }
        server.handle(SCTPDatagram(source: Self.clientAddress, destination: Self.serverAddress, payload: packet), now: now)

        if flags & 0x40 != 0 {
            // Timers: step to the next deadline, bounded so a long input cannot run the clock forever.
            now = now + .milliseconds(Int64(flags & 7) * 100 + 50)
            if let deadline = server.nextDeadline(), deadline <= now { server.handleTimeout(now: now) }
            if let deadline = client.nextDeadline(), deadline <= now { client.handleTimeout(now: now) }
        }
        if flags & 0x80 != 0 {
            pump()
        } else {
            var emitted = 0
            while server.pollTransmit() != nil {
                emitted += 1
                precondition(emitted <= Self.maxDatagramsPerPacket, "one packet made the server send too much")
            }
        }
        while server.pollEvent() != nil {}
        while client.pollEvent() != nil {}
        checkBounds()
    }

    func checkBounds() {
        let ids = server.associationIDs
        precondition(ids.count <= 2, "the server holds \(ids.count) associations")
        for id in ids {
            let buffered = server.bufferedAmount(id)
            precondition(
                buffered <= server.configuration.sendBufferSize,
                "the server buffers \(buffered) bytes, above its send buffer")
        }
    }

    /// Writes seed inputs: the client's real packets of a setup and a short exchange, one record each, and all of
    /// them in sequence.
    static func writeSeeds(to directory: String) {
        let pair = AssociationPair()
        pair.recording = true
        let id = pair.client.associationIDs[0]
        for round in 0..<4 {
            try? pair.client.send(
                ByteBuffer(repeating: UInt8(round), count: 100 + 700 * round), on: id,
                stream: StreamID(UInt16(round + 1)), unordered: round == 3, now: pair.now)
            pair.pump()
            pair.now = pair.now + .milliseconds(300)
            pair.client.handleTimeout(now: pair.now)
            pair.server.handleTimeout(now: pair.now)
            pair.pump()
        }
        pair.now = pair.now + .seconds(20)  // A heartbeat.
        pair.client.handleTimeout(now: pair.now)
        pair.pump()
        pair.client.shutdown(id, now: pair.now)
        pair.pump()
        var all = Data()
        for (index, chunks) in pair.recorded.enumerated() {
            var record = Data([0x80])
            withUnsafeBytes(of: UInt16(chunks.readableBytes).littleEndian) { record.append(contentsOf: $0) }
            record.append(contentsOf: chunks.readableBytesView)
            all.append(record)
            let path = "\(directory)/client-packet-\(String(format: "%02d", index))"
            _ = FileManager.default.createFile(atPath: path, contents: record)
        }
        _ = FileManager.default.createFile(atPath: "\(directory)/client-sequence", contents: all)
        print("wrote \(pair.recorded.count + 1) seeds to \(directory)")
    }
}

/// The executable's entry point (SwiftPM aliases an executable's `main` to `<module>_main`): libFuzzer's driver,
/// or `--write-seeds DIR` to regenerate the seed corpus from a real exchange.
@_cdecl("AssociationFuzzer_main")
public func associationFuzzerMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    let arguments = CommandLine.arguments
    if arguments.count == 3, arguments[1] == "--write-seeds" {
        AssociationPair.writeSeeds(to: arguments[2])
        return 0
    }
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzAssociation(data, size) }
}
