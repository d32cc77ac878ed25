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

/// Why an egress connection failed, as the OPEN-RESULT code to send and a line for the log.
public struct EgressError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: OpenResultCode
    public var detail: String

    public init(_ code: OpenResultCode, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code): \(detail)" }
}

/// Opens the server's TCP connection to a stream's target: checks IP literals (in every inet_aton spelling)
/// against the policy, resolves names through `PolicyResolver`, connects with Happy Eyeballs (RFC 8305, done by
/// `ClientBootstrap`) under one overall timeout, and turns every failure into an OPEN-RESULT code.
public struct EgressConnector: Sendable {
    public var policy: EgressPolicy
    /// Overall limit for resolving and connecting.
    public var connectTimeout: TimeAmount
    public var lookup: DNSLookup

    public static let defaultConnectTimeout = TimeAmount.seconds(10)

    public init(policy: EgressPolicy = EgressPolicy(), connectTimeout: TimeAmount = defaultConnectTimeout,
        lookup: DNSLookup = .system) {
        self.policy = policy
        self.connectTimeout = connectTimeout
        self.lookup = lookup
    }

    /// Connects on `loop`. The channel allows remote half-closure (FIN maps to FIN) and has TCP_NODELAY set;
    /// `initializer` runs before the connection is made. Fails with `EgressError` only.
    public func connect(
        to target: StreamTarget, on loop: EventLoop,
        initializer: (@Sendable (Channel) -> EventLoopFuture<Void>)? = nil
    ) -> EventLoopFuture<Channel> {
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in initializer?(channel) ?? channel.eventLoop.makeSucceededVoidFuture() }

        let literal: SCTPIPAddress?
        switch target.host {
        case .ip(let ip): literal = ip
        case .domain(let name): literal = IPLiteral.parse(name)
        }
        if let literal {
            if case .refused(let why) = policy.check(literal) {
                return loop.makeFailedFuture(EgressError(.notAllowed, "\(literal) is \(why)"))
            }
            let address = SocketAddress(SCTPSocketAddress(ip: literal, port: target.port))
            return bootstrap.connect(to: address).flatMapErrorThrowing { error in
                throw Self.classify(error, target: target, refused: [])
            }
        }

        guard case .domain(let name) = target.host else { preconditionFailure("IP targets are literals") }
        let resolver = PolicyResolver(loop: loop, policy: policy, lookup: lookup)
        return bootstrap.resolver(resolver).connect(host: name, port: Int(target.port)).flatMapErrorThrowing { error in
            throw Self.classify(error, target: target, refused: resolver.refused.map { "\($0.0) is \($0.1)" })
        }
    }

    /// async form of `connect`.
    public func connect(
        to target: StreamTarget, on loop: EventLoop,
        initializer: (@Sendable (Channel) -> EventLoopFuture<Void>)? = nil
    ) async throws(EgressError) -> Channel {
        do {
            return try await connect(to: target, on: loop, initializer: initializer).get()
        } catch let error as EgressError {
            throw error
        } catch {
            throw Self.classify(error, target: target, refused: [])
        }
    }

    // MARK: - Error mapping

    /// Maps a connect failure to an OPEN-RESULT code. `refused` lists resolved addresses the policy dropped.
    public static func classify(_ error: any Error, target: StreamTarget, refused: [String]) -> EgressError {
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
            if !refused.isEmpty {
                return EgressError(.notAllowed, "\(target.hostText) resolves only to refused addresses: "
                    + refused.joined(separator: ", "))
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
        if case ChannelError.connectTimeout = error { return EgressError(.timeout, "connecting to \(target) timed out") }
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
