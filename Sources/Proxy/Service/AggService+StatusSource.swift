import SCTPEngine

/// What each service shows the status monitor (`StatusSource`).
extension AggClientService: StatusSource {
    var roleName: String { "aggclient" }

    var pathControl: ((_ name: String, _ change: PathPolicyChange) throws -> String)? {
        { name, change in "\(try self.changePathNow(name, change))" }
    }

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
