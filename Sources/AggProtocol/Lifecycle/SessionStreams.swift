import Logging
import NIOCore

/// What a session needs to build its streams once the peer authenticated, either role (HELLO brings the rest).
package struct SessionStreamSettings {
    /// The most streams open at once: the server's HELLO `maxStreams`; on the client its own limit, which HELLO
    /// and the SCTP stream counts may lower.
    package var streamLimit: Int
    /// The credit each stream grants the peer.
    package var streamCredit: UInt32
    package var idleTimeout: TimeAmount
    /// Client: how long an OPEN waits for its OPEN-RESULT.
    package var openTimeout: TimeAmount
    /// Server: how long an association may go without a stream.
    package var associationIdleTimeout: TimeAmount
    package var bufferedBytesLimit: Int
    /// Client: when a connection's application is answered (`StreamSession.earlyReply`).
    package var earlyReply: EarlyReply
    package var logger: Logger
    /// The service's proxy counters; nil in tests that need none.
    package var metrics: (any StreamSessionMetrics)?

    package init(
        streamLimit: Int, streamCredit: UInt32, idleTimeout: TimeAmount, openTimeout: TimeAmount = .seconds(10),
        associationIdleTimeout: TimeAmount = TimeAmount(StreamLimits().associationIdleTimeout),
        bufferedBytesLimit: Int, earlyReply: EarlyReply = .never, logger: Logger,
        metrics: (any StreamSessionMetrics)? = nil
    ) {
        self.streamLimit = streamLimit
        self.streamCredit = streamCredit
        self.idleTimeout = idleTimeout
        self.openTimeout = openTimeout
        self.associationIdleTimeout = associationIdleTimeout
        self.bufferedBytesLimit = bufferedBytesLimit
        self.earlyReply = earlyReply
        self.logger = logger
        self.metrics = metrics
    }
}

/// The streams of a ready or draining session, either role: the association's `StreamSession`, kept beside the
/// session's state enum rather than in its cases (a case's payload cannot be changed in place, only moved out and
/// back, and in release builds that copied the streams' tables, a retain and a release of each reference, on every
/// message and TCP read: 10-20 % more CPU per GiB relayed), and its actions sorted into what the glue performs and
/// what ends or drains the session.
struct SessionStreams {
    /// What the streams ask of their session.
    enum Output {
        /// For the glue: sockets, messages, opens.
        case stream(StreamSessionAction)
        /// The peer broke a rule stream boundaries depend on: the association must end.
        case abort(String)
        /// Draining and the last stream is free.
        case drained
    }

    private var session: StreamSession?

    /// The session's streams start (AUTH-OK).
    mutating func start(_ session: StreamSession) { self.session = session }

    /// Runs `body` on the streams in place; nil, and `body` not run, before `start` and after `close`.
    mutating func with<R>(_ body: (inout StreamSession) -> R) -> R? {
        guard session != nil else { return nil }
        return body(&session!)
    }

    var nextDeadline: NIODeadline? { session?.nextDeadline }

    /// `nextDeadline` for a holder that asks after every input (see `StreamSession.readNextDeadline`).
    mutating func readNextDeadline() -> NIODeadline? { with { $0.readNextDeadline() } ?? nil }

    /// The streams' next action, sorted.
    mutating func poll() -> Output? {
        guard let action = with({ $0.pollAction() }) ?? nil else { return nil }
        switch action {
        case .abortAssociation(let reason): return .abort(reason)
        case .drained: return .drained
        default: return .stream(action)
        }
    }

    /// The association is gone: the streams are dropped, and what they still ask (the resets of their sockets,
    /// the failures of pending opens) is returned for the glue.
    mutating func close() -> [StreamSessionAction] {
        let left =
            with { streams -> [StreamSessionAction] in
                streams.handleAssociationLost()
                var left: [StreamSessionAction] = []
                while let action = streams.pollAction() {
                    switch action {
                    case .abortAssociation, .drained: break
                    default: left.append(action)
                    }
                }
                return left
            } ?? []
        session = nil
        return left
    }
}
