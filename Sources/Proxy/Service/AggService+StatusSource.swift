import AggConfig
import AggObservability
import SCTPEngine

/// What each service shows the status monitor (`StatusSource`).
extension AggClientService: StatusSource {
    package var roleName: String { "aggclient" }

    package var pathControl: ((_ name: String, _ change: PathPolicyChange) throws -> String)? {
        { name, change in "\(try self.changePathNow(name, change))" }
    }

    /// The associations of the group shown (the one in use): the one taking connections or the attempt under
    /// way. Associations of other groups finishing their streams are not listed.
    package func associationStates() -> [AssociationState] {
        guard let association = linkAssociation(on: driverGroupShown) else { return [] }
        guard association.phase == "ready", let streams = currentStreams else {
            return [AssociationState(id: association.id, state: association.phase, client: keyName)]
        }
        return [
            AssociationState(
                id: association.id, state: "ready", streams: streams.activeStreams, streamLimit: streams.streamLimit,
                client: keyName)
        ]
    }
}

extension AggServerService: StatusSource {
    package var roleName: String { "aggserver" }

    package func associationStates() -> [AssociationState] {
        sessionStreams().map {
            AssociationState(
                id: $0.id, state: $0.streams == nil ? "authenticating" : "ready", streams: $0.streams ?? 0,
                streamLimit: $0.streamLimit, client: $0.client)
        }
    }

    /// The server's paths have no configured names: the monitor names them after their local interface.
    package func configuredPathName(local: SCTPIPAddress) -> String? { nil }
}
