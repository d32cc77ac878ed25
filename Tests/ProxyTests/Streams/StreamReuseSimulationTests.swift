import AggProtocol
import NIOCore
import SCTPSimulation
import Testing

@testable import Proxy
@testable import SCTPEngine

/// Issue 21: stream ids are reused safely. Hundreds of short connections share three stream ids over a simulated
/// path that loses, reorders and duplicates packets; a third of them are reset by the client while their DATA is
/// still in flight. Both sides run the real `StreamTable` and `StreamState`; every DATA carries the number of the
/// connection that sent it, the server checks it against the connection its OPEN started on that id and echoes it,
/// and the client checks the echo against the connection it opened on that id. A late message of an old connection
/// must never reach a new one either way, and neither side may see a message its state refuses.
@Suite struct StreamReuseSimulationTests {
    static let serverAddress = SCTPSocketAddress(ip: .init(v4: 192, 0, 2, 1), port: 9899)
    static let clientAddress = SCTPSocketAddress(ip: .init(v4: 10, 0, 0, 1), port: 40000)

    /// One side's streams: the table, the state of each stream in use, and what went wrong.
    final class Side {
        let host: EndpointHost
        var association: SCTPAssociationID?
        var table: StreamTable
        var states: [StreamID: StreamState] = [:]
        var violations: [String] = []

        init(host: EndpointHost, table: StreamTable) {
            self.host = host
            self.table = table
        }

        func send(_ message: StreamMessage, on id: StreamID) {
            do {
                let result = try states[id]!.send(message)
                try host.endpoint.send(
                    message.encode(), on: association!, stream: id, ppid: message.ppid, now: host.now)
                if result == .mustSendClosed { send(.closed, on: id) }
            } catch {
                violations.append("send \(message.kind) on \(id): \(error)")
            }
            releaseIfFree(id)
        }

        /// The stream message `message` carries; nil (and a violation) if it does not decode.
        func decode(_ message: SCTPMessage) -> StreamMessage? {
            guard
                let decoded = try? StreamMessage.decode(
                    ppid: message.ppid, payload: message.payload, stream: message.stream)
            else {
                violations.append("undecodable message on \(message.stream)")
                return nil
            }
            return decoded
        }

        /// A message the state already accounted for (the RESET that answers a RESET: the stream is free then).
        func sendAnswer(_ message: StreamMessage, on id: StreamID) {
            do {
                try host.endpoint.send(
                    message.encode(), on: association!, stream: id, ppid: message.ppid, now: host.now)
            } catch {
                violations.append("send \(message.kind) on \(id): \(error)")
            }
        }

        func releaseIfFree(_ id: StreamID) {
            guard let state = states[id], state.isFree else { return }
            states[id] = nil
            table.release(id)
        }
    }

    @Test(arguments: [21, 22, 23] as [UInt64])
    func lateMessagesOfOldConnectionsNeverReachNewOnes(seed: UInt64) throws {
        let network = SimulatedNetwork(seed: seed, name: "stream-reuse-\(seed)")
        let clientHost = EndpointHost(endpoint: SCTPEndpoint(configuration: SCTPConfiguration(), seed: seed &* 3))
        let serverHost = EndpointHost(
            endpoint: SCTPEndpoint(
                configuration: SCTPConfiguration(), seed: seed &* 5, advertisedAddresses: [Self.serverAddress.ip]))
        network.attach(clientHost, at: Self.clientAddress.ip)
        network.attach(serverHost, at: Self.serverAddress.ip)
        _ = network.addBidirectionalLink(
            between: Self.clientAddress.ip, and: Self.serverAddress.ip,
            LinkConfiguration(
                rateBitsPerSecond: 10_000_000, delay: .milliseconds(20), jitter: .milliseconds(5),
                lossProbability: 0.05, reorderProbability: 0.05, reorderDelay: .milliseconds(8),
                duplicateProbability: 0.02))

        let client = Side(
            host: clientHost, table: .client(outboundStreams: .max, inboundStreams: .max, maxStreams: 3, ownLimit: 3))
        let server = Side(host: serverHost, table: StreamTable(limit: 3))
        var random = SplitMix(seed: seed)
        var nextConnection = 1
        var completed = 0
        var resetEarly = 0
        var connectionOn: [StreamID: Int] = [:]  // The server's view: which connection each id carries.
        var clientConnectionOn: [StreamID: Int] = [:]  // The client's.
        let credit: UInt32 = 1 << 20

        func payload(_ connection: Int) -> ByteBuffer {
            var buffer = ByteBuffer()
            buffer.writeInteger(UInt64(connection))
            return buffer
        }

        // The client opens connections while ids are free: OPEN, three DATA, then FIN, or a RESET right behind
        // the DATA for a third of them.
        func openConnections() {
            while completed + client.states.count < 300, let id = client.table.allocate() {
                let connection = nextConnection
                nextConnection += 1
                client.states[id] = StreamState(role: .client, receiveCredit: credit, initialSendCredit: credit)
                clientConnectionOn[id] = connection
                let target = StreamTarget(host: .ip(SCTPIPAddress(v4: 203, 0, 113, 9)), port: UInt16(connection))
                client.send(.open(target, initialCredit: credit), on: id)
                for _ in 0..<3 { client.send(.data(payload(connection)), on: id) }
                if random.next() % 3 == 0 {
                    resetEarly += 1
                    client.send(.reset(.cancelled, text: nil), on: id)
                } else {
                    client.send(.fin, on: id)
                }
            }
        }

        clientHost.onEvent = { event, _ in
            switch event {
            case .established(let id, _, _):
                client.association = id
                openConnections()
            case .message(_, let message):
                let id = message.stream
                guard let decoded = client.decode(message) else { return }
                guard client.states[id] != nil else {
                    // The client frees an id only on the server's terminal, after which the server sends nothing.
                    return client.violations.append("\(decoded.kind) on free stream \(id)")
                }
                do {
                    switch try client.states[id]!.receive(decoded) {
                    case .deliver(let bytes):
                        let sender = bytes.getInteger(at: bytes.readerIndex, as: UInt64.self).map(Int.init)
                        if sender != clientConnectionOn[id] {
                            client.violations.append(
                                "echo of connection \(sender ?? -1) reached connection \(clientConnectionOn[id] ?? -1) on \(id)"
                            )
                        }
                        if let update = client.states[id]!.consumed(bytes.readableBytes) { client.send(update, on: id) }
                    default:
                        break
                    }
                } catch {
                    client.violations.append("receive \(decoded.kind) on \(id): \(error)")
                }
                if client.states[id]!.isFree {
                    completed += 1
                    client.releaseIfFree(id)
                    openConnections()
                }
            default: break
            }
        }

        serverHost.onEvent = { event, _ in
            switch event {
            case .established(let id, _, _):
                server.association = id
            case .message(_, let message):
                let id = message.stream
                guard let decoded = server.decode(message) else { return }
                if server.states[id] == nil { server.states[id] = StreamState(role: .server, receiveCredit: credit) }
                let action: StreamReceiveAction
                do {
                    action = try server.states[id]!.receive(decoded)
                } catch {
                    server.violations.append("receive \(decoded.kind) on \(id): \(error)")
                    return
                }
                switch action {
                case .open(let target):
                    if !server.table.admit(id) { server.violations.append("OPEN on \(id) refused by the table") }
                    connectionOn[id] = Int(target.port)
                    server.send(.openResult(.ok, text: nil), on: id)
                case .deliver(let bytes):
                    let sender = bytes.getInteger(at: bytes.readerIndex, as: UInt64.self).map(Int.init)
                    if sender != connectionOn[id] {
                        server.violations.append(
                            "DATA of connection \(sender ?? -1) reached connection \(connectionOn[id] ?? -1) on \(id)")
                    }
                    if let update = server.states[id]!.consumed(bytes.readableBytes) { server.send(update, on: id) }
                    // Echoed, so that the client checks the other direction too.
                    server.send(.data(bytes), on: id)
                case .remoteFinished:
                    server.send(.fin, on: id)
                case .remoteFinishedMustSendClosed:
                    server.send(.closed, on: id)
                case .resetByPeer(_, _, let mustAnswer):
                    // As StreamSession does: the answer goes out although the stream is already free here.
                    if mustAnswer { server.sendAnswer(.reset(.cancelled, text: nil), on: id) }
                case .ignored, .opened, .openFailed, .credit, .released:
                    break
                }
                server.releaseIfFree(id)
            default: break
            }
        }

        clientHost.perform(at: network.now) {
            _ = $0.connect(to: Self.serverAddress, from: Self.clientAddress, peerPort: 5000, now: network.now)
        }
        try network.runUntil({ completed >= 300 }, timeout: .seconds(600))

        #expect(client.violations.isEmpty, "\(client.violations.prefix(5))")
        #expect(server.violations.isEmpty, "\(server.violations.prefix(5))")
        #expect(completed == 300)
        #expect(resetEarly > 50, "connections reset with DATA in flight: \(resetEarly)")
        let lost = network.links.map(\.counters.droppedByLoss).reduce(0, +)
        let reordered = network.links.map(\.counters.reordered).reduce(0, +)
        #expect(lost > 0 && reordered > 0, "the path lost \(lost) and reordered \(reordered) packets")
        #expect(client.table.count == 0 && server.table.count == 0, "every id free at the end")
    }
}
