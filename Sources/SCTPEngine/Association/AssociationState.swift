/// The states of RFC 9260 §4, each case carrying only what that state needs.
enum AssociationState: Sendable {
    /// INIT sent, waiting for INIT-ACK (T1-init running).
    case cookieWait(CookieWait)
    /// COOKIE-ECHO sent, waiting for COOKIE-ACK (T1-cookie running).
    case cookieEchoed(CookieEchoed)
    case established
    /// The application asked to shut down; waiting for outstanding data to be acknowledged.
    case shutdownPending
    /// SHUTDOWN sent (T2-shutdown running).
    case shutdownSent
    /// SHUTDOWN received; flushing our outstanding data before SHUTDOWN-ACK.
    case shutdownReceived
    /// SHUTDOWN-ACK sent (T2-shutdown running).
    case shutdownAckSent
    case closed

    struct CookieWait: Sendable {
        var initChunk: InitChunk
        var retransmissions = 0
    }

    struct CookieEchoed: Sendable {
        var cookie: CookieEchoChunk
        var retransmissions = 0
    }

    var isEstablishedOrLater: Bool {
        switch self {
        case .cookieWait, .cookieEchoed, .closed: return false
        case .established, .shutdownPending, .shutdownSent, .shutdownReceived, .shutdownAckSent: return true
        }
    }

    /// Whether the application may still queue messages (RFC 9260 §9.2: not after SHUTDOWN is asked for).
    var acceptsNewData: Bool {
        switch self {
        case .cookieWait, .cookieEchoed, .established: return true
        case .shutdownPending, .shutdownSent, .shutdownReceived, .shutdownAckSent, .closed: return false
        }
    }

    var name: String {
        switch self {
        case .cookieWait: return "COOKIE-WAIT"
        case .cookieEchoed: return "COOKIE-ECHOED"
        case .established: return "ESTABLISHED"
        case .shutdownPending: return "SHUTDOWN-PENDING"
        case .shutdownSent: return "SHUTDOWN-SENT"
        case .shutdownReceived: return "SHUTDOWN-RECEIVED"
        case .shutdownAckSent: return "SHUTDOWN-ACK-SENT"
        case .closed: return "CLOSED"
        }
    }
}
