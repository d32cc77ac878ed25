import NIOCore

/// The last `capacity` elements appended, oldest first: appending to a full history drops the oldest, so memory
/// stays bounded however long the daemon runs.
struct SampleHistory<Element> {
    let capacity: Int
    private var elements: CircularBuffer<Element>

    init(capacity: Int) {
        precondition(capacity > 0, "a history holds at least one element")
        self.capacity = capacity
        self.elements = CircularBuffer(initialCapacity: capacity)
    }

    var count: Int { elements.count }

    mutating func append(_ element: Element) {
        if elements.count == capacity { elements.removeFirst() }
        elements.append(element)
    }

    /// Every element, oldest first.
    var all: [Element] { Array(elements) }

    /// The newest `count` elements, oldest first.
    func suffix(_ count: Int) -> [Element] { Array(elements.suffix(max(count, 0))) }
}
