/// Holds every armed timer's deadline and reports which have expired; the driver keeps a single OS timer at
/// `earliestDeadline`.
///
/// An association arms a handful of timers, so a flat array scanned linearly beats any tree or heap here.
struct TimerTable: Sendable {
    private var entries: [(id: TimerID, deadline: SCTPTime)] = []

    init() {}

    /// Arms `id` to fire at `deadline`, replacing any earlier arming of the same timer.
    mutating func arm(_ id: TimerID, at deadline: SCTPTime) {
        if let index = entries.firstIndex(where: { $0.id == id }) {
            entries[index].deadline = deadline
        } else {
            entries.append((id, deadline))
        }
    }

    /// Stops `id`; does nothing if it is not armed.
    mutating func disarm(_ id: TimerID) {
        if let index = entries.firstIndex(where: { $0.id == id }) {
            entries.swapAt(index, entries.count - 1)
            entries.removeLast()
        }
    }

    /// Stops every timer that belongs to `path` (when the path is removed).
    mutating func disarmAll(on path: PathID) {
        entries.removeAll { entry in
            switch entry.id {
            case .t3rtx(let p), .heartbeat(let p): return p == path
            default: return false
            }
        }
    }

    mutating func disarmAll() { entries.removeAll(keepingCapacity: true) }

    func deadline(of id: TimerID) -> SCTPTime? { entries.first(where: { $0.id == id })?.deadline }

    func isArmed(_ id: TimerID) -> Bool { entries.contains(where: { $0.id == id }) }

    /// The soonest deadline of any armed timer, or nil when none is armed.
    var earliestDeadline: SCTPTime? { entries.lazy.map(\.deadline).min() }

    /// Disarms and returns the next timer due at `now` — earliest deadline first, ties in `TimerID` order — or nil.
    /// Allocation-free; call until nil.
    mutating func popExpired(now: SCTPTime) -> TimerID? {
        var best: Int?
        for index in entries.indices where entries[index].deadline <= now {
            if let b = best {
                let (x, y) = (entries[index], entries[b])
                if x.deadline < y.deadline || (x.deadline == y.deadline && x.id < y.id) { best = index }
            } else {
                best = index
            }
        }
        guard let best else { return nil }
        let id = entries[best].id
        entries.remove(at: best)
        return id
    }

    /// Disarms and returns every timer due at `now`, in the order of `popExpired`.
    mutating func expired(now: SCTPTime) -> [TimerID] {
        var result: [TimerID] = []
        while let id = popExpired(now: now) { result.append(id) }
        return result
    }
}
