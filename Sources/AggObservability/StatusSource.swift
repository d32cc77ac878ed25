import AggConfig
import AggTransport
import NIOCore
import SCTPEngine

/// One association as a service reports it to the status monitor.
package struct AssociationState: Sendable {
    package var id: SCTPAssociationID
    package var state: String
    package var streams = 0
    package var streamLimit = 0
    package var client: String?

    package init(id: SCTPAssociationID, state: String, streams: Int = 0, streamLimit: Int = 0, client: String? = nil) {
        self.id = id
        self.state = state
        self.streams = streams
        self.streamLimit = streamLimit
        self.client = client
    }
}

/// A daemon the status monitor can watch: its driver (the engine and the UDP counters), its proxy counters, its
/// associations as the service sees them, and the plain-text status lines. Every member is read on `eventLoop`.
package protocol StatusSource: AnyObject, Sendable {
    var eventLoop: any EventLoop { get }
    var driver: SCTPDriver { get }
    var metrics: ProxyMetrics { get }
    /// The UDP relay's counters.
    var udpMetrics: UDPRelayMetrics { get }
    /// "aggclient" or "aggserver".
    var roleName: String { get }
    /// Every association the service knows, with its state name ("connecting", "authenticating", "ready"), open
    /// streams, its stream limit (0 before authentication) and the client's key name (nil while the server does
    /// not know it yet).
    func associationStates() -> [AssociationState]
    /// The name the configuration gives the path sending from `local`, if any (aggclient's `--path NAME=…`).
    func configuredPathName(local: SCTPIPAddress) -> String?
    /// The plain-text status page, one line per association and path.
    func statusLines() -> [String]
    /// Sets the mode of the path with the configured name at run time (`aggclient path NAME MODE`) and returns
    /// the path's policy as text; nil for a daemon without run-time path control.
    var pathControl: ((_ name: String, _ change: PathPolicyChange) throws -> String)? { get }
}

extension StatusSource {
    package var pathControl: ((_ name: String, _ change: PathPolicyChange) throws -> String)? { nil }
}
