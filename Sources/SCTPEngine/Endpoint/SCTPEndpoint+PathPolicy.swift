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
}
