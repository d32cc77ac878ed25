import AggProtocol
import AggTransport
import NIOCore
import NIOPosix
import SCTPEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Opens the server's TCP connection to a stream's target: checks the port and IP literals (in every inet_aton
/// spelling) against the policy, resolves names through `PolicyResolver` and the bounded `LookupScheduler`,
/// connects with Happy Eyeballs (RFC 8305, done by `ClientBootstrap`) under one overall timeout, and turns every
/// failure into an OPEN-RESULT code.
public struct EgressConnector: Sendable {
    public var policy: EgressPolicy
    /// Overall limit for resolving and connecting.
    public var connectTimeout: TimeAmount
    /// Runs the name lookups of every connection made with this connector (and its copies), within its bounds.
    public let lookups: LookupScheduler

    public static let defaultConnectTimeout = TimeAmount.seconds(10)

    public init(
        policy: EgressPolicy = EgressPolicy(), connectTimeout: TimeAmount = defaultConnectTimeout,
        lookup: DNSLookup = .system, lookupLimits: LookupScheduler.Limits = LookupScheduler.Limits()
    ) {
        self.policy = policy
        self.connectTimeout = connectTimeout
        self.lookups = LookupScheduler(lookup: lookup, limits: lookupLimits)
    }

    /// Connects on `loop`. The channel allows remote half-closure (FIN maps to FIN) and has TCP_NODELAY set;
    /// `configure` runs on the channel's loop before the connection is made (set options through `syncOptions`
    /// there: a channel option given to the bootstrap costs a future and an existential box per connection) and is
    /// where the caller sets its read allocator: without `configure` the channel reads with `TCPReads.allocator`
    /// (set once: every option set costs several dynamic casts). Name lookups count against `owner` (the
    /// association). Fails with `EgressError` only.
    public func connect(
        to target: StreamTarget, on loop: EventLoop, owner: LookupScheduler.Owner = LookupScheduler.noOwner,
        configure: (@Sendable (Channel) throws -> Void)? = nil
    ) -> EventLoopFuture<Channel> {
        let attempt = start(target, on: loop, owner: owner, configure: configure)
        return attempt.future.flatMapErrorThrowing { error in
            throw Self.classify(error, target: target, refused: attempt.refused())
        }
    }

    /// `connect` with the outcome handed to `completion` on `loop` rather than in a future of its own: one callback
    /// on the bootstrap's future, where the future form chains a second future (and its closures) to map the
    /// error. Call on `loop`.
    public func connect(
        to target: StreamTarget, on loop: EventLoop, owner: LookupScheduler.Owner = LookupScheduler.noOwner,
        configure: (@Sendable (Channel) throws -> Void)? = nil,
        completion: @escaping (Result<Channel, EgressError>) -> Void
    ) {
        let attempt = start(target, on: loop, owner: owner, configure: configure)
        attempt.future.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel): completion(.success(channel))
            case .failure(let error):
                completion(.failure(Self.classify(error, target: target, refused: attempt.refused())))
            }
        }
    }

    /// Starts the connection: the bootstrap's future (failing with any error) and, for a name, the resolved
    /// addresses the policy refused (read once it completed).
    private func start(
        _ target: StreamTarget, on loop: EventLoop, owner: LookupScheduler.Owner,
        configure: (@Sendable (Channel) throws -> Void)?
    ) -> (future: EventLoopFuture<Channel>, refused: @Sendable () -> [PolicyResolver.RefusedAddress]) {
        let literal: SocketAddress?
        switch checkedLiteral(target) {
        case .failure(let error): return (loop.makeFailedFuture(error), { [] })
        case .success(let address): literal = address
        }
        // ClientBootstrap sets TCP_NODELAY itself; the rest is set synchronously in one initializer, which answers
        // with the loop's one cached succeeded future.
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelInitializer { channel in
                do {
                    let options = try Self.syncOptions(of: channel)
                    try options.setOption(.allowRemoteHalfClosure, value: true)
                    if let configure {
                        try configure(channel)
                    } else {
                        try options.setOption(.recvAllocator, value: TCPReads.allocator)
                    }
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }

        if let literal {
            return (bootstrap.connect(to: literal), { [] })
        }

        guard case .domain(let name) = target.host else { preconditionFailure("IP targets are literals") }
        let resolver = PolicyResolver(loop: loop, policy: policy, scheduler: lookups, owner: owner)
        return (bootstrap.resolver(resolver).connect(host: name, port: Int(target.port)), { resolver.refused })
    }

    /// The checks every egress starts with, TCP or UDP: the port against the policy, then a target given as an IP
    /// literal (or as a name that is one, in any inet_aton spelling) against it. Succeeds with the literal's
    /// address, or nil for a name to resolve.
    func checkedLiteral(_ target: StreamTarget) -> Result<SocketAddress?, EgressError> {
        if case .refused(let refusal, let why) = policy.check(port: target.port) {
            return .failure(EgressError(.notAllowed, why, refusal: refusal))
        }
        let literal: SCTPIPAddress?
        switch target.host {
        case .ip(let ip): literal = ip
        case .domain(let name): literal = IPLiteral.parse(name)
        }
        guard let literal else { return .success(nil) }
        if case .refused(let refusal, let why) = policy.check(literal) {
            return .failure(EgressError(.notAllowed, "\(literal) is \(why)", refusal: refusal))
        }
        return .success(SocketAddress(SCTPSocketAddress(ip: literal, port: target.port)))
    }

    /// async form of `connect`.
    public func connect(
        to target: StreamTarget, on loop: EventLoop, owner: LookupScheduler.Owner = LookupScheduler.noOwner,
        configure: (@Sendable (Channel) throws -> Void)? = nil
    ) async throws(EgressError) -> Channel {
        do {
            return try await connect(to: target, on: loop, owner: owner, configure: configure).get()
        } catch let error as EgressError {
            throw error
        } catch {
            throw Self.classify(error, target: target, refused: [])
        }
    }

    /// The synchronous options of a channel NIOPosix made (every `SocketChannel` has them).
    private static func syncOptions(of channel: Channel) throws -> NIOSynchronousChannelOptions {
        guard let options = channel.syncOptions else { throw ChannelError.operationUnsupported }
        return options
    }

    // MARK: - Error mapping

    /// Maps a connect failure to an OPEN-RESULT code. `refused` lists resolved addresses the policy dropped.
    public static func classify(
        _ error: any Error, target: StreamTarget, refused: [PolicyResolver.RefusedAddress]
    ) -> EgressError {
        switch error {
        case let error as EgressError:
            return error
        case ChannelError.connectTimeout:
            return EgressError(.timeout, "connecting to \(target) timed out")
        case let error as NIOConnectionError:
            if !error.connectionErrors.isEmpty {
                let classified = error.connectionErrors.map { classifySingle($0.error, target: target) }
                return classified.max { $0.code.specificity < $1.code.specificity } ?? classified[0]
            }
            if let first = refused.first {
                let list = refused.map { "\($0.address) is \($0.reason)" }.joined(separator: ", ")
                return EgressError(
                    .notAllowed, "\(target.hostText) resolves only to refused addresses: \(list)",
                    refusal: first.refusal)
            }
            // The scheduler's refusals first: a full queue or a timeout on one family is why there is no address.
            if let lookup = [error.dnsAError, error.dnsAAAAError].lazy.compactMap({ $0 as? LookupRefusal }).first {
                let code: OpenResultCode = lookup.refusal == .resolverTimeout ? .dnsFailure : .generalFailure
                return EgressError(code, "\(lookup)", refusal: lookup.refusal)
            }
            if let dns = error.dnsAError ?? error.dnsAAAAError {
                return EgressError(.dnsFailure, "\(dns)")
            }
            return EgressError(.dnsFailure, "\(target.hostText) has no addresses")
        default:
            return classifySingle(error, target: target)
        }
    }

    private static func classifySingle(_ error: any Error, target: StreamTarget) -> EgressError {
        if case ChannelError.connectTimeout = error {
            return EgressError(.timeout, "connecting to \(target) timed out")
        }
        guard let io = error as? IOError else { return EgressError(.generalFailure, "\(target): \(error)") }
        let code: OpenResultCode
        switch io.errnoCode {
        case ECONNREFUSED: code = .refused
        case ENETUNREACH, ENETDOWN: code = .networkUnreachable
        case EHOSTUNREACH, EHOSTDOWN: code = .hostUnreachable
        case ETIMEDOUT: code = .timeout
        case EACCES, EPERM: code = .notAllowed  // A local firewall rule refused the connection.
        default: code = .generalFailure
        }
        return EgressError(code, "\(target): \(io)")
    }
}

extension OpenResultCode {
    /// How much a failure says about the target, to pick one among Happy Eyeballs' attempts: a refusal proves the
    /// host is reachable, so it wins over an unreachable network on the other family.
    fileprivate var specificity: Int {
        switch self {
        case .refused: return 6
        case .timeout: return 5
        case .hostUnreachable: return 4
        case .networkUnreachable: return 3
        case .notAllowed: return 2
        case .generalFailure, .dnsFailure, .tooManyStreams, .ok: return 1
        }
    }
}
