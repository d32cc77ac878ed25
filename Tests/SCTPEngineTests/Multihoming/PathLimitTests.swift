import NIOCore
import Testing

@testable import SCTPEngine

/// One association holds at most `maxPathsPerAssociation` paths (8 by default), however many addresses its peer
/// adds with ASCONF or lists in INIT-ACK: each path costs timers, congestion state and heartbeats.
@Suite struct PathLimitTests {
    /// The client adds 11 addresses, one ASCONF each, to a server with the default limit: the first 7 are
    /// acknowledged (8 paths), the other 4 are refused with "Operation Refused Due to Resource Shortage" carrying
    /// the refused Add IP Address parameter, counted, and leave the server's paths as they were.
    @Test func asconfAddBeyondTheLimitIsRefusedWithResourceShortage() throws {
        let l = Lockstep()
        let id = l.connect()
        l.exchange()
        let server = try #require(l.server.associations.values.first)
        #expect(server.paths.count == 1)
        for i in 2...12 {
            let address = SCTPSocketAddress(ip: .init(v4: 10, 0, 0, UInt8(i)), port: UInt16(40000 + i))
            try l.client.addLocalAddress(address, toward: l.serverAddress, on: id, now: l.now)
        }
        var successes = 0
        var refusals: [ErrorCause] = []
        var refusedRequests: [UInt32] = []
        for _ in 0..<100 {
            let fromClient = l.take(l.client)
            let fromServer = l.take(l.server)
            if fromClient.isEmpty && fromServer.isEmpty { break }
            for datagram in fromServer {
                for case .asconfAck(let ack) in try SCTPPacket.decode(datagram.payload).chunks {
                    for parameter in ack.parameters {
                        switch parameter {
                        case .successIndication: successes += 1
                        case .errorCauseIndication(let correlationID, let causes):
                            refusals += causes
                            refusedRequests.append(correlationID)
                        default: break
                        }
                    }
                }
            }
            l.deliver(fromClient, to: l.server)
            l.deliver(fromServer, to: l.client)
        }
        #expect(successes == 7)
        #expect(refusals.count == 4)
        #expect(server.paths.count == 8)
        #expect(l.server.limitRefusals.paths == 4)
        for (cause, correlationID) in zip(refusals, refusedRequests) {
            #expect(cause.code == 0x00A1)
            // The cause carries the whole refused request: an Add IP Address of the wildcard.
            guard case .operationRefusedResourceShortage(let value) = cause else {
                Issue.record("wrong cause \(cause)")
                continue
            }
            var copy = ByteBuffer()
            Parameter.addIPAddress(correlationID: correlationID, address: .anyV4).encode(into: &copy)
            #expect(value == copy)
        }
        // The association goes on over the paths it has.
        try l.client.send(ByteBuffer(string: "still here"), on: id, stream: StreamID(0), now: l.now)
        l.exchange()
        let messages = l.serverEvents.compactMap {
            if case .message(_, let m) = $0 { String(buffer: m.payload) } else { nil }
        }
        #expect(messages.contains("still here"))
    }

    /// A server that lists 12 addresses in its INIT-ACK: the client keeps the path the handshake used and 7 more,
    /// ignores and counts the other 5.
    @Test func initAckAddressesBeyondTheLimitAreIgnored() throws {
        let listed = (1...12).map { SCTPIPAddress(v4: 198, 51, 100, UInt8($0)) }
        let client = SCTPEndpoint(configuration: SCTPConfiguration(), seed: 5)
        let server = SCTPEndpoint(configuration: SCTPConfiguration(), seed: 6, advertisedAddresses: listed)
        let clientAddress = SCTPSocketAddress(ip: .init(v4: 10, 0, 0, 1), port: 40000)
        let serverAddress = SCTPSocketAddress(ip: .init(v4: 192, 0, 2, 1), port: 9899)
        let id = client.connect(to: serverAddress, from: clientAddress, peerPort: 5000, now: .zero)
        for _ in 0..<4 {
            while let d = client.pollTransmit() { server.handle(d, now: .zero) }
            while let d = server.pollTransmit() { client.handle(d, now: .zero) }
        }
        let association = try #require(client.associations[id])
        #expect(association.state.isEstablishedOrLater)
        #expect(association.paths.count == 8)
        #expect(association.paths[0].remoteAddress == serverAddress)
        #expect(client.limitRefusals.paths == 5)
    }

    /// The limit is configurable; 1 keeps an association single-homed.
    @Test func aLimitOfOneKeepsTheAssociationSingleHomed() throws {
        let l = Lockstep { $0.maxPathsPerAssociation = 1 }
        let id = l.connect()
        l.exchange()
        try l.client.addLocalAddress(
            SCTPSocketAddress(ip: .init(v4: 10, 0, 0, 2), port: 40002), toward: l.serverAddress, on: id, now: l.now)
        l.exchange()
        let server = try #require(l.server.associations.values.first)
        #expect(server.paths.count == 1)
        #expect(l.server.limitRefusals.paths == 1)
    }
}
