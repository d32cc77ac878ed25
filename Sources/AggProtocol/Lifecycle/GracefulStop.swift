import NIOCore

/// What a `GracefulStop` asks its glue to do.
package enum GracefulStopAction<ID: Hashable & Sendable>: Equatable, Sendable {
    /// Shut association `id` down (SCTP SHUTDOWN): the streams of every draining association are done, or the
    /// deadline for them passed. Report `handleClosed` once it closed.
    case shutDown(ID)
    /// The deadline for the streams passed while `remaining` associations still had streams open: they are cut by
    /// the shutdown that follows (the glue logs it).
    case streamsDeadlinePassed(remaining: Int)
    /// The stop is complete: every association closed, or the close timeout passed. Abort what is left and close
    /// the sockets. Reported once.
    case finish
}

/// A daemon's graceful stop, sans-IO and the same for both roles: the associations with streams drain them (no
/// new stream; running ones finish) until the last one ends or the deadline passes; then every association is
/// shut down, and the stop is complete once they all closed or the close timeout passed. Every step is an event
/// (streams drained, association closed, a deadline): nothing polls. The glue reports the events, performs the
/// actions (`pollAction`) and keeps one timer at `nextDeadline`.
package struct GracefulStop<ID: Hashable & Sendable>: Sendable {
    /// Running streams finish: the associations whose streams are not done yet, and every association to shut
    /// down after them.
    struct DrainingStreams: Sendable {
        var streams: Set<ID>
        var associations: Set<ID>
        /// `associations` in the order the glue gave them: the order they are shut down in.
        let order: [ID]
        let deadline: NIODeadline
        let closeTimeout: TimeAmount
    }

    /// The associations were shut down; the ones not closed yet.
    struct Closing: Sendable {
        var associations: Set<ID>
        let deadline: NIODeadline
    }

    enum State: Sendable {
        /// No stop asked.
        case running
        case drainingStreams(DrainingStreams)
        case closing(Closing)
        /// `.finish` was reported.
        case finished
    }

    private(set) var state = State.running
    private var actions: [GracefulStopAction<ID>] = []

    package init() {}

    /// Whether a stop was asked (new associations and connections are refused from then on).
    package var isStopping: Bool {
        if case .running = state { return false }
        return true
    }

    /// Whether `.finish` was reported.
    package var isFinished: Bool {
        if case .finished = state { return true }
        return false
    }

    // MARK: - Output

    /// The next thing for the glue to do.
    package mutating func pollAction() -> GracefulStopAction<ID>? {
        actions.isEmpty ? nil : actions.removeFirst()
    }

    /// When `handleTimeout` must run next (nil: no timer).
    package var nextDeadline: NIODeadline? {
        switch state {
        case .running, .finished: return nil
        case .drainingStreams(let draining): return draining.deadline
        case .closing(let closing): return closing.deadline
        }
    }

    // MARK: - Input

    /// Starts the stop: `withStreams` (associations whose streams the glue asked to drain, a subset of
    /// `associations`) finish their streams until `streamsDeadline`; then every one of `associations` still open is
    /// shut down, in this order, and they get `closeTimeout` to close. A second call is ignored.
    package mutating func begin(
        associations: [ID], withStreams: Set<ID>, streamsDeadline: NIODeadline, closeTimeout: TimeAmount,
        now: NIODeadline
    ) {
        guard case .running = state else { return }
        let all = Set(associations)
        let draining = DrainingStreams(
            streams: withStreams.intersection(all), associations: all, order: associations, deadline: streamsDeadline,
            closeTimeout: closeTimeout)
        state = .drainingStreams(draining)
        if draining.streams.isEmpty { shutDown(draining, now: now) }
    }

    /// The streams of association `id` are done (its stream session reported `.drained`, or it was lost).
    package mutating func handleStreamsDrained(_ id: ID, now: NIODeadline) {
        guard case .drainingStreams(var draining) = state else { return }
        draining.streams.remove(id)
        state = .drainingStreams(draining)
        if draining.streams.isEmpty { shutDown(draining, now: now) }
    }

    /// Association `id` closed (its SHUTDOWN completed, or it was aborted or lost).
    package mutating func handleClosed(_ id: ID, now: NIODeadline) {
        switch state {
        case .running, .finished:
            break
        case .drainingStreams(var draining):
            draining.streams.remove(id)
            draining.associations.remove(id)
            state = .drainingStreams(draining)
            if draining.streams.isEmpty { shutDown(draining, now: now) }
        case .closing(var closing):
            closing.associations.remove(id)
            state = .closing(closing)
            if closing.associations.isEmpty { finish() }
        }
    }

    /// Runs what is due at `now`: the streams' deadline, the close timeout.
    package mutating func handleTimeout(now: NIODeadline) {
        switch state {
        case .running, .finished:
            break
        case .drainingStreams(let draining):
            guard draining.deadline <= now else { return }
            actions.append(.streamsDeadlinePassed(remaining: draining.streams.count))
            shutDown(draining, now: now)
        case .closing(let closing):
            if closing.deadline <= now { finish() }
        }
    }

    // MARK: - Transitions

    private mutating func shutDown(_ draining: DrainingStreams, now: NIODeadline) {
        guard !draining.associations.isEmpty else {
            finish()
            return
        }
        for id in draining.order where draining.associations.contains(id) { actions.append(.shutDown(id)) }
        state = .closing(Closing(associations: draining.associations, deadline: now + draining.closeTimeout))
    }

    private mutating func finish() {
        state = .finished
        actions.append(.finish)
    }
}
