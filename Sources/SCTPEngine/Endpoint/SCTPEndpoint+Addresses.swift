/// The application's commands for multihoming: adding and removing local addresses with ASCONF (RFC 5061) and
/// choosing the primary path.
extension SCTPEndpoint {
    /// Adds `local` to an association: an ASCONF with Add IP of the wildcard leaves from `local` itself toward
    /// `remote` (by default a peer address other than the primary's), so behind a NAT the peer learns the public
    /// address and port this address maps to. Once the ASCONF-ACK arrives the path toward `remote` sends from
    /// `local`, and it is confirmed with a HEARTBEAT at once. Requests are queued while an ASCONF is outstanding.
    public func addLocalAddress(
        _ local: SCTPSocketAddress, toward remote: SCTPSocketAddress? = nil, on id: SCTPAssociationID, now: SCTPTime
    ) throws(SCTPError) {
        guard let association = associations[id] else { throw .noSuchAssociation(id) }
        let destination = remote ?? association.defaultAsconfDestination()
        try association.requestAddressChange(.add(local: local, remote: destination), now: now)
    }

    /// Removes `local` from an association with a Delete IP (sent from another local address); the paths leaving
    /// from it go away once the peer acknowledges.
    public func removeLocalAddress(_ local: SCTPSocketAddress, on id: SCTPAssociationID, now: SCTPTime)
        throws(SCTPError)
    {
        guard let association = associations[id] else { throw .noSuchAssociation(id) }
        guard association.paths.contains(where: { $0.localAddress?.ip == local.ip }) else {
            throw .noSuchAddress(local)
        }
        try association.requestAddressChange(.delete(local: local), now: now)
    }

    /// Asks the peer to make `local` (as it sees it: the packet's source, so NATs are no obstacle) its primary
    /// destination, with a Set Primary Address of the wildcard sent from `local` toward `remote`.
    public func requestPeerPrimary(
        from local: SCTPSocketAddress, toward remote: SCTPSocketAddress? = nil, on id: SCTPAssociationID,
        now: SCTPTime
    ) throws(SCTPError) {
        guard let association = associations[id] else { throw .noSuchAssociation(id) }
        let destination = remote ?? association.paths[association.primaryPathIndex].remoteAddress
        try association.requestAddressChange(.setPrimary(local: local, remote: destination), now: now)
    }

    /// Makes the path to `remote` our primary destination (RFC 9260 §8.2 leaves the choice to the user).
    public func setPrimary(_ remote: SCTPSocketAddress, on id: SCTPAssociationID) throws(SCTPError) {
        guard let association = associations[id] else { throw .noSuchAssociation(id) }
        guard association.setPrimary(remote: remote) else { throw .noSuchAddress(remote) }
    }
}
