import NIOCore
import SCTPEngine

/// A daemon the status monitor can watch: its driver (the engine and the UDP counters), its proxy counters, its
/// associations as the service sees them, and the plain-text status lines. Every member is read on `eventLoop`.
/// One association as a service reports it to the status monitor.
struct AssociationState {
    var id: SCTPAssociationID
    var state: String
    var streams = 0
    var streamLimit = 0
    var client: String?
}

protocol StatusSource: AnyObject, Sendable {
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
}

extension AggClientService: StatusSource {
    var roleName: String { "aggclient" }

    func associationStates() -> [AssociationState] {
        switch link {
        case .connecting(let id): return [AssociationState(id: id, state: "connecting", client: keyName)]
        case .authenticating(let id, _, _, _): return [AssociationState(id: id, state: "authenticating", client: keyName)]
        case .ready(let id, let streams):
            return [
                AssociationState(
                    id: id, state: "ready", streams: streams.activeStreams,
                    streamLimit: streams.streamLimit, client: keyName)
            ]
        case .down, .stopped: return []
        }
    }
}

extension AggServerService: StatusSource {
    var roleName: String { "aggserver" }

    func associationStates() -> [AssociationState] {
        sessionStreams().map {
            AssociationState(
                id: $0.id, state: $0.streams == nil ? "authenticating" : "ready", streams: $0.streams ?? 0,
                streamLimit: $0.streamLimit, client: $0.client)
        }
    }

    /// The server's paths have no configured names: the monitor names them after their local interface.
    func configuredPathName(local: SCTPIPAddress) -> String? { nil }
}
