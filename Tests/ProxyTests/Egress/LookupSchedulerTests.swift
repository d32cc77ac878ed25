import AggProtocol
import Dispatch
import Foundation
import NIOCore
import NIOPosix
import SCTPEngine
import Synchronization
import Testing

@testable import AggEgress
@testable import Proxy

/// The server's name lookups are bounded per association and in all, wait in a bounded queue with a timeout, and
/// one client's names that never resolve do not stop another client's OPENs.
@Suite struct LookupSchedulerTests {
    static let group = MultiThreadedEventLoopGroup.singleton

    /// A resolver whose names starting with "never" hang until `release()` (as a black-holed DNS server would
    /// hold getaddrinfo); "gone" names do not exist; every other name is 127.0.0.1. It counts the lookups it ran.
    final class FakeDNS: Sendable {
        private let gate = DispatchSemaphore(value: 0)
        private let state = Mutex((calls: [String](), hanging: 0))

        var lookup: DNSLookup {
            DNSLookup { host, family in
                let hangs = host.hasPrefix("never")
                self.state.withLock {
                    $0.calls.append(host)
                    if hangs { $0.hanging += 1 }
                }
                if hangs {
                    self.gate.wait()
                    throw DNSLookupError(host: host, code: -3, text: "Temporary failure in name resolution")
                }
                if host.hasPrefix("gone") { throw DNSLookupError(host: host, code: -2, text: "Name not known") }
                return family == .v4 ? [SCTPIPAddress(v4: 127, 0, 0, 1)] : []
            }
        }

        var calls: [String] { state.withLock { $0.calls } }
        var hanging: Int { state.withLock { $0.hanging } }

        /// Lets every hanging lookup return, so their threads end.
        func release() {
            for _ in 0..<200 { gate.signal() }
        }
    }

    static func limits(
        concurrent: Int = 4, perOwner: Int = 2, queued: Int = 8, queuedPerOwner: Int = 4,
        timeout: TimeAmount = .seconds(2)
    ) -> LookupScheduler.Limits {
        var limits = LookupScheduler.Limits()
        limits.concurrent = concurrent
        limits.perOwner = perOwner
        limits.queued = queued
        limits.queuedPerOwner = queuedPerOwner
        limits.timeout = timeout
        return limits
    }

    /// The outcome of a lookup future: the addresses, or the refusal.
    static func outcome(_ future: EventLoopFuture<[SCTPIPAddress]>) -> Result<[SCTPIPAddress], any Error> {
        do {
            return .success(try future.wait())
        } catch {
            return .failure(error)
        }
    }

    /// The reproduction of issue 12's resolver item, through the connector the server uses: association 1 sends
    /// OPENs to 20 names that never resolve; association 2's OPEN to a name still connects at once, and
    /// association 1's excess is refused and counted rather than queued without end.
    @Test(.timeLimit(.minutes(3))) func oneAssociationsHangingNamesDoNotStopAnothersOPEN() throws {
        let dns = FakeDNS()
        defer { dns.release() }
        let connector = EgressConnector(
            policy: EgressPolicy(allowed: [CIDR("127.0.0.0/8")!]), connectTimeout: .seconds(10), lookup: dns.lookup,
            lookupLimits: Self.limits())
        let server = try ServerBootstrap(group: Self.group).bind(host: "127.0.0.1", port: 0).wait()
        defer { server.close(promise: nil) }
        let port = UInt16(server.localAddress!.port!)
        let loop = Self.group.next()

        let flood = (0..<20).map { i in
            connector.connect(to: StreamTarget(host: .domain("never-\(i).test"), port: 80), on: loop, owner: 1)
        }
        // Give the flood time to take its threads and fill the queue.
        Thread.sleep(forTimeInterval: 0.2)
        let started = ContinuousClock.now
        let channel = try connector.connect(
            to: StreamTarget(host: .domain("good.test"), port: port), on: loop, owner: 2
        ).wait()
        // Well under the 10 s connect timeout it would take otherwise (a loaded test machine needs the margin).
        #expect(ContinuousClock.now - started < .seconds(3), "the second association waited for the first's names")
        try channel.close().wait()

        var refusals: [Refusal: Int] = [:]
        for future in flood {
            do {
                _ = try future.wait()
                Issue.record("a name that never resolves connected")
            } catch let error as EgressError {
                if let refusal = error.refusal { refusals[refusal, default: 0] += 1 }
            }
        }
        // Two OPENs' lookups (A and AAAA each) hold association 1's two threads and four wait; every other
        // OPEN's lookups are refused at once.
        #expect(refusals[.resolverBusy, default: 0] >= 14, "\(refusals)")
        #expect(dns.hanging <= 2, "association 1 ran more lookups at once than its limit")
    }

    @Test func queueBoundsRefuseAtOnceAndWaitingLookupsTimeOut() throws {
        let dns = FakeDNS()
        defer { dns.release() }
        let scheduler = LookupScheduler(lookup: dns.lookup, limits: Self.limits(timeout: .milliseconds(500)))
        let loop = Self.group.next()
        // Owner 1: two run, four wait (its own queue bound), the rest are refused.
        let owned = (0..<10).map { scheduler.resolve(host: "never-\($0)", family: .v4, owner: 1, on: loop).future }
        #expect(scheduler.load == (running: 2, queued: 4))
        // Owner 2 fills the rest of the shared queue (8): the next one of anybody's is refused.
        let other = (0..<6).map { scheduler.resolve(host: "never-x\($0)", family: .v4, owner: 2, on: loop).future }
        #expect(scheduler.load == (running: 4, queued: 8))
        let third = Self.outcome(scheduler.resolve(host: "ok", family: .v4, owner: 3, on: loop).future)
        #expect((try? third.get()) == nil)
        #expect((third.failureValue as? LookupRefusal)?.refusal == .resolverBusy)

        var byRefusal: [Refusal: Int] = [:]
        for future in owned + other {
            if case .failure(let error as LookupRefusal) = Self.outcome(future) {
                byRefusal[error.refusal, default: 0] += 1
            }
        }
        // Owner 1: 4 refused at once; everything that ran or waited timed out after 500 ms.
        #expect(byRefusal == [.resolverBusy: 4, .resolverTimeout: 12])
        #expect(scheduler.load.queued == 0, "timed-out lookups left the queue")
        #expect(scheduler.load.running == 4, "hanging threads still count until they return")
    }

    /// A freed thread takes the oldest waiting lookup whose owner is under its limit, not simply the oldest.
    @Test func aFreedThreadSkipsOwnersAtTheirLimit() throws {
        let dns = FakeDNS()
        defer { dns.release() }
        let scheduler = LookupScheduler(
            lookup: dns.lookup,
            limits: Self.limits(concurrent: 3, perOwner: 2, queued: 8, queuedPerOwner: 8, timeout: .seconds(600)))
        let loop = Self.group.next()
        let hanging = (0..<2).map { scheduler.resolve(host: "never-\($0)", family: .v4, owner: 1, on: loop).future }
        let quick = scheduler.resolve(host: "quick", family: .v4, owner: 2, on: loop).future
        // Owner 1's third waits: owner 1 is at its limit although a thread is free.
        let waiting = scheduler.resolve(host: "never-2", family: .v4, owner: 1, on: loop).future
        #expect(try quick.wait() == [SCTPIPAddress(v4: 127, 0, 0, 1)])
        let late = scheduler.resolve(host: "late", family: .v4, owner: 3, on: loop).future
        #expect(try late.wait() == [SCTPIPAddress(v4: 127, 0, 0, 1)], "owner 3 went ahead of owner 1's third")
        #expect(scheduler.load == (running: 2, queued: 1))
        dns.release()
        for future in hanging + [waiting] { _ = Self.outcome(future) }
        #expect(dns.calls.filter { $0.hasPrefix("never") }.count == 3)
    }

    @Test func answersAndMissingNamesAreCachedButNotTimeouts() throws {
        let dns = FakeDNS()
        defer { dns.release() }
        var limits = Self.limits(timeout: .milliseconds(300))
        limits.negativeTTL = .seconds(3)  // Long enough for a loaded machine to do the three rounds below.
        let scheduler = LookupScheduler(lookup: dns.lookup, limits: limits)
        let loop = Self.group.next()
        for _ in 0..<3 {
            #expect(
                try scheduler.resolve(host: "Cached.Test", family: .v4, owner: 1, on: loop).future.wait()
                    == [SCTPIPAddress(v4: 127, 0, 0, 1)])
            let gone = Self.outcome(scheduler.resolve(host: "gone.test", family: .v4, owner: 1, on: loop).future)
            #expect(gone.failureValue is DNSLookupError)
        }
        #expect(dns.calls == ["cached.test", "gone.test"], "one lookup each, then the cache")
        Thread.sleep(forTimeInterval: 3.2)
        _ = Self.outcome(scheduler.resolve(host: "gone.test", family: .v4, owner: 1, on: loop).future)
        #expect(dns.calls.filter { $0 == "gone.test" }.count == 2, "the negative entry expired")
        // A lookup that timed out is not an answer: it is not cached.
        _ = Self.outcome(scheduler.resolve(host: "never-c", family: .v4, owner: 1, on: loop).future)
        dns.release()
        Thread.sleep(forTimeInterval: 0.1)
        _ = Self.outcome(scheduler.resolve(host: "never-c", family: .v4, owner: 1, on: loop).future)
        #expect(dns.calls.filter { $0 == "never-c" }.count == 2)
    }

    @Test func theCacheStaysWithinItsSize() throws {
        let dns = FakeDNS()
        var limits = Self.limits()
        limits.cacheEntries = 4
        let scheduler = LookupScheduler(lookup: dns.lookup, limits: limits)
        let loop = Self.group.next()
        for i in 0..<10 { _ = try scheduler.resolve(host: "h\(i)", family: .v4, owner: 1, on: loop).future.wait() }
        _ = try scheduler.resolve(host: "h9", family: .v4, owner: 1, on: loop).future.wait()
        _ = try scheduler.resolve(host: "h0", family: .v4, owner: 1, on: loop).future.wait()
        #expect(dns.calls.count == 11, "h9 from the cache, h0 evicted")
        #expect(scheduler.cacheCount <= 4)
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
