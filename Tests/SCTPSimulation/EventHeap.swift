import SCTPEngine

/// A binary min-heap of events ordered by (time, insertion sequence), so equal times pop first-in first-out and a
/// run is reproducible.
struct EventHeap<Element> {
    /// Only plain integers move while sifting; the elements (which hold packet buffers) stay in `slots`, so the
    /// heap never retains or releases anything as it reorders.
    private struct Entry {
        var time: Int64
        var sequence: UInt64
        var slot: Int

        @inline(__always) func precedes(_ other: Entry) -> Bool {
            time < other.time || (time == other.time && sequence < other.sequence)
        }
    }

    private var storage: [Entry] = []
    private var slots: [Element?] = []
    private var freeSlots: [Int] = []
    private var nextSequence: UInt64 = 0

    var isEmpty: Bool { storage.isEmpty }
    var count: Int { storage.count }
    var minimumTime: SCTPTime? { storage.first.map { SCTPTime(nanoseconds: $0.time) } }

    mutating func push(_ element: Element, at time: SCTPTime) {
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            slots[slot] = element
        } else {
            slot = slots.count
            slots.append(element)
        }
        storage.append(Entry(time: time.nanoseconds, sequence: nextSequence, slot: slot))
        nextSequence &+= 1
        siftUp(storage.count - 1)
    }

    /// Removes and returns the earliest element if it is due at or before `time`.
    mutating func popIfDue(at time: SCTPTime) -> (time: SCTPTime, element: Element)? {
        guard let first = storage.first, first.time <= time.nanoseconds else { return nil }
        let last = storage.removeLast()
        if !storage.isEmpty {
            storage[0] = last
            siftDown(0)
        }
        let element = slots[first.slot].take()!
        freeSlots.append(first.slot)
        return (SCTPTime(nanoseconds: first.time), element)
    }

    private mutating func siftUp(_ index: Int) {
        var child = index
        let entry = storage[child]
        while child > 0 {
            let parent = (child - 1) / 2
            guard entry.precedes(storage[parent]) else { break }
            storage[child] = storage[parent]
            child = parent
        }
        storage[child] = entry
    }

    private mutating func siftDown(_ index: Int) {
        var parent = index
        let entry = storage[parent]
        let count = storage.count
        while true {
            let left = 2 * parent + 1
            guard left < count else { break }
            let right = left + 1
            let smaller = right < count && storage[right].precedes(storage[left]) ? right : left
            guard storage[smaller].precedes(entry) else { break }
            storage[parent] = storage[smaller]
            parent = smaller
        }
        storage[parent] = entry
    }
}
