import Foundation
import NIOCore
import SCTPEngine
import Testing

@testable import AggObservability

/// Tests of Sources/Proxy/Observability: the status snapshot, its JSON, rates from counters, the bounded history,
/// the Prometheus exposition, the terminal table. `swift test --filter Observability` runs them.
@Suite struct ObservabilityTests {
    /// A client with two paths: "wlan0" from 127.0.0.1 carrying 3/4 of the traffic, 127.0.0.2 (no name) the rest.
    static func sampleSnapshot() -> StatusSnapshot {
        var first = StatusSnapshot.Path(
            id: "1/127.0.0.1/127.0.0.1", association: 1, name: "wlan0", local: "127.0.0.1", remote: "127.0.0.1",
            remotePort: 9899,
            state: "active", srttMilliseconds: 0.4, rtoMilliseconds: 200, cwnd: 65536, ssthresh: 1 << 20,
            flightSize: 12000, pmtu: 1452, bytesSent: 30_000_000, bytesReceived: 400_000, packetsSent: 21000,
            packetsReceived: 4000, retransmissions: 21, fastRetransmissions: 20, timeouts: 1)
        first.sendRate = 1_500_000
        first.receiveRate = 30_000
        first.lossRate = 0.001
        first.share = 0.75
        first.totalBytes = 90_000_000
        var second = StatusSnapshot.Path(
            id: "1/127.0.0.2/127.0.0.2", association: 1, local: "127.0.0.2", remote: "127.0.0.2", remotePort: 40123,
            state: "potentially-failed", srttMilliseconds: 23.6, rtoMilliseconds: 1000, cwnd: 4380, ssthresh: 8760,
            pmtu: 1452, bytesSent: 10_000_000, bytesReceived: 100_000, packetsSent: 7000, packetsReceived: 1000)
        second.sendRate = 500_000
        second.receiveRate = 10_000
        second.share = 0.25
        var counters = StatusSnapshot.Counters()
        counters.connections = ["success": 12, "refused": 1]
        counters.bytesUp = 40_000_000
        counters.bytesDown = 2048
        counters.datagramsSent = 28000
        return StatusSnapshot(
            role: "aggclient", version: "1.2.3", uptime: 312.5,
            associations: [
                StatusSnapshot.Association(
                    id: 1, state: "ready", client: "laptop", streams: 3, bufferedBytes: 12288, paths: [first, second])
            ],
            counters: counters,
            history: [
                StatusSnapshot.Sample(uptime: 311.5, paths: [StatusSnapshot.PathSample(first)]),
                StatusSnapshot.Sample(
                    uptime: 312.5, paths: [StatusSnapshot.PathSample(first), StatusSnapshot.PathSample(second)]),
            ])
    }

    // MARK: - JSON

    @Test func snapshotSurvivesAJSONRoundTrip() throws {
        var snapshot = Self.sampleSnapshot()
        snapshot.associations[0].paths[1].srttMilliseconds = nil  // no RTT measured yet
        let bytes = try snapshot.jsonBytes()
        let decoded = try StatusSnapshot(json: bytes)
        #expect(decoded == snapshot)
        #expect(decoded.associations[0].paths[1].srttMilliseconds == nil)
        // Field names scripts rely on.
        let text = String(decoding: bytes, as: UTF8.self)
        for key in [
            "\"sendRate\"", "\"receiveRate\"", "\"share\"", "\"lossRate\"", "\"srttMilliseconds\"", "\"history\"",
            "\"name\"", "\"client\"", "\"totalBytes\"", "\"version\"",
        ] {
            #expect(text.contains(key), "missing \(key)")
        }
    }

    /// A daemon older than `aggclient status` lacks the counters added since (here `truncatedDatagrams`,
    /// `streamWaits` and `sctpDropped`): they read as zero, the rest as the daemon wrote them.
    @Test func countersAnOlderDaemonDoesNotWriteReadAsZero() throws {
        var snapshot = Self.sampleSnapshot()
        snapshot.counters.truncatedDatagrams = 7
        snapshot.counters.streamWaits = 3
        snapshot.counters.sctpDropped = ["bad_checksum": 2]
        let bytes = try snapshot.jsonBytes()
        var object = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        var counters = try #require(object["counters"] as? [String: Any])
        for key in ["truncatedDatagrams", "streamWaits", "sctpDropped"] {
            #expect(counters.removeValue(forKey: key) != nil, "\(key) is written")
        }
        object["counters"] = counters
        let older = try JSONSerialization.data(withJSONObject: object)
        let decoded = try StatusSnapshot(json: Array(older))
        var expected = snapshot
        expected.counters.truncatedDatagrams = 0
        expected.counters.streamWaits = 0
        expected.counters.sctpDropped = [:]
        #expect(decoded == expected)
    }

    @Test func somethingElseIsNotASnapshot() {
        #expect(throws: StatusDecodingError.self) { try StatusSnapshot(json: Array("<html>".utf8)) }
        #expect(throws: StatusDecodingError.self) { try StatusSnapshot(json: Array("{\"role\":\"x\"}".utf8)) }
    }

    // MARK: - Rates from counter deltas

    @Test func throughputIsTheCounterDeltaOverTheInterval() {
        var meter = PathRateMeter()
        var associations = Self.sampleSnapshot().associations
        meter.update(&associations, at: 10)
        // A path seen for the first time has no rate yet.
        #expect(associations[0].paths.allSatisfy { $0.sendRate == 0 && $0.receiveRate == 0 && $0.share == 0 })

        // Two seconds later: path 1 sent 3 MB more and received 60 kB, path 2 sent 1 MB more.
        associations[0].paths[0].bytesSent += 3_000_000
        associations[0].paths[0].bytesReceived += 60_000
        associations[0].paths[0].packetsSent += 2000
        associations[0].paths[0].retransmissions += 20
        associations[0].paths[1].bytesSent += 1_000_000
        associations[0].paths[1].packetsSent += 700
        meter.update(&associations, at: 12)
        let (first, second) = (associations[0].paths[0], associations[0].paths[1])
        #expect(first.sendRate == 1_500_000)
        #expect(first.receiveRate == 30_000)
        #expect(first.lossRate == 0.01)
        #expect(second.sendRate == 500_000)
        #expect(second.lossRate == 0)
        #expect(abs(first.share - 3_060_000.0 / 4_060_000) < 1e-9)
        #expect(abs(first.share + second.share - 1) < 1e-9)

        // Nothing moved for a second: rates and shares drop to zero.
        meter.update(&associations, at: 13)
        #expect(associations[0].paths.allSatisfy { $0.sendRate == 0 && $0.share == 0 })
    }

    @Test func aVanishedPathStartsAgainFromZero() {
        var meter = PathRateMeter()
        var associations = Self.sampleSnapshot().associations
        meter.update(&associations, at: 1)
        let second = associations[0].paths.removeLast()
        meter.update(&associations, at: 2)
        associations[0].paths.append(second)
        associations[0].paths[1].bytesSent += 5_000_000
        meter.update(&associations, at: 3)
        #expect(associations[0].paths[1].sendRate == 0, "a path back after a gap has no previous reading")
        // Counters that went backwards (a new association reusing the id) never give a negative rate.
        associations[0].paths[0].bytesSent = 10
        meter.update(&associations, at: 4)
        #expect(associations[0].paths[0].sendRate == 0)
    }

    // MARK: - Path names and totals

    @Test func pathsAreNamedByConfigurationThenInterfaceThenAddress() {
        let a = SCTPIPAddress("10.1.0.2")!
        let b = SCTPIPAddress("10.2.0.2")!
        let c = SCTPIPAddress("127.0.0.1")!
        let d = SCTPIPAddress("127.0.0.2")!
        let lookup: (SCTPIPAddress) -> (name: String, configured: Bool)? = { ip in
            switch ip {
            case a: return ("lte", true)  // --path lte=…
            case b: return ("c2", false)  // the interface holding 10.2.0.2
            case c, d: return ("lo", false)  // both on lo: the interface names neither
            default: return nil
            }
        }
        #expect(
            StatusMonitor.names(locals: [a, b, c, d, SCTPIPAddress("192.0.2.7")!, .anyV4, nil], name: lookup)
                == ["lte", "c2", "127.0.0.1", "127.0.0.2", "192.0.2.7", "*", "*"])
        // An uplink to both server addresses is two paths from one local address: both keep the interface name.
        #expect(StatusMonitor.names(locals: [b, b], name: lookup) == ["c2", "c2"])
    }

    @Test func pathTotalsCountFromTheDaemonsStartAcrossReconnections() {
        var totals = PathTotals()
        var associations = Self.sampleSnapshot().associations
        totals.update(&associations)
        #expect(associations[0].paths.map(\.totalBytes) == [30_400_000, 10_100_000])
        // The association is gone, then a new one comes up on the same uplinks with fresh counters.
        var none: [StatusSnapshot.Association] = []
        totals.update(&none)
        var next = Self.sampleSnapshot().associations
        next[0].id = 2
        for p in next[0].paths.indices {
            next[0].paths[p].id = "2" + next[0].paths[p].id.dropFirst()
            next[0].paths[p].association = 2
            next[0].paths[p].bytesSent = 1000
            next[0].paths[p].bytesReceived = 0
        }
        totals.update(&next)
        #expect(next[0].paths.map(\.totalBytes) == [30_401_000, 10_101_000])
        // Counters that restart lower under the same id (a reused association id) are not lost either.
        next[0].paths[0].bytesSent = 10
        totals.update(&next)
        #expect(next[0].paths[0].totalBytes == 30_401_010)
        // Another client's path of the same name is another identity.
        next[0].client = "phone"
        totals.update(&next)
        #expect(next[0].paths[0].totalBytes == 10)
    }

    @Test func pathTotalsForgetTheSmallestIdentityBeyondTheirCapacity() {
        var totals = PathTotals(capacity: 2)
        for (index, bytes) in [500, 100, 300].enumerated() {
            var path = StatusSnapshot.Path(
                id: "\(index)/x/y", association: index, name: "p\(index)", local: "x", remote: "y", remotePort: 1,
                state: "active", bytesSent: bytes)
            path.totalBytes = 0
            var associations = [StatusSnapshot.Association(id: index, state: "ready", paths: [path])]
            totals.update(&associations)
            var none: [StatusSnapshot.Association] = []
            totals.update(&none)
        }
        // p1 (100 bytes) was forgotten; p0 and p2 are still credited to a path that takes their place.
        for (index, expected) in [(0, 500), (1, 0), (2, 300)] {
            let path = StatusSnapshot.Path(
                id: "9/x/y", association: 9, name: "p\(index)", local: "x", remote: "y", remotePort: 1,
                state: "active")
            var associations = [StatusSnapshot.Association(id: 9, state: "ready", paths: [path])]
            totals.update(&associations)
            #expect(associations[0].paths[0].totalBytes == expected, "p\(index)")
            var none: [StatusSnapshot.Association] = []
            totals.update(&none)
        }
    }

    // MARK: - History

    @Test func historyKeepsOnlyTheNewestSamples() {
        var history = SampleHistory<Int>(capacity: 300)
        for second in 0..<1000 { history.append(second) }
        #expect(history.count == 300)
        #expect(history.all.first == 700)
        #expect(history.all.last == 999)
        #expect(history.suffix(3) == [997, 998, 999])
        #expect(history.suffix(0).isEmpty)
        #expect(history.suffix(5000).count == 300)
    }

    // MARK: - Terminal table

    @Test func tableShowsEveryPathWithItsFigures() {
        let table = StatusTable.render(Self.sampleSnapshot())
        let lines = table.split(separator: "\n").map(String.init)
        #expect(lines[0].hasPrefix("aggclient 1.2.3  up 5m12s  connections 13 (12 ok)"))
        #expect(lines.contains("association 1 ready, key laptop, 3 streams, 12.0 KiB buffered"))
        let header = lines.first { $0.hasPrefix("PATH") }
        let first = lines.first { $0.hasPrefix("wlan0 ") }
        let second = lines.first { $0.hasPrefix("127.0.0.2 ") }
        let total = lines.first { $0.hasPrefix("total") }
        #expect(header != nil && first != nil && second != nil && total != nil, "\(table)")
        guard let header, let first, let second, let total else { return }
        // The client sends up: 1.5 MB/s is 12.0 Mbit/s up, 30 kB/s is 240 kbit/s down. BYTES counts both ways
        // since the daemon started (totalBytes), not only the current path's counters.
        for cell in ["active", "0.4 ms", "12.0 Mb/s", "240 kb/s", "0.1%", "75.0%", "85.8 MiB"] {
            #expect(first.contains(cell), "\(cell) missing in \(first)")
        }
        for cell in ["pot. failed", "24 ms", "4.0 Mb/s", "80 kb/s", "0.0%", "25.0%", "9.6 MiB"] {
            #expect(second.contains(cell), "\(cell) missing in \(second)")
        }
        #expect(total.contains("16.0 Mb/s") && total.contains("320 kb/s") && total.contains("95.5 MiB"), "\(total)")
        // Columns line up: each figure ends where its header does.
        for title in ["RTT", "UP", "DOWN", "LOSS", "SHARE", "BYTES"] {
            let end = header.range(of: title)!.upperBound.utf16Offset(in: header)
            #expect(first.utf16.count >= end && Array(first.utf16)[end - 1] != 32, "\(title) misaligned")
        }
        #expect(lines.allSatisfy { $0.count <= 79 }, "\(table)")
    }

    @Test func tableFitsEightyColumnsWithLongNamesAndLargeFigures() {
        var snapshot = Self.sampleSnapshot()
        snapshot.associations[0].client = String(repeating: "k", count: 64)
        snapshot.associations[0].streams = 65535
        snapshot.counters.connections = ["success": 123_456_789, "refused": 987_654_321]
        snapshot.counters.bytesUp = 1 << 50
        snapshot.counters.bytesDown = 1 << 50
        for p in snapshot.associations[0].paths.indices {
            snapshot.associations[0].paths[p].name = "a-very-long-uplink-name-of-32-ch"
            snapshot.associations[0].paths[p].remote = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
            snapshot.associations[0].paths[p].srttMilliseconds = 12345.6
            snapshot.associations[0].paths[p].sendRate = 12.5e9
            snapshot.associations[0].paths[p].receiveRate = 99.9e6 / 8
            snapshot.associations[0].paths[p].totalBytes = 1023 * 1024 * 1024 + 1000 * 1024 * 1024
        }
        let table = StatusTable.render(snapshot)
        let lines = table.split(separator: "\n")
        for line in lines { #expect(line.count <= 79, "\(line.count) columns: \(line)") }
        // Two paths of one name are told apart by their remote, cut to the column with an ellipsis.
        #expect(lines.filter { $0.hasPrefix("a-very-long-up…") }.count == 2, "\(table)")
    }

    /// With several server groups the table says which is in use and how often the client moved; with one it says
    /// nothing; a long address is cut to the 79 columns.
    @Test func theServerGroupInUseIsShownWithSeveral() {
        var snapshot = Self.sampleSnapshot()
        var groups = StatusSnapshot.ServerGroupCounters()
        groups.count = 2
        groups.inUse = 1
        groups.server = "198.51.100.20:9899"
        groups.failovers = 1
        snapshot.counters.serverGroups = groups
        #expect(
            StatusTable.render(snapshot).contains("server group 2 of 2 (198.51.100.20:9899)  failovers 1, returns 0"))
        snapshot.counters.serverGroups?.inUse = nil
        #expect(StatusTable.render(snapshot).contains("server none of 2 answers  failovers 1, returns 0"))
        snapshot.counters.serverGroups?.inUse = 0
        snapshot.counters.serverGroups?.server = "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:9899"
        snapshot.counters.serverGroups?.failovers = 12345
        let line = StatusTable.render(snapshot).split(separator: "\n").first { $0.hasPrefix("server group") }
        #expect(line?.count ?? 0 <= 79 && line?.contains("…") == true, "\(line ?? "no line")")
        snapshot.counters.serverGroups?.count = 1
        #expect(!StatusTable.render(snapshot).contains("server group"))
    }

    @Test func shortRatesFitTheirColumn() {
        for rate in [0.0, 124, 125, 124_900, 125_000, 12_493_750, 12_500_000, 124_900_000, 125_000_000, 1.2e9, 1.3e10] {
            let text = StatusFormat.shortRate(bytesPerSecond: rate)
            #expect(text.count <= 9, "\(text)")
        }
        #expect(StatusFormat.shortRate(bytesPerSecond: 1_537_500) == "12.3 Mb/s")
        #expect(StatusFormat.shortRate(bytesPerSecond: 64_000_000) == "512 Mb/s")
        #expect(StatusFormat.shortRate(bytesPerSecond: 131_250_000) == "1.05 Gb/s")
    }

    @Test func tableOfTheServerSwapsTheDirections() {
        var snapshot = Self.sampleSnapshot()
        snapshot.role = "aggserver"
        let row = StatusTable.render(snapshot).split(separator: "\n").first { $0.hasPrefix("wlan0 ") }!
        let up = row.range(of: "240 kb/s")!.lowerBound
        let down = row.range(of: "12.0 Mb/s")!.lowerBound
        #expect(up < down, "the server receives up: \(row)")
    }

    @Test func tableWithoutAssociationSaysSo() {
        let table = StatusTable.render(StatusSnapshot(role: "aggclient", uptime: 3))
        #expect(table.contains("no association: reconnecting"))
    }

    @Test func figuresAreFormattedForPeople() {
        #expect(StatusFormat.rate(bytesPerSecond: 0) == "0 bit/s")
        #expect(StatusFormat.rate(bytesPerSecond: 105_000) == "840 kbit/s")
        #expect(StatusFormat.rate(bytesPerSecond: 1_537_500) == "12.3 Mbit/s")
        #expect(StatusFormat.rate(bytesPerSecond: 131_250_000) == "1.05 Gbit/s")
        #expect(StatusFormat.bytes(512) == "512 B")
        #expect(StatusFormat.bytes(3 * 1024 * 1024 + 400 * 1024) == "3.4 MiB")
        #expect(StatusFormat.milliseconds(nil) == "-")
        #expect(StatusFormat.milliseconds(123.4) == "123 ms")
        #expect(StatusFormat.percent(0.9999) == "100%")
        #expect(StatusFormat.duration(3 * 3600 + 125) == "3h02m")
        #expect(StatusFormat.decimal(0.05, digits: 2) == "0.05")
    }
}
