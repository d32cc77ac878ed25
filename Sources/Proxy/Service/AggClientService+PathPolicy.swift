import NIOCore
import SCTPEngine

/// Per-path policy on aggclient: each configured path's mode (active or backup), priority and send-rate cap go to
/// the engine as a rule for the path's local address, again whenever the address changes, and the mode can be
/// changed at run time (`aggclient path NAME MODE`) without touching the association.
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
    func applyPathPolicies(on id: SCTPAssociationID) {
        eventLoop.preconditionInEventLoop()
        for (index, local) in pathLocals.enumerated() {
            guard let local, !local.ip.isWildcard else { continue }
            let policy = index < pathPolicies.count ? pathPolicies[index] : .default
            do {
                try driver.setPathPolicy(policy, for: .local(local.ip), on: id)
            } catch {
                logger.debug("path policy not set", metadata: ["local": "\(local)", "error": "\(error)"])
            }
        }
    }

    /// Sets the mode of the path called `name` (its configured name or interface, as the status shows it) for the
    /// rest of the daemon's life, on the association at once; returns the path's new policy. On the event loop.
    func setPathModeNow(_ name: String, _ mode: SCTPPathPolicy.Mode) throws(PathChangeError) -> SCTPPathPolicy {
        eventLoop.preconditionInEventLoop()
        guard let index = configuration.pathNames.firstIndex(where: { $0 == name }), index < pathPolicies.count
        else {
            throw PathChangeError.noSuchPath(name, known: configuration.pathNames.compactMap { $0 })
        }
        pathPolicies[index].mode = mode
        logger.info("path mode changed", metadata: ["path": "\(name)", "mode": "\(mode.rawValue)"])
        switch link {
        case .ready(let id, _), .connecting(let id), .authenticating(let id, _, _, _):
            applyPathPolicies(on: id)
        case .down, .stopped:
            break
        }
        return pathPolicies[index]
    }

    /// `setPathModeNow` from any thread.
    public func setPathMode(_ name: String, _ mode: SCTPPathPolicy.Mode) -> EventLoopFuture<SCTPPathPolicy> {
        eventLoop.submit { [self] () throws -> SCTPPathPolicy in try setPathModeNow(name, mode) }
    }
}
