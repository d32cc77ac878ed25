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
        defer { settle(association) }
        let destination = remote ?? association.defaultAsconfDestination()
        try association.requestAddressChange(.add(local: local, remote: destination), now: now)
    }

    /// Removes `local` from an association. Behind a NAT the peer never saw `local`, so the request is a Delete IP
    /// of the wildcard sent from another of our paths, which asks the peer to keep only that path's address (RFC
    /// 5061 §4.2.2); once the peer acknowledges, the paths leaving from `local` go away and the other paths the
    /// wildcard took with it are added again with ASCONF. If no other path can carry it when it is due, an
    /// addition queued behind it goes first and the deletion leaves from the added address (`replaceLocalAddress`
    /// orders the two itself); with none, the deletion is dropped and the path is left to fail.
    public func removeLocalAddress(
        _ local: SCTPSocketAddress, on id: SCTPAssociationID, now: SCTPTime
    )
        throws(SCTPError)
    {
        guard let association = associations[id] else { throw .noSuchAssociation(id) }
        defer { settle(association) }
        guard association.paths.contains(where: { $0.localAddress?.ip == local.ip }) else {
            throw .noSuchAddress(local)
        }
        try association.requestAddressChange(.delete(local: local), now: now)
    }

    /// Moves our side of the paths from `old` to `new` (an interface's address changed): `new` is added toward
    /// `remote` (by default as `addLocalAddress` chooses) and `old` deleted, in the order that works. With another
    /// working path the deletion goes first from it, so the peer's wildcard deletion cannot take `new` with it;
    /// without one, `new` is added first and the deletion leaves from it. If no path leaves from `old`, or its
    /// deletion is already under way, only the addition is made.
    public func replaceLocalAddress(
        _ old: SCTPSocketAddress, with new: SCTPSocketAddress, toward remote: SCTPSocketAddress? = nil,
        on id: SCTPAssociationID, now: SCTPTime
    ) throws(SCTPError) {
        guard let association = associations[id] else { throw .noSuchAssociation(id) }
        defer { settle(association) }
        let destination = remote ?? association.defaultAsconfDestination()
        let add = AsconfState.Request.add(local: new, remote: destination)
        let delete = AsconfState.Request.delete(local: old)
        let isDeleting = association.asconf.outstanding?.request == delete || association.asconf.queue.contains(delete)
        guard association.paths.contains(where: { $0.localAddress?.ip == old.ip }), !isDeleting else {
            try association.requestAddressChange(add, now: now)
            return
        }
        let deleteFirst = association.deletionSurvivor(excluding: old.ip) != nil
        try association.requestAddressChange(deleteFirst ? delete : add, now: now)
        try association.requestAddressChange(deleteFirst ? add : delete, now: now)
    }

    /// Asks the peer to make `local` (as it sees it: the packet's source, so NATs are no obstacle) its primary
    /// destination, with a Set Primary Address of the wildcard sent from `local` toward `remote`.
    public func requestPeerPrimary(
        from local: SCTPSocketAddress, toward remote: SCTPSocketAddress? = nil, on id: SCTPAssociationID,
        now: SCTPTime
    ) throws(SCTPError) {
        guard let association = associations[id] else { throw .noSuchAssociation(id) }
        defer { settle(association) }
        let destination = remote ?? association.paths.primary.remoteAddress
        try association.requestAddressChange(.setPrimary(local: local, remote: destination), now: now)
    }

    /// Makes the path to `remote` our primary destination (RFC 9260 §8.2 leaves the choice to the user).
    public func setPrimary(_ remote: SCTPSocketAddress, on id: SCTPAssociationID) throws(SCTPError) {
        guard let association = associations[id] else { throw .noSuchAssociation(id) }
        defer { settle(association) }
        guard association.setPrimary(remote: remote) else { throw .noSuchAddress(remote) }
    }
}
