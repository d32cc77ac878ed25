import SCTPEngine

/// Why a simulation run stopped before reaching its goal. Each case says what went wrong and when.
public enum SimulationError: Error, Equatable, CustomStringConvertible {
    /// More than `limit` events (deliveries, timeouts, transmits) happened at one virtual instant: time stopped.
    case livelock(at: SCTPTime, events: Int, limit: Int)
    /// One call of `run` took more than `limit` steps without reaching its end time.
    case stepBudgetExceeded(at: SCTPTime, steps: Int, limit: Int)
    /// `runUntil` reached its timeout before the condition held.
    case conditionTimedOut(at: SCTPTime)

    public var description: String {
        switch self {
        case .livelock(let at, let events, let limit):
            return "livelock: \(events) events at \(at) without time advancing (limit \(limit))"
        case .stepBudgetExceeded(let at, let steps, let limit):
            return "step budget exceeded: \(steps) steps by \(at) (limit \(limit))"
        case .conditionTimedOut(let at):
            return "condition still false at the timeout \(at)"
        }
    }
}
