import Testing

@testable import SCTPEngine

extension Components {
    @Suite struct TimerTableTests {
        @Test func expiredReturnsDueTimersInDeadlineThenIDOrder() {
            var timers = TimerTable()
            let t0 = SCTPTime(nanoseconds: 0)
            timers.arm(.heartbeat(PathID(2)), at: t0 + .milliseconds(30))
            timers.arm(.t3rtx(PathID(1)), at: t0 + .milliseconds(10))
            timers.arm(.delayedSack, at: t0 + .milliseconds(10))
            timers.arm(.t3rtx(PathID(0)), at: t0 + .milliseconds(10))
            timers.arm(.autoClose, at: t0 + .seconds(5))
            #expect(timers.expired(now: t0 + .milliseconds(9)).isEmpty)
            #expect(
                timers.expired(now: t0 + .milliseconds(30)) == [
                    .t3rtx(PathID(0)), .t3rtx(PathID(1)), .delayedSack, .heartbeat(PathID(2)),
                ])
            #expect(timers.isArmed(.autoClose))
            #expect(!timers.isArmed(.delayedSack))
        }

        @Test func earliestDeadlineTracksArmAndDisarm() {
            var timers = TimerTable()
            #expect(timers.earliestDeadline == nil)
            timers.arm(.t1Init, at: SCTPTime(nanoseconds: 500))
            timers.arm(.t2Shutdown, at: SCTPTime(nanoseconds: 200))
            #expect(timers.earliestDeadline == SCTPTime(nanoseconds: 200))
            timers.disarm(.t2Shutdown)
            #expect(timers.earliestDeadline == SCTPTime(nanoseconds: 500))
            timers.disarm(.t2Shutdown)
            timers.disarm(.t1Init)
            #expect(timers.earliestDeadline == nil)
        }

        @Test func rearmingReplacesTheDeadline() {
            var timers = TimerTable()
            timers.arm(.t3rtx(PathID(1)), at: SCTPTime(nanoseconds: 100))
            timers.arm(.t3rtx(PathID(1)), at: SCTPTime(nanoseconds: 900))
            #expect(timers.deadline(of: .t3rtx(PathID(1))) == SCTPTime(nanoseconds: 900))
            #expect(timers.popExpired(now: SCTPTime(nanoseconds: 500)) == nil)
            #expect(timers.popExpired(now: SCTPTime(nanoseconds: 900)) == .t3rtx(PathID(1)))
            #expect(timers.earliestDeadline == nil)
        }

        @Test func disarmAllOnPathLeavesOtherTimers() {
            var timers = TimerTable()
            timers.arm(.t3rtx(PathID(1)), at: SCTPTime(nanoseconds: 1))
            timers.arm(.heartbeat(PathID(1)), at: SCTPTime(nanoseconds: 1))
            timers.arm(.heartbeat(PathID(2)), at: SCTPTime(nanoseconds: 1))
            timers.arm(.t4Asconf, at: SCTPTime(nanoseconds: 1))
            timers.disarmAll(on: PathID(1))
            #expect(timers.expired(now: SCTPTime(nanoseconds: 1)) == [.heartbeat(PathID(2)), .t4Asconf])
        }
    }
}
