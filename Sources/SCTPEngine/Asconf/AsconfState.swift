import DequeModule
import NIOCore

/// An association's side of RFC 5061: the requests we queue and the one ASCONF we have outstanding (§5.1), and the
/// serial number and cached ASCONF-ACK of the peer's requests (§5.2).
struct AsconfState: Sendable {
    /// One address change we ask the peer for. Each goes in its own ASCONF, because an Add IP of the wildcard
    /// must leave from the address being added.
    enum Request: Sendable, Hashable {
        /// Add `local` (sent as the wildcard from `local` itself, to `remote`).
        case add(local: SCTPSocketAddress, remote: SCTPSocketAddress)
        /// Delete `local`. On the wire it is a Delete IP of the wildcard, sent from another path of ours: RFC
        /// 5061 §4.2.2 makes the peer delete every address of ours except the packet's source, and behind a NAT
        /// the peer never saw `local` itself (RFC 6951, "Handling of Embedded IP Addresses": an address a NAT
        /// may translate goes in no packet). The other paths the wildcard takes with it are added again after.
        case delete(local: SCTPSocketAddress)
        /// Ask the peer to make the address this is sent from (`local`) its primary destination.
        case setPrimary(local: SCTPSocketAddress, remote: SCTPSocketAddress)
        /// Ask the peer to send to us, on the path this is sent on (from `local`), under `policy`
        /// (`PathPolicyParameter`).
        case setPathPolicy(local: SCTPSocketAddress, remote: SCTPSocketAddress, policy: SCTPPathPolicy)
    }

    /// The ASCONF in flight, with what it takes to resend it unchanged (T-4, RFC 5061 §5.1).
    struct Outstanding: Sendable {
        var request: Request
        var chunk: ASCONFChunk
        var source: SCTPSocketAddress
        var destination: SCTPSocketAddress
        var timeout: SCTPDuration
        var retransmissions = 0
    }

    /// RFC 5061 §5.1: the serial number of the next ASCONF we send, starting at our Initial TSN.
    var nextSerial = ASCONFSerial(0)
    var nextCorrelationID: UInt32 = 1
    var queue = Deque<Request>()
    var outstanding: Outstanding?

    /// RFC 5061 §5.2: the serial number of the last ASCONF of the peer we processed, starting one below the
    /// peer's Initial TSN.
    var peerSerial = ASCONFSerial(0)
    /// The ASCONF-ACK we sent for `peerSerial`, resent when the same ASCONF arrives again.
    var cachedAck: ASCONFAckChunk?

    init() {}

    init(localInitialTSN: TSN, peerInitialTSN: TSN) {
        nextSerial = ASCONFSerial(localInitialTSN.rawValue)
        peerSerial = ASCONFSerial(peerInitialTSN.rawValue).previous
    }

    mutating func takeCorrelationID() -> UInt32 {
        defer { nextCorrelationID &+= 1 }
        return nextCorrelationID
    }
}
