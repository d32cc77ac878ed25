import AggProtocol
import NIOCore
import NIOPosix
import SCTPEngine
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs the server's blocking name lookups (`DNSLookup`, getaddrinfo by default) on threads of its own, within
/// bounds, so that one client cannot take name resolution away from the others:
/// - at most `Limits.concurrent` lookups run at once in all, and at most `Limits.perOwner` for one owner (an
///   association); a lookup counts against its owner until its thread returns, even after its requester gave up,
///   so names that never resolve cannot pile up on threads;
/// - the others wait in a queue of at most `Limits.queued` entries, of which one owner may hold at most
///   `Limits.queuedPerOwner`; a thread that frees up takes the oldest entry whose owner is under its limit;
/// - a lookup that cannot queue is refused at once (`LookupRefusal`, `Refusal.resolverBusy`), and one not
///   answered within `Limits.timeout` of its request, waiting or running, fails (`Refusal.resolverTimeout`);
/// - answers are cached for `Limits.positiveTTL` and "no such name" answers (EAI_NONAME, not temporary failures)
///   for `Limits.negativeTTL` (getaddrinfo does not give the records' TTLs), at most `Limits.cacheEntries` of
///   them. The cache holds the resolved addresses before the egress policy, which filters every answer when it is
///   used, so a reloaded policy applies to cached answers too.
public final class LookupScheduler: Sendable {
    /// The bounds; the defaults suit a server with a few dozen clients.
    public struct Limits: Sendable, Equatable {
        /// Lookups running at once in all (the threads).
        public var concurrent = 16
        /// Lookups running at once for one association (an OPEN costs two: A and AAAA).
        public var perOwner = 4
        /// Lookups waiting for a thread, in all.
        public var queued = 256
        /// Lookups waiting for a thread, for one association.
        public var queuedPerOwner = 16
        /// How long a lookup may take from its request, waiting included.
        public var timeout: TimeAmount = .seconds(5)
        public var cacheEntries = 1024
        public var positiveTTL: TimeAmount = .seconds(30)
        public var negativeTTL: TimeAmount = .seconds(5)

        public init() {}
    }

    /// Who asked: lookups of one owner share its limits (the server uses the association id).
    public typealias Owner = Int
    /// The owner of lookups made without one.
    public static let noOwner: Owner = .min

    /// A cache and queue key: the name (lower-cased) and the family.
    struct Key: Hashable {
        var host: String
        var family: DNSLookup.Family
    }

    /// One requested lookup and the promise its requester waits on.
    struct Job {
        var id: Int
        var key: Key
        var owner: Owner
        var promise: EventLoopPromise<[SCTPIPAddress]>
    }

    /// A cached answer: addresses, or the DNS error, until `expiry`.
    struct CacheEntry {
        var result: Result<[SCTPIPAddress], DNSLookupError>
        var expiry: NIODeadline
    }

    /// Everything shared between the event loops that ask and the threads that answer, behind one lock.
    struct State {
        var running: [Owner: Int] = [:]
        var runningTotal = 0
        var queue: [Job] = []
        var queuedByOwner: [Owner: Int] = [:]
        /// Running jobs whose requester still waits, by id.
        var waiting: [Int: Job] = [:]
        var nextID = 0
        var cache: [Key: CacheEntry] = [:]
        /// The threads start with the first lookup: a connector that never resolves a name costs none.
        var threadsStarted = false
        var isShutDown = false
    }

    public let limits: Limits
    let lookup: DNSLookup
    private let state = Mutex(State())
    private let threads: NIOThreadPool

    public init(lookup: DNSLookup = .system, limits: Limits = Limits()) {
        precondition(limits.concurrent > 0 && limits.perOwner > 0, "a lookup scheduler runs at least one lookup")
        self.lookup = lookup
        self.limits = limits
        self.threads = NIOThreadPool(numberOfThreads: limits.concurrent)
    }

    deinit {
        let running = state.withLock { $0.threadsStarted && !$0.isShutDown }
        if running { threads.shutdownGracefully { _ in } }
    }

    /// Stops taking lookups: waiting ones fail, running ones finish on their threads (which then end).
    public func shutdown() {
        let (queued, wasRunning) = state.withLock { state -> ([Job], Bool) in
            defer {
                state.queue.removeAll()
                state.queuedByOwner.removeAll()
                state.isShutDown = true
            }
            return (state.queue, state.threadsStarted && !state.isShutDown)
        }
        for job in queued { job.promise.fail(LookupRefusal(.resolverBusy, "\(job.key.host): the server is stopping")) }
        if wasRunning { threads.shutdownGracefully { _ in } }
    }

    /// Looks `host` up for `family` on behalf of `owner`; the future completes on `loop` with the addresses, a
    /// `DNSLookupError`, or a `LookupRefusal`. The id lets the requester `cancel` it.
    public func resolve(
        host: String, family: DNSLookup.Family, owner: Owner, on loop: any EventLoop
    )
        -> (id: Int, future: EventLoopFuture<[SCTPIPAddress]>)
    {
        let key = Key(host: host.lowercased(), family: family)
        let promise = loop.makePromise(of: [SCTPIPAddress].self)
        let now = NIODeadline.now()
        /// What to do with a request, decided under the lock and done outside it.
        enum Decision {
            case cached(Result<[SCTPIPAddress], DNSLookupError>)
            case start(Job)
            case queued
            case refused(String)
        }
        let (id, decision) = state.withLock { state -> (Int, Decision) in
            let id = state.nextID
            state.nextID += 1
            if let entry = state.cache[key] {
                if entry.expiry > now { return (id, .cached(entry.result)) }
                state.cache[key] = nil
            }
            guard !state.isShutDown else { return (id, .refused("the server is stopping")) }
            let job = Job(id: id, key: key, owner: owner, promise: promise)
            if state.runningTotal < limits.concurrent, state.running[owner, default: 0] < limits.perOwner {
                Self.markRunning(job, in: &state)
                return (id, .start(job))
            }
            guard state.queue.count < limits.queued else {
                return (id, .refused("\(state.queue.count) lookups wait already"))
            }
            guard state.queuedByOwner[owner, default: 0] < limits.queuedPerOwner else {
                return (id, .refused("this association has \(limits.queuedPerOwner) lookups waiting already"))
            }
            state.queue.append(job)
            state.queuedByOwner[owner, default: 0] += 1
            return (id, .queued)
        }
        switch decision {
        case .cached(let result):
            promise.completeWith(result.mapError { $0 as any Error })
            return (id, promise.futureResult)
        case .refused(let why):
            promise.fail(LookupRefusal(.resolverBusy, "\(host): \(why)"))
            return (id, promise.futureResult)
        case .start(let job):
            start(job)
        case .queued:
            break
        }
        let timeout = limits.timeout
        loop.scheduleTask(in: timeout) { [weak self] in
            self?.expire(id, reason: "no answer within \(timeout.nanoseconds / 1_000_000) ms")
        }
        return (id, promise.futureResult)
    }

    /// The requester no longer wants these lookups: waiting ones leave the queue, running ones finish unseen.
    public func cancel(_ ids: [Int]) {
        for id in ids { expire(id, reason: "cancelled", cancelled: true) }
    }

    /// Lookups running and waiting now, for tests and status.
    public var load: (running: Int, queued: Int) {
        state.withLock { ($0.runningTotal, $0.queue.count) }
    }

    /// Cached answers, for tests.
    var cacheCount: Int { state.withLock { $0.cache.count } }

    // MARK: - Running

    private static func markRunning(_ job: Job, in state: inout State) {
        state.running[job.owner, default: 0] += 1
        state.runningTotal += 1
        state.waiting[job.id] = job
    }

    private func start(_ job: Job) {
        // Under the lock, so that no lookup is submitted to threads another caller is still starting (a pool that
        // has not started runs its work at once as cancelled).
        state.withLock { state in
            if !state.threadsStarted {
                threads.start()
                state.threadsStarted = true
            }
        }
        let lookup = self.lookup
        threads.submit { workState in
            let result: Result<[SCTPIPAddress], any Error>
            if case .active = workState {
                result = Result { try lookup.lookup(job.key.host, job.key.family) }
            } else {
                result = .failure(LookupRefusal(.resolverBusy, "\(job.key.host): the server is stopping"))
            }
            self.finished(job, result)
        }
    }

    /// A thread returned: frees the slot, caches the answer, answers the requester if it still waits, and starts
    /// what the slot lets run now.
    private func finished(_ job: Job, _ result: Result<[SCTPIPAddress], any Error>) {
        let now = NIODeadline.now()
        let (waiter, next) = state.withLock { state -> (Job?, [Job]) in
            state.running[job.owner, default: 1] -= 1
            if state.running[job.owner] == 0 { state.running[job.owner] = nil }
            state.runningTotal -= 1
            switch result {
            case .success(let addresses):
                store(job.key, .success(addresses), expiry: now + limits.positiveTTL, in: &state)
            case .failure(let error as DNSLookupError) where error.code == EAI_NONAME:
                store(job.key, .failure(error), expiry: now + limits.negativeTTL, in: &state)
            case .failure:
                break
            }
            let waiter = state.waiting.removeValue(forKey: job.id)
            return (waiter, Self.takeRunnable(&state, limits: limits))
        }
        waiter?.promise.completeWith(result)
        for job in next { start(job) }
    }

    /// Takes the oldest waiting jobs whose owners are under their limit, while threads are free.
    private static func takeRunnable(_ state: inout State, limits: Limits) -> [Job] {
        var runnable: [Job] = []
        var index = 0
        while state.runningTotal < limits.concurrent, index < state.queue.count, !state.isShutDown {
            let job = state.queue[index]
            guard state.running[job.owner, default: 0] < limits.perOwner else {
                index += 1
                continue
            }
            state.queue.remove(at: index)
            state.queuedByOwner[job.owner, default: 1] -= 1
            if state.queuedByOwner[job.owner] == 0 { state.queuedByOwner[job.owner] = nil }
            markRunning(job, in: &state)
            runnable.append(job)
        }
        return runnable
    }

    /// Fails lookup `id` if its requester still waits for it (it left the queue, or its thread's answer will go
    /// unseen).
    private func expire(_ id: Int, reason: String, cancelled: Bool = false) {
        let job = state.withLock { state -> Job? in
            if let index = state.queue.firstIndex(where: { $0.id == id }) {
                let job = state.queue.remove(at: index)
                state.queuedByOwner[job.owner, default: 1] -= 1
                if state.queuedByOwner[job.owner] == 0 { state.queuedByOwner[job.owner] = nil }
                return job
            }
            return state.waiting.removeValue(forKey: id)
        }
        guard let job else { return }
        job.promise.fail(cancelled ? LookupCancelled() : LookupRefusal(.resolverTimeout, "\(job.key.host): \(reason)"))
    }

    // MARK: - Cache

    private func store(
        _ key: Key, _ result: Result<[SCTPIPAddress], DNSLookupError>, expiry: NIODeadline, in state: inout State
    ) {
        guard limits.cacheEntries > 0 else { return }
        if state.cache[key] == nil, state.cache.count >= limits.cacheEntries {
            let now = NIODeadline.now()
            state.cache = state.cache.filter { $0.value.expiry > now }
            if state.cache.count >= limits.cacheEntries,
                let oldest = state.cache.min(by: { $0.value.expiry < $1.value.expiry })
            {
                state.cache[oldest.key] = nil
            }
        }
        state.cache[key] = CacheEntry(result: result, expiry: expiry)
    }
}

/// A lookup its requester cancelled (Happy Eyeballs connected, or gave up).
public struct LookupCancelled: Error, Equatable, Sendable {}

/// A lookup the scheduler refused (its queues were full) or gave up on (no answer in time); `refusal` says which,
/// for the metric.
public struct LookupRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    public var refusal: Refusal
    public var detail: String

    public init(_ refusal: Refusal, _ detail: String) {
        self.refusal = refusal
        self.detail = detail
    }

    public var description: String {
        switch refusal {
        case .resolverTimeout: return "name lookup timed out: \(detail)"
        default: return "name lookup refused: \(detail)"
        }
    }
}
