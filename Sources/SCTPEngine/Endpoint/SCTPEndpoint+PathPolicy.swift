/// The application's command for per-path policy: backup paths and send-rate caps, changed at any time.
extension SCTPEndpoint {
    /// Gives the paths `selector` matches (now and later: a path added afterwards gets it too) `policy`; the
    /// default policy removes the rule. Nothing queued or in flight is dropped: data already sent on a path that
    /// becomes a backup is acknowledged or retransmitted as usual. Returns how many paths match now.
    @discardableResult
    public func setPathPolicy(
        _ policy: SCTPPathPolicy, for selector: SCTPPathSelector, on id: SCTPAssociationID, now: SCTPTime
    ) throws(SCTPError) -> Int {
        guard let association = associations[id] else { throw .noSuchAssociation(id) }
        defer { settle(association) }
        let matched = association.setPathPolicy(policy, for: selector, now: now)
        if association.state.isEstablishedOrLater { association.transmit(now: now) }
        return matched
    }

    /// Asks the peer to send to us, on the path that leaves from `local` (toward `remote`, by default that path's
    /// peer address), under `policy`: agg's Path Policy ASCONF parameter (`PathPolicyParameter`), sent from
    /// `local` so the peer finds the path through NATs. A peer that does not know it ignores it. Queued behind
    /// outstanding ASCONFs, so it follows an Add IP of the same address.
    public func requestPeerPathPolicy(
        _ policy: SCTPPathPolicy, from local: SCTPSocketAddress, toward remote: SCTPSocketAddress? = nil,
        on id: SCTPAssociationID, now: SCTPTime
    ) throws(SCTPError) {
        guard let association = associations[id] else { throw .noSuchAssociation(id) }
        defer { settle(association) }
        let destination =
            remote ?? association.paths.first(where: { $0.localAddress == local })?.remoteAddress
            ?? association.defaultAsconfDestination()
        try association.requestAddressChange(
            .setPathPolicy(local: local, remote: destination, policy: policy), now: now)
    }
}
