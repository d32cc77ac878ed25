import SCTPEngine
import Testing

@testable import AggTransport

/// The driver's timer on a grid (`SCTPDriver.Options.timerStep`): deadlines of different associations that fall in
/// one step fire together, none fires before its deadline, and none later than one step after it.
@Suite struct DriverTimerStepTests {
    @Test func deadlinesWithinOneStepFireTogetherAndNeverEarly() {
        let step = SCTPDuration.milliseconds(1)
        let base: Int64 = 7_000_000_000
        let deadlines = [1, 250_000, 999_999, 1_000_000].map { SCTPTime(nanoseconds: base + $0) }
        let firings = deadlines.map { SCTPDriver.firing($0, step: step) }
        #expect(firings.dropLast().allSatisfy { $0 == SCTPTime(nanoseconds: base + 1_000_000) })
        // A deadline on the grid fires at once.
        #expect(firings.last == deadlines.last)
        for (deadline, firing) in zip(deadlines, firings) {
            #expect(firing >= deadline)
            #expect(firing - deadline < step)
        }
        // The next step's deadlines fire at the next grid point.
        #expect(
            SCTPDriver.firing(SCTPTime(nanoseconds: base + 1_000_001), step: step)
                == SCTPTime(nanoseconds: base + 2_000_000))
    }

    @Test func noStepKeepsTheDeadlineAndTheFarFutureDoesNotOverflow() {
        let deadline = SCTPTime(nanoseconds: 123_456_789)
        #expect(SCTPDriver.firing(deadline, step: .zero) == deadline)
        #expect(SCTPDriver.firing(.distantFuture, step: .milliseconds(1)) == .distantFuture)
        let nearTheEnd = SCTPTime(nanoseconds: .max - 10)
        #expect(SCTPDriver.firing(nearTheEnd, step: .milliseconds(1)) == nearTheEnd)
    }
}
