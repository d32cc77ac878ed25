import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// Per-path policy in the simulator: a backup path stays idle while the active path works, takes over within a
/// second when it dies and hands back after it recovers; a capped path sends at its cap; changing a mode in the
/// middle of a transfer loses nothing.
@Suite struct CMTPathPolicyTests {
    static let link = PathSpec(rateBitsPerSecond: 20_000_000, rtt: .milliseconds(20))

    /// Payload bytes delivered on each path's data link, sampled every 50 ms of virtual time.
    final class Samples {
        var times: [SCTPTime] = []
        var perPath: [[Int]] = []

        /// The bytes path `path` carried from `start` to `end` (the nearest samples at or before each).
        func carried(on path: Int, from start: SCTPDuration, to end: SCTPDuration) -> Int {
            value(path, at: end) - value(path, at: start)
        }

        func value(_ path: Int, at offset: SCTPDuration) -> Int {
            guard let i = times.lastIndex(where: { $0 <= SCTPTime.zero + offset }) else { return 0 }
            return perPath[i][path]
        }

        /// The first sample after `start` by which `path` carried `bytes` more than it had at `start`.
        func first(on path: Int, carrying bytes: Int, after start: SCTPDuration) -> SCTPDuration? {
            let base = value(path, at: start)
            return zip(times, perPath).first { $0.0 > SCTPTime.zero + start && $0.1[path] - base >= bytes }
                .map { $0.0 - .zero }
        }
    }

    static func sampling(
        _ scenario: MultipathScenario, into samples: Samples
    )
        -> (interval: SCTPDuration, action: (SCTPTime) -> Void)
    {
        (
            .milliseconds(50),
            { now in
                samples.times.append(now)
                samples.perPath.append(scenario.dataLinks.map(\.counters.deliveredPayloadBytes))
            }
        )
    }

    static func remote(_ scenario: MultipathScenario, _ index: Int) -> SCTPPathSelector {
        .remote(SCTPSocketAddress(ip: scenario.serverAddresses[index], port: 9899))
    }

    @Test func backupPathCarriesUnderOnePercentWhileTheActivePathWorks() throws {
        let scenario = MultipathScenario(seed: 41, paths: [Self.link, Self.link])
        let bytes = 16_000_000
        let result = try scenario.run(bytes: bytes, timeout: .seconds(60)) { endpoint, id in
            _ = try? endpoint.setPathPolicy(
                SCTPPathPolicy(mode: .backup), for: Self.remote(scenario, 1), on: id, now: scenario.network.now)
        }
        #expect(result.intact)
        let total = result.bytesPerPath.reduce(0, +)
        #expect(Double(result.bytesPerPath[1]) < 0.01 * Double(total), "path 2 carried \(result.bytesPerPath)")
        // One path's rate, not two: the backup really stood by.
        #expect(result.goodput < 20_000_000 && result.goodput > 12_000_000, "goodput \(result.goodput)")
    }

    @Test func backupTakesOverWithinOneSecondAndHandsBackAfterRecovery() throws {
        let scenario = MultipathScenario(seed: 43, paths: [Self.link, Self.link])
        let samples = Samples()
        let failAt = SCTPDuration.seconds(3)
        let recoverAt = SCTPDuration.seconds(7)
        scenario.network.schedule(after: failAt) {
            scenario.dataLinks[0].isUp = false
            scenario.returnLinks[0].isUp = false
        }
        scenario.network.schedule(after: recoverAt) {
            scenario.dataLinks[0].isUp = true
            scenario.returnLinks[0].isUp = true
        }
        let bytes = 36_000_000
        let result = try scenario.run(
            bytes: bytes, timeout: .seconds(120), probe: Self.sampling(scenario, into: samples)
        ) { endpoint, id in
            _ = try? endpoint.setPathPolicy(
                SCTPPathPolicy(mode: .backup), for: Self.remote(scenario, 1), on: id, now: scenario.network.now)
        }
        #expect(result.intact)
        let before = samples.carried(on: 0, from: .zero, to: failAt) + samples.carried(on: 1, from: .zero, to: failAt)
        #expect(Double(samples.carried(on: 1, from: .zero, to: failAt)) < 0.01 * Double(before))
        let takeover = samples.first(on: 1, carrying: 256 * 1024, after: failAt)
        #expect(
            takeover.map { $0 <= failAt + .seconds(1) } == true, "path 2 took over at \(String(describing: takeover))")
        let handBack = samples.first(on: 0, carrying: 256 * 1024, after: recoverAt)
        #expect(
            handBack.map { $0 <= recoverAt + .seconds(3) } == true, "path 1 back at \(String(describing: handBack))")
        // Once path 1 is back, the backup stands by again.
        if let handBack {
            let settled = handBack + .milliseconds(500)
            let end = samples.times.last! - SCTPTime.zero
            let onBackup = samples.carried(on: 1, from: settled, to: end)
            let onActive = samples.carried(on: 0, from: settled, to: end)
            #expect(onActive > 1_000_000, "the transfer ended too soon after the hand-back")
            #expect(Double(onBackup) < 0.01 * Double(onActive + onBackup), "backup kept \(onBackup) B")
        }
    }

    @Test func cappedPathStaysWithinFivePercentOfItsCapOverTenSeconds() throws {
        let scenario = MultipathScenario(seed: 47, paths: [Self.link, Self.link])
        let samples = Samples()
        let cap = 500_000  // 4 Mbit/s on a 20 Mbit/s link
        let bytes = 40_000_000
        let result = try scenario.run(
            bytes: bytes, timeout: .seconds(120), probe: Self.sampling(scenario, into: samples)
        ) { endpoint, id in
            _ = try? endpoint.setPathPolicy(
                SCTPPathPolicy(sendRateLimit: cap), for: Self.remote(scenario, 1), on: id, now: scenario.network.now)
        }
        #expect(result.intact)
        let carried = samples.carried(on: 1, from: .seconds(1), to: .seconds(11))
        let expected = cap * 10
        #expect(
            abs(carried - expected) <= expected / 20, "capped path carried \(carried) B in 10 s, cap \(expected) B")
        // The other path is not held back by its neighbour's cap.
        #expect(samples.carried(on: 0, from: .seconds(1), to: .seconds(11)) > 20_000_000)
    }

    @Test func switchingModesMidTransferLosesNothing() throws {
        let scenario = MultipathScenario(seed: 53, paths: [Self.link, Self.link])
        let samples = Samples()
        let backupPath = Self.remote(scenario, 1)
        var association: SCTPAssociationID?
        for (at, mode) in [(1, SCTPPathPolicy.Mode.backup), (2, .active), (3, .backup), (4, .active)] {
            scenario.network.schedule(after: .seconds(Int64(at))) {
                scenario.client.perform(at: scenario.network.now) {
                    _ = try? $0.setPathPolicy(
                        SCTPPathPolicy(mode: mode), for: backupPath, on: association!, now: scenario.network.now)
                }
            }
        }
        let bytes = 16_000_000
        let result = try scenario.run(
            bytes: bytes, timeout: .seconds(60), probe: Self.sampling(scenario, into: samples)
        ) { _, id in association = id }
        #expect(result.intact)
        #expect(result.duration > .seconds(4), "the transfer ended before the last switch")
        // Both paths carry while path 2 is active, only path 1 while it is a backup.
        #expect(samples.carried(on: 1, from: .milliseconds(2200), to: .seconds(3)) > 500_000)
        let standby = samples.carried(on: 1, from: .milliseconds(1200), to: .seconds(2))
        let standbyTotal = standby + samples.carried(on: 0, from: .milliseconds(1200), to: .seconds(2))
        #expect(Double(standby) < 0.01 * Double(standbyTotal), "path 2 carried \(standby) B as a backup")
    }

    @Test func bucketRefillsAtItsRateUpToItsBurst() {
        var bucket = SendRateBucket(bytesPerSecond: 1_000_000, mtu: 1500)
        #expect(bucket.capacity == 50_000)
        bucket.refill(now: SCTPTime(nanoseconds: 0))
        bucket.consume(60_000)
        #expect(!bucket.hasTokens)
        #expect(bucket.time(toHold: 3000, after: .zero) == SCTPTime.zero + .milliseconds(13))
        bucket.refill(now: SCTPTime.zero + .milliseconds(13))
        #expect(bucket.hasTokens)
        bucket.refill(now: SCTPTime.zero + .seconds(10))
        #expect(bucket.tokens == bucket.capacity)
    }
}

extension CMTPathPolicyTests {
    /// agg's Path Policy ASCONF request: the receiver of the data asks the sender to keep the path the request
    /// came on as a backup, which is how aggclient makes aggserver keep a metered uplink idle for downloads.
    @Test func thePeerCanAskForABackupPathOverASCONF() throws {
        let scenario = MultipathScenario(seed: 59, paths: [Self.link, Self.link])
        let samples = Samples()
        // The server (the receiver here) asks from its second address, once the association is up.
        scenario.network.schedule(after: .milliseconds(100)) {
            scenario.server.perform(at: scenario.network.now) { endpoint in
                guard let id = scenario.server.established.first else { return }
                do {
                    try endpoint.requestPeerPathPolicy(
                        SCTPPathPolicy(mode: .backup),
                        from: SCTPSocketAddress(ip: scenario.serverAddresses[1], port: 9899),
                        toward: SCTPSocketAddress(ip: SCTPIPAddress(v4: 10, 0, 0, 1), port: 40000), on: id,
                        now: scenario.network.now)
                } catch {
                    Issue.record("the request was refused: \(error)")
                }
            }
        }
        let result = try scenario.run(
            bytes: 16_000_000, timeout: .seconds(60), probe: Self.sampling(scenario, into: samples))
        #expect(result.intact)
        let end = samples.times.last! - SCTPTime.zero
        let onBackup = samples.carried(on: 1, from: .milliseconds(500), to: end)
        let onActive = samples.carried(on: 0, from: .milliseconds(500), to: end)
        #expect(Double(onBackup) < 0.01 * Double(onActive + onBackup), "path 2 carried \(onBackup) B")
        let paths = scenario.client.endpoint.paths(of: scenario.client.established.first!)
        #expect(paths.map(\.policy.mode) == [.active, .backup])
    }

    @Test func pathPolicyParameterRoundTripsAndRefusesMalformedValues() throws {
        let request = PathPolicyParameter(
            correlationID: 7, policy: SCTPPathPolicy(mode: .backup, priority: 3, sendRateLimit: 2_500_000))
        guard case .unknown(let type, let value) = request.parameter else {
            Issue.record("not an unknown-type parameter")
            return
        }
        #expect(type == 0xC0A6)
        #expect(value.readableBytes == 12)
        #expect(PathPolicyParameter(value: value) == request)
        #expect(request.parameter.correlationID == 7)
        var badMode = value
        badMode.setInteger(UInt8(2), at: badMode.readerIndex + 4)
        #expect(PathPolicyParameter(value: badMode) == nil)
        #expect(PathPolicyParameter(value: value.getSlice(at: value.readerIndex, length: 8)!) == nil)
        // A cap below 1000 B/s is raised to it.
        var tiny = value
        tiny.setInteger(UInt32(1), at: tiny.readerIndex + 8)
        #expect(PathPolicyParameter(value: tiny)?.policy.sendRateLimit == 1000)
    }
}

extension CMTPathPolicyTests {
    /// With two backups, the lowest priority number takes over when the active path dies; the other stays idle.
    @Test func theBackupWithTheLowestPriorityNumberTakesOverAlone() throws {
        let scenario = MultipathScenario(seed: 61, paths: [Self.link, Self.link, Self.link])
        let samples = Samples()
        let failAt = SCTPDuration.seconds(2)
        scenario.network.schedule(after: failAt) {
            scenario.dataLinks[0].isUp = false
            scenario.returnLinks[0].isUp = false
        }
        let result = try scenario.run(
            bytes: 12_000_000, timeout: .seconds(60), probe: Self.sampling(scenario, into: samples)
        ) { endpoint, id in
            let now = scenario.network.now
            _ = try? endpoint.setPathPolicy(
                SCTPPathPolicy(mode: .backup, priority: 1), for: Self.remote(scenario, 1), on: id, now: now)
            _ = try? endpoint.setPathPolicy(
                SCTPPathPolicy(mode: .backup, priority: 0), for: Self.remote(scenario, 2), on: id, now: now)
        }
        #expect(result.intact)
        let end = samples.times.last! - SCTPTime.zero
        #expect(end > failAt + .seconds(2), "the transfer ended too soon after the failure")
        let second = samples.carried(on: 1, from: .zero, to: end)
        let third = samples.carried(on: 2, from: failAt, to: end)
        #expect(third > 2_000_000, "the priority-0 backup carried \(third) B after the failure")
        #expect(
            Double(second) < 0.01 * Double(result.bytesPerPath.reduce(0, +)),
            "the priority-1 backup carried \(second) B")
    }
}
