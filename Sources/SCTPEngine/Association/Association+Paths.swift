/// Path bookkeeping beyond RFC 9260's single-homed view: which path a packet belongs to under NAT rebinding
/// (RFC 6951 §5.4), adding and removing paths (RFC 5061), confirming new paths at once, and probing
/// potentially-failed and inactive paths (RFC 7829).
extension Association {
    // MARK: - Which path a packet came on

    /// The path of a packet from `source` arriving at `local`:
    /// 1. a path with that remote address and port (preferring the one whose local address is `local`);
    /// 2. a NAT rebinding of the port: a path with that remote IP that `local` belongs to. RFC 6951 §5.4: "the UDP
    ///    source port of the last received packet ... MUST be used" as the remote encapsulation port;
    /// 3. a NAT rebinding of the address: the remote IP is unknown and exactly one path uses `local` as its local
    ///    address (the packet could only have come on that path). With several, it is ambiguous: no rebinding.
    /// Rebinding never adds a path: new addresses come only from ASCONF (whose packets set `allowsRebinding`
    /// false), and ASCONF never moves an existing path, so the two cannot be confused.
    /// The first two are dictionary lookups (`pathByRoute`, `pathByRemote`), so a packet of a known
    /// path costs O(1) however many paths there are; only a rebinding scans the paths (at most
    /// `maxPathsPerAssociation`).
    func locatePath(
        forPacketFrom source: SCTPSocketAddress, to local: SCTPSocketAddress, allowsRebinding: Bool, now: SCTPTime
    ) -> PathID? {
        assert(isPathLookupConsistent, "path lookups out of step with the paths")
        // A run of packets arrives on one route: the last route found is compared before hashing one.
        if let last = lastArrivalRoute, last.route.remote == source, last.route.local == local {
            paths[last.path].arrival.heardAtLocal = true
            return last.path
        }
        let route = ArrivalRoute(local: local, remote: source)
        if let id = pathByRoute[route] {
            lastArrivalRoute = (route, id)
            paths[id].arrival.heardAtLocal = true
            return id
        }
        if let id = pathByRemote[source] {
            if allowsRebinding { noteArrival(path: id, atOtherLocal: local) }
            return id
        }
        guard allowsRebinding else { return nil }
        func arrivesOn(_ path: Path) -> Bool {
            guard let ours = path.localAddress, !ours.ip.isWildcard else { return true }
            return ours.ip == local.ip
        }
        if let id = paths.firstID(where: { $0.remoteAddress.ip == source.ip && arrivesOn($0) }) {
            rebind(path: id, to: source, now: now)
            return id
        }
        guard !paths.contains(where: { $0.remoteAddress.ip == source.ip }) else { return nil }
        let candidates = paths.ids { $0.localAddress == local && $0.isConfirmed }
        guard candidates.count == 1 else { return nil }
        rebind(path: candidates[0], to: source, now: now)
        return candidates[0]
    }

    /// A peer with one address sending to several of ours (we are multihomed, it is not) reaches one path of ours
    /// at several local addresses, and what we send on that path (SACKs, HEARTBEATs) leaves from the path's one
    /// local address. When the network behind that address dies the peer fails over to another of our addresses,
    /// but our SACKs would keep leaving by the dead network: nothing is acknowledged, and the peer's surviving path
    /// times out too and collapses its window. So a packet arriving at another concrete address on the same port is
    /// noted here, and `followArrivalAddresses` moves the path there once nothing has arrived at its own address
    /// for `arrivalQuietPeriod`, well inside the peer's shortest T3 timeout. A packet arriving at the address the
    /// path had before moves it straight back, so a short lull on a fast route costs little.
    private func noteArrival(path: PathID, atOtherLocal local: SCTPSocketAddress) {
        let i = paths.position(of: path)!
        guard let ours = paths[i].localAddress, !ours.ip.isWildcard, !local.ip.isWildcard, ours.port == local.port
        else { return }
        if paths[i].arrival.home == local {
            paths[i].localAddress = local
            paths[i].arrival = Path.ArrivalTracking()
            paths[i].arrival.heardAtLocal = true
            rebuildPathLookups()
        } else {
            paths[i].arrival.elsewhere = local
        }
    }

    /// Stamps arrivals at each path's local address and moves a path whose address has gone quiet to the address
    /// its peer now reaches us at (see `noteArrival`). After a move, the path's SACK goes again from there: those
    /// sent since the address went quiet were lost with its network, and a sender out of window would send nothing
    /// to trigger the next one. `.arrivalCheck` brings the check back when the quiet period ends, as nothing may
    /// arrive by then.
    func followArrivalAddresses(now: SCTPTime) {
        for i in paths.indices {
            if paths[i].arrival.heardAtLocal || paths[i].arrival.lastHeardAtLocal == nil {
                paths[i].arrival.lastHeardAtLocal = now
                paths[i].arrival.heardAtLocal = false
                paths[i].arrival.elsewhere = nil
                continue
            }
            guard let other = paths[i].arrival.elsewhere, let last = paths[i].arrival.lastHeardAtLocal else { continue }
            let due = last + arrivalQuietPeriod(paths[i])
            guard now > due else {
                if timers.deadline(of: .arrivalCheck).map({ due < $0 }) ?? true {
                    timers.arm(.arrivalCheck, at: due + .milliseconds(1))
                }
                continue
            }
            logger.info(
                "path follows the peer to another local address",
                metadata: ["from": "\(paths[i].localAddress.map { "\($0)" } ?? "-")", "to": "\(other)"])
            if paths[i].arrival.home == nil { paths[i].arrival.home = paths[i].localAddress }
            paths[i].localAddress = other
            paths[i].arrival.lastHeardAtLocal = now
            paths[i].arrival.elsewhere = nil
            rebuildPathLookups()
            if paths[i].id == sackPathID { dataTracker.requestImmediateSack() }
        }
    }

    /// How long a path's own address may hear nothing while its peer reaches another before the path follows:
    /// half its smoothed RTT, or a quarter of RTO.Min before it has one.
    private func arrivalQuietPeriod(_ path: borrowing Path) -> SCTPDuration {
        path.rto.srtt.map { $0 / 2 } ?? configuration.rtoMin / 4
    }

    private func rebind(path: PathID, to source: SCTPSocketAddress, now: SCTPTime) {
        let old = paths[path].remoteAddress
        paths[path].remoteAddress = source
        if !paths[path].isConfirmed { paths[path].forgetHeartbeatNonces() }
        rebuildPathLookups()
        // A peer can change its source port on every packet: the line is rate-limited, the event is not.
        if let heldBack = logLimits.rebinding.admit(now: now) {
            logger.info(
                "path remote changed (NAT rebinding)",
                metadata: ["from": "\(old)", "to": "\(source)", "held_back": "\(heldBack)"])
        }
        output.events.append(.pathRemoteChanged(id, from: old, to: source))
    }

    // MARK: - Adding and removing paths

    /// Whether another path may be added (`SCTPConfiguration.maxPathsPerAssociation`); when not, the refusal is
    /// counted and logged.
    var hasRoomForPath: Bool {
        guard paths.count >= max(1, configuration.maxPathsPerAssociation) else { return true }
        output.refusals.paths += 1
        logger.debug("path refused: the association has its maximum", metadata: ["paths": "\(paths.count)"])
        return false
    }

    /// Adds a path for the pair (`remote`, `local`), or returns the one that exists. Unlike `addPath` it allows
    /// two paths to the same remote address from different local addresses.
    /// With `announce` false the caller announces it later with `announceNewPath`. Nil (and counted) when a new
    /// path would exceed `maxPathsPerAssociation`.
    @discardableResult
    func addPath(
        remote: SCTPSocketAddress, boundTo local: SCTPSocketAddress, now: SCTPTime, announce: Bool = true
    )
        -> PathID?
    {
        if let id = pathByRoute[ArrivalRoute(local: local, remote: remote)] { return id }
        // A path to that remote with no local address yet (learnt from INIT-ACK) and not in use is taken over.
        if let id = paths.firstID(where: {
            $0.remoteAddress == remote && $0.localAddress == nil && outstanding.flightSize(on: $0.id) == 0
        }) {
            paths.replace(
                Path(
                    id: id, remoteAddress: remote, localAddress: local, mtu: maxPacketSize,
                    configuration: pathConfiguration, isConfirmed: false))
            timers.disarmAll(on: id)
            rebuildPathLookups()
            if announce { announceNewPath(id, now: now) }
            return id
        }
        guard hasRoomForPath else { return nil }
        let path = Path(
            id: PathID(nextPathID), remoteAddress: remote, localAddress: local, mtu: maxPacketSize,
            configuration: pathConfiguration, isConfirmed: false)
        nextPathID += 1
        paths.append(path)
        rebuildPathLookups()
        if announce { announceNewPath(path.id, now: now) }
        return path.id
    }

    /// Tells the application about a new, unconfirmed path and confirms it with a HEARTBEAT right away (RFC 9260
    /// §5.4 makes every new address unconfirmed until a HEARTBEAT-ACK; sending it now rather than after
    /// HB.interval makes the path usable within one round trip).
    func announceNewPath(_ path: PathID, now: SCTPTime) {
        let remote = paths[path].remoteAddress
        logger.info(
            "path added",
            metadata: ["remote": "\(remote)", "local": "\(paths[path].localAddress.map { "\($0)" } ?? "-")"])
        output.events.append(.pathStateChanged(id, remote: remote, .unconfirmed))
        guard state.isEstablishedOrLater else { return }
        if confirmsNewPathsAtOnce {
            sendHeartbeat(path: path, now: now)
        } else {
            timers.arm(.heartbeat(path), at: paths[path].nextHeartbeatDeadline(after: now))
        }
    }

    /// Removes a path, unless it is the last: its timers stop and its outstanding data is sent again elsewhere.
    /// Every other path keeps its id, so nothing that refers to one changes; the primary moves to the first path
    /// if it was this one (`PathTable.remove`).
    func removePath(_ path: PathID) {
        guard paths.count > 1, let removed = paths.remove(path) else { return }
        timers.disarmAll(on: path)
        _ = outstanding.markAllForRetransmission(on: path)
        outstanding.forgetTimeout(on: path)
        rebuildPathLookups()
        logger.info("path removed", metadata: ["remote": "\(removed.remoteAddress)"])
        output.events.append(.pathStateChanged(id, remote: removed.remoteAddress, .inactive))
    }

    // MARK: - Looking paths up

    /// Rebuilds the path lookups after a path was added or removed or changed address; never per packet.
    func rebuildPathLookups() {
        pathByRoute.removeAll(keepingCapacity: true)
        lastArrivalRoute = nil
        pathByRemote.removeAll(keepingCapacity: true)
        for path in paths {
            // The first path wins, as a scan from the front would find it.
            if let local = path.localAddress {
                let route = ArrivalRoute(local: local, remote: path.remoteAddress)
                if pathByRoute[route] == nil { pathByRoute[route] = path.id }
            }
            if pathByRemote[path.remoteAddress] == nil { pathByRemote[path.remoteAddress] = path.id }
        }
        if hasPathPolicies || !pathPolicies.isEmpty || !peerPathPolicies.isEmpty { applyPathPolicies() }
    }

    /// Whether the lookups say what scanning the paths would (checked by `assert` in debug builds, so a change of
    /// a path's address that forgets `rebuildPathLookups` fails the tests).
    var isPathLookupConsistent: Bool {
        for path in paths {
            if let local = path.localAddress,
                pathByRoute[ArrivalRoute(local: local, remote: path.remoteAddress)]
                    != paths.firstID(where: { $0.remoteAddress == path.remoteAddress && $0.localAddress == local })
            {
                return false
            }
            if pathByRemote[path.remoteAddress] != paths.firstID(where: { $0.remoteAddress == path.remoteAddress }) {
                return false
            }
        }
        return pathByRemote.count <= paths.count
    }

    // MARK: - Failure detection (RFC 7829)

    /// After any input: a potentially-failed or inactive path is probed with one HEARTBEAT per RTO (RFC 7829 §5.1),
    /// so it comes back as soon as it works, and carries no new data meanwhile (`sendPathID` skips it); a
    /// healthy path keeps its HB.interval timer, which also keeps NAT bindings alive.
    func maintainPaths(now: SCTPTime) {
        guard state.isEstablishedOrLater else { return }
        followArrivalAddresses(now: now)
        for i in paths.indices {
            switch paths[i].state {
            case .potentiallyFailed, .inactive:
                let due = now + failedPathProbeInterval(paths[i])
                if timers.deadline(of: .heartbeat(paths[i].id)).map({ $0 > due }) ?? true {
                    timers.arm(.heartbeat(paths[i].id), at: due)
                }
            case .active, .unconfirmed:
                if !timers.isArmed(.heartbeat(paths[i].id)) {
                    timers.arm(.heartbeat(paths[i].id), at: paths[i].nextHeartbeatDeadline(after: now))
                }
            }
        }
    }

    /// Makes the path to `remote` the primary (RFC 9260 §8.2 leaves the choice to the user).
    func setPrimary(remote: SCTPSocketAddress) -> Bool {
        guard let path = paths.firstID(where: { $0.remoteAddress == remote }) else { return false }
        paths.makePrimary(path)
        return true
    }
}

extension Association {
    /// Sets the largest packet every path, and every path added later, is given. Packets already built keep their
    /// size; DATA is fragmented when it is packed, so the next packet of every path uses the new one.
    func setMaxPacketSize(_ size: Int, lastChunkUnpadded: Bool = false) {
        maxPacketSize = size
        self.lastChunkUnpadded = lastChunkUnpadded
        for position in paths.indices { paths[position].setMTU(size) }
    }
}
