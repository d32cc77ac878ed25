import DequeModule

/// Receiver-side buffer splitting for CMT (after Dreibholz et al.): the receive buffer is divided among the paths
/// DATA arrives on, and each path may hold at most its share of it with data received out of order (above the
/// cumulative TSN, so not deliverable yet). A chunk that would take its path beyond that share is dropped without
/// acknowledgement (RFC 9260 §6.2 lets a receiver short of buffer space drop DATA), which the sender reads as loss
/// on that path alone. So a slow or lossy path cannot fill the whole window with data stuck behind holes while
/// the other paths starve for buffer space: the pressure it creates comes back to it as a congestion signal.
///
/// Shares follow the paths' recent arrival rates, measured in bytes received: every byte counts toward its path,
/// and all counts are halved whenever they add up to more than the buffer, so the split tracks roughly the last
/// buffer's worth of traffic. Each path's share is at least `minimumShare`, so an idle path can start again. With a
/// single path the share is the whole buffer. Chunks are released when the cumulative TSN passes them.
///
/// `Route` names what a chunk crossed. The association keys by the (local, remote) address pair a packet arrived
/// on, not by its own path to the peer: a client with one address sending to a multihomed server reaches it over
/// as many routes as the server has addresses, while the server has a single path back to the client.
struct ReceiveBufferSplitter<Route: Hashable & Sendable>: Sendable {
    /// One chunk held out of order.
    private struct Held: Sendable {
        var tsn: TSN
        var path: Route
        var size: Int
    }

    /// Bytes received per path, decayed by halving.
    private var arrivals: [Route: Int] = [:]
    /// When each path last received, for the paths whose arrivals were timed.
    private var lastArrival: [Route: SCTPTime] = [:]
    /// Bytes held out of order per path.
    private(set) var heldBytes: [Route: Int] = [:]
    /// Chunks held out of order, ascending by TSN.
    private var held = Deque<Held>()
    let bufferSize: Int
    let minimumShare: Int

    init(bufferSize: Int, minimumShare: Int) {
        self.bufferSize = bufferSize
        self.minimumShare = min(minimumShare, bufferSize)
    }

    // MARK: - Shares

    /// The bytes `path` may hold out of order: the buffer split in proportion to recent arrivals, among
    /// `pathCount` paths.
    func share(of path: Route, pathCount: Int) -> Int {
        guard pathCount > 1 else { return bufferSize }
        let total = arrivals.values.reduce(0, +)
        guard total > 0 else { return bufferSize / pathCount }
        let proportional = Int(Double(bufferSize) * Double(arrivals[path] ?? 0) / Double(total))
        return max(minimumShare, proportional)
    }

    /// Whether a chunk of `size` bytes arriving on `path` that would be held out of order fits the path's share.
    func admits(size: Int, on path: Route, pathCount: Int) -> Bool {
        (heldBytes[path] ?? 0) + size <= share(of: path, pathCount: pathCount)
    }

    /// The routes sharing the buffer once `path` is counted: those that received bytes recently, plus `path`.
    func routeCount(including path: Route) -> Int {
        arrivals[path] == nil ? arrivals.count + 1 : arrivals.count
    }

    // MARK: - Accounting

    /// Counts `size` new bytes received on `path` toward its share; `now`, if given, lets `forgetRoutes` drop the
    /// path once it falls quiet.
    mutating func recordArrival(size: Int, on path: Route, at now: SCTPTime? = nil) {
        arrivals[path, default: 0] += size
        if let now { lastArrival[path] = now }
        if arrivals.values.reduce(0, +) > bufferSize {
            for key in arrivals.keys { arrivals[key]! /= 2 }
            // A route that has gone quiet decays to nothing and stops counting toward the split.
            arrivals = arrivals.filter { $0.value > 0 }
        }
    }

    /// Stops counting the paths that received nothing since `cutoff`: a path that died, or was left idle, must not
    /// keep a share, or the survivors would be held to what is left of the buffer. Halving alone would take
    /// megabytes of arrivals elsewhere to wear its count down, and meanwhile the retransmissions of what the dead
    /// path lost, now arriving over the others, would be dropped as beyond their shares.
    mutating func forgetRoutes(quietSince cutoff: SCTPTime) {
        for (path, last) in lastArrival where last < cutoff {
            lastArrival[path] = nil
            arrivals[path] = nil
        }
    }

    /// Records a chunk accepted above the cumulative TSN.
    mutating func hold(tsn: TSN, size: Int, on path: Route) {
        var i = held.count
        while i > 0 && held[i - 1].tsn.isAfter(tsn) { i -= 1 }
        held.insert(Held(tsn: tsn, path: path, size: size), at: i)
        heldBytes[path, default: 0] += size
    }

    /// Releases every chunk at or below the cumulative TSN: it no longer waits for a hole.
    mutating func release(through cumulativeTSN: TSN) {
        while let first = held.first, cumulativeTSN.isAtOrAfter(first.tsn) {
            held.removeFirst()
            heldBytes[first.path, default: 0] -= first.size
        }
    }

    /// Total bytes held out of order.
    var totalHeldBytes: Int { heldBytes.values.reduce(0, +) }
}
