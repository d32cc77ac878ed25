import AggProtocol
import NIOCore
import SCTPEngine

/// Driver commands the services need beyond `SCTPDriver`'s own: multihoming and control messages.
extension SCTPDriver {
    /// Adds a bound local address to an association (RFC 5061 wildcard ASCONF-ADD sent from `local` toward `remote`).
    /// `local` must be one of `localAddresses`, so a channel exists to send from it.
    package func addLocalAddress(
        _ local: SCTPSocketAddress, toward remote: SCTPSocketAddress?, on id: SCTPAssociationID
    ) throws(SCTPError) {
        eventLoop.preconditionInEventLoop()
        defer { drain() }
        try endpoint.addLocalAddress(local, toward: remote, on: id, now: .now())
    }

    /// Removes a local address from an association (RFC 5061 wildcard Delete IP sent from another path, so it
    /// works behind a NAT; see `SCTPEndpoint.removeLocalAddress`).
    package func removeLocalAddress(_ local: SCTPSocketAddress, on id: SCTPAssociationID) throws(SCTPError) {
        eventLoop.preconditionInEventLoop()
        defer { drain() }
        try endpoint.removeLocalAddress(local, on: id, now: .now())
    }

    /// Moves the association's paths from `old` to `new`, a bound local address (`SCTPEndpoint.replaceLocalAddress`).
    package func replaceLocalAddress(
        _ old: SCTPSocketAddress, with new: SCTPSocketAddress, toward remote: SCTPSocketAddress?,
        on id: SCTPAssociationID
    ) throws(SCTPError) {
        eventLoop.preconditionInEventLoop()
        defer { drain() }
        try endpoint.replaceLocalAddress(old, with: new, toward: remote, on: id, now: .now())
    }

    /// Sets the policy of the association's paths that `selector` matches, now and later
    /// (`SCTPEndpoint.setPathPolicy`).
    package func setPathPolicy(_ policy: SCTPPathPolicy, for selector: SCTPPathSelector, on id: SCTPAssociationID)
        throws(SCTPError)
    {
        eventLoop.preconditionInEventLoop()
        defer { drain() }
        try endpoint.setPathPolicy(policy, for: selector, on: id, now: .now())
    }

    /// Asks the peer to send to us under `policy` on the path leaving from `local` (agg's Path Policy ASCONF
    /// parameter, sent from `local`; `SCTPEndpoint.requestPeerPathPolicy`).
    package func requestPeerPathPolicy(
        _ policy: SCTPPathPolicy, from local: SCTPSocketAddress, toward remote: SCTPSocketAddress?,
        on id: SCTPAssociationID
    ) throws(SCTPError) {
        eventLoop.preconditionInEventLoop()
        defer { drain() }
        try endpoint.requestPeerPathPolicy(policy, from: local, toward: remote, on: id, now: .now())
    }

    /// Sends a control message on stream 0.
    package func send(_ message: ControlMessage, on id: SCTPAssociationID) {
        do {
            try send(message.encode(), on: id, stream: StreamID(0), ppid: message.ppid)
        } catch {
            logger.debug("control message not sent", metadata: ["kind": "\(message.kind)", "error": "\(error)"])
        }
    }
}
