import HeapModule

/// The endpoint's one timer structure across associations: a min-heap of (deadline, association) so the earliest
/// deadline is found, and the due associations are visited, in O(log n) whatever the number of associations.
///
/// Entries are lower bounds: an association's deadline moving later leaves its earlier entry in place (it fires
/// early, the association is found not due, and its real deadline is scheduled then), so the common case, a timer
/// pushed back on every acknowledgement, costs nothing here. Only a deadline moving earlier adds an entry; stale
/// entries are skipped when they reach the top and swept when they outnumber live ones.
struct DeadlineSchedule<ID: Hashable> {
    private struct Entry: Comparable {
        var deadline: SCTPTime
        var id: ID
        static func < (a: Entry, b: Entry) -> Bool { a.deadline < b.deadline }
        static func == (a: Entry, b: Entry) -> Bool { a.deadline == b.deadline && a.id == b.id }
    }

    private var heap = Heap<Entry>()
    /// Each scheduled id's earliest entry in the heap: the one that counts.
    private var earliest: [ID: SCTPTime] = [:]

    /// Entries in the heap, stale ones included (tests).
    var entryCount: Int { heap.count }

    /// Makes sure `id` is visited at or before `deadline`; nil forgets it.
    mutating func schedule(_ id: ID, at deadline: SCTPTime?) {
        guard let deadline else {
            earliest[id] = nil
            return
        }
        if let current = earliest[id], current <= deadline { return }
        earliest[id] = deadline
        heap.insert(Entry(deadline: deadline, id: id))
        if heap.count > 2 * earliest.count + 64 { compact() }
    }

    /// The earliest instant anything is scheduled for (possibly early for an id whose deadline moved later).
    mutating func nextDeadline() -> SCTPTime? {
        dropStaleTop()
        return heap.min?.deadline
    }

    /// Removes and returns every id scheduled at or before `now`; each must be scheduled again after its visit.
    mutating func popDue(now: SCTPTime) -> [ID] {
        var due: [ID] = []
        while true {
            dropStaleTop()
            guard let top = heap.min, top.deadline <= now else { break }
            heap.removeMin()
            earliest[top.id] = nil
            due.append(top.id)
        }
        return due
    }

    private mutating func dropStaleTop() {
        while let top = heap.min, earliest[top.id] != top.deadline { heap.removeMin() }
    }

    /// Rebuilds the heap from the live entries only.
    private mutating func compact() {
        heap = Heap(earliest.map { Entry(deadline: $0.value, id: $0.key) })
    }
}
