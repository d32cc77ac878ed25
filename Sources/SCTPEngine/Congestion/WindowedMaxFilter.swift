/// The largest value seen over a sliding window of rounds, in constant space: the best, second-best and
/// third-best candidates of the window's most recent sub-windows (Nichols' running-extremum scheme). No heap
/// storage, so a controller holding one copies freely on the per-ack path.
struct WindowedMaxFilter: Sendable {
    /// A value and the round it was seen in.
    struct Entry: Sendable, Equatable {
        var value: Double
        var round: UInt64
    }

    /// Rounds a value counts for.
    let window: UInt64
    private var best = Entry(value: 0, round: 0)
    private var second = Entry(value: 0, round: 0)
    private var third = Entry(value: 0, round: 0)

    init(window: UInt64) { self.window = max(window, 1) }

    /// The maximum over the window; 0 before any value.
    var value: Double { best.value }

    /// Forgets every value.
    mutating func reset() { self = WindowedMaxFilter(window: window) }

    /// Takes `value` seen in `round` (rounds never go backwards).
    mutating func update(_ value: Double, round: UInt64) {
        let entry = Entry(value: value, round: round)
        // A new maximum, or nothing left within the window: the new value is all three candidates.
        if value >= best.value || round &- third.round > window {
            best = entry
            second = entry
            third = entry
            return
        }
        if value >= second.value {
            second = entry
            third = entry
        } else if value >= third.value {
            third = entry
        }
        let age = round &- best.round
        if age > window {
            // The best left the window: the runners-up move up, and the newest value fills the end.
            best = second
            second = third
            third = entry
            if round &- best.round > window {
                best = second
                second = third
            }
        } else if second.round == best.round && age > window / 4 {
            // A quarter of the window passed with no second candidate: keep the newest as one.
            second = entry
            third = entry
        } else if third.round == second.round && age > window / 2 {
            third = entry
        }
    }
}
