import NIOCore

/// The one scheduled callback a service keeps at a sans-IO state machine's next deadline (`ClientLink`,
/// `ClientSession`, `ServerSession`, `GracefulStop`): re-armed only when that deadline moves. Confined to one event
/// loop.
struct DeadlineTimer {
    private var armed: (task: Scheduled<Void>, deadline: NIODeadline)?

    /// Arms the timer at `deadline` to run `body` (nil: cancels it); a timer already armed there stays.
    mutating func arm(at deadline: NIODeadline?, on eventLoop: any EventLoop, _ body: @escaping () -> Void) {
        guard let deadline else {
            cancel()
            return
        }
        if let armed, armed.deadline == deadline { return }
        armed?.task.cancel()
        armed = (eventLoop.assumeIsolated().scheduleTask(deadline: deadline, body), deadline)
    }

    /// Whether `arm(at: deadline, ...)` would leave the timer as it is: armed at `deadline`, or, for nil, not armed.
    /// Callers that run often check it first: the closure they would pass to `arm` costs an allocation each call.
    func isArmed(at deadline: NIODeadline?) -> Bool {
        armed?.deadline == deadline
    }

    /// The earlier of two deadlines, nil meaning none.
    static func earliest(_ a: NIODeadline?, _ b: NIODeadline?) -> NIODeadline? {
        guard let a else { return b }
        guard let b else { return a }
        return Swift.min(a, b)
    }

    /// Cancels the armed timer, if any.
    mutating func cancel() {
        armed?.task.cancel()
        armed = nil
    }

    /// The timer fired: nothing is armed any more (`body` calls this first).
    mutating func fired() {
        armed = nil
    }
}
