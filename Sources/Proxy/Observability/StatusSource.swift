import NIOCore
import SCTPEngine

/// A daemon the status monitor can watch: its driver (the engine and the UDP counters), its proxy counters, its
/// associations as the service sees them, and the plain-text status lines. Every member is read on `eventLoop`.
protocol StatusSource: AnyObject, Sendable {
    var eventLoop: any EventLoop { get }
    var driver: SCTPDriver { get }
    var metrics: ProxyMetrics { get }
    /// "aggclient" or "aggserver".
    var roleName: String { get }
    /// Every association the service knows, with its state name ("connecting", "authenticating", "ready"), open
    /// streams and the client's key name (nil while the server does not know it yet).
    func associationStates() -> [(id: SCTPAssociationID, state: String, streams: Int, client: String?)]
    /// The name the configuration gives the path sending from `local`, if any (aggclient's `--path NAME=…`).
    func configuredPathName(local: SCTPIPAddress) -> String?
    /// The plain-text status page, one line per association and path.
    func statusLines() -> [String]
}

extension AggClientService: StatusSource {
    var roleName: String { "aggclient" }

    func associationStates() -> [(id: SCTPAssociationID, state: String, streams: Int, client: String?)] {
        switch link {
        case .connecting(let id): return [(id, "connecting", 0, keyName)]
        case .authenticating(let id, _, _, _): return [(id, "authenticating", 0, keyName)]
        case .ready(let id, let multiplexer): return [(id, "ready", multiplexer.activeStreams, keyName)]
        case .down, .stopped: return []
        }
    }
}

extension AggServerService: StatusSource {
    var roleName: String { "aggserver" }

    func associationStates() -> [(id: SCTPAssociationID, state: String, streams: Int, client: String?)] {
        sessionStreams().map { ($0.id, $0.streams == nil ? "authenticating" : "ready", $0.streams ?? 0, $0.client) }
    }

    /// The server's paths have no configured names: the monitor names them after their local interface.
    func configuredPathName(local: SCTPIPAddress) -> String? { nil }
}
