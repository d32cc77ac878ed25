import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// An address of the client changes behind its NAT (an LTE reconnect: a new private address, a new NAT mapping)
/// and DELETE-IP through a NAT: the server never saw the client's private addresses, so a deletion is a Delete
/// IP of the wildcard sent from the path that stays (RFC 5061 §4.2.2: "all addresses of the peer except the
/// source address of the packet MUST be deleted").
@Suite struct MultihomingAddressChangeTests {
    typealias S = TwoNATScenario

    /// C2's new address, behind the same NAT as C2.
    static let c2b = SCTPSocketAddress(ip: .init(v4: 10, 0, 2, 77), port: 40002)
    /// C1's new address, behind the same NAT as C1.
    static let c1b = SCTPSocketAddress(ip: .init(v4: 10, 0, 1, 77), port: 40003)

    /// The requests of every ASCONF delivered, with the link that carried it.
    final class AsconfLog {
        var entries: [(link: SimulatedLink, source: SCTPSocketAddress, parameters: [Parameter])] = []
        var acks: [[Parameter]] = []

        func record(_ datagram: SCTPDatagram, _ link: SimulatedLink) {
            guard let packet = try? SCTPPacket.decode(datagram.payload) else { return }
            for chunk in packet.chunks {
                if case .asconf(let asconf) = chunk {
                    entries.append((link, datagram.source, asconf.parameters))
                }
                if case .asconfAck(let ack) = chunk { acks.append(ack.parameters) }
            }
        }

        var deletions: [(link: SimulatedLink, source: SCTPSocketAddress, parameters: [Parameter])] {
            entries.filter { $0.parameters.contains { if case .deleteIPAddress = $0 { true } else { false } } }
        }
        var additions: [(link: SimulatedLink, source: SCTPSocketAddress, parameters: [Parameter])] {
            entries.filter { $0.parameters.contains { if case .addIPAddress = $0 { true } else { false } } }
        }
        var refusals: Int {
            acks.flatMap { $0 }.filter { if case .errorCauseIndication = $0 { true } else { false } }.count
        }
    }

    static func isWildcardDelete(_ parameters: [Parameter]) -> Bool {
        parameters.contains { if case .deleteIPAddress(_, let ip) = $0 { ip.isWildcard } else { false } }
    }

    /// Path 2's address changes mid-transfer in both directions: C2 vanishes (its link goes down) and C2b, behind
    /// the same NAT, gets a new mapping. The server ends with N1 and the new N2 mapping, both active, the old
    /// mapping removed (not probed ever after), and every byte arrives both ways.
    @Test func pathTwoChangesItsPrivateAddressMidTransfer() throws {
        let s = S(seed: 41, name: "address-change-path2")
        s.network.attach(s.client, at: Self.c2b.ip)
        // C2b's packets go out through NAT 2 too; the replies come back on the link from S2 to NAT 2.
        let up2b = s.network.addLink(
            from: Self.c2b.ip, to: S.s2.ip, LinkConfiguration(rateBitsPerSecond: 20_000_000, delay: S.delay2),
            name: "path2b>", nat: .outbound(s.nat2))
        let log = AsconfLog()
        s.network.onDelivery = { datagram, link, _ in log.record(datagram, link) }
        try s.establish()
        try s.addSecondPath()
        let oldMapping = try #require(s.serverPath2?.remote)
        let total = 2_000_000
        s.client.startTransfer(on: s.association, stream: StreamID(1), total: total, messageSize: 1200)
        s.server.startTransfer(on: s.serverAssociation, stream: StreamID(2), total: total, messageSize: 1200)
        try s.network.run(for: .milliseconds(400))
        #expect(s.server.totalReceivedBytes > 0 && s.client.totalReceivedBytes > 0)
        #expect(s.server.totalReceivedBytes < total)

        // C2 is gone: nothing leaves from it, and NAT 2 forgets its mapping. C2b takes its place.
        s.up2.isUp = false
        s.nat2.rebind()
        let change = s.network.now
        s.client.perform(at: s.network.now) {
            try! $0.replaceLocalAddress(S.c2, with: Self.c2b, toward: S.s2, on: s.association, now: s.network.now)
        }
        try s.network.runUntil(
            {
                s.server.totalReceivedBytes == total && s.client.totalReceivedBytes == total
                    && s.serverPaths().count == 2 && s.serverPaths().allSatisfy { $0.state == .active }
            }, timeout: .seconds(60))
        print("path 2 moved and both transfers done \(s.network.now - change) after the address change")

        // The deletion was a wildcard sent over path 1; the addition came from C2b through NAT 2.
        let deletion = try #require(log.deletions.first)
        #expect(log.deletions.count == 1)
        #expect(deletion.link === s.up1)
        #expect(Self.isWildcardDelete(deletion.parameters))
        let addition = try #require(log.additions.last)
        #expect(addition.link === up2b)
        #expect(addition.source.ip == S.n2 && addition.source != oldMapping)
        #expect(log.refusals == 0)

        let server = s.serverPaths()
        #expect(server.map(\.remote.ip).sorted { $0.description < $1.description } == [S.n1, S.n2])
        #expect(!server.contains { $0.remote == oldMapping })
        #expect(server.first { $0.remote.ip == S.n2 }?.local == S.s2)
        #expect(s.clientPaths().filter { $0.local != nil }.map(\.local) == [S.c1, Self.c2b])
        #expect(s.clientPaths().allSatisfy { $0.local != S.c2 })
        #expect(s.server.corruption == nil && s.client.corruption == nil)
        #expect(s.server.receivedBytes[1] == total && s.client.receivedBytes[2] == total)

        // Nothing is sent toward the old mapping any more: it was removed, not left as a dead path to probe.
        var towardOld = 0
        s.network.onDrop = { datagram, _, _, _ in if datagram.destination == oldMapping { towardOld += 1 } }
        s.network.onDelivery = { datagram, _, _ in if datagram.destination == oldMapping { towardOld += 1 } }
        try s.network.run(for: .seconds(90))
        #expect(towardOld == 0)
        #expect(s.client.closed.isEmpty && s.server.closed.isEmpty)
    }

    /// As the client sees an LTE reconnect: the address goes (deleted at once over path 1), and a moment later a
    /// new one comes while that deletion is still in flight. The replacement only adds: one deletion, not two.
    @Test func addressLostThenANewOneDeletesOnce() throws {
        let s = S(seed: 46, name: "address-lost-then-new")
        s.network.attach(s.client, at: Self.c2b.ip)
        s.network.addLink(
            from: Self.c2b.ip, to: S.s2.ip, LinkConfiguration(rateBitsPerSecond: 20_000_000, delay: S.delay2),
            name: "path2b>", nat: .outbound(s.nat2))
        let log = AsconfLog()
        s.network.onDelivery = { datagram, link, _ in log.record(datagram, link) }
        try s.establish()
        try s.addSecondPath()
        let oldMapping = try #require(s.serverPath2?.remote)
        s.up2.isUp = false
        s.nat2.rebind()
        s.client.perform(at: s.network.now) { try! $0.removeLocalAddress(S.c2, on: s.association, now: s.network.now) }
        try s.network.run(for: .milliseconds(5))
        s.client.perform(at: s.network.now) {
            try! $0.replaceLocalAddress(S.c2, with: Self.c2b, toward: S.s2, on: s.association, now: s.network.now)
        }
        try s.network.runUntil(
            {
                s.serverPaths().count == 2 && s.serverPaths().allSatisfy { $0.state == .active }
                    && !s.serverPaths().contains { $0.remote == oldMapping }
            }, timeout: .seconds(10))
        try s.network.run(for: .seconds(1))
        #expect(log.deletions.count == 1)
        #expect(log.refusals == 0)
        #expect(!s.serverPaths().contains { $0.remote == oldMapping })
        #expect(s.clientPaths().filter { $0.local != nil }.map(\.local) == [S.c1, Self.c2b])
    }

    /// A client with one path whose address changes: there is no other path to send the deletion from, so the
    /// new address is added first and the wildcard deletion leaves from it. The server keeps only the new
    /// mapping, and the transfer completes.
    @Test func theOnlyPathChangesItsAddress() throws {
        let s = S(seed: 42, name: "address-change-single")
        s.network.attach(s.client, at: Self.c1b.ip)
        let up1b = s.network.addLink(
            from: Self.c1b.ip, to: S.s1.ip, LinkConfiguration(rateBitsPerSecond: 20_000_000, delay: S.delay1),
            name: "path1b>", nat: .outbound(s.nat1))
        let log = AsconfLog()
        s.network.onDelivery = { datagram, link, _ in log.record(datagram, link) }
        try s.establish()
        let oldMapping = try #require(s.serverPaths().first?.remote)
        let total = 1_000_000
        s.server.startTransfer(on: s.serverAssociation, stream: StreamID(3), total: total, messageSize: 1000)
        try s.network.run(for: .milliseconds(200))
        s.up1.isUp = false
        s.nat1.rebind()
        s.client.perform(at: s.network.now) {
            try! $0.replaceLocalAddress(S.c1, with: Self.c1b, toward: S.s1, on: s.association, now: s.network.now)
        }
        try s.network.runUntil(
            { s.client.totalReceivedBytes == total && s.serverPaths().count == 1 }, timeout: .seconds(60))
        let addition = try #require(log.additions.first)
        let deletion = try #require(log.deletions.first)
        #expect(addition.link === up1b && deletion.link === up1b)
        #expect(Self.isWildcardDelete(deletion.parameters))
        #expect(log.refusals == 0)
        let kept = try #require(s.serverPaths().first)
        #expect(kept.remote.ip == S.n1 && kept.remote != oldMapping)
        #expect(s.clientPaths().filter { $0.local != nil }.map(\.local) == [Self.c1b])
        #expect(s.client.corruption == nil && s.client.receivedBytes[3] == total)
        #expect(s.client.closed.isEmpty)
    }

    /// DELETE-IP through NAT: with both paths up, removing C2 sends a wildcard Delete IP from C1 (never C2's
    /// private address, which the server never saw); the server acknowledges it and keeps only N1.
    @Test func deleteIPThroughNATSucceeds() throws {
        let s = S(seed: 43, name: "delete-through-nat")
        let log = AsconfLog()
        s.network.onDelivery = { datagram, link, _ in log.record(datagram, link) }
        try s.establish()
        try s.addSecondPath()
        let n1 = try #require(s.serverPaths().first { $0.remote.ip == S.n1 }?.remote)
        try s.client.endpoint.removeLocalAddress(S.c2, on: s.association, now: s.network.now)
        try s.network.runUntil({ s.clientPaths().allSatisfy { $0.local != S.c2 } }, timeout: .seconds(5))
        let deletion = try #require(log.deletions.first)
        #expect(deletion.link === s.up1 && deletion.source == n1)
        #expect(Self.isWildcardDelete(deletion.parameters))
        #expect(
            !deletion.parameters.contains { if case .deleteIPAddress(_, let ip) = $0 { ip == S.c2.ip } else { false } })
        #expect(log.refusals == 0)
        #expect(s.serverPaths().map(\.remote) == [n1])
        let server = try #require(s.server.endpoint.associations[s.serverAssociation])
        #expect(server.paths.primary.remoteAddress == n1)
        try s.network.run(for: .seconds(5))
        #expect(s.client.closed.isEmpty && s.server.closed.isEmpty)
    }

    /// The wrong behaviour, kept out: a Delete IP naming the client's private address reaches a server that never
    /// saw that address. It now says so (Unresolvable Address, RFC 5061 §5.2) instead of a success that deletes
    /// nothing and leaves the dead path to be probed for ever.
    @Test func deleteOfAPrivateAddressIsRefusedAsUnresolvable() throws {
        let s = S(seed: 44, name: "delete-private")
        try s.establish()
        try s.addSecondPath()
        let server = try #require(s.server.endpoint.associations[s.serverAssociation])
        let before = server.paths.map(\.remoteAddress)
        let n1 = try #require(before.first { $0.ip == S.n1 })
        let results = try Self.serverAnswers(
            s, server, to: [.deleteIPAddress(correlationID: 7, address: S.c2.ip)], from: n1, at: S.s1)
        #expect(results.count == 1)
        guard case .errorCauseIndication(7, let causes) = results.first else {
            Issue.record("expected an error cause indication, got \(results)")
            return
        }
        #expect(causes.map(\.code) == [ErrorCause.unresolvableAddress(ByteBuffer()).code])
        #expect(server.paths.map(\.remoteAddress) == before)
    }

    /// A wildcard Delete IP from a source that is none of the peer's paths would leave no path: refused as
    /// deleting the last address, nothing removed. From a known source it keeps exactly that path.
    @Test func wildcardDeleteKeepsOnlyTheSourceAndNeedsAKnownSource() throws {
        let s = S(seed: 45, name: "delete-wildcard")
        try s.establish()
        try s.addSecondPath()
        let server = try #require(s.server.endpoint.associations[s.serverAssociation])
        let before = server.paths.map(\.remoteAddress)
        let stranger = SCTPSocketAddress(ip: .init(v4: 203, 0, 113, 200), port: 5555)
        let refused = try Self.serverAnswers(
            s, server, to: [.deleteIPAddress(correlationID: 8, address: .anyV4)], from: stranger, at: S.s1)
        guard case .errorCauseIndication(8, let causes) = refused.first else {
            Issue.record("expected an error cause indication, got \(refused)")
            return
        }
        #expect(causes.map(\.code) == [ErrorCause.deleteLastRemainingIPAddress(ByteBuffer()).code])
        #expect(server.paths.map(\.remoteAddress) == before)

        let n2 = try #require(before.first { $0.ip == S.n2 })
        let accepted = try Self.serverAnswers(
            s, server, to: [.deleteIPAddress(correlationID: 9, address: .anyV4)], from: n2, at: S.s2)
        #expect(accepted.count == 1)
        if case .errorCauseIndication = accepted.first { Issue.record("refused: \(accepted)") }
        #expect(server.paths.map(\.remoteAddress) == [n2])
        #expect(server.paths.primary.remoteAddress == n2)
    }

    /// Feeds the server's association one authenticated-as-if ASCONF (the AUTH check happens before
    /// `handleAsconf`) and returns the responses of the ASCONF-ACK it sends back.
    static func serverAnswers(
        _ s: S, _ server: Association, to requests: [Parameter], from source: SCTPSocketAddress,
        at local: SCTPSocketAddress
    ) throws -> [Parameter] {
        let chunk = ASCONFChunk(
            serial: server.asconf.peerSerial.next, addressParameter: .address(.anyV4), parameters: requests)
        server.handleAsconf(chunk, from: source, to: local, now: s.network.now)
        var responses: [Parameter]?
        while let datagram = s.server.endpoint.pollTransmit() {
            guard let packet = try? SCTPPacket.decode(datagram.payload) else { continue }
            for case .asconfAck(let ack) in packet.chunks where datagram.destination == source {
                responses = ack.parameters
            }
        }
        return try #require(responses)
    }
}
