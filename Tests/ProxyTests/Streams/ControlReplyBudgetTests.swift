import AggProtocol
import Testing

/// The token bucket behind the PONG bound: a burst, then a steady rate, never more than the burst saved up.
@Suite struct ControlReplyBudgetTests {
    /// How many of `count` replies at `now` the budget allows.
    static func replies(_ budget: inout ControlReplyBudget, _ count: Int, at now: UInt64) -> Int {
        var allowed = 0
        for _ in 0..<count where budget.mayReply(now: now) { allowed += 1 }
        return allowed
    }

    @Test func burstThenRefillAtTheRate() {
        var budget = ControlReplyBudget(burst: 8, perSecond: 4)
        let start: UInt64 = 5_000_000_000
        #expect(Self.replies(&budget, 20, at: start) == 8)
        #expect(budget.refused == 12)
        // A quarter second later one token is back, half a second later one more.
        #expect(Self.replies(&budget, 2, at: start + 250_000_000) == 1)
        #expect(Self.replies(&budget, 2, at: start + 500_000_000) == 1)
        // A long silence refills the burst and no more.
        #expect(Self.replies(&budget, 20, at: start + 60_000_000_000) == 8)
    }

    @Test func aClockThatGoesBackGivesNothingExtra() {
        var budget = ControlReplyBudget(burst: 2, perSecond: 1)
        #expect(Self.replies(&budget, 2, at: 10_000_000_000) == 2)
        #expect(Self.replies(&budget, 1, at: 1_000_000_000) == 0)
        #expect(Self.replies(&budget, 1, at: 10_500_000_000) == 0)
        #expect(Self.replies(&budget, 1, at: 11_000_000_000) == 1)
    }
}
