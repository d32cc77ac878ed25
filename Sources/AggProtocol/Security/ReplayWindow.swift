/// Accepts each 64-bit packet counter at most once: a sliding bitmap of the last `size` counters below the highest
/// seen, so packets reordered between paths are accepted while duplicates and counters older than the window are
/// not. O(1) per packet: an advance clears the bits it passes a word at a time (at most the whole bitmap).
///
/// The window is sized for multipath. One counter runs across every path, so a packet on a slow path arrives
/// behind every packet the fast paths delivered meanwhile: at 1 Gbit/s (85,000 datagrams a second) a path 300 ms
/// slower than another lags by 25,000 counters. 65,536 counters (8 KiB per session and direction) cover 2.5 Gbit/s
/// at that skew; the 2,048 counters of before dropped valid datagrams from 80 Mbit/s on.
struct ReplayWindow: Sendable {
    /// Counters the window covers below the highest one seen.
    static let size: UInt64 = 1 << 16
    private static let words = Int(size / 64)

    /// The highest counter accepted, nil before the first.
    private(set) var highest: UInt64?
    /// Bit `c % size` is set when counter `c` (within the window) was accepted.
    private var bits = [UInt64](repeating: 0, count: words)

    init() {}

    /// A window that has accepted nothing yet but treats `highest` as the highest counter seen (tests of sessions
    /// in mid-life).
    init(highest: UInt64) {
        self.highest = highest
    }

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
            clear(after: previous, through: counter)
        } else {
            for index in bits.indices { bits[index] = 0 }
        }
        set(counter)
    }

    /// Clears the bits of the counters `start + 1 ... end`, fewer than `size` of them: bit by bit up to a word
    /// boundary, then whole words, then bit by bit.
    private mutating func clear(after start: UInt64, through end: UInt64) {
        var counter = start &+ 1
        while counter <= end, counter % 64 != 0 {
            clear(counter)
            counter &+= 1
        }
        while counter <= end, end - counter >= 63 {
            bits[Int((counter % Self.size) / 64)] = 0
            counter &+= 64
        }
        while counter <= end {
            clear(counter)
            counter &+= 1
        }
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
