/// Accepts each 64-bit packet counter at most once: a sliding bitmap of the last `size` counters below the highest
/// seen, so packets reordered between paths are accepted while duplicates and counters older than the window are
/// not. O(1) per packet (an advance clears at most `size` bits).
struct ReplayWindow: Sendable {
    /// Counters the window covers below the highest one seen.
    static let size: UInt64 = 2048
    private static let words = Int(size / 64)

    /// The highest counter accepted, nil before the first.
    private(set) var highest: UInt64?
    /// Bit `c % size` is set when counter `c` (within the window) was accepted.
    private var bits = [UInt64](repeating: 0, count: words)

    init() {}

    /// Whether `counter` is new and inside the window. Does not record it: call `accept` once the packet
    /// authenticated, so a forged packet cannot move the window.
    func mayAccept(_ counter: UInt64) -> Bool {
        guard let highest else { return true }
        if counter > highest { return true }
        guard highest - counter < Self.size else { return false }
        return !isSet(counter)
    }

    /// Records `counter`, which `mayAccept` allowed.
    mutating func accept(_ counter: UInt64) {
        if let highest, counter <= highest {
            set(counter)
            return
        }
        let previous = highest
        highest = counter
        if let previous, counter - previous < Self.size {
            var cleared = previous &+ 1
            while cleared != counter {
                clear(cleared)
                cleared &+= 1
            }
        } else {
            for index in bits.indices { bits[index] = 0 }
        }
        set(counter)
    }

    private func isSet(_ counter: UInt64) -> Bool {
        let bit = counter % Self.size
        return bits[Int(bit / 64)] & (1 << (bit % 64)) != 0
    }

    private mutating func set(_ counter: UInt64) {
        let bit = counter % Self.size
        bits[Int(bit / 64)] |= 1 << (bit % 64)
    }

    private mutating func clear(_ counter: UInt64) {
        let bit = counter % Self.size
        bits[Int(bit / 64)] &= ~(1 << (bit % 64))
    }
}
