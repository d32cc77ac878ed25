import AggProtocol
import NIOCore
import SCTPEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The driver's side of datagram encryption: it reads the clocks and calls `DatagramSecurityLayer`, opening what it
/// receives before the engine sees it and sealing what the engine sends; handshake datagrams go out unsealed.
extension SCTPDriver {
    /// Counters of the encryption layer (all zero in plaintext mode). Call on the event loop.
    public var securityStatistics: DatagramSecurityStatistics {
        eventLoop.preconditionInEventLoop()
        return security?.statistics ?? DatagramSecurityStatistics()
    }

    /// Whether datagrams are encrypted.
    public var isEncrypted: Bool { security != nil }

    /// Replaces the server's accepted keys: sessions of a removed key stop being accepted at once. Abort the
    /// associations of `revokedOwners(by:)` first, so their ABORT still leaves sealed.
    public func replaceSecurityKeys(_ keys: [PreSharedKey]) {
        eventLoop.preconditionInEventLoop()
        security?.replaceKeys(keys)
    }

    /// The owners (keys) that `keys` would remove or change. Call on the event loop.
    public func revokedOwners(by keys: [PreSharedKey]) -> [SCTPOwner] {
        eventLoop.preconditionInEventLoop()
        return security?.revokedOwners(by: keys) ?? []
    }

    /// The engine owner of the client key named `name` (nil in plaintext mode or for an unknown name). Call on the
    /// event loop.
    public func owner(ofKeyNamed name: String) -> SCTPOwner? {
        eventLoop.preconditionInEventLoop()
        return security?.server?.owner(ofKeyNamed: name)
    }

    /// The name of the client key behind an engine owner (nil for plaintext). Call on the event loop.
    public func keyName(of owner: SCTPOwner) -> String? {
        eventLoop.preconditionInEventLoop()
        return security?.keyName(of: owner)
    }

    /// Replaces the client's key from the next handshake on.
    public func replaceSecurityKey(_ key: PreSharedKey) {
        eventLoop.preconditionInEventLoop()
        security?.replaceKey(key)
    }

    static func securityClock() -> SecurityClock {
        SecurityClock(monotonic: .now(), unixSeconds: Int64(time(nil)))
    }

    /// The SCTP datagram inside `datagram`, or nil when the layer consumed or dropped it.
    func openReceived(_ datagram: consuming SCTPDatagram, clock: SecurityClock) -> SCTPDatagram? {
        guard let security else { return datagram }
        let opened = security.open(datagram, clock: clock)
        // A datagram for the engine is followed by `drain`, which arms the timer for the layer's deadline as well.
        if opened == nil { drainSecurity() } else { drainSecurityOutput() }
        return opened
    }

    /// The driver's timer fired: the layer handles what came due. The timer is armed again by the drain that
    /// follows (`handleTimer`), at the earlier of the layer's and the engine's deadlines.
    func handleSecurityTimeout() {
        guard let security, let deadline = security.nextDeadline(), deadline <= .now() else { return }
        security.handleTimeout(clock: Self.securityClock())
        drainSecurityOutput()
    }

    /// Starting an association: the client begins a fresh handshake.
    func restartSecurity() {
        security?.restart(now: .now())
    }

    /// An association is up: from now on its packets are sized for the overhead of the session that seals them
    /// rather than the largest of any layout (version 5's session takes 17 bytes and the last chunk's padding,
    /// version 4's 25, where 33 were left), so its datagrams are as large as the path takes. Plaintext
    /// associations keep the configured size.
    func sizePackets(of id: SCTPAssociationID) {
        guard let security, let owner = endpoint.owner(of: id), let path = endpoint.paths(of: id).first,
            let overhead = security.sealOverhead(owner: owner, toward: path.remote)
        else { return }
        let room = datagramSizeLimit - overhead.bytes
        // Chunks are padded to 4 bytes: a packet whose padding goes too may fill the room to the byte.
        let size = overhead.dropsLastPadding ? room : room & ~3
        guard size > path.pmtu else { return }
        endpoint.setMaxPacketSize(size, for: id, lastChunkUnpadded: overhead.dropsLastPadding)
    }

    /// Writes the layer's own datagrams (handshake, released queue), passes its events on and brings the driver's
    /// one timer forward to the layer's deadline if that comes first.
    func drainSecurity() {
        guard let security else { return }
        drainSecurityOutput()
        if let deadline = security.nextDeadline() { armTimer(at: deadline) }
    }

    /// `drainSecurity` without the timer, for callers inside `drain`, which arms it once for both deadlines.
    func drainSecurityOutput() {
        guard let security, security.hasOutput else { return }
        while let datagram = security.pollTransmit() { writeDatagram(datagram) }
        while let event = security.pollEvent() { onSecurityEvent?(event) }
    }
}
