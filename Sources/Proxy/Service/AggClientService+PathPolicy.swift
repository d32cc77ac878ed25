import AggConfig
import AggTransport
import Logging
import NIOCore
import SCTPEngine

/// Per-path policy on aggclient: each configured path's mode (active or backup), priority and send-rate cap go to
/// the engine as a rule for the path's local address (what aggclient sends), and to aggserver as agg's Path Policy
/// ASCONF request sent from the path's address (what the server sends: downloads), again whenever the address
/// changes. The mode, priority and cap can be changed at run time (`aggclient path NAME [MODE] [--rate R]
/// [--priority N]`) without touching the association.
extension AggClientService {
    /// Why a run-time path change was refused.
    public enum PathChangeError: Error, Equatable, CustomStringConvertible {
        case noSuchPath(String, known: [String])

        public var description: String {
            switch self {
            case .noSuchPath(let name, let known):
                let list = known.isEmpty ? "none has a name" : "paths: " + known.joined(separator: ", ")
                return "no path named \"\(name)\" (\(list))"
            }
        }
    }

    /// Gives the engine a rule per path with an address: its policy for the paths leaving from that address.
    /// Rules for addresses a path no longer has stay behind harmlessly: no path leaves from them any more.
    func applyPathPolicies(on id: SCTPAssociationID, group: GroupDriver) {
        eventLoop.preconditionInEventLoop()
        for (index, local) in group.pathLocals.enumerated() {
            guard let local, !local.ip.isWildcard else { continue }
            let policy = index < paths.count ? paths[index].policy : .default
            do {
                try group.driver.setPathPolicy(policy, for: .local(local.ip), on: id)
            } catch {
                logger.debug("path policy not set", metadata: ["local": "\(local)", "error": "\(error)"])
            }
        }
    }

    /// Asks aggserver to send on each path (or only on `path`) under its policy, once the association is
    /// authenticated. Nothing is sent while every path has always had the default policy.
    func requestPeerPathPolicies(on id: SCTPAssociationID, group: GroupDriver, path only: Int? = nil) {
        eventLoop.preconditionInEventLoop()
        guard paths.contains(where: { $0.policy != .default }) || paths != configuration.paths else { return }
        for (index, local) in group.pathLocals.enumerated() where only == nil || only == index {
            guard let local, !local.ip.isWildcard, index < paths.count else { continue }
            // Toward the server address its Add IP went to, so a NAT that maps per destination gives the same
            // public address the server knows the path by.
            let toward = index != group.connectedPath && index < group.servers.count ? group.servers[index] : nil
            do {
                try group.driver.requestPeerPathPolicy(paths[index].policy, from: local, toward: toward, on: id)
            } catch {
                logger.info(
                    "cannot ask the server for the path policy", metadata: ["local": "\(local)", "error": "\(error)"])
            }
        }
    }

    /// Changes the policy of the path called `name` (its configured name or interface, as the status shows it) for
    /// the rest of the daemon's life, on the association at once (both ways: the engine's rule, and the server
    /// asked over ASCONF); returns the path's new policy. On the event loop.
    func changePathNow(_ name: String, _ change: PathPolicyChange) throws(PathChangeError) -> SCTPPathPolicy {
        eventLoop.preconditionInEventLoop()
        guard let index = paths.firstIndex(where: { $0.name == name }) else {
            throw PathChangeError.noSuchPath(name, known: paths.compactMap(\.name))
        }
        paths[index].policy = change.applied(to: paths[index].policy)
        logger.info("path policy changed", metadata: ["path": "\(name)", "policy": "\(paths[index].policy)"])
        for group in boundGroups {
            guard let association = linkAssociation(on: group) else { continue }
            applyPathPolicies(on: association.id, group: group)
            if association.phase == "ready" { requestPeerPathPolicies(on: association.id, group: group, path: index) }
        }
        return paths[index].policy
    }

    /// `changePathNow` from any thread.
    public func changePath(_ name: String, _ change: PathPolicyChange) -> EventLoopFuture<SCTPPathPolicy> {
        eventLoop.submit { [self] () throws -> SCTPPathPolicy in try changePathNow(name, change) }
    }
}
