/// Disjoint, non-adjacent closed ranges of unwrapped (64-bit) TSNs, kept in an AVL tree so that finding, adding,
/// merging and removing a range costs O(log n) for n ranges whatever order the TSNs arrive in. The data tracker
/// keeps here the TSNs received above its cumulative TSN, and those of them already delivered (NR-SACK).
///
/// Nodes live in one array and name each other by index, so the set is a value that copies on write and allocates
/// nothing per range in steady state: freed slots are reused, and the storage is released when the set empties.
/// `steps` counts the nodes visited and rotated by changes, which is what tests check the cost with.
struct TSNRangeSet: Sendable {
    private struct Node: Sendable {
        var lower: UnwrappedTSN
        var upper: UnwrappedTSN
        var left: Int32
        var right: Int32
        var height: Int8
    }

    private static let none: Int32 = -1

    private var nodes: [Node] = []
    private var freeSlots: [Int32] = []
    private var root: Int32 = none
    /// Ranges held.
    private(set) var count = 0
    /// Nodes visited or rotated by `insert` and the removals since the set was made.
    private(set) var steps = 0

    init() {}

    var isEmpty: Bool { count == 0 }

    /// The lowest range.
    var first: ClosedRange<UnwrappedTSN>? {
        var i = root
        guard i != Self.none else { return nil }
        while nodes[Int(i)].left != Self.none { i = nodes[Int(i)].left }
        return range(i)
    }

    /// The range holding `value`, if any.
    func range(containing value: UnwrappedTSN) -> ClosedRange<UnwrappedTSN>? {
        var ignored = 0
        let i = floorNode(value, steps: &ignored)
        guard i != Self.none, nodes[Int(i)].upper >= value else { return nil }
        return range(i)
    }

    func contains(_ value: UnwrappedTSN) -> Bool { range(containing: value) != nil }

    /// The range with the greatest lower bound at most `value`.
    func floor(_ value: UnwrappedTSN) -> ClosedRange<UnwrappedTSN>? {
        var ignored = 0
        let i = floorNode(value, steps: &ignored)
        return i == Self.none ? nil : range(i)
    }

    /// The range with the least lower bound at least `value`.
    func ceiling(_ value: UnwrappedTSN) -> ClosedRange<UnwrappedTSN>? {
        var ignored = 0
        let i = ceilingNode(value, steps: &ignored)
        return i == Self.none ? nil : range(i)
    }

    // MARK: - Changes

    /// Adds `value`, joining the ranges on either side when it touches them. False when it was already present.
    mutating func insert(_ value: UnwrappedTSN) -> Bool {
        let previous = floorNode(value, steps: &steps)
        if previous != Self.none, nodes[Int(previous)].upper >= value { return false }
        let next = value == .max ? Self.none : ceilingNode(value + 1, steps: &steps)
        let joinsPrevious = previous != Self.none && nodes[Int(previous)].upper + 1 == value
        let joinsNext = next != Self.none && nodes[Int(next)].lower == value + 1
        switch (joinsPrevious, joinsNext) {
        case (true, true):
            // Removing `next` leaves the slot of `previous`, which comes before it, untouched.
            let upper = nodes[Int(next)].upper
            remove(lower: nodes[Int(next)].lower)
            nodes[Int(previous)].upper = upper
        case (true, false):
            nodes[Int(previous)].upper = value
        case (false, true):
            // Still above `previous`: the order holds.
            nodes[Int(next)].lower = value
        case (false, false):
            root = insertNode(lower: value, upper: value, into: root)
        }
        return true
    }

    /// Adds `range`, merging every range it overlaps or touches.
    mutating func insert(_ range: ClosedRange<UnwrappedTSN>) {
        var upper = range.upperBound
        let previous = floorNode(range.lowerBound, steps: &steps)
        let target: Int32
        let touching = range.lowerBound == .min ? .min : range.lowerBound - 1
        if previous != Self.none, nodes[Int(previous)].upper >= touching {
            if nodes[Int(previous)].upper >= upper { return }
            target = previous
        } else {
            target = Self.none
        }
        // Absorb the ranges that start inside `range` or right after it.
        while upper < .max {
            let next = ceilingNode(range.lowerBound + 1, steps: &steps)
            guard next != Self.none, nodes[Int(next)].lower <= upper + 1 else { break }
            upper = max(upper, nodes[Int(next)].upper)
            remove(lower: nodes[Int(next)].lower)
        }
        if target != Self.none {
            nodes[Int(target)].upper = upper
        } else {
            root = insertNode(lower: range.lowerBound, upper: upper, into: root)
        }
    }

    /// Removes the range that starts at `lower`; nothing if none does.
    mutating func remove(lower: UnwrappedTSN) {
        root = removeNode(lower: lower, from: root)
        releaseStorageIfEmpty()
    }

    /// Removes the values of `range`, cutting the ranges that reach beyond it.
    mutating func remove(_ range: ClosedRange<UnwrappedTSN>) {
        var start = floorNode(range.lowerBound, steps: &steps)
        if start == Self.none || nodes[Int(start)].upper < range.lowerBound {
            start = ceilingNode(range.lowerBound, steps: &steps)
        }
        var next = start
        while next != Self.none, nodes[Int(next)].lower <= range.upperBound {
            let (lower, upper) = (nodes[Int(next)].lower, nodes[Int(next)].upper)
            remove(lower: lower)
            if lower < range.lowerBound { root = insertNode(lower: lower, upper: range.lowerBound - 1, into: root) }
            if upper > range.upperBound {
                root = insertNode(lower: range.upperBound + 1, upper: upper, into: root)
                return
            }
            next = range.upperBound == .max ? Self.none : ceilingNode(range.lowerBound, steps: &steps)
        }
    }

    /// Removes the lowest range.
    mutating func removeFirst() {
        guard root != Self.none else { return }
        root = removeMin(from: root)
        releaseStorageIfEmpty()
    }

    /// Raises the lowest range's lower bound to `lower`, which must be within it.
    mutating func trimFirst(to lower: UnwrappedTSN) {
        var i = root
        guard i != Self.none else { return }
        while nodes[Int(i)].left != Self.none {
            steps += 1
            i = nodes[Int(i)].left
        }
        precondition(nodes[Int(i)].lower <= lower && lower <= nodes[Int(i)].upper, "trim outside the first range")
        nodes[Int(i)].lower = lower
    }

    /// Removes every value at or below `value`.
    mutating func removeAll(through value: UnwrappedTSN) {
        while let first, first.lowerBound <= value {
            if first.upperBound <= value { removeFirst() } else { trimFirst(to: value + 1) }
        }
    }

    // MARK: - Walking in order

    /// Calls `body` with the ranges whose lower bound is at most `bound`, lowest first, at most `limit` of them.
    /// Costs O(log n + limit); adds the nodes it visits to `steps`.
    func forEachAscending(
        through bound: UnwrappedTSN, limit: Int, steps: inout Int, _ body: (ClosedRange<UnwrappedTSN>) -> Void
    ) {
        guard limit > 0 else { return }
        withPath { stack in
            var depth = 0
            var i = root
            var visited = 0
            while visited < limit {
                while i != Self.none {
                    steps += 1
                    stack[depth] = i
                    depth += 1
                    i = nodes[Int(i)].left
                }
                guard depth > 0 else { return }
                depth -= 1
                let top = stack[depth]
                guard nodes[Int(top)].lower <= bound else { return }
                body(range(top))
                visited += 1
                i = nodes[Int(top)].right
            }
        }
    }

    /// Calls `body` with the ranges whose lower bound is at most `bound`, highest first, at most `limit` of them.
    /// Costs O(log n + limit); adds the nodes it visits to `steps`.
    func forEachDescending(
        through bound: UnwrappedTSN, limit: Int, steps: inout Int, _ body: (ClosedRange<UnwrappedTSN>) -> Void
    ) {
        guard limit > 0 else { return }
        withPath { stack in
            var depth = 0
            var i = root
            var visited = 0
            while visited < limit {
                while i != Self.none {
                    steps += 1
                    if nodes[Int(i)].lower <= bound {
                        stack[depth] = i
                        depth += 1
                        i = nodes[Int(i)].right
                    } else {
                        i = nodes[Int(i)].left  // This node and its right subtree are all above `bound`.
                    }
                }
                guard depth > 0 else { return }
                depth -= 1
                let top = stack[depth]
                body(range(top))
                visited += 1
                i = nodes[Int(top)].left
            }
        }
    }

    /// The height of the tree: at most 1.44·log2(n + 2) for n ranges.
    var height: Int { Int(height(root)) }

    // MARK: - Internals

    private func range(_ i: Int32) -> ClosedRange<UnwrappedTSN> { nodes[Int(i)].lower...nodes[Int(i)].upper }

    /// A stack as deep as any AVL tree that fits in memory (height 64 takes more than 2^44 nodes), without a heap
    /// allocation.
    private func withPath(_ body: (UnsafeMutableBufferPointer<Int32>) -> Void) {
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 64) { body($0) }
    }

    /// The node with the greatest lower bound at most `value`.
    private func floorNode(_ value: UnwrappedTSN, steps: inout Int) -> Int32 {
        var i = root
        var found = Self.none
        while i != Self.none {
            steps += 1
            if nodes[Int(i)].lower <= value {
                found = i
                i = nodes[Int(i)].right
            } else {
                i = nodes[Int(i)].left
            }
        }
        return found
    }

    /// The node with the least lower bound at least `value`.
    private func ceilingNode(_ value: UnwrappedTSN, steps: inout Int) -> Int32 {
        var i = root
        var found = Self.none
        while i != Self.none {
            steps += 1
            if nodes[Int(i)].lower >= value {
                found = i
                i = nodes[Int(i)].left
            } else {
                i = nodes[Int(i)].right
            }
        }
        return found
    }

    private func height(_ i: Int32) -> Int8 { i == Self.none ? 0 : nodes[Int(i)].height }

    private mutating func allocate(lower: UnwrappedTSN, upper: UnwrappedTSN) -> Int32 {
        count += 1
        let node = Node(lower: lower, upper: upper, left: Self.none, right: Self.none, height: 1)
        if let slot = freeSlots.popLast() {
            nodes[Int(slot)] = node
            return slot
        }
        nodes.append(node)
        return Int32(nodes.count - 1)
    }

    private mutating func release(_ i: Int32) {
        count -= 1
        freeSlots.append(i)
    }

    /// An empty set gives back what a burst of gaps grew, but keeps a small table: in-order delivery empties the
    /// set with every packet, and freeing it each time cost two allocations per packet.
    private mutating func releaseStorageIfEmpty() {
        guard count == 0, !nodes.isEmpty else { return }
        let keep = nodes.capacity <= Self.keptCapacity
        nodes.removeAll(keepingCapacity: keep)
        freeSlots.removeAll(keepingCapacity: keep)
        root = Self.none
    }

    /// Nodes whose storage an emptied set keeps.
    static let keptCapacity = 64

    private mutating func insertNode(lower: UnwrappedTSN, upper: UnwrappedTSN, into i: Int32) -> Int32 {
        steps += 1
        guard i != Self.none else { return allocate(lower: lower, upper: upper) }
        if lower < nodes[Int(i)].lower {
            let left = insertNode(lower: lower, upper: upper, into: nodes[Int(i)].left)
            nodes[Int(i)].left = left
        } else {
            let right = insertNode(lower: lower, upper: upper, into: nodes[Int(i)].right)
            nodes[Int(i)].right = right
        }
        return balance(i)
    }

    private mutating func removeNode(lower: UnwrappedTSN, from i: Int32) -> Int32 {
        steps += 1
        guard i != Self.none else { return Self.none }
        if lower < nodes[Int(i)].lower {
            let left = removeNode(lower: lower, from: nodes[Int(i)].left)
            nodes[Int(i)].left = left
        } else if lower > nodes[Int(i)].lower {
            let right = removeNode(lower: lower, from: nodes[Int(i)].right)
            nodes[Int(i)].right = right
        } else {
            let (left, right) = (nodes[Int(i)].left, nodes[Int(i)].right)
            if left == Self.none || right == Self.none {
                release(i)
                return left == Self.none ? right : left
            }
            // Two children: this slot takes its successor's range, and the successor's node goes.
            var successor = right
            while nodes[Int(successor)].left != Self.none {
                steps += 1
                successor = nodes[Int(successor)].left
            }
            nodes[Int(i)].lower = nodes[Int(successor)].lower
            nodes[Int(i)].upper = nodes[Int(successor)].upper
            let newRight = removeMin(from: right)
            nodes[Int(i)].right = newRight
        }
        return balance(i)
    }

    private mutating func removeMin(from i: Int32) -> Int32 {
        steps += 1
        let left = nodes[Int(i)].left
        guard left != Self.none else {
            let right = nodes[Int(i)].right
            release(i)
            return right
        }
        let newLeft = removeMin(from: left)
        nodes[Int(i)].left = newLeft
        return balance(i)
    }

    /// Restores the AVL property at `i` after one of its subtrees changed height by one; returns the subtree's
    /// new root.
    private mutating func balance(_ i: Int32) -> Int32 {
        updateHeight(i)
        let left = nodes[Int(i)].left
        let right = nodes[Int(i)].right
        let skew = Int(height(left)) - Int(height(right))
        if skew > 1 {
            if height(nodes[Int(left)].left) < height(nodes[Int(left)].right) {
                let newLeft = rotateLeft(left)
                nodes[Int(i)].left = newLeft
            }
            return rotateRight(i)
        }
        if skew < -1 {
            if height(nodes[Int(right)].right) < height(nodes[Int(right)].left) {
                let newRight = rotateRight(right)
                nodes[Int(i)].right = newRight
            }
            return rotateLeft(i)
        }
        return i
    }

    private mutating func rotateRight(_ i: Int32) -> Int32 {
        steps += 1
        let pivot = nodes[Int(i)].left
        nodes[Int(i)].left = nodes[Int(pivot)].right
        nodes[Int(pivot)].right = i
        updateHeight(i)
        updateHeight(pivot)
        return pivot
    }

    private mutating func rotateLeft(_ i: Int32) -> Int32 {
        steps += 1
        let pivot = nodes[Int(i)].right
        nodes[Int(i)].right = nodes[Int(pivot)].left
        nodes[Int(pivot)].left = i
        updateHeight(i)
        updateHeight(pivot)
        return pivot
    }

    private mutating func updateHeight(_ i: Int32) {
        nodes[Int(i)].height = max(height(nodes[Int(i)].left), height(nodes[Int(i)].right)) + 1
    }
}
