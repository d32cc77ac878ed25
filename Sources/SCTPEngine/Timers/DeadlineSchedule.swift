import HeapModule

/// An object the endpoint's `DeadlineSchedule` keeps: it carries the deadline of its own live entry, so the schedule
/// needs no dictionary (and no hashing) on the per-packet path.
protocol DeadlineScheduled: AnyObject {
    /// The deadline of this object's live entry in the schedule; nil when it is not scheduled. Only the schedule
    /// writes it.
    var scheduledDeadline: SCTPTime? { get set }
}

/// The endpoint's one timer structure across associations: a min-heap of (deadline, association) so the earliest
/// deadline is found, and the due associations are visited, in O(log n) whatever the number of associations.
///
/// Entries are lower bounds: an association's deadline moving later leaves its earlier entry in place (it fires
/// early, the association is found not due, and its real deadline is scheduled then), so the common case, a timer
/// pushed back on every acknowledgement, costs nothing here. Only a deadline moving earlier adds an entry; stale
/// entries are skipped when they reach the top and swept when they outnumber live ones, or when more than 16 plus
/// the live count were forgotten, so that no more than that many closed associations are held by stale entries.
/// Which entry is live is kept on the object itself (`scheduledDeadline`).
struct DeadlineSchedule<Element: DeadlineScheduled> {
    private struct Entry: Comparable {
        var deadline: SCTPTime
        var element: Element
        var isLive: Bool { element.scheduledDeadline == deadline }
        static func < (a: Entry, b: Entry) -> Bool { a.deadline < b.deadline }
        static func == (a: Entry, b: Entry) -> Bool { a.deadline == b.deadline && a.element === b.element }
    }

    private var heap = Heap<Entry>()
    /// How many elements are scheduled (one live entry each).
    private var liveCount = 0
    /// Elements forgotten (scheduled to nil) since the last sweep: their stale entries still hold them, and a
    /// closed association's buffers with them, so a sweep comes after a few, not only when the heap doubles.
    private var forgottenSinceSweep = 0

    /// Entries in the heap, stale ones included (tests).
    var entryCount: Int { heap.count }

    /// Makes sure `element` is visited at or before `deadline`; nil forgets it.
    mutating func schedule(_ element: Element, at deadline: SCTPTime?) {
        guard let deadline else {
            if element.scheduledDeadline != nil {
                element.scheduledDeadline = nil
                liveCount -= 1
                forgottenSinceSweep += 1
                if forgottenSinceSweep > 16 + liveCount { compact() }
            }
            return
        }
        if let current = element.scheduledDeadline {
            if current <= deadline { return }
        } else {
            liveCount += 1
        }
        element.scheduledDeadline = deadline
        heap.insert(Entry(deadline: deadline, element: element))
        if heap.count > 2 * liveCount + 64 { compact() }
    }

    /// The earliest instant anything is scheduled for (possibly early for an element whose deadline moved later).
    mutating func nextDeadline() -> SCTPTime? {
        dropStaleTop()
        return heap.min?.deadline
    }

    /// Removes and returns every element scheduled at or before `now`; each must be scheduled again after its visit.
    mutating func popDue(now: SCTPTime) -> [Element] {
        var due: [Element] = []
        while true {
            dropStaleTop()
            guard let top = heap.min, top.deadline <= now else { break }
            heap.removeMin()
            top.element.scheduledDeadline = nil
            liveCount -= 1
            due.append(top.element)
        }
        return due
    }

    private mutating func dropStaleTop() {
        while let top = heap.min, !top.isLive { heap.removeMin() }
    }

    /// Rebuilds the heap from the live entries only (which also lets go of elements only stale entries held).
    private mutating func compact() {
        heap = Heap(heap.unordered.filter(\.isLive))
        forgottenSinceSweep = 0
    }
}
