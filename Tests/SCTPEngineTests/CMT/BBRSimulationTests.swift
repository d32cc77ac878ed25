import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// BBR (`SCTPConfiguration.congestionControl = .bbr`) in the simulator, on routers with deep queues (100 ms): the
/// paths stay full while their queues stay short, alone and under CMT, through loss, a failing path and a rate
/// that changes. Goodput is measured against the links' payload capacity: a full 1472-byte SCTP packet is 1500 IP
/// bytes on the link and carries 1444 bytes of user data, so 96.3 % of the link rate is all a sender can deliver.
@Suite struct BBRSimulationTests {
    /// User data per IP byte of a full-size packet.
    static let payloadFraction = 1444.0 / 1500.0

    static func deepQueue(mbit: Int64, oneWay: Int64 = 10, loss: Double = 0) -> PathSpec {
        let rate = mbit * 1_000_000
        return PathSpec(
            rateBitsPerSecond: rate, rtt: .milliseconds(2 * oneWay), loss: loss, queueBytes: Int(rate / 8 / 10))
    }

    static var bbr: SCTPConfiguration {
        var configuration = SCTPConfiguration()
        configuration.congestionControl = .bbr
        return configuration
    }

    /// What a run saw of the client's paths: every `interval`, each path's smoothed RTT and queue.
    final class Trace {
        var srtt: [[SCTPDuration]] = []
        var queued: [[Int]] = []
        var times: [SCTPTime] = []
        /// What the application saw of the client's paths at the last probe (`SCTPEndpoint.paths(of:)`).
        var infos: [SCTPPathInfo] = []
    }

    /// Runs `bytes` over `paths` with `configuration` and traces the client's paths every 50 ms.
    static func run(
        seed: UInt64, paths: [PathSpec], bytes: Int, configuration: SCTPConfiguration = bbr,
        failure: (index: Int, at: SCTPDuration)? = nil,
        change: (at: SCTPDuration, path: Int, mbit: Int64)? = nil,
        steps: [(at: SCTPDuration, path: Int, mbit: Int64)] = []
    ) throws -> (MultipathScenario.Result, Trace) {
        let scenario = MultipathScenario(seed: seed, paths: paths, configuration: configuration)
        let trace = Trace()
        trace.srtt = paths.map { _ in [] }
        trace.queued = paths.map { _ in [] }
        var pending = (change.map { [$0] } ?? []) + steps
        let result = try scenario.run(
            bytes: bytes, failure: failure,
            probe: (
                .milliseconds(50),
                { now in
                    while let step = pending.first, now >= SCTPTime.zero + step.at {
                        pending.removeFirst()
                        scenario.dataLinks[step.path].configuration.rateBitsPerSecond = step.mbit * 1_000_000
                    }
                    guard let association = scenario.client.endpoint.associations.values.first,
                        association.paths.count == paths.count
                    else { return }
                    trace.times.append(now)
                    trace.infos = scenario.client.endpoint.paths(of: association.id)
                    for (i, path) in association.paths.enumerated() {
                        trace.srtt[i].append(path.rto.srtt ?? .zero)
                    }
                    for (i, link) in scenario.dataLinks.enumerated() {
                        trace.queued[i].append(link.queuedBytes(at: now))
                    }
                }
            ))
        return (result, trace)
    }

    static func median(_ values: [SCTPDuration]) -> SCTPDuration {
        let sorted = values.sorted()
        return sorted.isEmpty ? .zero : sorted[sorted.count / 2]
    }

    static func percentile(_ values: [SCTPDuration], _ p: Double) -> SCTPDuration {
        let sorted = values.sorted()
        return sorted.isEmpty ? .zero : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }

    /// The samples from `from` on (the first ones are the handshake and startup).
    static func after(_ from: SCTPDuration, _ trace: Trace, path: Int) -> [SCTPDuration] {
        zip(trace.times, trace.srtt[path]).filter { $0.0 >= SCTPTime.zero + from }.map(\.1)
    }

    // MARK: - Deep queues

    /// One 20 Mbit/s path, 20 ms round trip, a 100 ms (250 KB) router queue: NewReno fills it (the smoothed RTT
    /// grows towards 120 ms); BBR keeps the median smoothed RTT within 10 ms of the 20 ms path and its 95th
    /// percentile within 20 ms, for at least 95 % of the payload capacity.
    @Test func onePathStaysFullWithAShortQueue() throws {
        let spec = Self.deepQueue(mbit: 20)
        let bytes = 20_000_000 / 8 * 8  // eight seconds at the link rate
        let (result, trace) = try Self.run(seed: 31, paths: [spec], bytes: bytes)
        #expect(result.intact)
        let capacity = 20e6 * Self.payloadFraction
        #expect(result.goodput >= 0.95 * capacity, "\(result.goodput / 1e6) of \(capacity / 1e6) Mbit/s")
        let settled = Self.after(.seconds(2), trace, path: 0)
        #expect(Self.median(settled) <= .milliseconds(30), "median srtt \(Self.median(settled))")
        #expect(Self.percentile(settled, 0.95) <= .milliseconds(40), "p95 srtt \(Self.percentile(settled, 0.95))")

        // The application sees the model (status and metrics show it): the bandwidth near the payload the link
        // carries, the propagation round trip, and pacing near the bandwidth.
        let info = try #require(trace.infos.first)
        let bandwidth = try #require(info.bandwidthEstimate) * 8
        #expect(bandwidth >= 0.9 * 20e6 * Self.payloadFraction && bandwidth <= 1.05 * 20e6, "\(bandwidth)")
        let minRTT = try #require(info.minRTT)
        #expect(minRTT >= .milliseconds(20) && minRTT <= .milliseconds(25), "\(minRTT)")
        let pacing = try #require(info.pacingRate) * 8
        #expect(pacing >= 0.7 * bandwidth && pacing <= 1.3 * bandwidth, "\(pacing) against \(bandwidth)")

        // The same path with NewReno, for comparison: the queue fills.
        var reno = SCTPConfiguration()
        reno.congestionControl = .reno
        let (_, renoTrace) = try Self.run(seed: 31, paths: [spec], bytes: bytes, configuration: reno)
        #expect(Self.median(Self.after(.seconds(2), renoTrace, path: 0)) >= .milliseconds(60))
        let renoInfo = try #require(renoTrace.infos.first)
        #expect(renoInfo.bandwidthEstimate == nil && renoInfo.minRTT == nil && renoInfo.pacingRate == nil)
    }

    /// CMT over 20 and 30 Mbit/s paths, 10 ms one way each, 100 ms queues: the association carries at least 95 %
    /// of the summed payload capacity, and each path's smoothed RTT stays within 10 ms (median) and 20 ms (95th
    /// percentile) of its 20 ms round trip.
    @Test func twoPathsAddUpWithShortQueues() throws {
        let paths = [Self.deepQueue(mbit: 20), Self.deepQueue(mbit: 30)]
        let bytes = 50_000_000 / 8 * 8
        let (result, trace) = try Self.run(seed: 32, paths: paths, bytes: bytes)
        #expect(result.intact)
        let capacity = 50e6 * Self.payloadFraction
        #expect(result.goodput >= 0.95 * capacity, "\(result.goodput / 1e6) of \(capacity / 1e6) Mbit/s")
        let share = Double(result.bytesPerPath[1]) / Double(result.bytesPerPath.reduce(0, +))
        #expect(share > 0.5 && share < 0.7, "30 Mbit/s path's share \(share)")
        for path in 0..<2 {
            let settled = Self.after(.seconds(2), trace, path: path)
            #expect(Self.median(settled) <= .milliseconds(30), "path \(path + 1) median srtt \(Self.median(settled))")
            #expect(
                Self.percentile(settled, 0.95) <= .milliseconds(40),
                "path \(path + 1) p95 srtt \(Self.percentile(settled, 0.95))")
        }
    }

    // MARK: - Loss, failure, change

    /// 2 % random loss on a 30 Mbit/s path: loss does not shrink BBR's model, so the path keeps most of its rate
    /// (NewReno's window under 2 % loss allows about 5 Mbit/s at 20 ms, by the Mathis model).
    @Test(arguments: [0.01, 0.03])
    func randomLossDoesNotCollapseThroughput(loss: Double) throws {
        let spec = Self.deepQueue(mbit: 30, loss: loss)
        let (result, _) = try Self.run(seed: 33, paths: [spec], bytes: 30_000_000 / 8 * 5)
        #expect(result.intact)
        let capacity = 30e6 * Self.payloadFraction * (1 - loss)
        #expect(result.goodput >= 0.7 * capacity, "\(result.goodput / 1e6) of \(capacity / 1e6) Mbit/s")
    }

    /// A path's rate drops from 30 to 10 Mbit/s three seconds in: within two seconds BBR's queue is short again
    /// (the bandwidth filter forgets the old rate after ten round trips), and the path still delivers its rate.
    @Test func aRateThatDropsMidRunIsFollowed() throws {
        let spec = Self.deepQueue(mbit: 30)
        let (result, trace) = try Self.run(
            seed: 34, paths: [spec], bytes: 30_000_000 / 8 * 3 + 10_000_000 / 8 * 5,
            change: (at: .seconds(3), path: 0, mbit: 10))
        #expect(result.intact)
        let late = Self.after(.seconds(5), trace, path: 0)
        #expect(!late.isEmpty)
        #expect(Self.median(late) <= .milliseconds(35), "median srtt after the drop \(Self.median(late))")
        // The last seconds run at the new rate.
        let bins = result.timeline.dropLast().suffix(20)
        let mean = bins.reduce(0, +) / Double(bins.count)
        #expect(mean >= 0.85 * 10e6 * Self.payloadFraction, "\(bins.map { Int($0 / 1e6) })")
    }

    /// A path's rate rises from 10 to 30 Mbit/s: the gain cycle's probing finds the new rate within a few seconds.
    @Test func aRateThatRisesMidRunIsFound() throws {
        let spec = Self.deepQueue(mbit: 10)
        let (result, _) = try Self.run(
            seed: 35, paths: [spec], bytes: 10_000_000 / 8 * 2 + 30_000_000 / 8 * 5,
            change: (at: .seconds(2), path: 0, mbit: 30))
        #expect(result.intact)
        let bins = result.timeline.dropLast().suffix(20)
        let mean = bins.reduce(0, +) / Double(bins.count)
        #expect(mean >= 0.85 * 30e6 * Self.payloadFraction, "\(bins.map { Int($0 / 1e6) })")
    }

    /// The lab's LTE-like case in the simulator: CMT over a steady 20 Mbit/s path and one whose rate steps through
    /// 30, 5, 20, 10, 25, 5, 15 and 30 Mbit/s, 2 s each, 100 ms queues. A rate that drops leaves the bandwidth
    /// filter holding the old one; the standing queue that follows is found within a few round trips and the
    /// estimate cut to what the path delivers, so the changing path's queue lasts a few hundred milliseconds after
    /// a drop, not the two seconds the filter takes to forget, while the association carries what the paths offer.
    @Test func aRateThatChangesEveryTwoSecondsKeepsItsQueueShort() throws {
        let rates: [Int64] = [30, 5, 20, 10, 25, 5, 15, 30]
        let steps = rates.enumerated().map {
            (at: SCTPDuration.seconds(Int64(2 * $0.offset + 1)), path: 1, mbit: $0.element)
        }
        let paths = [Self.deepQueue(mbit: 20), Self.deepQueue(mbit: 30)]
        // Bits the two paths carry in the 17 s: path 2 runs at 30 Mbit/s for the first second.
        let offered = 20e6 * 17 + 30e6 + rates.reduce(0) { $0 + Double($1) * 2e6 }
        let (result, trace) = try Self.run(seed: 37, paths: paths, bytes: Int(offered / 8 * 0.9), steps: steps)
        #expect(result.intact)
        let settled = Self.after(.seconds(3), trace, path: 1)
        // Measured: p50 24 ms, p95 52 ms (the first 200 ms after each drop), 35.07 Mbit/s; 24 / 257 ms and 34.76
        // Mbit/s when the filter alone forgot the old rate, after 2 s at 5 Mbit/s.
        #expect(Self.percentile(settled, 0.95) <= .milliseconds(80), "p95 srtt \(Self.percentile(settled, 0.95))")
        #expect(Self.median(settled) <= .milliseconds(30), "median srtt \(Self.median(settled))")
        #expect(result.goodput >= 0.9 * offered / 17 * Self.payloadFraction, "\(result.goodput / 1e6) Mbit/s")
    }
    /// Either path dying mid-transfer: nothing is lost and the survivor carries the rest at its rate.
    @Test(arguments: [0, 1])
    func aPathDyingMidTransferLosesNoByte(failing: Int) throws {
        let paths = [Self.deepQueue(mbit: 20), Self.deepQueue(mbit: 30)]
        let bytes = 50_000_000 / 8 * 2 + (failing == 0 ? 30_000_000 : 20_000_000) / 8 * 3
        let (result, _) = try Self.run(seed: 36, paths: paths, bytes: bytes, failure: (index: failing, at: .seconds(2)))
        #expect(result.intact)
        let survivor = Double(failing == 0 ? 30e6 : 20e6) * Self.payloadFraction
        let bins = result.timeline.dropLast().suffix(10)
        let mean = bins.reduce(0, +) / Double(bins.count)
        #expect(mean >= 0.8 * survivor, "\(bins.map { Int($0 / 1e6) })")
    }
}
